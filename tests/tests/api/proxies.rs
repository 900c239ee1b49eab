//! The proxy matrix: a parent or guardian reaches only the patients they
//! were granted, only the parts their flags allow, only while the grant is
//! live — and a patient holding their own chart sees all of it, at every
//! clinic where they have one.

use sea_orm::sqlx::{self, PgPool};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::{org, patient, provider, user};
use crate::support::app::{TestApp, error_codes, first_error, spawn_app};

const SCHEDULE: &str = "mutation($i: ScheduleAppointmentInput!) { scheduleAppointment(input: $i) {
    id status startsAt patient { mrn } provider { name } } }";
const GRANT: &str = "mutation($i: GrantProxyAccessInput!) { grantProxyAccess(input: $i) {
    id relationship canViewProfile canViewAppointments canScheduleAppointments canViewBilling
    isActive pending invitedEmail revokedAt proxyUser { email } } }";
const ACCEPT: &str =
    "mutation($id: UUID!) { acceptProxyInvitation(id: $id) { id organizationName } }";
const REVOKE: &str =
    "mutation($id: UUID!) { revokeProxyAccess(id: $id) { id revokedAt isActive } }";
const PROXIES: &str = "query($p: UUID!) { patient(id: $p) { proxies {
    id isActive revokedAt expiresAt canViewProfile proxyUser { email } } } }";

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

/// Signs the active HIPAA notice as the token's user.
async fn sign_hipaa(app: &TestApp, token: &str) {
    let docs = app
        .graphql(
            Some(token),
            "{ consentDocuments { id kind version } }",
            json!({}),
        )
        .await;
    let id = docs["data"]["consentDocuments"]
        .as_array()
        .unwrap_or_else(|| panic!("consent documents: {docs}"))
        .iter()
        .find(|d| d["kind"] == "HIPAA_NOTICE")
        .unwrap_or_else(|| panic!("an active HIPAA notice: {docs}"))["id"]
        .clone();
    let res = app
        .graphql(
            Some(token),
            "mutation($d: UUID!) { signConsent(documentId: $d) { signedAt } }",
            json!({ "d": id }),
        )
        .await;
    assert!(
        res["data"]["signConsent"]["signedAt"].is_string(),
        "signing: {res}"
    );
}

/// Logs in without naming a clinic; returns the whole response.
async fn try_login(app: &TestApp, email: &str, org: Option<Uuid>) -> Value {
    app.graphql(
        None,
        "mutation($e: String!, $p: String!, $o: UUID) { login(email: $e, password: $p, organizationId: $o) { token } }",
        json!({ "e": email, "p": crate::support::app::DEMO_PASSWORD, "o": org }),
    )
    .await
}

async fn count(owner: &PgPool, sql: &'static str, id: Uuid) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(owner)
        .await
        .expect("counting")
}

async fn appointments_of(owner: &PgPool, patient: Uuid) -> i64 {
    count(
        owner,
        "SELECT count(*) FROM appointments WHERE patient_id = $1",
        patient,
    )
    .await
}

/// Every MRN anywhere in a response.
fn mrns(v: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("mrn", Some(s)) => out.push(s.to_owned()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

fn ids_of(connection: &Value) -> Vec<Value> {
    connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("a connection: {connection}"))
        .iter()
        .map(|e| e["node"]["id"].clone())
        .collect()
}

/// A caregate user with the demo password and the HIPAA notice signed, who
/// may act nowhere yet.
async fn new_user(owner: &PgPool, email: &str) -> Uuid {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, display_name, timezone)
         SELECT $1, password_hash, 'Ravi Raman', 'America/New_York' FROM users
         WHERE email = 'maria.garcia@example.com'
         RETURNING id",
    )
    .bind(email)
    .fetch_one(owner)
    .await
    .expect("a new user");
    sqlx::query(
        "INSERT INTO user_consents (user_id, document_id)
         SELECT $1, id FROM consent_documents WHERE kind = 'HIPAA_NOTICE' AND is_active",
    )
    .bind(id)
    .execute(owner)
    .await
    .expect("their signature");
    id
}

