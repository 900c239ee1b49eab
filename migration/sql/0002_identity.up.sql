-- Tenants, people, who belongs where, and login sessions.

CREATE TABLE organizations (
    id                  uuid PRIMARY KEY DEFAULT app.new_ulid(),
    name                text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    slug                text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    timezone            text NOT NULL DEFAULT 'UTC',
    settings            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    subscription_status text NOT NULL DEFAULT 'ACTIVE'
                        CHECK (subscription_status IN ('TRIAL', 'ACTIVE', 'PAST_DUE', 'CANCELLED')),
    member_count        integer NOT NULL DEFAULT 0 CHECK (member_count >= 0),
    patient_count       integer NOT NULL DEFAULT 0 CHECK (patient_count >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz
);

CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    email           text NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 320),
    password_hash   text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    display_name    text NOT NULL CHECK (length(btrim(display_name)) BETWEEN 1 AND 200),
    timezone        text,
    is_super_admin  boolean NOT NULL DEFAULT false,
    mfa_enabled     boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE organization_memberships (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    user_id         uuid NOT NULL REFERENCES users (id),
    role            text NOT NULL CHECK (role IN ('ADMIN', 'PROVIDER', 'STAFF')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    UNIQUE (organization_id, id)
);
CREATE UNIQUE INDEX organization_memberships_active_key
    ON organization_memberships (organization_id, user_id) WHERE deleted_at IS NULL;
CREATE INDEX organization_memberships_user_idx ON organization_memberships (user_id);

-- One row per login; its id is the token's `sid`. Idle timeout and logout are
-- enforced from here on every request.
CREATE TABLE user_sessions (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    user_id         uuid NOT NULL REFERENCES users (id),
    organization_id uuid REFERENCES organizations (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    last_active_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    ip              inet,
    user_agent      text CHECK (length(user_agent) <= 1000),
    CHECK (expires_at > created_at)
);
CREATE INDEX user_sessions_user_idx ON user_sessions (user_id);

-- Time zones are IANA names. Checked by a trigger that fires only when the
-- column is written: a CHECK would re-read the zone catalogue on every
-- update of the row (the counters update a clinic's row on each enrolment).
CREATE FUNCTION app.check_timezone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.timezone IS NOT NULL AND NOT app.is_iana_timezone(NEW.timezone) THEN
        RAISE EXCEPTION 'not an IANA time zone: %', NEW.timezone
            USING ERRCODE = 'check_violation', TABLE = TG_TABLE_NAME, COLUMN = 'timezone';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER organizations_timezone BEFORE INSERT OR UPDATE OF timezone ON organizations
    FOR EACH ROW EXECUTE FUNCTION app.check_timezone();
CREATE TRIGGER users_timezone BEFORE INSERT OR UPDATE OF timezone ON users
    FOR EACH ROW EXECUTE FUNCTION app.check_timezone();

CREATE TRIGGER organizations_touch BEFORE UPDATE ON organizations
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER users_touch BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER organization_memberships_touch BEFORE UPDATE ON organization_memberships
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER user_sessions_touch BEFORE UPDATE ON user_sessions
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
