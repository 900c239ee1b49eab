//! The clinic's own billing: payments, refunds, balances, subscription overrides.
//!
//! Money moves through the running server only; the owner connection is used
//! to read what was stored (and, once, to fail a payment as a processor
//! would), never to record a transaction. Each test starts from the demo
//! without its money and its override (`blank`), so every amount and count
//! it asserts is its own; `the_demo_holds_a_settled_account_and_a_discount`
//! checks what the demo holds.

use sea_orm::sqlx::{self, PgPool};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::{org, patient, user};
use crate::support::app::{TestApp, error_codes, first_error, spawn_app, spawn_app_with};
use crate::support::therapy::{ADMIN, DOCTOR, STAFF, data, id_of};

/// The server over the demo without its billing transactions and its
/// subscription override (removed as the owner, before any request).
async fn blank(app: TestApp) -> TestApp {
    let owner = app.db.owner().await;
    sqlx::query("DELETE FROM billing_transactions")
        .execute(&owner)
        .await
        .unwrap();
    sqlx::query("DELETE FROM subscription_overrides")
        .execute(&owner)
        .await
        .unwrap();
    app
}

#[tokio::test]
async fn the_demo_holds_a_settled_account_and_a_discount() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let jonathan = patient(&owner, "NS-0001").await;
    let staff = app.login_as(STAFF).await;
    let res = app
        .graphql(
            Some(&staff),
            "query($p: UUID!) { patient(id: $p) { balance { currency amountMinor }
               billingTransactions { edges { node { kind amountMinor refundedMinor processorRef } } } } }",
            json!({ "p": jonathan }),
        )
        .await;
    let p = data(&res, "patient");
    assert_eq!(
        p["balance"],
        json!([{ "currency": "USD", "amountMinor": 0 }]),
        "{res}"
    );
    let kinds: Vec<(String, i64)> = p["billingTransactions"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["kind"].as_str().unwrap().to_owned(),
                e["node"]["amountMinor"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds.iter().map(|k| k.1).sum::<i64>(),
        4500 + 6000 + 1500,
        "{res}"
    );
    assert!(kinds.contains(&("PAYMENT".to_owned(), 6000)), "{res}");
    assert!(kinds.contains(&("REFUND".to_owned(), 1500)), "{res}");
    let admin = app.login_as(ADMIN).await;
    let res = app
        .graphql(
            Some(&admin),
            "{ organization { subscription { override { kind discountPercent } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data(&res, "organization")["subscription"]["override"],
        json!({ "kind": "DISCOUNT", "discountPercent": 20 }),
        "{res}"
    );
}

const LAKESIDE_STAFF: &str = "frontdesk@lakeside.example";
const LAKESIDE_ADMIN: &str = "admin@lakeside.example";
const JONATHAN: &str = "jonathan.smith@example.com";
const MARIA: &str = "maria.garcia@example.com";
const SUPPORT: &str = "support@caregate.example";

const FIELDS: &str = "id owner kind amountMinor currency status refundOf refundedMinor
    processor processorRef managedByProxyId description";

fn pay_query() -> String {
    format!("mutation($i: RecordPaymentInput!) {{ recordPayment(input: $i) {{ {FIELDS} }} }}")
}

fn refund_query() -> String {
    format!("mutation($i: RecordRefundInput!) {{ recordRefund(input: $i) {{ {FIELDS} }} }}")
}

fn adjust_query() -> String {
    format!("mutation($i: RecordAdjustmentInput!) {{ recordAdjustment(input: $i) {{ {FIELDS} }} }}")
}

const LEDGER: &str = "query($p: UUID!, $first: Int, $after: String) { patient(id: $p) {
    balance { currency amountMinor }
    billingTransactions(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id kind amountMinor currency refundOf refundedMinor managedByProxyId } } } } }";

const SUBSCRIPTION: &str = "{ organization { subscription { status planStatus
    override { id kind discountPercent trialEndsOn reason grantedBy revokedAt } } } }";
const GRANT_OVERRIDE: &str = "mutation($i: GrantSubscriptionOverrideInput!) {
    grantSubscriptionOverride(input: $i) {
      id kind discountPercent trialEndsOn reason grantedBy revokedBy revokedAt } }";
const REVOKE_OVERRIDE: &str =
    "mutation($id: UUID!) { revokeSubscriptionOverride(id: $id) { id kind revokedBy revokedAt } }";

/// Records a payment (whole response); `extra` is merged into the input.
async fn pay(app: &TestApp, token: &str, patient: Uuid, amount: i64, extra: Value) -> Value {
    let mut input = json!({ "patientId": patient, "amountMinor": amount });
    merge(&mut input, extra);
    app.graphql(Some(token), &pay_query(), json!({ "i": input }))
        .await
}

async fn refund(app: &TestApp, token: &str, payment: &str, amount: i64, extra: Value) -> Value {
    let mut input = json!({ "paymentId": payment, "amountMinor": amount });
    merge(&mut input, extra);
    app.graphql(Some(token), &refund_query(), json!({ "i": input }))
        .await
}

async fn adjust(
    app: &TestApp,
    token: &str,
    patient: Option<Uuid>,
    amount: i64,
    extra: Value,
) -> Value {
    let mut input =
        json!({ "patientId": patient, "amountMinor": amount, "description": "Visit copay" });
    merge(&mut input, extra);
    app.graphql(Some(token), &adjust_query(), json!({ "i": input }))
        .await
}

fn merge(input: &mut Value, extra: Value) {
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            input[k] = v;
        }
    }
}

/// The id of a recorded transaction, as the API gives it.
fn tx_id(res: &Value, field: &str) -> String {
    data(res, field)["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an id: {res}"))
        .to_owned()
}

/// The patient's balance and one page of transactions, as `token` sees them.
async fn ledger(
    app: &TestApp,
    token: &str,
    patient: Uuid,
    first: Option<i64>,
    after: Option<&str>,
) -> Value {
    app.graphql(
        Some(token),
        LEDGER,
        json!({ "p": patient, "first": first, "after": after }),
    )
    .await
}

fn node_ids(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("a connection: {connection}"))
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts `res` failed with one error of `code` and `key` = `value` in its
/// extensions (`reason` or `field`).
#[track_caller]
fn assert_refused(res: &Value, code: &str, key: &str, value: &str) {
    assert_eq!(error_codes(res), vec![code.to_owned()], "{res}");
    assert_eq!(first_error(res)[key], value, "{res}");
}

async fn stored_count(owner: &PgPool, patient: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM billing_transactions WHERE patient_id = $1")
        .bind(patient)
        .fetch_one(owner)
        .await
        .expect("counting transactions")
}

async fn stored_refunded(owner: &PgPool, payment: &str) -> i64 {
    sqlx::query_scalar("SELECT refunded_minor FROM billing_transactions WHERE id = $1::uuid")
        .bind(payment)
        .fetch_one(owner)
        .await
        .expect("a payment")
}

