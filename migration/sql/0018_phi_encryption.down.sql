-- Sealed values cannot be turned back into plaintext here (the database
-- never holds the keys): going down drops them.
DROP INDEX patients_ssn_index_idx;
ALTER TABLE patients DROP CONSTRAINT patients_ssn_pair, DROP COLUMN ssn_enc, DROP COLUMN ssn_index;
DROP FUNCTION app.is_sealed(bytea);
DROP TABLE data_keys;
