//! Appointments and their status machine.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone};
use entity::appointment::{self, AppointmentStatus, AppointmentType};
use entity::patient::PatientStatus;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set, Statement, Value,
};

use crate::Tx;
use crate::actor::{Actor, Purpose, Role};
use crate::domain::{AppointmentId, FacilityId, PatientId, ProviderId, new_id};
use crate::error::{DbResultExt, ServiceError, ServiceResult};
use crate::pagination::{Page, PageRequest, TimeKey};
use crate::sql::uuid_array;
use uuid::Uuid;

/// The longest appointment (a database check holds the same bound).
const MAX_LENGTH: chrono::Duration = chrono::Duration::hours(24);

#[derive(Debug, Clone, Default)]
pub struct AppointmentFilter {
    pub from: Option<DateTime<FixedOffset>>,
    pub to: Option<DateTime<FixedOffset>>,
    /// One calendar day in the time zone of each appointment's facility
    /// (the clinic's for an appointment at none, or at a facility without
    /// one).
    pub on: Option<NaiveDate>,
    pub provider: Option<ProviderId>,
    pub facility: Option<FacilityId>,
    pub patient: Option<PatientId>,
    pub status: Option<AppointmentStatus>,
}

/// The instants a clinic-local day starts and ends at (DST-aware: a day may
/// last 23 or 25 hours).
pub fn local_day(
    tz: chrono_tz::Tz,
    day: NaiveDate,
) -> ServiceResult<(DateTime<FixedOffset>, DateTime<FixedOffset>)> {
    check_day(day)?;
    let start_of = |d: NaiveDate| {
        let midnight = d.and_hms_opt(0, 0, 0).context("midnight")?;
        tz.from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.fixed_offset())
            .context("a local midnight that does not exist")
    };
    let next = day
        .succ_opt()
        .ok_or_else(|| ServiceError::invalid("on", "date out of range"))?;
    Ok((start_of(day)?, start_of(next)?))
}

/// The active clinic's time zone.
pub(crate) async fn clinic_timezone(tx: &Tx) -> ServiceResult<chrono_tz::Tz> {
    let row = tx
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT timezone FROM organizations WHERE id = app.current_tenant_id()",
        ))
        .await
        .or_db("reading the clinic's time zone")?
        .ok_or(ServiceError::NotFound)?;
    let tz: String = row.try_get("", "timezone").context("timezone")?;
    tz.parse()
        .map_err(|_| ServiceError::Unexpected(anyhow::anyhow!("clinic time zone {tz} is not IANA")))
}

/// A day whose every local instant PostgreSQL can hold (years 1 to 9999 in
/// any time zone).
fn check_day(day: NaiveDate) -> ServiceResult<()> {
    let (first, last) = (
        NaiveDate::from_ymd_opt(1, 1, 2).context("a date")?,
        NaiveDate::from_ymd_opt(9999, 12, 30).context("a date")?,
    );
    if day < first || day > last {
        return Err(ServiceError::invalid(
            "on",
            "a date from 0001-01-02 to 9999-12-30",
        ));
    }
    Ok(())
}

