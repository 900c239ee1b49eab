//! caregate: a GraphQL gateway for multi-tenant clinical data.
//!
//! The server (`server`), the command line (`cli`), configuration
//! (`config`), the database connections (`db`) and the private PostgreSQL
//! used when no database is configured (`cluster`).

pub mod cli;
pub mod cluster;
pub mod config;
pub mod db;
pub mod health;
pub mod server;
pub mod startup;
pub mod telemetry;