/// Sum and number of the refunds stored against a payment.
async fn stored_refunds(owner: &PgPool, payment: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT coalesce(sum(amount_minor), 0)::bigint, count(*) FROM billing_transactions
         WHERE refund_of = $1::uuid AND kind = 'REFUND'",
    )
    .bind(payment)
    .fetch_one(owner)
    .await
    .expect("refunds")
}

/// Signs the active HIPAA notice as the token's user.
async fn sign_hipaa(app: &TestApp, token: &str) {
    let docs = app
        .graphql(Some(token), "{ consentDocuments { id kind } }", json!({}))
        .await;
    let id = docs["data"]["consentDocuments"]
        .as_array()
        .unwrap_or_else(|| panic!("consent documents: {docs}"))
        .iter()
        .find(|d| d["kind"] == "HIPAA_NOTICE")
        .unwrap_or_else(|| panic!("an active HIPAA notice: {docs}"))["id"]
        .clone();
    let res = app
        .graphql(
            Some(token),
            "mutation($d: UUID!) { signConsent(documentId: $d) { signedAt } }",
            json!({ "d": id }),
        )
        .await;
    data(&res, "signConsent");
}

/// An audit event as stored: action, clinic, actor, impersonator, row.
type AuditRow = (
    String,
    Option<Uuid>,
    Option<Uuid>,
    Option<Uuid>,
    Option<Uuid>,
);

/// A super admin's session in one clinic: every request names the clinic
/// it impersonates.
struct Impersonation {
    token: String,
    clinic: String,
}

impl Impersonation {
    async fn of(app: &TestApp, clinic: Uuid) -> Self {
        Self {
            token: app.login_in(SUPPORT, Some(clinic)).await,
            clinic: clinic.to_string(),
        }
    }

    async fn graphql(&self, app: &TestApp, query: &str, variables: Value) -> Value {
        let resp = app
            .client
            .post(app.url("/graphql"))
            .bearer_auth(&self.token)
            .header("x-caregate-impersonate", &self.clinic)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("sending");
        resp.json().await.expect("a JSON body")
    }
}

fn utc_day(offset_days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(offset_days))
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

// ---------------------------------------------------------------------------
// Payments, refunds, adjustments and the balance
// ---------------------------------------------------------------------------

#[tokio::test]
async fn payments_refunds_and_adjustments_add_up_to_the_balance_the_database_computes() {
    let app = blank(spawn_app().await).await;
    let owner = app.db.owner().await;
    let priya = patient(&owner, "NS-0005").await;
    let staff = app.login_as(STAFF).await;

    let res = ledger(&app, &staff, priya, None, None).await;
    assert_eq!(
        data(&res, "patient"),
        &json!({ "balance": [], "billingTransactions": {
            "pageInfo": { "hasNextPage": false, "endCursor": null }, "edges": [] } }),
        "nothing recorded yet"
    );

    let res = adjust(&app, &staff, Some(priya), 15_000, json!({})).await;
    let charge = data(&res, "recordAdjustment").clone();
    assert_eq!(
        charge,
        json!({ "id": charge["id"], "owner": "PATIENT", "kind": "ADJUSTMENT", "amountMinor": 15000,
                "currency": "USD", "status": "SUCCEEDED", "refundOf": null, "refundedMinor": 0,
                "processor": null, "processorRef": null, "managedByProxyId": null,
                "description": "Visit copay" })
    );

    let res = pay(
        &app,
        &staff,
        priya,
        10_000,
        json!({ "processor": "stripe", "processorRef": "pi_3PRIYA", "description": "Card at the desk" }),
    )
    .await;
    let payment = data(&res, "recordPayment").clone();
    let payment_id = payment["id"].as_str().unwrap().to_owned();
    assert_eq!(
        payment,
        json!({ "id": payment_id, "owner": "PATIENT", "kind": "PAYMENT", "amountMinor": 10000,
                "currency": "USD", "status": "SUCCEEDED", "refundOf": null, "refundedMinor": 0,
                "processor": "stripe", "processorRef": "pi_3PRIYA", "managedByProxyId": null,
                "description": "Card at the desk" })
    );

    let res = refund(&app, &staff, &payment_id, 2_500, json!({})).await;
    let partial = data(&res, "recordRefund").clone();
    assert_eq!(partial["kind"], "REFUND");
    assert_eq!(partial["amountMinor"], 2500);
    assert_eq!(
        partial["currency"], "USD",
        "a refund is in its payment's currency"
    );
    assert_eq!(partial["refundOf"], payment_id.as_str());
    assert_eq!(partial["owner"], "PATIENT");
    let refund_id = partial["id"].as_str().unwrap().to_owned();

    let res = pay(&app, &staff, priya, 3_000, json!({ "currency": "EUR" })).await;
    assert_eq!(data(&res, "recordPayment")["currency"], "EUR");
    let euros = tx_id(&res, "recordPayment");

    // The clinic's own account moves nobody's balance.
    let res = adjust(
        &app,
        &staff,
        None,
        250,
        json!({ "description": "Card terminal rental" }),
    )
    .await;
    let fee = data(&res, "recordAdjustment");
    assert_eq!(fee["owner"], "CLINIC", "{res}");
    let fee_id = fee["id"].as_str().unwrap().to_owned();

    // USD: 15000 charged - 10000 paid + 2500 refunded.
    let res = ledger(&app, &staff, priya, Some(2), None).await;
    let page = data(&res, "patient");
    assert_eq!(
        page["balance"],
        json!([{ "currency": "EUR", "amountMinor": -3000 }, { "currency": "USD", "amountMinor": 7500 }])
    );
    let conn = &page["billingTransactions"];
    assert_eq!(node_ids(conn), vec![euros.clone(), refund_id.clone()]);
    assert_eq!(conn["edges"][1]["node"]["refundOf"], payment_id.as_str());
    assert_eq!(conn["pageInfo"]["hasNextPage"], true, "{res}");
    let cursor = conn["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    assert_eq!(
        conn["edges"][1]["cursor"], cursor,
        "the end cursor is the last edge's: {res}"
    );

    let res = ledger(&app, &staff, priya, Some(2), Some(&cursor)).await;
    let conn = &data(&res, "patient")["billingTransactions"];
    assert_eq!(
        node_ids(conn),
        vec![payment_id.as_str(), charge["id"].as_str().unwrap()]
    );
    assert_eq!(
        conn["edges"][0]["node"]["refundedMinor"], 2500,
        "the payment shows what was refunded: {res}"
    );
    assert_eq!(conn["pageInfo"]["hasNextPage"], false, "{res}");

    let all = ledger(&app, &staff, priya, Some(50), None).await;
    let ids = node_ids(&data(&all, "patient")["billingTransactions"]);
    assert_eq!(ids.len(), 4, "{all}");
    assert!(
        !ids.contains(&fee_id),
        "the clinic's charge is not Priya's: {all}"
    );
    let res = ledger(&app, &staff, priya, Some(0), None).await;
    assert_eq!(
        data(&res, "patient")["billingTransactions"]["edges"],
        json!([]),
        "{res}"
    );
    assert!(
        !ids.contains(&fee_id),
        "the clinic's fee is not Priya's: {all}"
    );

    let res = ledger(&app, &staff, priya, Some(2), Some("not-a-cursor")).await;
    assert_refused(&res, "BAD_USER_INPUT", "field", "after");

    // The rest of the payment, exactly, can be refunded; not a cent more.
    let res = refund(&app, &staff, &payment_id, 7_500, json!({})).await;
    data(&res, "recordRefund");
    let res = refund(&app, &staff, &payment_id, 1, json!({})).await;
    assert_refused(&res, "CONFLICT", "reason", "REFUND_EXCEEDS_PAYMENT");
    let res = ledger(&app, &staff, priya, Some(50), None).await;
    let page = data(&res, "patient");
    assert_eq!(
        page["balance"],
        json!([{ "currency": "EUR", "amountMinor": -3000 }, { "currency": "USD", "amountMinor": 15000 }])
    );
    let stored_payment = page["billingTransactions"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["id"] == payment_id.as_str())
        .unwrap_or_else(|| panic!("the payment: {res}"));
    assert_eq!(stored_payment["node"]["refundedMinor"], 10000);
    assert_eq!(stored_refunded(&owner, &payment_id).await, 10_000);
    assert_eq!(stored_refunds(&owner, &payment_id).await, (10_000, 2));

    // A refund takes its payment's currency, and moves only that balance.
    let res = refund(&app, &staff, &euros, 1_000, json!({})).await;
    assert_eq!(data(&res, "recordRefund")["currency"], "EUR", "{res}");
    let res = ledger(&app, &staff, priya, Some(1), None).await;
    assert_eq!(
        data(&res, "patient")["balance"],
        json!([{ "currency": "EUR", "amountMinor": -2000 }, { "currency": "USD", "amountMinor": 15000 }])
    );

    // Who recorded each is the caller, as the database sets it.
    let frontdesk = user(&owner, STAFF).await;
    let recorders: Vec<Option<Uuid>> = sqlx::query_scalar(
        "SELECT DISTINCT recorded_by FROM billing_transactions WHERE organization_id = $1",
    )
    .bind(org(&owner, "northside").await)
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(recorders, vec![Some(frontdesk)]);
}

