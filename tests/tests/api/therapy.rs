//! Therapy sessions: the visit from booking to a paid claim, units under
//! the 8-minute rule, authorizations consumed under concurrency, who may
//! start, record, end and sign a session, the lock a signature puts on it,
//! and the event batches' rules.

use std::collections::HashSet;
use std::time::Instant;

use chrono::{Duration, Utc};
use sea_orm::sqlx::{self, PgPool};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::{org, patient};
use crate::support::app::{TestApp, error_codes, first_error, spawn_app, spawn_app_with};
use crate::support::therapy::{
    ADMIN, DOCTOR, STAFF, billable_patient, checked_in_appointment, checked_in_appointments,
    completed_session, create_and_render_claim, data, end, id_of, minutes_ago, northside_okafor,
    provider_with_login, record, rfc3339, segments, sign, signed_session, start,
};

const SCHEDULE: &str =
    "mutation($i: ScheduleAppointmentInput!) { scheduleAppointment(input: $i) { id status } }";
const TRANSITION: &str = "mutation($id: UUID!, $to: AppointmentStatus!) { transitionAppointment(id: $id, to: $to) { id status } }";
const AUTHORIZE: &str = "mutation($i: CreateAuthorizationInput!) { createAuthorization(input: $i) {
    id authorizationNumber totalUnits usedUnits remainingUnits } }";
const RESERVE: &str = "mutation($id: UUID!, $n: Int!) { reserveAuthorizationUnits(authorizationId: $id, units: $n) { usedUnits remainingUnits } }";
const SESSION: &str = "query($id: UUID!) { session(id: $id) {
    id status units contentHash signedAt appointmentId patient { mrn } provider { npi }
    authorization { authorizationNumber usedUnits }
    events(first: 100) { edges { node { id eventType payload correctsId isAddendum } } } } }";
const ADD_CREDENTIAL: &str = "mutation($i: AddCredentialInput!) { addCredential(input: $i) {
    id kind name number issuingState validFrom validTo } }";

/// The clinic's day (Northside's time zone), `offset` days from today, as
/// an authorization's dates read it.
async fn clinic_day(owner: &PgPool, offset: i64) -> String {
    let today: chrono::NaiveDate = sqlx::query_scalar(
        "SELECT (now() AT TIME ZONE timezone)::date FROM organizations WHERE slug = 'northside'",
    )
    .fetch_one(owner)
    .await
    .expect("the clinic's day");
    (today + Duration::days(offset))
        .format("%Y-%m-%d")
        .to_string()
}

/// A 97110 authorization of `total` units for a patient, valid from
/// yesterday for a month (as staff).
async fn authorize(app: &TestApp, staff: &str, patient: Uuid, number: &str, total: i32) -> Uuid {
    let owner = app.db.owner().await;
    let res = app
        .graphql(
            Some(staff),
            AUTHORIZE,
            json!({ "i": { "patientId": patient, "payerName": "Hudson Valley Health",
                           "authorizationNumber": number, "serviceCode": "97110", "totalUnits": total,
                           "validFrom": clinic_day(&owner, -1).await, "validTo": clinic_day(&owner, 30).await } }),
        )
        .await;
    id_of(data(&res, "createAuthorization"))
}

async fn used_units(owner: &PgPool, authorization: Uuid) -> i32 {
    sqlx::query_scalar("SELECT used_units FROM payer_authorizations WHERE id = $1")
        .bind(authorization)
        .fetch_one(owner)
        .await
        .expect("an authorization")
}

async fn session_status(owner: &PgPool, session: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM therapy_sessions WHERE id = $1")
        .bind(session)
        .fetch_one(owner)
        .await
        .expect("a session")
}

async fn appointment_status(owner: &PgPool, appointment: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM appointments WHERE id = $1")
        .bind(appointment)
        .fetch_one(owner)
        .await
        .expect("an appointment")
}

async fn events_of(owner: &PgPool, session: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM session_events WHERE session_id = $1")
        .bind(session)
        .fetch_one(owner)
        .await
        .expect("counting events")
}

async fn sessions_at(owner: &PgPool, appointment: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM therapy_sessions WHERE appointment_id = $1")
        .bind(appointment)
        .fetch_one(owner)
        .await
        .expect("counting sessions")
}

