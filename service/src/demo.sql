-- The demo data set: two clinics, their staff and providers, patients, and
-- one person (Jonathan Smith) with a chart at both clinics and a different
-- primary provider at each. Every demo login uses the same password, whose
-- argon2id hash replaces :password_hash.

INSERT INTO organizations (name, slug, timezone) VALUES
    ('Northside Family Clinic', 'northside', 'America/New_York'),
    ('Lakeside Pediatrics & Family Medicine', 'lakeside', 'America/Chicago');

INSERT INTO users (email, password_hash, display_name, timezone, is_super_admin) VALUES
    ('admin@northside.example', ':password_hash', 'Nadia Brooks', 'America/New_York', false),
    ('mfa.admin@northside.example', ':password_hash', 'Priya Natarajan', 'America/New_York', false),
    ('frontdesk@northside.example', ':password_hash', 'Tom Reyes', 'America/New_York', false),
    ('frontdesk.harlem@northside.example', ':password_hash', 'Rosa Diaz', 'America/New_York', false),
    ('dr.okafor@northside.example', ':password_hash', 'Dr. Amara Okafor', 'America/New_York', false),
    ('admin@lakeside.example', ':password_hash', 'Lena Park', 'America/Chicago', false),
    ('frontdesk@lakeside.example', ':password_hash', 'Sam Whitfield', 'America/Chicago', false),
    ('dr.lindqvist@lakeside.example', ':password_hash', 'Dr. Erik Lindqvist', 'America/Chicago', false),
    ('jonathan.smith@example.com', ':password_hash', 'Jonathan Smith', 'America/New_York', false),
    ('maria.garcia@example.com', ':password_hash', 'Maria Garcia', 'America/New_York', false),
    ('ingrid.andersson@example.com', ':password_hash', 'Ingrid Andersson', 'America/Chicago', false),
    ('support@caregate.example', ':password_hash', 'caregate Support', NULL, true);

INSERT INTO organization_memberships (organization_id, user_id, role)
SELECT o.id, u.id, m.role
FROM (VALUES
    ('northside', 'admin@northside.example', 'ADMIN'),
    ('northside', 'mfa.admin@northside.example', 'ADMIN'),
    ('northside', 'frontdesk@northside.example', 'STAFF'),
    ('northside', 'frontdesk.harlem@northside.example', 'STAFF'),
    ('northside', 'dr.okafor@northside.example', 'PROVIDER'),
    ('lakeside', 'admin@lakeside.example', 'ADMIN'),
    ('lakeside', 'frontdesk@lakeside.example', 'STAFF'),
    ('lakeside', 'dr.lindqvist@lakeside.example', 'PROVIDER')
) AS m (slug, email, role)
JOIN organizations o ON o.slug = m.slug
JOIN users u ON u.email = m.email;

INSERT INTO providers (organization_id, user_id, name, npi, specialty, state_licenses)
SELECT o.id, u.id, p.name, p.npi, p.specialty, p.licenses::jsonb
FROM (VALUES
    ('northside', 'dr.okafor@northside.example', 'Dr. Amara Okafor', '1234567893', 'Family Medicine', '["NY"]'),
    ('northside', NULL, 'Dr. Benjamin Hale', '1987654328', 'Cardiology', '["NY", "NJ"]'),
    ('northside', NULL, 'Dr. Chloe Nguyen', '1456789019', 'Endocrinology', '["NY"]'),
    ('northside', NULL, 'Dr. Daniel Mensah', '1765432103', 'Physical Therapy', '["NY"]'),
    ('lakeside', 'dr.lindqvist@lakeside.example', 'Dr. Erik Lindqvist', '1555555550', 'Family Medicine', '["IL"]'),
    ('lakeside', NULL, 'Dr. Fatima Rahman', '1333333338', 'Pediatrics', '["IL", "WI"]'),
    ('lakeside', NULL, 'Dr. Gabriel Costa', '1666666668', 'Cardiology', '["IL"]'),
    ('lakeside', NULL, 'Dr. Hannah Becker', '1888888884', 'Dermatology', '["IL"]')
) AS p (slug, email, name, npi, specialty, licenses)
JOIN organizations o ON o.slug = p.slug
LEFT JOIN users u ON u.email = p.email;

