//! Care teams: which providers look after a patient, in which role.

use entity::care_team_assignment::{self, CareTeamRole};
use entity::patient::PatientStatus;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, Set, Statement,
};

use crate::Tx;
use crate::actor::Actor;
use crate::domain::{AssignmentId, PatientId, ProviderId, new_id};
use crate::error::{ConflictReason, DbResultExt, ServiceError, ServiceResult};

/// The active assignments of several patients, primary first: one statement
/// for any number of patients.
#[tracing::instrument(skip_all, name = "care_team.active_of", level = "debug", fields(patients = patients.len()))]
pub async fn active_of(
    tx: &Tx,
    patients: &[PatientId],
) -> ServiceResult<Vec<care_team_assignment::Model>> {
    care_team_assignment::Entity::find()
        .filter(
            care_team_assignment::Column::PatientId.is_in(patients.iter().map(|p| p.into_uuid())),
        )
        .filter(care_team_assignment::Column::RemovedAt.is_null())
        .order_by_asc(care_team_assignment::Column::AssignedAt)
        .order_by_asc(care_team_assignment::Column::Id)
        .all(tx)
        .await
        .or_db("loading care teams")
}

/// Locks the patient's chart for the rest of the transaction, so changes to
/// one patient's care team happen one at a time; `NotFound` when the chart
/// is not visible.
async fn lock_patient(tx: &Tx, patient: PatientId) -> ServiceResult<PatientStatus> {
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT status FROM patients WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
            [patient.into_uuid().into()],
        ))
        .await
        .or_db("locking a patient")?
        .ok_or(ServiceError::NotFound)?;
    let status: String = row
        .try_get("", "status")
        .or_db("reading a patient's status")?;
    Ok(if status == "DISCHARGED" {
        PatientStatus::Discharged
    } else {
        PatientStatus::Active
    })
}

async fn require_active_provider(tx: &Tx, provider: ProviderId) -> ServiceResult<()> {
    match crate::providers::get(tx, provider).await? {
        None => Err(ServiceError::invalid("providerId", "no such provider")),
        Some(p) if !p.is_active => Err(ServiceError::invalid(
            "providerId",
            "the provider is not active",
        )),
        Some(_) => Ok(()),
    }
}

/// Makes `provider` the patient's PRIMARY. The current primary, if any,
/// stays on the team as SPECIALIST; a provider already on the team changes
/// role rather than joining twice. The patient's row is locked first, so
/// racing calls run one after another and leave exactly one primary (the
/// partial unique index on active primaries is the backstop).
#[tracing::instrument(skip_all, name = "care_team.assign_primary", level = "debug", fields(patient = %patient, provider = %provider))]
pub async fn assign_primary(
    tx: &Tx,
    actor: &Actor,
    patient: PatientId,
    provider: ProviderId,
) -> ServiceResult<care_team_assignment::Model> {
    actor.require_staff()?;
    if lock_patient(tx, patient).await? == PatientStatus::Discharged {
        return Err(ServiceError::invalid(
            "patientId",
            "the patient is discharged",
        ));
    }
    require_active_provider(tx, provider).await?;
    let team = active_of(tx, &[patient]).await?;
    if let Some(current) = team
        .iter()
        .find(|a| a.role == CareTeamRole::Primary && a.provider_id == provider.into_uuid())
    {
        return Ok(current.clone());
    }
    if let Some(current) = team.iter().find(|a| a.role == CareTeamRole::Primary) {
        let mut demoted = current.clone().into_active_model();
        demoted.role = Set(CareTeamRole::Specialist);
        demoted
            .update(tx)
            .await
            .or_db("demoting the primary provider")?;
    }
    let result = match team
        .into_iter()
        .find(|a| a.provider_id == provider.into_uuid())
    {
        Some(existing) => {
            let mut promoted = existing.into_active_model();
            promoted.role = Set(CareTeamRole::Primary);
            promoted.update(tx).await
        }
        None => {
            new_assignment(actor, patient, provider, CareTeamRole::Primary)
                .insert(tx)
                .await
        }
    };
    result.or_db("assigning the primary provider")
}

fn new_assignment(
    actor: &Actor,
    patient: PatientId,
    provider: ProviderId,
    role: CareTeamRole,
) -> care_team_assignment::ActiveModel {
    care_team_assignment::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(actor.tenant.into_uuid()),
        patient_id: Set(patient.into_uuid()),
        provider_id: Set(provider.into_uuid()),
        role: Set(role),
        assigned_by: Set(Some(actor.user.into_uuid())),
        ..Default::default()
    }
}

/// Adds a provider to a patient's team in `role`. A PRIMARY when one is
/// already there is refused (`PRIMARY_PROVIDER_EXISTS`: use
/// `assign_primary` to replace one), as is a provider already on the team
/// (`ALREADY_ON_CARE_TEAM`); the database's partial unique indexes decide
/// both under concurrency.
#[tracing::instrument(skip_all, name = "care_team.add_member", level = "debug", fields(patient = %patient, provider = %provider, role = ?role))]
pub async fn add_member(
    tx: &Tx,
    actor: &Actor,
    patient: PatientId,
    provider: ProviderId,
    role: CareTeamRole,
) -> ServiceResult<care_team_assignment::Model> {
    actor.require_staff()?;
    if lock_patient(tx, patient).await? == PatientStatus::Discharged {
        return Err(ServiceError::invalid(
            "patientId",
            "the patient is discharged",
        ));
    }
    require_active_provider(tx, provider).await?;
    new_assignment(actor, patient, provider, role)
        .insert(tx)
        .await
        .or_db("adding a care team member")
}

/// Takes a provider off a patient's team: the assignment is kept, with who
/// removed it and when (`ALREADY_REMOVED` the second time).
#[tracing::instrument(skip_all, name = "care_team.remove_member", level = "debug", fields(assignment = %assignment))]
pub async fn remove_member(
    tx: &Tx,
    actor: &Actor,
    assignment: AssignmentId,
) -> ServiceResult<care_team_assignment::Model> {
    actor.require_staff()?;
    let current = care_team_assignment::Entity::find_by_id(assignment.into_uuid())
        .one(tx)
        .await
        .or_db("loading an assignment")?
        .ok_or(ServiceError::NotFound)?;
    if current.removed_at.is_some() {
        return Err(ServiceError::Conflict(ConflictReason::AlreadyRemoved));
    }
    lock_patient(tx, current.patient_id.into()).await?;
    let mut model = current.into_active_model();
    model.removed_at = Set(Some(chrono::Utc::now().fixed_offset()));
    model.removed_by = Set(Some(actor.user.into_uuid()));
    model.update(tx).await.or_db("removing a care team member")
}
