//! The GraphQL request handler: read the request (`wire`) -> prepare its
//! operations (persisted documents, limits, input checks) -> verify the
//! token -> open the request's transaction with its context (the guard) ->
//! claim its idempotency key -> put the request's scope and loaders on the
//! request -> execute -> write the READ audit events -> store the answer
//! for its idempotency key -> commit. Every response carries the request id
//! and is JSON, in the format the client accepts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::{BatchRequest, BatchResponse, ErrorExtensionValues, Response, ServerError};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use sea_orm::ConnectionTrait;
use service::context::{ContextError, RequestMeta};
use service::domain::TenantId;
use service::idempotency::{self, Claim, IdempotencyKey};
use service::tx::CommitError;
use tracing::Instrument;

use crate::budgets::{Charged, OperationBudget, Refused, Standing};
use crate::error::{ApiError, ErrorCode, RequestReason};
use crate::graphql::loaders::Loaders;
use crate::graphql::prepare::Prepared;
use crate::graphql::scope::RequestScope;
use crate::guard;
use crate::state::AppState;
use crate::wire;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// A super admin names the clinic to act in (an audited impersonation).
pub const IMPERSONATE_HEADER: &str = "x-caregate-impersonate";
/// A client's key for retrying a mutation safely.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Requests whose documents are longer than this (in all) are prepared
/// and run a few at a time.
const LARGE_DOCUMENT_BYTES: usize = 16 * 1024;
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

/// `/graphql`, every method: POST runs operations (one, or a batch as an
/// array); GET runs queries from the query string, or serves GraphiQL to a
/// browser (`Accept: text/html`) where it is enabled; anything else is 405.
pub async fn graphql(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let id = request_id(&headers);
    let format = wire::Format::of(&headers);
    let span = tracing::info_span!("request", request_id = %id);
    let method = if parts.method == Method::GET {
        if wire::wants_html(&headers) && state.config.graphiql_enabled() {
            return crate::graphiql::response();
        }
        Via::Get
    } else if parts.method == Method::POST {
        Via::Post
    } else {
        return Refusal {
            allow: Some("GET, POST"),
            ..Refusal::unreadable(wire::Unreadable {
                status: StatusCode::METHOD_NOT_ALLOWED,
                reason: RequestReason::MethodNotAllowed,
                message: "use POST (or GET for queries)".to_owned(),
            })
        }
        .into_response(Shape::Single, format, &id);
    };
    // The token is verified before the body is read, and a request of a
    // signed-in clinic is counted against the clinic's budget right there:
    // past the budget, a request costs next to nothing.
    let token = {
        let _enter = span.enter();
        Token::of(&state, &headers)
    };
    let budget = match &token {
        Token::Verified(claims) => {
            // A super admin acting in a clinic is counted but not refused
            // (the request's context, opened later, refuses anyone else
            // who names a clinic to act in).
            let impersonating = headers.contains_key(IMPERSONATE_HEADER);
            match state.budgets.admit(claims.org, impersonating) {
                Ok(()) => Some(RequestBudget { clinic: claims.org }),
                Err(mut refused) => {
                    {
                        let _enter = span.enter();
                        tracing::debug!(reason = ?refused.budget, "refused by the clinic's budget");
                    }
                    state.metrics.observe("", "rate_limited", Duration::ZERO);
                    refused.retry_after = state
                        .budgets
                        .pause_before_refusing(refused.standing.reset_at)
                        .await;
                    return Refusal::budget(&refused).into_response(Shape::Single, format, &id);
                }
            }
        }
        Token::None | Token::Refused | Token::Malformed => None,
    };
    let read = match method {
        Via::Get => wire::read_get(parts.uri.query()),
        Via::Post => {
            // The whole body must arrive within the limit: a client that
            // sends it a byte at a time does not hold a connection (and a
            // worker) for long.
            let limit = Duration::from_millis(state.config.body_read_timeout_ms);
            let reading = wire::read_post(&headers, body, state.config.max_body_bytes);
            match tokio::time::timeout(limit, reading).await {
                Ok(read) => read,
                Err(_) => Err(wire::Unreadable {
                    status: StatusCode::REQUEST_TIMEOUT,
                    reason: RequestReason::BodyTimeout,
                    message: "the request body did not arrive in time".to_owned(),
                }),
            }
        }
    };
    let batch = match read {
        Ok(batch) => batch,
        Err(unreadable) => {
            let _enter = span.enter();
            tracing::info!(reason = unreadable.reason.as_str(), message = %unreadable.message, "unreadable request");
            state.metrics.observe("", "rejected", Duration::ZERO);
            let refusal = Refusal::unreadable(unreadable);
            return with_standing(&state, budget.as_ref(), refusal).into_response(
                Shape::Single,
                format,
                &id,
            );
        }
    };
    let request = Incoming {
        addr,
        headers,
        batch,
        via: method,
        token,
        budget,
    };
    handle(state, request, format, id).instrument(span).await
}