#[tokio::test]
async fn ingrid_sees_and_books_for_noah_but_not_his_billing_nor_his_proxies() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let b = org(&owner, "lakeside").await;
    let noah = patient(&owner, "LS-0003").await;
    let rahman = provider(&owner, b, "1333333338").await;
    let token = app.login_as("ingrid.andersson@example.com").await;

    let me = app
        .graphql(
            Some(&token),
            "{ me { role consentRequired organization { slug } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me["data"]["me"],
        json!({ "role": "PORTAL", "consentRequired": false, "organization": { "slug": "lakeside" } }),
        "{me}"
    );

    // She may book for him.
    let before = appointments_of(&owner, noah).await;
    let res = book(&app, &token, noah, rahman, &slot(30, 10)).await;
    let booked = &res["data"]["scheduleAppointment"];
    assert_eq!(booked["status"], "SCHEDULED", "{res}");
    assert_eq!(booked["patient"]["mrn"], "LS-0003", "{res}");
    assert_eq!(booked["provider"]["name"], "Dr. Fatima Rahman", "{res}");
    assert_eq!(appointments_of(&owner, noah).await, before + 1);
    let booked_id = booked["id"].clone();

    // She sees him, and his appointments, and no one else.
    let res = app
        .graphql(
            Some(&token),
            "query($p: UUID!) {
               patient(id: $p) { id mrn firstName appointments { edges { node { id reason } } } }
               patients(first: 100) { totalCount edges { node { mrn } } }
               appointments(first: 100) { totalCount edges { node { id patient { mrn } } } }
             }",
            json!({ "p": noah }),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    assert_eq!(res["data"]["patient"]["mrn"], "LS-0003", "{res}");
    assert_eq!(res["data"]["patient"]["firstName"], "Noah");
    assert_eq!(
        ids_of(&res["data"]["patient"]["appointments"]),
        vec![booked_id.clone()]
    );
    assert_eq!(res["data"]["patients"]["totalCount"], 1, "{res}");
    assert_eq!(mrns(&res["data"]["patients"]), vec!["LS-0003"]);
    assert_eq!(res["data"]["appointments"]["totalCount"], 1, "{res}");
    assert_eq!(
        ids_of(&res["data"]["appointments"]),
        vec![booked_id.clone()]
    );

    // Billing is not hers to see.
    let res = app
        .graphql(
            Some(&token),
            "query($p: UUID!) { patient(id: $p) { mrn authorizations { id authorizationNumber } } }",
            json!({ "p": noah }),
        )
        .await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(first_error(&res)["reason"], "PROXY_SCOPE", "{res}");
    assert!(
        !res.to_string().contains("PSM-77310"),
        "no authorization leaks: {res}"
    );

    // Nor who else may act for him.
    let res = app
        .graphql(Some(&token), PROXIES, json!({ "p": noah }))
        .await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert!(
        !res.to_string().contains("ingrid.andersson"),
        "no grant leaks: {res}"
    );
}

#[tokio::test]
async fn maria_after_signing_sees_sofia_and_her_appointments_but_may_not_book_for_her() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let sofia = patient(&owner, "NS-0002").await;
    let okafor = provider(&owner, a, "1234567893").await;
    let token = app.login_as("maria.garcia@example.com").await;
    sign_hipaa(&app, &token).await;

    let res = app
        .graphql(
            Some(&token),
            "query($p: UUID!) { patient(id: $p) { mrn firstName
                 appointments { edges { node { reason status provider { name } } } } } }",
            json!({ "p": sofia }),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    assert_eq!(res["data"]["patient"]["mrn"], "NS-0002", "{res}");
    assert_eq!(
        res["data"]["patient"]["appointments"]["edges"],
        json!([{ "node": { "reason": "School vaccination", "status": "SCHEDULED",
                           "provider": { "name": "Dr. Amara Okafor" } } }]),
        "{res}"
    );

    let before_sofia = appointments_of(&owner, sofia).await;
    let before_all: i64 = sqlx::query_scalar("SELECT count(*) FROM appointments")
        .fetch_one(&owner)
        .await
        .unwrap();
    let res = book(&app, &token, sofia, okafor, &slot(30, 10)).await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(first_error(&res)["reason"], "PROXY_SCOPE", "{res}");
    assert!(res["data"].is_null(), "{res}");
    assert_eq!(appointments_of(&owner, sofia).await, before_sofia);
    let after_all: i64 = sqlx::query_scalar("SELECT count(*) FROM appointments")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(after_all, before_all, "nothing was inserted");
}

