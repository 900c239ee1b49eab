//! Lakeside's users against Northside's therapy rows: sessions, events,
//! claims, coverages, diagnoses, credentials and authorizations of the
//! other clinic are never seen, never changed, and never reached through a
//! list, a filter or a nested field.

use std::collections::HashSet;

use sea_orm::sqlx::{self, PgPool};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::{org, patient, provider};
use crate::support::app::{TestApp, error_codes, spawn_app};
use crate::support::q;
use crate::support::therapy::{
    DOCTOR, END, RECORD, RESPOND, SIGN, START, SUBMIT, billable_patient, checked_in_appointment,
    completed_session, create_and_render_claim, data, id_of, minutes_ago, northside_okafor,
    rfc3339, signed_session, start,
};

const LAKESIDE_DOCTOR: &str = "dr.lindqvist@lakeside.example";
const LAKESIDE_USERS: [&str; 3] = [
    "admin@lakeside.example",
    "frontdesk@lakeside.example",
    LAKESIDE_DOCTOR,
];

/// A digest of every therapy row of a clinic, to prove nothing changed.
async fn digest(owner: &PgPool, clinic: Uuid) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for table in [
        "patients",
        "appointments",
        "payer_authorizations",
        "staff_credentials",
        "patient_insurances",
        "diagnoses",
        "therapy_sessions",
        "session_events",
        "claims",
        "claim_lines",
    ] {
        let d: Option<String> = sqlx::query_scalar(q(format!(
            "SELECT md5(string_agg(to_jsonb(t)::text, '' ORDER BY id)) FROM {table} t WHERE organization_id = $1"
        )))
        .bind(clinic)
        .fetch_one(owner)
        .await
        .unwrap();
        out.push((table.to_owned(), d));
    }
    out
}

async fn ids(owner: &PgPool, sql: &str, clinic: Uuid) -> HashSet<String> {
    sqlx::query_scalar::<_, Uuid>(q(sql))
        .bind(clinic)
        .fetch_all(owner)
        .await
        .unwrap()
        .into_iter()
        .map(|id| id.to_string())
        .collect()
}