fn is_sha256_hex(s: &Value) -> bool {
    s.as_str().is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[tokio::test]
async fn a_visit_goes_from_booking_to_a_paid_claim_through_the_api() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as(DOCTOR).await;
    let admin = app.login_as(ADMIN).await;

    // The front desk books tomorrow's visit and prepares the chart.
    let starts = (Utc::now() + Duration::days(1))
        .date_naive()
        .and_hms_opt(9, 0, 0)
        .unwrap()
        .and_utc();
    let res = app
        .graphql(
            Some(&staff),
            SCHEDULE,
            json!({ "i": { "patientId": marcus, "providerId": okafor, "startsAt": rfc3339(starts),
                           "endsAt": rfc3339(starts + Duration::hours(1)), "reason": "Therapeutic exercise" } }),
        )
        .await;
    let appointment = id_of(data(&res, "scheduleAppointment"));
    let res = app
        .graphql(
            Some(&staff),
            "mutation($id: UUID!, $a: AddressInput!) { updatePatient(id: $id, input: { address: $a }) { address { line1 line2 city state postalCode } } }",
            json!({ "id": marcus, "a": { "line1": "88 Lenox Avenue", "line2": "Apt 3", "city": "New York", "state": "NY", "postalCode": "10026-1234" } }),
        )
        .await;
    assert_eq!(
        data(&res, "updatePatient")["address"],
        json!({ "line1": "88 Lenox Avenue", "line2": "Apt 3", "city": "New York", "state": "NY", "postalCode": "100261234" }),
        "{res}"
    );
    let res = app
        .graphql(
            Some(&staff),
            "mutation($i: AddInsuranceInput!) { addInsurance(input: $i) { id memberId priority relationship isActive } }",
            json!({ "i": { "patientId": marcus, "payerName": "Hudson Valley Health", "payerId": "HVH01",
                           "memberId": "HVH-5550123", "groupNumber": "G-2200", "priority": "PRIMARY",
                           "effectiveFrom": "2025-01-01" } }),
        )
        .await;
    let coverage = data(&res, "addInsurance");
    assert_eq!(coverage["relationship"], "SELF", "{res}");
    let insurance = id_of(coverage);
    let res = app
        .graphql(
            Some(&staff),
            "mutation($i: AddDiagnosisInput!) { addDiagnosis(input: $i) { code isPrimary } }",
            json!({ "i": { "patientId": marcus, "code": "m5450", "description": "Low back pain",
                           "isPrimary": true, "diagnosedOn": "2026-01-15" } }),
        )
        .await;
    assert_eq!(
        data(&res, "addDiagnosis"),
        &json!({ "code": "M54.50", "isPrimary": true })
    );
    let authorization = authorize(&app, &staff, marcus, "HVH-PA-9001", 20).await;
    for to in ["CONFIRMED", "CHECKED_IN"] {
        let res = app
            .graphql(
                Some(&staff),
                TRANSITION,
                json!({ "id": appointment, "to": to }),
            )
            .await;
        assert_eq!(data(&res, "transitionAppointment")["status"], to);
    }

    // Dr. Okafor gives the care and records it.
    let started = minutes_ago(50);
    let res = start(
        &app,
        &doctor,
        appointment,
        "97110",
        Some(authorization),
        started,
    )
    .await;
    let session = data(&res, "startTherapySession");
    assert_eq!(session["status"], "IN_PROGRESS", "{res}");
    assert!(session["units"].is_null() && session["endedAt"].is_null());
    assert_eq!(session["appointmentId"], appointment.to_string());
    assert_eq!(session["modifiers"], json!(["GP"]));
    let session = id_of(session);
    let res = record(
        &app,
        &doctor,
        session,
        json!([
            { "eventType": "VITALS", "occurredAt": rfc3339(started + Duration::minutes(2)),
              "payload": { "painScore": 6, "bloodPressure": "128/82" } },
            { "eventType": "NOTE", "occurredAt": rfc3339(started + Duration::minutes(10)),
              "payload": { "text": "Pain at 6/10 on flexion." } },
            { "eventType": "INTERVENTION", "occurredAt": rfc3339(started + Duration::minutes(20)),
              "payload": { "exercise": "bird dog", "sets": 3, "reps": 10 } },
        ]),
    )
    .await;
    let events = data(&res, "recordSessionEvents").as_array().unwrap();
    assert_eq!(events.len(), 3, "{res}");
    assert!(
        events
            .iter()
            .all(|e| e["isAddendum"] == false && e["correctsId"].is_null())
    );
    assert_eq!(
        events[1]["payload"],
        json!({ "text": "Pain at 6/10 on flexion." })
    );
    let note = events[1]["id"].clone();
    let res = record(
        &app,
        &doctor,
        session,
        json!([{ "eventType": "NOTE", "occurredAt": rfc3339(started + Duration::minutes(40)),
                 "payload": { "text": "Pain at 5/10 on flexion, not 6/10." }, "correctsId": note }]),
    )
    .await;
    let correction = &data(&res, "recordSessionEvents")[0];
    assert_eq!(correction["correctsId"], note, "{res}");
    assert_eq!(correction["isAddendum"], false);

    let ended = minutes_ago(5);
    let res = end(&app, &doctor, session, ended).await;
    let ended_session = data(&res, "endTherapySession");
    assert_eq!(ended_session["status"], "COMPLETED", "{res}");
    assert_eq!(ended_session["units"], 3, "45 minutes are 3 units: {res}");
    assert_eq!(used_units(&owner, authorization).await, 3);
    assert_eq!(appointment_status(&owner, appointment).await, "COMPLETED");

    let res = sign(&app, &doctor, session).await;
    let signed = data(&res, "signTherapySession");
    assert_eq!(signed["status"], "SIGNED", "{res}");
    assert!(signed["signedAt"].is_string());
    assert!(is_sha256_hex(&signed["contentHash"]), "{res}");
    let recomputed: String = sqlx::query_scalar("SELECT app.session_content_hash($1)")
        .bind(session)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(signed["contentHash"], recomputed.as_str());

    let res = app
        .graphql(Some(&staff), SESSION, json!({ "id": session }))
        .await;
    let seen = data(&res, "session");
    assert_eq!(seen["patient"]["mrn"], "NS-0004", "{res}");
    assert_eq!(seen["provider"]["npi"], "1234567893");
    assert_eq!(
        seen["authorization"],
        json!({ "authorizationNumber": "HVH-PA-9001", "usedUnits": 3 })
    );
    let kinds: Vec<&str> = seen["events"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["VITALS", "NOTE", "INTERVENTION", "NOTE"],
        "in time order: {res}"
    );

    // The front desk bills it.
    let (claim, x12) = create_and_render_claim(&app, &staff, insurance, &[session]).await;
    assert_eq!(claim["totalChargeCents"], 3 * 4500, "{claim}");
    assert_eq!(claim["diagnosisCodes"], json!(["M54.50"]));
    assert_eq!(
        claim["lines"],
        json!([{ "lineNumber": 1, "serviceCode": "97110", "modifiers": ["GP"], "placeOfService": "11",
                 "serviceDate": claim["lines"][0]["serviceDate"], "units": 3, "chargeCents": 13500,
                 "diagnosisPointers": [1], "session": { "id": session.to_string() } }])
    );
    let segs = segments(&x12);
    let clm = format!("CLM*CG{:09}*135*", claim["controlNumber"].as_i64().unwrap());
    assert!(segs.iter().any(|s| s.starts_with(&clm)), "{clm} in {x12}");
    assert!(segs.contains(&"REF*G1*HVH-PA-9001".to_owned()), "{x12}");
    assert!(
        segs.iter()
            .any(|s| s.starts_with("SV1*HC:97110:GP*135*UN*3")),
        "{x12}"
    );
    assert!(
        segs.iter()
            .any(|s| s.starts_with("NM1*IL*1*JOHNSON*MARCUS") && s.ends_with("*MI*HVH-5550123")),
        "{x12}"
    );
    let claim = id_of(&claim);

    let res = app
        .graphql(
            Some(&staff),
            crate::support::therapy::SUBMIT,
            json!({ "id": claim }),
        )
        .await;
    let submitted = data(&res, "submitClaim");
    assert_eq!(submitted["status"], "SUBMITTED", "{res}");
    assert!(submitted["submittedAt"].is_string());
    let res = app
        .graphql(
            Some(&staff),
            crate::support::therapy::RESPOND,
            json!({ "id": claim, "i": { "status": "ACCEPTED", "payerClaimNumber": "HVH-2026-000777" } }),
        )
        .await;
    assert_eq!(data(&res, "recordClaimResponse")["status"], "ACCEPTED");
    let res = app
        .graphql(
            Some(&staff),
            crate::support::therapy::RESPOND,
            json!({ "id": claim, "i": { "status": "PAID", "paidCents": 12150, "note": "Paid at 90%" } }),
        )
        .await;
    let paid = data(&res, "recordClaimResponse");
    assert_eq!(paid["status"], "PAID", "{res}");
    assert_eq!(paid["paidCents"], 12150);
    assert_eq!(paid["payerClaimNumber"], "HVH-2026-000777");
    assert_eq!(paid["responseNote"], "Paid at 90%");

    // Each step is in the audit trail, and so is the preview of its 837P
    // (which shows the member id and the tax id in full).
    let res = app
        .graphql(
            Some(&admin),
            "query($id: UUID!) { auditEvents(first: 50, filter: { resourceType: \"claims\", resourceId: $id }) {
               nodes { action actorId changes } } }",
            json!({ "id": claim }),
        )
        .await;
    let mut trail: Vec<(String, Value)> = data(&res, "auditEvents")["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["action"].as_str().unwrap().to_owned(),
                n["changes"]["after"]["status"].clone(),
            )
        })
        .collect();
    trail.reverse();
    assert_eq!(
        trail,
        vec![
            ("CREATE".to_owned(), json!("DRAFT")),
            ("READ".to_owned(), Value::Null),
            ("UPDATE".to_owned(), json!("SUBMITTED")),
            ("UPDATE".to_owned(), json!("ACCEPTED")),
            ("UPDATE".to_owned(), json!("PAID")),
        ],
        "{res}"
    );
}

