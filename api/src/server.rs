//! The HTTP server: routes, connection limits, graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::{Config, Environment};
use crate::error::ErrorCode;
use crate::state::AppState;
use crate::{graphiql, handler, health};

/// A server ready to accept connections.
pub struct Server {
    pub state: AppState,
    listener: TcpListener,
}

impl Server {
    /// Builds the shared state (see [`AppState::build`]) and takes the
    /// listener.
    pub async fn build(
        config: Config,
        owner_url: &str,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let state = AppState::build(config, owner_url).await?;
        Ok(Self { state, listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn router(state: AppState) -> Router {
        let config = state.config.clone();
        // The handler reads the body itself, within MAX_BODY_BYTES, so that
        // an oversized body (sized or chunked) is a JSON error like any other.
        let mut router = Router::new()
            .route("/graphql", any(handler::graphql))
            .route("/graphql/ws", get(crate::live::socket::upgrade))
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz));
        if config.graphiql_enabled() {
            router = router.merge(graphiql::routes());
        }
        // Metrics on the API's own address only in development and when no
        // address of their own is configured.
        if config.metrics_listen_addr.is_none() && config.environment == Environment::Development {
            router = router.route("/metrics", get(metrics));
        }
        router
            .fallback(not_found)
            .layer(cors(&config))
            .layer(CatchPanicLayer::new())
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .with_state(state)
    }

    /// The metrics endpoint alone, for METRICS_LISTEN_ADDR.
    fn metrics_router(state: AppState) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .with_state(state)
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets
    /// requests in flight finish for at most SHUTDOWN_TIMEOUT_MS, and closes
    /// whatever is still open (an unfinished request's transaction is rolled
    /// back by PostgreSQL when its connection goes).
    ///
    /// Written on hyper directly because `axum::serve` sets no timer — so no
    /// header-read timeout applies — and its graceful shutdown waits for a
    /// half-sent request forever.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let config = self.state.config.clone();
        let router = Self::router(self.state.clone());
        if let Some(addr) = config.metrics_listen_addr {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for metrics on {addr}"))?;
            tracing::info!(%addr, "serving /metrics");
            let metrics = Self::metrics_router(self.state.clone());
            tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, metrics).await {
                    tracing::error!(error = %err, "the metrics listener stopped");
                }
            });
        }
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(Duration::from_millis(config.header_read_timeout_ms));
        // Graceful shutdown by hand: hyper-util's `GracefulShutdown` cannot
        // watch an HTTP/1 connection that may upgrade (to a WebSocket). Each
        // connection task holds a clone of `open` and is told to stop by
        // `stopping`; shutdown waits until every clone is gone.
        let (stopping, stop) = tokio::sync::watch::channel(false);
        let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
        let connections = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
        let per_client = PerClient::new(
            config.max_connections_per_client,
            self.state.trusted_proxies.clone(),
        );
        let write_timeout = Duration::from_millis(config.response_write_timeout_ms);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            // At most MAX_CONNECTIONS at once: beyond it, accept nothing
            // (new clients wait in the kernel's queue).
            let permit = tokio::select! {
                permit = connections.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(err) => {
                        // Out of file descriptors and the like: pause, go on.
                        tracing::warn!(error = %err, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // One client address holds at most MAX_CONNECTIONS_PER_CLIENT of
            // them (proxies in TRUSTED_PROXIES carry many clients: exempt),
            // so one client cannot fill the cap with idle connections.
            let Some(held) = per_client.admit(peer.ip()) else {
                tracing::info!(client = %peer.ip(), "too many connections from one client; closed");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            // A client that stops reading its response does not hold the
            // connection: the write fails after the timeout, and hyper
            // closes it. (Reads are bounded by the header and body timeouts.)
            let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
            stream.set_write_timeout(Some(write_timeout));
            let stream = Box::pin(stream);
            let service =
                router
                    .clone()
                    .map_request(move |mut req: axum::extract::Request<Incoming>| {
                        req.extensions_mut().insert(ConnectInfo(peer));
                        req
                    });
            let conn = http
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .with_upgrades();
            let mut stop = stop.clone();
            let open = open.clone();
            tokio::spawn(async move {
                let mut conn = std::pin::pin!(conn);
                let result = tokio::select! {
                    result = conn.as_mut() => result,
                    () = crate::live::stopped(&mut stop) => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(err) = result {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                drop(permit);
                drop(held);
                drop(open);
            });
        }
        drop(self.listener);
        let _ = stopping.send(true);
        self.state.live.stop();
        drop(open);
        let deadline = Duration::from_millis(config.shutdown_timeout_ms);
        if tokio::time::timeout(deadline, all_closed.recv())
            .await
            .is_err()
        {
            tracing::warn!(
                timeout_ms = config.shutdown_timeout_ms,
                "connections still open at the shutdown deadline are closed"
            );
        }
        Ok(())
    }
}

/// Connections open per client address.
#[derive(Clone)]
struct PerClient {
    limit: usize,
    trusted: Arc<Vec<ipnet::IpNet>>,
    open: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

/// One connection counted against its client; uncounted when dropped.
struct Held {
    client: Option<(PerClient, std::net::IpAddr)>,
}

impl PerClient {
    fn new(limit: usize, trusted: Arc<Vec<ipnet::IpNet>>) -> Self {
        Self {
            limit,
            trusted,
            open: Arc::default(),
        }
    }

    /// Counts a new connection, or `None` when the client holds the limit.
    fn admit(&self, ip: std::net::IpAddr) -> Option<Held> {
        let ip = ip.to_canonical();
        if self.trusted.iter().any(|net| net.contains(&ip)) {
            return Some(Held { client: None });
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Held {
            client: Some((self.clone(), ip)),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some((per_client, ip)) = self.client.take() {
            let mut open = per_client.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

/// Anything not routed: a JSON error with a request id, like every other
/// refusal.
async fn not_found() -> impl IntoResponse {
    let id = ulid::Ulid::generate().to_string();
    (
        axum::http::StatusCode::NOT_FOUND,
        [(handler::REQUEST_ID_HEADER, id.clone())],
        axum::Json(serde_json::json!({ "errors": [{
            "message": "no such endpoint: GraphQL is served at /graphql",
            "extensions": { "code": ErrorCode::NotFound.as_str(), "requestId": id },
        }] })),
    )
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
            HeaderName::from_static(handler::IDEMPOTENCY_KEY_HEADER),
            // Apollo Client's client awareness.
            HeaderName::from_static("apollographql-client-name"),
            HeaderName::from_static("apollographql-client-version"),
        ])
        .expose_headers([
            HeaderName::from_static(handler::REQUEST_ID_HEADER),
            HeaderName::from_static(handler::IDEMPOTENT_REPLAY_HEADER),
            header::RETRY_AFTER,
        ])
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
