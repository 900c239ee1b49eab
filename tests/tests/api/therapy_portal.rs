//! Sessions and claims in the portal: a patient sees their own (but not
//! the 837P); a proxy sees sessions, events and diagnoses only with the
//! clinical-notes permission, coverages and claims only with the billing
//! permission.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::{org, patient};
use crate::support::app::{TestApp, error_codes, first_error, spawn_app};
use crate::support::therapy::{
    DOCTOR, STAFF, billable_patient, create_and_render_claim, data, id_of, northside_okafor,
    signed_session, x12_of,
};

/// A signed 30-minute session of a Northside patient with Dr. Okafor,
/// billed on a claim (its 837P checked). Returns (session, claim).
async fn billed_session(app: &TestApp, patient: Uuid) -> (Uuid, Uuid) {
    let owner = app.db.owner().await;
    let okafor = northside_okafor(&owner).await;
    let staff = app.login_as(STAFF).await;
    let doctor = app.login_as(DOCTOR).await;
    let insurance = billable_patient(app, &staff, patient, Some("HVH-77001")).await;
    let session = signed_session(app, &doctor, patient, okafor, "97110", 30).await;
    let (claim, _) = create_and_render_claim(app, &staff, insurance, &[session]).await;
    (session, id_of(&claim))
}

fn ids_of(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("a connection: {connection}"))
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn sign_hipaa(app: &TestApp, token: &str) {
    let docs = app
        .graphql(Some(token), "{ consentDocuments { id kind } }", json!({}))
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
    data(&res, "signConsent");
}

const LISTS: &str = "{ sessions(first: 50) { totalCount edges { node { id } } }
                       claims(first: 50) { totalCount edges { node { id } } } }";

#[tokio::test]
async fn a_patient_sees_their_own_sessions_events_and_claims_but_not_the_837p() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let jonathan = patient(&owner, "NS-0001").await;
    let (marcus_session, marcus_claim) =
        billed_session(&app, patient(&owner, "NS-0004").await).await;
    let (session, claim): (Uuid, Uuid) = sea_orm::sqlx::query_as(
        "SELECT l.session_id, l.claim_id FROM claim_lines l WHERE l.patient_id = $1",
    )
    .bind(jonathan)
    .fetch_one(&owner)
    .await
    .unwrap();
    let token = app
        .login_in(
            "jonathan.smith@example.com",
            Some(org(&owner, "northside").await),
        )
        .await;

    let res = app.graphql(Some(&token), LISTS, json!({})).await;
    assert!(res.get("errors").is_none(), "{res}");
    assert_eq!(ids_of(&res["data"]["sessions"]), vec![session.to_string()]);
    assert_eq!(res["data"]["sessions"]["totalCount"], 1);
    assert_eq!(ids_of(&res["data"]["claims"]), vec![claim.to_string()]);
    assert_eq!(res["data"]["claims"]["totalCount"], 1);

    let res = app
        .graphql(
            Some(&token),
            "query($p: UUID!, $s: UUID!, $c: UUID!, $os: UUID!, $oc: UUID!) {
               patient(id: $p) { sessions { edges { node { id } } } insurances { memberId } diagnoses { code } }
               session(id: $s) { status events { edges { node { eventType } } } authorization { authorizationNumber } }
               claim(id: $c) { status totalChargeCents lines { units session { id } } }
               otherSession: session(id: $os) { id }
               otherClaim: claim(id: $oc) { id } }",
            json!({ "p": jonathan, "s": session, "c": claim, "os": marcus_session, "oc": marcus_claim }),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    let d = &res["data"];
    assert_eq!(ids_of(&d["patient"]["sessions"]), vec![session.to_string()]);
    assert_eq!(
        d["patient"]["insurances"],
        json!([{ "memberId": "XJH418827301" }])
    );
    assert_eq!(
        d["patient"]["diagnoses"],
        json!([{ "code": "M54.50" }, { "code": "M25.561" }])
    );
    let events: Vec<&str> = d["session"]["events"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        vec!["VITALS", "INTERVENTION", "GOAL_PROGRESS", "NOTE"]
    );
    assert_eq!(
        d["session"]["authorization"]["authorizationNumber"],
        "EHH-PA-55810"
    );
    assert_eq!(
        d["claim"],
        json!({ "status": "SUBMITTED", "totalChargeCents": 13500,
                "lines": [{ "units": 3, "session": { "id": session.to_string() } }] })
    );
    assert!(
        d["otherSession"].is_null() && d["otherClaim"].is_null(),
        "{res}"
    );

    let res = x12_of(&app, &token, claim).await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert!(!res.to_string().contains("ISA*"), "{res}");
}

