//! Multi-factor sign-in over the API: enrolling and confirming a TOTP
//! factor, a login that answers MFA_REQUIRED with a challenge and
//! `verifyMfa` that opens the session, and every way a code or challenge
//! can be wrong (wrong, replayed, spent, expired, too many). Recovery
//! codes work once; disabling needs a fresh code; a clinic's requirement
//! restricts the unenrolled to enrolment. The secret is stored sealed,
//! survives a master key rotation, and one user's MFA rows are invisible
//! to every other user.

use caregate::tokens::Claims;
use sea_orm::sqlx;
use serde_json::{Value, json};
use totp_rs::{Builder, Secret, Totp};
use uuid::Uuid;

use crate::support::app::{
    DEMO_PASSWORD, TEST_MASTER_KEYS, TestApp, error_codes, first_error, spawn_app, spawn_app_with,
};

const MFA_ADMIN: &str = "mfa.admin@northside.example";
/// The demo MFA admin's published secret.
const MFA_ADMIN_SECRET: &str = service::demo::DEMO_MFA_SECRET;

const LOGIN: &str = "mutation($e: String!, $p: String!) {
    login(email: $e, password: $p) { token } }";
const VERIFY: &str = "mutation($c: String!, $code: String!) {
    verifyMfa(challenge: $c, code: $code) {
        token expiresAt viewer { role mfaEnabled mfaRequired user { email } organization { slug } } } }";
const ENROLL: &str = "mutation { enrollMfa { secret provisioningUri } }";
const CONFIRM: &str = "mutation($code: String!) { confirmMfa(code: $code) { recoveryCodes } }";
const DISABLE: &str = "mutation($code: String!) { disableMfa(code: $code) }";
const REQUIRE: &str = "mutation($r: MfaRequirement!) { setMfaRequirement(requirement: $r) }";
const ME: &str = "{ me { role mfaEnabled mfaRequired user { email } } }";
const PATIENTS: &str = "{ patients(first: 1) { totalCount } }";

