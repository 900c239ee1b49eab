-- Secure messaging about a patient, per-user notifications, and the events
-- live-update sockets listen for.
--
-- Threads, their participants, messages (edits and deletions keep their
-- history), read receipts and attachment references, under the same
-- sub-query-free policies as every tenant table: staff see their clinic's
-- threads; a portal user (a patient, a proxy) sees only the threads they
-- take part in — the request context lists them (app.threads) — and only
-- while their grant allows messaging about that patient. The sender of a
-- message is always the request's user (WITH CHECK).
--
-- Notifications are created by triggers in the transaction of their cause
-- (a message, a booking or change, a claim's status), so they exist exactly
-- when the cause committed. Every change a live subscriber may care about
-- is announced with pg_notify on channel `caregate_events`, carrying ids
-- only: each server re-reads the row under the subscriber's own context
-- before sending anything.
--
-- Also: the request context can be re-checked without counting as the
-- session's activity (sockets), and says whether the clinic's MFA
-- requirement leaves the session able only to enrol.

-- The threads a portal user takes part in, as the request context lists
-- them ('{}' without a context).
CREATE FUNCTION app.thread_scope() RETURNS uuid[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('app.threads', true), '')::uuid[], '{}'::uuid[])
$$;

CREATE TABLE message_threads (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    patient_id      uuid NOT NULL,
    subject         text NOT NULL CHECK (length(btrim(subject)) BETWEEN 1 AND 200),
    created_by      uuid NOT NULL REFERENCES users (id) DEFAULT app.current_user_id(),
    message_count   integer NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    last_message_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, patient_id, id),
    FOREIGN KEY (organization_id, patient_id) REFERENCES patients (organization_id, id)
);
CREATE INDEX message_threads_recent_idx ON message_threads (organization_id, (coalesce(last_message_at, created_at)) DESC, id DESC);
CREATE INDEX message_threads_patient_idx ON message_threads (organization_id, patient_id, created_at DESC);

-- Who takes part in a thread: clinic staff, the patient's own login, or a
-- proxy allowed to message (the kind is derived, never given). The read
-- receipt is the participant's last_read_at.
CREATE TABLE thread_participants (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    thread_id       uuid NOT NULL,
    patient_id      uuid NOT NULL,
    user_id         uuid NOT NULL REFERENCES users (id),
    kind            text NOT NULL CHECK (kind IN ('STAFF', 'PATIENT', 'PROXY')),
    added_by        uuid REFERENCES users (id) DEFAULT app.current_user_id(),
    added_at        timestamptz NOT NULL DEFAULT now(),
    last_read_at    timestamptz,
    removed_at      timestamptz,
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, thread_id, user_id),
    FOREIGN KEY (organization_id, patient_id, thread_id)
        REFERENCES message_threads (organization_id, patient_id, id)
);
CREATE INDEX thread_participants_user_idx ON thread_participants (organization_id, user_id) WHERE removed_at IS NULL;

CREATE TABLE messages (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    thread_id       uuid NOT NULL,
    patient_id      uuid NOT NULL,
    sender_user_id  uuid NOT NULL REFERENCES users (id) DEFAULT app.current_user_id(),
    -- NULL once deleted (the text stays in message_revisions).
    body            text CHECK (length(btrim(body)) BETWEEN 1 AND 10000),
    sent_at         timestamptz NOT NULL DEFAULT now(),
    edited_at       timestamptz,
    deleted_at      timestamptz,
    revision        integer NOT NULL DEFAULT 1 CHECK (revision >= 1),
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, thread_id, id),
    FOREIGN KEY (organization_id, patient_id, thread_id)
        REFERENCES message_threads (organization_id, patient_id, id),
    CHECK ((deleted_at IS NULL) = (body IS NOT NULL))
);
CREATE INDEX messages_thread_idx ON messages (organization_id, thread_id, sent_at DESC, id DESC);

-- Every earlier text of an edited or deleted message: append-only.
CREATE TABLE message_revisions (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    thread_id       uuid NOT NULL,
    patient_id      uuid NOT NULL,
    message_id      uuid NOT NULL,
    revision        integer NOT NULL,
    body            text NOT NULL,
    replaced_at     timestamptz NOT NULL DEFAULT now(),
    replaced_by     uuid NOT NULL REFERENCES users (id) DEFAULT app.current_user_id(),
    UNIQUE (organization_id, message_id, revision),
    FOREIGN KEY (organization_id, thread_id, message_id) REFERENCES messages (organization_id, thread_id, id)
);

