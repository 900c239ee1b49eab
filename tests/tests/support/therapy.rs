//! Therapy sessions and claims through the API, for the tests of the
//! therapy loop: checked-in appointments (as owner fixtures), sessions
//! started, ended and signed by their provider, billable coverages, and
//! claims whose 837P is checked by pyx12 every time one is made.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, SubsecRound, Utc};
use sea_orm::sqlx::{self, PgPool};
use serde_json::{Value, json};
use uuid::Uuid;

use super::app::TestApp;
use super::x12::assert_valid_837;

pub const STAFF: &str = "frontdesk@northside.example";
pub const ADMIN: &str = "admin@northside.example";
pub const DOCTOR: &str = "dr.okafor@northside.example";
/// Dr. Okafor's NPI: the Northside provider with a login and an NY licence.
pub const OKAFOR_NPI: &str = "1234567893";

pub const START: &str = "mutation($i: StartTherapySessionInput!) { startTherapySession(input: $i) {
    id status serviceCode modifiers placeOfService startedAt endedAt units appointmentId } }";
pub const RECORD: &str = "mutation($s: UUID!, $e: [SessionEventInput!]!) { recordSessionEvents(sessionId: $s, events: $e) {
    id eventType occurredAt payload correctsId isAddendum recordedAt } }";
pub const END: &str =
    "mutation($id: UUID!, $at: DateTime) { endTherapySession(id: $id, endedAt: $at) {
    id status units startedAt endedAt } }";
pub const SIGN: &str =
    "mutation($id: UUID!) { signTherapySession(id: $id) { id status signedAt contentHash units } }";
pub const CREATE_CLAIM: &str = "mutation($i: CreateClaimInput!) { createClaim(input: $i) {
    id status controlNumber totalChargeCents paidCents diagnosisCodes submittedAt
    lines { lineNumber serviceCode modifiers placeOfService serviceDate units chargeCents diagnosisPointers session { id } } } }";
pub const SUBMIT: &str =
    "mutation($id: UUID!) { submitClaim(id: $id) { id status submittedAt totalChargeCents } }";
pub const RESPOND: &str =
    "mutation($id: UUID!, $i: ClaimResponseInput!) { recordClaimResponse(id: $id, input: $i) {
    id status paidCents payerClaimNumber responseNote respondedAt } }";
pub const X12: &str = "query($id: UUID!) { claim(id: $id) { id status x12 } }";

/// The instant `minutes` ago, to the second.
pub fn minutes_ago(minutes: i64) -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0) - Duration::minutes(minutes)
}

pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339()
}

/// The data of `field`, asserting the response has no error.
pub fn data<'a>(res: &'a Value, field: &str) -> &'a Value {
    assert!(res.get("errors").is_none(), "{field} refused: {res}");
    &res["data"][field]
}

/// The id of a returned object as a UUID.
pub fn id_of(object: &Value) -> Uuid {
    object["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an id in {object}"))
}

pub async fn northside_okafor(owner: &PgPool) -> Uuid {
    let org = crate::database::fixtures::org(owner, "northside").await;
    crate::database::fixtures::provider(owner, org, OKAFOR_NPI).await
}

/// A Northside user with the demo password and the HIPAA notice signed, a
/// PROVIDER membership and a provider record linked to the login; no
/// credential. Returns the provider's id.
pub async fn provider_with_login(owner: &PgPool, email: &str, name: &str, seed: u32) -> Uuid {
    let org = crate::database::fixtures::org(owner, "northside").await;
    let user: Uuid = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, display_name, timezone)
         SELECT $1, password_hash, $2, 'America/New_York' FROM users WHERE email = $3
         RETURNING id",
    )
    .bind(email)
    .bind(name)
    .bind(DOCTOR)
    .fetch_one(owner)
    .await
    .expect("a user");
    sqlx::query(
        "INSERT INTO user_consents (user_id, document_id)
         SELECT $1, id FROM consent_documents WHERE kind = 'HIPAA_NOTICE' AND is_active",
    )
    .bind(user)
    .execute(owner)
    .await
    .expect("their signature");
    sqlx::query(
        "INSERT INTO organization_memberships (organization_id, user_id, role) VALUES ($1, $2, 'PROVIDER')",
    )
    .bind(org)
    .bind(user)
    .execute(owner)
    .await
    .expect("a membership");
    sqlx::query_scalar(
        "INSERT INTO providers (organization_id, user_id, name, npi, state_licenses)
         VALUES ($1, $2, $3, $4, '[\"NY\"]') RETURNING id",
    )
    .bind(org)
    .bind(user)
    .bind(name)
    .bind(super::valid_npi(seed))
    .fetch_one(owner)
    .await
    .expect("a provider")
}