#[tokio::test]
async fn units_follow_the_eight_minute_rule_at_its_edges() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as(DOCTOR).await;
    let insurance = billable_patient(&app, &staff, marcus, Some("HVH-5550123")).await;
    let authorization = authorize(&app, &staff, marcus, "HVH-PA-EDGE", 20).await;

    let mut sessions = Vec::new();
    for (minutes, units) in [(7, 0), (8, 1), (22, 1), (23, 2)] {
        let appointment = checked_in_appointment(&owner, marcus, okafor).await;
        let started = minutes_ago(minutes + 10);
        let res = start(
            &app,
            &doctor,
            appointment,
            "97110",
            Some(authorization),
            started,
        )
        .await;
        let session = id_of(data(&res, "startTherapySession"));
        let res = end(&app, &doctor, session, started + Duration::minutes(minutes)).await;
        assert_eq!(
            data(&res, "endTherapySession")["units"],
            units,
            "{minutes} minutes: {res}"
        );
        let res = sign(&app, &doctor, session).await;
        assert_eq!(data(&res, "signTherapySession")["units"], units);
        sessions.push(session);
    }
    assert_eq!(
        used_units(&owner, authorization).await,
        4,
        "the 7-minute session consumed nothing"
    );

    // Nothing to bill for 7 minutes.
    let res =
        crate::support::therapy::try_create_claim(&app, &staff, insurance, &sessions[..1]).await;
    assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
    assert_eq!(first_error(&res)["field"], "sessionIds");
    let res = crate::support::therapy::try_create_claim(&app, &staff, insurance, &sessions).await;
    assert_eq!(
        first_error(&res)["field"],
        "sessionIds",
        "not even beside billable ones: {res}"
    );
    let claims: i64 = sqlx::query_scalar("SELECT count(*) FROM claims WHERE patient_id = $1")
        .bind(marcus)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(claims, 0);

    let (claim, _) = create_and_render_claim(&app, &staff, insurance, &sessions[1..]).await;
    assert_eq!(claim["totalChargeCents"], 4 * 4500, "{claim}");
    let units: Vec<&Value> = claim["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["units"])
        .collect();
    assert_eq!(units, vec![&json!(1), &json!(1), &json!(2)]);
}

#[tokio::test]
async fn a_part_of_a_minute_does_not_count_toward_a_unit() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let doctor = app.login_as(DOCTOR).await;
    // Minutes of care are whole minutes: 7 min 59 s is under 8 minutes,
    // 22 min 59 s under 23.
    for (seconds, units) in [(7 * 60 + 59, 0), (22 * 60 + 59, 1), (37 * 60 + 59, 2)] {
        let appointment = checked_in_appointment(&owner, marcus, okafor).await;
        let started = minutes_ago(60);
        let res = start(&app, &doctor, appointment, "97110", None, started).await;
        let session = id_of(data(&res, "startTherapySession"));
        let res = end(&app, &doctor, session, started + Duration::seconds(seconds)).await;
        assert_eq!(
            data(&res, "endTherapySession")["units"],
            units,
            "{} min {} s of care: {res}",
            seconds / 60,
            seconds % 60
        );
    }
}

#[tokio::test]
async fn a_hundred_concurrent_ends_never_overdraw_an_authorization() {
    let app = spawn_app_with(|c| {
        c.db_pool_size = 8;
        c.db_acquire_timeout_ms = 60_000;
    })
    .await;
    let owner = app.db.owner().await;
    let aisha = patient(&owner, "NS-0007").await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as(DOCTOR).await;
    // 12 units, 2 already used: 10 left.
    let authorization = authorize(&app, &staff, aisha, "HVH-PA-RACE", 12).await;
    let res = app
        .graphql(
            Some(&staff),
            RESERVE,
            json!({ "id": authorization, "n": 2 }),
        )
        .await;
    assert_eq!(
        data(&res, "reserveAuthorizationUnits")["remainingUnits"],
        10
    );

    let appointments = checked_in_appointments(&owner, aisha, okafor, 100).await;
    let started = minutes_ago(20);
    let starts = appointments.iter().map(|a| {
        let (app, doctor) = (&app, &doctor);
        async move { start(app, doctor, *a, "97110", Some(authorization), started).await }
    });
    let sessions: Vec<Uuid> = futures::future::join_all(starts)
        .await
        .iter()
        .map(|res| id_of(data(res, "startTherapySession")))
        .collect();
    assert_eq!(sessions.iter().collect::<HashSet<_>>().len(), 100);

    // Ten minutes each: one unit each.
    let ended = started + Duration::minutes(10);
    let clock = Instant::now();
    let ends = sessions.iter().map(|s| end(&app, &doctor, *s, ended));
    let results = futures::future::join_all(ends).await;
    let elapsed = clock.elapsed();

    let mut ended_ok = HashSet::new();
    let mut refused = HashSet::new();
    for (session, res) in sessions.iter().zip(&results) {
        if res.get("errors").is_none() {
            assert_eq!(res["data"]["endTherapySession"]["units"], 1, "{res}");
            ended_ok.insert(*session);
        } else {
            assert_eq!(error_codes(res), vec!["CONFLICT"], "{res}");
            assert_eq!(first_error(res)["reason"], "UNITS_EXHAUSTED", "{res}");
            refused.insert(*session);
        }
    }
    println!(
        "100 concurrent endTherapySession against 10 units left: {} ended, {} refused UNITS_EXHAUSTED, in {:?}",
        ended_ok.len(),
        refused.len(),
        elapsed
    );
    assert_eq!(ended_ok.len(), 10);
    assert_eq!(refused.len(), 90);
    assert_eq!(
        used_units(&owner, authorization).await,
        12,
        "exactly the total"
    );

    let rows: Vec<(Uuid, String, Option<i32>, String)> = sqlx::query_as(
        "SELECT s.id, s.status, s.units, a.status FROM therapy_sessions s
         JOIN appointments a ON a.id = s.appointment_id WHERE s.authorization_id = $1",
    )
    .bind(authorization)
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(rows.len(), 100);
    for (id, status, units, appointment) in rows {
        if ended_ok.contains(&id) {
            assert_eq!(
                (status.as_str(), units, appointment.as_str()),
                ("COMPLETED", Some(1), "COMPLETED")
            );
        } else {
            assert_eq!(
                (status.as_str(), units, appointment.as_str()),
                ("IN_PROGRESS", None, "CHECKED_IN"),
                "a refused end saved nothing"
            );
        }
    }
}

#[tokio::test]
async fn a_session_starts_once_and_only_from_a_checked_in_appointment() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let doctor = app.login_as(DOCTOR).await;
    let appointment = checked_in_appointment(&owner, marcus, okafor).await;
    sqlx::query("UPDATE appointments SET status = 'CONFIRMED' WHERE id = $1")
        .bind(appointment)
        .execute(&owner)
        .await
        .unwrap();
    let res = start(&app, &doctor, appointment, "97110", None, minutes_ago(10)).await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"], "{res}");
    assert_eq!(first_error(&res)["reason"], "APPOINTMENT_NOT_CHECKED_IN");
    assert_eq!(sessions_at(&owner, appointment).await, 0);

    sqlx::query("UPDATE appointments SET status = 'CHECKED_IN' WHERE id = $1")
        .bind(appointment)
        .execute(&owner)
        .await
        .unwrap();
    let res = start(&app, &doctor, appointment, "97110", None, minutes_ago(10)).await;
    data(&res, "startTherapySession");
    let res = start(&app, &doctor, appointment, "97110", None, minutes_ago(5)).await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"], "{res}");
    assert_eq!(first_error(&res)["reason"], "SESSION_EXISTS");
    assert_eq!(sessions_at(&owner, appointment).await, 1);

    let missing = Uuid::from(ulid::Ulid::generate());
    let res = start(&app, &doctor, missing, "97110", None, minutes_ago(5)).await;
    assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
    assert_eq!(first_error(&res)["field"], "appointmentId");
}

