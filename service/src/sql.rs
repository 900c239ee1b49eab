//! Small helpers shared by the queries of this crate.

use sea_orm::Value;
use uuid::Uuid;

/// A `uuid[]` parameter as its text form (bound as text and cast with
/// `::uuid[]` in the statement): one parameter however many ids.
pub fn uuid_array(ids: impl IntoIterator<Item = Uuid>) -> Value {
    let body: Vec<String> = ids.into_iter().map(|id| id.to_string()).collect();
    Value::from(format!("{{{}}}", body.join(",")))
}
