//! Secure messaging and notifications over HTTP: threads about a patient
//! are seen by the clinic's staff and by the patients and proxies taking
//! part, never by another clinic; messages keep their history; read
//! receipts and unread counts follow; every message notifies the other
//! participants in its own transaction, by id only; hostile input is
//! refused naming its field, with nothing written; and the audit trail
//! records the writes without the text.

use sea_orm::sqlx::{self, PgPool};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::{org, patient, sqlstate, user};
use crate::support::app::{TestApp, error_codes, first_error, spawn_app};
use crate::support::context::Ctx;

const START: &str = "mutation($i: StartThreadInput!) { startThread(input: $i) {
    id subject patientId messageCount lastMessageAt } }";
const SEND: &str = "mutation($t: UUID!, $b: String!, $a: [AttachmentInput!]) {
    sendMessage(threadId: $t, body: $b, attachments: $a) {
      id threadId body sentAt revision sender { id }
      attachments { name mediaType sizeBytes sha256 } } }";
const EDIT: &str = "mutation($id: UUID!, $b: String!) { editMessage(id: $id, body: $b) {
    id body revision editedAt deletedAt } }";
const DELETE: &str =
    "mutation($id: UUID!) { deleteMessage(id: $id) { id body revision editedAt deletedAt } }";
const MARK_READ: &str = "mutation($t: UUID!) { markThreadRead(threadId: $t) { id } }";
const THREAD: &str = "query($id: UUID!) { thread(id: $id) {
    id subject patientId messageCount lastMessageAt hasUnread
    participants { kind lastReadAt user { id } }
    messages(first: 100) { edges { node { id body sentAt revision sender { id } } } } } }";
const THREADS: &str = "{ threads(first: 100) { edges { node { id } } } }";
const UNREAD: &str = "{ me { unreadCount unreadNotificationCount } }";
const MARK_NOTIFICATIONS: &str = "mutation($ids: [UUID!]) { markNotificationsRead(ids: $ids) }";
const SET_PREFS: &str = "mutation($i: NotificationPreferencesInput!) {
    setNotificationPreferences(input: $i) { mutedKinds quietStart quietEnd timezone } }";
const PREFS: &str = "{ notificationPreferences { mutedKinds quietStart quietEnd timezone } }";

/// The answer of starting a thread about `patient` with a first message.
async fn start(
    app: &TestApp,
    token: &str,
    patient: Uuid,
    subject: &str,
    body: &str,
    participants: &[Uuid],
) -> Value {
    app.graphql(
        Some(token),
        START,
        json!({ "i": { "patientId": patient, "subject": subject, "body": body,
                       "participantIds": participants } }),
    )
    .await
}

/// Starts a thread that must start; its id.
async fn start_ok(
    app: &TestApp,
    token: &str,
    patient: Uuid,
    subject: &str,
    body: &str,
    participants: &[Uuid],
) -> String {
    let res = start(app, token, patient, subject, body, participants).await;
    res["data"]["startThread"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("startThread: {res}"))
        .to_owned()
}

async fn send(app: &TestApp, token: &str, thread: &str, body: &str) -> Value {
    app.graphql(Some(token), SEND, json!({ "t": thread, "b": body }))
        .await
}

/// Sends a message that must be sent; its id.
async fn send_ok(app: &TestApp, token: &str, thread: &str, body: &str) -> String {
    let res = send(app, token, thread, body).await;
    res["data"]["sendMessage"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("sendMessage: {res}"))
        .to_owned()
}

async fn read_thread(app: &TestApp, token: &str, thread: &str) -> Value {
    app.graphql(Some(token), THREAD, json!({ "id": thread }))
        .await
}

