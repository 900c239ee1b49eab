//! Appointments: booking rules, the status machine, double booking under
//! concurrency, clinic-local days.

use sea_orm::sqlx;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::{org, patient, provider};
use crate::support::app::{TestApp, error_codes, first_error, spawn_app};

const SCHEDULE: &str = "mutation($i: ScheduleAppointmentInput!) { scheduleAppointment(input: $i) {
    id status startsAt endsAt type patient { mrn } provider { name } } }";
const TRANSITION: &str = "mutation($id: UUID!, $to: AppointmentStatus!, $r: String) {
    transitionAppointment(id: $id, to: $to, reason: $r) { id status cancelReason } }";

/// A slot `days` ahead at `hour`:00 UTC, 30 minutes long.
fn slot(days: i64, hour: u32) -> (String, String) {
    let day = (chrono::Utc::now() + chrono::Duration::days(days)).date_naive();
    let start = day.and_hms_opt(hour, 0, 0).unwrap().and_utc();
    let end = start + chrono::Duration::minutes(30);
    (start.to_rfc3339(), end.to_rfc3339())
}

async fn book(
    app: &TestApp,
    token: &str,
    patient: Uuid,
    provider: Uuid,
    (start, end): &(String, String),
) -> Value {
    app.graphql(
        Some(token),
        SCHEDULE,
        json!({ "i": { "patientId": patient, "providerId": provider, "startsAt": start, "endsAt": end, "reason": "Check-up" } }),
    )
    .await
}

#[tokio::test]
async fn an_appointment_walks_the_status_machine_and_refuses_other_moves() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let (eleanor, okafor) = (
        patient(&owner, "NS-0003").await,
        provider(&owner, a, "1234567893").await,
    );
    let token = app.login_as("frontdesk@northside.example").await;

    let res = book(&app, &token, eleanor, okafor, &slot(10, 15)).await;
    let booked = &res["data"]["scheduleAppointment"];
    assert_eq!(booked["status"], "SCHEDULED", "{res}");
    assert_eq!(booked["type"], "IN_PERSON");
    assert!(
        booked["startsAt"].as_str().unwrap().ends_with("+00:00"),
        "instants come with an offset"
    );
    let id = booked["id"].clone();

    let res = app
        .graphql(
            Some(&token),
            TRANSITION,
            json!({ "id": id, "to": "COMPLETED" }),
        )
        .await;
    assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"]);
    assert_eq!(first_error(&res)["field"], "to");

    for to in ["CONFIRMED", "CHECKED_IN", "COMPLETED"] {
        let res = app
            .graphql(Some(&token), TRANSITION, json!({ "id": id, "to": to }))
            .await;
        assert_eq!(res["data"]["transitionAppointment"]["status"], to, "{res}");
    }
    let res = app
        .graphql(
            Some(&token),
            TRANSITION,
            json!({ "id": id, "to": "CANCELLED", "r": "late" }),
        )
        .await;
    assert_eq!(
        first_error(&res)["field"],
        "to",
        "a completed visit cannot be cancelled"
    );
}

#[tokio::test]
async fn cancelling_needs_a_reason_and_frees_the_slot() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let okafor = provider(&owner, a, "1234567893").await;
    let (eleanor, marcus) = (
        patient(&owner, "NS-0003").await,
        patient(&owner, "NS-0004").await,
    );
    let token = app.login_as("frontdesk@northside.example").await;
    let when = slot(11, 14);
    let id = book(&app, &token, eleanor, okafor, &when).await["data"]["scheduleAppointment"]["id"]
        .clone();

    let res = app
        .graphql(
            Some(&token),
            TRANSITION,
            json!({ "id": id, "to": "CANCELLED" }),
        )
        .await;
    assert_eq!(first_error(&res)["field"], "reason");
    let res = app
        .graphql(
            Some(&token),
            TRANSITION,
            json!({ "id": id, "to": "CANCELLED", "r": "Patient is travelling" }),
        )
        .await;
    assert_eq!(
        res["data"]["transitionAppointment"],
        json!({ "id": id, "status": "CANCELLED", "cancelReason": "Patient is travelling" })
    );
    let res = book(&app, &token, marcus, okafor, &when).await;
    assert_eq!(
        res["data"]["scheduleAppointment"]["status"], "SCHEDULED",
        "{res}"
    );
}

