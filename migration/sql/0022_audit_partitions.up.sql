-- The audit trail, partitioned by month (of occurred_at, in UTC), so that
-- old months can be archived and dropped whole instead of deleted row by
-- row (which the trail forbids), and a lookup reads a month's small
-- indexes rather than one that grows forever.
--
-- Every guarantee of the unpartitioned table holds on every partition:
-- * append-only: the row trigger refusing UPDATE and DELETE is cloned to
--   each partition by PostgreSQL; TRUNCATE triggers are statement triggers,
--   which are not cloned, so each partition gets its own. The runtime role
--   has SELECT on the parent only: a partition named directly refuses it.
-- * isolation: ENABLE and FORCE row-level security with the parent's very
--   policies on each partition (a partition read by name is checked against
--   its own policies, not the parent's).
-- * the primary key includes the partition key: (id, occurred_at).
-- A DEFAULT partition takes any row no monthly partition covers, so an
-- insert never fails for want of a partition; `caregate audit maintain`
-- creates months ahead and moves rows out of the default.
--
-- Partitions are created by the owner (DDL on the owner's table needs the
-- owner), through the functions below: invoker's rights, search_path pinned
-- to pg_catalog then pg_temp, every name qualified, EXECUTE for no one else.
-- They run with row_security = off, so a migrating or maintaining role that
-- row-level security would filter fails loudly instead of moving or
-- archiving a filtered (empty) view of the trail.

SET LOCAL row_security = off;

ALTER TABLE audit_events RENAME TO audit_events_unpartitioned;
ALTER TABLE audit_events_unpartitioned RENAME CONSTRAINT audit_events_pkey TO audit_events_unpartitioned_pkey;
ALTER INDEX audit_events_org_time_idx RENAME TO audit_events_unpartitioned_org_time_idx;
ALTER INDEX audit_events_resource_idx RENAME TO audit_events_unpartitioned_resource_idx;
ALTER TABLE audit_events_unpartitioned RENAME CONSTRAINT audit_events_action_check TO audit_events_unpartitioned_action_check;

CREATE TABLE audit_events (
    id              uuid NOT NULL DEFAULT app.new_ulid(),
    occurred_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    organization_id uuid,
    actor_user_id   uuid,
    impersonator_id uuid,
    action          text NOT NULL
                    CONSTRAINT audit_events_action_check
                    CHECK (action IN ('CREATE', 'READ', 'UPDATE', 'DELETE', 'LOGIN', 'LOGOUT', 'ACCESS_DENIED')),
    resource_type   text NOT NULL,
    resource_id     uuid,
    changes         jsonb,
    request_id      text,
    ip              inet,
    user_agent      text
) PARTITION BY RANGE (occurred_at);

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION app.forbid_audit_rewrite();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION app.forbid_audit_rewrite();

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events
    USING (organization_id = app.current_tenant_id() AND app.has_role('ADMIN')
           AND app.facility_scope() IS NULL)
    WITH CHECK (organization_id IS NOT DISTINCT FROM app.current_tenant_id());

GRANT SELECT ON audit_events TO caregate_app;
GRANT INSERT ON audit_events TO caregate_definer;

-- Makes `p_to`'s policies those of `p_from` (same names, commands, roles,
-- USING and WITH CHECK).
CREATE FUNCTION app.audit_copy_policies(p_from regclass, p_to regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    pol record;
BEGIN
    FOR pol IN SELECT p.polname FROM pg_catalog.pg_policy p WHERE p.polrelid = p_to LOOP
        EXECUTE format('DROP POLICY %I ON %s', pol.polname, p_to);
    END LOOP;
    FOR pol IN
        SELECT p.polname,
               CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END AS kind,
               CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                             WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS cmd,
               CASE WHEN p.polroles = '{0}' THEN 'PUBLIC'
                    ELSE (SELECT string_agg(quote_ident(r.rolname), ', ')
                          FROM pg_catalog.pg_roles r WHERE r.oid = ANY (p.polroles)) END AS roles,
               pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS qual,
               pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS with_check
        FROM pg_catalog.pg_policy p WHERE p.polrelid = p_from
    LOOP
        EXECUTE format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s',
                       pol.polname, p_to, pol.kind, pol.cmd, pol.roles,
                       CASE WHEN pol.qual IS NOT NULL THEN format(' USING (%s)', pol.qual) ELSE '' END,
                       CASE WHEN pol.with_check IS NOT NULL THEN format(' WITH CHECK (%s)', pol.with_check) ELSE '' END);
    END LOOP;
END
$$;

