//! Consent: until the HIPAA notice in force is signed, no patient data;
//! a signature keeps the server's time, the client's address and user
//! agent; a new version must be signed again by everyone.

use sea_orm::sqlx;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::app::{TestApp, error_codes, first_error, spawn_app};

const SIGN: &str = "mutation($d: UUID!) { signConsent(documentId: $d) {
    id documentId signedAt ip userAgent } }";
const PATIENTS: &str =
    "{ me { consentRequired } patients(first: 100) { totalCount edges { node { mrn } } } }";

/// POSTs one operation with extra headers; returns status and body.
async fn post_with(
    app: &TestApp,
    token: &str,
    headers: &[(&str, &str)],
    query: &str,
    variables: Value,
) -> (u16, Value) {
    let mut req = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.expect("sending");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON body"))
}

/// The id and version of the active HIPAA notice, as the client sees it.
async fn hipaa_notice(app: &TestApp, token: &str) -> (Value, i64) {
    let res = app
        .graphql(
            Some(token),
            "{ consentDocuments { id kind version } }",
            json!({}),
        )
        .await;
    let docs = res["data"]["consentDocuments"]
        .as_array()
        .unwrap_or_else(|| panic!("consent documents: {res}"));
    let hipaa: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "HIPAA_NOTICE")
        .collect();
    assert_eq!(hipaa.len(), 1, "one notice in force: {res}");
    (
        hipaa[0]["id"].clone(),
        hipaa[0]["version"].as_i64().unwrap(),
    )
}

