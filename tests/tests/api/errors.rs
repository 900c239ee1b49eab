//! The error contract: every error carries `extensions.code` (and the
//! request id), bad input names its field, conflicts and refusals name a
//! stable reason — and nothing of the database or the server's insides
//! reaches a client.

use std::collections::BTreeSet;

use caregate::error::{ErrorCode, RequestReason};
use sea_orm::sqlx;
use serde_json::{Value, json};
use service::{ConflictReason, ForbiddenReason, UnauthenticatedReason};
use uuid::Uuid;

use crate::database::fixtures::{org, patient, provider};
use crate::support::app::{TestApp, error_codes, first_error, spawn_app};

const CREATE_PROVIDER: &str = "mutation($npi: String!, $name: String!) {
    createProvider(input: { name: $name, npi: $npi }) { id npi } }";
const ENROLL: &str = "mutation($mrn: String!, $first: String!) {
    enrollPatient(input: { mrn: $mrn, firstName: $first, lastName: \"Doe\",
                           dateOfBirth: \"1990-01-01\", legalSex: FEMALE }) { id } }";
const DISCHARGE: &str = "mutation($id: UUID!) { dischargePatient(id: $id) { id status } }";
const PATIENTS_PAGE: &str =
    "query($first: Int, $after: String) { patients(first: $first, after: $after) { totalCount } }";

/// A response as the client sees it.
struct Reply {
    status: u16,
    request_id: Option<String>,
    text: String,
    body: Value,
}

async fn send(app: &TestApp, token: Option<&str>, body: &Value, request_id: Option<&str>) -> Reply {
    let mut req = app.client.post(app.url("/graphql")).json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(id) = request_id {
        req = req.header("x-request-id", id);
    }
    let resp = req.send().await.expect("sending");
    let status = resp.status().as_u16();
    let request_id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().expect("an ASCII request id").to_owned());
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        request_id,
        text,
        body,
    }
}

