//! Therapy sessions and their clinical event stream.
//!
//! A session is started by its rendering provider from a checked-in
//! appointment (one session per appointment), records events as care is
//! given, ends — which computes its units and consumes them from the
//! payer authorization in the same transaction — and is signed, which
//! locks it: events recorded after the signature are addenda. The database
//! holds each rule (`app.check_therapy_session`, `app.check_session_event`,
//! the unique appointment key, the authorization's units check); this
//! module asks in the order a client can act on and names the refusal.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, FixedOffset, Utc};
use entity::session_event;
use entity::therapy_session::{self, SessionStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Statement, Value,
};
use uuid::Uuid;

use crate::Tx;
use crate::actor::{Actor, Role};
use crate::codes::{Modifiers, PlaceOfService, ServiceCode};
use crate::domain::{AppointmentId, AuthorizationId, PatientId, ProviderId};
use crate::error::{ConflictReason, DbResultExt, ServiceError, ServiceResult, constraint_name};
use crate::pagination::{Page, PageRequest, TimeKey};
use crate::sql::uuid_array;

/// The most events one `record_events` call takes (one statement).
pub const MAX_EVENTS_PER_BATCH: usize = 500;

/// How far ahead of the server's clock a client's timestamp may be.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

fn not_in_future(field: &'static str, at: DateTime<FixedOffset>) -> ServiceResult<()> {
    if at > Utc::now() + CLOCK_SKEW {
        return Err(ServiceError::invalid(field, "must not be in the future"));
    }
    Ok(())
}

/// Billable units for a duration, the 8-minute rule: the same rule as the
/// database's `app.billable_units`, which is the one applied (this one
/// documents it and is tested against it).
pub fn billable_units(minutes: i32) -> i32 {
    if minutes < 8 { 0 } else { (minutes + 7) / 15 }
}

pub struct NewSession {
    pub appointment: AppointmentId,
    pub service_code: ServiceCode,
    pub modifiers: Modifiers,
    pub place_of_service: PlaceOfService,
    /// The authorization whose units the session consumes; none for care
    /// billed without one.
    pub authorization: Option<AuthorizationId>,
    /// When care started; now when not given.
    pub started_at: Option<DateTime<FixedOffset>>,
}

/// Starts a session (the appointment's provider, role PROVIDER). The
/// appointment must be checked in (`APPOINTMENT_NOT_CHECKED_IN`) and have
/// no session yet (`SESSION_EXISTS`); the provider needs a licence of the
/// clinic's state valid that day (FORBIDDEN `NO_VALID_LICENSE`).
#[tracing::instrument(skip_all, name = "sessions.start", level = "debug", fields(appointment = %input.appointment))]
pub async fn start(
    tx: &Tx,
    actor: &Actor,
    input: NewSession,
) -> ServiceResult<therapy_session::Model> {
    actor.require(&[Role::Provider])?;
    let started_at = input
        .started_at
        .unwrap_or_else(|| Utc::now().fixed_offset());
    not_in_future("startedAt", started_at)?;
    let appointment = entity::appointment::Entity::find_by_id(input.appointment.into_uuid())
        .filter(entity::appointment::Column::DeletedAt.is_null())
        .one(tx)
        .await
        .or_db("reading an appointment")?
        .ok_or_else(|| ServiceError::invalid("appointmentId", "no such appointment"))?;
    if let Some(auth) = input.authorization {
        let found = entity::payer_authorization::Entity::find_by_id(auth.into_uuid())
            .filter(entity::payer_authorization::Column::DeletedAt.is_null())
            .one(tx)
            .await
            .or_db("reading an authorization")?
            .filter(|a| a.patient_id == appointment.patient_id)
            .ok_or_else(|| {
                ServiceError::invalid("authorizationId", "no such authorization for this patient")
            })?;
        if found.service_code.trim() != input.service_code.as_str() {
            return Err(ServiceError::invalid(
                "serviceCode",
                format!(
                    "the authorization covers {}, not {}",
                    found.service_code,
                    input.service_code.as_str()
                ),
            ));
        }
    }
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO therapy_sessions (organization_id, appointment_id, patient_id, provider_id, \
                 authorization_id, service_code, modifiers, place_of_service, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7::text[], $8, $9) RETURNING *",
            [
                appointment.organization_id.into(),
                appointment.id.into(),
                appointment.patient_id.into(),
                appointment.provider_id.into(),
                input.authorization.map(|a| a.into_uuid()).into(),
                input.service_code.as_str().into(),
                Value::from(input.modifiers.into_vec()),
                input.place_of_service.into_string().into(),
                started_at.into(),
            ],
        ))
        .await
        .or_db("starting a session")?
        .context("the new session")?;
    Ok(therapy_session::Model::from_query_result(&row, "").context("a session")?)
}

