-- Therapy operations: who may render care (credentials), who pays for it
-- (coverages), what was treated (diagnoses), the session itself with its
-- append-only event stream and signature, and the claim that bills it.
--
-- Same rules as every tenant table: organization_id on each row, composite
-- foreign keys inside a tenant, forced RLS with sub-query-free policies, an
-- audit trigger on each table. Rules that must hold under concurrency are
-- held here (unique indexes, checks, triggers); the service turns their
-- refusals into domain errors. A trigger refusal carries a reason as its
-- message and one of two SQLSTATEs of our own: CG403 (the caller may not do
-- this: FORBIDDEN) and CG409 (the data does not allow it: CONFLICT).

-- The clinic's billing identity, as it appears on its claims. The state of
-- the billing address is the clinic's state: a provider renders care only
-- with a licence issued there.
ALTER TABLE organizations
    ADD COLUMN group_npi text CHECK (app.is_valid_npi(group_npi)),
    ADD COLUMN tax_id text CHECK (tax_id ~ '^[0-9]{9}$'),
    ADD COLUMN billing_phone text CHECK (billing_phone ~ '^[0-9]{10}$'),
    ADD COLUMN billing_address_line1 text CHECK (length(btrim(billing_address_line1)) BETWEEN 1 AND 55),
    ADD COLUMN billing_address_line2 text CHECK (length(btrim(billing_address_line2)) BETWEEN 1 AND 55),
    ADD COLUMN billing_city text CHECK (length(btrim(billing_city)) BETWEEN 1 AND 30),
    ADD COLUMN billing_state text CHECK (billing_state ~ '^[A-Z]{2}$'),
    ADD COLUMN billing_postal_code text CHECK (billing_postal_code ~ '^[0-9]{5}([0-9]{4})?$');
GRANT UPDATE (group_npi, tax_id, billing_phone, billing_address_line1, billing_address_line2,
              billing_city, billing_state, billing_postal_code) ON organizations TO caregate_app;

-- A patient's postal address (a claim's subscriber or patient address).
ALTER TABLE patients
    ADD COLUMN address_line1 text CHECK (length(btrim(address_line1)) BETWEEN 1 AND 55),
    ADD COLUMN address_line2 text CHECK (length(btrim(address_line2)) BETWEEN 1 AND 55),
    ADD COLUMN city text CHECK (length(btrim(city)) BETWEEN 1 AND 30),
    ADD COLUMN state text CHECK (state ~ '^[A-Z]{2}$'),
    ADD COLUMN postal_code text CHECK (postal_code ~ '^[0-9]{5}([0-9]{4})?$'),
    ADD CONSTRAINT patients_address_complete CHECK (
        (address_line1 IS NULL AND address_line2 IS NULL AND city IS NULL AND state IS NULL AND postal_code IS NULL)
        OR (address_line1 IS NOT NULL AND city IS NOT NULL AND state IS NOT NULL AND postal_code IS NOT NULL));

-- Keys the new tables point at: a session's appointment with its patient
-- and provider, an authorization with its patient.
ALTER TABLE appointments ADD CONSTRAINT appointments_people_key UNIQUE (organization_id, id, patient_id, provider_id);
ALTER TABLE payer_authorizations ADD CONSTRAINT payer_authorizations_patient_key UNIQUE (organization_id, id, patient_id);

-- Licences and certifications of a provider.
CREATE TABLE staff_credentials (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    provider_id     uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('LICENSE', 'CERTIFICATION')),
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    number          text NOT NULL CHECK (length(btrim(number)) BETWEEN 1 AND 50),
    issuing_state   text CHECK (issuing_state ~ '^[A-Z]{2}$'),
    valid_from      date NOT NULL,
    valid_to        date,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, provider_id) REFERENCES providers (organization_id, id),
    CHECK (valid_to IS NULL OR valid_to >= valid_from),
    -- A licence is issued by a state; a certification may be national.
    CHECK (kind <> 'LICENSE' OR issuing_state IS NOT NULL)
);
CREATE INDEX staff_credentials_provider_idx ON staff_credentials (organization_id, provider_id, valid_from);
-- A national certification has no state: NULLS NOT DISTINCT, so it too is
-- recorded once.
CREATE UNIQUE INDEX staff_credentials_number_key
    ON staff_credentials (organization_id, provider_id, kind, issuing_state, number) NULLS NOT DISTINCT
    WHERE deleted_at IS NULL;

