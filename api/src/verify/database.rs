//! The database itself, below any resolver: connected as the runtime role,
//! in clinic A's row-level security context (set by the server's own
//! `app.begin_request`, for A's session), every table with a tenant column
//! must show none of clinic B's rows and refuse every write that would
//! reach B: a row inserted for B, B's row updated or deleted, A's row
//! moved into B.
//!
//! Nothing is written: every statement runs in a savepoint that is rolled
//! back at once, and the transaction is rolled back at the end. SQL is
//! built from identifiers PostgreSQL itself quoted from its catalog
//! (`format('%I.%I')`, `quote_ident`); the clinics' ids travel as bound
//! parameters.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sea_orm::sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sea_orm::sqlx::{self, Row};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use service::Tx;
use service::context::{self, ContextError, RequestMeta, SessionOf};
use service::tx::Counter;
use uuid::Uuid;

use super::VerifyError;
use super::report::{Report, Skip, TableFacts};
use crate::config::Config;

/// The column that names a row's clinic (SPEC §3: every tenant-scoped
/// table carries it). The clinics' own table is keyed by what it refers to.
const TENANT_COLUMN: &str = "organization_id";
/// Rows counted at most, so that a count stays cheap on a large table.
const COUNT_CAP: i64 = 1_000;

/// A session, as a token's claims name it: the database checks it is live.
#[derive(Debug, Clone, Copy)]
pub struct Who {
    pub user: Uuid,
    pub clinic: Uuid,
    pub session: Uuid,
}

/// A table of the catalog, with its identifiers as PostgreSQL quoted them.
#[derive(Debug, Clone)]
pub(super) struct Table {
    pub(super) qualified: String,
    row_security: bool,
    forced: bool,
    readable: bool,
    /// The quoted tenant column, when the table has one.
    pub(super) column: Option<String>,
}

/// The database's URL without its password, for the banner and report.
pub fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

/// Connects as the role `url` names and refuses a role that bypasses
/// row-level security: under it every table would look leaky, or — worse
/// — a probe could write. Returns the pool and the role's name.
pub async fn connect(url: &str, config: &Config) -> Result<(PgPool, String), VerifyError> {
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| VerifyError::Usage(format!("--database: {e}")))?
        .application_name("caregate-verify-isolation");
    // Through a transaction-mode pooler startup options are refused; the
    // transaction options set the same in each transaction instead.
    let opts = if config.db_transaction_pooler {
        opts
    } else {
        opts.options([
            ("standard_conforming_strings", "on".to_owned()),
            ("statement_timeout", config.statement_timeout_ms.to_string()),
        ])
    };
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .map_err(|e| VerifyError::Unreachable(format!("{}: {e}", display_url(url))))?;
    let row = sqlx::raw_sql(
        "SELECT current_user::text AS name, r.rolsuper AS superuser, r.rolbypassrls AS bypass \
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(&pool)
    .await
    .map_err(|e| VerifyError::Unreachable(format!("reading the connected role: {e}")))?;
    let name: String = row
        .try_get("name")
        .map_err(|e| VerifyError::Database(e.to_string()))?;
    let superuser: bool = row
        .try_get("superuser")
        .map_err(|e| VerifyError::Database(e.to_string()))?;
    let bypass: bool = row
        .try_get("bypass")
        .map_err(|e| VerifyError::Database(e.to_string()))?;
    if superuser || bypass {
        pool.close().await;
        let what = if superuser {
            "is a superuser"
        } else {
            "has BYPASSRLS"
        };
        return Err(VerifyError::Refused(format!(
            "the role {name} {what}: row-level security does not apply to it, so it proves nothing \
             (and could write). Connect as the runtime role the server uses (NOSUPERUSER \
             NOBYPASSRLS, e.g. {})",
            migration::RUNTIME_ROLE
        )));
    }
    Ok((pool, name))
}

