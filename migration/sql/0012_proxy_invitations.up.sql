-- Proxy access for people the clinic does not know yet is an invitation.
--
-- Granting proxy access by email must not tell a clinic whether someone
-- with that email uses caregate elsewhere, nor show it their name. So a
-- grant to an email that belongs to no one tied to the clinic (a member, a
-- chart holder, an accepted proxy) — known user or not — is pending: the
-- clinic sees only the email it typed, and the person accepts it after
-- logging in. Until then the grant reaches no patient.

ALTER TABLE proxy_assignments
    ALTER COLUMN proxy_user_id DROP NOT NULL,
    ADD COLUMN invited_email text
        CHECK (invited_email IS NULL OR (length(invited_email) <= 320 AND invited_email = lower(invited_email))),
    ADD COLUMN accepted_at timestamptz,
    ADD CONSTRAINT proxy_assignments_proxy_or_invitation
        CHECK (proxy_user_id IS NOT NULL OR invited_email IS NOT NULL);
CREATE UNIQUE INDEX proxy_assignments_pending_key
    ON proxy_assignments (organization_id, patient_id, invited_email)
    WHERE proxy_user_id IS NULL AND revoked_at IS NULL;
CREATE INDEX proxy_assignments_invited_idx
    ON proxy_assignments (invited_email) WHERE proxy_user_id IS NULL AND revoked_at IS NULL;

-- The clinics a user may act in: as before, and clinics holding a pending
-- invitation to their email (as PORTAL, reaching no patient until they
-- accept it).
CREATE OR REPLACE FUNCTION app.organizations_of(p_user uuid)
RETURNS TABLE (organization_id uuid, role text)
LANGUAGE sql STABLE AS $$
    SELECT organization_id, role FROM (
        SELECT m.organization_id, m.role, 0 AS rank, m.created_at AS since
        FROM organization_memberships m
        JOIN organizations o ON o.id = m.organization_id AND o.deleted_at IS NULL
        WHERE m.user_id = p_user AND m.deleted_at IS NULL
        UNION ALL
        SELECT p.organization_id, 'PORTAL', 1, p.created_at
        FROM patients p
        WHERE p.user_id = p_user AND p.deleted_at IS NULL
        UNION ALL
        SELECT a.organization_id, 'PORTAL', 1, a.granted_at
        FROM proxy_assignments a
        WHERE a.proxy_user_id = p_user AND a.revoked_at IS NULL
          AND a.granted_at <= now() AND (a.expires_at IS NULL OR a.expires_at > now())
        UNION ALL
        SELECT a.organization_id, 'PORTAL', 2, a.granted_at
        FROM proxy_assignments a JOIN users u ON u.id = p_user AND u.deleted_at IS NULL
        WHERE a.proxy_user_id IS NULL AND a.invited_email = lower(u.email)
          AND a.revoked_at IS NULL AND (a.expires_at IS NULL OR a.expires_at > now())
    ) AS reachable
    ORDER BY rank, since
$$;

-- A portal user whose only tie to the clinic is a pending invitation gets
-- an empty scope rather than a refusal, so they can see and accept it.
CREATE OR REPLACE FUNCTION app.has_pending_invitation(p_user uuid, p_tenant uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM proxy_assignments a JOIN users u ON u.id = p_user AND u.deleted_at IS NULL
        WHERE a.organization_id = p_tenant AND a.proxy_user_id IS NULL
          AND a.invited_email = lower(u.email) AND a.revoked_at IS NULL
          AND (a.expires_at IS NULL OR a.expires_at > now()))
$$;

-- The id of a user tied to the current clinic (ADMIN or STAFF asking), by
-- email; NULL for anyone else, known to caregate or not.
CREATE OR REPLACE FUNCTION app.user_id_by_email(p_email text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT u.id FROM users u
    WHERE lower(u.email) = lower(p_email) AND u.deleted_at IS NULL
      AND app.current_tenant_id() IS NOT NULL AND (app.has_role('ADMIN') OR app.has_role('STAFF'))
      AND (EXISTS (SELECT 1 FROM organization_memberships m
                   WHERE m.user_id = u.id AND m.organization_id = app.current_tenant_id()
                     AND m.deleted_at IS NULL)
           OR EXISTS (SELECT 1 FROM patients p
                      WHERE p.user_id = u.id AND p.organization_id = app.current_tenant_id()
                        AND p.deleted_at IS NULL)
           OR EXISTS (SELECT 1 FROM proxy_assignments a
                      WHERE a.proxy_user_id = u.id AND a.organization_id = app.current_tenant_id()))
$$;

-- The signed-in user's pending invitations, at any clinic: the clinic's
-- name and what the invitation is, nothing of the patient.
CREATE FUNCTION app.my_proxy_invitations()
RETURNS TABLE (id uuid, organization_id uuid, organization_name text, relationship text,
               granted_at timestamptz, expires_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT a.id, a.organization_id, o.name, a.relationship, a.granted_at, a.expires_at
    FROM proxy_assignments a
    JOIN organizations o ON o.id = a.organization_id
    JOIN users u ON u.id = app.current_user_id() AND u.deleted_at IS NULL
    WHERE a.proxy_user_id IS NULL AND a.invited_email = lower(u.email)
      AND a.revoked_at IS NULL AND (a.expires_at IS NULL OR a.expires_at > now())
    ORDER BY a.granted_at
$$;

-- Accepts one: the grant becomes the signed-in user's. Returns the clinic,
-- or nothing when there is no such pending invitation for them.
CREATE FUNCTION app.accept_proxy_invitation(p_id uuid) RETURNS uuid
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    UPDATE proxy_assignments a SET proxy_user_id = u.id, accepted_at = now()
    FROM users u
    WHERE a.id = p_id AND u.id = app.current_user_id() AND u.deleted_at IS NULL
      AND a.proxy_user_id IS NULL AND a.invited_email = lower(u.email)
      AND a.revoked_at IS NULL AND (a.expires_at IS NULL OR a.expires_at > now())
    RETURNING a.organization_id
$$;

GRANT UPDATE (proxy_user_id, accepted_at) ON proxy_assignments TO caregate_definer;
ALTER FUNCTION app.my_proxy_invitations() OWNER TO caregate_definer;
ALTER FUNCTION app.accept_proxy_invitation(uuid) OWNER TO caregate_definer;
REVOKE ALL ON FUNCTION app.my_proxy_invitations() FROM PUBLIC;
REVOKE ALL ON FUNCTION app.accept_proxy_invitation(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.my_proxy_invitations() TO caregate_app;
GRANT EXECUTE ON FUNCTION app.accept_proxy_invitation(uuid) TO caregate_app;
