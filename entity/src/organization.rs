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
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
    pub deleted_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::organization_membership::Entity")]
    OrganizationMembership,
    #[sea_orm(has_many = "super::user_session::Entity")]
    UserSession,
    #[sea_orm(has_many = "super::provider::Entity")]
    Provider,
    #[sea_orm(has_many = "super::patient::Entity")]
    Patient,
    #[sea_orm(has_many = "super::contact_method::Entity")]
    ContactMethod,
    #[sea_orm(has_many = "super::care_team_assignment::Entity")]
    CareTeamAssignment,
    #[sea_orm(has_many = "super::proxy_assignment::Entity")]
    ProxyAssignment,
    #[sea_orm(has_many = "super::appointment::Entity")]
    Appointment,
    #[sea_orm(has_many = "super::payer_authorization::Entity")]
    PayerAuthorization,
}

impl Related<super::organization_membership::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::OrganizationMembership.def()
    }
}

impl Related<super::user_session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UserSession.def()
    }
}

impl Related<super::provider::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Provider.def()
    }
}

impl Related<super::patient::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Patient.def()
    }
}

impl Related<super::contact_method::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ContactMethod.def()
    }
}

impl Related<super::care_team_assignment::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CareTeamAssignment.def()
    }
}

impl Related<super::proxy_assignment::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ProxyAssignment.def()
    }
}

impl Related<super::appointment::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Appointment.def()
    }
}

impl Related<super::payer_authorization::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::PayerAuthorization.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
