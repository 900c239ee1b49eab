//! Gateway duties: GraphiQL served offline, probes, metrics, introspection
//! switch, CORS.

use serde_json::json;

use crate::support::app::{spawn_app, spawn_app_with};

#[tokio::test]
async fn graphiql_page_and_assets_are_served_without_external_urls() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("graphiql"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );
    for asset in [
        "/graphiql/graphiql.min.js",
        "/graphiql/graphiql.min.css",
        "/graphiql/react.production.min.js",
        "/graphiql/react-dom.production.min.js",
    ] {
        assert!(html.contains(asset), "the page does not load {asset}");
        let resp = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{asset}");
        assert!(!resp.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn health_and_readiness_report_a_migrated_database() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap(),
        json!({ "status": "ready" })
    );
}

#[tokio::test]
async fn metrics_count_requests_by_operation_and_outcome_and_show_the_pool() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    app.post(Some(&token), &json!({ "query": "query ListPatients { patients { totalCount } }", "operationName": "ListPatients" }))
        .await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "caregate_graphql_requests_total{operation=\"ListPatients\",outcome=\"ok\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("caregate_graphql_request_duration_seconds_bucket"));
    assert!(text.contains("caregate_db_pool_connections"));
    assert!(text.contains("caregate_db_statements_total"));
}

#[tokio::test]
async fn introspection_is_on_in_development_and_off_in_production() {
    let query = json!({ "query": "{ __schema { queryType { name } } }" });
    let dev = spawn_app().await;
    let (_, res) = dev.post(None, &query).await;
    assert_eq!(
        res["data"]["__schema"]["queryType"]["name"], "Query",
        "{res}"
    );

    let prod = spawn_app_with(|c| {
        c.environment = caregate::config::Environment::Production;
        c.jwt_secret = Some("a-production-secret-of-at-least-32-bytes".to_owned());
    })
    .await;
    let (_, res) = prod.post(None, &query).await;
    assert!(res["data"]["__schema"].is_null(), "{res}");
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app =
        spawn_app_with(|c| c.cors_origins = vec!["https://app.clinic.example".to_owned()]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.clinic.example").await.unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("https://app.clinic.example")
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn production_refuses_the_default_secret() {
    let mut config = crate::support::app::default_config();
    config.environment = caregate::config::Environment::Production;
    assert!(config.validate().is_err(), "no secret");
    config.jwt_secret = Some(caregate::config::DEV_JWT_SECRET.to_owned());
    assert!(config.validate().is_err(), "the development secret");
    config.jwt_secret = Some("a-production-secret-of-at-least-32-bytes".to_owned());
    assert!(config.validate().is_ok());
}

#[test]
fn documented_configuration_defaults_are_pinned() {
    insta::assert_json_snapshot!(crate::support::app::default_config());
}