#[tokio::test]
async fn a_write_off_takes_from_what_the_account_owes() {
    let app = blank(spawn_app().await).await;
    let owner = app.db.owner().await;
    let robert = patient(&owner, "NS-0008").await;
    let staff = app.login_as(STAFF).await;
    let res = adjust(&app, &staff, Some(robert), 15_000, json!({})).await;
    data(&res, "recordAdjustment");

    // Negative: a write-off, as the schema documents.
    let res = adjust(
        &app,
        &staff,
        Some(robert),
        -500,
        json!({ "description": "Courtesy write-off" }),
    )
    .await;
    let write_off = data(&res, "recordAdjustment");
    assert_eq!(write_off["amountMinor"], -500, "{res}");
    assert_eq!(write_off["kind"], "ADJUSTMENT", "{res}");
    let res = ledger(&app, &staff, robert, None, None).await;
    assert_eq!(
        data(&res, "patient")["balance"],
        json!([{ "currency": "USD", "amountMinor": 14500 }])
    );

    // The clinic's own account takes a negative adjustment (a fee) too.
    let res = adjust(
        &app,
        &staff,
        None,
        -250,
        json!({ "description": "Processor fee" }),
    )
    .await;
    assert_eq!(data(&res, "recordAdjustment")["amountMinor"], -250, "{res}");
}

#[tokio::test]
async fn fifty_concurrent_refunds_never_exceed_their_payment() {
    // Enough connections that many refunds wait on the payment's row lock
    // at once, rather than queueing for the pool.
    let app = blank(
        spawn_app_with(|c| {
            c.db_pool_size = 12;
            c.db_acquire_timeout_ms = 20_000;
        })
        .await,
    )
    .await;
    let owner = app.db.owner().await;
    let marcus = patient(&owner, "NS-0004").await;
    let staff = app.login_as(STAFF).await;
    let res = pay(&app, &staff, marcus, 1_000, json!({})).await;
    let payment = tx_id(&res, "recordPayment");

    let calls = (0..50).map(|_| refund(&app, &staff, &payment, 30, json!({})));
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.get("errors").is_none()).count();
    for r in results.iter().filter(|r| r.get("errors").is_some()) {
        assert_refused(r, "CONFLICT", "reason", "REFUND_EXCEEDS_PAYMENT");
    }
    assert_eq!(ok, 33, "1000 cents hold 33 refunds of 30");
    assert_eq!(results.len() - ok, 17);

    assert_eq!(stored_refunded(&owner, &payment).await, 990);
    assert_eq!(stored_refunds(&owner, &payment).await, (990, 33));
    let res = ledger(&app, &staff, marcus, Some(100), None).await;
    let page = data(&res, "patient");
    let edges = page["billingTransactions"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 34, "the payment and 33 refunds: {res}");
    let listed = edges
        .iter()
        .find(|e| e["node"]["id"] == payment.as_str())
        .unwrap_or_else(|| panic!("the payment: {res}"));
    assert_eq!(listed["node"]["refundedMinor"], 990);
    assert_eq!(
        page["balance"],
        json!([{ "currency": "USD", "amountMinor": -10 }])
    );
}

