//! Operation limits (depth, complexity, aliases, root fields, body size,
//! batch size) refuse abusive requests before anything runs, and the server
//! keeps answering afterwards; automatic persisted queries and the
//! persisted-only mode.

use caregate::graphql::persisted::sha256_hex;
use serde_json::{Value, json};

use crate::support::app::{
    DEMO_PASSWORD, TestApp, error_codes, first_error, spawn_app, spawn_app_with,
};

const ME: &str = "{ me { role } }";
/// Nine levels deep (the limit is 10).
const WITHIN_DEPTH: &str = "{ patients(first: 1) { edges { node { careTeam { provider {
    patients(first: 1) { edges { node { id } } } } } } } } }";

/// The server still answers an ordinary query with this token.
async fn still_answers(app: &TestApp, token: &str) {
    let (status, body) = app.post(Some(token), &json!({ "query": ME })).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["me"]["role"], "ADMIN", "{body}");
}

/// Refused as BAD_USER_INPUT with `reason` and no data; returns the message.
fn assert_refused_as_bad_input(body: &Value, what: &str, reason: &str) -> String {
    assert_eq!(error_codes(body), ["BAD_USER_INPUT"], "{what}: {body}");
    assert_eq!(
        body["errors"][0]["extensions"]["reason"], reason,
        "{what}: {body}"
    );
    assert!(body["data"].is_null(), "{what}: nothing may run: {body}");
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase()
}

/// SQL statements the server runs for `body` (with `token`).
async fn statements_for(app: &TestApp, token: &str, body: &Value) -> (u64, u16, Value) {
    let before = app.statements();
    let (status, res) = app.post(Some(token), body).await;
    (app.statements() - before, status, res)
}

/// `patients -> edges -> node -> careTeam -> provider -> patients -> ...`:
/// five levels of depth per repetition.
fn nested_query(levels: usize) -> String {
    let mut inner = "name".to_owned();
    for _ in 0..levels {
        inner = format!("careTeam {{ provider {{ {inner} }} }}");
        inner = format!("patients(first: 1) {{ edges {{ node {{ {inner} }} }} }}");
    }
    format!("{{ {inner} }}")
}

#[tokio::test]
async fn a_query_nested_deeper_than_the_limit_is_refused_and_nothing_runs() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;

    // Baseline: a request that reads nothing.
    let (baseline, status, res) =
        statements_for(&app, &token, &json!({ "query": "{ __typename }" })).await;
    assert_eq!(status, 200, "{res}");

    // Within the limit (depth 9 of 10) the nesting is fine.
    let (_, status, res) = statements_for(&app, &token, &json!({ "query": WITHIN_DEPTH })).await;
    assert_eq!(status, 200, "{res}");
    assert!(res["errors"].is_null(), "{res}");

    let bomb = nested_query(3);
    let (ran, _, res) = statements_for(&app, &token, &json!({ "query": bomb })).await;
    let message = assert_refused_as_bad_input(&res, "depth bomb", "MAX_DEPTH");
    assert!(message.contains("deep"), "{res}");
    assert!(
        ran <= baseline,
        "the refused query ran {ran} statements, a request reading nothing runs {baseline}"
    );
    still_answers(&app, &token).await;
}

#[tokio::test]
async fn a_query_over_the_complexity_limit_is_refused() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    let query = "{ patients(first: 100) { edges { node { careTeam { provider {
        patients(first: 100) { edges { node { id firstName } } } } } } } } }";
    let (status, res) = app.post(Some(&token), &json!({ "query": query })).await;
    assert_eq!(status, 200, "{res}");
    let message = assert_refused_as_bad_input(&res, "complexity", "MAX_COMPLEXITY");
    assert!(message.contains("complex"), "{res}");
    still_answers(&app, &token).await;
}

fn aliased_roles(n: usize) -> String {
    let fields: Vec<String> = (0..n).map(|i| format!("r{i}: role")).collect();
    format!("{{ me {{ {} }} }}", fields.join(" "))
}

#[tokio::test]
async fn more_than_30_aliases_are_refused() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;

    let (_, res) = app
        .post(Some(&token), &json!({ "query": aliased_roles(30) }))
        .await;
    assert!(res["errors"].is_null(), "30 aliases are allowed: {res}");
    assert_eq!(res["data"]["me"]["r29"], "ADMIN");

    for n in [31, 500] {
        let (_, res) = app
            .post(Some(&token), &json!({ "query": aliased_roles(n) }))
            .await;
        let message = assert_refused_as_bad_input(&res, &format!("{n} aliases"), "MAX_ALIASES");
        assert!(message.contains("alias"), "{res}");
        still_answers(&app, &token).await;
    }
}

