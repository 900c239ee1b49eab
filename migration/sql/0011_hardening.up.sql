-- Hardening of everything that runs with more rights than the caller.
--
-- 1. SECURITY DEFINER functions run as caregate_definer: NOLOGIN,
--    NOSUPERUSER, with BYPASSRLS (they read across the request context by
--    design, e.g. the login lookup) and only the table rights they use —
--    never as the superuser that migrates. Their search_path lists pg_temp
--    last: otherwise PostgreSQL searches pg_temp first for tables, and any
--    role that may create temporary objects could shadow `users` and run
--    code as the function's owner.
-- 2. Nobody but the owner may create anything: no TEMP on the database, no
--    CREATE on any schema, for PUBLIC and the runtime role.
-- 3. One function sets a request's context, once per transaction, all of it
--    (settings it does not set are cleared), and raises on refusal rather
--    than returning a status after setting half of it.
-- 4. Login attempts are counted in the database (shared by every replica),
--    reserved before the password is checked.

DO $$
BEGIN
    CREATE ROLE caregate_definer NOLOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
EXCEPTION WHEN duplicate_object THEN
    NULL;
END
$$;
ALTER ROLE caregate_definer NOLOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;

GRANT USAGE ON SCHEMA app, public TO caregate_definer;
GRANT SELECT ON users, user_sessions, organizations, organization_memberships, patients,
    proxy_assignments, consent_documents, user_consents TO caregate_definer;
GRANT INSERT, UPDATE (last_active_at) ON user_sessions TO caregate_definer;
GRANT UPDATE (member_count, patient_count) ON organizations TO caregate_definer;
GRANT INSERT ON audit_events TO caregate_definer;
GRANT EXECUTE ON FUNCTION app.organizations_of(uuid) TO caregate_definer;

-- 2. Nothing to create for anyone but the owner.
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('REVOKE TEMPORARY, CREATE ON DATABASE %I FROM caregate_app', current_database());
END
$$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public, app FROM caregate_app;

-- 3. The request context.

