//! Persisted queries: documents known by an id instead of sent as text.
//!
//! - **Automatic persisted queries** (Apollo's protocol): a client sends
//!   `extensions.persistedQuery.sha256Hash`; the server answers
//!   PERSISTED_QUERY_NOT_FOUND until the client sends the text once with
//!   its hash. Registered texts are kept in a byte-bounded LRU.
//! - **A reviewed manifest** (`PERSISTED_QUERIES_FILE`), as the tools that
//!   make one write it: Apollo's persisted query manifest
//!   (`{"format": "apollo-persisted-query-manifest", "version": 1,
//!   "operations": [{"id", "body", ...}]}`, ids = sha256 of the body) or a
//!   map `{ "<id>": "<text>" }` (Relay's `persistedQueries` output, ids =
//!   MD5 of the text by default; sha256 ids are accepted as well). A request
//!   names a manifest document by `doc_id`, `documentId` or `id` (a
//!   `sha256:` or `md5:` prefix is allowed) or by APQ's hash.
//! - **Persisted-only mode** (`PERSISTED_QUERIES_ONLY`): only manifest
//!   documents run at all.
//!
//! Written here rather than taken from async-graphql's
//! `ApolloPersistedQueries` extension because that one knows no manifest
//! and no persisted-only mode, bounds its cache by entry count rather than
//! by memory (a few large documents could hold much of it), and resolves
//! the document inside the schema's own request preparation — after the
//! handler needs the text (for the nesting check, the large-document
//! permit and the idempotency hash).

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context;
use async_graphql::{Request, ServerError};
use md5::Md5;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::cache::WeighedLru;
use crate::error::{ApiError, ErrorCode, RequestReason};

/// Bytes of query text kept for automatic persisted queries (least recently
/// used first out): a client whose query was evicted is told
/// PERSISTED_QUERY_NOT_FOUND and sends the text again, as the protocol
/// expects.
const REGISTERED_BYTES: usize = 4 * 1024 * 1024;

/// Where the HTTP layer puts a document id the client sent (`doc_id`,
/// `documentId` or `id`).
pub const DOCUMENT_ID_EXTENSION: &str = "caregateDocumentId";

/// Documents known by id: a manifest (fixed) and an LRU of registered ones.
pub struct PersistedQueries {
    manifest: HashMap<String, String>,
    registered: Mutex<WeighedLru<String, String>>,
    only: bool,
}

/// Apollo's persisted query manifest.
#[derive(Deserialize)]
struct ApolloManifest {
    format: String,
    version: u32,
    operations: Vec<ApolloOperation>,
}

#[derive(Deserialize)]
struct ApolloOperation {
    id: String,
    body: String,
}

impl PersistedQueries {
    /// `only`: refuse every query that is not in `manifest`.
    pub fn new(manifest: HashMap<String, String>, only: bool) -> Self {
        Self {
            manifest,
            registered: Mutex::new(WeighedLru::new(REGISTERED_BYTES)),
            only,
        }
    }

    /// Reads a manifest (either format), checking that every id is the
    /// sha256 or the MD5 of its text: a manifest edited by hand or cut short
    /// is refused at start rather than serving the wrong document.
    pub fn load_manifest(path: &std::path::Path) -> anyhow::Result<HashMap<String, String>> {
        let raw =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse_manifest(&raw)
    }

    pub fn parse_manifest(raw: &str) -> anyhow::Result<HashMap<String, String>> {
        let value: serde_json::Value =
            serde_json::from_str(raw).context("parsing the persisted query manifest")?;
        let entries: Vec<(String, String)> = if value.get("format").is_some() {
            let m: ApolloManifest = serde_json::from_value(value)
                .context("reading an Apollo persisted query manifest")?;
            anyhow::ensure!(
                m.format == "apollo-persisted-query-manifest" && m.version == 1,
                "unknown manifest format {} version {}",
                m.format,
                m.version
            );
            m.operations.into_iter().map(|o| (o.id, o.body)).collect()
        } else {
            serde_json::from_value::<HashMap<String, String>>(value)
                .context("a manifest is Apollo's format or a map of id to document")?
                .into_iter()
                .collect()
        };
        let mut map = HashMap::with_capacity(entries.len());
        for (id, text) in entries {
            let id = id.to_ascii_lowercase();
            anyhow::ensure!(
                sha256_hex(&text) == id || md5_hex(&text) == id,
                "manifest entry {id} is neither the sha256 nor the MD5 of its document"
            );
            map.insert(id, text);
        }
        Ok(map)
    }

    /// The length of a known document, without copying it.
    fn length_of(&self, id: &str) -> Option<usize> {
        if let Some(q) = self.manifest.get(id) {
            return Some(q.len());
        }
        self.registered.lock().ok()?.get(id).map(String::len)
    }

    fn lookup(&self, id: &str) -> Option<String> {
        if let Some(q) = self.manifest.get(id) {
            return Some(q.clone());
        }
        self.registered.lock().ok()?.get(id).cloned()
    }
}

pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

