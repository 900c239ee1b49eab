//! Insurer prior authorizations: units granted for a service, used, and valid dates.

use sea_orm::entity::prelude::*;

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payer_authorizations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub patient_id: Uuid,
    pub payer_name: String,
    pub authorization_number: String,
    pub service_code: String,
    pub total_units: i32,
    /// Between 0 and `total_units` (constraint `payer_authorizations_units_check`).
    pub used_units: i32,
    pub valid_from: Date,
    pub valid_to: Date,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    pub deleted_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
