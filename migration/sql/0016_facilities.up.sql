-- Facilities (a clinic's sites) and who works at them; appointments and
-- therapy sessions take place at a facility; a staff member may be limited
-- to some facilities, and the request context carries that limit so the
-- policies (still sub-query-free) hide every other site's schedule.
-- Also: the DEA number's check digit, and GIN indexes on settings.

CREATE TABLE facilities (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    address_line1   text CHECK (length(btrim(address_line1)) BETWEEN 1 AND 55),
    address_line2   text CHECK (length(btrim(address_line2)) BETWEEN 1 AND 55),
    city            text CHECK (length(btrim(city)) BETWEEN 1 AND 30),
    state           text CHECK (state ~ '^[A-Z]{2}$'),
    postal_code     text CHECK (postal_code ~ '^[0-9]{5}([0-9]{4})?$'),
    -- IANA (checked by app.check_timezone); NULL: the clinic's.
    timezone        text,
    phone           text CHECK (phone ~ '^[0-9]{10}$'),
    is_active       boolean NOT NULL DEFAULT true,
    settings        jsonb NOT NULL DEFAULT '{}'
                    CHECK (jsonb_typeof(settings) = 'object' AND pg_column_size(settings) <= 16384),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    CONSTRAINT facilities_address_complete CHECK (
        (address_line1 IS NULL AND address_line2 IS NULL AND city IS NULL AND state IS NULL AND postal_code IS NULL)
        OR (address_line1 IS NOT NULL AND city IS NOT NULL AND state IS NOT NULL AND postal_code IS NOT NULL))
);
CREATE UNIQUE INDEX facilities_name_key ON facilities (organization_id, lower(btrim(name)));
CREATE INDEX facilities_settings_idx ON facilities USING gin (settings jsonb_path_ops);
CREATE INDEX organizations_settings_idx ON organizations USING gin (settings jsonb_path_ops);
CREATE TRIGGER facilities_timezone BEFORE INSERT OR UPDATE OF timezone ON facilities
    FOR EACH ROW EXECUTE FUNCTION app.check_timezone();

-- Who works at a facility: a staff member (their membership) or a provider,
-- in a role at that site, over a period. Removal is recorded, not deleted.
CREATE TABLE facility_staff (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    facility_id     uuid NOT NULL,
    membership_id   uuid,
    provider_id     uuid,
    role            text NOT NULL CHECK (role IN ('MANAGER', 'FRONT_DESK', 'CLINICIAN', 'BILLING')),
    starts_on       date NOT NULL,
    ends_on         date,
    assigned_by     uuid REFERENCES users (id) DEFAULT app.current_user_id(),
    removed_at      timestamptz,
    removed_by      uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, facility_id) REFERENCES facilities (organization_id, id),
    FOREIGN KEY (organization_id, membership_id) REFERENCES organization_memberships (organization_id, id),
    FOREIGN KEY (organization_id, provider_id) REFERENCES providers (organization_id, id),
    -- Exactly one of the two: a person with a login, or a provider.
    CHECK (num_nonnulls(membership_id, provider_id) = 1),
    CHECK (ends_on IS NULL OR ends_on >= starts_on),
    CHECK ((removed_at IS NULL) = (removed_by IS NULL))
);
-- One live assignment of a person (or provider) per facility.
CREATE UNIQUE INDEX facility_staff_member_key ON facility_staff (organization_id, facility_id, membership_id)
    WHERE removed_at IS NULL AND membership_id IS NOT NULL;
CREATE UNIQUE INDEX facility_staff_provider_key ON facility_staff (organization_id, facility_id, provider_id)
    WHERE removed_at IS NULL AND provider_id IS NOT NULL;

-- A staff member limited to some facilities (NULL: every facility).
ALTER TABLE organization_memberships
    ADD COLUMN facility_scope uuid[] CHECK (cardinality(facility_scope) BETWEEN 1 AND 100);
GRANT UPDATE (facility_scope) ON organization_memberships TO caregate_app;

-- Array elements cannot carry a foreign key: the scope names facilities of
-- the membership's own clinic, checked here.
CREATE FUNCTION app.check_facility_scope() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF NEW.facility_scope IS NOT NULL AND EXISTS (
        SELECT 1 FROM unnest(NEW.facility_scope) s(id)
        WHERE NOT EXISTS (SELECT 1 FROM facilities f
                          WHERE f.organization_id = NEW.organization_id AND f.id = s.id)) THEN
        RAISE EXCEPTION 'a facility scope names a facility of another clinic or none'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER organization_memberships_facility_scope
    BEFORE INSERT OR UPDATE OF facility_scope ON organization_memberships
    FOR EACH ROW EXECUTE FUNCTION app.check_facility_scope();

