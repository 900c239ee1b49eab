//! Patients' insurance coverages, with their subscriber.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Which payer is billed first (`patient_insurances.priority`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CoveragePriority {
    #[sea_orm(string_value = "PRIMARY")]
    Primary,
    #[sea_orm(string_value = "SECONDARY")]
    Secondary,
    #[sea_orm(string_value = "TERTIARY")]
    Tertiary,
}

/// The patient's relationship to the subscriber (`patient_insurances.relationship`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubscriberRelationship {
    /// The patient is the subscriber.
    #[sea_orm(string_value = "SELF_INSURED")]
    SelfInsured,
    #[sea_orm(string_value = "SPOUSE")]
    Spouse,
    #[sea_orm(string_value = "CHILD")]
    Child,
    #[sea_orm(string_value = "OTHER")]
    Other,
}

/// The subscriber's sex as the payer records it (`patient_insurances.subscriber_sex`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubscriberSex {
    #[sea_orm(string_value = "FEMALE")]
    Female,
    #[sea_orm(string_value = "MALE")]
    Male,
    #[sea_orm(string_value = "UNKNOWN")]
    Unknown,
}

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "patient_insurances")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub patient_id: Uuid,
    pub payer_name: String,
    pub payer_id: String,
    /// Unknown while the coverage is being verified; required to bill.
    /// Plaintext only from before encryption (`caregate keys reencrypt`
    /// seals it); never written now.
    pub member_id: Option<String>,
    /// The member id, sealed by the application (`service::phi`).
    pub member_id_enc: Option<Vec<u8>>,
    pub group_number: Option<String>,
    pub priority: CoveragePriority,
    /// The 837P claim filing indicator (SBR09), e.g. `CI`, `MB`, `MC`.
    pub claim_filing_code: String,
    pub relationship: SubscriberRelationship,
    /// The subscriber's name, birth date and sex: set unless `relationship` is `SelfInsured`.
    pub subscriber_first_name: Option<String>,
    pub subscriber_last_name: Option<String>,
    pub subscriber_date_of_birth: Option<Date>,
    pub subscriber_sex: Option<SubscriberSex>,
    pub subscriber_address_line1: Option<String>,
    pub subscriber_address_line2: Option<String>,
    pub subscriber_city: Option<String>,
    pub subscriber_state: Option<String>,
    pub subscriber_postal_code: Option<String>,
    pub effective_from: Date,
    pub effective_to: Option<Date>,
    /// At most one active coverage per priority (`patient_insurances_priority_key`).
    pub is_active: bool,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    pub deleted_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
