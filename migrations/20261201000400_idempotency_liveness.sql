-- Every running nts instance holds a lease it renews about twice a second.
-- A key claimed by a request of an instance whose lease ran out (the process
-- died) is taken over at once by the client's retry; a key claimed by a live
-- instance stays in use however long its request runs.
CREATE TABLE instances (
    id           UUID PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until  TIMESTAMPTZ NOT NULL
);
CREATE INDEX instances_lease ON instances (lease_until);

ALTER TABLE idempotency_keys
    -- The instance whose request claimed the key and has not answered yet.
    ADD COLUMN instance_id UUID,
    -- Where a request that calls a provider got to (its payment attempt):
    -- a retry that takes the key over resumes from there instead of starting over.
    ADD COLUMN recovery_point UUID;