fn md5_hex(text: &str) -> String {
    hex(&Md5::digest(text.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn error(code: ErrorCode, message: &str) -> ServerError {
    ApiError::new(code, message).into_server_error()
}

fn refused() -> ServerError {
    ApiError::because(
        ErrorCode::Forbidden,
        RequestReason::PersistedQueryRequired,
        "only persisted queries are accepted",
    )
    .into_server_error()
}

fn string_of(v: Option<&async_graphql::Value>) -> Option<String> {
    match v {
        Some(async_graphql::Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

impl PersistedQueries {
    /// Resolves a request's persisted document: fills in the text of a
    /// document named by id or hash, registers a new APQ text, or refuses.
    pub fn resolve(&self, request: &mut Request) -> Result<(), ServerError> {
        if let Some(id) = string_of(request.extensions.remove(DOCUMENT_ID_EXTENSION).as_ref()) {
            let id = id.to_ascii_lowercase();
            let id = id
                .strip_prefix("sha256:")
                .or_else(|| id.strip_prefix("md5:"))
                .unwrap_or(&id);
            let known = if self.only {
                self.manifest.get(id).cloned()
            } else {
                self.lookup(id)
            };
            return match (known, request.query.is_empty()) {
                (Some(text), true) => {
                    request.query = text;
                    Ok(())
                }
                (Some(_), false) => Err(error(
                    ErrorCode::BadUserInput,
                    "send a persisted document's id or its text, not both",
                )),
                (None, _) => Err(error(
                    ErrorCode::PersistedQueryNotFound,
                    "PersistedQueryNotFound",
                )),
            };
        }
        let hash = request
            .extensions
            .get("persistedQuery")
            .and_then(|v| match v {
                async_graphql::Value::Object(o) => string_of(o.get("sha256Hash")),
                _ => None,
            })
            .map(|h| h.to_ascii_lowercase());
        match hash {
            Some(hash) if request.query.is_empty() => match self.lookup(&hash) {
                Some(query) if !self.only || self.manifest.contains_key(&hash) => {
                    request.query = query
                }
                Some(_) => return Err(refused()),
                None => {
                    return Err(error(
                        ErrorCode::PersistedQueryNotFound,
                        "PersistedQueryNotFound",
                    ));
                }
            },
            Some(hash) => {
                if sha256_hex(&request.query) != hash {
                    return Err(error(
                        ErrorCode::BadUserInput,
                        "provided sha256Hash does not match the query",
                    ));
                }
                if self.only {
                    if !self.manifest.contains_key(&hash) {
                        return Err(refused());
                    }
                } else if let Ok(mut registered) = self.registered.lock() {
                    let weight = hash.len() + request.query.len();
                    registered.put(hash, request.query.clone(), weight);
                }
            }
            None => {
                if self.only && !self.known_text(&request.query) {
                    return Err(refused());
                }
            }
        }
        Ok(())
    }

    /// The length of the document a request will run: its text, or the
    /// persisted document it names (0 when it names none known).
    pub fn text_len(&self, request: &Request) -> usize {
        if !request.query.is_empty() {
            return request.query.len();
        }
        let id = string_of(request.extensions.get(DOCUMENT_ID_EXTENSION)).or_else(|| match request
            .extensions
            .get("persistedQuery")
        {
            Some(async_graphql::Value::Object(o)) => string_of(o.get("sha256Hash")),
            _ => None,
        });
        id.map(|id| id.to_ascii_lowercase())
            .and_then(|id| {
                let id = id
                    .strip_prefix("sha256:")
                    .or_else(|| id.strip_prefix("md5:"))
                    .unwrap_or(&id)
                    .to_owned();
                self.length_of(&id)
            })
            .unwrap_or(0)
    }

    /// A text that is itself in the manifest (under either hash).
    fn known_text(&self, text: &str) -> bool {
        self.manifest.contains_key(&sha256_hex(text)) || self.manifest.contains_key(&md5_hex(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "query Me { me { role } }";

    #[test]
    fn both_manifest_formats_load_and_bad_ids_are_refused() {
        let apollo = serde_json::json!({
            "format": "apollo-persisted-query-manifest", "version": 1,
            "operations": [{ "id": sha256_hex(Q), "name": "Me", "type": "query", "body": Q }],
        });
        let m = PersistedQueries::parse_manifest(&apollo.to_string()).unwrap();
        assert_eq!(m.get(&sha256_hex(Q)).map(String::as_str), Some(Q));

        let relay = serde_json::json!({ md5_hex(Q): Q });
        let m = PersistedQueries::parse_manifest(&relay.to_string()).unwrap();
        assert_eq!(m.get(&md5_hex(Q)).map(String::as_str), Some(Q));

        let wrong = serde_json::json!({ "abc": Q });
        assert!(PersistedQueries::parse_manifest(&wrong.to_string()).is_err());
    }

    #[test]
    fn a_document_id_fills_in_the_text_and_unknown_ids_are_not_found() {
        let manifest =
            PersistedQueries::parse_manifest(&serde_json::json!({ md5_hex(Q): Q }).to_string())
                .unwrap();
        let pq = PersistedQueries::new(manifest, true);
        let mut r = Request::new("");
        r.extensions.insert(
            DOCUMENT_ID_EXTENSION.to_owned(),
            async_graphql::Value::String(format!("md5:{}", md5_hex(Q))),
        );
        pq.resolve(&mut r).unwrap();
        assert_eq!(r.query, Q);

        let mut r = Request::new("");
        r.extensions.insert(
            DOCUMENT_ID_EXTENSION.to_owned(),
            async_graphql::Value::String("nope".into()),
        );
        assert!(pq.resolve(&mut r).is_err());
        // The text of a manifest document runs as text too.
        assert!(pq.resolve(&mut Request::new(Q)).is_ok());
        assert!(pq.resolve(&mut Request::new("{ me { role } }")).is_err());
    }
}
