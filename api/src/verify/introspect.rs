//! The deployment's live schema, read by introspection: the probes are
//! generated from what the server really serves, so a field added
//! tomorrow is probed tomorrow without anyone keeping a list.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use super::VerifyError;
use super::http::Endpoint;

/// The scalars that carry an object's id: arguments of these types are
/// the ones filled with clinic B's ids.
const ID_SCALARS: &[&str] = &["ID", "UUID"];

/// The standard introspection query, with type references four wrappers
/// deep (`[X!]!` needs three) so that it stays well inside the server's
/// depth limit.
const INTROSPECTION: &str = "query VerifyIsolationIntrospection { __schema { \
    queryType { name } mutationType { name } subscriptionType { name } \
    types { kind name \
      fields(includeDeprecated: true) { name args { name defaultValue type { ...T } } type { ...T } } \
      inputFields { name defaultValue type { ...T } } \
      enumValues(includeDeprecated: true) { name } \
      possibleTypes { name } } } } \
    fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    Scalar,
    Object,
    Interface,
    Union,
    Enum,
    InputObject,
    List,
    NonNull,
}

/// A reference to a type, with its list and non-null wrappers.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeRef {
    pub kind: Kind,
    pub name: Option<String>,
    pub of_type: Option<Box<TypeRef>>,
}

impl TypeRef {
    /// The named type under every wrapper.
    pub fn named(&self) -> &str {
        match (&self.name, &self.of_type) {
            (Some(name), _) => name,
            (None, Some(inner)) => inner.named(),
            (None, None) => "",
        }
    }

    pub fn is_non_null(&self) -> bool {
        self.kind == Kind::NonNull
    }

    /// The type as a variable declaration writes it (`[UUID!]!`).
    pub fn render(&self) -> String {
        match (self.kind, &self.of_type) {
            (Kind::NonNull, Some(inner)) => format!("{}!", inner.render()),
            (Kind::List, Some(inner)) => format!("[{}]", inner.render()),
            _ => self.named().to_owned(),
        }
    }