#[tokio::test]
async fn only_a_succeeded_payment_is_refunded_and_never_beyond_it() {
    let app = blank(spawn_app().await).await;
    let owner = app.db.owner().await;
    let aisha = patient(&owner, "NS-0007").await;
    let admin = app.login_as(ADMIN).await;
    let res = pay(&app, &admin, aisha, 5_000, json!({})).await;
    let payment = tx_id(&res, "recordPayment");

    let res = refund(&app, &admin, &payment, 5_001, json!({})).await;
    assert_refused(&res, "CONFLICT", "reason", "REFUND_EXCEEDS_PAYMENT");
    for amount in [0, -5] {
        let res = refund(&app, &admin, &payment, amount, json!({})).await;
        assert_refused(&res, "BAD_USER_INPUT", "field", "amountMinor");
    }
    assert_eq!(stored_refunded(&owner, &payment).await, 0);
    assert_eq!(stored_refunds(&owner, &payment).await, (0, 0));

    let res = refund(&app, &admin, &payment, 2_000, json!({})).await;
    let first_refund = tx_id(&res, "recordRefund");
    let res = adjust(&app, &admin, Some(aisha), 1_234, json!({})).await;
    let charge = tx_id(&res, "recordAdjustment");
    let res = adjust(
        &app,
        &admin,
        None,
        700,
        json!({ "description": "Bank fee" }),
    )
    .await;
    let clinic_charge = tx_id(&res, "recordAdjustment");
    for (what, id) in [
        ("a refund", first_refund.clone()),
        ("a patient's adjustment", charge.clone()),
        ("the clinic's adjustment", clinic_charge),
        ("nothing", Uuid::new_v4().to_string()),
    ] {
        let res = refund(&app, &admin, &id, 100, json!({})).await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{what}: {res}");
        assert_eq!(first_error(&res)["field"], "paymentId", "{what}: {res}");
    }

    // A pending payment (as a processor's webhook would record it) that
    // staff settle as FAILED is no money to return, and counts towards no
    // balance.
    let failed: Uuid = sqlx::query_scalar(
        "INSERT INTO billing_transactions (organization_id, owner_kind, patient_id, kind, \
           amount_minor, currency, status) \
         SELECT organization_id, 'PATIENT', id, 'PAYMENT', 800, 'USD', 'PENDING' \
         FROM patients WHERE id = $1 RETURNING id",
    )
    .bind(aisha)
    .fetch_one(&owner)
    .await
    .expect("a pending payment");
    let failed = failed.to_string();
    let res = refund(&app, &admin, &failed, 100, json!({})).await;
    assert_refused(&res, "BAD_USER_INPUT", "field", "paymentId");
    let res = app
        .graphql(
            Some(&admin),
            "mutation($id: UUID!) { settleTransaction(id: $id, status: FAILED) { status } }",
            json!({ "id": failed }),
        )
        .await;
    assert_eq!(data(&res, "settleTransaction")["status"], "FAILED", "{res}");
    let res = app
        .graphql(
            Some(&admin),
            "mutation($id: UUID!) { settleTransaction(id: $id, status: SUCCEEDED) { status } }",
            json!({ "id": failed }),
        )
        .await;
    assert_refused(&res, "CONFLICT", "reason", "NOT_PENDING");
    let res = refund(&app, &admin, &failed, 100, json!({})).await;
    assert_refused(&res, "BAD_USER_INPUT", "field", "paymentId");
    assert_eq!(stored_refunded(&owner, &failed).await, 0);

    // -5000 paid + 2000 refunded + 1234 charged; the failed 800 is left out.
    let res = ledger(&app, &admin, aisha, None, None).await;
    let page = data(&res, "patient");
    assert_eq!(
        page["balance"],
        json!([{ "currency": "USD", "amountMinor": -1766 }])
    );
    assert_eq!(
        node_ids(&page["billingTransactions"]),
        vec![failed, charge, first_refund, payment.clone()]
    );
    assert_eq!(stored_refunded(&owner, &payment).await, 2_000);
    assert_eq!(stored_refunds(&owner, &payment).await, (2_000, 1));
}

#[tokio::test]
async fn amounts_currencies_and_processor_references_are_checked() {
    let app = blank(spawn_app().await).await;
    let owner = app.db.owner().await;
    let kenji = patient(&owner, "NS-0006").await;
    let staff = app.login_as(STAFF).await;

    for (amount, extra, field) in [
        (0, json!({}), "amountMinor"),
        (-100, json!({}), "amountMinor"),
        (100, json!({ "currency": "usd" }), "currency"),
        (100, json!({ "currency": "US" }), "currency"),
        (100, json!({ "currency": "USDX" }), "currency"),
        (100, json!({ "processor": "stripe" }), "processorRef"),
        (100, json!({ "processorRef": "pi_lonely" }), "processorRef"),
        (
            100,
            json!({ "processor": "Stripe", "processorRef": "pi_1" }),
            "processor",
        ),
        (
            100,
            json!({ "processor": "stripe", "processorRef": "  " }),
            "processorRef",
        ),
        (
            100,
            json!({ "description": "x".repeat(501) }),
            "description",
        ),
    ] {
        let res = pay(&app, &staff, kenji, amount, extra.clone()).await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{extra}: {res}");
        assert_eq!(first_error(&res)["field"], field, "{amount} {extra}: {res}");
    }
    for (amount, extra, field) in [
        (0, json!({}), "amountMinor"),
        (100, json!({ "currency": "eur" }), "currency"),
        (100, json!({ "description": "   " }), "description"),
    ] {
        let res = adjust(&app, &staff, Some(kenji), amount, extra.clone()).await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{extra}: {res}");
        assert_eq!(first_error(&res)["field"], field, "{amount} {extra}: {res}");
    }
    // Beyond the API's bound on every integer input (10^9), before any
    // resolver runs.
    for res in [
        pay(&app, &staff, kenji, 1_000_000_001, json!({})).await,
        adjust(&app, &staff, Some(kenji), -1_000_000_001, json!({})).await,
    ] {
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
    }
    assert_eq!(
        stored_count(&owner, kenji).await,
        0,
        "nothing refused is kept"
    );
    let res = pay(&app, &staff, kenji, 1_000_000_000, json!({})).await;
    assert_eq!(
        data(&res, "recordPayment")["amountMinor"],
        1_000_000_000_i64
    );

    // A processor's reference is recorded once per clinic and processor.
    let stripe = json!({ "processor": "stripe", "processorRef": "pi_DUP" });
    let res = pay(&app, &staff, kenji, 100, stripe.clone()).await;
    let first = tx_id(&res, "recordPayment");
    let res = pay(&app, &staff, kenji, 100, stripe.clone()).await;
    assert_refused(&res, "CONFLICT", "reason", "DUPLICATE_PROCESSOR_REF");
    let res = refund(&app, &staff, &first, 50, stripe.clone()).await;
    assert_refused(&res, "CONFLICT", "reason", "DUPLICATE_PROCESSOR_REF");
    assert_eq!(
        stored_refunded(&owner, &first).await,
        0,
        "a refused refund returns nothing"
    );
    let res = pay(
        &app,
        &staff,
        kenji,
        100,
        json!({ "processor": "square", "processorRef": "pi_DUP" }),
    )
    .await;
    data(&res, "recordPayment");
    assert_eq!(stored_count(&owner, kenji).await, 3);

    let lakeside = app.login_as(LAKESIDE_STAFF).await;
    let grace = patient(&owner, "LS-0004").await;
    let res = pay(&app, &lakeside, grace, 100, stripe).await;
    assert_eq!(
        data(&res, "recordPayment")["processorRef"],
        "pi_DUP",
        "another clinic's references are its own: {res}"
    );
}

