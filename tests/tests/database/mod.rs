//! The database's own guarantees, tested as the runtime role.

mod audit;
mod audit_partitions;
mod catalog;
mod check;
mod distribution;
pub mod fixtures;
mod isolation;
mod migrations;
mod rules;
mod therapy;