/// A request as read, with its token verified and its budget counted.
struct Incoming {
    addr: SocketAddr,
    headers: HeaderMap,
    batch: BatchRequest,
    via: Via,
    token: Token,
    budget: Option<RequestBudget>,
}

/// The bearer token of a request, verified.
enum Token {
    None,
    Verified(crate::tokens::Claims),
    /// Not valid (signature, expiry, issuer, audience).
    Refused,
    /// An Authorization header that is not `Bearer <token>`.
    Malformed,
}

impl Token {
    fn of(state: &AppState, headers: &HeaderMap) -> Self {
        match bearer(headers) {
            Bearer::None => Self::None,
            Bearer::Malformed => Self::Malformed,
            Bearer::Token(token) => match state.tokens.verify(token) {
                Ok(claims) => Self::Verified(claims),
                Err(err) => {
                    tracing::info!(error = %err, "token refused");
                    Self::Refused
                }
            },
        }
    }
}

/// The clinic a request is counted against.
#[derive(Debug, Clone, Copy)]
struct RequestBudget {
    clinic: uuid::Uuid,
}

/// `refusal` with where the request's clinic stands in its budget.
fn with_standing(state: &AppState, budget: Option<&RequestBudget>, refusal: Refusal) -> Refusal {
    match budget {
        Some(b) => Refusal {
            rate_limit: Some(state.budgets.standing(b.clinic).value(0)),
            ..refusal
        },
        None => refusal,
    }
}

/// How the operations arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Get,
    Post,
}

/// Why a request was answered without a result.
struct Refusal {
    status: StatusCode,
    /// What every operation of the request answers.
    error: ApiError,
    /// The outcome label of the metrics.
    outcome: &'static str,
    /// Seconds after which a retry may succeed (`Retry-After`).
    retry_after: Option<u32>,
    /// The methods to use instead (`Allow`, with 405).
    allow: Option<&'static str>,
    /// Where the clinic stands in its budget (`extensions.rateLimit`).
    rate_limit: Option<async_graphql::Value>,
}

impl Refusal {
    fn new(status: StatusCode, error: ApiError, outcome: &'static str) -> Self {
        Self {
            status,
            error,
            outcome,
            retry_after: None,
            allow: None,
            rate_limit: None,
        }
    }

    /// The clinic's budget is spent: HTTP 429 with `Retry-After` (the end
    /// of the window) and where the clinic stands.
    fn budget(refused: &Refused) -> Self {
        Self {
            retry_after: Some(refused.retry_after),
            rate_limit: Some(refused.standing.value(refused.cost)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                refused.error(),
                "rate_limited",
            )
        }
    }

    fn unreadable(u: wire::Unreadable) -> Self {
        Self::new(u.status, ApiError::limit(u.reason, u.message), "rejected")
    }

