//! Checks on every value a client sends, in one place, before anything runs.
//!
//! - **Nesting.** The query text's brackets (`{`, `[`, `(`) may nest at most
//!   so deep. The GraphQL parser recurses once per level of an input value
//!   and has no bound of its own: a few kilobytes of `{a:{a:...}}` overflow
//!   the stack and abort the process. The scan is iterative and runs before
//!   the parser sees the text. (Variables arrive as JSON, whose parser stops
//!   at 128 levels.)
//! - **Strings PostgreSQL cannot store.** A NUL character is refused wherever
//!   it appears: in an argument, a variable, an input object's field, a list
//!   item or a cursor (cursors are strings the client sends back).
//! - **Integers.** No integer input may exceed 10^9 in magnitude, so the sum
//!   of two (e.g. units already used plus units asked for) never overflows
//!   PostgreSQL's `integer`.
//!
//! Each refusal is BAD_USER_INPUT naming the argument or variable.

use async_graphql::parser::types::{Directive, ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Positioned, ServerError, Variables};
use async_graphql_value::{ConstValue, Value};

use crate::error::{ApiError, ErrorCode, RequestReason};

/// The largest magnitude of an integer input.
pub const MAX_INT_INPUT: i64 = 1_000_000_000;

/// Refuses a query text whose brackets nest deeper than `max`. Strings,
/// block strings and comments are skipped, so brackets inside them don't
/// count.
pub fn check_nesting(text: &str, max: usize) -> Result<(), ServerError> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    // `\"""` is an escaped triple quote inside a block string.
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > max {
                    return Err(ApiError {
                        field: Some("query"),
                        ..ApiError::limit(
                            RequestReason::MaxNesting,
                            format!("the query nests deeper than {max} levels"),
                        )
                    }
                    .into_server_error());
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Refuses NUL characters and out-of-range integers in the document's
/// literal arguments and in the variables.
pub fn check_values(doc: &ExecutableDocument, variables: &Variables) -> Result<(), ServerError> {
    for (name, value) in variables.iter() {
        check_const(value).map_err(|why| refusal(name, why))?;
    }
    for (_, op) in doc.operations.iter() {
        check_directives(&op.node.directives)?;
        for var in &op.node.variable_definitions {
            if let Some(default) = &var.node.default_value {
                check_const(&default.node).map_err(|why| refusal(&var.node.name.node, why))?;
            }
        }
        check_selection_set(&op.node.selection_set.node)?;
    }
    for fragment in doc.fragments.values() {
        check_directives(&fragment.node.directives)?;
        check_selection_set(&fragment.node.selection_set.node)?;
    }
    Ok(())
}

/// Refuses a NUL in the operation's name or anywhere in its extensions
/// (they are echoed in errors and kept with idempotent answers).
pub fn check_request(
    operation_name: Option<&str>,
    extensions: &async_graphql::Extensions,
) -> Result<(), ServerError> {
    let named = |field: &str, why: &str| {
        let mut err =
            ApiError::new(ErrorCode::BadUserInput, format!("{field}: {why}")).into_server_error();
        if let Some(ext) = err.extensions.as_mut() {
            ext.set("field", field);
        }
        err
    };
    if let Some(name) = operation_name {
        check_string(name).map_err(|why| named("operationName", why))?;
    }
    for (key, value) in extensions.iter() {
        check_string(key)
            .and_then(|()| check_const(value))
            .map_err(|why| named("extensions", why))?;
    }
    Ok(())
}

fn refusal(name: &Name, why: &str) -> ServerError {
    let mut err =
        ApiError::new(ErrorCode::BadUserInput, format!("{name}: {why}")).into_server_error();
    if let Some(ext) = err.extensions.as_mut() {
        ext.set("field", name.as_str());
    }
    err
}

fn check_selection_set(set: &SelectionSet) -> Result<(), ServerError> {
    // Selection sets nest at most as deep as the nesting check allows, so
    // this recursion is bounded.
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                check_arguments(&field.node.arguments)?;
                check_directives(&field.node.directives)?;
                check_selection_set(&field.node.selection_set.node)?;
            }
            Selection::InlineFragment(fragment) => {
                check_directives(&fragment.node.directives)?;
                check_selection_set(&fragment.node.selection_set.node)?;
            }
            Selection::FragmentSpread(spread) => check_directives(&spread.node.directives)?,
        }
    }
    Ok(())
}

fn check_directives(directives: &[Positioned<Directive>]) -> Result<(), ServerError> {
    directives
        .iter()
        .try_for_each(|d| check_arguments(&d.node.arguments))
}

fn check_arguments(arguments: &[(Positioned<Name>, Positioned<Value>)]) -> Result<(), ServerError> {
    for (name, value) in arguments {
        check_value(&value.node).map_err(|why| refusal(&name.node, why))?;
    }
    Ok(())
}

fn check_value(value: &Value) -> Result<(), &'static str> {
    match value {
        Value::String(s) => check_string(s),
        Value::Number(n) => check_number(n),
        Value::List(items) => items.iter().try_for_each(check_value),
        Value::Object(fields) => fields.values().try_for_each(check_value),
        Value::Variable(_)
        | Value::Null
        | Value::Boolean(_)
        | Value::Binary(_)
        | Value::Enum(_) => Ok(()),
    }
}

