//! Proxy (guardian) access: a user acting for a patient, within flags.

use anyhow::Context;
use chrono::{DateTime, FixedOffset};
use entity::proxy_assignment::{self, ProxyRelationship};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, Set, Statement,
};

use crate::Tx;
use crate::actor::{Actor, Role};
use crate::domain::{Email, PatientId, ProxyAssignmentId, new_id};
use crate::error::{ConflictReason, DbResultExt, ServiceError, ServiceResult};

/// What a proxy may do for the patient.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyFlags {
    pub can_view_profile: bool,
    pub can_view_appointments: bool,
    pub can_schedule_appointments: bool,
    pub can_view_clinical_notes: bool,
    pub can_view_billing: bool,
    pub can_message_providers: bool,
}

pub struct NewGrant {
    pub patient: PatientId,
    pub proxy_email: Email,
    pub relationship: ProxyRelationship,
    pub flags: ProxyFlags,
    pub expires_at: Option<DateTime<FixedOffset>>,
}

/// Grants proxy access to a patient by email (clinic ADMIN or STAFF).
///
/// Someone already tied to the clinic (a member, a chart holder, an
/// accepted proxy) gets the grant at once. Anyone else — a caregate user of
/// another clinic or an email caregate does not know — gets a pending
/// invitation, answered exactly alike: the clinic sees only the email it
/// typed, learns nothing of whether or where the person uses caregate, and
/// the grant reaches the patient only once the person accepts it after
/// logging in. One live grant (or invitation) per proxy and patient
/// (`PROXY_ALREADY_GRANTED`: revoke, then grant anew to change it).
#[tracing::instrument(skip_all, name = "proxies.grant", level = "debug", fields(patient = %input.patient))]
pub async fn grant(
    tx: &Tx,
    actor: &Actor,
    input: NewGrant,
) -> ServiceResult<proxy_assignment::Model> {
    actor.require(&[Role::Admin, Role::Staff])?;
    if let Some(expires) = input.expires_at
        && expires <= chrono::Utc::now()
    {
        return Err(ServiceError::invalid("expiresAt", "must be in the future"));
    }
    let patient = crate::patients::get(tx, input.patient)
        .await?
        .ok_or_else(|| ServiceError::invalid("patientId", "no such patient"))?;
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT app.user_id_by_email($1) AS id",
            [input.proxy_email.as_ref().into()],
        ))
        .await
        .or_db("looking up the proxy")?;
    let proxy_user: Option<uuid::Uuid> = match row {
        Some(row) => row.try_get("", "id").context("id")?,
        None => None,
    };
    let f = input.flags;
    let model = proxy_assignment::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(patient.organization_id),
        patient_id: Set(patient.id),
        proxy_user_id: Set(proxy_user),
        invited_email: Set(Some(input.proxy_email.as_ref().to_lowercase())),
        accepted_at: Set(None),
        relationship: Set(input.relationship),
        can_view_profile: Set(f.can_view_profile),
        can_view_appointments: Set(f.can_view_appointments),
        can_schedule_appointments: Set(f.can_schedule_appointments),
        can_view_clinical_notes: Set(f.can_view_clinical_notes),
        can_view_billing: Set(f.can_view_billing),
        can_message_providers: Set(f.can_message_providers),
        granted_by: Set(Some(actor.user.into_uuid())),
        expires_at: Set(input.expires_at),
        ..Default::default()
    };
    model.insert(tx).await.or_db("granting proxy access")
}

/// A pending invitation to the signed-in user.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub id: uuid::Uuid,
    pub organization_id: uuid::Uuid,
    pub organization_name: String,
    pub relationship: ProxyRelationship,
    pub granted_at: DateTime<FixedOffset>,
    pub expires_at: Option<DateTime<FixedOffset>>,
}

