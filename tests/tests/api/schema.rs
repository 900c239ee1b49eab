//! The schema is the contract and its documentation: the committed
//! `schema.graphql` is what the server serves (an unreviewed change to the
//! contract fails here), and every element a client can see says what it is.

use serde_json::{Value, json};

use crate::support::app::spawn_app;

/// graphql-js's `getIntrospectionQuery({ descriptions: true,
/// specifiedByUrl: true })`: what GraphiQL and code generators send.
const INTROSPECTION_QUERY: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives {
      name
      description
      locations
      args { ...InputValue }
    }
  }
}

fragment FullType on __Type {
  kind
  name
  description
  specifiedByURL
  fields(includeDeprecated: true) {
    name
    description
    args { ...InputValue }
    type { ...TypeRef }
    isDeprecated
    deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) {
    name
    description
    isDeprecated
    deprecationReason
  }
  possibleTypes { ...TypeRef }
}

fragment InputValue on __InputValue {
  name
  description
  type { ...TypeRef }
  defaultValue
}

fragment TypeRef on __Type {
  kind
  name
  ofType {
    kind
    name
    ofType {
      kind
      name
      ofType {
        kind
        name
        ofType {
          kind
          name
          ofType {
            kind
            name
            ofType {
              kind
              name
              ofType {
                kind
                name
              }
            }
          }
        }
      }
    }
  }
}
"#;

/// Scalars the GraphQL specification defines (and documents).
const BUILT_IN_SCALARS: &[&str] = &["String", "Int", "Float", "Boolean", "ID"];

/// The served schema, as a client's introspection sees it.
async fn introspect() -> Value {
    let app = spawn_app().await;
    let res = app.graphql(None, INTROSPECTION_QUERY, json!({})).await;
    assert!(res["errors"].is_null(), "introspection failed: {res}");
    res["data"]["__schema"].clone()
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn documented(v: &Value) -> bool {
    v["description"]
        .as_str()
        .is_some_and(|d| !d.trim().is_empty())
}

/// Documented and total elements of one kind, and the undocumented ones.
#[derive(Default)]
struct Tally {
    documented: usize,
    total: usize,
    missing: Vec<String>,
}

impl Tally {
    fn check(&mut self, element: &Value, path: impl FnOnce() -> String) {
        self.total += 1;
        if documented(element) {
            self.documented += 1;
        } else {
            self.missing.push(path());
        }
    }
}

#[tokio::test]
async fn every_type_field_argument_and_enum_value_is_described() {
    let schema = introspect().await;
    let mut types = Tally::default();
    let mut fields = Tally::default();
    let mut args = Tally::default();
    let mut values = Tally::default();
    let mut inputs = Tally::default();
    for ty in list(&schema["types"]) {
        let name = ty["name"].as_str().unwrap_or_default();
        if name.starts_with("__") || BUILT_IN_SCALARS.contains(&name) {
            continue;
        }
        types.check(ty, || format!("type {name}"));
        for field in list(&ty["fields"]) {
            let field_name = field["name"].as_str().unwrap_or_default();
            fields.check(field, || format!("field {name}.{field_name}"));
            for arg in list(&field["args"]) {
                let arg_name = arg["name"].as_str().unwrap_or_default();
                args.check(arg, || format!("argument {name}.{field_name}({arg_name})"));
            }
        }
        for value in list(&ty["enumValues"]) {
            let value_name = value["name"].as_str().unwrap_or_default();
            values.check(value, || format!("enum value {name}.{value_name}"));
        }
        for input in list(&ty["inputFields"]) {
            let input_name = input["name"].as_str().unwrap_or_default();
            inputs.check(input, || format!("input field {name}.{input_name}"));
        }
    }

    let tallies = [
        ("types", types),
        ("fields", fields),
        ("arguments", args),
        ("enum values", values),
        ("input fields", inputs),
    ];
    let summary = tallies
        .iter()
        .map(|(kind, t)| format!("{kind} {}/{}", t.documented, t.total))
        .collect::<Vec<_>>()
        .join(", ");
    println!("described: {summary}");
    let missing: Vec<&str> = tallies
        .iter()
        .flat_map(|(_, t)| t.missing.iter().map(String::as_str))
        .collect();
    assert!(
        missing.is_empty(),
        "{} schema elements have no description (described: {summary}):\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

#[test]
fn committed_schema_matches_the_served_schema() {
    let committed = include_str!("../../../schema.graphql");
    let served = caregate::graphql::sdl();
    assert!(
        committed == served,
        "schema.graphql differs from the served schema; review the change, then run \
         `cargo run -p caregate -- schema > schema.graphql`"
    );
}

/// The running server's own schema (built from its configuration, not the
/// one `caregate schema` builds) prints as the committed file, and every
/// `specifiedByURL` its introspection shows is in the file.
#[tokio::test]
async fn committed_schema_is_what_the_running_server_serves_with_specified_by() {
    let committed = include_str!("../../../schema.graphql");
    let app = spawn_app().await;
    let served = caregate::graphql::sdl_of(&app.state.schema);
    assert!(
        committed == served,
        "schema.graphql differs from the running server's schema; review the change, then \
         run `cargo run -p caregate -- schema > schema.graphql`"
    );

    let res = app
        .graphql(
            None,
            "{ __schema { types { kind name specifiedByURL } } }",
            json!({}),
        )
        .await;
    assert!(res["errors"].is_null(), "{res}");
    let specified: Vec<String> = list(&res["data"]["__schema"]["types"])
        .iter()
        .filter(|t| t["kind"] == "SCALAR")
        .filter_map(|t| {
            let url = t["specifiedByURL"].as_str()?;
            Some(format!(
                "scalar {} @specifiedBy(url: \"{url}\")",
                t["name"].as_str()?
            ))
        })
        .collect();
    assert!(
        !specified.is_empty(),
        "no scalar has a specifiedByURL: {res}"
    );
    for line in &specified {
        assert!(
            committed.lines().any(|l| l == line),
            "introspection shows `{line}` but schema.graphql does not"
        );
    }
}
