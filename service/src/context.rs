//! A request's row-level security context: the one statement that sets it
//! (`app.begin_request`) and what it says about the caller.
//!
//! The API's guard opens every request's transaction with this statement;
//! a login sets it once more, in the same transaction, for the session it
//! just opened (the one change of context `app.begin_request` allows).
//! Nothing else writes the context.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use sea_orm::QueryResult;
use sea_orm::sqlx::postgres::PgPool;

use crate::Tx;
use crate::actor::{Actor, PortalScope, Purpose, Role};
use crate::domain::{SessionId, TenantId, UserId};
use crate::error::{db_message, sqlstate};
use crate::tx::{Counter, TxOptions};

/// Facts about the HTTP request that go into the context and the audit trail.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: String,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// A super admin's explicit request to act in this clinic.
    pub impersonate: Option<TenantId>,
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

/// Who the request acts as, as the database established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// `None` for a request without a token (it may only log in).
    pub actor: Option<Actor>,
    pub is_super_admin: bool,
    /// The active HIPAA notice is not signed yet: patient data is refused.
    pub consent_required: bool,
    /// The clinic requires a second factor of this user's role and they
    /// have none yet: they may only enrol one.
    pub mfa_required: bool,
}

impl Viewer {
    pub fn anonymous() -> Self {
        Self {
            actor: None,
            is_super_admin: false,
            consent_required: false,
            mfa_required: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The session is unknown, revoked, expired or idle, or the user no
    /// longer belongs to the clinic (SQLSTATE 28000, the reason its message).
    #[error("refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Database(#[from] anyhow::Error),
}

/// Opens a request's transaction with its context: `BEGIN` and
/// `app.begin_request` in one round trip. Without a session the caller is
/// anonymous (they may only log in).
#[tracing::instrument(skip_all, name = "context.open", level = "debug")]
pub async fn open(
    pool: &PgPool,
    options: &TxOptions,
    statements: Counter,
    meta: &RequestMeta,
    who: Option<SessionOf>,
    idle_minutes: u32,
) -> Result<(Tx, Viewer), ContextError> {
    open_with(
        pool,
        options,
        statements,
        meta,
        who,
        idle_minutes,
        Activity::Counts,
    )
    .await
}

/// Whether a transaction's context counts as the session's activity (and
/// so keeps it from going idle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// A request the user made.
    Counts,
    /// A check or a delivery on the user's behalf (a live-update socket):
    /// the session must be live, and is not kept alive by it.
    Quiet,
}

/// [`open`], saying whether the transaction counts as the session's
/// activity.
pub async fn open_with(
    pool: &PgPool,
    options: &TxOptions,
    statements: Counter,
    meta: &RequestMeta,
    who: Option<SessionOf>,
    idle_minutes: u32,
    activity: Activity,
) -> Result<(Tx, Viewer), ContextError> {
    let first = statement(meta, who, idle_minutes, activity);
    let (tx, rows) = Tx::begin_with(pool, options, &first, statements)
        .await
        .map_err(refusal_of)?;
    let Some(who) = who else {
        return Ok((tx, Viewer::anonymous()));
    };
    let row = rows
        .into_iter()
        .next()
        .context("app.begin_request returned no row")?;
    Ok((tx, viewer_of(&row, who)?))
}

/// Turns an anonymous request into the session a login just opened: the
/// same statement as [`open`], in the request's transaction.
#[tracing::instrument(skip_all, name = "context.enter", level = "debug")]
pub async fn enter(
    tx: &Tx,
    meta: &RequestMeta,
    who: SessionOf,
    idle_minutes: u32,
) -> Result<Viewer, ContextError> {
    let rows = tx
        .simple_query(&statement(meta, Some(who), idle_minutes, Activity::Counts))
        .await
        .map_err(refusal_of)?;
    let row = rows
        .into_iter()
        .next()
        .context("app.begin_request returned no row")?;
    viewer_of(&row, who)
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
fn statement(
    meta: &RequestMeta,
    who: Option<SessionOf>,
    idle_minutes: u32,
    activity: Activity,
) -> String {
    let ip = meta.ip.map(|ip| ip.to_string());
    let uuid = |id: Option<uuid::Uuid>| match id {
        Some(id) => format!("'{id}'::uuid"),
        None => "NULL::uuid".to_owned(),
    };
    format!(
        "SELECT role, is_super_admin, consent_required, portal_scope, facility_scope, \
         mfa_required, break_glass FROM app.begin_request(\
         {}, ({})::inet, {}, {}, {}, {}, {idle_minutes}, {}, {})",
        text_sql(Some(&meta.request_id)),
        text_sql(ip.as_deref()),
        text_sql(meta.user_agent.as_deref()),
        uuid(who.map(|w| w.user.into_uuid())),
        uuid(who.map(|w| w.tenant.into_uuid())),
        uuid(who.map(|w| w.session.into_uuid())),
        who.is_some_and(|w| w.impersonate),
        activity == Activity::Counts,
    )
}

/// A refusal of `app.begin_request`, or another database error.
fn refusal_of(err: sea_orm::DbErr) -> ContextError {
    if sqlstate(&err).as_deref() == Some("28000") {
        return ContextError::Refused(db_message(&err).unwrap_or_default());
    }
    ContextError::Database(anyhow::Error::new(err).context("setting the request context"))
}

/// The caller as `app.begin_request` described them.
fn viewer_of(row: &QueryResult, who: SessionOf) -> Result<Viewer, ContextError> {
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
    let facility_scope: Option<Vec<uuid::Uuid>> = row
        .try_get("", "facility_scope")
        .context("facility_scope")?;
    let break_glass: Option<Vec<uuid::Uuid>> =
        row.try_get("", "break_glass").context("break_glass")?;
    Ok(Viewer {
        actor: Some(Actor {
            user: who.user,
            tenant: who.tenant,
            role,
            session: who.session,
            impersonating: who.impersonate,
            portal,
            facility_scope: facility_scope.map(Arc::from),
            break_glass: break_glass.map(Arc::from).unwrap_or_else(|| Arc::from([])),
        }),
        is_super_admin: row
            .try_get("", "is_super_admin")
            .context("is_super_admin")?,
        consent_required: row
            .try_get("", "consent_required")
            .context("consent_required")?,
        mfa_required: row.try_get("", "mfa_required").context("mfa_required")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_byte_of_client_text_reaches_the_statement() {
        let meta = RequestMeta {
            request_id: "x'); DROP TABLE patients; --".to_owned(),
            ip: None,
            user_agent: Some("agent\0with nul".to_owned()),
            impersonate: None,
        };
        let sql = statement(&meta, None, 15, Activity::Counts);
        assert!(!sql.contains("DROP"), "{sql}");
        assert!(!sql.contains("agent"), "{sql}");
        assert!(sql.contains("NULL::uuid"), "{sql}");
        // The text travels as hex, without its NUL.
        assert!(sql.contains("6167656e7477697468206e756c"), "{sql}");
        assert!(!sql.contains('\0'), "{sql}");
    }
}
