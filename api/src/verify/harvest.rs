//! Reading what a clinic's token can see: every root query that needs no
//! argument, selected a few objects deep, yields the clinic's ids (by
//! type, and by the name of the field that held them) and sample values
//! for plausible arguments. The same reading, repeated, is the snapshot
//! that proves clinic B unchanged.
//!
//! Each root field is read twice: broadly (up to a hundred items of a
//! list, their own fields) and deeply (a few items, with the objects they
//! hold a few levels down, where types no root lists are found). The
//! selections are generated from the schema and fitted to the server's
//! limits: pages are sized by an estimate of the complexity, a query
//! refused as too complex is sent again with smaller pages, one refused
//! as too deep with fewer levels, and a field that fails (e.g. one
//! refused to this caller) is left out, so one failing field cannot null
//! out its whole list.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::VerifyError;
use super::http::{Answer, Endpoint};
use super::introspect::{Field, Schema, is_id_scalar};
use super::select::{Builder, Sel, first_of};

/// Levels of stored objects (types with an id) a deep query goes down; a
/// broad one reads only the objects a root field lists.
const DEEP_LEVELS: u32 = 3;
/// Items of a root list a deep query reads (the broad one reads up to
/// [`MAX_FIRST`]).
const DEEP_FIRST: u64 = 3;
/// Selection depth never exceeded (the server's default limit is 15).
const MAX_DEPTH: u32 = 12;
/// The complexity aimed at first (the server's default limit is 5,000).
const COMPLEXITY_BUDGET: u64 = 4_000;
/// Page size of a root list, at most (the contract's maximum).
const MAX_FIRST: u64 = 100;
/// Sample values kept per field name.
const VALUES_PER_FIELD: usize = 5;
/// Rounds of leaving out failing fields before a root query is given up.
const ATTEMPTS: usize = 12;

/// One root query of the harvest, fitted to the server's limits.
#[derive(Debug, Clone)]
struct RootQuery {
    /// `query.<field>`, or `query.<field>.deep`.
    key: String,
    sel: Sel,
    text: String,
}

/// The harvest's queries: found once (with B's token), then repeated
/// unchanged, so that two harvests compare like for like.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    roots: Vec<RootQuery>,
    /// Root fields and fields left out, and why.
    pub notes: Vec<String>,
}

/// An object as harvested: its type and its fields, with each nested
/// object that has an id replaced by a reference to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub type_name: String,
    pub fields: Map<String, Value>,
}

/// What one token could see.
#[derive(Debug, Clone, Default)]
pub struct Harvest {
    /// Every object, by key: `Type:id`, or `query.<field>` for what a root
    /// field answered.
    pub objects: BTreeMap<String, Record>,
    /// Ids of objects, by type, in the order found.
    pub ids_by_type: BTreeMap<String, Vec<String>>,
    /// Values of id-typed fields other than `id` (`patientId`, ...), by
    /// field name.
    pub id_fields: BTreeMap<String, Vec<String>>,
    /// Sample values of other scalar fields, by field name.
    pub values: BTreeMap<String, Vec<Value>>,
}

impl Harvest {
    /// Every id seen, of any type or field.
    pub fn all_ids(&self) -> BTreeSet<&str> {
        self.ids_by_type
            .values()
            .chain(self.id_fields.values())
            .flatten()
            .map(String::as_str)
            .collect()
    }

    pub fn id_count(&self) -> usize {
        self.ids_by_type.values().map(Vec::len).sum()
    }

    /// This harvest without the ids in `excluded` (objects both clinics
    /// see, such as global documents, are nobody's secret).
    pub fn without_ids(&self, excluded: &BTreeSet<String>) -> Harvest {
        let keep = |ids: &Vec<String>| -> Vec<String> {
            ids.iter()
                .filter(|id| !excluded.contains(*id))
                .cloned()
                .collect()
        };
        let retain = |m: &BTreeMap<String, Vec<String>>| {
            m.iter()
                .map(|(k, v)| (k.clone(), keep(v)))
                .filter(|(_, v)| !v.is_empty())
                .collect()
        };
        Harvest {
            objects: self.objects.clone(),
            ids_by_type: retain(&self.ids_by_type),
            id_fields: retain(&self.id_fields),
            values: self.values.clone(),
        }
    }
}

