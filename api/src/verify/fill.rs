//! Argument values for probes: clinic B's ids wherever an id goes, and
//! plausible values everywhere else, so that a refusal comes from the id
//! and not from a malformed value a server checks first.
//!
//! An id argument gets an id of the type its name points at (`patientId`:
//! a Patient; `id`: what the field returns), else a value B's data held
//! in a field of the same name, else any id of B's. Other scalars get a
//! value B's data (else A's) held in a field of the same (or a shorter,
//! trailing) name, else a default of their type; dates lie in the future,
//! each one later than the one before, so that a "from" comes before its
//! "to". An optional value is given only when it holds an id, or when the
//! data held a value under its very name (a licence's `issuingState`).

use std::collections::BTreeSet;

use chrono::{Duration, Timelike, Utc};
use serde_json::{Map, Value, json};

use super::harvest::Harvest;
use super::introspect::{InputValue, Kind, Schema, TypeRef, is_id_scalar};

/// Input objects nested deeper than this are not filled (and end a cycle).
pub const INPUT_DEPTH: usize = 4;

/// Where a probe's id came from, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The argument path (`input.patientId`).
    pub path: String,
    pub id: String,
    /// `Patient`, `field patientId`, or `Patient, as any id`.
    pub source: String,
}

/// Clinic B's ids to probe with (not those both clinics see alike), and
/// both clinics' sample values.
pub struct Pool<'a> {
    pub schema: &'a Schema,
    /// B's harvest without A's ids.
    pub b: &'a Harvest,
    /// A's harvest, to prefer values only B has.
    pub a: &'a Harvest,
}

impl Pool<'_> {
    /// Candidate ids for an argument or input field `name` of a field
    /// returning `returns`, with where they came from.
    pub fn ids_for(&self, name: &str, returns: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for ty in self.matching_types(name, returns) {
            for id in self.b.ids_by_type.get(ty).into_iter().flatten() {
                out.push((id.clone(), ty.to_owned()));
            }
        }
        if out.is_empty()
            && let Some(ids) = self.b.id_fields.get(name)
        {
            out.extend(ids.iter().map(|id| (id.clone(), format!("field {name}"))));
        }
        if out.is_empty() {
            out = self.any_ids();
        }
        out
    }

    /// One id of each type of B's, in turn: for an argument whose name
    /// names no type.
    pub fn any_ids(&self) -> Vec<(String, String)> {
        self.b
            .ids_by_type
            .iter()
            .filter_map(|(ty, ids)| {
                ids.first()
                    .map(|id| (id.clone(), format!("{ty}, as any id")))
            })
            .collect()
    }

    /// Types of B's objects an argument's name points at: for `id`/`ids`,
    /// the type the field returns; for `xId`/`xIds`, the type named `x`,
    /// else types whose name ends with `x` (`assignmentId`:
    /// CareTeamAssignment), the returned type first.
    fn matching_types(&self, name: &str, returns: &str) -> Vec<&str> {
        let lower = name.to_ascii_lowercase();
        let has = |t: &str| self.b.ids_by_type.contains_key(t);
        if lower == "id" || lower == "ids" {
            return self
                .schema
                .concrete(returns)
                .into_iter()
                .map(|t| t.name.as_str())
                .filter(|t| has(t))
                .collect();
        }
        let Some(stem) = lower
            .strip_suffix("ids")
            .or_else(|| lower.strip_suffix("id"))
            .filter(|s| !s.is_empty())
        else {
            return Vec::new();
        };
        let types: Vec<&str> = self.b.ids_by_type.keys().map(String::as_str).collect();
        let exact: Vec<&str> = types
            .iter()
            .copied()
            .filter(|t| t.eq_ignore_ascii_case(stem))
            .collect();
        if !exact.is_empty() {
            return exact;
        }
        let mut suffix: Vec<&str> = types
            .iter()
            .copied()
            .filter(|t| t.to_ascii_lowercase().ends_with(stem))
            .collect();
        suffix.sort_by_key(|t| *t != returns);
        suffix
    }

    /// A value B's data held in a field named `name` (or named like its
    /// end: `proxyEmail` takes an `email`), of the JSON kind `fits`
    /// accepts, preferring one clinic A's data does not hold.
    fn harvested(&self, name: &str, fits: impl Fn(&Value) -> bool) -> Option<Value> {
        self.harvested_from(self.b, Some(self.a), name, &fits)
            // A's values have the right shape too, where B showed none.
            .or_else(|| self.harvested_from(self.a, None, name, &fits))
    }

    fn harvested_from(
        &self,
        from: &Harvest,
        other: Option<&Harvest>,
        name: &str,
        fits: &impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let lower = name.to_ascii_lowercase();
        let mut names: Vec<&String> = from
            .values
            .keys()
            .filter(|k| {
                let k = k.to_ascii_lowercase();
                k == lower || (k.len() >= 3 && lower.ends_with(&k))
            })
            .collect();
        names.sort_by_key(|k| (!k.eq_ignore_ascii_case(name), std::cmp::Reverse(k.len())));
        for key in names {
            let values = &from.values[key];
            let theirs = other.and_then(|o| o.values.get(key));
            let only_b = values
                .iter()
                .find(|v| fits(v) && !theirs.is_some_and(|a| a.contains(v)));
            if let Some(v) = only_b.or_else(|| values.iter().find(|v| fits(v))) {
                return Some(v.clone());
            }
        }
        None
    }
}

