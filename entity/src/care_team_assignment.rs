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

/// `AssignedBy` and `RemovedBy` both point at `users`, so neither gets a
/// `Related` impl: join through the variant you mean.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::organization::Entity",
        from = "Column::OrganizationId",
        to = "super::organization::Column::Id"
    )]
    Organization,
    #[sea_orm(
        belongs_to = "super::patient::Entity",
        from = "Column::PatientId",
        to = "super::patient::Column::Id"
    )]
    Patient,
    #[sea_orm(
        belongs_to = "super::provider::Entity",
        from = "Column::ProviderId",
        to = "super::provider::Column::Id"
    )]
    Provider,
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::AssignedBy",
        to = "super::user::Column::Id"
    )]
    AssignedBy,
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::RemovedBy",
        to = "super::user::Column::Id"
    )]
    RemovedBy,
}

impl Related<super::organization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Organization.def()
    }
}

impl Related<super::patient::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Patient.def()
    }
}

impl Related<super::provider::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Provider.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
