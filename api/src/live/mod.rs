//! Live updates: GraphQL subscriptions over WebSocket.
//!
//! PostgreSQL announces changes (`events`: ids only, at COMMIT); each
//! server listens and hands every event to its sockets (`socket`), which
//! run their subscriptions once per event in a transaction with the
//! subscriber's own row-level security context (`graphql::subscription`),
//! so nothing is sent that the subscriber could not have read by querying.
//! Everything here is bounded: sockets per server and per user,
//! subscriptions per socket, events and messages waiting per socket.

pub mod events;
pub mod socket;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use uuid::Uuid;

use events::Hub;

/// What the sockets of one server share.
pub struct Live {
    pub hub: Hub,
    /// Sockets open on this server.
    sockets: Arc<Semaphore>,
    /// Sockets open per user.
    per_user: Mutex<HashMap<Uuid, usize>>,
    per_user_limit: usize,
    /// Set when the server shuts down: every socket closes (1001).
    stopping: watch::Sender<bool>,
    /// Deliveries running at once: at most half the runtime pool, so that
    /// a burst of events fanned out to many sockets waits its turn here
    /// instead of taking every connection from the requests.
    pub deliveries: Arc<Semaphore>,
    /// Deliveries of one clinic running at once: one fewer than
    /// `deliveries`, so that one clinic's burst leaves room for the others'.
    clinics: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
    per_clinic: usize,
}

/// A socket counted against the server's limit.
pub struct SocketPermit(#[allow(dead_code)] OwnedSemaphorePermit);

/// A socket counted against its user's limit; uncounted when dropped.
pub struct UserSlot {
    live: Arc<Live>,
    user: Uuid,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.live.per_user.lock()
            && let Some(n) = map.get_mut(&self.user)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.user);
            }
        }
    }
}

impl Live {
    pub fn new(max_sockets: usize, per_user: usize, buffer: usize, pool_size: u32) -> Self {
        Self {
            deliveries: Arc::new(Semaphore::new((pool_size as usize / 2).max(1))),
            clinics: Mutex::default(),
            // Leaves at least one turn to the other clinics.
            per_clinic: (pool_size as usize / 2).saturating_sub(1).max(1),
            hub: Hub::new(buffer),
            sockets: Arc::new(Semaphore::new(max_sockets)),
            per_user: Mutex::default(),
            per_user_limit: per_user,
            stopping: watch::channel(false).0,
        }
    }

    /// A place for one more socket, if the server has one.
    pub fn admit(&self) -> Option<SocketPermit> {
        self.sockets
            .clone()
            .try_acquire_owned()
            .ok()
            .map(SocketPermit)
    }

    /// A place for one more socket of `user`, if they have one left.
    pub fn admit_user(self: &Arc<Self>, user: Uuid) -> Option<UserSlot> {
        let mut map = self.per_user.lock().ok()?;
        let n = map.entry(user).or_insert(0);
        if *n >= self.per_user_limit {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            live: self.clone(),
            user,
        })
    }

    /// The turns of one clinic's deliveries (one semaphore per clinic with
    /// live sockets on this server).
    pub fn clinic_turns(&self, clinic: Uuid) -> Arc<Semaphore> {
        match self.clinics.lock() {
            Ok(mut map) => map
                .entry(clinic)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_clinic)))
                .clone(),
            Err(_) => Arc::new(Semaphore::new(self.per_clinic)),
        }
    }

    /// Closes every socket (the server is shutting down).
    pub fn stop(&self) {
        let _ = self.stopping.send(true);
    }

    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Sockets open on this server now.
    pub fn open_sockets(&self, max: usize) -> usize {
        max.saturating_sub(self.sockets.available_permits())
    }
}

/// Resolves once `flag` is set (never, if its sender is gone unset).
pub async fn stopped(flag: &mut watch::Receiver<bool>) {
    loop {
        let set = *flag.borrow_and_update();
        if set {
            return;
        }
        if flag.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
