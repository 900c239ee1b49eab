//! caregate: a GraphQL gateway for multi-tenant clinical data.
//!
//! The request path: `handler` (HTTP) -> `guard` (token, transaction and
//! row-level security context) -> `graphql` (schema, resolvers, loaders)
//! -> the `service` crate. Around it: `server` (routes and state), `cli`,
//! `config`, `db`, `tokens`, `metrics`, `live` (subscriptions over
//! WebSocket), `cluster` (the private PostgreSQL used when no database
//! is configured) and `verify` (`caregate verify-isolation`, which probes
//! a running deployment's isolation from outside).

// The merged `Mutation` root nests one future per merged part; its
// layout goes deeper than the default limit of 128.
#![recursion_limit = "256"]

pub mod budgets;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod db;
pub mod error;
pub mod graphiql;
pub mod graphql;
pub mod guard;
pub mod handler;
pub mod health;
pub mod live;
pub mod metrics;
pub mod replica;
pub mod server;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tokens;
pub mod verify;
pub mod wire;