-- Northside's two sites; Rosa Diaz keeps the front desk at Harlem only
-- (a site-scoped login), Tom Reyes at both.
INSERT INTO facilities (organization_id, name, address_line1, city, state, postal_code, timezone, phone, settings)
SELECT o.id, f.name, f.line1, 'New York', 'NY', f.zip, f.tz, f.phone, f.settings::jsonb
FROM (VALUES
    ('Northside Upper West Side', '350 Amsterdam Avenue', '100241234', NULL, '2125550100',
     '{"parking": false, "wheelchair_access": true}'),
    ('Northside Harlem', '2110 Frederick Douglass Boulevard', '100261234', 'America/New_York', '2125550180',
     '{"parking": true, "wheelchair_access": true}')
) AS f (name, line1, zip, tz, phone, settings)
CROSS JOIN organizations o WHERE o.slug = 'northside';

UPDATE organization_memberships m SET facility_scope = ARRAY[f.id]
FROM users u, facilities f
WHERE u.id = m.user_id AND u.email = 'frontdesk.harlem@northside.example'
  AND f.organization_id = m.organization_id AND f.name = 'Northside Harlem';

INSERT INTO facility_staff (organization_id, facility_id, membership_id, provider_id, role, starts_on)
SELECT f.organization_id, f.id, m.id, NULL, s.role, DATE '2025-01-01'
FROM (VALUES ('frontdesk@northside.example', 'Northside Upper West Side', 'FRONT_DESK'),
             ('frontdesk@northside.example', 'Northside Harlem', 'FRONT_DESK'),
             ('frontdesk.harlem@northside.example', 'Northside Harlem', 'FRONT_DESK'),
             ('admin@northside.example', 'Northside Upper West Side', 'MANAGER')) AS s (email, facility, role)
JOIN users u ON u.email = s.email
JOIN facilities f ON f.name = s.facility
JOIN organization_memberships m ON m.organization_id = f.organization_id AND m.user_id = u.id;

INSERT INTO patients (organization_id, user_id, medical_record_number, first_name, last_name,
                      date_of_birth, legal_sex, address_line1, address_line2, city, state, postal_code)
SELECT o.id, u.id, p.mrn, p.first_name, p.last_name, p.dob::date, p.sex,
       a.line1, a.line2, a.city, a.state, a.zip
FROM (VALUES
    ('northside', 'NS-0001', 'Jonathan', 'Smith', '1981-04-12', 'MALE', 'jonathan.smith@example.com'),
    ('northside', 'NS-0002', 'Sofia', 'Garcia', '2015-09-03', 'FEMALE', NULL),
    ('northside', 'NS-0003', 'Eleanor', 'Whitaker', '1948-01-22', 'FEMALE', NULL),
    ('northside', 'NS-0004', 'Marcus', 'Johnson', '1975-07-30', 'MALE', NULL),
    ('northside', 'NS-0005', 'Priya', 'Raman', '1990-12-05', 'FEMALE', NULL),
    ('northside', 'NS-0006', 'Kenji', 'Watanabe', '1963-03-17', 'MALE', NULL),
    ('northside', 'NS-0007', 'Aisha', 'Bello', '2001-06-09', 'FEMALE', NULL),
    ('northside', 'NS-0008', 'Robert', 'Kowalski', '1957-11-28', 'MALE', NULL),
    ('lakeside', 'LS-0001', 'Jonathan', 'Smith', '1981-04-12', 'MALE', 'jonathan.smith@example.com'),
    ('lakeside', 'LS-0002', 'Olivia', 'Martin', '2012-02-14', 'FEMALE', NULL),
    ('lakeside', 'LS-0003', 'Noah', 'Andersson', '2018-08-21', 'MALE', NULL),
    ('lakeside', 'LS-0004', 'Grace', 'Oyelaran', '1986-05-02', 'FEMALE', NULL),
    ('lakeside', 'LS-0005', 'William', 'Thompson', '1969-10-11', 'MALE', NULL),
    ('lakeside', 'LS-0006', 'Mei', 'Chen', '1994-01-25', 'FEMALE', NULL)
) AS p (slug, mrn, first_name, last_name, dob, sex, email)
JOIN organizations o ON o.slug = p.slug
LEFT JOIN users u ON u.email = p.email
LEFT JOIN (VALUES
    ('NS-0001', '12 West 72nd Street', 'Apt 4B', 'New York', 'NY', '10023')
) AS a (mrn, line1, line2, city, state, zip) ON a.mrn = p.mrn;