/// The node ids of a connection, in order.
fn ids(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("a connection: {connection}"))
        .iter()
        .map(|e| e["node"]["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// The message bodies of a connection, in order (null for a deleted one).
fn bodies(connection: &Value) -> Vec<Value> {
    connection["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("a connection: {connection}"))
        .iter()
        .map(|e| e["node"]["body"].clone())
        .collect()
}

async fn thread_ids(app: &TestApp, token: &str) -> Vec<String> {
    let res = app.graphql(Some(token), THREADS, json!({})).await;
    assert!(res["errors"].is_null(), "threads: {res}");
    ids(&res["data"]["threads"])
}

async fn unread(app: &TestApp, token: &str) -> (i64, i64) {
    let res = app.graphql(Some(token), UNREAD, json!({})).await;
    let me = &res["data"]["me"];
    (
        me["unreadCount"]
            .as_i64()
            .unwrap_or_else(|| panic!("unreadCount: {res}")),
        me["unreadNotificationCount"]
            .as_i64()
            .unwrap_or_else(|| panic!("unreadNotificationCount: {res}")),
    )
}

/// The participant entry of `user` in a thread's answer.
fn participant(thread: &Value, user: Uuid) -> &Value {
    thread["participants"]
        .as_array()
        .unwrap_or_else(|| panic!("participants: {thread}"))
        .iter()
        .find(|p| p["user"]["id"] == user.to_string())
        .unwrap_or_else(|| panic!("{user} takes part: {thread}"))
}

/// Signs every active consent document as the token's user.
async fn sign_consent(app: &TestApp, token: &str) {
    let docs = app
        .graphql(Some(token), "{ consentDocuments { id } }", json!({}))
        .await;
    let docs = docs["data"]["consentDocuments"]
        .as_array()
        .unwrap_or_else(|| panic!("consent documents: {docs}"))
        .clone();
    for d in docs {
        let res = app
            .graphql(
                Some(token),
                "mutation($d: UUID!) { signConsent(documentId: $d) { signedAt } }",
                json!({ "d": d["id"] }),
            )
            .await;
        assert!(
            res["data"]["signConsent"]["signedAt"].is_string(),
            "signing: {res}"
        );
    }
}

/// Gives Maria's grant for Sofia the messaging permission.
async fn let_maria_message(owner: &PgPool) {
    let changed = sqlx::query(
        "UPDATE proxy_assignments SET can_message_providers = true \
         WHERE proxy_user_id = (SELECT id FROM users WHERE email = 'maria.garcia@example.com')",
    )
    .execute(owner)
    .await
    .expect("granting messaging")
    .rows_affected();
    assert_eq!(changed, 1, "Maria holds one grant");
}

/// How many rows each messaging table holds, as the owner.
async fn messaging_rows(owner: &PgPool) -> Vec<(&'static str, i64)> {
    let mut counts = Vec::new();
    for table in [
        "message_threads",
        "thread_participants",
        "messages",
        "message_revisions",
        "message_attachments",
        "notifications",
    ] {
        let n: i64 = sqlx::query_scalar(crate::support::q(format!("SELECT count(*) FROM {table}")))
            .fetch_one(owner)
            .await
            .expect("counting");
        counts.push((table, n));
    }
    counts
}

/// A response refused with `code` and, when given, `reason`; no data.
#[track_caller]
fn assert_refused(res: &Value, code: &str, reason: Option<&str>, what: &str) {
    assert_eq!(error_codes(res), vec![code], "{what}: {res}");
    if let Some(reason) = reason {
        assert_eq!(first_error(res)["reason"], reason, "{what}: {res}");
    }
    assert!(res["data"].is_null(), "{what}: no data: {res}");
}

/// A response refused as BAD_USER_INPUT on `field`.
#[track_caller]
fn assert_bad_input(res: &Value, field: &str, what: &str) {
    assert_eq!(error_codes(res), vec!["BAD_USER_INPUT"], "{what}: {res}");
    assert_eq!(first_error(res)["field"], field, "{what}: {res}");
    assert!(res["data"].is_null(), "{what}: no data: {res}");
}

#[tokio::test]
async fn staff_start_a_thread_every_list_shows_with_messages_newest_first_in_pages() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let jonathan = patient(&owner, "NS-0001").await;
    let sofia = patient(&owner, "NS-0002").await;
    let desk_id = user(&owner, "frontdesk@northside.example").await;
    let admin_id = user(&owner, "admin@northside.example").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let admin = app.login_as("admin@northside.example").await;

    let res = start(
        &app,
        &desk,
        jonathan,
        "Lab results",
        "Your results are in.",
        &[],
    )
    .await;
    assert!(res["errors"].is_null(), "{res}");
    let started = &res["data"]["startThread"];
    assert_eq!(started["subject"], "Lab results");
    assert_eq!(started["patientId"], jonathan.to_string());
    assert_eq!(started["messageCount"], 1, "the first message: {res}");
    assert!(started["lastMessageAt"].is_string(), "{res}");
    let thread = started["id"].as_str().unwrap().to_owned();

    let first = read_thread(&app, &desk, &thread).await;
    let t = &first["data"]["thread"];
    assert_eq!(bodies(&t["messages"]), vec![json!("Your results are in.")]);
    assert_eq!(
        t["messages"]["edges"][0]["node"]["sender"]["id"],
        desk_id.to_string()
    );
    assert_eq!(
        t["lastMessageAt"],
        t["messages"]["edges"][0]["node"]["sentAt"]
    );
    assert_eq!(participant(t, desk_id)["kind"], "STAFF");

    // A later thread about another patient is the most recently active...
    let other = start_ok(&app, &desk, sofia, "Vaccination", "Bring the card.", &[]).await;
    assert_eq!(
        thread_ids(&app, &admin).await,
        vec![other.clone(), thread.clone()]
    );

    // ...until the first one gets new messages.
    send_ok(&app, &admin, &thread, "Second: the potassium is high.").await;
    send_ok(&app, &desk, &thread, "Third: please call us.").await;
    assert_eq!(
        thread_ids(&app, &desk).await,
        vec![thread.clone(), other.clone()]
    );

    let res = app
        .graphql(
            Some(&desk),
            "query($id: UUID!, $p: UUID!) {
               thread(id: $id) { id messageCount lastMessageAt participants { kind user { id } }
                 page1: messages(first: 2) { edges { node { body sentAt } }
                                             pageInfo { hasNextPage endCursor } } }
               patient(id: $p) { threads(first: 10) { edges { node { id } } } }
             }",
            json!({ "id": thread, "p": jonathan }),
        )
        .await;
    assert!(res["errors"].is_null(), "{res}");
    let t = &res["data"]["thread"];
    assert_eq!(t["id"], thread);
    assert_eq!(t["messageCount"], 3, "{res}");
    assert_eq!(
        bodies(&t["page1"]),
        vec![
            json!("Third: please call us."),
            json!("Second: the potassium is high.")
        ],
        "newest first"
    );
    assert_eq!(
        t["lastMessageAt"], t["page1"]["edges"][0]["node"]["sentAt"],
        "lastMessageAt is the newest message's"
    );
    assert_eq!(t["page1"]["pageInfo"]["hasNextPage"], true, "{res}");
    // Sending joined the admin to the thread.
    assert_eq!(participant(t, admin_id)["kind"], "STAFF");
    assert_eq!(
        ids(&res["data"]["patient"]["threads"]),
        vec![thread.clone()]
    );

    let cursor = t["page1"]["pageInfo"]["endCursor"].clone();
    assert!(cursor.is_string(), "{res}");
    let res = app
        .graphql(
            Some(&desk),
            "query($id: UUID!, $after: String) { thread(id: $id) {
               messages(first: 2, after: $after) { edges { node { body } }
                                                  pageInfo { hasNextPage } } } }",
            json!({ "id": thread, "after": cursor }),
        )
        .await;
    let page2 = &res["data"]["thread"]["messages"];
    assert_eq!(bodies(page2), vec![json!("Your results are in.")], "{res}");
    assert_eq!(page2["pageInfo"]["hasNextPage"], false, "{res}");

    // The thread list pages the same way.
    let list = "query($after: String) { threads(first: 1, after: $after) {
        edges { node { id } } pageInfo { hasNextPage endCursor } } }";
    let res = app
        .graphql(Some(&admin), list, json!({ "after": null }))
        .await;
    assert_eq!(ids(&res["data"]["threads"]), vec![thread.clone()], "{res}");
    assert_eq!(res["data"]["threads"]["pageInfo"]["hasNextPage"], true);
    let after = res["data"]["threads"]["pageInfo"]["endCursor"].clone();
    let res = app
        .graphql(Some(&admin), list, json!({ "after": after }))
        .await;
    assert_eq!(ids(&res["data"]["threads"]), vec![other.clone()], "{res}");
    assert_eq!(res["data"]["threads"]["pageInfo"]["hasNextPage"], false);
}

#[tokio::test]
async fn clinic_b_staff_neither_see_nor_touch_clinic_a_threads() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let lakeside = org(&owner, "lakeside").await;
    let jonathan = patient(&owner, "NS-0001").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let admin = app.login_as("admin@northside.example").await;
    let thread = start_ok(
        &app,
        &desk,
        jonathan,
        "Lab results",
        "Your results are in.",
        &[],
    )
    .await;
    let before = read_thread(&app, &admin, &thread).await;
    assert!(before["errors"].is_null(), "{before}");
    let message = before["data"]["thread"]["messages"]["edges"][0]["node"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rows_before = messaging_rows(&owner).await;

    for email in ["admin@lakeside.example", "frontdesk@lakeside.example"] {
        let token = app.login_as(email).await;
        let res = read_thread(&app, &token, &thread).await;
        assert!(res["errors"].is_null(), "{email}: {res}");
        assert_eq!(res["data"], json!({ "thread": null }), "{email}");
        assert!(thread_ids(&app, &token).await.is_empty(), "{email}");

        let res = send(&app, &token, &thread, "Hello from Lakeside").await;
        assert_refused(&res, "NOT_FOUND", None, &format!("{email} sendMessage"));
        let res = app
            .graphql(Some(&token), MARK_READ, json!({ "t": thread }))
            .await;
        assert_refused(&res, "NOT_FOUND", None, &format!("{email} markThreadRead"));
        let res = app
            .graphql(
                Some(&token),
                EDIT,
                json!({ "id": message, "b": "Rewritten" }),
            )
            .await;
        assert_refused(&res, "NOT_FOUND", None, &format!("{email} editMessage"));
        let res = app
            .graphql(Some(&token), DELETE, json!({ "id": message }))
            .await;
        assert_refused(&res, "NOT_FOUND", None, &format!("{email} deleteMessage"));
        let res = start(&app, &token, jonathan, "Hello", "Hello from Lakeside", &[]).await;
        assert_refused(&res, "NOT_FOUND", None, &format!("{email} startThread"));
        assert!(
            !res.to_string().contains("Your results are in."),
            "{email}: {res}"
        );
    }

    // Clinic A's thread is as it was, and Lakeside holds no thread.
    let after = read_thread(&app, &admin, &thread).await;
    assert_eq!(after["data"], before["data"]);
    assert_eq!(messaging_rows(&owner).await, rows_before);
    let lakeside_threads: i64 =
        sqlx::query_scalar("SELECT count(*) FROM message_threads WHERE organization_id = $1")
            .bind(lakeside)
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(lakeside_threads, 0);
}

