//! Payments, refunds and adjustments of a patient's or the clinic's account.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Whose account a transaction is on (`billing_transactions.owner_kind`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccountOwner {
    #[sea_orm(string_value = "PATIENT")]
    Patient,
    #[sea_orm(string_value = "CLINIC")]
    Clinic,
}

/// What a transaction is (`billing_transactions.kind`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionKind {
    #[sea_orm(string_value = "PAYMENT")]
    Payment,
    #[sea_orm(string_value = "REFUND")]
    Refund,
    #[sea_orm(string_value = "ADJUSTMENT")]
    Adjustment,
}

/// Where a transaction stands (`billing_transactions.status`); only
/// succeeded ones count towards a balance.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "SUCCEEDED")]
    Succeeded,
    #[sea_orm(string_value = "FAILED")]
    Failed,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "billing_transactions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub owner_kind: AccountOwner,
    /// Set exactly when `owner_kind` is `Patient`.
    pub patient_id: Option<Uuid>,
    pub kind: TransactionKind,
    /// Minor units; positive but for a signed adjustment.
    pub amount_minor: i64,
    pub currency: String,
    pub status: TransactionStatus,
    pub refund_of: Option<Uuid>,
    pub refunded_minor: i64,
    pub processor: Option<String>,
    pub processor_ref: Option<String>,
    pub managed_by_proxy_id: Option<Uuid>,
    pub description: Option<String>,
    pub recorded_by: Option<Uuid>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
