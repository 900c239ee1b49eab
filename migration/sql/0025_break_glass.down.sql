DROP FUNCTION app.open_break_glass(uuid, text, text, integer);
ALTER TABLE idempotency_keys DROP COLUMN break_glass_reads;

DELETE FROM notifications WHERE kind = 'BREAK_GLASS';
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('NEW_MESSAGE', 'APPOINTMENT_BOOKED', 'APPOINTMENT_CHANGED',
                    'APPOINTMENT_CANCELLED', 'CLAIM_STATUS', 'CONSENT_REQUIRED'));
ALTER TABLE notifications DROP CONSTRAINT notifications_subject_type_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_subject_type_check
    CHECK (subject_type IN ('message_threads', 'appointments', 'claims', 'consent_documents'));
UPDATE notification_preferences SET muted_kinds = array_remove(muted_kinds, 'BREAK_GLASS');
ALTER TABLE notification_preferences DROP CONSTRAINT notification_preferences_muted_kinds_check;
ALTER TABLE notification_preferences ADD CONSTRAINT notification_preferences_muted_kinds_check
    CHECK (muted_kinds <@ ARRAY['NEW_MESSAGE', 'APPOINTMENT_BOOKED', 'APPOINTMENT_CHANGED',
                                'APPOINTMENT_CANCELLED', 'CLAIM_STATUS', 'CONSENT_REQUIRED']);

-- The trail keeps its BREAK_GLASS and BREAK_GLASS_READ events (it is
-- append-only), so its check keeps allowing them; the API no longer
-- writes them.
CREATE OR REPLACE FUNCTION app.record_event(action text, resource_type text, resource_ids uuid[], details jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF action NOT IN ('READ', 'LOGIN', 'LOGOUT', 'ACCESS_DENIED') THEN
        RAISE EXCEPTION 'action % is recorded by triggers only', action
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF action = 'READ' AND cardinality(resource_ids) > 1 THEN
        INSERT INTO public.audit_events (organization_id, actor_user_id, impersonator_id, action,
                                         resource_type, resource_id, resource_ids, changes,
                                         request_id, ip, user_agent)
        VALUES (app.current_tenant_id(), app.current_user_id(), app.impersonator_id(), action,
                resource_type, NULL, resource_ids, details, app.request_id(),
                app.setting('app.ip')::inet, app.setting('app.user_agent'));
        RETURN;
    END IF;
    INSERT INTO public.audit_events (organization_id, actor_user_id, impersonator_id, action,
                                     resource_type, resource_id, changes, request_id, ip, user_agent)
    SELECT app.current_tenant_id(), app.current_user_id(), app.impersonator_id(), action,
           resource_type, rid, details, app.request_id(),
           app.setting('app.ip')::inet, app.setting('app.user_agent')
    FROM unnest(CASE WHEN cardinality(resource_ids) > 0 THEN resource_ids ELSE ARRAY[NULL::uuid] END) AS rid;
END
$$;

ALTER POLICY tenant_isolation ON appointments
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('appointments')))
           AND app.in_facility_scope(facility_id))
    WITH CHECK (organization_id = app.current_tenant_id()
                AND (app.is_staff() OR patient_id = ANY (app.patient_scope('schedule')))
                AND app.in_facility_scope(facility_id));
ALTER POLICY tenant_isolation ON therapy_sessions
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('notes')))
           AND app.in_facility_scope(facility_id))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.has_role('PROVIDER')
                AND app.in_facility_scope(facility_id));
ALTER POLICY tenant_isolation ON session_events
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('notes')))
           AND app.in_facility_scope(facility_id))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.has_role('PROVIDER')
                AND recorded_by = app.current_user_id()
                AND app.in_facility_scope(facility_id));

DROP FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean, boolean);
CREATE FUNCTION app.begin_request(
    p_request_id text, p_ip inet, p_user_agent text,
    p_user uuid, p_tenant uuid, p_session uuid, p_idle_minutes integer, p_impersonate boolean,
    p_touch boolean
)
RETURNS TABLE (role text, is_super_admin boolean, consent_required boolean, portal_scope jsonb,
               facility_scope uuid[], mfa_required boolean)
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
            set_config('app.facilities', '', true),
            set_config('app.threads', '', true);
    IF p_user IS NULL THEN
        RETURN QUERY SELECT NULL::text, false, false, NULL::jsonb, NULL::uuid[], false;
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
                set_config('app.patients_message', (own || scope.message)::text, true),
                set_config('app.threads', (
                    SELECT coalesce(array_agg(tp.thread_id), '{}')::text FROM thread_participants tp
                    WHERE tp.organization_id = p_tenant AND tp.user_id = p_user
                      AND tp.removed_at IS NULL), true);
    END IF;

    -- Activity is recorded at most every 30 s, so concurrent requests of one
    -- session do not queue on its row.
    -- A live-update socket re-checks its session without touching it: only
    -- the user's own requests keep a session from going idle.
    IF p_touch THEN
        UPDATE user_sessions SET last_active_at = now()
        WHERE id = p_session AND last_active_at < now() - interval '30 seconds';
    END IF;

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
        scope_doc, m_sites,
        -- The clinic requires a second factor of this role and the user has
        -- none yet: the session may only enrol one.
        NOT u.mfa_enabled AND m_role <> 'PORTAL' AND EXISTS (
            SELECT 1 FROM organizations o
            WHERE o.id = p_tenant
              AND (o.settings->>'mfaRequired' = 'ALL_STAFF'
                   OR (o.settings->>'mfaRequired' = 'ADMIN' AND m_role = 'ADMIN')));
END
$$;
ALTER FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean, boolean) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean, boolean) TO caregate_app;

DROP FUNCTION app.break_glass_patients();
DROP TABLE break_glass_events;
DROP FUNCTION app.break_glass_review();