#[tokio::test]
async fn a_signed_session_is_locked_and_later_events_are_addenda() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let doctor = app.login_as(DOCTOR).await;

    // Not signed before it ends.
    let appointment = checked_in_appointment(&owner, marcus, okafor).await;
    let res = start(&app, &doctor, appointment, "97110", None, minutes_ago(30)).await;
    let running = id_of(data(&res, "startTherapySession"));
    let res = sign(&app, &doctor, running).await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"], "{res}");
    assert_eq!(first_error(&res)["reason"], "SESSION_NOT_ENDED");
    assert_eq!(session_status(&owner, running).await, "IN_PROGRESS");

    let session = signed_session(&app, &doctor, marcus, okafor, "97110", 30).await;
    let before: (String, Option<i32>, Option<chrono::DateTime<Utc>>, String) = sqlx::query_as(
        "SELECT content_hash, units, ended_at, status FROM therapy_sessions WHERE id = $1",
    )
    .bind(session)
    .fetch_one(&owner)
    .await
    .unwrap();

    let res = end(&app, &doctor, session, minutes_ago(1)).await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"], "{res}");
    assert_eq!(first_error(&res)["reason"], "SESSION_ENDED");
    let res = sign(&app, &doctor, session).await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"], "{res}");
    assert_eq!(first_error(&res)["reason"], "SESSION_SIGNED");

    let res = record(
        &app,
        &doctor,
        session,
        json!([{ "eventType": "NOTE", "occurredAt": rfc3339(minutes_ago(1)),
                 "payload": { "text": "Late entry: patient called, no new pain." } }]),
    )
    .await;
    let addendum = &data(&res, "recordSessionEvents")[0];
    assert_eq!(addendum["isAddendum"], true, "{res}");

    let after: (String, Option<i32>, Option<chrono::DateTime<Utc>>, String) = sqlx::query_as(
        "SELECT content_hash, units, ended_at, status FROM therapy_sessions WHERE id = $1",
    )
    .bind(session)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(after, before, "the signed session did not change");
    let recomputed: String = sqlx::query_scalar("SELECT app.session_content_hash($1)")
        .bind(session)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(
        recomputed, before.0,
        "the signature still covers exactly what it covered"
    );

    let res = app
        .graphql(Some(&doctor), SESSION, json!({ "id": session }))
        .await;
    let seen = data(&res, "session");
    assert_eq!(seen["contentHash"], before.0.as_str(), "{res}");
    let flags: Vec<&Value> = seen["events"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"]["isAddendum"])
        .collect();
    assert_eq!(flags, vec![&json!(false), &json!(true)], "{res}");
}

#[tokio::test]
async fn a_provider_needs_a_licence_of_the_clinic_state_valid_that_day() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let priya = patient(&owner, "NS-0005").await;
    let reyes = provider_with_login(
        &owner,
        "dr.reyes@northside.example",
        "Dr. Lucia Reyes",
        420_000_001,
    )
    .await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as("dr.reyes@northside.example").await;
    let appointment = checked_in_appointment(&owner, priya, reyes).await;
    let today = clinic_day(&owner, 0).await;
    let ten_days_on = clinic_day(&owner, 10).await;

    let try_start = async || {
        let res = start(&app, &doctor, appointment, "97110", None, minutes_ago(15)).await;
        (res, sessions_at(&owner, appointment).await)
    };
    let (res, sessions) = try_start().await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "no licence: {res}");
    assert_eq!(first_error(&res)["reason"], "NO_VALID_LICENSE");
    assert_eq!(sessions, 0);

    for (kind, state, from, to, what) in [
        (
            "LICENSE",
            Some("NY"),
            "2019-01-01",
            Some("2024-12-31"),
            "an expired licence",
        ),
        (
            "LICENSE",
            Some("NJ"),
            "2019-01-01",
            None,
            "another state's licence",
        ),
        (
            "LICENSE",
            Some("NY"),
            ten_days_on.as_str(),
            None,
            "a licence valid from ten days on",
        ),
        ("CERTIFICATION", None, "2019-01-01", None, "a certification"),
    ] {
        let res = app
            .graphql(
                Some(&staff),
                ADD_CREDENTIAL,
                json!({ "i": { "providerId": reyes, "kind": kind, "name": what,
                               "number": format!("N-{}", ulid::Ulid::generate()), "issuingState": state,
                               "validFrom": from, "validTo": to } }),
            )
            .await;
        data(&res, "addCredential");
        let (res, sessions) = try_start().await;
        assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{what}: {res}");
        assert_eq!(first_error(&res)["reason"], "NO_VALID_LICENSE", "{what}");
        assert_eq!(sessions, 0, "{what}");
    }

    // A licence valid today opens the door.
    let res = app
        .graphql(
            Some(&staff),
            ADD_CREDENTIAL,
            json!({ "i": { "providerId": reyes, "kind": "LICENSE", "name": "Physical Therapist",
                           "number": "NY-PT-90001", "issuingState": "NY", "validFrom": today } }),
        )
        .await;
    data(&res, "addCredential");
    let res = app
        .graphql(
            Some(&staff),
            "query($id: UUID!) { provider(id: $id) { credentials { kind issuingState } } }",
            json!({ "id": reyes }),
        )
        .await;
    assert_eq!(
        data(&res, "provider")["credentials"]
            .as_array()
            .map(Vec::len),
        Some(5),
        "{res}"
    );
    let (res, sessions) = try_start().await;
    assert_eq!(
        data(&res, "startTherapySession")["status"],
        "IN_PROGRESS",
        "{res}"
    );
    assert_eq!(sessions, 1);
}

#[tokio::test]
async fn only_the_rendering_provider_starts_records_ends_and_signs_a_session() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let reyes = provider_with_login(
        &owner,
        "dr.reyes@northside.example",
        "Dr. Lucia Reyes",
        420_000_002,
    )
    .await;
    sqlx::query(
        "INSERT INTO staff_credentials (organization_id, provider_id, kind, name, number, issuing_state, valid_from)
         SELECT organization_id, id, 'LICENSE', 'Physical Therapist', 'NY-PT-777', 'NY', DATE '2019-01-01'
         FROM providers WHERE id = $1",
    )
    .bind(reyes)
    .execute(&owner)
    .await
    .unwrap();
    let doctor = app.login_as(DOCTOR).await;
    let other = app.login_as("dr.reyes@northside.example").await;

    // Dr. Reyes may start her own sessions, not Dr. Okafor's.
    let hers = checked_in_appointment(&owner, marcus, reyes).await;
    let res = start(&app, &other, hers, "97110", None, minutes_ago(30)).await;
    data(&res, "startTherapySession");
    let his = checked_in_appointment(&owner, marcus, okafor).await;
    let res = start(&app, &other, his, "97110", None, minutes_ago(30)).await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(first_error(&res)["reason"], "NOT_RENDERING_PROVIDER");
    assert_eq!(sessions_at(&owner, his).await, 0);
    let theirs = checked_in_appointment(&owner, marcus, reyes).await;
    let res = start(&app, &doctor, theirs, "97110", None, minutes_ago(30)).await;
    assert_eq!(
        first_error(&res)["reason"],
        "NOT_RENDERING_PROVIDER",
        "{res}"
    );

    let running = {
        let res = start(&app, &doctor, his, "97110", None, minutes_ago(30)).await;
        id_of(data(&res, "startTherapySession"))
    };
    let completed = completed_session(&app, &doctor, marcus, okafor, "97110", 20).await;
    let events_before = events_of(&owner, running).await;

    let res = record(
        &app,
        &other,
        running,
        json!([{ "eventType": "NOTE", "occurredAt": rfc3339(minutes_ago(2)), "payload": { "text": "not mine" } }]),
    )
    .await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(first_error(&res)["reason"], "NOT_RENDERING_PROVIDER");
    assert_eq!(events_of(&owner, running).await, events_before);

    let res = end(&app, &other, running, minutes_ago(1)).await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(first_error(&res)["reason"], "NOT_RENDERING_PROVIDER");
    assert_eq!(session_status(&owner, running).await, "IN_PROGRESS");

    let res = sign(&app, &other, completed).await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(first_error(&res)["reason"], "NOT_RENDERING_PROVIDER");
    assert_eq!(session_status(&owner, completed).await, "COMPLETED");
}