    fn unauthenticated(message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ApiError::new(ErrorCode::Unauthenticated, message),
            "unauthenticated",
        )
    }

    fn bad_input(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ApiError::new(ErrorCode::BadUserInput, message),
            "rejected",
        )
    }

    /// A refusal with its reason, answered with `status`.
    fn because(
        status: StatusCode,
        code: ErrorCode,
        reason: RequestReason,
        message: impl Into<String>,
    ) -> Self {
        Self::new(status, ApiError::because(code, reason, message), "rejected")
    }

    /// A retried request whose stored answer shows patients the caller may
    /// no longer see (or no longer through break-glass).
    fn already_processed() -> Self {
        Self::because(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            RequestReason::AlreadyProcessed,
            "this request was already processed; its answer shows patients you may no longer see",
        )
    }

    /// The database cannot be reached (or every connection is busy).
    fn unavailable(message: &str) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ApiError::new(ErrorCode::Unavailable, message),
                "unavailable",
            )
        }
    }

    /// The request's transaction did not commit: nothing it did is saved.
    fn not_committed() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::because(
                ErrorCode::Internal,
                RequestReason::NotCommitted,
                "the request failed and nothing it did was saved",
            ),
            "error",
        )
    }

    /// The connection broke during COMMIT: the request may have been saved.
    fn commit_unknown() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ApiError::because(
                    ErrorCode::Internal,
                    RequestReason::CommitOutcomeUnknown,
                    "the request may or may not have been saved; retry with the same Idempotency-Key",
                ),
                "error",
            )
        }
    }

    /// The answer: the request's shape (one error per operation of a batch,
    /// so batching clients keep the code), the request id, `Retry-After`,
    /// `Allow`.
    fn into_response(
        self,
        shape: Shape,
        format: wire::Format,
        request_id: &str,
    ) -> axum::response::Response {
        let error = || {
            let mut body = Response::from_errors(vec![self.error.clone().into_server_error()]);
            stamp(&mut body, request_id);
            if let Some(standing) = &self.rate_limit {
                body.extensions
                    .insert(RATE_LIMIT_EXTENSION.to_owned(), standing.clone());
            }
            body
        };
        let body = match shape {
            // An empty batch has no operation to answer for: one error.
            Shape::Single | Shape::Batch(0) => BatchResponse::Single(error()),
            Shape::Batch(n) => BatchResponse::Batch((0..n).map(|_| error()).collect()),
        };
        let mut resp = render(self.status, &body, format);
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        with_request_id(resp, request_id)
    }
}

/// A response body as JSON in `format`. A request error (nothing ran: no
/// data, and errors without a path) answered as
/// `application/graphql-response+json` has no `data` entry (and a single
/// one is a 400), as that media type says; as `application/json` it keeps
/// the status given.
fn render(
    status: StatusCode,
    body: &BatchResponse,
    format: wire::Format,
) -> axum::response::Response {
    let request_error = |r: &Response| {
        format == wire::Format::GraphqlResponse
            && r.data == async_graphql::Value::Null
            && !r.errors.is_empty()
            && r.errors.iter().all(|e| e.path.is_empty())
    };
    // Serialized from async-graphql's own values, which keep the order of
    // the selection (a `serde_json::Value` would sort the keys).
    let text = match body {
        BatchResponse::Single(r) => response_json(r, request_error(r)),
        BatchResponse::Batch(rs) => {
            let items: Vec<String> = rs
                .iter()
                .map(|r| response_json(r, request_error(r)))
                .collect();
            format!("[{}]", items.join(","))
        }
    };
    let status = match body {
        BatchResponse::Single(r) if request_error(r) && status.is_success() => {
            StatusCode::BAD_REQUEST
        }
        _ => status,
    };
    let mut resp = (status, text).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    resp
}

/// One response as JSON, without its `data` entry for a request error in
/// `application/graphql-response+json`.
fn response_json(r: &Response, without_data: bool) -> String {
    /// A response whose operation never ran: errors and extensions only.
    #[derive(serde::Serialize)]
    struct RequestError<'a> {
        errors: &'a [ServerError],
        #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
    }
    let text = if without_data {
        serde_json::to_string(&RequestError {
            errors: &r.errors,
            extensions: &r.extensions,
        })
    } else {
        serde_json::to_string(r)
    };
    text.unwrap_or_else(|err| {
        tracing::error!(error = %err, "serializing a response");
        format!(
            r#"{{"errors":[{{"message":"internal error","extensions":{{"code":"{}"}}}}]}}"#,
            ErrorCode::Internal.as_str()
        )
    })
}

/// Whether the client sent one operation or a batch (an array).
#[derive(Debug, Clone, Copy)]
enum Shape {
    Single,
    Batch(usize),
}

/// What a request is answered with.
enum Answer {
    /// The responses of its operations, committed, and what each cost.
    Executed(Box<BatchResponse>, Vec<Charged>),
    /// The stored answer of an earlier request with the same idempotency key
    /// (JSON text, as first sent).
    Replayed(String),
}

/// Where budgets put their figures in a response's `extensions`.
pub const RATE_LIMIT_EXTENSION: &str = "rateLimit";

