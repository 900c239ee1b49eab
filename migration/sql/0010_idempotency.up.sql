-- Idempotency keys: a client that did not hear the answer to a mutation
-- (a timeout, a dropped connection, a restart) retries with the same key and
-- gets the first answer instead of acting twice.
--
-- The first request's response is stored in the same transaction as its
-- mutation, so a key is either absent (nothing committed: acting again is
-- right) or holds exactly what was committed. A concurrent retry's INSERT
-- waits on the first one's uncommitted row and then finds its answer.
-- Keys belong to one user in one clinic.

CREATE TABLE idempotency_keys (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    user_id uuid NOT NULL REFERENCES users (id),
    key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- sha256 of the request's operations and variables: the same key with
    -- another request is refused.
    request_hash text NOT NULL CHECK (request_hash ~ '^[0-9a-f]{64}$'),
    -- The response as sent to the client, byte for byte (JSON text: key
    -- order matters in GraphQL), NULL only inside the transaction that
    -- claimed the key.
    response text,
    -- The patients whose data the response holds: a replay is refused when
    -- the caller may no longer see one of them, and audited as a read.
    read_patients uuid[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, user_id, key),
    CHECK (expires_at > created_at)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (organization_id, expires_at);

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
-- A user reads and writes only their own keys in the current clinic.
CREATE POLICY own_keys ON idempotency_keys
    USING (organization_id = app.current_tenant_id() AND user_id = app.current_user_id())
    WITH CHECK (organization_id = app.current_tenant_id() AND user_id = app.current_user_id());
-- Expired keys are purged by app.purge_expired_idempotency_keys (see the
-- hardening migration): the runtime role deletes nothing.
GRANT SELECT, INSERT, UPDATE ON idempotency_keys TO caregate_app;
