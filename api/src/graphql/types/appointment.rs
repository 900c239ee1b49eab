//! Appointments.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, FixedOffset};
use entity::appointment;
use service::appointments::AppointmentFilter as Filter;
use service::pagination::{Page, TimeKey};
use uuid::Uuid;

use super::enums::{AppointmentStatus, AppointmentType};
use super::facility::Facility;
use super::patient::Patient;
use super::provider::Provider;
use crate::error::{GqlResult, IntoGql};
use crate::graphql::scalars::Date;
use crate::graphql::scope::ScopeExt;

#[derive(Clone)]
pub struct Appointment(pub appointment::Model);

/// A visit of a patient with a provider, at a set time. Staff see the
/// clinic's appointments; a proxy sees those of the patients whose
/// appointments they may view.
#[Object]
impl Appointment {
    /// The appointment's id. A Relay node id: the object's UUID, which every argument taking a
    /// UUID accepts.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// When the appointment starts: an instant (returned in UTC with its
    /// offset); show it in the clinic's `Organization.timezone`.
    async fn starts_at(&self) -> DateTime<FixedOffset> {
        self.0.starts_at
    }
    /// When the appointment ends (after `startsAt`, at most 24 hours later).
    async fn ends_at(&self) -> DateTime<FixedOffset> {
        self.0.ends_at
    }
    /// How the visit takes place.
    #[graphql(name = "type")]
    async fn kind(&self) -> AppointmentType {
        self.0.r#type.into()
    }
    /// Why the patient is coming, as given when booking (up to 1000
    /// characters); null when none was given.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    /// Where the appointment is in its life (see `transitionAppointment`).
    async fn status(&self) -> AppointmentStatus {
        self.0.status.into()
    }
    /// Why it was cancelled; set only when `status` is CANCELLED.
    async fn cancel_reason(&self) -> Option<&str> {
        self.0.cancel_reason.as_deref()
    }
    /// The patient. Null when the caller may see the appointment but not
    /// the chart (a proxy without profile access).
    async fn patient(&self, ctx: &Context<'_>) -> GqlResult<Option<Patient>> {
        let row = ctx
            .loaders()?
            .patient
            .load_one(self.0.patient_id.into())
            .await
            .gql()?;
        Ok(Patient::returned(ctx, row.into_iter().collect())?.pop())
    }
    /// Where it takes place; null when no facility was given (or the
    /// caller may not see it).
    async fn facility(&self, ctx: &Context<'_>) -> GqlResult<Option<Facility>> {
        let Some(id) = self.0.facility_id else {
            return Ok(None);
        };
        let row = ctx.loaders()?.facility.load_one(id).await.gql()?;
        Ok(row.map(Facility))
    }
    /// The provider the patient sees; null when the provider's record was
    /// deleted.
    async fn provider(&self, ctx: &Context<'_>) -> GqlResult<Option<Provider>> {
        let row = ctx
            .loaders()?
            .provider
            .load_one(self.0.provider_id.into())
            .await
            .gql()?;
        Ok(row.map(Provider))
    }
}

/// Which appointments to list; every field given narrows the list (all of
/// them must match).
#[derive(InputObject, Default)]
pub struct AppointmentFilter {
    /// Appointments still running at or after this instant.
    pub from: Option<DateTime<FixedOffset>>,
    /// Appointments starting before this instant.
    pub to: Option<DateTime<FixedOffset>>,
    /// Appointments starting on this day in the time zone of their facility
    /// (the clinic's for an appointment at no facility, or at one without
    /// its own time zone).
    pub on: Option<Date>,
    /// Only appointments at this facility.
    pub facility_id: Option<Uuid>,
    /// Only this provider's appointments.
    pub provider_id: Option<Uuid>,
    /// Only this patient's appointments.
    pub patient_id: Option<Uuid>,
    /// Only appointments in this status.
    pub status: Option<AppointmentStatus>,
}

impl From<AppointmentFilter> for Filter {
    fn from(f: AppointmentFilter) -> Self {
        Filter {
            from: f.from,
            to: f.to,
            on: f.on.map(|d| d.0),
            provider: f.provider_id.map(Into::into),
            facility: f.facility_id.map(Into::into),
            patient: f.patient_id.map(Into::into),
            status: f.status.map(Into::into),
        }
    }
}

/// `totalCount` of an appointment list, counted only when asked for.
pub struct AppointmentTotal(pub Option<Filter>);

#[Object]
impl AppointmentTotal {
    /// Counted for root lists; null on nested lists (ask the root
    /// `appointments` with a filter for it).
    async fn total_count(&self, ctx: &Context<'_>) -> GqlResult<Option<i64>> {
        match &self.0 {
            None => Ok(None),
            Some(filter) => {
                let scope = ctx.scope()?;
                Ok(Some(
                    service::appointments::count(&scope.tx, filter)
                        .await
                        .gql()? as i64,
                ))
            }
        }
    }
}

pub type AppointmentConnection = Connection<OpaqueCursor<TimeKey>, Appointment, AppointmentTotal>;

/// The description of `AppointmentConnection` (async-graphql generates the
/// type; `graphql::builder` gives it this).
pub const CONNECTION_DESCRIPTION: &str = "\
    A page of appointments, by start time (earliest first). Ask for the next\n\
    page with `after: pageInfo.endCursor` while `pageInfo.hasNextPage`.";

pub fn connection(
    ctx: &Context<'_>,
    page: Page<appointment::Model>,
    total: AppointmentTotal,
) -> GqlResult<AppointmentConnection> {
    ctx.scope()?
        .record_reads(page.items.iter().map(|a| a.patient_id));
    let mut conn = Connection::with_additional_fields(false, page.has_next_page, total);
    for a in page.items {
        conn.edges.push(Edge::new(
            OpaqueCursor(service::appointments::key_of(&a)),
            Appointment(a),
        ));
    }
    Ok(conn)
}

/// An appointment to book.
#[derive(InputObject)]
pub struct ScheduleAppointmentInput {
    /// The patient: actively enrolled (not discharged), else BAD_USER_INPUT
    /// on `patientId`.
    pub patient_id: Uuid,
    /// The provider: active, of the same clinic, else BAD_USER_INPUT on
    /// `providerId`.
    pub provider_id: Uuid,
    /// The start: not in the past (a few minutes of clock skew are allowed),
    /// else BAD_USER_INPUT on `startsAt`.
    pub starts_at: DateTime<FixedOffset>,
    /// The end: after `startsAt` and at most 24 hours after it, else
    /// BAD_USER_INPUT on `endsAt`.
    pub ends_at: DateTime<FixedOffset>,
    /// How the visit takes place; IN_PERSON when omitted.
    #[graphql(name = "type", default_with = "AppointmentType::InPerson")]
    pub kind: AppointmentType,
    /// Why the patient is coming (up to 1000 characters); blank means none.
    pub reason: Option<String>,
    /// The facility where it takes place: an open facility of the clinic
    /// (else BAD_USER_INPUT on `facilityId`). Required of staff limited to
    /// some facilities, and then one of theirs.
    pub facility_id: Option<Uuid>,
}