#[tokio::test]
async fn a_proxy_sees_no_other_patient_of_her_clinic_nor_any_of_another_clinic() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let b = org(&owner, "lakeside").await;
    let jonathan = patient(&owner, "NS-0001").await;
    let noah = patient(&owner, "LS-0003").await;
    let token = app.login_as("maria.garcia@example.com").await;
    sign_hipaa(&app, &token).await;

    let res = app
        .graphql(
            Some(&token),
            "query($j: UUID!, $n: UUID!) {
               sameClinic: patient(id: $j) { id mrn }
               otherClinic: patient(id: $n) { id mrn }
               patients(first: 100) { totalCount edges { node { mrn } } }
               search: patients(filter: { search: \"jonathan\" }) { totalCount edges { node { mrn } } }
               appointments(first: 100) { totalCount edges { node { patient { mrn } } } }
               hisAppointments: appointments(filter: { patientId: $j }) { totalCount edges { node { id } } }
             }",
            json!({ "j": jonathan, "n": noah }),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    assert!(res["data"]["sameClinic"].is_null(), "{res}");
    assert!(res["data"]["otherClinic"].is_null(), "{res}");
    assert_eq!(res["data"]["patients"]["totalCount"], 1);
    assert_eq!(mrns(&res["data"]["patients"]), vec!["NS-0002"]);
    assert_eq!(res["data"]["search"]["totalCount"], 0, "{res}");
    assert!(mrns(&res["data"]["search"]).is_empty());
    assert_eq!(res["data"]["appointments"]["totalCount"], 1, "{res}");
    assert_eq!(mrns(&res["data"]["appointments"]), vec!["NS-0002"]);
    assert_eq!(res["data"]["hisAppointments"]["totalCount"], 0, "{res}");
    assert_eq!(res["data"]["hisAppointments"]["edges"], json!([]));

    // Nor through her daughter's doctor.
    let a = org(&owner, "northside").await;
    let okafor = provider(&owner, a, "1234567893").await;
    let res = app
        .graphql(
            Some(&token),
            "query($v: UUID!) { provider(id: $v) { name patients(first: 50) { edges { node { mrn } } } } }",
            json!({ "v": okafor }),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    assert_eq!(res["data"]["provider"]["name"], "Dr. Amara Okafor");
    assert_eq!(mrns(&res["data"]["provider"]["patients"]), vec!["NS-0002"]);
    let res = app
        .graphql(
            Some(&token),
            "query($v: UUID!) { provider(id: $v) { appointments(first: 50) { edges { node { reason patient { mrn } } } } } }",
            json!({ "v": okafor }),
        )
        .await;
    let text = res.to_string();
    assert!(
        !text.contains("Annual physical") && !text.contains("NS-0001"),
        "another patient's appointment through the provider: {res}"
    );

    // She has nothing at Lakeside: she cannot even log in there.
    let res = try_login(&app, "maria.garcia@example.com", Some(b)).await;
    assert_eq!(error_codes(&res), vec!["UNAUTHENTICATED"], "{res}");
    assert!(res["data"].is_null(), "no token: {res}");
}

#[tokio::test]
async fn each_flag_opens_only_its_own_part_of_the_chart() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let priya = patient(&owner, "NS-0005").await;
    let nguyen = provider(&owner, a, "1456789019").await;
    let email = "ravi.raman@example.com";
    new_user(&owner, email).await;
    let staff = app.login_as("frontdesk@northside.example").await;

    // Nowhere to act yet.
    let res = try_login(&app, email, None).await;
    assert_eq!(error_codes(&res), vec!["UNAUTHENTICATED"], "{res}");

    let res = book(&app, &staff, priya, nguyen, &slot(20, 15)).await;
    let visit = res["data"]["scheduleAppointment"]["id"].clone();
    assert!(visit.is_string(), "{res}");

    // Profile only.
    let res = app
        .graphql(
            Some(&staff),
            GRANT,
            json!({ "i": { "patientId": priya, "proxyEmail": email, "relationship": "CAREGIVER",
                           "canViewProfile": true } }),
        )
        .await;
    let grant = &res["data"]["grantProxyAccess"];
    assert_eq!(grant["canViewProfile"], true, "{res}");
    assert_eq!(grant["canViewAppointments"], false);
    assert_eq!(grant["canScheduleAppointments"], false);
    assert_eq!(grant["canViewBilling"], false);
    assert_eq!(grant["relationship"], "CAREGIVER");
    // Ravi has no tie to the clinic yet: an invitation, showing only the
    // email typed, until he accepts it.
    assert_eq!(grant["pending"], true, "{res}");
    assert_eq!(grant["isActive"], false);
    assert!(grant["proxyUser"].is_null(), "{res}");
    assert_eq!(grant["invitedEmail"], email);
    let grant_id = grant["id"].clone();

    let proxy = app.login_as(email).await;
    let res = app
        .graphql(Some(&proxy), "{ patients { totalCount } }", json!({}))
        .await;
    assert_eq!(
        res["data"]["patients"]["totalCount"], 0,
        "nothing before accepting: {res}"
    );
    let res = app
        .graphql(Some(&proxy), ACCEPT, json!({ "id": grant_id }))
        .await;
    assert_eq!(
        res["data"]["acceptProxyInvitation"]["organizationName"], "Northside Family Clinic",
        "{res}"
    );
    let res = app
        .graphql(
            Some(&proxy),
            "query($p: UUID!) {
               me { role }
               patient(id: $p) { mrn contactMethods { value } }
               patients { totalCount }
               appointments(filter: { patientId: $p }) { totalCount edges { node { id } } }
             }",
            json!({ "p": priya }),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    assert_eq!(res["data"]["me"]["role"], "PORTAL");
    assert_eq!(res["data"]["patient"]["mrn"], "NS-0005", "{res}");
    assert_eq!(
        res["data"]["patient"]["contactMethods"],
        json!([{ "value": "priya.raman@example.com" }])
    );
    assert_eq!(res["data"]["patients"]["totalCount"], 1);
    assert_eq!(
        res["data"]["appointments"]["totalCount"], 0,
        "no appointments without the appointments flag: {res}"
    );
    assert_eq!(res["data"]["appointments"]["edges"], json!([]));

    let res = app
        .graphql(
            Some(&proxy),
            "query($p: UUID!) { patient(id: $p) { mrn appointments { edges { node { id } } } } }",
            json!({ "p": priya }),
        )
        .await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(first_error(&res)["reason"], "PROXY_SCOPE");
    assert!(!res.to_string().contains(visit.as_str().unwrap()), "{res}");

    let before = appointments_of(&owner, priya).await;
    let res = book(&app, &proxy, priya, nguyen, &slot(21, 15)).await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(appointments_of(&owner, priya).await, before);

    // Appointments only.
    let res = app
        .graphql(Some(&staff), REVOKE, json!({ "id": grant_id }))
        .await;
    assert!(
        res["data"]["revokeProxyAccess"]["revokedAt"].is_string(),
        "{res}"
    );
    let res = app
        .graphql(
            Some(&staff),
            GRANT,
            json!({ "i": { "patientId": priya, "proxyEmail": email, "canViewAppointments": true } }),
        )
        .await;
    let grant = &res["data"]["grantProxyAccess"];
    assert_eq!(grant["canViewProfile"], false, "{res}");
    assert_eq!(grant["canViewAppointments"], true);
    assert_eq!(
        grant["relationship"], "GUARDIAN",
        "the default relationship"
    );

    let proxy = app.login_as(email).await;
    let res = app
        .graphql(
            Some(&proxy),
            "query($p: UUID!) {
               patient(id: $p) { mrn }
               patients { totalCount edges { node { mrn } } }
               appointments(filter: { patientId: $p }) {
                 totalCount edges { node { id reason patient { mrn } provider { name } } } }
             }",
            json!({ "p": priya }),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    assert!(
        res["data"]["patient"].is_null(),
        "no profile without the profile flag: {res}"
    );
    assert_eq!(res["data"]["patients"]["totalCount"], 0, "{res}");
    assert_eq!(res["data"]["appointments"]["totalCount"], 1, "{res}");
    assert_eq!(
        res["data"]["appointments"]["edges"],
        json!([{ "node": { "id": visit, "reason": "Check-up", "patient": null,
                           "provider": { "name": "Dr. Chloe Nguyen" } } }]),
        "the appointment, without the chart: {res}"
    );

    let res = book(&app, &proxy, priya, nguyen, &slot(22, 15)).await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(appointments_of(&owner, priya).await, before);
}

#[tokio::test]
async fn an_expired_grant_no_longer_reaches_the_patient() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let sofia = patient(&owner, "NS-0002").await;
    let priya = patient(&owner, "NS-0005").await;
    let maria = user(&owner, "maria.garcia@example.com").await;
    let token = app.login_as("maria.garcia@example.com").await;
    sign_hipaa(&app, &token).await;
    let query = "query($p: UUID!) { patient(id: $p) { mrn } }";
    let res = app
        .graphql(Some(&token), query, json!({ "p": sofia }))
        .await;
    assert_eq!(res["data"]["patient"]["mrn"], "NS-0002", "{res}");

    sqlx::query(
        "UPDATE proxy_assignments
         SET granted_at = now() - interval '2 days', expires_at = now() - interval '1 day'
         WHERE proxy_user_id = $1",
    )
    .bind(maria)
    .execute(&owner)
    .await
    .unwrap();

    let (status, res) = app
        .post(
            Some(&token),
            &json!({ "query": query, "variables": { "p": sofia } }),
        )
        .await;
    assert_eq!(status, 401, "{res}");
    assert_eq!(error_codes(&res), vec!["UNAUTHENTICATED"]);
    assert!(!res.to_string().contains("NS-0002"), "{res}");
    let res = try_login(&app, "maria.garcia@example.com", None).await;
    assert_eq!(error_codes(&res), vec!["UNAUTHENTICATED"], "{res}");

    let staff = app.login_as("frontdesk@northside.example").await;
    let res = app
        .graphql(Some(&staff), PROXIES, json!({ "p": sofia }))
        .await;
    let grants = &res["data"]["patient"]["proxies"];
    assert_eq!(grants.as_array().map(Vec::len), Some(1), "{res}");
    assert_eq!(grants[0]["isActive"], false, "{res}");
    assert!(grants[0]["revokedAt"].is_null());
    assert!(grants[0]["expiresAt"].is_string());

    // A grant cannot be born expired.
    let before = count(
        &owner,
        "SELECT count(*) FROM proxy_assignments WHERE patient_id = $1",
        priya,
    )
    .await;
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let res = app
        .graphql(
            Some(&staff),
            GRANT,
            json!({ "i": { "patientId": priya, "proxyEmail": "jonathan.smith@example.com",
                           "canViewProfile": true, "expiresAt": past } }),
        )
        .await;
    assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
    assert_eq!(first_error(&res)["field"], "expiresAt");
    let after = count(
        &owner,
        "SELECT count(*) FROM proxy_assignments WHERE patient_id = $1",
        priya,
    )
    .await;
    assert_eq!(after, before);
}

