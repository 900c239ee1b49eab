//! The one place errors become GraphQL errors, and the whole vocabulary of
//! them: every `extensions.code` is an [`ErrorCode`], every
//! `extensions.reason` a [`Reason`]. The README's catalogue is tested
//! against these enums.
//!
//! Every error a client sees carries `extensions.code`, `extensions.reason`
//! for refusals a client can act on, `extensions.field` for bad input, and
//! the request id. Causes of unexpected errors go to the log (with the
//! request id, through the request's span), never to the client.

use async_graphql::{ErrorExtensionValues, ServerError};
use service::{ConflictReason, ForbiddenReason, ServiceError, UnauthenticatedReason};

service::vocabulary! {
    /// What kind of error a client got: `extensions.code`.
    pub enum ErrorCode {
        /// No valid token or session.
        Unauthenticated => "UNAUTHENTICATED",
        /// The caller may not do this (`reason` says why).
        Forbidden => "FORBIDDEN",
        /// Absent, or not visible to the caller: never told apart.
        NotFound => "NOT_FOUND",
        /// The request or a value in it is wrong (`field` names it, `reason`
        /// names a limit or a malformed request).
        BadUserInput => "BAD_USER_INPUT",
        /// The write conflicts with what is already there (`reason`).
        Conflict => "CONFLICT",
        /// Too many attempts, or the clinic's budget is spent (`reason`);
        /// retry later (`Retry-After`).
        RateLimited => "RATE_LIMITED",
        /// The database cannot be reached; retry shortly (`Retry-After`).
        Unavailable => "UNAVAILABLE",
        /// A persisted document the server does not hold (send its text once).
        PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
        /// Something failed on the server (`reason` says whether it was saved).
        Internal => "INTERNAL",
    }
}

service::vocabulary! {
    /// Why a request was refused or failed, where the service layer does not
    /// say it: limits, malformed HTTP, persisted documents, the transaction's
    /// outcome, idempotency keys.
    pub enum RequestReason {
        /// Selection sets nested deeper than MAX_QUERY_DEPTH.
        MaxDepth => "MAX_DEPTH",
        /// An operation costing more than MAX_QUERY_COMPLEXITY.
        MaxComplexity => "MAX_COMPLEXITY",
        /// More aliases than MAX_ALIASES.
        MaxAliases => "MAX_ALIASES",
        /// More root fields than MAX_ROOT_FIELDS.
        MaxRootFields => "MAX_ROOT_FIELDS",
        /// A batch of more than MAX_BATCH_SIZE operations (or none).
        MaxBatch => "MAX_BATCH",
        /// A query text nested deeper than MAX_QUERY_NESTING.
        MaxNesting => "MAX_NESTING",
        /// A body over MAX_BODY_BYTES.
        BodyTooLarge => "BODY_TOO_LARGE",
        /// A body that did not arrive within BODY_READ_TIMEOUT_MS.
        BodyTimeout => "BODY_TIMEOUT",
        /// A method other than GET and POST.
        MethodNotAllowed => "METHOD_NOT_ALLOWED",
        /// A mutation sent by GET.
        MutationOverGet => "MUTATION_OVER_GET",
        /// A POST body that is not `application/json`.
        UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
        /// A body that could not be read.
        UnreadableBody => "UNREADABLE_BODY",
        /// A body that is not JSON (or not UTF-8).
        InvalidJson => "INVALID_JSON",
        /// No document to run.
        MissingQuery => "MISSING_QUERY",
        /// A GET query string that cannot be read.
        InvalidQueryString => "INVALID_QUERY_STRING",
        /// Only documents of the reviewed manifest are accepted.
        PersistedQueryRequired => "PERSISTED_QUERY_REQUIRED",
        /// The clinic's requests of this budget window are spent.
        RequestBudget => "REQUEST_BUDGET",
        /// The clinic's complexity points left in this budget window do not
        /// cover the operation.
        CostBudget => "COST_BUDGET",
        /// An Idempotency-Key sent again with other operations or variables.
        IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
        /// A replay whose stored answer shows patients the caller may no longer see.
        AlreadyProcessed => "ALREADY_PROCESSED",
        /// The transaction failed: nothing of the request was saved.
        NotCommitted => "NOT_COMMITTED",
        /// The connection broke during COMMIT: the request may have been saved.
        CommitOutcomeUnknown => "COMMIT_OUTCOME_UNKNOWN",
    }
}

impl RequestReason {
    /// The limit a message of async-graphql's own validation names: depth
    /// and complexity are checked by the library, which gives no code.
    pub fn of_library_message(message: &str) -> Option<Self> {
        match message {
            "Query is nested too deep." => Some(Self::MaxDepth),
            "Query is too complex." => Some(Self::MaxComplexity),
            _ => None,
        }
    }
}

