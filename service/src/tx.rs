//! The request's transaction.
//!
//! One pooled connection, held for one request. It is opened with `BEGIN`
//! and the statement that sets the request's context sent together, as one
//! simple query — one round trip — and ended with `COMMIT`: two round trips
//! beyond the request's own queries. SeaORM's transaction type always sends
//! `BEGIN` on its own and cannot be opened with a first statement, which is
//! why this type exists; it implements SeaORM's `ConnectionTrait`, so every
//! query builder and active model works on it as on any connection.
//!
//! A transaction dropped without `commit` (an error, a cancelled request) is
//! rolled back before its connection goes back to the pool, so no context
//! and no half-done write can reach another request.
//!
//! Every statement runs in a debug-level `sql` span holding its text, and
//! ends with a debug event giving its `duration_ms`. A statement with bound
//! parameters shows its text with `$n` placeholders, never the values; a
//! statement sent as a simple query carries its values as literals, so only
//! what precedes its first quoted literal is shown.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::PgPool;
use sea_orm::sqlx::{self, Executor, Postgres};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr, Statement};
use sea_query_sqlx::SqlxValues;
use tokio::sync::Mutex;
use tracing::{Instrument, Span};

fn db_err(err: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
}

fn closed() -> DbErr {
    DbErr::Custom("the request transaction is closed".to_owned())
}

/// The span of a statement whose values are bound as parameters: its text
/// holds `$n` placeholders and no value.
fn statement_span(sql: &str) -> Span {
    tracing::debug_span!("sql", statement = sql)
}

/// The span of a statement sent as a simple query, whose values are
/// literals in its text: only the text before the first quoted literal.
fn simple_statement_span(sql: &str) -> Span {
    tracing::debug_span!("sql", statement = %BeforeLiterals(sql))
}

/// At most this many bytes of a simple query's text go into its span.
const SHOWN_SIMPLE_SQL: usize = 200;

/// A simple query's text up to its first quoted literal (`'…'`, `E'…'`,
/// `$$…$$`) and at most [`SHOWN_SIMPLE_SQL`] bytes, `…` marking a cut.
struct BeforeLiterals<'a>(&'a str);

impl fmt::Display for BeforeLiterals<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sql = self.0;
        let mut end = sql
            .find(['\'', '$'])
            .unwrap_or(sql.len())
            .min(SHOWN_SIMPLE_SQL);
        while !sql.is_char_boundary(end) {
            end -= 1;
        }
        f.write_str(&sql[..end])?;
        if end < sql.len() {
            f.write_str("…")?;
        }
        Ok(())
    }
}

/// Runs one statement inside `span` and reports how long it took (nothing
/// is measured or formatted when the span is disabled).
async fn timed<T, E>(span: Span, statement: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    if span.is_disabled() {
        return statement.await;
    }
    let started = Instant::now();
    let result = statement.instrument(span.clone()).await;
    // Whole microseconds, so the log reads 1.666 rather than 1.6663979999999998.
    let duration_ms = started.elapsed().as_micros() as f64 / 1000.0;
    tracing::debug!(parent: &span, duration_ms, ok = result.is_ok(), "statement done");
    result
}

/// Counts round trips to PostgreSQL: `BEGIN` with the context counts one,
/// each query one, `COMMIT` one (shared with the metrics and the tests).
pub type Counter = Arc<AtomicU64>;

/// How a transaction is opened and its statements sent: directly to
/// PostgreSQL (the default), or through a pooler in transaction mode.
///
/// PgBouncer in transaction mode (before 1.21) gives each transaction
/// whichever server connection is free: a named prepared statement made in
/// one transaction is missing in the next, and startup options (such as
/// `statement_timeout`) are refused. Through such a pooler, statements go
/// unnamed (parsed anew in each transaction, one more round trip per
/// statement) and the session settings are set at the start of every
/// transaction, in its first round trip.
#[derive(Debug, Clone)]
pub struct TxOptions {
    named_statements: bool,
    /// `BEGIN READ ONLY`: for a read replica. Audit events are then kept
    /// back ([`RequestTx::take_deferred`]) for the primary to write.
    read_only: bool,
    /// Sent after `BEGIN` in the transaction's first round trip.
    preamble: Arc<str>,
}

