//! Per-clinic budgets: each clinic may make so many requests and spend so
//! many complexity points per window, all servers together; every response
//! of a signed-in clinic says where it stands (`extensions.rateLimit`), and
//! past the budget requests are refused with RATE_LIMITED, HTTP 429 and
//! `Retry-After` — without running, and without touching another clinic.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::org;
use crate::support::app::{TestApp, spawn_app_with, spawn_peer};
use crate::support::ws::{Got, LiveClient};

const CHEAP: &str = "{ me { role } }";
/// 100 patients × (edges, node, mrn): 300 points, and a few for `me`.
const EXPENSIVE: &str = "{ patients(first: 100) { edges { node { mrn } } } }";
const SUPPORT: &str = "support@caregate.example";

/// What a request was answered.
struct Reply {
    status: u16,
    retry_after: Option<u64>,
    body: Value,
}

impl Reply {
    fn rate_limit(&self) -> &Value {
        &self.body["extensions"]["rateLimit"]
    }

    fn number(&self, field: &str) -> i64 {
        self.rate_limit()[field]
            .as_i64()
            .unwrap_or_else(|| panic!("rateLimit.{field} is not a number: {}", self.body))
    }

    /// Seconds until the window the answer speaks of resets.
    fn seconds_left(&self) -> f64 {
        let reset = self.rate_limit()["resetAt"]
            .as_str()
            .unwrap_or_else(|| panic!("no resetAt: {}", self.body));
        let reset = chrono::DateTime::parse_from_rfc3339(reset).expect("resetAt is RFC 3339");
        (reset.with_timezone(&chrono::Utc) - chrono::Utc::now()).as_seconds_f64()
    }

    fn refused_by(&self, reason: &str) {
        assert_eq!(self.status, 429, "{}", self.body);
        let ext = &self.body["errors"][0]["extensions"];
        assert_eq!(ext["code"], "RATE_LIMITED", "{}", self.body);
        assert_eq!(ext["reason"], reason, "{}", self.body);
        let secs = self.retry_after.expect("a Retry-After header");
        assert!((1..=60).contains(&secs), "Retry-After: {secs}");
    }

    fn ok(&self) {
        assert_eq!(self.status, 200, "{}", self.body);
        assert!(self.body["errors"].is_null(), "{}", self.body);
    }
}

async fn send(app: &TestApp, token: Option<&str>, impersonate: Option<Uuid>, body: Value) -> Reply {
    let mut req = app.client.post(app.url("/graphql")).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(clinic) = impersonate {
        req = req.header("x-caregate-impersonate", clinic.to_string());
    }
    let resp = req.send().await.expect("sending");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = resp.json().await.expect("a JSON body");
    Reply {
        status,
        retry_after,
        body,
    }
}

async fn query(app: &TestApp, token: &str, q: &str) -> Reply {
    send(app, Some(token), None, json!({ "query": q })).await
}

/// A request early enough in its window that what follows fits in it:
/// when less than `secs` are left, waits for the next window first.
async fn fresh_window(app: &TestApp, token: &str, secs: f64) -> Reply {
    let probe = query(app, token, CHEAP).await;
    probe.ok();
    let left = probe.seconds_left();
    if left >= secs {
        return probe;
    }
    tokio::time::sleep(Duration::from_secs_f64(left.max(0.0) + 0.1)).await;
    let probe = query(app, token, CHEAP).await;
    probe.ok();
    probe
}

/// Refusals are answered after this pause.
const PAUSE: Duration = Duration::from_millis(200);

/// Budgets of `requests` and `points` per minute (0: none), counted per
/// minute and synchronised every 50 ms.
fn budget(requests: u32, points: u32) -> impl FnOnce(&mut caregate::config::Config) + Clone {
    move |c| {
        c.budget_requests_per_minute = requests;
        c.budget_points_per_minute = points;
        c.budget_window_seconds = 60;
        c.budget_sync_ms = 50;
        c.budget_refusal_delay_ms = PAUSE.as_millis() as u64;
    }
}