async fn handle(
    state: AppState,
    request: Incoming,
    format: wire::Format,
    id: String,
) -> axum::response::Response {
    let started = Instant::now();
    let operation = operation_name(&request.batch);
    let shape = match &request.batch {
        BatchRequest::Single(_) => Shape::Single,
        BatchRequest::Batch(items) => Shape::Batch(items.len()),
    };
    let budget = request.budget;
    match run(&state, request, &id).await {
        Ok(Answer::Executed(mut response, charged)) => {
            let mut status = StatusCode::OK;
            let mut retry_after = None;
            if let Some(b) = &budget {
                let standing = state.budgets.standing(b.clinic);
                let refused = stamp_budget(&mut response, &standing, &charged);
                // Every operation refused by the budget: the request was.
                if let Some((secs, all)) = refused {
                    retry_after = Some(secs);
                    if all {
                        status = StatusCode::TOO_MANY_REQUESTS;
                        retry_after =
                            Some(state.budgets.pause_before_refusing(standing.reset_at).await);
                    }
                }
            }
            let outcome = if status == StatusCode::TOO_MANY_REQUESTS {
                "rate_limited"
            } else if response.is_ok() {
                "ok"
            } else {
                "error"
            };
            state
                .metrics
                .observe(&operation, outcome, started.elapsed());
            let mut resp = render(status, &response, format);
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            with_request_id(resp, &id)
        }
        Ok(Answer::Replayed(body)) => {
            state
                .metrics
                .observe(&operation, "replayed", started.elapsed());
            let mut resp = body.into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            resp.headers_mut()
                .insert(IDEMPOTENT_REPLAY_HEADER, HeaderValue::from_static("true"));
            with_request_id(resp, &id)
        }
        Err(r) => {
            state
                .metrics
                .observe(&operation, r.outcome, started.elapsed());
            with_standing(&state, budget.as_ref(), r).into_response(shape, format, &id)
        }
    }
}

/// Puts `extensions.rateLimit` on every response of a batch: each
/// operation's cost and where the clinic stands. Returns, when operations
/// were refused by the cost budget, the seconds to retry after and whether
/// all of them were.
fn stamp_budget(
    response: &mut BatchResponse,
    standing: &Standing,
    charged: &[Charged],
) -> Option<(u32, bool)> {
    let responses: Vec<&mut Response> = match response {
        BatchResponse::Single(r) => vec![r],
        BatchResponse::Batch(rs) => rs.iter_mut().collect(),
    };
    let count = responses.len();
    for (i, r) in responses.into_iter().enumerate() {
        let cost = charged.get(i).map_or(0, |c| c.cost);
        // Kept when already there (an idempotent answer, stamped as stored).
        r.extensions
            .entry(RATE_LIMIT_EXTENSION.to_owned())
            .or_insert_with(|| standing.value(cost));
    }
    let refused: Vec<u32> = charged.iter().filter_map(|c| c.refused).collect();
    let longest = refused.iter().copied().max()?;
    Some((longest, refused.len() == count))
}

