-- Sealed values cannot be turned back into plaintext here (the database
-- never holds the keys): going down drops them.
ALTER TABLE organizations DROP CONSTRAINT organizations_tax_id_once, DROP COLUMN tax_id_enc;
ALTER TABLE patient_insurances DROP CONSTRAINT patient_insurances_member_id_once, DROP COLUMN member_id_enc;
DROP INDEX patients_ssn_index_idx;
ALTER TABLE patients DROP CONSTRAINT patients_ssn_pair, DROP COLUMN ssn_enc, DROP COLUMN ssn_index;
DROP FUNCTION app.is_sealed(bytea);
DROP TABLE data_keys;
