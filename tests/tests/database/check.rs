//! `caregate check` finds rows that break the schema's rules (when a
//! constraint is absent, e.g. before the migration that adds it) and exits 1.

use clap::Parser;
use sea_orm::sqlx;

use super::fixtures::{clinics, patient, provider};
use crate::support::db::TestDb;

async fn run_check(db: &TestDb) -> i32 {
    let cli = caregate::cli::Cli::parse_from([
        "caregate",
        "--database-url",
        db.owner_url.as_str(),
        "check",
    ]);
    caregate::cli::run(cli).await.expect("check runs")
}

#[tokio::test]
async fn check_passes_on_clean_data() {
    let db = TestDb::seeded().await;
    assert_eq!(run_check(&db).await, 0);
}

#[tokio::test]
async fn check_reports_two_primaries_and_duplicate_npis_and_exits_1() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    let c = clinics(&owner).await;
    let jonathan = patient(&owner, "NS-0001").await;
    let chloe = provider(&owner, c.a, "1456789019").await;
    sqlx::query("DROP INDEX care_team_one_primary_key")
        .execute(&owner)
        .await
        .unwrap();
    sqlx::query("DROP INDEX providers_npi_key")
        .execute(&owner)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO care_team_assignments (organization_id, patient_id, provider_id, role) \
         VALUES ($1, $2, $3, 'PRIMARY')",
    )
    .bind(c.a)
    .bind(jonathan)
    .bind(chloe)
    .execute(&owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO providers (organization_id, name, npi) VALUES ($1, 'Dr. Twin', '1234567893')",
    )
    .bind(c.a)
    .execute(&owner)
    .await
    .unwrap();

    let violations =
        service::integrity::check(&caregate::db::connect_owner(&db.owner_url).await.unwrap())
            .await
            .unwrap();
    let rules: Vec<&str> = violations.iter().map(|v| v.rule).collect();
    assert_eq!(
        rules,
        vec![
            "one active PRIMARY provider per patient per clinic",
            "NPI unique per clinic among active providers"
        ]
    );
    assert!(violations[0].detail.contains(&jonathan.to_string()));
    assert_eq!(run_check(&db).await, 1);
}
