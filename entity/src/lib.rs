//! SeaORM entities for caregate, one module per table. They mirror the SQL
//! migrations in `migration/sql` column for column (constrained text columns
//! become active enums, the generated `patients.search_name` is left out), and
//! they describe storage only: the table shape is never the API type.

pub mod appointment;
pub mod audit_event;
pub mod care_team_assignment;
pub mod consent_document;
pub mod contact_method;
pub mod organization;
pub mod organization_membership;
pub mod patient;
pub mod payer_authorization;
pub mod provider;
pub mod proxy_assignment;
pub mod user;
pub mod user_consent;
pub mod user_session;

/// Every entity, named after its table in the singular.
pub mod prelude {
    pub use super::appointment::Entity as Appointment;
    pub use super::audit_event::Entity as AuditEvent;
    pub use super::care_team_assignment::Entity as CareTeamAssignment;
    pub use super::consent_document::Entity as ConsentDocument;
    pub use super::contact_method::Entity as ContactMethod;
    pub use super::organization::Entity as Organization;
    pub use super::organization_membership::Entity as OrganizationMembership;
    pub use super::patient::Entity as Patient;
    pub use super::payer_authorization::Entity as PayerAuthorization;
    pub use super::provider::Entity as Provider;
    pub use super::proxy_assignment::Entity as ProxyAssignment;
    pub use super::user::Entity as User;
    pub use super::user_consent::Entity as UserConsent;
    pub use super::user_session::Entity as UserSession;
}
