//! Patients' diagnoses (ICD-10-CM). One is primary: it comes first on a
//! claim. Adding a primary one demotes the current primary in the same
//! transaction; a race leaves one primary (`PRIMARY_DIAGNOSIS_EXISTS`,
//! held by a partial unique index).

use chrono::NaiveDate;
use entity::diagnosis;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use crate::Tx;
use crate::actor::{Actor, Purpose};
use crate::codes::IcdCode;
use crate::domain::{PatientId, new_id, required_text};
use crate::error::{DbResultExt, ServiceError, ServiceResult};

pub struct NewDiagnosis {
    pub patient: PatientId,
    pub code: IcdCode,
    pub description: Option<String>,
    pub is_primary: bool,
    pub diagnosed_on: NaiveDate,
}

/// Records a diagnosis (staff). The same open code is recorded once per
/// patient (`DUPLICATE_DIAGNOSIS`).
#[tracing::instrument(skip_all, name = "diagnoses.add", level = "debug", fields(patient = %input.patient))]
pub async fn add(tx: &Tx, actor: &Actor, input: NewDiagnosis) -> ServiceResult<diagnosis::Model> {
    actor.require_staff()?;
    let patient = crate::patients::get(tx, input.patient)
        .await?
        .ok_or_else(|| ServiceError::invalid("patientId", "no such patient"))?;
    let description = match input.description.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) => Some(required_text("description", d, 200)?),
    };
    if input.is_primary {
        diagnosis::Entity::update_many()
            .col_expr(diagnosis::Column::IsPrimary, Expr::value(false))
            .filter(diagnosis::Column::PatientId.eq(patient.id))
            .filter(diagnosis::Column::IsPrimary.eq(true))
            .filter(diagnosis::Column::DeletedAt.is_null())
            .exec(tx)
            .await
            .or_db("demoting the primary diagnosis")?;
    }
    diagnosis::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(patient.organization_id),
        patient_id: Set(patient.id),
        code: Set(input.code.into_string()),
        description: Set(description),
        is_primary: Set(input.is_primary),
        diagnosed_on: Set(input.diagnosed_on),
        resolved_on: Set(None),
        created_by: Set(Some(actor.user.into_uuid())),
        ..Default::default()
    }
    .insert(tx)
    .await
    .or_db("recording a diagnosis")
}

/// The open diagnoses of several patients, primary first, then by date:
/// one statement. A portal user sees those of patients whose clinical
/// notes they may view.
#[tracing::instrument(skip_all, name = "diagnoses.of_patients", level = "debug", fields(patients = patients.len()))]
pub async fn of_patients(
    tx: &Tx,
    actor: &Actor,
    patients: &[PatientId],
) -> ServiceResult<Vec<diagnosis::Model>> {
    let visible: Vec<Uuid> = patients
        .iter()
        .filter(|p| actor.may(Purpose::Notes, **p).is_ok())
        .map(|p| p.into_uuid())
        .collect();
    if visible.is_empty() {
        return Ok(Vec::new());
    }
    diagnosis::Entity::find()
        .filter(diagnosis::Column::PatientId.is_in(visible))
        .filter(diagnosis::Column::DeletedAt.is_null())
        .filter(diagnosis::Column::ResolvedOn.is_null())
        .order_by_desc(diagnosis::Column::IsPrimary)
        .order_by_asc(diagnosis::Column::DiagnosedOn)
        .order_by_asc(diagnosis::Column::Id)
        .all(tx)
        .await
        .or_db("loading diagnoses")
}