/// The request, from token to commit.
///
/// A request — one operation or a batch — is one transaction. Each mutation
/// runs in a savepoint, so a mutation refused by a rule leaves nothing
/// behind while the other operations stand. If the transaction itself fails
/// (an error outside a savepoint, a statement timeout, a lost connection),
/// no operation's result is returned: the whole request answers
/// INTERNAL / NOT_COMMITTED, and nothing of it was saved.
async fn run(state: &AppState, request: Incoming, id: &str) -> Result<Answer, Refusal> {
    let Incoming {
        addr,
        headers,
        batch,
        via,
        token,
        budget,
    } = request;
    let headers = &headers;
    let size = match &batch {
        BatchRequest::Single(_) => 1,
        BatchRequest::Batch(items) => items.len(),
    };
    if size == 0 || size > state.config.max_batch_size {
        return Err(Refusal::because(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
            RequestReason::MaxBatch,
            format!(
                "a batch holds 1 to {} operations",
                state.config.max_batch_size
            ),
        ));
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

    // Large documents take memory many times their size while parsed and
    // validated: a few at a time, however many arrive (parsing is CPU-bound,
    // so this costs no throughput on a machine of few cores).
    let text_bytes: usize = batch.iter().map(|r| state.preparation.text_len(r)).sum();
    let _large = if text_bytes > LARGE_DOCUMENT_BYTES {
        Some(
            state
                .large_documents
                .acquire()
                .await
                .map_err(|_| Refusal::unavailable("shutting down"))?,
        )
    } else {
        None
    };
    // Parsing and checking need no connection: a bad document never holds one.
    let (batch, prepared) = prepare(state, batch);
    let is_mutation = prepared
        .iter()
        .any(|p| p.as_ref().is_ok_and(|p| p.is_mutation));
    // A key makes a request's answer replayable; it is for requests that
    // change something, and only those (a stored query answer would outlive
    // the access that allowed it).
    let all_mutations = prepared.iter().flatten().all(|p| p.is_mutation);
    if idempotency_key.is_some() && !all_mutations {
        return Err(Refusal::bad_input(
            "an Idempotency-Key goes with a request whose operations are all mutations",
        ));
    }
    // Not for who acts (an answer holding a new token is not kept), and not
    // claimed when nothing could run (the corrected retry may use it).
    if idempotency_key.is_some() && prepared.iter().flatten().any(|p| p.changes_context) {
        return Err(Refusal::bad_input(
            "an Idempotency-Key is not for login, verifyMfa, switchOrganization or logout",
        ));
    }
    let idempotency_key = idempotency_key.filter(|_| prepared.iter().flatten().next().is_some());
    // GET is for reading: a mutation sent by GET (a link, a prefetch, a
    // cache) is refused before anything runs.
    if via == Via::Get && is_mutation {
        return Err(Refusal {
            allow: Some("POST"),
            ..Refusal::because(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::BadUserInput,
                RequestReason::MutationOverGet,
                "mutations are sent with POST",
            )
        });
    }
    // Who the request acts as is set once; an operation that changes it
    // runs alone, so nothing else of the request is done or audited under
    // the wrong context.
    let alone = prepared.len() == 1 && prepared.iter().flatten().all(|p| p.root_fields == 1);
    if !alone && prepared.iter().flatten().any(|p| p.changes_context) {
        return Err(Refusal::bad_input(
            "login, verifyMfa, switchOrganization and logout must each be the only operation of their request",
        ));
    }

    // A login starts from nobody: a token the client still sends (an old
    // one, say) plays no part in it.
    let logs_in = prepared.len() == 1 && prepared.iter().flatten().all(|p| p.logs_in);
    let claims = match token {
        _ if logs_in => None,
        Token::None => None,
        Token::Verified(claims) => Some(claims),
        Token::Refused => return Err(Refusal::unauthenticated("invalid or expired token")),
        Token::Malformed => {
            return Err(Refusal::unauthenticated(
                "the Authorization header must be `Bearer <token>`",
            ));
        }
    };
    let meta = RequestMeta {
        impersonate: meta.impersonate.filter(|_| !logs_in),
        ..meta
    };

    // Near the end of a clinic's points, an operation's cost is found before
    // a transaction is opened for it: one the clinic cannot afford is
    // refused without costing the database anything. (A super admin acting
    // in the clinic is never refused.)
    let mut prepared = prepared;
    let mut refused_early: Vec<Option<Charged>> = vec![None; prepared.len()];
    if let (Some(b), Some(_), None) = (budget, &claims, meta.impersonate) {
        let max_cost = u64::try_from(state.config.max_query_complexity).unwrap_or(u64::MAX);
        if state.budgets.short_of_points(b.clinic, max_cost) {
            for (p, early) in prepared.iter_mut().zip(refused_early.iter_mut()) {
                let Ok(op) = p else { continue };
                let Some(cost) = crate::budgets::cost_of(&state.schema, &mut op.request).await
                else {
                    continue;
                };
                if let Err(refused) = state.budgets.afford(b.clinic, cost) {
                    *early = Some(Charged {
                        cost,
                        refused: Some(refused.retry_after),
                    });
                    *p = Err(refused.error().into_server_error());
                }
            }
            if refused_early.iter().any(Option::is_some) && prepared.iter().all(Result::is_err) {
                let mut responses: Vec<Response> = prepared
                    .into_iter()
                    .filter_map(Result::err)
                    .map(|err| Response::from_errors(vec![err]))
                    .collect();
                let charged = refused_early
                    .into_iter()
                    .map(Option::unwrap_or_default)
                    .collect();
                let mut response = match batch {
                    Shape::Single => BatchResponse::Single(responses.pop().unwrap_or_default()),
                    Shape::Batch(_) => BatchResponse::Batch(responses),
                };
                finalize(&mut response, id);
                return Ok(Answer::Executed(Box::new(response), charged));
            }
        }
    }

    // One clinic holds at most BUDGET_MAX_IN_FLIGHT of this server's
    // transactions at once: its other requests wait their turn here, not
    // on the pool (where every clinic's requests wait together).
    let _slot = match budget {
        Some(b) => state
            .budgets
            .enter(
                b.clinic,
                Duration::from_millis(state.config.execution_timeout_ms),
            )
            .await
            .map_err(|()| {
                Refusal::unavailable(
                    "the clinic has as many requests in progress as it may; retry shortly",
                )
            })?,
        None => None,
    };

    // Queries of a signed-in session that has not just written read from
    // the replica, when there is one (see `replica`); should it be
    // unreachable or behind on the session, the primary serves them.
    let replica = state.replica.as_ref().filter(|r| {
        !is_mutation
            && idempotency_key.is_none()
            && claims.as_ref().is_some_and(|c| r.serves(c.sid))
    });
    let mut on_replica = None;
    if let (Some(replica), Some(claims)) = (replica, claims.as_ref()) {
        match guard::open_read(
            &replica.pool,
            &replica.options,
            &state.statements,
            claims,
            &meta,
            state.config.session_idle_minutes,
        )
        .await
        {
            Ok(opened) => {
                state.metrics.replica_reads.inc();
                on_replica = Some(opened);
            }
            Err(err) => {
                state.metrics.replica_fallbacks.inc();
                if let ContextError::Database(err) = &err {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        "the replica cannot be reached; reading from the primary for a while"
                    );
                    replica.failed();
                } else {
                    tracing::debug!(error = ?err, "the replica cannot serve this session yet; reading from the primary");
                }
            }
        }
    }
    let read_on_replica = on_replica.is_some();
    let (tx, viewer) = match on_replica {
        Some(opened) => opened,
        None => guard::open(
            &state.db,
            &state.tx_options,
            &state.statements,
            claims.as_ref(),
            &meta,
            state.config.session_idle_minutes,
        )
        .await
        .map_err(context_refusal)?,
    };

    // A key matters for requests that change something, by a signed-in user.
    let idempotency_key = idempotency_key.filter(|_| viewer.actor.is_some());
    if let Some(key) = &idempotency_key {
        let ttl = chrono::Duration::hours(i64::from(state.config.idempotency_ttl_hours));
        match idempotency::claim(&tx, key, &request_hash(&prepared), ttl).await {
            Ok(Claim::New) => {}
            Ok(Claim::Replay {
                body,
                reads,
                break_glass_reads,
            }) => {
                let break_glass = viewer
                    .actor
                    .as_ref()
                    .map(|a| a.break_glass.to_vec())
                    .unwrap_or_default();
                // An answer that showed a patient through break-glass is
                // shown again only while this session's access lasts.
                if !break_glass_reads.iter().all(|p| break_glass.contains(p)) {
                    return Err(Refusal::already_processed());
                }
                return replay(tx, body, &reads, &break_glass).await;
            }
            Ok(Claim::Mismatch) => {
                return Err(Refusal::because(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorCode::Conflict,
                    RequestReason::IdempotencyKeyReused,
                    "this Idempotency-Key was used for a different request",
                ));
            }
            Err(err) => {
                tracing::error!(error = %err, "claiming an idempotency key");
                return Err(Refusal::not_committed());
            }
        }
    }

    // Each operation's cost is charged to the clinic before it runs (see
    // `budgets::CostCharge`): a super admin acting in it only counts.
    let exempt = viewer.actor.as_ref().is_some_and(|a| a.impersonating);
    let charging = budget
        .filter(|_| claims.is_some())
        .map(|b| (b.clinic, exempt));
    let primary_meta = read_on_replica.then(|| (meta.clone(), viewer.clone()));
    let scope = Arc::new(RequestScope::new(tx.clone(), viewer, meta));
    let loaders = Arc::new(Loaders::new(&tx, scope.viewer.actor.as_ref()));
    // The operations run within EXECUTION_TIMEOUT_MS; past it they are
    // dropped (and with them their statements), and the transaction is
    // rolled back. COMMIT, below, is never cut short.
    let limit = Duration::from_millis(state.config.execution_timeout_ms);
    let execution = async {
        let mut responses = Vec::with_capacity(prepared.len());
        let mut charged = Vec::with_capacity(prepared.len());
        for (p, early) in prepared.into_iter().zip(refused_early) {
            let response = match p {
                Ok(mut p) => {
                    let span = tracing::debug_span!(
                        "operation",
                        name = p.request.operation_name.as_deref().unwrap_or_default(),
                        kind = if p.is_mutation { "mutation" } else { "query" },
                    );
                    p.request = p.request.data(scope.clone()).data(loaders.clone());
                    let charge = charging.map(|(clinic, exempt)| {
                        Arc::new(OperationBudget::new(state.budgets.clone(), clinic, exempt))
                    });
                    if let Some(charge) = &charge {
                        p.request = p.request.data(charge.clone());
                    }
                    let response = loaders
                        .drive(state.preparation.execute(&state.schema, p))
                        .instrument(span)
                        .await;
                    charged.push(charge.map(|c| c.charged()).unwrap_or_default());
                    response
                }
                Err(err) => {
                    charged.push(early.unwrap_or_default());
                    Response::from_errors(vec![err])
                }
            };
            responses.push(response);
        }
        (responses, charged)
    };
    let Ok((mut responses, charged)) = tokio::time::timeout(limit, execution).await else {
        tracing::error!(
            timeout_ms = state.config.execution_timeout_ms,
            "the request's operations did not finish in time; rolling back"
        );
        return Err(Refusal::not_committed());
    };
    let mut response = match batch {
        Shape::Single => BatchResponse::Single(responses.pop().unwrap_or_default()),
        Shape::Batch(_) => BatchResponse::Batch(responses),
    };
    drop(loaders);
    finalize(&mut response, id);

    let reads = scope.take_reads();
    let break_glass = scope.break_glass();
    drop(scope);
    if tx.is_aborted() {
        tracing::error!("the request's transaction was aborted; rolling back");
        return Err(Refusal::not_committed());
    }
    if let Some((meta, viewer)) = primary_meta {
        return audit_on_primary(
            state,
            tx,
            claims.as_ref(),
            &meta,
            &viewer,
            &reads,
            &break_glass,
        )
        .await
        .map(|()| Answer::Executed(Box::new(response), charged));
    }
    if let Some(key) = &idempotency_key {
        // Stored as it is sent, budget figures included: a retry gets the
        // first answer exactly.
        if let Some(b) = budget {
            stamp_budget(&mut response, &state.budgets.standing(b.clinic), &charged);
        }
        let stored = serde_json::to_string(&response).map_err(|err| {
            tracing::error!(error = %err, "serializing an idempotent response");
            Refusal::not_committed()
        })?;
        let break_glass_reads: Vec<uuid::Uuid> = reads
            .iter()
            .filter(|p| break_glass.contains(p))
            .copied()
            .collect();
        if let Err(err) = idempotency::store(&tx, key, stored, &reads, &break_glass_reads).await {
            tracing::error!(error = %err, "storing an idempotent response");
            return Err(Refusal::not_committed());
        }
    }
    // The READ audit travels with COMMIT: both happen, or neither.
    match guard::commit_with_reads(tx, &reads, &break_glass).await {
        Ok(()) => {
            if let (Some(replica), Some(claims)) = (&state.replica, &claims)
                && is_mutation
            {
                replica.wrote(claims.sid);
            }
            Ok(Answer::Executed(Box::new(response), charged))
        }
        Err(err) => Err(commit_refusal(err)),
    }
}