impl Plan {
    /// Finds the harvest's queries by sending them as `token`'s caller and
    /// fitting each to the server's limits; returns the plan and what this
    /// first reading saw.
    pub async fn discover(
        schema: &Schema,
        endpoint: &Endpoint,
        token: &str,
    ) -> Result<(Plan, Harvest), VerifyError> {
        let mut plan = Plan::default();
        let mut harvest = Harvest::default();
        for field in schema.root_fields(Some(&schema.query)) {
            if field.name.starts_with("__") || !field.needs_no_arguments() {
                continue;
            }
            let mut excluded = BTreeSet::new();
            for shape in [Shape::Broad, Shape::Deep] {
                let found = fit(
                    schema,
                    endpoint,
                    token,
                    field,
                    shape,
                    &mut excluded,
                    &mut plan.notes,
                )
                .await?;
                match found {
                    Some((root, answer)) => {
                        collect(&root, answer.data(), &mut harvest, schema);
                        plan.roots.push(root);
                    }
                    // Refused as a whole: no deeper reading either.
                    None if excluded.contains(&(schema.query.clone(), field.name.clone())) => break,
                    None => {}
                }
            }
        }
        Ok((plan, harvest))
    }

    /// Reads again, with the same queries, as `token`'s caller. Errors are
    /// ignored: what was answered is what was seen.
    pub async fn read(
        &self,
        schema: &Schema,
        endpoint: &Endpoint,
        token: &str,
    ) -> Result<Harvest, VerifyError> {
        let mut harvest = Harvest::default();
        for root in &self.roots {
            let answer = endpoint.post(Some(token), &root.text, json!({})).await?;
            collect(root, answer.data(), &mut harvest, schema);
        }
        Ok(harvest)
    }

    pub fn root_count(&self) -> usize {
        self.roots.len()
    }
}

/// How a root field is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Many items, their own fields.
    Broad,
    /// A few items, and what they hold a few levels down.
    Deep,
}

