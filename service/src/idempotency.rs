//! Idempotency keys: a retried mutation is answered with the first answer
//! instead of acting twice.
//!
//! The key is claimed at the start of the request's transaction and the
//! response stored in it before COMMIT, so a key is either absent (nothing
//! committed: acting again is right) or holds exactly what was committed.
//! Keys belong to the request's user in the request's clinic (the row-level
//! security context), and expire after a retention window.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::Tx;
use crate::error::{DbResultExt, ServiceError, ServiceResult};

/// An idempotency key as a client sent it: 1 to 255 visible ASCII
/// characters (a UUID or ULID is typical).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err("must be 1 to 255 characters");
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be visible ASCII characters");
        }
        Ok(Self(raw.to_owned()))
    }
}

impl AsRef<str> for IdempotencyKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The key is new (or its earlier use expired): run the request and
    /// [`store`] its response before committing.
    New,
    /// The key was used for this same request: here is the answer it got
    /// (JSON text, as sent), the patients whose data it holds, and those
    /// of them it reached only through break-glass.
    Replay {
        body: String,
        reads: Vec<uuid::Uuid>,
        break_glass_reads: Vec<uuid::Uuid>,
    },
    /// The key was used for a different request.
    Mismatch,
}

/// Claims `key` for a request whose operations and variables hash to
/// `request_hash` (sha256, hex). A retry racing the first request waits for
/// it to commit or roll back. Expired keys of the clinic are purged on the
/// way.
#[tracing::instrument(skip_all, name = "idempotency.claim", level = "debug")]
pub async fn claim(
    tx: &Tx,
    key: &IdempotencyKey,
    request_hash: &str,
    ttl: chrono::Duration,
) -> ServiceResult<Claim> {
    let claimed = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO idempotency_keys (organization_id, user_id, key, request_hash, expires_at) \
             SELECT app.current_tenant_id(), app.current_user_id(), $1, $2, \
                    now() + make_interval(secs => $3) \
             FROM (SELECT app.purge_expired_idempotency_keys($1)) AS purged \
             ON CONFLICT (organization_id, user_id, key) DO UPDATE \
                SET request_hash = EXCLUDED.request_hash, response = NULL, read_patients = '{}', \
                    break_glass_reads = '{}', \
                    created_at = now(), expires_at = EXCLUDED.expires_at \
              WHERE idempotency_keys.expires_at <= now() \
             RETURNING 1 AS claimed",
            [
                key.as_ref().into(),
                request_hash.into(),
                (ttl.num_seconds() as f64).into(),
            ],
        ))
        .await
        .or_db("claiming an idempotency key")?;
    if claimed.is_some() {
        return Ok(Claim::New);
    }
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT request_hash, response, read_patients::text[] AS reads, \
                    break_glass_reads::text[] AS break_glass_reads FROM idempotency_keys \
              WHERE organization_id = app.current_tenant_id() \
                AND user_id = app.current_user_id() AND key = $1",
            [key.as_ref().into()],
        ))
        .await
        .or_db("reading an idempotency key")?
        .ok_or_else(|| {
            ServiceError::Unexpected(anyhow::anyhow!("a claimed idempotency key is not visible"))
        })?;
    let hash: String = row
        .try_get("", "request_hash")
        .or_db("reading an idempotency key")?;
    if hash != request_hash {
        return Ok(Claim::Mismatch);
    }
    let response: Option<String> = row
        .try_get("", "response")
        .or_db("reading an idempotency key")?;
    let ids = |column: &str| -> ServiceResult<Vec<uuid::Uuid>> {
        let raw: Vec<String> = row
            .try_get("", column)
            .or_db("reading an idempotency key")?;
        raw.iter()
            .map(|id| id.parse())
            .collect::<Result<Vec<uuid::Uuid>, _>>()
            .map_err(|e| ServiceError::Unexpected(anyhow::anyhow!("a stored patient id: {e}")))
    };
    let reads = ids("reads")?;
    let break_glass_reads = ids("break_glass_reads")?;
    // A committed claim always holds its response.
    let body = response.ok_or_else(|| {
        ServiceError::Unexpected(anyhow::anyhow!("an idempotency key holds no response"))
    })?;
    Ok(Claim::Replay {
        body,
        reads,
        break_glass_reads,
    })
}

/// Stores the response of the request that claimed `key` (JSON text), the
/// patients whose data it holds, and those of them it reached only through
/// break-glass (a replay shows them only while that access lasts), in its
/// transaction.
#[tracing::instrument(skip_all, name = "idempotency.store", level = "debug", fields(reads = reads.len()))]
pub async fn store(
    tx: &Tx,
    key: &IdempotencyKey,
    response: String,
    reads: &[uuid::Uuid],
    break_glass_reads: &[uuid::Uuid],
) -> ServiceResult<()> {
    tx.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "UPDATE idempotency_keys SET response = $2, read_patients = $3::uuid[], \
                break_glass_reads = $4::uuid[] \
          WHERE organization_id = app.current_tenant_id() \
            AND user_id = app.current_user_id() AND key = $1",
        [
            key.as_ref().into(),
            response.into(),
            crate::sql::uuid_array(reads.iter().copied()),
            crate::sql::uuid_array(break_glass_reads.iter().copied()),
        ],
    ))
    .await
    .or_db("storing an idempotent response")?;
    Ok(())
}

/// Whether the caller may still see every one of `patients` (row-level
/// security decides): a stored answer is replayed only then.
#[tracing::instrument(skip_all, name = "idempotency.all_visible", level = "debug", fields(patients = patients.len()))]
pub async fn all_visible(tx: &Tx, patients: &[uuid::Uuid]) -> ServiceResult<bool> {
    if patients.is_empty() {
        return Ok(true);
    }
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM patients WHERE id = ANY ($1::uuid[])",
            [crate::sql::uuid_array(patients.iter().copied())],
        ))
        .await
        .or_db("checking a replay's patients")?;
    let n: i64 = match row {
        Some(row) => row.try_get("", "n").or_db("checking a replay's patients")?,
        None => 0,
    };
    Ok(n as usize == patients.len())
}

#[cfg(test)]
mod tests {
    use super::IdempotencyKey;

    #[test]
    fn keys_are_short_visible_ascii() {
        assert!(IdempotencyKey::parse("01JD2M8Q3K5Z8X9Y0A1B2C3D4E").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("a b").is_err());
        assert!(IdempotencyKey::parse("a\0b").is_err());
        assert!(IdempotencyKey::parse("é").is_err());
    }
}