-- A patient's insurance coverages. At most one active coverage per priority.
CREATE TABLE patient_insurances (
    id                      uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id         uuid NOT NULL REFERENCES organizations (id),
    patient_id              uuid NOT NULL,
    payer_name              text NOT NULL CHECK (length(btrim(payer_name)) BETWEEN 1 AND 60),
    payer_id                text NOT NULL CHECK (payer_id ~ '^[A-Za-z0-9]{2,15}$'),
    -- May be unknown while the coverage is being verified; a claim cannot
    -- be rendered without it.
    member_id               text CHECK (member_id ~ '^[A-Za-z0-9-]{1,80}$'),
    group_number            text CHECK (group_number ~ '^[A-Za-z0-9-]{1,50}$'),
    priority                text NOT NULL CHECK (priority IN ('PRIMARY', 'SECONDARY', 'TERTIARY')),
    -- The 837P claim filing indicator (SBR09): CI commercial, MB Medicare
    -- part B, MC Medicaid, BL Blue Cross/Blue Shield, HM HMO, ...
    claim_filing_code       text NOT NULL DEFAULT 'CI' CHECK (claim_filing_code IN (
                                '11', '12', '13', '14', '15', '16', '17', 'AM', 'BL', 'CH', 'CI', 'DS',
                                'FI', 'HM', 'LM', 'MA', 'MB', 'MC', 'OF', 'TV', 'VA', 'WC', 'ZZ')),
    relationship            text NOT NULL DEFAULT 'SELF_INSURED' CHECK (relationship IN ('SELF_INSURED', 'SPOUSE', 'CHILD', 'OTHER')),
    -- The subscriber when it is someone else than the patient.
    subscriber_first_name   text CHECK (length(btrim(subscriber_first_name)) BETWEEN 1 AND 35),
    subscriber_last_name    text CHECK (length(btrim(subscriber_last_name)) BETWEEN 1 AND 60),
    subscriber_date_of_birth date CHECK (subscriber_date_of_birth >= DATE '1880-01-01'),
    subscriber_sex          text CHECK (subscriber_sex IN ('FEMALE', 'MALE', 'UNKNOWN')),
    subscriber_address_line1 text CHECK (length(btrim(subscriber_address_line1)) BETWEEN 1 AND 55),
    subscriber_address_line2 text CHECK (length(btrim(subscriber_address_line2)) BETWEEN 1 AND 55),
    subscriber_city         text CHECK (length(btrim(subscriber_city)) BETWEEN 1 AND 30),
    subscriber_state        text CHECK (subscriber_state ~ '^[A-Z]{2}$'),
    subscriber_postal_code  text CHECK (subscriber_postal_code ~ '^[0-9]{5}([0-9]{4})?$'),
    effective_from          date NOT NULL,
    effective_to            date,
    is_active               boolean NOT NULL DEFAULT true,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, id, patient_id),
    FOREIGN KEY (organization_id, patient_id) REFERENCES patients (organization_id, id),
    CHECK (effective_to IS NULL OR effective_to >= effective_from),
    CONSTRAINT patient_insurances_subscriber_check CHECK (
        relationship = 'SELF_INSURED'
        OR (subscriber_first_name IS NOT NULL AND subscriber_last_name IS NOT NULL
            AND subscriber_date_of_birth IS NOT NULL AND subscriber_sex IS NOT NULL)),
    CHECK (
        (subscriber_address_line1 IS NULL AND subscriber_address_line2 IS NULL AND subscriber_city IS NULL
         AND subscriber_state IS NULL AND subscriber_postal_code IS NULL)
        OR (subscriber_address_line1 IS NOT NULL AND subscriber_city IS NOT NULL
            AND subscriber_state IS NOT NULL AND subscriber_postal_code IS NOT NULL))
);
CREATE UNIQUE INDEX patient_insurances_priority_key
    ON patient_insurances (organization_id, patient_id, priority) WHERE is_active AND deleted_at IS NULL;