fn root_fields(n: usize) -> String {
    let fields: Vec<String> = (0..n).map(|i| format!("m{i}: me {{ role }}")).collect();
    format!("{{ {} }}", fields.join(" "))
}

#[tokio::test]
async fn more_than_10_root_fields_are_refused() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;

    let (_, res) = app
        .post(Some(&token), &json!({ "query": root_fields(10) }))
        .await;
    assert!(res["errors"].is_null(), "10 root fields are allowed: {res}");

    let (_, res) = app
        .post(Some(&token), &json!({ "query": root_fields(11) }))
        .await;
    let message = assert_refused_as_bad_input(&res, "11 root fields", "MAX_ROOT_FIELDS");
    assert!(message.contains("root field"), "{res}");
    still_answers(&app, &token).await;

    // Fragments do not hide root fields.
    let fields: Vec<String> = (0..11).map(|i| format!("p{i}: me {{ role }}")).collect();
    let query = format!("{{ ...F }} fragment F on Query {{ {} }}", fields.join(" "));
    let (_, res) = app.post(Some(&token), &json!({ "query": query })).await;
    assert_refused_as_bad_input(&res, "11 root fields through a fragment", "MAX_ROOT_FIELDS");
    still_answers(&app, &token).await;
}

#[tokio::test]
async fn a_body_over_64_kib_is_refused_with_413() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;

    let padded = |bytes: usize| json!({ "query": format!("# {}\n{ME}", "x".repeat(bytes)) });
    let (status, res) = app.post(Some(&token), &padded(60 * 1024)).await;
    assert_eq!(status, 200, "60 KiB is allowed: {res}");
    assert!(res["errors"].is_null(), "{res}");

    let (status, res) = app.post(Some(&token), &padded(70 * 1024)).await;
    assert_eq!(status, 413, "a 70 KiB query: {res}");
    assert_eq!(first_error(&res)["reason"], "BODY_TOO_LARGE", "{res}");
    still_answers(&app, &token).await;

    let big_string = json!({
        "query": "query($s: String) {
            me { role } providers(filter: { search: $s }) { totalCount } }",
        "variables": { "s": "y".repeat(100 * 1024) },
    });
    let (status, res) = app.post(Some(&token), &big_string).await;
    assert_eq!(status, 413, "a 100 KiB variable: {res}");
    assert_eq!(first_error(&res)["reason"], "BODY_TOO_LARGE", "{res}");
    still_answers(&app, &token).await;
}

#[tokio::test]
async fn a_batch_of_more_than_10_operations_is_refused() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    let batch = |n: usize| Value::Array(vec![json!({ "query": ME }); n]);

    let (ran, status, res) = statements_for(&app, &token, &batch(11)).await;
    assert_eq!(status, 400, "{res}");
    // One answer per operation, so a batching client keeps the code.
    let answers = res.as_array().expect("a batch is answered with an array");
    assert_eq!(answers.len(), 11, "{res}");
    for answer in answers {
        assert_eq!(error_codes(answer), ["BAD_USER_INPUT"], "{res}");
        assert_eq!(
            answer["errors"][0]["extensions"]["reason"], "MAX_BATCH",
            "{res}"
        );
    }
    assert_eq!(ran, 0, "a refused batch runs nothing");
    still_answers(&app, &token).await;

    // An empty batch runs nothing either.
    let (_, res) = app.post(Some(&token), &batch(0)).await;
    assert_refused_as_bad_input(&res, "an empty batch", "MAX_BATCH");
    still_answers(&app, &token).await;
}

#[tokio::test]
async fn a_batch_of_two_operations_returns_two_responses() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    let batch = json!([
        { "query": ME },
        { "query": "{ organization { slug } }" },
    ]);
    let (status, res) = app.post(Some(&token), &batch).await;
    assert_eq!(status, 200, "{res}");
    let responses = res.as_array().unwrap_or_else(|| panic!("an array: {res}"));
    assert_eq!(responses.len(), 2, "{res}");
    assert_eq!(responses[0]["data"]["me"]["role"], "ADMIN", "{res}");
    assert_eq!(
        responses[1]["data"]["organization"]["slug"], "northside",
        "{res}"
    );
    for r in responses {
        assert!(r["errors"].is_null(), "{res}");
        assert!(r["extensions"]["requestId"].is_string(), "{res}");
    }
}

fn persisted(hash: &str) -> Value {
    json!({ "version": 1, "sha256Hash": hash })
}

