-- Unpaid holds and orders are also capped per network: an IPv6 /48 (all its
-- /64s together) and optionally an IPv4 /24 (NTS_MAX_UNPAID_PER_IPV6_48,
-- NTS_MAX_UNPAID_PER_IPV4_24). client_network is that network as nts writes
-- it ('2001:db8:1::/48', '192.0.2.0/24'); rows made before have none, and
-- count only per address until they expire.
ALTER TABLE holds ADD COLUMN client_network TEXT;
ALTER TABLE orders ADD COLUMN client_network TEXT;
CREATE INDEX holds_active_network ON holds (client_network) WHERE status = 'active';
CREATE INDEX orders_awaiting_network ON orders (client_network) WHERE status = 'awaiting_payment';
-- The cap per buyer e-mail is gone (a lockout and an oracle: SECURITY.md), and with it its lookups.
DROP INDEX holds_active_email;
DROP INDEX orders_awaiting_email;