#[tokio::test]
async fn the_patient_taking_part_sees_and_replies_while_one_not_taking_part_sees_nothing() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let north = org(&owner, "northside").await;
    let lake = org(&owner, "lakeside").await;
    let chart = patient(&owner, "NS-0001").await;
    let jonathan_id = user(&owner, "jonathan.smith@example.com").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let with_him = start_ok(
        &app,
        &desk,
        chart,
        "Lab results",
        "Your results are in.",
        &[jonathan_id],
    )
    .await;
    let without_him = start_ok(
        &app,
        &desk,
        chart,
        "Internal: billing question",
        "Check his coverage.",
        &[],
    )
    .await;

    let jonathan = app
        .login_in("jonathan.smith@example.com", Some(north))
        .await;
    assert_eq!(thread_ids(&app, &jonathan).await, vec![with_him.clone()]);
    let res = read_thread(&app, &jonathan, &with_him).await;
    assert!(res["errors"].is_null(), "{res}");
    let t = &res["data"]["thread"];
    assert_eq!(t["subject"], "Lab results");
    assert_eq!(bodies(&t["messages"]), vec![json!("Your results are in.")]);
    assert_eq!(participant(t, jonathan_id)["kind"], "PATIENT");
    let res = read_thread(&app, &jonathan, &without_him).await;
    assert_eq!(res["data"], json!({ "thread": null }), "{res}");
    assert!(!res.to_string().contains("coverage"), "{res}");
    let res = app
        .graphql(
            Some(&jonathan),
            "query($p: UUID!) { patient(id: $p) { threads(first: 10) { edges { node { id } } } } }",
            json!({ "p": chart }),
        )
        .await;
    assert_eq!(
        ids(&res["data"]["patient"]["threads"]),
        vec![with_him.clone()],
        "{res}"
    );

    let res = send(&app, &jonathan, &with_him, "Thank you, I will call.").await;
    assert!(res["errors"].is_null(), "{res}");
    assert_eq!(
        res["data"]["sendMessage"]["sender"]["id"],
        jonathan_id.to_string()
    );
    let res = send(&app, &jonathan, &without_him, "Let me in").await;
    assert_refused(&res, "NOT_FOUND", None, "replying to a thread he is not in");

    let res = read_thread(&app, &desk, &with_him).await;
    assert_eq!(
        bodies(&res["data"]["thread"]["messages"]),
        vec![
            json!("Thank you, I will call."),
            json!("Your results are in.")
        ],
        "{res}"
    );
    assert_eq!(res["data"]["thread"]["messageCount"], 2);
    let res = read_thread(&app, &desk, &without_him).await;
    assert_eq!(res["data"]["thread"]["messageCount"], 1, "{res}");

    // Signed in at Lakeside, where he also has a chart, he sees none of it.
    let at_lakeside = app.login_in("jonathan.smith@example.com", Some(lake)).await;
    assert!(thread_ids(&app, &at_lakeside).await.is_empty());
    let res = read_thread(&app, &at_lakeside, &with_him).await;
    assert_eq!(res["data"], json!({ "thread": null }), "{res}");

    // A proxy of another patient sees nothing of it either.
    let maria = app.login_as("maria.garcia@example.com").await;
    sign_consent(&app, &maria).await;
    assert!(thread_ids(&app, &maria).await.is_empty());
    let res = read_thread(&app, &maria, &with_him).await;
    assert_eq!(res["data"], json!({ "thread": null }), "{res}");
}

#[tokio::test]
async fn a_patient_starts_a_thread_about_their_own_chart_that_staff_see() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let north = org(&owner, "northside").await;
    let chart = patient(&owner, "NS-0001").await;
    let jonathan_id = user(&owner, "jonathan.smith@example.com").await;
    let jonathan = app
        .login_in("jonathan.smith@example.com", Some(north))
        .await;
    let thread = start_ok(
        &app,
        &jonathan,
        chart,
        "Refill",
        "I need a refill of my prescription.",
        &[],
    )
    .await;
    let res = read_thread(&app, &jonathan, &thread).await;
    assert_eq!(
        participant(&res["data"]["thread"], jonathan_id)["kind"],
        "PATIENT"
    );
    let desk = app.login_as("frontdesk@northside.example").await;
    assert_eq!(thread_ids(&app, &desk).await, vec![thread.clone()]);
    let res = read_thread(&app, &desk, &thread).await;
    assert_eq!(
        bodies(&res["data"]["thread"]["messages"]),
        vec![json!("I need a refill of my prescription.")],
        "{res}"
    );
}

#[tokio::test]
async fn a_proxy_without_the_messaging_permission_may_neither_start_nor_join_a_thread() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let sofia = patient(&owner, "NS-0002").await;
    let maria_id = user(&owner, "maria.garcia@example.com").await;
    let maria = app.login_as("maria.garcia@example.com").await;
    sign_consent(&app, &maria).await;
    let rows_before = messaging_rows(&owner).await;

    let res = start(
        &app,
        &maria,
        sofia,
        "Question",
        "Is the clinic open Sunday?",
        &[],
    )
    .await;
    assert_refused(
        &res,
        "FORBIDDEN",
        Some("PROXY_SCOPE"),
        "Maria starting a thread",
    );

    let desk = app.login_as("frontdesk@northside.example").await;
    let res = start(
        &app,
        &desk,
        sofia,
        "Vaccination",
        "Bring the card.",
        &[maria_id],
    )
    .await;
    assert_refused(
        &res,
        "CONFLICT",
        Some("INELIGIBLE_PARTICIPANT"),
        "adding Maria",
    );
    assert!(thread_ids(&app, &desk).await.is_empty());
    assert_eq!(messaging_rows(&owner).await, rows_before);
}

