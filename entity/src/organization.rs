//! Tenants: one row per clinic, with its settings and the trigger-kept counters.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Billing state of a clinic (`organizations.subscription_status`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubscriptionStatus {
    #[sea_orm(string_value = "TRIAL")]
    Trial,
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    #[sea_orm(string_value = "PAST_DUE")]
    PastDue,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    #[sea_orm(unique)]
    pub slug: String,
    pub timezone: String,
    pub settings: Json,
    pub subscription_status: SubscriptionStatus,
    /// Kept by a trigger; the runtime role cannot write it.
    pub member_count: i32,
    /// Kept by a trigger; the runtime role cannot write it.
    pub patient_count: i32,
    /// The clinic's billing identity on its claims (all optional until it
    /// bills); `billing_state` is the clinic's state for licences.
    pub group_npi: Option<String>,
    /// Plaintext only from before encryption (`caregate keys reencrypt`
    /// seals it); never written now.
    pub tax_id: Option<String>,
    /// The tax id (EIN), sealed by the application (`service::phi`).
    pub tax_id_enc: Option<Vec<u8>>,
    pub billing_phone: Option<String>,
    pub billing_address_line1: Option<String>,
    pub billing_address_line2: Option<String>,
    pub billing_city: Option<String>,
    pub billing_state: Option<String>,
    pub billing_postal_code: Option<String>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    pub deleted_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
