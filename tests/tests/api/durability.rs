//! Nothing acknowledged is lost: a response reports a mutation as done only
//! when its transaction committed, and a retried mutation with the same
//! `Idempotency-Key` acts once.

use std::time::Duration;

use sea_orm::sqlx::{self, Executor, PgPool};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::patient;
use crate::support::app::{TestApp, error_codes, first_error, spawn_app, spawn_app_with};
use crate::support::{q, valid_npi};

const CREATE_PROVIDER: &str = "mutation($npi: String!) {
    createProvider(input: { name: \"Dr. Durable\", npi: $npi }) { id npi } }";
const ADD_CONTACT: &str = "mutation($p: UUID!, $v: String!) {
    addContactMethod(patientId: $p, input: { type: EMAIL, value: $v }) { id value } }";

/// Whether the clinic of `token` has a provider with `npi`, as the API
/// shows it.
async fn provider_exists(app: &TestApp, token: &str, npi: &str) -> bool {
    let res = app
        .graphql(
            Some(token),
            "{ providers(first: 100) { edges { node { npi } } } }",
            json!({}),
        )
        .await;
    res["data"]["providers"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("listing providers: {res}"))
        .iter()
        .any(|e| e["node"]["npi"] == npi)
}

/// Takes `table`'s strongest lock in a transaction of the owner (kept open
/// until the returned connection is dropped or rolled back), so that any
/// read of it waits past a short statement timeout.
async fn lock(owner: &PgPool, table: &str) -> sqlx::pool::PoolConnection<sqlx::Postgres> {
    let mut conn = owner.acquire().await.unwrap();
    conn.execute("BEGIN").await.unwrap();
    conn.execute(q(format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")))
        .await
        .unwrap();
    conn
}

/// Sends a batch that creates a provider (`npi`) and then reads
/// `appointments` while the owner holds that table's lock; returns the
/// status, the answer and how long it took.
async fn create_then_read_locked(app: &TestApp, token: &str, npi: &str) -> (u16, Value, Duration) {
    let owner = app.db.owner().await;
    let held = lock(&owner, "appointments").await;
    let started = std::time::Instant::now();
    let (status, res) = app
        .post(
            Some(token),
            &json!([
                { "query": CREATE_PROVIDER, "variables": { "npi": npi } },
                { "query": "{ appointments(first: 5) { edges { node { id } } } }" },
            ]),
        )
        .await;
    let took = started.elapsed();
    drop(held);
    (status, res, took)
}

#[tokio::test]
async fn a_batch_whose_read_is_refused_keeps_and_reports_its_committed_write() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    let npi = valid_npi(700_000_001);
    let (status, res) = app
        .post(
            Some(&token),
            &json!([
                { "query": CREATE_PROVIDER, "variables": { "npi": npi } },
                { "query": "{ patients(filter: {search: \"a\\u0000b\"}) { totalCount } }" },
            ]),
        )
        .await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(res[0]["data"]["createProvider"]["npi"], npi, "{res}");
    assert_eq!(error_codes(&res[1]), ["BAD_USER_INPUT"], "{res}");
    assert!(
        provider_exists(&app, &token, &npi).await,
        "the acknowledged provider is in the database"
    );
}

#[tokio::test]
async fn a_batch_whose_later_read_times_out_reports_nothing_as_done_and_saves_nothing() {
    let app = spawn_app_with(|c| c.statement_timeout_ms = 300).await;
    let token = app.login_as("admin@northside.example").await;
    let npi = valid_npi(700_000_002);
    let (status, res, _) = create_then_read_locked(&app, &token, &npi).await;
    assert_eq!(status, 500, "{res}");
    let answers = res.as_array().expect("one answer per operation");
    assert_eq!(answers.len(), 2, "{res}");
    for answer in answers {
        assert!(answer["data"].is_null(), "no result is reported: {res}");
        assert_eq!(error_codes(answer), ["INTERNAL"], "{res}");
        assert_eq!(first_error(answer)["reason"], "NOT_COMMITTED", "{res}");
    }
    assert!(
        !provider_exists(&app, &token, &npi).await,
        "nothing of the failed request was saved"
    );
}

#[tokio::test]
async fn a_mutation_whose_nested_field_fails_is_not_reported_as_done() {
    let app = spawn_app_with(|c| c.statement_timeout_ms = 300).await;
    let token = app.login_as("admin@northside.example").await;
    let owner = app.db.owner().await;
    let npi = valid_npi(700_000_003);
    let held = lock(&owner, "appointments").await;
    let (status, res) = app
        .post(
            Some(&token),
            &json!({
                "query": "mutation($npi: String!) {
                    createProvider(input: { name: \"Dr. Nested\", npi: $npi }) {
                        id appointments(first: 5) { edges { node { id } } } } }",
                "variables": { "npi": npi },
            }),
        )
        .await;
    drop(held);
    assert_eq!(status, 500, "{res}");
    assert!(res["data"].is_null(), "{res}");
    assert_eq!(first_error(&res)["reason"], "NOT_COMMITTED", "{res}");
    assert!(!provider_exists(&app, &token, &npi).await);
}

#[tokio::test]
async fn a_mutation_refused_by_a_rule_leaves_the_others_of_its_batch_standing() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    let npi = valid_npi(700_000_004);
    let (status, res) = app
        .post(
            Some(&token),
            &json!([
                { "query": CREATE_PROVIDER, "variables": { "npi": npi } },
                { "query": CREATE_PROVIDER, "variables": { "npi": npi } },
            ]),
        )
        .await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(res[0]["data"]["createProvider"]["npi"], npi, "{res}");
    assert_eq!(first_error(&res[1])["reason"], "DUPLICATE_NPI", "{res}");
    assert!(provider_exists(&app, &token, &npi).await);
}

async fn post_with_key(
    app: &TestApp,
    token: &str,
    key: &str,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let resp = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("sending");
    let status = resp.status().as_u16();
    let replayed = resp
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, replayed, resp.json().await.expect("a JSON body"))
}

