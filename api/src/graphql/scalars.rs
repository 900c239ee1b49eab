//! Scalars beyond the built-in ones: `Date` (a calendar date, `YYYY-MM-DD`).
//! Instants use async-graphql's `DateTime` (RFC 3339 with offset) and ids
//! its `UUID`.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{Datelike, NaiveDate};

/// A calendar date without a time zone, `YYYY-MM-DD` (a date of birth, the
/// validity of an authorization).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date(pub NaiveDate);

#[Scalar(name = "Date")]
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
