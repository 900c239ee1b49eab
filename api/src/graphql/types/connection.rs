//! Relay connections with opaque keyset cursors.

use async_graphql::connection::{CursorType, OpaqueCursor};
use serde::Serialize;
use serde::de::DeserializeOwned;
use service::pagination::PageRequest;

use crate::error::{ApiError, GqlResult};

/// `first`/`after` checked and decoded; a cursor not made by this list is
/// BAD_USER_INPUT on `after`.
pub fn page_request<K: Serialize + DeserializeOwned>(
    first: Option<i32>,
    after: Option<String>,
) -> GqlResult<PageRequest<K>> {
    let after = match after {
        None => None,
        Some(raw) => Some(
            OpaqueCursor::<K>::decode_cursor(&raw)
                .map_err(|_| ApiError::bad_input("after", "not a cursor of this list"))?
                .0,
        ),
    };
    PageRequest::new(first, after).map_err(|e| ApiError::from(e).into())
}