async fn op(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> Reply {
    send(
        app,
        token,
        &json!({ "query": query, "variables": variables }),
        None,
    )
    .await
}

/// Every error of `reply` has a known code and the reply's request id.
fn assert_errors_carry_code_and_request_id(reply: &Reply, what: &str) {
    let id = reply
        .request_id
        .as_deref()
        .unwrap_or_else(|| panic!("{what}: no x-request-id header: {}", reply.text));
    assert!(!id.is_empty(), "{what}");
    // A batch is answered with an array: one response per operation.
    let bodies: Vec<&Value> = match reply.body.as_array() {
        Some(items) => items.iter().collect(),
        None => vec![&reply.body],
    };
    let errors: Vec<&Value> = bodies
        .iter()
        .flat_map(|body| {
            body["errors"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: no errors: {}", reply.text))
        })
        .collect();
    assert!(!errors.is_empty(), "{what}");
    for err in errors {
        let code = err["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: an error without a code: {err}"));
        assert!(
            ErrorCode::ALL.iter().any(|c| c.as_str() == code),
            "{what}: unknown code {code}"
        );
        assert_eq!(
            err["extensions"]["requestId"].as_str(),
            Some(id),
            "{what}: {err}"
        );
        assert!(err["message"].is_string(), "{what}: {err}");
    }
}

const LEAKS: [&str; 16] = [
    "sql",
    "constraint",
    "violates",
    "panicked",
    "duplicate key",
    "postgres",
    "care_team_assignments",
    "organization_memberships",
    "user_sessions",
    "audit_events",
    "medical_record_number",
    "organization_id",
    "_fkey",
    "_key\"",
    "stack backtrace",
    "src/",
];

/// Nothing of the database or of the server's code in a response.
fn assert_no_leak(reply: &Reply, what: &str) {
    let lower = reply.text.to_lowercase();
    for word in LEAKS {
        assert!(
            !lower.contains(word),
            "{what}: the response mentions {word:?}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn every_error_carries_its_code_and_the_request_id_of_the_response() {
    let app = spawn_app().await;
    let admin = app.login_as("admin@northside.example").await;
    let mut executed = vec![
        (
            "no token",
            op(&app, None, "{ patients { totalCount } }", json!({})).await,
        ),
        (
            "not found",
            op(
                &app,
                Some(&admin),
                DISCHARGE,
                json!({ "id": Uuid::new_v4() }),
            )
            .await,
        ),
        (
            "parse error",
            op(&app, Some(&admin), "{ me { role ", json!({})).await,
        ),
        (
            "unknown field",
            op(&app, Some(&admin), "{ noSuchField }", json!({})).await,
        ),
        (
            "bad variable",
            op(&app, Some(&admin), DISCHARGE, json!({ "id": "not-a-uuid" })).await,
        ),
        (
            "bad input",
            op(&app, Some(&admin), PATIENTS_PAGE, json!({ "first": 101 })).await,
        ),
    ];
    for (what, reply) in &executed {
        assert_eq!(reply.status, 200, "{what}: {}", reply.text);
        assert_errors_carry_code_and_request_id(reply, what);
        assert_eq!(
            reply.body["extensions"]["requestId"].as_str(),
            reply.request_id.as_deref(),
            "{what}: the response's extensions carry the request id: {}",
            reply.text
        );
    }
    // Refused before execution: a bad token (401) and a batch too large (400).
    let refused = vec![
        (
            "bad token",
            op(&app, Some("not-a-jwt"), "{ me { role } }", json!({})).await,
        ),
        (
            "batch too large",
            send(
                &app,
                Some(&admin),
                &Value::Array(vec![json!({ "query": "{ me { role } }" }); 11]),
                None,
            )
            .await,
        ),
    ];
    for (what, reply) in &refused {
        assert!([400, 401].contains(&reply.status), "{what}: {}", reply.text);
        assert_errors_carry_code_and_request_id(reply, what);
    }
    executed.extend(refused);
    // Each request has its own id.
    let mut ids: Vec<&str> = executed
        .iter()
        .map(|(_, r)| r.request_id.as_deref().expect("an id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), executed.len(), "{ids:?}");
}

#[tokio::test]
async fn refusals_before_execution_carry_the_request_id_in_the_response_extensions_too() {
    let app = spawn_app().await;
    let reply = op(&app, Some("not-a-jwt"), "{ me { role } }", json!({})).await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(
        reply.body["extensions"]["requestId"].as_str(),
        reply.request_id.as_deref(),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn a_well_formed_client_request_id_is_kept_and_a_malformed_one_replaced() {
    let app = spawn_app().await;
    let body = json!({ "query": "{ patients { totalCount } }" });

    let reply = send(&app, None, &body, Some("trace-0123_abc")).await;
    assert_eq!(reply.request_id.as_deref(), Some("trace-0123_abc"));
    assert_eq!(
        first_error(&reply.body)["requestId"],
        "trace-0123_abc",
        "{}",
        reply.text
    );

    let reply = send(&app, None, &body, Some("bad id; with spaces")).await;
    let id = reply.request_id.clone().expect("an id");
    assert_ne!(id, "bad id; with spaces");
    assert!(!id.is_empty());
    assert_eq!(first_error(&reply.body)["requestId"], id.as_str());
}

#[tokio::test]
async fn a_missing_record_is_not_found() {
    let app = spawn_app().await;
    let admin = app.login_as("admin@northside.example").await;
    let res = app
        .graphql(Some(&admin), DISCHARGE, json!({ "id": Uuid::new_v4() }))
        .await;
    assert_eq!(error_codes(&res), ["NOT_FOUND"], "{res}");

    // Another clinic's patient is just as missing.
    let owner = app.db.owner().await;
    let lakeside_patient = patient(&owner, "LS-0002").await;
    let res = app
        .graphql(Some(&admin), DISCHARGE, json!({ "id": lakeside_patient }))
        .await;
    assert_eq!(error_codes(&res), ["NOT_FOUND"], "{res}");
}

#[tokio::test]
async fn a_malformed_npi_is_bad_input_on_the_npi_field() {
    let app = spawn_app().await;
    let admin = app.login_as("admin@northside.example").await;
    let res = app
        .graphql(
            Some(&admin),
            CREATE_PROVIDER,
            json!({ "npi": "1234567890", "name": "Dr. Luhn Fails" }),
        )
        .await;
    assert_eq!(error_codes(&res), ["BAD_USER_INPUT"], "{res}");
    assert_eq!(first_error(&res)["field"], "npi", "{res}");
}

#[tokio::test]
async fn a_page_larger_than_100_is_bad_input_on_first() {
    let app = spawn_app().await;
    let admin = app.login_as("admin@northside.example").await;
    for first in [101, -1] {
        let res = app
            .graphql(Some(&admin), PATIENTS_PAGE, json!({ "first": first }))
            .await;
        assert_eq!(
            error_codes(&res),
            ["BAD_USER_INPUT"],
            "first {first}: {res}"
        );
        assert_eq!(first_error(&res)["field"], "first", "{res}");
    }
    let res = app
        .graphql(Some(&admin), PATIENTS_PAGE, json!({ "first": 100 }))
        .await;
    assert!(res["errors"].is_null(), "100 is allowed: {res}");
}

#[tokio::test]
async fn an_invalid_cursor_is_bad_input_on_after() {
    let app = spawn_app().await;
    let admin = app.login_as("admin@northside.example").await;
    for after in ["not-a-cursor", "", "eyJmb28iOiJiYXIifQ"] {
        let res = app
            .graphql(Some(&admin), PATIENTS_PAGE, json!({ "after": after }))
            .await;
        assert_eq!(
            error_codes(&res),
            ["BAD_USER_INPUT"],
            "after {after:?}: {res}"
        );
        assert_eq!(first_error(&res)["field"], "after", "{res}");
    }
}

#[tokio::test]
async fn a_reused_npi_is_a_conflict_with_reason_duplicate_npi() {
    let app = spawn_app().await;
    let admin = app.login_as("admin@northside.example").await;
    let count = "{ providers { totalCount } }";
    let before = app.graphql(Some(&admin), count, json!({})).await;
    let res = app
        .graphql(
            Some(&admin),
            CREATE_PROVIDER,
            json!({ "npi": "1234567893", "name": "Dr. Second Okafor" }),
        )
        .await;
    assert_eq!(error_codes(&res), ["CONFLICT"], "{res}");
    assert_eq!(first_error(&res)["reason"], "DUPLICATE_NPI", "{res}");
    let after = app.graphql(Some(&admin), count, json!({})).await;
    assert_eq!(
        before["data"]["providers"]["totalCount"], after["data"]["providers"]["totalCount"],
        "nothing was created"
    );
}

#[tokio::test]
async fn a_reused_mrn_is_a_conflict_with_reason_duplicate_mrn() {
    let app = spawn_app().await;
    let staff = app.login_as("frontdesk@northside.example").await;
    let res = app
        .graphql(
            Some(&staff),
            ENROLL,
            json!({ "mrn": "NS-0001", "first": "Jane" }),
        )
        .await;
    assert_eq!(error_codes(&res), ["CONFLICT"], "{res}");
    assert_eq!(first_error(&res)["reason"], "DUPLICATE_MRN", "{res}");
}

#[tokio::test]
async fn staff_creating_a_provider_is_forbidden_by_role() {
    let app = spawn_app().await;
    let staff = app.login_as("frontdesk@northside.example").await;
    let res = app
        .graphql(
            Some(&staff),
            CREATE_PROVIDER,
            json!({ "npi": "1555555550", "name": "Dr. Not Allowed" }),
        )
        .await;
    assert_eq!(error_codes(&res), ["FORBIDDEN"], "{res}");
    assert_eq!(first_error(&res)["reason"], "ROLE", "{res}");
    assert!(res["data"].is_null() || res["data"]["createProvider"].is_null());
}

#[tokio::test]
async fn patient_data_without_a_token_is_unauthenticated() {
    let app = spawn_app().await;
    let res = app
        .graphql(None, "{ patients { totalCount } }", json!({}))
        .await;
    assert_eq!(error_codes(&res), ["UNAUTHENTICATED"], "{res}");
    assert!(
        res["data"].is_null() || res["data"]["patients"].is_null(),
        "{res}"
    );
}

#[tokio::test]
async fn no_error_response_reveals_sql_constraints_tables_or_panics() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let northside = org(&owner, "northside").await;
    let lakeside = org(&owner, "lakeside").await;
    let sofia = patient(&owner, "NS-0002").await;
    let okafor = provider(&owner, northside, "1234567893").await;
    let lindqvist = provider(&owner, lakeside, "1555555550").await;
    let admin = app.login_as("admin@northside.example").await;
    let staff = app.login_as("frontdesk@northside.example").await;
    let a = Some(admin.as_str());
    let s = Some(staff.as_str());
    const UPDATE_MRN: &str = "mutation($id: UUID!, $mrn: String!) {
        updatePatient(id: $id, input: { mrn: $mrn }) { id } }";
    const ADD_MEMBER: &str = "mutation($p: UUID!, $v: UUID!) {
        addCareTeamMember(patientId: $p, providerId: $v, role: SPECIALIST) { id } }";
    const ASSIGN: &str = "mutation($p: UUID!, $v: UUID!) {
        assignPrimaryProvider(patientId: $p, providerId: $v) { id } }";
    const CONTACT: &str = "mutation($p: UUID!, $v: String!) {
        addContactMethod(patientId: $p, input: { type: MOBILE, value: $v }) { id } }";
    const BAD_LOGIN: &str = "mutation { login(email: \"x\", password: \"y\") { token } }";

    let probes: Vec<(&str, Option<&str>, &str, Value)> = vec![
        (
            "duplicate NPI",
            a,
            CREATE_PROVIDER,
            json!({ "npi": "1234567893", "name": "X" }),
        ),
        (
            "malformed NPI",
            a,
            CREATE_PROVIDER,
            json!({ "npi": "1234567890", "name": "X" }),
        ),
        (
            "role",
            s,
            CREATE_PROVIDER,
            json!({ "npi": "1555555550", "name": "X" }),
        ),
        (
            "duplicate MRN",
            s,
            ENROLL,
            json!({ "mrn": "NS-0001", "first": "Jane" }),
        ),
        (
            "duplicate MRN on update",
            s,
            UPDATE_MRN,
            json!({ "id": sofia, "mrn": "NS-0001" }),
        ),
        (
            "NUL byte",
            s,
            ENROLL,
            json!({ "mrn": "NS-9999", "first": "Ja\u{0}ne" }),
        ),
        (
            "overlong name",
            s,
            ENROLL,
            json!({ "mrn": "NS-9998", "first": "J".repeat(5000) }),
        ),
        (
            "missing patient",
            a,
            DISCHARGE,
            json!({ "id": Uuid::new_v4() }),
        ),
        (
            "other clinic's provider",
            s,
            ASSIGN,
            json!({ "p": sofia, "v": lindqvist }),
        ),
        (
            "care team twice",
            s,
            ADD_MEMBER,
            json!({ "p": sofia, "v": okafor }),
        ),
        (
            "bad phone",
            s,
            CONTACT,
            json!({ "p": sofia, "v": "call me maybe" }),
        ),
        ("page too large", a, PATIENTS_PAGE, json!({ "first": 101 })),
        (
            "bad cursor",
            a,
            PATIENTS_PAGE,
            json!({ "after": "garbage" }),
        ),
        ("no token", None, "{ patients { totalCount } }", json!({})),
        ("bad token", Some("x.y.z"), "{ me { role } }", json!({})),
        ("parse error", a, "{ me { role ", json!({})),
        ("bad variable", a, DISCHARGE, json!({ "id": "not-a-uuid" })),
        ("bad login", None, BAD_LOGIN, json!({})),
    ];
    for (what, token, query, variables) in probes {
        let reply = op(&app, token, query, variables).await;
        assert!(
            reply.body["errors"]
                .as_array()
                .is_some_and(|e| !e.is_empty()),
            "{what} should fail: {}",
            reply.text
        );
        assert_errors_carry_code_and_request_id(&reply, what);
        assert_no_leak(&reply, what);
        // The duplicates are refused as conflicts, not as internal errors.
        if what.starts_with("duplicate") {
            assert_eq!(
                error_codes(&reply.body),
                ["CONFLICT"],
                "{what}: {}",
                reply.text
            );
        }
    }
}

/// The first cell of each row of the README's error tables.
fn catalogue() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("the README");
    let section = readme
        .split("### Errors")
        .nth(1)
        .expect("the README has an Errors section");
    let section = section.split("\n#").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|cell| *cell != "code" && *cell != "reason")
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_error_catalogue_is_exactly_the_codes_and_reasons_of_the_code() {
    let mut vocabulary: BTreeSet<String> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    vocabulary.extend(RequestReason::ALL.iter().map(|r| r.as_str().to_owned()));
    vocabulary.extend(ConflictReason::ALL.iter().map(|r| r.as_str().to_owned()));
    vocabulary.extend(ForbiddenReason::ALL.iter().map(|r| r.as_str().to_owned()));
    vocabulary.extend(
        UnauthenticatedReason::ALL
            .iter()
            .map(|r| r.as_str().to_owned()),
    );
    let documented = catalogue();
    let undocumented: Vec<_> = vocabulary.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&vocabulary).collect();
    assert!(
        undocumented.is_empty(),
        "missing from the README: {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "in the README, not in the code: {unknown:?}"
    );
}