#[tokio::test]
async fn a_proxy_given_the_messaging_permission_takes_part_until_her_grant_is_revoked() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let sofia = patient(&owner, "NS-0002").await;
    let maria_id = user(&owner, "maria.garcia@example.com").await;
    let_maria_message(&owner).await;
    let maria = app.login_as("maria.garcia@example.com").await;
    sign_consent(&app, &maria).await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let admin = app.login_as("admin@northside.example").await;

    let thread = start_ok(
        &app,
        &desk,
        sofia,
        "Vaccination",
        "Sofia's appointment is confirmed.",
        &[maria_id],
    )
    .await;
    let staff_only = start_ok(
        &app,
        &desk,
        sofia,
        "Internal",
        "Check the vaccine stock.",
        &[],
    )
    .await;

    assert_eq!(thread_ids(&app, &maria).await, vec![thread.clone()]);
    let res = read_thread(&app, &maria, &thread).await;
    assert!(res["errors"].is_null(), "{res}");
    let t = &res["data"]["thread"];
    assert_eq!(
        bodies(&t["messages"]),
        vec![json!("Sofia's appointment is confirmed.")]
    );
    assert_eq!(participant(t, maria_id)["kind"], "PROXY");
    let res = read_thread(&app, &maria, &staff_only).await;
    assert_eq!(res["data"], json!({ "thread": null }), "{res}");

    let res = send(&app, &maria, &thread, "Thank you, we will be there.").await;
    assert!(res["errors"].is_null(), "{res}");
    assert_eq!(
        res["data"]["sendMessage"]["sender"]["id"],
        maria_id.to_string()
    );
    let res = read_thread(&app, &desk, &thread).await;
    assert_eq!(res["data"]["thread"]["messageCount"], 2, "{res}");

    let grant: Uuid = sqlx::query_scalar(
        "SELECT id FROM proxy_assignments WHERE proxy_user_id = $1 AND revoked_at IS NULL",
    )
    .bind(maria_id)
    .fetch_one(&owner)
    .await
    .unwrap();
    let res = app
        .graphql(
            Some(&admin),
            "mutation($id: UUID!) { revokeProxyAccess(id: $id) { revokedAt } }",
            json!({ "id": grant }),
        )
        .await;
    assert!(res["errors"].is_null(), "{res}");

    let res = read_thread(&app, &maria, &thread).await;
    assert!(res["data"]["thread"].is_null(), "{res}");
    assert!(!res.to_string().contains("Vaccination"), "{res}");
    assert!(!res.to_string().contains("confirmed"), "{res}");
    let res = send(&app, &maria, &thread, "Still there?").await;
    assert!(!error_codes(&res).is_empty(), "{res}");
    assert!(res["data"]["sendMessage"].is_null(), "{res}");
    let res = read_thread(&app, &desk, &thread).await;
    assert_eq!(res["data"]["thread"]["messageCount"], 2, "{res}");

    // Nor is she notified of what is said there any more.
    let notified = async || -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'NEW_MESSAGE'",
        )
        .bind(maria_id)
        .fetch_one(&owner)
        .await
        .unwrap()
    };
    assert_eq!(
        notified().await,
        1,
        "the first message, while she could read it"
    );
    send_ok(&app, &desk, &thread, "Lab results for Sofia are in.").await;
    assert_eq!(notified().await, 1, "a revoked proxy was notified");
}

#[tokio::test]
async fn a_participant_of_another_clinic_or_unknown_is_ineligible_and_nothing_is_created() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let sofia = patient(&owner, "NS-0002").await;
    let lakeside_admin = user(&owner, "admin@lakeside.example").await;
    let northside_admin = user(&owner, "admin@northside.example").await;
    let jonathan = user(&owner, "jonathan.smith@example.com").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let existing = start_ok(&app, &desk, sofia, "Vaccination", "Bring the card.", &[]).await;
    let list_before = thread_ids(&app, &desk).await;
    assert_eq!(list_before, vec![existing]);
    let rows_before = messaging_rows(&owner).await;

    let cases: [(&str, Vec<Uuid>); 4] = [
        ("another clinic's admin", vec![lakeside_admin]),
        ("an id of nobody", vec![Uuid::new_v4()]),
        (
            "a patient of the clinic who is not this patient",
            vec![jonathan],
        ),
        (
            "an eligible colleague with another clinic's admin",
            vec![northside_admin, lakeside_admin],
        ),
    ];
    for (what, participants) in cases {
        let res = start(
            &app,
            &desk,
            sofia,
            "Results",
            "Results are in.",
            &participants,
        )
        .await;
        assert_refused(&res, "CONFLICT", Some("INELIGIBLE_PARTICIPANT"), what);
        assert_eq!(thread_ids(&app, &desk).await, list_before, "{what}");
        assert_eq!(messaging_rows(&owner).await, rows_before, "{what}");
    }
}

#[tokio::test]
async fn an_edit_keeps_the_earlier_text_and_only_the_sender_edits_or_deletes() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let chart = patient(&owner, "NS-0001").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let admin = app.login_as("admin@northside.example").await;
    let thread = start_ok(&app, &desk, chart, "Dosage", "Take 10 mg daily.", &[]).await;
    let res = read_thread(&app, &desk, &thread).await;
    let message = res["data"]["thread"]["messages"]["edges"][0]["node"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let history = "query($id: UUID!) { thread(id: $id) { messages { edges { node {
        id body revision editedAt deletedAt history { revision body } } } } } }";

    let res = app
        .graphql(
            Some(&desk),
            EDIT,
            json!({ "id": message, "b": "Take 20 mg daily." }),
        )
        .await;
    assert!(res["errors"].is_null(), "{res}");
    let edited = &res["data"]["editMessage"];
    assert_eq!(edited["body"], "Take 20 mg daily.");
    assert_eq!(edited["revision"], 2);
    assert!(edited["editedAt"].is_string(), "{res}");
    assert!(edited["deletedAt"].is_null(), "{res}");

    let res = app
        .graphql(Some(&admin), history, json!({ "id": thread }))
        .await;
    let node = &res["data"]["thread"]["messages"]["edges"][0]["node"];
    assert_eq!(node["body"], "Take 20 mg daily.", "{res}");
    assert_eq!(
        node["history"],
        json!([{ "revision": 1, "body": "Take 10 mg daily." }]),
        "{res}"
    );

    // Nobody else changes it, not even the clinic's admin.
    let res = app
        .graphql(
            Some(&admin),
            EDIT,
            json!({ "id": message, "b": "Take 30 mg daily." }),
        )
        .await;
    assert_refused(&res, "FORBIDDEN", Some("NOT_SENDER"), "another user's edit");
    let res = app
        .graphql(Some(&admin), DELETE, json!({ "id": message }))
        .await;
    assert_refused(
        &res,
        "FORBIDDEN",
        Some("NOT_SENDER"),
        "another user's delete",
    );
    let res = read_thread(&app, &desk, &thread).await;
    assert_eq!(
        bodies(&res["data"]["thread"]["messages"]),
        vec![json!("Take 20 mg daily.")]
    );

    let res = app
        .graphql(Some(&desk), DELETE, json!({ "id": message }))
        .await;
    assert!(res["errors"].is_null(), "{res}");
    let deleted = &res["data"]["deleteMessage"];
    assert!(deleted["body"].is_null(), "{res}");
    assert!(deleted["deletedAt"].is_string(), "{res}");
    assert_eq!(deleted["revision"], 3);

    let res = app
        .graphql(
            Some(&desk),
            EDIT,
            json!({ "id": message, "b": "Back again." }),
        )
        .await;
    assert_refused(
        &res,
        "CONFLICT",
        Some("MESSAGE_DELETED"),
        "editing a deleted message",
    );
    let res = app
        .graphql(Some(&desk), DELETE, json!({ "id": message }))
        .await;
    assert_refused(
        &res,
        "CONFLICT",
        Some("MESSAGE_DELETED"),
        "deleting it twice",
    );

    let res = app
        .graphql(Some(&admin), history, json!({ "id": thread }))
        .await;
    let node = &res["data"]["thread"]["messages"]["edges"][0]["node"];
    assert!(node["body"].is_null(), "{res}");
    assert!(node["deletedAt"].is_string(), "{res}");
    assert_eq!(
        node["history"],
        json!([
            { "revision": 1, "body": "Take 10 mg daily." },
            { "revision": 2, "body": "Take 20 mg daily." },
        ]),
        "{res}"
    );

    let kept: Vec<(i32, String)> = sqlx::query_as(
        "SELECT revision, body FROM message_revisions WHERE message_id = $1 ORDER BY revision",
    )
    .bind(Uuid::parse_str(&message).unwrap())
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(
        kept,
        vec![
            (1, "Take 10 mg daily.".to_owned()),
            (2, "Take 20 mg daily.".to_owned()),
        ]
    );
}

