-- A key's row is found by one 32-byte digest of its scope and key instead of
-- the two as 64-character hex texts: a primary key a third the size, into
-- which every keyed request writes at a random place (in a hold batch, while
-- it holds the counters' locks). The digest is the one nts computes
-- (`idempotency::key_id`), so keys stored before still replay.
ALTER TABLE idempotency_keys ADD COLUMN id BYTEA;
UPDATE idempotency_keys SET id = sha256(convert_to(scope || key, 'UTF8'));
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys DROP COLUMN scope, DROP COLUMN key;
ALTER TABLE idempotency_keys ALTER COLUMN id SET NOT NULL, ADD PRIMARY KEY (id);

-- Rows come in time order, and only the daily clean-up looks them up by age:
-- a block-range index, not a b-tree written at every insert.
DROP INDEX idempotency_keys_created;
CREATE INDEX idempotency_keys_created ON idempotency_keys USING brin (created_at);
