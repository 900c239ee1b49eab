//! Live updates over `/graphql/ws` (graphql-transport-ws): what is sent is
//! re-read under the subscriber's own context, so a subscriber never gets
//! an event they could not have queried; sockets are authenticated, their
//! sessions re-checked, and every buffer bounded.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::{org, patient, user};
use crate::support::app::{TestApp, default_config, error_codes, spawn_app, spawn_app_with};
use crate::support::ws::{Got, LiveClient};

const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(1500);

const START: &str = "mutation($i: StartThreadInput!) { startThread(input: $i) { id subject } }";
const SEND: &str =
    "mutation($t: UUID!, $b: String!) { sendMessage(threadId: $t, body: $b) { id body } }";
const MESSAGE_ADDED: &str = "subscription($t: UUID!) { messageAdded(threadId: $t) { id body sender { displayName } thread { subject } } }";
const THREAD_UPDATED: &str = "subscription { threadUpdated { id subject messageCount } }";

/// Starts a thread about `mrn` as `token`; its id.
async fn start_thread(app: &TestApp, token: &str, mrn: &str, participants: &[Uuid]) -> String {
    let owner = app.db.owner().await;
    let p = patient(&owner, mrn).await;
    let res = app
        .graphql(
            Some(token),
            START,
            json!({"i": {"patientId": p, "subject": "Lab results", "body": "Your results are in.",
                          "participantIds": participants}}),
        )
        .await;
    res["data"]["startThread"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("startThread: {res}"))
        .to_owned()
}

async fn send(app: &TestApp, token: &str, thread: &str, body: &str) -> Value {
    app.graphql(Some(token), SEND, json!({"t": thread, "b": body}))
        .await
}

