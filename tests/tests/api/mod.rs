//! The running server, over HTTP.

mod auth;
mod care_team;
mod cross_tenant;
mod dataloader;
mod errors;
mod gateway;
mod limits;
mod schema;
