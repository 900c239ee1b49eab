//! Service lines of claims: one billed session each.

use sea_orm::entity::prelude::*;

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "claim_lines")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub claim_id: Uuid,
    pub patient_id: Uuid,
    pub session_id: Uuid,
    pub line_number: i32,
    pub service_code: String,
    pub modifiers: Vec<String>,
    pub place_of_service: String,
    pub service_date: Date,
    pub units: i32,
    pub charge_cents: i64,
    /// 1-based positions in the claim's `diagnosis_codes`.
    pub diagnosis_pointers: Vec<i16>,
    /// Set when the claim was rejected: the session may be billed again.
    pub released_at: Option<DateTimeWithTimeZone>,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