#[tokio::test]
async fn a_subscriber_gets_new_messages_of_their_thread_and_nothing_of_another_clinic() {
    let app = spawn_app().await;
    let admin = app.login_as("admin@northside.example").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let lakeside = app.login_as("admin@lakeside.example").await;
    let thread = start_thread(&app, &desk, "NS-0001", &[]).await;

    let mut north = LiveClient::connect(&app, &admin).await;
    north
        .subscribe("m", MESSAGE_ADDED, json!({"t": thread}))
        .await;
    north.subscribe("t", THREAD_UPDATED, json!({})).await;
    let mut lake = LiveClient::connect(&app, &lakeside).await;
    lake.subscribe("t", THREAD_UPDATED, json!({})).await;
    // Lakeside's admin names Northside's thread: still nothing.
    lake.subscribe("m", MESSAGE_ADDED, json!({"t": thread}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let sent = send(&app, &desk, &thread, "Please call us back.").await;
    assert!(sent["errors"].is_null(), "{sent}");

    let mut seen = Vec::new();
    for _ in 0..2 {
        match north.next(WAIT).await {
            Got::Message(m) if m["type"] == "next" => seen.push(m),
            other => panic!("expected a delivery, got {other:?}"),
        }
    }
    let message = seen
        .iter()
        .find(|m| m["id"] == "m")
        .expect("messageAdded delivered");
    assert_eq!(
        message["payload"]["data"]["messageAdded"]["body"],
        "Please call us back."
    );
    assert_eq!(
        message["payload"]["data"]["messageAdded"]["thread"]["subject"],
        "Lab results"
    );
    let updated = seen
        .iter()
        .find(|m| m["id"] == "t")
        .expect("threadUpdated delivered");
    assert_eq!(updated["payload"]["data"]["threadUpdated"]["id"], thread);
    assert_eq!(
        updated["payload"]["data"]["threadUpdated"]["messageCount"],
        2
    );

    match lake.next(QUIET).await {
        Got::Nothing => {}
        other => panic!("clinic B got something of clinic A: {other:?}"),
    }
}

#[tokio::test]
async fn a_proxy_whose_grant_is_revoked_stops_receiving_at_once() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    // Maria is Sofia's (NS-0002) proxy; allow her to message.
    sea_orm::sqlx::query(
        "UPDATE proxy_assignments SET can_message_providers = true \
         WHERE proxy_user_id = (SELECT id FROM users WHERE email = 'maria.garcia@example.com')",
    )
    .execute(&owner)
    .await
    .unwrap();
    let maria_id = user(&owner, "maria.garcia@example.com").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let admin = app.login_as("admin@northside.example").await;
    let thread = start_thread(&app, &desk, "NS-0002", &[maria_id]).await;
    let maria = app.login_as("maria.garcia@example.com").await;
    // Maria signs nothing here: the demo leaves her HIPAA notice unsigned,
    // so she signs it first.
    let docs = app
        .graphql(Some(&maria), "{ consentDocuments { id } }", json!({}))
        .await;
    for d in docs["data"]["consentDocuments"].as_array().unwrap() {
        app.graphql(
            Some(&maria),
            "mutation($d: UUID!) { signConsent(documentId: $d) { signedAt } }",
            json!({"d": d["id"]}),
        )
        .await;
    }

    let mut live = LiveClient::connect(&app, &maria).await;
    live.subscribe("m", MESSAGE_ADDED, json!({"t": thread}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&app, &desk, &thread, "Sofia's appointment is confirmed.").await;
    let got = live.next_payload("m", WAIT).await;
    assert_eq!(
        got["data"]["messageAdded"]["body"], "Sofia's appointment is confirmed.",
        "{got}"
    );

    let grant: Uuid = sea_orm::sqlx::query_scalar(
        "SELECT id FROM proxy_assignments WHERE proxy_user_id = $1 AND revoked_at IS NULL",
    )
    .bind(maria_id)
    .fetch_one(&owner)
    .await
    .unwrap();
    let revoked = app
        .graphql(
            Some(&admin),
            "mutation($id: UUID!) { revokeProxyAccess(id: $id) { revokedAt } }",
            json!({"id": grant}),
        )
        .await;
    assert!(revoked["errors"].is_null(), "{revoked}");
    send(&app, &desk, &thread, "Lab results for Sofia attached.").await;
    // She holds no other access at Northside: her socket is closed (4403)
    // — and in no case is the message sent.
    match live.next(WAIT).await {
        Got::Closed(code) => assert_eq!(code, 4403),
        Got::Nothing => {}
        Got::Message(m) => panic!("a revoked proxy received {m}"),
    }
}

#[tokio::test]
async fn a_patient_is_notified_live_of_a_booking_unless_the_kind_is_muted() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let north = org(&owner, "northside").await;
    let jonathan = app
        .login_in("jonathan.smith@example.com", Some(north))
        .await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let p = patient(&owner, "NS-0001").await;
    let provider: Uuid =
        sea_orm::sqlx::query_scalar("SELECT id FROM providers WHERE npi = '1234567893'")
            .fetch_one(&owner)
            .await
            .unwrap();
    let mut live = LiveClient::connect(&app, &jonathan).await;
    live.subscribe(
        "n",
        "subscription { notificationAdded { kind subjectType subjectId readAt } }",
        json!({}),
    )
    .await;
    let day = (chrono::Utc::now() + chrono::Duration::days(20)).date_naive();
    let book = |hour: u32| {
        let start = day.and_hms_opt(hour, 0, 0).unwrap().and_utc();
        json!({"i": {"patientId": p, "providerId": provider, "startsAt": start.to_rfc3339(),
                     "endsAt": (start + chrono::Duration::minutes(30)).to_rfc3339()}})
    };
    let q = "mutation($i: ScheduleAppointmentInput!) { scheduleAppointment(input: $i) { id } }";
    let booked = app.graphql(Some(&desk), q, book(15)).await;
    let id = booked["data"]["scheduleAppointment"]["id"].clone();
    assert!(id.is_string(), "{booked}");
    let got = live.next_payload("n", WAIT).await;
    assert_eq!(
        got["data"]["notificationAdded"]["kind"],
        "APPOINTMENT_BOOKED"
    );
    assert_eq!(got["data"]["notificationAdded"]["subjectId"], id);

    let muted = app
        .graphql(
            Some(&jonathan),
            "mutation { setNotificationPreferences(input: {mutedKinds: [APPOINTMENT_BOOKED]}) { mutedKinds } }",
            json!({}),
        )
        .await;
    assert_eq!(
        muted["data"]["setNotificationPreferences"]["mutedKinds"],
        json!(["APPOINTMENT_BOOKED"])
    );
    let again = app.graphql(Some(&desk), q, book(17)).await;
    assert!(again["errors"].is_null(), "{again}");
    match live.next(QUIET).await {
        Got::Nothing => {}
        other => panic!("a muted kind was pushed: {other:?}"),
    }
    // Kept all the same: the newest two are the two bookings.
    let second = again["data"]["scheduleAppointment"]["id"].clone();
    let list = app
        .graphql(
            Some(&jonathan),
            "{ notifications(first: 2, unreadOnly: true) { edges { node { kind subjectId } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        list["data"]["notifications"]["edges"],
        json!([
            {"node": {"kind": "APPOINTMENT_BOOKED", "subjectId": second}},
            {"node": {"kind": "APPOINTMENT_BOOKED", "subjectId": id}},
        ]),
        "{list}"
    );
}

#[tokio::test]
async fn the_schedule_of_a_day_updates_live_for_staff_of_the_clinic_only() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let admin = app.login_as("admin@northside.example").await;
    let lakeside = app.login_as("admin@lakeside.example").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let p = patient(&owner, "NS-0001").await;
    let provider: Uuid =
        sea_orm::sqlx::query_scalar("SELECT id FROM providers WHERE npi = '1234567893'")
            .fetch_one(&owner)
            .await
            .unwrap();
    let day = (chrono::Utc::now() + chrono::Duration::days(30)).date_naive();
    let other_day = day + chrono::Duration::days(1);
    let sub =
        "subscription($d: Date!) { appointmentChanged(on: $d) { id status patient { mrn } } }";
    let mut north = LiveClient::connect(&app, &admin).await;
    north
        .subscribe("a", sub, json!({"d": day.to_string()}))
        .await;
    let mut lake = LiveClient::connect(&app, &lakeside).await;
    lake.subscribe("a", sub, json!({"d": day.to_string()}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let q = "mutation($i: ScheduleAppointmentInput!) { scheduleAppointment(input: $i) { id } }";
    let at = |d: chrono::NaiveDate| {
        let start = d.and_hms_opt(16, 0, 0).unwrap().and_utc();
        json!({"i": {"patientId": p, "providerId": provider, "startsAt": start.to_rfc3339(),
                     "endsAt": (start + chrono::Duration::minutes(30)).to_rfc3339()}})
    };
    let other = app.graphql(Some(&desk), q, at(other_day)).await;
    assert!(other["errors"].is_null(), "{other}");
    let booked = app.graphql(Some(&desk), q, at(day)).await;
    let id = booked["data"]["scheduleAppointment"]["id"].clone();
    let got = north.next_payload("a", WAIT).await;
    assert_eq!(
        got["data"]["appointmentChanged"]["id"], id,
        "only that day's: {got}"
    );
    assert_eq!(
        got["data"]["appointmentChanged"]["patient"]["mrn"],
        "NS-0001"
    );
    match lake.next(QUIET).await {
        Got::Nothing => {}
        other => panic!("clinic B saw clinic A's schedule: {other:?}"),
    }
}

#[tokio::test]
async fn two_servers_on_one_database_both_deliver() {
    let app = spawn_app().await;
    // A second server on the same database, as another replica.
    let mut config = default_config();
    config.database_url = Some(app.db.owner_url.clone());
    config.app_database_url = None;
    config.db_pool_size = 2;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = caregate::server::Server::build(config, &app.db.owner_url, listener)
        .await
        .expect("a second server");
    let addr = second.local_addr().unwrap();
    tokio::spawn(second.run(std::future::pending()));

    let admin = app.login_as("admin@northside.example").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let thread = start_thread(&app, &desk, "NS-0001", &[]).await;
    let mut one = LiveClient::connect(&app, &admin).await;
    let mut two = LiveClient::connect_at(addr, &admin).await;
    one.subscribe("m", MESSAGE_ADDED, json!({"t": thread}))
        .await;
    two.subscribe("m", MESSAGE_ADDED, json!({"t": thread}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Sent through the second server; both deliver.
    let sent: Value = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(&desk)
        .json(&json!({"query": SEND, "variables": {"t": thread, "b": "Seen on every replica"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(sent["errors"].is_null(), "{sent}");
    for client in [&mut one, &mut two] {
        let got = client.next_payload("m", WAIT).await;
        assert_eq!(got["data"]["messageAdded"]["body"], "Seen on every replica");
    }
}

#[tokio::test]
async fn a_socket_is_refused_without_a_valid_token_and_closes_on_protocol_errors() {
    let app = spawn_app_with(|c| c.live_init_timeout_ms = 500).await;
    // No token.
    let mut s = LiveClient::open(&app).await;
    s.send(json!({"type": "connection_init", "payload": {}}))
        .await;
    assert_eq!(s.closed(WAIT).await, 4403);
    // A forged token.
    let mut s = LiveClient::open(&app).await;
    s.send(json!({"type": "connection_init", "payload": {"authorization": "Bearer x.y.z"}}))
        .await;
    assert_eq!(s.closed(WAIT).await, 4403);
    // Subscribing before the ack.
    let mut s = LiveClient::open(&app).await;
    s.subscribe("1", THREAD_UPDATED, json!({})).await;
    assert_eq!(s.closed(WAIT).await, 4401);
    // No connection_init in time.
    let mut s = LiveClient::open(&app).await;
    assert_eq!(s.closed(WAIT).await, 4408);
    // Not the protocol.
    let mut s = LiveClient::open(&app).await;
    s.send_raw("{\"type\":\"start\"}").await;
    assert_eq!(s.closed(WAIT).await, 4400);
    // Another subprotocol (or none).
    let mut s = LiveClient::open_with_protocol(&app, None).await;
    assert_eq!(s.closed(WAIT).await, 4406);

    let admin = app.login_as("admin@northside.example").await;
    // A second connection_init.
    let mut s = LiveClient::connect(&app, &admin).await;
    s.send(
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {admin}")}}),
    )
    .await;
    assert_eq!(s.closed(WAIT).await, 4429);
    // An id in use.
    let mut s = LiveClient::connect(&app, &admin).await;
    s.subscribe("1", THREAD_UPDATED, json!({})).await;
    s.subscribe("1", THREAD_UPDATED, json!({})).await;
    assert_eq!(s.closed(WAIT).await, 4409);
    // Pings are answered.
    let mut s = LiveClient::connect(&app, &admin).await;
    s.send(json!({"type": "ping"})).await;
    match s.next(WAIT).await {
        Got::Message(m) => assert_eq!(m["type"], "pong"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_bad_subscription_gets_an_error_and_the_socket_stays_usable() {
    let app = spawn_app_with(|c| c.live_max_subscriptions = 2).await;
    let admin = app.login_as("admin@northside.example").await;
    let mut s = LiveClient::connect(&app, &admin).await;
    for (id, query) in [
        ("syntax", "subscription {"),
        ("unknown", "subscription { noSuchField }"),
        ("query", "{ me { role } }"),
        ("mutation", "mutation { logout }"),
        (
            "two",
            "subscription { threadUpdated { id } notificationAdded { id } }",
        ),
    ] {
        s.subscribe(id, query, json!({})).await;
        match s.next(WAIT).await {
            Got::Message(m) => {
                assert_eq!(m["type"], "error", "{id}: {m}");
                assert_eq!(m["id"], id);
                assert_eq!(
                    m["payload"][0]["extensions"]["code"], "BAD_USER_INPUT",
                    "{m}"
                );
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    s.subscribe("a", THREAD_UPDATED, json!({})).await;
    s.subscribe("b", THREAD_UPDATED, json!({})).await;
    s.subscribe("c", THREAD_UPDATED, json!({})).await;
    match s.next(WAIT).await {
        Got::Message(m) => {
            assert_eq!(m["type"], "error");
            assert_eq!(m["id"], "c");
            assert_eq!(m["payload"][0]["extensions"]["code"], "RATE_LIMITED");
        }
        other => panic!("{other:?}"),
    }
    // Completing one makes room.
    s.send(json!({"type": "complete", "id": "a"})).await;
    s.subscribe("c", THREAD_UPDATED, json!({})).await;
    match s.next(QUIET).await {
        Got::Nothing => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn subscriptions_over_http_are_refused_with_a_pointer_to_the_socket() {
    let app = spawn_app().await;
    let admin = app.login_as("admin@northside.example").await;
    let res = app.graphql(Some(&admin), THREAD_UPDATED, json!({})).await;
    assert_eq!(error_codes(&res), vec!["BAD_USER_INPUT"], "{res}");
    assert!(
        res["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("/graphql/ws")
    );
}

#[tokio::test]
async fn a_logged_out_session_closes_its_socket_with_4401() {
    let app = spawn_app_with(|c| c.live_session_check_seconds = 1).await;
    let admin = app.login_as("admin@northside.example").await;
    let mut s = LiveClient::connect(&app, &admin).await;
    s.subscribe("t", THREAD_UPDATED, json!({})).await;
    let out = app
        .graphql(Some(&admin), "mutation { logout }", json!({}))
        .await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    assert_eq!(s.closed(WAIT).await, 4401);
}

#[tokio::test]
async fn a_user_holds_a_bounded_number_of_sockets() {
    let app = spawn_app_with(|c| c.live_max_connections_per_user = 2).await;
    let admin = app.login_as("admin@northside.example").await;
    let _a = LiveClient::connect(&app, &admin).await;
    let _b = LiveClient::connect(&app, &admin).await;
    let mut c = LiveClient::open(&app).await;
    c.send(
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {admin}")}}),
    )
    .await;
    assert_eq!(c.closed(WAIT).await, 4429);
    // Another user is not affected.
    let _d = LiveClient::connect(&app, &app.login_as("frontdesk@northside.example").await).await;
}

#[tokio::test]
async fn a_socket_that_falls_behind_is_closed_rather_than_buffered() {
    let app = spawn_app_with(|c| c.live_buffer = 1).await;
    let admin = app.login_as("admin@northside.example").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let thread = start_thread(&app, &desk, "NS-0001", &[]).await;
    let mut s = LiveClient::connect(&app, &admin).await;
    s.subscribe("t", THREAD_UPDATED, json!({})).await;
    s.subscribe("m", MESSAGE_ADDED, json!({"t": thread})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Ten messages in one request: twenty events at its COMMIT, far more
    // than a buffer of one while the socket re-reads the first.
    let many: String = (0..10)
        .map(|i| format!("m{i}: sendMessage(threadId: $t, body: \"burst {i}\") {{ id }}"))
        .collect::<Vec<_>>()
        .join(" ");
    let res = app
        .graphql(
            Some(&desk),
            &format!("mutation($t: UUID!) {{ {many} }}"),
            json!({"t": thread}),
        )
        .await;
    assert!(res["errors"].is_null(), "{res}");
    let mut closed = None;
    for _ in 0..40 {
        match s.next(WAIT).await {
            Got::Message(_) => continue,
            Got::Closed(code) => {
                closed = Some(code);
                break;
            }
            Got::Nothing => break,
        }
    }
    assert_eq!(closed, Some(1013));
}

#[tokio::test]
async fn a_subscriber_who_may_not_read_patient_data_learns_nothing_of_the_clinics_activity() {
    let app = spawn_app().await;
    // Maria has not signed the HIPAA notice: patient data is refused her.
    let maria = app.login_as("maria.garcia@example.com").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let thread = start_thread(&app, &desk, "NS-0001", &[]).await;
    let mut live = LiveClient::connect(&app, &maria).await;
    live.subscribe("t", THREAD_UPDATED, json!({})).await;
    live.subscribe("m", MESSAGE_ADDED, json!({"t": thread}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = send(&app, &desk, &thread, "Internal note").await;
    assert!(sent["errors"].is_null(), "{sent}");
    // Not even an error frame: that would say when the clinic is busy.
    match live.next(QUIET).await {
        Got::Nothing => {}
        other => panic!("activity leaked to a subscriber without access: {other:?}"),
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_within_its_byte_budget() {
    let app = spawn_app_with(|c| c.live_buffer_bytes = 64 * 1024).await;
    let admin = app.login_as("admin@northside.example").await;
    let desk = app.login_as("frontdesk@northside.example").await;
    let thread = start_thread(&app, &desk, "NS-0001", &[]).await;
    let long = "x".repeat(9_000);
    for _ in 0..10 {
        send(&app, &desk, &thread, &long).await;
    }
    let mut s = LiveClient::connect(&app, &admin).await;
    // Each delivery carries the thread's last ten messages (~90 KB): over
    // the 64 KiB budget at once.
    s.subscribe(
        "t",
        "subscription { threadUpdated { messages(first: 10) { edges { node { body } } } } }",
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&app, &desk, &thread, "one more").await;
    assert_eq!(s.closed(WAIT).await, 1013);
}