fn assert_consent_required(res: &Value) {
    assert_eq!(error_codes(res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(first_error(res)["reason"], "CONSENT_REQUIRED", "{res}");
    assert!(
        res["data"].is_null() || res["data"]["patients"].is_null(),
        "no patient data: {res}"
    );
}

#[tokio::test]
async fn patient_data_flows_only_once_the_hipaa_notice_is_signed() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let sofia = crate::database::fixtures::patient(&owner, "NS-0002").await;
    let token = app.login_as("maria.garcia@example.com").await;

    let res = app
        .graphql(Some(&token), "{ patients { totalCount } }", json!({}))
        .await;
    assert_consent_required(&res);
    let res = app
        .graphql(
            Some(&token),
            "query($p: UUID!) { patient(id: $p) { mrn } }",
            json!({ "p": sofia }),
        )
        .await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(first_error(&res)["reason"], "CONSENT_REQUIRED");
    assert!(!res.to_string().contains("NS-0002"), "{res}");
    let res = app
        .graphql(
            Some(&token),
            "{ me { consentRequired role } myConsents { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        res["data"],
        json!({ "me": { "consentRequired": true, "role": "PORTAL" }, "myConsents": [] }),
        "{res}"
    );

    let (notice, version) = hipaa_notice(&app, &token).await;
    assert_eq!(version, 1);
    let agent = "caregate-tests/1.0 (consent)";
    let (status, res) = post_with(
        &app,
        &token,
        &[("user-agent", agent)],
        SIGN,
        json!({ "d": notice }),
    )
    .await;
    assert_eq!(status, 200, "{res}");
    let signed = &res["data"]["signConsent"];
    assert_eq!(signed["documentId"], notice, "{res}");
    let at = chrono::DateTime::parse_from_rfc3339(signed["signedAt"].as_str().unwrap())
        .expect("an RFC 3339 instant");
    let skew = (chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_seconds();
    assert!(
        (-5..=5).contains(&skew),
        "signedAt is the server's time now, {skew}s off: {res}"
    );
    assert_eq!(signed["ip"], "127.0.0.1", "{res}");
    assert_eq!(signed["userAgent"], agent, "{res}");

    let res = app.graphql(Some(&token), PATIENTS, json!({})).await;
    assert!(res.get("errors").is_none(), "{res}");
    assert_eq!(res["data"]["me"]["consentRequired"], false);
    assert_eq!(res["data"]["patients"]["totalCount"], 1);
    assert_eq!(
        res["data"]["patients"]["edges"],
        json!([{ "node": { "mrn": "NS-0002" } }])
    );
    let res = app
        .graphql(Some(&token), "{ myConsents { id documentId } }", json!({}))
        .await;
    assert_eq!(
        res["data"]["myConsents"],
        json!([{ "id": signed["id"], "documentId": notice }]),
        "{res}"
    );

    let res = app
        .graphql(Some(&token), SIGN, json!({ "d": notice }))
        .await;
    assert_eq!(error_codes(&res), vec!["CONFLICT"], "{res}");
    assert_eq!(first_error(&res)["reason"], "CONSENT_ALREADY_SIGNED");
    let signatures: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM user_consents c JOIN users u ON u.id = c.user_id
         WHERE u.email = 'maria.garcia@example.com'",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(signatures, 1, "signed once");
}

#[tokio::test]
async fn a_new_version_of_the_notice_must_be_signed_again_by_everyone() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let admin = app.login_as("admin@northside.example").await;
    let res = app.graphql(Some(&admin), PATIENTS, json!({})).await;
    assert_eq!(res["data"]["patients"]["totalCount"], 8, "{res}");
    assert_eq!(res["data"]["me"]["consentRequired"], false);

    let v1: Uuid = sqlx::query_scalar(
        "UPDATE consent_documents SET is_active = false
         WHERE kind = 'HIPAA_NOTICE' AND is_active RETURNING id",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    let v2: Uuid = sqlx::query_scalar(
        "INSERT INTO consent_documents (kind, version, title, body, is_active)
         VALUES ('HIPAA_NOTICE', 2, 'Notice of Privacy Practices',
                 'How your clinic may use and disclose your health information (revised).', true)
         RETURNING id",
    )
    .fetch_one(&owner)
    .await
    .unwrap();

    // The admin signed v1; the token she already holds no longer reaches
    // patient data.
    let res = app
        .graphql(Some(&admin), "{ patients { totalCount } }", json!({}))
        .await;
    assert_consent_required(&res);
    let res = app
        .graphql(Some(&admin), "{ me { consentRequired } }", json!({}))
        .await;
    assert_eq!(res["data"]["me"]["consentRequired"], true, "{res}");
    // So does everyone else, staff or portal.
    for email in [
        "frontdesk@northside.example",
        "admin@lakeside.example",
        "jonathan.smith@example.com",
    ] {
        let token = app.login_as(email).await;
        let res = app
            .graphql(Some(&token), "{ patients { totalCount } }", json!({}))
            .await;
        assert_eq!(
            first_error(&res)["reason"],
            "CONSENT_REQUIRED",
            "{email}: {res}"
        );
    }

    let (notice, version) = hipaa_notice(&app, &admin).await;
    assert_eq!(notice, json!(v2));
    assert_eq!(version, 2);

    // The old version is no longer signable.
    let res = app.graphql(Some(&admin), SIGN, json!({ "d": v1 })).await;
    assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
    assert_eq!(first_error(&res)["field"], "documentId");
    let res = app
        .graphql(
            Some(&admin),
            SIGN,
            json!({ "d": Uuid::from(ulid::Ulid::generate()) }),
        )
        .await;
    assert_eq!(error_codes(&res), vec!["NOT_FOUND"], "{res}");
    let res = app
        .graphql(Some(&admin), "{ patients { totalCount } }", json!({}))
        .await;
    assert_consent_required(&res);

    let res = app.graphql(Some(&admin), SIGN, json!({ "d": v2 })).await;
    assert_eq!(res["data"]["signConsent"]["documentId"], json!(v2), "{res}");
    let res = app.graphql(Some(&admin), PATIENTS, json!({})).await;
    assert!(res.get("errors").is_none(), "{res}");
    assert_eq!(res["data"]["me"]["consentRequired"], false);
    assert_eq!(res["data"]["patients"]["totalCount"], 8);
}
