//! The benchmark's database: created fresh, dropped at the end.

use std::str::FromStr;

use anyhow::{Context, Result};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sea_orm::sqlx::{self, Executor};
use uuid::Uuid;

/// The database the benchmark creates (dropped first when present).
pub const DB_NAME: &str = "caregate_live";

/// `url` pointing at database `db`.
fn url_of(url: &str, db: &str) -> Result<String> {
    let mut u = url::Url::parse(url)
        .with_context(|| format!("parsing the database URL {}", redacted(url)))?;
    u.set_path(&format!("/{db}"));
    Ok(u.to_string())
}

/// `url` without its password, for messages.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

async fn pool(url: &str) -> Result<PgPool> {
    let opts = PgConnectOptions::from_str(url).context("parsing the database URL")?;
    PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts.application_name("caregate-live-bench"))
        .await
        .with_context(|| format!("connecting to {}", redacted(url)))
}

async fn drop_on(admin: &PgPool) -> Result<()> {
    admin
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"
        ))))
        .await
        .context("dropping the live benchmark's database")?;
    Ok(())
}

/// Drops and recreates the database; returns its URL.
pub async fn recreate(admin_url: &str) -> Result<String> {
    let admin = pool(admin_url).await?;
    drop_on(&admin).await?;
    admin
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {DB_NAME}"
        ))))
        .await
        .context("creating the database (does the DATABASE_URL role have CREATEDB?)")?;
    admin.close().await;
    url_of(admin_url, DB_NAME)
}

/// Drops the database.
pub async fn drop(admin_url: &str) -> Result<()> {
    let admin = pool(admin_url).await?;
    let r = drop_on(&admin).await;
    admin.close().await;
    r
}

/// A demo patient's id, by medical record number.
pub async fn patient(url: &str, mrn: &str) -> Result<Uuid> {
    let db = pool(url).await?;
    let id = sqlx::query_scalar("SELECT id FROM patients WHERE medical_record_number = $1")
        .bind(mrn)
        .fetch_one(&db)
        .await
        .with_context(|| format!("finding the demo patient {mrn}"))?;
    db.close().await;
    Ok(id)
}

/// PostgreSQL's version.
pub async fn version(url: &str) -> Result<String> {
    let db = pool(url).await?;
    let v = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&db)
        .await
        .context("reading the PostgreSQL version")?;
    db.close().await;
    Ok(v)
}