/// The signed-in user's pending proxy invitations, at every clinic.
#[tracing::instrument(skip_all, name = "proxies.my_invitations", level = "debug")]
pub async fn my_invitations(tx: &Tx) -> ServiceResult<Vec<Invitation>> {
    let rows = tx
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT id, organization_id, organization_name, relationship, granted_at, expires_at \
             FROM app.my_proxy_invitations()",
        ))
        .await
        .or_db("listing proxy invitations")?;
    rows.into_iter()
        .map(|r| {
            let relationship: String = r.try_get("", "relationship").context("relationship")?;
            Ok(Invitation {
                id: r.try_get("", "id").context("id")?,
                organization_id: r
                    .try_get("", "organization_id")
                    .context("organization_id")?,
                organization_name: r
                    .try_get("", "organization_name")
                    .context("organization_name")?,
                relationship: serde_json::from_value(serde_json::Value::String(relationship))
                    .context("relationship")?,
                granted_at: r.try_get("", "granted_at").context("granted_at")?,
                expires_at: r.try_get("", "expires_at").context("expires_at")?,
            })
        })
        .collect()
}

/// Accepts a pending invitation to the signed-in user: the grant becomes
/// theirs, and reaches the patient from their next request in that clinic
/// (`switchOrganization`). NOT_FOUND when there is no such invitation for
/// them.
#[tracing::instrument(skip_all, name = "proxies.accept_invitation", level = "debug", fields(invitation = %id))]
pub async fn accept_invitation(tx: &Tx, id: uuid::Uuid) -> ServiceResult<Invitation> {
    let pending = my_invitations(tx)
        .await?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or(ServiceError::NotFound)?;
    let accepted = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT app.accept_proxy_invitation($1) AS organization_id",
            [id.into()],
        ))
        .await
        .or_db("accepting a proxy invitation")?;
    let clinic: Option<uuid::Uuid> = match accepted {
        Some(row) => row
            .try_get("", "organization_id")
            .context("organization_id")?,
        None => None,
    };
    clinic.ok_or(ServiceError::NotFound)?;
    Ok(pending)
}

/// Ends a grant at once (soft: the row keeps who revoked it and when).
#[tracing::instrument(skip_all, name = "proxies.revoke", level = "debug", fields(grant = %id))]
pub async fn revoke(
    tx: &Tx,
    actor: &Actor,
    id: ProxyAssignmentId,
) -> ServiceResult<proxy_assignment::Model> {
    actor.require(&[Role::Admin, Role::Staff])?;
    let current = proxy_assignment::Entity::find_by_id(id.into_uuid())
        .one(tx)
        .await
        .or_db("loading a grant")?
        .ok_or(ServiceError::NotFound)?;
    if current.revoked_at.is_some() {
        return Err(ServiceError::Conflict(ConflictReason::AlreadyRevoked));
    }
    let mut model = current.into_active_model();
    model.revoked_at = Set(Some(chrono::Utc::now().fixed_offset()));
    model.revoked_by = Set(Some(actor.user.into_uuid()));
    model.update(tx).await.or_db("revoking proxy access")
}

/// The grants of several patients (live and past), newest first: staff only.
#[tracing::instrument(skip_all, name = "proxies.of_patients", level = "debug", fields(patients = patients.len()))]
pub async fn of_patients(
    tx: &Tx,
    actor: &Actor,
    patients: &[PatientId],
) -> ServiceResult<Vec<proxy_assignment::Model>> {
    actor.require_staff()?;
    proxy_assignment::Entity::find()
        .filter(proxy_assignment::Column::PatientId.is_in(patients.iter().map(|p| p.into_uuid())))
        .order_by_desc(proxy_assignment::Column::GrantedAt)
        .all(tx)
        .await
        .or_db("loading proxy grants")
}

/// Display names of users connected to the clinic, by id.
#[tracing::instrument(skip_all, name = "proxies.user_names", level = "debug", fields(ids = ids.len()))]
pub async fn user_names(
    tx: &Tx,
    ids: &[uuid::Uuid],
) -> ServiceResult<Vec<(uuid::Uuid, String, String)>> {
    let rows = tx
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id, display_name, email FROM app.clinic_user_names($1::uuid[])",
            [crate::sql::uuid_array(ids.iter().copied())],
        ))
        .await
        .or_db("loading user names")?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get("", "id").context("id")?,
                r.try_get("", "display_name").context("display_name")?,
                r.try_get("", "email").context("email")?,
            ))
        })
        .collect()
}
