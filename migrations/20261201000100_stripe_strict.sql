-- A refund Stripe reported as failed: the money is still with the merchant
-- and the buyer is owed it; the organiser sees it and the audit lists it.
ALTER TYPE payment_status ADD VALUE 'refund_failed';

ALTER TABLE payments
    -- Where Stripe sends the buyer back after an authentication that needs a
    -- redirect. Kept with the attempt so every re-sent creation carries the
    -- very same bytes, whichever instance sends it.
    ADD COLUMN return_url TEXT,
    -- Provider calls about this attempt that got no usable answer in a row,
    -- and when the reconciler may ask again (capped exponential backoff).
    ADD COLUMN provider_failures INT NOT NULL DEFAULT 0,
    ADD COLUMN next_check_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Why Stripe could not give the money back.
    ADD COLUMN refund_failure TEXT,
    -- Bumped when Stripe stored an error under the refund's idempotency key
    -- and has no refund for the payment: the next request needs a new key.
    ADD COLUMN refund_key_seq INT NOT NULL DEFAULT 0;

-- Seats of a refunded order go back on sale once, by an admin's choice; a
-- refund made in Stripe's dashboard leaves them sold until an admin releases them.
ALTER TABLE orders ADD COLUMN seats_released_at TIMESTAMPTZ;
