//! The events of live updates, as PostgreSQL announces them.
//!
//! Triggers send `pg_notify('caregate_events', …)` with ids only — the kind
//! of row, its clinic, its id, and for a message its thread, for a
//! notification its recipient — at COMMIT of the change, and never for a
//! change that rolled back. Every server listens on one connection of its
//! own and fans the events out to its sockets through a bounded broadcast
//! channel, so any number of servers on one database all deliver. An event
//! says what changed, never what it holds: each socket re-reads the row
//! under its subscriber's own context before sending anything.
//!
//! While the listening connection is down (the database restarts), events
//! are lost; the listener reconnects by itself and says so in the log.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use serde::Deserialize;
use tokio::sync::broadcast;
use uuid::Uuid;

/// The channel the triggers notify.
pub const CHANNEL: &str = "caregate_events";

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A message was sent.
    Message,
    /// A thread started or changed (a new message changes it too).
    Thread,
    /// A notification was created.
    Notification,
    /// An appointment was booked or changed.
    Appointment,
}

/// One change, by id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Event {
    #[serde(rename = "k")]
    pub kind: EventKind,
    /// The clinic.
    #[serde(rename = "o")]
    pub organization: Uuid,
    /// The changed row.
    pub id: Uuid,
    /// A message's thread.
    #[serde(rename = "t", default)]
    pub thread: Option<Uuid>,
    /// A notification's recipient.
    #[serde(rename = "u", default)]
    pub user: Option<Uuid>,
}

impl Event {
    /// The event a notification payload names; `None` for anything else
    /// (logged: only our triggers write the channel).
    pub fn parse(payload: &str) -> Option<Self> {
        serde_json::from_str(payload)
            .inspect_err(|e| tracing::warn!(error = %e, "an unreadable live event"))
            .ok()
    }
}

/// Where a server's sockets receive the events.
#[derive(Clone)]
pub struct Hub {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Hub {
    /// A hub whose receivers each hold at most `capacity` events not yet
    /// taken (beyond it a receiver lags, and its socket is closed).
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// Hands an event to every socket of this server.
    pub fn publish(&self, event: Event) {
        // No socket listening is not an error.
        let _ = self.sender.send(Arc::new(event));
    }

    /// Listens on [`CHANNEL`] on a connection of its own for as long as the
    /// server runs, reconnecting after a failure.
    pub fn listen(&self, opts: PgConnectOptions) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .acquire_timeout(Duration::from_secs(5))
                .connect_lazy_with(opts);
            loop {
                match listen_once(&hub, &pool).await {
                    Ok(()) => return,
                    Err(err) => {
                        tracing::warn!(error = %err, "live events: listening failed; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    }
}

async fn listen_once(hub: &Hub, pool: &sea_orm::sqlx::PgPool) -> Result<(), sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    tracing::info!(channel = CHANNEL, "live events: listening");
    loop {
        // `try_recv` says when the connection was lost (`None`): events
        // sent meanwhile are gone, which the log should show.
        match listener.try_recv().await? {
            Some(n) => {
                if let Some(event) = Event::parse(n.payload()) {
                    hub.publish(event);
                }
            }
            None => {
                tracing::warn!("live events: the listening connection was lost; reconnecting");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_carries_ids_only() {
        let e = Event::parse(
            r#"{"k":"message","o":"0190a1b2-0000-7000-8000-000000000001","id":"0190a1b2-0000-7000-8000-000000000002","t":"0190a1b2-0000-7000-8000-000000000003"}"#,
        )
        .unwrap();
        assert_eq!(e.kind, EventKind::Message);
        assert!(e.thread.is_some() && e.user.is_none());
        assert!(Event::parse(r#"{"k":"nonsense","o":"x","id":"y"}"#).is_none());
        assert!(Event::parse("not json").is_none());
    }
}