/// One clinical event to record.
pub struct NewEvent {
    pub event_type: String,
    pub occurred_at: DateTime<FixedOffset>,
    /// A JSON object (checked at the edge), at most 16 KiB stored.
    pub payload: serde_json::Value,
    /// The event of the same session this one corrects.
    pub corrects: Option<Uuid>,
}

/// Records a batch of events (the session's provider), 1 to
/// [`MAX_EVENTS_PER_BATCH`], in one statement, in the order given. Events
/// are never changed: a correction is a new event naming the one it
/// corrects. After signing, events are recorded as addenda.
#[tracing::instrument(skip_all, name = "sessions.record_events", level = "debug", fields(session = %session, events = events.len()))]
pub async fn record_events(
    tx: &Tx,
    actor: &Actor,
    session: Uuid,
    events: Vec<NewEvent>,
) -> ServiceResult<Vec<session_event::Model>> {
    actor.require(&[Role::Provider])?;
    if events.is_empty() || events.len() > MAX_EVENTS_PER_BATCH {
        return Err(ServiceError::invalid(
            "events",
            format!("1 to {MAX_EVENTS_PER_BATCH} events per call"),
        ));
    }
    let mut types = Vec::with_capacity(events.len());
    let mut times = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    let mut corrects = Vec::with_capacity(events.len());
    for e in events {
        not_in_future("events.occurredAt", e.occurred_at)?;
        if !e.payload.is_object() {
            return Err(ServiceError::invalid(
                "events.payload",
                "must be a JSON object",
            ));
        }
        types.push(e.event_type);
        times.push(e.occurred_at);
        payloads.push(e.payload);
        // No correction is the empty string (an array parameter holds no NULL).
        corrects.push(e.corrects.map(|c| c.to_string()).unwrap_or_default());
    }
    let rows = tx
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO session_events (organization_id, session_id, event_type, \
                 occurred_at, payload, corrects_id) \
             SELECT app.current_tenant_id(), $1, e.event_type, e.occurred_at, e.payload, \
                    nullif(e.corrects_id, '')::uuid \
             FROM unnest($2::text[], $3::timestamptz[], $4::jsonb[], $5::text[]) \
                  WITH ORDINALITY AS e (event_type, occurred_at, payload, corrects_id, n) \
             ORDER BY e.n \
             RETURNING *",
            [
                session.into(),
                Value::from(types),
                Value::from(times),
                Value::from(payloads),
                Value::from(corrects),
            ],
        ))
        .await
        .map_err(|err| match constraint_name(&err).as_deref() {
            Some("session_events_organization_id_event_type_fkey") => ServiceError::invalid(
                "events.eventType",
                "not a type of the clinic's session event catalogue",
            ),
            Some("session_events_organization_id_session_id_corrects_id_fkey") => {
                ServiceError::invalid("events.correctsId", "no such event in this session")
            }
            Some("session_events_payload_check") => {
                ServiceError::invalid("events.payload", "must be a JSON object of at most 16 KiB")
            }
            _ => ServiceError::from_db(err, "recording session events"),
        })?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(session_event::Model::from_query_result(&row, "").context("an event")?);
    }
    Ok(out)
}