CREATE INDEX patient_insurances_patient_idx ON patient_insurances (organization_id, patient_id);

-- A patient's diagnoses (ICD-10-CM), one of them primary.
CREATE TABLE diagnoses (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    patient_id      uuid NOT NULL,
    code            text NOT NULL CHECK (code ~ '^[A-Z][0-9][0-9AB](\.[0-9A-Z]{1,4})?$'),
    description     text CHECK (length(btrim(description)) BETWEEN 1 AND 200),
    is_primary      boolean NOT NULL DEFAULT false,
    diagnosed_on    date NOT NULL,
    resolved_on     date,
    created_by      uuid REFERENCES users (id) DEFAULT app.current_user_id(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, patient_id) REFERENCES patients (organization_id, id),
    CHECK (resolved_on IS NULL OR resolved_on >= diagnosed_on),
    CHECK (NOT (is_primary AND resolved_on IS NOT NULL))
);
CREATE UNIQUE INDEX diagnoses_primary_key
    ON diagnoses (organization_id, patient_id) WHERE is_primary AND deleted_at IS NULL;
CREATE UNIQUE INDEX diagnoses_code_key
    ON diagnoses (organization_id, patient_id, code) WHERE resolved_on IS NULL AND deleted_at IS NULL;

-- What a clinic charges per unit of a service, from a date.
CREATE TABLE fee_schedule_entries (
    id                uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    service_code      text NOT NULL CHECK (service_code ~ '^[A-Z0-9][0-9]{3}[0-9A-Z]$'),
    unit_charge_cents bigint NOT NULL CHECK (unit_charge_cents >= 0 AND unit_charge_cents <= 10000000),
    effective_from    date NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    CONSTRAINT fee_schedule_entries_code_key UNIQUE (organization_id, service_code, effective_from)
);

-- The kinds of clinical event a clinic records in its sessions: defined by
-- each clinic's admins (`addSessionEventType`).
CREATE TABLE session_event_types (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    code            text NOT NULL CHECK (code ~ '^[A-Z][A-Z0-9_]{0,39}$'),
    description     text NOT NULL CHECK (length(btrim(description)) BETWEEN 1 AND 200),
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    CONSTRAINT session_event_types_code_key UNIQUE (organization_id, code)
);

-- Clinics that exist when this runs get the default catalogue.
INSERT INTO session_event_types (organization_id, code, description)
SELECT o.id, t.code, t.description
FROM organizations o
CROSS JOIN (VALUES ('NOTE', 'A free-text clinical note'),
                   ('GOAL_PROGRESS', 'Progress on a treatment goal'),
                   ('BEHAVIOR', 'An observed behaviour'),
                   ('INTERVENTION', 'An intervention delivered'),
                   ('VITALS', 'Measured vital signs')) AS t (code, description);