-- A file sent with a message, by reference only: the blob lives elsewhere.
CREATE TABLE message_attachments (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    thread_id       uuid NOT NULL,
    patient_id      uuid NOT NULL,
    message_id      uuid NOT NULL,
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 255),
    media_type      text NOT NULL CHECK (media_type ~ '^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$'),
    size_bytes      bigint NOT NULL CHECK (size_bytes BETWEEN 0 AND 1073741824),
    sha256          bytea NOT NULL CHECK (length(sha256) = 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, thread_id, message_id) REFERENCES messages (organization_id, thread_id, id)
);
CREATE INDEX message_attachments_message_idx ON message_attachments (organization_id, message_id);

CREATE TABLE notifications (
    id              uuid PRIMARY KEY DEFAULT app.new_ulid(),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    user_id         uuid NOT NULL REFERENCES users (id),
    kind            text NOT NULL CHECK (kind IN ('NEW_MESSAGE', 'APPOINTMENT_BOOKED', 'APPOINTMENT_CHANGED',
                                                  'APPOINTMENT_CANCELLED', 'CLAIM_STATUS', 'CONSENT_REQUIRED')),
    -- What it is about, by id only: a notification carries no PHI.
    subject_type    text NOT NULL CHECK (subject_type IN ('message_threads', 'appointments', 'claims', 'consent_documents')),
    subject_id      uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    read_at         timestamptz,
    UNIQUE (organization_id, id)
);
CREATE INDEX notifications_user_idx ON notifications (organization_id, user_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread_idx ON notifications (organization_id, user_id) WHERE read_at IS NULL;

-- Which notifications a user wants and when not to be disturbed, in their
-- time zone. Delivery channels read them; the live socket honours them.
CREATE TABLE notification_preferences (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    user_id         uuid NOT NULL REFERENCES users (id),
    muted_kinds     text[] NOT NULL DEFAULT '{}'
                    CHECK (muted_kinds <@ ARRAY['NEW_MESSAGE', 'APPOINTMENT_BOOKED', 'APPOINTMENT_CHANGED',
                                                'APPOINTMENT_CANCELLED', 'CLAIM_STATUS', 'CONSENT_REQUIRED']),
    quiet_start     time,
    quiet_end       time,
    timezone        text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, user_id),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);
CREATE TRIGGER notification_preferences_timezone BEFORE INSERT OR UPDATE OF timezone ON notification_preferences
    FOR EACH ROW EXECUTE FUNCTION app.check_timezone();
CREATE TRIGGER notification_preferences_touch BEFORE UPDATE ON notification_preferences
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- Policies: no sub-query; the row's own columns against the context.
ALTER TABLE message_threads ENABLE ROW LEVEL SECURITY;
ALTER TABLE message_threads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON message_threads
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR (id = ANY (app.thread_scope())
                                   AND patient_id = ANY (app.patient_scope('message')))))
    WITH CHECK (organization_id = app.current_tenant_id()
                AND (app.is_staff() OR patient_id = ANY (app.patient_scope('message'))));

ALTER TABLE thread_participants ENABLE ROW LEVEL SECURITY;
ALTER TABLE thread_participants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON thread_participants
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR (thread_id = ANY (app.thread_scope())
                                   AND patient_id = ANY (app.patient_scope('message')))))
    WITH CHECK (organization_id = app.current_tenant_id()
                AND (app.is_staff() OR patient_id = ANY (app.patient_scope('message'))));

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON messages
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR (thread_id = ANY (app.thread_scope())
                                   AND patient_id = ANY (app.patient_scope('message')))))
    WITH CHECK (organization_id = app.current_tenant_id()
                AND sender_user_id = app.current_user_id()
                AND (app.is_staff() OR (thread_id = ANY (app.thread_scope())
                                        AND patient_id = ANY (app.patient_scope('message')))));

