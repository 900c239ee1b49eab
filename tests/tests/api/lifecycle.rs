//! Slow and stalled clients, shutdown, and a database that goes away: the
//! server answers or lets go within its configured times, and comes back
//! without a restart.

use std::time::{Duration, Instant};

use sea_orm::sqlx::Executor;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::app::{TestApp, error_codes, spawn_app_until, spawn_app_with};

/// Opens a connection and sends `bytes` of a request, no more.
async fn half_send(app: &TestApp, bytes: &str) -> TcpStream {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(bytes.as_bytes()).await.unwrap();
    stream
}

/// Reads until the server closes the connection (or `limit` passes);
/// returns what it sent.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut buf = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut buf)).await {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(_) => None,
    }
}

const PARTIAL_BODY: &str = "POST /graphql HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                            content-length: 100\r\n\r\n{\"query\":";

#[tokio::test]
async fn shutdown_finishes_within_its_deadline_despite_half_sent_requests() {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (app, running) = spawn_app_until(
        |c| {
            c.shutdown_timeout_ms = 1_000;
            c.header_read_timeout_ms = 60_000;
            c.body_read_timeout_ms = 60_000;
        },
        async move {
            let _ = stopped.await;
        },
    )
    .await;
    let _nine_bytes = half_send(&app, "POST /gra").await;
    let _partial_headers = half_send(&app, "POST /graphql HTTP/1.1\r\nhost: x\r\n").await;
    let _partial_body = half_send(&app, PARTIAL_BODY).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), running).await;
    let took = started.elapsed();
    assert!(result.is_ok(), "the server did not stop within 5 s");
    assert!(
        took < Duration::from_millis(2_000),
        "stopped after {took:?}, deadline 1 s"
    );
    println!("shutdown with three half-sent requests took {took:?}");
}

#[tokio::test]
async fn a_request_in_flight_at_shutdown_finishes() {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (app, running) = spawn_app_until(|c| c.shutdown_timeout_ms = 5_000, async move {
        let _ = stopped.await;
    })
    .await;
    let token = app.login_as("admin@northside.example").await;
    // The request waits on a lock, so it is surely in flight at SIGTERM.
    let owner = app.db.owner().await;
    let mut held = owner.acquire().await.unwrap();
    held.execute("BEGIN").await.unwrap();
    held.execute("LOCK TABLE appointments IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let in_flight = {
        let client = app.client.clone();
        let url = app.url("/graphql");
        tokio::spawn(async move {
            let resp = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "query": "{ appointments(first: 1) { edges { node { id } } } }" }))
                .send()
                .await
                .expect("an answer");
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.execute("ROLLBACK").await.unwrap();
    let (status, res) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{res}");
    assert!(res["errors"].is_null(), "{res}");
    tokio::time::timeout(Duration::from_secs(6), running)
        .await
        .expect("stopped")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_client_that_does_not_finish_its_headers_is_cut_off() {
    let app = spawn_app_with(|c| c.header_read_timeout_ms = 500).await;
    let mut stream = half_send(&app, "POST /graphql HTTP/1.1\r\nhost: x\r\n").await;
    let started = Instant::now();
    let closed = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "the connection is still open after 5 s");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_client_that_does_not_finish_its_body_gets_408() {
    let app = spawn_app_with(|c| c.body_read_timeout_ms = 500).await;
    let mut stream = half_send(&app, PARTIAL_BODY).await;
    let started = Instant::now();
    let answer = read_to_close(&mut stream, Duration::from_secs(5))
        .await
        .expect("an answer within 5 s");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("BODY_TIMEOUT"), "{answer}");
}

/// A cluster of this test's own, which it stops and starts: never the
/// shared server.
mod outage {
    use super::*;

    async fn get_status(app: &TestApp, path: &str) -> (u16, Duration) {
        let started = Instant::now();
        let status = app.client.get(app.url(path)).send().await.unwrap().status();
        (status.as_u16(), started.elapsed())
    }