-- Where care takes place. A session and its events are at their
-- appointment's facility (copied by their triggers, so a policy can compare
-- the row's own column).
ALTER TABLE appointments ADD COLUMN facility_id uuid,
    ADD FOREIGN KEY (organization_id, facility_id) REFERENCES facilities (organization_id, id);
CREATE INDEX appointments_facility_idx ON appointments (organization_id, facility_id, starts_at)
    WHERE facility_id IS NOT NULL;
ALTER TABLE therapy_sessions ADD COLUMN facility_id uuid,
    ADD FOREIGN KEY (organization_id, facility_id) REFERENCES facilities (organization_id, id);
ALTER TABLE session_events ADD COLUMN facility_id uuid,
    ADD FOREIGN KEY (organization_id, facility_id) REFERENCES facilities (organization_id, id);

-- The facilities the request may see: NULL for every one (unscoped staff,
-- portal users), else the ids the guard put in the context.
CREATE FUNCTION app.facility_scope() RETURNS uuid[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('app.facilities', true), '')::uuid[]
$$;

-- Whether a row at facility `f` is within the request's facility scope (a
-- row at no facility is outside every limited scope).
CREATE FUNCTION app.in_facility_scope(f uuid) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT app.facility_scope() IS NULL OR coalesce(f = ANY (app.facility_scope()), false)
$$;

-- A session takes place at its appointment's facility.
CREATE FUNCTION app.session_facility() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF TG_TABLE_NAME = 'therapy_sessions' THEN
        SELECT a.facility_id INTO NEW.facility_id FROM appointments a
        WHERE a.organization_id = NEW.organization_id AND a.id = NEW.appointment_id;
    ELSE
        SELECT t.facility_id INTO NEW.facility_id FROM therapy_sessions t
        WHERE t.organization_id = NEW.organization_id AND t.id = NEW.session_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER therapy_sessions_facility BEFORE INSERT ON therapy_sessions
    FOR EACH ROW EXECUTE FUNCTION app.session_facility();
-- Named to fire after session_events_check (triggers fire by name).
CREATE TRIGGER session_events_zfacility BEFORE INSERT ON session_events
    FOR EACH ROW EXECUTE FUNCTION app.session_facility();

ALTER TABLE facilities ENABLE ROW LEVEL SECURITY;
ALTER TABLE facilities FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON facilities
    USING (organization_id = app.current_tenant_id() AND app.in_facility_scope(id))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.has_role('ADMIN')
                AND app.facility_scope() IS NULL);

ALTER TABLE facility_staff ENABLE ROW LEVEL SECURITY;
ALTER TABLE facility_staff FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON facility_staff
    USING (organization_id = app.current_tenant_id() AND app.is_staff()
           AND app.in_facility_scope(facility_id))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.has_role('ADMIN')
                AND app.facility_scope() IS NULL);

DROP POLICY tenant_isolation ON appointments;
CREATE POLICY tenant_isolation ON appointments
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('appointments')))
           AND app.in_facility_scope(facility_id))
    WITH CHECK (organization_id = app.current_tenant_id()
                AND (app.is_staff() OR patient_id = ANY (app.patient_scope('schedule')))
                AND app.in_facility_scope(facility_id));

DROP POLICY tenant_isolation ON therapy_sessions;
CREATE POLICY tenant_isolation ON therapy_sessions
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('notes')))
           AND app.in_facility_scope(facility_id))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.has_role('PROVIDER')
                AND app.in_facility_scope(facility_id));

DROP POLICY tenant_isolation ON session_events;
CREATE POLICY tenant_isolation ON session_events
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('notes')))
           AND app.in_facility_scope(facility_id))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.has_role('PROVIDER')
                AND recorded_by = app.current_user_id()
                AND app.in_facility_scope(facility_id));

-- Billing and the audit trail are the whole clinic's: staff limited to some
-- facilities see neither (a claim's lines and an audit event would show
-- other sites' visits).
DROP POLICY tenant_isolation ON claims;
CREATE POLICY tenant_isolation ON claims
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('billing')))
           AND app.facility_scope() IS NULL)
    WITH CHECK (organization_id = app.current_tenant_id() AND (app.has_role('ADMIN') OR app.has_role('STAFF'))
                AND app.facility_scope() IS NULL);
DROP POLICY tenant_isolation ON claim_lines;
CREATE POLICY tenant_isolation ON claim_lines
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('billing')))
           AND app.facility_scope() IS NULL)
    WITH CHECK (organization_id = app.current_tenant_id() AND (app.has_role('ADMIN') OR app.has_role('STAFF'))
                AND app.facility_scope() IS NULL);