impl Default for TxOptions {
    fn default() -> Self {
        Self {
            named_statements: true,
            read_only: false,
            preamble: Arc::from(""),
        }
    }
}

impl TxOptions {
    /// Through a transaction-mode pooler: unnamed statements, and the
    /// timeouts set in each transaction.
    pub fn through_pooler(statement_timeout_ms: u64) -> Self {
        let idle_ms = statement_timeout_ms.saturating_mul(4);
        Self {
            named_statements: false,
            read_only: false,
            preamble: Arc::from(format!(
                "SET LOCAL statement_timeout = {statement_timeout_ms}; \
                 SET LOCAL idle_in_transaction_session_timeout = {idle_ms}; \
                 SET LOCAL standard_conforming_strings = on; "
            )),
        }
    }

    /// The same, for transactions that only read (on a read replica).
    pub fn read_only(self) -> Self {
        Self {
            read_only: true,
            ..self
        }
    }

    /// Whether statements are prepared under a name and cached on their
    /// connection.
    pub fn named_statements(&self) -> bool {
        self.named_statements
    }
}

pub struct RequestTx {
    conn: Mutex<Option<PoolConnection<Postgres>>>,
    named_statements: bool,
    read_only: bool,
    /// Audit events of a read-only transaction, for the primary to write.
    deferred: std::sync::Mutex<Vec<Statement>>,
    statements: Counter,
    savepoints: AtomicU32,
    /// A statement failed and no savepoint has undone it since: PostgreSQL
    /// has aborted the transaction, and its COMMIT would silently roll back.
    aborted: AtomicBool,
}

/// Why a request's transaction did not commit.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The transaction had been aborted by an error: nothing it wrote was
    /// saved, for certain.
    #[error("the transaction was aborted by an earlier error and rolled back")]
    Aborted,
    /// COMMIT was sent and its answer never arrived (the connection broke):
    /// the transaction may or may not have committed.
    #[error("the outcome of COMMIT is unknown: {0}")]
    Unknown(#[source] DbErr),
    /// Something still held the transaction (a bug); it is rolled back.
    #[error("the request transaction is still shared at commit")]
    Shared,
    /// The statement sent with COMMIT, or COMMIT itself, failed: PostgreSQL
    /// rolled the transaction back, and nothing it wrote was saved.
    #[error("the transaction was rolled back at commit: {0}")]
    RolledBack(#[source] DbErr),
}

impl std::fmt::Debug for RequestTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestTx")
    }
}