#[tokio::test]
async fn a_double_booking_is_a_conflict() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let okafor = provider(&owner, a, "1234567893").await;
    let token = app.login_as("frontdesk@northside.example").await;
    let when = slot(12, 9);
    book(
        &app,
        &token,
        patient(&owner, "NS-0003").await,
        okafor,
        &when,
    )
    .await;
    let res = book(
        &app,
        &token,
        patient(&owner, "NS-0004").await,
        okafor,
        &when,
    )
    .await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"]);
    assert_eq!(first_error(&res)["reason"], "DOUBLE_BOOKED");
}

#[tokio::test]
async fn twenty_racing_bookings_of_one_slot_leave_exactly_one_appointment() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let hale = provider(&owner, a, "1987654328").await;
    let patients: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM patients WHERE organization_id = $1")
            .bind(a)
            .fetch_all(&owner)
            .await
            .unwrap();
    let token = app.login_as("frontdesk@northside.example").await;
    let when = slot(13, 16);
    let calls = (0..20).map(|i| book(&app, &token, patients[i % patients.len()], hale, &when));
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.get("errors").is_none()).count();
    for r in &results {
        if r.get("errors").is_some() {
            assert_eq!(first_error(r)["reason"], "DOUBLE_BOOKED", "{r}");
        }
    }
    assert_eq!(ok, 1);
    let booked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM appointments WHERE provider_id = $1 AND starts_at = $2::timestamptz",
    )
    .bind(hale)
    .bind(&when.0)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(booked, 1);
}

#[tokio::test]
async fn only_enrolled_patients_and_active_providers_of_the_clinic_can_be_booked() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let (a, b) = (
        org(&owner, "northside").await,
        org(&owner, "lakeside").await,
    );
    let okafor = provider(&owner, a, "1234567893").await;
    let mensah = provider(&owner, a, "1765432103").await;
    let lakeside_doctor = provider(&owner, b, "1333333338").await;
    let (marcus, kenji) = (
        patient(&owner, "NS-0004").await,
        patient(&owner, "NS-0006").await,
    );
    let token = app.login_as("admin@northside.example").await;
    app.graphql(
        Some(&token),
        "mutation($id: UUID!) { dischargePatient(id: $id) { status } }",
        json!({ "id": kenji }),
    )
    .await;
    sqlx::query("UPDATE providers SET is_active = false WHERE id = $1")
        .bind(mensah)
        .execute(&owner)
        .await
        .unwrap();

    for (patient, provider, field) in [
        (kenji, okafor, "patientId"),
        (marcus, mensah, "providerId"),
        (marcus, lakeside_doctor, "providerId"),
        (patient(&owner, "LS-0002").await, okafor, "patientId"),
    ] {
        let res = book(&app, &token, patient, provider, &slot(14, 10)).await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
        assert_eq!(first_error(&res)["field"], field);
    }
    let res = book(&app, &token, marcus, okafor, &slot(-1, 10)).await;
    assert_eq!(
        first_error(&res)["field"],
        "startsAt",
        "the past cannot be booked"
    );
}