/// Why a request's COMMIT did not (or may not have) saved its work, as the
/// client is told.
fn commit_refusal(err: CommitError) -> Refusal {
    match err {
        CommitError::Unknown(err) => {
            tracing::error!(error = %err, "COMMIT's outcome is unknown");
            Refusal::commit_unknown()
        }
        err => {
            tracing::error!(error = %err, "the request did not commit");
            Refusal::not_committed()
        }
    }
}

/// Why a request's context could not be opened, as the client is told.
fn context_refusal(err: ContextError) -> Refusal {
    match err {
        ContextError::Refused(why) => {
            tracing::info!(reason = why, "session refused");
            Refusal::unauthenticated("invalid or expired session")
        }
        ContextError::Database(err) => {
            tracing::error!(error = format!("{err:#}"), "opening the request failed");
            Refusal::unavailable("the database is unavailable; retry shortly")
        }
    }
}

/// Ends a request that read on the replica: on the primary, in one
/// transaction with the same context, checks the session again (a logout
/// anywhere is refused at once, whatever the replica's lag), records its
/// activity, writes the audit events the replica kept back and the READ
/// of every patient returned, and commits. Only then may the response go:
/// if any of it fails, the request fails, and no read goes unaudited.
async fn audit_on_primary(
    state: &AppState,
    replica_tx: Arc<service::Tx>,
    claims: Option<&crate::tokens::Claims>,
    meta: &RequestMeta,
    replica_viewer: &service::context::Viewer,
    reads: &[uuid::Uuid],
    break_glass: &[uuid::Uuid],
) -> Result<(), Refusal> {
    let deferred = replica_tx.take_deferred();
    // The read-only transaction has nothing to keep.
    drop(replica_tx);
    let (tx, viewer) = guard::open(
        &state.db,
        &state.tx_options,
        &state.statements,
        claims,
        meta,
        state.config.session_idle_minutes,
    )
    .await
    .map_err(context_refusal)?;
    // The replica had not caught up with a change of the caller's access
    // (a role, a site, a proxy grant): what it answered is not sent, and
    // the session reads from the primary for a while.
    if &viewer != replica_viewer {
        if let (Some(replica), Some(claims)) = (&state.replica, claims) {
            replica.wrote(claims.sid);
        }
        tracing::warn!("the replica's view of the caller's access is behind the primary's");
        return Err(Refusal::unavailable(
            "the caller's access changed while this request ran; retry",
        ));
    }
    for event in deferred {
        if let Err(err) = tx.execute_raw(event).await {
            tracing::error!(error = %err, "writing a replica read's audit event");
            return Err(Refusal::not_committed());
        }
    }
    guard::commit_with_reads(tx, reads, break_glass)
        .await
        .map_err(commit_refusal)
}

