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
use sea_orm::{DatabaseConnection, QueryResult};
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

/// Who a request acts as, once a session is known.
#[derive(Debug, Clone, Copy)]
pub struct SessionOf {
    pub user: UserId,
    pub tenant: TenantId,
    pub session: SessionId,
    /// A super admin acting in `tenant` (an audited impersonation).
    pub impersonate: bool,
}

/// Text as an SQL expression that carries no byte of it: hex digits,
/// decoded inside PostgreSQL. The request's first statement travels with
/// its `BEGIN` as a simple query, which cannot bind parameters; hex text
/// is safe whatever `standard_conforming_strings` says (the connections pin
/// it on all the same). NUL cannot be stored and is dropped.
fn text_sql(value: Option<&str>) -> String {
    match value {
        None => "NULL".to_owned(),
        Some(v) => {
            let hex: String = v
                .bytes()
                .filter(|b| *b != 0)
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("convert_from(decode('{hex}', 'hex'), 'UTF8')")
        }
    }
}

/// The one statement that sets a request's context: `app.begin_request`
/// with the request's facts and, when known, its session. Ids and numbers
/// are formatted from their types; every text is hex-encoded.
fn context_statement(meta: &RequestMeta, who: Option<SessionOf>, idle_minutes: u32) -> String {
    let ip = meta.ip.map(|ip| ip.to_string());
    let uuid = |id: Option<uuid::Uuid>| match id {
        Some(id) => format!("'{id}'::uuid"),
        None => "NULL::uuid".to_owned(),
    };
    format!(
        "SELECT role, is_super_admin, consent_required, portal_scope FROM app.begin_request(\
         {}, ({})::inet, {}, {}, {}, {}, {idle_minutes}, {})",
        text_sql(Some(&meta.request_id)),
        text_sql(ip.as_deref()),
        text_sql(meta.user_agent.as_deref()),
        uuid(who.map(|w| w.user.into_uuid())),
        uuid(who.map(|w| w.tenant.into_uuid())),
        uuid(who.map(|w| w.session.into_uuid())),
        who.is_some_and(|w| w.impersonate),
    )
}

/// A refusal of `app.begin_request` (SQLSTATE 28000, the reason as its
/// message), or another database error.
fn refusal_of(err: sea_orm::DbErr) -> GuardError {
    if service::error::sqlstate(&err).as_deref() == Some("28000") {
        let why = service::error::db_message(&err).unwrap_or_default();
        return GuardError::Unauthenticated(why);
    }
    GuardError::Database(anyhow::Error::new(err).context("setting the request context"))
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
    let who = claims.map(|claims| SessionOf {
        user: claims.sub.into(),
        tenant: meta
            .impersonate
            .map(TenantId::into_uuid)
            .unwrap_or(claims.org)
            .into(),
        session: claims.sid.into(),
        impersonate: meta.impersonate.is_some(),
    });
    let first = context_statement(meta, who, idle_minutes);
    let (tx, rows) = Tx::begin_with(pool, &first, statements.clone())
        .await
        .map_err(refusal_of)?;
    let Some(who) = who else {
        return Ok((Arc::new(tx), Viewer::anonymous()));
    };
    let row = rows
        .into_iter()
        .next()
        .context("app.begin_request returned no row")?;
    let viewer = viewer_of(&row, who)?;
    Ok((Arc::new(tx), viewer))
}

/// Turns an anonymous request into the session a login just opened: the
/// same statement as [`open`], in the request's transaction (the one
/// change of context `app.begin_request` allows).
pub async fn enter_session(
    tx: &Tx,
    meta: &RequestMeta,
    who: SessionOf,
    idle_minutes: u32,
) -> Result<Viewer, GuardError> {
    let rows = tx
        .simple_query(&context_statement(meta, Some(who), idle_minutes))
        .await
        .map_err(refusal_of)?;
    let row = rows
        .into_iter()
        .next()
        .context("app.begin_request returned no row")?;
    viewer_of(&row, who)
}

/// The caller as `app.begin_request` described them.
fn viewer_of(row: &QueryResult, who: SessionOf) -> Result<Viewer, GuardError> {
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
            user: who.user,
            tenant: who.tenant,
            role,
            session: who.session,
            impersonating: who.impersonate,
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

/// Commits the request's transaction, or says why its work was not (or
/// may not have been) saved. Fails when something still holds the
/// transaction (a bug): it is then rolled back when the last holder lets go.
pub async fn commit(tx: Arc<Tx>) -> Result<(), CommitError> {
    match Arc::try_unwrap(tx) {
        Ok(tx) => tx.commit().await,
        Err(_) => Err(CommitError::Shared),
    }
}