fn filtered(filter: &AppointmentFilter) -> ServiceResult<sea_orm::Select<appointment::Entity>> {
    let mut q = appointment::Entity::find().filter(appointment::Column::DeletedAt.is_null());
    if let Some(from) = filter.from {
        q = q.filter(appointment::Column::EndsAt.gt(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(appointment::Column::StartsAt.lt(to));
    }
    if let Some(day) = filter.on {
        check_day(day)?;
        // Every local day lies within [00:00 UTC − 14 h, 24:00 UTC + 12 h)
        // (the extreme offsets in use): that range keeps the index on
        // start time; each row's own time zone then decides.
        let midnight = day
            .and_hms_opt(0, 0, 0)
            .context("midnight")?
            .and_utc()
            .fixed_offset();
        q = q
            .filter(appointment::Column::StartsAt.gte(midnight - chrono::Duration::hours(14)))
            .filter(appointment::Column::StartsAt.lt(midnight + chrono::Duration::hours(36)))
            .filter(Expr::cust_with_values(
                "(appointments.starts_at AT TIME ZONE coalesce( \
                    (SELECT f.timezone FROM facilities f \
                     WHERE f.organization_id = appointments.organization_id \
                       AND f.id = appointments.facility_id), \
                    (SELECT o.timezone FROM organizations o \
                     WHERE o.id = appointments.organization_id)))::date = $1",
                [Value::from(day)],
            ));
    }
    if let Some(f) = filter.facility {
        q = q.filter(appointment::Column::FacilityId.eq(f.into_uuid()));
    }
    if let Some(p) = filter.provider {
        q = q.filter(appointment::Column::ProviderId.eq(p.into_uuid()));
    }
    if let Some(p) = filter.patient {
        q = q.filter(appointment::Column::PatientId.eq(p.into_uuid()));
    }
    if let Some(s) = filter.status {
        q = q.filter(appointment::Column::Status.eq(s));
    }
    Ok(q)
}

/// An appointment the caller can see, when its local day (in its
/// facility's time zone, else the clinic's) is `day`: what a live schedule
/// of that day shows.
pub async fn on_day(
    tx: &Tx,
    id: AppointmentId,
    day: NaiveDate,
) -> ServiceResult<Option<appointment::Model>> {
    let filter = AppointmentFilter {
        on: Some(day),
        ..Default::default()
    };
    filtered(&filter)?
        .filter(appointment::Column::Id.eq(id.into_uuid()))
        .one(tx)
        .await
        .or_db("reading an appointment")
}

/// Appointments by start time, one page.
#[tracing::instrument(skip_all, name = "appointments.list", level = "debug")]
pub async fn list(
    tx: &Tx,
    filter: &AppointmentFilter,
    page: &PageRequest<TimeKey>,
) -> ServiceResult<Page<appointment::Model>> {
    let mut q = filtered(filter)?;
    if let Some(key) = &page.after {
        q = q.filter(Expr::cust_with_values(
            "(starts_at, appointments.id) > ($1, $2)",
            [Value::from(key.at), Value::from(key.id)],
        ));
    }
    let rows = q
        .order_by_asc(appointment::Column::StartsAt)
        .order_by_asc(appointment::Column::Id)
        .limit(page.first + 1)
        .all(tx)
        .await
        .or_db("listing appointments")?;
    Ok(Page::from_overfetch(rows, page.first))
}

#[tracing::instrument(skip_all, name = "appointments.count", level = "debug")]
pub async fn count(tx: &Tx, filter: &AppointmentFilter) -> ServiceResult<u64> {
    use sea_orm::PaginatorTrait;
    filtered(filter)?
        .count(tx)
        .await
        .or_db("counting appointments")
}

pub fn key_of(a: &appointment::Model) -> TimeKey {
    TimeKey {
        at: a.starts_at,
        id: a.id,
    }
}

/// Whose appointments a batched page is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    Patient(PatientId),
    Provider(ProviderId),
}

/// A page of appointments for each of several patients (or providers),
/// starting at `from` when given: one statement for all of them.
#[tracing::instrument(skip_all, name = "appointments.pages_of", level = "debug", fields(owners = owners.len()))]
pub async fn pages_of(
    tx: &Tx,
    owners: &[Owner],
    from: Option<DateTime<FixedOffset>>,
    page: &PageRequest<TimeKey>,
) -> ServiceResult<HashMap<Owner, Page<appointment::Model>>> {
    let mut out = HashMap::new();
    let patients: Vec<_> = owners
        .iter()
        .filter_map(|o| match o {
            Owner::Patient(p) => Some(p.into_uuid()),
            _ => None,
        })
        .collect();
    let providers: Vec<_> = owners
        .iter()
        .filter_map(|o| match o {
            Owner::Provider(p) => Some(p.into_uuid()),
            _ => None,
        })
        .collect();
    for (column, ids, wrap) in [
        (
            "patient_id",
            patients,
            (|id: uuid::Uuid| Owner::Patient(id.into())) as fn(uuid::Uuid) -> Owner,
        ),
        ("provider_id", providers, |id: uuid::Uuid| {
            Owner::Provider(id.into())
        }),
    ] {
        if ids.is_empty() {
            continue;
        }
        let (after_at, after_id) = match &page.after {
            Some(k) => (Some(k.at), Some(k.id)),
            None => (None, None),
        };
        let sql = format!(
            "SELECT * FROM ( \
               SELECT a.*, a.{column} AS via, row_number() OVER ( \
                   PARTITION BY a.{column} ORDER BY a.starts_at, a.id) AS rn \
               FROM appointments a \
               WHERE a.{column} = ANY ($1::uuid[]) AND a.deleted_at IS NULL \
                 AND ($2::timestamptz IS NULL OR a.ends_at > $2) \
                 AND ($3::timestamptz IS NULL OR (a.starts_at, a.id) > ($3, $4)) \
             ) t WHERE rn <= $5 ORDER BY via, rn"
        );
        let rows = tx
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                [
                    uuid_array(ids.iter().copied()),
                    from.into(),
                    after_at.into(),
                    after_id.into(),
                    ((page.first + 1) as i64).into(),
                ],
            ))
            .await
            .or_db("loading appointments")?;
        let mut grouped: HashMap<uuid::Uuid, Vec<appointment::Model>> = HashMap::new();
        for row in rows {
            let via: uuid::Uuid = row.try_get("", "via").context("via")?;
            grouped
                .entry(via)
                .or_default()
                .push(appointment::Model::from_query_result(&row, "").context("an appointment")?);
        }
        for id in ids {
            let items = grouped.remove(&id).unwrap_or_default();
            out.insert(wrap(id), Page::from_overfetch(items, page.first));
        }
    }
    Ok(out)
}