DROP POLICY tenant_isolation ON claim_counters;
CREATE POLICY tenant_isolation ON claim_counters
    USING (organization_id = app.current_tenant_id() AND (app.has_role('ADMIN') OR app.has_role('STAFF'))
           AND app.facility_scope() IS NULL)
    WITH CHECK (organization_id = app.current_tenant_id() AND (app.has_role('ADMIN') OR app.has_role('STAFF'))
                AND app.facility_scope() IS NULL);
DROP POLICY tenant_isolation ON audit_events;
CREATE POLICY tenant_isolation ON audit_events
    USING (organization_id = app.current_tenant_id() AND app.has_role('ADMIN')
           AND app.facility_scope() IS NULL)
    WITH CHECK (organization_id IS NOT DISTINCT FROM app.current_tenant_id());

GRANT SELECT, INSERT, UPDATE ON facilities, facility_staff TO caregate_app;

CREATE TRIGGER facilities_touch BEFORE UPDATE ON facilities FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER facility_staff_touch BEFORE UPDATE ON facility_staff FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER facilities_audit AFTER INSERT OR UPDATE OR DELETE ON facilities FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER facility_staff_audit AFTER INSERT OR UPDATE OR DELETE ON facility_staff FOR EACH ROW EXECUTE FUNCTION app.audit_row();

-- A DEA number's check digit: the last digit of (d1 + d3 + d5) +
-- 2 × (d2 + d4 + d6) is d7. Existing rows are not re-checked here
-- (NOT VALID; `caregate check` reports them); every new or changed number is.
CREATE FUNCTION app.is_valid_dea(dea text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT dea ~ '^[A-Z][A-Z9][0-9]{7}$'
       AND ((substr(dea, 3, 1)::int + substr(dea, 5, 1)::int + substr(dea, 7, 1)::int)
            + 2 * (substr(dea, 4, 1)::int + substr(dea, 6, 1)::int + substr(dea, 8, 1)::int)) % 10
           = substr(dea, 9, 1)::int
$$;
ALTER TABLE providers ADD CONSTRAINT providers_dea_check_digit
    CHECK (dea_number IS NULL OR app.is_valid_dea(dea_number)) NOT VALID;

-- The request context gains the facility scope.
DROP FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean);
CREATE FUNCTION app.begin_request(
    p_request_id text, p_ip inet, p_user_agent text,
    p_user uuid, p_tenant uuid, p_session uuid, p_idle_minutes integer, p_impersonate boolean
)
RETURNS TABLE (role text, is_super_admin boolean, consent_required boolean, portal_scope jsonb,
               facility_scope uuid[])
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    s user_sessions%ROWTYPE;
    u users%ROWTYPE;
    m_role text;
    m_sites uuid[];
    own uuid[];
    scope record;
    scope_doc jsonb;
    refusal text;