// ---------------------------------------------------------------------------
// Who may record and see money
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_patient_pays_their_own_account_and_nothing_else() {
    let app = blank(spawn_app().await).await;
    let owner = app.db.owner().await;
    let jonathan = patient(&owner, "NS-0001").await;
    let marcus = patient(&owner, "NS-0004").await;
    let token = app
        .login_in(JONATHAN, Some(org(&owner, "northside").await))
        .await;

    let res = pay(
        &app,
        &token,
        jonathan,
        2_000,
        json!({ "processor": "stripe", "processorRef": "pi_PORTAL_JON" }),
    )
    .await;
    let payment = data(&res, "recordPayment").clone();
    assert_eq!(payment["managedByProxyId"], Value::Null, "{res}");
    assert_eq!(payment["amountMinor"], 2000);
    let payment_id = payment["id"].as_str().unwrap().to_owned();
    let (managed, recorded_by): (Option<Uuid>, Option<Uuid>) = sqlx::query_as(
        "SELECT managed_by_proxy_id, recorded_by FROM billing_transactions WHERE id = $1::uuid",
    )
    .bind(&payment_id)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(managed, None);
    assert_eq!(recorded_by, Some(user(&owner, JONATHAN).await));
    // What a patient records waits for the clinic: it moves no balance yet.
    assert_eq!(payment["status"], "PENDING", "{res}");
    let res = ledger(&app, &token, jonathan, None, None).await;
    assert_eq!(data(&res, "patient")["balance"], json!([]), "{res}");
    let staff = app.login_as(STAFF).await;
    let res = app
        .graphql(
            Some(&staff),
            "mutation($id: UUID!) { settleTransaction(id: $id, status: SUCCEEDED) { status } }",
            json!({ "id": payment_id }),
        )
        .await;
    assert_eq!(
        data(&res, "settleTransaction")["status"],
        "SUCCEEDED",
        "{res}"
    );
    // ...and the patient cannot settle their own.
    let res = app
        .graphql(
            Some(&token),
            "mutation($id: UUID!) { settleTransaction(id: $id, status: SUCCEEDED) { status } }",
            json!({ "id": payment_id }),
        )
        .await;
    assert_refused(&res, "FORBIDDEN", "reason", "ROLE");

    let res = ledger(&app, &token, jonathan, None, None).await;
    let page = data(&res, "patient");
    assert_eq!(
        page["balance"],
        json!([{ "currency": "USD", "amountMinor": -2000 }])
    );
    assert_eq!(
        node_ids(&page["billingTransactions"]),
        vec![payment_id.clone()]
    );

    let res = pay(&app, &token, marcus, 2_000, json!({})).await;
    assert_refused(&res, "FORBIDDEN", "reason", "PROXY_SCOPE");
    assert_eq!(stored_count(&owner, marcus).await, 0);

    let res = refund(&app, &token, &payment_id, 2_000, json!({})).await;
    assert_refused(&res, "FORBIDDEN", "reason", "ROLE");
    let res = adjust(&app, &token, Some(jonathan), -2_000, json!({})).await;
    assert_refused(&res, "FORBIDDEN", "reason", "ROLE");
    assert_eq!(stored_refunded(&owner, &payment_id).await, 0);
    assert_eq!(stored_count(&owner, jonathan).await, 1);
}

#[tokio::test]
async fn a_proxy_pays_only_under_a_live_grant_with_the_billing_permission() {
    let app = blank(spawn_app().await).await;
    let owner = app.db.owner().await;
    let sofia = patient(&owner, "NS-0002").await;
    let eleanor = patient(&owner, "NS-0003").await;
    let maria = app.login_as(MARIA).await;

    // Not before the HIPAA notice is signed.
    let res = pay(&app, &maria, sofia, 1_500, json!({})).await;
    assert_refused(&res, "FORBIDDEN", "reason", "CONSENT_REQUIRED");
    sign_hipaa(&app, &maria).await;

    // Sofia's grant has no billing permission.
    let res = pay(&app, &maria, sofia, 1_500, json!({})).await;
    assert_refused(&res, "FORBIDDEN", "reason", "PROXY_SCOPE");
    let res = ledger(&app, &maria, sofia, None, None).await;
    let errors = res["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("refused: {res}"));
    for e in errors {
        assert_eq!(e["extensions"]["code"], "FORBIDDEN", "{res}");
        assert_eq!(e["extensions"]["reason"], "PROXY_SCOPE", "{res}");
    }
    assert!(res["data"]["patient"].is_null(), "{res}");
    assert_eq!(stored_count(&owner, sofia).await, 0);

    let staff = app.login_as(STAFF).await;
    let res = app
        .graphql(
            Some(&staff),
            "mutation($i: GrantProxyAccessInput!) { grantProxyAccess(input: $i) { id isActive } }",
            json!({ "i": { "patientId": eleanor, "proxyEmail": MARIA, "relationship": "GUARDIAN",
                           "canViewProfile": true, "canViewBilling": true } }),
        )
        .await;
    let grant = data(&res, "grantProxyAccess");
    assert_eq!(grant["isActive"], true, "{res}");
    let grant = id_of(grant);

    let res = pay(&app, &maria, eleanor, 4_200, json!({})).await;
    let payment = data(&res, "recordPayment").clone();
    assert_eq!(
        payment["managedByProxyId"],
        grant.to_string(),
        "the payment names the grant it was made under: {res}"
    );
    let payment_id = payment["id"].as_str().unwrap().to_owned();
    let (managed, recorded_by): (Option<Uuid>, Option<Uuid>) = sqlx::query_as(
        "SELECT managed_by_proxy_id, recorded_by FROM billing_transactions WHERE id = $1::uuid",
    )
    .bind(&payment_id)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(managed, Some(grant));
    assert_eq!(recorded_by, Some(user(&owner, MARIA).await));

    // Staff paying for the same patient pay under no grant.
    let res = pay(&app, &staff, eleanor, 300, json!({})).await;
    assert_eq!(data(&res, "recordPayment")["managedByProxyId"], Value::Null);

    // Her payment counts once the clinic settles it.
    assert_eq!(payment["status"], "PENDING", "{payment}");
    let res = ledger(&app, &maria, eleanor, None, None).await;
    assert_eq!(
        data(&res, "patient")["balance"],
        json!([{ "currency": "USD", "amountMinor": -300 }])
    );
    let res = app
        .graphql(
            Some(&staff),
            "mutation($id: UUID!) { settleTransaction(id: $id, status: SUCCEEDED) { status } }",
            json!({ "id": payment_id }),
        )
        .await;
    assert_eq!(
        data(&res, "settleTransaction")["status"],
        "SUCCEEDED",
        "{res}"
    );
    let res = ledger(&app, &maria, eleanor, None, None).await;
    let page = data(&res, "patient");
    assert_eq!(
        page["balance"],
        json!([{ "currency": "USD", "amountMinor": -4500 }])
    );
    let edges = page["billingTransactions"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2, "{res}");
    assert_eq!(edges[1]["node"]["managedByProxyId"], grant.to_string());

    let res = refund(&app, &maria, &payment_id, 4_200, json!({})).await;
    assert_refused(&res, "FORBIDDEN", "reason", "ROLE");
    let res = adjust(&app, &maria, Some(eleanor), -4_500, json!({})).await;
    assert_refused(&res, "FORBIDDEN", "reason", "ROLE");
    assert_eq!(stored_refunded(&owner, &payment_id).await, 0);

    // Once the grant is revoked, she pays no more.
    let res = app
        .graphql(
            Some(&staff),
            "mutation($id: UUID!) { revokeProxyAccess(id: $id) { id revokedAt } }",
            json!({ "id": grant }),
        )
        .await;
    data(&res, "revokeProxyAccess");
    let res = pay(&app, &maria, eleanor, 100, json!({})).await;
    assert_refused(&res, "FORBIDDEN", "reason", "PROXY_SCOPE");
    assert_eq!(stored_count(&owner, eleanor).await, 2);
}

#[tokio::test]
async fn a_proxy_with_only_the_billing_permission_pays_under_their_grant() {
    let app = blank(spawn_app().await).await;
    let owner = app.db.owner().await;
    let eleanor = patient(&owner, "NS-0003").await;
    let maria = app.login_as(MARIA).await;
    sign_hipaa(&app, &maria).await;
    let staff = app.login_as(STAFF).await;
    // Billing, and nothing else of the chart.
    let res = app
        .graphql(
            Some(&staff),
            "mutation($i: GrantProxyAccessInput!) { grantProxyAccess(input: $i) { id isActive } }",
            json!({ "i": { "patientId": eleanor, "proxyEmail": MARIA, "relationship": "GUARDIAN",
                           "canViewBilling": true } }),
        )
        .await;
    let grant = data(&res, "grantProxyAccess");
    assert_eq!(grant["isActive"], true, "{res}");
    let grant = id_of(grant);

    let res = pay(&app, &maria, eleanor, 4_200, json!({})).await;
    assert_eq!(
        data(&res, "recordPayment")["managedByProxyId"],
        grant.to_string(),
        "{res}"
    );
    assert_eq!(stored_count(&owner, eleanor).await, 1);
}

#[tokio::test]
async fn a_provider_records_no_money_and_sees_none() {
    let app = blank(spawn_app().await).await;
    let owner = app.db.owner().await;
    let jonathan = patient(&owner, "NS-0001").await;
    let staff = app.login_as(STAFF).await;
    let res = pay(&app, &staff, jonathan, 5_555, json!({})).await;
    let payment = tx_id(&res, "recordPayment");
    let res = adjust(&app, &staff, Some(jonathan), 7_777, json!({})).await;
    data(&res, "recordAdjustment");

    let doctor = app.login_as(DOCTOR).await;
    let res = app
        .graphql(
            Some(&doctor),
            "query($p: UUID!) { patient(id: $p) { mrn balance { currency amountMinor }
               billingTransactions { edges { node { id amountMinor } } } } }",
            json!({ "p": jonathan }),
        )
        .await;
    // The chart is the provider's patient; the money on it is not theirs to see.
    assert!(res.get("errors").is_none(), "{res}");
    assert_eq!(
        data(&res, "patient"),
        &json!({ "mrn": "NS-0001", "balance": [], "billingTransactions": { "edges": [] } })
    );
    let text = res.to_string();
    assert!(
        !text.contains("5555") && !text.contains("7777") && !text.contains(&payment),
        "{res}"
    );

    for res in [
        pay(&app, &doctor, jonathan, 100, json!({})).await,
        refund(&app, &doctor, &payment, 100, json!({})).await,
        adjust(&app, &doctor, Some(jonathan), 100, json!({})).await,
    ] {
        assert_refused(&res, "FORBIDDEN", "reason", "ROLE");
        assert!(!res.to_string().contains("5555"), "{res}");
    }
    assert_eq!(stored_count(&owner, jonathan).await, 2);
    assert_eq!(stored_refunded(&owner, &payment).await, 0);
}

