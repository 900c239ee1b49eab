-- Every primary key of a clinic's table includes organization_id.
--
-- A sharded PostgreSQL (Citus) distributes each clinic's rows by
-- organization_id and enforces a primary key or unique constraint only when
-- it includes that column, since each is checked on one shard alone. The
-- tables below had `PRIMARY KEY (id)` beside `UNIQUE (organization_id, id)`
-- (the target of the composite foreign keys): the primary key becomes
-- `(organization_id, id)` and the now identical unique constraint goes, so
-- each table keeps one index for the pair. The composite foreign keys that
-- pointed at the unique constraint are recreated unchanged and now point at
-- the primary key. ids stay ULIDs generated independently of the clinic, so
-- no two rows share an id in practice; the database now guarantees it per
-- clinic, which is all any reference inside a clinic relies on.
--
-- Tables whose organization_id may be NULL (user_sessions, mfa_challenges,
-- audit_events) are not distributed by it and keep their keys.
--
-- This rebuilds the keys of the listed tables and revalidates the foreign
-- keys, under exclusive locks: run it in a maintenance window on a large
-- database.

-- Foreign keys held by the unique constraints that go.
ALTER TABLE billing_transactions DROP CONSTRAINT billing_transactions_organization_id_refund_of_fkey;
ALTER TABLE appointments DROP CONSTRAINT appointments_organization_id_facility_id_fkey;
ALTER TABLE facility_staff DROP CONSTRAINT facility_staff_organization_id_facility_id_fkey;
ALTER TABLE session_events DROP CONSTRAINT session_events_organization_id_facility_id_fkey;
ALTER TABLE therapy_sessions DROP CONSTRAINT therapy_sessions_organization_id_facility_id_fkey;
ALTER TABLE facility_staff DROP CONSTRAINT facility_staff_organization_id_membership_id_fkey;
ALTER TABLE appointments DROP CONSTRAINT appointments_organization_id_patient_id_fkey;
ALTER TABLE billing_transactions DROP CONSTRAINT billing_transactions_organization_id_patient_id_fkey;
ALTER TABLE care_team_assignments DROP CONSTRAINT care_team_assignments_organization_id_patient_id_fkey;
ALTER TABLE claims DROP CONSTRAINT claims_organization_id_patient_id_fkey;
ALTER TABLE contact_methods DROP CONSTRAINT contact_methods_organization_id_patient_id_fkey;
ALTER TABLE diagnoses DROP CONSTRAINT diagnoses_organization_id_patient_id_fkey;
ALTER TABLE message_threads DROP CONSTRAINT message_threads_organization_id_patient_id_fkey;
ALTER TABLE patient_insurances DROP CONSTRAINT patient_insurances_organization_id_patient_id_fkey;
ALTER TABLE payer_authorizations DROP CONSTRAINT payer_authorizations_organization_id_patient_id_fkey;
ALTER TABLE proxy_assignments DROP CONSTRAINT proxy_assignments_organization_id_patient_id_fkey;
ALTER TABLE appointments DROP CONSTRAINT appointments_organization_id_provider_id_fkey;
ALTER TABLE care_team_assignments DROP CONSTRAINT care_team_assignments_organization_id_provider_id_fkey;
ALTER TABLE claims DROP CONSTRAINT claims_organization_id_provider_id_fkey;
ALTER TABLE facility_staff DROP CONSTRAINT facility_staff_organization_id_provider_id_fkey;
ALTER TABLE staff_credentials DROP CONSTRAINT staff_credentials_organization_id_provider_id_fkey;
ALTER TABLE billing_transactions DROP CONSTRAINT billing_transactions_organization_id_managed_by_proxy_id_fkey;

