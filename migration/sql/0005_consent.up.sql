-- Versioned legal documents (global) and who signed which version.

CREATE TABLE consent_documents (
    id           uuid PRIMARY KEY DEFAULT app.new_ulid(),
    kind         text NOT NULL CHECK (kind IN ('TOS', 'HIPAA_NOTICE', 'PRIVACY_POLICY')),
    version      integer NOT NULL CHECK (version > 0),
    title        text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    body         text NOT NULL,
    is_active    boolean NOT NULL DEFAULT false,
    published_at timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, version)
);
-- One active version of each kind.
CREATE UNIQUE INDEX consent_documents_active_key ON consent_documents (kind) WHERE is_active;

CREATE TABLE user_consents (
    id          uuid PRIMARY KEY DEFAULT app.new_ulid(),
    user_id     uuid NOT NULL REFERENCES users (id),
    document_id uuid NOT NULL REFERENCES consent_documents (id),
    signed_at   timestamptz NOT NULL DEFAULT now(),
    ip          inet,
    user_agent  text CHECK (length(user_agent) <= 1000),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, document_id)
);

CREATE TRIGGER consent_documents_touch BEFORE UPDATE ON consent_documents
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
CREATE TRIGGER user_consents_touch BEFORE UPDATE ON user_consents
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();
