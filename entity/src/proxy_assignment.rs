//! Proxies (parents, guardians, caregivers) and what each may do for one patient.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// How a proxy relates to the patient (`proxy_assignments.relationship`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProxyRelationship {
    #[sea_orm(string_value = "PARENT")]
    Parent,
    #[sea_orm(string_value = "GUARDIAN")]
    Guardian,
    #[sea_orm(string_value = "CAREGIVER")]
    Caregiver,
    #[sea_orm(string_value = "OTHER")]
    Other,
}

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "proxy_assignments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub patient_id: Uuid,
    /// NULL while the grant is a pending invitation.
    pub proxy_user_id: Option<Uuid>,
    pub relationship: ProxyRelationship,
    pub can_view_profile: bool,
    pub can_view_appointments: bool,
    pub can_schedule_appointments: bool,
    pub can_view_clinical_notes: bool,
    pub can_view_billing: bool,
    pub can_message_providers: bool,
    pub granted_at: DateTimeWithTimeZone,
    pub granted_by: Option<Uuid>,
    pub expires_at: Option<DateTimeWithTimeZone>,
    pub revoked_at: Option<DateTimeWithTimeZone>,
    pub revoked_by: Option<Uuid>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    /// The email the clinic typed when granting (lower-case).
    pub invited_email: Option<String>,
    /// When the invited person accepted a pending grant.
    pub accepted_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
