//! Probes over the API: clinic A's token with clinic B's ids, each
//! compared with the same call carrying a random id that exists nowhere.
//!
//! A foreign id must look exactly like a missing one: the same HTTP
//! status, the same errors (codes, reasons, fields, messages with the id
//! itself masked), the same data. Any difference is a leak, and so is any
//! of B's ids anywhere in an answer. Which calls are made is read off the
//! schema: every query field taking an id or a filter, `node`/`nodes`
//! with ids of every type B showed, and every mutation with an id among
//! its arguments (filled wholly with B's ids, so that it must fail).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::VerifyError;
use super::fill::{Filler, Placed, Pool, placed_ids};
use super::http::{Answer, Endpoint};
use super::introspect::{Field, Kind, Schema, TypeRef, is_id_scalar};
use super::report::{ProbeRecord, Skip, Timing, Verdict};

/// Ids of one type given to `node(id:)`, and to a field taking an id.
const IDS_PER_TYPE: usize = 2;
/// Ids given to `nodes(ids:)` at once (the contract's maximum).
const NODES_AT_ONCE: usize = 100;
/// A probe this many times slower than its baseline (and by at least
/// [`SLOW_BY`]) is timed again, and reported if it still is.
const SLOW_FACTOR: u32 = 3;
const SLOW_BY: Duration = Duration::from_millis(25);
/// Characters of an answer kept in the report.
const SHOWN: usize = 600;

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

/// The probes' runner: as clinic A, each probe after its baseline.
pub struct Runner<'a> {
    pub endpoint: &'a Endpoint,
    pub token_a: &'a str,
    /// Every id clinic B showed that clinic A does not see.
    pub b_ids: BTreeSet<String>,
}

impl Runner<'_> {
    pub async fn run(&self, probe: &Probe) -> Result<ProbeRecord, VerifyError> {
        let randoms: Vec<String> = probe
            .placed
            .iter()
            .map(|_| uuid::Uuid::from(ulid::Ulid::generate()).to_string())
            .collect();
        let ids = placed_ids(&probe.placed);
        let mut baseline_vars = probe.variables.clone();
        let mut masks_b = Vec::new();
        let mut masks_r = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let random = randoms.get(i).cloned().unwrap_or_default();
            replace_strings(&mut baseline_vars, id, &random);
            masks_b.push((id.clone(), format!("<id{}>", i + 1)));
            masks_r.push((random, format!("<id{}>", i + 1)));
        }
        if let Some(value) = &probe.value {
            let random = same_shape(value);
            replace_strings(&mut baseline_vars, value, &random);
            masks_b.push((value.clone(), "<value>".to_owned()));
            masks_r.push((random, "<value>".to_owned()));
        }
        let mut baseline = self.call(probe, baseline_vars.clone()).await?;
        let mut actual = self.call(probe, probe.variables.clone()).await?;
        let mut slow = is_slow(&actual, &baseline);
        if slow {
            // Timed again: a single pair of timings is noisy.
            let again_b = self.call(probe, baseline_vars).await?;
            let again_a = self.call(probe, probe.variables.clone()).await?;
            baseline.elapsed = baseline.elapsed.min(again_b.elapsed);
            actual.elapsed = actual.elapsed.min(again_a.elapsed);
            slow = is_slow(&actual, &baseline);
        }
        let expected = outcome(&baseline, &masks_r);
        let got = outcome(&actual, &masks_b);
        let mut findings = Vec::new();
        if expected["status"] != got["status"] {
            findings.push(format!(
                "HTTP status {} where a missing id answers {}",
                got["status"], expected["status"]
            ));
        }
        if expected["errors"] != got["errors"] {
            findings.push("errors differ from a missing id's".to_owned());
        }
        if probe.value.is_none() && expected["data"] != got["data"] {
            findings.push("data differs from a missing id's".to_owned());
        }
        let sent: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        let mut seen = Vec::new();
        foreign_ids(actual.data(), &self.b_ids, &sent, &mut seen);
        if !seen.is_empty() {
            findings.push(format!(
                "the answer holds clinic B's id(s) {}",
                seen.into_iter().take(5).collect::<Vec<_>>().join(", ")
            ));
        }
        let mut warnings = Vec::new();
        if slow {
            warnings.push(format!(
                "slow: {} ms against {} ms for a missing id (a timing difference can tell existence apart)",
                actual.elapsed.as_millis(),
                baseline.elapsed.as_millis()
            ));
        }
        if findings.is_empty()
            && let Some(weak) = refused_elsewhere(&baseline, probe)
        {
            warnings.push(weak);
        }
        let sources: Vec<String> = probe
            .placed
            .iter()
            .map(|p| format!("{}: {} ({})", p.path, p.id, p.source))
            .collect();
        Ok(ProbeRecord {
            kind: probe.kind.as_str().to_owned(),
            target: probe.field.clone(),
            argument: Some(probe.argument.clone()).filter(|a| !a.is_empty()),
            ids,
            sources,
            variables: Some(probe.variables.clone()),
            expected: shorten(expected),
            actual: shorten(got),
            verdict: if findings.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Leak
            },
            detail: (!findings.is_empty()).then(|| findings.join("; ")),
            warnings,
            timing: Some(Timing {
                probe_ms: actual.elapsed.as_secs_f64() * 1000.0,
                baseline_ms: Some(baseline.elapsed.as_secs_f64() * 1000.0),
            }),
        })
    }

    async fn call(&self, probe: &Probe, variables: Value) -> Result<Answer, VerifyError> {
        self.endpoint
            .post(Some(self.token_a), &probe.document, variables)
            .await
    }
}

