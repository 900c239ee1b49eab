//! Licences and certifications of providers.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// What a credential is (`staff_credentials.kind`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CredentialKind {
    #[sea_orm(string_value = "LICENSE")]
    License,
    #[sea_orm(string_value = "CERTIFICATION")]
    Certification,
}

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "staff_credentials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub provider_id: Uuid,
    pub kind: CredentialKind,
    pub name: String,
    pub number: String,
    /// Required for a licence.
    pub issuing_state: Option<String>,
    pub valid_from: Date,
    pub valid_to: Option<Date>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    pub deleted_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
