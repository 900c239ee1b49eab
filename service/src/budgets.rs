//! Per-clinic budgets: the limits a super admin set for a clinic (in place
//! of the servers' defaults), and the clinic-wide usage counts every server
//! adds its own to.
//!
//! The counting itself is the API's (each server counts in memory, so that
//! admitting a request costs no round trip); what lives here is what the
//! database holds: `clinic_budgets` (the overrides, under row-level
//! security, written only by a super admin in an audited impersonation) and
//! `app.sync_clinic_budgets` (the shared counts, reachable only through it).

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use uuid::Uuid;

use crate::Tx;
use crate::actor::{Actor, Role};
use crate::domain::TenantId;
use crate::error::{DbResultExt, ForbiddenReason, ServiceError, ServiceResult};

/// The highest limit a clinic may be given (what an `integer` holds, and
/// what every input is bounded by anyway).
pub const MAX_PER_MINUTE: u32 = 1_000_000_000;

/// A clinic's own limits, per minute: `None` is the servers' default, `0`
/// no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    pub requests_per_minute: Option<u32>,
    pub points_per_minute: Option<u32>,
}

/// What to do with one limit of a clinic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Leave it as it is.
    Keep,
    /// Back to the servers' default.
    Default,
    /// This many per minute (0: no limit).
    Set(u32),
}

fn limit_of(row: &sea_orm::QueryResult, column: &str) -> anyhow::Result<Option<u32>> {
    let value: Option<i32> = row.try_get("", column).context("a budget limit")?;
    value
        .map(|v| u32::try_from(v).context("a negative budget limit"))
        .transpose()
}

/// The active clinic's own limits (ADMIN; a super admin impersonating the
/// clinic acts as one).
#[tracing::instrument(skip_all, name = "budgets.of_clinic", level = "debug")]
pub async fn of_clinic(tx: &Tx, actor: &Actor) -> ServiceResult<Overrides> {
    actor.require(&[Role::Admin])?;
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT requests_per_minute, points_per_minute FROM clinic_budgets \
             WHERE organization_id = $1",
            [actor.tenant.into_uuid().into()],
        ))
        .await
        .or_db("reading the clinic's budget")?;
    match row {
        None => Ok(Overrides::default()),
        Some(row) => Ok(Overrides {
            requests_per_minute: limit_of(&row, "requests_per_minute")?,
            points_per_minute: limit_of(&row, "points_per_minute")?,
        }),
    }
}

/// Sets a clinic's own limits: only a super admin acting in that clinic
/// through an (audited) impersonation — FORBIDDEN / IMPERSONATION_REQUIRED
/// for anyone else, a clinic's own admins included. Another clinic than
/// the one acted in is NOT_FOUND. The row policy holds the same rule, and
/// the audit trail records each change with the impersonator.
#[tracing::instrument(skip_all, name = "budgets.set", level = "debug")]
pub async fn set(
    tx: &Tx,
    actor: &Actor,
    clinic: TenantId,
    requests_per_minute: Change,
    points_per_minute: Change,
) -> ServiceResult<Overrides> {
    if !actor.impersonating {
        return Err(ServiceError::Forbidden(
            ForbiddenReason::ImpersonationRequired,
        ));
    }
    if clinic != actor.tenant {
        return Err(ServiceError::NotFound);
    }
    let check = |field: &'static str, change: Change| match change {
        Change::Set(n) if n > MAX_PER_MINUTE => Err(ServiceError::invalid(
            field,
            format!("at most {MAX_PER_MINUTE}"),
        )),
        _ => Ok(()),
    };
    check("requestsPerMinute", requests_per_minute)?;
    check("pointsPerMinute", points_per_minute)?;
    // $2/$4: whether to write the limit; $3/$5: its value (NULL: the default).
    let keep = |c: Change| Value::from(c == Change::Keep);
    let value = |c: Change| match c {
        Change::Set(n) => Value::from(i32::try_from(n).ok()),
        Change::Keep | Change::Default => Value::Int(None),
    };
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO clinic_budgets AS b \
               (organization_id, requests_per_minute, points_per_minute, updated_by) \
             VALUES ($1, $3, $5, $6) \
             ON CONFLICT (organization_id) DO UPDATE SET \
               requests_per_minute = CASE WHEN $2 THEN b.requests_per_minute \
                                          ELSE EXCLUDED.requests_per_minute END, \
               points_per_minute = CASE WHEN $4 THEN b.points_per_minute \
                                        ELSE EXCLUDED.points_per_minute END, \
               updated_by = EXCLUDED.updated_by \
             RETURNING requests_per_minute, points_per_minute",
            [
                clinic.into_uuid().into(),
                keep(requests_per_minute),
                value(requests_per_minute),
                keep(points_per_minute),
                value(points_per_minute),
                actor.user.into_uuid().into(),
            ],
        ))
        .await
        .or_db("setting the clinic's budget")?
        .context("the clinic's budget was not returned")?;
    Ok(Overrides {
        requests_per_minute: limit_of(&row, "requests_per_minute")?,
        points_per_minute: limit_of(&row, "points_per_minute")?,
    })
}

/// One server's spending of one clinic since its last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    pub clinic: Uuid,
    pub requests: u64,
    pub points: u64,
}

/// A clinic's spending in the window, all servers together, and its own
/// limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub clinic: Uuid,
    pub requests: u64,
    pub points: u64,
    pub overrides: Overrides,
}

/// Adds `spent` (this server's counts in the window starting at
/// `window_start`) to the clinic-wide counts and returns, for every clinic
/// in `spent` (zeros included), the window's totals and the clinic's own
/// limits. Runs as the runtime role on a connection of its own, outside
/// any request: `app.sync_clinic_budgets` is the only way to the counts.
#[tracing::instrument(skip_all, name = "budgets.sync", level = "debug", fields(clinics = spent.len()))]
pub async fn sync(
    db: &impl ConnectionTrait,
    window_start: DateTime<Utc>,
    spent: &[Spent],
) -> anyhow::Result<Vec<Totals>> {
    let counts = |f: fn(&Spent) -> u64| {
        let body: Vec<String> = spent.iter().map(|s| f(s).to_string()).collect();
        Value::from(format!("{{{}}}", body.join(",")))
    };
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT organization_id, requests, points, requests_per_minute, points_per_minute \
             FROM app.sync_clinic_budgets($1, $2::uuid[], $3::bigint[], $4::bigint[])",
            [
                window_start.into(),
                crate::sql::uuid_array(spent.iter().map(|s| s.clinic)),
                counts(|s| s.requests),
                counts(|s| s.points),
            ],
        ))
        .await
        .context("syncing the clinics' budgets")?;
    rows.iter()
        .map(|row| {
            let count = |column: &str| -> anyhow::Result<u64> {
                let n: i64 = row.try_get("", column).context("a budget count")?;
                u64::try_from(n).context("a negative budget count")
            };
            Ok(Totals {
                clinic: row.try_get("", "organization_id").context("a clinic")?,
                requests: count("requests")?,
                points: count("points")?,
                overrides: Overrides {
                    requests_per_minute: limit_of(row, "requests_per_minute")?,
                    points_per_minute: limit_of(row, "points_per_minute")?,
                },
            })
        })
        .collect()
}
