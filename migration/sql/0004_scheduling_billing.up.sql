-- Appointments and payer authorizations.

CREATE TABLE appointments (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    patient_id      uuid NOT NULL,
    provider_id     uuid NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    type            text NOT NULL DEFAULT 'IN_PERSON' CHECK (type IN ('IN_PERSON', 'TELEHEALTH', 'PHONE')),
    reason          text CHECK (length(reason) <= 1000),
    status          text NOT NULL DEFAULT 'SCHEDULED'
                    CHECK (status IN ('SCHEDULED', 'CONFIRMED', 'CHECKED_IN', 'COMPLETED', 'CANCELLED', 'NO_SHOW')),
    cancel_reason   text CHECK (length(cancel_reason) <= 1000),
    created_by      uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, patient_id) REFERENCES patients (organization_id, id),
    FOREIGN KEY (organization_id, provider_id) REFERENCES providers (organization_id, id),
    CHECK (ends_at > starts_at AND ends_at - starts_at <= interval '24 hours'),
    CHECK (status <> 'CANCELLED' OR cancel_reason IS NOT NULL),
    -- A provider cannot be in two places at once: no overlapping live bookings.
    CONSTRAINT appointments_no_double_booking EXCLUDE USING gist (
        organization_id WITH =,
        provider_id WITH =,
        tstzrange(starts_at, ends_at, '[)') WITH &&
    ) WHERE (status <> 'CANCELLED' AND deleted_at IS NULL)
);
CREATE INDEX appointments_provider_idx ON appointments (organization_id, provider_id, starts_at);
CREATE INDEX appointments_patient_idx ON appointments (organization_id, patient_id, starts_at);
CREATE INDEX appointments_starts_idx ON appointments (organization_id, starts_at, id);

CREATE TABLE payer_authorizations (
    id                   uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id      uuid NOT NULL REFERENCES organizations (id),
    patient_id           uuid NOT NULL,
    payer_name           text NOT NULL CHECK (length(btrim(payer_name)) BETWEEN 1 AND 200),
    authorization_number text NOT NULL CHECK (length(btrim(authorization_number)) BETWEEN 1 AND 64),
    service_code         text NOT NULL CHECK (length(btrim(service_code)) BETWEEN 1 AND 32),
    total_units          integer NOT NULL CHECK (total_units > 0),
    used_units           integer NOT NULL DEFAULT 0,
    valid_from           date NOT NULL,
    valid_to             date NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz,
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, patient_id) REFERENCES patients (organization_id, id),
    CONSTRAINT payer_authorizations_units_check CHECK (used_units >= 0 AND used_units <= total_units),
    CONSTRAINT payer_authorizations_validity_check CHECK (valid_to >= valid_from)
);
CREATE UNIQUE INDEX payer_authorizations_number_key
    ON payer_authorizations (organization_id, payer_name, authorization_number) WHERE deleted_at IS NULL;
CREATE INDEX payer_authorizations_patient_idx ON payer_authorizations (organization_id, patient_id);

CREATE TRIGGER appointments_touch BEFORE UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER payer_authorizations_touch BEFORE UPDATE ON payer_authorizations
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