/// A page of appointments at each of several facilities, on one local day
/// of each facility (its time zone, else the clinic's) when `on` is given:
/// one statement for all of them (after two small lookups of time zones).
#[tracing::instrument(skip_all, name = "appointments.pages_of_facilities", level = "debug", fields(facilities = facilities.len()))]
pub async fn pages_of_facilities(
    tx: &Tx,
    facilities: &[Uuid],
    on: Option<NaiveDate>,
    page: &PageRequest<TimeKey>,
) -> ServiceResult<HashMap<Uuid, Page<appointment::Model>>> {
    // Each facility's window: its local day, or every time.
    let mut windows: Vec<(Uuid, String, String)> = Vec::with_capacity(facilities.len());
    match on {
        None => windows.extend(
            facilities
                .iter()
                .map(|f| (*f, "-infinity".to_owned(), "infinity".to_owned())),
        ),
        Some(day) => {
            let clinic = clinic_timezone(tx).await?;
            for f in crate::facilities::by_ids(tx, facilities).await? {
                let tz = f
                    .timezone
                    .as_deref()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(clinic);
                let (start, end) = local_day(tz, day)?;
                windows.push((f.id, start.to_rfc3339(), end.to_rfc3339()));
            }
        }
    }
    let (after_at, after_id) = match &page.after {
        Some(k) => (Some(k.at), Some(k.id)),
        None => (None, None),
    };
    let text_array = |items: Vec<String>| Value::from(format!("{{{}}}", items.join(",")));
    let rows = tx
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT * FROM ( \
               SELECT a.*, row_number() OVER ( \
                   PARTITION BY a.facility_id ORDER BY a.starts_at, a.id) AS rn \
               FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS w (fid, lo, hi) \
               JOIN appointments a ON a.facility_id = w.fid \
                AND a.starts_at >= w.lo AND a.starts_at < w.hi \
               WHERE a.deleted_at IS NULL \
                 AND ($4::timestamptz IS NULL OR (a.starts_at, a.id) > ($4, $5)) \
             ) t WHERE rn <= $6 ORDER BY facility_id, rn",
            [
                uuid_array(windows.iter().map(|w| w.0)),
                text_array(windows.iter().map(|w| w.1.clone()).collect()),
                text_array(windows.iter().map(|w| w.2.clone()).collect()),
                after_at.into(),
                after_id.into(),
                ((page.first + 1) as i64).into(),
            ],
        ))
        .await
        .or_db("loading appointments of facilities")?;
    let mut grouped: HashMap<Uuid, Vec<appointment::Model>> = HashMap::new();
    for row in rows {
        let a = appointment::Model::from_query_result(&row, "").context("an appointment")?;
        if let Some(f) = a.facility_id {
            grouped.entry(f).or_default().push(a);
        }
    }
    Ok(facilities
        .iter()
        .map(|f| {
            let items = grouped.remove(f).unwrap_or_default();
            (*f, Page::from_overfetch(items, page.first))
        })
        .collect())
}