#[tokio::test]
async fn every_response_of_a_signed_in_clinic_carries_its_budget_and_it_goes_down_by_each_cost() {
    let app = spawn_app_with(budget(100, 10_000)).await;
    let token = app.login_as("admin@northside.example").await;
    let first = fresh_window(&app, &token, 10.0).await;
    assert_eq!(first.number("limit"), 10_000);
    assert_eq!(first.number("requestLimit"), 100);
    assert_eq!(first.number("cost"), 2, "me and role: {}", first.body);
    assert!(first.seconds_left() > 0.0 && first.seconds_left() <= 60.0);

    let page = query(&app, &token, EXPENSIVE).await;
    page.ok();
    let cost = page.number("cost");
    assert!(cost >= 300, "{}", page.body);
    assert_eq!(page.number("remaining"), first.number("remaining") - cost);
    assert_eq!(
        page.number("requestsRemaining"),
        first.number("requestsRemaining") - 1
    );

    // Each operation of a batch carries its own cost.
    let batch = send(
        &app,
        Some(&token),
        None,
        json!([{ "query": CHEAP }, { "query": EXPENSIVE }]),
    )
    .await;
    assert_eq!(batch.status, 200, "{}", batch.body);
    assert_eq!(batch.body[0]["extensions"]["rateLimit"]["cost"], 2);
    assert_eq!(batch.body[1]["extensions"]["rateLimit"]["cost"], cost);
    assert_eq!(
        batch.body[1]["extensions"]["rateLimit"]["remaining"],
        page.number("remaining") - 2 - cost
    );
    assert_eq!(
        batch.body[1]["extensions"]["rateLimit"]["requestsRemaining"],
        page.number("requestsRemaining") - 1,
        "a batch is one request"
    );

    // Logging in is outside the budgets (it has its own limits).
    let login = send(
        &app,
        None,
        None,
        json!({ "query": "mutation { login(email: \"admin@lakeside.example\", password: \"caregate-demo\") { token } }" }),
    )
    .await;
    login.ok();
    assert!(login.rate_limit().is_null(), "{}", login.body);
}

#[tokio::test]
async fn past_the_request_budget_a_request_is_refused_with_429_before_anything_runs() {
    let app = spawn_app_with(budget(3, 0)).await;
    let owner = app.db.owner().await;
    let northside = org(&owner, "northside").await;
    let admin = app.login_as("admin@northside.example").await;
    fresh_window(&app, &admin, 10.0).await;
    for left in [1, 0] {
        let r = query(&app, &admin, CHEAP).await;
        r.ok();
        assert_eq!(r.number("requestsRemaining"), left);
        assert!(r.rate_limit()["limit"].is_null(), "no point limit");
    }

    let create = json!({
        "query": "mutation($n: String!) { createProvider(input: { name: \"Dr. Refused\", npi: $n }) { id } }",
        "variables": { "n": crate::support::valid_npi(424_242) },
    });
    let statements = app.statements();
    let started = Instant::now();
    let refused = send(&app, Some(&admin), None, create.clone()).await;
    refused.refused_by("REQUEST_BUDGET");
    assert!(
        started.elapsed() >= PAUSE,
        "a refusal is answered after BUDGET_REFUSAL_DELAY_MS: {:?}",
        started.elapsed()
    );
    assert!(refused.body["data"].is_null(), "{}", refused.body);
    assert_eq!(refused.number("requestsRemaining"), 0);
    assert_eq!(refused.number("requestLimit"), 3);
    assert!(refused.retry_after.unwrap() as f64 >= refused.seconds_left().floor());
    assert_eq!(
        app.statements(),
        statements,
        "a refused request costs no database round trip"
    );
    let written: i64 =
        sea_orm::sqlx::query_scalar("SELECT count(*) FROM providers WHERE name = 'Dr. Refused'")
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(written, 0, "the refused mutation wrote nothing");

    // The same mutation, in a clinic with budget left, is carried out.
    let other = app.login_as("admin@lakeside.example").await;
    let done = send(&app, Some(&other), None, create).await;
    done.ok();
    let written: i64 = sea_orm::sqlx::query_scalar(
        "SELECT count(*) FROM providers WHERE name = 'Dr. Refused' AND organization_id <> $1",
    )
    .bind(northside)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(written, 1);
}