/// Ends a session (its provider): records the end (now when not given),
/// computes its units (15-minute units, 8-minute rule: `billable_units`),
/// completes the appointment, and consumes the units from the session's
/// authorization, all or nothing: when they do not fit, nothing is saved
/// (`UNITS_EXHAUSTED`; `AUTHORIZATION_NOT_VALID_ON_DATE` when the session's
/// day is outside the authorization's dates). Concurrent ends against one
/// authorization never overdraw it: the conditional update of its row
/// decides, one at a time.
#[tracing::instrument(skip_all, name = "sessions.end", level = "debug", fields(session = %id))]
pub async fn end(
    tx: &Tx,
    actor: &Actor,
    id: Uuid,
    ended_at: Option<DateTime<FixedOffset>>,
) -> ServiceResult<therapy_session::Model> {
    actor.require(&[Role::Provider])?;
    let ended_at = ended_at.unwrap_or_else(|| Utc::now().fixed_offset());
    not_in_future("endedAt", ended_at)?;
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "WITH s AS ( \
                 UPDATE therapy_sessions SET status = 'COMPLETED', ended_at = $2, \
                     units = app.billable_units(floor(extract(epoch FROM $2 - started_at) / 60)::integer) \
                 WHERE id = $1 AND status = 'IN_PROGRESS' \
                   AND $2 > started_at AND $2 - started_at <= interval '24 hours' \
                 RETURNING *), \
             done AS ( \
                 UPDATE appointments a SET status = 'COMPLETED' FROM s \
                 WHERE a.organization_id = s.organization_id AND a.id = s.appointment_id \
                   AND a.status = 'CHECKED_IN' RETURNING a.id) \
             SELECT s.* FROM s",
            [id.into(), ended_at.into()],
        ))
        .await
        .or_db("ending a session")?;
    let Some(row) = row else {
        return Err(explain_end_refusal(tx, id, ended_at).await);
    };
    let session = therapy_session::Model::from_query_result(&row, "").context("a session")?;
    let units = session.units.unwrap_or(0);
    if let (Some(auth), true) = (session.authorization_id, units > 0) {
        crate::authorizations::draw(tx, auth.into(), units, Some(session.started_at))
            .await
            .map_err(|e| match e {
                // Deleted meanwhile: no units to draw from.
                ServiceError::NotFound => ServiceError::Conflict(ConflictReason::UnitsExhausted),
                other => other,
            })?;
    }
    Ok(session)
}

async fn explain_end_refusal(tx: &Tx, id: Uuid, ended_at: DateTime<FixedOffset>) -> ServiceError {
    match therapy_session::Entity::find_by_id(id).one(tx).await {
        Ok(None) => ServiceError::NotFound,
        Ok(Some(s)) if s.status != SessionStatus::InProgress => {
            ServiceError::Conflict(ConflictReason::SessionEnded)
        }
        Ok(Some(s)) if ended_at <= s.started_at => {
            ServiceError::invalid("endedAt", "must be after the session's start")
        }
        Ok(Some(_)) => ServiceError::invalid("endedAt", "a session lasts at most 24 hours"),
        Err(e) => ServiceError::from_db(e, "reading a session"),
    }
}

