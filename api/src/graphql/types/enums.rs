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
