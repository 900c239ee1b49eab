//! A primary and its streaming standby — two private clusters under the
//! system's temporary directory, made with `initdb` and `pg_basebackup` and
//! kept running for the next run like the test cluster — for the tests that run
//! caregate with a read replica (`READ_DATABASE_URL`).
//!
//! The primary commits with `synchronous_commit = remote_apply`: a commit
//! returns once the standby has applied it, so what a fixture writes is
//! on the replica before the test reads it, and the tests are
//! deterministic. (A production replica is usually asynchronous; a
//! session's own writes are then covered by READ_YOUR_WRITES_SECONDS.)

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use caregate::cluster::PrivateCluster;
use sea_orm::sqlx::{self, Executor, PgPool};
use tokio::sync::OnceCell;

pub struct Pair {
    pub primary: PrivateCluster,
    pub standby: PrivateCluster,
}

impl Pair {
    /// The primary's maintenance URL, as its superuser.
    pub fn primary_admin(&self) -> String {
        self.primary.url("postgres")
    }
}

/// The pair, started (and made, on first use) once per test process.
pub async fn pair() -> &'static Pair {
    static PAIR: OnceCell<Pair> = OnceCell::const_new();
    PAIR.get_or_init(|| async {
        // Under the system's temporary directory, which the `postgres`
        // user the clusters run as (when the tests run as root) can always
        // enter, named for this checkout.
        let mut checkout = DefaultHasher::new();
        env!("CARGO_TARGET_TMPDIR").hash(&mut checkout);
        let root =
            std::env::temp_dir().join(format!("caregate-replica-{:016x}", checkout.finish()));
        let (primary_root, standby_root) = (root.join("primary"), root.join("standby"));
        let primary = tokio::task::spawn_blocking(move || caregate::cluster::ensure(&primary_root))
            .await
            .expect("cluster task")
            .expect("starting the primary");
        let of = primary.clone();
        let standby = tokio::task::spawn_blocking(move || {
            caregate::cluster::ensure_standby(&standby_root, &of)
        })
        .await
        .expect("cluster task")
        .expect("starting the standby");
        let admin = PgPool::connect(&primary.url("postgres"))
            .await
            .expect("connecting to the primary");
        wait_for_streaming(&admin).await;
        for setting in [
            "ALTER SYSTEM SET synchronous_standby_names = '*'",
            "ALTER SYSTEM SET synchronous_commit = 'remote_apply'",
            "SELECT pg_reload_conf()",
        ] {
            admin
                .execute(setting)
                .await
                .expect("making the primary wait for its standby");
        }
        admin.close().await;
        Pair { primary, standby }
    })
    .await
}

/// Waits until the standby streams from the primary (it may still be
/// catching up right after it started).
async fn wait_for_streaming(admin: &PgPool) {
    for _ in 0..200 {
        let streaming: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
        )
        .fetch_one(admin)
        .await
        .expect("reading pg_stat_replication");
        if streaming > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the standby does not stream from the primary");
}

/// Waits until database `name` (just made on the primary) is on the
/// standby.
pub async fn wait_for_database(pair: &Pair, name: &str) {
    let standby = PgPool::connect(&pair.standby.url("postgres"))
        .await
        .expect("connecting to the standby");
    for _ in 0..200 {
        let there: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(name)
                .fetch_one(&standby)
                .await
                .expect("reading the standby's databases");
        if there {
            standby.close().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("database {name} did not reach the standby");
}

/// The standby's replay, paused until this is dropped: the replica stays
/// where it is while the primary moves on. Other tests' commits on the pair
/// wait meanwhile (they wait for the standby), so pause briefly.
pub struct Paused {
    standby: String,
}

impl Paused {
    pub async fn start(pair: &Pair) -> Self {
        let standby = pair.standby.url("postgres");
        let pool = PgPool::connect(&standby)
            .await
            .expect("connecting to the standby");
        pool.execute("SELECT pg_wal_replay_pause()")
            .await
            .expect("pausing the standby's replay");
        pool.close().await;
        Self { standby }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let standby = self.standby.clone();
        // Resumed even when the test fails; Drop is sync, so on a thread.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async move {
                    if let Ok(pool) = PgPool::connect(&standby).await {
                        let _ = pool.execute("SELECT pg_wal_replay_resume()").await;
                        pool.close().await;
                    }
                })
        })
        .join();
    }
}