#[tokio::test]
async fn message_history_can_be_neither_rewritten_nor_deleted() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let north = org(&owner, "northside").await;
    let chart = patient(&owner, "NS-0001").await;
    let desk_id = user(&owner, "frontdesk@northside.example").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let thread = start_ok(&app, &desk, chart, "Dosage", "Take 10 mg daily.", &[]).await;
    let res = read_thread(&app, &desk, &thread).await;
    let message: Uuid = res["data"]["thread"]["messages"]["edges"][0]["node"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let res = app
        .graphql(
            Some(&desk),
            EDIT,
            json!({ "id": message, "b": "Take 20 mg daily." }),
        )
        .await;
    assert!(res["errors"].is_null(), "{res}");

    // The runtime role, acting as the sender, sees the history...
    let runtime = app.db.runtime().await;
    let ctx = Ctx::staff(north, desk_id, "STAFF");
    let mut tx = ctx.begin(&runtime).await;
    let visible: i64 =
        sqlx::query_scalar("SELECT count(*) FROM message_revisions WHERE message_id = $1")
            .bind(message)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(visible, 1, "the sender's clinic sees the history");
    // ...and may neither rewrite nor delete it.
    let err = sqlx::query("UPDATE message_revisions SET body = 'rewritten' WHERE message_id = $1")
        .bind(message)
        .execute(&mut *tx)
        .await
        .expect_err("the runtime role rewrote history");
    assert_eq!(sqlstate(&err), "42501", "{err}");
    tx.rollback().await.unwrap();
    let mut tx = ctx.begin(&runtime).await;
    let err = sqlx::query("DELETE FROM message_revisions WHERE message_id = $1")
        .bind(message)
        .execute(&mut *tx)
        .await
        .expect_err("the runtime role deleted history");
    assert_eq!(sqlstate(&err), "42501", "{err}");
    tx.rollback().await.unwrap();

    // Not even the owner: a trigger refuses.
    let err = sqlx::query("UPDATE message_revisions SET body = 'rewritten' WHERE message_id = $1")
        .bind(message)
        .execute(&owner)
        .await
        .expect_err("the owner rewrote history");
    assert_eq!(sqlstate(&err), "CG409", "{err}");
    let err = sqlx::query("DELETE FROM message_revisions WHERE message_id = $1")
        .bind(message)
        .execute(&owner)
        .await
        .expect_err("the owner deleted history");
    assert_eq!(sqlstate(&err), "CG409", "{err}");

    let kept: Vec<(i32, String)> = sqlx::query_as(
        "SELECT revision, body FROM message_revisions WHERE message_id = $1 ORDER BY revision",
    )
    .bind(message)
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(kept, vec![(1, "Take 10 mg daily.".to_owned())]);
}

#[tokio::test]
async fn unread_counts_follow_read_receipts_and_never_count_the_senders_own_messages() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let north = org(&owner, "northside").await;
    let chart = patient(&owner, "NS-0001").await;
    let jonathan_id = user(&owner, "jonathan.smith@example.com").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let jonathan = app
        .login_in("jonathan.smith@example.com", Some(north))
        .await;
    assert_eq!(unread(&app, &jonathan).await.0, 0);

    let thread = start_ok(
        &app,
        &desk,
        chart,
        "Lab results",
        "Your results are in.",
        &[jonathan_id],
    )
    .await;
    send_ok(&app, &desk, &thread, "Please call us back.").await;

    assert_eq!(unread(&app, &jonathan).await.0, 2);
    assert_eq!(unread(&app, &desk).await.0, 0, "the sender's own messages");
    let res = read_thread(&app, &jonathan, &thread).await;
    let t = &res["data"]["thread"];
    assert_eq!(t["hasUnread"], true, "{res}");
    assert!(participant(t, jonathan_id)["lastReadAt"].is_null(), "{res}");
    let unread_only = "{ threads(filter: { unreadOnly: true }) { edges { node { id } } } }";
    let res = app.graphql(Some(&jonathan), unread_only, json!({})).await;
    assert_eq!(ids(&res["data"]["threads"]), vec![thread.clone()], "{res}");

    let res = app
        .graphql(Some(&jonathan), MARK_READ, json!({ "t": thread }))
        .await;
    assert_eq!(res["data"]["markThreadRead"]["id"], thread, "{res}");
    let res = read_thread(&app, &jonathan, &thread).await;
    let t = &res["data"]["thread"];
    let receipt = &participant(t, jonathan_id)["lastReadAt"];
    assert!(receipt.is_string(), "{res}");
    assert!(
        receipt
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            >= t["lastMessageAt"]
                .as_str()
                .unwrap()
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap(),
        "the receipt covers the last message: {res}"
    );
    assert_eq!(t["hasUnread"], false, "{res}");
    assert_eq!(unread(&app, &jonathan).await.0, 0);
    let res = app.graphql(Some(&jonathan), unread_only, json!({})).await;
    assert!(ids(&res["data"]["threads"]).is_empty(), "{res}");
    // Staff see his receipt too.
    let res = read_thread(&app, &desk, &thread).await;
    assert!(
        participant(&res["data"]["thread"], jonathan_id)["lastReadAt"].is_string(),
        "{res}"
    );

    // His reply is unread for the clinic, not for him.
    send_ok(&app, &jonathan, &thread, "Thank you, I will call.").await;
    assert_eq!(unread(&app, &jonathan).await.0, 0);
    assert_eq!(unread(&app, &desk).await.0, 1);
    let res = read_thread(&app, &jonathan, &thread).await;
    assert_eq!(res["data"]["thread"]["hasUnread"], false, "{res}");

    // With no receipt at all, one's own messages still never count.
    sqlx::query("UPDATE thread_participants SET last_read_at = NULL WHERE thread_id = $1")
        .bind(Uuid::parse_str(&thread).unwrap())
        .execute(&owner)
        .await
        .unwrap();
    assert_eq!(unread(&app, &desk).await.0, 1, "only his reply");
    assert_eq!(unread(&app, &jonathan).await.0, 2, "only the clinic's two");
}

