//! What every request shares, built once at start: the pools, the schema,
//! the document cache, the token issuer, the metrics. Nothing
//! request-specific lives here: the transaction, the caller and the
//! DataLoaders are built per request.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sea_orm::DatabaseConnection;
use sea_orm::sqlx::postgres::PgPool;
use service::auth::{AttemptLimits, LoginSettings};
use service::tx::Counter;

use crate::budgets::{self, Budgets};
use crate::config::{Config, Environment};
use crate::db;
use crate::graphql::limits::OperationLimits;
use crate::graphql::persisted::PersistedQueries;
use crate::graphql::prepare::Preparation;
use crate::graphql::{self, CaregateSchema};
use crate::metrics::Metrics;
use crate::tokens::Tokens;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// The runtime pool (NOSUPERUSER NOBYPASSRLS role).
    pub db: DatabaseConnection,
    /// SQL statements run by the runtime role (requests and probes).
    pub statements: Counter,
    /// How request transactions are opened on `db` (directly, or through
    /// a transaction-mode pooler).
    pub tx_options: service::tx::TxOptions,
    /// Where requests without mutations read, when READ_DATABASE_URL is set.
    pub replica: Option<Arc<crate::replica::Replica>>,
    /// The readiness probe's own connection.
    pub readiness: PgPool,
    /// Proxies whose X-Forwarded-For is believed.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    pub schema: CaregateSchema,
    /// Persisted queries, parsed-document cache and operation limits.
    pub preparation: Arc<Preparation>,
    /// Permits to prepare and run a large document (one per core).
    pub large_documents: Arc<tokio::sync::Semaphore>,
    pub tokens: Arc<Tokens>,
    pub metrics: Arc<Metrics>,
    /// Live-update sockets and the events they deliver.
    pub live: Arc<crate::live::Live>,
    /// Every clinic's request and cost budget, as this server counts it.
    pub budgets: Arc<Budgets>,
}

impl AppState {
    /// Connects the runtime pool (refusing a role that bypasses RLS and,
    /// in production, a catalog that breaks the isolation model) and builds
    /// the schema.
    pub async fn build(config: Config, owner_url: &str) -> anyhow::Result<Self> {
        config.validate()?;
        let statements = Counter::default();
        let opts = db::runtime_options(&config, owner_url)?;
        let live = Arc::new(crate::live::Live::new(
            config.live_max_connections,
            config.live_max_connections_per_user,
            config.live_buffer,
            config.db_pool_size,
        ));
        // The events of live updates, on a connection of its own.
        live.hub.listen(db::direct_options(&config, owner_url)?);
        let readiness = db::readiness_pool(
            opts.clone(),
            Duration::from_millis(config.readiness_timeout_ms),
        );
        let tx_options = config.tx_options();
        let replica = db::replica_options(&config)?.map(|opts| {
            Arc::new(crate::replica::Replica::new(
                opts,
                tx_options.clone(),
                config.db_pool_size,
                Duration::from_millis(config.db_acquire_timeout_ms),
                Duration::from_secs(config.read_your_writes_seconds),
            ))
        });
        // The counters go directly to PostgreSQL: behind a transaction-mode
        // pooler, a login holds its request's server connection while it
        // counts, and as many concurrent logins as the pooler has server
        // connections would wait on each other.
        let side = db::side_pool(
            db::direct_options(&config, owner_url)?,
            Duration::from_millis(config.db_acquire_timeout_ms),
        );
        // The budgets' counts are synchronised on a direct connection of
        // their own, never waiting behind requests or logins.
        let budgets = Arc::new(Budgets::new(
            budgets::Settings::of(&config),
            db::side_pool(
                db::direct_options(&config, owner_url)?,
                Duration::from_millis(config.db_acquire_timeout_ms),
            ),
        ));
        budgets.spawn_sync();
        let db = db::connect_runtime(
            opts,
            &tx_options,
            config.statement_timeout_ms,
            config.db_pool_size,
            Duration::from_millis(config.db_acquire_timeout_ms),
            statements.clone(),
        )
        .await?;
        // The catalog as the isolation model needs it: refuse to serve a
        // production deployment that breaks it; say so in development.
        let findings = {
            let (check, _) = service::Tx::begin_with(
                db.get_postgres_connection_pool(),
                &tx_options,
                "",
                Counter::default(),
            )
            .await
            .context("checking the catalog's security")?;
            service::integrity::security(&check)
                .await
                .context("checking the catalog's security")?
        };
        for f in &findings {
            tracing::warn!(rule = f.rule, detail = %f.detail, "security check failed");
        }
        if config.environment == Environment::Production && !findings.is_empty() {
            // Every finding, each naming its object (a weakened catalog
            // usually has a few, and the operator fixes them all at once).
            let listed: Vec<String> = findings
                .iter()
                .take(20)
                .map(|f| format!("{}: {}", f.rule, f.detail))
                .collect();
            anyhow::bail!(
                "refusing to serve: {} security check(s) failed: {}{} (`caregate check` lists them)",
                findings.len(),
                listed.join("; "),
                if findings.len() > listed.len() {
                    "; …"
                } else {
                    ""
                }
            );
        }
        let manifest = match &config.persisted_queries_file {
            Some(path) => PersistedQueries::load_manifest(path)?,
            None => Default::default(),
        };
        let persisted = PersistedQueries::new(manifest, config.persisted_queries_only);
        let limits = OperationLimits {
            max_aliases: config.max_aliases,
            max_root_fields: config.max_root_fields,
        };
        let preparation = Arc::new(Preparation::new(
            persisted,
            limits,
            config.max_query_nesting,
            config.document_cache_bytes,
        ));
        let tokens = Arc::new(Tokens::from_config(&config)?);
        let login = LoginSettings {
            counters: side.clone(),
            attempts: AttemptLimits {
                per_email: config.login_attempts_per_email,
                per_ip: config.login_attempts_per_ip,
            },
            session_ttl: chrono::Duration::minutes(i64::from(config.token_ttl_minutes)),
            idle_minutes: config.session_idle_minutes,
        };
        let keyring = Arc::new(config.keyring()?);
        let schema = graphql::build(&config, tokens.clone(), login, keyring);
        let trusted_proxies = config.trusted_proxies()?;
        Ok(Self {
            metrics: Arc::new(Metrics::new(statements.clone())),
            config: Arc::new(config),
            db,
            statements,
            tx_options,
            replica,
            readiness,
            trusted_proxies: Arc::new(trusted_proxies),
            schema,
            preparation,
            large_documents: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            tokens,
            live,
            budgets,
        })
    }
}
