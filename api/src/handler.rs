//! The GraphQL request handler: verify the token -> open the request's
//! transaction with its context (the guard) -> put the request's scope and
//! loaders on the request -> execute -> write the READ audit events ->
//! commit. Every response carries the request id.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::{BatchRequest, BatchResponse, ErrorExtensionValues, Response, ServerError};
use async_graphql_axum::{GraphQLBatchRequest, GraphQLResponse};
use axum::extract::{ConnectInfo, FromRequest, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use service::domain::TenantId;
use service::idempotency::{self, Claim, IdempotencyKey};
use service::tx::CommitError;
use tracing::Instrument;

use crate::error::ApiError;
use crate::graphql::loaders::Loaders;
use crate::graphql::prepare::Prepared;
use crate::graphql::scope::RequestScope;
use crate::guard::{self, GuardError, RequestMeta};
use crate::server::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// A super admin names the clinic to act in (an audited impersonation).
pub const IMPERSONATE_HEADER: &str = "x-caregate-impersonate";
/// A client's key for retrying a mutation safely.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Set on an answer replayed for a retried idempotency key.
pub const IDEMPOTENT_REPLAY_HEADER: &str = "idempotent-replayed";

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| ulid::Ulid::generate().to_string())
}

fn with_request_id(
    mut resp: axum::response::Response,
    request_id: &str,
) -> axum::response::Response {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

pub async fn graphql(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let headers = request.headers().clone();
    let id = request_id(&headers);
    let span = tracing::info_span!("request", request_id = %id);
    // The whole body must arrive within the limit: a client that sends it
    // a byte at a time does not hold a connection (and a worker) for long.
    let limit = Duration::from_millis(state.config.body_read_timeout_ms);
    let shape = Shape::Single;
    let batch = match tokio::time::timeout(
        limit,
        <GraphQLBatchRequest as FromRequest<AppState>>::from_request(request, &state),
    )
    .instrument(span.clone())
    .await
    {
        Ok(Ok(batch)) => batch.into_inner(),
        Ok(Err(rejection)) => {
            let rejection: async_graphql_axum::rejection::GraphQLRejection = rejection;
            let _enter = span.enter();
            tracing::info!(error = %rejection.0, "unreadable request");
            return Refusal::bad_input(format!("the request cannot be read: {}", rejection.0))
                .into_response(shape, &id);
        }
        Err(_) => {
            return Refusal {
                reason: Some("BODY_TIMEOUT"),
                ..Refusal::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "BAD_USER_INPUT",
                    "the request body did not arrive in time",
                    "rejected",
                )
            }
            .into_response(shape, &id);
        }
    };
    handle(state, addr, headers, batch, id)
        .instrument(span)
        .await
}

/// Why a request was answered without a result.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    reason: Option<&'static str>,
    message: String,
    /// The outcome label of the metrics.
    outcome: &'static str,
    /// Seconds after which a retry may succeed (`Retry-After`).
    retry_after: Option<u32>,
}