/// Hours ahead where fixture appointments go: far from the demo's and from
/// each other (one provider is never booked twice at once).
static NEXT_SLOT: AtomicI64 = AtomicI64::new(0);

/// `count` checked-in appointments of a patient with a provider, as the
/// owner (an appointment's insert is guarded by no trigger), on distinct
/// hours a year and more ahead.
pub async fn checked_in_appointments(
    owner: &PgPool,
    patient: Uuid,
    provider: Uuid,
    count: i64,
) -> Vec<Uuid> {
    let first = NEXT_SLOT.fetch_add(count, Ordering::Relaxed);
    sqlx::query_scalar(
        "INSERT INTO appointments (organization_id, patient_id, provider_id, starts_at, ends_at, reason, status)
         SELECT p.organization_id, p.id, $2,
                date_trunc('hour', now()) + interval '400 days' + g * interval '1 hour',
                date_trunc('hour', now()) + interval '400 days' + g * interval '1 hour' + interval '30 minutes',
                'Therapy', 'CHECKED_IN'
         FROM patients p CROSS JOIN generate_series($3::bigint, $4::bigint) AS g
         WHERE p.id = $1
         ORDER BY g
         RETURNING id",
    )
    .bind(patient)
    .bind(provider)
    .bind(first)
    .bind(first + count - 1)
    .fetch_all(owner)
    .await
    .expect("checked-in appointments")
}

pub async fn checked_in_appointment(owner: &PgPool, patient: Uuid, provider: Uuid) -> Uuid {
    checked_in_appointments(owner, patient, provider, 1)
        .await
        .pop()
        .expect("an appointment")
}

/// Starts a session (whole response).
pub async fn start(
    app: &TestApp,
    token: &str,
    appointment: Uuid,
    service_code: &str,
    authorization: Option<Uuid>,
    started_at: DateTime<Utc>,
) -> Value {
    app.graphql(
        Some(token),
        START,
        json!({ "i": { "appointmentId": appointment, "serviceCode": service_code, "modifiers": ["GP"],
                       "placeOfService": "11", "authorizationId": authorization,
                       "startedAt": rfc3339(started_at) } }),
    )
    .await
}

pub async fn end(app: &TestApp, token: &str, session: Uuid, ended_at: DateTime<Utc>) -> Value {
    app.graphql(
        Some(token),
        END,
        json!({ "id": session, "at": rfc3339(ended_at) }),
    )
    .await
}

pub async fn sign(app: &TestApp, token: &str, session: Uuid) -> Value {
    app.graphql(Some(token), SIGN, json!({ "id": session }))
        .await
}

/// Records events (whole response).
pub async fn record(app: &TestApp, token: &str, session: Uuid, events: Value) -> Value {
    app.graphql(Some(token), RECORD, json!({ "s": session, "e": events }))
        .await
}

/// A session of `minutes` (ended 5 minutes ago) at a new checked-in
/// appointment, with one note, not yet signed; started by the provider
/// logged in as `doctor`.
pub async fn completed_session(
    app: &TestApp,
    doctor: &str,
    patient: Uuid,
    provider: Uuid,
    service_code: &str,
    minutes: i64,
) -> Uuid {
    let owner = app.db.owner().await;
    let appointment = checked_in_appointment(&owner, patient, provider).await;
    let started = minutes_ago(minutes + 5);
    let res = start(app, doctor, appointment, service_code, None, started).await;
    let session = id_of(data(&res, "startTherapySession"));
    let res = record(
        app,
        doctor,
        session,
        json!([{ "eventType": "NOTE", "occurredAt": rfc3339(started + Duration::minutes(1)),
                 "payload": { "text": "Session under way." } }]),
    )
    .await;
    data(&res, "recordSessionEvents");
    let res = end(app, doctor, session, started + Duration::minutes(minutes)).await;
    assert_eq!(data(&res, "endTherapySession")["status"], "COMPLETED");
    session
}

