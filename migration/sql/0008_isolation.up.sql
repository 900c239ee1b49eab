-- Row-level security: the last line of defence between clinics.
--
-- Every table holding tenant or personal data has RLS enabled AND forced, and
-- policies with both USING and WITH CHECK. Policies contain no sub-query:
-- they compare the row's own columns with the request context (the helpers
-- of schema app), so the tenant predicate is an index condition on
-- indexes that lead with organization_id, and the policies stay valid on a
-- sharded (Citus) cluster. No context means no rows.
--
-- Staff (ADMIN, PROVIDER, STAFF) see their clinic. Portal users (a patient,
-- or a proxy such as a parent) see only the patients the guard put in their
-- scope for each purpose.

ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organizations
    USING (id = app.current_tenant_id())
    WITH CHECK (id = app.current_tenant_id() AND app.has_role('ADMIN'));

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY self_only ON users
    USING (id = app.current_user_id())
    WITH CHECK (id = app.current_user_id());

ALTER TABLE organization_memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE organization_memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organization_memberships
    USING ((organization_id = app.current_tenant_id() AND app.is_staff())
           OR user_id = app.current_user_id())
    WITH CHECK (organization_id = app.current_tenant_id() AND app.has_role('ADMIN'));

ALTER TABLE user_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY self_only ON user_sessions
    USING (user_id = app.current_user_id())
    WITH CHECK (user_id = app.current_user_id());

ALTER TABLE providers ENABLE ROW LEVEL SECURITY;
ALTER TABLE providers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON providers
    USING (organization_id = app.current_tenant_id())
    WITH CHECK (organization_id = app.current_tenant_id() AND app.has_role('ADMIN'));

ALTER TABLE patients ENABLE ROW LEVEL SECURITY;
ALTER TABLE patients FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON patients
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR id = ANY (app.patient_scope('profile'))))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.is_staff());

ALTER TABLE contact_methods ENABLE ROW LEVEL SECURITY;
ALTER TABLE contact_methods FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON contact_methods
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('profile'))))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.is_staff());

ALTER TABLE care_team_assignments ENABLE ROW LEVEL SECURITY;
ALTER TABLE care_team_assignments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON care_team_assignments
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('profile'))))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.is_staff());

ALTER TABLE proxy_assignments ENABLE ROW LEVEL SECURITY;
ALTER TABLE proxy_assignments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON proxy_assignments
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR proxy_user_id = app.current_user_id()))
    WITH CHECK (organization_id = app.current_tenant_id()
                AND (app.has_role('ADMIN') OR app.has_role('STAFF')));

ALTER TABLE appointments ENABLE ROW LEVEL SECURITY;
ALTER TABLE appointments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON appointments
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('appointments'))))
    WITH CHECK (organization_id = app.current_tenant_id()
                AND (app.is_staff() OR patient_id = ANY (app.patient_scope('schedule'))));

ALTER TABLE payer_authorizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE payer_authorizations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON payer_authorizations
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR patient_id = ANY (app.patient_scope('billing'))))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.is_staff());

ALTER TABLE user_consents ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_consents FORCE ROW LEVEL SECURITY;
CREATE POLICY self_only ON user_consents
    USING (user_id = app.current_user_id())
    WITH CHECK (user_id = app.current_user_id());

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events
    USING (organization_id = app.current_tenant_id() AND app.has_role('ADMIN'))
    WITH CHECK (organization_id IS NOT DISTINCT FROM app.current_tenant_id());

-- The runtime role: DML only where the application needs it. No DELETE
-- anywhere (clinical and identity rows are soft-deleted), nothing on the
-- audit trail but SELECT, and the counters are written by triggers only.
GRANT SELECT ON organizations TO caregate_app;
GRANT UPDATE (name, timezone, settings) ON organizations TO caregate_app;
GRANT SELECT ON users TO caregate_app;
GRANT UPDATE (display_name, timezone, password_hash, mfa_enabled) ON users TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON organization_memberships TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON user_sessions TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON providers TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON patients TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON contact_methods TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON care_team_assignments TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON proxy_assignments TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON appointments TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON payer_authorizations TO caregate_app;
GRANT SELECT ON consent_documents TO caregate_app;
GRANT SELECT, INSERT ON user_consents TO caregate_app;
GRANT SELECT ON audit_events TO caregate_app;
GRANT SELECT ON seaql_migrations TO caregate_app;