#[tokio::test]
async fn a_grant_reaches_the_patient_only_from_its_start() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let sofia = patient(&owner, "NS-0002").await;
    let maria = user(&owner, "maria.garcia@example.com").await;
    let token = app.login_as("maria.garcia@example.com").await;
    sign_hipaa(&app, &token).await;
    let set_start = async |sql: &'static str| {
        sqlx::query(sql).bind(maria).execute(&owner).await.unwrap();
    };
    let query = json!({ "query": "query($p: UUID!) { patient(id: $p) { mrn } }", "variables": { "p": sofia } });

    set_start(
        "UPDATE proxy_assignments SET granted_at = now() + interval '1 day' WHERE proxy_user_id = $1",
    )
    .await;
    let (status, res) = app.post(Some(&token), &query).await;
    assert_eq!(status, 401, "not yet in force: {res}");
    assert_eq!(error_codes(&res), vec!["UNAUTHENTICATED"]);
    let res = try_login(&app, "maria.garcia@example.com", None).await;
    assert_eq!(error_codes(&res), vec!["UNAUTHENTICATED"], "{res}");

    set_start(
        "UPDATE proxy_assignments SET granted_at = now() - interval '1 minute' WHERE proxy_user_id = $1",
    )
    .await;
    let (status, res) = app.post(Some(&token), &query).await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(res["data"]["patient"]["mrn"], "NS-0002", "{res}");
}

