//! Who works at a facility: a staff member (by membership) or a provider.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A person's role at one facility (`facility_staff.role`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FacilityRole {
    #[sea_orm(string_value = "MANAGER")]
    Manager,
    #[sea_orm(string_value = "FRONT_DESK")]
    FrontDesk,
    #[sea_orm(string_value = "CLINICIAN")]
    Clinician,
    #[sea_orm(string_value = "BILLING")]
    Billing,
}

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "facility_staff")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub facility_id: Uuid,
    /// Exactly one of `membership_id` and `provider_id` is set.
    pub membership_id: Option<Uuid>,
    pub provider_id: Option<Uuid>,
    pub role: FacilityRole,
    pub starts_on: Date,
    pub ends_on: Option<Date>,
    pub assigned_by: Option<Uuid>,
    pub removed_at: Option<DateTimeWithTimeZone>,
    pub removed_by: Option<Uuid>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