impl Refusal {
    fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        outcome: &'static str,
    ) -> Self {
        Self {
            status,
            code,
            reason: None,
            message: message.into(),
            outcome,
            retry_after: None,
        }
    }

    fn unauthenticated(message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            message,
            "unauthenticated",
        )
    }

    fn bad_input(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            message,
            "rejected",
        )
    }

    /// The database cannot be reached (or every connection is busy).
    fn unavailable() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "the database is unavailable; retry shortly",
                "unavailable",
            )
        }
    }

    /// The request's transaction did not commit: nothing it did is saved.
    fn not_committed() -> Self {
        Self {
            reason: Some("NOT_COMMITTED"),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "the request failed and nothing it did was saved",
                "error",
            )
        }
    }

    /// The connection broke during COMMIT: the request may have been saved.
    fn commit_unknown() -> Self {
        Self {
            reason: Some("COMMIT_OUTCOME_UNKNOWN"),
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "INTERNAL",
                "the request may or may not have been saved; retry with the same Idempotency-Key",
                "error",
            )
        }
    }

    /// The answer: the request's shape (one error per operation of a batch,
    /// so batching clients keep the code), the request id, `Retry-After`.
    fn into_response(self, shape: Shape, request_id: &str) -> axum::response::Response {
        let error = || {
            let mut e = ApiError::new(self.code, self.message.clone());
            e.reason = self.reason;
            let mut body = Response::from_errors(vec![e.into_server_error()]);
            stamp(&mut body, request_id);
            body
        };
        let body = match shape {
            Shape::Single => BatchResponse::Single(error()),
            Shape::Batch(n) => BatchResponse::Batch((0..n.max(1)).map(|_| error()).collect()),
        };
        let mut resp = (self.status, GraphQLResponse::from(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        with_request_id(resp, request_id)
    }
}

/// Whether the client sent one operation or a batch (an array).
#[derive(Debug, Clone, Copy)]
enum Shape {
    Single,
    Batch(usize),
}

/// What a request is answered with.
enum Answer {
    /// The responses of its operations, committed.
    Executed(BatchResponse),
    /// The stored answer of an earlier request with the same idempotency key.
    Replayed(serde_json::Value),
}

async fn handle(
    state: AppState,
    addr: SocketAddr,
    headers: HeaderMap,
    batch: BatchRequest,
    id: String,
) -> axum::response::Response {
    let started = Instant::now();
    let operation = operation_name(&batch);
    let shape = match &batch {
        BatchRequest::Single(_) => Shape::Single,
        BatchRequest::Batch(items) => Shape::Batch(items.len()),
    };
    match run(&state, addr, &headers, batch, &id).await {
        Ok(Answer::Executed(response)) => {
            let outcome = if response.is_ok() { "ok" } else { "error" };
            state
                .metrics
                .observe(&operation, outcome, started.elapsed());
            with_request_id(GraphQLResponse::from(response).into_response(), &id)
        }
        Ok(Answer::Replayed(body)) => {
            state
                .metrics
                .observe(&operation, "replayed", started.elapsed());
            let mut resp = axum::Json(body).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/graphql-response+json"),
            );
            resp.headers_mut()
                .insert(IDEMPOTENT_REPLAY_HEADER, HeaderValue::from_static("true"));
            with_request_id(resp, &id)
        }
        Err(r) => {
            state
                .metrics
                .observe(&operation, r.outcome, started.elapsed());
            r.into_response(shape, &id)
        }
    }
}

