//! Overrides of a clinic's subscription plan, granted by super admins.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// What an override does (`subscription_overrides.kind`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OverrideKind {
    #[sea_orm(string_value = "FREE")]
    Free,
    #[sea_orm(string_value = "TRIAL_EXTENSION")]
    TrialExtension,
    #[sea_orm(string_value = "MANUAL_CANCEL")]
    ManualCancel,
    #[sea_orm(string_value = "DISCOUNT")]
    Discount,
}

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subscription_overrides")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub kind: OverrideKind,
    /// Set exactly for a discount: 0 to 100.
    pub discount_percent: Option<i32>,
    /// Set exactly for a trial extension.
    pub trial_ends_on: Option<Date>,
    pub reason: String,
    pub granted_by: Uuid,
    pub granted_at: DateTimeWithTimeZone,
    pub revoked_by: Option<Uuid>,
    pub revoked_at: Option<DateTimeWithTimeZone>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
