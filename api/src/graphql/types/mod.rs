//! GraphQL output and input types. They wrap the service's rows rather than
//! expose them, so the table shape never becomes the contract.

pub mod care_team;
pub mod connection;
pub mod enums;
pub mod organization;
pub mod patient;
pub mod provider;
