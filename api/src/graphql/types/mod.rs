//! GraphQL output and input types. They wrap the service's rows rather than
//! expose them, so the table shape never becomes the contract.

pub mod address;
pub mod appointment;
pub mod audit;
pub mod billing;
pub mod break_glass;
pub mod budget;
pub mod care_team;
pub mod claim;
pub mod clinic;
pub mod connection;
pub mod consent;
pub mod coverage;
pub mod enums;
pub mod facility;
pub mod messaging;
pub mod node;
pub mod organization;
pub mod patient;
pub mod payment;
pub mod provider;
pub mod proxy;
pub mod session;

/// A client address as stored (`inet` as text): a single host has no prefix
/// length to show.
pub fn address(ip: Option<&str>) -> Option<&str> {
    ip.map(|ip| ip.trim_end_matches("/32").trim_end_matches("/128"))
}
