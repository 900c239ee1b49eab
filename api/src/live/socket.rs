//! One live-update socket: the `graphql-transport-ws` protocol (the one the
//! `graphql-ws` client speaks for Apollo, urql, Relay and GraphiQL).
//!
//! ```text
//! client                         server
//! connection_init {token}  ->    verify the token, check the session
//!                          <-    connection_ack        (or close 4403)
//! subscribe {id, query}    ->    prepare and validate once
//!        ... an event ...        BEGIN with the subscriber's context,
//!                                run the subscription, READ audit, COMMIT
//!                          <-    next {id, payload}    (only if visible)
//! complete {id}            ->    stop it
//! ```
//!
//! Closes: 4400 a message that is not of the protocol, 4401 a subscribe
//! before the ack or a session that ended (revoked, idle, expired), 4403 a
//! refused `connection_init` or a user no longer in the clinic, 4408 no
//! `connection_init` in time, 4409 a subscription id already in use, 4429
//! a second `connection_init` or too many sockets of the user, 1013 a
//! consumer too slow to keep up, 1001 the server shutting down.
//!
//! Written here rather than with async-graphql's own WebSocket handler
//! because that one runs each subscription once for the socket's whole
//! life with the data of the connection, where each event here needs a
//! transaction of its own with the subscriber's context, and because it
//! bounds neither the subscriptions of a socket nor the time to
//! `connection_init`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, Response, ServerError, Variables};
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use service::context::{ContextError, RequestMeta, SessionOf};
use tokio::sync::{broadcast, mpsc};

use super::events::{Event, EventKind};
use crate::error::ErrorCode;
use crate::graphql::loaders::Loaders;
use crate::graphql::scope::RequestScope;
use crate::graphql::subscription::kinds_of;
use crate::guard;
use crate::state::AppState;
use crate::tokens::Claims;

/// The subprotocol spoken.
pub const PROTOCOL: &str = "graphql-transport-ws";
/// How long one delivery (its transaction and its subscriptions) may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most events one delivery transaction takes.
const MAX_BATCH: usize = 32;
/// Largest message a client may send (a subscribe with its query).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// `GET /graphql/ws`: upgrades to a socket when the server has room for
/// one (else HTTP 503).
pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    let Some(permit) = state.live.admit() else {
        tracing::warn!("live socket refused: LIVE_MAX_CONNECTIONS reached");
        return (StatusCode::SERVICE_UNAVAILABLE, "too many live sockets").into_response();
    };
    let ip = crate::client::address(addr, &headers, &state.trusted_proxies);
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect::<String>());
    ws.protocols([PROTOCOL])
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        // Small buffers: an idle socket should cost little.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        // One frame at a time, as large as the socket's byte budget.
        .max_write_buffer_size(state.config.live_buffer_bytes.max(64 * 1024))
        .on_upgrade(move |socket| async move {
            let spoken = socket.protocol().is_some_and(|p| p == PROTOCOL);
            let conn = Connection {
                state,
                meta: RequestMeta {
                    request_id: ulid::Ulid::generate().to_string(),
                    ip: Some(ip),
                    user_agent,
                    impersonate: None,
                },
            };
            conn.run(socket, spoken).await;
            drop(permit);
        })
}