#[tokio::test]
async fn revoking_a_grant_locks_the_proxy_out_at_once_and_happens_once() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let sofia = patient(&owner, "NS-0002").await;
    let maria = app.login_as("maria.garcia@example.com").await;
    sign_hipaa(&app, &maria).await;
    let query = "query($p: UUID!) { patient(id: $p) { mrn } }";
    let res = app
        .graphql(Some(&maria), query, json!({ "p": sofia }))
        .await;
    assert_eq!(res["data"]["patient"]["mrn"], "NS-0002", "{res}");

    let staff = app.login_as("frontdesk@northside.example").await;
    let res = app
        .graphql(Some(&staff), PROXIES, json!({ "p": sofia }))
        .await;
    let grants = res["data"]["patient"]["proxies"]
        .as_array()
        .unwrap_or_else(|| panic!("{res}"))
        .clone();
    assert_eq!(grants.len(), 1, "{res}");
    assert_eq!(grants[0]["proxyUser"]["email"], "maria.garcia@example.com");
    assert_eq!(grants[0]["isActive"], true);
    assert!(grants[0]["revokedAt"].is_null());
    let id = grants[0]["id"].clone();

    let res = app.graphql(Some(&staff), REVOKE, json!({ "id": id })).await;
    assert_eq!(res["data"]["revokeProxyAccess"]["id"], id, "{res}");
    assert!(
        res["data"]["revokeProxyAccess"]["revokedAt"].is_string(),
        "{res}"
    );
    assert_eq!(res["data"]["revokeProxyAccess"]["isActive"], false);

    // Her token was good a moment ago; it was her only access.
    let (status, res) = app
        .post(
            Some(&maria),
            &json!({ "query": query, "variables": { "p": sofia } }),
        )
        .await;
    assert_eq!(status, 401, "{res}");
    assert_eq!(error_codes(&res), vec!["UNAUTHENTICATED"]);
    assert!(!res.to_string().contains("NS-0002"), "{res}");
    let res = try_login(&app, "maria.garcia@example.com", None).await;
    assert_eq!(error_codes(&res), vec!["UNAUTHENTICATED"], "{res}");

    let res = app
        .graphql(Some(&staff), PROXIES, json!({ "p": sofia }))
        .await;
    let grants = &res["data"]["patient"]["proxies"];
    assert_eq!(grants.as_array().map(Vec::len), Some(1), "{res}");
    assert_eq!(grants[0]["id"], id);
    assert!(grants[0]["revokedAt"].is_string(), "{res}");
    assert_eq!(grants[0]["isActive"], false);

    let res = app.graphql(Some(&staff), REVOKE, json!({ "id": id })).await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"], "{res}");
    assert_eq!(first_error(&res)["reason"], "ALREADY_REVOKED");
}

