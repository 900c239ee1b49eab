//! caregate behind PgBouncer in transaction mode (`DB_TRANSACTION_POOLER`):
//! every request's transaction gets whichever server connection is free,
//! so nothing may depend on a connection outliving a transaction — not a
//! prepared statement, not a session setting, not a LISTEN. The
//! cross-tenant and pool-hygiene suites also run this way
//! (`through_pgbouncer::*`).

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use crate::support::app::{DEMO_PASSWORD, error_codes, spawn_app_through_pgbouncer_with};
use crate::support::pgbouncer::SERVER_CONNECTIONS;
use crate::support::ws::{Got, LiveClient};

const PATIENTS: &str = "{ patients(first: 5) { edges { node { mrn } } } }";

#[tokio::test]
async fn many_more_transactions_than_server_connections_run_without_named_statements() {
    // Eight client connections share three server connections: a named
    // statement prepared on one would be missing on the next.
    let app = spawn_app_through_pgbouncer_with(|c| c.db_pool_size = 8).await;
    const { assert!(SERVER_CONNECTIONS < 8) };
    let token = app.login_as("admin@northside.example").await;
    let answers: Vec<_> = futures::stream::iter(0..120)
        .map(|_| app.graphql(Some(&token), PATIENTS, json!({})))
        .buffer_unordered(16)
        .collect()
        .await;
    for res in &answers {
        assert!(res["errors"].is_null(), "{res}");
        assert_eq!(
            res["data"]["patients"]["edges"].as_array().map(Vec::len),
            Some(5)
        );
    }
}

#[tokio::test]
async fn the_timeouts_are_set_in_every_transaction_since_the_pooler_refuses_startup_options() {
    let app = spawn_app_through_pgbouncer_with(|c| c.statement_timeout_ms = 1234).await;
    for _ in 0..2 * SERVER_CONNECTIONS {
        let (tx, rows) = service::Tx::begin_with(
            app.state.db.get_postgres_connection_pool(),
            &app.state.tx_options,
            "SELECT current_setting('statement_timeout') AS statement, \
             current_setting('idle_in_transaction_session_timeout') AS idle",
            Default::default(),
        )
        .await
        .expect("a transaction through PgBouncer");
        let statement: String = rows[0].try_get("", "statement").unwrap();
        let idle: String = rows[0].try_get("", "idle").unwrap();
        assert_eq!((statement.as_str(), idle.as_str()), ("1234ms", "4936ms"));
        drop(tx);
    }
}

#[tokio::test]
async fn failed_logins_are_counted_through_the_pooler() {
    let app = spawn_app_through_pgbouncer_with(|c| c.login_attempts_per_email = 2).await;
    let login = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";
    let email = "frontdesk@northside.example";
    for _ in 0..2 {
        let res = app
            .graphql(None, login, json!({"e": email, "p": "wrong-password"}))
            .await;
        assert_eq!(error_codes(&res), ["UNAUTHENTICATED"], "{res}");
    }
    let res = app
        .graphql(None, login, json!({"e": email, "p": DEMO_PASSWORD}))
        .await;
    assert_eq!(error_codes(&res), ["RATE_LIMITED"], "{res}");
}

#[tokio::test]
async fn live_updates_listen_directly_and_deliver_through_the_pooler() {
    let app = spawn_app_through_pgbouncer_with(|_| {}).await;
    let admin = app.login_as("admin@northside.example").await;
    let mut live = LiveClient::connect(&app, &admin).await;
    live.subscribe("t", "subscription { threadUpdated { subject } }", json!({}))
        .await;
    // The listener may still be connecting: wait until it is.
    let owner = app.db.owner().await;
    for _ in 0..50 {
        let listening: i64 = sea_orm::sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND query LIKE 'LISTEN%'",
        )
        .fetch_one(&owner)
        .await
        .unwrap();
        if listening > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p = crate::database::fixtures::patient(&owner, "NS-0001").await;
    let started = app
        .graphql(
            Some(&admin),
            "mutation($i: StartThreadInput!) { startThread(input: $i) { id } }",
            json!({"i": {"patientId": p, "subject": "Through the pooler", "body": "Hello"}}),
        )
        .await;
    assert!(started["errors"].is_null(), "{started}");
    match live.next(Duration::from_secs(5)).await {
        Got::Message(m) => {
            assert_eq!(m["type"], "next", "{m}");
            assert_eq!(
                m["payload"]["data"]["threadUpdated"]["subject"],
                "Through the pooler"
            );
        }
        other => panic!("expected the new thread, got {other:?}"),
    }
}

#[tokio::test]
async fn more_concurrent_logins_than_server_connections_all_succeed() {
    // A login holds its request's server connection while it counts the
    // attempt: the count goes directly to PostgreSQL, or logins would
    // wait on each other for PgBouncer's three server connections.
    let app = spawn_app_through_pgbouncer_with(|c| c.db_pool_size = 8).await;
    let logins = [
        "admin@northside.example",
        "frontdesk@northside.example",
        "frontdesk.harlem@northside.example",
        "dr.okafor@northside.example",
        "admin@lakeside.example",
        "frontdesk@lakeside.example",
        "dr.lindqvist@lakeside.example",
        "jonathan.smith@example.com",
    ];
    const { assert!(SERVER_CONNECTIONS < 8) };
    let login = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";
    let answers = futures::future::join_all(
        logins
            .iter()
            .map(|e| app.graphql(None, login, json!({"e": e, "p": DEMO_PASSWORD}))),
    )
    .await;
    for res in &answers {
        assert!(res["data"]["login"]["token"].is_string(), "{res}");
    }
}

#[tokio::test]
async fn a_pooler_that_drops_the_startup_options_is_refused_at_start_without_the_setting() {
    // Unnoticed, no statement would have its timeout, and named
    // statements would collide across clients.
    let bouncer = crate::support::pgbouncer::address_ignoring_startup_options().await;
    let db = crate::support::db::TestDb::seeded().await;
    let mut config = crate::support::app::default_config();
    config.database_url = Some(db.owner_url.clone());
    config.app_database_url = Some(format!(
        "postgres://{}@{bouncer}/{}",
        migration::RUNTIME_ROLE,
        db.name
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let Err(err) = caregate::server::Server::build(config, &db.owner_url, listener).await else {
        panic!("a server whose runtime connection lost its settings must not start");
    };
    let message = format!("{err:#}");
    assert!(message.contains("statement_timeout"), "{message}");
    assert!(message.contains("DB_TRANSACTION_POOLER=true"), "{message}");
}
