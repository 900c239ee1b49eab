//! caregate's business rules.
//!
//! Every function that serves a request takes the request's transaction —
//! the one the API's guard opened with `context::open`, which is the one
//! function that opens it — states its rule in its doc comment, and leans
//! on a database constraint for the part that must hold under concurrency.
//! The other exceptions: `auth::login` also counts each attempt against the
//! login limits on a separate connection (`LoginSettings::counters`),
//! outside the request's transaction; and `demo` and `integrity` serve no
//! request (seeding and development sessions, the integrity and catalog
//! checks of the CLI and of server start): they run on whatever connection
//! they are given, with no request context. Nothing here knows GraphQL or
//! HTTP.

pub mod actor;
pub mod appointments;
pub mod audit;
pub mod audit_partitions;
pub mod auth;
pub mod authorizations;
pub mod break_glass;
pub mod budgets;
pub mod care_team;
pub mod claims;
pub mod clinic;
pub mod codes;
pub mod consent;
pub mod context;
pub mod credentials;
pub mod demo;
pub mod diagnoses;
pub mod domain;
pub mod error;
pub mod facilities;
pub mod idempotency;
pub mod insurance;
pub mod integrity;
pub mod messaging;
pub mod mfa;
pub mod nodes;
pub mod notifications;
pub mod pagination;
pub mod password;
pub mod patients;
pub mod payments;
pub mod phi;
pub mod providers;
pub mod proxies;
pub mod sessions;
mod sql;
pub mod ssn;
pub mod subscription;
pub mod tx;
pub mod x12;

pub use actor::{Actor, PortalScope, Purpose, Role};
pub use error::{
    ConflictReason, DbResultExt, ForbiddenReason, ServiceError, ServiceResult,
    UnauthenticatedReason,
};

/// The transaction every service function runs in.
pub type Tx = tx::RequestTx;
