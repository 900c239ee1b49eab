-- Back to the functions of 0009, owned by the migrating role again. The
-- cluster-wide role caregate_definer stays (other databases may use it);
-- it keeps no rights here.

DROP FUNCTION app.reserve_login_attempt(text, text, integer, integer);
DROP FUNCTION app.refund_login_attempt(text, text);
DROP TABLE login_attempts;
DROP FUNCTION app.reachable_organization(uuid);
DROP FUNCTION app.open_session(uuid, uuid, integer, inet, text);
DROP FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean);
DROP FUNCTION app.has_pending_invitation(uuid, uuid);
DROP FUNCTION app.purge_expired_idempotency_keys(text);
REVOKE ALL ON idempotency_keys FROM caregate_definer;

CREATE FUNCTION app.begin_anonymous(p_request_id text, p_ip inet, p_user_agent text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('app.request_id', coalesce(p_request_id, ''), true),
            set_config('app.ip', coalesce(p_ip::text, ''), true),
            set_config('app.user_agent', coalesce(p_user_agent, ''), true);
END
$$;

CREATE FUNCTION app.begin_login(p_user uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('app.user_id', p_user::text, true);
END
$$;

CREATE FUNCTION app.begin_request(
    p_user uuid, p_tenant uuid, p_session uuid, p_request_id text,
    p_ip inet, p_user_agent text, p_idle_minutes integer, p_impersonate boolean
)
RETURNS TABLE (status text, role text, is_super_admin boolean, consent_required boolean, portal_scope jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    s user_sessions%ROWTYPE;
    u users%ROWTYPE;
    m_role text;
    own uuid[];
    scope record;
    scope_doc jsonb;
BEGIN
    PERFORM set_config('app.request_id', coalesce(p_request_id, ''), true),
            set_config('app.ip', coalesce(p_ip::text, ''), true),
            set_config('app.user_agent', coalesce(p_user_agent, ''), true);

    SELECT * INTO s FROM user_sessions WHERE id = p_session AND user_id = p_user;
    -- A session acts in one clinic at a time: after switchOrganization, a
    -- token for the previous clinic no longer works, and a super admin's
    -- impersonation stays in the clinic named at login.
    IF NOT FOUND OR s.organization_id IS DISTINCT FROM p_tenant THEN
        RETURN QUERY SELECT 'SESSION_UNKNOWN', NULL::text, false, false, NULL::jsonb; RETURN;
    ELSIF s.revoked_at IS NOT NULL THEN
        RETURN QUERY SELECT 'SESSION_REVOKED', NULL::text, false, false, NULL::jsonb; RETURN;
    ELSIF s.expires_at <= now() THEN
        RETURN QUERY SELECT 'SESSION_EXPIRED', NULL::text, false, false, NULL::jsonb; RETURN;
    ELSIF s.last_active_at < now() - make_interval(mins => p_idle_minutes) THEN
        RETURN QUERY SELECT 'SESSION_IDLE', NULL::text, false, false, NULL::jsonb; RETURN;
    END IF;

    SELECT * INTO u FROM users WHERE id = p_user AND deleted_at IS NULL;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'USER_DISABLED', NULL::text, false, false, NULL::jsonb; RETURN;
    END IF;

    -- Activity is recorded at most every 30 s, so concurrent requests of one
    -- session do not queue on its row.
    UPDATE user_sessions SET last_active_at = now()
    WHERE id = p_session AND last_active_at < now() - interval '30 seconds';

    PERFORM set_config('app.user_id', p_user::text, true),
            set_config('app.is_super_admin', u.is_super_admin::text, true);

    IF p_impersonate THEN
        IF NOT u.is_super_admin OR NOT EXISTS (SELECT 1 FROM organizations WHERE id = p_tenant AND deleted_at IS NULL) THEN
            RETURN QUERY SELECT 'NOT_A_MEMBER', NULL::text, u.is_super_admin, false, NULL::jsonb; RETURN;
        END IF;
        m_role := 'ADMIN';
        PERFORM set_config('app.impersonator_id', p_user::text, true);
    ELSE
        SELECT m.role INTO m_role FROM organization_memberships m
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

        IF cardinality(own) = 0 AND scope.grants = 0 THEN
            RETURN QUERY SELECT 'NOT_A_MEMBER', NULL::text, u.is_super_admin, false, NULL::jsonb; RETURN;
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

    PERFORM set_config('app.tenant_id', p_tenant::text, true),
            set_config('app.role', m_role, true);

    RETURN QUERY SELECT 'OK', m_role, u.is_super_admin,
        EXISTS (SELECT 1 FROM consent_documents d
                WHERE d.kind = 'HIPAA_NOTICE' AND d.is_active
                  AND NOT EXISTS (SELECT 1 FROM user_consents c
                                  WHERE c.user_id = p_user AND c.document_id = d.id)),
        scope_doc;
END
$$;
REVOKE ALL ON FUNCTION app.begin_request(uuid, uuid, uuid, text, inet, text, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.begin_request(uuid, uuid, uuid, text, inet, text, integer, boolean) TO caregate_app;

DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['app.audit_row()', 'app.record_event(text, text, uuid[], jsonb)',
                             'app.maintain_count()', 'app.login_lookup(text)',
                             'app.user_organizations()', 'app.user_id_by_email(text)',
                             'app.clinic_user_names(uuid[])'] LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO %I', f, current_user);
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, public', f);
    END LOOP;
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
END
$$;

REVOKE ALL ON FUNCTION app.organizations_of(uuid) FROM caregate_definer;
REVOKE ALL ON users, user_sessions, organizations, organization_memberships, patients,
    proxy_assignments, consent_documents, user_consents, audit_events FROM caregate_definer;
REVOKE USAGE ON SCHEMA app, public FROM caregate_definer;