#[tokio::test]
async fn a_proxy_sees_sessions_only_with_clinical_notes_and_claims_only_with_billing() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let sofia = patient(&owner, "NS-0002").await;
    let marcus = patient(&owner, "NS-0004").await;
    let eleanor = patient(&owner, "NS-0003").await;
    let (sofia_session, sofia_claim) = billed_session(&app, sofia).await;
    let (marcus_session, marcus_claim) = billed_session(&app, marcus).await;
    let (eleanor_session, eleanor_claim) = billed_session(&app, eleanor).await;
    let maria = app.login_as("maria.garcia@example.com").await;
    sign_hipaa(&app, &maria).await;

    // Sofia's grant: profile and appointments only.
    for part in [
        "sessions { edges { node { id } } }",
        "insurances { id }",
        "diagnoses { code }",
    ] {
        let res = app
            .graphql(
                Some(&maria),
                &format!("query($p: UUID!) {{ patient(id: $p) {{ mrn {part} }} }}"),
                json!({ "p": sofia }),
            )
            .await;
        assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{part}: {res}");
        assert_eq!(first_error(&res)["reason"], "PROXY_SCOPE", "{part}: {res}");
        assert!(
            !res.to_string().contains(&sofia_session.to_string())
                && !res.to_string().contains("F84.0"),
            "{res}"
        );
    }
    let res = app
        .graphql(
            Some(&maria),
            "query($s: UUID!, $c: UUID!) { session(id: $s) { id } claim(id: $c) { id }
               sessions(first: 50) { totalCount edges { node { id } } }
               claims(first: 50) { totalCount edges { node { id } } } }",
            json!({ "s": sofia_session, "c": sofia_claim }),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    assert_eq!(
        res["data"],
        json!({ "session": null, "claim": null,
                "sessions": { "totalCount": 0, "edges": [] },
                "claims": { "totalCount": 0, "edges": [] } })
    );

    // Marcus with clinical notes; Eleanor with billing.
    let staff = app.login_as(STAFF).await;
    for (who, flags) in [
        (
            marcus,
            json!({ "canViewProfile": true, "canViewClinicalNotes": true }),
        ),
        (eleanor, json!({ "canViewBilling": true })),
    ] {
        let mut input = json!({ "patientId": who, "proxyEmail": "maria.garcia@example.com",
                                "relationship": "GUARDIAN" });
        for (k, v) in flags.as_object().unwrap() {
            input[k] = v.clone();
        }
        let res = app
            .graphql(
                Some(&staff),
                "mutation($i: GrantProxyAccessInput!) { grantProxyAccess(input: $i) { id isActive pending } }",
                json!({ "i": input }),
            )
            .await;
        assert_eq!(
            data(&res, "grantProxyAccess")["isActive"],
            true,
            "at once: {res}"
        );
    }
    let maria = app.login_as("maria.garcia@example.com").await;

    let res = app.graphql(Some(&maria), LISTS, json!({})).await;
    assert!(res.get("errors").is_none(), "{res}");
    assert_eq!(
        ids_of(&res["data"]["sessions"]),
        vec![marcus_session.to_string()],
        "only the notes grant's sessions: {res}"
    );
    assert_eq!(res["data"]["sessions"]["totalCount"], 1);
    assert_eq!(
        ids_of(&res["data"]["claims"]),
        vec![eleanor_claim.to_string()],
        "only the billing grant's claims: {res}"
    );
    assert_eq!(res["data"]["claims"]["totalCount"], 1);

    let res = app
        .graphql(
            Some(&maria),
            "query($p: UUID!, $s: UUID!, $c: UUID!, $es: UUID!) {
               patient(id: $p) { diagnoses { code } sessions { edges { node { id } } } }
               session(id: $s) { events { edges { node { eventType isAddendum } } } authorization { id } }
               claim(id: $c) { id }
               eleanorsSession: session(id: $es) { id } }",
            json!({ "p": marcus, "s": marcus_session, "c": marcus_claim, "es": eleanor_session }),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    let d = &res["data"];
    assert_eq!(d["patient"]["diagnoses"], json!([{ "code": "F84.0" }]));
    assert_eq!(
        ids_of(&d["patient"]["sessions"]),
        vec![marcus_session.to_string()]
    );
    assert_eq!(
        d["session"]["events"]["edges"],
        json!([{ "node": { "eventType": "NOTE", "isAddendum": false } }])
    );
    assert!(d["session"]["authorization"].is_null(), "no billing: {res}");
    assert!(d["claim"].is_null(), "no claims without billing: {res}");
    assert!(
        d["eleanorsSession"].is_null(),
        "no sessions without clinical notes: {res}"
    );

    let res = app
        .graphql(
            Some(&maria),
            "query($p: UUID!) { patient(id: $p) { insurances { id } } }",
            json!({ "p": marcus }),
        )
        .await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(first_error(&res)["reason"], "PROXY_SCOPE");

    let res = app
        .graphql(
            Some(&maria),
            "query($c: UUID!) { claim(id: $c) { status totalChargeCents lines { units session { id } } } }",
            json!({ "c": eleanor_claim }),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    assert_eq!(
        res["data"]["claim"],
        json!({ "status": "DRAFT", "totalChargeCents": 9000, "lines": [{ "units": 2, "session": null }] }),
        "the claim, without the session: {res}"
    );
    let res = x12_of(&app, &maria, eleanor_claim).await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert!(!res.to_string().contains("ISA*"), "{res}");
}