-- Whether the user holds a pending proxy invitation at the clinic (which
-- lets them in with an empty scope to accept it). None exist yet; the
-- invitations migration gives this its body.
CREATE FUNCTION app.has_pending_invitation(p_user uuid, p_tenant uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT false $$;
REVOKE ALL ON FUNCTION app.has_pending_invitation(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.has_pending_invitation(uuid, uuid) TO caregate_definer;
DROP FUNCTION app.begin_request(uuid, uuid, uuid, text, inet, text, integer, boolean);
DROP FUNCTION app.begin_login(uuid);
DROP FUNCTION app.begin_anonymous(text, inet, text);

-- Sets the context of one request: who (a session's user, in one clinic,
-- with the role the database gives them) or nobody yet (p_user NULL: an
-- anonymous request, which may only log in), and the request's id and
-- client for the audit trail. Every app.* setting is written, so nothing of
-- an earlier setting survives.
--
-- It runs once per transaction. The one exception is the login of an
-- anonymous request: once the password is verified and a session opened,
-- the same request becomes that user (same request id). A second context
-- for a user, or an anonymous one over another, is refused: audit events
-- are always written under the context that caused them.
--
-- A refused session raises SQLSTATE 28000 with the reason as message
-- (SESSION_UNKNOWN, SESSION_REVOKED, SESSION_EXPIRED, SESSION_IDLE,
-- USER_DISABLED, NOT_A_MEMBER); the transaction is then aborted, so no part
-- of the context is ever used.
CREATE FUNCTION app.begin_request(
    p_request_id text, p_ip inet, p_user_agent text,
    p_user uuid, p_tenant uuid, p_session uuid, p_idle_minutes integer, p_impersonate boolean
)
RETURNS TABLE (role text, is_super_admin boolean, consent_required boolean, portal_scope jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    s user_sessions%ROWTYPE;
    u users%ROWTYPE;
    m_role text;
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
            set_config('app.patients_message', '', true);
    IF p_user IS NULL THEN
        RETURN QUERY SELECT NULL::text, false, false, NULL::jsonb;
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
            set_config('app.role', m_role, true);

    RETURN QUERY SELECT m_role, u.is_super_admin,
        EXISTS (SELECT 1 FROM consent_documents d
                WHERE d.kind = 'HIPAA_NOTICE' AND d.is_active
                  AND NOT EXISTS (SELECT 1 FROM user_consents c
                                  WHERE c.user_id = p_user AND c.document_id = d.id)),
        scope_doc;
END
$$;
ALTER FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean) TO caregate_app;

-- Opens a session for a user whose password the API has just verified, in
-- the clinic they named (or their first), and says which: status OK, or
-- NO_ACCESS (no such clinic for them), or ORGANIZATION_REQUIRED (a super
-- admin belongs to no clinic and must name one: an audited impersonation).
CREATE FUNCTION app.open_session(
    p_user uuid, p_organization uuid, p_ttl_minutes integer, p_ip inet, p_user_agent text
)
RETURNS TABLE (status text, session_id uuid, organization_id uuid, expires_at timestamptz,
               impersonate boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    super boolean;
    chosen uuid;
    imp boolean := false;
    sid uuid := app.new_ulid();
    ends timestamptz := now() + make_interval(mins => p_ttl_minutes);
BEGIN
    SELECT u.is_super_admin INTO super FROM users u WHERE u.id = p_user AND u.deleted_at IS NULL;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'NO_ACCESS', NULL::uuid, NULL::uuid, NULL::timestamptz, false;
        RETURN;
    END IF;
    SELECT r.organization_id INTO chosen FROM app.organizations_of(p_user) r
    WHERE p_organization IS NULL OR r.organization_id = p_organization
    LIMIT 1;
    IF chosen IS NULL AND super THEN
        IF p_organization IS NULL THEN
            RETURN QUERY SELECT 'ORGANIZATION_REQUIRED', NULL::uuid, NULL::uuid, NULL::timestamptz, false;
            RETURN;
        END IF;
        SELECT o.id INTO chosen FROM organizations o WHERE o.id = p_organization AND o.deleted_at IS NULL;
        imp := chosen IS NOT NULL;
    END IF;
    IF chosen IS NULL THEN
        RETURN QUERY SELECT 'NO_ACCESS', NULL::uuid, NULL::uuid, NULL::timestamptz, false;
        RETURN;
    END IF;
    INSERT INTO user_sessions (id, user_id, organization_id, expires_at, ip, user_agent)
    VALUES (sid, p_user, chosen, ends, p_ip, left(p_user_agent, 1000));
    RETURN QUERY SELECT 'OK', sid, chosen, ends, imp;
END
$$;
ALTER FUNCTION app.open_session(uuid, uuid, integer, inet, text) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.open_session(uuid, uuid, integer, inet, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.open_session(uuid, uuid, integer, inet, text) TO caregate_app;

-- The clinic a signed-in user may move their session to (switchOrganization
-- answers with it before the new clinic's context exists): its row, or none.
CREATE FUNCTION app.reachable_organization(p_organization uuid) RETURNS SETOF organizations
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT o.* FROM organizations o
    WHERE o.id = p_organization AND o.deleted_at IS NULL
      AND EXISTS (SELECT 1 FROM app.organizations_of(app.current_user_id()) r
                  WHERE r.organization_id = o.id)
$$;
ALTER FUNCTION app.reachable_organization(uuid) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.reachable_organization(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.reachable_organization(uuid) TO caregate_app;

-- Any keyed request of a clinic purges a few of the clinic's expired
-- idempotency keys (whoever's they are), so the table stays bounded by the
-- retention window; rows another request holds are skipped, not waited for.
CREATE FUNCTION app.purge_expired_idempotency_keys(p_keep text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM idempotency_keys
        WHERE organization_id = app.current_tenant_id() AND expires_at <= now() AND key <> p_keep
        LIMIT 100 FOR UPDATE SKIP LOCKED))
$$;
-- (UPDATE: what FOR UPDATE asks of a role.)
GRANT SELECT, UPDATE, DELETE ON idempotency_keys TO caregate_definer;
ALTER FUNCTION app.purge_expired_idempotency_keys(text) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.purge_expired_idempotency_keys(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.purge_expired_idempotency_keys(text) TO caregate_app;

-- 4. Login attempts, per email and per client address, in fixed 15-minute
-- windows. Unlogged: losing the counts in a crash only forgives attempts.
CREATE UNLOGGED TABLE login_attempts (
    key text NOT NULL CHECK (length(key) <= 400),
    window_start timestamptz NOT NULL,
    attempts integer NOT NULL CHECK (attempts >= 0),
    PRIMARY KEY (key, window_start)
);
ALTER TABLE login_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE login_attempts FORCE ROW LEVEL SECURITY;
-- Reached only through the functions below.
CREATE POLICY functions_only ON login_attempts USING (false) WITH CHECK (false);
GRANT SELECT, INSERT, UPDATE, DELETE ON login_attempts TO caregate_definer;

-- Reserves one attempt for an email and a client address, atomically,
-- before the password is checked, so concurrent guesses cannot outrun the
-- count. Returns whether the attempt may go ahead (both within limits);
-- a refused attempt is not counted.
CREATE FUNCTION app.reserve_login_attempt(p_email text, p_ip text, p_per_email integer, p_per_ip integer)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    win timestamptz := to_timestamp(floor(extract(epoch FROM now()) / 900) * 900);
    by_email integer;
    by_ip integer := 0;
BEGIN
    -- Windows that ended are forgotten (a few at a time).
    DELETE FROM login_attempts WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM login_attempts WHERE window_start < win LIMIT 100));
    INSERT INTO login_attempts AS a (key, window_start, attempts)
    VALUES ('email:' || lower(left(p_email, 320)), win, 1)
    ON CONFLICT (key, window_start) DO UPDATE SET attempts = a.attempts + 1
    RETURNING a.attempts INTO by_email;
    IF p_ip IS NOT NULL THEN
        INSERT INTO login_attempts AS a (key, window_start, attempts)
        VALUES ('ip:' || left(p_ip, 64), win, 1)
        ON CONFLICT (key, window_start) DO UPDATE SET attempts = a.attempts + 1
        RETURNING a.attempts INTO by_ip;
    END IF;
    IF by_email > p_per_email OR by_ip > p_per_ip THEN
        PERFORM app.refund_login_attempt(p_email, p_ip);
        RETURN false;
    END IF;
    RETURN true;
END
$$;

-- Gives back a reserved attempt (a successful login, or a refused one).
CREATE FUNCTION app.refund_login_attempt(p_email text, p_ip text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    UPDATE login_attempts SET attempts = greatest(attempts - 1, 0)
    WHERE window_start = to_timestamp(floor(extract(epoch FROM now()) / 900) * 900)
      AND key IN ('email:' || lower(left(p_email, 320)), 'ip:' || left(p_ip, 64))
$$;
ALTER FUNCTION app.refund_login_attempt(text, text) OWNER TO caregate_definer;
ALTER FUNCTION app.reserve_login_attempt(text, text, integer, integer) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.refund_login_attempt(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.reserve_login_attempt(text, text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.refund_login_attempt(text, text) TO caregate_app;
GRANT EXECUTE ON FUNCTION app.reserve_login_attempt(text, text, integer, integer) TO caregate_app;

-- 1. The definer functions of earlier migrations: owner and search_path.
ALTER FUNCTION app.audit_row() OWNER TO caregate_definer;
ALTER FUNCTION app.audit_row() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION app.record_event(text, text, uuid[], jsonb) OWNER TO caregate_definer;
ALTER FUNCTION app.record_event(text, text, uuid[], jsonb) SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION app.maintain_count() OWNER TO caregate_definer;
ALTER FUNCTION app.maintain_count() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION app.login_lookup(text) OWNER TO caregate_definer;
ALTER FUNCTION app.login_lookup(text) SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION app.user_organizations() OWNER TO caregate_definer;
ALTER FUNCTION app.user_organizations() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION app.user_id_by_email(text) OWNER TO caregate_definer;
ALTER FUNCTION app.user_id_by_email(text) SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION app.clinic_user_names(uuid[]) OWNER TO caregate_definer;
ALTER FUNCTION app.clinic_user_names(uuid[]) SET search_path = pg_catalog, public, pg_temp;
