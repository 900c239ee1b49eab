//! Versioned legal documents (global, not per tenant); one active version per kind.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Which legal document a row is a version of (`consent_documents.kind`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsentKind {
    #[sea_orm(string_value = "TOS")]
    Tos,
    #[sea_orm(string_value = "HIPAA_NOTICE")]
    HipaaNotice,
    #[sea_orm(string_value = "PRIVACY_POLICY")]
    PrivacyPolicy,
}

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "consent_documents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: ConsentKind,
    /// Unique per kind.
    pub version: i32,
    pub title: String,
    pub body: String,
    pub is_active: bool,
    pub published_at: DateTimeWithTimeZone,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
