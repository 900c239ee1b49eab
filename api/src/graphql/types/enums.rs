//! GraphQL enums, each mirroring a database check constraint.

use async_graphql::Enum;

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::patient::LegalSex")]
pub enum LegalSex {
    Female,
    Male,
    Other,
    Unknown,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::patient::PatientStatus")]
pub enum PatientStatus {
    Active,
    Discharged,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::care_team_assignment::CareTeamRole")]
pub enum CareTeamRole {
    Primary,
    Specialist,
    Consultant,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::contact_method::ContactMethodType")]
pub enum ContactMethodType {
    Mobile,
    Home,
    Work,
    Email,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::organization::SubscriptionStatus")]
pub enum SubscriptionStatus {
    Trial,
    Active,
    PastDue,
    Cancelled,
}

/// A caller's role in the active clinic. PORTAL is a patient or a proxy
/// (parent, guardian) acting for patients they were granted.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "service::Role")]
pub enum Role {
    Admin,
    Provider,
    Staff,
    Portal,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::appointment::AppointmentStatus")]
pub enum AppointmentStatus {
    Scheduled,
    Confirmed,
    CheckedIn,
    Completed,
    Cancelled,
    NoShow,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::appointment::AppointmentType")]
pub enum AppointmentType {
    InPerson,
    Telehealth,
    Phone,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::proxy_assignment::ProxyRelationship")]
pub enum ProxyRelationship {
    Parent,
    Guardian,
    Caregiver,
    Other,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::consent_document::ConsentKind")]
pub enum ConsentKind {
    Tos,
    HipaaNotice,
    PrivacyPolicy,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::audit_event::AuditAction")]
pub enum AuditAction {
    Create,
    Read,
    Update,
    Delete,
    Login,
    Logout,
    AccessDenied,
}
