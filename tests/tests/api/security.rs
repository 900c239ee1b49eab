//! The attacks found against the gateway, each closed: a quoting switch
//! that turned a header into SQL, an audit trail re-pointed by a batch, a
//! login limit raced, an audit trail flooded, production leaks.

use std::time::{Duration, Instant};

use sea_orm::sqlx::{self, Executor};
use serde_json::{Value, json};

use crate::support::app::{
    DEMO_PASSWORD, TestApp, error_codes, first_error, spawn_app, spawn_app_with,
};
use crate::support::q;

const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";

async fn login_with(app: &TestApp, headers: &[(&str, &str)], email: &str, password: &str) -> Value {
    let mut req = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": LOGIN, "variables": { "e": email, "p": password } }));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send()
        .await
        .expect("sending")
        .json()
        .await
        .expect("JSON")
}

/// (user agent, ip) of the LOGIN events, oldest first.
async fn login_events(app: &TestApp) -> Vec<(Option<String>, Option<String>)> {
    let owner = app.db.owner().await;
    sqlx::query_as(
        "SELECT user_agent, host(ip) FROM audit_events WHERE action = 'LOGIN' ORDER BY occurred_at, id",
    )
    .fetch_all(&owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn headers_reach_the_context_as_data_even_with_standard_conforming_strings_off() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    // What a careless database or role default could do.
    owner
        .execute(q(format!(
            "ALTER DATABASE {0} SET standard_conforming_strings = off; \
             ALTER ROLE caregate_app IN DATABASE {0} SET standard_conforming_strings = off",
            app.db.name
        )))
        .await
        .unwrap();
    let hostile = [
        r"x\'); SELECT pg_sleep(3); --",
        r"'; SELECT pg_sleep(3); --",
        r"\\'||pg_sleep(3)||'",
        "$$); SELECT pg_sleep(3); $$",
        "*/ SELECT pg_sleep(3); /*",
        r#"" OR 1=1 -- \"#,
    ];
    // New connections only: the pool's existing ones predate the setting.
    let fresh = spawn_app_with_db(&app).await;
    for ua in hostile {
        let started = Instant::now();
        let res = login_with(
            &fresh,
            &[("user-agent", ua)],
            "admin@northside.example",
            DEMO_PASSWORD,
        )
        .await;
        assert!(res["data"]["login"]["token"].is_string(), "{ua}: {res}");
        assert!(
            started.elapsed() < Duration::from_millis(2_500),
            "{ua}: took {:?}",
            started.elapsed()
        );
    }
    let stored: Vec<String> = login_events(&fresh)
        .await
        .into_iter()
        .filter_map(|(ua, _)| ua)
        .collect();
    for ua in hostile {
        assert!(
            stored.iter().any(|s| s == ua),
            "{ua} not stored literally: {stored:?}"
        );
    }
    owner
        .execute(q(format!(
            "ALTER ROLE caregate_app IN DATABASE {} RESET standard_conforming_strings",
            app.db.name
        )))
        .await
        .unwrap();
}

async fn spawn_app_with_db(app: &TestApp) -> TestApp {
    crate::support::app::spawn_peer(app, |_| {}).await
}

#[tokio::test]
async fn operations_that_change_who_acts_must_be_alone_in_their_request() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let jonathan = app.login_as("jonathan.smith@example.com").await;
    let lakeside = crate::database::fixtures::org(&owner, "lakeside").await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'READ'")
        .fetch_one(&owner)
        .await
        .unwrap();

    let read_then_switch = json!([
        { "query": "{ patients(first: 3) { edges { node { id } } } }" },
        { "query": "mutation($o: UUID!) { switchOrganization(organizationId: $o) { token } }",
          "variables": { "o": lakeside } },
    ]);
    let (status, res) = app.post(Some(&jonathan), &read_then_switch).await;
    assert_eq!(status, 400, "{res}");
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'READ'")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(after, before, "nothing ran, nothing was filed");

    for (what, body) in [
        (
            "two logins aliased",
            json!({ "query": "mutation { a: login(email: \"x@example.com\", password: \"p\") { token } \
                                          b: login(email: \"y@example.com\", password: \"p\") { token } }" }),
        ),
        (
            "a login in a batch",
            json!([{ "query": LOGIN, "variables": { "e": "x@example.com", "p": "p" } },
                   { "query": "{ __typename }" }]),
        ),
        (
            "logout beside a mutation",
            json!({ "query": "mutation { logout b: signConsent(documentId: \"00000000-0000-0000-0000-000000000000\") { id } }" }),
        ),
    ] {
        let (status, res) = app.post(Some(&jonathan), &body).await;
        assert_eq!(status, 400, "{what}: {res}");
        let first = res.as_array().map(|a| a[0].clone()).unwrap_or(res.clone());
        assert_eq!(error_codes(&first), ["BAD_USER_INPUT"], "{what}: {res}");
    }
    // Alone, they work.
    let res = app
        .graphql(
            Some(&jonathan),
            "mutation($o: UUID!) { switchOrganization(organizationId: $o) { token viewer { role organization { slug memberCount } } } }",
            json!({ "o": lakeside }),
        )
        .await;
    assert_eq!(
        res["data"]["switchOrganization"]["viewer"]["organization"]["slug"], "lakeside",
        "{res}"
    );
    assert!(
        res["data"]["switchOrganization"]["viewer"]["organization"]["memberCount"].is_null(),
        "a portal user sees no counts: {res}"
    );
}

