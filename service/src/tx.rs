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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::PgPool;
use sea_orm::sqlx::{self, Executor, Postgres};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr, Statement};
use sea_query_sqlx::SqlxValues;
use tokio::sync::Mutex;

fn db_err(err: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
}

fn closed() -> DbErr {
    DbErr::Custom("the request transaction is closed".to_owned())
}

/// Counts round trips to PostgreSQL: `BEGIN` with the context counts one,
/// each query one, `COMMIT` one (shared with the metrics and the tests).
pub type Counter = Arc<AtomicU64>;

pub struct RequestTx {
    conn: Mutex<Option<PoolConnection<Postgres>>>,
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
        first: &str,
        statements: Counter,
    ) -> Result<(Self, Vec<QueryResult>), DbErr> {
        let mut conn = pool.acquire().await.map_err(db_err)?;
        let sql = format!("BEGIN; {first}");
        let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await;
        statements.fetch_add(1, Ordering::Relaxed);
        let tx = Self {
            conn: Mutex::new(Some(conn)),
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
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut **conn)
            .await
            .map(|rows| rows.into_iter().map(QueryResult::from).collect())
            .map_err(|e| self.failed(e))
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
            Some(conn) => sqlx::raw_sql("SELECT; COMMIT").execute(&mut **conn).await,
            None => return Err(CommitError::Aborted),
        };
        let conn = committing.0.take();
        match (result, conn) {
            (Ok(_), _) => Ok(()),
            (Err(sqlx::Error::Database(e)), Some(conn)) if e.code().as_deref() == Some("25P02") => {
                *self.conn.lock().await = Some(conn);
                Err(CommitError::Aborted)
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
                runtime.spawn(async move {
                    if conn.execute("ROLLBACK").await.is_err() {
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

fn query(stmt: &Statement) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
    let values = stmt
        .values
        .clone()
        .unwrap_or(sea_orm::sea_query::Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values))
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
        query(&stmt)
            .execute(&mut **conn)
            .await
            .map(ExecResult::from)
            .map_err(|e| self.failed(e))
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(closed)?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut **conn)
            .await
            .map(ExecResult::from)
            .map_err(|e| self.failed(e))
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(closed)?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        query(&stmt)
            .fetch_optional(&mut **conn)
            .await
            .map(|row| row.map(QueryResult::from))
            .map_err(|e| self.failed(e))
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(closed)?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        query(&stmt)
            .fetch_all(&mut **conn)
            .await
            .map(|rows| rows.into_iter().map(QueryResult::from).collect())
            .map_err(|e| self.failed(e))
    }
}
