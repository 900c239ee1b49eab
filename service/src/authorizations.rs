//! Payer authorizations: units a payer approved for a service, reserved as
//! care is scheduled and released when it is not given.

use anyhow::Context;
use chrono::{DateTime, FixedOffset, NaiveDate};
use entity::payer_authorization;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, Set, Statement,
};

use crate::Tx;
use crate::actor::Actor;
use crate::domain::{AuthorizationId, PatientId, new_id, required_text};
use crate::error::{ConflictReason, DbResultExt, ServiceError, ServiceResult};

/// The live authorizations of several patients: one statement.
#[tracing::instrument(skip_all, name = "authorizations.of_patients", level = "debug", fields(patients = patients.len()))]
pub async fn of_patients(
    tx: &Tx,
    patients: &[PatientId],
) -> ServiceResult<Vec<payer_authorization::Model>> {
    payer_authorization::Entity::find()
        .filter(
            payer_authorization::Column::PatientId.is_in(patients.iter().map(|p| p.into_uuid())),
        )
        .filter(payer_authorization::Column::DeletedAt.is_null())
        .order_by_asc(payer_authorization::Column::ValidFrom)
        .order_by_asc(payer_authorization::Column::Id)
        .all(tx)
        .await
        .or_db("loading authorizations")
}

pub struct NewAuthorization {
    pub patient: PatientId,
    pub payer_name: String,
    pub authorization_number: String,
    pub service_code: String,
    pub total_units: i32,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
}

/// Records a payer's authorization for a patient (staff). The number is
/// unique per payer within the clinic (`DUPLICATE_AUTHORIZATION`).
#[tracing::instrument(skip_all, name = "authorizations.create", level = "debug", fields(patient = %input.patient))]
pub async fn create(
    tx: &Tx,
    actor: &Actor,
    input: NewAuthorization,
) -> ServiceResult<payer_authorization::Model> {
    actor.require_staff()?;
    if input.total_units <= 0 {
        return Err(ServiceError::invalid("totalUnits", "must be positive"));
    }
    if input.valid_to < input.valid_from {
        return Err(ServiceError::invalid(
            "validTo",
            "must not be before validFrom",
        ));
    }
    let patient = crate::patients::get(tx, input.patient)
        .await?
        .ok_or_else(|| ServiceError::invalid("patientId", "no such patient"))?;
    let model = payer_authorization::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(patient.organization_id),
        patient_id: Set(patient.id),
        payer_name: Set(required_text("payerName", &input.payer_name, 200)?),
        authorization_number: Set(required_text(
            "authorizationNumber",
            &input.authorization_number,
            64,
        )?),
        service_code: Set(required_text("serviceCode", &input.service_code, 32)?),
        total_units: Set(input.total_units),
        used_units: Set(0),
        valid_from: Set(input.valid_from),
        valid_to: Set(input.valid_to),
        ..Default::default()
    };
    model.insert(tx).await.or_db("creating an authorization")
}

fn check_units(units: i32) -> ServiceResult<()> {
    if units <= 0 {
        return Err(ServiceError::invalid("units", "must be positive"));
    }
    Ok(())
}

/// Why drawing units changed nothing, on the clinic-local day of `on` (or
/// today): outside the authorization's dates, or not enough units left.
async fn explain_refusal(
    tx: &Tx,
    id: AuthorizationId,
    on: Option<DateTime<FixedOffset>>,
) -> ServiceError {
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT (coalesce($2::timestamptz, now()) AT TIME ZONE o.timezone)::date \
                    BETWEEN a.valid_from AND a.valid_to AS valid \
             FROM payer_authorizations a JOIN organizations o ON o.id = a.organization_id \
             WHERE a.id = $1 AND a.deleted_at IS NULL",
            [id.into_uuid().into(), on.into()],
        ))
        .await;
    match row {
        Ok(None) => ServiceError::NotFound,
        Ok(Some(row)) => match row.try_get::<bool>("", "valid") {
            Ok(false) if on.is_some() => {
                ServiceError::Conflict(ConflictReason::AuthorizationNotValidOnDate)
            }
            Ok(false) => ServiceError::Conflict(ConflictReason::AuthorizationNotValidToday),
            Ok(true) => ServiceError::Conflict(ConflictReason::UnitsExhausted),
            Err(e) => ServiceError::from_db(e, "reading an authorization"),
        },
        Err(e) => ServiceError::from_db(e, "reading an authorization"),
    }
}

/// Reserves `units` (staff): [`draw`] on today's date.
#[tracing::instrument(skip_all, name = "authorizations.reserve", level = "debug", fields(authorization = %id, units))]
pub async fn reserve(
    tx: &Tx,
    actor: &Actor,
    id: AuthorizationId,
    units: i32,
) -> ServiceResult<payer_authorization::Model> {
    actor.require_staff()?;
    check_units(units)?;
    draw(tx, id, units, None).await
}

/// Adds `units` to those used, atomically under concurrency: one
/// conditional UPDATE adds them only while they fit and only when the
/// clinic-local day of `on` (today when `None`) is within the validity
/// dates. When they do not fit nothing is drawn: `UNITS_EXHAUSTED`, or
/// `AUTHORIZATION_NOT_VALID_TODAY` / `_ON_DATE`.
pub(crate) async fn draw(
    tx: &Tx,
    id: AuthorizationId,
    units: i32,
    on: Option<DateTime<FixedOffset>>,
) -> ServiceResult<payer_authorization::Model> {
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE payer_authorizations a SET used_units = a.used_units + $2 \
             FROM organizations o \
             WHERE a.id = $1 AND a.deleted_at IS NULL AND o.id = a.organization_id \
               AND a.used_units + $2 <= a.total_units \
               AND (coalesce($3::timestamptz, now()) AT TIME ZONE o.timezone)::date \
                   BETWEEN a.valid_from AND a.valid_to \
             RETURNING a.*",
            [id.into_uuid().into(), units.into(), on.into()],
        ))
        .await
        .or_db("drawing units")?;
    match row {
        Some(row) => {
            Ok(payer_authorization::Model::from_query_result(&row, "")
                .context("an authorization")?)
        }
        None => Err(explain_refusal(tx, id, on).await),
    }
}

/// Gives back `units` (staff); never below zero (`UNITS_NOT_RESERVED`).
#[tracing::instrument(skip_all, name = "authorizations.release", level = "debug", fields(authorization = %id, units))]
pub async fn release(
    tx: &Tx,
    actor: &Actor,
    id: AuthorizationId,
    units: i32,
) -> ServiceResult<payer_authorization::Model> {
    actor.require_staff()?;
    check_units(units)?;
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE payer_authorizations SET used_units = used_units - $2 \
             WHERE id = $1 AND deleted_at IS NULL AND used_units - $2 >= 0 RETURNING *",
            [id.into_uuid().into(), units.into()],
        ))
        .await
        .or_db("releasing units")?;
    match row {
        Some(row) => {
            Ok(payer_authorization::Model::from_query_result(&row, "")
                .context("an authorization")?)
        }
        None => {
            let exists = payer_authorization::Entity::find_by_id(id.into_uuid())
                .one(tx)
                .await
                .or_db("reading an authorization")?;
            Err(match exists {
                None => ServiceError::NotFound,
                Some(_) => ServiceError::Conflict(ConflictReason::UnitsNotReserved),
            })
        }
    }
}
