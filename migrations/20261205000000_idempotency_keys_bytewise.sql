-- A key's scope and key are hex digests: compared byte by byte, as the "C"
-- collation does, instead of through the database's locale (strcoll on
-- every comparison in the primary key's b-tree, on every keyed request).
ALTER TABLE idempotency_keys
    ALTER COLUMN scope TYPE text COLLATE "C",
    ALTER COLUMN key TYPE text COLLATE "C";
