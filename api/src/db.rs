//! Database connections: the owner (migrations, seeds, `check`) and the
//! runtime pool every request runs on.

use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, SqlxPostgresConnector, Statement,
};

use service::tx::{Counter, RequestTx};

use crate::config::Config;

/// Connects as the owner role named by `url`.
pub async fn connect_owner(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut opts = sea_orm::ConnectOptions::new(url.to_owned());
    opts.max_connections(2).sqlx_logging(false);
    Database::connect(opts)
        .await
        .context("connecting to PostgreSQL as the owner role")
}

/// The runtime role's URL: APP_DATABASE_URL, or the owner's URL with the
/// user `caregate_app`.
pub fn runtime_options(config: &Config, owner_url: &str) -> anyhow::Result<PgConnectOptions> {
    let opts = match &config.app_database_url {
        Some(url) => PgConnectOptions::from_str(url).context("parsing APP_DATABASE_URL")?,
        None => runtime_of_owner(owner_url)?,
    };
    Ok(request_settings(opts, config))
}

/// The settings of a connection requests run on: pinned as startup
/// options, or — through a transaction-mode pooler, which refuses startup
/// parameters it does not know — none, the session settings being set in
/// each transaction instead (`TxOptions::through_pooler`).
fn request_settings(opts: PgConnectOptions, config: &Config) -> PgConnectOptions {
    if config.db_transaction_pooler {
        return opts.application_name("caregate").extra_float_digits(None);
    }
    session_settings(opts, config)
}

/// The read replica's connection options (READ_DATABASE_URL), set up as
/// the runtime role's are.
pub fn replica_options(config: &Config) -> anyhow::Result<Option<PgConnectOptions>> {
    let Some(url) = &config.read_database_url else {
        return Ok(None);
    };
    let opts = PgConnectOptions::from_str(url).context("parsing READ_DATABASE_URL")?;
    Ok(Some(request_settings(opts, config)))
}

/// The runtime role's connection directly to PostgreSQL, for what cannot
/// go through a transaction-mode pooler: the live-update LISTEN (the
/// pooler would hand it to whichever server connection is free and lose
/// the notifications) and the login counters (a login counts while it
/// holds its request's server connection: through the pooler, as many
/// concurrent logins as it has server connections would wait on each
/// other). Without a pooler, the runtime URL.
pub fn direct_options(config: &Config, owner_url: &str) -> anyhow::Result<PgConnectOptions> {
    let opts = match &config.direct_database_url {
        Some(url) => PgConnectOptions::from_str(url).context("parsing DIRECT_DATABASE_URL")?,
        None if config.db_transaction_pooler => runtime_of_owner(owner_url)?,
        None => return runtime_options(config, owner_url),
    };
    Ok(session_settings(opts, config))
}

/// The owner's URL with the runtime role's name.
fn runtime_of_owner(owner_url: &str) -> anyhow::Result<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(owner_url)
        .context("parsing DATABASE_URL")?
        .username(migration::RUNTIME_ROLE)
        .password(""))
}

/// The session settings pinned on a direct connection.
fn session_settings(opts: PgConnectOptions, config: &Config) -> PgConnectOptions {
    opts.application_name("caregate").options([
        // Pinned on every connection whatever the role or database says:
        // nothing the server sends depends on it (texts go as parameters or
        // hex), but a literal anywhere would.
        ("standard_conforming_strings", "on".to_owned()),
        ("statement_timeout", config.statement_timeout_ms.to_string()),
        // A transaction left open by a crashed request is ended by the server.
        (
            "idle_in_transaction_session_timeout",
            (config.statement_timeout_ms * 4).to_string(),
        ),
    ])
}