#[tokio::test]
async fn staff_and_admins_do_not_write_sessions() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let doctor = app.login_as(DOCTOR).await;
    let appointment = checked_in_appointment(&owner, marcus, okafor).await;
    let running = {
        let other = checked_in_appointment(&owner, marcus, okafor).await;
        let res = start(&app, &doctor, other, "97110", None, minutes_ago(30)).await;
        id_of(data(&res, "startTherapySession"))
    };
    let completed = completed_session(&app, &doctor, marcus, okafor, "97110", 20).await;
    for email in [STAFF, ADMIN] {
        let token = app.login_as(email).await;
        let attempts = [
            start(&app, &token, appointment, "97110", None, minutes_ago(30)).await,
            record(
                &app,
                &token,
                running,
                json!([{ "eventType": "NOTE", "occurredAt": rfc3339(minutes_ago(2)), "payload": {} }]),
            )
            .await,
            end(&app, &token, running, minutes_ago(1)).await,
            sign(&app, &token, completed).await,
        ];
        for res in attempts {
            assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{email}: {res}");
            assert_eq!(first_error(&res)["reason"], "ROLE", "{email}: {res}");
        }
    }
    assert_eq!(sessions_at(&owner, appointment).await, 0);
    assert_eq!(session_status(&owner, running).await, "IN_PROGRESS");
    assert_eq!(events_of(&owner, running).await, 0);
    assert_eq!(session_status(&owner, completed).await, "COMPLETED");
}

/// An event for `recordSessionEvents`, a minute ago.
fn note(i: usize) -> Value {
    json!({ "eventType": "NOTE", "occurredAt": rfc3339(minutes_ago(1)), "payload": { "n": i } })
}

async fn running_session(app: &TestApp, owner: &PgPool, doctor: &str) -> Uuid {
    let marcus = patient(owner, "NS-0004").await;
    let okafor = northside_okafor(owner).await;
    let appointment = checked_in_appointment(owner, marcus, okafor).await;
    let res = start(app, doctor, appointment, "97110", None, minutes_ago(40)).await;
    id_of(data(&res, "startTherapySession"))
}

#[tokio::test]
async fn a_batch_holds_one_to_five_hundred_events() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let doctor = app.login_as(DOCTOR).await;
    let session = running_session(&app, &owner, &doctor).await;

    for n in [0, 501] {
        let res = record(
            &app,
            &doctor,
            session,
            Value::Array((0..n).map(note).collect()),
        )
        .await;
        assert_eq!(
            error_codes(&res),
            vec!["BAD_USER_INPUT"],
            "{n} events: {res}"
        );
        assert_eq!(first_error(&res)["field"], "events", "{n} events");
        assert_eq!(events_of(&owner, session).await, 0);
    }
    let res = record(
        &app,
        &doctor,
        session,
        Value::Array((0..500).map(note).collect()),
    )
    .await;
    let recorded = data(&res, "recordSessionEvents").as_array().unwrap();
    assert_eq!(recorded.len(), 500);
    let order: Vec<&Value> = recorded.iter().map(|e| &e["payload"]["n"]).collect();
    let expected: Vec<Value> = (0..500).map(|i| json!(i)).collect();
    assert_eq!(
        order,
        expected.iter().collect::<Vec<_>>(),
        "in the order given"
    );
    assert_eq!(events_of(&owner, session).await, 500);
}

#[tokio::test]
async fn a_batch_with_one_bad_event_records_nothing() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let doctor = app.login_as(DOCTOR).await;
    let session = running_session(&app, &owner, &doctor).await;

    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "eventType": "DANCE", "occurredAt": rfc3339(minutes_ago(1)), "payload": {} }),
            "events.eventType",
        ),
        (
            json!({ "eventType": "note", "occurredAt": rfc3339(minutes_ago(1)), "payload": {} }),
            "events.eventType",
        ),
        (
            json!({ "eventType": "NOTE", "occurredAt": rfc3339(minutes_ago(1)), "payload": "just text" }),
            "events.payload",
        ),
        (
            json!({ "eventType": "NOTE", "occurredAt": rfc3339(minutes_ago(1)), "payload": [1, 2] }),
            "events.payload",
        ),
        (
            json!({ "eventType": "NOTE", "occurredAt": rfc3339(minutes_ago(1)), "payload": 42 }),
            "events.payload",
        ),
        (
            json!({ "eventType": "NOTE", "occurredAt": rfc3339(minutes_ago(-60)), "payload": {} }),
            "events.occurredAt",
        ),
    ];
    for (bad, field) in cases {
        let res = record(
            &app,
            &doctor,
            session,
            json!([note(0), note(1), bad, note(3)]),
        )
        .await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{bad}: {res}");
        assert_eq!(first_error(&res)["field"], field, "{bad}: {res}");
        assert_eq!(events_of(&owner, session).await, 0, "{bad}: all or nothing");
    }
}

#[tokio::test]
async fn a_correction_of_another_sessions_event_is_refused_naming_correctsid() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let doctor = app.login_as(DOCTOR).await;
    let session = running_session(&app, &owner, &doctor).await;
    let other = running_session(&app, &owner, &doctor).await;
    let res = record(&app, &doctor, other, json!([note(0)])).await;
    let elsewhere = data(&res, "recordSessionEvents")[0]["id"].clone();

    let res = record(
        &app,
        &doctor,
        session,
        json!([note(0), { "eventType": "NOTE", "occurredAt": rfc3339(minutes_ago(1)), "payload": {}, "correctsId": elsewhere }]),
    )
    .await;
    assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
    assert_eq!(events_of(&owner, session).await, 0);
    assert_eq!(
        first_error(&res)["field"],
        "events.correctsId",
        "the field is named as the input names it: {res}"
    );
}

