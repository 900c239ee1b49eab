//! Break-glass: a staff member limited to one site opens, in an emergency,
//! one patient whose visits are at another site. The access starts within
//! the very request, for that session only, is audited as its own kind of
//! event (the opening, and every read under it), notifies the clinic's
//! admins, who review it, and ends by itself — and never reaches another
//! clinic.
//!
//! The demo's Rosa keeps the front desk at Harlem only; Jonathan Smith's
//! visits (with Dr. Okafor) are at the Upper West Side.

use sea_orm::sqlx::{self, PgPool};
use serde_json::{Value, json};
use uuid::Uuid;

use super::facilities::{
    ADMIN, LAKESIDE_ADMIN, ROSA, appointments_at, northside, place_visits, rosa_as_admin,
};
use crate::database::fixtures::{org, patient};
use crate::support::app::{TestApp, error_codes, first_error, spawn_app};

const JONATHAN: &str = "jonathan.smith@example.com";

const OPEN: &str = "mutation($i: BreakGlassInput!) { breakGlass(input: $i) {
    id patientId purpose reason openedAt expiresAt active outcome
    openedBy { id } patient { id appointments(first: 50) { edges { node { id } } } } } }";
const APPOINTMENTS_OF: &str = "query($p: UUID!) {
    appointments(first: 50, filter: { patientId: $p }) { edges { node { id } } } }";
const QUEUE: &str = "query($f: BreakGlassFilter) { breakGlassEvents(first: 20, filter: $f) {
    edges { node { id patientId outcome reviewComment reviewedBy { id } reviewedAt active } } } }";
const REVIEW: &str = "mutation($id: UUID!, $o: BreakGlassOutcome!, $c: String) {
    reviewBreakGlass(id: $id, outcome: $o, comment: $c) { id outcome reviewComment reviewedBy { id } active } }";

fn data(res: &Value) -> &Value {
    assert!(res["errors"].is_null(), "unexpected errors: {res}");
    &res["data"]
}

fn ids(conn: &Value) -> Vec<String> {
    conn["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn opening(patient: Uuid) -> Value {
    json!({ "i": { "patientId": patient, "purpose": "ETREAT",
                   "reason": "Unresponsive in the Harlem waiting room; history needed" } })
}

/// Jonathan's appointment ids as `token` sees them.
async fn visible_visits(app: &TestApp, token: &str, patient: Uuid) -> Vec<String> {
    let res = app
        .graphql(Some(token), APPOINTMENTS_OF, json!({ "p": patient }))
        .await;
    ids(&data(&res)["appointments"])
}

async fn events_of(owner: &PgPool, clinic: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM break_glass_events WHERE organization_id = $1")
        .bind(clinic)
        .fetch_one(owner)
        .await
        .unwrap()
}

/// The audit actions recorded for `patient` by `user`, oldest first.
async fn audit_actions(owner: &PgPool, user: Uuid, patient: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT action FROM audit_events
         WHERE actor_user_id = $1 AND (resource_id = $2 OR $2 = ANY (resource_ids))
           AND action IN ('READ', 'BREAK_GLASS', 'BREAK_GLASS_READ')
         ORDER BY occurred_at, id",
    )
    .bind(user)
    .bind(patient)
    .fetch_all(owner)
    .await
    .unwrap()
}

struct Scene {
    app: TestApp,
    owner: PgPool,
    clinic: Uuid,
    rosa: Uuid,
    jonathan: Uuid,
    /// Jonathan's visits at the Upper West Side, outside Rosa's scope.
    elsewhere: Vec<String>,
    /// All of Jonathan's visits.
    visits: Vec<String>,
}

impl Scene {
    /// Whether `token` sees any of Jonathan's visits at the other site.
    async fn sees_elsewhere(&self, token: &str) -> bool {
        visible_visits(&self.app, token, self.jonathan)
            .await
            .iter()
            .any(|v| self.elsewhere.contains(v))
    }
}