#[tokio::test]
async fn only_admin_or_staff_of_the_patients_clinic_may_grant_or_revoke() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let sofia = patient(&owner, "NS-0002").await;
    let noah = patient(&owner, "LS-0003").await;
    let grants = async || -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM proxy_assignments")
            .fetch_one(&owner)
            .await
            .unwrap()
    };
    let before = grants().await;
    let input = |patient: Uuid| {
        json!({ "i": { "patientId": patient, "proxyEmail": "jonathan.smith@example.com",
                       "canViewProfile": true, "canViewBilling": true } })
    };

    let doctor = app.login_as("dr.okafor@northside.example").await;
    let res = app.graphql(Some(&doctor), GRANT, input(sofia)).await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(first_error(&res)["reason"], "ROLE");

    let ingrid = app.login_as("ingrid.andersson@example.com").await;
    let res = app.graphql(Some(&ingrid), GRANT, input(noah)).await;
    assert_eq!(
        error_codes(&res),
        vec!["FORBIDDEN"],
        "a proxy grants nothing: {res}"
    );

    for other in ["frontdesk@lakeside.example", "admin@lakeside.example"] {
        let token = app.login_as(other).await;
        let res = app.graphql(Some(&token), GRANT, input(sofia)).await;
        let codes = error_codes(&res);
        let refused = match codes.as_slice() {
            [code] if code == "NOT_FOUND" => true,
            [code] if code == "BAD_USER_INPUT" => first_error(&res)["field"] == "patientId",
            _ => false,
        };
        assert!(
            refused,
            "{other} granting for another clinic's patient: {res}"
        );
        assert!(res["data"].is_null(), "{res}");
    }
    assert_eq!(grants().await, before, "nothing was inserted");

    // Revoking is theirs too.
    let maria_grant: Uuid =
        sqlx::query_scalar("SELECT id FROM proxy_assignments WHERE patient_id = $1")
            .bind(sofia)
            .fetch_one(&owner)
            .await
            .unwrap();
    let res = app
        .graphql(Some(&doctor), REVOKE, json!({ "id": maria_grant }))
        .await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    let lakeside = app.login_as("admin@lakeside.example").await;
    let res = app
        .graphql(Some(&lakeside), REVOKE, json!({ "id": maria_grant }))
        .await;
    assert_eq!(error_codes(&res), vec!["NOT_FOUND"], "{res}");
    let revoked: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT revoked_at FROM proxy_assignments WHERE id = $1")
            .bind(maria_grant)
            .fetch_one(&owner)
            .await
            .unwrap();
    assert!(revoked.is_none(), "the grant is still live");
}