-- Billable units from a duration: 15-minute units under the 8-minute rule
-- (CMS): under 8 minutes bills nothing, then one unit per full 15 minutes
-- and one more when the rest is 8 minutes or more (8-22 min: 1, 23-37: 2, ...).
CREATE FUNCTION app.billable_units(minutes integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN minutes < 8 THEN 0 ELSE (minutes + 7) / 15 END
$$;

-- A therapy session: started from a checked-in appointment (one session per
-- appointment), IN_PROGRESS until ended (COMPLETED, its units computed and
-- consumed from the authorization), then SIGNED by its rendering provider
-- and locked.
CREATE TABLE therapy_sessions (
    id               uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    appointment_id   uuid NOT NULL,
    patient_id       uuid NOT NULL,
    provider_id      uuid NOT NULL,
    authorization_id uuid,
    service_code     text NOT NULL CHECK (service_code ~ '^[A-Z0-9][0-9]{3}[0-9A-Z]$'),
    modifiers        text[] NOT NULL DEFAULT '{}'
                     CHECK (cardinality(modifiers) <= 4 AND array_to_string(modifiers, ',') ~ '^([A-Z0-9]{2}(,|$))*$'),
    place_of_service text NOT NULL CHECK (place_of_service ~ '^[0-9]{2}$'),
    status           text NOT NULL DEFAULT 'IN_PROGRESS' CHECK (status IN ('IN_PROGRESS', 'COMPLETED', 'SIGNED')),
    started_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    units            integer CHECK (units >= 0),
    signed_at        timestamptz,
    signed_by        uuid REFERENCES users (id),
    content_hash     text CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    created_by       uuid REFERENCES users (id) DEFAULT app.current_user_id(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, id, patient_id),
    CONSTRAINT therapy_sessions_appointment_key UNIQUE (organization_id, appointment_id),
    FOREIGN KEY (organization_id, appointment_id, patient_id, provider_id)
        REFERENCES appointments (organization_id, id, patient_id, provider_id),
    FOREIGN KEY (organization_id, authorization_id, patient_id)
        REFERENCES payer_authorizations (organization_id, id, patient_id),
    CHECK ((status = 'IN_PROGRESS') = (ended_at IS NULL)),
    CHECK ((ended_at IS NULL) = (units IS NULL)),
    CHECK (ended_at IS NULL OR (ended_at > started_at AND ended_at - started_at <= interval '24 hours')),
    CHECK ((status = 'SIGNED') = (signed_at IS NOT NULL AND signed_by IS NOT NULL AND content_hash IS NOT NULL))
);
CREATE INDEX therapy_sessions_started_idx ON therapy_sessions (organization_id, started_at, id);
CREATE INDEX therapy_sessions_patient_idx ON therapy_sessions (organization_id, patient_id, started_at);
CREATE INDEX therapy_sessions_provider_idx ON therapy_sessions (organization_id, provider_id, started_at);

-- Who may write a session: only its rendering provider (the provider
-- record linked to the caller's login), only with a licence of the
-- clinic's state valid on the session's day (in the clinic's time zone),
-- only from a checked-in appointment; and once signed, nothing changes.
CREATE FUNCTION app.check_therapy_session() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    clinic organizations%ROWTYPE;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = 'SIGNED' THEN
        RAISE EXCEPTION 'SESSION_SIGNED' USING ERRCODE = 'CG409';
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.appointment_id, NEW.patient_id, NEW.provider_id, NEW.started_at, NEW.organization_id)
                            IS DISTINCT FROM (OLD.appointment_id, OLD.patient_id, OLD.provider_id, OLD.started_at, OLD.organization_id) THEN
        RAISE EXCEPTION 'SESSION_IDENTITY_FIXED' USING ERRCODE = 'CG409';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM providers p
                   WHERE p.organization_id = NEW.organization_id AND p.id = NEW.provider_id
                     AND p.user_id = app.current_user_id() AND p.deleted_at IS NULL) THEN
        RAISE EXCEPTION 'NOT_RENDERING_PROVIDER' USING ERRCODE = 'CG403';
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM appointments a
                       WHERE a.organization_id = NEW.organization_id AND a.id = NEW.appointment_id
                         AND a.status = 'CHECKED_IN' AND a.deleted_at IS NULL) THEN
            RAISE EXCEPTION 'APPOINTMENT_NOT_CHECKED_IN' USING ERRCODE = 'CG409';
        END IF;
        SELECT * INTO clinic FROM organizations o WHERE o.id = NEW.organization_id;
        IF NOT EXISTS (SELECT 1 FROM staff_credentials c
                       WHERE c.organization_id = NEW.organization_id AND c.provider_id = NEW.provider_id
                         AND c.kind = 'LICENSE' AND c.deleted_at IS NULL
                         AND c.issuing_state = clinic.billing_state
                         AND (NEW.started_at AT TIME ZONE clinic.timezone)::date
                             BETWEEN c.valid_from AND coalesce(c.valid_to, 'infinity'::date)) THEN
            RAISE EXCEPTION 'NO_VALID_LICENSE' USING ERRCODE = 'CG403';
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER therapy_sessions_check BEFORE INSERT OR UPDATE ON therapy_sessions
    FOR EACH ROW EXECUTE FUNCTION app.check_therapy_session();