#[tokio::test]
async fn each_message_notifies_every_other_participant_by_id_in_its_own_transaction() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let north = org(&owner, "northside").await;
    let chart = patient(&owner, "NS-0001").await;
    let jonathan_id = user(&owner, "jonathan.smith@example.com").await;
    let admin_id = user(&owner, "admin@northside.example").await;
    let desk_id = user(&owner, "frontdesk@northside.example").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let admin = app.login_as("admin@northside.example").await;
    let jonathan = app
        .login_in("jonathan.smith@example.com", Some(north))
        .await;
    let (_, jonathan_base) = unread(&app, &jonathan).await;
    let (_, admin_base) = unread(&app, &admin).await;
    let first = "Potassium 5.9 mmol/L, please repeat.";
    let second = "Please call us back about the potassium.";

    let thread = start_ok(
        &app,
        &desk,
        chart,
        "Lab results",
        first,
        &[jonathan_id, admin_id],
    )
    .await;
    let thread_id = Uuid::parse_str(&thread).unwrap();
    let recipients = async || -> Vec<(Uuid, i64)> {
        sqlx::query_as(
            "SELECT user_id, count(*) FROM notifications \
             WHERE kind = 'NEW_MESSAGE' AND subject_type = 'message_threads' AND subject_id = $1 \
             GROUP BY user_id ORDER BY user_id",
        )
        .bind(thread_id)
        .fetch_all(&owner)
        .await
        .unwrap()
    };
    let mut expected = vec![(jonathan_id, 1), (admin_id, 1)];
    expected.sort();
    assert_eq!(recipients().await, expected, "not the sender {desk_id}");

    send_ok(&app, &desk, &thread, second).await;
    let mut expected = vec![(jonathan_id, 2), (admin_id, 2)];
    expected.sort();
    assert_eq!(recipients().await, expected);

    // A message that fails leaves no notification behind: refused before
    // it is written, or after (an attachment the database refuses).
    let rows_before = messaging_rows(&owner).await;
    let res = send(&app, &desk, &thread, "   ").await;
    assert!(!error_codes(&res).is_empty(), "{res}");
    let res = app
        .graphql(
            Some(&desk),
            SEND,
            json!({ "t": thread, "b": "A scan is attached.",
                    "a": [{ "name": "scan.pdf", "mediaType": "+x/pdf", "sizeBytes": 10,
                            "sha256": "ab".repeat(32) }] }),
        )
        .await;
    assert!(!error_codes(&res).is_empty(), "{res}");
    assert!(res["data"].is_null(), "{res}");
    let res = send(&app, &desk, &Uuid::new_v4().to_string(), "Nowhere").await;
    assert_refused(&res, "NOT_FOUND", None, "sending to no thread");
    assert_eq!(messaging_rows(&owner).await, rows_before);
    assert_eq!(recipients().await, expected);

    assert_eq!(unread(&app, &jonathan).await.1, jonathan_base + 2);
    assert_eq!(unread(&app, &admin).await.1, admin_base + 2);

    // Pages of his unread notifications: ids only, no text.
    let list = "query($after: String) { notifications(first: 1, unreadOnly: true, after: $after) {
        edges { node { id kind subjectType subjectId createdAt readAt } }
        pageInfo { hasNextPage endCursor } } }";
    let res = app
        .graphql(Some(&jonathan), list, json!({ "after": null }))
        .await;
    let page1 = &res["data"]["notifications"];
    let n1 = &page1["edges"][0]["node"];
    assert_eq!(page1["edges"].as_array().map(Vec::len), Some(1), "{res}");
    assert_eq!(n1["kind"], "NEW_MESSAGE", "{res}");
    assert_eq!(n1["subjectType"], "message_threads");
    assert_eq!(n1["subjectId"], thread);
    assert!(n1["readAt"].is_null());
    assert_eq!(page1["pageInfo"]["hasNextPage"], true);
    let res2 = app
        .graphql(
            Some(&jonathan),
            list,
            json!({ "after": page1["pageInfo"]["endCursor"] }),
        )
        .await;
    let n2 = &res2["data"]["notifications"]["edges"][0]["node"];
    assert_eq!(n2["kind"], "NEW_MESSAGE", "{res2}");
    assert_eq!(n2["subjectId"], thread);
    assert_ne!(n2["id"], n1["id"], "the next page goes on: {res2}");
    for text in [first, second] {
        assert!(!res.to_string().contains(text), "{res}");
        assert!(!res2.to_string().contains(text), "{res2}");
        let carrying: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notifications n WHERE strpos(n::text, $1) > 0",
        )
        .bind(text)
        .fetch_one(&owner)
        .await
        .unwrap();
        assert_eq!(carrying, 0, "a notification carries the text");
    }

    // Another user's notifications are not his to mark.
    let admins: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM notifications WHERE user_id = $1 AND subject_id = $2")
            .bind(admin_id)
            .bind(thread_id)
            .fetch_all(&owner)
            .await
            .unwrap();
    assert_eq!(admins.len(), 2);
    let res = app
        .graphql(
            Some(&jonathan),
            MARK_NOTIFICATIONS,
            json!({ "ids": admins }),
        )
        .await;
    assert_eq!(res["data"]["markNotificationsRead"], 0, "{res}");
    let admins_unread: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications WHERE id = ANY ($1) AND read_at IS NULL",
    )
    .bind(&admins)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(admins_unread, 2);
    assert_eq!(unread(&app, &admin).await.1, admin_base + 2);

    // At most 100 at a time.
    let too_many: Vec<Uuid> = (0..101).map(|_| Uuid::new_v4()).collect();
    let res = app
        .graphql(
            Some(&jonathan),
            MARK_NOTIFICATIONS,
            json!({ "ids": too_many }),
        )
        .await;
    assert_bad_input(&res, "ids", "101 ids");

    // His own, by id: that one only, once.
    let res = app
        .graphql(
            Some(&jonathan),
            MARK_NOTIFICATIONS,
            json!({ "ids": [n1["id"]] }),
        )
        .await;
    assert_eq!(res["data"]["markNotificationsRead"], 1, "{res}");
    assert_eq!(unread(&app, &jonathan).await.1, jonathan_base + 1);
    let res = app
        .graphql(
            Some(&jonathan),
            MARK_NOTIFICATIONS,
            json!({ "ids": [n1["id"]] }),
        )
        .await;
    assert_eq!(
        res["data"]["markNotificationsRead"], 0,
        "already read: {res}"
    );

    // All of his, with no ids.
    let res = app
        .graphql(Some(&jonathan), MARK_NOTIFICATIONS, json!({}))
        .await;
    assert_eq!(
        res["data"]["markNotificationsRead"],
        jonathan_base + 1,
        "{res}"
    );
    assert_eq!(unread(&app, &jonathan).await.1, 0);
    let res = app
        .graphql(Some(&jonathan), list, json!({ "after": null }))
        .await;
    assert_eq!(res["data"]["notifications"]["edges"], json!([]), "{res}");
    assert_eq!(
        unread(&app, &admin).await.1,
        admin_base + 2,
        "the admin's stay unread"
    );
}

