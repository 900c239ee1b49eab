-- As 0001_app_context created it: owned by the migrating role, executable by
-- PUBLIC, no search_path of its own.
CREATE FUNCTION app.current_role_name() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('app.role', true), '')
$$;
