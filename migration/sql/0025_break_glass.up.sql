-- Break-glass: emergency access to one patient of the caller's own clinic
-- that their normal scope does not cover (staff limited to some of the
-- clinic's facilities). Access starts at once and ends by itself; every
-- opening and every read under it is audited as its own kind of event,
-- the clinic's admins are notified, and they review each one.
--
-- The patient joins the session's scope through the request context, like
-- every other scope: `app.begin_request` puts the session's live openings
-- in `app.break_glass`, and the policies of the facility-scoped tables
-- admit that patient's rows. Never across clinics: an opening names a
-- patient of the caller's clinic, and every policy still compares the
-- row's clinic with the caller's.

CREATE TABLE break_glass_events (
    id              uuid NOT NULL DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    user_id         uuid NOT NULL REFERENCES users (id),
    -- The session the access belongs to (it ends with the session, too).
    session_id      uuid NOT NULL,
    patient_id      uuid NOT NULL,
    -- HL7 v3 PurposeOfUse (ActReason): emergency treatment, break the glass.
    purpose         text NOT NULL CHECK (purpose IN ('ETREAT', 'BTG')),
    reason          text NOT NULL CHECK (char_length(btrim(reason)) BETWEEN 1 AND 1000),
    opened_at       timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    outcome         text CHECK (outcome IN ('APPROPRIATE', 'INAPPROPRIATE')),
    review_comment  text CHECK (char_length(review_comment) <= 2000),
    reviewed_by     uuid REFERENCES users (id),
    reviewed_at     timestamptz,
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, patient_id) REFERENCES patients (organization_id, id),
    -- An opening lasts at least a moment and at most a day (the server's
    -- configured maximum is lower).
    CONSTRAINT break_glass_events_duration_check
        CHECK (expires_at > opened_at AND expires_at <= opened_at + interval '24 hours'),
    CONSTRAINT break_glass_events_review_check
        CHECK ((outcome IS NULL) = (reviewed_at IS NULL) AND (outcome IS NULL) = (reviewed_by IS NULL))
);
CREATE INDEX break_glass_events_session_idx ON break_glass_events (organization_id, session_id, expires_at);
CREATE INDEX break_glass_events_queue_idx ON break_glass_events (organization_id, opened_at DESC, id DESC);
CREATE INDEX break_glass_events_unreviewed_idx ON break_glass_events (organization_id, opened_at DESC, id DESC)
    WHERE outcome IS NULL;

-- The clinic's admins (with the whole clinic in scope) see and review every
-- opening; whoever opened one sees their own.
ALTER TABLE break_glass_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE break_glass_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON break_glass_events
    USING (organization_id = app.current_tenant_id()
           AND ((app.has_role('ADMIN') AND app.facility_scope() IS NULL)
                OR user_id = app.current_user_id()))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.has_role('ADMIN')
                AND app.facility_scope() IS NULL);

-- Openings are written by `app.open_break_glass` only; a review writes
-- its outcome and comment (the trigger below adds who and when).
GRANT SELECT, UPDATE (outcome, review_comment) ON break_glass_events TO caregate_app;
GRANT SELECT, INSERT, UPDATE (expires_at) ON break_glass_events TO caregate_definer;
GRANT SELECT ON patients, organization_memberships, user_sessions TO caregate_definer;

CREATE TRIGGER break_glass_events_audit AFTER INSERT OR UPDATE OR DELETE ON break_glass_events
    FOR EACH ROW EXECUTE FUNCTION app.audit_row();

-- A review is given once, by someone other than the person who opened the
-- access, and says who and when. An opening judged inappropriate ends at
-- once if it is still running.
CREATE FUNCTION app.break_glass_review() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF OLD.outcome IS NOT NULL THEN
        RAISE EXCEPTION 'ALREADY_REVIEWED' USING ERRCODE = 'CG409';
    END IF;
    IF NEW.outcome IS NULL THEN
        RAISE EXCEPTION 'a review needs an outcome' USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.user_id = app.current_user_id() THEN
        RAISE EXCEPTION 'OWN_BREAK_GLASS' USING ERRCODE = 'CG403';
    END IF;
    NEW.reviewed_by := app.current_user_id();
    NEW.reviewed_at := now();
    IF NEW.outcome = 'INAPPROPRIATE' AND OLD.expires_at > now() THEN
        NEW.expires_at := greatest(now(), OLD.opened_at + interval '1 microsecond');
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER break_glass_events_review BEFORE UPDATE OF outcome, review_comment ON break_glass_events
    FOR EACH ROW EXECUTE FUNCTION app.break_glass_review();

-- The patients this transaction reaches through break-glass (empty when none).
CREATE FUNCTION app.break_glass_patients() RETURNS uuid[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('app.break_glass', true), '')::uuid[], '{}')
$$;

