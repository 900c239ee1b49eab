//! GraphQL over HTTP, as clients send it: a POST with a JSON body (one
//! operation or a batch: an array), or a GET with the operation in the
//! query string — and what the response is sent as.
//!
//! Read here rather than by async-graphql-axum's extractor so that every
//! refusal is a GraphQL error body with a stable code and the request id
//! (that extractor answers in plain text), the size limit holds for chunked
//! bodies as for sized ones, the whole body must arrive in time, and
//! persisted documents may be named the ways the tools that make them name
//! them (`doc_id`, `documentId`, `id`).

use async_graphql::{BatchRequest, Request, Variables};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;

use crate::error::RequestReason;

/// How a response is written (the request's `Accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`: what every client understands, and the default.
    Json,
    /// `application/graphql-response+json`: request errors are 4xx and carry
    /// no `data` entry.
    GraphqlResponse,
}

impl Format {
    /// The format the client asked for. Only an explicit
    /// `application/graphql-response+json` (preferred to or instead of
    /// `application/json`) selects it; `*/*`, no `Accept` or anything else
    /// is answered as `application/json`.
    pub fn of(headers: &HeaderMap) -> Self {
        // (media type, q) in the order given; q=0 means "not this".
        let accepted: Vec<(String, f32)> = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|item| {
                let mut parts = item.split(';').map(str::trim);
                let media = parts.next().unwrap_or("").to_ascii_lowercase();
                let q = parts
                    .find_map(|p| p.strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (media, q)
            })
            .collect();
        let rank = |t: &str| {
            accepted
                .iter()
                .enumerate()
                .find(|(_, (m, q))| m == t && *q > 0.0)
                .map(|(i, (_, q))| (*q, std::cmp::Reverse(i)))
        };
        match (
            rank("application/graphql-response+json"),
            rank("application/json"),
        ) {
            (Some(g), Some(j)) if g > j => Self::GraphqlResponse,
            (Some(_), None) => Self::GraphqlResponse,
            _ => Self::Json,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json; charset=utf-8",
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        }
    }
}

/// Whether a GET asks for the GraphiQL page (a browser) rather than a
/// query's result.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"))
}

/// Why a request could not be read. Each is BAD_USER_INPUT with a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub status: StatusCode,
    pub reason: RequestReason,
    pub message: String,
}

impl Unreadable {
    fn new(status: StatusCode, reason: RequestReason, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
        }
    }
}

/// One operation as it arrives, before it is a GraphQL request.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<Variables>,
    #[serde(default)]
    extensions: Option<std::collections::HashMap<String, async_graphql::Value>>,
    /// A persisted document named by id: Relay's `doc_id`, the GraphQL over
    /// HTTP draft's `documentId`, or `id`.
    #[serde(default, alias = "doc_id", alias = "documentId")]
    id: Option<String>,
}

impl Wire {
    /// An operation names its document: by text, by persisted id, or by
    /// APQ's hash in `extensions.persistedQuery`.
    fn names_a_document(&self) -> bool {
        self.query.is_some()
            || self.id.is_some()
            || self
                .extensions
                .as_ref()
                .is_some_and(|e| e.contains_key("persistedQuery"))
    }

    fn into_request(self) -> Request {
        let mut request = Request::new(self.query.unwrap_or_default());
        request.operation_name = self.operation_name;
        request.variables = self.variables.unwrap_or_default();
        if let Some(extensions) = self.extensions {
            request.extensions = async_graphql::Extensions(extensions);
        }
        if let Some(id) = self.id {
            request.extensions.insert(
                crate::graphql::persisted::DOCUMENT_ID_EXTENSION.to_owned(),
                async_graphql::Value::String(id),
            );
        }
        request
    }
}

/// The `Content-Type` must say JSON (in UTF-8, the only encoding JSON has).
fn check_content_type(headers: &HeaderMap) -> Result<(), Unreadable> {
    let refuse = |what: &str| {
        Unreadable::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RequestReason::UnsupportedMediaType,
            format!("{what}: send the request as Content-Type: application/json"),
        )
    };
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(refuse("no Content-Type"));
    };
    let value = value
        .to_str()
        .map_err(|_| refuse("an unreadable Content-Type"))?
        .to_ascii_lowercase();
    let mut parts = value.split(';').map(str::trim);
    let media = parts.next().unwrap_or("");
    if media != "application/json" && media != "application/graphql-response+json" {
        return Err(refuse(&format!("Content-Type {media}")));
    }
    for param in parts {
        if let Some(charset) = param.strip_prefix("charset=")
            && !matches!(charset.trim_matches('"'), "utf-8" | "utf8")
        {
            return Err(refuse(&format!("charset {charset}")));
        }
    }
    Ok(())
}

