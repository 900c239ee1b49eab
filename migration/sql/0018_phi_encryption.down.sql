-- Sealed values cannot be turned back into plaintext here (the database
-- never holds the keys): going down drops them.
CREATE OR REPLACE FUNCTION app.audit_redact(doc jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT doc - 'password_hash' - 'search_name' - 'updated_at'
$$;
CREATE OR REPLACE FUNCTION app.check_claim_transition() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF (NEW.patient_id, NEW.insurance_id, NEW.provider_id, NEW.control_number, NEW.diagnosis_codes,
        NEW.total_charge_cents, NEW.organization_id, NEW.created_at)
       IS DISTINCT FROM (OLD.patient_id, OLD.insurance_id, OLD.provider_id, OLD.control_number,
                         OLD.diagnosis_codes, OLD.total_charge_cents, OLD.organization_id, OLD.created_at)
       OR (OLD.submitted_x12 IS NOT NULL AND NEW.submitted_x12 IS DISTINCT FROM OLD.submitted_x12) THEN
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
ALTER TABLE claims DROP CONSTRAINT claims_submitted_x12_kept, DROP CONSTRAINT claims_submitted_x12_once;
-- Sealed 837Ps are lost going down; their claims keep a placeholder so the
-- restored rule (a submitted claim has its 837P) holds.
UPDATE claims SET submitted_x12 = '' WHERE submitted_x12_enc IS NOT NULL;
ALTER TABLE claims ADD CHECK ((status = 'DRAFT') = (submitted_x12 IS NULL));
ALTER TABLE claims DROP COLUMN submitted_x12_enc;
ALTER TABLE organizations DROP CONSTRAINT organizations_tax_id_once, DROP COLUMN tax_id_enc;
ALTER TABLE patient_insurances DROP CONSTRAINT patient_insurances_member_id_once, DROP COLUMN member_id_enc;
DROP INDEX patients_ssn_index_idx;
ALTER TABLE patients DROP CONSTRAINT patients_ssn_pair, DROP COLUMN ssn_enc, DROP COLUMN ssn_index;
DROP FUNCTION app.is_sealed(bytea);
DROP TABLE data_keys;
