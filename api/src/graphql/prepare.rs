//! Before a request runs: persisted queries resolved, the document parsed
//! (or taken from a cache of parsed documents, since clients send the same
//! few queries again and again) and checked against the operation limits.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerError};

use super::limits::OperationLimits;
use super::persisted::PersistedQueries;

/// Parsed documents kept, by query text.
const DOCUMENT_CACHE: usize = 1024;
/// Longer query texts are parsed every time rather than cached.
const MAX_CACHED_QUERY: usize = 16 * 1024;

pub struct Preparation {
    persisted: PersistedQueries,
    limits: OperationLimits,
    documents: Mutex<lru::LruCache<String, ExecutableDocument>>,
}

impl Preparation {
    pub fn new(persisted: PersistedQueries, limits: OperationLimits) -> Self {
        Self {
            persisted,
            limits,
            documents: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(DOCUMENT_CACHE).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// Readies one request, or says why it cannot run.
    pub fn prepare(&self, mut request: Request) -> Result<Request, ServerError> {
        self.persisted.resolve(&mut request)?;
        let cached = self
            .documents
            .lock()
            .ok()
            .and_then(|mut docs| docs.get(&request.query).cloned());
        let doc = match cached {
            Some(doc) => doc,
            None => {
                // A syntax error keeps its position; the handler gives it its code.
                let doc = async_graphql::parser::parse_query(&request.query)
                    .map_err(ServerError::from)?;
                self.limits.check(&doc)?;
                if request.query.len() <= MAX_CACHED_QUERY
                    && let Ok(mut docs) = self.documents.lock()
                {
                    docs.put(request.query.clone(), doc.clone());
                }
                doc
            }
        };
        request.set_parsed_query(doc);
        Ok(request)
    }
}
