//! GraphQL over HTTP: one POST per operation, timed, its body kept as
//! JSON whatever the status (an error answer is what most probes compare).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::VerifyError;

/// The deployment's GraphQL endpoint.
pub struct Endpoint {
    url: reqwest::Url,
    client: reqwest::Client,
}

/// One answer: HTTP status, body (JSON, or the text as a JSON string when
/// it is not JSON) and how long it took, from sending to the last byte.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub elapsed: Duration,
}

impl Answer {
    /// The `extensions.code` of every error, in order.
    pub fn codes(&self) -> Vec<String> {
        self.errors()
            .iter()
            .map(|e| {
                e.pointer("/extensions/code")
                    .and_then(Value::as_str)
                    .unwrap_or("<no code>")
                    .to_owned()
            })
            .collect()
    }

    pub fn errors(&self) -> &[Value] {
        self.body
            .get("errors")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn data(&self) -> &Value {
        self.body.get("data").unwrap_or(&Value::Null)
    }

    /// The errors' codes and messages in one line, for a refusal to run.
    pub fn error_summary(&self) -> String {
        let errors: Vec<String> = self
            .errors()
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e.pointer("/extensions/code")
                        .and_then(Value::as_str)
                        .unwrap_or("<no code>"),
                    e.get("message").and_then(Value::as_str).unwrap_or("")
                )
            })
            .collect();
        if errors.is_empty() {
            let text = self.body.to_string();
            text.chars().take(200).collect()
        } else {
            errors.join("; ")
        }
    }
}

impl Endpoint {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, VerifyError> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| VerifyError::Usage(format!("--url {url}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(VerifyError::Usage(format!(
                "--url must be an http or https URL, not {}",
                url.scheme()
            )));
        }
        if url.scheme() == "https" && !cfg!(feature = "tls") {
            return Err(VerifyError::Usage(
                "this caregate was built without TLS: build it with `--features tls` to reach an https URL"
                    .to_owned(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!(
                "caregate-verify-isolation/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| VerifyError::Unreachable(format!("building the HTTP client: {e}")))?;
        Ok(Self { url, client })
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// POSTs one operation. Fails only when no answer came (unreachable,
    /// timed out); every HTTP status is an answer.
    pub async fn post(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Result<Answer, VerifyError> {
        let mut body = json!({ "query": query, "variables": variables });
        if let Some(name) = operation_name(query) {
            body["operationName"] = Value::String(name.to_owned());
        }
        let mut request = self.client.post(self.url.clone()).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let started = Instant::now();
        let response = request
            .send()
            .await
            .map_err(|e| VerifyError::Unreachable(format!("{}: {e}", self.url)))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| {
            VerifyError::Unreachable(format!("{}: reading an answer: {e}", self.url))
        })?;
        let elapsed = started.elapsed();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer {
            status,
            body,
            elapsed,
        })
    }
}

/// The name of a document's (only) operation: sent as `operationName`, so
/// that the deployment's metrics and logs name the probes.
fn operation_name(document: &str) -> Option<&str> {
    let rest = document
        .trim_start()
        .strip_prefix("query ")
        .or_else(|| document.trim_start().strip_prefix("mutation "))?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_name_is_read_off_the_document() {
        assert_eq!(
            operation_name("query VerifyIsolationProbe($id: UUID!) { patient(id: $id) { id } }"),
            Some("VerifyIsolationProbe")
        );
        assert_eq!(
            operation_name("mutation VerifyIsolationLogout { logout }"),
            Some("VerifyIsolationLogout")
        );
        assert_eq!(operation_name("{ me { role } }"), None);
        assert_eq!(operation_name("query { me { role } }"), None);
    }
}
