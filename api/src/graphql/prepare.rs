//! Before a request runs: persisted queries resolved, the text's nesting
//! bounded, the document parsed (or taken from a cache of parsed documents,
//! since clients send the same few queries again and again), checked
//! against the operation limits, and its values checked (`inputs`).
//!
//! The cache holds only documents that ran without any error — so parsed,
//! validated and accepted — and is bounded by an estimate of the memory
//! the parsed documents take, not by their count.

use std::sync::Mutex;

use std::collections::HashSet;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection,
    SelectionSet,
};
use async_graphql::{Name, Request, ServerError};

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
    /// The operation's root fields, through fragments (aliases count).
    pub root_fields: usize,
    /// It logs in, switches clinic or logs out: it changes who the request
    /// acts as, so it must be alone in its request.
    pub changes_context: bool,
    /// Its one root field is `login` or `verifyMfa`: it starts from nobody.
    pub logs_in: bool,
    /// The selected operation is a subscription (served over WebSocket).
    pub is_subscription: bool,
    /// The names of its root fields, through fragments.
    pub roots: Vec<String>,
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
        inputs::check_request(request.operation_name.as_deref(), &request.extensions)?;
        let operation = selected(&doc, request.operation_name.as_deref());
        let is_mutation = operation.is_some_and(|op| op.ty == OperationType::Mutation);
        let roots = operation
            .map(|op| root_fields(&doc, &op.selection_set.node))
            .unwrap_or_default();
        let changes_context = is_mutation
            && roots
                .iter()
                .any(|name| CONTEXT_CHANGING.contains(&name.as_str()));
        let logs_in = is_mutation && roots.len() == 1 && LOGGING_IN.contains(&roots[0].as_str());
        let is_subscription = operation.is_some_and(|op| op.ty == OperationType::Subscription);
        request.set_parsed_query(doc);
        Ok(Prepared {
            request,
            is_mutation,
            root_fields: roots.len(),
            changes_context,
            logs_in,
            is_subscription,
            roots: roots.iter().map(|r| r.to_string()).collect(),
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

    /// The length of the document `request` will run (persisted ones
    /// included).
    pub fn text_len(&self, request: &Request) -> usize {
        self.persisted.text_len(request)
    }

    /// Bytes the document cache counts as held.
    pub fn cached_bytes(&self) -> usize {
        self.documents.lock().map(|d| d.bytes()).unwrap_or(0)
    }
}

/// Mutations that change who the request acts as.
const CONTEXT_CHANGING: [&str; 4] = ["login", "verifyMfa", "switchOrganization", "logout"];

/// Mutations that sign in: anonymous, whatever token the client sends.
const LOGGING_IN: [&str; 2] = ["login", "verifyMfa"];

/// The operation a request selects (by name, or the only one).
fn selected<'a>(
    doc: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), None) => Some(&op.node),
        // A name must match (an anonymous operation has none).
        (DocumentOperations::Single(op), Some(name)) => doc
            .operations
            .iter()
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == name))
            .map(|_| &op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| &op.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// The names of a selection set's fields, looking through fragments (each
/// once, so a fragment cycle cannot loop).
fn root_fields(doc: &ExecutableDocument, set: &SelectionSet) -> Vec<Name> {
    fn walk(
        doc: &ExecutableDocument,
        set: &SelectionSet,
        seen: &mut HashSet<Name>,
        out: &mut Vec<Name>,
    ) {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => out.push(f.node.name.node.clone()),
                Selection::InlineFragment(f) => walk(doc, &f.node.selection_set.node, seen, out),
                Selection::FragmentSpread(s) => {
                    let name = &s.node.fragment_name.node;
                    if let Some(f) = doc.fragments.get(name)
                        && seen.insert(name.clone())
                    {
                        walk(doc, &f.node.selection_set.node, seen, out);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(doc, set, &mut HashSet::new(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

    use super::CONTEXT_CHANGING;

    /// The handler keeps these mutations alone in their request by name: a
    /// renamed mutation would slip past that rule without this test.
    #[test]
    fn every_context_changing_mutation_named_here_is_in_the_schema() {
        let sdl = crate::graphql::sdl();
        let doc = async_graphql::parser::parse_schema(&sdl).expect("the schema parses");
        let mutation_fields: Vec<String> = doc
            .definitions
            .iter()
            .filter_map(|d| match d {
                TypeSystemDefinition::Type(t) if t.node.name.node == "Mutation" => {
                    Some(&t.node.kind)
                }
                _ => None,
            })
            .flat_map(|kind| match kind {
                TypeKind::Object(o) => o
                    .fields
                    .iter()
                    .map(|f| f.node.name.node.to_string())
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        assert!(!mutation_fields.is_empty(), "no Mutation type in the SDL");
        for name in CONTEXT_CHANGING.iter().chain(super::LOGGING_IN.iter()) {
            assert!(
                mutation_fields.iter().any(|f| f == name),
                "{name} is not a mutation of the schema: {mutation_fields:?}"
            );
        }
    }
}
