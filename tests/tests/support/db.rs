//! Test databases: each test gets its own, cloned from a template that was
//! migrated and seeded once, so a test starts in milliseconds and never sees
//! another test's rows.
//!
//! The server is `DATABASE_URL` when set; otherwise caregate's own private
//! cluster mechanism starts one under the target directory.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::str::FromStr;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sea_orm::sqlx::{self, Executor};
use tokio::sync::OnceCell;

use super::q;

/// URL of a maintenance database on the test server, as a role that may
/// create databases (the owner role of every test database).
pub async fn admin_url() -> &'static str {
    static URL: OnceCell<String> = OnceCell::const_new();
    URL.get_or_init(|| async {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return url;
        }
        let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("caregate-test-pg");
        let cluster = tokio::task::spawn_blocking(move || caregate::cluster::ensure(&root))
            .await
            .expect("cluster task")
            .expect("starting the private test PostgreSQL");
        cluster.url("postgres")
    })
    .await
}

fn with_database(url: &str, db: &str) -> PgConnectOptions {
    PgConnectOptions::from_str(url)
        .expect("a valid DATABASE_URL")
        .database(db)
}

/// Name of the template for this build's migrations and demo data: a change
/// to either makes a new template.
fn template_name() -> String {
    let mut h = DefaultHasher::new();
    migration::migration_fingerprint().hash(&mut h);
    include_str!("../../../service/src/demo.sql").hash(&mut h);
    format!("caregate_tpl_{:016x}", h.finish())
}

async fn admin_pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(PgConnectOptions::from_str(url).expect("a valid DATABASE_URL"))
        .await
        .expect("connecting to the test PostgreSQL")
}

/// Creates the template once per server (guarded by an advisory lock, since
/// several test processes may race for it).
async fn ensure_template(admin_url: &str) -> String {
    static DONE: tokio::sync::Mutex<Vec<String>> = tokio::sync::Mutex::const_new(Vec::new());
    let mut done = DONE.lock().await;
    if !done.iter().any(|u| u == admin_url) {
        build_template(admin_url).await;
        done.push(admin_url.to_owned());
    }
    template_name()
}

async fn build_template(admin_url: &str) {
    let name = template_name();
    let admin = admin_pool(admin_url).await;
    let mut conn = admin.acquire().await.expect("admin connection");
    conn.execute("SELECT pg_advisory_lock(727274)")
        .await
        .expect("lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut *conn)
            .await
            .expect("looking for the template");
    if !exists {
        // Templates of earlier schemas are of no further use.
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database WHERE datname LIKE 'caregate\\_tpl\\_%' AND datname <> $1",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .expect("listing templates");
        for old in stale {
            let _ = conn
                .execute(q(format!("DROP DATABASE IF EXISTS {old} WITH (FORCE)")))
                .await;
        }
        let building = format!("{name}_building");
        conn.execute(q(format!("DROP DATABASE IF EXISTS {building}")))
            .await
            .expect("dropping a half-built template");
        conn.execute(q(format!("CREATE DATABASE {building}")))
            .await
            .expect("creating the template");
        let url = url_of(admin_url, &building);
        let owner = caregate::db::connect_owner(&url).await.expect("owner");
        caregate::startup::migrate(&owner)
            .await
            .expect("migrating the template");
        service::demo::seed(&owner, &crate::support::app::test_keyring())
            .await
            .expect("seeding the template");
        owner.close().await.ok();
        conn.execute(q(format!("ALTER DATABASE {building} RENAME TO {name}")))
            .await
            .expect("publishing the template");
    }
    conn.execute("SELECT pg_advisory_unlock(727274)")
        .await
        .expect("unlock");
}

/// `url` pointing at database `db`.
pub fn url_of(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).expect("a valid DATABASE_URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

/// A database of one test, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    /// The server's maintenance URL (a role that creates databases).
    admin: String,
    /// URL as the owner (migrations, fixtures).
    pub owner_url: String,
    /// Dropped with this value (false: another value owns the database).
    owned: bool,
}

impl TestDb {
    /// A migrated database holding the demo clinics.
    pub async fn seeded() -> Self {
        Self::seeded_on(admin_url().await).await
    }

    /// A migrated database holding the demo clinics, on the server of
    /// `admin_url` (a role that creates databases).
    pub async fn seeded_on(admin_url: &str) -> Self {
        let template = ensure_template(admin_url).await;
        Self::create(admin_url, Some(&template)).await
    }

    /// No database: for a test that runs a server on a cluster of its own.
    pub fn detached() -> Self {
        Self {
            name: String::new(),
            admin: String::new(),
            owner_url: String::new(),
            owned: false,
        }
    }

    /// The same database as `other`, which stays its owner.
    pub fn borrowed(other: &TestDb) -> Self {
        Self {
            name: other.name.clone(),
            admin: other.admin.clone(),
            owner_url: other.owner_url.clone(),
            owned: false,
        }
    }

    /// An empty database: no schema at all. The template is built first:
    /// migrating this database while the template migrates would alter the
    /// cluster's roles twice at once ("tuple concurrently updated").
    pub async fn empty() -> Self {
        let admin = admin_url().await;
        ensure_template(admin).await;
        Self::create(admin, None).await
    }

    async fn create(admin_url: &str, template: Option<&str>) -> Self {
        let name = format!(
            "caregate_test_{}",
            ulid::Ulid::generate().to_string().to_lowercase()
        );
        let admin = admin_pool(admin_url).await;
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        // Cloning fails while another session is connected to the template
        // (another process may be finishing it): retry briefly.
        let mut attempts = 0;
        loop {
            match admin.execute(q(sql.clone())).await {
                Ok(_) => break,
                Err(e) if attempts < 50 => {
                    attempts += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("creating a test database: {e}"),
            }
        }
        // A clone does not inherit its template's database privileges: made
        // the way the migrations leave a database, nobody may create
        // temporary objects in it.
        admin
            .execute(q(format!(
                "REVOKE TEMPORARY ON DATABASE {name} FROM PUBLIC"
            )))
            .await
            .expect("revoking TEMPORARY");
        admin.close().await;
        Self {
            owner_url: url_of(admin_url, &name),
            admin: admin_url.to_owned(),
            name,
            owned: true,
        }
    }

    /// A pool connected as the owner role (bypasses RLS: fixtures only).
    pub async fn owner(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(4)
            .connect_with(with_database(&self.admin, &self.name))
            .await
            .expect("connecting as owner")
    }

    /// A pool connected as the runtime role the server uses: NOSUPERUSER
    /// NOBYPASSRLS, so row-level security applies to everything it runs.
    pub async fn runtime(&self) -> PgPool {
        self.runtime_pool(4).await
    }

    /// [`Self::runtime`] with a pool of `size` connections.
    pub async fn runtime_pool(&self, size: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(size)
            .connect_with(
                with_database(&self.admin, &self.name)
                    .username(migration::RUNTIME_ROLE)
                    .password(""),
            )
            .await
            .expect("connecting as the runtime role")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let name = self.name.clone();
        let admin_url = self.admin.clone();
        // Dropping needs async I/O; Drop is sync, so it runs on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let admin = admin_pool(&admin_url).await;
                let _ = admin
                    .execute(q(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .await;
                admin.close().await;
            });
        })
        .join();
    }
}