-- The facility-scoped tables let a patient opened by break-glass be READ
-- wherever their care took place (USING); writes stay within the caller's
-- own sites (WITH CHECK unchanged): emergency access is to the record.
ALTER POLICY tenant_isolation ON appointments
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('appointments')))
           AND (app.in_facility_scope(facility_id) OR patient_id = ANY (app.break_glass_patients())));
ALTER POLICY tenant_isolation ON therapy_sessions
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('notes')))
           AND (app.in_facility_scope(facility_id) OR patient_id = ANY (app.break_glass_patients())));
ALTER POLICY tenant_isolation ON session_events
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('notes')))
           AND (app.in_facility_scope(facility_id) OR patient_id = ANY (app.break_glass_patients())));

-- A retried mutation's stored answer remembers which patients it showed
-- through break-glass: it is replayed only while that access lasts.
ALTER TABLE idempotency_keys ADD COLUMN break_glass_reads uuid[] NOT NULL DEFAULT '{}';

-- Two kinds of audit event: the opening, and a read under it.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_action_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_action_check
    CHECK (action IN ('CREATE', 'READ', 'UPDATE', 'DELETE', 'LOGIN', 'LOGOUT', 'ACCESS_DENIED',
                      'BREAK_GLASS', 'BREAK_GLASS_READ'));

CREATE OR REPLACE FUNCTION app.record_event(action text, resource_type text, resource_ids uuid[], details jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF action NOT IN ('READ', 'BREAK_GLASS_READ', 'LOGIN', 'LOGOUT', 'ACCESS_DENIED') THEN
        RAISE EXCEPTION 'action % is recorded by triggers only', action
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF action IN ('READ', 'BREAK_GLASS_READ') AND cardinality(resource_ids) > 1 THEN
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

-- The clinic's admins are notified of every opening.
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('NEW_MESSAGE', 'APPOINTMENT_BOOKED', 'APPOINTMENT_CHANGED',
                    'APPOINTMENT_CANCELLED', 'CLAIM_STATUS', 'CONSENT_REQUIRED', 'BREAK_GLASS'));
ALTER TABLE notifications DROP CONSTRAINT notifications_subject_type_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_subject_type_check
    CHECK (subject_type IN ('message_threads', 'appointments', 'claims', 'consent_documents',
                            'break_glass_events'));
ALTER TABLE notification_preferences DROP CONSTRAINT notification_preferences_muted_kinds_check;
ALTER TABLE notification_preferences ADD CONSTRAINT notification_preferences_muted_kinds_check
    CHECK (muted_kinds <@ ARRAY['NEW_MESSAGE', 'APPOINTMENT_BOOKED', 'APPOINTMENT_CHANGED',
                                'APPOINTMENT_CANCELLED', 'CLAIM_STATUS', 'CONSENT_REQUIRED',
                                'BREAK_GLASS']);

-- Opens emergency access for the current session to one patient of the
-- current clinic, for `p_minutes`: records the opening (and its BREAK_GLASS
-- audit event), notifies the clinic's admins, and adds the patient to this
-- transaction's scope so the access starts at once. Refused to portal
-- users (ROLE), to staff whose scope already covers every patient
-- (BREAK_GLASS_NOT_NEEDED), past 25 live openings in the session
-- (BREAK_GLASS_LIMIT), and for a patient not of this clinic (no_data_found,
-- which the API answers as not found).
CREATE FUNCTION app.open_break_glass(p_patient uuid, p_purpose text, p_reason text, p_minutes integer)
RETURNS SETOF break_glass_events
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    g break_glass_events%ROWTYPE;
    v_session uuid := app.setting('app.session_id')::uuid;
    v_sites uuid[];
