-- E-mail to buyers through a transactional outbox: a row is written in the
-- transaction that makes the change it reports (an order paid, refunded), so
-- no committed change lacks its e-mail and no e-mail reports a change that
-- did not commit. Senders in every instance claim rows with a lease.

CREATE TYPE mail_kind AS ENUM ('order_paid', 'order_refunded', 'resend');
-- pending → sending (leased) → sent; sending → pending (retry later) or
-- failed (out of attempts; an admin may put it back to pending).
CREATE TYPE mail_status AS ENUM ('pending', 'sending', 'sent', 'failed');

CREATE TABLE mail_outbox (
    id               UUID PRIMARY KEY,
    order_id         UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    kind             mail_kind NOT NULL,
    recipient        TEXT NOT NULL,
    status           mail_status NOT NULL DEFAULT 'pending',
    attempts         INT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_owner      UUID,
    lease_until      TIMESTAMPTZ,
    -- What the SMTP server or the network said; never a secret.
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at          TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One confirmation and one refund notice per order, whoever writes them.
CREATE UNIQUE INDEX mail_outbox_once ON mail_outbox (order_id, kind) WHERE kind <> 'resend';
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX mail_outbox_recent ON mail_outbox (created_at DESC);

-- The order's buyer secret, encrypted with the server's mail key
-- (ChaCha20-Poly1305), so that an e-mail can carry the order's link. The
-- orders table keeps only its hash; a database dump alone opens no order.
CREATE TABLE order_links (
    order_id        UUID PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
    sealed_secret   BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- "Send me my tickets again" finds an address's paid orders.
CREATE INDEX orders_paid_email ON orders (lower(buyer_email)) WHERE status = 'paid';