#[tokio::test]
async fn malformed_codes_are_refused_naming_their_field() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let doctor = app.login_as(DOCTOR).await;
    let staff = app.login_as(STAFF).await;
    let appointment = checked_in_appointment(&owner, marcus, okafor).await;

    let input = |patch: Value| {
        let mut i = json!({ "appointmentId": appointment, "serviceCode": "97110", "modifiers": ["GP"],
                            "placeOfService": "11", "startedAt": rfc3339(minutes_ago(10)) });
        for (k, v) in patch.as_object().unwrap() {
            i[k] = v.clone();
        }
        json!({ "i": i })
    };
    for (patch, field) in [
        (json!({ "serviceCode": "9711" }), "serviceCode"),
        (json!({ "serviceCode": "97-10" }), "serviceCode"),
        (json!({ "modifiers": ["G"] }), "modifiers"),
        (
            json!({ "modifiers": ["GP", "59", "KX", "GO", "XU"] }),
            "modifiers",
        ),
        (json!({ "placeOfService": "1A" }), "placeOfService"),
        (
            json!({ "startedAt": rfc3339(minutes_ago(-60)) }),
            "startedAt",
        ),
    ] {
        let res = app
            .graphql(
                Some(&doctor),
                crate::support::therapy::START,
                input(patch.clone()),
            )
            .await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{patch}: {res}");
        assert_eq!(first_error(&res)["field"], field, "{patch}: {res}");
    }
    assert_eq!(sessions_at(&owner, appointment).await, 0);

    for code in ["7F8.0", "F84.00000", "F8", "a€x", "F8€0"] {
        let res = app
            .graphql(
                Some(&staff),
                "mutation($i: AddDiagnosisInput!) { addDiagnosis(input: $i) { id } }",
                json!({ "i": { "patientId": marcus, "code": code, "diagnosedOn": "2025-01-01" } }),
            )
            .await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{code}: {res}");
        assert_eq!(first_error(&res)["field"], "code", "{code}");
    }

    let address = json!({ "line1": "1 Main Street", "city": "New York", "state": "NY", "postalCode": "10001" });
    for (patch, field) in [
        (json!({ "state": "ZZ" }), "address.state"),
        (json!({ "postalCode": "1000" }), "address.postalCode"),
        (json!({ "postalCode": "10001-12" }), "address.postalCode"),
    ] {
        let mut a = address.clone();
        for (k, v) in patch.as_object().unwrap() {
            a[k] = v.clone();
        }
        let res = app
            .graphql(
                Some(&staff),
                "mutation($id: UUID!, $a: AddressInput!) { updatePatient(id: $id, input: { address: $a }) { id } }",
                json!({ "id": marcus, "a": a }),
            )
            .await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{patch}: {res}");
        assert_eq!(first_error(&res)["field"], field, "{patch}");

        let res = app
            .graphql(
                Some(&staff),
                "mutation($i: AddInsuranceInput!) { addInsurance(input: $i) { id } }",
                json!({ "i": { "patientId": marcus, "payerName": "Hudson Valley Health", "payerId": "HVH01",
                               "memberId": "M-1", "priority": "SECONDARY", "effectiveFrom": "2025-01-01",
                               "subscriber": { "relationship": "SPOUSE", "firstName": "Dana", "lastName": "Johnson",
                                               "dateOfBirth": "1976-02-02", "sex": "FEMALE", "address": a } } }),
            )
            .await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{patch}: {res}");
        assert_eq!(
            first_error(&res)["field"],
            format!("subscriber.{field}"),
            "{patch}"
        );
    }
    let (address_line, coverages, diagnoses): (Option<String>, i64, i64) = sqlx::query_as(
        "SELECT p.address_line1,
                (SELECT count(*) FROM patient_insurances i WHERE i.patient_id = p.id),
                (SELECT count(*) FROM diagnoses d WHERE d.patient_id = p.id)
         FROM patients p WHERE p.id = $1",
    )
    .bind(marcus)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(
        (address_line, coverages, diagnoses),
        (None, 0, 0),
        "nothing was saved"
    );

    let res = app
        .graphql(
            Some(&staff),
            ADD_CREDENTIAL,
            json!({ "i": { "providerId": okafor, "kind": "LICENSE", "name": "Physician", "number": "X-1",
                           "issuingState": "N1", "validFrom": "2020-01-01" } }),
        )
        .await;
    assert_eq!(first_error(&res)["field"], "issuingState", "{res}");
    let res = app
        .graphql(
            Some(&staff),
            "mutation { setFee(serviceCode: \"ABC\", unitChargeCents: 100, effectiveFrom: \"2026-01-01\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(first_error(&res)["field"], "serviceCode", "{res}");
    let credentials: i64 =
        sqlx::query_scalar("SELECT count(*) FROM staff_credentials WHERE provider_id = $1")
            .bind(okafor)
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(credentials, 2, "only the demo's two");
}

#[tokio::test]
async fn a_session_outside_its_authorizations_dates_ends_with_nothing_saved() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as(DOCTOR).await;
    let res = app
        .graphql(
            Some(&staff),
            AUTHORIZE,
            json!({ "i": { "patientId": marcus, "payerName": "Hudson Valley Health",
                           "authorizationNumber": "HVH-PA-LATER", "serviceCode": "97110", "totalUnits": 10,
                           "validFrom": clinic_day(&owner, 2).await, "validTo": clinic_day(&owner, 30).await } }),
        )
        .await;
    let authorization = id_of(data(&res, "createAuthorization"));
    let appointment = checked_in_appointment(&owner, marcus, okafor).await;
    let started = minutes_ago(40);
    let res = start(
        &app,
        &doctor,
        appointment,
        "97110",
        Some(authorization),
        started,
    )
    .await;
    let session = id_of(data(&res, "startTherapySession"));
    let res = end(&app, &doctor, session, started + Duration::minutes(30)).await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"], "{res}");
    assert_eq!(
        first_error(&res)["reason"],
        "AUTHORIZATION_NOT_VALID_ON_DATE"
    );
    assert_eq!(used_units(&owner, authorization).await, 0);
    assert_eq!(session_status(&owner, session).await, "IN_PROGRESS");
    assert_eq!(appointment_status(&owner, appointment).await, "CHECKED_IN");
}

#[tokio::test]
async fn a_session_draws_only_on_an_authorization_of_its_patient_and_service() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let priya = patient(&owner, "NS-0005").await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as(DOCTOR).await;
    let hers = authorize(&app, &staff, priya, "HVH-PA-PRIYA", 10).await;
    let his = authorize(&app, &staff, marcus, "HVH-PA-MARCUS", 10).await;
    let appointment = checked_in_appointment(&owner, marcus, okafor).await;
    for (authorization, code, field) in [
        (hers, "97110", "authorizationId"),
        (his, "97153", "serviceCode"),
        (
            Uuid::from(ulid::Ulid::generate()),
            "97110",
            "authorizationId",
        ),
    ] {
        let res = start(
            &app,
            &doctor,
            appointment,
            code,
            Some(authorization),
            minutes_ago(20),
        )
        .await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
        assert_eq!(first_error(&res)["field"], field, "{res}");
    }
    assert_eq!(sessions_at(&owner, appointment).await, 0);
}

#[tokio::test]
async fn the_billing_state_decides_which_licence_counts() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let admin = app.login_as(ADMIN).await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as(DOCTOR).await;
    let set_state = async |token: &str, state: &str| {
        app.graphql(
            Some(token),
            "mutation($a: AddressInput!) { setBillingIdentity(input: { groupNpi: \"1230000006\", taxId: \"13-1234567\",
               phone: \"(201) 555-0100\", address: $a }) { billingIdentity { taxId phone address { state postalCode } } } }",
            json!({ "a": { "line1": "1 Harbor Plaza", "city": "Hoboken", "state": state, "postalCode": "07030-1234" } }),
        )
        .await
    };
    let res = set_state(&staff, "NJ").await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(first_error(&res)["reason"], "ROLE");

    let res = set_state(&admin, "NJ").await;
    assert_eq!(
        data(&res, "setBillingIdentity")["billingIdentity"],
        json!({ "taxId": "131234567", "phone": "2015550100",
                "address": { "state": "NJ", "postalCode": "070301234" } }),
        "{res}"
    );
    let appointment = checked_in_appointment(&owner, marcus, okafor).await;
    let res = start(&app, &doctor, appointment, "97110", None, minutes_ago(10)).await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(
        first_error(&res)["reason"],
        "NO_VALID_LICENSE",
        "an NY licence in an NJ clinic"
    );

    data(&set_state(&admin, "NY").await, "setBillingIdentity");
    let res = start(&app, &doctor, appointment, "97110", None, minutes_ago(10)).await;
    assert_eq!(data(&res, "startTherapySession")["status"], "IN_PROGRESS");
}