INSERT INTO contact_methods (organization_id, patient_id, type, value, is_primary, is_safe_for_voicemail)
SELECT pt.organization_id, pt.id, c.type, c.value, c.is_primary, c.safe
FROM (VALUES
    ('NS-0001', 'MOBILE', '+1-212-555-0101', true, true),
    ('NS-0001', 'EMAIL', 'jonathan.smith@example.com', false, false),
    ('NS-0002', 'MOBILE', '+1-212-555-0102', true, false),
    ('NS-0003', 'HOME', '+1-212-555-0103', true, true),
    ('NS-0004', 'MOBILE', '+1-212-555-0104', true, false),
    ('NS-0005', 'EMAIL', 'priya.raman@example.com', true, false),
    ('LS-0001', 'WORK', '+1-312-555-0201', true, false),
    ('LS-0002', 'MOBILE', '+1-312-555-0202', true, true),
    ('LS-0004', 'MOBILE', '+1-312-555-0204', true, false)
) AS c (mrn, type, value, is_primary, safe)
JOIN patients pt ON pt.medical_record_number = c.mrn;

-- Care teams. Jonathan Smith's primary is Dr. Okafor at Northside and
-- Dr. Lindqvist at Lakeside.
INSERT INTO care_team_assignments (organization_id, patient_id, provider_id, role)
SELECT pt.organization_id, pt.id, pr.id, a.role
FROM (VALUES
    ('NS-0001', '1234567893', 'PRIMARY'),
    ('NS-0001', '1987654328', 'SPECIALIST'),
    ('NS-0001', '1765432103', 'CONSULTANT'),
    ('NS-0002', '1234567893', 'PRIMARY'),
    ('NS-0003', '1987654328', 'PRIMARY'),
    ('NS-0003', '1456789019', 'SPECIALIST'),
    ('NS-0004', '1234567893', 'PRIMARY'),
    ('NS-0005', '1456789019', 'PRIMARY'),
    ('NS-0006', '1987654328', 'PRIMARY'),
    ('NS-0007', '1234567893', 'PRIMARY'),
    ('NS-0008', '1765432103', 'PRIMARY'),
    ('LS-0001', '1555555550', 'PRIMARY'),
    ('LS-0001', '1666666668', 'SPECIALIST'),
    ('LS-0002', '1333333338', 'PRIMARY'),
    ('LS-0003', '1333333338', 'PRIMARY'),
    ('LS-0004', '1555555550', 'PRIMARY'),
    ('LS-0004', '1888888884', 'CONSULTANT'),
    ('LS-0005', '1666666668', 'PRIMARY'),
    ('LS-0006', '1555555550', 'PRIMARY')
) AS a (mrn, npi, role)
JOIN patients pt ON pt.medical_record_number = a.mrn
JOIN providers pr ON pr.organization_id = pt.organization_id AND pr.npi = a.npi;