/// [`completed_session`], then signed.
pub async fn signed_session(
    app: &TestApp,
    doctor: &str,
    patient: Uuid,
    provider: Uuid,
    service_code: &str,
    minutes: i64,
) -> Uuid {
    let session = completed_session(app, doctor, patient, provider, service_code, minutes).await;
    let res = sign(app, doctor, session).await;
    assert_eq!(data(&res, "signTherapySession")["status"], "SIGNED");
    session
}

/// Gives a patient what a claim needs, as staff: an address, a primary
/// self-insured coverage (with `member_id`, which may be missing) and a
/// primary diagnosis. Returns the coverage's id.
pub async fn billable_patient(
    app: &TestApp,
    staff: &str,
    patient: Uuid,
    member_id: Option<&str>,
) -> Uuid {
    let res = app
        .graphql(
            Some(staff),
            "mutation($id: UUID!, $a: AddressInput!) { updatePatient(id: $id, input: { address: $a }) { id address { line1 } } }",
            json!({ "id": patient, "a": { "line1": "41 Riverside Drive", "city": "New York", "state": "NY", "postalCode": "10024" } }),
        )
        .await;
    data(&res, "updatePatient");
    let res = app
        .graphql(
            Some(staff),
            "mutation($i: AddInsuranceInput!) { addInsurance(input: $i) { id memberId relationship } }",
            json!({ "i": { "patientId": patient, "payerName": "Hudson Valley Health", "payerId": "HVH01",
                           "memberId": member_id, "groupNumber": "GRP-100", "priority": "PRIMARY",
                           "effectiveFrom": "2025-01-01" } }),
        )
        .await;
    let insurance = id_of(data(&res, "addInsurance"));
    let res = app
        .graphql(
            Some(staff),
            "mutation($i: AddDiagnosisInput!) { addDiagnosis(input: $i) { id code } }",
            json!({ "i": { "patientId": patient, "code": "F84.0", "description": "Autistic disorder",
                           "isPrimary": true, "diagnosedOn": "2025-06-01" } }),
        )
        .await;
    data(&res, "addDiagnosis");
    insurance
}

/// Creates a claim (whole response).
pub async fn try_create_claim(
    app: &TestApp,
    token: &str,
    insurance: Uuid,
    sessions: &[Uuid],
) -> Value {
    app.graphql(
        Some(token),
        CREATE_CLAIM,
        json!({ "i": { "insuranceId": insurance, "sessionIds": sessions } }),
    )
    .await
}

/// A claim's 837P as the token's user (whole response).
pub async fn x12_of(app: &TestApp, token: &str, claim: Uuid) -> Value {
    app.graphql(Some(token), X12, json!({ "id": claim })).await
}

/// The 837P of a claim, checked by pyx12.
pub async fn render_valid(app: &TestApp, token: &str, claim: Uuid) -> String {
    let res = x12_of(app, token, claim).await;
    let text = data(&res, "claim")["x12"]
        .as_str()
        .unwrap_or_else(|| panic!("an 837P: {res}"))
        .to_owned();
    assert_valid_837(&text);
    text
}

/// Creates a claim, asserts it is created, and checks its 837P with pyx12.
/// Returns the claim as created and its 837P.
pub async fn create_and_render_claim(
    app: &TestApp,
    token: &str,
    insurance: Uuid,
    sessions: &[Uuid],
) -> (Value, String) {
    let res = try_create_claim(app, token, insurance, sessions).await;
    let claim = data(&res, "createClaim").clone();
    assert_eq!(claim["status"], "DRAFT", "{res}");
    let text = render_valid(app, token, id_of(&claim)).await;
    (claim, text)
}

/// The segments of an interchange, without their terminators.
pub fn segments(x12: &str) -> Vec<String> {
    x12.split('~')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}