-- The clinical event stream of a session: append-only. Corrections are new
-- events pointing at the one they correct; events recorded after the
-- session was signed are addenda (set here, not by the caller).
CREATE TABLE session_events (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    session_id      uuid NOT NULL,
    patient_id      uuid NOT NULL,
    event_type      text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    payload         jsonb NOT NULL DEFAULT '{}'
                    CHECK (jsonb_typeof(payload) = 'object' AND pg_column_size(payload) <= 16384),
    corrects_id     uuid,
    is_addendum     boolean NOT NULL DEFAULT false,
    recorded_by     uuid NOT NULL REFERENCES users (id) DEFAULT app.current_user_id(),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, session_id, id),
    FOREIGN KEY (organization_id, session_id, patient_id) REFERENCES therapy_sessions (organization_id, id, patient_id),
    FOREIGN KEY (organization_id, event_type) REFERENCES session_event_types (organization_id, code),
    -- A correction corrects an event of the same session.
    FOREIGN KEY (organization_id, session_id, corrects_id) REFERENCES session_events (organization_id, session_id, id)
);
CREATE INDEX session_events_session_idx ON session_events (organization_id, session_id, occurred_at, id);
CREATE INDEX session_events_payload_idx ON session_events USING gin (payload jsonb_path_ops);

CREATE FUNCTION app.forbid_event_rewrite() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'session events are append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER session_events_append_only BEFORE UPDATE OR DELETE ON session_events
    FOR EACH ROW EXECUTE FUNCTION app.forbid_event_rewrite();
CREATE TRIGGER session_events_no_truncate BEFORE TRUNCATE ON session_events
    FOR EACH STATEMENT EXECUTE FUNCTION app.forbid_event_rewrite();

-- An event is recorded by the session's rendering provider; after signing
-- it is an addendum. The session row is share-locked, so a signature
-- (which locks it for update first) sees every event recorded before it,
-- and every event after it is an addendum.
CREATE FUNCTION app.check_session_event() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_patient uuid;
    v_signed boolean;
    v_mine boolean;
BEGIN
    -- One lookup per event: the session (share-locked) and whether the
    -- caller is its rendering provider.
    SELECT t.patient_id, t.status = 'SIGNED', p.user_id IS NOT DISTINCT FROM app.current_user_id()
    INTO v_patient, v_signed, v_mine
    FROM therapy_sessions t
    JOIN providers p ON p.organization_id = t.organization_id AND p.id = t.provider_id
    WHERE t.organization_id = NEW.organization_id AND t.id = NEW.session_id
    FOR SHARE OF t;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such session' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT v_mine THEN
        RAISE EXCEPTION 'NOT_RENDERING_PROVIDER' USING ERRCODE = 'CG403';
    END IF;
    NEW.patient_id := v_patient;
    NEW.recorded_by := app.current_user_id();
    NEW.recorded_at := now();
    NEW.is_addendum := v_signed;
    RETURN NEW;
END
$$;
CREATE TRIGGER session_events_check BEFORE INSERT ON session_events
    FOR EACH ROW EXECUTE FUNCTION app.check_session_event();

