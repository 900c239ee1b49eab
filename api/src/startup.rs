//! Where the database comes from, and what happens before serving.

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::DatabaseConnection;

use crate::cluster;
use crate::config::Config;

/// The owner's database URL, and whether it is the private cluster (which is
/// migrated and seeded automatically).
pub async fn owner_url(config: &Config) -> anyhow::Result<(String, bool)> {
    if let Some(url) = &config.database_url {
        return Ok((url.clone(), false));
    }
    let data_dir = config.data_dir.clone();
    let cluster = tokio::task::spawn_blocking(move || cluster::ensure(&data_dir))
        .await
        .context("starting the private PostgreSQL")??;
    crate::db::create_database_if_missing(&cluster.url("postgres"), "caregate").await?;
    tracing::info!(port = cluster.port, data_dir = %cluster.data_dir.display(), "private PostgreSQL running");
    Ok((cluster.url("caregate"), true))
}

/// Applies pending migrations as the owner.
pub async fn migrate(owner: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(owner, None)
        .await
        .context("applying migrations")
}
