-- The request context and the helpers every policy reads.
--
-- The API's guard sets these settings transaction-locally (set_config(..., true))
-- as the first statement of every request. A setting that was once set on a
-- pooled connection reads back as '' after the transaction ends, so every
-- helper turns '' into NULL: no context means no tenant, and no tenant means
-- no rows (fail closed).

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE SCHEMA app;

-- The runtime role the server connects as. Roles belong to the whole cluster,
-- so it may already exist (another database of the same cluster created it).
DO $$
BEGIN
    CREATE ROLE caregate_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
EXCEPTION WHEN duplicate_object THEN
    NULL;
END
$$;
ALTER ROLE caregate_app NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;

GRANT USAGE ON SCHEMA app TO caregate_app;
GRANT USAGE ON SCHEMA public TO caregate_app;

-- ULID laid out in a uuid: 48 bits of milliseconds, then 80 bits taken from
-- a random (v4) uuid, 74 of them random: ordered by time, unique in practice.
-- Rows created by the application get their id from the ulid crate; this
-- default covers rows written by SQL (seeds, triggers).
CREATE FUNCTION app.new_ulid() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
            || substr(replace(gen_random_uuid()::text, '-', ''), 1, 20))::uuid
$$;

CREATE FUNCTION app.setting(name text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting(name, true), '')
$$;

CREATE FUNCTION app.current_user_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('app.user_id', true), '')::uuid
$$;

CREATE FUNCTION app.current_tenant_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('app.tenant_id', true), '')::uuid
$$;

CREATE FUNCTION app.current_role_name() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('app.role', true), '')
$$;

CREATE FUNCTION app.has_role(wanted text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('app.role', true), '') = wanted, false)
$$;

-- Clinic staff: members of the organization (as opposed to portal users,
-- who reach only the charts they hold or are proxy for).
CREATE FUNCTION app.is_staff() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('app.role', true), '') IN ('ADMIN', 'PROVIDER', 'STAFF'), false)
$$;

CREATE FUNCTION app.is_super_admin() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('app.is_super_admin', true), '')::boolean, false)
$$;

CREATE FUNCTION app.impersonator_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('app.impersonator_id', true), '')::uuid
$$;

CREATE FUNCTION app.request_id() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('app.request_id', true), '')
$$;

-- The patient ids a portal user (a patient, or a proxy such as a parent) may
-- reach for one purpose: 'profile', 'appointments', 'schedule', 'notes',
-- 'billing' or 'message'. The guard loads them once per request into
-- app.patients_<purpose> as a uuid[] literal, so policies compare the row's
-- own column with the context and never run a sub-query per row.
CREATE FUNCTION app.patient_scope(purpose text) RETURNS uuid[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('app.patients_' || purpose, true), '')::uuid[], '{}'::uuid[])
$$;

CREATE FUNCTION app.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- NPI: ten digits, the last a Luhn check digit computed over the constant
-- prefix 80840 followed by the first nine digits (CMS rule).
CREATE FUNCTION app.is_valid_npi(npi text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    digits text;
    total int := 0;
    d int;
    i int;
BEGIN
    IF npi !~ '^[0-9]{10}$' THEN
        RETURN false;
    END IF;
    digits := '80840' || substr(npi, 1, 9);
    -- Luhn over the 14 payload digits: double every second digit from the right.
    FOR i IN 1..14 LOOP
        d := substr(digits, 15 - i, 1)::int;
        IF i % 2 = 1 THEN
            d := d * 2;
            IF d > 9 THEN
                d := d - 9;
            END IF;
        END IF;
        total := total + d;
    END LOOP;
    RETURN (10 - total % 10) % 10 = substr(npi, 10, 1)::int;
END
$$;

CREATE FUNCTION app.is_iana_timezone(tz text) RETURNS boolean
LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
    SELECT tz ~ '^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$'
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = tz)
$$;
