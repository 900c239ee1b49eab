//! Audit events the API writes itself (row changes are written by database
//! triggers). Actor, clinic, impersonator and request id always come from
//! the request context, never from the caller.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};
use uuid::Uuid;

use crate::error::{ServiceError, ServiceResult};
use crate::sql::uuid_array;

/// Writes a non-row event (login, logout, refusal) to the audit trail.
pub async fn record_event(
    tx: &DatabaseTransaction,
    action: &str,
    resource_type: &str,
    resource: Option<Uuid>,
    details: serde_json::Value,
) -> ServiceResult<()> {
    tx.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT app.record_event($1, $2, $3::uuid[], $4)",
        [
            action.into(),
            resource_type.into(),
            uuid_array(resource),
            details.into(),
        ],
    ))
    .await
    .map_err(|e| ServiceError::from_db(e, "recording an audit event"))?;
    Ok(())
}

/// One READ event per patient whose data a request returned, in one
/// statement, so a compliance officer can answer "who looked at this
/// patient's record, and when".
pub async fn record_reads(tx: &DatabaseTransaction, patients: &[Uuid]) -> ServiceResult<()> {
    if patients.is_empty() {
        return Ok(());
    }
    tx.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT app.record_event('READ', 'patients', $1::uuid[], NULL)",
        [uuid_array(patients.iter().copied())],
    ))
    .await
    .map_err(|e| ServiceError::from_db(e, "recording READ events"))?;
    Ok(())
}
