DROP FUNCTION app.clear_own_mfa();
DROP FUNCTION app.pass_mfa_challenge(bytea, bigint, bytea);
DROP FUNCTION app.attempt_mfa_challenge(bytea, integer);
DROP FUNCTION app.open_mfa_challenge(uuid, uuid, bytea, integer);
DROP TABLE mfa_challenges;
DROP TABLE user_mfa_recovery_codes;
DROP TABLE user_mfa_factors;
-- Without a factor, no user has MFA on.
UPDATE users SET mfa_enabled = false WHERE mfa_enabled;