#[tokio::test]
async fn an_event_type_belongs_to_the_clinic_that_added_it() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let admin = app.login_as(ADMIN).await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as(DOCTOR).await;
    let add = "mutation($c: String!) { addSessionEventType(code: $c, description: \"Mood as the patient rates it\") { code description } }";

    let res = app.graphql(Some(&staff), add, json!({ "c": "MOOD" })).await;
    assert_eq!(first_error(&res)["reason"], "ROLE", "{res}");
    let res = app
        .graphql(Some(&admin), add, json!({ "c": "mood-1" }))
        .await;
    assert_eq!(first_error(&res)["field"], "code", "{res}");
    let res = app.graphql(Some(&admin), add, json!({ "c": "MOOD" })).await;
    assert_eq!(data(&res, "addSessionEventType")["code"], "MOOD");
    let res = app.graphql(Some(&admin), add, json!({ "c": "MOOD" })).await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"], "{res}");
    assert_eq!(first_error(&res)["reason"], "DUPLICATE_EVENT_TYPE");

    let session = running_session(&app, &owner, &doctor).await;
    let res = record(
        &app,
        &doctor,
        session,
        json!([{ "eventType": "MOOD", "occurredAt": rfc3339(minutes_ago(1)), "payload": { "rating": 7 } }]),
    )
    .await;
    assert_eq!(data(&res, "recordSessionEvents")[0]["eventType"], "MOOD");

    // Lakeside's catalogue does not have it.
    let lakeside_doctor = app.login_as("dr.lindqvist@lakeside.example").await;
    let res = app
        .graphql(
            Some(&lakeside_doctor),
            "{ organization { sessionEventTypes { code } } }",
            json!({}),
        )
        .await;
    let codes: Vec<&str> = data(&res, "organization")["sessionEventTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        vec![
            "BEHAVIOR",
            "GOAL_PROGRESS",
            "INTERVENTION",
            "NOTE",
            "VITALS"
        ]
    );
    let lakeside = org(&owner, "lakeside").await;
    let grace = patient(&owner, "LS-0004").await;
    let lindqvist = crate::database::fixtures::provider(&owner, lakeside, "1555555550").await;
    let appointment = checked_in_appointment(&owner, grace, lindqvist).await;
    let res = start(
        &app,
        &lakeside_doctor,
        appointment,
        "92507",
        None,
        minutes_ago(20),
    )
    .await;
    let theirs = id_of(data(&res, "startTherapySession"));
    let res = record(
        &app,
        &lakeside_doctor,
        theirs,
        json!([{ "eventType": "MOOD", "occurredAt": rfc3339(minutes_ago(1)), "payload": {} }]),
    )
    .await;
    assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
    assert_eq!(first_error(&res)["field"], "events.eventType");
    assert_eq!(events_of(&owner, theirs).await, 0);
}

#[tokio::test]
async fn a_payload_holds_at_most_sixteen_kib() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let doctor = app.login_as(DOCTOR).await;
    let session = running_session(&app, &owner, &doctor).await;
    let text = |n: usize| -> String {
        // Varied text, so that no compression makes it look small.
        (0..n)
            .map(|i| char::from(b'a' + ((i * 7 + i / 26) % 26) as u8))
            .collect()
    };
    let res = record(
        &app,
        &doctor,
        session,
        json!([{ "eventType": "NOTE", "occurredAt": rfc3339(minutes_ago(1)), "payload": { "text": text(20_000) } }]),
    )
    .await;
    assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
    assert_eq!(first_error(&res)["field"], "events.payload");
    assert_eq!(events_of(&owner, session).await, 0);
    let res = record(
        &app,
        &doctor,
        session,
        json!([{ "eventType": "NOTE", "occurredAt": rfc3339(minutes_ago(1)), "payload": { "text": text(12_000) } }]),
    )
    .await;
    data(&res, "recordSessionEvents");
    assert_eq!(events_of(&owner, session).await, 1);
}

