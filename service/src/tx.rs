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
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

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
        };
        // On error, dropping `tx` rolls back and releases the connection.
        let rows = result.map_err(db_err)?;
        Ok((tx, rows.into_iter().map(QueryResult::from).collect()))
    }

    /// Commits and gives the connection back to the pool.
    pub async fn commit(self) -> Result<(), DbErr> {
        let mut conn = self.conn.lock().await.take().ok_or_else(closed)?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        match conn.execute("COMMIT").await {
            Ok(_) => Ok(()),
            Err(e) => {
                // The connection's state is unknown: it must not be reused.
                conn.close_on_drop();
                Err(db_err(e))
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

    pub async fn rollback(self) -> Result<(), DbErr> {
        self.tx
            .execute_unprepared(&format!("ROLLBACK TO SAVEPOINT {}", self.name))
            .await
            .map(|_| ())
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
            .map_err(db_err)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(closed)?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut **conn)
            .await
            .map(ExecResult::from)
            .map_err(db_err)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(closed)?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        query(&stmt)
            .fetch_optional(&mut **conn)
            .await
            .map(|row| row.map(QueryResult::from))
            .map_err(db_err)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(closed)?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        query(&stmt)
            .fetch_all(&mut **conn)
            .await
            .map(|rows| rows.into_iter().map(QueryResult::from).collect())
            .map_err(db_err)
    }
}