#[tokio::test]
async fn an_automatic_persisted_query_is_registered_by_its_text_then_runs_by_hash() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    let query = "query PersistedMe { me { role organization { slug } } }";
    let hash = sha256_hex(query);
    let by_hash = json!({ "extensions": { "persistedQuery": persisted(&hash) } });

    let (status, res) = app.post(Some(&token), &by_hash).await;
    assert_eq!(status, 200, "{res}");
    assert_eq!(error_codes(&res), ["PERSISTED_QUERY_NOT_FOUND"], "{res}");

    let register = json!({ "query": query, "extensions": { "persistedQuery": persisted(&hash) } });
    let (_, res) = app.post(Some(&token), &register).await;
    assert!(res["errors"].is_null(), "{res}");
    assert_eq!(res["data"]["me"]["role"], "ADMIN", "{res}");

    let (_, res) = app.post(Some(&token), &by_hash).await;
    assert!(res["errors"].is_null(), "{res}");
    assert_eq!(
        res["data"]["me"]["organization"]["slug"], "northside",
        "{res}"
    );
}

#[tokio::test]
async fn a_persisted_query_whose_hash_does_not_match_its_text_is_refused() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    let hash = sha256_hex("{ organization { slug } }");
    let lying = json!({ "query": ME, "extensions": { "persistedQuery": persisted(&hash) } });
    let (_, res) = app.post(Some(&token), &lying).await;
    assert_eq!(error_codes(&res), ["BAD_USER_INPUT"], "{res}");
    assert!(res["data"].is_null(), "{res}");

    // Nothing was registered under that hash.
    let by_hash = json!({ "extensions": { "persistedQuery": persisted(&hash) } });
    let (_, res) = app.post(Some(&token), &by_hash).await;
    assert_eq!(error_codes(&res), ["PERSISTED_QUERY_NOT_FOUND"], "{res}");
}

#[tokio::test]
async fn in_persisted_only_mode_a_plain_query_is_refused() {
    let app = spawn_app_with(|c| c.persisted_queries_only = true).await;
    for query in [
        "{ __typename }",
        "mutation { login(email: \"admin@northside.example\",
                          password: \"caregate-demo\") { token } }",
    ] {
        let (_, res) = app.post(None, &json!({ "query": query })).await;
        assert_eq!(error_codes(&res), ["FORBIDDEN"], "{query}: {res}");
        assert_eq!(
            first_error(&res)["reason"],
            "PERSISTED_QUERY_REQUIRED",
            "{res}"
        );
        assert!(res["data"].is_null(), "{res}");

        // Nor can a client register a query of its own.
        let hash = sha256_hex(query);
        let register =
            json!({ "query": query, "extensions": { "persistedQuery": persisted(&hash) } });
        let (_, res) = app.post(None, &register).await;
        assert_eq!(error_codes(&res), ["FORBIDDEN"], "{query}: {res}");
        assert_eq!(
            first_error(&res)["reason"],
            "PERSISTED_QUERY_REQUIRED",
            "{res}"
        );
    }
}

#[tokio::test]
async fn in_persisted_only_mode_manifest_queries_run_by_hash() {
    let login =
        "mutation Login($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";
    let me = "query Me { me { role organization { slug } } }";
    let manifest: serde_json::Map<String, Value> = [login, me]
        .into_iter()
        .map(|q| (sha256_hex(q), Value::String(q.to_owned())))
        .collect();
    let path =
        std::env::temp_dir().join(format!("caregate-manifest-{}.json", ulid::Ulid::generate()));
    std::fs::write(&path, Value::Object(manifest).to_string()).expect("writing the manifest");
    let file = path.clone();
    let app = spawn_app_with(move |c| {
        c.persisted_queries_only = true;
        c.persisted_queries_file = Some(file);
    })
    .await;
    std::fs::remove_file(&path).ok();

    let (_, res) = app
        .post(
            None,
            &json!({
                "extensions": { "persistedQuery": persisted(&sha256_hex(login)) },
                "variables": { "e": "admin@northside.example", "p": DEMO_PASSWORD },
            }),
        )
        .await;
    let token = res["data"]["login"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("login by hash: {res}"))
        .to_owned();

    let (_, res) = app
        .post(
            Some(&token),
            &json!({ "extensions": { "persistedQuery": persisted(&sha256_hex(me)) } }),
        )
        .await;
    assert!(res["errors"].is_null(), "{res}");
    assert_eq!(
        res["data"]["me"]["organization"]["slug"], "northside",
        "{res}"
    );

    // The manifest's text itself is accepted too; anything else is not.
    let (_, res) = app.post(Some(&token), &json!({ "query": me })).await;
    assert_eq!(res["data"]["me"]["role"], "ADMIN", "{res}");
    let (_, res) = app.post(Some(&token), &json!({ "query": ME })).await;
    assert_eq!(
        first_error(&res)["reason"],
        "PERSISTED_QUERY_REQUIRED",
        "{res}"
    );
}
