//! Operation limits async-graphql does not have built in: aliases per
//! operation and root fields per operation (depth and complexity are set on
//! the schema). Checked right after parsing, before anything runs.
//!
//! These checks (and persisted queries) run in the handler's preparation
//! step rather than as schema extensions: an extension, once registered,
//! wraps the resolution of every field of every response.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Positioned, ServerError};

use crate::error::{ApiError, RequestReason};
use std::collections::HashSet;

#[derive(Debug, Clone, Copy)]
pub struct OperationLimits {
    pub max_aliases: usize,
    pub max_root_fields: usize,
}

impl OperationLimits {
    /// Refuses a parsed document with too many aliases or root fields.
    pub fn check(&self, doc: &ExecutableDocument) -> Result<(), ServerError> {
        let aliases = count_aliases(doc);
        if aliases > self.max_aliases {
            return Err(limit_error(
                RequestReason::MaxAliases,
                format!("too many aliases: {aliases} (at most {})", self.max_aliases),
            ));
        }
        for (_, op) in doc.operations.iter() {
            let mut seen = HashSet::new();
            let roots = count_fields(&op.node.selection_set.node, doc, &mut seen);
            if roots > self.max_root_fields {
                return Err(limit_error(
                    RequestReason::MaxRootFields,
                    format!(
                        "too many root fields: {roots} (at most {})",
                        self.max_root_fields
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn limit_error(reason: RequestReason, message: String) -> ServerError {
    ApiError::limit(reason, message).into_server_error()
}

fn count_aliases(doc: &ExecutableDocument) -> usize {
    fn walk(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(f) => {
                    usize::from(f.node.alias.is_some()) + walk(&f.node.selection_set.node)
                }
                Selection::InlineFragment(f) => walk(&f.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    let ops: usize = doc
        .operations
        .iter()
        .map(|(_, op)| walk(&op.node.selection_set.node))
        .sum();
    let fragments: usize = doc
        .fragments
        .values()
        .map(|f| walk(&f.node.selection_set.node))
        .sum();
    ops + fragments
}

/// Fields of one selection set, looking through fragments (each once, so a
/// fragment cycle cannot loop).
fn count_fields(set: &SelectionSet, doc: &ExecutableDocument, seen: &mut HashSet<Name>) -> usize {
    set.items
        .iter()
        .map(|item: &Positioned<Selection>| match &item.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(f) => count_fields(&f.node.selection_set.node, doc, seen),
            Selection::FragmentSpread(s) => {
                let name = &s.node.fragment_name.node;
                match doc.fragments.get(name) {
                    Some(f) if seen.insert(name.clone()) => {
                        count_fields(&f.node.selection_set.node, doc, seen)
                    }
                    _ => 0,
                }
            }
        })
        .sum()
}
