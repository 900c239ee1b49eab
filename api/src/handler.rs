//! The GraphQL request handler: verify the token -> open the request's
//! transaction with its context (the guard) -> put the request's scope and
//! loaders on the request -> execute -> write the READ audit events ->
//! commit. Every response carries the request id.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use async_graphql::{BatchRequest, BatchResponse, ErrorExtensionValues, Response};
use async_graphql_axum::{GraphQLBatchRequest, GraphQLResponse};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use service::domain::TenantId;
use tracing::Instrument;

use crate::error::ApiError;
use crate::graphql::loaders::Loaders;
use crate::graphql::scope::RequestScope;
use crate::guard::{self, GuardError, RequestMeta};
use crate::server::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// A super admin names the clinic to act in (an audited impersonation).
pub const IMPERSONATE_HEADER: &str = "x-caregate-impersonate";

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

/// A response made of one error, for requests refused before execution.
fn refusal(
    status: StatusCode,
    code: &'static str,
    message: &str,
    request_id: &str,
) -> axum::response::Response {
    let mut body = Response::from_errors(vec![ApiError::new(code, message).into_server_error()]);
    stamp(&mut body, request_id);
    with_request_id(
        (status, GraphQLResponse::from(body)).into_response(),
        request_id,
    )
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
    headers: HeaderMap,
    request: GraphQLBatchRequest,
) -> axum::response::Response {
    let id = request_id(&headers);
    let span = tracing::info_span!("request", request_id = %id);
    handle(state, addr, headers, request.into_inner(), id)
        .instrument(span)
        .await
}

/// Why a request was answered without running it.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// The outcome label of the metrics.
    outcome: &'static str,
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
            message: message.into(),
            outcome,
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

    fn internal(status: StatusCode) -> Self {
        Self::new(status, "INTERNAL", "internal error", "error")
    }
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
    match run(&state, addr, &headers, batch, &id).await {
        Ok(mut response) => {
            let ok = finalize(&mut response, &id);
            let outcome = if ok { "ok" } else { "error" };
            state
                .metrics
                .observe(&operation, outcome, started.elapsed());
            with_request_id(GraphQLResponse::from(response).into_response(), &id)
        }
        Err(r) => {
            state
                .metrics
                .observe(&operation, r.outcome, started.elapsed());
            refusal(r.status, r.code, &r.message, &id)
        }
    }
}

/// The request, from token to commit.
async fn run(
    state: &AppState,
    addr: SocketAddr,
    headers: &HeaderMap,
    batch: BatchRequest,
    id: &str,
) -> Result<BatchResponse, Refusal> {
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
        ip: Some(addr.ip()),
        user_agent: headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
        impersonate,
    };

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
            Refusal::internal(StatusCode::SERVICE_UNAVAILABLE)
        }
    })?;

    let scope = Arc::new(RequestScope::new(tx.clone(), viewer, meta, state.clone()));
    let loaders = Arc::new(Loaders::new(&tx, scope.viewer.actor.as_ref()));
    let batch = batch.data(scope.clone()).data(loaders.clone());
    let response = match batch {
        BatchRequest::Single(request) => BatchResponse::Single(execute(state, request).await),
        BatchRequest::Batch(requests) => {
            let mut responses = Vec::with_capacity(requests.len());
            for request in requests {
                responses.push(execute(state, request).await);
            }
            BatchResponse::Batch(responses)
        }
    };
    drop(loaders);

    let reads = scope.take_reads();
    drop(scope);
    if !reads.is_empty()
        && let Err(err) = service::audit::record_reads(&tx, &reads).await
    {
        tracing::error!(error = %err, "recording READ audit events");
        return Err(Refusal::internal(StatusCode::INTERNAL_SERVER_ERROR));
    }
    if let Err(err) = guard::commit(tx).await {
        tracing::error!(error = format!("{err:#}"), "commit failed");
        return Err(Refusal::internal(StatusCode::INTERNAL_SERVER_ERROR));
    }
    Ok(response)
}

/// Prepares (persisted query, parse, limits) and runs one operation.
async fn execute(state: &AppState, request: async_graphql::Request) -> Response {
    match state.preparation.prepare(request) {
        Ok(request) => state.schema.execute(request).await,
        Err(err) => Response::from_errors(vec![err]),
    }
}

/// Stamps every response of a batch; returns whether all are free of errors.
fn finalize(response: &mut BatchResponse, id: &str) -> bool {
    let responses: Vec<&mut Response> = match response {
        BatchResponse::Single(r) => vec![r],
        BatchResponse::Batch(rs) => rs.iter_mut().collect(),
    };
    let mut ok = true;
    for r in responses {
        ok &= r.errors.is_empty();
        stamp(r, id);
    }
    ok
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
