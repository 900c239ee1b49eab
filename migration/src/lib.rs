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

macro_rules! sql_migrations {
    ($($name:literal),* $(,)?) => {
        &[$(SqlMigration {
            name: $name,
            up: include_str!(concat!("../sql/", $name, ".up.sql")),
            down: include_str!(concat!("../sql/", $name, ".down.sql")),
        }),*]
    };
}

/// Every migration, oldest first.
const MIGRATIONS: &[SqlMigration] = sql_migrations![
    "0001_app_context",
    "0002_identity",
    "0003_clinical",
    "0004_scheduling_billing",
    "0005_consent",
    "0006_audit",
    "0007_counters",
    "0008_isolation",
    "0009_request_context",
    "0010_idempotency",
    "0011_hardening",
    "0012_proxy_invitations",
    "0013_user_clinics",
    "0014_drop_unused_functions",
    "0015_therapy",
    "0016_facilities",
    "0017_clinic_billing",
    "0018_phi_encryption",
    "0019_messaging",
    "0021_mfa",
    "0022_audit_partitions",
    "0023_tenant_primary_keys",
    "0024_read_events",
    "0025_break_glass",
    "0026_clinic_budgets",
];

/// The name of the role the server runs as (created by the first migration).
pub const RUNTIME_ROLE: &str = "caregate_app";

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        MIGRATIONS
            .iter()
            .map(|m| {
                Box::new(SqlMigration {
                    name: m.name,
                    up: m.up,
                    down: m.down,
                }) as Box<dyn MigrationTrait>
            })
            .collect()
    }
}

/// Names of every migration, oldest first: what "at head" means.
pub fn migration_names() -> Vec<String> {
    Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

/// Every migration's name and SQL, concatenated: changes whenever the schema
/// does (test templates are keyed by it).
pub fn migration_fingerprint() -> String {
    MIGRATIONS
        .iter()
        .map(|m| format!("{}\n{}\n{}\n", m.name, m.up, m.down))
        .collect()
}
