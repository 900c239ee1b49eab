//! Payer authorizations: atomic reservations, releases, validity dates.

use sea_orm::sqlx;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::{org, patient};
use crate::support::app::{TestApp, error_codes, first_error, spawn_app};

const CREATE: &str = "mutation($i: CreateAuthorizationInput!) { createAuthorization(input: $i) {
    id totalUnits usedUnits remainingUnits validFrom validTo patient { mrn } } }";
const RESERVE: &str = "mutation($id: UUID!, $n: Int!) { reserveAuthorizationUnits(authorizationId: $id, units: $n) { usedUnits remainingUnits } }";
const RELEASE: &str = "mutation($id: UUID!, $n: Int!) { releaseAuthorizationUnits(authorizationId: $id, units: $n) { usedUnits } }";

async fn create(
    app: &TestApp,
    token: &str,
    patient: Uuid,
    number: &str,
    total: i32,
    from: i64,
    to: i64,
) -> Value {
    // "Today" is the clinic's day, in its time zone, as the rule reads it
    // (around midnight UTC it is not the UTC day).
    let today: chrono::NaiveDate = sqlx::query_scalar(
        "SELECT (now() AT TIME ZONE timezone)::date FROM organizations WHERE slug = 'northside'",
    )
    .fetch_one(&app.db.owner().await)
    .await
    .expect("the clinic's day");
    let day = |offset: i64| {
        (today + chrono::Duration::days(offset))
            .format("%Y-%m-%d")
            .to_string()
    };
    app.graphql(
        Some(token),
        CREATE,
        json!({ "i": {
            "patientId": patient, "payerName": "Blue Harbor Health Plan", "authorizationNumber": number,
            "serviceCode": "97110", "totalUnits": total, "validFrom": day(from), "validTo": day(to) } }),
    )
    .await
}

async fn used(app: &TestApp, id: &Value) -> i32 {
    sqlx::query_scalar("SELECT used_units FROM payer_authorizations WHERE id = $1::uuid")
        .bind(id.as_str().unwrap())
        .fetch_one(&app.db.owner().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn units_are_reserved_and_released_within_bounds() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let token = app.login_as("frontdesk@northside.example").await;
    let created = create(
        &app,
        &token,
        patient(&owner, "NS-0004").await,
        "BH-1",
        10,
        -1,
        30,
    )
    .await;
    let auth = &created["data"]["createAuthorization"];
    assert_eq!(auth["remainingUnits"], 10, "{created}");
    let id = auth["id"].clone();

    let res = app
        .graphql(Some(&token), RESERVE, json!({ "id": id, "n": 4 }))
        .await;
    assert_eq!(
        res["data"]["reserveAuthorizationUnits"],
        json!({ "usedUnits": 4, "remainingUnits": 6 })
    );
    let res = app
        .graphql(Some(&token), RESERVE, json!({ "id": id, "n": 7 }))
        .await;
    assert_eq!(first_error(&res)["reason"], "UNITS_EXHAUSTED");
    assert_eq!(
        used(&app, &id).await,
        4,
        "nothing is reserved when units do not fit"
    );

    let res = app
        .graphql(Some(&token), RELEASE, json!({ "id": id, "n": 5 }))
        .await;
    assert_eq!(first_error(&res)["reason"], "UNITS_NOT_RESERVED");
    let res = app
        .graphql(Some(&token), RELEASE, json!({ "id": id, "n": 4 }))
        .await;
    assert_eq!(res["data"]["releaseAuthorizationUnits"]["usedUnits"], 0);
    for n in [0, -3] {
        let res = app
            .graphql(Some(&token), RESERVE, json!({ "id": id, "n": n }))
            .await;
        assert_eq!(first_error(&res)["field"], "units");
    }
}

#[tokio::test]
async fn a_hundred_concurrent_reservations_never_overdraw() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let token = app.login_as("frontdesk@northside.example").await;
    let created = create(
        &app,
        &token,
        patient(&owner, "NS-0005").await,
        "BH-RACE",
        30,
        0,
        10,
    )
    .await;
    let id = created["data"]["createAuthorization"]["id"].clone();
    let calls = (0..100).map(|_| app.graphql(Some(&token), RESERVE, json!({ "id": id, "n": 1 })));
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.get("errors").is_none()).count();
    for r in results.iter().filter(|r| r.get("errors").is_some()) {
        assert_eq!(first_error(r)["reason"], "UNITS_EXHAUSTED", "{r}");
    }
    assert_eq!(ok, 30);
    assert_eq!(used(&app, &id).await, 30);
}

#[tokio::test]
async fn reserving_outside_the_validity_dates_is_refused() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let token = app.login_as("frontdesk@northside.example").await;
    let patient_id = patient(&owner, "NS-0004").await;
    for (number, from, to) in [("BH-PAST", -30, -1), ("BH-FUTURE", 2, 30)] {
        let id = create(&app, &token, patient_id, number, 5, from, to).await["data"]["createAuthorization"]["id"].clone();
        let res = app
            .graphql(Some(&token), RESERVE, json!({ "id": id, "n": 1 }))
            .await;
        assert_eq!(error_codes(&res), vec!["CONFLICT"], "{number}: {res}");
        assert_eq!(first_error(&res)["reason"], "AUTHORIZATION_NOT_VALID_TODAY");
        assert_eq!(used(&app, &id).await, 0);
    }
    let res = create(&app, &token, patient_id, "BH-BACKWARDS", 5, 5, 1).await;
    assert_eq!(first_error(&res)["field"], "validTo");
}

#[tokio::test]
async fn authorizations_show_on_the_patient_and_stay_inside_the_clinic() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let robert = patient(&owner, "NS-0008").await;
    let b = org(&owner, "lakeside").await;
    let b_auth: Uuid =
        sqlx::query_scalar("SELECT id FROM payer_authorizations WHERE organization_id = $1")
            .bind(b)
            .fetch_one(&owner)
            .await
            .unwrap();
    let token = app.login_as("admin@northside.example").await;
    let res = app
        .graphql(
            Some(&token),
            "query($p: UUID!) { patient(id: $p) { authorizations { authorizationNumber totalUnits usedUnits } } }",
            json!({ "p": robert }),
        )
        .await;
    assert_eq!(
        res["data"]["patient"]["authorizations"],
        json!([{ "authorizationNumber": "BH-2026-0042", "totalUnits": 12, "usedUnits": 3 }])
    );
    for query in [RESERVE, RELEASE] {
        let res = app
            .graphql(Some(&token), query, json!({ "id": b_auth, "n": 1 }))
            .await;
        assert_eq!(error_codes(&res), vec!["NOT_FOUND"], "{res}");
    }
    let dup = create(&app, &token, robert, "BH-2026-0042", 5, 0, 5).await;
    assert_eq!(first_error(&dup)["reason"], "DUPLICATE_AUTHORIZATION");
}