#[tokio::test]
async fn notification_preferences_round_trip_and_bad_times_or_zones_are_refused() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let north = org(&owner, "northside").await;
    let jonathan = app
        .login_in("jonathan.smith@example.com", Some(north))
        .await;
    let res = app.graphql(Some(&jonathan), PREFS, json!({})).await;
    assert_eq!(
        res["data"]["notificationPreferences"],
        json!({ "mutedKinds": [], "quietStart": null, "quietEnd": null, "timezone": null }),
        "{res}"
    );

    let wanted = json!({ "mutedKinds": ["CLAIM_STATUS", "NEW_MESSAGE"], "quietStart": "22:00",
                         "quietEnd": "07:00", "timezone": "America/Chicago" });
    let res = app
        .graphql(Some(&jonathan), SET_PREFS, json!({ "i": wanted }))
        .await;
    assert_eq!(res["data"]["setNotificationPreferences"], wanted, "{res}");
    let res = app.graphql(Some(&jonathan), PREFS, json!({})).await;
    assert_eq!(res["data"]["notificationPreferences"], wanted, "{res}");

    let refused = [
        (
            json!({ "quietStart": "25:00", "quietEnd": "07:00" }),
            vec!["quietStart"],
            "an hour past the day",
        ),
        (
            json!({ "quietStart": "22:00" }),
            vec!["quietStart", "quietEnd"],
            "a start without an end",
        ),
        (
            json!({ "quietEnd": "07:00" }),
            vec!["quietStart", "quietEnd"],
            "an end without a start",
        ),
        (
            json!({ "quietStart": "22:00", "quietEnd": "07:00", "timezone": "Mars/Olympus_Mons" }),
            vec!["timezone"],
            "an unknown time zone",
        ),
    ];
    for (input, fields, what) in refused {
        let res = app
            .graphql(Some(&jonathan), SET_PREFS, json!({ "i": input }))
            .await;
        assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{what}: {res}");
        let field = first_error(&res)["field"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(fields.contains(&field.as_str()), "{what}: {res}");
        let res = app.graphql(Some(&jonathan), PREFS, json!({})).await;
        assert_eq!(
            res["data"]["notificationPreferences"], wanted,
            "{what} changed nothing"
        );
    }

    // Preferences replace the earlier ones.
    let res = app
        .graphql(
            Some(&jonathan),
            SET_PREFS,
            json!({ "i": { "mutedKinds": [] } }),
        )
        .await;
    let cleared =
        json!({ "mutedKinds": [], "quietStart": null, "quietEnd": null, "timezone": null });
    assert_eq!(res["data"]["setNotificationPreferences"], cleared, "{res}");
    let res = app.graphql(Some(&jonathan), PREFS, json!({})).await;
    assert_eq!(res["data"]["notificationPreferences"], cleared, "{res}");
}

#[tokio::test]
async fn a_blank_or_overlong_body_or_subject_is_refused_naming_it_and_nothing_is_written() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let chart = patient(&owner, "NS-0001").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let thread = start_ok(
        &app,
        &desk,
        chart,
        "Lab results",
        "Your results are in.",
        &[],
    )
    .await;
    let rows_before = messaging_rows(&owner).await;

    let long_body = "x".repeat(10_001);
    for (body, what) in [
        ("", "an empty body"),
        ("  \n\t ", "a blank body"),
        (long_body.as_str(), "a body of 10,001 characters"),
    ] {
        let res = start(&app, &desk, chart, "Results", body, &[]).await;
        assert_bad_input(&res, "body", &format!("startThread with {what}"));
        let res = send(&app, &desk, &thread, body).await;
        assert_bad_input(&res, "body", &format!("sendMessage with {what}"));
    }
    let long_subject = "s".repeat(201);
    for (subject, what) in [
        ("", "an empty subject"),
        (long_subject.as_str(), "a subject of 201 characters"),
    ] {
        let res = start(&app, &desk, chart, subject, "Results are in.", &[]).await;
        assert_bad_input(&res, "subject", what);
    }
    // The largest allowed are accepted.
    let res = start(
        &app,
        &desk,
        chart,
        &"s".repeat(200),
        &"x".repeat(10_000),
        &[],
    )
    .await;
    assert!(res["errors"].is_null(), "the limits themselves: {res}");
    let after = messaging_rows(&owner).await;
    let grew: Vec<&str> = rows_before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a)
        .map(|(b, _)| b.0)
        .collect();
    assert_eq!(
        grew,
        vec!["message_threads", "thread_participants", "messages"],
        "only the accepted thread was written: {rows_before:?} -> {after:?}"
    );
}

#[tokio::test]
async fn more_than_twenty_participants_is_refused_on_participant_ids_and_nothing_is_written() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let chart = patient(&owner, "NS-0001").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let rows_before = messaging_rows(&owner).await;
    let many: Vec<Uuid> = (0..21).map(|_| Uuid::new_v4()).collect();
    let res = start(&app, &desk, chart, "Results", "Results are in.", &many).await;
    assert_bad_input(&res, "participantIds", "21 participants");
    assert_eq!(messaging_rows(&owner).await, rows_before);
}

/// An attachment reference as the API takes it.
fn attachment(name: &str, media_type: &str, size: i64, sha256: &str) -> Value {
    json!({ "name": name, "mediaType": media_type, "sizeBytes": size, "sha256": sha256 })
}

#[tokio::test]
async fn too_many_or_malformed_attachments_are_refused_naming_the_field_and_nothing_is_written() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let chart = patient(&owner, "NS-0001").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let thread = start_ok(
        &app,
        &desk,
        chart,
        "Lab results",
        "Your results are in.",
        &[],
    )
    .await;
    let rows_before = messaging_rows(&owner).await;
    let sha = "ab".repeat(32);
    let good = attachment("scan.pdf", "application/pdf", 1024, &sha);

    let cases = [
        (vec![good.clone(); 11], "attachments", "11 attachments"),
        (
            vec![attachment("scan.pdf", "application/pdf", 1024, "abc")],
            "attachments.sha256",
            "a short sha256",
        ),
        (
            vec![attachment(
                "scan.pdf",
                "application/pdf",
                1024,
                &"zz".repeat(32),
            )],
            "attachments.sha256",
            "a sha256 that is not hex",
        ),
        (
            vec![attachment("scan.pdf", "pdf", 1024, &sha)],
            "attachments.mediaType",
            "a media type without a subtype",
        ),
        (
            vec![attachment("scan.pdf", "application/pdf; x=1", 1024, &sha)],
            "attachments.mediaType",
            "a media type with parameters",
        ),
        (
            vec![attachment("scan.pdf", "application/pdf", -1, &sha)],
            "attachments.sizeBytes",
            "a negative size",
        ),
        (
            vec![good.clone(), attachment("  ", "application/pdf", 1, &sha)],
            "attachments.name",
            "a blank name",
        ),
    ];
    for (attachments, field, what) in cases {
        let res = app
            .graphql(
                Some(&desk),
                SEND,
                json!({ "t": thread, "b": "A scan is attached.", "a": attachments }),
            )
            .await;
        assert_bad_input(&res, field, &format!("sendMessage with {what}"));
        let res = app
            .graphql(
                Some(&desk),
                START,
                json!({ "i": { "patientId": chart, "subject": "Scan", "body": "A scan is attached.",
                               "attachments": attachments } }),
            )
            .await;
        assert_bad_input(&res, field, &format!("startThread with {what}"));
        assert_eq!(messaging_rows(&owner).await, rows_before, "{what}");
    }
}

#[tokio::test]
async fn a_media_type_the_database_would_refuse_is_refused_on_its_field() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let chart = patient(&owner, "NS-0001").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let thread = start_ok(
        &app,
        &desk,
        chart,
        "Lab results",
        "Your results are in.",
        &[],
    )
    .await;
    let rows_before = messaging_rows(&owner).await;
    for media_type in ["+x/pdf", "application/.pdf"] {
        let res = app
            .graphql(
                Some(&desk),
                SEND,
                json!({ "t": thread, "b": "A scan is attached.",
                        "a": [attachment("scan.pdf", media_type, 10, &"ab".repeat(32))] }),
            )
            .await;
        assert_bad_input(&res, "attachments.mediaType", media_type);
    }
    assert_eq!(messaging_rows(&owner).await, rows_before);
}