fn check_const(value: &ConstValue) -> Result<(), &'static str> {
    match value {
        ConstValue::String(s) => check_string(s),
        ConstValue::Number(n) => check_number(n),
        ConstValue::List(items) => items.iter().try_for_each(check_const),
        ConstValue::Object(fields) => fields
            .iter()
            .try_for_each(|(k, v)| check_string(k).and_then(|()| check_const(v))),
        ConstValue::Null | ConstValue::Boolean(_) | ConstValue::Binary(_) | ConstValue::Enum(_) => {
            Ok(())
        }
    }
}

/// What PostgreSQL can hold of a string: no NUL; and a date or date-time
/// written in it lies in the years 1 to 9999 (RFC 3339 has four-digit
/// years; chrono also reads signed, longer ones that PostgreSQL refuses).
pub fn check_string(s: &str) -> Result<(), &'static str> {
    if s.contains('\0') {
        Err("must not contain a NUL character")
    } else if out_of_range_date(s) {
        Err("is a date or time outside the years 1 to 9999")
    } else {
        Ok(())
    }
}

fn out_of_range_date(s: &str) -> bool {
    use chrono::{DateTime, Datelike, FixedOffset, NaiveDate};
    let looks_like_date = (10..=64).contains(&s.len())
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'+' || b == b'-')
        && s.bytes().filter(|b| *b == b'-').count() >= 2;
    if !looks_like_date {
        return false;
    }
    let year = DateTime::parse_from_rfc3339(s)
        .map(|d| d.year())
        .or_else(|_| s.parse::<DateTime<FixedOffset>>().map(|d| d.year()))
        .or_else(|_| s.parse::<NaiveDate>().map(|d| d.year()));
    year.is_ok_and(|y| !(1..=9999).contains(&y))
}

fn check_number(n: &async_graphql::Number) -> Result<(), &'static str> {
    let too_large = match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => i.unsigned_abs() > MAX_INT_INPUT as u64,
        (None, Some(_)) => true,
        // A float: the schema has no Float input; the validator refuses it
        // where an Int is expected.
        (None, None) => false,
    };
    if too_large {
        Err("is out of range (at most 1000000000 in magnitude)")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(n: usize) -> String {
        format!(
            "{{patients(filter:{}1{}){{totalCount}}}}",
            "{a:".repeat(n),
            "}".repeat(n)
        )
    }

    #[test]
    fn nesting_is_counted_without_recursion() {
        assert!(check_nesting(&nested(10), 64).is_ok());
        assert!(check_nesting(&nested(100_000), 64).is_err());
        assert!(check_nesting(&"[".repeat(1_000_000), 64).is_err());
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let text = format!(
            "{{ a(s: \"{}\", b: \"\"\"{}\\\"\"\"\"\"\") # {}\n }}",
            "{".repeat(100),
            "[".repeat(100),
            "(".repeat(100)
        );
        assert!(check_nesting(&text, 4).is_ok(), "{text}");
    }

    fn parse(q: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(q).unwrap()
    }

    fn field_of(err: ServerError) -> String {
        let ext = err.extensions.unwrap();
        match ext.get("field") {
            Some(ConstValue::String(s)) => s.clone(),
            other => panic!("no field: {other:?}"),
        }
    }

    #[test]
    fn nul_is_refused_naming_the_argument_or_variable() {
        let doc = parse("{ patients(filter: {search: \"a\\u0000b\"}) { totalCount } }");
        let err = check_values(&doc, &Variables::default()).unwrap_err();
        assert_eq!(field_of(err), "filter");

        let doc = parse("query($f: PatientFilter) { patients(filter: $f) { totalCount } }");
        let vars = Variables::from_json(serde_json::json!({ "f": { "search": "a\u{0}b" } }));
        assert_eq!(field_of(check_values(&doc, &vars).unwrap_err()), "f");

        let doc = parse("{ patients(after: \"\\u0000\") { totalCount } }");
        assert_eq!(
            field_of(check_values(&doc, &Variables::default()).unwrap_err()),
            "after"
        );
    }

    #[test]
    fn dates_outside_the_years_postgresql_holds_are_refused() {
        for bad in [
            "-4714-11-23T00:00:00Z",
            "+262142-11-23T00:00:00Z",
            "0000-01-01",
            "-0001-01-01",
        ] {
            assert!(check_string(bad).is_err(), "{bad}");
        }
        for good in [
            "2026-11-27T10:00:00+01:00",
            "0001-01-01",
            "9999-12-31",
            "jon smi",
            "a-b-c",
        ] {
            assert!(check_string(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn integers_beyond_a_billion_are_refused() {
        let doc = parse(
            "mutation { reserveAuthorizationUnits(authorizationId: \"x\", units: 2147483647) { id } }",
        );
        assert_eq!(
            field_of(check_values(&doc, &Variables::default()).unwrap_err()),
            "units"
        );
        let doc = parse(
            "mutation { reserveAuthorizationUnits(authorizationId: \"x\", units: 1000000000) { id } }",
        );
        assert!(check_values(&doc, &Variables::default()).is_ok());
        let doc = parse("query($n: Int) { patients(first: $n) { totalCount } }");
        let vars = Variables::from_json(serde_json::json!({ "n": -2147483648i64 }));
        assert_eq!(field_of(check_values(&doc, &vars).unwrap_err()), "n");
    }
}
