DROP FUNCTION app.clinic_user_names(uuid[]);
DROP FUNCTION app.user_id_by_email(text);
DROP FUNCTION app.user_organizations();
DROP FUNCTION app.organizations_of(uuid);
DROP FUNCTION app.begin_request(uuid, uuid, uuid, text, inet, text, integer, boolean);
DROP FUNCTION app.begin_login(uuid);
DROP FUNCTION app.begin_anonymous(text, inet, text);
DROP FUNCTION app.login_lookup(text);
