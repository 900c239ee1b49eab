//! Relay's global object identification: `node(id:)` and `nodes(ids:)`
//! find any entity by its id, and another clinic's object answers null,
//! exactly like a missing one.

use serde_json::json;
use uuid::Uuid;

use crate::database::fixtures::{org, patient, provider};
use crate::support::app::{error_codes, spawn_app};

const NODE: &str = "query($id: ID!) { node(id: $id) { __typename id
    ... on Patient { firstName } ... on Provider { name } ... on Organization { slug } } }";

#[tokio::test]
async fn node_finds_any_visible_entity_and_nothing_of_another_clinic() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let own_patient = patient(&owner, "NS-0003").await;
    let other_patient = patient(&owner, "LS-0003").await;
    let own_provider = provider(&owner, a, "1456789019").await;
    let token = app.login_as("admin@northside.example").await;

    let res = app
        .graphql(Some(&token), NODE, json!({ "id": own_patient }))
        .await;
    assert_eq!(res["data"]["node"]["__typename"], "Patient", "{res}");
    assert_eq!(res["data"]["node"]["id"], own_patient.to_string());
    let res = app
        .graphql(Some(&token), NODE, json!({ "id": own_provider }))
        .await;
    assert_eq!(res["data"]["node"]["__typename"], "Provider", "{res}");
    let res = app.graphql(Some(&token), NODE, json!({ "id": a })).await;
    assert_eq!(res["data"]["node"]["slug"], "northside", "{res}");

    // Another clinic's patient, a random id and garbage look the same.
    for id in [
        other_patient.to_string(),
        Uuid::new_v4().to_string(),
        "not-an-id".to_owned(),
    ] {
        let res = app.graphql(Some(&token), NODE, json!({ "id": id })).await;
        assert!(res["errors"].is_null(), "{id}: {res}");
        assert!(res["data"]["node"].is_null(), "{id}: {res}");
    }

    let res = app
        .graphql(
            Some(&token),
            "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }",
            json!({ "ids": [own_patient, other_patient, own_provider] }),
        )
        .await;
    let found = res["data"]["nodes"].as_array().expect("a list");
    assert_eq!(found.len(), 3, "{res}");
    assert_eq!(found[0]["__typename"], "Patient");
    assert!(found[1].is_null(), "another clinic's patient: {res}");
    assert_eq!(found[2]["__typename"], "Provider");

    let many: Vec<String> = (0..101).map(|_| Uuid::new_v4().to_string()).collect();
    let res = app
        .graphql(
            Some(&token),
            "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
            json!({ "ids": many }),
        )
        .await;
    assert_eq!(error_codes(&res), ["BAD_USER_INPUT"], "{res}");
}

#[tokio::test]
async fn node_respects_roles_within_the_clinic_and_audits_patient_reads() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let own_patient = patient(&owner, "NS-0003").await;
    let admin = app.login_as("admin@northside.example").await;
    let staff = app.login_as("frontdesk@northside.example").await;
    let event: Uuid = sea_orm::sqlx::query_scalar(
        "SELECT e.id FROM audit_events e JOIN organizations o ON o.id = e.organization_id \
         WHERE o.slug = 'northside' LIMIT 1",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    let q = "query($id: ID!) { node(id: $id) { __typename } }";
    let res = app.graphql(Some(&admin), q, json!({ "id": event })).await;
    assert_eq!(res["data"]["node"]["__typename"], "AuditEvent", "{res}");
    let res = app.graphql(Some(&staff), q, json!({ "id": event })).await;
    assert!(
        res["data"]["node"].is_null(),
        "the trail is for admins: {res}"
    );

    let reads = || async {
        sea_orm::sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM audit_events WHERE action = 'READ' AND resource_id = $1",
        )
        .bind(own_patient)
        .fetch_one(&owner)
        .await
        .unwrap()
    };
    let before = reads().await;
    app.graphql(Some(&staff), NODE, json!({ "id": own_patient }))
        .await;
    assert_eq!(
        reads().await,
        before + 1,
        "a patient read through node is audited"
    );
}

#[tokio::test]
async fn node_hides_what_every_other_path_hides_and_answers_repeated_ids() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let p = patient(&owner, "NS-0001").await;
    let care: Uuid = sea_orm::sqlx::query_scalar(
        "SELECT id FROM care_team_assignments WHERE patient_id = $1 LIMIT 1",
    )
    .bind(p)
    .fetch_one(&owner)
    .await
    .unwrap();
    let token = app.login_as("admin@northside.example").await;
    let q = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }";
    let res = app
        .graphql(Some(&token), q, json!({ "ids": [care, care, p] }))
        .await;
    let found = res["data"]["nodes"].as_array().expect("a list").clone();
    assert_eq!(found[0]["__typename"], "CareTeamAssignment", "{res}");
    assert_eq!(
        found[1], found[0],
        "an id asked twice is answered twice: {res}"
    );
    assert_eq!(found[2]["__typename"], "Patient", "{res}");

    // A discharged-and-deleted chart: gone from node, with everything of it.
    sea_orm::sqlx::query("UPDATE patients SET deleted_at = now() WHERE id = $1")
        .bind(p)
        .execute(&owner)
        .await
        .unwrap();
    let res = app
        .graphql(Some(&token), q, json!({ "ids": [care, p] }))
        .await;
    assert_eq!(res["data"]["nodes"], json!([null, null]), "{res}");
}