#[tokio::test]
async fn malformed_dea_state_and_phone_are_bad_input_naming_their_field_and_change_nothing() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let admin = app.login_as("admin@northside.example").await;
    let staff = app.login_as("frontdesk@northside.example").await;
    const PROVIDER: &str = "mutation($dea: String, $states: [String!]! = []) {
        createProvider(input: { name: \"Dr. Shape\", npi: \"1555555550\",
                                deaNumber: $dea, stateLicenses: $states }) { id } }";
    const CONTACT: &str = "mutation($p: UUID!, $t: ContactMethodType!, $v: String!) {
        addContactMethod(patientId: $p, input: { type: $t, value: $v }) { id } }";
    let chart = patient(&owner, "NS-0001").await;
    let probes: Vec<(&str, &str, Value, &str)> = vec![
        (&admin, PROVIDER, json!({ "dea": "AB12345" }), "deaNumber"),
        (&admin, PROVIDER, json!({ "dea": "A81234563" }), "deaNumber"),
        (
            &admin,
            PROVIDER,
            json!({ "states": ["NY", "ny"] }),
            "stateLicenses",
        ),
        (
            &admin,
            PROVIDER,
            json!({ "states": ["NYC"] }),
            "stateLicenses",
        ),
        (
            &staff,
            CONTACT,
            json!({ "p": chart, "t": "MOBILE", "v": "call me" }),
            "value",
        ),
        (
            &staff,
            CONTACT,
            json!({ "p": chart, "t": "HOME", "v": "12345" }),
            "value",
        ),
        (
            &staff,
            CONTACT,
            json!({ "p": chart, "t": "EMAIL", "v": "not-an-email" }),
            "value",
        ),
    ];
    for (token, query, vars, field) in probes {
        let res = app.graphql(Some(token), query, vars.clone()).await;
        assert_eq!(error_codes(&res), ["BAD_USER_INPUT"], "{vars}: {res}");
        assert_eq!(first_error(&res)["field"], field, "{vars}: {res}");
    }
    // Well-formed values pass the same edge.
    let res = app
        .graphql(
            Some(&admin),
            PROVIDER,
            json!({ "dea": "A91234563", "states": ["NY", "NJ"] }),
        )
        .await;
    assert!(res["errors"].is_null(), "{res}");
    let res = app
        .graphql(
            Some(&staff),
            CONTACT,
            json!({ "p": chart, "t": "WORK", "v": "+1 (212) 555-0100 x12" }),
        )
        .await;
    assert!(res["errors"].is_null(), "{res}");
    let providers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM providers WHERE name = 'Dr. Shape'")
            .fetch_one(&owner)
            .await
            .expect("count");
    assert_eq!(providers, 1, "only the well-formed provider was created");
}