/// Signs an ended session (its provider): server time, signer and a
/// SHA-256 of the session's billable facts and events
/// (`app.session_content_hash`). The session row is locked first, so every
/// event recorded before the signature is in the hash and every later one
/// is an addendum. A session is signed once (`SESSION_SIGNED`), and only
/// once ended (`SESSION_NOT_ENDED`).
#[tracing::instrument(skip_all, name = "sessions.sign", level = "debug", fields(session = %id))]
pub async fn sign(tx: &Tx, actor: &Actor, id: Uuid) -> ServiceResult<therapy_session::Model> {
    actor.require(&[Role::Provider])?;
    let current = therapy_session::Entity::find_by_id(id)
        .lock_exclusive()
        .one(tx)
        .await
        .or_db("locking a session")?
        .ok_or(ServiceError::NotFound)?;
    // Whose it is comes before what state it is in: another provider
    // learns nothing of it (the update's trigger holds the same rule).
    let renders = entity::provider::Entity::find_by_id(current.provider_id)
        .filter(entity::provider::Column::UserId.eq(actor.user.into_uuid()))
        .one(tx)
        .await
        .or_db("reading the rendering provider")?;
    if renders.is_none() {
        return Err(ServiceError::Forbidden(
            crate::error::ForbiddenReason::NotRenderingProvider,
        ));
    }
    match current.status {
        SessionStatus::InProgress => {
            return Err(ServiceError::Conflict(ConflictReason::SessionNotEnded));
        }
        SessionStatus::Signed => return Err(ServiceError::Conflict(ConflictReason::SessionSigned)),
        SessionStatus::Completed => {}
    }
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE therapy_sessions SET status = 'SIGNED', signed_at = now(), \
                 signed_by = app.current_user_id(), content_hash = app.session_content_hash(id) \
             WHERE id = $1 RETURNING *",
            [id.into()],
        ))
        .await
        .or_db("signing a session")?
        .ok_or(ServiceError::NotFound)?;
    Ok(therapy_session::Model::from_query_result(&row, "").context("a session")?)
}

#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub patient: Option<PatientId>,
    pub provider: Option<ProviderId>,
    pub status: Option<SessionStatus>,
    /// Sessions started at or after this instant.
    pub from: Option<DateTime<FixedOffset>>,
    /// Sessions started before this instant.
    pub to: Option<DateTime<FixedOffset>>,
}

