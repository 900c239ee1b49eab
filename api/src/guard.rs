//! The guard: the only code that opens a request's transaction, with the
//! row-level security context of the caller its token names (the statement
//! itself is `service::context`'s).
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

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use service::Tx;
use service::context::{self, ContextError, RequestMeta, SessionOf, Viewer};
use service::domain::TenantId;
use service::tx::{CommitError, Counter, TxOptions};

use crate::tokens::Claims;

/// Opens the request's transaction with the context of `claims` (or of an
/// anonymous caller): `BEGIN` and the context in one round trip.
pub async fn open(
    db: &DatabaseConnection,
    options: &TxOptions,
    statements: &Counter,
    claims: Option<&Claims>,
    meta: &RequestMeta,
    idle_minutes: u32,
) -> Result<(Arc<Tx>, Viewer), ContextError> {
    let who = claims.map(|claims| session_of(claims, meta));
    let pool = db.get_postgres_connection_pool();
    let (tx, viewer) =
        context::open(pool, options, statements.clone(), meta, who, idle_minutes).await?;
    Ok((Arc::new(tx), viewer))
}

/// Opens the request's read-only transaction on the read replica's `pool`,
/// with the same context as [`open`]. It does not count as the session's
/// activity (a standby cannot record it): the primary's transaction that
/// follows does.
pub async fn open_read(
    pool: &sea_orm::sqlx::PgPool,
    options: &TxOptions,
    statements: &Counter,
    claims: &Claims,
    meta: &RequestMeta,
    idle_minutes: u32,
) -> Result<(Arc<Tx>, Viewer), ContextError> {
    let (tx, viewer) = context::open_with(
        pool,
        options,
        statements.clone(),
        meta,
        Some(session_of(claims, meta)),
        idle_minutes,
        context::Activity::Quiet,
    )
    .await?;
    Ok((Arc::new(tx), viewer))
}

/// The session `claims` name, in the clinic the request acts in.
fn session_of(claims: &Claims, meta: &RequestMeta) -> SessionOf {
    SessionOf {
        user: claims.sub.into(),
        tenant: meta
            .impersonate
            .map(TenantId::into_uuid)
            .unwrap_or(claims.org)
            .into(),
        session: claims.sid.into(),
        impersonate: meta.impersonate.is_some(),
    }
}

/// Opens a transaction for an operator's command acting as a clinic user
/// (`caregate claims export --as`): the same context, checks and audit as
/// a request of that user's session.
pub async fn open_as(
    db: &DatabaseConnection,
    options: &TxOptions,
    statements: &Counter,
    who: SessionOf,
    meta: &RequestMeta,
) -> Result<(Arc<Tx>, Viewer), ContextError> {
    let pool = db.get_postgres_connection_pool();
    let (tx, viewer) =
        context::open(pool, options, statements.clone(), meta, Some(who), 60).await?;
    Ok((Arc::new(tx), viewer))
}

/// Opens a transaction for a live-update socket acting for `who`: the same
/// context and checks as a request of that session, without counting as
/// the session's activity (a socket left open does not keep a session
/// from going idle).
pub async fn open_quiet(
    db: &DatabaseConnection,
    options: &TxOptions,
    statements: &Counter,
    who: SessionOf,
    meta: &RequestMeta,
    idle_minutes: u32,
) -> Result<(Arc<Tx>, Viewer), ContextError> {
    let pool = db.get_postgres_connection_pool();
    let (tx, viewer) = context::open_with(
        pool,
        options,
        statements.clone(),
        meta,
        Some(who),
        idle_minutes,
        context::Activity::Quiet,
    )
    .await?;
    Ok((Arc::new(tx), viewer))
}

/// Commits the request's transaction, or says why its work was not (or
/// may not have been) saved. Fails when something still holds the
/// transaction (a bug): it is then rolled back when the last holder lets go.
pub async fn commit(tx: Arc<Tx>) -> Result<(), CommitError> {
    commit_with_reads(tx, &[], &[]).await
}

/// [`commit`], recording the READ of `patients` in the same round trip as
/// `COMMIT`: both happen, or neither. Those the caller reached only by
/// break-glass (among `break_glass`) are recorded as BREAK_GLASS_READ.
pub async fn commit_with_reads(
    tx: Arc<Tx>,
    patients: &[uuid::Uuid],
    break_glass: &[uuid::Uuid],
) -> Result<(), CommitError> {
    let Ok(tx) = Arc::try_unwrap(tx) else {
        return Err(CommitError::Shared);
    };
    match service::audit::reads_statement(patients, break_glass) {
        Some(reads) => tx.commit_after(&reads).await,
        None => tx.commit().await,
    }
}