BEGIN
    IF app.setting('app.user_id') IS NOT NULL
       OR (app.setting('app.request_id') IS NOT NULL
           AND (p_user IS NULL OR app.setting('app.request_id') IS DISTINCT FROM p_request_id)) THEN
        RAISE EXCEPTION 'the request context is already set in this transaction'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;

    PERFORM set_config('app.request_id', coalesce(p_request_id, ''), true),
            set_config('app.ip', coalesce(p_ip::text, ''), true),
            set_config('app.user_agent', coalesce(p_user_agent, ''), true),
            set_config('app.user_id', '', true),
            set_config('app.tenant_id', '', true),
            set_config('app.role', '', true),
            set_config('app.session_id', '', true),
            set_config('app.is_super_admin', '', true),
            set_config('app.impersonator_id', '', true),
            set_config('app.patients_profile', '', true),
            set_config('app.patients_appointments', '', true),
            set_config('app.patients_schedule', '', true),
            set_config('app.patients_notes', '', true),
            set_config('app.patients_billing', '', true),
            set_config('app.patients_message', '', true),
            set_config('app.facilities', '', true);
    IF p_user IS NULL THEN
        RETURN QUERY SELECT NULL::text, false, false, NULL::jsonb, NULL::uuid[];
        RETURN;
    END IF;

    SELECT * INTO s FROM user_sessions WHERE id = p_session AND user_id = p_user;
    SELECT * INTO u FROM users WHERE id = p_user AND deleted_at IS NULL;
    -- A session acts in one clinic at a time: after switchOrganization, a
    -- token for the previous clinic no longer works, and a super admin's
    -- impersonation stays in the clinic named at login.
    refusal := CASE
        WHEN s.id IS NULL OR s.organization_id IS DISTINCT FROM p_tenant THEN 'SESSION_UNKNOWN'
        WHEN s.revoked_at IS NOT NULL THEN 'SESSION_REVOKED'
        WHEN s.expires_at <= now() THEN 'SESSION_EXPIRED'
        WHEN s.last_active_at < now() - make_interval(mins => p_idle_minutes) THEN 'SESSION_IDLE'
        WHEN u.id IS NULL THEN 'USER_DISABLED'
    END;
    IF refusal IS NOT NULL THEN
        RAISE EXCEPTION '%', refusal USING ERRCODE = 'invalid_authorization_specification';
    END IF;

    IF p_impersonate THEN
        IF NOT u.is_super_admin
           OR NOT EXISTS (SELECT 1 FROM organizations o WHERE o.id = p_tenant AND o.deleted_at IS NULL) THEN
            RAISE EXCEPTION 'NOT_A_MEMBER' USING ERRCODE = 'invalid_authorization_specification';
        END IF;
        m_role := 'ADMIN';
    ELSE
        SELECT m.role, m.facility_scope INTO m_role, m_sites FROM organization_memberships m
        WHERE m.organization_id = p_tenant AND m.user_id = p_user AND m.deleted_at IS NULL;
    END IF;

    IF m_role IS NULL THEN
        SELECT coalesce(array_agg(p.id), '{}') INTO own FROM patients p
        WHERE p.organization_id = p_tenant AND p.user_id = p_user AND p.deleted_at IS NULL;

        SELECT coalesce(array_agg(a.patient_id) FILTER (WHERE a.can_view_profile), '{}') AS profile,
               coalesce(array_agg(a.patient_id) FILTER (WHERE a.can_view_appointments), '{}') AS appointments,
               coalesce(array_agg(a.patient_id) FILTER (WHERE a.can_schedule_appointments), '{}') AS schedule,
               coalesce(array_agg(a.patient_id) FILTER (WHERE a.can_view_clinical_notes), '{}') AS notes,
               coalesce(array_agg(a.patient_id) FILTER (WHERE a.can_view_billing), '{}') AS billing,
               coalesce(array_agg(a.patient_id) FILTER (WHERE a.can_message_providers), '{}') AS message,
               count(*) AS grants
        INTO scope
        FROM proxy_assignments a
        JOIN patients p ON p.organization_id = a.organization_id AND p.id = a.patient_id
        WHERE a.organization_id = p_tenant AND a.proxy_user_id = p_user
          AND a.revoked_at IS NULL AND a.granted_at <= now()
          AND (a.expires_at IS NULL OR a.expires_at > now())
          AND p.deleted_at IS NULL;

        IF cardinality(own) = 0 AND scope.grants = 0
           AND NOT app.has_pending_invitation(p_user, p_tenant) THEN
            RAISE EXCEPTION 'NOT_A_MEMBER' USING ERRCODE = 'invalid_authorization_specification';
        END IF;
        m_role := 'PORTAL';
        scope_doc := jsonb_build_object(
            'profile', own || scope.profile, 'appointments', own || scope.appointments,
            'schedule', own || scope.schedule, 'notes', own || scope.notes,
            'billing', own || scope.billing, 'message', own || scope.message);
        PERFORM set_config('app.patients_profile', (own || scope.profile)::text, true),
                set_config('app.patients_appointments', (own || scope.appointments)::text, true),
                set_config('app.patients_schedule', (own || scope.schedule)::text, true),
                set_config('app.patients_notes', (own || scope.notes)::text, true),
                set_config('app.patients_billing', (own || scope.billing)::text, true),
                set_config('app.patients_message', (own || scope.message)::text, true);
    END IF;

    -- Activity is recorded at most every 30 s, so concurrent requests of one
    -- session do not queue on its row.
    UPDATE user_sessions SET last_active_at = now()
    WHERE id = p_session AND last_active_at < now() - interval '30 seconds';

    PERFORM set_config('app.user_id', p_user::text, true),
            set_config('app.is_super_admin', u.is_super_admin::text, true),
            set_config('app.impersonator_id', CASE WHEN p_impersonate THEN p_user::text ELSE '' END, true),
            set_config('app.session_id', p_session::text, true),
            set_config('app.tenant_id', p_tenant::text, true),
            set_config('app.role', m_role, true),
            set_config('app.facilities', coalesce(m_sites::text, ''), true);

    RETURN QUERY SELECT m_role, u.is_super_admin,
        EXISTS (SELECT 1 FROM consent_documents d
                WHERE d.kind = 'HIPAA_NOTICE' AND d.is_active
                  AND NOT EXISTS (SELECT 1 FROM user_consents c
                                  WHERE c.user_id = p_user AND c.document_id = d.id)),
        scope_doc, m_sites;
END
$$;
ALTER FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean) TO caregate_app;
