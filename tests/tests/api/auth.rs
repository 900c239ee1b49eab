//! Authentication over the API: login, clinic switching, logout, and every
//! way a token can be wrong (forged, expired, for another audience, for a
//! dead or idle session, for a clinic the user left) — each refused with
//! UNAUTHENTICATED before anything runs. Failed logins are rate limited and
//! audited.

use caregate::config::DEV_JWT_SECRET;
use caregate::tokens::Claims;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sea_orm::sqlx;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::{org, user};
use crate::support::app::{DEMO_PASSWORD, TestApp, error_codes, spawn_app, spawn_app_with};

const ME: &str = "{ me { role user { email } organization { slug } } }";
const LOGIN: &str = "mutation($e: String!, $p: String!, $o: UUID) {
    login(email: $e, password: $p, organizationId: $o) {
        token expiresAt viewer { role organization { slug } } } }";
const SWITCH: &str =
    "mutation($o: UUID!) { switchOrganization(organizationId: $o) { token viewer { role } } }";
const LOGOUT: &str = "mutation { logout }";

async fn login(app: &TestApp, email: &str, password: &str, org: Option<Uuid>) -> Value {
    app.graphql(None, LOGIN, json!({ "e": email, "p": password, "o": org }))
        .await
}

/// `me` with this token: must answer (HTTP 200, no errors); returns `me`.
async fn me_ok(app: &TestApp, token: &str) -> Value {
    let (status, body) = app.post(Some(token), &json!({ "query": ME })).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["errors"].is_null(), "the token should work: {body}");
    body["data"]["me"].clone()
}

/// `me` with this token: must be refused before execution.
async fn assert_refused(app: &TestApp, token: &str, what: &str) {
    let (status, body) = app.post(Some(token), &json!({ "query": ME })).await;
    assert_eq!(status, 401, "{what}: {body}");
    assert_eq!(error_codes(&body), ["UNAUTHENTICATED"], "{what}: {body}");
    assert!(body["data"].is_null(), "{what}: nothing may run: {body}");
}

fn claims_of(token: &str) -> Claims {
    jsonwebtoken::dangerous::insecure_decode_claims(token).expect("a decodable token")
}

fn sign(claims: &Claims, algorithm: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signing")
}

/// A token with a valid signature (the server's development secret).
fn forge(claims: &Claims) -> String {
    sign(claims, Algorithm::HS256, DEV_JWT_SECRET)
}

fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Logs in, checks the token works, and returns it with its claims. Also
/// checks that a copy re-signed by hand with unchanged claims works, so a
/// refusal of a modified copy is due to the modification alone.
async fn live_session(app: &TestApp, email: &str) -> (String, Claims) {
    let token = app.login_as(email).await;
    me_ok(app, &token).await;
    let claims = claims_of(&token);
    me_ok(app, &forge(&claims)).await;
    (token, claims)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

// ---- login ----

#[tokio::test]
async fn login_returns_a_token_that_identifies_the_user_role_and_clinic() {
    let app = spawn_app().await;
    let res = login(&app, "admin@northside.example", DEMO_PASSWORD, None).await;
    assert!(res["errors"].is_null(), "{res}");
    let payload = &res["data"]["login"];
    assert_eq!(payload["viewer"]["role"], "ADMIN", "{res}");
    assert_eq!(payload["viewer"]["organization"]["slug"], "northside");
    assert!(payload["expiresAt"].is_string(), "{res}");
    let token = payload["token"].as_str().expect("a token");

    let me = me_ok(&app, token).await;
    assert_eq!(me["role"], "ADMIN");
    assert_eq!(me["user"]["email"], "admin@northside.example");
    assert_eq!(me["organization"]["slug"], "northside");

    let claims = claims_of(token);
    let owner = app.db.owner().await;
    assert_eq!(claims.sub, user(&owner, "admin@northside.example").await);
    assert_eq!(claims.org, org(&owner, "northside").await);
    assert_eq!(claims.iss, "caregate");
    assert_eq!(claims.aud, "caregate-api");
    assert!(claims.exp > now(), "{claims:?}");
}

#[tokio::test]
async fn unknown_email_and_wrong_password_are_refused_alike() {
    let app = spawn_app().await;
    let unknown = login(&app, "nobody@northside.example", DEMO_PASSWORD, None).await;
    let wrong = login(&app, "admin@northside.example", "not-the-password", None).await;
    for res in [&unknown, &wrong] {
        assert_eq!(error_codes(res), ["UNAUTHENTICATED"], "{res}");
        assert!(res["data"]["login"].is_null(), "no token: {res}");
    }
    assert_eq!(
        unknown["errors"][0]["message"], wrong["errors"][0]["message"],
        "the message must not tell which emails exist"
    );
}

#[tokio::test]
async fn login_into_a_clinic_the_user_does_not_belong_to_is_refused() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let lakeside = org(&owner, "lakeside").await;
    for (email, clinic) in [
        ("admin@northside.example", lakeside),
        ("maria.garcia@example.com", lakeside),
        ("admin@northside.example", Uuid::new_v4()),
    ] {
        let res = login(&app, email, DEMO_PASSWORD, Some(clinic)).await;
        assert!(res["data"]["login"].is_null(), "{email} got a token: {res}");
        let codes = error_codes(&res);
        assert_eq!(codes.len(), 1, "{res}");
        assert!(
            ["UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND"].contains(&codes[0].as_str()),
            "{email}: {res}"
        );
    }
}