/// Reads a POST: content type, then at most `max_bytes` of body (a
/// `Content-Length` over it is refused before reading), then JSON.
pub async fn read_post(
    headers: &HeaderMap,
    body: Body,
    max_bytes: usize,
) -> Result<BatchRequest, Unreadable> {
    check_content_type(headers)?;
    let too_large = || {
        Unreadable::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            RequestReason::BodyTooLarge,
            format!("the request body is larger than {max_bytes} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, max_bytes).await.map_err(|err| {
        // The limit's error is somewhere in the chain, under axum's.
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        let mut over = false;
        while let Some(e) = cause {
            over |= e.is::<http_body_util::LengthLimitError>();
            cause = e.source();
        }
        if over {
            too_large()
        } else {
            Unreadable::new(
                StatusCode::BAD_REQUEST,
                RequestReason::UnreadableBody,
                "the request body could not be read",
            )
        }
    })?;
    if bytes.is_empty() {
        return Err(Unreadable::new(
            StatusCode::BAD_REQUEST,
            RequestReason::InvalidJson,
            "the request body is empty: send {\"query\": \"...\"}",
        ));
    }
    let invalid = |err: serde_json::Error| {
        Unreadable::new(
            StatusCode::BAD_REQUEST,
            RequestReason::InvalidJson,
            format!("the request body is not a GraphQL request in JSON: {err}"),
        )
    };
    // One operation is an object, a batch an array of them.
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(invalid)?;
    let one = |v: serde_json::Value| -> Result<Request, Unreadable> {
        let wire = serde_json::from_value::<Wire>(v).map_err(invalid)?;
        if !wire.names_a_document() {
            return Err(missing_query());
        }
        Ok(wire.into_request())
    };
    Ok(match value {
        serde_json::Value::Array(items) => {
            BatchRequest::Batch(items.into_iter().map(one).collect::<Result<_, _>>()?)
        }
        other => BatchRequest::Single(one(other)?),
    })
}

fn missing_query() -> Unreadable {
    Unreadable::new(
        StatusCode::BAD_REQUEST,
        RequestReason::MissingQuery,
        "an operation names its document: `query` (its text), or a persisted document's \
         `doc_id` / `documentId` / `id`, or `extensions.persistedQuery`",
    )
}

/// The parameters of a GET, as the query string carries them
/// (`variables` and `extensions` are JSON texts).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<String>,
    #[serde(default)]
    extensions: Option<String>,
    #[serde(default, alias = "doc_id", alias = "documentId")]
    id: Option<String>,
}

/// Reads a GET's query string.
pub fn read_get(query: Option<&str>) -> Result<BatchRequest, Unreadable> {
    let bad = |message: String| {
        Unreadable::new(
            StatusCode::BAD_REQUEST,
            RequestReason::InvalidQueryString,
            message,
        )
    };
    let params: GetParams = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|err| bad(format!("the query string cannot be read: {err}")))?;
    let json =
        |name: &str, text: Option<String>| -> Result<Option<serde_json::Value>, Unreadable> {
            text.map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|err| bad(format!("{name} is not JSON: {err}")))
        };
    let variables = json("variables", params.variables)?
        .map(|v| serde_json::from_value(v).map_err(|err| bad(format!("variables: {err}"))))
        .transpose()?;
    let extensions = json("extensions", params.extensions)?
        .map(|v| serde_json::from_value(v).map_err(|err| bad(format!("extensions: {err}"))))
        .transpose()?;
    let wire = Wire {
        query: params.query,
        operation_name: params.operation_name,
        variables,
        extensions,
        id: params.id,
    };
    if !wire.names_a_document() {
        return Err(missing_query());
    }
    Ok(BatchRequest::Single(wire.into_request()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn accept_chooses_the_format() {
        assert_eq!(Format::of(&headers(&[])), Format::Json);
        assert_eq!(Format::of(&headers(&[("accept", "*/*")])), Format::Json);
        assert_eq!(
            Format::of(&headers(&[("accept", "application/json")])),
            Format::Json
        );
        assert_eq!(
            Format::of(&headers(&[("accept", "application/graphql-response+json")])),
            Format::GraphqlResponse
        );
        assert_eq!(
            Format::of(&headers(&[(
                "accept",
                "application/graphql-response+json, application/json;q=0.9"
            )])),
            Format::GraphqlResponse
        );
        assert_eq!(
            Format::of(&headers(&[(
                "accept",
                "application/json, application/graphql-response+json"
            )])),
            Format::Json
        );
        assert_eq!(
            Format::of(&headers(&[(
                "accept",
                "application/graphql-response+json;q=0"
            )])),
            Format::Json
        );
        assert_eq!(
            Format::of(&headers(&[(
                "accept",
                "application/json;q=0.1, application/graphql-response+json;q=1"
            )])),
            Format::GraphqlResponse
        );
    }

    #[test]
    fn content_type_must_be_json_in_utf8() {
        assert!(check_content_type(&headers(&[("content-type", "application/json")])).is_ok());
        assert!(
            check_content_type(&headers(&[(
                "content-type",
                "application/json; charset=UTF-8"
            )]))
            .is_ok()
        );
        for bad in [
            "text/plain",
            "application/json; charset=latin1",
            "multipart/form-data",
        ] {
            let err = check_content_type(&headers(&[("content-type", bad)])).unwrap_err();
            assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad}");
        }
        assert!(check_content_type(&HeaderMap::new()).is_err());
    }

    #[test]
    fn get_reads_the_spec_parameter_names_and_persisted_ids() {
        let BatchRequest::Single(r) = read_get(Some(
            "query=%7B__typename%7D&operationName=A&variables=%7B%22x%22%3A1%7D",
        ))
        .unwrap() else {
            panic!("one request")
        };
        assert_eq!(r.query, "{__typename}");
        assert_eq!(r.operation_name.as_deref(), Some("A"));
        assert_eq!(
            r.variables.get("x").map(|v| v.to_string()).as_deref(),
            Some("1")
        );
        assert!(read_get(Some("doc_id=abc")).is_ok());
        assert!(read_get(Some("")).is_err());
        assert!(read_get(Some("query=x&variables=%7Bnot-json")).is_err());
    }
}