/// A list of attachments in order of name.
fn by_name(list: &Value) -> Value {
    let mut items = list
        .as_array()
        .unwrap_or_else(|| panic!("attachments: {list}"))
        .clone();
    items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Value::Array(items)
}

#[tokio::test]
async fn attachments_given_correctly_come_back_with_their_reference() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let chart = patient(&owner, "NS-0001").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let admin = app.login_as("admin@northside.example").await;
    let thread = start_ok(
        &app,
        &desk,
        chart,
        "Lab results",
        "Your results are in.",
        &[],
    )
    .await;
    let sha_upper = "AB".repeat(32);
    let res = app
        .graphql(
            Some(&desk),
            SEND,
            json!({ "t": thread, "b": "Two files attached.",
                    "a": [attachment("scan.pdf", "Application/PDF", 1024, &sha_upper),
                          attachment("photo.jpg", "image/jpeg", 0, &"0f".repeat(32))] }),
        )
        .await;
    assert!(res["errors"].is_null(), "{res}");
    // In order of name: two references written at once have no order.
    let expected = json!([
        { "name": "photo.jpg", "mediaType": "image/jpeg", "sizeBytes": 0, "sha256": "0f".repeat(32) },
        { "name": "scan.pdf", "mediaType": "application/pdf", "sizeBytes": 1024, "sha256": "ab".repeat(32) },
    ]);
    assert_eq!(
        by_name(&res["data"]["sendMessage"]["attachments"]),
        expected,
        "{res}"
    );

    let res = app
        .graphql(
            Some(&admin),
            "query($id: UUID!) { thread(id: $id) { messages(first: 1) { edges { node {
                body attachments { name mediaType sizeBytes sha256 } } } } } }",
            json!({ "id": thread }),
        )
        .await;
    let node = &res["data"]["thread"]["messages"]["edges"][0]["node"];
    assert_eq!(node["body"], "Two files attached.", "{res}");
    assert_eq!(by_name(&node["attachments"]), expected, "{res}");
}

#[tokio::test]
async fn the_audit_trail_records_messaging_without_its_text_and_reading_messages_is_a_read() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let north = org(&owner, "northside").await;
    let chart = patient(&owner, "NS-0001").await;
    let admin_id = user(&owner, "admin@northside.example").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let admin = app.login_as("admin@northside.example").await;
    let first = "Potassium 5.9 mmol/L, repeat the panel Monday";
    let second = "HIV test negative, no follow-up needed";
    let third = "HIV test negative; follow-up in a year";

    let thread = start_ok(&app, &desk, chart, "Lab results", first, &[]).await;
    let message = send_ok(&app, &desk, &thread, second).await;
    let res = app
        .graphql(Some(&desk), EDIT, json!({ "id": message, "b": third }))
        .await;
    assert!(res["errors"].is_null(), "{res}");

    let events: Vec<(String, String, Option<Uuid>)> = sqlx::query_as(
        "SELECT action, resource_type, resource_id FROM audit_events \
         WHERE organization_id = $1 AND resource_type IN ('message_threads', 'messages') \
         ORDER BY occurred_at, id",
    )
    .bind(north)
    .fetch_all(&owner)
    .await
    .unwrap();
    let thread_id = Uuid::parse_str(&thread).unwrap();
    let message_id = Uuid::parse_str(&message).unwrap();
    assert!(
        events.contains(&(
            "CREATE".to_owned(),
            "message_threads".to_owned(),
            Some(thread_id)
        )),
        "{events:?}"
    );
    assert!(
        events.contains(&("CREATE".to_owned(), "messages".to_owned(), Some(message_id))),
        "{events:?}"
    );
    assert!(
        events.contains(&("UPDATE".to_owned(), "messages".to_owned(), Some(message_id))),
        "{events:?}"
    );
    for text in [first, second, third] {
        let found: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit_events e WHERE strpos(e::text, $1) > 0")
                .bind(text)
                .fetch_one(&owner)
                .await
                .unwrap();
        assert_eq!(found, 0, "the audit trail holds the text {text:?}");
    }

    let res = app
        .graphql(
            Some(&admin),
            "query($id: UUID!) { thread(id: $id) { messages { edges { node { body } } } } }",
            json!({ "id": thread }),
        )
        .await;
    assert_eq!(
        bodies(&res["data"]["thread"]["messages"]),
        vec![json!(third), json!(first)],
        "{res}"
    );
    let request = res["extensions"]["requestId"]
        .as_str()
        .unwrap_or_else(|| panic!("a request id: {res}"))
        .to_owned();
    /// Clinic, actor, resource type and resource of an audit event.
    type ReadEvent = (Option<Uuid>, Option<Uuid>, String, Option<Uuid>);
    let reads: Vec<ReadEvent> = sqlx::query_as(
        "SELECT organization_id, actor_user_id, resource_type, resource_id FROM audit_events \
         WHERE request_id = $1 AND action = 'READ'",
    )
    .bind(&request)
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(
        reads,
        vec![(
            Some(north),
            Some(admin_id),
            "patients".to_owned(),
            Some(chart)
        )],
        "one READ of the patient"
    );
}

#[tokio::test]
async fn a_users_notifications_stay_in_the_clinic_where_they_were_made() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let north = org(&owner, "northside").await;
    let lake = org(&owner, "lakeside").await;
    let chart = patient(&owner, "NS-0001").await;
    let jonathan_id = user(&owner, "jonathan.smith@example.com").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let thread = start_ok(
        &app,
        &desk,
        chart,
        "Lab results",
        "Your results are in.",
        &[jonathan_id],
    )
    .await;
    let at_northside = app
        .login_in("jonathan.smith@example.com", Some(north))
        .await;
    let at_lakeside = app.login_in("jonathan.smith@example.com", Some(lake)).await;
    let northside_unread = unread(&app, &at_northside).await.1;
    assert!(northside_unread >= 1);

    let list = "{ notifications(first: 100) { edges { node { id subjectId } } } }";
    let res = app.graphql(Some(&at_lakeside), list, json!({})).await;
    assert!(res["errors"].is_null(), "{res}");
    assert!(!res.to_string().contains(&thread), "{res}");
    let northside_ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM notifications WHERE user_id = $1 AND organization_id = $2",
    )
    .bind(jonathan_id)
    .bind(north)
    .fetch_all(&owner)
    .await
    .unwrap();
    let res = app
        .graphql(
            Some(&at_lakeside),
            MARK_NOTIFICATIONS,
            json!({ "ids": northside_ids }),
        )
        .await;
    assert_eq!(res["data"]["markNotificationsRead"], 0, "{res}");
    let res = app
        .graphql(Some(&at_lakeside), MARK_NOTIFICATIONS, json!({}))
        .await;
    assert!(res["errors"].is_null(), "{res}");
    assert_eq!(
        unread(&app, &at_northside).await.1,
        northside_unread,
        "marking all at Lakeside left Northside's unread"
    );
    assert_eq!(unread(&app, &at_lakeside).await.1, 0);
}
