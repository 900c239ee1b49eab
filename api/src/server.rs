//! The HTTP server: routes, shared state, graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::IntoResponse;
use axum::routing::get;
use sea_orm::DatabaseConnection;
use service::tx::Counter;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use crate::config::Config;
use crate::db;
use crate::graphql::limits::OperationLimits;
use crate::graphql::persisted::PersistedQueries;
use crate::graphql::prepare::Preparation;
use crate::graphql::{self, CaregateSchema};
use crate::metrics::Metrics;
use crate::ratelimit::LoginLimiter;
use crate::tokens::Tokens;
use crate::{graphiql, handler, health};

/// What every request handler shares. Nothing request-specific lives here:
/// the transaction, the caller and the DataLoaders are built per request.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// The runtime pool (NOSUPERUSER NOBYPASSRLS role).
    pub db: DatabaseConnection,
    /// SQL statements run by the runtime role (requests and probes).
    pub statements: Counter,
    pub schema: CaregateSchema,
    /// Persisted queries, parsed-document cache and operation limits.
    pub preparation: Arc<Preparation>,
    pub tokens: Arc<Tokens>,
    pub login_limiter: Arc<LoginLimiter>,
    pub metrics: Arc<Metrics>,
}

/// A server ready to accept connections.
pub struct Server {
    pub state: AppState,
    listener: TcpListener,
}

impl Server {
    /// Connects the runtime pool (refusing a role that bypasses RLS), builds
    /// the schema, and takes the listener.
    pub async fn build(
        config: Config,
        owner_url: &str,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        let statements = Counter::default();
        let opts = db::runtime_options(&config, owner_url)?;
        let db = db::connect_runtime(opts, config.db_pool_size, statements.clone()).await?;
        let manifest = match &config.persisted_queries_file {
            Some(path) => PersistedQueries::load_manifest(path)?,
            None => Default::default(),
        };
        let persisted = PersistedQueries::new(manifest, config.persisted_queries_only);
        let limits = OperationLimits {
            max_aliases: config.max_aliases,
            max_root_fields: config.max_root_fields,
        };
        let preparation = Arc::new(Preparation::new(persisted, limits));
        let schema = graphql::build(&config);
        let tokens = Arc::new(Tokens::from_config(&config)?);
        let state = AppState {
            login_limiter: Arc::new(LoginLimiter::new(
                config.login_attempts_per_email,
                config.login_attempts_per_ip,
            )),
            metrics: Arc::new(Metrics::new(statements.clone())),
            config: Arc::new(config),
            db,
            statements,
            schema,
            preparation,
            tokens,
        };
        Ok(Self { state, listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn router(state: AppState) -> Router {
        let config = state.config.clone();
        let graphql_routes = Router::new()
            .route("/graphql", get(graphiql_page).post(handler::graphql))
            // The GraphQL extractor streams the body itself, so the limit is
            // a layer around the route (413 before anything is read) rather
            // than axum's extractor-level default.
            .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
            .layer(DefaultBodyLimit::max(config.max_body_bytes));
        Router::new()
            .merge(graphql_routes)
            .merge(graphiql::routes())
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .route("/metrics", get(metrics))
            .layer(cors(&config))
            .layer(CatchPanicLayer::new())
            .with_state(state)
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = Self::router(self.state.clone());
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")
    }
}

async fn graphiql_page() -> impl IntoResponse {
    graphiql::page("/graphql")
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let pool = state.db.get_postgres_connection_pool();
    let body = state.metrics.render(pool.size(), pool.num_idle());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

fn cors(config: &Config) -> CorsLayer {
    let origins = if config.cors_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim()).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(handler::REQUEST_ID_HEADER),
            HeaderName::from_static(handler::IMPERSONATE_HEADER),
        ])
        .expose_headers([HeaderName::from_static(handler::REQUEST_ID_HEADER)])
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
