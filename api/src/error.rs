//! The one place errors become GraphQL errors.
//!
//! Every error a client sees carries `extensions.code` (one of
//! UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, CONFLICT,
//! RATE_LIMITED, INTERNAL), `extensions.reason` for conflicts and refusals,
//! `extensions.field` for bad input, and the request id. Causes of
//! unexpected errors go to the log (with the request id, through the
//! request's span), never to the client.

use async_graphql::{ErrorExtensionValues, ServerError};
use service::ServiceError;

/// An error on its way to the client. Cheap to clone (DataLoaders need that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
    pub reason: Option<&'static str>,
    pub field: Option<&'static str>,
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            reason: None,
            field: None,
        }
    }

    pub fn unauthenticated() -> Self {
        Self::new("UNAUTHENTICATED", "authentication required")
    }

    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new("BAD_USER_INPUT", message)
        }
    }

    pub fn internal() -> Self {
        Self::new("INTERNAL", "internal error")
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound => Self::new("NOT_FOUND", "not found"),
            ServiceError::Conflict(reason) => Self {
                reason: Some(reason.as_str()),
                ..Self::new("CONFLICT", format!("conflict: {}", reason.as_str()))
            },
            ServiceError::Invalid { field, message } => Self::bad_input(field, message),
            ServiceError::Forbidden(reason) => Self {
                reason: Some(reason.as_str()),
                ..Self::new("FORBIDDEN", "not allowed")
            },
            ServiceError::Unauthenticated(why) => {
                tracing::info!(reason = why, "refused as unauthenticated");
                Self::unauthenticated()
            }
            ServiceError::BadCredentials => {
                Self::new("UNAUTHENTICATED", "invalid email or password")
            }
            ServiceError::RateLimited => {
                Self::new("RATE_LIMITED", "too many attempts; try again later")
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
        ext.set("code", self.code);
        if let Some(reason) = self.reason {
            ext.set("reason", reason);
        }
        if let Some(field) = self.field {
            ext.set("field", field);
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