/// Opens the runtime pool and refuses to go on when the role could bypass
/// row-level security: a superuser or BYPASSRLS role would make every
/// isolation policy moot.
///
/// A request waits at most `acquire_timeout` for a connection: with
/// PostgreSQL down, it fails fast (HTTP 503) rather than queueing.
pub async fn connect_runtime(
    opts: PgConnectOptions,
    tx: &service::tx::TxOptions,
    statement_timeout_ms: u64,
    pool_size: u32,
    acquire_timeout: Duration,
    counter: Counter,
) -> anyhow::Result<DatabaseConnection> {
    let pool = PgPoolOptions::new()
        .max_connections(pool_size)
        .acquire_timeout(acquire_timeout)
        .connect_with(opts)
        .await
        .context("connecting to PostgreSQL as the runtime role")?;
    // In a transaction, as everything on this pool (a transaction-mode
    // pooler allows prepared statements only there).
    let (check, _) = RequestTx::begin_with(&pool, tx, "", Counter::default())
        .await
        .context("connecting to PostgreSQL as the runtime role")?;
    assert_runtime_role_is_confined(&check).await?;
    assert_settings_arrived(&check, statement_timeout_ms).await?;
    drop(check);
    let mut db = SqlxPostgresConnector::from_sqlx_postgres_pool(pool);
    db.set_metric_callback(move |_info| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    Ok(db)
}

/// The readiness probe's own single connection (opened on first use), so
/// that `/readyz` never queues behind requests for the request pool and a
/// busy replica does not look unready.
pub fn readiness_pool(opts: PgConnectOptions, timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(timeout)
        .connect_lazy_with(opts)
}

/// A small pool for statements that commit on their own while a request
/// holds its transaction (login attempt counts). Apart from the request
/// pool, so a request never waits for a second connection of the pool it
/// already holds one of (a burst of logins would otherwise starve it).
///
/// `opts` must reach PostgreSQL directly ([`direct_options`]): its
/// statements are prepared on their own, outside any transaction.
pub fn side_pool(opts: PgConnectOptions, timeout: Duration) -> DatabaseConnection {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .min_connections(0)
        .acquire_timeout(timeout)
        .connect_lazy_with(opts);
    SqlxPostgresConnector::from_sqlx_postgres_pool(pool)
}

/// The session settings sent as startup options (or, through a pooler, set
/// in each transaction) are in force: a pooler that silently drops startup
/// options (PgBouncer's `ignore_startup_parameters`) would leave queries
/// without their timeout — and would break named statements too.
async fn assert_settings_arrived(
    db: &impl ConnectionTrait,
    statement_timeout_ms: u64,
) -> anyhow::Result<()> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT current_setting('statement_timeout') AS actual, \
             current_setting('statement_timeout')::interval \
                 = make_interval(secs => $1::float8 / 1000) AS applied",
            [(statement_timeout_ms as f64).into()],
        ))
        .await?
        .context("reading statement_timeout")?;
    let actual: String = row.try_get("", "actual")?;
    let applied: bool = row.try_get("", "applied")?;
    if !applied {
        bail!(
            "refusing to serve: the runtime connection's statement_timeout is {actual}, not \
             STATEMENT_TIMEOUT_MS ({statement_timeout_ms} ms), so its startup options did not \
             arrive. If APP_DATABASE_URL reaches PgBouncer (or another pooler) in transaction \
             mode, set DB_TRANSACTION_POOLER=true"
        );
    }
    Ok(())
}

async fn assert_runtime_role_is_confined(db: &impl ConnectionTrait) -> anyhow::Result<()> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_user::text AS name, rolsuper, rolbypassrls \
             FROM pg_roles WHERE rolname = current_user",
        ))
        .await?
        .context("the runtime role is not in pg_roles")?;
    let name: String = row.try_get("", "name")?;
    let superuser: bool = row.try_get("", "rolsuper")?;
    let bypass: bool = row.try_get("", "rolbypassrls")?;
    if superuser || bypass {
        bail!(
            "refusing to serve: the runtime role {name} is a superuser or has BYPASSRLS, which \
             would bypass row-level security. Use a NOSUPERUSER NOBYPASSRLS role \
             (the migrations create {})",
            migration::RUNTIME_ROLE
        );
    }
    Ok(())
}

/// Names of migrations not yet applied, read with whatever role `pool` is.
pub async fn pending_migrations(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    // A simple query (nothing prepared): it runs outside any transaction,
    // which a transaction-mode pooler allows only for simple queries.
    let applied: Vec<String> = sea_orm::sqlx::raw_sql("SELECT version FROM seaql_migrations")
        .fetch_all(pool)
        .await
        .context("reading applied migrations")?
        .iter()
        .map(|row| sea_orm::sqlx::Row::try_get(row, 0))
        .collect::<Result<_, _>>()
        .context("reading applied migrations")?;
    Ok(migration::migration_names()
        .into_iter()
        .filter(|name| !applied.contains(name))
        .collect())
}

/// Creates database `name` on the server of `admin_url` when it is missing.
pub async fn create_database_if_missing(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let admin = connect_owner(admin_url).await?;
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await?
        .is_some();
    if !exists {
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{}\"", name.replace('"', "")))
            .await
            .with_context(|| format!("creating database {name}"))?;
    }
    admin.close().await.ok();
    Ok(())
}