ALTER TABLE message_revisions ENABLE ROW LEVEL SECURITY;
ALTER TABLE message_revisions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON message_revisions
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR (thread_id = ANY (app.thread_scope())
                                   AND patient_id = ANY (app.patient_scope('message')))))
    WITH CHECK (organization_id = app.current_tenant_id() AND replaced_by = app.current_user_id());

ALTER TABLE message_attachments ENABLE ROW LEVEL SECURITY;
ALTER TABLE message_attachments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON message_attachments
    USING (organization_id = app.current_tenant_id()
           AND (app.is_staff() OR (thread_id = ANY (app.thread_scope())
                                   AND patient_id = ANY (app.patient_scope('message')))))
    WITH CHECK (organization_id = app.current_tenant_id()
                AND (app.is_staff() OR (thread_id = ANY (app.thread_scope())
                                        AND patient_id = ANY (app.patient_scope('message')))));

ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifications FORCE ROW LEVEL SECURITY;
CREATE POLICY own_only ON notifications
    USING (organization_id = app.current_tenant_id() AND user_id = app.current_user_id())
    WITH CHECK (organization_id = app.current_tenant_id() AND user_id = app.current_user_id());

ALTER TABLE notification_preferences ENABLE ROW LEVEL SECURITY;
ALTER TABLE notification_preferences FORCE ROW LEVEL SECURITY;
CREATE POLICY own_only ON notification_preferences
    USING (organization_id = app.current_tenant_id() AND user_id = app.current_user_id())
    WITH CHECK (organization_id = app.current_tenant_id() AND user_id = app.current_user_id());

GRANT SELECT, INSERT, UPDATE (subject, updated_at) ON message_threads TO caregate_app;
GRANT SELECT, INSERT, UPDATE (last_read_at, removed_at) ON thread_participants TO caregate_app;
GRANT SELECT, INSERT, UPDATE (body, edited_at, deleted_at, revision) ON messages TO caregate_app;
GRANT SELECT, INSERT ON message_revisions, message_attachments TO caregate_app;
-- Notifications are created by the triggers below (and a user's own, such
-- as CONSENT_REQUIRED, by the service); a user marks theirs read.
GRANT SELECT, INSERT, UPDATE (read_at) ON notifications TO caregate_app;
GRANT SELECT, INSERT, UPDATE ON notification_preferences TO caregate_app;

-- The definer (BYPASSRLS, confined) reads what deriving a participant's kind
-- and a notification's recipients needs, and writes those rows.
GRANT SELECT ON message_threads, thread_participants, organization_memberships, providers, claims
    TO caregate_definer;
GRANT UPDATE (message_count, last_message_at, updated_at) ON message_threads TO caregate_definer;
GRANT UPDATE (last_read_at) ON thread_participants TO caregate_definer;
GRANT INSERT ON notifications TO caregate_definer;

-- A participant's kind, from who they are to the thread's patient: staff of
-- the clinic, the patient's own login, or a proxy whose live grant allows
-- messaging. Anyone else is refused. A portal user adds participants only
-- to a thread they started.
CREATE FUNCTION app.derive_participant() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    t message_threads%ROWTYPE;
BEGIN
    SELECT * INTO t FROM message_threads WHERE organization_id = NEW.organization_id AND id = NEW.thread_id;
    IF t.id IS NULL OR NEW.organization_id IS DISTINCT FROM app.current_tenant_id() THEN
        RAISE EXCEPTION 'INELIGIBLE_PARTICIPANT' USING ERRCODE = 'CG409';
    END IF;
    IF NOT app.is_staff() AND t.created_by IS DISTINCT FROM app.current_user_id() THEN
        RAISE EXCEPTION 'PROXY_SCOPE' USING ERRCODE = 'CG403';
    END IF;
    NEW.patient_id := t.patient_id;
    NEW.kind := CASE
        WHEN EXISTS (SELECT 1 FROM organization_memberships m
                     WHERE m.organization_id = t.organization_id AND m.user_id = NEW.user_id
                       AND m.deleted_at IS NULL) THEN 'STAFF'
        WHEN EXISTS (SELECT 1 FROM patients p
                     WHERE p.organization_id = t.organization_id AND p.id = t.patient_id
                       AND p.user_id = NEW.user_id AND p.deleted_at IS NULL) THEN 'PATIENT'
        WHEN EXISTS (SELECT 1 FROM proxy_assignments a
                     WHERE a.organization_id = t.organization_id AND a.patient_id = t.patient_id
                       AND a.proxy_user_id = NEW.user_id AND a.can_message_providers
                       AND a.revoked_at IS NULL AND a.granted_at <= now()
                       AND (a.expires_at IS NULL OR a.expires_at > now())) THEN 'PROXY'
    END;
    IF NEW.kind IS NULL THEN
        RAISE EXCEPTION 'INELIGIBLE_PARTICIPANT' USING ERRCODE = 'CG409';
    END IF;
    NEW.added_by := app.current_user_id();
    RETURN NEW;
