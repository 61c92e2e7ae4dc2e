-- Disputes (chargebacks and inquiries) Stripe reports about nts's payments,
-- with the status as Stripe names it; and each event's policy at the door
-- for tickets of a disputed order.
CREATE TYPE dispute_status AS ENUM (
    'warning_needs_response', 'warning_under_review', 'warning_closed',
    'needs_response', 'under_review', 'won', 'lost'
);
CREATE TYPE dispute_policy AS ENUM ('admit', 'refuse_while_disputed');

ALTER TABLE events ADD COLUMN dispute_policy dispute_policy NOT NULL DEFAULT 'admit';

CREATE TABLE disputes (
    event_id      UUID NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    id            UUID NOT NULL,
    payment_id    UUID NOT NULL REFERENCES payments (id) ON DELETE CASCADE,
    order_id      UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    -- Stripe's dispute id (du_…).
    provider_ref  TEXT NOT NULL,
    status        dispute_status NOT NULL,
    -- In nts's minor units of `currency`.
    amount_minor  BIGINT NOT NULL CHECK (amount_minor >= 0),
    currency      CHAR(3) NOT NULL,
    -- Stripe's reason (fraudulent, product_not_received, …).
    reason        TEXT NOT NULL,
    -- Stripe took the disputed amount from the balance (and gave it back, if reinstated).
    funds_withdrawn  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, id),
    UNIQUE (provider_ref, event_id)
);
CREATE INDEX disputes_order ON disputes (order_id);

-- A door refusal because the ticket's order is disputed and the event refuses disputed orders.
ALTER TYPE checkin_outcome ADD VALUE 'ticket_disputed';