/// A message from the client.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Ping {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<Value>,
    },
    Pong {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<Value>,
    },
    Subscribe {
        id: String,
        payload: SubscribePayload,
    },
    Complete {
        id: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscribePayload {
    query: Option<String>,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<Value>,
    #[serde(default)]
    extensions: Option<serde_json::Map<String, Value>>,
}

/// Why a socket closes.
struct Close(u16, &'static str);

fn close_frame(Close(code, reason): Close) -> Frame {
    Frame::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

fn text(value: Value) -> Frame {
    Frame::Text(value.to_string().into())
}

/// A subscription of the socket, ready to run for each event.
struct Sub {
    kind: EventKind,
    query: String,
    operation_name: Option<String>,
    variables: Variables,
    document: ExecutableDocument,
}

impl Sub {
    fn request(&self) -> Request {
        let mut r = Request::new(self.query.clone()).variables(self.variables.clone());
        if let Some(name) = &self.operation_name {
            r = r.operation_name(name.clone());
        }
        r.set_parsed_query(self.document.clone());
        r
    }
}

struct Connection {
    state: AppState,
    meta: RequestMeta,
}

/// Who the socket acts for, once `connection_init` was accepted.
struct Subscriber {
    who: SessionOf,
    claims: Claims,
}

impl Connection {
    async fn run(self, socket: WebSocket, spoken: bool) {
        let (sink, mut source) = socket.split();
        let (sender, outbox) = mpsc::channel::<Frame>(self.state.config.live_buffer);
        let out = Outbox {
            sender,
            bytes: Arc::new(AtomicUsize::new(0)),
            limit: self.state.config.live_buffer_bytes,
        };
        let writer = tokio::spawn(write_all(sink, outbox, out.bytes.clone()));
        let close = if spoken {
            self.serve(&mut source, &out).await
        } else {
            Close(4406, "Subprotocol not acceptable")
        };
        tracing::debug!(code = close.0, reason = close.1, "live socket closing");
        // A client that stopped reading gets no close frame: the writer
        // gives up on it (the connection's write timeout) and it is dropped.
        let _ = out.sender.try_send(close_frame(close));
        drop(out);
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    }

    /// The protocol, from `connection_init` to the close.
    async fn serve(
        &self,
        source: &mut futures::stream::SplitStream<WebSocket>,
        out: &Outbox,
    ) -> Close {
        let config = &self.state.config;
        let mut stopping = self.state.live.stopping();
        // connection_init within the limit (pings allowed meanwhile).
        let init =
            tokio::time::timeout(Duration::from_millis(config.live_init_timeout_ms), async {
                loop {
                    match read(source).await {
                        Read::Message(ClientMessage::ConnectionInit { payload }) => {
                            return Ok(payload);
                        }
                        Read::Message(ClientMessage::Ping { .. }) => {
                            if send(out, text(json!({"type": "pong"}))).is_err() {
                                return Err(Close(1013, "slow consumer"));
                            }
                        }
                        Read::Message(ClientMessage::Pong { .. }) => {}
                        Read::Message(ClientMessage::Subscribe { .. }) => {
                            return Err(Close(4401, "Unauthorized"));
                        }
                        Read::Message(ClientMessage::Complete { .. }) => {}
                        Read::Invalid => return Err(Close(4400, "Invalid message")),
                        Read::Closed => return Err(Close(1000, "closed")),
                    }
                }
            });
        let payload = tokio::select! {
            r = init => match r {
                Ok(Ok(payload)) => payload,
                Ok(Err(close)) => return close,
                Err(_) => return Close(4408, "Connection initialisation timeout"),
            },
            () = crate::live::stopped(&mut stopping) => return Close(1001, "server shutting down"),
        };
        let subscriber = match self.accept(payload.as_ref()).await {
            Ok(s) => s,
            Err(close) => return close,
        };
        let Some(_slot) = self.state.live.admit_user(subscriber.who.user.into_uuid()) else {
            return Close(4429, "Too many sockets for this user");
        };
        if send(out, text(json!({"type": "connection_ack"}))).is_err() {
            return Close(1013, "slow consumer");
        }
        let mut events = self.state.live.hub.subscribe();
        let mut subs: HashMap<String, Sub> = HashMap::new();
        let mut check =
            tokio::time::interval(Duration::from_secs(config.live_session_check_seconds));
        check.tick().await;
        let expires = std::time::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(subscriber.claims.exp).unwrap_or(0));
        let until_expiry = expires
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let expiry = tokio::time::sleep(until_expiry);
        tokio::pin!(expiry);
        loop {
            tokio::select! {
                read_result = read(source) => match read_result {
                    Read::Message(m) => {
                        let clinic = subscriber.claims.org;
                        if let Err(close) = self.on_message(m, clinic, &mut subs, out).await {
                            return close;
                        }
                    }
                    Read::Invalid => return Close(4400, "Invalid message"),
                    Read::Closed => return Close(1000, "closed"),
                },
                event = events.recv() => match event {
                    Ok(event) => {
                        // Events that arrived meanwhile go in the same
                        // transaction: under load a socket catches up in
                        // batches instead of falling further behind.
                        let mut batch = vec![event];
                        while batch.len() < MAX_BATCH {
                            match events.try_recv() {
                                Ok(e) => batch.push(e),
                                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                    tracing::warn!(missed = n, "live socket fell behind; closing");
                                    return Close(1013, "slow consumer");
                                }
                                Err(_) => break,
                            }
                        }
                        if let Err(close) = self.deliver(&subscriber, &batch, &subs, out).await {
                            return close;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "live socket fell behind; closing");
                        return Close(1013, "slow consumer");
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Close(1001, "server shutting down");
                    }
                },
                _ = check.tick() => match self.check_session(&subscriber).await {
                    // The database unavailable for a moment ends no socket:
                    // the next check (or event) decides.
                    Ok(()) | Err(Close(1011, _)) => {}
                    Err(close) => return close,
                },
                () = &mut expiry => return Close(4401, "Token expired"),
                () = crate::live::stopped(&mut stopping) => return Close(1001, "server shutting down"),
            }
        }
    }

    /// Verifies the token of `connection_init` and the session it names.
    async fn accept(&self, payload: Option<&Value>) -> Result<Subscriber, Close> {
        let token = payload.and_then(token_of).ok_or(Close(4403, "Forbidden"))?;
        let claims = self.state.tokens.verify(token).map_err(|err| {
            tracing::info!(error = %err, "live socket: token refused");
            Close(4403, "Forbidden")
        })?;
        let subscriber = Subscriber {
            who: SessionOf {
                user: claims.sub.into(),
                tenant: claims.org.into(),
                session: claims.sid.into(),
                impersonate: false,
            },
            claims,
        };
        match self.check_session(&subscriber).await {
            Ok(()) => Ok(subscriber),
            Err(Close(1011, r)) => Err(Close(1011, r)),
            Err(_) => Err(Close(4403, "Forbidden")),
        }
    }

    /// Whether the session still holds, without counting as its activity.
    async fn check_session(&self, s: &Subscriber) -> Result<(), Close> {
        match guard::open_quiet(
            &self.state.db,
            &self.state.tx_options,
            &self.state.statements,
            s.who,
            &self.meta,
            self.state.config.session_idle_minutes,
        )
        .await
        {
            Ok((tx, _)) => {
                // Read nothing, wrote nothing: dropping it rolls back.
                drop(tx);
                Ok(())
            }
            Err(err) => Err(refusal(err)),
        }
    }

    /// A client message after the ack.
    async fn on_message(
        &self,
        message: ClientMessage,
        clinic: uuid::Uuid,
        subs: &mut HashMap<String, Sub>,
        out: &Outbox,
    ) -> Result<(), Close> {
        match message {
            ClientMessage::ConnectionInit { .. } => {
                Err(Close(4429, "Too many initialisation requests"))
            }
            ClientMessage::Ping { .. } => send(out, text(json!({"type": "pong"}))),
            ClientMessage::Pong { .. } => Ok(()),
            ClientMessage::Complete { id } => {
                subs.remove(&id);
                Ok(())
            }
            ClientMessage::Subscribe { id, payload } => {
                if subs.contains_key(&id) {
                    return Err(Close(4409, "Subscriber already exists"));
                }
                if id.is_empty() || id.len() > 128 {
                    return Err(Close(4400, "Invalid message"));
                }
                if subs.len() >= self.state.config.live_max_subscriptions {
                    let err = error_of(
                        ErrorCode::RateLimited,
                        "too many subscriptions on this socket (LIVE_MAX_SUBSCRIPTIONS)",
                    );
                    return send(
                        out,
                        text(json!({"type": "error", "id": id, "payload": [err]})),
                    );
                }
                // A subscription counts as one request of the clinic's
                // budget; its deliveries do not (the writes they announce
                // were counted where they were made).
                if let Err(refused) = self.state.budgets.admit(clinic, false) {
                    let mut err = server_error_json(&refused.error().into_server_error());
                    err["extensions"]["retryAfter"] = json!(refused.retry_after);
                    return send(
                        out,
                        text(json!({"type": "error", "id": id, "payload": [err]})),
                    );
                }
                match self.prepare(payload).await {
                    Ok(sub) => {
                        subs.insert(id, sub);
                        Ok(())
                    }
                    Err(errors) => {
                        let payload: Vec<Value> = errors.iter().map(server_error_json).collect();
                        send(
                            out,
                            text(json!({"type": "error", "id": id, "payload": payload})),
                        )
                    }
                }
            }
        }
    }

    /// Checks a subscription once: the limits and checks of every request,
    /// one root field that is a subscription, and the schema's validation
    /// (a run without an event yields nothing, or the errors).
    async fn prepare(&self, payload: SubscribePayload) -> Result<Sub, Vec<ServerError>> {
        let bad = |m: &str| {
            let mut e = ServerError::new(m, None);
            let mut ext = async_graphql::ErrorExtensionValues::default();
            ext.set("code", ErrorCode::BadUserInput.as_str());
            e.extensions = Some(ext);
            vec![e]
        };
        let variables = match payload.variables {
            None | Some(Value::Null) => Variables::default(),
            Some(v @ Value::Object(_)) => Variables::from_json(v),
            Some(_) => return Err(bad("variables must be an object")),
        };
        let mut request =
            Request::new(payload.query.unwrap_or_default()).variables(variables.clone());
        if let Some(name) = &payload.operation_name {
            request = request.operation_name(name.clone());
        }
        if let Some(ext) = payload.extensions {
            for (k, v) in ext {
                if let Ok(v) = async_graphql::Value::from_json(v) {
                    request.extensions.insert(k, v);
                }
            }
        }
        let mut prepared = self
            .state
            .preparation
            .prepare(request)
            .map_err(|e| vec![e])?;
        if !prepared.is_subscription {
            return Err(bad(
                "only subscriptions are served here; send queries and mutations to /graphql",
            ));
        }
        let kind = match prepared.roots.as_slice() {
            [one] => kinds_of(one),
            _ => None,
        };
        let document = prepared
            .request
            .parsed_query()
            .map_err(|e| vec![e])?
            .clone();
        let mut sub = Sub {
            kind: EventKind::Thread,
            query: prepared.request.query.clone(),
            operation_name: prepared.request.operation_name.clone(),
            variables,
            document,
        };
        // The schema's validation (fields, arguments, variables, depth and
        // complexity): without an event every field yields nothing, so a
        // valid subscription answers nothing here.
        let mut probe = self.state.schema.execute_stream(sub.request());
        if let Ok(Some(response)) = tokio::time::timeout(DELIVERY_TIMEOUT, probe.next()).await
            && !response.errors.is_empty()
        {
            return Err(response.errors);
        }
        sub.kind = kind.ok_or_else(|| bad("a subscription has exactly one root field"))?;
        Ok(sub)
    }

    /// Runs the subscriptions an event may concern, in one transaction with
    /// the subscriber's context, and sends what they yield once it
    /// committed (with their READ audit).
    async fn deliver(
        &self,
        s: &Subscriber,
        batch: &[Arc<Event>],
        subs: &HashMap<String, Sub>,
        out: &Outbox,
    ) -> Result<(), Close> {
        let tenant = s.who.tenant.into_uuid();
        let wanted: Vec<(&Arc<Event>, &String, &Sub)> = batch
            .iter()
            .filter(|e| e.organization == tenant)
            .flat_map(|e| {
                subs.iter()
                    .filter(|(_, sub)| sub.kind == e.kind)
                    .map(move |(id, sub)| (e, id, sub))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let meta = RequestMeta {
            request_id: ulid::Ulid::generate().to_string(),
            ..self.meta.clone()
        };
        let delivery = async {
            let clinic = self.state.live.clinic_turns(s.who.tenant.into_uuid());
            let (Ok(_clinic_turn), Ok(_turn)) = (
                clinic.acquire().await,
                self.state.live.deliveries.acquire().await,
            ) else {
                return Err(Close(1001, "server shutting down"));
            };
            let (tx, viewer) = guard::open_quiet(
                &self.state.db,
                &self.state.tx_options,
                &self.state.statements,
                s.who,
                &meta,
                self.state.config.session_idle_minutes,
            )
            .await
            .map_err(refusal)?;
            let scope = Arc::new(RequestScope::new(tx.clone(), viewer, meta.clone()));
            let loaders = Arc::new(Loaders::new(&tx, scope.viewer.actor.as_ref()));
            let mut answers: Vec<(String, Response)> = Vec::new();
            for (event, id, sub) in wanted {
                let request = sub
                    .request()
                    .data(scope.clone())
                    .data(loaders.clone())
                    .data(event.clone());
                let mut stream = self.state.schema.execute_stream(request);
                match loaders.drive(stream.next()).await {
                    // An error says that something happened, which a
                    // subscriber who may not read it must not learn (one
                    // with the HIPAA notice unsigned, say): only a row
                    // re-read without error is sent; the log has the rest.
                    Some(response) if !response.errors.is_empty() => {
                        let codes: Vec<String> = response
                            .errors
                            .iter()
                            .map(|e| {
                                format!("{:?}", e.extensions.as_ref().and_then(|x| x.get("code")))
                            })
                            .collect();
                        tracing::info!(?codes, "a live delivery failed; nothing sent");
                    }
                    Some(mut response) => {
                        crate::handler::stamp(&mut response, &meta.request_id);
                        answers.push((id.clone(), response));
                    }
                    None => {}
                }
            }
            drop(loaders);
            let reads = scope.take_reads();
            let break_glass = scope.break_glass();
            drop(scope);
            if answers.is_empty() {
                return Ok(Vec::new());
            }
            if tx.is_aborted() {
                tracing::error!("a live delivery's transaction was aborted; nothing sent");
                return Ok(Vec::new());
            }
            if let Err(err) = service::audit::record_reads(&tx, &reads, &break_glass).await {
                tracing::error!(error = %err, "recording a live delivery's READ events");
                return Ok(Vec::new());
            }
            match guard::commit(tx).await {
                Ok(()) => Ok(answers),
                Err(err) => {
                    tracing::error!(error = %err, "a live delivery did not commit; nothing sent");
                    Ok(Vec::new())
                }
            }
        };
        let answers = match tokio::time::timeout(DELIVERY_TIMEOUT, delivery).await {
            Ok(Ok(answers)) => answers,
            Ok(Err(Close(1011, _))) => {
                // The database is unavailable: this event is skipped, the
                // socket stays (the next check decides).
                return Ok(());
            }
            Ok(Err(close)) => return Err(close),
            Err(_) => {
                tracing::warn!("a live delivery timed out; event skipped");
                return Ok(());
            }
        };
        for (id, response) in answers {
            let payload = serde_json::to_value(&response).unwrap_or_else(|_| json!({}));
            send(
                out,
                text(json!({"type": "next", "id": id, "payload": payload})),
            )?;
        }
        Ok(())
    }
}

/// What a refused context means for the socket.
fn refusal(err: ContextError) -> Close {
    match err {
        ContextError::Refused(why) => {
            tracing::info!(reason = why, "live socket: session refused");
            if why == "NOT_A_MEMBER" || why == "USER_DISABLED" {
                Close(4403, "Forbidden")
            } else {
                Close(4401, "Unauthorized")
            }
        }
        ContextError::Database(err) => {
            tracing::warn!(
                error = format!("{err:#}"),
                "live socket: the database is unavailable"
            );
            Close(1011, "database unavailable")
        }
    }
}

/// The token of a `connection_init` payload: `{"authorization": "Bearer
/// <token>"}` (any case of the key, as HTTP headers are often copied in),
/// or `{"token": "<token>"}`.
fn token_of(payload: &Value) -> Option<&str> {
    let map = payload.as_object()?;
    for (key, value) in map {
        let Some(v) = value.as_str() else { continue };
        if key.eq_ignore_ascii_case("authorization") {
            return v
                .strip_prefix("Bearer ")
                .map(str::trim)
                .filter(|t| !t.is_empty());
        }
        if key == "token" && !v.trim().is_empty() {
            return Some(v.trim());
        }
    }
    None
}

enum Read {
    Message(ClientMessage),
    Invalid,
    Closed,
}

/// The next protocol message (pings and pongs of WebSocket itself are
/// answered by the library).
async fn read(source: &mut futures::stream::SplitStream<WebSocket>) -> Read {
    loop {
        match source.next().await {
            None | Some(Err(_)) => return Read::Closed,
            Some(Ok(Frame::Close(_))) => return Read::Closed,
            Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => {}
            Some(Ok(Frame::Text(t))) => {
                return match serde_json::from_str::<ClientMessage>(t.as_str()) {
                    Ok(m) => Read::Message(m),
                    Err(_) => Read::Invalid,
                };
            }
            Some(Ok(Frame::Binary(_))) => return Read::Invalid,
        }
    }
}

/// The messages waiting to be written to one socket, bounded in number
/// (`LIVE_BUFFER`) and in bytes (`LIVE_BUFFER_BYTES`).
struct Outbox {
    sender: mpsc::Sender<Frame>,
    /// Bytes queued and not yet written.
    bytes: Arc<AtomicUsize>,
    limit: usize,
}

fn frame_len(frame: &Frame) -> usize {
    match frame {
        Frame::Text(t) => t.len(),
        Frame::Binary(b) | Frame::Ping(b) | Frame::Pong(b) => b.len(),
        Frame::Close(_) => 0,
    }
}

/// Queues a message; a full queue (in messages or bytes) means the client
/// does not keep up.
fn send(out: &Outbox, frame: Frame) -> Result<(), Close> {
    let len = frame_len(&frame);
    let slow = || {
        tracing::warn!("live socket: the client does not read fast enough; closing");
        Close(1013, "slow consumer")
    };
    if out.bytes.fetch_add(len, Ordering::AcqRel) + len > out.limit {
        out.bytes.fetch_sub(len, Ordering::AcqRel);
        return Err(slow());
    }
    out.sender.try_send(frame).map_err(|_| {
        out.bytes.fetch_sub(len, Ordering::AcqRel);
        slow()
    })
}

/// Writes queued messages until the queue ends or a close was written (a
/// write that fails ends it: the client is gone or stalled).
async fn write_all(
    mut sink: futures::stream::SplitSink<WebSocket, Frame>,
    mut outbox: mpsc::Receiver<Frame>,
    bytes: Arc<AtomicUsize>,
) {
    while let Some(frame) = outbox.recv().await {
        let closing = matches!(frame, Frame::Close(_));
        let len = frame_len(&frame);
        let sent = sink.send(frame).await;
        bytes.fetch_sub(len, Ordering::AcqRel);
        if sent.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

fn error_of(code: ErrorCode, message: &str) -> Value {
    json!({"message": message, "extensions": {"code": code.as_str()}})
}

fn server_error_json(e: &ServerError) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or_else(|_| json!({"message": "invalid"}));
    if v.pointer("/extensions/code").is_none() {
        v["extensions"]["code"] = json!(ErrorCode::BadUserInput.as_str());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_authorization_or_token_key() {
        assert_eq!(
            token_of(&json!({"Authorization": "Bearer abc"})),
            Some("abc")
        );
        assert_eq!(token_of(&json!({"authorization": "Bearer  x "})), Some("x"));
        assert_eq!(token_of(&json!({"token": "t"})), Some("t"));
        assert_eq!(token_of(&json!({"authorization": "Basic abc"})), None);
        assert_eq!(token_of(&json!({"authorization": "Bearer "})), None);
        assert_eq!(token_of(&json!("Bearer abc")), None);
        assert_eq!(token_of(&json!({})), None);
    }

    #[test]
    fn protocol_messages_parse_and_unknown_ones_do_not() {
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"connection_init"}"#).is_ok());
        assert!(
            serde_json::from_str::<ClientMessage>(
                r#"{"type":"subscribe","id":"1","payload":{"query":"subscription { threadUpdated { id } }"}}"#
            )
            .is_ok()
        );
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"start","id":"1"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"id":"1"}"#).is_err());
    }
}