END
$$;
ALTER FUNCTION app.derive_participant() OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.derive_participant() FROM PUBLIC;
CREATE TRIGGER thread_participants_derive BEFORE INSERT ON thread_participants
    FOR EACH ROW EXECUTE FUNCTION app.derive_participant();

-- Adds a thread the current portal user has just joined (a row of
-- thread_participants exists) to this transaction's context, so they can
-- write its first message. Nothing else: staff need no such entry.
CREATE FUNCTION app.enter_thread(p_thread uuid) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF app.has_role('PORTAL') AND NOT p_thread = ANY (app.thread_scope()) AND EXISTS (
        SELECT 1 FROM thread_participants tp
        WHERE tp.organization_id = app.current_tenant_id() AND tp.thread_id = p_thread
          AND tp.user_id = app.current_user_id() AND tp.removed_at IS NULL) THEN
        PERFORM set_config('app.threads', (app.thread_scope() || p_thread)::text, true);
        RETURN true;
    END IF;
    RETURN false;
END
$$;
ALTER FUNCTION app.enter_thread(uuid) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.enter_thread(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.enter_thread(uuid) TO caregate_app;

-- Names of the people taking part in threads the caller can see (a portal
-- user cannot read other users; this shows who wrote to them).
CREATE FUNCTION app.participant_names(p_ids uuid[])
RETURNS TABLE (id uuid, display_name text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT u.id, u.display_name FROM users u
    WHERE u.id = ANY (p_ids) AND EXISTS (
        SELECT 1 FROM thread_participants tp
        WHERE tp.organization_id = app.current_tenant_id() AND tp.user_id = u.id
          AND (app.is_staff() OR tp.thread_id = ANY (app.thread_scope())))
$$;
ALTER FUNCTION app.participant_names(uuid[]) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.participant_names(uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.participant_names(uuid[]) TO caregate_app;

-- A message belongs to its thread's patient (copied, so that the policy
-- compares the row's own column).
CREATE FUNCTION app.message_defaults() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    SELECT t.patient_id INTO NEW.patient_id FROM message_threads t
    WHERE t.organization_id = NEW.organization_id AND t.id = NEW.thread_id;
    NEW.sent_at := now();
    NEW.revision := 1;
    NEW.edited_at := NULL;
    NEW.deleted_at := NULL;
    RETURN NEW;
END
$$;
CREATE TRIGGER messages_defaults BEFORE INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION app.message_defaults();

-- An edit or a deletion keeps the text it replaces; a deleted message
-- stays deleted; nothing else of a message changes.
CREATE FUNCTION app.message_revision() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF OLD.deleted_at IS NOT NULL THEN
        RAISE EXCEPTION 'MESSAGE_DELETED' USING ERRCODE = 'CG409';
    END IF;
    IF (NEW.organization_id, NEW.thread_id, NEW.patient_id, NEW.sender_user_id, NEW.sent_at)
       IS DISTINCT FROM (OLD.organization_id, OLD.thread_id, OLD.patient_id, OLD.sender_user_id, OLD.sent_at) THEN
        RAISE EXCEPTION 'a message keeps its thread, sender and time' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.body IS NOT DISTINCT FROM OLD.body AND NEW.deleted_at IS NULL THEN
        RETURN OLD;
    END IF;
    INSERT INTO message_revisions (organization_id, thread_id, patient_id, message_id, revision, body)
    VALUES (OLD.organization_id, OLD.thread_id, OLD.patient_id, OLD.id, OLD.revision, OLD.body);
    NEW.revision := OLD.revision + 1;
    IF NEW.deleted_at IS NOT NULL THEN
        NEW.body := NULL;
        NEW.deleted_at := now();
    ELSE
        NEW.edited_at := now();
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER messages_revision BEFORE UPDATE ON messages
    FOR EACH ROW EXECUTE FUNCTION app.message_revision();

CREATE FUNCTION app.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'CG409';
END
$$;
CREATE TRIGGER message_revisions_append_only BEFORE UPDATE OR DELETE ON message_revisions
    FOR EACH ROW EXECUTE FUNCTION app.refuse_change();
CREATE TRIGGER message_revisions_no_truncate BEFORE TRUNCATE ON message_revisions
    FOR EACH STATEMENT EXECUTE FUNCTION app.refuse_change();

-- An attachment belongs to its message's thread and patient.
CREATE FUNCTION app.attachment_defaults() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    SELECT m.thread_id, m.patient_id INTO NEW.thread_id, NEW.patient_id FROM messages m
    WHERE m.organization_id = NEW.organization_id AND m.id = NEW.message_id
      AND m.sender_user_id = app.current_user_id();
    IF NEW.thread_id IS NULL THEN
        RAISE EXCEPTION 'an attachment goes with a message of its sender' USING ERRCODE = 'CG403';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER message_attachments_defaults BEFORE INSERT ON message_attachments
    FOR EACH ROW EXECUTE FUNCTION app.attachment_defaults();

-- A new message: the thread's counters, the sender's own read receipt, and
-- a NEW_MESSAGE notification for every other participant who may still
-- read the thread (a proxy only while their grant allows messaging).
CREATE FUNCTION app.message_sent() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    UPDATE message_threads SET message_count = message_count + 1, last_message_at = NEW.sent_at,
                               updated_at = now()
    WHERE organization_id = NEW.organization_id AND id = NEW.thread_id;
    UPDATE thread_participants SET last_read_at = NEW.sent_at
    WHERE organization_id = NEW.organization_id AND thread_id = NEW.thread_id
      AND user_id = NEW.sender_user_id;
    INSERT INTO notifications (organization_id, user_id, kind, subject_type, subject_id)
    SELECT NEW.organization_id, tp.user_id, 'NEW_MESSAGE', 'message_threads', NEW.thread_id
    FROM thread_participants tp
    WHERE tp.organization_id = NEW.organization_id AND tp.thread_id = NEW.thread_id
      AND tp.removed_at IS NULL AND tp.user_id <> NEW.sender_user_id
      AND (tp.kind <> 'PROXY' OR EXISTS (
            SELECT 1 FROM proxy_assignments a
            WHERE a.organization_id = tp.organization_id AND a.patient_id = tp.patient_id
              AND a.proxy_user_id = tp.user_id AND a.can_message_providers
              AND a.revoked_at IS NULL AND a.granted_at <= now()
              AND (a.expires_at IS NULL OR a.expires_at > now())));
    RETURN NULL;
END
$$;
ALTER FUNCTION app.message_sent() OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.message_sent() FROM PUBLIC;
CREATE TRIGGER messages_sent AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION app.message_sent();

-- Bookings, changes and cancellations notify the patient's own login, the
-- proxies allowed to see appointments, and the provider's login — not the
-- person who made the change.
CREATE FUNCTION app.appointment_notifications() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    what text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        what := 'APPOINTMENT_BOOKED';
    ELSIF NEW.status = 'CANCELLED' AND OLD.status <> 'CANCELLED' THEN
        what := 'APPOINTMENT_CANCELLED';
    ELSIF (NEW.starts_at, NEW.ends_at, NEW.provider_id, NEW.status, NEW.type, NEW.facility_id)
          IS DISTINCT FROM (OLD.starts_at, OLD.ends_at, OLD.provider_id, OLD.status, OLD.type, OLD.facility_id) THEN
        what := 'APPOINTMENT_CHANGED';
    ELSE
        RETURN NULL;
    END IF;
    INSERT INTO notifications (organization_id, user_id, kind, subject_type, subject_id)
    SELECT DISTINCT NEW.organization_id, r.user_id, what, 'appointments', NEW.id
    FROM (
        SELECT p.user_id FROM patients p
        WHERE p.organization_id = NEW.organization_id AND p.id = NEW.patient_id AND p.deleted_at IS NULL
        UNION ALL
        SELECT a.proxy_user_id FROM proxy_assignments a
        WHERE a.organization_id = NEW.organization_id AND a.patient_id = NEW.patient_id
          AND a.can_view_appointments AND a.revoked_at IS NULL AND a.granted_at <= now()
          AND (a.expires_at IS NULL OR a.expires_at > now())
        UNION ALL
        SELECT pr.user_id FROM providers pr
        WHERE pr.organization_id = NEW.organization_id AND pr.id = NEW.provider_id
    ) r
    WHERE r.user_id IS NOT NULL AND r.user_id IS DISTINCT FROM app.current_user_id();
    RETURN NULL;
END
$$;
ALTER FUNCTION app.appointment_notifications() OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.appointment_notifications() FROM PUBLIC;
CREATE TRIGGER appointments_notify_people AFTER INSERT OR UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION app.appointment_notifications();

-- A claim's status change notifies whoever created it (unless they made it).
CREATE FUNCTION app.claim_notifications() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NEW.created_by IS NOT NULL
       AND NEW.created_by IS DISTINCT FROM app.current_user_id() THEN
        INSERT INTO notifications (organization_id, user_id, kind, subject_type, subject_id)
        VALUES (NEW.organization_id, NEW.created_by, 'CLAIM_STATUS', 'claims', NEW.id);
    END IF;
    RETURN NULL;
END
$$;
ALTER FUNCTION app.claim_notifications() OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.claim_notifications() FROM PUBLIC;
CREATE TRIGGER claims_notify_people AFTER UPDATE OF status ON claims
    FOR EACH ROW EXECUTE FUNCTION app.claim_notifications();

-- The events of live updates: ids only, never PHI; sent at COMMIT (and not
-- at all when the transaction rolls back).
CREATE FUNCTION app.announce() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    -- One branch per kind: each names only columns its table has.
    IF TG_ARGV[0] = 'message' THEN
        PERFORM pg_notify('caregate_events', json_build_object(
            'k', 'message', 'o', NEW.organization_id, 'id', NEW.id, 't', NEW.thread_id)::text);
    ELSIF TG_ARGV[0] = 'notification' THEN
        PERFORM pg_notify('caregate_events', json_build_object(
            'k', 'notification', 'o', NEW.organization_id, 'id', NEW.id, 'u', NEW.user_id)::text);
    ELSE
        PERFORM pg_notify('caregate_events', json_build_object(
            'k', TG_ARGV[0], 'o', NEW.organization_id, 'id', NEW.id)::text);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER messages_announce AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION app.announce('message');
CREATE TRIGGER message_threads_announce AFTER INSERT OR UPDATE ON message_threads
    FOR EACH ROW EXECUTE FUNCTION app.announce('thread');
CREATE TRIGGER notifications_announce AFTER INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION app.announce('notification');
CREATE TRIGGER appointments_announce AFTER INSERT OR UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION app.announce('appointment');

-- The audit trail records threads, participants and messages; a message's
-- text is PHI and appears there only as "[redacted]".
CREATE OR REPLACE FUNCTION app.audit_redact(doc jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (doc - 'password_hash' - 'search_name' - 'updated_at')
        || coalesce((SELECT jsonb_object_agg(k, CASE WHEN jsonb_typeof(doc -> k) = 'null' THEN 'null'::jsonb
                                                    ELSE to_jsonb('sealed:' || left(encode(sha256(convert_to(doc ->> k, 'UTF8')), 'hex'), 16))
                                               END)
                     FROM unnest(ARRAY['ssn_enc', 'ssn_index', 'member_id_enc', 'tax_id_enc', 'submitted_x12_enc']) AS k
                     WHERE doc ? k), '{}')
        || coalesce((SELECT jsonb_object_agg(k, CASE WHEN jsonb_typeof(doc -> k) = 'null' THEN 'null'::jsonb
                                                    ELSE '"[redacted]"'::jsonb
                                               END)
                     FROM unnest(ARRAY['member_id', 'tax_id', 'submitted_x12', 'body']) AS k
                     WHERE doc ? k), '{}')
$$;
CREATE TRIGGER message_threads_audit AFTER INSERT OR UPDATE OR DELETE ON message_threads
    FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER thread_participants_audit AFTER INSERT OR UPDATE OR DELETE ON thread_participants
    FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER messages_audit AFTER INSERT OR UPDATE OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION app.audit_row();
CREATE TRIGGER message_threads_touch BEFORE UPDATE ON message_threads
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

DROP FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean);
CREATE FUNCTION app.begin_request(
    p_request_id text, p_ip inet, p_user_agent text,
    p_user uuid, p_tenant uuid, p_session uuid, p_idle_minutes integer, p_impersonate boolean,
    p_touch boolean
)
RETURNS TABLE (role text, is_super_admin boolean, consent_required boolean, portal_scope jsonb,
               facility_scope uuid[], mfa_required boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    s user_sessions%ROWTYPE;
    u users%ROWTYPE;
    m_role text;
    m_sites uuid[];
    own uuid[];
    scope record;
    scope_doc jsonb;
    refusal text;
BEGIN
    IF app.setting('app.user_id') IS NOT NULL
       OR (app.setting('app.request_id') IS NOT NULL
           AND (p_user IS NULL OR app.setting('app.request_id') IS DISTINCT FROM p_request_id)) THEN
        RAISE EXCEPTION 'the request context is already set in this transaction'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;

    PERFORM set_config('app.request_id', coalesce(p_request_id, ''), true),
            set_config('app.ip', coalesce(p_ip::text, ''), true),
            set_config('app.user_agent', coalesce(p_user_agent, ''), true),
            set_config('app.user_id', '', true),
            set_config('app.tenant_id', '', true),
            set_config('app.role', '', true),
            set_config('app.session_id', '', true),
            set_config('app.is_super_admin', '', true),
            set_config('app.impersonator_id', '', true),
            set_config('app.patients_profile', '', true),
            set_config('app.patients_appointments', '', true),
            set_config('app.patients_schedule', '', true),
            set_config('app.patients_notes', '', true),
            set_config('app.patients_billing', '', true),
            set_config('app.patients_message', '', true),
            set_config('app.facilities', '', true),
            set_config('app.threads', '', true);
    IF p_user IS NULL THEN
        RETURN QUERY SELECT NULL::text, false, false, NULL::jsonb, NULL::uuid[], false;
        RETURN;
    END IF;

    SELECT * INTO s FROM user_sessions WHERE id = p_session AND user_id = p_user;
    SELECT * INTO u FROM users WHERE id = p_user AND deleted_at IS NULL;
    -- A session acts in one clinic at a time: after switchOrganization, a
    -- token for the previous clinic no longer works, and a super admin's
    -- impersonation stays in the clinic named at login.
    refusal := CASE
        WHEN s.id IS NULL OR s.organization_id IS DISTINCT FROM p_tenant THEN 'SESSION_UNKNOWN'
        WHEN s.revoked_at IS NOT NULL THEN 'SESSION_REVOKED'
        WHEN s.expires_at <= now() THEN 'SESSION_EXPIRED'
        WHEN s.last_active_at < now() - make_interval(mins => p_idle_minutes) THEN 'SESSION_IDLE'
        WHEN u.id IS NULL THEN 'USER_DISABLED'
    END;
    IF refusal IS NOT NULL THEN
        RAISE EXCEPTION '%', refusal USING ERRCODE = 'invalid_authorization_specification';
    END IF;

    IF p_impersonate THEN
        IF NOT u.is_super_admin
           OR NOT EXISTS (SELECT 1 FROM organizations o WHERE o.id = p_tenant AND o.deleted_at IS NULL) THEN
            RAISE EXCEPTION 'NOT_A_MEMBER' USING ERRCODE = 'invalid_authorization_specification';
        END IF;
        m_role := 'ADMIN';
    ELSE
        SELECT m.role, m.facility_scope INTO m_role, m_sites FROM organization_memberships m
        WHERE m.organization_id = p_tenant AND m.user_id = p_user AND m.deleted_at IS NULL;
    END IF;

    IF m_role IS NULL THEN
        SELECT coalesce(array_agg(p.id), '{}') INTO own FROM patients p
        WHERE p.organization_id = p_tenant AND p.user_id = p_user AND p.deleted_at IS NULL;

        SELECT coalesce(array_agg(a.patient_id) FILTER (WHERE a.can_view_profile), '{}') AS profile,
               coalesce(array_agg(a.patient_id) FILTER (WHERE a.can_view_appointments), '{}') AS appointments,
               coalesce(array_agg(a.patient_id) FILTER (WHERE a.can_schedule_appointments), '{}') AS schedule,
               coalesce(array_agg(a.patient_id) FILTER (WHERE a.can_view_clinical_notes), '{}') AS notes,
               coalesce(array_agg(a.patient_id) FILTER (WHERE a.can_view_billing), '{}') AS billing,
               coalesce(array_agg(a.patient_id) FILTER (WHERE a.can_message_providers), '{}') AS message,
               count(*) AS grants
        INTO scope
        FROM proxy_assignments a
        JOIN patients p ON p.organization_id = a.organization_id AND p.id = a.patient_id
        WHERE a.organization_id = p_tenant AND a.proxy_user_id = p_user
          AND a.revoked_at IS NULL AND a.granted_at <= now()
          AND (a.expires_at IS NULL OR a.expires_at > now())
          AND p.deleted_at IS NULL;

        IF cardinality(own) = 0 AND scope.grants = 0
           AND NOT app.has_pending_invitation(p_user, p_tenant) THEN
            RAISE EXCEPTION 'NOT_A_MEMBER' USING ERRCODE = 'invalid_authorization_specification';
        END IF;
        m_role := 'PORTAL';
        scope_doc := jsonb_build_object(
            'profile', own || scope.profile, 'appointments', own || scope.appointments,
            'schedule', own || scope.schedule, 'notes', own || scope.notes,
            'billing', own || scope.billing, 'message', own || scope.message);
        PERFORM set_config('app.patients_profile', (own || scope.profile)::text, true),
                set_config('app.patients_appointments', (own || scope.appointments)::text, true),
                set_config('app.patients_schedule', (own || scope.schedule)::text, true),
                set_config('app.patients_notes', (own || scope.notes)::text, true),
                set_config('app.patients_billing', (own || scope.billing)::text, true),
                set_config('app.patients_message', (own || scope.message)::text, true),
                set_config('app.threads', (
                    SELECT coalesce(array_agg(tp.thread_id), '{}')::text FROM thread_participants tp
                    WHERE tp.organization_id = p_tenant AND tp.user_id = p_user
                      AND tp.removed_at IS NULL), true);
    END IF;

    -- Activity is recorded at most every 30 s, so concurrent requests of one
    -- session do not queue on its row.
    -- A live-update socket re-checks its session without touching it: only
    -- the user's own requests keep a session from going idle.
    IF p_touch THEN
        UPDATE user_sessions SET last_active_at = now()
        WHERE id = p_session AND last_active_at < now() - interval '30 seconds';
    END IF;

    PERFORM set_config('app.user_id', p_user::text, true),
            set_config('app.is_super_admin', u.is_super_admin::text, true),
            set_config('app.impersonator_id', CASE WHEN p_impersonate THEN p_user::text ELSE '' END, true),
            set_config('app.session_id', p_session::text, true),
            set_config('app.tenant_id', p_tenant::text, true),
            set_config('app.role', m_role, true),
            set_config('app.facilities', coalesce(m_sites::text, ''), true);

    RETURN QUERY SELECT m_role, u.is_super_admin,
        EXISTS (SELECT 1 FROM consent_documents d
                WHERE d.kind = 'HIPAA_NOTICE' AND d.is_active
                  AND NOT EXISTS (SELECT 1 FROM user_consents c
                                  WHERE c.user_id = p_user AND c.document_id = d.id)),
        scope_doc, m_sites,
        -- The clinic requires a second factor of this role and the user has
        -- none yet: the session may only enrol one.
        NOT u.mfa_enabled AND m_role <> 'PORTAL' AND EXISTS (
            SELECT 1 FROM organizations o
            WHERE o.id = p_tenant
              AND (o.settings->>'mfaRequired' = 'ALL_STAFF'
                   OR (o.settings->>'mfaRequired' = 'ADMIN' AND m_role = 'ADMIN')));
END
$$;
ALTER FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean, boolean) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.begin_request(text, inet, text, uuid, uuid, uuid, integer, boolean, boolean) TO caregate_app;
