//! What a hostile client sends: values nested without end, characters
//! PostgreSQL cannot store, numbers that overflow, a flood of unique
//! queries. Each is refused with a code naming the input, and the server
//! keeps serving with bounded memory.

use serde_json::{Value, json};

use crate::database::fixtures::patient;
use crate::support::app::{TestApp, error_codes, first_error, spawn_app, spawn_app_with};

async fn still_serves(app: &TestApp) {
    let res = app.graphql(None, "{ __typename }", json!({})).await;
    assert_eq!(res["data"]["__typename"], "Query", "{res}");
}

fn assert_bad_input_on(res: &Value, field: &str, what: &str) {
    assert_eq!(error_codes(res), ["BAD_USER_INPUT"], "{what}: {res}");
    assert_eq!(first_error(res)["field"], field, "{what}: {res}");
}

#[tokio::test]
async fn values_nested_a_hundred_thousand_deep_are_refused_without_harm() {
    let app = spawn_app_with(|c| c.max_body_bytes = 2 * 1024 * 1024).await;
    let n = 100_000;
    for (what, query) in [
        (
            "input objects",
            format!(
                "{{patients(filter:{}1{}){{totalCount}}}}",
                "{a:".repeat(n),
                "}".repeat(n)
            ),
        ),
        (
            "lists",
            format!(
                "{{patients(filter:{}1{}){{totalCount}}}}",
                "[".repeat(n),
                "]".repeat(n)
            ),
        ),
        ("selection sets", format!("{{{}", "a{".repeat(n))),
    ] {
        let (status, res) = app.post(None, &json!({ "query": query })).await;
        assert_eq!(status, 200, "{what}");
        assert_bad_input_on(&res, "query", what);
        still_serves(&app).await;
    }
    // The size the issue was found with: 1,200 levels in 5 KB, anonymous.
    let small = format!(
        "{{patients(filter:{}1{}){{totalCount}}}}",
        "{a:".repeat(1200),
        "}".repeat(1200)
    );
    let (_, res) = app.post(None, &json!({ "query": small })).await;
    assert_bad_input_on(&res, "query", "1,200 levels");
    still_serves(&app).await;
}

#[tokio::test]
async fn deeply_nested_variables_are_refused_as_bad_input() {
    let app = spawn_app_with(|c| c.max_body_bytes = 2 * 1024 * 1024).await;
    let n = 50_000;
    let body = format!(
        "{{\"query\":\"query($f: PatientFilter) {{ patients(filter: $f) {{ totalCount }} }}\",\"variables\":{{\"f\":{}1{}}}}}",
        "{\"a\":".repeat(n),
        "}".repeat(n)
    );
    let resp = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let res: Value = resp.json().await.expect("a JSON error body");
    assert_eq!(error_codes(&res), ["BAD_USER_INPUT"], "{res}");
    still_serves(&app).await;
}

#[tokio::test]
async fn nul_characters_are_refused_naming_the_input_wherever_they_are() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    let owner = app.db.owner().await;
    let p = patient(&owner, "NS-0003").await;
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "search literal",
            "{ patients(filter: {search: \"a\\u0000b\"}) { totalCount } }",
            json!({}),
            "filter",
        ),
        (
            "search variable",
            "query($s: String) { patients(filter: {search: $s}) { totalCount } }",
            json!({ "s": "a\u{0}b" }),
            "s",
        ),
        (
            "specialty filter",
            "query($f: ProviderFilter) { providers(filter: $f) { totalCount } }",
            json!({ "f": { "specialty": "\u{0}" } }),
            "f",
        ),
        (
            "mutation input",
            "mutation($p: UUID!) { addContactMethod(patientId: $p, input: {type: EMAIL, value: \"x\\u0000@example.com\"}) { id } }",
            json!({ "p": p }),
            "input",
        ),
        (
            "cursor literal",
            "{ patients(after: \"\\u0000\") { totalCount } }",
            json!({}),
            "after",
        ),
    ];
    for (what, query, variables, field) in cases {
        let res = app.graphql(Some(&token), query, variables).await;
        assert_bad_input_on(&res, field, what);
    }

    // A forged cursor: valid base64 of a key whose name holds a NUL.
    use base64::Engine;
    let key = json!({ "a": "smith\u{0}", "b": "john", "id": p });
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.to_string());
    let res = app
        .graphql(
            Some(&token),
            "query($c: String) { patients(first: 2, after: $c) { totalCount edges { node { id } } } }",
            json!({ "c": cursor }),
        )
        .await;
    assert_bad_input_on(&res, "after", "forged cursor");
    still_serves(&app).await;
}

#[tokio::test]
async fn integers_that_would_overflow_are_refused_naming_the_argument() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    let res = app
        .graphql(
            Some(&token),
            "mutation { reserveAuthorizationUnits(authorizationId: \"00000000-0000-0000-0000-000000000000\", units: 2147483647) { usedUnits } }",
            json!({}),
        )
        .await;
    assert_bad_input_on(&res, "units", "literal");
    let res = app
        .graphql(
            Some(&token),
            "mutation($n: Int!) { reserveAuthorizationUnits(authorizationId: \"00000000-0000-0000-0000-000000000000\", units: $n) { usedUnits } }",
            json!({ "n": 2147483647 }),
        )
        .await;
    assert_bad_input_on(&res, "n", "variable");
    let res = app
        .graphql(
            Some(&token),
            "{ patients(filter: {}) { totalCount } a: patients(first: -2147483648) { totalCount } }",
            json!({}),
        )
        .await;
    assert_bad_input_on(&res, "first", "negative");
}

#[tokio::test]
async fn the_document_cache_keeps_only_queries_that_ran_and_stays_within_its_budget() {
    let budget = 256 * 1024;
    let app = spawn_app_with(|c| c.document_cache_bytes = budget).await;
    let token = app.login_as("admin@northside.example").await;
    let preparation = app.state.preparation.clone();
    let after_login = preparation.cached_bytes();

    // Documents that fail (unknown fields, unauthenticated) are never cached.
    for i in 0..50 {
        app.graphql(None, &format!("{{ unknown{i} }}"), json!({}))
            .await;
        app.graphql(
            None,
            &format!("{{ patients {{ totalCount }} x{i}: me {{ role }} }}"),
            json!({}),
        )
        .await;
    }
    assert_eq!(
        preparation.cached_bytes(),
        after_login,
        "failed documents are not cached"
    );

    // Valid ones are, within the budget, however many arrive.
    for i in 0..300 {
        let padding = " ".repeat(1000);
        let res = app
            .graphql(
                Some(&token),
                &format!("{{ me {{ role }} {padding} n{i}: organization {{ name }} }}"),
                json!({}),
            )
            .await;
        assert!(res["errors"].is_null(), "{res}");
        assert!(preparation.cached_bytes() <= budget);
    }
    assert!(preparation.cached_bytes() > budget / 2, "the cache is used");
}
