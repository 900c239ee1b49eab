//! A clinic's subscription: its plan status and the override caregate's
//! super admins may grant (free, a trial extension, a manual cancel, a
//! discount). The clinic's admins see it; only a super admin acting in the
//! clinic through an (audited) impersonation writes it — the row policy
//! holds the same rule.

use chrono::NaiveDate;
use entity::organization::{self, SubscriptionStatus};
use entity::subscription_override::{self, OverrideKind};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect, Set,
};
use uuid::Uuid;

use crate::Tx;
use crate::actor::{Actor, Role};
use crate::domain::{new_id, required_text};
use crate::error::{ConflictReason, DbResultExt, ForbiddenReason, ServiceError, ServiceResult};

/// The clinic's subscription as its admins see it.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The status in force: the plan's, as the active override changes it.
    pub status: SubscriptionStatus,
    /// The plan's own status, before any override.
    pub plan_status: SubscriptionStatus,
    pub active_override: Option<subscription_override::Model>,
}

/// What an override makes of the plan's status on `today`.
pub fn effective_status(
    plan: SubscriptionStatus,
    active: Option<&subscription_override::Model>,
    today: NaiveDate,
) -> SubscriptionStatus {
    match active.map(|o| (o.kind, o.trial_ends_on)) {
        Some((OverrideKind::Free, _)) => SubscriptionStatus::Active,
        Some((OverrideKind::ManualCancel, _)) => SubscriptionStatus::Cancelled,
        Some((OverrideKind::TrialExtension, Some(ends))) if today <= ends => {
            SubscriptionStatus::Trial
        }
        _ => plan,
    }
}

/// The clinic's own date today (trials end on the clinic's days).
async fn today(tx: &Tx) -> ServiceResult<NaiveDate> {
    let tz = crate::appointments::clinic_timezone(tx).await?;
    Ok(chrono::Utc::now().with_timezone(&tz).date_naive())
}

/// The active clinic's subscription (ADMIN).
#[tracing::instrument(skip_all, name = "subscription.of_clinic", level = "debug")]
pub async fn of_clinic(tx: &Tx, actor: &Actor) -> ServiceResult<Subscription> {
    actor.require(&[Role::Admin])?;
    let clinic = organization::Entity::find_by_id(actor.tenant.into_uuid())
        .one(tx)
        .await
        .or_db("reading the clinic")?
        .ok_or(ServiceError::NotFound)?;
    let active = active_override(tx).await?;
    Ok(Subscription {
        status: effective_status(
            clinic.subscription_status,
            active.as_ref(),
            today(tx).await?,
        ),
        plan_status: clinic.subscription_status,
        active_override: active,
    })
}

async fn active_override(tx: &Tx) -> ServiceResult<Option<subscription_override::Model>> {
    subscription_override::Entity::find()
        .filter(subscription_override::Column::RevokedAt.is_null())
        .one(tx)
        .await
        .or_db("reading the subscription override")
}

/// An override to grant.
pub enum NewOverride {
    Free,
    TrialExtension { ends_on: NaiveDate },
    ManualCancel,
    Discount { percent: i32 },
}

/// Only a super admin acting in the clinic through an impersonation.
fn require_impersonation(actor: &Actor) -> ServiceResult<()> {
    if !actor.impersonating {
        return Err(ServiceError::Forbidden(
            ForbiddenReason::ImpersonationRequired,
        ));
    }
    Ok(())
}

/// Grants an override of the clinic's plan (a super admin impersonating
/// the clinic). One active override per clinic (`OVERRIDE_ACTIVE`: revoke
/// it first).
#[tracing::instrument(skip_all, name = "subscription.grant_override", level = "debug")]
pub async fn grant_override(
    tx: &Tx,
    actor: &Actor,
    input: NewOverride,
    reason: &str,
) -> ServiceResult<subscription_override::Model> {
    require_impersonation(actor)?;
    let (kind, discount, trial) = match input {
        NewOverride::Free => (OverrideKind::Free, None, None),
        NewOverride::ManualCancel => (OverrideKind::ManualCancel, None, None),
        NewOverride::TrialExtension { ends_on } => {
            if ends_on < today(tx).await? {
                return Err(ServiceError::invalid(
                    "trialEndsOn",
                    "must not be in the past",
                ));
            }
            (OverrideKind::TrialExtension, None, Some(ends_on))
        }
        NewOverride::Discount { percent } => {
            if !(0..=100).contains(&percent) {
                return Err(ServiceError::invalid(
                    "discountPercent",
                    "a percentage from 0 to 100",
                ));
            }
            (OverrideKind::Discount, Some(percent), None)
        }
    };
    subscription_override::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(actor.tenant.into_uuid()),
        kind: Set(kind),
        discount_percent: Set(discount),
        trial_ends_on: Set(trial),
        reason: Set(required_text("reason", reason, 500)?),
        granted_by: Set(actor.user.into_uuid()),
        ..Default::default()
    }
    .insert(tx)
    .await
    .or_db("granting a subscription override")
}

/// Revokes an override (a super admin impersonating the clinic); it is
/// kept, with who revoked it (`ALREADY_REVOKED` the second time).
#[tracing::instrument(skip_all, name = "subscription.revoke_override", level = "debug", fields(id = %id))]
pub async fn revoke_override(
    tx: &Tx,
    actor: &Actor,
    id: Uuid,
) -> ServiceResult<subscription_override::Model> {
    require_impersonation(actor)?;
    let current = subscription_override::Entity::find_by_id(id)
        .lock_exclusive()
        .one(tx)
        .await
        .or_db("reading a subscription override")?
        .ok_or(ServiceError::NotFound)?;
    if current.revoked_at.is_some() {
        return Err(ServiceError::Conflict(ConflictReason::AlreadyRevoked));
    }
    let mut model = current.into_active_model();
    // The trigger sets who and when; these are placeholders it replaces.
    model.revoked_by = Set(Some(actor.user.into_uuid()));
    model.revoked_at = Set(Some(chrono::Utc::now().fixed_offset()));
    model
        .update(tx)
        .await
        .or_db("revoking a subscription override")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn an_override(
        kind: OverrideKind,
        trial_ends_on: Option<NaiveDate>,
    ) -> subscription_override::Model {
        let now = chrono::Utc::now().fixed_offset();
        subscription_override::Model {
            id: Uuid::nil(),
            organization_id: Uuid::nil(),
            kind,
            discount_percent: None,
            trial_ends_on,
            reason: "r".into(),
            granted_by: Uuid::nil(),
            granted_at: now,
            revoked_by: None,
            revoked_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn an_override_changes_the_plan_status_as_its_kind_says() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let past = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        use SubscriptionStatus::*;
        assert_eq!(effective_status(PastDue, None, day), PastDue);
        let free = an_override(OverrideKind::Free, None);
        assert_eq!(effective_status(PastDue, Some(&free), day), Active);
        let cancel = an_override(OverrideKind::ManualCancel, None);
        assert_eq!(effective_status(Active, Some(&cancel), day), Cancelled);
        let trial = an_override(OverrideKind::TrialExtension, Some(day));
        assert_eq!(effective_status(PastDue, Some(&trial), day), Trial);
        let ended = an_override(OverrideKind::TrialExtension, Some(past));
        assert_eq!(effective_status(PastDue, Some(&ended), day), PastDue);
        let discount = an_override(OverrideKind::Discount, None);
        assert_eq!(effective_status(Active, Some(&discount), day), Active);
    }
}