async fn contact_values(owner: &PgPool, patient: Uuid, value: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM contact_methods WHERE patient_id = $1 AND value = $2")
        .bind(patient)
        .bind(value)
        .fetch_one(owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_retried_mutation_with_the_same_key_acts_once_and_gets_the_first_answer() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    let owner = app.db.owner().await;
    let p = patient(&owner, "NS-0003").await;
    let body = json!({ "query": ADD_CONTACT, "variables": { "p": p, "v": "once@example.com" } });

    let (status, replayed, first) = post_with_key(&app, &token, "key-1", &body).await;
    assert_eq!((status, replayed), (200, None), "{first}");
    let (status, replayed, second) = post_with_key(&app, &token, "key-1", &body).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(second, first, "the retry gets the first answer");
    assert_eq!(contact_values(&owner, p, "once@example.com").await, 1);

    // Another key is another request.
    let (_, _, third) = post_with_key(&app, &token, "key-2", &body).await;
    assert_ne!(
        third["data"]["addContactMethod"]["id"],
        first["data"]["addContactMethod"]["id"]
    );
    assert_eq!(contact_values(&owner, p, "once@example.com").await, 2);
}

#[tokio::test]
async fn the_same_key_with_other_variables_is_refused() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    let owner = app.db.owner().await;
    let p = patient(&owner, "NS-0003").await;
    let body = |v: &str| json!({ "query": ADD_CONTACT, "variables": { "p": p, "v": v } });

    let (status, _, _) = post_with_key(&app, &token, "key-x", &body("a@example.com")).await;
    assert_eq!(status, 200);
    let (status, _, res) = post_with_key(&app, &token, "key-x", &body("b@example.com")).await;
    assert_eq!(status, 422, "{res}");
    assert_eq!(error_codes(&res), ["CONFLICT"], "{res}");
    assert_eq!(
        first_error(&res)["reason"],
        "IDEMPOTENCY_KEY_REUSED",
        "{res}"
    );
    assert_eq!(contact_values(&owner, p, "b@example.com").await, 0);
}