#[tokio::test]
async fn another_clinics_money_is_neither_reachable_nor_revealed() {
    let app = blank(spawn_app().await).await;
    let owner = app.db.owner().await;
    let north_jonathan = patient(&owner, "NS-0001").await;
    let lake_jonathan = patient(&owner, "LS-0001").await;
    let northside = app.login_as(STAFF).await;
    let res = pay(
        &app,
        &northside,
        north_jonathan,
        9_100,
        json!({ "processor": "stripe", "processorRef": "pi_NORTH_9100" }),
    )
    .await;
    let payment = tx_id(&res, "recordPayment");
    let res = adjust(&app, &northside, Some(north_jonathan), 4_300, json!({})).await;
    data(&res, "recordAdjustment");

    let lakeside = app.login_as(LAKESIDE_STAFF).await;
    let leaked = |res: &Value| {
        let text = res.to_string();
        text.contains("9100") || text.contains("4300") || text.contains("pi_NORTH")
    };

    // The Northside chart is not there at all, by id or as a node.
    let res = app
        .graphql(
            Some(&lakeside),
            "query($p: UUID!, $n: ID!, $t: ID!) {
               patient(id: $p) { balance { amountMinor } billingTransactions { edges { node { id } } } }
               chart: node(id: $n) { id } money: node(id: $t) { id } }",
            json!({ "p": north_jonathan, "n": north_jonathan, "t": payment }),
        )
        .await;
    assert!(res.get("errors").is_none(), "{res}");
    assert_eq!(
        res["data"],
        json!({ "patient": null, "chart": null, "money": null })
    );

    // The same person's Lakeside chart carries none of Northside's money.
    let res = ledger(&app, &lakeside, lake_jonathan, None, None).await;
    let page = data(&res, "patient");
    assert_eq!(page["balance"], json!([]));
    assert_eq!(page["billingTransactions"]["edges"], json!([]));

    // A Northside payment id looks like no payment at all.
    let res = refund(&app, &lakeside, &payment, 100, json!({})).await;
    assert_refused(&res, "BAD_USER_INPUT", "field", "paymentId");
    assert!(!leaked(&res), "{res}");
    let unknown = refund(&app, &lakeside, &Uuid::new_v4().to_string(), 100, json!({})).await;
    assert_eq!(
        res["errors"][0]["message"], unknown["errors"][0]["message"],
        "another clinic's payment and a missing one are told apart: {res} / {unknown}"
    );
    for res in [
        pay(&app, &lakeside, north_jonathan, 100, json!({})).await,
        adjust(&app, &lakeside, Some(north_jonathan), 100, json!({})).await,
    ] {
        assert_refused(&res, "BAD_USER_INPUT", "field", "patientId");
        assert!(!leaked(&res), "{res}");
    }
    assert_eq!(stored_refunded(&owner, &payment).await, 0);
    let lakeside_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM billing_transactions WHERE organization_id = $1")
            .bind(org(&owner, "lakeside").await)
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(lakeside_rows, 0);
    assert_eq!(stored_count(&owner, north_jonathan).await, 2);

    // Jonathan, logged in to Lakeside, cannot pay into his Northside chart.
    let portal = app
        .login_in(JONATHAN, Some(org(&owner, "lakeside").await))
        .await;
    let res = pay(&app, &portal, north_jonathan, 100, json!({})).await;
    assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{res}");
    assert_eq!(stored_count(&owner, north_jonathan).await, 2);
}

// ---------------------------------------------------------------------------
// The clinic's subscription and its overrides
// ---------------------------------------------------------------------------

