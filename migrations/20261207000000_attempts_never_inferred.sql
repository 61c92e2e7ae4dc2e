-- When an order page last asked the provider about this attempt: page reads
-- ask at most every few seconds per attempt, across instances. Apart from
-- next_check_at, the reconciler's schedule, which reads must not push back.
ALTER TABLE payments ADD COLUMN refreshed_at TIMESTAMPTZ;

-- A failed attempt whose PaymentIntent the provider has not yet confirmed
-- canceled (the cancel got no answer): the reconciler sends it again, so a
-- client_secret the buyer still holds cannot confirm it later.
ALTER TABLE payments ADD COLUMN close_owed BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX payments_close_owed ON payments (next_check_at) WHERE close_owed;

-- The provider answered the attempt's creation with an error it stores under
-- the key (a 5xx, idempotency_error): sending it again would only replay it,
-- so the attempt is only looked for from then on.
ALTER TABLE payments ADD COLUMN create_error_stored BOOLEAN NOT NULL DEFAULT false;
