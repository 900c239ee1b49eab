//! Relay connections with opaque keyset cursors.

use async_graphql::connection::{CursorType, OpaqueCursor};
use serde::Serialize;
use serde::de::DeserializeOwned;
use service::pagination::PageRequest;

use crate::error::{ApiError, GqlResult};

/// `first`/`after` checked and decoded; a cursor not made by this list is
/// BAD_USER_INPUT on `after`. A cursor is opaque to clients but not safe:
/// one forged to carry a NUL character (which PostgreSQL cannot store) is
/// refused like any other foreign cursor.
pub fn page_request<K: Serialize + DeserializeOwned>(
    first: Option<i32>,
    after: Option<String>,
) -> GqlResult<PageRequest<K>> {
    let after = match after {
        None => None,
        Some(raw) => Some(
            OpaqueCursor::<K>::decode_cursor(&raw)
                .ok()
                .filter(|c| storable(&c.0))
                .ok_or_else(|| ApiError::bad_input("after", "not a cursor of this list"))?
                .0,
        ),
    };
    PageRequest::new(first, after).map_err(|e| ApiError::from(e).into())
}

/// Every string in the key is one PostgreSQL can hold (no NUL, no date
/// outside the years 1 to 9999).
fn storable<K: Serialize>(key: &K) -> bool {
    fn walk(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => crate::graphql::inputs::check_string(s).is_ok(),
            serde_json::Value::Array(items) => items.iter().all(walk),
            serde_json::Value::Object(fields) => fields.values().all(walk),
            _ => true,
        }
    }
    serde_json::to_value(key).is_ok_and(|v| walk(&v))
}
