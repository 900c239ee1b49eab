-- The audit trail: append-only, written by triggers and by two narrow
-- functions, never by the runtime role directly (it has no INSERT, UPDATE or
-- DELETE on the table), so the application cannot forge or rewrite it.

CREATE TABLE audit_events (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    occurred_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    organization_id uuid,
    actor_user_id   uuid,
    impersonator_id uuid,
    action          text NOT NULL
                    CHECK (action IN ('CREATE', 'READ', 'UPDATE', 'DELETE', 'LOGIN', 'LOGOUT', 'ACCESS_DENIED')),
    resource_type   text NOT NULL,
    resource_id     uuid,
    changes         jsonb,
    request_id      text,
    ip              inet,
    user_agent      text
);
CREATE INDEX audit_events_org_time_idx ON audit_events (organization_id, occurred_at DESC, id DESC);
CREATE INDEX audit_events_resource_idx ON audit_events (resource_type, resource_id);

CREATE FUNCTION app.forbid_audit_rewrite() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION app.forbid_audit_rewrite();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION app.forbid_audit_rewrite();

-- Columns that never go into an audit record: secrets, and values derived
-- from other columns.
CREATE FUNCTION app.audit_redact(doc jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT doc - 'password_hash' - 'search_name' - 'updated_at'
$$;

-- One audit event per written row: before/after of the changed columns,
-- with actor, impersonator and request id read from the request context.
CREATE FUNCTION app.audit_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    old_doc jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN app.audit_redact(to_jsonb(OLD)) END;
    new_doc jsonb := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN app.audit_redact(to_jsonb(NEW)) END;
    row_doc jsonb := coalesce(new_doc, old_doc);
    before_doc jsonb := '{}';
    after_doc jsonb := '{}';
    col text;
    act text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        act := 'CREATE';
        before_doc := NULL;
        after_doc := new_doc;
    ELSIF TG_OP = 'DELETE' THEN
        act := 'DELETE';
        before_doc := old_doc;
        after_doc := NULL;
    ELSE
        FOR col IN SELECT jsonb_object_keys(new_doc) LOOP
            IF new_doc -> col IS DISTINCT FROM old_doc -> col THEN
                before_doc := before_doc || jsonb_build_object(col, old_doc -> col);
                after_doc := after_doc || jsonb_build_object(col, new_doc -> col);
            END IF;
        END LOOP;
        IF after_doc = '{}' THEN
            RETURN NULL;
        END IF;
        -- A soft delete is a delete to anyone reading the trail.
        act := CASE WHEN (old_doc ->> 'deleted_at') IS NULL AND (new_doc ->> 'deleted_at') IS NOT NULL
                    THEN 'DELETE' ELSE 'UPDATE' END;
    END IF;

    INSERT INTO audit_events (organization_id, actor_user_id, impersonator_id, action,
                              resource_type, resource_id, changes, request_id, ip, user_agent)
    VALUES (coalesce((row_doc ->> 'organization_id')::uuid, app.current_tenant_id()),
            app.current_user_id(), app.impersonator_id(), act,
            TG_TABLE_NAME, (row_doc ->> 'id')::uuid,
            jsonb_build_object('before', before_doc, 'after', after_doc),
            app.request_id(), app.setting('app.ip')::inet, app.setting('app.user_agent'));
    RETURN NULL;
END
$$;

-- Events that are not row writes (reads, logins, logouts, refusals), written
-- by the API. Actor, tenant and request come from the context, never from
-- the caller; CREATE/UPDATE/DELETE can only come from the triggers.
CREATE FUNCTION app.record_event(action text, resource_type text, resource_ids uuid[], details jsonb)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
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
REVOKE ALL ON FUNCTION app.record_event(text, text, uuid[], jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.record_event(text, text, uuid[], jsonb) TO caregate_app;

CREATE TRIGGER users_audit AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER organization_memberships_audit AFTER INSERT OR UPDATE OR DELETE ON organization_memberships
    FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER providers_audit AFTER INSERT OR UPDATE OR DELETE ON providers
    FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER patients_audit AFTER INSERT OR UPDATE OR DELETE ON patients
    FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER contact_methods_audit AFTER INSERT OR UPDATE OR DELETE ON contact_methods
    FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER care_team_assignments_audit AFTER INSERT OR UPDATE OR DELETE ON care_team_assignments
    FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER proxy_assignments_audit AFTER INSERT OR UPDATE OR DELETE ON proxy_assignments
    FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER appointments_audit AFTER INSERT OR UPDATE OR DELETE ON appointments
    FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER payer_authorizations_audit AFTER INSERT OR UPDATE OR DELETE ON payer_authorizations
    FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER user_consents_audit AFTER INSERT OR UPDATE OR DELETE ON user_consents
    FOR EACH ROW EXECUTE FUNCTION app.audit_row();
