//! SQL statements per request grow with nesting depth, never with the
//! length of a list.

use sea_orm::sqlx;
use serde_json::json;
use uuid::Uuid;

use crate::database::fixtures::org;
use crate::support::app::{TestApp, spawn_app};

const NESTED: &str = "query($n: Int!) { patients(first: $n) { totalCount edges { node {
    firstName contactMethods { value } primaryProvider { name }
    careTeam { role provider { name patients(first: 5) { totalCount edges { node { lastName } } } } } } } } }";

/// Adds `n` patients to a clinic, each with a contact method and two
/// providers on the care team.
async fn enroll_many(app: &TestApp, n: usize) {
    let owner = app.db.owner().await;
    let a: Uuid = org(&owner, "northside").await;
    sqlx::query(
        "WITH new AS (
           INSERT INTO patients (organization_id, medical_record_number, first_name, last_name, date_of_birth, legal_sex)
           SELECT $1, 'BULK-' || g, 'Bulk', 'Patient ' || lpad(g::text, 3, '0'), DATE '1980-01-01' + g, 'OTHER'
           FROM generate_series(1, $2) g RETURNING id, organization_id),
         cm AS (INSERT INTO contact_methods (organization_id, patient_id, type, value)
           SELECT organization_id, id, 'MOBILE', '+1 212 555 0199' FROM new)
         INSERT INTO care_team_assignments (organization_id, patient_id, provider_id, role)
         SELECT new.organization_id, new.id, p.id,
                CASE WHEN p.npi = '1234567893' THEN 'PRIMARY' ELSE 'SPECIALIST' END
         FROM new JOIN providers p ON p.organization_id = new.organization_id
          AND p.npi IN ('1234567893', '1987654328')",
    )
    .bind(a)
    .bind(n as i32)
    .execute(&owner)
    .await
    .unwrap();
}

/// Statements one request runs (the fewest of three runs, so that a
/// session's first activity stamp does not count). A DataLoader batch
/// starts only when the request's execution waits on it, so a level of the
/// response is one statement per relation however long its lists.
async fn statements_for(app: &TestApp, token: &str, n: i64) -> u64 {
    let mut fewest = u64::MAX;
    for _ in 0..3 {
        let before = app.statements();
        let res = app.graphql(Some(token), NESTED, json!({ "n": n })).await;
        let after = app.statements();
        assert!(res.get("errors").is_none(), "{res}");
        assert_eq!(
            res["data"]["patients"]["edges"].as_array().unwrap().len() as i64,
            n
        );
        fewest = fewest.min(after - before);
    }
    fewest
}

#[tokio::test]
async fn statements_per_request_do_not_grow_with_list_length() {
    let app = spawn_app().await;
    enroll_many(&app, 60).await;
    let token = app.login_as("admin@northside.example").await;
    // Warm up (the session's activity stamp may be written on the first request).
    statements_for(&app, &token, 1).await;
    let five = statements_for(&app, &token, 5).await;
    let fifty = statements_for(&app, &token, 50).await;
    println!("SQL statements per request: 5 patients -> {five}, 50 patients -> {fifty}");
    assert_eq!(five, fifty);
    // BEGIN with the context + page + count + contact methods + care teams
    // + providers + their patients + their counts + READ audit events + COMMIT
    assert!(five <= 10, "{five} statements");
}
