//! caregate's schema as reversible migrations.
//!
//! Each migration is one idea written in plain SQL (`sql/NNNN_name.up.sql`
//! and its `.down.sql`): tables, constraints, row-level security and
//! triggers read best in the language the database speaks, and the files are
//! what a reviewer or a DBA reads. The crate depends on nothing of the
//! application.

use sea_orm_migration::prelude::*;
pub use sea_orm_migration::{MigrationName, MigratorTrait};

/// A migration given as an `up` and a `down` SQL script.
struct SqlMigration {
    name: &'static str,
    up: &'static str,
    down: &'static str,
}

impl MigrationName for SqlMigration {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for SqlMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(self.up).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(self.down)
            .await?;
        Ok(())
    }

    /// Every migration runs in its own transaction: it applies whole or not
    /// at all.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

macro_rules! sql_migration {
    ($name:literal) => {
        Box::new(SqlMigration {
            name: $name,
            up: include_str!(concat!("../sql/", $name, ".up.sql")),
            down: include_str!(concat!("../sql/", $name, ".down.sql")),
        }) as Box<dyn MigrationTrait>
    };
}

/// The name of the role the server runs as (created by the first migration).
pub const RUNTIME_ROLE: &str = "caregate_app";

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            sql_migration!("0001_app_context"),
            sql_migration!("0002_identity"),
            sql_migration!("0003_clinical"),
            sql_migration!("0004_scheduling_billing"),
            sql_migration!("0005_consent"),
            sql_migration!("0006_audit"),
            sql_migration!("0007_counters"),
            sql_migration!("0008_isolation"),
            sql_migration!("0009_request_context"),
        ]
    }
}

/// Names of every migration, oldest first: what "at head" means.
pub fn migration_names() -> Vec<String> {
    Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}
