//! The guard: the only code that opens a request's transaction and sets the
//! row-level security context.
//!
//! How isolation works, in short. Every tenant table in PostgreSQL has RLS
//! enabled and forced; its policies compare the row's own columns with
//! settings of the current transaction (`app.tenant_id`, `app.user_id`,
//! `app.role`, and for portal users the patient ids they may reach). For
//! each request the guard verifies the bearer token, opens one transaction
//! on the runtime role (which cannot bypass RLS), and sets the whole context
//! in one round trip by calling `app.begin_request`, which also checks that
//! the session is live and not idle and derives the role from the database.
//! Every resolver then runs inside that transaction, so a bug in a resolver
//! can at worst read what this clinic's caller may read. The settings are
//! transaction-local: they vanish at COMMIT/ROLLBACK, so a pooled connection
//! carries nothing into the next request. A missing setting means no rows.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement};
use service::Tx;
use service::domain::{SessionId, TenantId, UserId};
use service::tx::{CommitError, Counter};
use service::{Actor, PortalScope, Purpose, Role};

use crate::tokens::Claims;

/// Facts about the HTTP request that go into the context and the audit trail.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: String,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// A super admin's explicit request to act in this clinic.
    pub impersonate: Option<TenantId>,
}

/// Who the request acts as, as the database established it.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// `None` for a request without a token (it may only log in).
    pub actor: Option<Actor>,
    pub is_super_admin: bool,
    /// The active HIPAA notice is not signed yet: patient data is refused.
    pub consent_required: bool,
}

impl Viewer {
    pub fn anonymous() -> Self {
        Self {
            actor: None,
            is_super_admin: false,
            consent_required: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The token's session is unknown, revoked, expired or idle, or the user
    /// no longer belongs to the token's clinic.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error(transparent)]
    Database(#[from] anyhow::Error),
}

/// A string as an SQL literal. The first statement of a request travels with
/// its `BEGIN` as a simple query, which has no parameters; the connection
/// runs with `standard_conforming_strings = on`, so doubling quotes is the
/// whole escaping (NUL cannot be sent and is dropped).
fn literal(value: Option<&str>) -> String {
    match value {
        None => "NULL".to_owned(),
        Some(v) => format!("'{}'", v.replace('\0', "").replace('\'', "''")),
    }
}

/// Opens the request's transaction with the context of `claims` (or of an
/// anonymous caller): `BEGIN` and the context in one round trip.
pub async fn open(
    db: &DatabaseConnection,
    statements: &Counter,
    claims: Option<&Claims>,
    meta: &RequestMeta,
    idle_minutes: u32,
) -> Result<(Arc<Tx>, Viewer), GuardError> {
    let pool = db.get_postgres_connection_pool();
    let ip = meta.ip.map(|ip| ip.to_string());
    let client = format!(
        "{}, {}::inet, {}",
        literal(Some(&meta.request_id)),
        literal(ip.as_deref()),
        literal(meta.user_agent.as_deref())
    );
    let Some(claims) = claims else {
        let first = format!("SELECT app.begin_anonymous({client})");
        let (tx, _) = Tx::begin_with(pool, &first, statements.clone())
            .await
            .context("opening the request transaction")?;
        return Ok((Arc::new(tx), Viewer::anonymous()));
    };
    let tenant = meta
        .impersonate
        .map(TenantId::into_uuid)
        .unwrap_or(claims.org);
    let first = format!(
        "SELECT status, role, is_super_admin, consent_required, portal_scope \
         FROM app.begin_request('{}'::uuid, '{}'::uuid, '{}'::uuid, {client}, {idle_minutes}, {})",
        claims.sub,
        tenant,
        claims.sid,
        meta.impersonate.is_some()
    );
    let (tx, rows) = Tx::begin_with(pool, &first, statements.clone())
        .await
        .context("opening the request transaction")?;
    let row = rows
        .into_iter()
        .next()
        .context("app.begin_request returned no row")?;
    let viewer = viewer_of(
        &row,
        claims.sub.into(),
        tenant.into(),
        claims.sid.into(),
        meta,
    )?;
    Ok((Arc::new(tx), viewer))
}

/// Sets the full context for a session, inside `tx`. Used by [`open`], and
/// by login and clinic switching once they have a session.
pub async fn begin_request(
    tx: &Tx,
    user: UserId,
    tenant: TenantId,
    session: SessionId,
    meta: &RequestMeta,
    idle_minutes: u32,
) -> Result<Viewer, GuardError> {
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT status, role, is_super_admin, consent_required, portal_scope \
             FROM app.begin_request($1, $2, $3, $4, $5::inet, $6, $7, $8)",
            [
                user.into_uuid().into(),
                tenant.into_uuid().into(),
                session.into_uuid().into(),
                meta.request_id.clone().into(),
                meta.ip.map(|ip| ip.to_string()).into(),
                meta.user_agent.clone().into(),
                (idle_minutes as i32).into(),
                meta.impersonate.is_some().into(),
            ],
        ))
        .await
        .context("setting the request context")?
        .context("app.begin_request returned no row")?;
    viewer_of(&row, user, tenant, session, meta)
}

/// The caller as `app.begin_request` described them, or why it refused.
fn viewer_of(
    row: &QueryResult,
    user: UserId,
    tenant: TenantId,
    session: SessionId,
    meta: &RequestMeta,
) -> Result<Viewer, GuardError> {
    let status: String = row.try_get("", "status").context("status")?;
    if status != "OK" {
        return Err(GuardError::Unauthenticated(status));
    }
    let role: Option<String> = row.try_get("", "role").context("role")?;
    let role = role
        .as_deref()
        .and_then(Role::parse)
        .context("app.begin_request returned no role")?;
    let scope: Option<serde_json::Value> =
        row.try_get("", "portal_scope").context("portal_scope")?;
    let portal = scope.map(|doc| {
        Arc::new(PortalScope::new(Purpose::ALL.iter().map(|p| {
            let ids = doc[p.as_str()]
                .as_array()
                .map(|ids| {
                    ids.iter()
                        .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()))
                        .collect()
                })
                .unwrap_or_default();
            (*p, ids)
        })))
    });
    Ok(Viewer {
        actor: Some(Actor {
            user,
            tenant,
            role,
            session,
            impersonating: meta.impersonate.is_some(),
            portal,
        }),
        is_super_admin: row
            .try_get("", "is_super_admin")
            .context("is_super_admin")?,
        consent_required: row
            .try_get("", "consent_required")
            .context("consent_required")?,
    })
}

/// After a password has been verified: the transaction acts as that user
/// (no clinic yet), so the session can be opened under RLS.
pub async fn enter_as_user(tx: &Tx, user: UserId) -> anyhow::Result<()> {
    tx.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT app.begin_login($1)",
        [user.into_uuid().into()],
    ))
    .await
    .context("setting the login context")?;
    Ok(())
}

/// Commits the request's transaction, or says why its work was not (or
/// may not have been) saved. Fails when something still holds the
/// transaction (a bug): it is then rolled back when the last holder lets go.
pub async fn commit(tx: Arc<Tx>) -> Result<(), CommitError> {
    match Arc::try_unwrap(tx) {
        Ok(tx) => tx.commit().await,
        Err(_) => Err(CommitError::Shared),
    }
}