-- Maria Garcia is the parent of Sofia (a minor) at Northside: she may see
-- Sofia's profile and appointments, but not schedule, nor see billing.
INSERT INTO proxy_assignments (organization_id, patient_id, proxy_user_id, relationship,
                               can_view_profile, can_view_appointments)
SELECT pt.organization_id, pt.id, u.id, 'PARENT', true, true
FROM patients pt, users u
WHERE pt.medical_record_number = 'NS-0002' AND u.email = 'maria.garcia@example.com';

-- Ingrid Andersson is the parent of Noah (a minor) at Lakeside, and may also
-- book his appointments.
INSERT INTO proxy_assignments (organization_id, patient_id, proxy_user_id, relationship,
                               can_view_profile, can_view_appointments, can_schedule_appointments)
SELECT pt.organization_id, pt.id, u.id, 'PARENT', true, true, true
FROM patients pt, users u
WHERE pt.medical_record_number = 'LS-0003' AND u.email = 'ingrid.andersson@example.com';

-- Upcoming appointments, on whole hours from tomorrow on.
INSERT INTO appointments (organization_id, patient_id, provider_id, starts_at, ends_at, type, reason)
SELECT pt.organization_id, pt.id, pr.id,
       date_trunc('day', now()) + make_interval(days => a.day, hours => a.hour),
       date_trunc('day', now()) + make_interval(days => a.day, hours => a.hour, mins => 30),
       a.type, a.reason
FROM (VALUES
    ('NS-0001', '1234567893', 1, 14, 'IN_PERSON', 'Annual physical'),
    ('NS-0001', '1987654328', 3, 15, 'TELEHEALTH', 'Blood pressure follow-up'),
    ('NS-0002', '1234567893', 2, 13, 'IN_PERSON', 'School vaccination'),
    ('NS-0003', '1987654328', 1, 16, 'IN_PERSON', 'Cardiology review'),
    ('NS-0008', '1765432103', 4, 18, 'IN_PERSON', 'Knee rehabilitation'),
    ('LS-0001', '1555555550', 2, 15, 'IN_PERSON', 'Travel consultation'),
    ('LS-0002', '1333333338', 1, 14, 'IN_PERSON', 'Well-child visit'),
    ('LS-0005', '1666666668', 5, 16, 'PHONE', 'Lab results')
) AS a (mrn, npi, day, hour, type, reason)
JOIN patients pt ON pt.medical_record_number = a.mrn
JOIN providers pr ON pr.organization_id = pt.organization_id AND pr.npi = a.npi;

-- Northside's visits take place at its sites: cardiology and physical
-- therapy at Harlem, the rest at the Upper West Side.
UPDATE appointments a SET facility_id = f.id
FROM providers pr, facilities f
WHERE pr.organization_id = a.organization_id AND pr.id = a.provider_id
  AND f.organization_id = a.organization_id
  AND f.name = CASE WHEN pr.npi IN ('1987654328', '1765432103') THEN 'Northside Harlem'
                    ELSE 'Northside Upper West Side' END;

INSERT INTO facility_staff (organization_id, facility_id, membership_id, provider_id, role, starts_on)
SELECT f.organization_id, f.id, NULL, pr.id, 'CLINICIAN', DATE '2025-01-01'
FROM (VALUES ('1234567893', 'Northside Upper West Side'),
             ('1987654328', 'Northside Harlem'),
             ('1765432103', 'Northside Harlem')) AS s (npi, facility)
JOIN facilities f ON f.name = s.facility
JOIN providers pr ON pr.organization_id = f.organization_id AND pr.npi = s.npi;

INSERT INTO payer_authorizations (organization_id, patient_id, payer_name, authorization_number,
                                  service_code, total_units, used_units, valid_from, valid_to)
SELECT pt.organization_id, pt.id, 'Blue Harbor Health Plan', 'BH-2026-0042', '97110', 12, 3,
       current_date - 30, current_date + 150
FROM patients pt WHERE pt.medical_record_number = 'NS-0008';

