-- The entry points of the API's guard: the only code that sets the request
-- context. Each runs once per request, as that request's first statement,
-- and sets every value transaction-locally (set_config(..., true)), so
-- nothing outlives the transaction on a pooled connection.

-- Login needs a user's password hash before anyone is known; this returns
-- exactly that for one email and nothing else.
CREATE FUNCTION app.login_lookup(p_email text)
RETURNS TABLE (user_id uuid, password_hash text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT u.id, u.password_hash FROM users u
    WHERE lower(u.email) = lower(p_email) AND u.deleted_at IS NULL
$$;

-- Sets the request id and client of a request that carries no session yet
-- (login), and, once a password has been verified, the user.
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

-- Verifies the session behind a token and sets the whole context of one
-- request in one round trip. Returns status 'OK' with the effective role, or
-- the reason the token is refused (and then sets no tenant).
--
-- The role comes from the database, not from the token: a membership
-- (ADMIN / PROVIDER / STAFF), or PORTAL for a patient or proxy, whose
-- reachable patients are loaded here into app.patients_<purpose>. A super
-- admin reaches a clinic only when p_impersonate is set, and is then
-- recorded as impersonator on every audit event.
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

-- The clinics a user may act in, and their role in each: staff memberships
-- first, then clinics where they hold a chart or a live proxy grant (role
-- PORTAL). For the owner (`caregate token`); the runtime role reaches it
-- only through app.user_organizations(), for itself.
CREATE FUNCTION app.organizations_of(p_user uuid)
RETURNS TABLE (organization_id uuid, role text)
LANGUAGE sql STABLE AS $$
    SELECT organization_id, role FROM (
        SELECT m.organization_id, m.role, 0 AS rank, m.created_at AS since
        FROM organization_memberships m
        JOIN organizations o ON o.id = m.organization_id AND o.deleted_at IS NULL
        WHERE m.user_id = p_user AND m.deleted_at IS NULL
        UNION ALL
        SELECT p.organization_id, 'PORTAL', 1, p.created_at
        FROM patients p
        WHERE p.user_id = p_user AND p.deleted_at IS NULL
        UNION ALL
        SELECT a.organization_id, 'PORTAL', 1, a.granted_at
        FROM proxy_assignments a
        WHERE a.proxy_user_id = p_user AND a.revoked_at IS NULL
          AND a.granted_at <= now() AND (a.expires_at IS NULL OR a.expires_at > now())
    ) AS reachable
    ORDER BY rank, since
$$;

-- The clinics of the current user (set by begin_login or begin_request).
CREATE FUNCTION app.user_organizations()
RETURNS TABLE (organization_id uuid, role text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT organization_id, role FROM app.organizations_of(app.current_user_id())
$$;

-- A user's id by email, for granting proxy access (the users table shows a
-- caller only their own row). Clinic ADMIN or STAFF only.
CREATE FUNCTION app.user_id_by_email(p_email text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT u.id FROM users u
    WHERE lower(u.email) = lower(p_email) AND u.deleted_at IS NULL
      AND app.current_tenant_id() IS NOT NULL AND (app.has_role('ADMIN') OR app.has_role('STAFF'))
$$;

-- Names of users connected to the current clinic (members, proxies, chart
-- holders), for showing who a proxy or an actor is.
CREATE FUNCTION app.clinic_user_names(p_ids uuid[])
RETURNS TABLE (id uuid, display_name text, email text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT u.id, u.display_name, u.email FROM users u
    WHERE u.id = ANY (p_ids) AND app.is_staff() AND (
        EXISTS (SELECT 1 FROM organization_memberships m
                WHERE m.user_id = u.id AND m.organization_id = app.current_tenant_id())
        OR EXISTS (SELECT 1 FROM proxy_assignments a
                   WHERE a.proxy_user_id = u.id AND a.organization_id = app.current_tenant_id())
        OR EXISTS (SELECT 1 FROM patients p
                   WHERE p.user_id = u.id AND p.organization_id = app.current_tenant_id()))
$$;

REVOKE ALL ON FUNCTION app.user_id_by_email(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.clinic_user_names(uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_id_by_email(text) TO caregate_app;
GRANT EXECUTE ON FUNCTION app.clinic_user_names(uuid[]) TO caregate_app;
REVOKE ALL ON FUNCTION app.organizations_of(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.user_organizations() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_organizations() TO caregate_app;
REVOKE ALL ON FUNCTION app.login_lookup(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.begin_request(uuid, uuid, uuid, text, inet, text, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.login_lookup(text) TO caregate_app;
GRANT EXECUTE ON FUNCTION app.begin_request(uuid, uuid, uuid, text, inet, text, integer, boolean) TO caregate_app;
