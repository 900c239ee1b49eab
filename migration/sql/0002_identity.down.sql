DROP TABLE user_sessions;
DROP TABLE organization_memberships;
DROP TABLE users;
DROP TABLE organizations;
DROP FUNCTION app.check_timezone();
