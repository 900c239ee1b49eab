DROP TABLE claim_lines;
DROP TABLE claims;
DROP TABLE claim_counters;
DROP FUNCTION app.check_claim_line();
DROP FUNCTION app.release_rejected_claim();
DROP FUNCTION app.check_claim_transition();
DROP FUNCTION app.session_content_hash(uuid);
DROP TABLE session_events;
DROP FUNCTION app.check_session_event();
DROP FUNCTION app.forbid_event_rewrite();
DROP TABLE therapy_sessions;
DROP FUNCTION app.check_therapy_session();
DROP FUNCTION app.billable_units(integer);
DROP TABLE session_event_types;
DROP TABLE fee_schedule_entries;
DROP TABLE diagnoses;
DROP TABLE patient_insurances;
DROP TABLE staff_credentials;
ALTER TABLE payer_authorizations DROP CONSTRAINT payer_authorizations_patient_key;
ALTER TABLE appointments DROP CONSTRAINT appointments_people_key;
ALTER TABLE patients
    DROP CONSTRAINT patients_address_complete,
    DROP COLUMN address_line1, DROP COLUMN address_line2, DROP COLUMN city,
    DROP COLUMN state, DROP COLUMN postal_code;
ALTER TABLE organizations
    DROP COLUMN group_npi, DROP COLUMN tax_id, DROP COLUMN billing_phone,
    DROP COLUMN billing_address_line1, DROP COLUMN billing_address_line2,
    DROP COLUMN billing_city, DROP COLUMN billing_state, DROP COLUMN billing_postal_code;
