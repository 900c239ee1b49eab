-- A request that shows several patients is recorded as ONE READ event
-- listing them all in `resource_ids` (as FHIR's AuditEvent holds many
-- entities), not one row per patient: a page of 50 patients writes one row
-- and its index entries instead of 50. `auditEvents(resourceId:)` finds a
-- patient's reads in `resource_id` or `resource_ids` (GIN index).

ALTER TABLE audit_events ADD COLUMN resource_ids uuid[];

CREATE INDEX audit_events_resource_ids ON audit_events USING gin (resource_ids);

CREATE OR REPLACE FUNCTION app.record_event(action text, resource_type text, resource_ids uuid[], details jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF action NOT IN ('READ', 'LOGIN', 'LOGOUT', 'ACCESS_DENIED') THEN
        RAISE EXCEPTION 'action % is recorded by triggers only', action
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF action = 'READ' AND cardinality(resource_ids) > 1 THEN
        INSERT INTO public.audit_events (organization_id, actor_user_id, impersonator_id, action,
                                         resource_type, resource_id, resource_ids, changes,
                                         request_id, ip, user_agent)
        VALUES (app.current_tenant_id(), app.current_user_id(), app.impersonator_id(), action,
                resource_type, NULL, resource_ids, details, app.request_id(),
                app.setting('app.ip')::inet, app.setting('app.user_agent'));
        RETURN;
    END IF;
    INSERT INTO public.audit_events (organization_id, actor_user_id, impersonator_id, action,
                                     resource_type, resource_id, changes, request_id, ip, user_agent)
    SELECT app.current_tenant_id(), app.current_user_id(), app.impersonator_id(), action,
           resource_type, rid, details, app.request_id(),
           app.setting('app.ip')::inet, app.setting('app.user_agent')
    FROM unnest(CASE WHEN cardinality(resource_ids) > 0 THEN resource_ids ELSE ARRAY[NULL::uuid] END) AS rid;
END
$$;
