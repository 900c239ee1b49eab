//! A patient's phone numbers and email addresses, with voicemail consent.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// What kind of contact a row holds (`contact_methods.type`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContactMethodType {
    #[sea_orm(string_value = "MOBILE")]
    Mobile,
    #[sea_orm(string_value = "HOME")]
    Home,
    #[sea_orm(string_value = "WORK")]
    Work,
    #[sea_orm(string_value = "EMAIL")]
    Email,
}

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "contact_methods")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub patient_id: Uuid,
    pub r#type: ContactMethodType,
    pub value: String,
    /// At most one live primary per patient.
    pub is_primary: bool,
    /// PHI may be left on a voicemail only where this is true.
    pub is_safe_for_voicemail: bool,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    pub deleted_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