#[tokio::test]
async fn the_cost_budget_refuses_an_expensive_query_while_a_cheap_one_still_fits() {
    let app = spawn_app_with(budget(0, 1000)).await;
    let token = app.login_as("admin@northside.example").await;
    fresh_window(&app, &token, 10.0).await;
    let mut last = query(&app, &token, EXPENSIVE).await;
    last.ok();
    let cost = last.number("cost");
    while last.number("remaining") >= cost {
        last = query(&app, &token, EXPENSIVE).await;
        last.ok();
    }
    let remaining = last.number("remaining");
    assert!(remaining >= 2, "room left for a cheap one: {remaining}");

    let statements = app.statements();
    let refused = query(&app, &token, EXPENSIVE).await;
    refused.refused_by("COST_BUDGET");
    assert_eq!(
        app.statements(),
        statements,
        "an operation the clinic cannot afford costs no database round trip"
    );
    assert!(
        refused.body["data"].is_null(),
        "it did not run: {}",
        refused.body
    );
    assert_eq!(refused.number("cost"), cost);
    assert_eq!(
        refused.number("remaining"),
        remaining,
        "a refusal costs nothing"
    );
    assert!(
        refused.rate_limit()["requestLimit"].is_null(),
        "no request limit"
    );

    let cheap = query(&app, &token, CHEAP).await;
    cheap.ok();
    assert_eq!(cheap.body["data"]["me"]["role"], "ADMIN");
    assert_eq!(cheap.number("remaining"), remaining - 2);

    // A batch of both: the cheap one runs, the expensive one does not
    // (HTTP 200: not every operation was refused).
    let batch = send(
        &app,
        Some(&token),
        None,
        json!([{ "query": CHEAP }, { "query": EXPENSIVE }]),
    )
    .await;
    assert_eq!(batch.status, 200, "{}", batch.body);
    assert!(batch.retry_after.is_some());
    assert_eq!(batch.body[0]["data"]["me"]["role"], "ADMIN");
    assert_eq!(
        batch.body[1]["errors"][0]["extensions"]["reason"],
        "COST_BUDGET"
    );
}

#[tokio::test]
async fn a_clinic_that_spent_its_budget_does_not_hold_back_another() {
    let app = spawn_app_with(budget(3, 0)).await;
    let a = app.login_as("admin@northside.example").await;
    let b = app.login_as("admin@lakeside.example").await;
    fresh_window(&app, &a, 10.0).await;
    query(&app, &a, CHEAP).await.ok();
    query(&app, &a, CHEAP).await.ok();
    query(&app, &a, CHEAP).await.refused_by("REQUEST_BUDGET");
    // Windows are the same for every clinic: B's is the one A spent.
    for left in [2, 1, 0] {
        let r = query(&app, &b, CHEAP).await;
        r.ok();
        assert_eq!(r.number("requestsRemaining"), left, "{}", r.body);
    }
    query(&app, &b, CHEAP).await.refused_by("REQUEST_BUDGET");
    query(&app, &a, CHEAP).await.refused_by("REQUEST_BUDGET");
}