/// Every `id` anywhere in a response.
fn all_ids(v: &Value) -> HashSet<String> {
    fn walk(v: &Value, out: &mut HashSet<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("id", Some(s)) => {
                            out.insert(s.to_owned());
                        }
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = HashSet::new();
    walk(v, &mut out);
    out
}

struct Northside {
    clinic: Uuid,
    jonathan: Uuid,
    okafor: Uuid,
    coverage: Uuid,
    authorization: Uuid,
    appointment: Uuid,
    running: Uuid,
    completed: Uuid,
    signed: Uuid,
    event: Uuid,
    claim: Uuid,
}

async fn northside(app: &TestApp, owner: &PgPool) -> Northside {
    let clinic = org(owner, "northside").await;
    let jonathan = patient(owner, "NS-0001").await;
    let marcus = patient(owner, "NS-0004").await;
    let okafor = northside_okafor(owner).await;
    let doctor = app.login_as(DOCTOR).await;
    let running = {
        let appointment = checked_in_appointment(owner, marcus, okafor).await;
        let res = start(app, &doctor, appointment, "97110", None, minutes_ago(30)).await;
        id_of(data(&res, "startTherapySession"))
    };
    let completed = completed_session(app, &doctor, marcus, okafor, "97110", 20).await;
    let (coverage, signed, claim, authorization): (Uuid, Uuid, Uuid, Uuid) = sqlx::query_as(
        "SELECT c.insurance_id, l.session_id, c.id, s.authorization_id FROM claims c
         JOIN claim_lines l ON l.claim_id = c.id JOIN therapy_sessions s ON s.id = l.session_id
         WHERE c.patient_id = $1",
    )
    .bind(jonathan)
    .fetch_one(owner)
    .await
    .unwrap();
    let event: Uuid =
        sqlx::query_scalar("SELECT id FROM session_events WHERE session_id = $1 LIMIT 1")
            .bind(signed)
            .fetch_one(owner)
            .await
            .unwrap();
    Northside {
        clinic,
        jonathan,
        okafor,
        coverage,
        authorization,
        appointment: checked_in_appointment(owner, jonathan, okafor).await,
        running,
        completed,
        signed,
        event,
        claim,
    }
}

struct Lakeside {
    coverage: Uuid,
    session: Uuid,
    running: Uuid,
    appointment: Uuid,
    claim: Uuid,
}

/// A signed, billed session at Lakeside (its claim's 837P checked), one
/// running, and a checked-in appointment.
async fn lakeside(app: &TestApp, owner: &PgPool) -> Lakeside {
    let clinic = org(owner, "lakeside").await;
    let grace = patient(owner, "LS-0004").await;
    let lindqvist = provider(owner, clinic, "1555555550").await;
    let staff = app.login_as("frontdesk@lakeside.example").await;
    let doctor = app.login_as(LAKESIDE_DOCTOR).await;
    let coverage = billable_patient(app, &staff, grace, Some("PSM-300221")).await;
    let session = signed_session(app, &doctor, grace, lindqvist, "92507", 40).await;
    let (claim, _) = create_and_render_claim(app, &staff, coverage, &[session]).await;
    // Each clinic numbers its own claims: Northside's demo claim is 1, and
    // so is Lakeside's first (nothing tells one clinic how many the other
    // has).
    assert_eq!(claim["controlNumber"], 1, "{claim}");
    let running = {
        let appointment = checked_in_appointment(owner, grace, lindqvist).await;
        let res = start(app, &doctor, appointment, "92507", None, minutes_ago(30)).await;
        id_of(data(&res, "startTherapySession"))
    };
    Lakeside {
        coverage,
        session,
        running,
        appointment: checked_in_appointment(owner, grace, lindqvist).await,
        claim: id_of(&claim),
    }
}

#[tokio::test]
async fn lakeside_reads_nothing_of_northside_therapy_rows() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&app, &owner).await;
    let ls = lakeside(&app, &owner).await;
    let ns_rows: HashSet<String> = [
        "SELECT id FROM therapy_sessions WHERE organization_id = $1",
        "SELECT id FROM session_events WHERE organization_id = $1",
        "SELECT id FROM claims WHERE organization_id = $1",
        "SELECT id FROM claim_lines WHERE organization_id = $1",
        "SELECT id FROM patient_insurances WHERE organization_id = $1",
        "SELECT id FROM diagnoses WHERE organization_id = $1",
        "SELECT id FROM patients WHERE organization_id = $1",
    ]
    .iter()
    .map(|sql| ids(&owner, sql, ns.clinic))
    .collect::<futures::future::JoinAll<_>>()
    .await
    .into_iter()
    .flatten()
    .collect();
    assert!(ns_rows.len() > 10);

    for email in LAKESIDE_USERS {
        let token = app.login_as(email).await;
        let res = app
            .graphql(
                Some(&token),
                "query($s1: UUID!, $s2: UUID!, $s3: UUID!, $c: UUID!, $p: UUID!, $v: UUID!) {
                   a: session(id: $s1) { id } b: session(id: $s2) { id } c: session(id: $s3) { id }
                   claim(id: $c) { id x12 }
                   hisSessions: sessions(filter: { patientId: $p }) { totalCount edges { node { id } } }
                   herSessions: sessions(filter: { providerId: $v }) { totalCount edges { node { id } } }
                   hisClaims: claims(filter: { patientId: $p }) { totalCount edges { node { id } } }
                 }",
                json!({ "s1": ns.signed, "s2": ns.running, "s3": ns.completed, "c": ns.claim,
                        "p": ns.jonathan, "v": ns.okafor }),
            )
            .await;
        assert!(res.get("errors").is_none(), "{email}: {res}");
        assert_eq!(
            res["data"],
            json!({ "a": null, "b": null, "c": null, "claim": null,
                    "hisSessions": { "totalCount": 0, "edges": [] },
                    "herSessions": { "totalCount": 0, "edges": [] },
                    "hisClaims": { "totalCount": 0, "edges": [] } }),
            "{email}"
        );

        let res = app
            .graphql(
                Some(&token),
                "{ sessions(first: 20) { totalCount edges { node { id events(first: 10) { edges { node { id } } } } } }
                   claims(first: 20) { totalCount edges { node { id lines { id session { id } } } } }
                   patients(first: 10) { edges { node { mrn
                     sessions(first: 5) { edges { node { id } } } insurances { id } diagnoses { id } } } } }",
                json!({}),
            )
            .await;
        assert!(res.get("errors").is_none(), "{email}: {res}");
        let seen = all_ids(&res["data"]);
        let leaked: Vec<&String> = seen.intersection(&ns_rows).collect();
        assert!(leaked.is_empty(), "{email} saw Northside rows {leaked:?}");
        assert_eq!(res["data"]["sessions"]["totalCount"], 2, "{email}: {res}");
        assert_eq!(res["data"]["claims"]["totalCount"], 1, "{email}: {res}");
        for own in [ls.session, ls.running, ls.claim, ls.coverage] {
            assert!(
                seen.contains(&own.to_string()),
                "{email} sees Lakeside's own {own}: {res}"
            );
        }
    }

    // And the other way round.
    let token = app.login_as("admin@northside.example").await;
    let res = app
        .graphql(
            Some(&token),
            "query($s: UUID!, $c: UUID!) { session(id: $s) { id } claim(id: $c) { id }
               sessions(first: 100) { edges { node { id } } } claims(first: 100) { edges { node { id } } } }",
            json!({ "s": ls.session, "c": ls.claim }),
        )
        .await;
    assert!(
        res["data"]["session"].is_null() && res["data"]["claim"].is_null(),
        "{res}"
    );
    let seen = all_ids(&res["data"]);
    assert!(!seen.contains(&ls.session.to_string()), "{res}");
    assert!(!seen.contains(&ls.claim.to_string()), "{res}");
    assert!(seen.contains(&ns.signed.to_string()), "{res}");
}

