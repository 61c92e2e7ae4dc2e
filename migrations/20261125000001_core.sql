-- Core sale model: events, ticket types, holds, orders, payments, tickets.
-- Every inventory change is a guarded UPDATE of ticket_types; the CHECK on it
-- is the last line of defence against overselling.

CREATE TYPE hold_status AS ENUM ('active', 'checked_out', 'released', 'expired');
CREATE TYPE order_status AS ENUM ('awaiting_payment', 'paid', 'expired', 'canceled', 'refunded');
CREATE TYPE payment_status AS ENUM (
    'created', 'processing', 'requires_action', 'succeeded', 'failed', 'canceled',
    'refund_pending', 'refunded'
);

CREATE TABLE events (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    venue       TEXT NOT NULL CHECK (length(venue) BETWEEN 1 AND 200),
    starts_at   TIMESTAMPTZ NOT NULL,
    currency    CHAR(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    is_demo     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX events_starts_at ON events (starts_at);

CREATE TABLE ticket_types (
    id             UUID PRIMARY KEY,
    event_id       UUID NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    position       INT NOT NULL,
    name           TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    price_minor    BIGINT NOT NULL CHECK (price_minor >= 0),
    capacity       INT NOT NULL CHECK (capacity >= 0),
    max_per_order  INT NOT NULL CHECK (max_per_order >= 1),
    sold           INT NOT NULL DEFAULT 0,
    held           INT NOT NULL DEFAULT 0,
    CONSTRAINT ticket_types_inventory CHECK (0 <= sold AND 0 <= held AND sold + held <= capacity),
    UNIQUE (event_id, position)
);

CREATE TABLE holds (
    id              UUID PRIMARY KEY,
    secret_hash     BYTEA NOT NULL,
    event_id        UUID NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    ticket_type_id  UUID NOT NULL REFERENCES ticket_types (id) ON DELETE CASCADE,
    buyer_name      TEXT NOT NULL,
    buyer_email     TEXT NOT NULL,
    quantity        INT NOT NULL CHECK (quantity >= 1),
    amount_minor    BIGINT NOT NULL CHECK (amount_minor >= 0),
    currency        CHAR(3) NOT NULL,
    status          hold_status NOT NULL DEFAULT 'active',
    expires_at      TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ
);
-- The sweeper and the exact availability read look only at live holds.
CREATE INDEX holds_active_expiry ON holds (expires_at) WHERE status = 'active';
CREATE INDEX holds_active_type ON holds (ticket_type_id, expires_at) WHERE status = 'active';

CREATE TABLE orders (
    id              UUID PRIMARY KEY,
    secret_hash     BYTEA NOT NULL,
    hold_id         UUID NOT NULL UNIQUE REFERENCES holds (id),
    event_id        UUID NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    ticket_type_id  UUID NOT NULL REFERENCES ticket_types (id) ON DELETE CASCADE,
    buyer_name      TEXT NOT NULL,
    buyer_email     TEXT NOT NULL,
    quantity        INT NOT NULL CHECK (quantity >= 1),
    amount_minor    BIGINT NOT NULL CHECK (amount_minor >= 0),
    currency        CHAR(3) NOT NULL,
    status          order_status NOT NULL DEFAULT 'awaiting_payment',
    expires_at      TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    paid_at         TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ
);
CREATE INDEX orders_awaiting_expiry ON orders (expires_at) WHERE status = 'awaiting_payment';
CREATE INDEX orders_event_paid ON orders (event_id) WHERE status = 'paid';

CREATE TABLE payments (
    id               UUID PRIMARY KEY,
    order_id         UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    provider         TEXT NOT NULL CHECK (provider IN ('simulated', 'stripe')),
    -- Sent with every provider call of this attempt, so a retry after a lost
    -- response returns the same provider object instead of charging again.
    idempotency_key  TEXT NOT NULL UNIQUE,
    provider_ref     TEXT UNIQUE,
    status           payment_status NOT NULL DEFAULT 'created',
    amount_minor     BIGINT NOT NULL CHECK (amount_minor >= 0),
    currency         CHAR(3) NOT NULL,
    client_secret    TEXT,
    failure_code     TEXT,
    refund_ref       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX payments_order ON payments (order_id, created_at);
CREATE INDEX payments_open ON payments (updated_at)
    WHERE status IN ('created', 'processing', 'requires_action', 'refund_pending');
CREATE UNIQUE INDEX payments_one_success_per_order ON payments (order_id) WHERE status = 'succeeded';

CREATE TABLE tickets (
    code            TEXT PRIMARY KEY,
    order_id        UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    ticket_type_id  UUID NOT NULL REFERENCES ticket_types (id) ON DELETE CASCADE,
    position        INT NOT NULL,
    UNIQUE (order_id, position)
);

CREATE TABLE provider_events (
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

CREATE TABLE idempotency_keys (
    scope            TEXT NOT NULL,
    key              TEXT NOT NULL,
    request_hash     BYTEA NOT NULL,
    response_status  SMALLINT,
    response_body    BYTEA,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- The simulated payment provider's own records: it behaves like an external
-- provider that happens to share the database, so reconciliation and audits
-- compare nts's payments with an independent ledger.
CREATE TABLE simulated_intents (
    id               TEXT PRIMARY KEY,
    idempotency_key  TEXT NOT NULL UNIQUE,
    order_id         UUID NOT NULL,
    payment_id       UUID NOT NULL,
    amount_minor     BIGINT NOT NULL,
    currency         CHAR(3) NOT NULL,
    status           TEXT NOT NULL CHECK (status IN
                        ('requires_confirmation', 'processing', 'succeeded', 'declined', 'canceled')),
    refunded         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