BEGIN
    IF app.current_user_id() IS NULL OR app.current_tenant_id() IS NULL OR NOT app.is_staff() THEN
        RAISE EXCEPTION 'ROLE' USING ERRCODE = 'CG403';
    END IF;
    -- What the context says is checked against the rows it came from: a
    -- live session of this user in this clinic, and their membership.
    IF NOT EXISTS (SELECT 1 FROM user_sessions s
                   WHERE s.id = v_session AND s.user_id = app.current_user_id()
                     AND s.organization_id = app.current_tenant_id()
                     AND s.revoked_at IS NULL AND s.expires_at > now()) THEN
        RAISE EXCEPTION 'ROLE' USING ERRCODE = 'CG403';
    END IF;
    SELECT m.facility_scope INTO v_sites FROM organization_memberships m
    WHERE m.organization_id = app.current_tenant_id() AND m.user_id = app.current_user_id()
      AND m.deleted_at IS NULL AND m.role IN ('ADMIN', 'PROVIDER', 'STAFF');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ROLE' USING ERRCODE = 'CG403';
    END IF;
    IF v_sites IS NULL OR app.facility_scope() IS NULL THEN
        RAISE EXCEPTION 'BREAK_GLASS_NOT_NEEDED' USING ERRCODE = 'CG409';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM patients p
                   WHERE p.organization_id = app.current_tenant_id() AND p.id = p_patient
                     AND p.deleted_at IS NULL) THEN
        RAISE EXCEPTION 'no such patient' USING ERRCODE = 'no_data_found';
    END IF;
    -- A session holds a bounded number of live openings: every request's
    -- context carries them, and an emergency concerns a few patients, not
    -- a clinic's worth.
    -- Openings of one session are counted one at a time (concurrent
    -- openings would each see the count before the others).
    PERFORM pg_advisory_xact_lock(hashtextextended('caregate.break_glass:' || v_session::text, 0));
    -- One live opening per patient and session: a new one supersedes it
    -- (so an INAPPROPRIATE review of the live one ends the access).
    UPDATE break_glass_events live
    SET expires_at = greatest(now(), live.opened_at + interval '1 microsecond')
    WHERE live.organization_id = app.current_tenant_id() AND live.session_id = v_session
      AND live.patient_id = p_patient AND live.expires_at > now();
    IF (SELECT count(*) FROM break_glass_events live
        WHERE live.organization_id = app.current_tenant_id()
          AND live.session_id = v_session AND live.expires_at > now()) >= 25 THEN
        RAISE EXCEPTION 'BREAK_GLASS_LIMIT' USING ERRCODE = 'CG409';
    END IF;
    INSERT INTO break_glass_events (organization_id, user_id, session_id, patient_id, purpose, reason,
                                    expires_at)
    VALUES (app.current_tenant_id(), app.current_user_id(), v_session,
            p_patient, p_purpose, btrim(p_reason), now() + make_interval(mins => p_minutes))
    RETURNING * INTO g;
    INSERT INTO audit_events (organization_id, actor_user_id, impersonator_id, action, resource_type,
                              resource_id, changes, request_id, ip, user_agent)
    VALUES (g.organization_id, g.user_id, app.impersonator_id(), 'BREAK_GLASS', 'patients', g.patient_id,
            jsonb_build_object('breakGlassEventId', g.id, 'purpose', g.purpose, 'reason', g.reason,
                               'expiresAt', g.expires_at),
            app.request_id(), app.setting('app.ip')::inet, app.setting('app.user_agent'));
    INSERT INTO notifications (organization_id, user_id, kind, subject_type, subject_id)
    SELECT g.organization_id, m.user_id, 'BREAK_GLASS', 'break_glass_events', g.id
    FROM organization_memberships m
    WHERE m.organization_id = g.organization_id AND m.role = 'ADMIN' AND m.deleted_at IS NULL
      AND m.facility_scope IS NULL AND m.user_id <> g.user_id;
    PERFORM set_config('app.break_glass', (app.break_glass_patients() || g.patient_id)::text, true);
    RETURN NEXT g;
END
$$;
ALTER FUNCTION app.open_break_glass(uuid, text, text, integer) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.open_break_glass(uuid, text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.open_break_glass(uuid, text, text, integer) TO caregate_app;

DROP FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean, boolean);
CREATE FUNCTION app.begin_request(
    p_request_id text, p_ip inet, p_user_agent text,
    p_user uuid, p_tenant uuid, p_session uuid, p_idle_minutes integer, p_impersonate boolean,
    p_touch boolean
)
RETURNS TABLE (role text, is_super_admin boolean, consent_required boolean, portal_scope jsonb,
               facility_scope uuid[], mfa_required boolean, break_glass uuid[])
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
    glass uuid[];
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
            set_config('app.threads', '', true),
            set_config('app.break_glass', '', true);
    IF p_user IS NULL THEN
        RETURN QUERY SELECT NULL::text, false, false, NULL::jsonb, NULL::uuid[], false, NULL::uuid[];
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

    -- Staff limited to some facilities reach, besides, the patients this
    -- session opened in an emergency (break-glass), until each expires.
    IF m_sites IS NOT NULL THEN
        SELECT array_agg(DISTINCT g.patient_id) INTO glass FROM break_glass_events g
        WHERE g.organization_id = p_tenant AND g.session_id = p_session AND g.user_id = p_user
          AND g.expires_at > now();
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
            set_config('app.facilities', coalesce(m_sites::text, ''), true),
            set_config('app.break_glass', coalesce(glass::text, ''), true);

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
                   OR (o.settings->>'mfaRequired' = 'ADMIN' AND m_role = 'ADMIN'))),
        glass;
END
$$;
ALTER FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean, boolean) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean, boolean) TO caregate_app;
