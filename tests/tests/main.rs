//! caregate's black-box tests: one binary, so linking happens once.
//!
//! Every test gets its own database cloned from a migrated, seeded template,
//! and talks to it through the runtime role (NOSUPERUSER NOBYPASSRLS) or
//! through the running server — never as a superuser, which would bypass
//! row-level security and prove nothing about isolation.

mod database;
mod support;