INSERT INTO payer_authorizations (organization_id, patient_id, payer_name, authorization_number,
                                  service_code, total_units, valid_from, valid_to)
SELECT pt.organization_id, pt.id, 'Prairie State Medicaid', 'PSM-77310', '92507', 20,
       current_date - 10, current_date + 80
FROM patients pt WHERE pt.medical_record_number = 'LS-0003';

INSERT INTO consent_documents (kind, version, title, body, is_active) VALUES
    ('TOS', 1, 'Terms of Service', 'The terms under which caregate is provided.', true),
    ('HIPAA_NOTICE', 1, 'Notice of Privacy Practices',
     'How your clinic may use and disclose your health information, and your rights.', true),
    ('PRIVACY_POLICY', 1, 'Privacy Policy', 'What caregate records about you, and why.', true)
ON CONFLICT DO NOTHING;

-- Staff and Jonathan have signed the current notice; Maria has not yet.
INSERT INTO user_consents (user_id, document_id)
SELECT u.id, d.id FROM users u, consent_documents d
WHERE d.is_active AND u.email <> 'maria.garcia@example.com';

-- Therapy operations. Both clinics bill: a billing identity, a fee
-- schedule and a session event catalogue; their providers with logins hold
-- a licence of the clinic's state.
UPDATE organizations SET group_npi = '1230000006', tax_id = '131234567', billing_phone = '2125550100',
    billing_address_line1 = '350 Amsterdam Avenue', billing_city = 'New York', billing_state = 'NY',
    billing_postal_code = '100241234'
WHERE slug = 'northside';
UPDATE organizations SET group_npi = '1555000003', tax_id = '361234567', billing_phone = '3125550100',
    billing_address_line1 = '200 Lake Shore Drive', billing_city = 'Chicago', billing_state = 'IL',
    billing_postal_code = '606111234'
WHERE slug = 'lakeside';

INSERT INTO session_event_types (organization_id, code, description)
SELECT o.id, t.code, t.description
FROM organizations o
CROSS JOIN (VALUES ('NOTE', 'A free-text clinical note'),
                   ('GOAL_PROGRESS', 'Progress on a treatment goal'),
                   ('BEHAVIOR', 'An observed behaviour'),
                   ('INTERVENTION', 'An intervention delivered'),
                   ('VITALS', 'Measured vital signs')) AS t (code, description)
WHERE o.slug IN ('northside', 'lakeside');

INSERT INTO fee_schedule_entries (organization_id, service_code, unit_charge_cents, effective_from)
SELECT o.id, f.code, f.cents, DATE '2024-01-01'
FROM organizations o
CROSS JOIN (VALUES ('97110', 4500), ('97153', 3200), ('92507', 9000), ('90837', 18000)) AS f (code, cents)
WHERE o.slug IN ('northside', 'lakeside');

INSERT INTO staff_credentials (organization_id, provider_id, kind, name, number, issuing_state,
                               valid_from, valid_to)
SELECT pr.organization_id, pr.id, c.kind, c.name, c.number, c.state, c.valid_from::date, c.valid_to::date
FROM (VALUES
    ('1234567893', 'LICENSE', 'Physician and Surgeon', 'NY-281734', 'NY', '2018-07-01', '2030-06-30'),
    ('1234567893', 'CERTIFICATION', 'Board Certified, Family Medicine', 'ABFM-99102', NULL, '2019-01-01', '2029-12-31'),
    ('1765432103', 'LICENSE', 'Physical Therapist', 'NY-PT-44120', 'NY', '2016-03-01', NULL),
    ('1555555550', 'LICENSE', 'Physician and Surgeon', 'IL-036-118822', 'IL', '2017-09-01', '2029-08-31')
) AS c (npi, kind, name, number, state, valid_from, valid_to)
JOIN providers pr ON pr.npi = c.npi;

-- Jonathan Smith at Northside: coverage, diagnoses and an authorization
-- for therapeutic exercise (his address is on his chart).

