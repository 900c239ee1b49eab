-- Pending invitations are dropped: they reached no patient.
DROP FUNCTION app.accept_proxy_invitation(uuid);
DROP FUNCTION app.my_proxy_invitations();
REVOKE UPDATE (proxy_user_id, accepted_at) ON proxy_assignments FROM caregate_definer;

CREATE OR REPLACE FUNCTION app.user_id_by_email(p_email text) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT u.id FROM users u
    WHERE lower(u.email) = lower(p_email) AND u.deleted_at IS NULL
      AND app.current_tenant_id() IS NOT NULL AND (app.has_role('ADMIN') OR app.has_role('STAFF'))
$$;

CREATE OR REPLACE FUNCTION app.has_pending_invitation(p_user uuid, p_tenant uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT false $$;

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
    ) AS reachable
    ORDER BY rank, since
$$;

DELETE FROM proxy_assignments WHERE proxy_user_id IS NULL;
DROP INDEX proxy_assignments_invited_idx;
DROP INDEX proxy_assignments_pending_key;
ALTER TABLE proxy_assignments
    DROP CONSTRAINT proxy_assignments_proxy_or_invitation,
    DROP COLUMN accepted_at,
    DROP COLUMN invited_email,
    ALTER COLUMN proxy_user_id SET NOT NULL;