#[tokio::test]
async fn only_the_clinics_admin_sees_its_subscription() {
    let app = blank(spawn_app().await).await;
    let owner = app.db.owner().await;
    let admin = app.login_as(ADMIN).await;
    let res = app.graphql(Some(&admin), SUBSCRIPTION, json!({})).await;
    assert_eq!(
        data(&res, "organization")["subscription"],
        json!({ "status": "ACTIVE", "planStatus": "ACTIVE", "override": null })
    );

    let jonathan = app
        .login_in(JONATHAN, Some(org(&owner, "northside").await))
        .await;
    for token in [
        app.login_as(STAFF).await,
        app.login_as(DOCTOR).await,
        jonathan,
    ] {
        let res = app.graphql(Some(&token), SUBSCRIPTION, json!({})).await;
        assert_refused(&res, "FORBIDDEN", "reason", "ROLE");
        assert!(res["data"]["organization"].is_null(), "{res}");
    }
}

#[tokio::test]
async fn only_a_super_admin_impersonating_the_clinic_grants_or_revokes_an_override() {
    let app = blank(spawn_app().await).await;
    let owner = app.db.owner().await;
    let northside = org(&owner, "northside").await;
    let discount =
        json!({ "i": { "kind": "DISCOUNT", "discountPercent": 25, "reason": "Loyal customer" } });
    for email in [ADMIN, STAFF, DOCTOR] {
        let token = app.login_as(email).await;
        let res = app
            .graphql(Some(&token), GRANT_OVERRIDE, discount.clone())
            .await;
        assert_eq!(error_codes(&res), vec!["FORBIDDEN"], "{email}: {res}");
        assert_eq!(
            first_error(&res)["reason"],
            "IMPERSONATION_REQUIRED",
            "{email}: {res}"
        );
    }
    let count = async || -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM subscription_overrides")
            .fetch_one(&owner)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 0);

    let support = Impersonation::of(&app, northside).await;
    let res = support
        .graphql(&app, GRANT_OVERRIDE, discount.clone())
        .await;
    let id = data(&res, "grantSubscriptionOverride")["id"].clone();
    let admin = app.login_as(ADMIN).await;
    let res = app
        .graphql(Some(&admin), REVOKE_OVERRIDE, json!({ "id": id }))
        .await;
    assert_refused(&res, "FORBIDDEN", "reason", "IMPERSONATION_REQUIRED");
    let res = app.graphql(Some(&admin), SUBSCRIPTION, json!({})).await;
    assert_eq!(
        data(&res, "organization")["subscription"]["override"]["id"],
        id,
        "still active: {res}"
    );
    assert_eq!(count().await, 1);
}

#[tokio::test]
async fn an_override_changes_the_status_in_force_one_at_a_time_and_is_audited() {
    let app = blank(spawn_app().await).await;
    let owner = app.db.owner().await;
    let northside = org(&owner, "northside").await;
    let support_id = user(&owner, SUPPORT).await;
    // A plan in arrears, so that every override visibly changes it.
    sqlx::query("UPDATE organizations SET subscription_status = 'PAST_DUE' WHERE id = $1")
        .bind(northside)
        .execute(&owner)
        .await
        .expect("a plan past due");
    let admin = app.login_as(ADMIN).await;
    let support = Impersonation::of(&app, northside).await;
    let subscription = async || -> Value {
        let res = app.graphql(Some(&admin), SUBSCRIPTION, json!({})).await;
        data(&res, "organization")["subscription"].clone()
    };
    let grant = async |input: Value| -> Value {
        support
            .graphql(&app, GRANT_OVERRIDE, json!({ "i": input }))
            .await
    };
    let revoke = async |id: &Value| -> Value {
        support
            .graphql(&app, REVOKE_OVERRIDE, json!({ "id": id }))
            .await
    };
    assert_eq!(
        subscription().await,
        json!({ "status": "PAST_DUE", "planStatus": "PAST_DUE", "override": null })
    );

    // Refused shapes, before anything is granted.
    for (input, field) in [
        (
            json!({ "kind": "DISCOUNT", "discountPercent": 101, "reason": "r" }),
            "discountPercent",
        ),
        (
            json!({ "kind": "DISCOUNT", "discountPercent": -1, "reason": "r" }),
            "discountPercent",
        ),
        (
            json!({ "kind": "DISCOUNT", "reason": "r" }),
            "discountPercent",
        ),
        (
            json!({ "kind": "FREE", "discountPercent": 10, "reason": "r" }),
            "discountPercent",
        ),
        (
            json!({ "kind": "TRIAL_EXTENSION", "reason": "r" }),
            "trialEndsOn",
        ),
        (
            json!({ "kind": "TRIAL_EXTENSION", "trialEndsOn": utc_day(-2), "reason": "r" }),
            "trialEndsOn",
        ),
        (
            json!({ "kind": "FREE", "trialEndsOn": utc_day(10), "reason": "r" }),
            "trialEndsOn",
        ),
        (json!({ "kind": "FREE", "reason": "   " }), "reason"),
    ] {
        let res = grant(input.clone()).await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{input}: {res}");
        assert_eq!(first_error(&res)["field"], field, "{input}: {res}");
    }
    assert_eq!(subscription().await["override"], Value::Null);

    let res =
        grant(json!({ "kind": "DISCOUNT", "discountPercent": 25, "reason": "Loyal customer" }))
            .await;
    let discount = data(&res, "grantSubscriptionOverride").clone();
    assert_eq!(discount["grantedBy"], support_id.to_string(), "{res}");
    assert_eq!(discount["revokedAt"], Value::Null);
    assert_eq!(
        subscription().await,
        json!({ "status": "PAST_DUE", "planStatus": "PAST_DUE",
                "override": { "id": discount["id"], "kind": "DISCOUNT", "discountPercent": 25,
                              "trialEndsOn": null, "reason": "Loyal customer",
                              "grantedBy": support_id.to_string(), "revokedAt": null } }),
        "a discount leaves the status alone"
    );

    let res = grant(json!({ "kind": "FREE", "reason": "Second one" })).await;
    assert_refused(&res, "CONFLICT", "reason", "OVERRIDE_ACTIVE");

    let res = revoke(&discount["id"]).await;
    let revoked = data(&res, "revokeSubscriptionOverride");
    assert_eq!(revoked["revokedBy"], support_id.to_string(), "{res}");
    assert!(revoked["revokedAt"].is_string(), "{res}");
    let res = revoke(&discount["id"]).await;
    assert_refused(&res, "CONFLICT", "reason", "ALREADY_REVOKED");
    assert_eq!(
        subscription().await,
        json!({ "status": "PAST_DUE", "planStatus": "PAST_DUE", "override": null })
    );

    let mut ids = vec![discount["id"].clone()];
    let trial_end = utc_day(30);
    for (input, status) in [
        (
            json!({ "kind": "FREE", "reason": "Charity clinic" }),
            "ACTIVE",
        ),
        (
            json!({ "kind": "MANUAL_CANCEL", "reason": "Asked to close" }),
            "CANCELLED",
        ),
        (
            json!({ "kind": "TRIAL_EXTENSION", "trialEndsOn": trial_end, "reason": "Evaluating" }),
            "TRIAL",
        ),
    ] {
        let res = grant(input.clone()).await;
        let granted = data(&res, "grantSubscriptionOverride").clone();
        let now = subscription().await;
        assert_eq!(now["status"], status, "{input}: {now}");
        assert_eq!(now["planStatus"], "PAST_DUE", "{input}: {now}");
        assert_eq!(now["override"]["id"], granted["id"], "{now}");
        assert_eq!(now["override"]["kind"], input["kind"], "{now}");
        if input["kind"] == "TRIAL_EXTENSION" {
            assert_eq!(now["override"]["trialEndsOn"], trial_end.as_str(), "{now}");
        }
        data(&revoke(&granted["id"]).await, "revokeSubscriptionOverride");
        ids.push(granted["id"].clone());
    }
    assert_eq!(subscription().await["status"], "PAST_DUE");

    // Every grant and revocation is in the trail, as the impersonation.
    // (The demo's own override, created and removed before the test, is
    // not this test's.)
    let mine: Vec<Uuid> = ids
        .iter()
        .map(|id| id.as_str().unwrap().parse().unwrap())
        .collect();
    let rows: Vec<AuditRow> = sqlx::query_as(
        "SELECT action, organization_id, actor_user_id, impersonator_id, resource_id
             FROM audit_events WHERE resource_type = 'subscription_overrides'
               AND resource_id = ANY ($1)
             ORDER BY occurred_at, id",
    )
    .bind(&mine)
    .fetch_all(&owner)
    .await
    .unwrap();
    let mut expected = vec![];
    for id in &ids {
        let id: Uuid = id.as_str().unwrap().parse().unwrap();
        for action in ["CREATE", "UPDATE"] {
            expected.push((
                action.to_owned(),
                Some(northside),
                Some(support_id),
                Some(support_id),
                Some(id),
            ));
        }
    }
    assert_eq!(rows, expected);

    // The clinic's admin reads them, with the impersonator named.
    let res = app
        .graphql(
            Some(&admin),
            "query($f: AuditEventFilter) { auditEvents(first: 50, filter: $f) {
               totalCount edges { node { action impersonatorId } } } }",
            json!({ "f": { "resourceType": "subscription_overrides", "actorId": support_id } }),
        )
        .await;
    let events = data(&res, "auditEvents");
    assert_eq!(events["totalCount"], 8, "{res}");
    for e in events["edges"].as_array().unwrap() {
        assert_eq!(e["node"]["impersonatorId"], support_id.to_string(), "{res}");
    }
}

