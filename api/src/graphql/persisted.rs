//! Automatic persisted queries (the Apollo protocol: a client sends the
//! sha256 of a query; the server answers PERSISTED_QUERY_NOT_FOUND until the
//! client sends the text once), and a persisted-only mode for mobile
//! clients in which only queries of a reviewed manifest run at all.
//!
//! Written here rather than taken from async-graphql's APQ extension because
//! that one cannot refuse unknown queries (persisted-only mode) and caches
//! whatever a client registers.

use std::collections::HashMap;
use std::sync::Mutex;

use async_graphql::{Request, ServerError};
use sha2::{Digest, Sha256};

use super::cache::WeighedLru;
use crate::error::ApiError;

/// Bytes of query text kept for automatic persisted queries (least recently
/// used first out): a client whose query was evicted is told
/// PERSISTED_QUERY_NOT_FOUND and sends the text again, as the protocol
/// expects.
const REGISTERED_BYTES: usize = 4 * 1024 * 1024;

/// Queries known by hash: a manifest (fixed) and an LRU of registered ones.
pub struct PersistedQueries {
    manifest: HashMap<String, String>,
    registered: Mutex<WeighedLru<String, String>>,
    only: bool,
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

    /// Reads a manifest: a JSON object of `{ "<sha256 hex>": "<query>" }`.
    pub fn load_manifest(path: &std::path::Path) -> anyhow::Result<HashMap<String, String>> {
        use anyhow::Context;
        let raw =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let map: HashMap<String, String> =
            serde_json::from_str(&raw).context("parsing the persisted query manifest")?;
        for (hash, query) in &map {
            anyhow::ensure!(
                sha256_hex(query) == *hash,
                "manifest entry {hash} does not match its query"
            );
        }
        Ok(map)
    }

    fn lookup(&self, hash: &str) -> Option<String> {
        if let Some(q) = self.manifest.get(hash) {
            return Some(q.clone());
        }
        self.registered.lock().ok()?.get(hash).cloned()
    }
}

pub fn sha256_hex(query: &str) -> String {
    Sha256::digest(query.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn error(code: &'static str, message: &str) -> ServerError {
    ApiError::new(code, message).into_server_error()
}

fn refused() -> ServerError {
    ApiError {
        reason: Some("PERSISTED_QUERY_REQUIRED"),
        ..ApiError::new("FORBIDDEN", "only persisted queries are accepted")
    }
    .into_server_error()
}

impl PersistedQueries {
    /// Resolves a request's persisted-query extension: fills in the text of
    /// a query sent by hash, registers a new one, or refuses.
    pub fn resolve(&self, request: &mut Request) -> Result<(), ServerError> {
        let hash = request
            .extensions
            .get("persistedQuery")
            .and_then(|v| match v {
                async_graphql::Value::Object(o) => o.get("sha256Hash").cloned(),
                _ => None,
            })
            .and_then(|v| match v {
                async_graphql::Value::String(s) => Some(s.to_ascii_lowercase()),
                _ => None,
            });
        match hash {
            Some(hash) if request.query.is_empty() => match self.lookup(&hash) {
                Some(query) => request.query = query,
                None => return Err(error("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")),
            },
            Some(hash) => {
                if sha256_hex(&request.query) != hash {
                    return Err(error(
                        "BAD_USER_INPUT",
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
                if self.only && !self.manifest.contains_key(&sha256_hex(&request.query)) {
                    return Err(refused());
                }
            }
        }
        Ok(())
    }
}