impl RequestTx {
    /// Takes a connection and runs `BEGIN; <first>` in one round trip,
    /// returning the rows of `first`. `first` is sent as a simple query, so
    /// it carries no parameters: every value in it must already be a
    /// literal the caller made safe.
    pub async fn begin_with(
        pool: &PgPool,
        options: &TxOptions,
        first: &str,
        statements: Counter,
    ) -> Result<(Self, Vec<QueryResult>), DbErr> {
        let mut conn = pool.acquire().await.map_err(db_err)?;
        let begin = if options.read_only {
            "BEGIN READ ONLY"
        } else {
            "BEGIN"
        };
        let sql = format!("{begin}; {}{first}", options.preamble);
        let span = simple_statement_span(&sql);
        let result = timed(
            span,
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *conn),
        )
        .await;
        statements.fetch_add(1, Ordering::Relaxed);
        let tx = Self {
            conn: Mutex::new(Some(conn)),
            named_statements: options.named_statements,
            read_only: options.read_only,
            deferred: std::sync::Mutex::default(),
            statements,
            savepoints: AtomicU32::new(0),
            aborted: AtomicBool::new(false),
        };
        // On error, dropping `tx` rolls back and releases the connection.
        let rows = result.map_err(db_err)?;
        Ok((tx, rows.into_iter().map(QueryResult::from).collect()))
    }

    /// Runs `sql` as a simple query (no parameters, nothing prepared or
    /// cached) and returns its rows: for statements whose text is unique to
    /// one request, which would only churn the prepared-statement cache.
    pub async fn simple_query(&self, sql: &str) -> Result<Vec<QueryResult>, DbErr> {
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(closed)?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        let statement = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).fetch_all(&mut **conn);
        timed(simple_statement_span(sql), statement)
            .await
            .map(|rows| rows.into_iter().map(QueryResult::from).collect())
            .map_err(|e| self.failed(e))
    }

    /// Whether this transaction only reads (on a read replica): what it
    /// must write — audit events — is kept back with [`defer`](Self::defer).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Keeps `stmt` (an audit event) to be run on the primary, in the
    /// request's transaction there, before the response is sent.
    pub fn defer(&self, stmt: Statement) {
        if let Ok(mut deferred) = self.deferred.lock() {
            deferred.push(stmt);
        }
    }

    /// The statements kept back with [`defer`](Self::defer).
    pub fn take_deferred(&self) -> Vec<Statement> {
        self.deferred
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default()
    }

    /// Whether a failed statement has aborted the transaction (so that it
    /// can only roll back).
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    /// Commits and gives the connection back to the pool — or says why the
    /// transaction's work was not, or may not have been, saved.
    ///
    /// PostgreSQL answers `COMMIT` on an aborted transaction with the tag
    /// `ROLLBACK` and no error, and the driver does not expose the tag. So
    /// an aborted transaction (known from the statements' errors) is never
    /// committed, and `COMMIT` travels behind an empty `SELECT` in the same
    /// simple query: in an aborted transaction (e.g. a statement of a
    /// cancelled task failed unseen) that `SELECT` fails with 25P02 and the
    /// `COMMIT` is not run, so success here means PostgreSQL committed.
    pub async fn commit(self) -> Result<(), CommitError> {
        self.commit_after("SELECT").await
    }

    /// [`commit`](Self::commit), with `last` run in the same round trip
    /// just before `COMMIT` (a request's READ audit): if `last` fails,
    /// `COMMIT` is not run and nothing is saved. `last` is sent as a simple
    /// query: it must hold no byte a client chose.
    pub async fn commit_after(self, last: &str) -> Result<(), CommitError> {
        let Some(conn) = self.conn.lock().await.take() else {
            return Err(CommitError::Aborted);
        };
        if self.is_aborted() {
            // Put back, so that dropping `self` rolls back and recycles it.
            *self.conn.lock().await = Some(conn);
            return Err(CommitError::Aborted);
        }
        self.statements.fetch_add(1, Ordering::Relaxed);
        // Should this future be dropped while COMMIT is under way (the
        // client went away), the connection's state is unknown: it is
        // closed, never put back in the pool.
        let mut committing = Committing(Some(conn));
        let result = match committing.0.as_mut() {
            Some(conn) => {
                let sql = format!("{last}; COMMIT");
                let span = simple_statement_span(&sql);
                let statement = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut **conn);
                timed(span, statement).await
            }
            None => return Err(CommitError::Aborted),
        };
        let conn = committing.0.take();
        match (result, conn) {
            (Ok(_), _) => Ok(()),
            (Err(sqlx::Error::Database(e)), Some(conn)) if e.code().as_deref() == Some("25P02") => {
                *self.conn.lock().await = Some(conn);
                Err(CommitError::Aborted)
            }
            // PostgreSQL answered with an error: `last` failed (and COMMIT
            // did not run), or COMMIT failed. Either way it rolled back.
            (Err(e @ sqlx::Error::Database(_)), Some(conn)) => {
                *self.conn.lock().await = Some(conn);
                Err(CommitError::RolledBack(db_err(e)))
            }
            (Err(e), conn) => {
                if let Some(mut conn) = conn {
                    conn.close_on_drop();
                }
                Err(CommitError::Unknown(db_err(e)))
            }
        }
    }

    /// Opens a savepoint: what runs until it is released can be undone
    /// alone.
    pub async fn savepoint(&self) -> Result<Savepoint<'_>, DbErr> {
        let name = format!("sp_{}", self.savepoints.fetch_add(1, Ordering::Relaxed));
        self.execute_unprepared(&format!("SAVEPOINT {name}"))
            .await?;
        Ok(Savepoint { tx: self, name })
    }
}