#[tokio::test]
async fn a_patient_with_a_chart_at_both_clinics_logs_into_each_as_portal() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    for slug in ["northside", "lakeside"] {
        let clinic = org(&owner, slug).await;
        let token = app
            .login_in("jonathan.smith@example.com", Some(clinic))
            .await;
        let me = me_ok(&app, &token).await;
        assert_eq!(me["role"], "PORTAL", "{me}");
        assert_eq!(me["organization"]["slug"], slug, "{me}");
        assert_eq!(me["user"]["email"], "jonathan.smith@example.com");
        assert_eq!(claims_of(&token).org, clinic);
    }
}

// ---- switchOrganization ----

#[tokio::test]
async fn switching_moves_a_portal_user_to_the_other_clinic() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let northside = org(&owner, "northside").await;
    let lakeside = org(&owner, "lakeside").await;
    let token = app
        .login_in("jonathan.smith@example.com", Some(northside))
        .await;
    assert_eq!(
        me_ok(&app, &token).await["organization"]["slug"],
        "northside"
    );

    let res = app
        .graphql(Some(&token), SWITCH, json!({ "o": lakeside }))
        .await;
    assert!(res["errors"].is_null(), "{res}");
    assert_eq!(
        res["data"]["switchOrganization"]["viewer"]["role"],
        "PORTAL"
    );
    let switched = res["data"]["switchOrganization"]["token"]
        .as_str()
        .expect("a new token");
    assert_eq!(claims_of(switched).org, lakeside);

    let me = me_ok(&app, switched).await;
    assert_eq!(me["organization"]["slug"], "lakeside", "{me}");
    assert_eq!(me["role"], "PORTAL");

    // In Lakeside he sees his Lakeside chart, and nothing of Northside.
    let res = app
        .graphql(
            Some(switched),
            "{ patients { edges { node { mrn } } } }",
            json!({}),
        )
        .await;
    assert!(res["errors"].is_null(), "{res}");
    let mrns: Vec<&str> = res["data"]["patients"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["mrn"].as_str().expect("mrn"))
        .collect();
    assert_eq!(mrns, ["LS-0001"], "{res}");

    // The session now acts in Lakeside: the Northside token is done.
    let (status, res) = app
        .post(Some(&token), &json!({ "query": "{ me { role } }" }))
        .await;
    assert_eq!(status, 401, "{res}");
    assert_eq!(error_codes(&res), ["UNAUTHENTICATED"]);
}

#[tokio::test]
async fn switching_to_a_clinic_out_of_reach_is_not_found() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let lakeside = org(&owner, "lakeside").await;

    let jonathan = app.login_as("jonathan.smith@example.com").await;
    let res = app
        .graphql(Some(&jonathan), SWITCH, json!({ "o": Uuid::new_v4() }))
        .await;
    assert_eq!(error_codes(&res), ["NOT_FOUND"], "{res}");
    assert!(res["data"].is_null() || res["data"]["switchOrganization"].is_null());

    // Maria is a proxy at Northside only.
    let maria = app.login_as("maria.garcia@example.com").await;
    let res = app
        .graphql(Some(&maria), SWITCH, json!({ "o": lakeside }))
        .await;
    assert_eq!(error_codes(&res), ["NOT_FOUND"], "{res}");
    let me = me_ok(&app, &maria).await;
    assert_eq!(me["organization"]["slug"], "northside", "{me}");
}

