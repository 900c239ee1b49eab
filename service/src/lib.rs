//! caregate's business rules.
//!
//! Every function here takes the request's transaction — the one the API's
//! guard opened and put the row-level security context on — states its rule
//! in its doc comment, and leans on a database constraint for the part that
//! must hold under concurrency. Nothing here knows GraphQL or HTTP.

pub mod demo;
pub mod domain;
pub mod error;
pub mod integrity;
pub mod password;

pub use error::{ConflictReason, ForbiddenReason, ServiceError, ServiceResult};
