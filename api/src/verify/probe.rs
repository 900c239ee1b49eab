//! Which probes to make, read off the schema: every query field taking an
//! id or a filter, `node`/`nodes` with ids of every type clinic B showed,
//! and every mutation with an id among its arguments (filled wholly with
//! B's ids, so that it must fail); each as a document with its variables.
//! [`judge`](super::judge) sends them and tells a leak.

use serde_json::{Map, Value, json};

use super::fill::{Filler, Placed, Pool};
use super::introspect::{Field, Kind, Schema, TypeRef, is_id_scalar};
use super::report::Skip;

/// Ids of one type given to `node(id:)`, and to a field taking an id.
const IDS_PER_TYPE: usize = 2;
/// Ids given to `nodes(ids:)` at once (the contract's maximum).
const NODES_AT_ONCE: usize = 100;

/// What a probe does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// A query field with an id argument.
    Query,
    /// `node(id:)`.
    Node,
    /// `nodes(ids:)`.
    Nodes,
    /// A query field's filter with one of B's ids or values in it.
    Filter,
    Mutation,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Node => "node",
            Self::Nodes => "nodes",
            Self::Filter => "filter",
            Self::Mutation => "mutation",
        }
    }
}

/// One call to make as clinic A, and its baseline.
#[derive(Debug, Clone)]
pub struct Probe {
    pub kind: ProbeKind,
    pub field: String,
    /// Which argument carries B's ids or values (`id`, `filter.providerId`).
    pub argument: String,
    pub document: String,
    pub variables: Value,
    /// Ids of B's placed, with where each came from.
    pub placed: Vec<Placed>,
    /// A value of B's data (not an id) placed in a filter: judged only by
    /// whether B's ids come back, since A's own rows may match it too.
    pub value: Option<String>,
}

/// The probes the schema calls for, and what was left out and why.
pub struct Plan {
    pub queries: Vec<Probe>,
    pub mutations: Vec<Probe>,
    pub skipped: Vec<Skip>,
}

/// Generates every probe from the schema and B's ids.
pub fn plan(schema: &Schema, pool: &Pool<'_>, read_only: bool) -> Plan {
    let mut plan = Plan {
        queries: Vec::new(),
        mutations: Vec::new(),
        skipped: Vec::new(),
    };
    for field in schema.root_fields(Some(&schema.query)) {
        if field.name.starts_with("__") || field.args.is_empty() {
            continue;
        }
        query_probes(schema, pool, field, &mut plan);
    }
    for field in schema.root_fields(schema.mutation.as_deref()) {
        mutation_probe(schema, pool, field, read_only, &mut plan);
    }
    for field in schema.root_fields(schema.subscription.as_deref()) {
        if field
            .args
            .iter()
            .any(|a| schema.holds_id(&a.ty, super::fill::INPUT_DEPTH))
        {
            plan.skipped.push(Skip::new(
                "subscription",
                &field.name,
                "subscriptions run over WebSocket and are not probed",
            ));
        }
    }
    plan
}

fn query_probes(schema: &Schema, pool: &Pool<'_>, field: &Field, plan: &mut Plan) {
    let returns = field.ty.named();
    let node_like = returns == "Node"
        || schema
            .get(returns)
            .is_some_and(|t| t.kind == Kind::Interface);
    let mut made = 0;
    for arg in &field.args {
        let named = arg.ty.named();
        if is_id_scalar(named) {
            let list = is_list(&arg.ty);
            if node_like && list {
                made += nodes_probes(pool, field, &arg.name, &mut plan.queries);
            } else if node_like {
                made += node_probes(pool, field, &arg.name, &mut plan.queries);
            } else {
                made += id_probes(pool, field, &arg.name, list, &mut plan.queries);
            }
        } else if schema
            .get(named)
            .is_some_and(|t| t.kind == Kind::InputObject)
        {
            made += filter_probes(schema, pool, field, &arg.name, named, &mut plan.queries);
        }
    }
    if made == 0 {
        plan.skipped.push(Skip::new(
            "query",
            &field.name,
            "takes no id, and no filter with an id or a value of clinic B's to try",
        ));
    }
}

fn is_list(ty: &TypeRef) -> bool {
    match (ty.kind, ty.inner()) {
        (Kind::List, _) => true,
        (Kind::NonNull, Some(inner)) => is_list(inner),
        _ => false,
    }
}

/// `node(id:)` with ids of every type B showed.
fn node_probes(pool: &Pool<'_>, field: &Field, arg: &str, out: &mut Vec<Probe>) -> usize {
    let mut made = 0;
    for (ty, ids) in &pool.b.ids_by_type {
        for id in ids.iter().take(IDS_PER_TYPE) {
            let placed = vec![Placed {
                path: arg.to_owned(),
                id: id.clone(),
                source: ty.clone(),
            }];
            out.push(single(
                pool,
                ProbeKind::Node,
                field,
                arg,
                Value::String(id.clone()),
                placed,
            ));
            made += 1;
        }
    }
    made
}