#[tokio::test]
async fn portal_users_see_no_clinic_setup_and_change_nothing() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let jonathan = patient(&owner, "NS-0001").await;
    let okafor = northside_okafor(&owner).await;
    let (coverage, claim): (Uuid, Uuid) =
        sea_orm::sqlx::query_as("SELECT insurance_id, id FROM claims WHERE patient_id = $1")
            .bind(jonathan)
            .fetch_one(&owner)
            .await
            .unwrap();
    let token = app
        .login_in(
            "jonathan.smith@example.com",
            Some(org(&owner, "northside").await),
        )
        .await;

    let res = app
        .graphql(
            Some(&token),
            "{ organization { billingIdentity { taxId } sessionEventTypes { code } } }",
            json!({}),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    assert!(
        res["data"]["organization"]["billingIdentity"].is_null(),
        "{res}"
    );
    for query in [
        "query($v: UUID!) { provider(id: $v) { name credentials { number } } }",
        "query($v: UUID!) { organization { feeSchedule { unitChargeCents } } provider(id: $v) { id } }",
    ] {
        let res = app
            .graphql(Some(&token), query, json!({ "v": okafor }))
            .await;
        assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{query}: {res}");
        assert!(
            !res.to_string().contains("NY-281734") && !res.to_string().contains("4500"),
            "{res}"
        );
    }

    let before: (String, Option<String>) = sea_orm::sqlx::query_as(
        "SELECT c.status, i.member_id FROM claims c JOIN patient_insurances i ON i.id = c.insurance_id WHERE c.id = $1",
    )
    .bind(claim)
    .fetch_one(&owner)
    .await
    .unwrap();
    for (query, vars) in [
        (
            "mutation($id: UUID!) { recordClaimResponse(id: $id, input: { status: ACCEPTED }) { id } }",
            json!({ "id": claim }),
        ),
        (
            "mutation($id: UUID!) { updateInsurance(id: $id, input: { memberId: \"SELF-EDIT\" }) { id } }",
            json!({ "id": coverage }),
        ),
        (
            "mutation($p: UUID!) { addDiagnosis(input: { patientId: $p, code: \"Z00.00\", diagnosedOn: \"2026-01-01\" }) { id } }",
            json!({ "p": jonathan }),
        ),
        (
            "mutation { setFee(serviceCode: \"97110\", unitChargeCents: 1, effectiveFrom: \"2026-01-01\") { id } }",
            json!({}),
        ),
    ] {
        let res = app.graphql(Some(&token), query, vars).await;
        assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{query}: {res}");
        assert_eq!(first_error(&res)["reason"], "ROLE", "{query}: {res}");
    }
    let after: (String, Option<String>) = sea_orm::sqlx::query_as(
        "SELECT c.status, i.member_id FROM claims c JOIN patient_insurances i ON i.id = c.insurance_id WHERE c.id = $1",
    )
    .bind(claim)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(after, before);

    // A proxy who has not signed the HIPAA notice sees no clinical data.
    let maria = app.login_as("maria.garcia@example.com").await;
    let res = app
        .graphql(Some(&maria), "{ sessions { totalCount } }", json!({}))
        .await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(first_error(&res)["reason"], "CONSENT_REQUIRED");
}