#[tokio::test]
async fn a_day_filter_counts_days_in_the_clinic_time_zone() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let (marcus, okafor) = (
        patient(&owner, "NS-0004").await,
        provider(&owner, a, "1234567893").await,
    );
    // 03:30 UTC on 8 January is 22:30 on 7 January in New York.
    sqlx::query(
        "INSERT INTO appointments (organization_id, patient_id, provider_id, starts_at, ends_at) \
         VALUES ($1, $2, $3, '2030-01-08T03:30:00Z', '2030-01-08T04:00:00Z')",
    )
    .bind(a)
    .bind(marcus)
    .bind(okafor)
    .execute(&owner)
    .await
    .unwrap();
    let token = app.login_as("frontdesk@northside.example").await;
    let on = |day: &'static str| {
        let (app, token) = (&app, &token);
        async move {
            app.graphql(
                Some(token),
                "query($d: Date!) { organization { timezone } appointments(filter: { on: $d }) { totalCount edges { node { startsAt } } } }",
                json!({ "d": day }),
            )
            .await
        }
    };
    let seventh = on("2030-01-07").await;
    assert_eq!(
        seventh["data"]["organization"]["timezone"],
        "America/New_York"
    );
    assert_eq!(
        seventh["data"]["appointments"]["totalCount"], 1,
        "{seventh}"
    );
    assert_eq!(
        seventh["data"]["appointments"]["edges"][0]["node"]["startsAt"],
        "2030-01-08T03:30:00+00:00"
    );
    assert_eq!(
        on("2030-01-08").await["data"]["appointments"]["totalCount"],
        0
    );
}

#[tokio::test]
async fn patient_and_provider_appointments_page_from_an_instant() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let (jonathan, okafor) = (
        patient(&owner, "NS-0001").await,
        provider(&owner, a, "1234567893").await,
    );
    let token = app.login_as("admin@northside.example").await;
    for day in [20, 21, 22] {
        book(&app, &token, jonathan, okafor, &slot(day, 11)).await;
    }
    let res = app
        .graphql(
            Some(&token),
            "query($p: UUID!, $v: UUID!, $from: DateTime!) {
               patient(id: $p) { appointments(first: 2, from: $from) { pageInfo { hasNextPage endCursor } edges { node { startsAt } } } }
               provider(id: $v) { appointments(first: 10, from: $from) { edges { node { patient { mrn } } } } } }",
            json!({ "p": jonathan, "v": okafor, "from": slot(19, 0).0 }),
        )
        .await;
    let page = &res["data"]["patient"]["appointments"];
    assert_eq!(page["edges"].as_array().unwrap().len(), 2, "{res}");
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let next = app
        .graphql(
            Some(&token),
            "query($p: UUID!, $after: String!, $from: DateTime!) { patient(id: $p) { appointments(first: 2, after: $after, from: $from) { pageInfo { hasNextPage } edges { node { startsAt } } } } }",
            json!({ "p": jonathan, "after": page["pageInfo"]["endCursor"], "from": slot(19, 0).0 }),
        )
        .await;
    let rest = &next["data"]["patient"]["appointments"];
    assert_eq!(rest["edges"].as_array().unwrap().len(), 1, "{next}");
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);
    assert_eq!(
        res["data"]["provider"]["appointments"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn clinic_a_cannot_see_or_move_clinic_b_appointments() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let b = org(&owner, "lakeside").await;
    let b_appointment: Uuid =
        sqlx::query_scalar("SELECT id FROM appointments WHERE organization_id = $1 LIMIT 1")
            .bind(b)
            .fetch_one(&owner)
            .await
            .unwrap();
    let token = app.login_as("admin@northside.example").await;
    let list = app
        .graphql(
            Some(&token),
            "query($v: UUID!) { all: appointments(first: 100) { edges { node { patient { mrn } } } } theirs: appointments(filter: { providerId: $v }) { totalCount } }",
            json!({ "v": provider(&owner, b, "1333333338").await }),
        )
        .await;
    let mrns: Vec<&str> = list["data"]["all"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["patient"]["mrn"].as_str().unwrap())
        .collect();
    assert!(
        !mrns.is_empty() && mrns.iter().all(|m| m.starts_with("NS-")),
        "{mrns:?}"
    );
    assert_eq!(list["data"]["theirs"]["totalCount"], 0);
    let res = app
        .graphql(
            Some(&token),
            TRANSITION,
            json!({ "id": b_appointment, "to": "CANCELLED", "r": "x" }),
        )
        .await;
    assert_eq!(error_codes(&res), vec!["NOT_FOUND"]);
    let status: String = sqlx::query_scalar("SELECT status FROM appointments WHERE id = $1")
        .bind(b_appointment)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(status, "SCHEDULED");
}