/// The request, from token to commit.
///
/// A request — one operation or a batch — is one transaction. Each mutation
/// runs in a savepoint, so a mutation refused by a rule leaves nothing
/// behind while the other operations stand. If the transaction itself fails
/// (an error outside a savepoint, a statement timeout, a lost connection),
/// no operation's result is returned: the whole request answers
/// INTERNAL / NOT_COMMITTED, and nothing of it was saved.
async fn run(
    state: &AppState,
    addr: SocketAddr,
    headers: &HeaderMap,
    batch: BatchRequest,
    id: &str,
) -> Result<Answer, Refusal> {
    let size = match &batch {
        BatchRequest::Single(_) => 1,
        BatchRequest::Batch(items) => items.len(),
    };
    if size == 0 || size > state.config.max_batch_size {
        return Err(Refusal::bad_input(format!(
            "a batch holds 1 to {} operations",
            state.config.max_batch_size
        )));
    }
    let idempotency_key = match headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| "must be visible ASCII characters")
                .and_then(IdempotencyKey::parse)
                .map_err(|why| Refusal::bad_input(format!("Idempotency-Key {why}")))?,
        ),
    };

    let claims = match bearer(headers) {
        Bearer::None => None,
        Bearer::Token(token) => Some(state.tokens.verify(token).map_err(|err| {
            tracing::info!(error = %err, "token refused");
            Refusal::unauthenticated("invalid or expired token")
        })?),
        Bearer::Malformed => {
            return Err(Refusal::unauthenticated(
                "the Authorization header must be `Bearer <token>`",
            ));
        }
    };
    let impersonate = match headers.get(IMPERSONATE_HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<uuid::Uuid>().ok())
                .map(TenantId::from)
                .ok_or_else(|| {
                    Refusal::bad_input("the impersonation header must be a clinic id")
                })?,
        ),
    };
    let meta = RequestMeta {
        request_id: id.to_owned(),
        ip: Some(crate::client::address(
            addr,
            headers,
            &state.trusted_proxies,
        )),
        user_agent: headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
        impersonate,
    };

    // Parsing and checking need no connection: a bad document never holds one.
    let (batch, prepared) = prepare(state, batch);
    let is_mutation = prepared
        .iter()
        .any(|p| p.as_ref().is_ok_and(|p| p.is_mutation));
    // Who the request acts as is set once; an operation that changes it
    // runs alone, so nothing else of the request is done or audited under
    // the wrong context.
    let alone = prepared.len() == 1 && prepared.iter().flatten().all(|p| p.root_fields == 1);
    if !alone && prepared.iter().flatten().any(|p| p.changes_context) {
        return Err(Refusal::bad_input(
            "login, switchOrganization and logout must each be the only operation of their request",
        ));
    }

    let (tx, viewer) = guard::open(
        &state.db,
        &state.statements,
        claims.as_ref(),
        &meta,
        state.config.session_idle_minutes,
    )
    .await
    .map_err(|err| match err {
        GuardError::Unauthenticated(why) => {
            tracing::info!(reason = why, "session refused");
            Refusal::unauthenticated("invalid or expired session")
        }
        GuardError::Database(err) => {
            tracing::error!(error = format!("{err:#}"), "opening the request failed");
            Refusal::unavailable()
        }
    })?;

    // A key matters for requests that change something, by a signed-in user.
    let idempotency_key = idempotency_key.filter(|_| is_mutation && viewer.actor.is_some());
    if let Some(key) = &idempotency_key {
        let ttl = chrono::Duration::hours(i64::from(state.config.idempotency_ttl_hours));
        match idempotency::claim(&tx, key, &request_hash(&prepared), ttl).await {
            Ok(Claim::New) => {}
            Ok(Claim::Replay(body)) => return Ok(Answer::Replayed(body)),
            Ok(Claim::Mismatch) => {
                return Err(Refusal {
                    reason: Some("IDEMPOTENCY_KEY_REUSED"),
                    ..Refusal::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "CONFLICT",
                        "this Idempotency-Key was used for a different request",
                        "rejected",
                    )
                });
            }
            Err(err) => {
                tracing::error!(error = %err, "claiming an idempotency key");
                return Err(Refusal::not_committed());
            }
        }
    }

    let scope = Arc::new(RequestScope::new(tx.clone(), viewer, meta, state.clone()));
    let loaders = Arc::new(Loaders::new(&tx, scope.viewer.actor.as_ref()));
    let mut responses = Vec::with_capacity(prepared.len());
    for p in prepared {
        let response = match p {
            Ok(p) => {
                let mut p = p;
                p.request = p.request.data(scope.clone()).data(loaders.clone());
                state.preparation.execute(&state.schema, p).await
            }
            Err(err) => Response::from_errors(vec![err]),
        };
        responses.push(response);
    }
    let mut response = match batch {
        Shape::Single => BatchResponse::Single(responses.pop().unwrap_or_default()),
        Shape::Batch(_) => BatchResponse::Batch(responses),
    };
    drop(loaders);
    finalize(&mut response, id);

    let reads = scope.take_reads();
    drop(scope);
    if tx.is_aborted() {
        tracing::error!("the request's transaction was aborted; rolling back");
        return Err(Refusal::not_committed());
    }
    if let Err(err) = service::audit::record_reads(&tx, &reads).await {
        tracing::error!(error = %err, "recording READ audit events");
        return Err(Refusal::not_committed());
    }
    if let Some(key) = &idempotency_key {
        let stored = serde_json::to_value(&response).map_err(|err| {
            tracing::error!(error = %err, "serializing an idempotent response");
            Refusal::not_committed()
        })?;
        if let Err(err) = idempotency::store(&tx, key, stored).await {
            tracing::error!(error = %err, "storing an idempotent response");
            return Err(Refusal::not_committed());
        }
    }
    match guard::commit(tx).await {
        Ok(()) => Ok(Answer::Executed(response)),
        Err(CommitError::Unknown(err)) => {
            tracing::error!(error = %err, "COMMIT's outcome is unknown");
            Err(Refusal::commit_unknown())
        }
        Err(err) => {
            tracing::error!(error = %err, "the request did not commit");
            Err(Refusal::not_committed())
        }
    }
}