/// A connection in the middle of COMMIT: closed if dropped there.
struct Committing(Option<PoolConnection<Postgres>>);

impl Drop for Committing {
    fn drop(&mut self) {
        if let Some(conn) = self.0.as_mut() {
            conn.close_on_drop();
        }
    }
}

/// A savepoint of a [`RequestTx`].
pub struct Savepoint<'a> {
    tx: &'a RequestTx,
    name: String,
}

impl Savepoint<'_> {
    pub async fn release(self) -> Result<(), DbErr> {
        self.tx
            .execute_unprepared(&format!("RELEASE SAVEPOINT {}", self.name))
            .await
            .map(|_| ())
    }

    /// Undoes what ran since the savepoint, including an error that
    /// aborted the transaction: it can commit again afterwards.
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.tx
            .execute_unprepared(&format!("ROLLBACK TO SAVEPOINT {}", self.name))
            .await?;
        self.tx.aborted.store(false, Ordering::Release);
        Ok(())
    }
}

impl Drop for RequestTx {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.get_mut().take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let span = simple_statement_span("ROLLBACK");
                runtime.spawn(async move {
                    if timed(span, conn.execute("ROLLBACK")).await.is_err() {
                        conn.close_on_drop();
                    }
                });
            }
            Err(_) => conn.close_on_drop(),
        }
    }
}

impl RequestTx {
    /// Notes a failed statement: PostgreSQL has aborted the transaction.
    fn failed(&self, err: sqlx::Error) -> DbErr {
        self.aborted.store(true, Ordering::Release);
        db_err(err)
    }
}

/// `stmt` with its values bound; prepared under a name (and cached on the
/// connection) when `named`, else unnamed.
fn query(stmt: &Statement, named: bool) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
    let values = stmt
        .values
        .clone()
        .unwrap_or(sea_orm::sea_query::Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values)).persistent(named)
}

#[async_trait::async_trait]
impl ConnectionTrait for RequestTx {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(closed)?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        timed(
            statement_span(&stmt.sql),
            query(&stmt, self.named_statements).execute(&mut **conn),
        )
        .await
        .map(ExecResult::from)
        .map_err(|e| self.failed(e))
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(closed)?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        let statement = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut **conn);
        timed(simple_statement_span(sql), statement)
            .await
            .map(ExecResult::from)
            .map_err(|e| self.failed(e))
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(closed)?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        timed(
            statement_span(&stmt.sql),
            query(&stmt, self.named_statements).fetch_optional(&mut **conn),
        )
        .await
        .map(|row| row.map(QueryResult::from))
        .map_err(|e| self.failed(e))
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(closed)?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        timed(
            statement_span(&stmt.sql),
            query(&stmt, self.named_statements).fetch_all(&mut **conn),
        )
        .await
        .map(|rows| rows.into_iter().map(QueryResult::from).collect())
        .map_err(|e| self.failed(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simple_query_is_shown_up_to_its_first_literal() {
        let sql = "BEGIN; SELECT role FROM app.begin_request(convert_from(decode('3132', 'hex'), 'UTF8'), NULL::uuid)";
        assert_eq!(
            BeforeLiterals(sql).to_string(),
            "BEGIN; SELECT role FROM app.begin_request(convert_from(decode(…"
        );
        assert_eq!(
            BeforeLiterals("DO $$ BEGIN NULL; END $$").to_string(),
            "DO …"
        );
    }

    #[test]
    fn a_simple_query_without_literals_is_shown_whole_up_to_the_limit() {
        assert_eq!(
            BeforeLiterals("SAVEPOINT sp_0").to_string(),
            "SAVEPOINT sp_0"
        );
        let long = format!("SELECT {}", "é".repeat(SHOWN_SIMPLE_SQL));
        let shown = BeforeLiterals(&long).to_string();
        assert!(shown.ends_with('…'));
        assert!(shown.len() <= SHOWN_SIMPLE_SQL + '…'.len_utf8());
    }
}