fn totp(secret_b32: &str) -> Totp {
    Builder::new()
        .with_secret(Secret::try_from_base32(secret_b32).expect("a base32 secret"))
        .build()
        .expect("a TOTP")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code of the time step `offset` steps from now (the server accepts
/// -1, 0 and +1).
fn code(secret_b32: &str, offset: i64) -> String {
    let at = now() as i64 + offset * 30;
    totp(secret_b32).generate(at as u64).to_string()
}

/// Waits, when the current step ends within a few seconds, for the next
/// one: a test that uses steps -1, 0 and +1 then has them all accepted.
async fn clear_of_a_step_edge() {
    let into = now() % 30;
    if into > 24 {
        tokio::time::sleep(std::time::Duration::from_secs(31 - into)).await;
    }
}

/// A login's challenge: the error must be UNAUTHENTICATED / MFA_REQUIRED
/// with no token.
async fn challenge(app: &TestApp, email: &str) -> String {
    let res = app
        .graphql(None, LOGIN, json!({ "e": email, "p": DEMO_PASSWORD }))
        .await;
    assert_eq!(error_codes(&res), ["UNAUTHENTICATED"], "{res}");
    let ext = first_error(&res);
    assert_eq!(ext["reason"], "MFA_REQUIRED", "{res}");
    assert!(res["data"].is_null(), "no token without a code: {res}");
    ext["mfaChallenge"]
        .as_str()
        .unwrap_or_else(|| panic!("a challenge: {res}"))
        .to_owned()
}

async fn verify(app: &TestApp, challenge: &str, code: &str) -> Value {
    app.graphql(None, VERIFY, json!({ "c": challenge, "code": code }))
        .await
}

fn reason(res: &Value) -> &str {
    first_error(res)["reason"].as_str().unwrap_or("<none>")
}

/// Enrols and confirms a factor for the holder of `token`: its secret and
/// recovery codes (confirmed with the previous step's code, leaving the
/// current and next steps for logins).
async fn enable(app: &TestApp, token: &str) -> (String, Vec<String>) {
    let res = app.graphql(Some(token), ENROLL, json!({})).await;
    assert!(res["errors"].is_null(), "{res}");
    let secret = res["data"]["enrollMfa"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    clear_of_a_step_edge().await;
    let res = app
        .graphql(Some(token), CONFIRM, json!({ "code": code(&secret, -1) }))
        .await;
    assert!(res["errors"].is_null(), "{res}");
    let codes = res["data"]["confirmMfa"]["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

#[tokio::test]
async fn enrolling_and_confirming_makes_login_answer_a_challenge_that_a_code_turns_into_a_session()
{
    let app = spawn_app().await;
    let token = app.login_as("admin@lakeside.example").await;

    let res = app.graphql(Some(&token), ENROLL, json!({})).await;
    assert!(res["errors"].is_null(), "{res}");
    let enrolled = &res["data"]["enrollMfa"];
    let first = enrolled["secret"].as_str().unwrap().to_owned();
    assert_eq!(first.len(), 32, "160 bits in base32: {first}");
    assert_eq!(
        enrolled["provisioningUri"],
        format!("otpauth://totp/caregate:admin%40lakeside.example?secret={first}&issuer=caregate")
    );
    // Enrolling again before confirming replaces the pending secret.
    let res = app.graphql(Some(&token), ENROLL, json!({})).await;
    let secret = res["data"]["enrollMfa"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(secret, first);
    clear_of_a_step_edge().await;
    let res = app
        .graphql(Some(&token), CONFIRM, json!({ "code": code(&first, 0) }))
        .await;
    assert_eq!(
        error_codes(&res),
        ["BAD_USER_INPUT"],
        "the replaced secret: {res}"
    );
    assert_eq!(first_error(&res)["field"], "code");

    let res = app
        .graphql(Some(&token), CONFIRM, json!({ "code": code(&secret, -1) }))
        .await;
    assert!(res["errors"].is_null(), "{res}");
    let codes = res["data"]["confirmMfa"]["recoveryCodes"]
        .as_array()
        .unwrap();
    assert_eq!(codes.len(), 10);
    for c in codes {
        let c = c.as_str().unwrap();
        assert_eq!(c.len(), 19, "{c}");
        assert_eq!(c.split('-').count(), 4, "{c}");
    }
    let me = app.graphql(Some(&token), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["mfaEnabled"], true, "{me}");
    let res = app.graphql(Some(&token), ENROLL, json!({})).await;
    assert_eq!(error_codes(&res), ["CONFLICT"], "{res}");
    assert_eq!(reason(&res), "MFA_ALREADY_ENABLED");

    // The password alone now opens no session.
    let sessions_before: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM user_sessions s JOIN users u ON u.id = s.user_id \
         WHERE u.email = 'admin@lakeside.example'",
    )
    .fetch_one(&app.db.owner().await)
    .await
    .unwrap();
    let res = app
        .graphql(
            None,
            LOGIN,
            json!({ "e": "admin@lakeside.example", "p": DEMO_PASSWORD }),
        )
        .await;
    let ext = first_error(&res);
    assert_eq!(ext["code"], "UNAUTHENTICATED", "{res}");
    assert_eq!(ext["reason"], "MFA_REQUIRED", "{res}");
    let challenge = ext["mfaChallenge"].as_str().unwrap().to_owned();
    assert_eq!(challenge.len(), 64);
    let expires: chrono::DateTime<chrono::FixedOffset> = ext["mfaChallengeExpiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let left = expires.signed_duration_since(chrono::Utc::now());
    assert!(
        left > chrono::Duration::minutes(4) && left <= chrono::Duration::minutes(5),
        "{left}"
    );
    let sessions_after: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM user_sessions s JOIN users u ON u.id = s.user_id \
         WHERE u.email = 'admin@lakeside.example'",
    )
    .fetch_one(&app.db.owner().await)
    .await
    .unwrap();
    assert_eq!(
        sessions_after, sessions_before,
        "no session for a password alone"
    );

    // A token sent along plays no part in it, as for login.
    let (_, res) = app
        .post(
            Some(&token),
            &json!({ "query": VERIFY, "variables": { "c": challenge, "code": code(&secret, 0) } }),
        )
        .await;
    assert!(res["errors"].is_null(), "{res}");
    let verified = &res["data"]["verifyMfa"];
    assert_eq!(verified["viewer"]["role"], "ADMIN");
    assert_eq!(verified["viewer"]["mfaEnabled"], true);
    assert_eq!(verified["viewer"]["organization"]["slug"], "lakeside");
    let new_token = verified["token"].as_str().unwrap();
    let me = app.graphql(Some(new_token), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["user"]["email"], "admin@lakeside.example");

    let logins: Vec<Value> = sqlx::query_scalar(
        "SELECT changes FROM audit_events WHERE action = 'LOGIN' AND resource_type = 'user_sessions' \
         AND changes ? 'secondFactor' ORDER BY occurred_at",
    )
    .fetch_all(&app.db.owner().await)
    .await
    .unwrap();
    assert_eq!(logins, vec![json!({ "secondFactor": "TOTP" })]);
}

#[tokio::test]
async fn a_wrong_code_is_refused_counted_and_audited_and_the_challenge_stays_answerable() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let challenge = challenge(&app, MFA_ADMIN).await;
    clear_of_a_step_edge().await;
    let right = code(MFA_ADMIN_SECRET, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let res = verify(&app, &challenge, wrong).await;
    assert_eq!(error_codes(&res), ["UNAUTHENTICATED"], "{res}");
    assert_eq!(reason(&res), "INVALID_MFA_CODE");
    assert!(res["data"].is_null());

    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM mfa_challenges")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(attempts, 1);
    let denied: Vec<(Option<Uuid>, Value)> = sqlx::query_as(
        "SELECT resource_id, changes FROM audit_events \
         WHERE action = 'ACCESS_DENIED' AND resource_type = 'user_mfa'",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    let admin: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(MFA_ADMIN)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0].0, Some(admin));
    assert!(
        !denied[0].1.to_string().contains(wrong),
        "no code in the trail: {}",
        denied[0].1
    );

    // Malformed codes are refused at the edge.
    let res = verify(&app, &challenge, "12345").await;
    assert_eq!(error_codes(&res), ["BAD_USER_INPUT"], "{res}");
    assert_eq!(first_error(&res)["field"], "code");

    let res = verify(&app, &challenge, &right).await;
    assert!(res["errors"].is_null(), "{res}");
    assert_eq!(res["data"]["verifyMfa"]["viewer"]["role"], "ADMIN");
}

#[tokio::test]
async fn a_code_already_used_is_refused_as_a_replay() {
    let app = spawn_app().await;
    clear_of_a_step_edge().await;
    let now_code = code(MFA_ADMIN_SECRET, 0);
    let first = challenge(&app, MFA_ADMIN).await;
    let res = verify(&app, &first, &now_code).await;
    assert!(res["errors"].is_null(), "{res}");

    let second = challenge(&app, MFA_ADMIN).await;
    let res = verify(&app, &second, &now_code).await;
    assert_eq!(reason(&res), "INVALID_MFA_CODE", "{res}");
    // An earlier step than the last used is as good as a replay.
    let res = verify(&app, &second, &code(MFA_ADMIN_SECRET, -1)).await;
    assert_eq!(reason(&res), "INVALID_MFA_CODE", "{res}");
    // The next step's code still works.
    let res = verify(&app, &second, &code(MFA_ADMIN_SECRET, 1)).await;
    assert!(res["errors"].is_null(), "{res}");
}

#[tokio::test]
async fn a_challenge_is_used_once_and_expires() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    clear_of_a_step_edge().await;
    let used = challenge(&app, MFA_ADMIN).await;
    let res = verify(&app, &used, &code(MFA_ADMIN_SECRET, 0)).await;
    assert!(res["errors"].is_null(), "{res}");
    let res = verify(&app, &used, &code(MFA_ADMIN_SECRET, 1)).await;
    assert_eq!(error_codes(&res), ["UNAUTHENTICATED"], "{res}");
    assert_eq!(
        reason(&res),
        "MFA_CHALLENGE_INVALID",
        "a used challenge: {res}"
    );

    let expired = challenge(&app, MFA_ADMIN).await;
    sqlx::query(
        "UPDATE mfa_challenges SET created_at = now() - interval '6 minutes', \
                expires_at = now() - interval '1 minute' WHERE consumed_at IS NULL",
    )
    .execute(&owner)
    .await
    .unwrap();
    let res = verify(&app, &expired, &code(MFA_ADMIN_SECRET, 1)).await;
    assert_eq!(
        reason(&res),
        "MFA_CHALLENGE_INVALID",
        "an expired challenge: {res}"
    );

    for forged in ["", "not-a-challenge", &"ab".repeat(32)] {
        let res = verify(&app, forged, &code(MFA_ADMIN_SECRET, 1)).await;
        assert_eq!(reason(&res), "MFA_CHALLENGE_INVALID", "{forged}: {res}");
    }
}

#[tokio::test]
async fn a_challenge_takes_five_codes_and_further_attempts_are_rate_limited() {
    let app = spawn_app().await;
    clear_of_a_step_edge().await;
    let right = code(MFA_ADMIN_SECRET, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let spent = challenge(&app, MFA_ADMIN).await;
    for i in 1..=5 {
        let res = verify(&app, &spent, wrong).await;
        assert_eq!(reason(&res), "INVALID_MFA_CODE", "attempt {i}: {res}");
    }
    // The sixth is refused even when right.
    let res = verify(&app, &spent, &right).await;
    assert_eq!(reason(&res), "MFA_CHALLENGE_INVALID", "{res}");

    // The user's five failures in this window also spend their per-user
    // allowance (LOGIN_ATTEMPTS_PER_EMAIL): a new challenge is refused.
    let fresh = challenge(&app, MFA_ADMIN).await;
    let res = verify(&app, &fresh, &right).await;
    assert_eq!(error_codes(&res), ["RATE_LIMITED"], "{res}");
}

#[tokio::test]
async fn second_factor_attempts_are_limited_per_client_address() {
    let app = spawn_app_with(|c| c.login_attempts_per_ip = 2).await;
    let spent = challenge(&app, MFA_ADMIN).await;
    clear_of_a_step_edge().await;
    let right = code(MFA_ADMIN_SECRET, 0);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..2 {
        let res = verify(&app, &spent, wrong).await;
        assert_eq!(reason(&res), "INVALID_MFA_CODE", "{res}");
    }
    let res = verify(&app, &spent, &right).await;
    assert_eq!(error_codes(&res), ["RATE_LIMITED"], "{res}");
}

#[tokio::test]
async fn a_recovery_code_signs_in_once() {
    let app = spawn_app().await;
    let token = app.login_as("frontdesk@lakeside.example").await;
    let (_, codes) = enable(&app, &token).await;
    let first = challenge(&app, "frontdesk@lakeside.example").await;
    let res = verify(&app, &first, &codes[0]).await;
    assert!(res["errors"].is_null(), "{res}");
    assert_eq!(res["data"]["verifyMfa"]["viewer"]["role"], "STAFF");

    let again = challenge(&app, "frontdesk@lakeside.example").await;
    let res = verify(&app, &again, &codes[0]).await;
    assert_eq!(
        reason(&res),
        "INVALID_MFA_CODE",
        "a used recovery code: {res}"
    );
    // Another, typed in lower case without dashes, works.
    let res = verify(&app, &again, &codes[1].to_lowercase().replace('-', "")).await;
    assert!(res["errors"].is_null(), "{res}");

    let logins: Vec<Value> = sqlx::query_scalar(
        "SELECT changes FROM audit_events WHERE action = 'LOGIN' AND changes ? 'secondFactor'",
    )
    .fetch_all(&app.db.owner().await)
    .await
    .unwrap();
    assert_eq!(logins, vec![json!({ "secondFactor": "RECOVERY_CODE" }); 2]);
}

#[tokio::test]
async fn disabling_needs_a_fresh_code_and_removes_the_factor_and_its_codes() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let token = app.login_as("frontdesk@lakeside.example").await;
    let (secret, codes) = enable(&app, &token).await;

    // The code that confirmed the factor is spent; a made-up one is wrong.
    for stale in [
        code(&secret, -1),
        "000000".to_owned(),
        "AAAA-AAAA-AAAA-AAAA".to_owned(),
    ] {
        let res = app
            .graphql(Some(&token), DISABLE, json!({ "code": stale }))
            .await;
        assert_eq!(error_codes(&res), ["BAD_USER_INPUT"], "{stale}: {res}");
        assert_eq!(first_error(&res)["field"], "code");
    }
    let me = app.graphql(Some(&token), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["mfaEnabled"], true, "still on: {me}");

    let res = app
        .graphql(Some(&token), DISABLE, json!({ "code": codes[3] }))
        .await;
    assert!(res["errors"].is_null(), "{res}");
    assert_eq!(res["data"]["disableMfa"], true);
    let me = app.graphql(Some(&token), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["mfaEnabled"], false, "{me}");
    let left: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM user_mfa_factors), (SELECT count(*) FROM user_mfa_recovery_codes)",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(left, (1, 0), "only the demo MFA admin's factor is left");
    // Turning MFA on and off is in the trail (the users row's trigger).
    let changes: Vec<Value> = sqlx::query_scalar(
        "SELECT e.changes FROM audit_events e JOIN users u ON u.id = e.resource_id \
         WHERE e.resource_type = 'users' AND e.action = 'UPDATE' \
           AND u.email = 'frontdesk@lakeside.example' AND e.changes -> 'after' ? 'mfa_enabled' \
         ORDER BY e.occurred_at",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(
        changes,
        vec![
            json!({ "before": { "mfa_enabled": false }, "after": { "mfa_enabled": true } }),
            json!({ "before": { "mfa_enabled": true }, "after": { "mfa_enabled": false } }),
        ]
    );
    let res = app
        .graphql(Some(&token), DISABLE, json!({ "code": code(&secret, 0) }))
        .await;
    assert_eq!(reason(&res), "MFA_NOT_ENABLED", "{res}");
    // The password alone signs in again.
    app.login_as("frontdesk@lakeside.example").await;
}

#[tokio::test]
async fn the_clinic_requirement_restricts_an_unenrolled_admin_to_enrolment_until_confirmed() {
    let app = spawn_app().await;
    let admin = app.login_as("admin@lakeside.example").await;
    let staff = app.login_as("frontdesk@lakeside.example").await;

    let res = app
        .graphql(Some(&staff), REQUIRE, json!({ "r": "ADMIN" }))
        .await;
    assert_eq!(reason(&res), "ROLE", "admins only: {res}");
    let res = app
        .graphql(Some(&admin), REQUIRE, json!({ "r": "ADMIN" }))
        .await;
    assert_eq!(res["data"]["setMfaRequirement"], "ADMIN", "{res}");
    let settings: Value =
        sqlx::query_scalar("SELECT settings FROM organizations WHERE slug = 'lakeside'")
            .fetch_one(&app.db.owner().await)
            .await
            .unwrap();
    assert_eq!(settings["mfaRequired"], "ADMIN");

    // From the next request on, the admin may only enrol.
    for query in [
        PATIENTS,
        "{ organization { name } }",
        "{ providers(first: 1) { totalCount } }",
        "mutation { switchOrganization(organizationId: \"00000000-0000-0000-0000-000000000000\") { token } }",
    ] {
        let res = app.graphql(Some(&admin), query, json!({})).await;
        assert_eq!(error_codes(&res), ["FORBIDDEN"], "{query}: {res}");
        assert_eq!(reason(&res), "MFA_ENROLMENT_REQUIRED", "{query}: {res}");
    }
    let res = app
        .graphql(Some(&admin), REQUIRE, json!({ "r": "NONE" }))
        .await;
    assert_eq!(reason(&res), "MFA_ENROLMENT_REQUIRED", "{res}");
    let me = app.graphql(Some(&admin), ME, json!({})).await;
    assert!(me["errors"].is_null(), "{me}");
    assert_eq!(me["data"]["me"]["mfaRequired"], true);
    assert_eq!(me["data"]["me"]["mfaEnabled"], false);
    // Staff are not concerned by an ADMIN requirement.
    let res = app.graphql(Some(&staff), PATIENTS, json!({})).await;
    assert!(res["errors"].is_null(), "{res}");

    let (secret, _) = enable(&app, &admin).await;
    let res = app.graphql(Some(&admin), PATIENTS, json!({})).await;
    assert!(res["errors"].is_null(), "lifted once confirmed: {res}");
    let me = app.graphql(Some(&admin), ME, json!({})).await;
    assert_eq!(me["data"]["me"]["mfaRequired"], false, "{me}");

    // ALL_STAFF reaches the front desk too; logout stays allowed.
    let res = app
        .graphql(Some(&admin), REQUIRE, json!({ "r": "ALL_STAFF" }))
        .await;
    assert_eq!(res["data"]["setMfaRequirement"], "ALL_STAFF", "{res}");
    let res = app.graphql(Some(&staff), PATIENTS, json!({})).await;
    assert_eq!(reason(&res), "MFA_ENROLMENT_REQUIRED", "{res}");
    let res = app
        .graphql(Some(&staff), "mutation { logout }", json!({}))
        .await;
    assert_eq!(res["data"]["logout"], true, "{res}");

    let res = app
        .graphql(Some(&admin), REQUIRE, json!({ "r": "NONE" }))
        .await;
    assert_eq!(res["data"]["setMfaRequirement"], "NONE", "{res}");
    let settings: Value =
        sqlx::query_scalar("SELECT settings FROM organizations WHERE slug = 'lakeside'")
            .fetch_one(&app.db.owner().await)
            .await
            .unwrap();
    assert!(settings.get("mfaRequired").is_none(), "{settings}");
    let _ = secret;
}

#[tokio::test]
async fn the_stored_secret_is_sealed_and_holds_no_plaintext() {
    let app = spawn_app().await;
    let token = app.login_as("admin@lakeside.example").await;
    let res = app.graphql(Some(&token), ENROLL, json!({})).await;
    let secret = res["data"]["enrollMfa"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let raw = Secret::try_from_base32(&secret)
        .unwrap()
        .as_bytes()
        .to_vec();
    let stored: Vec<(Vec<u8>, i32)> = sqlx::query_as(
        "SELECT f.secret_sealed, f.master_version FROM user_mfa_factors f \
         JOIN users u ON u.id = f.user_id WHERE u.email = 'admin@lakeside.example'",
    )
    .fetch_all(&app.db.owner().await)
    .await
    .unwrap();
    assert_eq!(stored.len(), 1);
    let (sealed, version) = &stored[0];
    assert_eq!(*version, 1);
    assert!(
        !sealed
            .windows(8)
            .any(|w| secret.as_bytes().windows(8).any(|s| s == w)),
        "no base32 of the secret"
    );
    assert!(
        !sealed.windows(8).any(|w| raw.windows(8).any(|s| s == w)),
        "no bytes of the secret"
    );
    // Nor does the demo's published secret appear anywhere in its row.
    let demo: Vec<u8> = sqlx::query_scalar(
        "SELECT f.secret_sealed FROM user_mfa_factors f JOIN users u ON u.id = f.user_id \
         WHERE u.email = $1",
    )
    .bind(MFA_ADMIN)
    .fetch_one(&app.db.owner().await)
    .await
    .unwrap();
    assert!(
        !demo
            .windows(8)
            .any(|w| MFA_ADMIN_SECRET.as_bytes()[..8] == *w)
    );
}

#[tokio::test]
async fn a_factor_still_verifies_after_the_master_key_is_rotated() {
    let both = format!(
        "{TEST_MASTER_KEYS}\n{}",
        service::phi::MasterKeys::generate_entry(2)
    );
    let keys = both.clone();
    let app = spawn_app_with(move |c| c.phi_master_keys = Some(keys)).await;
    let keyring = service::phi::Keyring::new(service::phi::MasterKeys::parse(&both).unwrap());
    let db = caregate::db::connect_owner(&app.db.owner_url)
        .await
        .unwrap();
    let rotated = service::phi::admin::rotate(&db, &keyring).await.unwrap();
    assert_eq!(rotated.user_secrets, 1, "the demo MFA admin's secret");
    let masters: Vec<i32> =
        sqlx::query_scalar("SELECT DISTINCT master_version FROM user_mfa_factors")
            .fetch_all(&app.db.owner().await)
            .await
            .unwrap();
    assert_eq!(masters, vec![2]);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE resource_type = 'user_mfa_factors' AND action = 'UPDATE'",
    )
    .fetch_one(&app.db.owner().await)
    .await
    .unwrap();
    assert_eq!(audited, 1);

    clear_of_a_step_edge().await;
    let challenge = challenge(&app, MFA_ADMIN).await;
    let res = verify(&app, &challenge, &code(MFA_ADMIN_SECRET, 0)).await;
    assert!(res["errors"].is_null(), "{res}");
}

#[tokio::test]
async fn one_users_mfa_rows_are_invisible_to_every_other_user() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let northside: Uuid =
        sqlx::query_scalar("SELECT id FROM organizations WHERE slug = 'northside'")
            .fetch_one(&owner)
            .await
            .unwrap();
    // A super admin's pending factor, a challenge of the MFA admin's, and
    // the MFA admin's factor.
    let support = app
        .login_in("support@caregate.example", Some(northside))
        .await;
    let res: Value = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&support)
        .header("x-caregate-impersonate", northside.to_string())
        .json(&json!({ "query": ENROLL }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(res["errors"].is_null(), "{res}");
    challenge(&app, MFA_ADMIN).await;
    let totals: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM user_mfa_factors), (SELECT count(*) FROM mfa_challenges)",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(totals, (2, 1));

    let runtime = app.db.runtime().await;
    let seen = async |token: Option<&str>, impersonate: bool| -> (i64, i64, i64, u64) {
        let mut tx = runtime.begin().await.unwrap();
        match token {
            Some(token) => {
                let c: Claims = jsonwebtoken::dangerous::insecure_decode_claims(token).unwrap();
                sqlx::query(
                    "SELECT * FROM app.begin_request('t', NULL, NULL, $1, $2, $3, 15, $4, false)",
                )
                .bind(c.sub)
                .bind(c.org)
                .bind(c.sid)
                .bind(impersonate)
                .execute(&mut *tx)
                .await
                .unwrap();
            }
            None => {
                sqlx::query("SELECT * FROM app.begin_request('t', NULL, NULL, NULL, NULL, NULL, 15, false, false)")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
        }
        let counts: (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM user_mfa_factors), \
                    (SELECT count(*) FROM user_mfa_recovery_codes), \
                    (SELECT count(*) FROM mfa_challenges)",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        let touched = sqlx::query("UPDATE user_mfa_factors SET last_step = 0")
            .execute(&mut *tx)
            .await
            .unwrap()
            .rows_affected();
        tx.rollback().await.unwrap();
        (counts.0, counts.1, counts.2, touched)
    };
    let northside_admin = app.login_as("admin@northside.example").await;
    assert_eq!(
        seen(Some(&northside_admin), false).await,
        (0, 0, 0, 0),
        "another admin of the clinic"
    );
    assert_eq!(
        seen(None, false).await,
        (0, 0, 0, 0),
        "an anonymous request"
    );
    assert_eq!(
        seen(Some(&support), true).await,
        (1, 0, 0, 1),
        "the super admin sees their own only"
    );

    // The runtime role cannot delete them, nor write a challenge itself.
    let err = sqlx::query("DELETE FROM user_mfa_factors")
        .execute(&runtime)
        .await
        .expect_err("no DELETE");
    assert_eq!(crate::database::fixtures::sqlstate(&err), "42501");
    let err = sqlx::query("UPDATE mfa_challenges SET attempts = 0")
        .execute(&runtime)
        .await
        .expect_err("no UPDATE of challenges");
    assert_eq!(crate::database::fixtures::sqlstate(&err), "42501");
}
