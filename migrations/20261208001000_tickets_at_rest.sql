-- Ticket codes and the events' signing seeds at rest (issue 34): a database
-- dump must let nobody in. A ticket's code is now derived from its id with a
-- server key (NTS_TICKET_KEY) that the database never holds; the table keeps
-- a SHA-256 of it (to find the ticket a scanner read) and the id of the key
-- that made it (to show it again), never the code. Signing seeds are kept
-- sealed with such a key.
--
-- SQL cannot know the server key, so this migration only makes room: codes
-- issued before stay in `legacy_code` and seeds in `secret_key` until the
-- first start after it, which seals both with the newest key and clears them
-- (api/checkin/at_rest.rs), before it serves anything.

-- Tickets: an id of their own and their event (per-event keys), the code's hash.
ALTER TABLE tickets
    ADD COLUMN id UUID,
    ADD COLUMN event_id UUID REFERENCES events (id) ON DELETE CASCADE,
    ADD COLUMN code_hash BYTEA,
    -- The ticket key that derived the code, or sealed a code issued before.
    ADD COLUMN key_id BYTEA CHECK (length(key_id) = 8),
    -- A code issued before codes were derived, sealed to its ticket.
    ADD COLUMN sealed_code BYTEA;
UPDATE tickets t
SET id = gen_random_uuid(), event_id = o.event_id, code_hash = sha256(convert_to(t.code, 'UTF8'))
FROM orders o WHERE o.id = t.order_id;
ALTER TABLE tickets
    ALTER COLUMN id SET NOT NULL,
    ALTER COLUMN event_id SET NOT NULL,
    ALTER COLUMN code_hash SET NOT NULL,
    ADD CONSTRAINT tickets_code_hash_len CHECK (length(code_hash) = 32);

-- Scans name their ticket by id and event, not by its code.
ALTER TABLE checkin_scans ADD COLUMN ticket_id UUID;
UPDATE checkin_scans s SET ticket_id = t.id FROM tickets t WHERE t.code = s.ticket_code;
DROP INDEX checkin_scans_one_admission;
ALTER TABLE checkin_scans DROP COLUMN ticket_code;
ALTER TABLE checkin_scans ALTER COLUMN ticket_id SET NOT NULL;

ALTER TABLE tickets DROP CONSTRAINT tickets_pkey;
ALTER TABLE tickets RENAME COLUMN code TO legacy_code;
ALTER TABLE tickets
    ALTER COLUMN legacy_code DROP NOT NULL,
    ADD PRIMARY KEY (event_id, id),
    ADD CONSTRAINT tickets_code_hash_key UNIQUE (code_hash),
    -- Derived (key only), sealed (key and sealed code), or not sealed yet (plain, no key).
    ADD CONSTRAINT tickets_code_kept CHECK ((key_id IS NULL) = (legacy_code IS NOT NULL)),
    ADD CONSTRAINT tickets_sealed_with_key CHECK (sealed_code IS NULL OR key_id IS NOT NULL);

ALTER TABLE checkin_scans
    ADD CONSTRAINT checkin_scans_ticket FOREIGN KEY (event_id, ticket_id)
        REFERENCES tickets (event_id, id) ON DELETE CASCADE;
CREATE UNIQUE INDEX checkin_scans_one_admission ON checkin_scans (event_id, ticket_id)
    WHERE outcome = 'admitted' AND undone_at IS NULL;

-- Signing seeds: sealed with a ticket key.
ALTER TABLE checkin_event_keys
    ALTER COLUMN secret_key DROP NOT NULL,
    ADD COLUMN sealed_secret BYTEA,
    ADD COLUMN key_id BYTEA CHECK (length(key_id) = 8),
    ADD CONSTRAINT checkin_event_keys_seed CHECK ((secret_key IS NULL) = (sealed_secret IS NOT NULL)),
    ADD CONSTRAINT checkin_event_keys_sealed_with_key CHECK ((sealed_secret IS NULL) = (key_id IS NULL));
