//! Therapy sessions: started from a checked-in appointment, ended, signed.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Where a session stands (`therapy_sessions.status`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionStatus {
    #[sea_orm(string_value = "IN_PROGRESS")]
    InProgress,
    #[sea_orm(string_value = "COMPLETED")]
    Completed,
    #[sea_orm(string_value = "SIGNED")]
    Signed,
}

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "therapy_sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub appointment_id: Uuid,
    pub patient_id: Uuid,
    pub provider_id: Uuid,
    pub authorization_id: Option<Uuid>,
    pub service_code: String,
    pub modifiers: Vec<String>,
    pub place_of_service: String,
    pub status: SessionStatus,
    pub started_at: DateTimeWithTimeZone,
    /// Set exactly when the session is no longer in progress, with `units`.
    pub ended_at: Option<DateTimeWithTimeZone>,
    pub units: Option<i32>,
    pub signed_at: Option<DateTimeWithTimeZone>,
    pub signed_by: Option<Uuid>,
    pub content_hash: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