#[tokio::test]
async fn concurrent_wrong_guesses_cannot_outrun_the_login_limit() {
    let app = spawn_app_with(|c| {
        c.login_attempts_per_email = 5;
        c.login_attempts_per_ip = 1000;
    })
    .await;
    let email = "frontdesk@northside.example";
    let guesses: Vec<_> = (0..50)
        .map(|i| {
            let client = app.client.clone();
            let url = app.url("/graphql");
            tokio::spawn(async move {
                let res: Value = client
                    .post(url)
                    .json(&json!({ "query": LOGIN, "variables": { "e": email, "p": format!("wrong-{i}") } }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                error_codes(&res)
            })
        })
        .collect();
    let mut checked = 0;
    for g in guesses {
        match g.await.unwrap().as_slice() {
            [c] if c == "UNAUTHENTICATED" => checked += 1,
            [c] if c == "RATE_LIMITED" => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(
        checked <= 5,
        "{checked} passwords were checked, the limit is 5"
    );
    let owner = app.db.owner().await;
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'ACCESS_DENIED' AND changes->>'email' = $1",
    )
    .bind(email)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(
        audited, checked,
        "only checked refusals are written to the trail"
    );

    let res = login_with(&app, &[], email, DEMO_PASSWORD).await;
    assert_eq!(
        error_codes(&res),
        ["RATE_LIMITED"],
        "the right password is refused while limited: {res}"
    );

    // Another replica on the same database shares the count.
    let replica = spawn_app_with_db(&app).await;
    let res = login_with(&replica, &[], email, DEMO_PASSWORD).await;
    assert_eq!(error_codes(&res), ["RATE_LIMITED"], "{res}");
}

#[tokio::test]
async fn the_client_address_comes_from_x_forwarded_for_only_behind_a_trusted_proxy() {
    // The address the LOGIN audit event records for a forwarded login.
    async fn audited_ip(app: &TestApp) -> Option<String> {
        login_with(
            app,
            &[("x-forwarded-for", "198.51.100.7")],
            "admin@northside.example",
            DEMO_PASSWORD,
        )
        .await;
        login_events(app).await.pop().and_then(|(_, ip)| ip)
    }
    let untrusting = spawn_app().await;
    assert_eq!(audited_ip(&untrusting).await.as_deref(), Some("127.0.0.1"));
    let trusting = spawn_app_with(|c| c.trusted_proxies = vec!["127.0.0.1".into()]).await;
    assert_eq!(audited_ip(&trusting).await.as_deref(), Some("198.51.100.7"));
}

#[tokio::test]
async fn production_gives_no_schema_hints_no_graphiql_and_no_metrics_on_the_api_port() {
    let app = spawn_app_with(|c| {
        c.environment = caregate::config::Environment::Production;
        c.jwt_secret = Some("a-production-secret-of-at-least-32-bytes!".into());
    })
    .await;
    let res = app.graphql(None, "{ patien }", json!({})).await;
    let message = res["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(!message.contains("Did you mean"), "{res}");
    assert!(!message.contains("patient"), "{res}");

    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        400,
        "no page: a GET is a query, and this one names none"
    );
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let asset = app
        .client
        .get(app.url("/graphiql/graphiql.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 404);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 404);
}

#[tokio::test]
async fn graphiql_when_served_forbids_inline_scripts_framing_and_sniffing() {
    let app = spawn_app().await;
    for path in [
        "/graphql",
        "/graphiql/graphiql.min.js",
        "/graphiql/start.js",
    ] {
        let resp = app
            .client
            .get(app.url(path))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("script-src 'self' 'unsafe-inline'"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
    }
}

#[tokio::test]
async fn metrics_are_served_on_their_own_address_when_configured() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let app = spawn_app_with(|c| c.metrics_listen_addr = Some(addr)).await;
    let on_api = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(on_api.status(), 404);
    let mut served = None;
    for _ in 0..50 {
        if let Ok(resp) = app
            .client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
        {
            served = Some(resp.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served, Some(200));
}

#[tokio::test]
async fn a_refused_session_leaves_no_context_behind() {
    let app = spawn_app().await;
    let token = app.login_as("admin@northside.example").await;
    app.graphql(Some(&token), "mutation { logout }", json!({}))
        .await;
    let (status, res) = app
        .post(Some(&token), &json!({ "query": "{ me { role } }" }))
        .await;
    assert_eq!(status, 401, "{res}");
    assert_eq!(first_error(&res)["code"], "UNAUTHENTICATED");
}

#[tokio::test]
async fn the_login_limit_counts_an_email_however_it_is_padded() {
    let app = spawn_app_with(|c| c.login_attempts_per_email = 3).await;
    for variant in [
        "frontdesk@northside.example",
        " frontdesk@northside.example",
        "FrontDesk@Northside.Example\t",
        "\u{3000}frontdesk@northside.example",
    ] {
        login_with(&app, &[], variant, "wrong").await;
    }
    let res = login_with(
        &app,
        &[],
        "\u{2003}frontdesk@northside.example\u{2003}",
        DEMO_PASSWORD,
    )
    .await;
    assert_eq!(error_codes(&res), ["RATE_LIMITED"], "{res}");
}

#[tokio::test]
async fn logging_in_with_an_old_token_still_attached_works() {
    let app = spawn_app().await;
    let old = app.login_as("admin@northside.example").await;
    // A valid token, and an expired or forged one: neither plays a part.
    for bearer in [old.as_str(), "not-a-token"] {
        let res: Value = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(bearer)
            .json(&json!({ "query": LOGIN,
                           "variables": { "e": "frontdesk@northside.example", "p": DEMO_PASSWORD } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(res["data"]["login"]["token"].is_string(), "{bearer}: {res}");
    }
}

/// Builds a server on `db` in `environment` (with a production secret).
async fn start_on(
    db: &crate::support::db::TestDb,
    environment: caregate::config::Environment,
) -> anyhow::Result<caregate::server::Server> {
    let mut config = crate::support::app::default_config();
    config.database_url = Some(db.owner_url.clone());
    config.app_database_url = None;
    config.db_pool_size = 2;
    config.environment = environment;
    config.jwt_secret = Some("a-production-secret-of-at-least-32-bytes!".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    caregate::server::Server::build(config, &db.owner_url, listener).await
}

#[tokio::test]
async fn production_refuses_to_serve_a_weakened_catalog_naming_each_object_and_development_warns() {
    use caregate::config::Environment;
    let db = crate::support::db::TestDb::seeded().await;
    assert!(
        start_on(&db, Environment::Production).await.is_ok(),
        "the migrated catalog passes"
    );
    let owner = db.owner().await;
    sqlx::raw_sql(q(format!(
        "ALTER TABLE public.appointments NO FORCE ROW LEVEL SECURITY; \
         ALTER POLICY tenant_isolation ON public.claims USING (true) WITH CHECK (true); \
         CREATE POLICY peek ON public.patients USING (organization_id = app.current_tenant_id()); \
         CREATE POLICY nosy ON public.providers FOR SELECT USING (EXISTS (SELECT 1 FROM public.patients)); \
         ALTER ROLE caregate_app IN DATABASE {} SET app.tenant_id = '00000000-0000-0000-0000-000000000000'; \
         ALTER FUNCTION app.open_break_glass(uuid, text, text, integer) RESET search_path;",
        db.name
    )))
    .execute(&owner)
    .await
    .unwrap();

    let refused = start_on(&db, Environment::Production)
        .await
        .err()
        .expect("production refuses to serve");
    let message = format!("{refused:#}");
    assert!(message.contains("refusing to serve"), "{message}");
    for object in [
        "appointments: row-level security enabled, not forced",
        "patients: row-level security enabled, forced, 2 policies, 1 without USING or WITH CHECK",
        "policy nosy on providers runs a sub-query",
        "app.tenant_id=00000000-0000-0000-0000-000000000000 set for caregate_app",
        "app.open_break_glass(uuid,text,text,integer) has no search_path",
    ] {
        assert!(message.contains(object), "{object} in: {message}");
    }
    // A permissive policy is complete (USING and WITH CHECK): the catalog
    // rules cannot judge what it admits — `caregate verify-isolation` does.
    assert!(!message.contains("claims"), "{message}");

    // Development starts, warning.
    assert!(start_on(&db, Environment::Development).await.is_ok());
}