/// `nodes(ids:)` with every id B showed, a hundred at a time.
fn nodes_probes(pool: &Pool<'_>, field: &Field, arg: &str, out: &mut Vec<Probe>) -> usize {
    let all: Vec<Placed> = pool
        .b
        .ids_by_type
        .iter()
        .flat_map(|(ty, ids)| {
            ids.iter().map(move |id| Placed {
                path: arg.to_owned(),
                id: id.clone(),
                source: ty.clone(),
            })
        })
        .collect();
    let mut made = 0;
    for chunk in all.chunks(NODES_AT_ONCE) {
        let ids: Vec<Value> = chunk.iter().map(|p| Value::String(p.id.clone())).collect();
        out.push(single(
            pool,
            ProbeKind::Nodes,
            field,
            arg,
            Value::Array(ids),
            chunk.to_vec(),
        ));
        made += 1;
    }
    made
}

/// A field taking an id (`patient(id:)`): with up to two ids of each type
/// the argument's name points at.
fn id_probes(pool: &Pool<'_>, field: &Field, arg: &str, list: bool, out: &mut Vec<Probe>) -> usize {
    let candidates = pool.ids_for(arg, field.ty.named());
    let mut per_type: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut made = 0;
    for (id, source) in &candidates {
        let n = per_type.entry(source.as_str()).or_default();
        if *n >= IDS_PER_TYPE {
            continue;
        }
        *n += 1;
        let value = if list {
            json!([id])
        } else {
            Value::String(id.clone())
        };
        let placed = vec![Placed {
            path: arg.to_owned(),
            id: id.clone(),
            source: source.clone(),
        }];
        out.push(single(pool, ProbeKind::Query, field, arg, value, placed));
        made += 1;
    }
    made
}

/// A probe giving one argument (`arg`) a value, and every other required
/// argument a plausible one.
fn single(
    pool: &Pool<'_>,
    kind: ProbeKind,
    field: &Field,
    arg: &str,
    value: Value,
    placed: Vec<Placed>,
) -> Probe {
    let mut values = Map::new();
    values.insert(arg.to_owned(), value);
    let mut filler = Filler::new(pool, field.ty.named());
    for other in &field.args {
        if other.name != arg
            && other.is_required()
            && let Ok(Some(v)) = filler.argument(&other.name, other)
        {
            values.insert(other.name.clone(), v);
        }
    }
    let mut all = placed;
    all.extend(filler.placed);
    build(pool.schema, kind, field, arg, values, all, None)
}

/// A filter's id fields, one at a time, with B's ids; and its text and
/// enum fields with values only B's data held.
fn filter_probes(
    schema: &Schema,
    pool: &Pool<'_>,
    field: &Field,
    arg: &str,
    input: &str,
    out: &mut Vec<Probe>,
) -> usize {
    let Some(t) = schema.get(input) else {
        return 0;
    };
    let mut made = 0;
    for inner in t.input_fields() {
        let path = format!("{arg}.{}", inner.name);
        if is_id_scalar(inner.ty.named()) {
            let candidates = pool.ids_for(&inner.name, field.ty.named());
            for (id, source) in candidates.iter().take(IDS_PER_TYPE) {
                let value = if is_list(&inner.ty) {
                    json!([id])
                } else {
                    Value::String(id.clone())
                };
                let placed = vec![Placed {
                    path: path.clone(),
                    id: id.clone(),
                    source: source.clone(),
                }];
                let mut filter = Map::new();
                filter.insert(inner.name.clone(), value);
                let mut values = Map::new();
                values.insert(arg.to_owned(), Value::Object(filter));
                out.push(build(
                    schema,
                    ProbeKind::Filter,
                    field,
                    &path,
                    values,
                    placed,
                    None,
                ));
                made += 1;
            }
        } else if inner.ty.named() == "String"
            && let Some(value) = only_b_value(pool, &inner.name)
        {
            let mut filter = Map::new();
            filter.insert(inner.name.clone(), Value::String(value.clone()));
            let mut values = Map::new();
            values.insert(arg.to_owned(), Value::Object(filter));
            out.push(build(
                schema,
                ProbeKind::Filter,
                field,
                &path,
                values,
                Vec::new(),
                Some(value),
            ));
            made += 1;
        }
    }
    made
}