/// Answers a retry with the stored answer of its key — only while the
/// caller may still see every patient it holds, and recorded as a read of
/// them, like any answer that shows patient data.
async fn replay(
    tx: Arc<service::Tx>,
    body: String,
    reads: &[uuid::Uuid],
    break_glass: &[uuid::Uuid],
) -> Result<Answer, Refusal> {
    match idempotency::all_visible(&tx, reads).await {
        Ok(true) => {}
        Ok(false) => return Err(Refusal::already_processed()),
        Err(err) => {
            tracing::error!(error = %err, "checking a replay");
            return Err(Refusal::not_committed());
        }
    }
    match guard::commit_with_reads(tx, reads, break_glass).await {
        Ok(()) => Ok(Answer::Replayed(body)),
        Err(err) => {
            tracing::error!(error = %err, "a replay did not commit");
            Err(Refusal::not_committed())
        }
    }
}

/// Prepares every operation (persisted query, nesting, parse, limits, input
/// values); an operation that cannot run answers its own error.
fn prepare(state: &AppState, batch: BatchRequest) -> (Shape, Vec<Result<Prepared, ServerError>>) {
    let one = |r| {
        state.preparation.prepare(r).and_then(|p| {
            if p.is_subscription {
                let mut err = ServerError::new(
                    "subscriptions are served over WebSocket at /graphql/ws (graphql-transport-ws)",
                    None,
                );
                let mut ext = ErrorExtensionValues::default();
                ext.set("code", ErrorCode::BadUserInput.as_str());
                err.extensions = Some(ext);
                return Err(err);
            }
            Ok(p)
        })
    };
    match batch {
        BatchRequest::Single(request) => (Shape::Single, vec![one(request)]),
        BatchRequest::Batch(requests) => (
            Shape::Batch(requests.len()),
            requests.into_iter().map(one).collect(),
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
/// validation and limit errors come without one: they are BAD_USER_INPUT,
/// its depth and complexity limits with their reason)
/// and every error and the response the request id.
pub(crate) fn stamp(r: &mut Response, id: &str) {
    for err in &mut r.errors {
        let ext = err
            .extensions
            .get_or_insert_with(ErrorExtensionValues::default);
        if ext.get("code").is_none() {
            ext.set("code", ErrorCode::BadUserInput.as_str());
            if let Some(reason) = RequestReason::of_library_message(&err.message) {
                ext.set("reason", reason.as_str());
            }
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
