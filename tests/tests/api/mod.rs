//! The running server, over HTTP.

mod appointments;
mod audit;
mod auth;
mod billing;
mod care_team;
mod claims;
mod clients;
mod consent;
mod cross_tenant;
mod dataloader;
mod durability;
mod errors;
mod gateway;
mod hostile;
mod http;
mod lifecycle;
mod limits;
mod pool;
mod proxies;
mod relay;
mod schema;
mod security;
mod therapy;
mod therapy_isolation;
mod therapy_portal;