-- The primary keys.
ALTER TABLE appointments DROP CONSTRAINT appointments_organization_id_id_key;
ALTER TABLE appointments DROP CONSTRAINT appointments_pkey;
ALTER TABLE appointments ADD CONSTRAINT appointments_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE billing_transactions DROP CONSTRAINT billing_transactions_organization_id_id_key;
ALTER TABLE billing_transactions DROP CONSTRAINT billing_transactions_pkey;
ALTER TABLE billing_transactions ADD CONSTRAINT billing_transactions_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE care_team_assignments DROP CONSTRAINT care_team_assignments_organization_id_id_key;
ALTER TABLE care_team_assignments DROP CONSTRAINT care_team_assignments_pkey;
ALTER TABLE care_team_assignments ADD CONSTRAINT care_team_assignments_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE claim_lines DROP CONSTRAINT claim_lines_organization_id_id_key;
ALTER TABLE claim_lines DROP CONSTRAINT claim_lines_pkey;
ALTER TABLE claim_lines ADD CONSTRAINT claim_lines_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE claims DROP CONSTRAINT claims_organization_id_id_key;
ALTER TABLE claims DROP CONSTRAINT claims_pkey;
ALTER TABLE claims ADD CONSTRAINT claims_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE contact_methods DROP CONSTRAINT contact_methods_organization_id_id_key;
ALTER TABLE contact_methods DROP CONSTRAINT contact_methods_pkey;
ALTER TABLE contact_methods ADD CONSTRAINT contact_methods_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE data_keys DROP CONSTRAINT data_keys_pkey;
ALTER TABLE data_keys ADD CONSTRAINT data_keys_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE diagnoses DROP CONSTRAINT diagnoses_organization_id_id_key;
ALTER TABLE diagnoses DROP CONSTRAINT diagnoses_pkey;
ALTER TABLE diagnoses ADD CONSTRAINT diagnoses_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE facilities DROP CONSTRAINT facilities_organization_id_id_key;
ALTER TABLE facilities DROP CONSTRAINT facilities_pkey;
ALTER TABLE facilities ADD CONSTRAINT facilities_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE facility_staff DROP CONSTRAINT facility_staff_organization_id_id_key;
ALTER TABLE facility_staff DROP CONSTRAINT facility_staff_pkey;
ALTER TABLE facility_staff ADD CONSTRAINT facility_staff_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE fee_schedule_entries DROP CONSTRAINT fee_schedule_entries_organization_id_id_key;
ALTER TABLE fee_schedule_entries DROP CONSTRAINT fee_schedule_entries_pkey;
ALTER TABLE fee_schedule_entries ADD CONSTRAINT fee_schedule_entries_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE message_attachments DROP CONSTRAINT message_attachments_organization_id_id_key;
ALTER TABLE message_attachments DROP CONSTRAINT message_attachments_pkey;
ALTER TABLE message_attachments ADD CONSTRAINT message_attachments_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE message_revisions DROP CONSTRAINT message_revisions_pkey;
ALTER TABLE message_revisions ADD CONSTRAINT message_revisions_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE message_threads DROP CONSTRAINT message_threads_organization_id_id_key;
ALTER TABLE message_threads DROP CONSTRAINT message_threads_pkey;
ALTER TABLE message_threads ADD CONSTRAINT message_threads_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE messages DROP CONSTRAINT messages_organization_id_id_key;
ALTER TABLE messages DROP CONSTRAINT messages_pkey;
ALTER TABLE messages ADD CONSTRAINT messages_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE notifications DROP CONSTRAINT notifications_organization_id_id_key;
ALTER TABLE notifications DROP CONSTRAINT notifications_pkey;
ALTER TABLE notifications ADD CONSTRAINT notifications_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE organization_memberships DROP CONSTRAINT organization_memberships_organization_id_id_key;
ALTER TABLE organization_memberships DROP CONSTRAINT organization_memberships_pkey;
ALTER TABLE organization_memberships ADD CONSTRAINT organization_memberships_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE patient_insurances DROP CONSTRAINT patient_insurances_organization_id_id_key;
ALTER TABLE patient_insurances DROP CONSTRAINT patient_insurances_pkey;
ALTER TABLE patient_insurances ADD CONSTRAINT patient_insurances_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE patients DROP CONSTRAINT patients_organization_id_id_key;
ALTER TABLE patients DROP CONSTRAINT patients_pkey;
ALTER TABLE patients ADD CONSTRAINT patients_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE payer_authorizations DROP CONSTRAINT payer_authorizations_organization_id_id_key;
ALTER TABLE payer_authorizations DROP CONSTRAINT payer_authorizations_pkey;
ALTER TABLE payer_authorizations ADD CONSTRAINT payer_authorizations_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE providers DROP CONSTRAINT providers_organization_id_id_key;
ALTER TABLE providers DROP CONSTRAINT providers_pkey;
ALTER TABLE providers ADD CONSTRAINT providers_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE proxy_assignments DROP CONSTRAINT proxy_assignments_organization_id_id_key;
ALTER TABLE proxy_assignments DROP CONSTRAINT proxy_assignments_pkey;
ALTER TABLE proxy_assignments ADD CONSTRAINT proxy_assignments_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE session_event_types DROP CONSTRAINT session_event_types_organization_id_id_key;
ALTER TABLE session_event_types DROP CONSTRAINT session_event_types_pkey;
ALTER TABLE session_event_types ADD CONSTRAINT session_event_types_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE session_events DROP CONSTRAINT session_events_organization_id_id_key;
ALTER TABLE session_events DROP CONSTRAINT session_events_pkey;
ALTER TABLE session_events ADD CONSTRAINT session_events_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE staff_credentials DROP CONSTRAINT staff_credentials_organization_id_id_key;
ALTER TABLE staff_credentials DROP CONSTRAINT staff_credentials_pkey;
ALTER TABLE staff_credentials ADD CONSTRAINT staff_credentials_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE subscription_overrides DROP CONSTRAINT subscription_overrides_organization_id_id_key;
ALTER TABLE subscription_overrides DROP CONSTRAINT subscription_overrides_pkey;
ALTER TABLE subscription_overrides ADD CONSTRAINT subscription_overrides_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE therapy_sessions DROP CONSTRAINT therapy_sessions_organization_id_id_key;
ALTER TABLE therapy_sessions DROP CONSTRAINT therapy_sessions_pkey;
ALTER TABLE therapy_sessions ADD CONSTRAINT therapy_sessions_pkey PRIMARY KEY (organization_id, id);
ALTER TABLE thread_participants DROP CONSTRAINT thread_participants_organization_id_id_key;
ALTER TABLE thread_participants DROP CONSTRAINT thread_participants_pkey;
ALTER TABLE thread_participants ADD CONSTRAINT thread_participants_pkey PRIMARY KEY (organization_id, id);

