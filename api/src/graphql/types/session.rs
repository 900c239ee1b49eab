//! Therapy sessions and their clinical event stream.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, ID, InputObject, Json, Object};
use chrono::{DateTime, FixedOffset};
use entity::{session_event, therapy_session};
use service::Purpose;
use service::pagination::{Page, PageRequest, TimeKey};
use service::sessions::SessionFilter as Filter;
use uuid::Uuid;

use super::billing::PayerAuthorization;
use super::connection::page_request;
use super::enums::SessionStatus;
use super::patient::Patient;
use super::provider::Provider;
use crate::error::{ApiError, GqlResult, IntoGql};
use crate::graphql::scope::ScopeExt;

#[derive(Clone)]
pub struct TherapySession(pub therapy_session::Model);

/// A therapy session: care a provider gave a patient at a checked-in
/// appointment, with its clinical event stream. Started, ended (its units
/// consumed from the authorization) and signed by its rendering provider;
/// once signed it is locked and later events are addenda. Staff see the
/// clinic's sessions; a patient their own; a proxy those of patients whose
/// clinical notes they may view.
#[Object]
impl TherapySession {
    /// The session's id.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Where the session stands.
    async fn status(&self) -> SessionStatus {
        self.0.status.into()
    }
    /// The CPT/HCPCS code of the service given (e.g. `97153`).
    async fn service_code(&self) -> &str {
        &self.0.service_code
    }
    /// Procedure modifiers (up to 4, e.g. `HN`).
    async fn modifiers(&self) -> &[String] {
        &self.0.modifiers
    }
    /// The CMS place-of-service code (e.g. `11` office, `02` telehealth).
    async fn place_of_service(&self) -> &str {
        &self.0.place_of_service
    }
    /// When care started.
    async fn started_at(&self) -> DateTime<FixedOffset> {
        self.0.started_at
    }
    /// When care ended; null while in progress.
    async fn ended_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.ended_at
    }
    /// Billable units, from the duration: 15-minute units under the 8-minute
    /// rule (under 8 minutes: 0; 8–22: 1; 23–37: 2; …). Null while in
    /// progress.
    async fn units(&self) -> Option<i32> {
        self.0.units
    }
    /// When it was signed; null until then.
    async fn signed_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.signed_at
    }
    /// SHA-256 (hex) of the session's billable facts and of every event
    /// recorded before the signature: what the signature covers. Null until
    /// signed.
    async fn content_hash(&self) -> Option<&str> {
        self.0.content_hash.as_deref()
    }
    /// The id of the appointment the session was started from.
    async fn appointment_id(&self) -> ID {
        ID(self.0.appointment_id.to_string())
    }
    /// The patient; null when the caller may see the session but not the
    /// chart.
    async fn patient(&self, ctx: &Context<'_>) -> GqlResult<Option<Patient>> {
        let row = ctx
            .loaders()?
            .patient
            .load_one(self.0.patient_id.into())
            .await
            .gql()?;
        Ok(Patient::returned(ctx, row.into_iter().collect())?.pop())
    }
    /// The rendering provider.
    async fn provider(&self, ctx: &Context<'_>) -> GqlResult<Option<Provider>> {
        let row = ctx
            .loaders()?
            .provider
            .load_one(self.0.provider_id.into())
            .await
            .gql()?;
        Ok(row.map(Provider))
    }
    /// The payer authorization whose units the session consumes; null when
    /// none (or the caller may not see billing).
    async fn authorization(&self, ctx: &Context<'_>) -> GqlResult<Option<PayerAuthorization>> {
        let Some(id) = self.0.authorization_id else {
            return Ok(None);
        };
        if ctx
            .clinical_actor()?
            .may(Purpose::Billing, self.0.patient_id.into())
            .is_err()
        {
            return Ok(None);
        }
        let row = ctx.loaders()?.authorization.load_one(id).await.gql()?;
        Ok(row.map(PayerAuthorization))
    }
    /// The clinical events, in time order (then by id), addenda and
    /// corrections included.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
        after: Option<String>,
    ) -> GqlResult<SessionEventConnection> {
        ctx.clinical_actor()?
            .may(Purpose::Notes, self.0.patient_id.into())
            .gql()?;
        let page = page_request::<TimeKey>(first, after)?;
        let result = ctx
            .loaders()?
            .session_events
            .load_one((self.0.id, page))
            .await
            .gql()?
            .ok_or_else(ApiError::internal)?;
        Ok(event_connection(result))
    }
}

#[derive(Clone)]
pub struct SessionEvent(pub session_event::Model);

/// One clinical event of a session: append-only, never changed or
/// deleted; a correction is a new event naming the one it corrects.
#[Object]
impl SessionEvent {
    /// The event's id.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Its type, from the clinic's catalogue (`sessionEventTypes`).
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    /// When it happened.
    async fn occurred_at(&self) -> DateTime<FixedOffset> {
        self.0.occurred_at
    }
    /// Its structured content (a JSON object).
    async fn payload(&self) -> Json<serde_json::Value> {
        Json(self.0.payload.clone())
    }
    /// The id of the event of the same session this one corrects; null
    /// when it corrects none.
    async fn corrects_id(&self) -> Option<ID> {
        self.0.corrects_id.map(|id| ID(id.to_string()))
    }
    /// Recorded after the session was signed: an addendum, outside what the
    /// signature covers.
    async fn is_addendum(&self) -> bool {
        self.0.is_addendum
    }
    /// When the server recorded it.
    async fn recorded_at(&self) -> DateTime<FixedOffset> {
        self.0.recorded_at
    }
}

