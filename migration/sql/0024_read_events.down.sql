-- Back to one READ row per patient: every event listing several patients
-- is copied out as one row per patient (the trail is append-only, so the
-- listing rows stay, with resource_id NULL).

INSERT INTO audit_events (occurred_at, organization_id, actor_user_id, impersonator_id, action,
                          resource_type, resource_id, changes, request_id, ip, user_agent)
SELECT e.occurred_at, e.organization_id, e.actor_user_id, e.impersonator_id, e.action,
       e.resource_type, rid, e.changes, e.request_id, e.ip, e.user_agent
FROM audit_events e, unnest(e.resource_ids) AS rid
WHERE e.resource_ids IS NOT NULL;

CREATE OR REPLACE FUNCTION app.record_event(action text, resource_type text, resource_ids uuid[], details jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF action NOT IN ('READ', 'LOGIN', 'LOGOUT', 'ACCESS_DENIED') THEN
        RAISE EXCEPTION 'action % is recorded by triggers only', action
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO audit_events (organization_id, actor_user_id, impersonator_id, action,
                              resource_type, resource_id, changes, request_id, ip, user_agent)
    SELECT app.current_tenant_id(), app.current_user_id(), app.impersonator_id(), action,
           resource_type, rid, details, app.request_id(),
           app.setting('app.ip')::inet, app.setting('app.user_agent')
    FROM unnest(CASE WHEN cardinality(resource_ids) > 0 THEN resource_ids ELSE ARRAY[NULL::uuid] END) AS rid;
END
$$;

DROP INDEX audit_events_resource_ids;
ALTER TABLE audit_events DROP COLUMN resource_ids;