/// A random text of the same shape as `value` (each digit another digit,
/// each letter another letter of the same case, the rest kept): it passes
/// the same format checks (an MRN stays an MRN) and exists nowhere.
fn same_shape(value: &str) -> String {
    // Five random bits per character, from the random part of ULIDs.
    let (mut bits, mut left) = (0u128, 0u32);
    value
        .chars()
        .map(|c| {
            if left < 5 {
                (bits, left) = (ulid::Ulid::generate().random(), 80);
            }
            let r = (bits & 31) as u8 % 26;
            (bits, left) = (bits >> 5, left - 5);
            if c.is_ascii_digit() {
                char::from(b'0' + r % 10)
            } else if c.is_ascii_lowercase() {
                char::from(b'a' + r)
            } else if c.is_ascii_uppercase() {
                char::from(b'A' + r)
            } else {
                c
            }
        })
        .collect()
}

fn is_slow(actual: &Answer, baseline: &Answer) -> bool {
    actual.elapsed >= baseline.elapsed * SLOW_FACTOR && actual.elapsed >= baseline.elapsed + SLOW_BY
}

/// A mutation refused for another argument before any id was looked at
/// (the baseline says BAD_USER_INPUT on a field that holds no id): it
/// proves less than one refused as NOT_FOUND.
fn refused_elsewhere(baseline: &Answer, probe: &Probe) -> Option<String> {
    if probe.kind != ProbeKind::Mutation {
        return None;
    }
    let error = baseline.errors().first()?;
    if error.pointer("/extensions/code").and_then(Value::as_str) != Some("BAD_USER_INPUT") {
        return None;
    }
    let field = error.pointer("/extensions/field").and_then(Value::as_str)?;
    let holds_id = probe.placed.iter().any(|p| {
        p.path == field || p.path.ends_with(&format!(".{field}")) || field.ends_with(&p.path)
    });
    (!holds_id).then(|| {
        format!("inconclusive: refused for `{field}` (not an id) before any id was looked at")
    })
}

/// An answer as compared: status, errors (without their request ids) and
/// data, with the probe's ids masked wherever they appear.
fn outcome(answer: &Answer, masks: &[(String, String)]) -> Value {
    let errors: Vec<Value> = answer
        .errors()
        .iter()
        .map(|e| {
            let mut shape = json!({
                "code": e.pointer("/extensions/code"),
                "reason": e.pointer("/extensions/reason"),
                "field": e.pointer("/extensions/field"),
                "message": e.get("message"),
                "path": e.get("path"),
            });
            mask(&mut shape, masks);
            shape
        })
        .collect();
    let mut data = answer.data().clone();
    mask(&mut data, masks);
    let mut sorted = errors;
    sorted.sort_by_key(|e| e.to_string());
    json!({ "status": answer.status, "errors": sorted, "data": data })
}