INSERT INTO patient_insurances (organization_id, patient_id, payer_name, payer_id, member_id,
                                group_number, priority, effective_from)
SELECT pt.organization_id, pt.id, 'Empire Harbor Health', 'EHH01', 'XJH418827301', 'GRP-77120',
       'PRIMARY', DATE '2025-01-01'
FROM patients pt WHERE pt.medical_record_number = 'NS-0001';

INSERT INTO diagnoses (organization_id, patient_id, code, description, is_primary, diagnosed_on)
SELECT pt.organization_id, pt.id, d.code, d.description, d.is_primary, current_date - 40
FROM (VALUES ('M54.50', 'Low back pain, unspecified', true),
             ('M25.561', 'Pain in right knee', false)) AS d (code, description, is_primary)
CROSS JOIN patients pt WHERE pt.medical_record_number = 'NS-0001';

INSERT INTO payer_authorizations (organization_id, patient_id, payer_name, authorization_number,
                                  service_code, total_units, used_units, valid_from, valid_to)
SELECT pt.organization_id, pt.id, 'Empire Harbor Health', 'EHH-PA-55810', '97110', 24, 3,
       current_date - 30, current_date + 150
FROM patients pt WHERE pt.medical_record_number = 'NS-0001';

-- Yesterday's visit with Dr. Okafor: a completed, signed session of 45
-- minutes (3 units under the 8-minute rule) with its events, billed on a
-- submitted claim. It is history written by the operator, so the checks
-- that guard live requests (the caller must be the rendering provider)
-- are set aside while it is written.
INSERT INTO appointments (organization_id, patient_id, provider_id, starts_at, ends_at, type, reason, status,
                          facility_id)
SELECT pt.organization_id, pt.id, pr.id,
       date_trunc('day', now()) - interval '1 day' + interval '15 hours',
       date_trunc('day', now()) - interval '1 day' + interval '16 hours',
       'IN_PERSON', 'Therapeutic exercise, lower back', 'COMPLETED', f.id
FROM patients pt JOIN providers pr ON pr.organization_id = pt.organization_id AND pr.npi = '1234567893'
JOIN facilities f ON f.organization_id = pt.organization_id AND f.name = 'Northside Upper West Side'
WHERE pt.medical_record_number = 'NS-0001';

ALTER TABLE therapy_sessions DISABLE TRIGGER therapy_sessions_check;
ALTER TABLE session_events DISABLE TRIGGER session_events_check;

INSERT INTO therapy_sessions (organization_id, appointment_id, patient_id, provider_id, authorization_id,
                              service_code, modifiers, place_of_service, status, started_at, ended_at,
                              units, created_by)
SELECT a.organization_id, a.id, a.patient_id, a.provider_id, au.id, '97110', '{GP}', '11', 'COMPLETED',
       a.starts_at + interval '2 minutes', a.starts_at + interval '47 minutes', 3, pr.user_id
FROM appointments a
JOIN providers pr ON pr.organization_id = a.organization_id AND pr.id = a.provider_id
JOIN payer_authorizations au ON au.organization_id = a.organization_id AND au.patient_id = a.patient_id
                            AND au.authorization_number = 'EHH-PA-55810'
WHERE a.reason = 'Therapeutic exercise, lower back';

INSERT INTO session_events (organization_id, session_id, patient_id, event_type, occurred_at, payload,
                            recorded_by, recorded_at)
SELECT s.organization_id, s.id, s.patient_id, e.type, s.started_at + e.at, e.payload::jsonb,
       s.created_by, s.started_at + e.at
FROM therapy_sessions s
CROSS JOIN (VALUES
    ('VITALS', interval '3 minutes', '{"pain_score": 6, "blood_pressure": "124/80"}'),
    ('INTERVENTION', interval '10 minutes', '{"exercise": "core stabilisation", "sets": 3, "reps": 12}'),
    ('GOAL_PROGRESS', interval '35 minutes', '{"goal": "sit 30 minutes without pain", "progress": "partial"}'),
    ('NOTE', interval '44 minutes', '{"text": "Tolerated well; continue home program twice daily."}')
) AS e (type, at, payload);

