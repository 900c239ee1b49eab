-- Multi-factor sign-in: a user's TOTP factor, their one-time recovery codes,
-- and the challenges a correct password opens for a user who has a factor.
--
-- All three are a user's own (users are global, like user_sessions): a
-- signed-in user reaches only their own rows, through policies that compare
-- the row's user_id with the context. The login step is anonymous, so it
-- reaches challenges (and, through a live challenge, the factor and codes
-- of that challenge's user) only through the SECURITY DEFINER functions
-- below, keyed by the hash of the challenge token the client holds.

-- The factor's secret is sealed by the server (AES-256-GCM under a master
-- key, bound to the user): the database never holds it in the clear.
-- last_step is the last TOTP time step accepted: a code is accepted only
-- for a later step, so an observed code cannot be replayed.
CREATE TABLE user_mfa_factors (
    user_id        uuid PRIMARY KEY REFERENCES users (id),
    secret_sealed  bytea NOT NULL CHECK (length(secret_sealed) BETWEEN 29 AND 256),
    master_version integer NOT NULL CHECK (master_version >= 1),
    confirmed_at   timestamptz,
    last_step      bigint CHECK (last_step >= 0),
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Recovery codes: SHA-256 of a high-entropy code, usable once.
CREATE TABLE user_mfa_recovery_codes (
    id         uuid PRIMARY KEY DEFAULT app.new_ulid(),
    user_id    uuid NOT NULL REFERENCES users (id),
    code_hash  bytea NOT NULL CHECK (length(code_hash) = 32),
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_mfa_recovery_codes_code_key UNIQUE (user_id, code_hash)
);

-- A password login of a user with a factor: the session it asked for,
-- opened only by a valid code within five minutes and five attempts.
CREATE TABLE mfa_challenges (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    token_hash      bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    user_id         uuid NOT NULL REFERENCES users (id),
    -- The clinic the login named (NULL: the user's first).
    organization_id uuid REFERENCES organizations (id),
    expires_at      timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    consumed_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (expires_at > created_at)
);
CREATE INDEX mfa_challenges_user_idx ON mfa_challenges (user_id);
CREATE INDEX mfa_challenges_expires_idx ON mfa_challenges (expires_at);

ALTER TABLE user_mfa_factors ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_mfa_factors FORCE ROW LEVEL SECURITY;
CREATE POLICY self_only ON user_mfa_factors FOR ALL
    USING (user_id = app.current_user_id())
    WITH CHECK (user_id = app.current_user_id());

ALTER TABLE user_mfa_recovery_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_mfa_recovery_codes FORCE ROW LEVEL SECURITY;
CREATE POLICY self_only ON user_mfa_recovery_codes FOR ALL
    USING (user_id = app.current_user_id())
    WITH CHECK (user_id = app.current_user_id());

ALTER TABLE mfa_challenges ENABLE ROW LEVEL SECURITY;
ALTER TABLE mfa_challenges FORCE ROW LEVEL SECURITY;
CREATE POLICY self_only ON mfa_challenges FOR ALL
    USING (user_id = app.current_user_id())
    WITH CHECK (user_id = app.current_user_id());

-- A signed-in user enrols, confirms and uses their own factor and codes.
-- Nothing is deleted by the runtime role: disabling goes through
-- app.clear_own_mfa. Challenges are written only by the functions below.
GRANT SELECT, INSERT, UPDATE (secret_sealed, master_version, confirmed_at, last_step, created_at)
    ON user_mfa_factors TO caregate_app;
GRANT SELECT, INSERT, UPDATE (used_at) ON user_mfa_recovery_codes TO caregate_app;
GRANT SELECT ON mfa_challenges TO caregate_app;

GRANT SELECT, UPDATE (last_step), DELETE ON user_mfa_factors TO caregate_definer;
GRANT SELECT, UPDATE (used_at), DELETE ON user_mfa_recovery_codes TO caregate_definer;
GRANT SELECT, INSERT, UPDATE (attempts, consumed_at), DELETE ON mfa_challenges TO caregate_definer;

-- After a correct password: a challenge for the session the login asked
-- for, when the user has a confirmed factor ('OK'); 'NOT_ENROLLED' when
-- they have none (the login opens its session at once). The clinic is
-- checked as app.open_session checks it, so a login to a clinic the user
-- cannot act in is refused before any code is asked for.
CREATE FUNCTION app.open_mfa_challenge(
    p_user uuid, p_organization uuid, p_token_hash bytea, p_ttl_seconds integer
)
RETURNS TABLE (status text, challenge_id uuid, expires_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    u users%ROWTYPE;
    chosen uuid;
    cid uuid := app.new_ulid();
    ends timestamptz := now() + make_interval(secs => p_ttl_seconds);
BEGIN
    SELECT * INTO u FROM users WHERE id = p_user AND deleted_at IS NULL;
    IF NOT FOUND OR NOT u.mfa_enabled
       OR NOT EXISTS (SELECT 1 FROM user_mfa_factors f
                      WHERE f.user_id = p_user AND f.confirmed_at IS NOT NULL) THEN
        RETURN QUERY SELECT 'NOT_ENROLLED', NULL::uuid, NULL::timestamptz;
        RETURN;
    END IF;
    SELECT r.organization_id INTO chosen FROM app.organizations_of(p_user) r
    WHERE p_organization IS NULL OR r.organization_id = p_organization
    LIMIT 1;
    IF chosen IS NULL AND u.is_super_admin THEN
        IF p_organization IS NULL THEN
            RETURN QUERY SELECT 'ORGANIZATION_REQUIRED', NULL::uuid, NULL::timestamptz;
            RETURN;
        END IF;
        SELECT o.id INTO chosen FROM organizations o WHERE o.id = p_organization AND o.deleted_at IS NULL;
    END IF;
    IF chosen IS NULL THEN
        RETURN QUERY SELECT 'NO_ACCESS', NULL::uuid, NULL::timestamptz;
        RETURN;
    END IF;
    -- Challenges past their end are forgotten (a few at a time).
    DELETE FROM mfa_challenges WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM mfa_challenges WHERE mfa_challenges.expires_at < now() LIMIT 100
        FOR UPDATE SKIP LOCKED));
    INSERT INTO mfa_challenges (id, token_hash, user_id, organization_id, expires_at)
    VALUES (cid, p_token_hash, p_user, p_organization, ends);
    RETURN QUERY SELECT 'OK', cid, ends;
END
$$;
ALTER FUNCTION app.open_mfa_challenge(uuid, uuid, bytea, integer) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.open_mfa_challenge(uuid, uuid, bytea, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.open_mfa_challenge(uuid, uuid, bytea, integer) TO caregate_app;

-- One attempt at a challenge: counted first (at most p_max_attempts per
-- challenge), then the challenge's user and clinic and what checking a code
-- needs (the sealed secret and the last step used). No row: the challenge
-- is unknown, used, expired or out of attempts.
CREATE FUNCTION app.attempt_mfa_challenge(p_token_hash bytea, p_max_attempts integer)
RETURNS TABLE (user_id uuid, organization_id uuid, attempts integer,
               secret_sealed bytea, master_version integer, last_step bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    c mfa_challenges%ROWTYPE;
BEGIN
    UPDATE mfa_challenges m SET attempts = m.attempts + 1
    WHERE m.token_hash = p_token_hash AND m.consumed_at IS NULL
      AND m.expires_at > now() AND m.attempts < p_max_attempts
    RETURNING m.* INTO c;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT c.user_id, c.organization_id, c.attempts,
                        f.secret_sealed, f.master_version, f.last_step
                 FROM user_mfa_factors f
                 WHERE f.user_id = c.user_id AND f.confirmed_at IS NOT NULL;
END
$$;
ALTER FUNCTION app.attempt_mfa_challenge(bytea, integer) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.attempt_mfa_challenge(bytea, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.attempt_mfa_challenge(bytea, integer) TO caregate_app;

-- A code the server found valid for a challenge: uses it (the TOTP step
-- p_step, only later than the last one used; or the unused recovery code
-- p_code_hash) and consumes the challenge, all or nothing. 'OK';
-- 'CODE_USED' when the step or the recovery code was already used;
-- 'CHALLENGE_INVALID' when the challenge is no longer live.
CREATE FUNCTION app.pass_mfa_challenge(p_token_hash bytea, p_step bigint, p_code_hash bytea)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    c mfa_challenges%ROWTYPE;
BEGIN
    SELECT * INTO c FROM mfa_challenges m
    WHERE m.token_hash = p_token_hash AND m.consumed_at IS NULL AND m.expires_at > now()
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'CHALLENGE_INVALID';
    END IF;
    IF p_step IS NOT NULL THEN
        UPDATE user_mfa_factors f SET last_step = p_step
        WHERE f.user_id = c.user_id AND f.confirmed_at IS NOT NULL
          AND (f.last_step IS NULL OR f.last_step < p_step);
    ELSE
        UPDATE user_mfa_recovery_codes r SET used_at = now()
        WHERE r.user_id = c.user_id AND r.code_hash = p_code_hash AND r.used_at IS NULL;
    END IF;
    IF NOT FOUND THEN
        RETURN 'CODE_USED';
    END IF;
    UPDATE mfa_challenges SET consumed_at = now() WHERE id = c.id;
    RETURN 'OK';
END
$$;
ALTER FUNCTION app.pass_mfa_challenge(bytea, bigint, bytea) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.pass_mfa_challenge(bytea, bigint, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.pass_mfa_challenge(bytea, bigint, bytea) TO caregate_app;

-- Removes the signed-in user's own factor and recovery codes (disabling
-- MFA): the runtime role deletes nothing itself.
CREATE FUNCTION app.clear_own_mfa() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    DELETE FROM user_mfa_recovery_codes WHERE user_id = app.current_user_id();
    DELETE FROM user_mfa_factors WHERE user_id = app.current_user_id();
$$;
ALTER FUNCTION app.clear_own_mfa() OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.clear_own_mfa() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.clear_own_mfa() TO caregate_app;
