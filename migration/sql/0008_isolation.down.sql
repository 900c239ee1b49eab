REVOKE ALL ON organizations, users, organization_memberships, user_sessions, providers, patients,
    contact_methods, care_team_assignments, proxy_assignments, appointments, payer_authorizations,
    consent_documents, user_consents, audit_events, seaql_migrations FROM caregate_app;

DROP POLICY tenant_isolation ON audit_events;
DROP POLICY self_only ON user_consents;
DROP POLICY tenant_isolation ON payer_authorizations;
DROP POLICY tenant_isolation ON appointments;
DROP POLICY tenant_isolation ON proxy_assignments;
DROP POLICY tenant_isolation ON care_team_assignments;
DROP POLICY tenant_isolation ON contact_methods;
DROP POLICY tenant_isolation ON patients;
DROP POLICY tenant_isolation ON providers;
DROP POLICY self_only ON user_sessions;
DROP POLICY tenant_isolation ON organization_memberships;
DROP POLICY self_only ON users;
DROP POLICY tenant_isolation ON organizations;

ALTER TABLE audit_events NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
ALTER TABLE user_consents NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
ALTER TABLE payer_authorizations NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
ALTER TABLE appointments NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
ALTER TABLE proxy_assignments NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
ALTER TABLE care_team_assignments NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
ALTER TABLE contact_methods NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
ALTER TABLE patients NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
ALTER TABLE providers NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
ALTER TABLE user_sessions NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
ALTER TABLE organization_memberships NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
ALTER TABLE users NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
ALTER TABLE organizations NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