/// Replaces each masked text (an id, in its usual and its bare form) in
/// every string of `value`.
fn mask(value: &mut Value, masks: &[(String, String)]) {
    match value {
        Value::String(s) => {
            for (text, token) in masks {
                if text.is_empty() {
                    continue;
                }
                *s = s.replace(text.as_str(), token);
                let bare = text.replace('-', "");
                if bare.len() == 32 {
                    *s = s.replace(&bare, token);
                    *s = s.replace(&text.to_ascii_uppercase(), token);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask(v, masks)),
        Value::Object(map) => map.values_mut().for_each(|v| mask(v, masks)),
        _ => {}
    }
}

fn replace_strings(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(s) if s == from => *s = to.to_owned(),
        Value::Array(items) => items.iter_mut().for_each(|v| replace_strings(v, from, to)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_strings(v, from, to)),
        _ => {}
    }
}

/// B's ids in an answer, other than those the probe itself sent.
fn foreign_ids(
    value: &Value,
    b_ids: &BTreeSet<String>,
    sent: &BTreeSet<&str>,
    out: &mut Vec<String>,
) {
    match value {
        Value::String(s) if b_ids.contains(s) && !sent.contains(s.as_str()) && !out.contains(s) => {
            out.push(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|v| foreign_ids(v, b_ids, sent, out)),
        Value::Object(map) => map.values().for_each(|v| foreign_ids(v, b_ids, sent, out)),
        _ => {}
    }
}

/// An answer for the report: whole when short, else its start.
fn shorten(value: Value) -> Value {
    let text = value.to_string();
    if text.len() <= SHOWN {
        return value;
    }
    let cut: String = text.chars().take(SHOWN).collect();
    Value::String(format!("{cut}…"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_masked_in_messages_in_every_form() {
        let id = "01a22274-b8dc-45d3-1452-5d194a13b283";
        let mut v = json!({ "message": format!("no patient {id} / {} / {}", id.replace('-', ""), id.to_ascii_uppercase()) });
        mask(&mut v, &[(id.to_owned(), "<id1>".to_owned())]);
        assert_eq!(v["message"], "no patient <id1> / <id1> / <id1>");
    }

    #[test]
    fn ids_of_b_are_found_anywhere_in_an_answer_except_those_sent() {
        let b: BTreeSet<String> = ["b1".to_owned(), "b2".to_owned()].into();
        let sent: BTreeSet<&str> = ["b1"].into();
        let mut out = Vec::new();
        foreign_ids(
            &json!({ "x": [{ "id": "b1" }, { "owner": { "id": "b2" } }, "a1"] }),
            &b,
            &sent,
            &mut out,
        );
        assert_eq!(out, vec!["b2".to_owned()]);
    }

    #[test]
    fn outcomes_compare_without_request_ids_and_with_ids_masked() {
        let answer = |id: &str, request: &str| Answer {
            status: 200,
            body: json!({ "data": null, "errors": [{ "message": format!("no {id}"), "path": ["patient"],
                "extensions": { "code": "NOT_FOUND", "requestId": request } }] }),
            elapsed: Duration::from_millis(1),
        };
        let a = outcome(&answer("b-id", "r1"), &[("b-id".into(), "<id1>".into())]);
        let b = outcome(
            &answer("random", "r2"),
            &[("random".into(), "<id1>".into())],
        );
        assert_eq!(a, b);
        let c = outcome(&answer("b-id", "r3"), &[]);
        assert_ne!(a, c);
    }

    #[test]
    fn a_value_keeps_its_shape_when_made_up() {
        let made = same_shape("LS-0002 ab");
        assert_eq!(made.len(), 10);
        assert_eq!(&made[2..3], "-");
        assert!(made[..2].chars().all(|c| c.is_ascii_uppercase()));
        assert!(made[3..7].chars().all(|c| c.is_ascii_digit()));
        assert!(made[8..].chars().all(|c| c.is_ascii_lowercase()));
        assert_ne!(same_shape("LS-0002-LS-0002"), same_shape("LS-0002-LS-0002"));
    }

    #[test]
    fn only_a_clearly_slower_probe_is_slow() {
        let at = |ms| Answer {
            status: 200,
            body: Value::Null,
            elapsed: Duration::from_millis(ms),
        };
        assert!(is_slow(&at(100), &at(10)));
        assert!(!is_slow(&at(12), &at(3)));
        assert!(!is_slow(&at(40), &at(20)));
    }
}