/// Why a value could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unfillable {
    #[error("clinic B showed no id to put in it")]
    NoIds,
    #[error("{0} nests input objects too deeply to fill")]
    TooDeep(String),
    #[error("the schema does not describe type {0}")]
    UnknownType(String),
}

/// Fills the arguments of one operation.
pub struct Filler<'a, 'p> {
    pool: &'a Pool<'p>,
    /// The type the operation's field returns (what `id` names).
    returns: String,
    /// Dates and times handed out so far (each one later).
    clock: i64,
    pub placed: Vec<Placed>,
}

impl<'a, 'p> Filler<'a, 'p> {
    pub fn new(pool: &'a Pool<'p>, returns: &str) -> Self {
        Self {
            pool,
            returns: returns.to_owned(),
            clock: 0,
            placed: Vec::new(),
        }
    }

    /// The value of an argument (or input field) at `path`: ids of B's
    /// wherever one goes; required values made up; optional values
    /// without an id inside left out (`None`).
    pub fn argument(
        &mut self,
        path: &str,
        input: &InputValue,
    ) -> Result<Option<Value>, Unfillable> {
        if self.wanted(input, INPUT_DEPTH) {
            self.value(path, &input.name, &input.ty, INPUT_DEPTH)
                .map(Some)
        } else {
            Ok(None)
        }
    }

    /// Whether a value is given: required, holding an id, or a scalar the
    /// data showed under this very name.
    fn wanted(&self, input: &InputValue, depth: usize) -> bool {
        let pool = self.pool;
        // Only the kinds harvested values are used for (not dates).
        let scalar = matches!(input.ty.named(), "String" | "Int" | "Float" | "Boolean");
        let shown = |h: &Harvest| h.values.get(&input.name).is_some_and(|v| !v.is_empty());
        input.is_required()
            || pool.schema.holds_id(&input.ty, depth)
            || (scalar && (shown(pool.b) || shown(pool.a)))
    }

    fn value(
        &mut self,
        path: &str,
        name: &str,
        ty: &TypeRef,
        depth: usize,
    ) -> Result<Value, Unfillable> {
        match (ty.kind, ty.inner()) {
            (Kind::NonNull, Some(inner)) => return self.value(path, name, inner, depth),
            (Kind::List, Some(inner)) => return Ok(json!([self.value(path, name, inner, depth)?])),
            _ => {}
        }
        let named = ty.named();
        if is_id_scalar(named) {
            return self.id(path, name);
        }
        let t = self
            .pool
            .schema
            .get(named)
            .ok_or_else(|| Unfillable::UnknownType(named.to_owned()))?;
        match t.kind {
            Kind::Enum => Ok(t.first_enum_value().map(Value::from).unwrap_or(Value::Null)),
            Kind::InputObject => {
                if depth == 0 {
                    return Err(Unfillable::TooDeep(path.to_owned()));
                }
                let mut map = Map::new();
                for field in t.input_fields() {
                    let inner_path = format!("{path}.{}", field.name);
                    if self.wanted(field, depth - 1) {
                        let v = self.value(&inner_path, &field.name, &field.ty, depth - 1)?;
                        map.insert(field.name.clone(), v);
                    }
                }
                Ok(Value::Object(map))
            }
            _ => Ok(self.scalar(name, named)),
        }
    }