UPDATE therapy_sessions SET status = 'SIGNED', signed_at = ended_at + interval '5 minutes',
    signed_by = created_by, content_hash = app.session_content_hash(id);

ALTER TABLE session_events ENABLE TRIGGER session_events_check;
ALTER TABLE therapy_sessions ENABLE TRIGGER therapy_sessions_check;

-- The claim is recorded as a draft here; `caregate seed-demo` then submits
-- it through the service, which renders and keeps its 837P.
INSERT INTO claim_counters (organization_id, last_number)
SELECT id, 1 FROM organizations WHERE slug = 'northside';

INSERT INTO claims (organization_id, patient_id, insurance_id, provider_id, control_number, status,
                    diagnosis_codes, total_charge_cents, created_by)
SELECT s.organization_id, s.patient_id, i.id, s.provider_id, 1, 'DRAFT', ARRAY['M54.50', 'M25.561'],
       3 * 4500, u.id
FROM therapy_sessions s
JOIN patient_insurances i ON i.organization_id = s.organization_id AND i.patient_id = s.patient_id
JOIN users u ON u.email = 'frontdesk@northside.example';

INSERT INTO claim_lines (organization_id, claim_id, patient_id, session_id, line_number, service_code,
                         modifiers, place_of_service, service_date, units, charge_cents, diagnosis_pointers)
SELECT c.organization_id, c.id, c.patient_id, s.id, 1, s.service_code, s.modifiers, s.place_of_service,
       (s.started_at AT TIME ZONE 'America/New_York')::date, s.units, 3 * 4500, '{1,2}'
FROM claims c JOIN therapy_sessions s ON s.organization_id = c.organization_id AND s.patient_id = c.patient_id;

-- Jonathan's account at Northside: yesterday's copay charged, paid by card
-- (a processor's payment intent, stored, never called), and partly refunded.
INSERT INTO billing_transactions (organization_id, owner_kind, patient_id, kind, amount_minor, currency,
                                  processor, processor_ref, description)
SELECT pt.organization_id, 'PATIENT', pt.id, t.kind, t.amount, 'USD', t.processor, t.ref, t.description
FROM (VALUES (1, 'ADJUSTMENT', 4500, NULL, NULL, 'Copay, therapeutic exercise'),
             (2, 'PAYMENT', 6000, 'stripe', 'pi_3QdemoNorthside0001', 'Card payment at the front desk'))
     AS t (n, kind, amount, processor, ref, description)
CROSS JOIN patients pt WHERE pt.medical_record_number = 'NS-0001'
ORDER BY t.n;

INSERT INTO billing_transactions (organization_id, owner_kind, patient_id, kind, amount_minor, currency,
                                  refund_of, processor, processor_ref, description)
SELECT p.organization_id, 'PATIENT', p.patient_id, 'REFUND', 1500, 'USD', p.id,
       'stripe', 're_3QdemoNorthside0001', 'Overpayment returned'
FROM billing_transactions p WHERE p.processor_ref = 'pi_3QdemoNorthside0001';

-- Northside's plan carries a 20 % discount, granted by caregate's support
-- (as it would be, impersonating the clinic; written here by the operator,
-- so the trigger that takes the grantor from the request is set aside).
ALTER TABLE subscription_overrides DISABLE TRIGGER subscription_overrides_check;
INSERT INTO subscription_overrides (organization_id, kind, discount_percent, reason, granted_by)
SELECT o.id, 'DISCOUNT', 20, 'Founding-clinic discount', u.id
FROM organizations o, users u
WHERE o.slug = 'northside' AND u.email = 'support@caregate.example';
ALTER TABLE subscription_overrides ENABLE TRIGGER subscription_overrides_check;
