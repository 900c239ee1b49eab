//! Before a request runs: persisted queries resolved, the text's nesting
//! bounded, the document parsed (or taken from a cache of parsed documents,
//! since clients send the same few queries again and again), checked
//! against the operation limits, and its values checked (`inputs`).
//!
//! The cache holds only documents that ran without any error — so parsed,
//! validated and accepted — and is bounded by an estimate of the memory
//! the parsed documents take, not by their count.

use std::sync::Mutex;

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Request, ServerError};

use super::cache::WeighedLru;
use super::inputs;
use super::limits::OperationLimits;
use super::persisted::PersistedQueries;

/// Longer query texts are parsed every time rather than cached.
const MAX_CACHED_QUERY: usize = 16 * 1024;
/// A parsed document takes this many bytes of memory per byte of its text,
/// at most (measured on field-heavy queries; see the benchmark's
/// `--cache-flood`): the cache counts each entry as text length times this.
pub const DOCUMENT_BYTES_PER_TEXT_BYTE: usize = 48;

pub struct Preparation {
    persisted: PersistedQueries,
    limits: OperationLimits,
    max_nesting: usize,
    documents: Mutex<WeighedLru<String, ExecutableDocument>>,
}

/// A request ready to execute.
pub struct Prepared {
    pub request: Request,
    /// The selected operation is a mutation.
    pub is_mutation: bool,
    /// The query text and document to cache once the request has run
    /// without error (`None`: already cached, or not worth caching).
    cache_as: Option<(String, ExecutableDocument)>,
}

impl Preparation {
    pub fn new(
        persisted: PersistedQueries,
        limits: OperationLimits,
        max_nesting: usize,
        cache_bytes: usize,
    ) -> Self {
        Self {
            persisted,
            limits,
            max_nesting,
            documents: Mutex::new(WeighedLru::new(cache_bytes)),
        }
    }

    /// Readies one request, or says why it cannot run.
    pub fn prepare(&self, mut request: Request) -> Result<Prepared, ServerError> {
        self.persisted.resolve(&mut request)?;
        let cached = self
            .documents
            .lock()
            .ok()
            .and_then(|mut docs| docs.get(&request.query).cloned());
        let (doc, cache_as) = match cached {
            Some(doc) => (doc, None),
            None => {
                inputs::check_nesting(&request.query, self.max_nesting)?;
                // A syntax error keeps its position; the handler gives it its code.
                let doc = async_graphql::parser::parse_query(&request.query)
                    .map_err(ServerError::from)?;
                self.limits.check(&doc)?;
                let cache_as = (request.query.len() <= MAX_CACHED_QUERY)
                    .then(|| (request.query.clone(), doc.clone()));
                (doc, cache_as)
            }
        };
        inputs::check_values(&doc, &request.variables)?;
        let is_mutation = operation_type(&doc, request.operation_name.as_deref())
            == Some(OperationType::Mutation);
        request.set_parsed_query(doc);
        Ok(Prepared {
            request,
            is_mutation,
            cache_as,
        })
    }

    /// Runs a prepared request on `schema`, caching its document when it ran
    /// without error.
    pub async fn execute(
        &self,
        schema: &super::CaregateSchema,
        prepared: Prepared,
    ) -> async_graphql::Response {
        let response = schema.execute(prepared.request).await;
        if response.errors.is_empty()
            && let Some((text, doc)) = prepared.cache_as
            && let Ok(mut docs) = self.documents.lock()
        {
            let weight = text.len() * DOCUMENT_BYTES_PER_TEXT_BYTE;
            docs.put(text, doc, weight);
        }
        response
    }

    /// Bytes the document cache counts as held.
    pub fn cached_bytes(&self) -> usize {
        self.documents.lock().map(|d| d.bytes()).unwrap_or(0)
    }
}

/// The type of the operation a request selects (by name, or the only one).
fn operation_type(doc: &ExecutableDocument, name: Option<&str>) -> Option<OperationType> {
    use async_graphql::parser::types::DocumentOperations;
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}
