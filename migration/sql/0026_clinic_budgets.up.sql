-- Per-clinic budgets: how many requests and how many complexity points a
-- clinic may spend per minute, so that one clinic cannot starve the others.
-- The defaults are the servers' configuration; a super admin may set a
-- clinic's own (clinic_budgets). Every server counts its own traffic and
-- adds it to the clinic-wide counts (clinic_budget_usage) every few hundred
-- milliseconds through app.sync_clinic_budgets, which answers the totals.

-- A clinic's own limits, per minute; NULL: the servers' default. 0: none.
CREATE TABLE clinic_budgets (
    organization_id     uuid PRIMARY KEY REFERENCES organizations (id),
    requests_per_minute integer CHECK (requests_per_minute BETWEEN 0 AND 1000000000),
    points_per_minute   integer CHECK (points_per_minute BETWEEN 0 AND 1000000000),
    updated_by          uuid NOT NULL REFERENCES users (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- The clinic's admins read it; only a super admin acting in the clinic
-- through an (audited) impersonation writes it.
ALTER TABLE clinic_budgets ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinic_budgets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON clinic_budgets
    USING (organization_id = app.current_tenant_id() AND app.has_role('ADMIN'))
    WITH CHECK (organization_id = app.current_tenant_id() AND app.has_role('ADMIN')
                AND app.is_super_admin() AND app.impersonator_id() IS NOT NULL);
GRANT SELECT, INSERT ON clinic_budgets TO caregate_app;
GRANT UPDATE (requests_per_minute, points_per_minute, updated_by, updated_at)
    ON clinic_budgets TO caregate_app;
CREATE TRIGGER clinic_budgets_touch BEFORE UPDATE ON clinic_budgets
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER clinic_budgets_audit AFTER INSERT OR UPDATE OR DELETE ON clinic_budgets
    FOR EACH ROW EXECUTE FUNCTION app.audit_row();

-- What each clinic spent in each window, all servers together. Unlogged:
-- losing the counts in a crash only forgives a window's spending. Reached
-- only through app.sync_clinic_budgets: the runtime role has no privilege
-- on it at all.
CREATE UNLOGGED TABLE clinic_budget_usage (
    organization_id uuid NOT NULL,
    window_start    timestamptz NOT NULL,
    requests        bigint NOT NULL CHECK (requests >= 0),
    points          bigint NOT NULL CHECK (points >= 0),
    PRIMARY KEY (organization_id, window_start)
);
ALTER TABLE clinic_budget_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinic_budget_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY functions_only ON clinic_budget_usage USING (false) WITH CHECK (false);
GRANT SELECT, INSERT, UPDATE, DELETE ON clinic_budget_usage TO caregate_definer;
GRANT SELECT ON clinic_budgets TO caregate_definer;

-- Adds one server's counts of the window starting at p_window_start (a
-- request count and a point count per clinic, since its last call) to the
-- clinic-wide counts, and answers, for every clinic named, the counts of
-- that window and the clinic's own limits (NULL: the servers' default).
-- Clinics are written in id order, so two servers syncing at once never
-- deadlock. Windows that started more than two hours ago are forgotten, a
-- few at a time.
CREATE FUNCTION app.sync_clinic_budgets(
    p_window_start timestamptz, p_clinics uuid[], p_requests bigint[], p_points bigint[]
)
RETURNS TABLE (organization_id uuid, requests bigint, points bigint,
               requests_per_minute integer, points_per_minute integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
#variable_conflict use_column
BEGIN
    IF p_window_start IS NULL
       OR cardinality(p_clinics) IS DISTINCT FROM cardinality(p_requests)
       OR cardinality(p_clinics) IS DISTINCT FROM cardinality(p_points)
       OR cardinality(p_clinics) > 100000
       OR EXISTS (SELECT 1 FROM unnest(p_requests, p_points) AS d (r, p) WHERE d.r < 0 OR d.p < 0) THEN
        RAISE EXCEPTION 'sync_clinic_budgets: a count of requests and of points, neither negative, per clinic (at most 100000)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM public.clinic_budget_usage WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM public.clinic_budget_usage
        WHERE window_start < now() - interval '2 hours' LIMIT 1000));
    INSERT INTO public.clinic_budget_usage AS u (organization_id, window_start, requests, points)
    SELECT d.clinic, p_window_start, sum(d.requests), sum(d.points)
    FROM unnest(p_clinics, p_requests, p_points) AS d (clinic, requests, points)
    WHERE d.clinic IS NOT NULL
    GROUP BY d.clinic
    HAVING sum(d.requests) > 0 OR sum(d.points) > 0
    ORDER BY d.clinic
    ON CONFLICT ON CONSTRAINT clinic_budget_usage_pkey
    DO UPDATE SET requests = u.requests + EXCLUDED.requests, points = u.points + EXCLUDED.points;
    RETURN QUERY
    SELECT c.id, coalesce(u.requests, 0), coalesce(u.points, 0),
           b.requests_per_minute, b.points_per_minute
    FROM (SELECT DISTINCT x.id FROM unnest(p_clinics) AS x (id) WHERE x.id IS NOT NULL) AS c
    LEFT JOIN public.clinic_budget_usage u
           ON u.organization_id = c.id AND u.window_start = p_window_start
    LEFT JOIN public.clinic_budgets b ON b.organization_id = c.id;
END
$$;
ALTER FUNCTION app.sync_clinic_budgets(timestamptz, uuid[], bigint[], bigint[]) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.sync_clinic_budgets(timestamptz, uuid[], bigint[], bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.sync_clinic_budgets(timestamptz, uuid[], bigint[], bigint[]) TO caregate_app;
