//! Scalars beyond the built-in ones: `Date` (a calendar date, `YYYY-MM-DD`).
//! Instants use async-graphql's `DateTime` (RFC 3339 with offset), ids its
//! `UUID` and audit details its `JSON`; their descriptions, which
//! async-graphql writes generically, are replaced by the ones below (see
//! `graphql::builder`).

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{Datelike, NaiveDate};

/// The description of `DateTime` (async-graphql's scalar for chrono's
/// `DateTime<FixedOffset>`, which keeps its `@specifiedBy` RFC 3339 URL).
pub const DATE_TIME_DESCRIPTION: &str = "\
    An instant: an RFC 3339 date-time with its UTC offset, e.g.\n\
    `2026-03-09T14:30:00-04:00`, years 0001 to 9999 (a value outside them is\n\
    BAD_USER_INPUT). Send the offset (the input has no default time zone);\n\
    the API returns instants in UTC (`+00:00`), with fractional seconds when\n\
    there are any. To show local time, convert with the clinic's\n\
    `Organization.timezone`.";

/// The description of `UUID` (async-graphql's scalar for `uuid::Uuid`, which
/// keeps its `@specifiedBy` URL).
pub const UUID_DESCRIPTION: &str = "\
    An id: a UUID in its 36-character text form, lower-case hexadecimal with\n\
    hyphens, e.g. `0190f2d4-8c1e-7a52-9b7e-3f6d2a1c4e58`. Ids are opaque:\n\
    compare them whole and don't read meaning into their digits.";

/// The description of `JSON` (async-graphql's scalar for `Json<T>`).
pub const JSON_DESCRIPTION: &str = "\
    Any JSON value (RFC 8259), given inline in the response as an object,\n\
    array, string, number, boolean or null, not as a string of JSON text.\n\
    Its shape is described on each field of this type.";

/// A calendar date without a time zone, `YYYY-MM-DD` (a date of birth, the
/// validity of an authorization).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date(pub NaiveDate);

/// A calendar date without a time of day or time zone: `YYYY-MM-DD` (RFC 3339
/// `full-date`), years 0001 to 9999, e.g. `1984-03-07`. Another form or year
/// is BAD_USER_INPUT.
#[Scalar(
    name = "Date",
    specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339#section-5.6"
)]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            // Years 1 to 9999: what PostgreSQL and every client can hold.
            Value::String(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .filter(|d| (1..=9999).contains(&d.year()))
                .map(Date)
                .ok_or_else(|| {
                    InputValueError::custom("expected a date as YYYY-MM-DD (years 1 to 9999)")
                }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}
