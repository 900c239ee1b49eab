//! People who can log in: clinic staff, patients, proxies and super admins.

use sea_orm::entity::prelude::*;

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Unique case-insensitively (`lower(email)`).
    pub email: String,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub display_name: String,
    pub timezone: Option<String>,
    pub is_super_admin: bool,
    pub mfa_enabled: bool,
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
    /// The assignments in which this user is the proxy.
    #[sea_orm(
        has_many = "super::proxy_assignment::Entity",
        via_rel = "Relation::ProxyUser"
    )]
    ProxyAssignment,
    #[sea_orm(has_many = "super::user_consent::Entity")]
    UserConsent,
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

impl Related<super::user_consent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UserConsent.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
