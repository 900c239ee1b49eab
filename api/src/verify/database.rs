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
use serde_json::json;
use service::Tx;
use service::context::{self, ContextError, RequestMeta, SessionOf};
use service::tx::Counter;
use uuid::Uuid;

use super::VerifyError;
use super::report::{ProbeRecord, Report, Skip, TableFacts, Timing, Verdict};
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
struct Table {
    qualified: String,
    row_security: bool,
    forced: bool,
    readable: bool,
    /// The quoted tenant column, when the table has one.
    column: Option<String>,
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
        report.tables.push(TableFacts {
            table: t.qualified.clone(),
            tenant_column: column.clone(),
            row_security: t.row_security,
            forced: t.forced,
            b_rows: b_count,
            a_rows: a_count,
        });
        probe_table(&tx, t, &column, a, b, a_count, b_count, report).await;
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
async fn count(tx: &Tx, t: &Table, clinic: Uuid) -> Result<i64, Failure> {
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
struct Failure {
    state: String,
    message: String,
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
async fn attempt(
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

#[allow(clippy::too_many_arguments)]
async fn probe_table(
    tx: &Tx,
    t: &Table,
    column: &str,
    a: Who,
    b: Who,
    a_count: i64,
    b_count: i64,
    report: &mut Report,
) {
    let table = t.qualified.as_str();
    let b_id = b.clinic.to_string();
    let a_id = a.clinic.to_string();
    let record = |kind: &str,
                  expected: &str,
                  actual: String,
                  verdict: Verdict,
                  detail: Option<String>,
                  ms: Duration| ProbeRecord {
        kind: kind.to_owned(),
        target: table.to_owned(),
        argument: Some(column.to_owned()),
        ids: if kind == "db.move" {
            vec![b_id.clone(), a_id.clone()]
        } else {
            vec![b_id.clone()]
        },
        sources: Vec::new(),
        variables: None,
        expected: json!(expected),
        actual: json!(actual),
        verdict,
        detail,
        warnings: Vec::new(),
        timing: Some(Timing {
            probe_ms: ms.as_secs_f64() * 1000.0,
            baseline_ms: None,
        }),
    };

    // Reading: none of B's rows.
    let started = Instant::now();
    let seen = count(tx, t, b.clinic).await;
    let select = match seen {
        Ok(0) => record(
            "db.select",
            "0 rows of clinic B",
            "0 rows".into(),
            Verdict::Pass,
            (b_count == 0).then(|| {
                "clinic B's own user sees no row here either: 0 seen by A proves little".to_owned()
            }),
            started.elapsed(),
        ),
        Ok(n) => record(
            "db.select",
            "0 rows of clinic B",
            format!("{n} row(s)"),
            Verdict::Leak,
            Some(format!("clinic A's context sees {n} of clinic B's rows")),
            started.elapsed(),
        ),
        Err(f) => record(
            "db.select",
            "0 rows of clinic B",
            format!("error {}: {}", f.state, f.message),
            Verdict::Inconclusive,
            Some(format!("the count failed ({}: {})", f.state, f.message)),
            started.elapsed(),
        ),
    };
    report.probes.push(select);

    // Inserting a row for B: refused by the policy's WITH CHECK (which
    // PostgreSQL checks before NOT NULL and other constraints).
    let (result, _, ms) = attempt(
        tx,
        format!("INSERT INTO {table} ({column}) VALUES ($1)"),
        vec![b.clinic.into()],
        None,
    )
    .await;
    let (verdict, actual, detail) = judge_write(result, "inserted a row for clinic B");
    report.probes.push(record(
        "db.insert",
        "refused (42501)",
        actual,
        verdict,
        detail,
        ms,
    ));

    // Updating one of B's rows (setting its tenant to itself).
    let (result, _, ms) = attempt(
        tx,
        format!(
            "UPDATE {table} SET {column} = {column} WHERE {column} = $1 \
             AND ctid = ANY (ARRAY(SELECT ctid FROM {table} WHERE {column} = $1 LIMIT 1))"
        ),
        vec![b.clinic.into()],
        None,
    )
    .await;
    let (verdict, actual, detail) = judge_touch(result, "updated");
    report.probes.push(record(
        "db.update",
        "0 rows, or refused",
        actual,
        verdict,
        detail,
        ms,
    ));

    // Moving one of A's own rows into B.
    let (result, after, ms) = attempt(
        tx,
        format!(
            "UPDATE {table} SET {column} = $1 WHERE {column} = $2 \
             AND ctid = ANY (ARRAY(SELECT ctid FROM {table} WHERE {column} = $2 LIMIT 1))"
        ),
        vec![b.clinic.into(), a.clinic.into()],
        Some((t, b.clinic)),
    )
    .await;
    let mut moved = match result {
        Ok(0) => record(
            "db.move",
            "refused (42501)",
            "0 rows".into(),
            Verdict::Inconclusive,
            Some(if a_count == 0 {
                "clinic A has no row here to move".to_owned()
            } else {
                "no row of clinic A's could be updated".to_owned()
            }),
            ms,
        ),
        Ok(n) => {
            if after.unwrap_or(0) > 0 {
                let mut r = record(
                    "db.move",
                    "refused (42501)",
                    format!("{n} row(s) took clinic B's id and stayed visible to clinic A"),
                    Verdict::Pass,
                    None,
                    ms,
                );
                r.warnings.push(
                    "the policy does not tie rows to a clinic (a per-person table?): a row of clinic A's \
                     user can be given clinic B's id, though it stays that user's"
                        .to_owned(),
                );
                r
            } else {
                record(
                    "db.move",
                    "refused (42501)",
                    format!("{n} row(s) moved"),
                    Verdict::Leak,
                    Some("a row of clinic A's moved into clinic B".to_owned()),
                    ms,
                )
            }
        }
        Err(f) => {
            let (verdict, actual, detail) = judge_write(Err(f), "moved a row into clinic B");
            record("db.move", "refused (42501)", actual, verdict, detail, ms)
        }
    };
    moved.ids = vec![b_id.clone(), a_id.clone()];
    report.probes.push(moved);

    // Deleting one of B's rows.
    let (result, _, ms) = attempt(
        tx,
        format!(
            "DELETE FROM {table} WHERE {column} = $1 \
             AND ctid = ANY (ARRAY(SELECT ctid FROM {table} WHERE {column} = $1 LIMIT 1))"
        ),
        vec![b.clinic.into()],
        None,
    )
    .await;
    let (verdict, actual, detail) = judge_touch(result, "deleted");
    report.probes.push(record(
        "db.delete",
        "0 rows, or refused",
        actual,
        verdict,
        detail,
        ms,
    ));
}

/// A write that must be refused: 42501 (the policy, or no privilege) is a
/// pass; success, or a constraint stopping it after the policy let it
/// through (SQLSTATE class 23), a leak; anything else proves nothing.
fn judge_write(result: Result<u64, Failure>, what: &str) -> (Verdict, String, Option<String>) {
    match result {
        Err(f) if f.state == "42501" => (Verdict::Pass, format!("refused: {}", f.message), None),
        Ok(n) => (
            Verdict::Leak,
            format!("{n} row(s)"),
            Some(format!("clinic A's context {what}")),
        ),
        Err(f) if f.state.starts_with("23") => (
            Verdict::Leak,
            format!("error {}: {}", f.state, f.message),
            Some(format!(
                "row-level security let it through (clinic A's context {what}); only a constraint stopped it: {}",
                f.message
            )),
        ),
        Err(f) => (
            Verdict::Inconclusive,
            format!("error {}: {}", f.state, f.message),
            Some(format!(
                "failed before the policy could be seen at work ({}: {})",
                f.state, f.message
            )),
        ),
    }
}

/// A write to B's rows: it must touch none (they are invisible) or be
/// refused.
fn judge_touch(result: Result<u64, Failure>, what: &str) -> (Verdict, String, Option<String>) {
    match result {
        Ok(0) => (Verdict::Pass, "0 rows".to_owned(), None),
        Ok(n) => (
            Verdict::Leak,
            format!("{n} row(s)"),
            Some(format!("clinic A's context {what} clinic B's row(s)")),
        ),
        Err(f) if f.state == "42501" => (Verdict::Pass, format!("refused: {}", f.message), None),
        Err(f) if f.state.starts_with("23") => (
            Verdict::Leak,
            format!("error {}: {}", f.state, f.message),
            Some(format!(
                "clinic A's context reached clinic B's row; a constraint stopped it: {}",
                f.message
            )),
        ),
        Err(f) => (
            Verdict::Inconclusive,
            format!("error {}: {}", f.state, f.message),
            Some(format!("{}: {}", f.state, f.message)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(state: &str) -> Failure {
        Failure {
            state: state.to_owned(),
            message: "m".to_owned(),
        }
    }

    #[test]
    fn a_write_for_b_passes_only_when_refused() {
        assert_eq!(judge_write(Err(failure("42501")), "x").0, Verdict::Pass);
        assert_eq!(judge_write(Ok(1), "x").0, Verdict::Leak);
        // NOT NULL comes after WITH CHECK: the policy let the row through.
        assert_eq!(judge_write(Err(failure("23502")), "x").0, Verdict::Leak);
        assert_eq!(
            judge_write(Err(failure("P0001")), "x").0,
            Verdict::Inconclusive
        );
    }

    #[test]
    fn a_write_to_b_rows_passes_when_it_touches_none() {
        assert_eq!(judge_touch(Ok(0), "x").0, Verdict::Pass);
        assert_eq!(judge_touch(Ok(2), "x").0, Verdict::Leak);
        assert_eq!(judge_touch(Err(failure("42501")), "x").0, Verdict::Pass);
    }

    #[test]
    fn the_password_is_not_shown() {
        assert_eq!(
            display_url("postgres://app:secret@db.example:5432/caregate"),
            "postgres://app:***@db.example:5432/caregate"
        );
    }
}
