//! A running caregate on its own database, on a free port, for black-box
//! tests over HTTP.

use std::net::SocketAddr;

use clap::Parser;
use serde_json::{Value, json};

use super::db::TestDb;

pub const DEMO_PASSWORD: &str = "caregate-demo";

pub struct TestApp {
    pub addr: SocketAddr,
    pub db: TestDb,
    pub client: reqwest::Client,
    pub state: caregate::state::AppState,
}

/// The master key of field-level encryption every test server and the
/// seeded template share (a test value: the template's data keys are
/// wrapped under it).
pub const TEST_MASTER_KEYS: &str =
    "1 5c1d0f0e8b3a4f2e9d7c6b5a49382716a5b4c3d2e1f00112233445566778899a";

/// The keyring of `TEST_MASTER_KEYS`.
pub fn test_keyring() -> service::phi::Keyring {
    service::phi::Keyring::new(service::phi::MasterKeys::parse(TEST_MASTER_KEYS).unwrap())
}

/// The default configuration, as `caregate` with no flags would have it,
/// with the tests' master key.
pub fn default_config() -> caregate::config::Config {
    let mut config = caregate::cli::Cli::parse_from(["caregate"]).config;
    config.phi_master_keys = Some(TEST_MASTER_KEYS.to_owned());
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut caregate::config::Config)) -> TestApp {
    spawn_app_until(configure, std::future::pending()).await.0
}

/// Another server on `app`'s database, configured as `configure` says
/// (one more replica of a deployment).
pub async fn spawn_peer(
    app: &TestApp,
    configure: impl FnOnce(&mut caregate::config::Config),
) -> TestApp {
    spawn_app_on_db(TestDb::borrowed(&app.db), configure, std::future::pending())
        .await
        .0
}

/// How a test server's runtime role reaches PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Direct,
    /// Through PgBouncer in transaction mode.
    PgBouncer,
    /// On a primary with a streaming standby as its read replica.
    Replica,
}

/// A server reaching PostgreSQL by `route`.
pub async fn spawn_app_on(
    route: Route,
    configure: impl FnOnce(&mut caregate::config::Config),
) -> TestApp {
    match route {
        Route::Direct => spawn_app_with(configure).await,
        Route::PgBouncer => spawn_app_through_pgbouncer_with(configure).await,
        Route::Replica => spawn_app_with_replica(configure).await,
    }
}

/// A server on a primary whose streaming standby is its read replica
/// (`READ_DATABASE_URL`; see [`replica`](super::replica)).
pub async fn spawn_app_with_replica(
    configure: impl FnOnce(&mut caregate::config::Config),
) -> TestApp {
    replica_app(false, configure).await
}

/// [`spawn_app_with_replica`], whose database commits without waiting for
/// the standby: with the standby's replay paused
/// ([`replica::Paused`](super::replica::Paused)), its replica lags as far
/// behind as a test needs.
pub async fn spawn_app_with_lagging_replica(
    configure: impl FnOnce(&mut caregate::config::Config),
) -> TestApp {
    replica_app(true, configure).await
}

async fn replica_app(
    lagging: bool,
    configure: impl FnOnce(&mut caregate::config::Config),
) -> TestApp {
    let pair = super::replica::pair().await;
    let db = TestDb::seeded_on(&pair.primary_admin()).await;
    if lagging {
        let admin = db.owner().await;
        sea_orm::sqlx::Executor::execute(
            &admin,
            super::q(format!(
                "ALTER DATABASE {} SET synchronous_commit = local",
                db.name
            )),
        )
        .await
        .expect("letting the database commit ahead of its standby");
        admin.close().await;
    }
    super::replica::wait_for_database(pair, &db.name).await;
    let replica = format!(
        "postgres://{}@127.0.0.1:{}/{}",
        migration::RUNTIME_ROLE,
        pair.standby.port,
        db.name
    );
    spawn_app_on_db(
        db,
        move |config| {
            config.read_database_url = Some(replica);
            configure(config);
        },
        std::future::pending(),
    )
    .await
    .0
}

/// A server whose runtime role reaches PostgreSQL through PgBouncer in
/// transaction mode (see [`pgbouncer`](super::pgbouncer)), with
/// `DB_TRANSACTION_POOLER` on; migrations and fixtures still go directly.
pub async fn spawn_app_through_pgbouncer_with(
    configure: impl FnOnce(&mut caregate::config::Config),
) -> TestApp {
    let bouncer = super::pgbouncer::address().await;
    spawn_app_with(move |config| {
        let owner = url::Url::parse(config.database_url.as_deref().expect("the owner's URL"))
            .expect("a valid URL");
        config.app_database_url = Some(format!(
            "postgres://{}@{bouncer}{}",
            migration::RUNTIME_ROLE,
            owner.path()
        ));
        config.db_transaction_pooler = true;
        configure(config);
    })
    .await
}

/// A server that shuts down when `shutdown` resolves; the handle ends when
/// the server has stopped.
pub async fn spawn_app_until(
    configure: impl FnOnce(&mut caregate::config::Config),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (TestApp, tokio::task::JoinHandle<anyhow::Result<()>>) {
    spawn_app_on_db(TestDb::seeded().await, configure, shutdown).await
}

/// A server on the database `db`.
async fn spawn_app_on_db(
    db: TestDb,
    configure: impl FnOnce(&mut caregate::config::Config),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (TestApp, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let mut config = default_config();
    config.database_url = Some(db.owner_url.clone());
    config.app_database_url = None;
    config.db_pool_size = 4;
    configure(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding");
    let server = caregate::server::Server::build(config, &db.owner_url, listener)
        .await
        .expect("building the server");
    let addr = server.local_addr().expect("address");
    let state = server.state.clone();
    let running = tokio::spawn(server.run(shutdown));
    let app = TestApp {
        addr,
        db,
        client: reqwest::Client::new(),
        state,
    };
    (app, running)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a raw JSON body to /graphql; returns status and body.
    pub async fn post(&self, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = self.client.post(self.url("/graphql")).json(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("sending");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Runs one operation; returns the whole response body.
    pub async fn graphql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.post(token, &json!({ "query": query, "variables": variables }))
            .await
            .1
    }

    /// Logs in with the demo password (in `org`, or the user's first
    /// clinic) and returns the token.
    pub async fn login_as(&self, email: &str) -> String {
        self.login_in(email, None).await
    }

    pub async fn login_in(&self, email: &str, org: Option<uuid::Uuid>) -> String {
        let res = self
            .graphql(
                None,
                "mutation($e: String!, $p: String!, $o: UUID) { login(email: $e, password: $p, organizationId: $o) { token } }",
                json!({ "e": email, "p": DEMO_PASSWORD, "o": org }),
            )
            .await;
        res["data"]["login"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("login as {email} failed: {res}"))
            .to_owned()
    }

    /// SQL statements the server's runtime pool has run so far.
    pub fn statements(&self) -> u64 {
        self.state
            .statements
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The `extensions.code` of every error in a response.
pub fn error_codes(res: &Value) -> Vec<String> {
    res["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The first error's extensions.
pub fn first_error(res: &Value) -> &Value {
    &res["errors"][0]["extensions"]
}