-- The same foreign keys, now held by the primary keys.
ALTER TABLE billing_transactions ADD CONSTRAINT billing_transactions_organization_id_refund_of_fkey FOREIGN KEY (organization_id, refund_of) REFERENCES billing_transactions(organization_id, id);
ALTER TABLE appointments ADD CONSTRAINT appointments_organization_id_facility_id_fkey FOREIGN KEY (organization_id, facility_id) REFERENCES facilities(organization_id, id);
ALTER TABLE facility_staff ADD CONSTRAINT facility_staff_organization_id_facility_id_fkey FOREIGN KEY (organization_id, facility_id) REFERENCES facilities(organization_id, id);
ALTER TABLE session_events ADD CONSTRAINT session_events_organization_id_facility_id_fkey FOREIGN KEY (organization_id, facility_id) REFERENCES facilities(organization_id, id);
ALTER TABLE therapy_sessions ADD CONSTRAINT therapy_sessions_organization_id_facility_id_fkey FOREIGN KEY (organization_id, facility_id) REFERENCES facilities(organization_id, id);
ALTER TABLE facility_staff ADD CONSTRAINT facility_staff_organization_id_membership_id_fkey FOREIGN KEY (organization_id, membership_id) REFERENCES organization_memberships(organization_id, id);
ALTER TABLE appointments ADD CONSTRAINT appointments_organization_id_patient_id_fkey FOREIGN KEY (organization_id, patient_id) REFERENCES patients(organization_id, id);
ALTER TABLE billing_transactions ADD CONSTRAINT billing_transactions_organization_id_patient_id_fkey FOREIGN KEY (organization_id, patient_id) REFERENCES patients(organization_id, id);
ALTER TABLE care_team_assignments ADD CONSTRAINT care_team_assignments_organization_id_patient_id_fkey FOREIGN KEY (organization_id, patient_id) REFERENCES patients(organization_id, id);
ALTER TABLE claims ADD CONSTRAINT claims_organization_id_patient_id_fkey FOREIGN KEY (organization_id, patient_id) REFERENCES patients(organization_id, id);
ALTER TABLE contact_methods ADD CONSTRAINT contact_methods_organization_id_patient_id_fkey FOREIGN KEY (organization_id, patient_id) REFERENCES patients(organization_id, id);
ALTER TABLE diagnoses ADD CONSTRAINT diagnoses_organization_id_patient_id_fkey FOREIGN KEY (organization_id, patient_id) REFERENCES patients(organization_id, id);
ALTER TABLE message_threads ADD CONSTRAINT message_threads_organization_id_patient_id_fkey FOREIGN KEY (organization_id, patient_id) REFERENCES patients(organization_id, id);
ALTER TABLE patient_insurances ADD CONSTRAINT patient_insurances_organization_id_patient_id_fkey FOREIGN KEY (organization_id, patient_id) REFERENCES patients(organization_id, id);
ALTER TABLE payer_authorizations ADD CONSTRAINT payer_authorizations_organization_id_patient_id_fkey FOREIGN KEY (organization_id, patient_id) REFERENCES patients(organization_id, id);
ALTER TABLE proxy_assignments ADD CONSTRAINT proxy_assignments_organization_id_patient_id_fkey FOREIGN KEY (organization_id, patient_id) REFERENCES patients(organization_id, id);
ALTER TABLE appointments ADD CONSTRAINT appointments_organization_id_provider_id_fkey FOREIGN KEY (organization_id, provider_id) REFERENCES providers(organization_id, id);
ALTER TABLE care_team_assignments ADD CONSTRAINT care_team_assignments_organization_id_provider_id_fkey FOREIGN KEY (organization_id, provider_id) REFERENCES providers(organization_id, id);
ALTER TABLE claims ADD CONSTRAINT claims_organization_id_provider_id_fkey FOREIGN KEY (organization_id, provider_id) REFERENCES providers(organization_id, id);
ALTER TABLE facility_staff ADD CONSTRAINT facility_staff_organization_id_provider_id_fkey FOREIGN KEY (organization_id, provider_id) REFERENCES providers(organization_id, id);
ALTER TABLE staff_credentials ADD CONSTRAINT staff_credentials_organization_id_provider_id_fkey FOREIGN KEY (organization_id, provider_id) REFERENCES providers(organization_id, id);
ALTER TABLE billing_transactions ADD CONSTRAINT billing_transactions_organization_id_managed_by_proxy_id_fkey FOREIGN KEY (organization_id, managed_by_proxy_id) REFERENCES proxy_assignments(organization_id, id);