fn filtered(filter: &SessionFilter) -> sea_orm::Select<therapy_session::Entity> {
    let mut q = therapy_session::Entity::find();
    if let Some(p) = filter.patient {
        q = q.filter(therapy_session::Column::PatientId.eq(p.into_uuid()));
    }
    if let Some(p) = filter.provider {
        q = q.filter(therapy_session::Column::ProviderId.eq(p.into_uuid()));
    }
    if let Some(s) = filter.status {
        q = q.filter(therapy_session::Column::Status.eq(s));
    }
    if let Some(from) = filter.from {
        q = q.filter(therapy_session::Column::StartedAt.gte(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(therapy_session::Column::StartedAt.lt(to));
    }
    q
}

/// Sessions by start time, one page. Staff see the clinic's; a portal user
/// those of patients whose clinical notes they may view (the row policy).
#[tracing::instrument(skip_all, name = "sessions.list", level = "debug")]
pub async fn list(
    tx: &Tx,
    filter: &SessionFilter,
    page: &PageRequest<TimeKey>,
) -> ServiceResult<Page<therapy_session::Model>> {
    let mut q = filtered(filter);
    if let Some(key) = &page.after {
        q = q.filter(Expr::cust_with_values(
            "(started_at, therapy_sessions.id) > ($1, $2)",
            [Value::from(key.at), Value::from(key.id)],
        ));
    }
    let rows = q
        .order_by_asc(therapy_session::Column::StartedAt)
        .order_by_asc(therapy_session::Column::Id)
        .limit(page.first + 1)
        .all(tx)
        .await
        .or_db("listing sessions")?;
    Ok(Page::from_overfetch(rows, page.first))
}

#[tracing::instrument(skip_all, name = "sessions.count", level = "debug")]
pub async fn count(tx: &Tx, filter: &SessionFilter) -> ServiceResult<u64> {
    use sea_orm::PaginatorTrait;
    filtered(filter).count(tx).await.or_db("counting sessions")
}

pub fn key_of(s: &therapy_session::Model) -> TimeKey {
    TimeKey {
        at: s.started_at,
        id: s.id,
    }
}

pub fn event_key_of(e: &session_event::Model) -> TimeKey {
    TimeKey {
        at: e.occurred_at,
        id: e.id,
    }
}

#[tracing::instrument(skip_all, name = "sessions.by_ids", level = "debug", fields(ids = ids.len()))]
pub async fn by_ids(tx: &Tx, ids: &[Uuid]) -> ServiceResult<Vec<therapy_session::Model>> {
    therapy_session::Entity::find()
        .filter(therapy_session::Column::Id.is_in(ids.iter().copied()))
        .all(tx)
        .await
        .or_db("loading sessions")
}

/// A page of rows for each of several owners, in one statement: the
/// `first + 1` rows after the page's key per owner, by `(time, id)`.
async fn pages_by<M: FromQueryResult>(
    tx: &Tx,
    table: &'static str,
    owner: &'static str,
    time: &'static str,
    owners: &[Uuid],
    page: &PageRequest<TimeKey>,
) -> ServiceResult<HashMap<Uuid, Page<M>>> {
    let (after_at, after_id) = match &page.after {
        Some(k) => (Some(k.at), Some(k.id)),
        None => (None, None),
    };
    // Only the table and column names (constants of this module) are
    // formatted into the text; every value is a parameter.
    let sql = format!(
        "SELECT * FROM ( \
           SELECT t.*, t.{owner} AS via, row_number() OVER ( \
               PARTITION BY t.{owner} ORDER BY t.{time}, t.id) AS rn \
           FROM {table} t \
           WHERE t.{owner} = ANY ($1::uuid[]) \
             AND ($2::timestamptz IS NULL OR (t.{time}, t.id) > ($2, $3)) \
         ) p WHERE rn <= $4 ORDER BY via, rn"
    );
    let rows = tx
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [
                uuid_array(owners.iter().copied()),
                after_at.into(),
                after_id.into(),
                ((page.first + 1) as i64).into(),
            ],
        ))
        .await
        .or_db("loading a page per owner")?;
    let mut owned = Vec::with_capacity(rows.len());
    for row in rows {
        let via: Uuid = row.try_get("", "via").context("via")?;
        owned.push((via, M::from_query_result(&row, "").context(table)?));
    }
    Ok(crate::pagination::pages_per_owner(
        owners, owned, page.first,
    ))
}

/// A page of sessions (by start) of each of several patients: one
/// statement.
#[tracing::instrument(skip_all, name = "sessions.pages_of_patients", level = "debug", fields(patients = patients.len()))]
pub async fn pages_of_patients(
    tx: &Tx,
    patients: &[Uuid],
    page: &PageRequest<TimeKey>,
) -> ServiceResult<HashMap<Uuid, Page<therapy_session::Model>>> {
    pages_by(
        tx,
        "therapy_sessions",
        "patient_id",
        "started_at",
        patients,
        page,
    )
    .await
}

/// A page of events (by time, then id) of each of several sessions: one
/// statement. Corrections and addenda are events like any other, in time
/// order.
#[tracing::instrument(skip_all, name = "sessions.event_pages", level = "debug", fields(sessions = sessions.len()))]
pub async fn event_pages(
    tx: &Tx,
    sessions: &[Uuid],
    page: &PageRequest<TimeKey>,
) -> ServiceResult<HashMap<Uuid, Page<session_event::Model>>> {
    pages_by(
        tx,
        "session_events",
        "session_id",
        "occurred_at",
        sessions,
        page,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::billable_units;

    #[test]
    fn the_eight_minute_rule() {
        let cases = [
            (0, 0),
            (7, 0),
            (8, 1),
            (22, 1),
            (23, 2),
            (37, 2),
            (38, 3),
            (60, 4),
            (67, 4),
            (68, 5),
        ];
        for (minutes, units) in cases {
            assert_eq!(billable_units(minutes), units, "{minutes} minutes");
        }
    }
}