pub struct NewAppointment {
    pub patient: PatientId,
    pub provider: ProviderId,
    pub starts_at: DateTime<FixedOffset>,
    pub ends_at: DateTime<FixedOffset>,
    pub kind: AppointmentType,
    pub reason: Option<String>,
    /// Where it takes place: an open facility of the clinic.
    pub facility: Option<FacilityId>,
}

/// Books an appointment. Staff, or a portal user allowed to schedule for
/// the patient. Only for an actively enrolled patient and an active
/// provider of the same clinic, in the future, at most 24 hours long. A
/// provider is never double-booked: the database's exclusion constraint
/// decides under concurrency (`DOUBLE_BOOKED`).
#[tracing::instrument(skip_all, name = "appointments.schedule", level = "debug", fields(patient = %input.patient, provider = %input.provider))]
pub async fn schedule(
    tx: &Tx,
    actor: &Actor,
    input: NewAppointment,
) -> ServiceResult<appointment::Model> {
    actor.may(Purpose::Schedule, input.patient)?;
    if input.ends_at <= input.starts_at {
        return Err(ServiceError::invalid("endsAt", "must be after startsAt"));
    }
    if input.ends_at - input.starts_at > MAX_LENGTH {
        return Err(ServiceError::invalid(
            "endsAt",
            "an appointment lasts at most 24 hours",
        ));
    }
    if input.ends_at.to_utc().year() > 9999 {
        return Err(ServiceError::invalid(
            "endsAt",
            "must be before the year 10000 (UTC)",
        ));
    }
    if input.starts_at < chrono::Utc::now() - chrono::Duration::minutes(5) {
        return Err(ServiceError::invalid("startsAt", "must be in the future"));
    }
    let reason = match input.reason.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(r) => Some(crate::domain::required_text("reason", r, 1000)?),
    };
    let patient = crate::patients::get(tx, input.patient)
        .await?
        .ok_or_else(|| ServiceError::invalid("patientId", "no such patient"))?;
    if patient.status != PatientStatus::Active {
        return Err(ServiceError::invalid(
            "patientId",
            "the patient is not actively enrolled",
        ));
    }
    match crate::providers::get(tx, input.provider).await? {
        None => return Err(ServiceError::invalid("providerId", "no such provider")),
        Some(p) if !p.is_active => {
            return Err(ServiceError::invalid(
                "providerId",
                "the provider is not active",
            ));
        }
        Some(_) => {}
    }
    let facility = match input.facility {
        Some(f) => Some(crate::facilities::bookable(tx, f).await?.id),
        None if actor.facility_scope.is_some() => {
            return Err(ServiceError::invalid(
                "facilityId",
                "required of staff limited to some facilities",
            ));
        }
        None => None,
    };
    let model = appointment::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(actor.tenant.into_uuid()),
        facility_id: Set(facility),
        patient_id: Set(input.patient.into_uuid()),
        provider_id: Set(input.provider.into_uuid()),
        starts_at: Set(input.starts_at),
        ends_at: Set(input.ends_at),
        r#type: Set(input.kind),
        reason: Set(reason),
        created_by: Set(Some(actor.user.into_uuid())),
        ..Default::default()
    };
    model.insert(tx).await.or_db("scheduling an appointment")
}

