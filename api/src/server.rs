//! The HTTP server: routes, shared state, graceful shutdown.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db::{self, StatementCounter};
use crate::health;

/// What every request handler shares. Nothing request-specific lives here.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// The runtime pool (NOSUPERUSER NOBYPASSRLS role).
    pub db: DatabaseConnection,
    pub statements: Arc<StatementCounter>,
}

/// A server ready to accept connections.
pub struct Server {
    pub state: AppState,
    listener: TcpListener,
}

impl Server {
    /// Connects the runtime pool (refusing a role that bypasses RLS) and binds.
    pub async fn build(
        config: Config,
        owner_url: &str,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let statements = Arc::new(StatementCounter::default());
        let opts = db::runtime_options(&config, owner_url)?;
        let db = db::connect_runtime(opts, config.db_pool_size, statements.clone()).await?;
        let state = AppState {
            config: Arc::new(config),
            db,
            statements,
        };
        Ok(Self { state, listener })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    pub fn router(state: AppState) -> Router {
        Router::new()
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
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
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")
    }
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