#[tokio::test]
async fn sessions_are_listed_by_start_filtered_and_paged() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let doctor = app.login_as(DOCTOR).await;
    let staff = app.login_as(STAFF).await;
    let mut mine = Vec::new();
    for ago in [90, 60, 30] {
        let appointment = checked_in_appointment(&owner, marcus, okafor).await;
        let res = start(&app, &doctor, appointment, "97110", None, minutes_ago(ago)).await;
        mine.push(id_of(data(&res, "startTherapySession")).to_string());
    }
    let res = end(&app, &doctor, mine[0].parse().unwrap(), minutes_ago(80)).await;
    data(&res, "endTherapySession");

    let list = async |filter: Value, first: i64, after: Value| {
        app.graphql(
            Some(&staff),
            "query($f: SessionFilter, $first: Int, $after: String) { sessions(first: $first, after: $after, filter: $f) {
               totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } }",
            json!({ "f": filter, "first": first, "after": after }),
        )
        .await
    };
    let page = |res: &Value| -> Vec<String> {
        data(res, "sessions")["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let res = list(json!({ "patientId": marcus }), 2, Value::Null).await;
    assert_eq!(page(&res), mine[..2].to_vec(), "by start: {res}");
    assert_eq!(res["data"]["sessions"]["totalCount"], 3);
    assert_eq!(res["data"]["sessions"]["pageInfo"]["hasNextPage"], true);
    let cursor = res["data"]["sessions"]["pageInfo"]["endCursor"].clone();
    let res = list(json!({ "patientId": marcus }), 2, cursor).await;
    assert_eq!(page(&res), mine[2..].to_vec(), "{res}");
    assert_eq!(res["data"]["sessions"]["pageInfo"]["hasNextPage"], false);

    let res = list(
        json!({ "patientId": marcus, "status": "IN_PROGRESS" }),
        10,
        Value::Null,
    )
    .await;
    assert_eq!(page(&res), mine[1..].to_vec(), "{res}");
    let res = list(
        json!({ "from": rfc3339(minutes_ago(75)), "to": rfc3339(minutes_ago(45)) }),
        10,
        Value::Null,
    )
    .await;
    assert_eq!(page(&res), vec![mine[1].clone()], "{res}");
    assert_eq!(res["data"]["sessions"]["totalCount"], 1);
    let res = list(json!({ "providerId": okafor }), 10, Value::Null).await;
    assert_eq!(
        res["data"]["sessions"]["totalCount"], 4,
        "the demo's and these three: {res}"
    );

    let res = app
        .graphql(
            Some(&staff),
            "query($p: UUID!) { patient(id: $p) { sessions(first: 2) { totalCount pageInfo { hasNextPage } edges { node { id } } } } }",
            json!({ "p": marcus }),
        )
        .await;
    let nested = &data(&res, "patient")["sessions"];
    assert!(nested["totalCount"].is_null(), "{res}");
    assert_eq!(nested["pageInfo"]["hasNextPage"], true);
    assert_eq!(nested["edges"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn events_racing_a_signature_are_either_signed_or_addenda() {
    let app = spawn_app_with(|c| {
        c.db_pool_size = 8;
        c.db_acquire_timeout_ms = 60_000;
    })
    .await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let doctor = app.login_as(DOCTOR).await;
    let session = completed_session(&app, &doctor, marcus, okafor, "97110", 30).await;

    // The signature is sent amid the events.
    let mut calls: Vec<std::pin::Pin<Box<dyn Future<Output = Value> + '_>>> = (0..40)
        .map(|i| {
            Box::pin(record(&app, &doctor, session, json!([note(i)])))
                as std::pin::Pin<Box<dyn Future<Output = Value>>>
        })
        .collect();
    calls.insert(8, Box::pin(sign(&app, &doctor, session)));
    let mut results = futures::future::join_all(calls).await;
    let signed = results.remove(8);
    let signed = data(&signed, "signTherapySession");
    let mut addenda = 0;
    for res in &results {
        if data(res, "recordSessionEvents")[0]["isAddendum"] == true {
            addenda += 1;
        }
    }
    println!(
        "40 events racing a signature: {} signed, {addenda} addenda",
        40 - addenda
    );
    let (stored, recomputed, events, flagged): (String, String, i64, i64) = sqlx::query_as(
        "SELECT s.content_hash, app.session_content_hash(s.id),
                (SELECT count(*) FROM session_events e WHERE e.session_id = s.id),
                (SELECT count(*) FROM session_events e WHERE e.session_id = s.id AND e.is_addendum)
         FROM therapy_sessions s WHERE s.id = $1",
    )
    .bind(session)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(signed["contentHash"], stored.as_str());
    assert_eq!(
        recomputed, stored,
        "every event outside the signature is an addendum"
    );
    assert_eq!(events, 41, "the note of the session and the 40");
    assert_eq!(flagged, addenda);
}

#[tokio::test]
async fn clinical_records_refuse_duplicates_and_a_new_primary_demotes_the_old() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let jonathan = patient(&owner, "NS-0001").await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;

    let res = app
        .graphql(
            Some(&staff),
            ADD_CREDENTIAL,
            json!({ "i": { "providerId": okafor, "kind": "LICENSE", "name": "Physician and Surgeon",
                           "number": "NY-281734", "issuingState": "NY", "validFrom": "2018-07-01" } }),
        )
        .await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"], "{res}");
    assert_eq!(first_error(&res)["reason"], "DUPLICATE_CREDENTIAL");

    let res = app
        .graphql(
            Some(&staff),
            "mutation($i: AddInsuranceInput!) { addInsurance(input: $i) { id } }",
            json!({ "i": { "patientId": jonathan, "payerName": "Hudson Valley Health", "payerId": "HVH01",
                           "memberId": "HVH-2", "priority": "PRIMARY", "effectiveFrom": "2026-01-01" } }),
        )
        .await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"], "{res}");
    assert_eq!(first_error(&res)["reason"], "COVERAGE_PRIORITY_TAKEN");

    let diagnose = async |code: &str, primary: bool| {
        app.graphql(
            Some(&staff),
            "mutation($i: AddDiagnosisInput!) { addDiagnosis(input: $i) { code isPrimary } }",
            json!({ "i": { "patientId": jonathan, "code": code, "isPrimary": primary, "diagnosedOn": "2026-02-01" } }),
        )
        .await
    };
    let res = diagnose("M54.50", false).await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"], "{res}");
    assert_eq!(first_error(&res)["reason"], "DUPLICATE_DIAGNOSIS");
    let res = diagnose("F41.1", true).await;
    assert_eq!(
        data(&res, "addDiagnosis"),
        &json!({ "code": "F41.1", "isPrimary": true })
    );
    let res = app
        .graphql(
            Some(&staff),
            "query($p: UUID!) { patient(id: $p) { diagnoses { code isPrimary } } }",
            json!({ "p": jonathan }),
        )
        .await;
    assert_eq!(
        data(&res, "patient")["diagnoses"],
        json!([{ "code": "F41.1", "isPrimary": true }, { "code": "M54.50", "isPrimary": false },
               { "code": "M25.561", "isPrimary": false }]),
        "the new primary first: {res}"
    );
}

#[tokio::test]
async fn a_national_certification_is_recorded_once_per_provider() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let count = async || -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM staff_credentials WHERE provider_id = $1 AND number = 'ABFM-99102'",
        )
        .bind(okafor)
        .fetch_one(&owner)
        .await
        .unwrap()
    };
    assert_eq!(count().await, 1, "the demo's certification");
    // The same certification (no issuing state) again.
    let res = app
        .graphql(
            Some(&staff),
            ADD_CREDENTIAL,
            json!({ "i": { "providerId": okafor, "kind": "CERTIFICATION", "name": "Board Certified, Family Medicine",
                           "number": "ABFM-99102", "validFrom": "2019-01-01", "validTo": "2029-12-31" } }),
        )
        .await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"], "{res}");
    assert_eq!(first_error(&res)["reason"], "DUPLICATE_CREDENTIAL");
    assert_eq!(count().await, 1);
}

#[tokio::test]
async fn a_licence_is_valid_by_the_clinic_day_of_the_session() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let priya = patient(&owner, "NS-0005").await;
    let reyes = provider_with_login(
        &owner,
        "dr.reyes@northside.example",
        "Dr. Lucia Reyes",
        420_000_004,
    )
    .await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as("dr.reyes@northside.example").await;
    // Yesterday (UTC) at 03:30 UTC is the evening before in New York; at
    // 05:30 UTC it is already that day there.
    let utc_day = Utc::now().date_naive() - Duration::days(1);
    let last_valid_day = utc_day - Duration::days(1);
    let res = app
        .graphql(
            Some(&staff),
            ADD_CREDENTIAL,
            json!({ "i": { "providerId": reyes, "kind": "LICENSE", "name": "Physical Therapist",
                           "number": "NY-PT-31337", "issuingState": "NY", "validFrom": "2019-01-01",
                           "validTo": last_valid_day.to_string() } }),
        )
        .await;
    data(&res, "addCredential");

    let evening = utc_day.and_hms_opt(3, 30, 0).unwrap().and_utc();
    let appointment = checked_in_appointment(&owner, priya, reyes).await;
    let res = start(&app, &doctor, appointment, "97110", None, evening).await;
    assert_eq!(
        data(&res, "startTherapySession")["status"],
        "IN_PROGRESS",
        "{last_valid_day} in New York: {res}"
    );

    let after_midnight = utc_day.and_hms_opt(5, 30, 0).unwrap().and_utc();
    let appointment = checked_in_appointment(&owner, priya, reyes).await;
    let res = start(&app, &doctor, appointment, "97110", None, after_midnight).await;
    assert_eq!(
        error_codes(&res),
        vec!["FORBIDDEN"],
        "{utc_day} in New York: {res}"
    );
    assert_eq!(first_error(&res)["reason"], "NO_VALID_LICENSE");
    assert_eq!(sessions_at(&owner, appointment).await, 0);
}

#[tokio::test]
async fn a_session_ends_after_its_start_within_a_day_and_not_in_the_future() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let okafor = northside_okafor(&owner).await;
    let doctor = app.login_as(DOCTOR).await;
    let appointment = checked_in_appointment(&owner, marcus, okafor).await;
    let started = minutes_ago(25 * 60);
    let res = start(&app, &doctor, appointment, "97110", None, started).await;
    let session = id_of(data(&res, "startTherapySession"));
    for ended in [
        started,
        started - Duration::minutes(1),
        started + Duration::hours(24) + Duration::minutes(1),
        minutes_ago(-30),
    ] {
        let res = end(&app, &doctor, session, ended).await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{ended}: {res}");
        assert_eq!(first_error(&res)["field"], "endedAt", "{ended}: {res}");
        assert_eq!(session_status(&owner, session).await, "IN_PROGRESS");
    }
    let res = end(&app, &doctor, session, started + Duration::hours(24)).await;
    assert_eq!(
        data(&res, "endTherapySession")["units"],
        96,
        "24 hours are 96 units: {res}"
    );
    assert_eq!(appointment_status(&owner, appointment).await, "COMPLETED");
}
