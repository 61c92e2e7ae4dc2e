-- Setup for the pgbench baseline (bench/hot_row.sql), run on a fresh database
-- that already has nts's schema (migrations/), so the baseline pays for the
-- same CHECK, indexes and foreign keys as nts does. One event, one ticket type
-- with room for every hold pgbench can make.
--
-- By hand:  createdb hotrow && for f in migrations/*.sql; do psql -d hotrow -f $f; done
--           psql -d hotrow -f bench/hot_row_setup.sql && psql -d hotrow -c 'VACUUM ANALYZE'
--           pgbench -n -M prepared -c 16 -j 2 -T 10 -f bench/hot_row.sql hotrow
INSERT INTO events (id, name, venue, starts_at, currency)
VALUES ('00000000-0000-4000-8000-000000000001', 'pgbench hot row', 'Nowhere', now() + interval '1 year', 'GBP');
INSERT INTO ticket_types (id, event_id, position, name, price_minor, capacity, max_per_order)
VALUES ('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000001', 0, 'General', 2500,
        2000000000, 10);