#[tokio::test]
async fn one_clinics_override_is_invisible_and_out_of_reach_from_another() {
    let app = blank(spawn_app().await).await;
    let owner = app.db.owner().await;
    let northside = org(&owner, "northside").await;
    let lakeside = org(&owner, "lakeside").await;
    let north_support = Impersonation::of(&app, northside).await;
    let res = north_support
        .graphql(
            &app,
            GRANT_OVERRIDE,
            json!({ "i": { "kind": "DISCOUNT", "discountPercent": 40, "reason": "Northside deal" } }),
        )
        .await;
    let id = data(&res, "grantSubscriptionOverride")["id"].clone();

    let lake_admin = app.login_as(LAKESIDE_ADMIN).await;
    let res = app
        .graphql(Some(&lake_admin), SUBSCRIPTION, json!({}))
        .await;
    assert_eq!(
        data(&res, "organization")["subscription"],
        json!({ "status": "ACTIVE", "planStatus": "ACTIVE", "override": null })
    );
    assert!(!res.to_string().contains("Northside deal"), "{res}");

    // Impersonating Lakeside reaches nothing of Northside's.
    let lake_support = Impersonation::of(&app, lakeside).await;
    let res = lake_support
        .graphql(&app, REVOKE_OVERRIDE, json!({ "id": id }))
        .await;
    assert_eq!(error_codes(&res), vec!["NOT_FOUND"], "{res}");
    // Lakeside's own slot is free: Northside's override takes nothing of it.
    let res = lake_support
        .graphql(
            &app,
            GRANT_OVERRIDE,
            json!({ "i": { "kind": "FREE", "reason": "Lakeside pilot" } }),
        )
        .await;
    data(&res, "grantSubscriptionOverride");

    let admin = app.login_as(ADMIN).await;
    let res = app.graphql(Some(&admin), SUBSCRIPTION, json!({})).await;
    let sub = &data(&res, "organization")["subscription"];
    assert_eq!(sub["override"]["id"], id, "{res}");
    assert_eq!(sub["override"]["revokedAt"], Value::Null, "{res}");
    assert_eq!(sub["override"]["kind"], "DISCOUNT", "{res}");
    let res = app
        .graphql(Some(&lake_admin), SUBSCRIPTION, json!({}))
        .await;
    assert_eq!(
        data(&res, "organization")["subscription"]["override"]["kind"],
        "FREE"
    );
}

#[tokio::test]
async fn concurrent_grants_leave_one_active_override() {
    let app = blank(spawn_app().await).await;
    let owner = app.db.owner().await;
    let northside = org(&owner, "northside").await;
    let support = Impersonation::of(&app, northside).await;
    let calls = (0..10).map(|n| {
        support.graphql(
            &app,
            GRANT_OVERRIDE,
            json!({ "i": { "kind": "DISCOUNT", "discountPercent": n * 10, "reason": format!("Offer {n}") } }),
        )
    });
    let results = futures::future::join_all(calls).await;
    let granted: Vec<&Value> = results
        .iter()
        .filter(|r| r.get("errors").is_none())
        .collect();
    assert_eq!(granted.len(), 1, "{results:?}");
    for r in results.iter().filter(|r| r.get("errors").is_some()) {
        assert_refused(r, "CONFLICT", "reason", "OVERRIDE_ACTIVE");
    }
    let active: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM subscription_overrides WHERE revoked_at IS NULL")
            .fetch_all(&owner)
            .await
            .unwrap();
    assert_eq!(
        active,
        vec![id_of(&granted[0]["data"]["grantSubscriptionOverride"])]
    );

    // The bounds of a discount are both grantable.
    let res = support
        .graphql(&app, REVOKE_OVERRIDE, json!({ "id": active[0] }))
        .await;
    data(&res, "revokeSubscriptionOverride");
    for percent in [100, 0] {
        let res = support
            .graphql(
                &app,
                GRANT_OVERRIDE,
                json!({ "i": { "kind": "DISCOUNT", "discountPercent": percent, "reason": "Bound" } }),
            )
            .await;
        let granted = data(&res, "grantSubscriptionOverride");
        assert_eq!(granted["discountPercent"], percent, "{res}");
        let res = support
            .graphql(&app, REVOKE_OVERRIDE, json!({ "id": granted["id"] }))
            .await;
        data(&res, "revokeSubscriptionOverride");
    }
}