/// Finds a query of `shape` for one root field that the server accepts,
/// leaving out what fails (and noting it in `excluded`); `None` when
/// nothing of it can be read, or nothing deeper than the broad reading.
#[allow(clippy::too_many_arguments)]
async fn fit(
    schema: &Schema,
    endpoint: &Endpoint,
    token: &str,
    field: &Field,
    shape: Shape,
    excluded: &mut BTreeSet<(String, String)>,
    notes: &mut Vec<String>,
) -> Result<Option<(RootQuery, Answer)>, VerifyError> {
    let query = schema.query.clone();
    let (mut levels, max_first, key) = match shape {
        Shape::Broad => (1, MAX_FIRST, format!("query.{}", field.name)),
        Shape::Deep => (
            DEEP_LEVELS,
            DEEP_FIRST,
            format!("query.{}.deep", field.name),
        ),
    };
    let mut budget = COMPLEXITY_BUDGET;
    let mut attempts = 0;
    while attempts < ATTEMPTS {
        // A deep reading that would not go deeper than the broad one adds
        // nothing.
        if shape == Shape::Deep && levels < 2 {
            return Ok(None);
        }
        let builder = Builder { schema, excluded };
        let Some(mut sel) = builder.field(&query, field, levels, MAX_DEPTH, &mut Vec::new()) else {
            if shape == Shape::Broad {
                notes.push(format!("{}: nothing to select", field.name));
            }
            return Ok(None);
        };
        if let Sel::Field { args, children, .. } = &mut sel
            && first_of(args).is_some()
        {
            let per_item: u64 = children.iter().map(Sel::cost).sum::<u64>().max(1);
            if per_item > budget && levels > 1 {
                // Too much for even one item: one level less.
                levels -= 1;
                continue;
            }
            *args = format!("first: {}", (budget / per_item).clamp(1, max_first));
        }
        attempts += 1;
        let mut text = String::from("query VerifyIsolationHarvest { ");
        sel.render(&mut text);
        text.push_str(" }");
        let answer = endpoint.post(Some(token), &text, json!({})).await?;
        match answer.errors().iter().find_map(limit_reason) {
            Some(Limit::Complexity) => {
                if matches!(&sel, Sel::Field { args, .. } if first_of(args).is_none_or(|f| f <= 1))
                    || budget <= 1
                {
                    if levels <= 1 {
                        break;
                    }
                    levels -= 1;
                } else {
                    budget /= 2;
                }
                continue;
            }
            Some(Limit::Depth) => {
                if levels <= 1 {
                    break;
                }
                levels -= 1;
                continue;
            }
            None => {}
        }
        let mut failed = Vec::new();
        for error in answer.errors() {
            let code = error
                .pointer("/extensions/code")
                .and_then(Value::as_str)
                .unwrap_or("<no code>");
            let Some(path) = error.get("path").and_then(Value::as_array) else {
                continue;
            };
            for (parent, name) in owners_of(schema, &query, path) {
                if excluded.insert((parent.clone(), name.clone())) {
                    failed.push(format!("{parent}.{name} ({code})"));
                }
            }
        }
        if failed.is_empty() {
            if excluded.contains(&(query.clone(), field.name.clone())) {
                return Ok(None);
            }
            let root = RootQuery { key, sel, text };
            return Ok(Some((root, answer)));
        }
        if excluded.contains(&(query.clone(), field.name.clone())) {
            notes.push(format!("{}: refused ({})", field.name, failed.join(", ")));
            return Ok(None);
        }
        notes.push(format!("{}: left out {}", field.name, failed.join(", ")));
    }
    notes.push(format!(
        "{}: no query the server accepts was found; not read",
        field.name
    ));
    Ok(None)
}

enum Limit {
    Complexity,
    Depth,
}

/// Whether an error is the server refusing the query's size.
fn limit_reason(error: &Value) -> Option<Limit> {
    let reason = error
        .pointer("/extensions/reason")
        .and_then(Value::as_str)
        .unwrap_or("");
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    if reason == "MAX_COMPLEXITY" || message.contains("too complex") {
        Some(Limit::Complexity)
    } else if reason == "MAX_DEPTH" || message.contains("nested too deep") {
        Some(Limit::Depth)
    } else {
        None
    }
}

/// The (type, field) pairs an error's path may name: the path walked
/// through the schema from the root; through an interface or union, the
/// field of each possible type that has it.
fn owners_of(schema: &Schema, root: &str, path: &[Value]) -> Vec<(String, String)> {
    let mut current = vec![root.to_owned()];
    let mut owners = Vec::new();
    let names: Vec<&str> = path.iter().filter_map(Value::as_str).collect();
    for (i, name) in names.iter().enumerate() {
        let mut next = Vec::new();
        owners.clear();
        for ty in &current {
            for concrete in schema.concrete(ty) {
                if let Some(f) = concrete.field(name) {
                    owners.push((concrete.name.clone(), (*name).to_owned()));
                    next.push(f.ty.named().to_owned());
                }
            }
        }
        if i + 1 < names.len() {
            next.sort();
            next.dedup();
            current = next;
        }
    }
    owners
}

/// Adds what one root query answered to `harvest`.
fn collect(root: &RootQuery, data: &Value, harvest: &mut Harvest, schema: &Schema) {
    let Sel::Field { name, .. } = &root.sel else {
        return;
    };
    let Some(value) = data.get(name) else {
        return;
    };
    let content = walk(&root.sel, value, harvest, schema);
    let fields = match content {
        Value::Object(map) => map,
        other => {
            let mut map = Map::new();
            map.insert("value".to_owned(), other);
            map
        }
    };
    harvest.objects.insert(
        root.key.clone(),
        Record {
            type_name: root.key.clone(),
            fields,
        },
    );
}