/// Whether the status machine allows `from -> to`: SCHEDULED -> CONFIRMED
/// -> CHECKED_IN -> COMPLETED, and CANCELLED or NO_SHOW from SCHEDULED or
/// CONFIRMED.
pub fn can_transition(from: AppointmentStatus, to: AppointmentStatus) -> bool {
    use AppointmentStatus::*;
    matches!(
        (from, to),
        (Scheduled, Confirmed)
            | (Confirmed, CheckedIn)
            | (CheckedIn, Completed)
            | (Scheduled | Confirmed, Cancelled)
            | (Scheduled | Confirmed, NoShow)
    )
}

/// Moves an appointment along its status machine (any other move is
/// BAD_USER_INPUT on `to`). Cancelling needs a reason. A portal user may
/// only cancel, and only for a patient they may schedule for.
#[tracing::instrument(skip_all, name = "appointments.transition", level = "debug", fields(appointment = %id, to = ?to))]
pub async fn transition(
    tx: &Tx,
    actor: &Actor,
    id: AppointmentId,
    to: AppointmentStatus,
    reason: Option<String>,
) -> ServiceResult<appointment::Model> {
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT * FROM appointments WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
            [id.into_uuid().into()],
        ))
        .await
        .or_db("locking an appointment")?
        .ok_or(ServiceError::NotFound)?;
    let current = appointment::Model::from_query_result(&row, "").context("an appointment")?;
    if actor.role == Role::Portal {
        actor.may(Purpose::Schedule, current.patient_id.into())?;
        if to != AppointmentStatus::Cancelled {
            return Err(ServiceError::Forbidden(
                crate::error::ForbiddenReason::ProxyScope,
            ));
        }
    }
    if !can_transition(current.status, to) {
        return Err(ServiceError::invalid(
            "to",
            format!(
                "cannot go from {} to {}",
                status_name(current.status),
                status_name(to)
            ),
        ));
    }
    let reason = reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    let mut model = current.into_active_model();
    if to == AppointmentStatus::Cancelled {
        let reason = reason
            .ok_or_else(|| ServiceError::invalid("reason", "a cancellation needs a reason"))?;
        model.cancel_reason = Set(Some(crate::domain::required_text("reason", &reason, 1000)?));
    }
    model.status = Set(to);
    model
        .update(tx)
        .await
        .or_db("changing an appointment's status")
}

/// A status as the schema and the database spell it (`CHECKED_IN`).
fn status_name(status: AppointmentStatus) -> String {
    use sea_orm::ActiveEnum;
    status.to_value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use AppointmentStatus::*;

    #[test]
    fn the_status_machine_allows_only_its_moves() {
        let all = [
            Scheduled, Confirmed, CheckedIn, Completed, Cancelled, NoShow,
        ];
        let allowed: Vec<_> = all
            .iter()
            .flat_map(|f| all.iter().map(move |t| (*f, *t)))
            .filter(|(f, t)| can_transition(*f, *t))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Scheduled, Confirmed),
                (Scheduled, Cancelled),
                (Scheduled, NoShow),
                (Confirmed, CheckedIn),
                (Confirmed, Cancelled),
                (Confirmed, NoShow),
                (CheckedIn, Completed),
            ]
        );
    }

    #[test]
    fn a_local_day_follows_daylight_saving() {
        let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
        let (start, end) = local_day(tz, NaiveDate::from_ymd_opt(2026, 3, 8).unwrap()).unwrap();
        assert_eq!(start.to_rfc3339(), "2026-03-08T00:00:00-05:00");
        assert_eq!(end.to_rfc3339(), "2026-03-09T00:00:00-04:00");
        assert_eq!((end - start).num_hours(), 23);
    }
}