/// A text value B's data held in a field of this name, which A's did not.
fn only_b_value(pool: &Pool<'_>, name: &str) -> Option<String> {
    let theirs = pool.a.values.get(name);
    pool.b
        .values
        .get(name)?
        .iter()
        .filter(|v| !theirs.is_some_and(|a| a.contains(v)))
        .find_map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
}

fn mutation_probe(
    schema: &Schema,
    pool: &Pool<'_>,
    field: &Field,
    read_only: bool,
    plan: &mut Plan,
) {
    let skip = |reason: &str| Skip::new("mutation", &field.name, reason);
    if field
        .args
        .iter()
        .any(|a| a.name.to_ascii_lowercase().contains("password"))
    {
        plan.skipped.push(skip(
            "exchanges credentials: it names no clinic's object, and a wrong password would count against a real account",
        ));
        return;
    }
    if !field
        .args
        .iter()
        .any(|a| schema.holds_id(&a.ty, super::fill::INPUT_DEPTH))
    {
        plan.skipped.push(skip(
            "takes no id: it could only act on clinic A's own data (a create would succeed there)",
        ));
        return;
    }
    if read_only {
        plan.skipped.push(skip("--read-only: no mutation is sent"));
        return;
    }
    let mut filler = Filler::new(pool, field.ty.named());
    let mut values = Map::new();
    for arg in &field.args {
        match filler.argument(&arg.name, arg) {
            Ok(Some(v)) => {
                values.insert(arg.name.clone(), v);
            }
            Ok(None) => {}
            Err(e) => {
                plan.skipped.push(skip(&format!("cannot be filled: {e}")));
                return;
            }
        }
    }
    let argument = filler
        .placed
        .iter()
        .map(|p| p.path.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let probe = build(
        schema,
        ProbeKind::Mutation,
        field,
        &argument,
        values,
        filler.placed,
        None,
    );
    plan.mutations.push(probe);
}

/// The operation's text: each argument given travels as a variable of
/// the argument's own type.
fn build(
    schema: &Schema,
    kind: ProbeKind,
    field: &Field,
    argument: &str,
    values: Map<String, Value>,
    placed: Vec<Placed>,
    value: Option<String>,
) -> Probe {
    // Named apart, so that a deployment's metrics and logs tell the
    // probes' mutations from their queries.
    let (operation, name) = if kind == ProbeKind::Mutation {
        ("mutation", "VerifyIsolationMutation")
    } else {
        ("query", "VerifyIsolationProbe")
    };
    let mut declarations = Vec::new();
    let mut arguments = Vec::new();
    for arg in &field.args {
        if values.contains_key(&arg.name) {
            declarations.push(format!("${}: {}", arg.name, arg.ty.render()));
            arguments.push(format!("{0}: ${0}", arg.name));
        }
    }
    let selection = result_selection(schema, field.ty.named(), 0);
    let mut document = format!("{operation} {name}");
    if !declarations.is_empty() {
        document.push_str(&format!("({})", declarations.join(", ")));
    }
    document.push_str(&format!(" {{ {}", field.name));
    if !arguments.is_empty() {
        document.push_str(&format!("({})", arguments.join(", ")));
    }
    if !selection.is_empty() {
        document.push_str(&format!(" {{ {selection} }}"));
    }
    document.push_str(" }");
    Probe {
        kind,
        field: field.name.clone(),
        argument: argument.to_owned(),
        document,
        variables: Value::Object(values),
        placed,
        value,
    }
}

/// What a probe selects of an answer: every plain field at the top, ids
/// below it, two levels down — enough to tell an object from a null and
/// to see any id that comes back.
fn result_selection(schema: &Schema, ty: &str, depth: u32) -> String {
    let Some(t) = schema.get(ty) else {
        return String::new();
    };
    let mut parts = vec!["__typename".to_owned()];
    match t.kind {
        Kind::Scalar | Kind::Enum | Kind::InputObject | Kind::List | Kind::NonNull => {
            return String::new();
        }
        Kind::Interface | Kind::Union => {
            for concrete in schema.concrete(ty) {
                if concrete.is_entity() {
                    parts.push(format!("... on {} {{ id }}", concrete.name));
                }
            }
        }
        Kind::Object => {
            for f in t.fields() {
                if f.name.starts_with("__") || !f.needs_no_arguments() {
                    continue;
                }
                let named = f.ty.named();
                match schema.get(named).map(|n| n.kind) {
                    Some(Kind::Scalar | Kind::Enum) if depth == 0 || is_id_scalar(named) => {
                        parts.push(f.name.clone());
                    }
                    Some(Kind::Object | Kind::Interface | Kind::Union) if depth < 2 => {
                        let inner = result_selection(schema, named, depth + 1);
                        if inner != "__typename" && !inner.is_empty() {
                            parts.push(format!("{} {{ {inner} }}", f.name));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    parts.join(" ")
}
