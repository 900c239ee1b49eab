//! Which providers are on a patient's care team, and since / until when.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A provider's role on a care team (`care_team_assignments.role`); at most
/// one live `Primary` per patient.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CareTeamRole {
    #[sea_orm(string_value = "PRIMARY")]
    Primary,
    #[sea_orm(string_value = "SPECIALIST")]
    Specialist,
    #[sea_orm(string_value = "CONSULTANT")]
    Consultant,
}

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "care_team_assignments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub patient_id: Uuid,
    pub provider_id: Uuid,
    pub role: CareTeamRole,
    pub assigned_at: DateTimeWithTimeZone,
    pub assigned_by: Option<Uuid>,
    pub removed_at: Option<DateTimeWithTimeZone>,
    pub removed_by: Option<Uuid>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
