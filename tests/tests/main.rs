//! caregate's black-box tests: one binary, so linking happens once.
//!
//! Every test gets its own database cloned from a migrated, seeded template,
//! and talks to it through the running server or as the runtime role
//! (NOSUPERUSER NOBYPASSRLS) — never as a superuser, which would bypass
//! row-level security and prove nothing about isolation.

mod api;
mod database;
mod support;
