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

-- The 837P kept with a submitted claim holds the member id and the tax id
-- (and the whole claim): sealed too. A claim submitted before this
-- migration keeps its plaintext until `keys reencrypt` seals it.
ALTER TABLE claims
    ADD COLUMN submitted_x12_enc bytea CHECK (app.is_sealed(submitted_x12_enc)),
    ADD CONSTRAINT claims_submitted_x12_once CHECK (submitted_x12 IS NULL OR submitted_x12_enc IS NULL);
DO $$
DECLARE
    c text;
BEGIN
    SELECT conname INTO c FROM pg_constraint
    WHERE conrelid = 'claims'::regclass AND contype = 'c'
      AND pg_get_constraintdef(oid) LIKE '%submitted_x12 IS NULL%'
      AND conname <> 'claims_submitted_x12_once';
    EXECUTE format('ALTER TABLE claims DROP CONSTRAINT %I', c);
END
$$;
ALTER TABLE claims ADD CONSTRAINT claims_submitted_x12_kept
    CHECK ((status = 'DRAFT') = (submitted_x12 IS NULL AND submitted_x12_enc IS NULL));
GRANT UPDATE (submitted_x12_enc) ON claims TO caregate_app;

-- A claim's content is fixed once submitted; its kept 837P changes only by
-- the operator's re-encryption (not the runtime role), which seals the same
-- text under another key.
CREATE OR REPLACE FUNCTION app.check_claim_transition() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF (NEW.patient_id, NEW.insurance_id, NEW.provider_id, NEW.control_number, NEW.diagnosis_codes,
        NEW.total_charge_cents, NEW.organization_id, NEW.created_at)
       IS DISTINCT FROM (OLD.patient_id, OLD.insurance_id, OLD.provider_id, OLD.control_number,
                         OLD.diagnosis_codes, OLD.total_charge_cents, OLD.organization_id, OLD.created_at)
       OR ((OLD.submitted_x12 IS NOT NULL OR OLD.submitted_x12_enc IS NOT NULL)
           AND (NEW.submitted_x12, NEW.submitted_x12_enc) IS DISTINCT FROM (OLD.submitted_x12, OLD.submitted_x12_enc)
           AND current_user = 'caregate_app') THEN
        RAISE EXCEPTION 'CLAIM_CONTENT_FIXED' USING ERRCODE = 'CG409';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
           (OLD.status = 'DRAFT' AND NEW.status = 'SUBMITTED')
        OR (OLD.status = 'SUBMITTED' AND NEW.status IN ('ACCEPTED', 'REJECTED'))
        OR (OLD.status = 'ACCEPTED' AND NEW.status IN ('PAID', 'DENIED'))) THEN
        RAISE EXCEPTION 'CLAIM_TRANSITION' USING ERRCODE = 'CG409';
    END IF;
    RETURN NEW;
END
$$;

-- The audit trail records that a sealed value changed, never the value:
-- sealed columns as a short digest of their ciphertext, the plaintext
-- columns written before encryption as "[redacted]".
CREATE OR REPLACE FUNCTION app.audit_redact(doc jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (doc - 'password_hash' - 'search_name' - 'updated_at')
        || coalesce((SELECT jsonb_object_agg(k, CASE WHEN jsonb_typeof(doc -> k) = 'null' THEN 'null'::jsonb
                                                    ELSE to_jsonb('sealed:' || left(encode(sha256(convert_to(doc ->> k, 'UTF8')), 'hex'), 16))
                                               END)
                     FROM unnest(ARRAY['ssn_enc', 'ssn_index', 'member_id_enc', 'tax_id_enc', 'submitted_x12_enc']) AS k
                     WHERE doc ? k), '{}')
        || coalesce((SELECT jsonb_object_agg(k, CASE WHEN jsonb_typeof(doc -> k) = 'null' THEN 'null'::jsonb
                                                    ELSE '"[redacted]"'::jsonb
                                               END)
                     FROM unnest(ARRAY['member_id', 'tax_id', 'submitted_x12']) AS k
                     WHERE doc ? k), '{}')
$$;
