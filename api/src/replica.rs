//! The read replica (`READ_DATABASE_URL`, a streaming standby): requests
//! without mutations run their queries there, in a read-only transaction
//! with the same row-level security context as on the primary.
//!
//! What a replica cannot do is decided on the primary, before the response
//! is sent: the session is checked there again (a logout or a switch of
//! clinic on any server is refused at once, whatever the replica's lag),
//! its activity recorded, and the request's audit events — the READ of
//! each patient it returned — written and committed. If that fails, the
//! request fails: no read goes unaudited.
//!
//! A session that has just changed something reads from the primary for
//! `READ_YOUR_WRITES_SECONDS`, so a client sees its own writes despite the
//! replica's lag. That memory is per server; a session whose requests are
//! spread over several servers may, on another server, read from the
//! replica within the window.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sea_orm::sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use service::tx::TxOptions;
use uuid::Uuid;

/// Sessions remembered as having written; beyond it, the oldest go first
/// (their window is over soonest).
const MAX_RECENT_WRITERS: usize = 100_000;

/// After the replica could not be reached, requests skip it this long
/// (rather than each waiting for a connection that will not come).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

pub struct Replica {
    pub pool: PgPool,
    /// Read-only, and as the primary's (named statements or not).
    pub options: TxOptions,
    window: Duration,
    recent: Mutex<HashMap<Uuid, Instant>>,
    /// Until when the replica is skipped, after it could not be reached.
    down_until: Mutex<Option<Instant>>,
}

impl Replica {
    /// A pool on the replica, connected on first use: a replica that is
    /// down when the server starts (or later) sends requests to the
    /// primary instead.
    pub fn new(
        opts: PgConnectOptions,
        options: TxOptions,
        pool_size: u32,
        acquire_timeout: Duration,
        window: Duration,
    ) -> Self {
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .min_connections(0)
            .acquire_timeout(acquire_timeout)
            .connect_lazy_with(opts);
        Self {
            pool,
            options: options.read_only(),
            window,
            recent: Mutex::default(),
            down_until: Mutex::default(),
        }
    }

    /// Notes that the replica could not be reached: for a few seconds,
    /// requests go to the primary without trying it.
    pub fn failed(&self) {
        if let Ok(mut down) = self.down_until.lock() {
            *down = Some(Instant::now() + RETRY_AFTER_FAILURE);
        }
    }

    fn is_down(&self) -> bool {
        self.down_until
            .lock()
            .map(|down| down.is_some_and(|until| Instant::now() < until))
            .unwrap_or(true)
    }

    /// Whether the session's reads may go to the replica: it has not
    /// written within the window, and the replica is not known to be down.
    pub fn serves(&self, session: Uuid) -> bool {
        if self.is_down() {
            return false;
        }
        let Ok(recent) = self.recent.lock() else {
            return false;
        };
        recent
            .get(&session)
            .is_none_or(|wrote| wrote.elapsed() >= self.window)
    }

    /// Notes that the session has just written.
    pub fn wrote(&self, session: Uuid) {
        if self.window.is_zero() {
            return;
        }
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
        if recent.len() >= MAX_RECENT_WRITERS {
            let window = self.window;
            recent.retain(|_, wrote| wrote.elapsed() < window);
            if recent.len() >= MAX_RECENT_WRITERS
                && let Some(oldest) = recent.iter().min_by_key(|(_, at)| **at).map(|(s, _)| *s)
            {
                recent.remove(&oldest);
            }
        }
        recent.insert(session, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(window: Duration) -> Replica {
        Replica::new(
            PgConnectOptions::new(),
            TxOptions::default(),
            1,
            Duration::from_secs(1),
            window,
        )
    }

    #[tokio::test]
    async fn a_session_that_wrote_reads_from_the_primary_for_the_window() {
        let r = replica(Duration::from_millis(50));
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(r.serves(a));
        r.wrote(a);
        assert!(!r.serves(a));
        assert!(r.serves(b));
        std::thread::sleep(Duration::from_millis(60));
        assert!(r.serves(a));
    }

    #[tokio::test]
    async fn a_replica_that_could_not_be_reached_is_skipped_for_a_while() {
        let r = replica(Duration::ZERO);
        let a = Uuid::from_u128(1);
        r.failed();
        assert!(!r.serves(a));
        *r.down_until.lock().unwrap() = Some(Instant::now());
        assert!(r.serves(a));
    }

    #[tokio::test]
    async fn without_a_window_every_read_may_go_to_the_replica() {
        let r = replica(Duration::ZERO);
        let a = Uuid::from_u128(1);
        r.wrote(a);
        assert!(r.serves(a));
    }
}
