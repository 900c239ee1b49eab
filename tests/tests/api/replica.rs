//! A read replica (`READ_DATABASE_URL`): queries run on the standby under
//! the caller's own context, while the session check and the audit trail
//! stay on the primary, before anything is sent. The cross-tenant and
//! pool-hygiene suites also run this way (`with_replica::*`).

use sea_orm::sqlx;
use serde_json::{Value, json};

use crate::database::fixtures::user;
use crate::support::app::{
    TestApp, error_codes, spawn_app_with, spawn_app_with_lagging_replica, spawn_app_with_replica,
};
use crate::support::replica::{Paused, pair};

const PATIENTS: &str = "{ patients(first: 3) { edges { node { id mrn firstName } } } }";

fn reads_on_replica(app: &TestApp) -> u64 {
    app.state.metrics.replica_reads.get()
}

fn first_names(res: &Value) -> Vec<String> {
    res["data"]["patients"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter_map(|e| e["node"]["firstName"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// READ events the primary holds for the user `email` (one per request
/// that returned patients).
async fn reads_audited(app: &TestApp, email: &str) -> i64 {
    let owner = app.db.owner().await;
    let actor = user(&owner, email).await;
    sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'READ' AND actor_user_id = $1",
    )
    .bind(actor)
    .fetch_one(&owner)
    .await
    .unwrap()
}

/// Queries until one is served by the replica (a session just opened may
/// not have reached it yet: those go to the primary).
async fn until_read_on_replica(app: &TestApp, token: &str) {
    for _ in 0..50 {
        let before = reads_on_replica(app);
        let res = app.graphql(Some(token), PATIENTS, json!({})).await;
        assert!(res["errors"].is_null(), "{res}");
        if reads_on_replica(app) > before {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no query was served by the replica");
}

#[tokio::test]
async fn queries_run_on_the_replica_and_their_reads_are_audited_on_the_primary() {
    let app = spawn_app_with_replica(|c| c.read_your_writes_seconds = 0).await;
    let email = "admin@northside.example";
    let token = app.login_as(email).await;
    let audited = reads_audited(&app, email).await;
    let before = reads_on_replica(&app);
    let res = app.graphql(Some(&token), PATIENTS, json!({})).await;
    assert_eq!(first_names(&res).len(), 3, "{res}");
    assert_eq!(reads_on_replica(&app), before + 1, "served by the replica");
    assert_eq!(
        reads_audited(&app, email).await,
        audited + 1,
        "one READ listing the patients returned, written on the primary"
    );
}

#[tokio::test]
async fn a_logout_is_refused_at_once_even_on_a_replica_that_has_not_seen_it() {
    let app = spawn_app_with_lagging_replica(|c| c.read_your_writes_seconds = 0).await;
    let email = "admin@northside.example";
    let token = app.login_as(email).await;
    until_read_on_replica(&app, &token).await;
    let audited = reads_audited(&app, email).await;

    let paused = Paused::start(pair().await).await;
    let out = app
        .graphql(Some(&token), "mutation { logout }", json!({}))
        .await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    // The replica still holds the session as live; the primary does not.
    let res = app.graphql(Some(&token), PATIENTS, json!({})).await;
    assert_eq!(error_codes(&res), ["UNAUTHENTICATED"], "{res}");
    assert!(res["data"].is_null(), "nothing read is sent: {res}");
    assert_eq!(reads_audited(&app, email).await, audited);
    drop(paused);
}

#[tokio::test]
async fn a_session_reads_its_own_writes_from_the_primary_while_the_replica_lags() {
    let app = spawn_app_with_lagging_replica(|c| c.read_your_writes_seconds = 60).await;
    let token = app.login_as("admin@northside.example").await;
    until_read_on_replica(&app, &token).await;
    let listed = app.graphql(Some(&token), PATIENTS, json!({})).await;
    let id = listed["data"]["patients"]["edges"][0]["node"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let paused = Paused::start(pair().await).await;
    let changed = app
        .graphql(
            Some(&token),
            "mutation($id: UUID!) { updatePatient(id: $id, input: { firstName: \"Renamed\" }) { firstName } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        changed["data"]["updatePatient"]["firstName"], "Renamed",
        "{changed}"
    );
    let before = reads_on_replica(&app);
    let res = app.graphql(Some(&token), PATIENTS, json!({})).await;
    assert!(first_names(&res).contains(&"Renamed".to_owned()), "{res}");
    assert_eq!(reads_on_replica(&app), before, "read from the primary");
    drop(paused);
}

#[tokio::test]
async fn an_answer_given_under_access_the_primary_no_longer_grants_is_not_sent() {
    let app = spawn_app_with_lagging_replica(|c| c.read_your_writes_seconds = 60).await;
    let email = "admin@northside.example";
    let token = app.login_as(email).await;
    until_read_on_replica(&app, &token).await;

    let paused = Paused::start(pair().await).await;
    // The clinic makes its admin a provider; the replica has not seen it.
    let owner = app.db.owner().await;
    let admin = user(&owner, email).await;
    sqlx::query("UPDATE organization_memberships SET role = 'PROVIDER' WHERE user_id = $1")
        .bind(admin)
        .execute(&owner)
        .await
        .unwrap();
    let res = app
        .graphql(Some(&token), "{ me { role } }", json!({}))
        .await;
    assert_eq!(error_codes(&res), ["UNAVAILABLE"], "{res}");
    assert!(res["data"].is_null(), "{res}");
    // Retried, it is answered by the primary, as it now stands.
    let again = app
        .graphql(Some(&token), "{ me { role } }", json!({}))
        .await;
    assert_eq!(again["data"]["me"]["role"], "PROVIDER", "{again}");
    drop(paused);
}

#[tokio::test]
async fn a_read_whose_audit_cannot_be_written_on_the_primary_fails_and_shows_nothing() {
    let app = spawn_app_with_replica(|c| c.read_your_writes_seconds = 0).await;
    let token = app.login_as("admin@northside.example").await;
    until_read_on_replica(&app, &token).await;
    let owner = app.db.owner().await;
    sqlx::query(
        "REVOKE EXECUTE ON FUNCTION app.record_event(text, text, uuid[], jsonb) FROM caregate_app",
    )
    .execute(&owner)
    .await
    .unwrap();
    let before = reads_on_replica(&app);
    let res = app.graphql(Some(&token), PATIENTS, json!({})).await;
    assert_eq!(reads_on_replica(&app), before + 1, "{res}");
    assert_eq!(error_codes(&res), ["INTERNAL"], "{res}");
    assert!(first_names(&res).is_empty(), "no unaudited read: {res}");
}

#[tokio::test]
async fn an_unreachable_replica_leaves_the_primary_to_answer() {
    let app = spawn_app_with(|c| {
        c.read_database_url = Some("postgres://caregate_app@127.0.0.1:9/nowhere".to_owned());
    })
    .await;
    let token = app.login_as("admin@northside.example").await;
    for _ in 0..3 {
        let res = app.graphql(Some(&token), PATIENTS, json!({})).await;
        assert_eq!(first_names(&res).len(), 3, "{res}");
    }
    assert_eq!(app.state.metrics.replica_reads.get(), 0);
    // Tried once; then skipped for a while rather than waited for.
    assert_eq!(app.state.metrics.replica_fallbacks.get(), 1);
}

#[tokio::test]
async fn a_batch_with_a_mutation_runs_wholly_on_the_primary_and_commits_it() {
    let app = spawn_app_with_replica(|c| c.read_your_writes_seconds = 0).await;
    let token = app.login_as("admin@northside.example").await;
    until_read_on_replica(&app, &token).await;
    let listed = app.graphql(Some(&token), PATIENTS, json!({})).await;
    let id = listed["data"]["patients"]["edges"][0]["node"]["id"].clone();
    let before = reads_on_replica(&app);
    let (_, res) = app
        .post(
            Some(&token),
            &json!([
                { "query": "mutation($id: UUID!) { updatePatient(id: $id, input: { firstName: \"Batched\" }) { firstName } }",
                  "variables": { "id": id } },
                { "query": "{ patient(id: \"not-a-uuid\") { id } }" },
            ]),
        )
        .await;
    assert_eq!(
        res[0]["data"]["updatePatient"]["firstName"], "Batched",
        "{res}"
    );
    assert_eq!(error_codes(&res[1]), ["BAD_USER_INPUT"], "{res}");
    assert_eq!(reads_on_replica(&app), before, "not on the replica");
    let owner = app.db.owner().await;
    let name: String = sqlx::query_scalar("SELECT first_name FROM patients WHERE id = $1")
        .bind(id.as_str().unwrap().parse::<uuid::Uuid>().unwrap())
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(name, "Batched");
}