-- What every partition carries beyond what PostgreSQL clones from the
-- parent: forced row-level security with the parent's policies, and the
-- TRUNCATE trigger. Nobody but the owner has any right on a partition.
CREATE FUNCTION app.audit_partition_secure(p_table regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', p_table);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', p_table);
    PERFORM app.audit_copy_policies('public.audit_events'::regclass, p_table);
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                   WHERE t.tgrelid = p_table AND t.tgname = 'audit_events_no_truncate') THEN
        EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION app.forbid_audit_rewrite()', p_table);
    END IF;
    EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', p_table);
END
$$;

-- The partition of a month: its name and bounds (the month in UTC).
CREATE FUNCTION app.audit_partition_of(p_month date,
    OUT name text, OUT range_from timestamptz, OUT range_to timestamptz)
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'audit_events_' || to_char(m, 'YYYY_MM'),
           m AT TIME ZONE 'UTC',
           (m + interval '1 month') AT TIME ZONE 'UTC'
    FROM (SELECT date_trunc('month', p_month::timestamp) AS m) AS month
$$;

-- The DEFAULT partition, created when missing.
CREATE FUNCTION app.audit_default_partition() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF to_regclass('public.audit_events_default') IS NULL THEN
        CREATE TABLE public.audit_events_default PARTITION OF public.audit_events DEFAULT;
        PERFORM app.audit_partition_secure('public.audit_events_default'::regclass);
    END IF;
END
$$;

-- Creates the partition of the month holding `p_month`; returns its name,
-- or NULL when a table of that name exists already (attached, or detached
-- and awaiting archiving). Rows of that month waiting in the DEFAULT
-- partition move into it: the default is detached, a fresh one attached,
-- and its rows re-inserted through the parent (nothing is updated or
-- deleted), all in the caller's transaction.
CREATE FUNCTION app.audit_partition_create(p_month date) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET row_security = off AS $$
DECLARE
    part record;
    moving boolean;
