-- Caps on unpaid holds and orders per client address and per buyer e-mail
-- (NTS_MAX_UNPAID_PER_ADDRESS, NTS_MAX_UNPAID_PER_EMAIL). The client address is
-- the one the rate limit sees (IPv6 per /64); rows made before it was kept have none.
ALTER TABLE holds ADD COLUMN client_address TEXT;
ALTER TABLE orders ADD COLUMN client_address TEXT;
CREATE INDEX holds_active_client ON holds (client_address) WHERE status = 'active';
CREATE INDEX holds_active_email ON holds (lower(buyer_email)) WHERE status = 'active';
CREATE INDEX orders_awaiting_client ON orders (client_address) WHERE status = 'awaiting_payment';
CREATE INDEX orders_awaiting_email ON orders (lower(buyer_email)) WHERE status = 'awaiting_payment';
