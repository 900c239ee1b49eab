//! Claims: signed sessions billed to a coverage's payer.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Where a claim stands (`claims.status`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClaimStatus {
    #[sea_orm(string_value = "DRAFT")]
    Draft,
    #[sea_orm(string_value = "SUBMITTED")]
    Submitted,
    #[sea_orm(string_value = "ACCEPTED")]
    Accepted,
    #[sea_orm(string_value = "REJECTED")]
    Rejected,
    #[sea_orm(string_value = "PAID")]
    Paid,
    #[sea_orm(string_value = "DENIED")]
    Denied,
}

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "claims")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub patient_id: Uuid,
    pub insurance_id: Uuid,
    pub provider_id: Uuid,
    pub control_number: i32,
    pub status: ClaimStatus,
    /// ICD-10-CM codes, principal first.
    pub diagnosis_codes: Vec<String>,
    pub total_charge_cents: i64,
    /// Set exactly when paid.
    pub paid_cents: Option<i64>,
    pub payer_claim_number: Option<String>,
    pub response_note: Option<String>,
    pub submitted_at: Option<DateTimeWithTimeZone>,
    /// The 837P as submitted; set exactly when not a draft, never changed.
    /// Plaintext only for claims submitted before encryption (`caregate
    /// keys reencrypt` seals it); never written now.
    pub submitted_x12: Option<String>,
    /// The 837P kept at submission, sealed by the application.
    pub submitted_x12_enc: Option<Vec<u8>>,
    pub responded_at: Option<DateTimeWithTimeZone>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