/// Runs every table's probes as clinic A, after counting B's rows as B.
pub async fn run(
    pool: &PgPool,
    config: &Config,
    a: Who,
    b: Who,
    report: &mut Report,
) -> Result<(), VerifyError> {
    let tables = catalog(pool).await?;
    let mut probed = Vec::new();
    for t in tables {
        match (&t.column, t.readable) {
            (Some(_), true) => probed.push(t),
            (Some(_), false) => report.skipped.push(Skip::new(
                "database",
                &t.qualified,
                "the runtime role cannot read it at all (no SELECT)",
            )),
            (None, _) if t.row_security => report.skipped.push(Skip::new(
                "database",
                &t.qualified,
                "row-level security, but no organization_id: a per-person or global table",
            )),
            (None, _) => report.skipped.push(Skip::new(
                "database",
                &t.qualified,
                "no organization_id and no row-level security: global",
            )),
        }
    }

    // B's own rows, counted under B's own context: a "0 seen by A" means
    // something only where B has rows.
    let mut b_rows = Vec::new();
    {
        let tx = open(pool, config, b, "clinic B").await?;
        for t in &probed {
            b_rows.push(count(&tx, t, b.clinic).await.unwrap_or(-1));
        }
        // Dropped: rolled back.
    }

    let tx = open(pool, config, a, "clinic A").await?;
    for (t, b_count) in probed.iter().zip(b_rows) {
        let column = t.column.clone().unwrap_or_default();
        let a_count = count(&tx, t, a.clinic).await.unwrap_or(-1);
        let facts = TableFacts {
            table: t.qualified.clone(),
            tenant_column: column,
            row_security: t.row_security,
            forced: t.forced,
            b_rows: b_count,
            a_rows: a_count,
        };
        super::table::probe(&tx, t, &facts, a, b, report).await;
        report.tables.push(facts);
    }
    // Dropping the transaction rolls it back (service::tx); closing the
    // pool waits for that.
    drop(tx);
    Ok(())
}