#[tokio::test]
async fn staff_of_one_clinic_cannot_switch_into_the_other() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let northside = org(&owner, "northside").await;
    let lakeside = org(&owner, "lakeside").await;
    for (email, home, other) in [
        ("frontdesk@northside.example", "northside", lakeside),
        ("admin@lakeside.example", "lakeside", northside),
    ] {
        let token = app.login_as(email).await;
        let res = app
            .graphql(Some(&token), SWITCH, json!({ "o": other }))
            .await;
        assert_eq!(error_codes(&res), ["NOT_FOUND"], "{email}: {res}");
        assert!(
            res["data"].is_null() || res["data"]["switchOrganization"].is_null(),
            "{email} got a token: {res}"
        );
        // The session stays where it was.
        let me = me_ok(&app, &token).await;
        assert_eq!(me["organization"]["slug"], home, "{email}: {me}");
    }
}

// ---- logout ----

#[tokio::test]
async fn after_logout_the_same_token_is_unauthenticated() {
    let app = spawn_app().await;
    let token = app.login_as("frontdesk@northside.example").await;
    let other_session = app.login_as("frontdesk@northside.example").await;
    me_ok(&app, &token).await;

    let res = app.graphql(Some(&token), LOGOUT, json!({})).await;
    assert!(res["errors"].is_null(), "{res}");
    assert_eq!(res["data"]["logout"], true, "{res}");

    assert_refused(&app, &token, "a logged-out token").await;
    // Only that session ended.
    me_ok(&app, &other_session).await;
}

#[tokio::test]
async fn logout_without_a_token_is_unauthenticated() {
    let app = spawn_app().await;
    let res = app.graphql(None, LOGOUT, json!({})).await;
    assert_eq!(error_codes(&res), ["UNAUTHENTICATED"], "{res}");
}

// ---- bad tokens ----

#[tokio::test]
async fn an_unsigned_alg_none_token_is_unauthenticated() {
    let app = spawn_app().await;
    let (_, claims) = live_session(&app, "admin@northside.example").await;
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    assert_eq!(header, "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0");
    let payload = b64url(&serde_json::to_vec(&claims).expect("claims as JSON"));
    let unsigned = format!("{header}.{payload}.");
    assert_eq!(
        claims_of(&unsigned),
        claims,
        "the hand-made token carries the real claims"
    );
    assert_refused(&app, &unsigned, "alg none").await;
    assert_refused(&app, &format!("{header}.{payload}"), "alg none, two parts").await;
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_unauthenticated() {
    let app = spawn_app().await;
    let (_, claims) = live_session(&app, "admin@northside.example").await;
    let token = sign(
        &claims,
        Algorithm::HS256,
        "another-secret-that-is-long-enough-for-hs256",
    );
    assert_refused(&app, &token, "signed with another secret").await;
}

#[tokio::test]
async fn a_token_signed_with_another_algorithm_is_unauthenticated() {
    let app = spawn_app().await;
    let (_, claims) = live_session(&app, "admin@northside.example").await;
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(&claims, alg, DEV_JWT_SECRET);
        assert_refused(&app, &token, &format!("{alg:?}")).await;
    }
}

