//! Configuration: one typed struct, read from flags or the environment.
//!
//! Every field documents its unit, its default and what a client sees when a
//! limit is hit. `caregate serve --help` prints the same text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Introspection on by default; a built-in development JWT secret is allowed.
    Development,
    /// Introspection off by default; refuses to start with the default secret.
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
pub enum JwtAlgorithm {
    #[value(name = "HS256")]
    Hs256,
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "EdDSA")]
    EdDsa,
}

/// The secret used when none is configured. Accepted in development only.
pub const DEV_JWT_SECRET: &str = "caregate-development-secret-do-not-use-in-production";

#[derive(Debug, Clone, Args, Serialize)]
pub struct Config {
    /// PostgreSQL URL of the owner role (runs migrations and seeds). Unset:
    /// caregate runs a private PostgreSQL cluster under --data-dir.
    #[arg(long, env = "DATABASE_URL")]
    #[serde(skip)]
    pub database_url: Option<String>,

    /// PostgreSQL URL of the runtime role (NOSUPERUSER NOBYPASSRLS) the server
    /// queries as. Default: DATABASE_URL with the user `caregate_app`.
    #[arg(long, env = "APP_DATABASE_URL")]
    #[serde(skip)]
    pub app_database_url: Option<String>,

    /// The runtime URL reaches PostgreSQL through a pooler in transaction
    /// mode (PgBouncer `pool_mode = transaction`): statements are sent
    /// unnamed (a pooler before PgBouncer 1.21 cannot keep a named prepared
    /// statement from one transaction to the next), no startup options are
    /// sent (the timeouts are set at the start of every transaction
    /// instead), and live updates LISTEN on DIRECT_DATABASE_URL.
    #[arg(long, env = "DB_TRANSACTION_POOLER", default_value_t = false)]
    pub db_transaction_pooler: bool,

    /// PostgreSQL URL of the runtime role for what cannot go through a
    /// transaction-mode pooler: the live-update LISTEN (a session of its
    /// own) and the login attempt counters (a login holds its request's
    /// connection while it counts). Default: the runtime URL; with
    /// DB_TRANSACTION_POOLER, DATABASE_URL with the user `caregate_app`.
    #[arg(long, env = "DIRECT_DATABASE_URL")]
    #[serde(skip)]
    pub direct_database_url: Option<String>,

    /// PostgreSQL URL of a read replica (a streaming standby), as the
    /// runtime role: requests without mutations run their queries there,
    /// under the same context; the session check and their audit events
    /// are done on the primary before the response is sent. Unset: all on
    /// the primary. A replica that cannot be reached sends requests to the
    /// primary.
    #[arg(long, env = "READ_DATABASE_URL")]
    #[serde(skip)]
    pub read_database_url: Option<String>,

    /// After a request of a session changed something, that session's
    /// requests read from the primary for this many seconds (so a client
    /// sees its own writes despite the replica's lag). Remembered per
    /// server.
    #[arg(long, env = "READ_YOUR_WRITES_SECONDS", default_value_t = 10)]
    pub read_your_writes_seconds: u64,

    /// Where the private PostgreSQL cluster keeps its data (when DATABASE_URL
    /// is unset). Survives restarts.
    #[arg(long, env = "CAREGATE_DATA_DIR", default_value = ".caregate")]
    pub data_dir: PathBuf,

    /// Address the HTTP server listens on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,

    /// development or production.
    #[arg(long, env = "CAREGATE_ENV", value_enum, default_value = "development")]
    pub environment: Environment,