    fn id(&mut self, path: &str, name: &str) -> Result<Value, Unfillable> {
        let (id, source) = self
            .pool
            .ids_for(name, &self.returns)
            .into_iter()
            .next()
            .ok_or(Unfillable::NoIds)?;
        self.placed.push(Placed {
            path: path.to_owned(),
            id: id.clone(),
            source,
        });
        Ok(Value::String(id))
    }

    /// A plausible value of a scalar that is not an id.
    fn scalar(&mut self, name: &str, scalar: &str) -> Value {
        let harvested = match scalar {
            "String" => self
                .pool
                .harvested(name, |v| v.as_str().is_some_and(|s| !s.is_empty())),
            "Int" => self
                .pool
                .harvested(name, |v| v.is_i64() && v.as_i64() != Some(0)),
            "Float" => self.pool.harvested(name, Value::is_number),
            "Boolean" => self.pool.harvested(name, Value::is_boolean),
            // Dates are made, not harvested: B's past dates would be
            // refused as past before any id is looked at.
            _ => None,
        };
        if let Some(v) = harvested {
            return v;
        }
        self.clock += 1;
        let base = Utc::now() + Duration::days(7);
        match scalar {
            "Int" => json!(1),
            "Float" => json!(1.0),
            "Boolean" => json!(false),
            "Date" => json!((base + Duration::days(self.clock)).date_naive().to_string()),
            "DateTime" => {
                let at = (base + Duration::hours(self.clock))
                    .with_minute(0)
                    .and_then(|t| t.with_second(0))
                    .and_then(|t| t.with_nanosecond(0))
                    .unwrap_or(base);
                json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }
            "JSON" => json!({}),
            _ => json!("verify-isolation"),
        }
    }
}

