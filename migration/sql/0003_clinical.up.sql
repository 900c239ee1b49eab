-- A clinic's providers and its patient charts.
--
-- Every table carries organization_id itself, and every reference inside a
-- tenant is a composite foreign key that includes it, so a row of one clinic
-- can never point at a row of another, whatever the application does.

CREATE TABLE providers (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    user_id         uuid REFERENCES users (id),
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    npi             text NOT NULL CHECK (app.is_valid_npi(npi)),
    dea_number      text CHECK (dea_number ~ '^[A-Z][A-Z9][0-9]{7}$'),
    specialty       text CHECK (length(specialty) <= 200),
    state_licenses  jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(state_licenses) = 'array'),
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    UNIQUE (organization_id, id)
);
CREATE UNIQUE INDEX providers_npi_key
    ON providers (organization_id, npi) WHERE is_active AND deleted_at IS NULL;
CREATE INDEX providers_name_idx ON providers (organization_id, name, id);
CREATE INDEX providers_name_trgm_idx ON providers USING gin (lower(name) gin_trgm_ops);

-- Each clinic keeps its own chart of a person: the same user may hold charts
-- at several clinics, and nothing one clinic writes is visible to another.
CREATE TABLE patients (
    id                    uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id       uuid NOT NULL REFERENCES organizations (id),
    user_id               uuid REFERENCES users (id),
    medical_record_number text NOT NULL CHECK (medical_record_number ~ '^[A-Za-z0-9-]{1,32}$'),
    first_name            text NOT NULL CHECK (length(btrim(first_name)) BETWEEN 1 AND 100),
    last_name             text NOT NULL CHECK (length(btrim(last_name)) BETWEEN 1 AND 100),
    date_of_birth         date NOT NULL CHECK (date_of_birth >= DATE '1880-01-01'),
    legal_sex             text NOT NULL CHECK (legal_sex IN ('FEMALE', 'MALE', 'OTHER', 'UNKNOWN')),
    status                text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'DISCHARGED')),
    enrolled_at           timestamptz NOT NULL DEFAULT now(),
    discharged_at         timestamptz,
    search_name           text GENERATED ALWAYS AS (lower(first_name || ' ' || last_name)) STORED,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz,
    UNIQUE (organization_id, id),
    CHECK ((status = 'DISCHARGED') = (discharged_at IS NOT NULL))
);
CREATE UNIQUE INDEX patients_mrn_key ON patients (organization_id, medical_record_number);
CREATE INDEX patients_name_idx ON patients (organization_id, last_name, first_name, id);
CREATE INDEX patients_user_idx ON patients (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX patients_search_trgm_idx ON patients USING gin (search_name gin_trgm_ops);

CREATE TABLE contact_methods (
    id                    uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id       uuid NOT NULL REFERENCES organizations (id),
    patient_id            uuid NOT NULL,
    type                  text NOT NULL CHECK (type IN ('MOBILE', 'HOME', 'WORK', 'EMAIL')),
    value                 text NOT NULL CHECK (length(btrim(value)) BETWEEN 1 AND 320),
    is_primary            boolean NOT NULL DEFAULT false,
    -- PHI may be left on a voicemail only where the patient said so.
    is_safe_for_voicemail boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz,
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, patient_id) REFERENCES patients (organization_id, id)
);
CREATE INDEX contact_methods_patient_idx ON contact_methods (organization_id, patient_id);
CREATE UNIQUE INDEX contact_methods_primary_key
    ON contact_methods (organization_id, patient_id) WHERE is_primary AND deleted_at IS NULL;

CREATE TABLE care_team_assignments (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    patient_id      uuid NOT NULL,
    provider_id     uuid NOT NULL,
    role            text NOT NULL CHECK (role IN ('PRIMARY', 'SPECIALIST', 'CONSULTANT')),
    assigned_at     timestamptz NOT NULL DEFAULT now(),
    assigned_by     uuid REFERENCES users (id),
    removed_at      timestamptz,
    removed_by      uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, patient_id) REFERENCES patients (organization_id, id),
    FOREIGN KEY (organization_id, provider_id) REFERENCES providers (organization_id, id),
    CHECK (removed_at IS NULL OR removed_at >= assigned_at)
);
-- One active PRIMARY per patient per clinic; a removed one does not count.
CREATE UNIQUE INDEX care_team_one_primary_key
    ON care_team_assignments (organization_id, patient_id)
    WHERE role = 'PRIMARY' AND removed_at IS NULL;
-- A provider is on a patient's team at most once at a time.
CREATE UNIQUE INDEX care_team_one_assignment_key
    ON care_team_assignments (organization_id, patient_id, provider_id)
    WHERE removed_at IS NULL;
CREATE INDEX care_team_provider_idx ON care_team_assignments (organization_id, provider_id);

-- A proxy (parent, guardian) and what they may do for one patient.
CREATE TABLE proxy_assignments (
    id                        uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id           uuid NOT NULL REFERENCES organizations (id),
    patient_id                uuid NOT NULL,
    proxy_user_id             uuid NOT NULL REFERENCES users (id),
    relationship              text NOT NULL DEFAULT 'GUARDIAN'
                              CHECK (relationship IN ('PARENT', 'GUARDIAN', 'CAREGIVER', 'OTHER')),
    can_view_profile          boolean NOT NULL DEFAULT false,
    can_view_appointments     boolean NOT NULL DEFAULT false,
    can_schedule_appointments boolean NOT NULL DEFAULT false,
    can_view_clinical_notes   boolean NOT NULL DEFAULT false,
    can_view_billing          boolean NOT NULL DEFAULT false,
    can_message_providers     boolean NOT NULL DEFAULT false,
    granted_at                timestamptz NOT NULL DEFAULT now(),
    granted_by                uuid REFERENCES users (id),
    expires_at                timestamptz,
    revoked_at                timestamptz,
    revoked_by                uuid REFERENCES users (id),
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, patient_id) REFERENCES patients (organization_id, id),
    CHECK (expires_at IS NULL OR expires_at > granted_at)
);
CREATE UNIQUE INDEX proxy_assignments_active_key
    ON proxy_assignments (organization_id, patient_id, proxy_user_id) WHERE revoked_at IS NULL;
CREATE INDEX proxy_assignments_proxy_idx ON proxy_assignments (organization_id, proxy_user_id);

CREATE TRIGGER providers_touch BEFORE UPDATE ON providers
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER patients_touch BEFORE UPDATE ON patients
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER contact_methods_touch BEFORE UPDATE ON contact_methods
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER care_team_assignments_touch BEFORE UPDATE ON care_team_assignments
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER proxy_assignments_touch BEFORE UPDATE ON proxy_assignments
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