pub type SessionEventConnection = Connection<OpaqueCursor<TimeKey>, SessionEvent>;

pub const EVENT_CONNECTION_DESCRIPTION: &str = "\
    A page of a session's events, in time order. Ask for the next page with\n\
    `after: pageInfo.endCursor` while `pageInfo.hasNextPage`.";

fn event_connection(page: Page<session_event::Model>) -> SessionEventConnection {
    let mut conn = Connection::new(false, page.has_next_page);
    for e in page.items {
        conn.edges.push(Edge::new(
            OpaqueCursor(service::sessions::event_key_of(&e)),
            SessionEvent(e),
        ));
    }
    conn
}

/// Which sessions to list; every field given narrows the list.
#[derive(InputObject, Default)]
pub struct SessionFilter {
    /// Only this patient's sessions.
    pub patient_id: Option<Uuid>,
    /// Only this provider's sessions.
    pub provider_id: Option<Uuid>,
    /// Only sessions in this status.
    pub status: Option<SessionStatus>,
    /// Sessions started at or after this instant.
    pub from: Option<DateTime<FixedOffset>>,
    /// Sessions started before this instant.
    pub to: Option<DateTime<FixedOffset>>,
}

impl From<SessionFilter> for Filter {
    fn from(f: SessionFilter) -> Self {
        Filter {
            patient: f.patient_id.map(Into::into),
            provider: f.provider_id.map(Into::into),
            status: f.status.map(Into::into),
            from: f.from,
            to: f.to,
        }
    }
}

/// `totalCount` of a session list, counted only when asked for.
pub struct SessionTotal(pub Option<Filter>);

#[Object]
impl SessionTotal {
    /// Counted for the root `sessions` list; null on nested lists.
    async fn total_count(&self, ctx: &Context<'_>) -> GqlResult<Option<i64>> {
        match &self.0 {
            None => Ok(None),
            Some(filter) => {
                let scope = ctx.scope()?;
                Ok(Some(
                    service::sessions::count(&scope.tx, filter).await.gql()? as i64,
                ))
            }
        }
    }
}

pub type SessionConnection = Connection<OpaqueCursor<TimeKey>, TherapySession, SessionTotal>;

pub const CONNECTION_DESCRIPTION: &str = "\
    A page of therapy sessions, by start time (earliest first). Ask for the\n\
    next page with `after: pageInfo.endCursor` while `pageInfo.hasNextPage`.";

pub fn connection(
    ctx: &Context<'_>,
    page: Page<therapy_session::Model>,
    total: SessionTotal,
) -> GqlResult<SessionConnection> {
    ctx.scope()?
        .record_reads(page.items.iter().map(|s| s.patient_id));
    let mut conn = Connection::with_additional_fields(false, page.has_next_page, total);
    for s in page.items {
        conn.edges.push(Edge::new(
            OpaqueCursor(service::sessions::key_of(&s)),
            TherapySession(s),
        ));
    }
    Ok(conn)
}

/// The sessions of a patient, a page: for `Patient.sessions`.
pub async fn of_patient(
    ctx: &Context<'_>,
    patient: Uuid,
    page: PageRequest<TimeKey>,
) -> GqlResult<SessionConnection> {
    let result = ctx
        .loaders()?
        .sessions_by_patient
        .load_one((patient, page))
        .await
        .gql()?
        .ok_or_else(ApiError::internal)?;
    connection(ctx, result, SessionTotal(None))
}

/// A session to start.
#[derive(InputObject)]
pub struct StartTherapySessionInput {
    /// The checked-in appointment it is given at (BAD_USER_INPUT on
    /// `appointmentId` when there is no such appointment; CONFLICT
    /// APPOINTMENT_NOT_CHECKED_IN, SESSION_EXISTS).
    pub appointment_id: Uuid,
    /// The CPT/HCPCS code of the service (5 characters, e.g. `97153`); the
    /// authorization's code when one is given.
    pub service_code: String,
    /// Procedure modifiers: up to 4, 2 letters or digits each.
    #[graphql(default)]
    pub modifiers: Vec<String>,
    /// The CMS place-of-service code: 2 digits (e.g. `11` office).
    pub place_of_service: String,
    /// The patient's payer authorization the units come from; omit when
    /// the service needs none.
    pub authorization_id: Option<Uuid>,
    /// When care started (not in the future); now when omitted.
    pub started_at: Option<DateTime<FixedOffset>>,
}

/// One event to record.
#[derive(InputObject)]
pub struct SessionEventInput {
    /// A type code of the clinic's catalogue (`sessionEventTypes`), else
    /// BAD_USER_INPUT on `events.eventType`.
    pub event_type: String,
    /// When it happened (not in the future).
    pub occurred_at: DateTime<FixedOffset>,
    /// Its structured content: a JSON object of at most 16 KiB.
    pub payload: Json<serde_json::Value>,
    /// The event of the same session this one corrects.
    pub corrects_id: Option<Uuid>,
}
