-- Check-in at the door: per-event signing keys for ticket codes, scanner
-- devices, and every scan a device reports. A ticket is admitted at most once
-- at a time: the partial unique index on active admissions decides, whatever
-- the number of gates and instances.

-- The key pair that signs an event's ticket codes (Ed25519). Scanners get the
-- public key and verify codes without the server.
CREATE TABLE checkin_event_keys (
    event_id     UUID PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    public_key   BYTEA NOT NULL CHECK (length(public_key) = 32),
    secret_key   BYTEA NOT NULL CHECK (length(secret_key) = 32),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE checkin_devices (
    id           UUID PRIMARY KEY,
    event_id     UUID NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_hash   BYTEA NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX checkin_devices_event ON checkin_devices (event_id, created_at);

-- admitted: the ticket went in (an active admission unless undone);
-- already_checked_in / ticket_not_valid: refused at an online gate;
-- double_entry / invalid_entry: an offline gate let in a ticket that was
-- already in / no longer valid, learnt when the scan was uploaded.
CREATE TYPE checkin_outcome AS ENUM (
    'admitted', 'already_checked_in', 'ticket_not_valid', 'double_entry', 'invalid_entry'
);

CREATE TABLE checkin_scans (
    id            UUID PRIMARY KEY,
    device_id     UUID NOT NULL REFERENCES checkin_devices (id) ON DELETE CASCADE,
    -- Chosen by the device: its retry of the same scan finds this row.
    scan_id       UUID NOT NULL,
    ticket_code   TEXT NOT NULL REFERENCES tickets (code) ON DELETE CASCADE,
    event_id      UUID NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    outcome       checkin_outcome NOT NULL,
    offline       BOOLEAN NOT NULL,
    -- When the device scanned: the server's clock online, the device's offline.
    scanned_at    TIMESTAMPTZ NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The admission that was active when this scan came: the one it was
    -- refused for, or the one it doubled.
    admission_id  UUID REFERENCES checkin_scans (id) ON DELETE CASCADE,
    undone_at     TIMESTAMPTZ,
    undone_by     TEXT CHECK (length(undone_by) BETWEEN 1 AND 100),
    CHECK ((admission_id IS NOT NULL) = (outcome IN ('already_checked_in', 'double_entry'))),
    CHECK ((undone_at IS NULL) = (undone_by IS NULL)),
    CHECK (undone_at IS NULL OR outcome = 'admitted'),
    UNIQUE (device_id, scan_id)
);
CREATE UNIQUE INDEX checkin_scans_one_admission ON checkin_scans (ticket_code)
    WHERE outcome = 'admitted' AND undone_at IS NULL;
CREATE INDEX checkin_scans_event ON checkin_scans (event_id, outcome);