#[tokio::test]
async fn keys_belong_to_one_user_and_bad_keys_are_refused() {
    let app = spawn_app().await;
    let admin = app.login_as("admin@northside.example").await;
    let staff = app.login_as("frontdesk@northside.example").await;
    let owner = app.db.owner().await;
    let p = patient(&owner, "NS-0003").await;
    let body = json!({ "query": ADD_CONTACT, "variables": { "p": p, "v": "shared@example.com" } });

    let (_, _, first) = post_with_key(&app, &admin, "same-key", &body).await;
    let (status, replayed, second) = post_with_key(&app, &staff, "same-key", &body).await;
    assert_eq!((status, replayed), (200, None), "{second}");
    assert_ne!(
        first["data"]["addContactMethod"]["id"],
        second["data"]["addContactMethod"]["id"]
    );

    for bad in ["", "has space", &"k".repeat(256)] {
        let (status, _, res) = post_with_key(&app, &admin, bad, &body).await;
        assert_eq!(status, 400, "{bad:?}: {res}");
        assert_eq!(error_codes(&res), ["BAD_USER_INPUT"], "{res}");
    }
}

#[tokio::test]
async fn a_retry_after_an_ambiguous_failure_acts_once() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    let owner = app.db.owner().await;
    let p = patient(&owner, "NS-0004").await;
    // COMMIT takes 1.5 s (a deferred trigger), longer than the client waits:
    // the client sees a failure although the write commits.
    owner
        .execute(
            "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END $$;
             CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON contact_methods
               DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();",
        )
        .await
        .unwrap();
    let body =
        json!({ "query": ADD_CONTACT, "variables": { "p": p, "v": "ambiguous@example.com" } });

    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let sent = impatient
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .header("idempotency-key", "ambiguous-1")
        .json(&body)
        .send()
        .await;
    assert!(sent.is_err(), "the client gave up before the answer");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        contact_values(&owner, p, "ambiguous@example.com").await,
        1,
        "the write committed although the client never heard so"
    );

    let (status, replayed, res) = post_with_key(&app, &token, "ambiguous-1", &body).await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(replayed.as_deref(), Some("true"), "{res}");
    assert_eq!(
        res["data"]["addContactMethod"]["value"],
        "ambiguous@example.com"
    );
    assert_eq!(
        contact_values(&owner, p, "ambiguous@example.com").await,
        1,
        "the retry did not act again"
    );
}

#[tokio::test]
async fn a_key_goes_only_with_mutations_and_a_nul_in_the_operation_name_is_refused() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    let owner = app.db.owner().await;
    let p = patient(&owner, "NS-0003").await;
    let mixed = json!([
        { "query": ADD_CONTACT, "variables": { "p": p, "v": "mixed@example.com" } },
        { "query": "query($p: UUID!) { patient(id: $p) { firstName } }", "variables": { "p": p } },
    ]);
    let (status, _, res) = post_with_key(&app, &token, "mixed", &mixed).await;
    assert_eq!(status, 400, "{res}");
    assert_eq!(contact_values(&owner, p, "mixed@example.com").await, 0);

    let named = json!({ "query": ADD_CONTACT, "operationName": "x\u{0}y",
                        "variables": { "p": p, "v": "named@example.com" } });
    let (status, _, res) = post_with_key(&app, &token, "named", &named).await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(contact_values(&owner, p, "named@example.com").await, 0);
    assert_eq!(error_codes(&res), ["BAD_USER_INPUT"], "{res}");
    assert_eq!(first_error(&res)["field"], "operationName", "{res}");
}