async fn scene() -> Scene {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&owner).await;
    place_visits(&owner, &ns).await;
    let jonathan = patient(&owner, "NS-0001").await;
    let at_uws: Vec<String> = appointments_at(&owner, ns.uws)
        .await
        .iter()
        .map(Uuid::to_string)
        .collect();
    let visits: Vec<String> = sqlx::query_scalar::<_, Uuid>(
        "SELECT id FROM appointments WHERE patient_id = $1 AND deleted_at IS NULL ORDER BY id",
    )
    .bind(jonathan)
    .fetch_all(&owner)
    .await
    .unwrap()
    .iter()
    .map(Uuid::to_string)
    .collect();
    let elsewhere: Vec<String> = visits
        .iter()
        .filter(|v| at_uws.contains(v))
        .cloned()
        .collect();
    assert!(
        !elsewhere.is_empty(),
        "the demo gives Jonathan visits at the Upper West Side"
    );
    Scene {
        clinic: ns.clinic,
        rosa: ns.rosa,
        app,
        owner,
        jonathan,
        elsewhere,
        visits,
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn a_site_limited_user_opens_a_patient_at_once_for_their_session_only() {
    let s = scene().await;
    let rosa = s.app.login_as(ROSA).await;
    let rosa_elsewhere = s.app.login_as(ROSA).await;
    assert!(
        !s.sees_elsewhere(&rosa).await,
        "before: Rosa sees none of Jonathan's visits at the other site"
    );
    // His chart itself is the clinic's: she reads it as ever.
    let res = s
        .app
        .graphql(
            Some(&rosa),
            "query($p: UUID!) { patient(id: $p) { id lastName } }",
            json!({ "p": s.jonathan }),
        )
        .await;
    assert_eq!(data(&res)["patient"]["lastName"], "Smith");

    let res = s.app.graphql(Some(&rosa), OPEN, opening(s.jonathan)).await;
    let opened = &data(&res)["breakGlass"];
    assert_eq!(opened["purpose"], "ETREAT");
    assert_eq!(opened["active"], true);
    assert_eq!(opened["outcome"], Value::Null);
    assert_eq!(opened["openedBy"]["id"], s.rosa.to_string());
    // Emergencies don't wait: the very request that opens it reads them.
    assert_eq!(
        sorted(ids(&opened["patient"]["appointments"])),
        sorted(s.visits.clone())
    );
    // Sixty minutes unless asked otherwise.
    let opened_at =
        chrono::DateTime::parse_from_rfc3339(opened["openedAt"].as_str().unwrap()).unwrap();
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(opened["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!((expires_at - opened_at).num_minutes(), 60);

    // And every request of the session after it.
    assert_eq!(
        sorted(visible_visits(&s.app, &rosa, s.jonathan).await),
        sorted(s.visits.clone())
    );
    // Only that patient: another patient's visits there stay hidden.
    let ns = northside(&s.owner).await;
    let at_uws = appointments_at(&s.owner, ns.uws).await;
    let (other, other_elsewhere): (Uuid, Vec<Uuid>) = sqlx::query_as(
        "SELECT patient_id, array_agg(id) FROM appointments
         WHERE id = ANY ($1) AND patient_id <> $2 GROUP BY patient_id LIMIT 1",
    )
    .bind(&at_uws)
    .bind(s.jonathan)
    .fetch_one(&s.owner)
    .await
    .expect("another patient with visits at the Upper West Side");
    let seen = visible_visits(&s.app, &rosa, other).await;
    assert!(
        !other_elsewhere
            .iter()
            .any(|v| seen.contains(&v.to_string())),
        "another patient's visits at the other site stay hidden"
    );
    // Only that session: Rosa's other session was not opened.
    assert!(!s.sees_elsewhere(&rosa_elsewhere).await);

    // The opening and every read under it are their own audit events: her
    // reads before it (his visits at her own site, his chart) and those of
    // her other session are ordinary READs.
    let actions = audit_actions(&s.owner, s.rosa, s.jonathan).await;
    assert_eq!(
        actions,
        [
            "READ",
            "READ",
            "BREAK_GLASS",
            "BREAK_GLASS_READ",
            "BREAK_GLASS_READ",
            "READ"
        ],
        "{actions:?}"
    );
    // The opening's event says why and until when.
    let changes: Value = sqlx::query_scalar(
        "SELECT changes FROM audit_events WHERE action = 'BREAK_GLASS' AND resource_id = $1",
    )
    .bind(s.jonathan)
    .fetch_one(&s.owner)
    .await
    .unwrap();
    assert_eq!(changes["breakGlassEventId"], opened["id"]);
    assert_eq!(changes["purpose"], "ETREAT");
    assert!(changes["reason"].as_str().unwrap().contains("Unresponsive"));
}

#[tokio::test]
async fn break_glass_access_expires_by_itself() {
    let s = scene().await;
    let rosa = s.app.login_as(ROSA).await;
    let mut vars = opening(s.jonathan);
    vars["i"]["durationMinutes"] = json!(5);
    let res = s.app.graphql(Some(&rosa), OPEN, vars).await;
    let id = data(&res)["breakGlass"]["id"].as_str().unwrap().to_owned();
    assert!(s.sees_elsewhere(&rosa).await);

    // The clock moves past the five minutes.
    sqlx::query(
        "UPDATE break_glass_events SET opened_at = now() - interval '6 minutes',
                expires_at = now() - interval '1 minute' WHERE id = $1",
    )
    .bind(Uuid::parse_str(&id).unwrap())
    .execute(&s.owner)
    .await
    .unwrap();
    assert!(!s.sees_elsewhere(&rosa).await, "the access ended by itself");
    let res = s.app.graphql(Some(&rosa), QUEUE, json!({})).await;
    let queue = &data(&res)["breakGlassEvents"]["edges"];
    assert_eq!(queue[0]["node"]["id"], id.as_str());
    assert_eq!(queue[0]["node"]["active"], false);
}

#[tokio::test]
async fn break_glass_never_reaches_another_clinic() {
    let s = scene().await;
    let rosa = s.app.login_as(ROSA).await;
    let lakeside_jonathan = patient(&s.owner, "LS-0001").await;
    let lakeside = org(&s.owner, "lakeside").await;
    let res = s
        .app
        .graphql(Some(&rosa), OPEN, opening(lakeside_jonathan))
        .await;
    assert_eq!(error_codes(&res), ["NOT_FOUND"], "{res}");
    // Exactly what a patient who does not exist answers.
    let res_missing = s
        .app
        .graphql(Some(&rosa), OPEN, opening(Uuid::new_v4()))
        .await;
    assert_eq!(error_codes(&res_missing), ["NOT_FOUND"]);
    assert_eq!(
        res["errors"][0]["message"],
        res_missing["errors"][0]["message"]
    );
    assert_eq!(events_of(&s.owner, s.clinic).await, 0);
    assert_eq!(events_of(&s.owner, lakeside).await, 0);

    // A Northside opening is invisible to Lakeside's admin.
    let res = s.app.graphql(Some(&rosa), OPEN, opening(s.jonathan)).await;
    data(&res);
    let lakeside_admin = s.app.login_as(LAKESIDE_ADMIN).await;
    let res = s.app.graphql(Some(&lakeside_admin), QUEUE, json!({})).await;
    assert_eq!(data(&res)["breakGlassEvents"]["edges"], json!([]));
}

#[tokio::test]
async fn the_clinics_admins_are_notified_and_review_each_opening_once() {
    let s = scene().await;
    let rosa = s.app.login_as(ROSA).await;
    let admin = s.app.login_as(ADMIN).await;
    let res = s.app.graphql(Some(&rosa), OPEN, opening(s.jonathan)).await;
    let id = data(&res)["breakGlass"]["id"].as_str().unwrap().to_owned();

    // The admin is told.
    let res = s
        .app
        .graphql(
            Some(&admin),
            "{ notifications(first: 10) { edges { node { kind subjectType subjectId } } } }",
            json!({}),
        )
        .await;
    let notes = data(&res)["notifications"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        notes.iter().any(|n| n["node"]["kind"] == "BREAK_GLASS"
            && n["node"]["subjectType"] == "break_glass_events"
            && n["node"]["subjectId"] == id.as_str()),
        "{notes:?}"
    );
    // Rosa, who opened it, is not notified of her own opening.
    let res = s
        .app
        .graphql(
            Some(&rosa),
            "{ notifications(first: 10) { edges { node { kind } } } }",
            json!({}),
        )
        .await;
    assert!(
        !data(&res)["notifications"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["node"]["kind"] == "BREAK_GLASS")
    );

    // It waits in the review queue.
    let unreviewed = json!({ "f": { "unreviewedOnly": true } });
    let res = s.app.graphql(Some(&admin), QUEUE, unreviewed.clone()).await;
    assert_eq!(
        ids(&data(&res)["breakGlassEvents"]),
        vec![id.clone()],
        "the queue holds the opening"
    );
    // Rosa may not review (nor, being limited to a site, see the clinic's queue).
    let res = s
        .app
        .graphql(Some(&rosa), REVIEW, json!({ "id": id, "o": "APPROPRIATE" }))
        .await;
    assert_eq!(error_codes(&res), ["FORBIDDEN"]);

    let res = s
        .app
        .graphql(
            Some(&admin),
            REVIEW,
            json!({ "id": id, "o": "APPROPRIATE", "c": "Documented emergency" }),
        )
        .await;
    let reviewed = &data(&res)["reviewBreakGlass"];
    assert_eq!(reviewed["outcome"], "APPROPRIATE");
    assert_eq!(reviewed["reviewComment"], "Documented emergency");
    let admin_id = crate::database::fixtures::user(&s.owner, ADMIN).await;
    assert_eq!(reviewed["reviewedBy"]["id"], admin_id.to_string());
    // An appropriate opening keeps running.
    assert_eq!(reviewed["active"], true);

    // Once.
    let res = s
        .app
        .graphql(
            Some(&admin),
            REVIEW,
            json!({ "id": id, "o": "INAPPROPRIATE" }),
        )
        .await;
    assert_eq!(error_codes(&res), ["CONFLICT"]);
    assert_eq!(first_error(&res)["reason"], "ALREADY_REVIEWED");
    let outcome: String =
        sqlx::query_scalar("SELECT outcome FROM break_glass_events WHERE id = $1")
            .bind(Uuid::parse_str(&id).unwrap())
            .fetch_one(&s.owner)
            .await
            .unwrap();
    assert_eq!(outcome, "APPROPRIATE");
    let res = s.app.graphql(Some(&admin), QUEUE, unreviewed).await;
    assert_eq!(data(&res)["breakGlassEvents"]["edges"], json!([]));
}

#[tokio::test]
async fn an_opening_judged_inappropriate_ends_at_once() {
    let s = scene().await;
    let rosa = s.app.login_as(ROSA).await;
    let admin = s.app.login_as(ADMIN).await;
    let res = s.app.graphql(Some(&rosa), OPEN, opening(s.jonathan)).await;
    let id = data(&res)["breakGlass"]["id"].as_str().unwrap().to_owned();
    assert!(s.sees_elsewhere(&rosa).await);

    let res = s
        .app
        .graphql(
            Some(&admin),
            REVIEW,
            json!({ "id": id, "o": "INAPPROPRIATE" }),
        )
        .await;
    assert_eq!(data(&res)["reviewBreakGlass"]["active"], false);
    assert!(!s.sees_elsewhere(&rosa).await);
}

#[tokio::test]
async fn nobody_reviews_their_own_opening() {
    let s = scene().await;
    let ns = northside(&s.owner).await;
    // Rosa is an admin limited to Harlem: she may open, not review.
    rosa_as_admin(&s.owner, &ns).await;
    let rosa = s.app.login_as(ROSA).await;
    let res = s.app.graphql(Some(&rosa), OPEN, opening(s.jonathan)).await;
    let id = data(&res)["breakGlass"]["id"].as_str().unwrap().to_owned();
    let res = s
        .app
        .graphql(Some(&rosa), REVIEW, json!({ "id": id, "o": "APPROPRIATE" }))
        .await;
    assert_eq!(first_error(&res)["reason"], "FACILITY_SCOPE");

    // Her limit lifted, she reviews the clinic's openings — not her own.
    sqlx::query("UPDATE organization_memberships SET facility_scope = NULL WHERE user_id = $1")
        .bind(s.rosa)
        .execute(&s.owner)
        .await
        .unwrap();
    let res = s
        .app
        .graphql(Some(&rosa), REVIEW, json!({ "id": id, "o": "APPROPRIATE" }))
        .await;
    assert_eq!(error_codes(&res), ["FORBIDDEN"], "{res}");
    assert_eq!(first_error(&res)["reason"], "OWN_BREAK_GLASS");
    let reviewed: Option<String> =
        sqlx::query_scalar("SELECT outcome FROM break_glass_events WHERE id = $1")
            .bind(Uuid::parse_str(&id).unwrap())
            .fetch_one(&s.owner)
            .await
            .unwrap();
    assert_eq!(reviewed, None);
}

#[tokio::test]
async fn break_glass_is_refused_where_it_does_not_belong_and_nothing_is_written() {
    let s = scene().await;
    let rosa = s.app.login_as(ROSA).await;

    // An admin of the whole clinic already reaches every patient.
    let admin = s.app.login_as(ADMIN).await;
    let res = s.app.graphql(Some(&admin), OPEN, opening(s.jonathan)).await;
    assert_eq!(error_codes(&res), ["CONFLICT"]);
    assert_eq!(first_error(&res)["reason"], "BREAK_GLASS_NOT_NEEDED");

    // A patient's own portal login is not staff.
    let portal = s.app.login_in(JONATHAN, Some(s.clinic)).await;
    let other = patient(&s.owner, "NS-0002").await;
    let res = s.app.graphql(Some(&portal), OPEN, opening(other)).await;
    assert_eq!(error_codes(&res), ["FORBIDDEN"], "{res}");

    // Longer than the server allows (240 minutes by default), or no reason.
    let mut vars = opening(s.jonathan);
    vars["i"]["durationMinutes"] = json!(241);
    let res = s.app.graphql(Some(&rosa), OPEN, vars).await;
    assert_eq!(error_codes(&res), ["BAD_USER_INPUT"]);
    assert_eq!(first_error(&res)["field"], "durationMinutes");
    for minutes in [0, -5] {
        let mut vars = opening(s.jonathan);
        vars["i"]["durationMinutes"] = json!(minutes);
        let res = s.app.graphql(Some(&rosa), OPEN, vars).await;
        assert_eq!(error_codes(&res), ["BAD_USER_INPUT"], "{minutes}: {res}");
    }
    let mut vars = opening(s.jonathan);
    vars["i"]["reason"] = json!("   ");
    let res = s.app.graphql(Some(&rosa), OPEN, vars).await;
    assert_eq!(error_codes(&res), ["BAD_USER_INPUT"]);
    assert_eq!(first_error(&res)["field"], "reason");

    assert_eq!(events_of(&s.owner, s.clinic).await, 0);
    assert!(!s.sees_elsewhere(&rosa).await);

    // A session holds at most 25 live openings.
    sqlx::query(
        "INSERT INTO break_glass_events (organization_id, user_id, session_id, patient_id,
                                         purpose, reason, expires_at)
         SELECT $1, $2, s.id, $3, 'BTG', 'earlier', now() + interval '1 hour'
         FROM (SELECT id FROM user_sessions WHERE user_id = $2 ORDER BY created_at DESC LIMIT 1) s,
              generate_series(1, 25)",
    )
    .bind(s.clinic)
    .bind(s.rosa)
    .bind(other)
    .execute(&s.owner)
    .await
    .unwrap();
    let res = s.app.graphql(Some(&rosa), OPEN, opening(s.jonathan)).await;
    assert_eq!(error_codes(&res), ["CONFLICT"]);
    assert_eq!(first_error(&res)["reason"], "BREAK_GLASS_LIMIT");
    assert!(!s.sees_elsewhere(&rosa).await);
    let opened: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'BREAK_GLASS'")
            .fetch_one(&s.owner)
            .await
            .unwrap();
    assert_eq!(opened, 0);
}

/// Sends `body` as Rosa would retry it: with an Idempotency-Key.
async fn with_key(app: &TestApp, token: &str, key: &str, body: &Value) -> (u16, Value) {
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
    (status, resp.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn a_retried_opening_shows_its_answer_only_while_the_access_lasts() {
    let s = scene().await;
    let rosa = s.app.login_as(ROSA).await;
    let admin = s.app.login_as(ADMIN).await;
    let body = json!({ "query": OPEN, "variables": opening(s.jonathan) });
    let (status, first) = with_key(&s.app, &rosa, "emergency-1", &body).await;
    assert_eq!(status, 200);
    let id = data(&first)["breakGlass"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // While it lasts, the retry gets the same answer, audited under it.
    let (status, again) = with_key(&s.app, &rosa, "emergency-1", &body).await;
    assert_eq!(status, 200);
    assert_eq!(again["data"], first["data"]);
    assert_eq!(
        audit_actions(&s.owner, s.rosa, s.jonathan)
            .await
            .last()
            .map(String::as_str),
        Some("BREAK_GLASS_READ")
    );

    // Judged inappropriate, the access ends — and so does the replay of
    // the visits it showed, in this session or another.
    let res = s
        .app
        .graphql(
            Some(&admin),
            REVIEW,
            json!({ "id": id, "o": "INAPPROPRIATE" }),
        )
        .await;
    data(&res);
    let rosa_again = s.app.login_as(ROSA).await;
    for token in [&rosa, &rosa_again] {
        let (status, replay) = with_key(&s.app, token, "emergency-1", &body).await;
        assert_eq!(status, 409, "{replay}");
        assert_eq!(first_error(&replay)["reason"], "ALREADY_PROCESSED");
        assert!(replay["data"].is_null(), "{replay}");
    }
}

#[tokio::test]
async fn break_glass_opens_the_record_for_reading_not_writing() {
    let s = scene().await;
    let rosa = s.app.login_as(ROSA).await;
    data(&s.app.graphql(Some(&rosa), OPEN, opening(s.jonathan)).await);
    let visit = &s.elsewhere[0];
    let status_of = async || -> String {
        sqlx::query_scalar("SELECT status::text FROM appointments WHERE id = $1")
            .bind(Uuid::parse_str(visit).unwrap())
            .fetch_one(&s.owner)
            .await
            .unwrap()
    };
    let before = status_of().await;
    let res = s
        .app
        .graphql(
            Some(&rosa),
            "mutation($id: UUID!) { transitionAppointment(id: $id, to: CANCELLED, reason: \"x\") { id } }",
            json!({ "id": visit }),
        )
        .await;
    assert_eq!(error_codes(&res), ["NOT_FOUND"], "{res}");
    assert_eq!(status_of().await, before);
}

#[tokio::test]
async fn a_new_opening_supersedes_the_live_one_so_a_review_can_end_the_access() {
    let s = scene().await;
    let rosa = s.app.login_as(ROSA).await;
    let admin = s.app.login_as(ADMIN).await;
    let first =
        data(&s.app.graphql(Some(&rosa), OPEN, opening(s.jonathan)).await)["breakGlass"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let second =
        data(&s.app.graphql(Some(&rosa), OPEN, opening(s.jonathan)).await)["breakGlass"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let res = s.app.graphql(Some(&rosa), QUEUE, json!({})).await;
    let edges = data(&res)["breakGlassEvents"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    let active = |id: &str| {
        edges
            .iter()
            .find(|e| e["node"]["id"] == id)
            .map(|e| e["node"]["active"].clone())
    };
    assert_eq!(active(&first), Some(json!(false)), "superseded");
    assert_eq!(active(&second), Some(json!(true)));

    let res = s
        .app
        .graphql(
            Some(&admin),
            REVIEW,
            json!({ "id": second, "o": "INAPPROPRIATE" }),
        )
        .await;
    data(&res);
    assert!(!s.sees_elsewhere(&rosa).await);
}

#[tokio::test]
async fn concurrent_openings_cannot_pass_the_limit_of_a_session() {
    let s = scene().await;
    let rosa = s.app.login_as(ROSA).await;
    let patients: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM patients WHERE organization_id = $1 AND deleted_at IS NULL ORDER BY id",
    )
    .bind(s.clinic)
    .fetch_all(&s.owner)
    .await
    .unwrap();
    // 22 live openings (of distinct patients, as the session already holds).
    sqlx::query(
        "INSERT INTO break_glass_events (organization_id, user_id, session_id, patient_id,
                                         purpose, reason, expires_at)
         SELECT $1, $2, s.id, $3, 'BTG', 'earlier', now() + interval '1 hour'
         FROM (SELECT id FROM user_sessions WHERE user_id = $2 ORDER BY created_at DESC LIMIT 1) s,
              generate_series(1, 22)",
    )
    .bind(s.clinic)
    .bind(s.rosa)
    .bind(patients[0])
    .execute(&s.owner)
    .await
    .unwrap();
    let attempts = patients.iter().skip(1).cycle().take(20).map(|p| {
        let app = &s.app;
        let rosa = &rosa;
        async move { app.graphql(Some(rosa), OPEN, opening(*p)).await }
    });
    let results = futures::future::join_all(attempts).await;
    let opened = results.iter().filter(|r| r["errors"].is_null()).count();
    assert!(opened >= 1, "some openings went through");
    for r in results.iter().filter(|r| !r["errors"].is_null()) {
        assert_eq!(error_codes(r), ["CONFLICT"], "{r}");
    }
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM break_glass_events WHERE user_id = $1 AND expires_at > now()",
    )
    .bind(s.rosa)
    .fetch_one(&s.owner)
    .await
    .unwrap();
    assert!(live <= 25, "{live} live openings");
}
