//! Any number of caregate servers on one database behave as one: nothing
//! about a session, a login limit or the queries allowed lives in a
//! server's memory alone. Two servers here share a database; a load
//! balancer may send each request to either.

use serde_json::{Value, json};

use caregate::graphql::persisted::sha256_hex;

use crate::database::fixtures::org;
use crate::support::app::{DEMO_PASSWORD, TestApp, error_codes, spawn_app_with, spawn_peer};

const ME: &str = "query Me { me { organization { slug } } }";

async fn slug(app: &TestApp, token: &str) -> Value {
    let res = app.graphql(Some(token), ME, json!({})).await;
    res["data"]["me"]["organization"]["slug"].clone()
}

#[tokio::test]
async fn a_token_from_one_server_works_on_the_other_and_a_logout_on_one_ends_it_on_both() {
    let one = spawn_app_with(|_| {}).await;
    let two = spawn_peer(&one, |_| {}).await;
    let token = one.login_as("admin@northside.example").await;
    assert_eq!(slug(&two, &token).await, "northside");

    let out = two
        .graphql(Some(&token), "mutation { logout }", json!({}))
        .await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    for server in [&one, &two] {
        let res = server.graphql(Some(&token), ME, json!({})).await;
        assert_eq!(error_codes(&res), ["UNAUTHENTICATED"], "{res}");
    }
}

#[tokio::test]
async fn switching_clinics_on_one_server_retires_the_old_token_on_the_other() {
    let one = spawn_app_with(|_| {}).await;
    let two = spawn_peer(&one, |_| {}).await;
    let owner = one.db.owner().await;
    let northside = org(&owner, "northside").await;
    let lakeside = org(&owner, "lakeside").await;
    let token = one
        .login_in("jonathan.smith@example.com", Some(northside))
        .await;
    let res = one
        .graphql(
            Some(&token),
            "mutation($o: UUID!) { switchOrganization(organizationId: $o) { token } }",
            json!({ "o": lakeside }),
        )
        .await;
    let switched = res["data"]["switchOrganization"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{res}"))
        .to_owned();
    let old = two.graphql(Some(&token), ME, json!({})).await;
    assert_eq!(error_codes(&old), ["UNAUTHENTICATED"], "{old}");
    assert_eq!(slug(&two, &switched).await, "lakeside");
}

#[tokio::test]
async fn the_login_limit_is_shared_by_every_server() {
    let one = spawn_app_with(|c| c.login_attempts_per_email = 4).await;
    let two = spawn_peer(&one, |c| c.login_attempts_per_email = 4).await;
    let login = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";
    let email = "frontdesk@northside.example";
    // Two wrong guesses on each server: four in all.
    for server in [&one, &two, &one, &two] {
        let res = server
            .graphql(None, login, json!({"e": email, "p": "wrong-password"}))
            .await;
        assert_eq!(error_codes(&res), ["UNAUTHENTICATED"], "{res}");
    }
    for server in [&one, &two] {
        let res = server
            .graphql(None, login, json!({"e": email, "p": DEMO_PASSWORD}))
            .await;
        assert_eq!(error_codes(&res), ["RATE_LIMITED"], "{res}");
    }
}

#[tokio::test]
async fn each_server_loads_the_persisted_query_manifest_and_enforces_it_alike() {
    let login =
        "mutation Login($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";
    let manifest: serde_json::Map<String, Value> = [login, ME]
        .into_iter()
        .map(|q| (sha256_hex(q), Value::String(q.to_owned())))
        .collect();
    let path =
        std::env::temp_dir().join(format!("caregate-manifest-{}.json", ulid::Ulid::generate()));
    std::fs::write(&path, Value::Object(manifest).to_string()).expect("writing the manifest");
    let (first, second) = (path.clone(), path.clone());
    let one = spawn_app_with(move |c| {
        c.persisted_queries_only = true;
        c.persisted_queries_file = Some(first);
    })
    .await;
    let two = spawn_peer(&one, move |c| {
        c.persisted_queries_only = true;
        c.persisted_queries_file = Some(second);
    })
    .await;
    std::fs::remove_file(&path).ok();

    let by_hash = |hash: String| json!({ "version": 1, "sha256Hash": hash });
    let (_, res) = one
        .post(
            None,
            &json!({
                "extensions": { "persistedQuery": by_hash(sha256_hex(login)) },
                "variables": { "e": "admin@northside.example", "p": DEMO_PASSWORD },
            }),
        )
        .await;
    let token = res["data"]["login"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("login by hash: {res}"))
        .to_owned();
    for server in [&one, &two] {
        let (_, res) = server
            .post(
                Some(&token),
                &json!({ "extensions": { "persistedQuery": by_hash(sha256_hex(ME)) } }),
            )
            .await;
        assert_eq!(
            res["data"]["me"]["organization"]["slug"], "northside",
            "{res}"
        );
        let (_, res) = server
            .post(Some(&token), &json!({ "query": "{ me { role } }" }))
            .await;
        assert_eq!(error_codes(&res), ["FORBIDDEN"], "{res}");
        assert_eq!(
            res["errors"][0]["extensions"]["reason"],
            "PERSISTED_QUERY_REQUIRED"
        );
    }
}
