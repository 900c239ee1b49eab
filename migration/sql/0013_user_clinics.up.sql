-- The clinics the signed-in user may act in, with their names and the
-- user's role in each: what a client shows in a clinic switcher. (Another
-- clinic's row is not visible under the current clinic's context, so this
-- reads it as caregate_definer — only the name, and only for the user's
-- own clinics.)
CREATE FUNCTION app.user_clinics()
RETURNS TABLE (organization_id uuid, name text, role text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT c.organization_id, c.name, c.role FROM (
        -- One row a clinic: the strongest tie (a membership before a chart).
        SELECT DISTINCT ON (r.organization_id) r.organization_id, o.name, r.role, r.ordinality
        FROM app.organizations_of(app.current_user_id()) WITH ORDINALITY AS r
        JOIN organizations o ON o.id = r.organization_id AND o.deleted_at IS NULL
        ORDER BY r.organization_id, r.ordinality) AS c
    ORDER BY c.ordinality
$$;
ALTER FUNCTION app.user_clinics() OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.user_clinics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.user_clinics() TO caregate_app;
