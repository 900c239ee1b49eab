//! Care team rules over the API, including under concurrency.

use sea_orm::sqlx;
use serde_json::json;
use uuid::Uuid;

use crate::database::fixtures::{org, patient, provider};
use crate::support::app::{error_codes, first_error, spawn_app};

const ASSIGN: &str = "mutation($p: UUID!, $v: UUID!) { assignPrimaryProvider(patientId: $p, providerId: $v) { id role provider { name } } }";
const ADD: &str = "mutation($p: UUID!, $v: UUID!, $r: CareTeamRole!) { addCareTeamMember(patientId: $p, providerId: $v, role: $r) { id role } }";
const TEAM: &str = "query($p: UUID!) { patient(id: $p) { primaryProvider { name } careTeam { role provider { name } } } }";

#[tokio::test]
async fn assigning_a_primary_demotes_the_previous_one_to_specialist() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let sofia = patient(&owner, "NS-0002").await;
    let chloe = provider(&owner, a, "1456789019").await;
    let token = app.login_as("frontdesk@northside.example").await;

    let res = app
        .graphql(Some(&token), ASSIGN, json!({ "p": sofia, "v": chloe }))
        .await;
    assert_eq!(
        res["data"]["assignPrimaryProvider"]["role"], "PRIMARY",
        "{res}"
    );
    let team = app.graphql(Some(&token), TEAM, json!({ "p": sofia })).await;
    assert_eq!(
        team["data"]["patient"]["primaryProvider"]["name"],
        "Dr. Chloe Nguyen"
    );
    let mut roles: Vec<(String, String)> = team["data"]["patient"]["careTeam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["provider"]["name"].as_str().unwrap().to_owned(),
                a["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        vec![
            ("Dr. Amara Okafor".to_owned(), "SPECIALIST".to_owned()),
            ("Dr. Chloe Nguyen".to_owned(), "PRIMARY".to_owned()),
        ]
    );
}

#[tokio::test]
async fn adding_a_second_primary_is_a_conflict_and_a_specialist_is_fine() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let sofia = patient(&owner, "NS-0002").await;
    let hale = provider(&owner, a, "1987654328").await;
    let token = app.login_as("frontdesk@northside.example").await;

    let res = app
        .graphql(
            Some(&token),
            ADD,
            json!({ "p": sofia, "v": hale, "r": "PRIMARY" }),
        )
        .await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"]);
    assert_eq!(first_error(&res)["reason"], "PRIMARY_PROVIDER_EXISTS");

    let res = app
        .graphql(
            Some(&token),
            ADD,
            json!({ "p": sofia, "v": hale, "r": "SPECIALIST" }),
        )
        .await;
    assert_eq!(
        res["data"]["addCareTeamMember"]["role"], "SPECIALIST",
        "{res}"
    );
    let res = app
        .graphql(
            Some(&token),
            ADD,
            json!({ "p": sofia, "v": hale, "r": "CONSULTANT" }),
        )
        .await;
    assert_eq!(first_error(&res)["reason"], "ALREADY_ON_CARE_TEAM");
}

#[tokio::test]
async fn removing_a_member_is_soft_and_happens_once() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let jonathan = patient(&owner, "NS-0001").await;
    let admin: Uuid = crate::database::fixtures::user(&owner, "admin@northside.example").await;
    let assignment: Uuid = sqlx::query_scalar(
        "SELECT id FROM care_team_assignments WHERE patient_id = $1 AND role = 'CONSULTANT'",
    )
    .bind(jonathan)
    .fetch_one(&owner)
    .await
    .unwrap();
    let token = app.login_as("admin@northside.example").await;
    let remove = "mutation($a: UUID!) { removeCareTeamMember(assignmentId: $a) { id removedAt } }";
    let res = app
        .graphql(Some(&token), remove, json!({ "a": assignment }))
        .await;
    assert!(
        res["data"]["removeCareTeamMember"]["removedAt"].is_string(),
        "{res}"
    );
    let res = app
        .graphql(Some(&token), remove, json!({ "a": assignment }))
        .await;
    assert_eq!(first_error(&res)["reason"], "ALREADY_REMOVED");

    let (removed_by,): (Option<Uuid>,) =
        sqlx::query_as("SELECT removed_by FROM care_team_assignments WHERE id = $1")
            .bind(assignment)
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(
        removed_by,
        Some(admin),
        "the row is kept, with who removed it"
    );
    let team = app
        .graphql(Some(&token), TEAM, json!({ "p": jonathan }))
        .await;
    assert_eq!(
        team["data"]["patient"]["careTeam"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn fifty_racing_primary_assignments_leave_exactly_one_primary() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let patient_id = patient(&owner, "NS-0005").await;
    let providers: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM providers WHERE organization_id = $1")
            .bind(a)
            .fetch_all(&owner)
            .await
            .unwrap();
    let token = app.login_as("admin@northside.example").await;

    let calls = (0..50).map(|i| {
        let (app, token) = (&app, &token);
        let provider = providers[i % providers.len()];
        async move {
            app.graphql(
                Some(token),
                ASSIGN,
                json!({ "p": patient_id, "v": provider }),
            )
            .await
        }
    });
    let results = futures::future::join_all(calls).await;
    for res in &results {
        let codes = error_codes(res);
        assert!(
            codes.is_empty() || codes == ["CONFLICT"],
            "a racing assignment failed otherwise: {res}"
        );
    }
    let succeeded = results.iter().filter(|r| r.get("errors").is_none()).count();
    assert!(succeeded > 0);

    let (primaries, active): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE role = 'PRIMARY'), count(*) FROM care_team_assignments \
         WHERE patient_id = $1 AND removed_at IS NULL",
    )
    .bind(patient_id)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(primaries, 1);
    assert!(
        active <= providers.len() as i64,
        "a provider joined the team twice"
    );
}