/// Every table in the application's schemas, with its tenant column.
async fn catalog(pool: &PgPool) -> Result<Vec<Table>, VerifyError> {
    let rows = sqlx::query(
        "SELECT format('%I.%I', n.nspname, c.relname) AS qualified, \
                c.relrowsecurity AS row_security, c.relforcerowsecurity AS forced, \
                has_table_privilege(c.oid, 'SELECT') AS readable, \
                coalesce( \
                  (SELECT quote_ident(a.attname) FROM pg_attribute a \
                   WHERE a.attrelid = c.oid AND a.attname = $1 \
                     AND a.attnum > 0 AND NOT a.attisdropped), \
                  (SELECT quote_ident(k.attname) FROM pg_constraint f \
                   JOIN pg_attribute s ON s.attrelid = f.conrelid AND s.attnum = f.conkey[1] \
                   JOIN pg_attribute k ON k.attrelid = f.confrelid AND k.attnum = f.confkey[1] \
                   WHERE f.contype = 'f' AND f.confrelid = c.oid AND cardinality(f.conkey) = 1 \
                     AND s.attname = $1 LIMIT 1)) AS tenant_column \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND left(n.nspname, 3) <> 'pg_' \
         ORDER BY 1",
    )
    .bind(TENANT_COLUMN)
    .persistent(false)
    .fetch_all(pool)
    .await
    .map_err(|e| VerifyError::Database(format!("reading the catalog: {e}")))?;
    rows.iter()
        .map(|r| {
            Ok(Table {
                qualified: r.try_get("qualified")?,
                row_security: r.try_get("row_security")?,
                forced: r.try_get("forced")?,
                readable: r.try_get("readable")?,
                column: r.try_get("tenant_column")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(|e| VerifyError::Database(format!("reading the catalog: {e}")))
}

/// A transaction in `who`'s context, opened exactly as a request of that
/// session is.
async fn open(pool: &PgPool, config: &Config, who: Who, label: &str) -> Result<Tx, VerifyError> {
    let meta = RequestMeta {
        request_id: format!("verify-isolation-{}", ulid::Ulid::generate()),
        ip: None,
        user_agent: Some("caregate verify-isolation".to_owned()),
        impersonate: None,
    };
    let session = SessionOf {
        user: who.user.into(),
        tenant: who.clinic.into(),
        session: who.session.into(),
        impersonate: false,
    };
    match context::open(
        pool,
        &config.tx_options(),
        Counter::default(),
        &meta,
        Some(session),
        config.session_idle_minutes,
    )
    .await
    {
        Ok((tx, _viewer)) => Ok(tx),
        Err(ContextError::Refused(why)) => Err(VerifyError::Refused(format!(
            "the database refused {label}'s session ({why}): log in again for a live token"
        ))),
        Err(ContextError::Database(e)) => Err(VerifyError::Database(format!(
            "opening {label}'s context: {e:#}"
        ))),
    }
}

/// Rows of `clinic` the context sees (at most [`COUNT_CAP`]), in a
/// savepoint so that a failure leaves the transaction usable.
pub(super) async fn count(tx: &Tx, t: &Table, clinic: Uuid) -> Result<i64, Failure> {
    let column = t.column.as_deref().unwrap_or_default();
    let sql = format!(
        "SELECT count(*) AS n FROM (SELECT 1 FROM {} WHERE {column} = $1 LIMIT {COUNT_CAP}) AS s",
        t.qualified
    );
    let sp = tx.savepoint().await.map_err(Failure::from)?;
    let result = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [clinic.into()],
        ))
        .await;
    sp.rollback().await.map_err(Failure::from)?;
    let row = result.map_err(Failure::from)?.ok_or(Failure {
        state: String::new(),
        message: "no row".to_owned(),
    })?;
    row.try_get::<i64>("", "n").map_err(Failure::from)
}

/// A statement's error: its SQLSTATE and message.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    pub(super) state: String,
    pub(super) message: String,
}

impl From<DbErr> for Failure {
    fn from(e: DbErr) -> Self {
        Self {
            state: service::error::sqlstate(&e).unwrap_or_default(),
            message: service::error::db_message(&e).unwrap_or_else(|| e.to_string()),
        }
    }
}

/// Runs a write in a savepoint and undoes it at once; with `then`, a
/// count of B's rows inside the same savepoint (what the write left
/// visible).
pub(super) async fn attempt(
    tx: &Tx,
    sql: String,
    params: Vec<sea_orm::Value>,
    then: Option<(&Table, Uuid)>,
) -> (Result<u64, Failure>, Option<i64>, Duration) {
    let started = Instant::now();
    let sp = match tx.savepoint().await {
        Ok(sp) => sp,
        Err(e) => return (Err(e.into()), None, started.elapsed()),
    };
    let result = tx
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            params,
        ))
        .await
        .map(|r| r.rows_affected())
        .map_err(Failure::from);
    let elapsed = started.elapsed();
    let mut after = None;
    if let (Ok(n), Some((t, clinic))) = (&result, then)
        && *n > 0
    {
        let column = t.column.as_deref().unwrap_or_default();
        let sql = format!(
            "SELECT count(*) AS n FROM (SELECT 1 FROM {} WHERE {column} = $1 LIMIT {COUNT_CAP}) AS s",
            t.qualified
        );
        after = tx
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                [clinic.into()],
            ))
            .await
            .ok()
            .flatten()
            .and_then(|row| row.try_get::<i64>("", "n").ok());
    }
    let undone = sp.rollback().await;
    match undone {
        Ok(()) => (result, after, elapsed),
        Err(e) => (Err(e.into()), after, elapsed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_not_shown() {
        assert_eq!(
            display_url("postgres://app:secret@db.example:5432/caregate"),
            "postgres://app:***@db.example:5432/caregate"
        );
    }
}