/// The content of `value`, selected by `sel`: scalars as they are, an
/// object with an id as a reference (`{"ref": "Type:id"}`, the object
/// itself stored in `harvest.objects`), any other object inline.
fn walk(sel: &Sel, value: &Value, harvest: &mut Harvest, schema: &Schema) -> Value {
    let (name, ty, children) = match sel {
        Sel::Field {
            name, ty, children, ..
        } => (name.as_str(), ty.as_str(), children),
        Sel::On { .. } => return Value::Null,
    };
    match value {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| walk(sel, item, harvest, schema))
                .collect(),
        ),
        Value::Object(obj) if !children.is_empty() => object(children, ty, obj, harvest, schema),
        Value::Null => Value::Null,
        scalar => {
            note_scalar(name, ty, scalar, harvest);
            scalar.clone()
        }
    }
}

fn note_scalar(name: &str, ty: &str, value: &Value, harvest: &mut Harvest) {
    if is_id_scalar(ty) {
        if name != "id"
            && let Some(id) = value.as_str()
        {
            push_unique(harvest.id_fields.entry(name.to_owned()).or_default(), id);
        }
        return;
    }
    if name == "__typename" || value.is_null() {
        return;
    }
    let samples = harvest.values.entry(name.to_owned()).or_default();
    if samples.len() < VALUES_PER_FIELD && !samples.contains(value) {
        samples.push(value.clone());
    }
}

fn push_unique(list: &mut Vec<String>, id: &str) {
    if !list.iter().any(|x| x == id) {
        list.push(id.to_owned());
    }
}

fn object(
    children: &[Sel],
    static_type: &str,
    obj: &Map<String, Value>,
    harvest: &mut Harvest,
    schema: &Schema,
) -> Value {
    let type_name = obj
        .get("__typename")
        .and_then(Value::as_str)
        .unwrap_or(static_type)
        .to_owned();
    let mut fields = Map::new();
    for child in children {
        match child {
            Sel::Field { name, .. } if name != "__typename" => {
                if let Some(v) = obj.get(name) {
                    let content = walk(child, v, harvest, schema);
                    fields.insert(name.clone(), content);
                }
            }
            Sel::On {
                ty,
                children: inner,
            } if *ty == type_name => {
                if let Value::Object(more) = object(inner, ty, obj, harvest, schema) {
                    fields.extend(more);
                }
            }
            _ => {}
        }
    }
    let entity = schema.get(&type_name).is_some_and(|t| t.is_entity());
    match (entity, obj.get("id").and_then(Value::as_str)) {
        (true, Some(id)) => {
            let key = format!("{type_name}:{id}");
            push_unique(
                harvest.ids_by_type.entry(type_name.clone()).or_default(),
                id,
            );
            let record = harvest
                .objects
                .entry(key.clone())
                .or_insert_with(|| Record {
                    type_name,
                    fields: Map::new(),
                });
            for (k, v) in fields {
                record.fields.entry(k).or_insert(v);
            }
            json!({ "ref": key })
        }
        _ => Value::Object(fields),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excluded_ids_are_left_out_of_types_and_fields() {
        let mut b = Harvest::default();
        b.ids_by_type
            .insert("ConsentDocument".into(), vec!["shared".into()]);
        b.ids_by_type
            .insert("Patient".into(), vec!["mine".into(), "shared".into()]);
        b.id_fields
            .insert("documentId".into(), vec!["shared".into()]);
        let only_b = b.without_ids(&["shared".to_owned()].into());
        assert_eq!(only_b.ids_by_type.len(), 1);
        assert_eq!(only_b.ids_by_type["Patient"], vec!["mine".to_owned()]);
        assert!(only_b.id_fields.is_empty());
    }
}
