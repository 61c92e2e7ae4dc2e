-- The minimal hold transaction on one hot row, one hold per transaction: the
-- guarded UPDATE of the counters and the INSERTs of the hold and of its one
-- line (hold_lines, since issue 15), in one statement
-- (one round trip, the row lock held only until commit), as nts did before
-- group commit. This is the "one transaction per hold" ceiling that nts-bench
-- compares nts with. (BEGIN; UPDATE; INSERT; END; as four round trips holds
-- the lock longer and measured lower, so it would be a weaker baseline.)
-- Setup: bench/hot_row_setup.sql.
WITH taken AS (
    UPDATE ticket_types SET held = held + 1
    WHERE id = '00000000-0000-4000-8000-000000000002' AND capacity - sold - held >= 1
    RETURNING id, event_id, price_minor
), hold AS (
    INSERT INTO holds (id, secret_hash, event_id, buyer_name, buyer_email, quantity, amount_minor, currency, expires_at)
    SELECT gen_random_uuid(), sha256(convert_to(gen_random_uuid()::text, 'UTF8')), taken.event_id,
           'Bench Buyer', 'buyer@example.com', 1, taken.price_minor, 'GBP', now() + interval '5 minutes'
    FROM taken
    RETURNING id
)
INSERT INTO hold_lines (hold_id, ticket_type_id, position, quantity, unit_price_minor)
SELECT hold.id, taken.id, 0, 1, taken.price_minor FROM hold, taken;