-- What a signature covers: the session's billable facts and every event
-- recorded before it, in order, as one SHA-256.
CREATE FUNCTION app.session_content_hash(p_session uuid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT encode(sha256(convert_to(
        concat_ws(E'\n',
            (SELECT concat_ws('|', s.id, s.patient_id, s.provider_id, s.service_code,
                              array_to_string(s.modifiers, ','), s.place_of_service,
                              to_char(s.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
                              to_char(s.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), s.units)
             FROM therapy_sessions s WHERE s.id = p_session),
            (SELECT string_agg(concat_ws('|', e.id, e.event_type,
                                         to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
                                         e.payload::text, e.corrects_id, e.recorded_by),
                               E'\n' ORDER BY e.occurred_at, e.id)
             FROM session_events e WHERE e.session_id = p_session AND NOT e.is_addendum)),
        'UTF8')), 'hex')
$$;

-- Claims: signed sessions of one patient, coverage and rendering provider,
-- billed to the coverage's payer.
-- Each clinic numbers its own claims and interchanges (1, 2, …): a claim's
-- number is its 837P's interchange control number and, as CG + 9 digits,
-- its patient control number. Per clinic, so no clinic can count another's
-- claims; taken inside the claim's transaction, so a refused claim takes
-- no number.
CREATE TABLE claim_counters (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id),
    last_number     integer NOT NULL CHECK (last_number BETWEEN 1 AND 999999999)
);

CREATE TABLE claims (
    id                  uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id     uuid NOT NULL REFERENCES organizations (id),
    patient_id          uuid NOT NULL,
    insurance_id        uuid NOT NULL,
    provider_id         uuid NOT NULL,
    control_number      integer NOT NULL CHECK (control_number BETWEEN 1 AND 999999999),
    status              text NOT NULL DEFAULT 'DRAFT'
                        CHECK (status IN ('DRAFT', 'SUBMITTED', 'ACCEPTED', 'REJECTED', 'PAID', 'DENIED')),
    -- ICD-10-CM codes, principal first; lines point into this list (1-based).
    diagnosis_codes     text[] NOT NULL CHECK (cardinality(diagnosis_codes) BETWEEN 1 AND 12),
    total_charge_cents  bigint NOT NULL CHECK (total_charge_cents >= 0),
    paid_cents          bigint CHECK (paid_cents >= 0),
    payer_claim_number  text CHECK (length(btrim(payer_claim_number)) BETWEEN 1 AND 50),
    response_note       text CHECK (length(response_note) <= 1000),
    submitted_at        timestamptz,
    -- The 837P as submitted: what was sent stays what it was, whatever
    -- changes in the coverage, chart or clinic afterwards.
    submitted_x12       text,
    responded_at        timestamptz,
    created_by          uuid REFERENCES users (id) DEFAULT app.current_user_id(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, id, patient_id),
    CONSTRAINT claims_control_number_key UNIQUE (organization_id, control_number),
    FOREIGN KEY (organization_id, patient_id) REFERENCES patients (organization_id, id),
    FOREIGN KEY (organization_id, insurance_id, patient_id) REFERENCES patient_insurances (organization_id, id, patient_id),
    FOREIGN KEY (organization_id, provider_id) REFERENCES providers (organization_id, id),
    CHECK ((status = 'PAID') = (paid_cents IS NOT NULL)),
    CONSTRAINT claims_paid_check CHECK (paid_cents IS NULL OR paid_cents <= total_charge_cents),
    CHECK ((status = 'DRAFT') = (submitted_at IS NULL)),
    CHECK ((status = 'DRAFT') = (submitted_x12 IS NULL))
);
CREATE INDEX claims_created_idx ON claims (organization_id, created_at, id);
CREATE INDEX claims_patient_idx ON claims (organization_id, patient_id, created_at);

CREATE TABLE claim_lines (
    id                 uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id    uuid NOT NULL REFERENCES organizations (id),
    claim_id           uuid NOT NULL,
    patient_id         uuid NOT NULL,
    session_id         uuid NOT NULL,
    line_number        integer NOT NULL CHECK (line_number BETWEEN 1 AND 50),
    service_code       text NOT NULL CHECK (service_code ~ '^[A-Z0-9][0-9]{3}[0-9A-Z]$'),
    modifiers          text[] NOT NULL DEFAULT '{}' CHECK (cardinality(modifiers) <= 4),
    place_of_service   text NOT NULL CHECK (place_of_service ~ '^[0-9]{2}$'),
    service_date       date NOT NULL,
    units              integer NOT NULL CHECK (units > 0),
    charge_cents       bigint NOT NULL CHECK (charge_cents >= 0),
    diagnosis_pointers smallint[] NOT NULL
                       CHECK (cardinality(diagnosis_pointers) BETWEEN 1 AND 4 AND 1 <= ALL (diagnosis_pointers)
                              AND 12 >= ALL (diagnosis_pointers)),
    -- Set when the claim is rejected: the session may then be billed again.
    released_at        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    CONSTRAINT claim_lines_number_key UNIQUE (organization_id, claim_id, line_number),
    FOREIGN KEY (organization_id, claim_id, patient_id) REFERENCES claims (organization_id, id, patient_id),
    FOREIGN KEY (organization_id, session_id, patient_id) REFERENCES therapy_sessions (organization_id, id, patient_id)
);
-- A session is billed at most once (until a rejection releases it).
CREATE UNIQUE INDEX claim_lines_session_key ON claim_lines (organization_id, session_id) WHERE released_at IS NULL;

-- The claim lifecycle: DRAFT -> SUBMITTED -> ACCEPTED or REJECTED;
-- ACCEPTED -> PAID or DENIED. A claim's content is fixed once submitted.
CREATE FUNCTION app.check_claim_transition() RETURNS trigger
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
CREATE TRIGGER claims_transition BEFORE UPDATE ON claims
    FOR EACH ROW EXECUTE FUNCTION app.check_claim_transition();

-- A rejection releases the claim's sessions to be billed again (after the
-- update, so the lines' own check sees the claim REJECTED).
CREATE FUNCTION app.release_rejected_claim() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    UPDATE claim_lines SET released_at = now()
    WHERE organization_id = NEW.organization_id AND claim_id = NEW.id AND released_at IS NULL;
    RETURN NULL;
END
$$;
CREATE TRIGGER claims_release AFTER UPDATE OF status ON claims
    FOR EACH ROW WHEN (NEW.status = 'REJECTED' AND OLD.status <> 'REJECTED')
    EXECUTE FUNCTION app.release_rejected_claim();

-- Lines are written with their claim and never change, but for their
-- release, which only a rejected claim's lines get, once.
CREATE FUNCTION app.check_claim_line() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (to_jsonb(NEW) - 'released_at' - 'updated_at')
                            IS DISTINCT FROM (to_jsonb(OLD) - 'released_at' - 'updated_at') THEN
        RAISE EXCEPTION 'CLAIM_CONTENT_FIXED' USING ERRCODE = 'CG409';
    END IF;
    IF NEW.released_at IS DISTINCT FROM OLD.released_at AND (
           OLD.released_at IS NOT NULL
        OR NOT EXISTS (SELECT 1 FROM claims c
                       WHERE c.organization_id = NEW.organization_id AND c.id = NEW.claim_id
                         AND c.status = 'REJECTED')) THEN
        RAISE EXCEPTION 'CLAIM_CONTENT_FIXED' USING ERRCODE = 'CG409';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER claim_lines_fixed BEFORE UPDATE OR DELETE ON claim_lines
    FOR EACH ROW EXECUTE FUNCTION app.check_claim_line();

-- Touch, audit.
CREATE TRIGGER staff_credentials_touch BEFORE UPDATE ON staff_credentials FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER patient_insurances_touch BEFORE UPDATE ON patient_insurances FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER diagnoses_touch BEFORE UPDATE ON diagnoses FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER fee_schedule_entries_touch BEFORE UPDATE ON fee_schedule_entries FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER session_event_types_touch BEFORE UPDATE ON session_event_types FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER therapy_sessions_touch BEFORE UPDATE ON therapy_sessions FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER claims_touch BEFORE UPDATE ON claims FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER claim_lines_touch BEFORE UPDATE ON claim_lines FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

CREATE TRIGGER staff_credentials_audit AFTER INSERT OR UPDATE OR DELETE ON staff_credentials FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER patient_insurances_audit AFTER INSERT OR UPDATE OR DELETE ON patient_insurances FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER diagnoses_audit AFTER INSERT OR UPDATE OR DELETE ON diagnoses FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER fee_schedule_entries_audit AFTER INSERT OR UPDATE OR DELETE ON fee_schedule_entries FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER session_event_types_audit AFTER INSERT OR UPDATE OR DELETE ON session_event_types FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER therapy_sessions_audit AFTER INSERT OR UPDATE OR DELETE ON therapy_sessions FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER session_events_audit AFTER INSERT ON session_events FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER claims_audit AFTER INSERT OR UPDATE OR DELETE ON claims FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER claim_lines_audit AFTER INSERT OR UPDATE OR DELETE ON claim_lines FOR EACH ROW EXECUTE FUNCTION app.audit_row();

-- Isolation: the clinic predicate on every table; portal users reach a
-- patient's coverages and claims with billing access, their sessions,
-- events and diagnoses with clinical-notes access.
ALTER TABLE staff_credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE staff_credentials FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON staff_credentials
    USING (organization_id = app.current_tenant_id() AND app.is_staff())
    WITH CHECK (organization_id = app.current_tenant_id() AND (app.has_role('ADMIN') OR app.has_role('STAFF')));

ALTER TABLE patient_insurances ENABLE ROW LEVEL SECURITY;
ALTER TABLE patient_insurances FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON patient_insurances
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('billing'))))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.is_staff());