#[tokio::test]
async fn a_super_admin_sets_a_clinic_s_own_budget_and_a_clinic_admin_may_not() {
    let app = spawn_app_with(budget(1000, 0)).await;
    let owner = app.db.owner().await;
    let northside = org(&owner, "northside").await;
    let lakeside = org(&owner, "lakeside").await;
    let admin = app.login_as("admin@northside.example").await;
    let support = app.login_in(SUPPORT, Some(northside)).await;
    const SET: &str = "mutation($o: UUID!, $r: Int) { setClinicBudget(organizationId: $o, requestsPerMinute: $r) { requestsPerMinute pointsPerMinute ownRequestsPerMinute ownPointsPerMinute windowSeconds } }";
    const READ: &str = "{ organization { budget { requestsPerMinute ownRequestsPerMinute } } }";

    let by_admin = send(
        &app,
        Some(&admin),
        None,
        json!({ "query": SET, "variables": { "o": northside, "r": 2 } }),
    )
    .await;
    assert_eq!(
        by_admin.body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{}",
        by_admin.body
    );
    assert_eq!(
        by_admin.body["errors"][0]["extensions"]["reason"],
        "IMPERSONATION_REQUIRED"
    );
    let elsewhere = send(
        &app,
        Some(&support),
        Some(northside),
        json!({ "query": SET, "variables": { "o": lakeside, "r": 2 } }),
    )
    .await;
    assert_eq!(
        elsewhere.body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{}",
        elsewhere.body
    );
    let before = send(&app, Some(&admin), None, json!({ "query": READ })).await;
    before.ok();
    assert_eq!(
        before.body["data"]["organization"]["budget"],
        json!({ "requestsPerMinute": 1000, "ownRequestsPerMinute": null })
    );

    let set = send(
        &app,
        Some(&support),
        Some(northside),
        json!({ "query": SET, "variables": { "o": northside, "r": 2 } }),
    )
    .await;
    set.ok();
    assert_eq!(
        set.body["data"]["setClinicBudget"],
        json!({ "requestsPerMinute": 2, "pointsPerMinute": 0, "ownRequestsPerMinute": 2,
                "ownPointsPerMinute": null, "windowSeconds": 60 })
    );
    let audited: i64 = sea_orm::sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE resource_type = 'clinic_budgets' \
         AND organization_id = $1 AND impersonator_id IS NOT NULL",
    )
    .bind(northside)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(audited, 1, "the change is audited with the impersonator");

    // Every server applies it at its next sync: the clinic is refused
    // after two requests a window.
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.state.budgets.standing(northside).request_limit != Some(2) {
        assert!(Instant::now() < deadline, "the override never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut refused = None;
    for _ in 0..3 {
        let r = query(&app, &admin, READ).await;
        assert_eq!(r.number("requestLimit"), 2, "{}", r.body);
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(
            r.body["data"]["organization"]["budget"]["ownRequestsPerMinute"],
            2
        );
    }
    refused
        .expect("refused within three requests")
        .refused_by("REQUEST_BUDGET");

    // The super admin is never held back by the clinic's budget, and null
    // gives the clinic the default again.
    let reset = send(
        &app,
        Some(&support),
        Some(northside),
        json!({ "query": SET, "variables": { "o": northside, "r": null } }),
    )
    .await;
    reset.ok();
    assert_eq!(
        reset.body["data"]["setClinicBudget"]["requestsPerMinute"],
        1000
    );
    assert!(reset.body["data"]["setClinicBudget"]["ownRequestsPerMinute"].is_null());
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.state.budgets.standing(northside).request_limit != Some(1000) {
        assert!(Instant::now() < deadline, "the default never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    query(&app, &admin, CHEAP).await.ok();
}

#[tokio::test]
async fn two_servers_on_one_database_share_a_clinic_s_budget() {
    let one = spawn_app_with(budget(10, 0)).await;
    let two = spawn_peer(&one, budget(10, 0)).await;
    let owner = one.db.owner().await;
    let northside = org(&owner, "northside").await;
    let token = one.login_as("admin@northside.example").await;
    fresh_window(&one, &token, 20.0).await;
    // Server two counts the clinic from its first request on.
    query(&two, &token, CHEAP).await.ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    while one.state.budgets.standing(northside).requests_remaining != Some(8) {
        assert!(
            Instant::now() < deadline,
            "server one never saw server two's request"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for left in [7, 6, 5, 4] {
        let r = query(&one, &token, CHEAP).await;
        r.ok();
        assert_eq!(r.number("requestsRemaining"), left);
    }
    // Within a few sync intervals the other server counts them too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while two.state.budgets.standing(northside).requests_remaining != Some(4) {
        assert!(
            Instant::now() < deadline,
            "server two never saw server one's requests"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for left in [3, 2, 1, 0] {
        let r = query(&two, &token, CHEAP).await;
        r.ok();
        assert_eq!(r.number("requestsRemaining"), left);
    }
    query(&two, &token, CHEAP)
        .await
        .refused_by("REQUEST_BUDGET");
    // And server one learns of server two's.
    let deadline = Instant::now() + Duration::from_secs(10);
    while one.state.budgets.standing(northside).requests_remaining != Some(0) {
        assert!(
            Instant::now() < deadline,
            "server one never saw server two's requests"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    query(&one, &token, CHEAP)
        .await
        .refused_by("REQUEST_BUDGET");
}

#[tokio::test]
async fn a_clinic_s_budget_starts_afresh_when_its_window_ends() {
    // Two-second windows: 60 a minute is 2 a window.
    let app = spawn_app_with(|c| {
        budget(60, 0)(c);
        c.budget_window_seconds = 2;
    })
    .await;
    let token = app.login_as("admin@northside.example").await;
    let probe = query(&app, &token, CHEAP).await;
    probe.ok();
    tokio::time::sleep(Duration::from_secs_f64(
        probe.seconds_left().max(0.0) + 0.05,
    ))
    .await;
    let first = query(&app, &token, CHEAP).await;
    first.ok();
    assert_eq!(first.number("requestLimit"), 2);
    assert_eq!(first.number("requestsRemaining"), 1);
    query(&app, &token, CHEAP).await.ok();
    let refused = query(&app, &token, CHEAP).await;
    refused.refused_by("REQUEST_BUDGET");
    assert!(refused.retry_after.unwrap() <= 2);
    assert!(refused.seconds_left() <= 2.0);
    tokio::time::sleep(Duration::from_secs_f64(
        refused.seconds_left().max(0.0) + 0.05,
    ))
    .await;
    let again = query(&app, &token, CHEAP).await;
    again.ok();
    assert_eq!(
        again.number("requestsRemaining"),
        1,
        "a new window: {}",
        again.body
    );
}

#[tokio::test]
async fn without_the_database_each_server_counts_alone_and_nothing_hangs() {
    let one = spawn_app_with(budget(3, 0)).await;
    // Its direct connection (where budgets are synchronised) leads nowhere.
    let two = spawn_peer(&one, |c| {
        budget(3, 0)(c);
        c.direct_database_url = Some("postgres://caregate_app@127.0.0.1:1/caregate".to_owned());
    })
    .await;
    let token = one.login_as("admin@northside.example").await;
    // Let a few syncs fail first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = fresh_window(&two, &token, 15.0).await;
    assert_eq!(first.number("requestsRemaining"), 2);
    for _ in 0..2 {
        let started = Instant::now();
        query(&two, &token, CHEAP).await.ok();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    let started = Instant::now();
    query(&two, &token, CHEAP)
        .await
        .refused_by("REQUEST_BUDGET");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Server two's spending never reached the database: server one, which
    // can reach it, still has the clinic's whole budget (the documented
    // degradation: each server counts alone).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = query(&one, &token, CHEAP).await;
    r.ok();
    assert_eq!(r.number("requestsRemaining"), 2, "{}", r.body);
    // Server two still serves others.
    let b = one.login_as("admin@lakeside.example").await;
    query(&two, &b, CHEAP).await.ok();
}

#[tokio::test]
async fn a_subscription_counts_as_a_request_and_is_refused_past_the_budget() {
    let app = spawn_app_with(budget(3, 0)).await;
    let owner = app.db.owner().await;
    let northside = org(&owner, "northside").await;
    let token = app.login_as("admin@northside.example").await;
    fresh_window(&app, &token, 10.0).await;
    let mut live = LiveClient::connect(&app, &token).await;
    live.subscribe("1", "subscription { threadUpdated { id } }", json!({}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.state.budgets.standing(northside).requests_remaining != Some(1) {
        assert!(
            Instant::now() < deadline,
            "the subscription was not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    query(&app, &token, CHEAP).await.ok();
    query(&app, &token, CHEAP)
        .await
        .refused_by("REQUEST_BUDGET");
    live.subscribe(
        "2",
        "subscription { notificationAdded { kind } }",
        json!({}),
    )
    .await;
    match live.next(Duration::from_secs(5)).await {
        Got::Message(m) => {
            assert_eq!(m["type"], "error", "{m}");
            assert_eq!(m["id"], "2", "{m}");
            assert_eq!(m["payload"][0]["extensions"]["code"], "RATE_LIMITED", "{m}");
            assert_eq!(
                m["payload"][0]["extensions"]["reason"], "REQUEST_BUDGET",
                "{m}"
            );
            assert!(
                m["payload"][0]["extensions"]["retryAfter"]
                    .as_u64()
                    .is_some(),
                "{m}"
            );
        }
        other => panic!("expected an error for the second subscription, got {other:?}"),
    }
}