#[tokio::test]
async fn lakeside_changes_nothing_of_northside_therapy_rows() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let ns = northside(&app, &owner).await;
    let ls = lakeside(&app, &owner).await;
    let before = digest(&owner, ns.clinic).await;
    let lakeside_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM session_events WHERE session_id = $1")
            .bind(ls.running)
            .fetch_one(&owner)
            .await
            .unwrap();

    let address = json!({ "line1": "1 Wacker Drive", "city": "Chicago", "state": "IL", "postalCode": "60601" });
    // (operation, variables, code, who may try it: every Lakeside user, or only ADMIN/STAFF, or only the provider)
    let attempts: Vec<(&str, Value, &str, &[&str])> = vec![
        (
            "mutation($id: UUID!) { updateInsurance(id: $id, input: { memberId: \"TAKEN-1\" }) { id } }",
            json!({ "id": ns.coverage }),
            "NOT_FOUND",
            &LAKESIDE_USERS,
        ),
        (
            "mutation($p: UUID!) { addInsurance(input: { patientId: $p, payerName: \"X\", payerId: \"XX01\", memberId: \"M1\", priority: SECONDARY, effectiveFrom: \"2025-01-01\" }) { id } }",
            json!({ "p": ns.jonathan }),
            "BAD_USER_INPUT",
            &LAKESIDE_USERS,
        ),
        (
            "mutation($p: UUID!) { addDiagnosis(input: { patientId: $p, code: \"Z00.00\", diagnosedOn: \"2025-01-01\" }) { id } }",
            json!({ "p": ns.jonathan }),
            "BAD_USER_INPUT",
            &LAKESIDE_USERS,
        ),
        (
            "mutation($id: UUID!, $a: AddressInput!) { updatePatient(id: $id, input: { address: $a }) { id } }",
            json!({ "id": ns.jonathan, "a": address }),
            "NOT_FOUND",
            &LAKESIDE_USERS,
        ),
        (
            "mutation($v: UUID!) { addCredential(input: { providerId: $v, kind: LICENSE, name: \"Physician\", number: \"IL-1\", issuingState: \"NY\", validFrom: \"2020-01-01\" }) { id } }",
            json!({ "v": ns.okafor }),
            "BAD_USER_INPUT",
            &LAKESIDE_USERS[..2],
        ),
        (
            "mutation($i: UUID!, $s: UUID!) { createClaim(input: { insuranceId: $i, sessionIds: [$s] }) { id } }",
            json!({ "i": ns.coverage, "s": ns.signed }),
            "BAD_USER_INPUT",
            &LAKESIDE_USERS[..2],
        ),
        (
            "mutation($i: UUID!, $s: UUID!) { createClaim(input: { insuranceId: $i, sessionIds: [$s] }) { id } }",
            json!({ "i": ls.coverage, "s": ns.signed }),
            "BAD_USER_INPUT",
            &LAKESIDE_USERS[..2],
        ),
        (
            SUBMIT,
            json!({ "id": ns.claim }),
            "NOT_FOUND",
            &LAKESIDE_USERS[..2],
        ),
        (
            RESPOND,
            json!({ "id": ns.claim, "i": { "status": "ACCEPTED" } }),
            "NOT_FOUND",
            &LAKESIDE_USERS[..2],
        ),
        (
            START,
            json!({ "i": { "appointmentId": ns.appointment, "serviceCode": "97110", "placeOfService": "11",
                           "startedAt": rfc3339(minutes_ago(10)) } }),
            "BAD_USER_INPUT",
            &[LAKESIDE_DOCTOR],
        ),
        (
            START,
            json!({ "i": { "appointmentId": ls.appointment, "serviceCode": "97110", "placeOfService": "11",
                           "authorizationId": ns.authorization, "startedAt": rfc3339(minutes_ago(10)) } }),
            "BAD_USER_INPUT",
            &[LAKESIDE_DOCTOR],
        ),
        (
            RECORD,
            json!({ "s": ns.running, "e": [{ "eventType": "NOTE", "occurredAt": rfc3339(minutes_ago(1)), "payload": {} }] }),
            "NOT_FOUND",
            &[LAKESIDE_DOCTOR],
        ),
        (
            RECORD,
            json!({ "s": ls.running, "e": [{ "eventType": "NOTE", "occurredAt": rfc3339(minutes_ago(1)), "payload": {}, "correctsId": ns.event }] }),
            "BAD_USER_INPUT",
            &[LAKESIDE_DOCTOR],
        ),
        (
            END,
            json!({ "id": ns.running, "at": rfc3339(minutes_ago(1)) }),
            "NOT_FOUND",
            &[LAKESIDE_DOCTOR],
        ),
        (
            SIGN,
            json!({ "id": ns.completed }),
            "NOT_FOUND",
            &[LAKESIDE_DOCTOR],
        ),
    ];
    for email in LAKESIDE_USERS {
        let token = app.login_as(email).await;
        for (query, vars, code, who) in &attempts {
            if !who.contains(&email) {
                continue;
            }
            let res = app.graphql(Some(&token), query, vars.clone()).await;
            assert_eq!(
                error_codes(&res),
                vec![code.to_string()],
                "{email}: {query}: {res}"
            );
            if *code == "BAD_USER_INPUT" {
                let message = res["errors"][0]["message"].as_str().unwrap_or_default();
                assert!(
                    message.starts_with("no such"),
                    "{email}: {query}: a foreign id looks like a missing one: {res}"
                );
            }
            let text = res.to_string();
            assert!(
                !text.contains("XJH418827301") && !text.contains("Jonathan"),
                "{email}: nothing of the row leaks: {res}"
            );
        }
    }
    assert_eq!(
        digest(&owner, ns.clinic).await,
        before,
        "Northside's rows changed"
    );
    let lakeside_after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM session_events WHERE session_id = $1")
            .bind(ls.running)
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(lakeside_after, lakeside_before);
}
