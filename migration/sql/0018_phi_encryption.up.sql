-- Field-level encryption of the most sensitive values. The application
-- encrypts (AES-256-GCM) under a data key of the clinic; data keys are
-- stored here only wrapped by a master key the database never sees.

CREATE TABLE data_keys (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    version         integer NOT NULL CHECK (version >= 1),
    -- Which master key wraps it (a version of the key file).
    master_version  integer NOT NULL CHECK (master_version >= 1),
    -- nonce ‖ AES-256-GCM(master key, the 32-byte data key)
    wrapped         bytea NOT NULL CHECK (length(wrapped) = 60),
    created_at      timestamptz NOT NULL DEFAULT now(),
    rewrapped_at    timestamptz,
    UNIQUE (organization_id, version)
);

ALTER TABLE data_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE data_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON data_keys
    USING (organization_id = app.current_tenant_id())
    WITH CHECK (organization_id = app.current_tenant_id());
-- The server reads its clinic's keys and creates the first one; only the
-- operator's `caregate keys` commands (as the owner) re-wrap them.
GRANT SELECT, INSERT ON data_keys TO caregate_app;

-- The ciphertext framing: format byte 1, the data key version, a nonce,
-- the sealed value and its tag.
CREATE FUNCTION app.is_sealed(v bytea) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT v IS NULL OR (length(v) > 33 AND get_byte(v, 0) = 1)
$$;

-- A patient's SSN: sealed, with a blind index (HMAC) for exact lookups.
ALTER TABLE patients
    ADD COLUMN ssn_enc bytea CHECK (app.is_sealed(ssn_enc)),
    ADD COLUMN ssn_index bytea CHECK (length(ssn_index) = 32),
    ADD CONSTRAINT patients_ssn_pair CHECK ((ssn_enc IS NULL) = (ssn_index IS NULL));
CREATE INDEX patients_ssn_index_idx ON patients (organization_id, ssn_index) WHERE ssn_index IS NOT NULL;
GRANT UPDATE (ssn_enc, ssn_index) ON patients TO caregate_app;

-- A coverage's member id and the clinic's tax id, sealed. Values written
-- before this migration stay in their plaintext columns until `caregate
-- keys reencrypt --org` seals them (and clears the plaintext); nothing
-- writes plaintext any more, and a row never holds both.
ALTER TABLE patient_insurances
    ADD COLUMN member_id_enc bytea CHECK (app.is_sealed(member_id_enc)),
    ADD CONSTRAINT patient_insurances_member_id_once CHECK (member_id IS NULL OR member_id_enc IS NULL);
GRANT UPDATE (member_id_enc) ON patient_insurances TO caregate_app;
ALTER TABLE organizations
    ADD COLUMN tax_id_enc bytea CHECK (app.is_sealed(tax_id_enc)),
    ADD CONSTRAINT organizations_tax_id_once CHECK (tax_id IS NULL OR tax_id_enc IS NULL);
GRANT UPDATE (tax_id_enc) ON organizations TO caregate_app;
