//! The subscription root: live updates over `/graphql/ws`.
//!
//! A subscription here is run once per event, not once per socket: for
//! each event that may concern it, the socket (`crate::live::socket`) opens
//! a transaction with the subscriber's own context, runs the subscription's
//! operation with the event in the request's data, and sends what it
//! yields. Each field below checks that the event is one it follows, then
//! re-reads the row under that context: a row the subscriber may not read
//! (another clinic's, a thread they no longer may see, a revoked proxy's
//! patient) yields nothing, so nothing is sent. When the socket checks a
//! new subscription there is no event, and every field yields nothing.

use std::sync::Arc;

use async_graphql::{Context, Subscription as SubscriptionRoot};
use futures::Stream;
use futures::stream;
use uuid::Uuid;

use super::scalars::Date;
use super::scope::ScopeExt;
use super::types::appointment::Appointment;
use super::types::messaging::{Message, Notification, Thread};
use crate::error::{GqlResult, IntoGql};
use crate::live::events::{Event, EventKind};

/// The subscription root (see [`Subscription`]'s fields).
#[derive(Default)]
pub struct Subscription;

/// The event being delivered, when it is of `kind`.
fn event_of<'a>(ctx: &'a Context<'_>, kind: EventKind) -> Option<&'a Event> {
    ctx.data_opt::<Arc<Event>>()
        .map(AsRef::as_ref)
        .filter(|e| e.kind == kind)
}

/// The at most one item an event yields: the row, re-read, or an error.
fn one<T>(item: GqlResult<Option<T>>) -> impl Stream<Item = GqlResult<T>> {
    stream::iter(item.transpose())
}

/// Live updates: each field sends an item whenever what it follows changes
/// and the subscriber may read it. Subscribe over WebSocket at
/// `/graphql/ws` (protocol `graphql-transport-ws`, the token in
/// `connection_init`'s payload as `{"authorization": "Bearer <token>"}`).
#[SubscriptionRoot]
impl Subscription {
    /// Each new message of a thread the subscriber can see (its sender's
    /// own included).
    async fn message_added(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The thread to follow.")] thread_id: Uuid,
    ) -> impl Stream<Item = GqlResult<Message>> {
        one(message_added(ctx, thread_id).await)
    }

    /// Each thread the subscriber can see when it starts or changes (a new
    /// message changes it).
    async fn thread_updated(&self, ctx: &Context<'_>) -> impl Stream<Item = GqlResult<Thread>> {
        one(thread_updated(ctx).await)
    }

    /// Each new notification of the subscriber, unless its kind is muted
    /// or it comes in their quiet hours (it is kept either way:
    /// `notifications` lists it).
    async fn notification_added(
        &self,
        ctx: &Context<'_>,
    ) -> impl Stream<Item = GqlResult<Notification>> {
        one(notification_added(ctx).await)
    }

    /// Each appointment booked or changed on a day of the schedule the
    /// subscriber can see: staff, their clinic's (or their facilities');
    /// a patient or proxy, those they may see.
    async fn appointment_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The local day to follow (in each appointment's facility \
                          time zone, else the clinic's).")]
        on: Date,
    ) -> impl Stream<Item = GqlResult<Appointment>> {
        one(appointment_changed(ctx, on).await)
    }
}

async fn message_added(ctx: &Context<'_>, thread_id: Uuid) -> GqlResult<Option<Message>> {
    let Some(event) = event_of(ctx, EventKind::Message).filter(|e| e.thread == Some(thread_id))
    else {
        return Ok(None);
    };
    ctx.clinical_actor()?;
    let scope = ctx.scope()?;
    let row = service::messaging::messages_by_ids(&scope.tx, &[event.id])
        .await
        .gql()?
        .pop();
    if let Some(m) = &row {
        scope.record_reads([m.patient_id]);
    }
    Ok(row.map(Message))
}

async fn thread_updated(ctx: &Context<'_>) -> GqlResult<Option<Thread>> {
    let Some(event) = event_of(ctx, EventKind::Thread) else {
        return Ok(None);
    };
    ctx.clinical_actor()?;
    let row = ctx.loaders()?.thread.load_one(event.id).await.gql()?;
    Ok(row.map(Thread))
}

async fn notification_added(ctx: &Context<'_>) -> GqlResult<Option<Notification>> {
    let Some(event) = event_of(ctx, EventKind::Notification) else {
        return Ok(None);
    };
    let actor = ctx.actor()?;
    if event.user != Some(actor.user.into_uuid()) {
        return Ok(None);
    }
    let scope = ctx.scope()?;
    let row = match service::notifications::by_id(&scope.tx, event.id).await {
        Ok(n) => n,
        Err(service::ServiceError::NotFound) => return Ok(None),
        Err(e) => return Err(crate::error::ApiError::from(e).into()),
    };
    let prefs = service::notifications::preferences(&scope.tx).await.gql()?;
    let wanted = prefs.wants(row.kind(), chrono::Utc::now());
    Ok(wanted.then_some(Notification(row)))
}

async fn appointment_changed(ctx: &Context<'_>, on: Date) -> GqlResult<Option<Appointment>> {
    let Some(event) = event_of(ctx, EventKind::Appointment) else {
        return Ok(None);
    };
    ctx.clinical_actor()?;
    let scope = ctx.scope()?;
    let row = service::appointments::on_day(&scope.tx, event.id.into(), on.0)
        .await
        .gql()?;
    if let Some(a) = &row {
        scope.record_reads([a.patient_id]);
    }
    Ok(row.map(Appointment))
}

/// The event kinds a subscription root field follows.
pub fn kinds_of(field: &str) -> Option<EventKind> {
    Some(match field {
        "messageAdded" => EventKind::Message,
        "threadUpdated" => EventKind::Thread,
        "notificationAdded" => EventKind::Notification,
        "appointmentChanged" => EventKind::Appointment,
        _ => return None,
    })
}
