//! Patient charts: one clinic's own record of one person.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Sex as recorded for legal and billing purposes (`patients.legal_sex`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LegalSex {
    #[sea_orm(string_value = "FEMALE")]
    Female,
    #[sea_orm(string_value = "MALE")]
    Male,
    #[sea_orm(string_value = "OTHER")]
    Other,
    #[sea_orm(string_value = "UNKNOWN")]
    Unknown,
}

/// Whether a chart is open (`patients.status`); `Discharged` exactly when
/// `discharged_at` is set.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PatientStatus {
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    #[sea_orm(string_value = "DISCHARGED")]
    Discharged,
}

/// The generated column `search_name` is deliberately absent: the database
/// computes it, and it must never be written.
#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "patients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    /// The portal user who holds this chart, if any.
    pub user_id: Option<Uuid>,
    pub medical_record_number: String,
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: Date,
    pub legal_sex: LegalSex,
    pub status: PatientStatus,
    pub enrolled_at: DateTimeWithTimeZone,
    pub discharged_at: Option<DateTimeWithTimeZone>,
    /// Postal address: all of line 1, city, state and postal code, or none
    /// (`patients_address_complete`).
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    /// The SSN, sealed by the application (`service::phi`); never plaintext.
    pub ssn_enc: Option<Vec<u8>>,
    /// HMAC blind index of the SSN, for exact lookups.
    pub ssn_index: Option<Vec<u8>>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    pub deleted_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
