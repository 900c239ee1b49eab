//! caregate against the tools client teams use: the GraphQL over HTTP
//! audit of the `graphql-http` package (and, in `relay`, the Relay
//! compiler). They are Node packages, pinned in `tests/clients`; `npm ci`
//! there installs them (`.ci/run` does; these tests do it when missing).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::database::fixtures::patient;
use crate::support::app::spawn_app;

/// `tests/clients`, with its packages installed.
pub fn client_tools() -> PathBuf {
    static READY: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients");
    let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
    if !*ready {
        if !dir.join("node_modules/graphql-http").is_dir()
            || !dir.join("node_modules/graphql-ws").is_dir()
        {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .expect("running npm (Node.js 20 and npm are needed: apt-get install nodejs npm)");
            assert!(status.success(), "npm ci in {}", dir.display());
        }
        *ready = true;
    }
    dir
}

#[tokio::test]
async fn the_graphql_over_http_audit_finds_no_must_failure_and_at_most_two_should_warnings() {
    let app = spawn_app().await;
    let dir = client_tools();
    let url = app.url("/graphql");
    let out = tokio::process::Command::new("node")
        .arg("audit.mjs")
        .arg(&url)
        .current_dir(&dir)
        .output()
        .await
        .expect("running node");
    assert!(
        out.status.success(),
        "the audit did not run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(results.len() > 50, "the audit ran {} checks", results.len());
    let level = |r: &Value| {
        r["name"]
            .as_str()
            .unwrap_or("")
            .split(' ')
            .next()
            .unwrap_or("")
            .to_owned()
    };
    let failed = |lvl: &str| -> Vec<String> {
        results
            .iter()
            .filter(|r| level(r) == lvl && r["status"] != "ok")
            .map(|r| format!("{} {} ({})", r["id"], r["name"], r["reason"]))
            .collect()
    };
    let (musts, shoulds, mays) = (failed("MUST"), failed("SHOULD"), failed("MAY"));
    println!(
        "graphql-http audit: {} checks; MUST not ok: {}, SHOULD not ok: {}, MAY not ok: {}",
        results.len(),
        musts.len(),
        shoulds.len(),
        mays.len()
    );
    assert!(musts.is_empty(), "MUST failures: {musts:#?}");
    assert!(shoulds.len() <= 2, "SHOULD warnings: {shoulds:#?}");
}

#[test]
fn relay_compiles_refetchable_fragments_and_connections_against_the_schema() {
    let dir = client_tools().join("relay");
    let out = Command::new("../node_modules/.bin/relay-compiler")
        .current_dir(&dir)
        .output()
        .expect("running relay-compiler");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "relay-compiler failed:\n{text}");
    let refetch =
        std::fs::read_to_string(dir.join("src/__generated__/PatientCardRefetchQuery.graphql.ts"))
            .expect("the refetch query of the @refetchable fragment");
    assert!(refetch.contains("node(id: $id)"), "{refetch}");
}

#[tokio::test]
async fn the_graphql_ws_client_receives_a_subscription_as_apollo_urql_and_relay_would() {
    let app = spawn_app().await;
    let dir = client_tools();
    let owner = app.db.owner().await;
    let admin = app.login_as("admin@northside.example").await;
    let p = patient(&owner, "NS-0001").await;
    let started = app
        .graphql(
            Some(&admin),
            "mutation($p: UUID!) { startThread(input: {patientId: $p, subject: \"Hello\", body: \"First\"}) { id } }",
            serde_json::json!({"p": p}),
        )
        .await;
    let thread = started["data"]["startThread"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"))
        .to_owned();
    let out = tokio::process::Command::new("node")
        .arg("live.mjs")
        .arg(app.url("/graphql"))
        .arg(format!("ws://{}/graphql/ws", app.addr))
        .arg(&admin)
        .arg(&thread)
        .current_dir(&dir)
        .output()
        .await
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "graphql-ws got nothing: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim()).expect("a JSON line");
    assert_eq!(
        result["next"]["data"]["messageAdded"]["body"], "from graphql-ws",
        "{result}"
    );
}
