//! Pool hygiene: many interleaved requests of two clinics over a pool of two
//! connections, some of them cancelled mid-flight, never carry one clinic's
//! context into the other's request.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::app::{Route, spawn_app_on};

const QUERY: &str =
    "{ me { organization { slug } } patients(first: 100) { edges { node { mrn } } } }";

fn mrns(res: &Value) -> Vec<String> {
    res["data"]["patients"]["edges"]
        .as_array()
        .map(|edges| {
            edges
                .iter()
                .filter_map(|e| e["node"]["mrn"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn interleaved_and_cancelled_requests_of_two_clinics_never_leak_context(route: Route) {
    let app = spawn_app_on(route, |c| c.db_pool_size = 2).await;
    let a = app.login_as("admin@northside.example").await;
    let b = app.login_as("admin@lakeside.example").await;
    // A client that gives up almost at once: its requests are cancelled
    // while the server is working on them.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(2))
        .build()
        .unwrap();

    let total = 1200;
    let results: Vec<Option<(bool, Value)>> = futures::stream::iter(0..total)
        .map(|i| {
            let (app, a, b, impatient) = (&app, &a, &b, &impatient);
            async move {
                let clinic_a = i % 2 == 0;
                let token = if clinic_a { a } else { b };
                if i % 7 == 0 {
                    let _ = impatient
                        .post(app.url("/graphql"))
                        .bearer_auth(token)
                        .json(&json!({ "query": QUERY }))
                        .send()
                        .await;
                    return None;
                }
                Some((clinic_a, app.graphql(Some(token), QUERY, json!({})).await))
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    let mut checked = 0;
    for (clinic_a, res) in results.into_iter().flatten() {
        assert!(res.get("errors").is_none(), "{res}");
        let (slug, prefix) = if clinic_a {
            ("northside", "NS-")
        } else {
            ("lakeside", "LS-")
        };
        assert_eq!(res["data"]["me"]["organization"]["slug"], slug);
        let seen = mrns(&res);
        assert!(!seen.is_empty());
        assert!(
            seen.iter().all(|m| m.starts_with(prefix)),
            "{slug} saw {seen:?}"
        );
        checked += 1;
    }
    assert!(checked > 1000);

    // Still serving, and no connection was left inside a transaction.
    let res = app.graphql(Some(&a), QUERY, json!({})).await;
    assert_eq!(res["data"]["me"]["organization"]["slug"], "northside");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stuck: i64 = sea_orm::sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND usename = 'caregate_app' AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&app.db.owner().await)
    .await
    .unwrap();
    assert_eq!(stuck, 0);
}

crate::support::on_every_route!(
    interleaved_and_cancelled_requests_of_two_clinics_never_leak_context
);