#[tokio::test]
async fn a_replay_shows_patients_only_to_whom_may_still_see_them_and_is_audited() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let org = crate::database::fixtures::org(&owner, "northside").await;
    let priya = patient(&owner, "NS-0005").await;
    let nguyen = crate::database::fixtures::provider(&owner, org, "1456789019").await;
    let staff = app.login_as("frontdesk@northside.example").await;
    // Jonathan (a chart holder at Northside) may book for Priya.
    let res = app
        .graphql(
            Some(&staff),
            "mutation($p: UUID!) { grantProxyAccess(input: { patientId: $p,
                proxyEmail: \"jonathan.smith@example.com\", canViewProfile: true,
                canViewAppointments: true, canScheduleAppointments: true }) { id isActive } }",
            json!({ "p": priya }),
        )
        .await;
    assert_eq!(res["data"]["grantProxyAccess"]["isActive"], true, "{res}");
    let grant = res["data"]["grantProxyAccess"]["id"].clone();
    let jonathan = app.login_in("jonathan.smith@example.com", Some(org)).await;
    let day = (chrono::Utc::now() + chrono::Duration::days(9)).date_naive();
    let start = day.and_hms_opt(15, 0, 0).unwrap().and_utc();
    let book = json!({
        "query": "mutation($i: ScheduleAppointmentInput!) { scheduleAppointment(input: $i) { id patient { firstName lastName } } }",
        "variables": { "i": { "patientId": priya, "providerId": nguyen,
            "startsAt": start.to_rfc3339(), "endsAt": (start + chrono::Duration::minutes(30)).to_rfc3339() } },
    });
    let (status, _, first) = post_with_key(&app, &jonathan, "book-1", &book).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["data"]["scheduleAppointment"]["patient"]["firstName"], "Priya",
        "{first}"
    );

    let reads = async || -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM audit_events WHERE action = 'READ' AND resource_id = $1",
        )
        .bind(priya)
        .fetch_one(&owner)
        .await
        .unwrap()
    };
    let before = reads().await;
    let (status, replayed, _) = post_with_key(&app, &jonathan, "book-1", &book).await;
    assert_eq!((status, replayed.as_deref()), (200, Some("true")));
    assert_eq!(
        reads().await,
        before + 1,
        "a replay is a read, and audited as one"
    );

    app.graphql(
        Some(&staff),
        "mutation($id: UUID!) { revokeProxyAccess(id: $id) { id } }",
        json!({ "id": grant }),
    )
    .await;
    let (status, replayed, res) = post_with_key(&app, &jonathan, "book-1", &book).await;
    assert_eq!(status, 409, "{res}");
    assert_eq!(replayed, None);
    assert_eq!(first_error(&res)["reason"], "ALREADY_PROCESSED", "{res}");
    assert!(!res.to_string().contains("Priya"), "{res}");
}

#[tokio::test]
async fn dates_postgresql_cannot_hold_are_bad_input_not_a_failed_request() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    let res = app
        .graphql(
            Some(&token),
            "{ appointments(filter: { from: \"-4714-11-23T00:00:00Z\" }) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(error_codes(&res), ["BAD_USER_INPUT"], "{res}");
    use base64::Engine;
    let key = json!({ "at": "-4714-11-23T00:00:00Z", "id": uuid::Uuid::nil() });
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.to_string());
    let res = app
        .graphql(
            Some(&token),
            "query($c: String) { appointments(first: 2, after: $c) { totalCount } }",
            json!({ "c": cursor }),
        )
        .await;
    assert_eq!(error_codes(&res), ["BAD_USER_INPUT"], "{res}");
    assert_eq!(first_error(&res)["field"], "after", "{res}");
}

#[tokio::test]
async fn a_request_past_its_execution_deadline_is_answered_then_and_saves_nothing() {
    // The statement would wait 5 s on the lock; the request may take 300 ms.
    let app = spawn_app_with(|c| c.execution_timeout_ms = 300).await;
    let token = app.login_as("admin@northside.example").await;
    let npi = valid_npi(700_000_009);
    let (status, res, took) = create_then_read_locked(&app, &token, &npi).await;
    assert_eq!(status, 500, "{res}");
    for answer in res.as_array().expect("one answer per operation") {
        assert!(answer["data"].is_null(), "no result is reported: {res}");
        assert_eq!(first_error(answer)["reason"], "NOT_COMMITTED", "{res}");
    }
    assert!(
        took < Duration::from_secs(4),
        "answered at the deadline, not after the statement timeout: {took:?}"
    );
    assert!(
        !provider_exists(&app, &token, &npi).await,
        "nothing of the request was saved"
    );
}
