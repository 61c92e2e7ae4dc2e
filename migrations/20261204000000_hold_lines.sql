-- A hold (and the order made from it, which keeps the hold's lines) may be
-- for several ticket types of one event: one line per type. `holds.quantity`
-- and `amount_minor` (and the order's) stay, as the totals of the lines.
--
-- Stop every running instance before this migration runs: it drops the
-- columns older instances read.

CREATE TABLE hold_lines (
    hold_id           UUID NOT NULL REFERENCES holds (id) ON DELETE CASCADE,
    ticket_type_id    UUID NOT NULL REFERENCES ticket_types (id) ON DELETE CASCADE,
    -- The line's place in the buyer's request, for showing the lines in that order.
    position          INT NOT NULL CHECK (position >= 0),
    quantity          INT NOT NULL CHECK (quantity >= 1),
    unit_price_minor  BIGINT NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (hold_id, ticket_type_id)
);

INSERT INTO hold_lines (hold_id, ticket_type_id, position, quantity, unit_price_minor)
SELECT id, ticket_type_id, 0, quantity, amount_minor / quantity FROM holds;

-- At most this many tickets in one order, across its ticket types (NULL: only each type's max_per_order).
ALTER TABLE events ADD COLUMN max_tickets_per_order INT CHECK (max_tickets_per_order >= 1);

-- Expired holds are swept per event: a hold's seats may be of several types.
DROP INDEX holds_active_type;
CREATE INDEX holds_active_event ON holds (event_id, expires_at) WHERE status = 'active';

ALTER TABLE holds DROP COLUMN ticket_type_id;
ALTER TABLE orders DROP COLUMN ticket_type_id;