/// The ids placed, without repeats, in the order placed.
pub fn placed_ids(placed: &[Placed]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    placed
        .iter()
        .filter(|p| seen.insert(p.id.clone()))
        .map(|p| p.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(name: &str) -> Value {
        json!({ "kind": "SCALAR", "name": name, "ofType": null })
    }

    fn non_null(inner: Value) -> Value {
        json!({ "kind": "NON_NULL", "name": null, "ofType": inner })
    }

    fn input(name: &str, ty: Value, default: Option<&str>) -> Value {
        json!({ "name": name, "type": ty, "defaultValue": default })
    }

    fn declared(scalar: &str) -> Value {
        json!({ "kind": "SCALAR", "name": scalar, "fields": null, "inputFields": null,
            "enumValues": null, "possibleTypes": null })
    }

    fn object(name: &str) -> Value {
        json!({ "kind": "OBJECT", "name": name, "inputFields": null, "enumValues": null, "possibleTypes": null,
            "fields": [{ "name": "id", "args": [], "type": non_null(scalar("ID")) }] })
    }

    fn schema() -> Schema {
        Schema::from_introspection(json!({
            "queryType": { "name": "Query" }, "mutationType": null, "subscriptionType": null,
            "types": [
                declared("ID"), declared("UUID"), declared("String"), declared("DateTime"),
                object("Patient"), object("CareTeamAssignment"), object("ProxyAssignment"),
                { "kind": "ENUM", "name": "Role", "fields": null, "inputFields": null, "possibleTypes": null,
                  "enumValues": [{ "name": "PRIMARY" }, { "name": "SPECIALIST" }] },
                { "kind": "INPUT_OBJECT", "name": "Visit", "fields": null, "enumValues": null, "possibleTypes": null,
                  "inputFields": [
                    input("patientId", non_null(scalar("UUID")), None),
                    input("facilityId", scalar("UUID"), None),
                    input("role", non_null(json!({ "kind": "ENUM", "name": "Role", "ofType": null })), None),
                    input("startsAt", non_null(scalar("DateTime")), None),
                    input("endsAt", non_null(scalar("DateTime")), None),
                    input("reason", scalar("String"), None),
                    input("note", scalar("String"), None),
                    input("kind", non_null(scalar("String")), Some("\"X\"")),
                    input("proxyEmail", non_null(scalar("String")), None),
                  ] },
            ]
        }))
        .unwrap()
    }

    fn harvest(ids: &[(&str, &str)], values: &[(&str, Value)]) -> Harvest {
        let mut h = Harvest::default();
        for (ty, id) in ids {
            h.ids_by_type
                .entry((*ty).to_owned())
                .or_default()
                .push((*id).to_owned());
        }
        for (name, v) in values {
            h.values
                .entry((*name).to_owned())
                .or_default()
                .push(v.clone());
        }
        h
    }

    #[test]
    fn an_id_goes_to_the_type_its_name_points_at() {
        let s = schema();
        let b = harvest(
            &[
                ("Patient", "p1"),
                ("CareTeamAssignment", "c1"),
                ("ProxyAssignment", "x1"),
            ],
            &[],
        );
        let a = Harvest::default();
        let pool = Pool {
            schema: &s,
            b: &b,
            a: &a,
        };
        assert_eq!(pool.ids_for("patientId", "Anything")[0].0, "p1");
        assert_eq!(pool.ids_for("id", "Patient")[0].0, "p1");
        // Two types end with "Assignment": the one the field returns first.
        assert_eq!(pool.ids_for("assignmentId", "ProxyAssignment")[0].0, "x1");
        assert_eq!(
            pool.ids_for("assignmentId", "CareTeamAssignment")[0].0,
            "c1"
        );
        // A name that points at nothing: any of B's ids.
        let any = pool.ids_for("documentId", "Patient");
        assert_eq!(any.len(), 3);
        assert!(any[0].1.ends_with("as any id"), "{any:?}");
    }

    #[test]
    fn an_input_gets_every_id_of_b_and_plausible_required_values() {
        let s = schema();
        let b = harvest(
            &[("Patient", "p1")],
            &[
                ("email", json!("b@clinic.example")),
                ("reason", json!("checkup")),
            ],
        );
        let a = Harvest::default();
        let pool = Pool {
            schema: &s,
            b: &b,
            a: &a,
        };
        let mut filler = Filler::new(&pool, "Visit");
        let arg = InputValue {
            name: "input".to_owned(),
            ty: serde_json::from_value(non_null(
                json!({ "kind": "INPUT_OBJECT", "name": "Visit", "ofType": null }),
            ))
            .unwrap(),
            default_value: None,
        };
        let value = filler.argument("input", &arg).unwrap().unwrap();
        // Every id, optional ones too, is one of B's.
        assert_eq!(value["patientId"], "p1");
        assert_eq!(value["facilityId"], "p1");
        assert_eq!(value["role"], "PRIMARY");
        // Dates in the future, each later than the one before.
        let (starts, ends) = (
            value["startsAt"].as_str().unwrap(),
            value["endsAt"].as_str().unwrap(),
        );
        assert!(starts < ends, "{starts} {ends}");
        assert!(starts > chrono::Utc::now().to_rfc3339().as_str());
        // A value B held under the same name (optional, so given only
        // because B held one), or under the end of the name.
        assert_eq!(value["reason"], "checkup");
        assert_eq!(value["proxyEmail"], "b@clinic.example");
        // Optional with nothing to go on, or with a default: left out.
        assert!(value.get("note").is_none(), "{value}");
        assert!(value.get("kind").is_none(), "{value}");
        let paths: Vec<&str> = filler.placed.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["input.patientId", "input.facilityId"]);
    }

    #[test]
    fn without_any_id_of_b_nothing_is_filled() {
        let s = schema();
        let (b, a) = (Harvest::default(), Harvest::default());
        let pool = Pool {
            schema: &s,
            b: &b,
            a: &a,
        };
        let arg = InputValue {
            name: "id".to_owned(),
            ty: serde_json::from_value(non_null(scalar("UUID"))).unwrap(),
            default_value: None,
        };
        assert_eq!(
            Filler::new(&pool, "Patient").argument("id", &arg),
            Err(Unfillable::NoIds)
        );
    }
}