/// Prepares every operation (persisted query, nesting, parse, limits, input
/// values); an operation that cannot run answers its own error.
fn prepare(state: &AppState, batch: BatchRequest) -> (Shape, Vec<Result<Prepared, ServerError>>) {
    match batch {
        BatchRequest::Single(request) => (Shape::Single, vec![state.preparation.prepare(request)]),
        BatchRequest::Batch(requests) => (
            Shape::Batch(requests.len()),
            requests
                .into_iter()
                .map(|r| state.preparation.prepare(r))
                .collect(),
        ),
    }
}

/// sha256 of what a request asks for (each operation's resolved text, name
/// and variables): an idempotency key is bound to it.
fn request_hash(prepared: &[Result<Prepared, ServerError>]) -> String {
    let parts: Vec<serde_json::Value> = prepared
        .iter()
        .map(|p| match p {
            Ok(p) => serde_json::json!([
                p.request.query,
                p.request.operation_name,
                p.request.variables
            ]),
            Err(err) => serde_json::json!({ "refused": err.message }),
        })
        .collect();
    crate::graphql::persisted::sha256_hex(&serde_json::Value::Array(parts).to_string())
}

/// Stamps every response of a batch.
fn finalize(response: &mut BatchResponse, id: &str) {
    match response {
        BatchResponse::Single(r) => stamp(r, id),
        BatchResponse::Batch(rs) => rs.iter_mut().for_each(|r| stamp(r, id)),
    }
}

/// The one place a response's errors get their code (the library's parse,
/// validation and limit errors come without one: they are BAD_USER_INPUT)
/// and every error and the response the request id.
fn stamp(r: &mut Response, id: &str) {
    for err in &mut r.errors {
        let ext = err
            .extensions
            .get_or_insert_with(ErrorExtensionValues::default);
        if ext.get("code").is_none() {
            ext.set("code", "BAD_USER_INPUT");
            if let Some(field) = field_of(&err.message) {
                ext.set("field", field);
            }
        }
        ext.set("requestId", id);
    }
    r.extensions.insert(
        "requestId".to_owned(),
        async_graphql::Value::String(id.to_owned()),
    );
}

/// The argument or variable a library validation message names, e.g.
/// `Invalid value for argument "id", ...` or `Variable "$p" ...`.
fn field_of(message: &str) -> Option<String> {
    for marker in ["argument \"", "Argument \"", "variable \"$", "Variable \"$"] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            if !name.is_empty() {
                return Some(name);
            }
        }
    }
    None
}

fn operation_name(batch: &BatchRequest) -> String {
    match batch {
        BatchRequest::Single(r) => r.operation_name.clone().unwrap_or_default(),
        BatchRequest::Batch(rs) => rs
            .first()
            .and_then(|r| r.operation_name.clone())
            .map(|n| format!("batch:{n}"))
            .unwrap_or_else(|| "batch".to_owned()),
    }
}

enum Bearer<'a> {
    None,
    Token(&'a str),
    Malformed,
}

fn bearer(headers: &HeaderMap) -> Bearer<'_> {
    match headers.get(axum::http::header::AUTHORIZATION) {
        None => Bearer::None,
        Some(v) => match v.to_str().ok().and_then(|s| s.strip_prefix("Bearer ")) {
            Some(token) if !token.trim().is_empty() => Bearer::Token(token.trim()),
            _ => Bearer::Malformed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn library_messages_name_their_field() {
        assert_eq!(
            field_of(r#"Invalid value for argument "id", expected type "UUID""#).as_deref(),
            Some("id")
        );
        assert_eq!(
            field_of(r#"Variable "$p" got invalid value "x"; expected type "UUID""#).as_deref(),
            Some("p")
        );
        assert_eq!(field_of("Query is nested too deep."), None);
    }
}