ALTER TABLE diagnoses ENABLE ROW LEVEL SECURITY;
ALTER TABLE diagnoses FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON diagnoses
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('notes'))))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.is_staff());

ALTER TABLE fee_schedule_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE fee_schedule_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON fee_schedule_entries
    USING (organization_id = app.current_tenant_id() AND app.is_staff())
    WITH CHECK (organization_id = app.current_tenant_id() AND (app.has_role('ADMIN') OR app.has_role('STAFF')));

ALTER TABLE session_event_types ENABLE ROW LEVEL SECURITY;
ALTER TABLE session_event_types FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON session_event_types
    USING (organization_id = app.current_tenant_id())
    WITH CHECK (organization_id = app.current_tenant_id() AND app.has_role('ADMIN'));
ALTER TABLE therapy_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE therapy_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON therapy_sessions
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('notes'))))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.has_role('PROVIDER'));

ALTER TABLE session_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE session_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON session_events
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('notes'))))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.has_role('PROVIDER')
                AND recorded_by = app.current_user_id());

ALTER TABLE claims ENABLE ROW LEVEL SECURITY;
ALTER TABLE claims FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON claims
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('billing'))))
    WITH CHECK (organization_id = app.current_tenant_id() AND (app.has_role('ADMIN') OR app.has_role('STAFF')));

ALTER TABLE claim_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE claim_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON claim_counters
    USING (organization_id = app.current_tenant_id() AND (app.has_role('ADMIN') OR app.has_role('STAFF')))
    WITH CHECK (organization_id = app.current_tenant_id() AND (app.has_role('ADMIN') OR app.has_role('STAFF')));

ALTER TABLE claim_lines ENABLE ROW LEVEL SECURITY;
ALTER TABLE claim_lines FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON claim_lines
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('billing'))))
    WITH CHECK (organization_id = app.current_tenant_id() AND (app.has_role('ADMIN') OR app.has_role('STAFF')));

-- The runtime role: no DELETE; session events only SELECT and INSERT.
GRANT SELECT, INSERT, UPDATE ON staff_credentials TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON patient_insurances TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON diagnoses TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON fee_schedule_entries TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON session_event_types TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON therapy_sessions TO caregate_app;
GRANT SELECT, INSERT ON session_events TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON claims TO caregate_app;
GRANT SELECT, INSERT ON claim_lines TO caregate_app;
GRANT UPDATE (released_at, updated_at) ON claim_lines TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON claim_counters TO caregate_app;