    #[tokio::test]
    async fn with_postgresql_down_requests_fail_fast_with_503_and_recover_without_restart() {
        // Under the system's temporary directory: run as root, the cluster
        // belongs to the `postgres` user, who may not be able to enter the
        // checkout's directory.
        let root = std::env::temp_dir().join(format!("caregate-outage-{}", ulid::Ulid::generate()));
        let cluster = tokio::task::spawn_blocking({
            let root = root.clone();
            move || caregate::cluster::ensure(&root)
        })
        .await
        .unwrap()
        .expect("starting a private cluster");
        let owner_url = cluster.url("postgres");
        let owner = caregate::db::connect_owner(&owner_url).await.unwrap();
        caregate::startup::migrate(&owner).await.unwrap();
        service::demo::seed(&owner, &crate::support::app::test_keyring())
            .await
            .unwrap();
        owner.close().await.ok();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = crate::support::app::default_config();
        config.database_url = Some(owner_url.clone());
        config.db_pool_size = 2;
        let server = caregate::server::Server::build(config, &owner_url, listener)
            .await
            .unwrap();
        let app = TestApp {
            addr: server.local_addr().unwrap(),
            db: crate::support::db::TestDb::detached(),
            client: reqwest::Client::new(),
            state: server.state.clone(),
        };
        tokio::spawn(server.run(std::future::pending()));
        let token = app.login_as("admin@northside.example").await;

        // A mutation in flight when PostgreSQL goes down (it waits on a
        // lock, then its session is terminated): never reported as done.
        let owner = caregate::db::connect_owner(&owner_url).await.unwrap();
        let held = sea_orm::sqlx::PgPool::clone(owner.get_postgres_connection_pool());
        let mut lock = held.acquire().await.unwrap();
        sea_orm::sqlx::Executor::execute(&mut *lock, "BEGIN")
            .await
            .unwrap();
        sea_orm::sqlx::Executor::execute(
            &mut *lock,
            "LOCK TABLE providers IN ACCESS EXCLUSIVE MODE",
        )
        .await
        .unwrap();
        let in_flight = {
            let client = app.client.clone();
            let url = app.url("/graphql");
            let token = token.clone();
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({ "query": "mutation { createProvider(input: { name: \"Dr. Gone\", npi: \"1234567893\" }) { id } }" }))
                    .send()
                    .await
                    .expect("an answer");
                (
                    resp.status().as_u16(),
                    resp.json::<Value>().await.expect("JSON"),
                )
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;

        let stopped = cluster.clone();
        tokio::task::spawn_blocking(move || stopped.stop())
            .await
            .unwrap()
            .expect("stopping the cluster");
        drop(lock);
        let (status, res) = in_flight.await.unwrap();
        assert!(status >= 500, "{status}: {res}");
        assert!(
            res["data"].is_null() || res["data"]["createProvider"].is_null(),
            "{res}"
        );
        let code = res["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_default();
        assert!(code == "INTERNAL" || code == "UNAVAILABLE", "{res}");

        let started = Instant::now();
        let resp = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .json(&json!({ "query": "{ me { role } }" }))
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(resp.status(), 503);
        assert!(resp.headers().contains_key("retry-after"));
        let res: Value = resp.json().await.unwrap();
        assert_eq!(error_codes(&res), ["UNAVAILABLE"], "{res}");
        assert!(took < Duration::from_millis(3_000), "took {took:?}");
        println!("request with PostgreSQL down answered 503 in {took:?}");

        let (status, took) = get_status(&app, "/readyz").await;
        assert_eq!(status, 503);
        assert!(took < Duration::from_millis(2_500), "readyz took {took:?}");
        println!("/readyz with PostgreSQL down answered in {took:?}");

        let restarted = tokio::task::spawn_blocking({
            let root = root.clone();
            move || caregate::cluster::ensure(&root)
        })
        .await
        .unwrap()
        .expect("restarting the cluster");
        let mut recovered = false;
        for _ in 0..20 {
            let res = app
                .graphql(Some(&token), "{ me { role } }", json!({}))
                .await;
            if res["data"]["me"]["role"] == "ADMIN" {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(recovered, "requests work again without a restart");
        let res = app
            .graphql(
                Some(&token),
                "{ providers(filter: { search: \"Gone\" }) { totalCount } }",
                json!({}),
            )
            .await;
        assert_eq!(
            res["data"]["providers"]["totalCount"], 0,
            "the interrupted write was not saved: {res}"
        );
        assert_eq!(get_status(&app, "/readyz").await.0, 200);

        let _ = tokio::task::spawn_blocking(move || restarted.stop()).await;
        let _ = std::fs::remove_dir_all(&root);
    }
}

#[tokio::test]
async fn one_client_cannot_hold_every_connection() {
    let app = spawn_app_with(|c| c.max_connections_per_client = 2).await;
    let first = half_send(&app, "GET /healthz HTTP/1.1\r\nhost: x\r\n").await;
    let _second = half_send(&app, "GET /healthz HTTP/1.1\r\nhost: x\r\n").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = half_send(&app, "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let answer = read_to_close(&mut third, Duration::from_secs(2)).await;
    assert_eq!(
        answer.as_deref(),
        Some(""),
        "the third connection is closed unanswered"
    );
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = half_send(
        &app,
        "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    let answer = read_to_close(&mut fourth, Duration::from_secs(2))
        .await
        .expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
