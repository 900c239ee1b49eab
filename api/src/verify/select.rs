//! GraphQL selections generated from the schema, for reading what a
//! token can see: every field that needs no argument, objects with an id
//! ("entities") down to a given number of levels, lists with small pages;
//! and an estimate of the complexity the server will give them, to size
//! the pages before asking.

use std::collections::BTreeSet;

use super::introspect::{Field, Kind, Schema};

/// Page size of a list nested in a harvested object.
const NESTED_FIRST: u64 = 3;

/// One field of a selection, or an inline fragment.
#[derive(Debug, Clone)]
pub enum Sel {
    Field {
        name: String,
        /// Arguments as GraphQL text (`first: 5`), or empty.
        args: String,
        /// The named type it returns.
        ty: String,
        children: Vec<Sel>,
    },
    On {
        ty: String,
        children: Vec<Sel>,
    },
}

impl Sel {
    pub fn render(&self, out: &mut String) {
        let (head, children) = match self {
            Sel::Field {
                name,
                args,
                children,
                ..
            } => {
                let head = if args.is_empty() {
                    name.clone()
                } else {
                    format!("{name}({args})")
                };
                (head, children)
            }
            Sel::On { ty, children } => (format!("... on {ty}"), children),
        };
        out.push_str(&head);
        if !children.is_empty() {
            out.push_str(" { ");
            for child in children {
                child.render(out);
                out.push(' ');
            }
            out.push('}');
        }
    }

    /// An estimate of the complexity async-graphql gives it: one per
    /// field, a list's children times its page size.
    pub fn cost(&self) -> u64 {
        match self {
            Sel::Field { args, children, .. } => {
                let inner: u64 = children.iter().map(Sel::cost).sum();
                match first_of(args) {
                    Some(first) => first.max(1) * inner.max(1),
                    None => 1 + inner,
                }
            }
            Sel::On { children, .. } => children.iter().map(Sel::cost).sum(),
        }
    }
}

pub fn first_of(args: &str) -> Option<u64> {
    args.strip_prefix("first: ").and_then(|n| n.parse().ok())
}

/// Builds selections from the schema, leaving out `excluded` fields.
pub struct Builder<'a> {
    pub schema: &'a Schema,
    pub excluded: &'a BTreeSet<(String, String)>,
}

impl Builder<'_> {
    /// The selection of a field of `parent`, or `None` when it cannot or
    /// need not be selected.
    pub fn field(
        &self,
        parent: &str,
        field: &Field,
        levels: u32,
        depth: u32,
        path: &mut Vec<String>,
    ) -> Option<Sel> {
        if field.name.starts_with("__")
            || !field.needs_no_arguments()
            || self
                .excluded
                .contains(&(parent.to_owned(), field.name.clone()))
        {
            return None;
        }
        let named = field.ty.named().to_owned();
        let kind = self.schema.get(&named)?.kind;
        let args = match field.arg("first") {
            Some(a) if a.ty.named() == "Int" => format!("first: {NESTED_FIRST}"),
            _ => String::new(),
        };
        if matches!(kind, Kind::Scalar | Kind::Enum) {
            return Some(Sel::Field {
                name: field.name.clone(),
                args,
                ty: named,
                children: Vec::new(),
            });
        }
        let entity = self.schema.concrete(&named).iter().any(|t| t.is_entity());
        let cost = u32::from(entity);
        if depth == 0 || levels < cost || (!entity && path.contains(&named)) {
            return None;
        }
        path.push(named.clone());
        let children = self.children(&named, levels - cost, depth - 1, path);
        path.pop();
        // Nothing but `__typename` says nothing of an object without an id.
        if children.len() <= 1 && !entity {
            return None;
        }
        Some(Sel::Field {
            name: field.name.clone(),
            args,
            ty: named,
            children,
        })
    }

    /// What is selected of an object of type `ty` (of an interface or
    /// union: of each of its possible types).
    fn children(&self, ty: &str, levels: u32, depth: u32, path: &mut Vec<String>) -> Vec<Sel> {
        let mut out = vec![leaf("__typename")];
        let Some(t) = self.schema.get(ty) else {
            return out;
        };
        if t.kind == Kind::Object {
            // A Relay connection's `nodes` repeats its `edges`' nodes.
            let relay = t.field("edges").is_some();
            out.extend(
                t.fields()
                    .iter()
                    .filter(|f| !(relay && f.name == "nodes"))
                    .filter_map(|f| self.field(ty, f, levels, depth, path)),
            );
        } else {
            for concrete in self.schema.concrete(ty) {
                let children = self.children(&concrete.name, levels, depth, path);
                if children.len() > 1 {
                    out.push(Sel::On {
                        ty: concrete.name.clone(),
                        children,
                    });
                }
            }
        }
        out
    }
}

pub fn leaf(name: &str) -> Sel {
    Sel::Field {
        name: name.to_owned(),
        args: String::new(),
        ty: "String".to_owned(),
        children: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_costs_its_page_size_times_its_items() {
        let sel = Sel::Field {
            name: "patients".into(),
            args: "first: 10".into(),
            ty: "PatientConnection".into(),
            children: vec![leaf("totalCount"), leaf("__typename")],
        };
        assert_eq!(sel.cost(), 20);
        let mut text = String::new();
        sel.render(&mut text);
        assert_eq!(text, "patients(first: 10) { totalCount __typename }");
    }
}