#[tokio::test]
async fn a_patient_holding_their_own_chart_sees_it_at_each_clinic() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let b = org(&owner, "lakeside").await;
    let query = "{
        me { role organization { slug } }
        patients(first: 5) { totalCount edges { node { id mrn
            primaryProvider { name }
            careTeam { role provider { name } }
            appointments(first: 10) { edges { node { reason provider { name } } } } } } }
    }";
    let expected = [
        (
            a,
            "northside",
            "NS-0001",
            "Dr. Amara Okafor",
            vec![
                ("Dr. Amara Okafor", "PRIMARY"),
                ("Dr. Benjamin Hale", "SPECIALIST"),
                ("Dr. Daniel Mensah", "CONSULTANT"),
            ],
            vec![
                "Therapeutic exercise, lower back",
                "Annual physical",
                "Blood pressure follow-up",
            ],
        ),
        (
            b,
            "lakeside",
            "LS-0001",
            "Dr. Erik Lindqvist",
            vec![
                ("Dr. Erik Lindqvist", "PRIMARY"),
                ("Dr. Gabriel Costa", "SPECIALIST"),
            ],
            vec!["Travel consultation"],
        ),
    ];
    for (clinic, slug, mrn, primary, team, visits) in expected {
        let token = app
            .login_in("jonathan.smith@example.com", Some(clinic))
            .await;
        let res = app.graphql(Some(&token), query, json!({})).await;
        assert!(res.get("errors").is_none(), "{slug}: {res}");
        assert_eq!(res["data"]["me"]["role"], "PORTAL");
        assert_eq!(res["data"]["me"]["organization"]["slug"], slug);
        assert_eq!(res["data"]["patients"]["totalCount"], 1, "{slug}: {res}");
        let chart = &res["data"]["patients"]["edges"][0]["node"];
        assert_eq!(chart["mrn"], mrn);
        assert_eq!(chart["primaryProvider"]["name"], primary);
        let mut got: Vec<(String, String)> = chart["careTeam"]
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
        got.sort();
        let want: Vec<(String, String)> = team
            .iter()
            .map(|(n, r)| ((*n).to_owned(), (*r).to_owned()))
            .collect();
        assert_eq!(got, want, "{slug}");
        let reasons: Vec<&str> = chart["appointments"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["reason"].as_str().unwrap())
            .collect();
        assert_eq!(reasons, visits, "{slug}");

        // The chart at the other clinic is not reachable from this session.
        let other_mrn = if mrn == "NS-0001" {
            "LS-0001"
        } else {
            "NS-0001"
        };
        let other = patient(&owner, other_mrn).await;
        let res = app
            .graphql(
                Some(&token),
                "query($p: UUID!) { patient(id: $p) { mrn } }",
                json!({ "p": other }),
            )
            .await;
        assert_eq!(
            res["data"],
            json!({ "patient": null }),
            "{slug} -> {other_mrn}"
        );
    }
}

#[tokio::test]
async fn a_proxy_sees_the_clinic_but_not_its_counts() {
    let app = spawn_app().await;
    let token = app.login_as("ingrid.andersson@example.com").await;
    let query = "{ organization { name memberCount patientCount } }";
    let res = app.graphql(Some(&token), query, json!({})).await;
    assert_eq!(
        res["data"]["organization"],
        json!({ "name": "Lakeside Pediatrics & Family Medicine", "memberCount": null, "patientCount": null })
    );
    let staff = app.login_as("admin@lakeside.example").await;
    let res = app.graphql(Some(&staff), query, json!({})).await;
    assert_eq!(res["data"]["organization"]["patientCount"], 6, "{res}");
}

