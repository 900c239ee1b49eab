-- app.current_role_name() is read by no policy, function or query: policies
-- ask app.has_role() and app.is_staff() instead.
DROP FUNCTION app.current_role_name();