    /// Run pending migrations when the server starts (always done for the
    /// private cluster).
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = false)]
    pub migrate_on_start: bool,

    /// Signing algorithm of access tokens: HS256 (JWT_SECRET) or RS256 /
    /// EdDSA (JWT_PRIVATE_KEY_FILE to issue, JWT_PUBLIC_KEY_FILE to verify).
    #[arg(long, env = "JWT_ALGORITHM", value_enum, default_value = "HS256")]
    pub jwt_algorithm: JwtAlgorithm,

    /// HS256 secret (at least 32 bytes). Unset in development: a built-in
    /// development secret; unset in production: refuses to start.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    #[serde(skip)]
    pub jwt_secret: Option<String>,

    /// File of the master keys that wrap the clinics' data keys (one
    /// `<version> <64 hex digits>` per line; the highest version wraps new
    /// keys). Unset with PHI_MASTER_KEYS unset: in development, a key file
    /// generated under --data-dir; in production, caregate refuses to start.
    #[arg(long, env = "PHI_KEY_FILE")]
    pub phi_key_file: Option<PathBuf>,

    /// The master keys themselves, in the key file's format (`;` may
    /// separate entries). Takes precedence over PHI_KEY_FILE.
    #[arg(long, env = "PHI_MASTER_KEYS", hide_env_values = true)]
    #[serde(skip)]
    pub phi_master_keys: Option<String>,

    /// PEM public key verifying RS256 / EdDSA tokens.
    #[arg(long, env = "JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,

    /// PEM private key signing RS256 / EdDSA tokens issued by `login`.
    #[arg(long, env = "JWT_PRIVATE_KEY_FILE")]
    pub jwt_private_key_file: Option<PathBuf>,

    /// `iss` of issued tokens; tokens with another issuer are refused.
    #[arg(long, env = "JWT_ISSUER", default_value = "caregate")]
    pub jwt_issuer: String,

    /// `aud` of issued tokens; tokens for another audience are refused.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "caregate-api")]
    pub jwt_audience: String,

    /// Lifetime of a token and its session, in minutes.
    #[arg(long, env = "TOKEN_TTL_MINUTES", default_value_t = 480)]
    pub token_ttl_minutes: u32,

    /// A session unused for this many minutes is refused (UNAUTHENTICATED).
    #[arg(long, env = "SESSION_IDLE_MINUTES", default_value_t = 15)]
    pub session_idle_minutes: u32,

    /// Deepest selection nesting a query may have; deeper: BAD_USER_INPUT
    /// ("Query is nested too deep").
    #[arg(long, env = "MAX_QUERY_DEPTH", default_value_t = 15)]
    pub max_query_depth: usize,

    /// Highest complexity (fields, times `first` for connections) a query may
    /// have; more: BAD_USER_INPUT ("Query is too complex").
    #[arg(long, env = "MAX_QUERY_COMPLEXITY", default_value_t = 5000)]
    pub max_query_complexity: usize,

    /// Most aliases in one operation; more: BAD_USER_INPUT.
    #[arg(long, env = "MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,

    /// Most root fields in one operation; more: BAD_USER_INPUT.
    #[arg(long, env = "MAX_ROOT_FIELDS", default_value_t = 10)]
    pub max_root_fields: usize,

    /// Largest request body, in bytes; larger: HTTP 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Most operations in one batched request; more: BAD_USER_INPUT.
    #[arg(long, env = "MAX_BATCH_SIZE", default_value_t = 10)]
    pub max_batch_size: usize,

    /// Deepest nesting of brackets (`{`, `[`, `(`: selections, lists, input
    /// objects) in a query text, checked before parsing; deeper:
    /// BAD_USER_INPUT on `query`.
    #[arg(long, env = "MAX_QUERY_NESTING", default_value_t = 64)]
    pub max_query_nesting: usize,

    /// Memory, in bytes, the cache of parsed documents may take (estimated
    /// as 48 bytes per byte of query text). Only documents that ran without
    /// error are cached.
    #[arg(long, env = "DOCUMENT_CACHE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub document_cache_bytes: usize,

    /// A client must send a request's headers within this many
    /// milliseconds of opening the connection or of the previous response;
    /// slower: the connection is closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,

    /// A client must send a request's whole body within this many
    /// milliseconds; slower: HTTP 408 (REQUEST_TIMEOUT).
    #[arg(long, env = "BODY_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_read_timeout_ms: u64,

    /// A response the client does not read for this many milliseconds
    /// (a stalled or deliberately slow reader) closes its connection.
    #[arg(long, env = "RESPONSE_WRITE_TIMEOUT_MS", default_value_t = 30_000)]
    pub response_write_timeout_ms: u64,

    /// Most client connections open at once; beyond it, new ones wait in
    /// the listen queue until one closes.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Most connections one client address may hold open at once (proxies
    /// in TRUSTED_PROXIES are exempt); more are closed as they arrive.
    #[arg(long, env = "MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256)]
    pub max_connections_per_client: usize,

    /// Most live-update sockets (`/graphql/ws`) open at once on this
    /// server; beyond it, an upgrade is refused with HTTP 503.
    #[arg(long, env = "LIVE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub live_max_connections: usize,

    /// Most live-update sockets one user may hold open on this server;
    /// another is closed with code 4429 after `connection_init`.
    #[arg(long, env = "LIVE_MAX_CONNECTIONS_PER_USER", default_value_t = 8)]
    pub live_max_connections_per_user: usize,

    /// Most subscriptions one socket may run at once; another is answered
    /// with an `error` message (code RATE_LIMITED).
    #[arg(long, env = "LIVE_MAX_SUBSCRIPTIONS", default_value_t = 20)]
    pub live_max_subscriptions: usize,

    /// A socket must send `connection_init` within this many milliseconds
    /// of opening; later: closed with code 4408.
    #[arg(long, env = "LIVE_INIT_TIMEOUT_MS", default_value_t = 10_000)]
    pub live_init_timeout_ms: u64,

    /// How often a socket's session is checked (revoked, idle, expired, or
    /// the user no longer in the clinic: closed with 4401 or 4403), in
    /// seconds; it is also checked with every event delivered.
    #[arg(long, env = "LIVE_SESSION_CHECK_SECONDS", default_value_t = 30)]
    pub live_session_check_seconds: u64,

    /// Events a socket may fall behind by, and messages it may have waiting
    /// to be sent; a consumer slower than that is disconnected (code 1013)
    /// rather than buffered without end.
    #[arg(long, env = "LIVE_BUFFER", default_value_t = 256)]
    pub live_buffer: usize,

    /// Bytes of messages a socket may have waiting to be sent (and the
    /// largest single message); more: the consumer is too slow and is
    /// disconnected (code 1013).
    #[arg(long, env = "LIVE_BUFFER_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub live_buffer_bytes: usize,

    /// On SIGTERM or Ctrl-C: stop accepting, let requests in flight finish
    /// for at most this many milliseconds, then close every connection (an
    /// unfinished request's transaction is rolled back).
    #[arg(long, env = "SHUTDOWN_TIMEOUT_MS", default_value_t = 10_000)]
    pub shutdown_timeout_ms: u64,

    /// How long a request waits for a database connection, in milliseconds;
    /// longer (PostgreSQL down or every connection busy): HTTP 503,
    /// UNAVAILABLE, with `Retry-After`.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", default_value_t = 2_000)]
    pub db_acquire_timeout_ms: u64,

    /// A request's operations must have run within this many milliseconds
    /// (statements are bounded by STATEMENT_TIMEOUT_MS; this bounds the
    /// whole): beyond it nothing of the request is saved, and it is answered
    /// INTERNAL / NOT_COMMITTED (HTTP 500). COMMIT itself is never cut short.
    #[arg(long, env = "EXECUTION_TIMEOUT_MS", default_value_t = 30_000)]
    pub execution_timeout_ms: u64,

    /// `/readyz` checks the database on a connection of its own and gives up
    /// after this many milliseconds (HTTP 503).
    #[arg(long, env = "READINESS_TIMEOUT_MS", default_value_t = 1_000)]
    pub readiness_timeout_ms: u64,

    /// How long the response to a request sent with an `Idempotency-Key`
    /// is kept for retries, in hours.
    #[arg(long, env = "IDEMPOTENCY_TTL_HOURS", default_value_t = 24)]
    pub idempotency_ttl_hours: u32,

    /// Serve introspection. Default: on in development, off in production.
    #[arg(long, env = "INTROSPECTION")]
    pub introspection: Option<bool>,

    /// Serve GraphiQL at GET /graphql. Default: on in development, off in
    /// production.
    #[arg(long, env = "GRAPHIQL")]
    pub graphiql: Option<bool>,

    /// Address serving GET /metrics (e.g. 127.0.0.1:9090), apart from the
    /// API. Unset: /metrics is served on LISTEN_ADDR in development and not
    /// at all in production.
    #[arg(long, env = "METRICS_LISTEN_ADDR")]
    pub metrics_listen_addr: Option<SocketAddr>,

    /// Proxies (addresses or CIDR ranges, comma-separated) whose
    /// X-Forwarded-For is believed: a request from one of them is counted
    /// and audited under the client address it names. Default: none (the
    /// peer address is the client).
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Accept only the queries of PERSISTED_QUERIES_FILE (by sha256 hash, or
    /// as text whose hash is in it); anything else is refused with FORBIDDEN,
    /// reason PERSISTED_QUERY_REQUIRED.
    #[arg(long, env = "PERSISTED_QUERIES_ONLY", default_value_t = false)]
    pub persisted_queries_only: bool,

    /// JSON file of `{ "<sha256>": "<query>" }`: the queries allowed in
    /// persisted-only mode (and known to automatic persisted queries).
    #[arg(long, env = "PERSISTED_QUERIES_FILE")]
    pub persisted_queries_file: Option<PathBuf>,

    /// Origins allowed by CORS, comma-separated ("*" for any). Default: none.
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// pretty or json.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,

    /// Connections in the runtime pool.
    #[arg(long, env = "DB_POOL_SIZE", default_value_t = 10)]
    pub db_pool_size: u32,

    /// A query running longer than this many milliseconds is cancelled by
    /// the database (the client sees INTERNAL with a request id).
    #[arg(long, env = "STATEMENT_TIMEOUT_MS", default_value_t = 5000)]
    pub statement_timeout_ms: u64,

    /// Requests a clinic may make per minute, all servers together, unless
    /// a super admin gave it its own limit (`setClinicBudget`). Counted
    /// from the moment a token is verified; beyond it: HTTP 429,
    /// RATE_LIMITED / REQUEST_BUDGET, with Retry-After. 0: no limit.
    #[arg(long, env = "BUDGET_REQUESTS_PER_MINUTE", default_value_t = 6000)]
    pub budget_requests_per_minute: u32,

    /// Complexity points (the measure MAX_QUERY_COMPLEXITY limits: fields,
    /// times `first` for lists) a clinic's operations may cost per minute,
    /// all servers together, unless a super admin gave it its own limit.
    /// An operation costing more than what remains does not run: HTTP 429,
    /// RATE_LIMITED / COST_BUDGET, with Retry-After. 0: no limit.
    #[arg(long, env = "BUDGET_POINTS_PER_MINUTE", default_value_t = 600_000)]
    pub budget_points_per_minute: u32,

    /// Length of a budget window, in seconds (1 to 3600; the same on every
    /// server). Budgets are counted per window — windows aligned on
    /// multiples of it since the Unix epoch — with the per-minute limits
    /// scaled to it (at least 1), and reset when it ends. Shorter windows
    /// spread a clinic's spending over the minute.
    #[arg(long, env = "BUDGET_WINDOW_SECONDS", default_value_t = 60)]
    pub budget_window_seconds: u32,

    /// How often, in milliseconds, each server adds its budget counts to
    /// the clinic-wide ones in PostgreSQL (on DIRECT_DATABASE_URL) and
    /// reads the others'. Across N servers a clinic can overshoot its
    /// budget by at most what it sends to all of them in one interval.
    #[arg(long, env = "BUDGET_SYNC_MS", default_value_t = 250)]
    pub budget_sync_ms: u64,

    /// A request refused by its clinic's budget is answered after this
    /// many milliseconds (never past the end of the window), so that a
    /// client retrying without honouring Retry-After retries about once
    /// per pause per connection instead of as fast as the server can
    /// refuse. 0: at once.
    #[arg(long, env = "BUDGET_REFUSAL_DELAY_MS", default_value_t = 1000)]
    pub budget_refusal_delay_ms: u64,

    /// Transactions one clinic's requests may hold at once on this server:
    /// its other requests wait their turn (at most EXECUTION_TIMEOUT_MS,
    /// then UNAVAILABLE), so that one clinic cannot take every connection
    /// and core while others wait. Default: the server's CPU cores, at
    /// least 2. 0: no limit.
    #[arg(long, env = "BUDGET_MAX_IN_FLIGHT")]
    pub budget_max_in_flight: Option<u32>,

    /// Failed logins allowed per email in a 15-minute window; more: RATE_LIMITED.
    #[arg(long, env = "LOGIN_ATTEMPTS_PER_EMAIL", default_value_t = 5)]
    pub login_attempts_per_email: u32,

    /// Failed logins allowed per client IP in a 15-minute window; more: RATE_LIMITED.
    #[arg(long, env = "LOGIN_ATTEMPTS_PER_IP", default_value_t = 20)]
    pub login_attempts_per_ip: u32,
}