/// `extensions.reason`: one of the service layer's reasons or the API's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Conflict(ConflictReason),
    Forbidden(ForbiddenReason),
    Unauthenticated(UnauthenticatedReason),
    Request(RequestReason),
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Conflict(r) => r.as_str(),
            Self::Forbidden(r) => r.as_str(),
            Self::Unauthenticated(r) => r.as_str(),
            Self::Request(r) => r.as_str(),
        }
    }
}

impl From<RequestReason> for Reason {
    fn from(r: RequestReason) -> Self {
        Self::Request(r)
    }
}

/// An error on its way to the client. Cheap to clone (DataLoaders need that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub reason: Option<Reason>,
    pub field: Option<&'static str>,
    /// The challenge a login of a user with a second factor answers with
    /// (`extensions.mfaChallenge` and `extensions.mfaChallengeExpiresAt`).
    pub mfa_challenge: Option<MfaChallenge>,
}

/// A login's second-factor challenge, as its error carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            reason: None,
            field: None,
            mfa_challenge: None,
        }
    }

    /// A refusal with its reason.
    pub fn because(code: ErrorCode, reason: impl Into<Reason>, message: impl Into<String>) -> Self {
        Self {
            reason: Some(reason.into()),
            ..Self::new(code, message)
        }
    }

    pub fn unauthenticated() -> Self {
        Self::new(ErrorCode::Unauthenticated, "authentication required")
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "not found")
    }

    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(ErrorCode::BadUserInput, message)
        }
    }

    /// A limit of the request exceeded.
    pub fn limit(reason: RequestReason, message: impl Into<String>) -> Self {
        Self::because(ErrorCode::BadUserInput, reason, message)
    }

    pub fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound => Self::not_found(),
            ServiceError::Conflict(reason) => Self::because(
                ErrorCode::Conflict,
                Reason::Conflict(reason),
                format!("conflict: {}", reason.as_str()),
            ),
            ServiceError::Invalid { field, message } => Self::bad_input(field, message),
            ServiceError::Forbidden(reason) => Self::because(
                ErrorCode::Forbidden,
                Reason::Forbidden(reason),
                "not allowed",
            ),
            ServiceError::Unauthenticated(why) => {
                tracing::info!(reason = why, "refused as unauthenticated");
                Self::unauthenticated()
            }
            ServiceError::BadCredentials => {
                Self::new(ErrorCode::Unauthenticated, "invalid email or password")
            }
            // The Auth0 password-grant pattern (`mfa_required` with an
            // `mfa_token`): an error, because `AuthPayload.token` is `String!`
            // in the published contract and no token exists yet.
            ServiceError::MfaRequired {
                challenge,
                expires_at,
            } => Self {
                mfa_challenge: Some(MfaChallenge {
                    token: challenge,
                    expires_at: expires_at.to_rfc3339(),
                }),
                ..Self::because(
                    ErrorCode::Unauthenticated,
                    Reason::Unauthenticated(UnauthenticatedReason::MfaRequired),
                    "a second factor is required: answer the challenge with verifyMfa",
                )
            },
            ServiceError::MfaRefused(reason) => Self::because(
                ErrorCode::Unauthenticated,
                Reason::Unauthenticated(reason),
                match reason {
                    UnauthenticatedReason::MfaChallengeInvalid => {
                        "the challenge is used, expired or out of attempts: log in again"
                    }
                    _ => "invalid code",
                },
            ),
            ServiceError::RateLimited => {
                Self::new(ErrorCode::RateLimited, "too many attempts; try again later")
            }
            ServiceError::Unexpected(cause) => {
                tracing::error!(error = format!("{cause:#}"), "unexpected error");
                Self::internal()
            }
        }
    }
}

impl ApiError {
    fn extensions(&self) -> ErrorExtensionValues {
        let mut ext = ErrorExtensionValues::default();
        ext.set("code", self.code.as_str());
        if let Some(reason) = self.reason {
            ext.set("reason", reason.as_str());
        }
        if let Some(field) = self.field {
            ext.set("field", field);
        }
        if let Some(challenge) = &self.mfa_challenge {
            ext.set("mfaChallenge", challenge.token.as_str());
            ext.set("mfaChallengeExpiresAt", challenge.expires_at.as_str());
        }
        ext
    }

    /// The error as a response error of its own, for refusals that happen
    /// before any field runs.
    pub fn into_server_error(self) -> ServerError {
        let mut err = ServerError::new(&self.message, None);
        err.extensions = Some(self.extensions());
        err
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        let mut out = async_graphql::Error::new(&err.message);
        out.extensions = Some(err.extensions());
        out
    }
}

/// Shorthand for resolvers: a service result as a GraphQL result.
pub type GqlResult<T> = Result<T, async_graphql::Error>;

pub trait IntoGql<T> {
    fn gql(self) -> GqlResult<T>;
}

impl<T> IntoGql<T> for Result<T, ServiceError> {
    fn gql(self) -> GqlResult<T> {
        self.map_err(|e| ApiError::from(e).into())
    }
}

impl<T> IntoGql<T> for Result<T, ApiError> {
    fn gql(self) -> GqlResult<T> {
        self.map_err(Into::into)
    }
}