/// A grant's answer with what differs between any two grants (ids, times)
/// taken out.
fn shape(grant: &Value) -> Value {
    let mut g = grant.clone();
    g["id"] = json!("[id]");
    g["invitedEmail"] = json!("[email]");
    g
}

#[tokio::test]
async fn granting_to_an_unknown_email_and_to_another_clinics_user_answers_alike() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let sofia = patient(&owner, "NS-0002").await;
    let staff = app.login_as("frontdesk@northside.example").await;
    let grant = async |email: &str| {
        app.graphql(
            Some(&staff),
            GRANT,
            json!({ "i": { "patientId": sofia, "proxyEmail": email, "canViewProfile": true } }),
        )
        .await
    };
    let unknown = grant("nobody-at-all@example.com").await;
    let elsewhere = grant("admin@lakeside.example").await;
    let (u, e) = (
        &unknown["data"]["grantProxyAccess"],
        &elsewhere["data"]["grantProxyAccess"],
    );
    assert!(unknown["errors"].is_null(), "{unknown}");
    assert_eq!(shape(u), shape(e), "the answers tell the two apart");
    assert_eq!(u["pending"], true);
    assert!(
        e["proxyUser"].is_null(),
        "no name of someone without a tie: {elsewhere}"
    );
    assert_eq!(e["invitedEmail"], "admin@lakeside.example");

    // Nor does the patient's grant list tell them apart.
    let res = app
        .graphql(Some(&staff), PROXIES, json!({ "p": sofia }))
        .await;
    let text = res.to_string();
    assert!(!text.contains("Lakeside"), "{res}");

    // The invited person sees the clinic, not the patient, and accepts.
    let lakeside_admin = app.login_as("admin@lakeside.example").await;
    let res = app
        .graphql(
            Some(&lakeside_admin),
            "{ myProxyInvitations { id organizationName relationship } }",
            json!({}),
        )
        .await;
    let invitations = res["data"]["myProxyInvitations"]
        .as_array()
        .expect("a list")
        .clone();
    assert_eq!(invitations.len(), 1, "{res}");
    assert_eq!(
        invitations[0]["organizationName"],
        "Northside Family Clinic"
    );
    assert!(!res.to_string().contains("Sofia"), "{res}");

    // Nobody else can accept it.
    let other = app.login_as("frontdesk@lakeside.example").await;
    let res = app
        .graphql(Some(&other), ACCEPT, json!({ "id": invitations[0]["id"] }))
        .await;
    assert_eq!(error_codes(&res), vec!["NOT_FOUND"], "{res}");

    let res = app
        .graphql(
            Some(&lakeside_admin),
            ACCEPT,
            json!({ "id": invitations[0]["id"] }),
        )
        .await;
    assert!(res["errors"].is_null(), "{res}");
    // Now tied to Northside as Sofia's proxy: switching there shows her.
    let northside = org(&owner, "northside").await;
    let res = app
        .graphql(
            Some(&lakeside_admin),
            "mutation($o: UUID!) { switchOrganization(organizationId: $o) { token viewer { role } } }",
            json!({ "o": northside }),
        )
        .await;
    assert_eq!(
        res["data"]["switchOrganization"]["viewer"]["role"], "PORTAL",
        "{res}"
    );
    let token = res["data"]["switchOrganization"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .graphql(
            Some(&token),
            "query($p: UUID!) { patient(id: $p) { firstName } }",
            json!({ "p": sofia }),
        )
        .await;
    // The HIPAA notice comes first for a new portal user; the grant itself
    // reaches her.
    let reached = res["data"]["patient"]["firstName"] == "Sofia"
        || error_codes(&res) == vec!["FORBIDDEN"]
            && first_error(&res)["reason"] == "CONSENT_REQUIRED";
    assert!(reached, "{res}");
    let res = app
        .graphql(Some(&staff), PROXIES, json!({ "p": sofia }))
        .await;
    assert!(
        res.to_string().contains("admin@lakeside.example"),
        "accepted: the clinic sees who: {res}"
    );
}
