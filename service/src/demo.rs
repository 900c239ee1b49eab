//! The demo data set `caregate seed-demo` loads (and a zero-setup run loads
//! on first start): see `demo.sql`.

use anyhow::Context;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};

use crate::password;

/// The password of every demo login.
pub const DEMO_PASSWORD: &str = "caregate-demo";

/// Demo logins and what each shows.
pub const DEMO_LOGINS: &[(&str, &str, &str)] = &[
    ("admin@northside.example", "northside", "ADMIN at Northside"),
    (
        "frontdesk@northside.example",
        "northside",
        "STAFF at Northside",
    ),
    ("admin@lakeside.example", "lakeside", "ADMIN at Lakeside"),
    (
        "frontdesk@lakeside.example",
        "lakeside",
        "STAFF at Lakeside",
    ),
    (
        "jonathan.smith@example.com",
        "northside",
        "patient with a chart at both clinics",
    ),
    (
        "maria.garcia@example.com",
        "northside",
        "parent (proxy) of Sofia Garcia: profile and appointments only",
    ),
    (
        "ingrid.andersson@example.com",
        "lakeside",
        "parent (proxy) of Noah Andersson: may also book",
    ),
];

/// Loads the demo data once. Returns `false` when it was already there.
///
/// Runs as the migrating (owner) role: seeding is an operator's act, not a
/// request, so it carries no tenant context.
pub async fn seed(db: &DatabaseConnection) -> anyhow::Result<bool> {
    let present = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT 1 FROM organizations WHERE slug = 'northside'",
        ))
        .await
        .context("looking for the demo clinics")?;
    if present.is_some() {
        return Ok(false);
    }
    let hash = password::hash(DEMO_PASSWORD).map_err(|e| anyhow::anyhow!("{e}"))?;
    // A PHC string holds only [A-Za-z0-9$=,+/.-], so it is safe inside a literal.
    anyhow::ensure!(
        hash.chars()
            .all(|c| c.is_ascii_alphanumeric() || "$=,+/.-".contains(c)),
        "unexpected character in a password hash"
    );
    let sql = include_str!("demo.sql").replace(":password_hash", &hash);
    let tx = db.begin().await.context("opening the seed transaction")?;
    tx.execute_unprepared(&sql)
        .await
        .context("loading the demo data")?;
    tx.commit().await.context("committing the demo data")?;
    Ok(true)
}