BEGIN
    SELECT * INTO part FROM app.audit_partition_of(p_month);
    IF to_regclass(format('public.%I', part.name)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    PERFORM app.audit_default_partition();
    SELECT EXISTS (SELECT 1 FROM public.audit_events_default d
                   WHERE d.occurred_at >= part.range_from AND d.occurred_at < part.range_to)
        INTO moving;
    IF moving THEN
        DROP TABLE IF EXISTS public.audit_events_default_moving;
        ALTER TABLE public.audit_events DETACH PARTITION public.audit_events_default;
        ALTER TABLE public.audit_events_default RENAME TO audit_events_default_moving;
        PERFORM app.audit_default_partition();
    END IF;
    EXECUTE format('CREATE TABLE public.%I PARTITION OF public.audit_events FOR VALUES FROM (%L) TO (%L)',
                   part.name,
                   to_char(part.range_from AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                   to_char(part.range_to AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
    PERFORM app.audit_partition_secure(format('public.%I', part.name)::regclass);
    IF moving THEN
        INSERT INTO public.audit_events SELECT * FROM public.audit_events_default_moving;
        DROP TABLE public.audit_events_default_moving;
    END IF;
    RETURN part.name;
END
$$;

-- Every monthly partition, attached or detached (a detached one is
-- waiting for its archive to be verified, or for re-attaching), with its
-- bounds; and the DEFAULT partition (bounds NULL).
CREATE FUNCTION app.audit_partitions()
RETURNS TABLE (name text, attached boolean, is_default boolean,
               range_from timestamptz, range_to timestamptz)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.relname::text,
           EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
                   WHERE i.inhrelid = c.oid AND i.inhparent = 'public.audit_events'::regclass),
           c.relname = 'audit_events_default',
           b.range_from, b.range_to
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
    CROSS JOIN LATERAL app.audit_partition_of(
        CASE WHEN c.relname ~ '^audit_events_[0-9]{4}_[0-9]{2}$'
             THEN to_date(substr(c.relname, 14), 'YYYY_MM') END) AS b
    WHERE c.relkind = 'r'
      AND (c.relname ~ '^audit_events_[0-9]{4}_[0-9]{2}$' OR c.relname = 'audit_events_default')
    ORDER BY b.range_from NULLS LAST
$$;

-- Detaches a month's partition for archiving. Detaching drops the row
-- triggers PostgreSQL cloned into it, so the table gets its own: it stays
-- append-only, under forced row-level security, out of the runtime role's
-- reach, until it is dropped or re-attached.
CREATE FUNCTION app.audit_partition_detach(p_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_name !~ '^audit_events_[0-9]{4}_[0-9]{2}$' THEN
        RAISE EXCEPTION '% is not a monthly audit partition', p_name;
    END IF;
    EXECUTE format('ALTER TABLE public.audit_events DETACH PARTITION public.%I', p_name);
    EXECUTE format('CREATE TRIGGER audit_events_detached_append_only BEFORE UPDATE OR DELETE ON public.%I '
                   'FOR EACH ROW EXECUTE FUNCTION app.forbid_audit_rewrite()', p_name);
END
$$;

-- Re-attaches a detached month (its archive failed): the trail is whole again.
CREATE FUNCTION app.audit_partition_attach(p_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    part record;
BEGIN
    IF p_name !~ '^audit_events_[0-9]{4}_[0-9]{2}$' THEN
        RAISE EXCEPTION '% is not a monthly audit partition', p_name;
    END IF;
    SELECT * INTO part FROM app.audit_partition_of(to_date(substr(p_name, 14), 'YYYY_MM'));
    EXECUTE format('DROP TRIGGER IF EXISTS audit_events_detached_append_only ON public.%I', p_name);
    EXECUTE format('ALTER TABLE public.audit_events ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)',
                   p_name,
                   to_char(part.range_from AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                   to_char(part.range_to AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
    PERFORM app.audit_partition_secure(format('public.%I', p_name)::regclass);
END
$$;

-- Drops a detached month whose archive was written and verified, only if
-- it still holds exactly the rows archived.
CREATE FUNCTION app.audit_partition_drop(p_name text, p_rows bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET row_security = off AS $$
DECLARE
    n bigint;
BEGIN
    IF p_name !~ '^audit_events_[0-9]{4}_[0-9]{2}$' THEN
        RAISE EXCEPTION '% is not a monthly audit partition', p_name;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
               WHERE i.inhrelid = format('public.%I', p_name)::regclass) THEN
        RAISE EXCEPTION '% is attached: only a detached, archived month is dropped', p_name;
    END IF;
    EXECUTE format('LOCK TABLE public.%I IN ACCESS EXCLUSIVE MODE', p_name);
    EXECUTE format('SELECT count(*) FROM public.%I', p_name) INTO n;
    IF n <> p_rows THEN
        RAISE EXCEPTION '% holds % rows, the archive %: not dropped', p_name, n, p_rows;
    END IF;
    EXECUTE format('DROP TABLE public.%I', p_name);
END
$$;

REVOKE ALL ON FUNCTION app.audit_copy_policies(regclass, regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.audit_partition_secure(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.audit_partition_of(date) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.audit_default_partition() FROM PUBLIC;
REVOKE ALL ON FUNCTION app.audit_partition_create(date) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.audit_partitions() FROM PUBLIC;
REVOKE ALL ON FUNCTION app.audit_partition_detach(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.audit_partition_attach(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION app.audit_partition_drop(text, bigint) FROM PUBLIC;

-- A partition for every month holding events, and this month and the
-- three after it; the rest (timestamps out of any sane range) go to DEFAULT.
SELECT app.audit_default_partition();
SELECT app.audit_partition_create(m)
FROM (SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date AS m
      FROM audit_events_unpartitioned
      WHERE occurred_at >= '1900-01-01T00:00:00Z' AND occurred_at < '3000-01-01T00:00:00Z'
      UNION
      SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => k))::date
      FROM generate_series(0, 3) AS k) AS months
ORDER BY m;

-- The rows move, then the indexes are built once per partition (faster
-- than maintaining them row by row).
INSERT INTO audit_events SELECT * FROM audit_events_unpartitioned;
DO $$
DECLARE
    before bigint;
    after bigint;
BEGIN
    SELECT count(*) INTO before FROM public.audit_events_unpartitioned;
    SELECT count(*) INTO after FROM public.audit_events;
    IF before <> after THEN
        RAISE EXCEPTION 'audit events: % rows before partitioning, % after', before, after;
    END IF;
END
$$;
DROP TABLE audit_events_unpartitioned;

ALTER TABLE audit_events ADD CONSTRAINT audit_events_pkey PRIMARY KEY (id, occurred_at);
CREATE INDEX audit_events_org_time_idx ON audit_events (organization_id, occurred_at DESC, id DESC);
CREATE INDEX audit_events_resource_idx ON audit_events (resource_type, resource_id);
-- `auditEvents(filter: {resourceId})`: the clinic's events of one row,
-- newest first, read from the index in the order listed.
CREATE INDEX audit_events_org_resource_idx ON audit_events (organization_id, resource_id, occurred_at DESC, id DESC);