    /// The type inside one non-null or list wrapper.
    pub fn inner(&self) -> Option<&TypeRef> {
        self.of_type.as_deref()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputValue {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: TypeRef,
    pub default_value: Option<String>,
}

impl InputValue {
    /// Must be given: non-null, with no default.
    pub fn is_required(&self) -> bool {
        self.ty.is_non_null() && self.default_value.is_none()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Field {
    pub name: String,
    #[serde(default)]
    pub args: Vec<InputValue>,
    #[serde(rename = "type")]
    pub ty: TypeRef,
}

impl Field {
    pub fn arg(&self, name: &str) -> Option<&InputValue> {
        self.args.iter().find(|a| a.name == name)
    }

    /// Whether the field can be selected with no argument given.
    pub fn needs_no_arguments(&self) -> bool {
        self.args.iter().all(|a| !a.is_required())
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Named {
    name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FullType {
    pub kind: Kind,
    pub name: String,
    pub fields: Option<Vec<Field>>,
    pub input_fields: Option<Vec<InputValue>>,
    enum_values: Option<Vec<Named>>,
    possible_types: Option<Vec<Named>>,
}

impl FullType {
    pub fn fields(&self) -> &[Field] {
        self.fields.as_deref().unwrap_or_default()
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields().iter().find(|f| f.name == name)
    }

    pub fn input_fields(&self) -> &[InputValue] {
        self.input_fields.as_deref().unwrap_or_default()
    }

    /// The first value of an enum (what a required enum argument gets).
    pub fn first_enum_value(&self) -> Option<&str> {
        self.enum_values
            .as_deref()
            .and_then(|v| v.first())
            .map(|v| v.name.as_str())
    }

    pub fn possible_types(&self) -> impl Iterator<Item = &str> {
        self.possible_types
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|t| t.name.as_str())
    }

    /// An object with an `id`: something the deployment stores, which a
    /// probe can name.
    pub fn is_entity(&self) -> bool {
        self.field("id").is_some_and(|f| is_id_scalar(f.ty.named()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSchema {
    query_type: Named,
    mutation_type: Option<Named>,
    subscription_type: Option<Named>,
    types: Vec<FullType>,
}

/// The schema, indexed by type name.
#[derive(Debug)]
pub struct Schema {
    pub query: String,
    pub mutation: Option<String>,
    pub subscription: Option<String>,
    types: BTreeMap<String, FullType>,
}

pub fn is_id_scalar(name: &str) -> bool {
    ID_SCALARS.contains(&name)
}

impl Schema {
    /// Reads the schema of the deployment `endpoint` reaches, as `token`'s
    /// caller.
    pub async fn read(endpoint: &Endpoint, token: &str) -> Result<Self, VerifyError> {
        let answer = endpoint.post(Some(token), INTROSPECTION, json!({})).await?;
        let Some(schema) = answer
            .body
            .get("data")
            .and_then(|d| d.get("__schema"))
            .filter(|s| !s.is_null())
        else {
            return Err(VerifyError::Introspection(format!(
                "HTTP {}: {} (is INTROSPECTION off on this deployment?)",
                answer.status,
                answer.error_summary()
            )));
        };
        Self::from_introspection(schema.clone())
    }

    /// The schema of an introspection answer's `__schema`.
    pub fn from_introspection(schema: serde_json::Value) -> Result<Self, VerifyError> {
        let raw: RawSchema = serde_json::from_value(schema)
            .map_err(|e| VerifyError::Introspection(format!("unexpected answer: {e}")))?;
        Ok(Self::from_raw(raw))
    }

    fn from_raw(raw: RawSchema) -> Self {
        Self {
            query: raw.query_type.name,
            mutation: raw.mutation_type.map(|t| t.name),
            subscription: raw.subscription_type.map(|t| t.name),
            types: raw.types.into_iter().map(|t| (t.name.clone(), t)).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&FullType> {
        self.types.get(name)
    }

    /// The fields of a root type (none when the schema has no such root).
    pub fn root_fields(&self, root: Option<&str>) -> &[Field] {
        root.and_then(|name| self.get(name))
            .map(FullType::fields)
            .unwrap_or_default()
    }

    /// Whether a value of this type holds an id somewhere: an id scalar, a
    /// list of them, or an input object with one inside (to `depth`
    /// levels, which also ends a cycle of input types).
    pub fn holds_id(&self, ty: &TypeRef, depth: usize) -> bool {
        let named = ty.named();
        if is_id_scalar(named) {
            return true;
        }
        match self.get(named) {
            Some(t) if t.kind == Kind::InputObject && depth > 0 => t
                .input_fields()
                .iter()
                .any(|f| self.holds_id(&f.ty, depth - 1)),
            _ => false,
        }
    }

    /// Every object type that may stand where `name` is named (itself, or
    /// the possible types of an interface or union).
    pub fn concrete(&self, name: &str) -> Vec<&FullType> {
        match self.get(name) {
            Some(t) if t.kind == Kind::Object => vec![t],
            Some(t) => t.possible_types().filter_map(|p| self.get(p)).collect(),
            None => Vec::new(),
        }
    }

    /// Entity types, by name.
    pub fn entity_names(&self) -> impl Iterator<Item = &str> {
        self.types
            .values()
            .filter(|t| t.kind == Kind::Object && !t.name.starts_with("__") && t.is_entity())
            .map(|t| t.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        let raw: RawSchema = serde_json::from_value(json!({
            "queryType": { "name": "Query" },
            "mutationType": null,
            "subscriptionType": null,
            "types": [
                { "kind": "OBJECT", "name": "Query", "fields": [
                    { "name": "patient", "args": [
                        { "name": "id", "defaultValue": null, "type": { "kind": "NON_NULL", "name": null, "ofType": { "kind": "SCALAR", "name": "UUID", "ofType": null } } }
                    ], "type": { "kind": "OBJECT", "name": "Patient", "ofType": null } }
                ], "inputFields": null, "enumValues": null, "possibleTypes": null },
                { "kind": "OBJECT", "name": "Patient", "fields": [
                    { "name": "id", "args": [], "type": { "kind": "NON_NULL", "name": null, "ofType": { "kind": "SCALAR", "name": "ID", "ofType": null } } }
                ], "inputFields": null, "enumValues": null, "possibleTypes": null },
                { "kind": "INPUT_OBJECT", "name": "Loop", "fields": null, "inputFields": [
                    { "name": "next", "defaultValue": null, "type": { "kind": "INPUT_OBJECT", "name": "Loop", "ofType": null } }
                ], "enumValues": null, "possibleTypes": null },
                { "kind": "INPUT_OBJECT", "name": "Filter", "fields": null, "inputFields": [
                    { "name": "ids", "defaultValue": "[]", "type": { "kind": "LIST", "name": null, "ofType": { "kind": "NON_NULL", "name": null, "ofType": { "kind": "SCALAR", "name": "UUID", "ofType": null } } } }
                ], "enumValues": null, "possibleTypes": null }
            ]
        }))
        .unwrap();
        Schema::from_raw(raw)
    }

    #[test]
    fn a_type_reference_renders_as_a_variable_declaration() {
        let s = schema();
        let filter = s.get("Filter").unwrap();
        assert_eq!(filter.input_fields()[0].ty.render(), "[UUID!]");
        let arg = &s.get("Query").unwrap().fields()[0].args[0];
        assert_eq!(arg.ty.render(), "UUID!");
        assert!(arg.is_required());
        assert!(!filter.input_fields()[0].is_required());
    }

    #[test]
    fn ids_are_found_inside_input_objects_and_a_cycle_ends() {
        let s = schema();
        let named = |n: &str| TypeRef {
            kind: Kind::InputObject,
            name: Some(n.to_owned()),
            of_type: None,
        };
        assert!(s.holds_id(&named("Filter"), 3));
        assert!(!s.holds_id(&named("Loop"), 3));
        assert!(s.get("Patient").unwrap().is_entity());
        assert_eq!(s.entity_names().collect::<Vec<_>>(), vec!["Patient"]);
    }
}