#[tokio::test]
async fn a_tampered_token_is_unauthenticated() {
    let app = spawn_app().await;
    let (token, mut claims) = live_session(&app, "frontdesk@northside.example").await;
    // The original signature over claims that live a day longer.
    claims.exp += 86_400;
    let forged_payload = b64url(&serde_json::to_vec(&claims).expect("claims as JSON"));
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_refused(&app, &tampered, "payload swapped under the signature").await;
    assert_refused(&app, "not-a-jwt", "garbage").await;
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated() {
    let app = spawn_app().await;
    let (_, mut claims) = live_session(&app, "admin@northside.example").await;
    claims.iat = now() - 7200;
    claims.exp = now() - 3600;
    assert_refused(&app, &forge(&claims), "expired an hour ago").await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_unauthenticated() {
    let app = spawn_app().await;
    let (_, mut claims) = live_session(&app, "admin@northside.example").await;
    claims.aud = "some-other-api".to_owned();
    assert_refused(&app, &forge(&claims), "wrong audience").await;
}

#[tokio::test]
async fn a_token_from_another_issuer_is_unauthenticated() {
    let app = spawn_app().await;
    let (_, mut claims) = live_session(&app, "admin@northside.example").await;
    claims.iss = "someone-else".to_owned();
    assert_refused(&app, &forge(&claims), "wrong issuer").await;
}

#[tokio::test]
async fn an_authorization_header_that_is_not_a_bearer_token_is_unauthenticated() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    for header in [
        "Basic x".to_owned(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Token {token}"),
        format!("bearer{token}"),
    ] {
        let resp = app
            .client
            .post(app.url("/graphql"))
            .header("Authorization", &header)
            .json(&json!({ "query": ME }))
            .send()
            .await
            .expect("sending");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("a JSON body");
        assert_eq!(status, 401, "{header:?}: {body}");
        assert_eq!(
            error_codes(&body),
            ["UNAUTHENTICATED"],
            "{header:?}: {body}"
        );
        assert!(body["data"].is_null(), "{header:?}: {body}");
    }
}

#[tokio::test]
async fn a_token_of_an_unknown_session_is_unauthenticated() {
    let app = spawn_app().await;
    let (_, claims) = live_session(&app, "admin@northside.example").await;
    let owner = app.db.owner().await;

    let mut unknown = claims.clone();
    unknown.sid = Uuid::new_v4();
    assert_refused(&app, &forge(&unknown), "a session that never existed").await;

    // A real session, claimed by another user.
    let mut borrowed = claims;
    borrowed.sub = user(&owner, "admin@lakeside.example").await;
    borrowed.org = org(&owner, "lakeside").await;
    assert_refused(&app, &forge(&borrowed), "another user's session").await;
}

#[tokio::test]
async fn a_token_of_a_revoked_session_is_unauthenticated() {
    let app = spawn_app().await;
    let (token, claims) = live_session(&app, "admin@northside.example").await;
    let owner = app.db.owner().await;
    let n = sqlx::query("UPDATE user_sessions SET revoked_at = now() WHERE id = $1")
        .bind(claims.sid)
        .execute(&owner)
        .await
        .expect("revoking the session")
        .rows_affected();
    assert_eq!(n, 1);
    assert_refused(&app, &token, "a revoked session").await;
}

#[tokio::test]
async fn a_token_of_an_idle_session_is_unauthenticated() {
    let app = spawn_app().await;
    let (token, claims) = live_session(&app, "admin@northside.example").await;
    let owner = app.db.owner().await;
    let set_last_active = async |ago: &str| {
        let n = sqlx::query(
            "UPDATE user_sessions SET last_active_at = now() - $2::interval WHERE id = $1",
        )
        .bind(claims.sid)
        .bind(ago)
        .execute(&owner)
        .await
        .expect("backdating the session")
        .rows_affected();
        assert_eq!(n, 1);
    };
    // Within SESSION_IDLE_MINUTES (15): still fine.
    set_last_active("5 minutes").await;
    me_ok(&app, &token).await;
    // Unused for an hour: refused.
    set_last_active("1 hour").await;
    assert_refused(&app, &token, "an idle session").await;
}

#[tokio::test]
async fn a_token_for_a_clinic_the_user_left_is_unauthenticated() {
    let app = spawn_app().await;
    let (token, claims) = live_session(&app, "frontdesk@northside.example").await;
    let owner = app.db.owner().await;
    let n = sqlx::query(
        "UPDATE organization_memberships SET deleted_at = now()
         WHERE user_id = $1 AND organization_id = $2 AND deleted_at IS NULL",
    )
    .bind(claims.sub)
    .bind(claims.org)
    .execute(&owner)
    .await
    .expect("ending the membership")
    .rows_affected();
    assert_eq!(n, 1);
    assert_refused(&app, &token, "a clinic the user left").await;
}

#[tokio::test]
async fn a_token_naming_a_clinic_the_user_never_belonged_to_is_unauthenticated() {
    let app = spawn_app().await;
    let (_, mut claims) = live_session(&app, "admin@northside.example").await;
    let owner = app.db.owner().await;
    claims.org = org(&owner, "lakeside").await;
    assert_refused(&app, &forge(&claims), "another clinic in the claims").await;
}

// ---- rate limiting and audit ----

/// ACCESS_DENIED audit events for an email: their `changes->>'reason'`.
async fn denials(app: &TestApp, email: &str) -> Vec<Option<String>> {
    let owner = app.db.owner().await;
    sqlx::query_scalar(
        "SELECT changes->>'reason' FROM audit_events
         WHERE action = 'ACCESS_DENIED' AND changes->>'email' = $1
         ORDER BY occurred_at, id",
    )
    .bind(email)
    .fetch_all(&owner)
    .await
    .expect("reading the audit trail")
}

#[tokio::test]
async fn repeated_failed_logins_are_rate_limited_even_with_the_right_password() {
    let app = spawn_app_with(|c| c.login_attempts_per_email = 3).await;
    let email = "frontdesk@northside.example";
    for attempt in 1..=3 {
        let res = login(&app, email, "wrong-password", None).await;
        assert_eq!(
            error_codes(&res),
            ["UNAUTHENTICATED"],
            "attempt {attempt}: {res}"
        );
    }
    let res = login(&app, email, DEMO_PASSWORD, None).await;
    assert_eq!(error_codes(&res), ["RATE_LIMITED"], "{res}");
    assert!(
        res["data"]["login"].is_null(),
        "no token when limited: {res}"
    );

    // Every checked refusal is in the audit trail; refusals beyond the
    // limit are only logged, so a flood cannot fill the trail.
    let denied = denials(&app, email).await;
    assert_eq!(denied.len(), 3, "{denied:?}");

    // The limit is per email: someone else still logs in.
    let other = login(&app, "admin@northside.example", DEMO_PASSWORD, None).await;
    assert!(other["data"]["login"]["token"].is_string(), "{other}");
}

#[tokio::test]
async fn refused_logins_are_audited_with_the_email() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let lakeside = org(&owner, "lakeside").await;
    let cases = [
        ("nobody@example.com", "whatever", None),
        ("admin@northside.example", "wrong-password", None),
        ("frontdesk@northside.example", DEMO_PASSWORD, Some(lakeside)),
    ];
    for (email, password, clinic) in cases {
        let res = login(&app, email, password, clinic).await;
        assert!(!error_codes(&res).is_empty(), "{email}: {res}");
        let denied = denials(&app, email).await;
        assert!(!denied.is_empty(), "no ACCESS_DENIED event for {email}");
    }
    // A successful login is not a denial.
    app.login_as("admin@lakeside.example").await;
    assert!(denials(&app, "admin@lakeside.example").await.is_empty());
}

#[tokio::test]
async fn me_lists_the_clinics_a_user_may_switch_to_with_the_role_in_each() {
    let app = spawn_app().await;
    let token = app.login_as("jonathan.smith@example.com").await;
    let res = app
        .graphql(
            Some(&token),
            "{ me { organizations { id name role } } }",
            json!({}),
        )
        .await;
    let clinics = res["data"]["me"]["organizations"]
        .as_array()
        .unwrap_or_else(|| panic!("{res}"))
        .clone();
    let names: Vec<&str> = clinics.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(clinics.len(), 2, "{res}");
    assert!(
        names.contains(&"Northside Family Clinic")
            && names.contains(&"Lakeside Pediatrics & Family Medicine"),
        "{res}"
    );
    assert!(clinics.iter().all(|c| c["role"] == "PORTAL"), "{res}");
    // An id from the list is what switchOrganization takes.
    let other = clinics
        .iter()
        .find(|c| c["name"] == "Lakeside Pediatrics & Family Medicine")
        .unwrap();
    let res = app
        .graphql(Some(&token), SWITCH, json!({ "o": other["id"] }))
        .await;
    assert!(
        res["data"]["switchOrganization"]["token"].is_string(),
        "{res}"
    );
}
