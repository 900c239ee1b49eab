-- organizations.member_count and patient_count, kept right by triggers.
-- A row counts while it is not soft-deleted. The function runs as the owner
-- because the runtime role may not write the counters itself.

CREATE FUNCTION app.maintain_count() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    col text := TG_ARGV[0];
    old_counted boolean := TG_OP IN ('UPDATE', 'DELETE') AND OLD.deleted_at IS NULL;
    new_counted boolean := TG_OP IN ('INSERT', 'UPDATE') AND NEW.deleted_at IS NULL;
BEGIN
    IF old_counted AND (NOT new_counted OR OLD.organization_id IS DISTINCT FROM NEW.organization_id) THEN
        EXECUTE format('UPDATE organizations SET %I = %I - 1 WHERE id = $1', col, col)
            USING OLD.organization_id;
    END IF;
    IF new_counted AND (NOT old_counted OR OLD.organization_id IS DISTINCT FROM NEW.organization_id) THEN
        EXECUTE format('UPDATE organizations SET %I = %I + 1 WHERE id = $1', col, col)
            USING NEW.organization_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER organization_memberships_count
    AFTER INSERT OR UPDATE OF deleted_at, organization_id OR DELETE ON organization_memberships
    FOR EACH ROW EXECUTE FUNCTION app.maintain_count('member_count');
CREATE TRIGGER patients_count
    AFTER INSERT OR UPDATE OF deleted_at, organization_id OR DELETE ON patients
    FOR EACH ROW EXECUTE FUNCTION app.maintain_count('patient_count');

-- Rows that exist before this migration are counted once, here.
UPDATE organizations o SET
    member_count = (SELECT count(*) FROM organization_memberships m
                    WHERE m.organization_id = o.id AND m.deleted_at IS NULL),
    patient_count = (SELECT count(*) FROM patients p
                     WHERE p.organization_id = o.id AND p.deleted_at IS NULL);
