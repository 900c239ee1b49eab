DROP TRIGGER patients_count ON patients;
DROP TRIGGER organization_memberships_count ON organization_memberships;
DROP FUNCTION app.maintain_count();
