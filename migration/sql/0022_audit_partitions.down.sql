-- Back to one unpartitioned audit_events table holding every event: those
-- of every partition, and of any month detached and not yet dropped.

SET LOCAL row_security = off;

CREATE TABLE audit_events_unpartitioned (
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

INSERT INTO audit_events_unpartitioned SELECT * FROM audit_events;
DO $$
DECLARE
    part record;
BEGIN
    FOR part IN SELECT p.name FROM app.audit_partitions() p WHERE NOT p.attached LOOP
        EXECUTE format('INSERT INTO public.audit_events_unpartitioned SELECT * FROM public.%I', part.name);
        EXECUTE format('DROP TABLE public.%I', part.name);
    END LOOP;
END
$$;

ALTER TABLE audit_events_unpartitioned ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events_unpartitioned FORCE ROW LEVEL SECURITY;
SELECT app.audit_copy_policies('audit_events', 'audit_events_unpartitioned');

DROP FUNCTION app.audit_partition_drop(text, bigint);
DROP FUNCTION app.audit_partition_attach(text);
DROP FUNCTION app.audit_partition_detach(text);
DROP FUNCTION app.audit_partitions();
DROP FUNCTION app.audit_partition_create(date);
DROP FUNCTION app.audit_default_partition();
DROP FUNCTION app.audit_partition_of(date);
DROP FUNCTION app.audit_partition_secure(regclass);
DROP FUNCTION app.audit_copy_policies(regclass, regclass);

DROP TABLE audit_events;
ALTER TABLE audit_events_unpartitioned RENAME TO audit_events;
ALTER TABLE audit_events RENAME CONSTRAINT audit_events_unpartitioned_pkey TO audit_events_pkey;
ALTER TABLE audit_events RENAME CONSTRAINT audit_events_unpartitioned_action_check TO audit_events_action_check;
CREATE INDEX audit_events_org_time_idx ON audit_events (organization_id, occurred_at DESC, id DESC);
CREATE INDEX audit_events_resource_idx ON audit_events (resource_type, resource_id);

CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION app.forbid_audit_rewrite();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION app.forbid_audit_rewrite();

GRANT SELECT ON audit_events TO caregate_app;
GRANT INSERT ON audit_events TO caregate_definer;