impl Config {
    pub fn introspection_enabled(&self) -> bool {
        self.introspection
            .unwrap_or(self.environment == Environment::Development)
    }

    /// How request transactions are opened on the runtime pool.
    pub fn tx_options(&self) -> service::tx::TxOptions {
        if self.db_transaction_pooler {
            service::tx::TxOptions::through_pooler(self.statement_timeout_ms)
        } else {
            service::tx::TxOptions::default()
        }
    }

    pub fn graphiql_enabled(&self) -> bool {
        self.graphiql
            .unwrap_or(self.environment == Environment::Development)
    }

    /// TRUSTED_PROXIES, parsed.
    pub fn trusted_proxies(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.trusted_proxies
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!("TRUSTED_PROXIES: {p:?} is not an address or CIDR range")
                    })
            })
            .collect()
    }

    /// The master keys of field-level encryption, from PHI_MASTER_KEYS, or
    /// PHI_KEY_FILE, or (development only) `<data dir>/phi-master.keys`,
    /// generated on first use. Never from the database.
    pub fn keyring(&self) -> anyhow::Result<service::phi::Keyring> {
        use anyhow::Context;
        let text = if let Some(keys) = &self.phi_master_keys {
            keys.clone()
        } else if let Some(path) = &self.phi_key_file {
            std::fs::read_to_string(path)
                .with_context(|| format!("reading PHI_KEY_FILE {}", path.display()))?
        } else if self.environment == Environment::Production {
            anyhow::bail!("PHI_KEY_FILE (or PHI_MASTER_KEYS) must be set in production");
        } else {
            dev_key_file(&self.data_dir.join("phi-master.keys"))?
        };
        Ok(service::phi::Keyring::new(
            service::phi::MasterKeys::parse(&text).context("the PHI master keys")?,
        ))
    }

    /// Refuses settings that are unsafe where they are used.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.environment == Environment::Production {
            match (&self.jwt_algorithm, &self.jwt_secret) {
                (JwtAlgorithm::Hs256, None) => {
                    anyhow::bail!("JWT_SECRET must be set in production")
                }
                (JwtAlgorithm::Hs256, Some(s)) if s == DEV_JWT_SECRET => {
                    anyhow::bail!("JWT_SECRET is the development default; set a secret of your own")
                }
                _ => {}
            }
        }
        if let (JwtAlgorithm::Hs256, Some(s)) = (&self.jwt_algorithm, &self.jwt_secret)
            && s.len() < 32
        {
            anyhow::bail!("JWT_SECRET must be at least 32 bytes");
        }
        anyhow::ensure!(
            self.session_idle_minutes > 0,
            "SESSION_IDLE_MINUTES must be > 0"
        );
        anyhow::ensure!(self.db_pool_size > 0, "DB_POOL_SIZE must be > 0");
        anyhow::ensure!(
            self.live_buffer > 0
                && self.live_buffer_bytes > 0
                && self.live_session_check_seconds > 0,
            "LIVE_BUFFER, LIVE_BUFFER_BYTES and LIVE_SESSION_CHECK_SECONDS must be > 0"
        );
        self.trusted_proxies()?;
        anyhow::ensure!(
            self.max_query_nesting > 0 && self.max_query_nesting <= 256,
            "MAX_QUERY_NESTING must be 1 to 256 (the parser recurses once per level)"
        );
        anyhow::ensure!(
            self.budget_requests_per_minute <= service::budgets::MAX_PER_MINUTE
                && self.budget_points_per_minute <= service::budgets::MAX_PER_MINUTE,
            "BUDGET_REQUESTS_PER_MINUTE and BUDGET_POINTS_PER_MINUTE must be at most {}",
            service::budgets::MAX_PER_MINUTE
        );
        anyhow::ensure!(
            (1..=3600).contains(&self.budget_window_seconds),
            "BUDGET_WINDOW_SECONDS must be 1 to 3600"
        );
        anyhow::ensure!(
            (10..=60_000).contains(&self.budget_sync_ms),
            "BUDGET_SYNC_MS must be 10 to 60000"
        );
        anyhow::ensure!(
            self.budget_refusal_delay_ms <= 60_000,
            "BUDGET_REFUSAL_DELAY_MS must be at most 60000"
        );
        anyhow::ensure!(
            self.idempotency_ttl_hours > 0,
            "IDEMPOTENCY_TTL_HOURS must be > 0"
        );
        for (name, ms) in [
            ("HEADER_READ_TIMEOUT_MS", self.header_read_timeout_ms),
            ("BODY_READ_TIMEOUT_MS", self.body_read_timeout_ms),
            ("DB_ACQUIRE_TIMEOUT_MS", self.db_acquire_timeout_ms),
            ("READINESS_TIMEOUT_MS", self.readiness_timeout_ms),
            ("RESPONSE_WRITE_TIMEOUT_MS", self.response_write_timeout_ms),
            ("EXECUTION_TIMEOUT_MS", self.execution_timeout_ms),
            ("MAX_CONNECTIONS", self.max_connections as u64),
            (
                "MAX_CONNECTIONS_PER_CLIENT",
                self.max_connections_per_client as u64,
            ),
        ] {
            anyhow::ensure!(ms > 0, "{name} must be > 0");
        }
        Ok(())
    }
}

/// The development key file's text, created (readable by its owner only)
/// with one new key when missing. A concurrent creator's file wins.
fn dev_key_file(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            let text = format!(
                "# caregate development master keys: back this file up with the database\n{}\n",
                service::phi::MasterKeys::generate_entry(1)
            );
            file.write_all(text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(text)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}
