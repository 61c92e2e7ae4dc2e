-- Refunds as rows of their own: one per refund at the provider, so a payment
-- may have several (partial refunds, refunds made in Stripe's dashboard). A
-- refund nts asks for is committed with its idempotency key before the
-- provider is called; a refund made elsewhere is adopted when the provider
-- reports it. A payment's refunded amount is the sum of its succeeded rows.
CREATE TYPE refund_status AS ENUM ('pending', 'succeeded', 'failed', 'canceled');

CREATE TABLE refunds (
    event_id         UUID NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    id               UUID NOT NULL,
    payment_id       UUID NOT NULL REFERENCES payments (id) ON DELETE CASCADE,
    -- Sent with every provider call of this refund; NULL for a refund made
    -- outside nts (found in the provider's news).
    idempotency_key  TEXT,
    -- The provider's refund, once it answered.
    provider_ref     TEXT,
    -- In nts's minor units of the payment's currency; the provider's figure
    -- once it answered.
    amount_minor     BIGINT NOT NULL CHECK (amount_minor >= 0),
    currency         CHAR(3) NOT NULL,
    status           refund_status NOT NULL DEFAULT 'pending',
    -- Why: asked by the organiser, money an order could not take, or made outside nts.
    reason           TEXT NOT NULL CHECK (reason IN ('requested_by_organiser', 'order_cannot_take_payment',
                                                     'outside_nts')),
    -- Why the provider could not give the money back (or refused to try).
    failure          TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, id),
    -- Led by the provider's id: webhooks find a refund by it alone.
    UNIQUE (provider_ref, event_id),
    UNIQUE (idempotency_key, event_id),
    CHECK (idempotency_key IS NOT NULL OR provider_ref IS NOT NULL)
);
CREATE INDEX refunds_payment ON refunds (payment_id, created_at);
CREATE INDEX refunds_updated ON refunds (updated_at);

-- Every refund recorded on a payment so far becomes its row: the refund the
-- payment followed (under its current key), pending, succeeded or failed.
-- Which refunds were made in the dashboard cannot be told apart any more;
-- they keep the payment's key, which Stripe never saw (harmless: a row with a
-- provider reference is only ever retrieved, never created).
INSERT INTO refunds (event_id, id, payment_id, idempotency_key, provider_ref, amount_minor, currency, status,
                     reason, failure, created_at, updated_at)
SELECT o.event_id, gen_random_uuid(), p.id,
       'nts-refund-' || p.id || CASE WHEN p.refund_key_seq > 0 THEN '-' || p.refund_key_seq ELSE '' END,
       p.refund_ref, p.amount_minor, p.currency,
       CASE p.status WHEN 'refunded' THEN 'succeeded'
                     WHEN 'refund_failed' THEN 'failed'
                     ELSE 'pending' END::refund_status,
       CASE WHEN o.status = 'refunded' THEN 'requested_by_organiser' ELSE 'order_cannot_take_payment' END,
       p.refund_failure, p.updated_at, p.updated_at
FROM payments p JOIN orders o ON o.id = p.order_id
WHERE p.refund_ref IS NOT NULL OR p.status IN ('refund_pending', 'refunded', 'refund_failed');

-- payments.refund_ref, refund_failure and refund_key_seq are no longer
-- written; they stay until nothing reads them (a concurrent change of the
-- payment transitions still binds them).
COMMENT ON COLUMN payments.refund_ref IS 'superseded by refunds.provider_ref';
COMMENT ON COLUMN payments.refund_failure IS 'superseded by refunds.failure';
COMMENT ON COLUMN payments.refund_key_seq IS 'superseded by refunds.idempotency_key';
