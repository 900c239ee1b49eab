//! Per-user notifications and the preferences that say which ones a user
//! wants and when not to be disturbed.
//!
//! Notifications are created by database triggers in the transaction of
//! their cause — a message, a booking or change of an appointment, a
//! claim's status — so one exists exactly when its cause committed; the one
//! kind with no row to trigger on, CONSENT_REQUIRED, is created here at
//! login. Each user reads only their own (row-level security). A
//! notification holds ids only: what it is about is read, under the
//! reader's own access, when it is shown.

use anyhow::Context;
use chrono::{DateTime, FixedOffset, NaiveTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};
use uuid::Uuid;

use crate::Tx;
use crate::actor::Actor;
use crate::codes::IanaZone;
use crate::error::{DbResultExt, ServiceError, ServiceResult};
use crate::pagination::{Page, PageRequest, TimeKey};
use crate::sql::uuid_array;

/// What a notification is about (the database's check lists the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationKind {
    NewMessage,
    AppointmentBooked,
    AppointmentChanged,
    AppointmentCancelled,
    ClaimStatus,
    ConsentRequired,
    BreakGlass,
}

impl NotificationKind {
    pub const ALL: [Self; 7] = [
        Self::NewMessage,
        Self::AppointmentBooked,
        Self::AppointmentChanged,
        Self::AppointmentCancelled,
        Self::ClaimStatus,
        Self::ConsentRequired,
        Self::BreakGlass,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewMessage => "NEW_MESSAGE",
            Self::AppointmentBooked => "APPOINTMENT_BOOKED",
            Self::AppointmentChanged => "APPOINTMENT_CHANGED",
            Self::AppointmentCancelled => "APPOINTMENT_CANCELLED",
            Self::ClaimStatus => "CLAIM_STATUS",
            Self::ConsentRequired => "CONSENT_REQUIRED",
            Self::BreakGlass => "BREAK_GLASS",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Notification {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: String,
    pub subject_type: String,
    pub subject_id: Uuid,
    pub created_at: DateTime<FixedOffset>,
    pub read_at: Option<DateTime<FixedOffset>>,
}

impl Notification {
    pub fn key(&self) -> TimeKey {
        TimeKey {
            at: self.created_at,
            id: self.id,
        }
    }

    pub fn kind(&self) -> Option<NotificationKind> {
        NotificationKind::parse(&self.kind)
    }
}

const COLUMNS: &str = "id, user_id, kind, subject_type, subject_id, created_at, read_at";

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// A page of the caller's notifications, newest first.
pub async fn list(
    tx: &Tx,
    unread_only: bool,
    page: &PageRequest<TimeKey>,
) -> ServiceResult<Page<Notification>> {
    let (after_at, after_id) = page.after_time();
    let rows = tx
        .query_all_raw(stmt(
            &format!(
                "SELECT {COLUMNS} FROM notifications \
                 WHERE user_id = app.current_user_id() \
                   AND (NOT $1 OR read_at IS NULL) \
                   AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
                 ORDER BY created_at DESC, id DESC LIMIT $4"
            ),
            [
                unread_only.into(),
                after_at.into(),
                after_id.into(),
                ((page.first + 1) as i64).into(),
            ],
        ))
        .await
        .or_db("listing notifications")?;
    let items = rows
        .iter()
        .map(|r| Ok(Notification::from_query_result(r, "").context("a notification")?))
        .collect::<ServiceResult<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.first))
}

/// One of the caller's notifications.
pub async fn by_id(tx: &Tx, id: Uuid) -> ServiceResult<Notification> {
    let row = tx
        .query_one_raw(stmt(
            &format!("SELECT {COLUMNS} FROM notifications WHERE id = $1"),
            [id.into()],
        ))
        .await
        .or_db("loading a notification")?
        .ok_or(ServiceError::NotFound)?;
    Ok(Notification::from_query_result(&row, "").context("a notification")?)
}

/// How many of the caller's notifications are unread.
pub async fn unread_count(tx: &Tx) -> ServiceResult<i64> {
    let row = tx
        .query_one_raw(stmt(
            "SELECT count(*) AS n FROM notifications \
             WHERE user_id = app.current_user_id() AND read_at IS NULL",
            [],
        ))
        .await
        .or_db("counting notifications")?
        .context("count returned no row")?;
    Ok(row.try_get("", "n").context("n")?)
}

/// Marks the caller's notifications read: those named, or all of them.
/// Returns how many changed (ids of others' notifications change nothing).
pub async fn mark_read(tx: &Tx, ids: Option<&[Uuid]>) -> ServiceResult<u64> {
    if ids.is_some_and(|ids| ids.len() > 100) {
        return Err(ServiceError::invalid("ids", "at most 100 at a time"));
    }
    let result = tx
        .execute_raw(stmt(
            "UPDATE notifications SET read_at = now() \
             WHERE user_id = app.current_user_id() AND read_at IS NULL \
               AND ($1::uuid[] IS NULL OR id = ANY ($1::uuid[]))",
            [match ids {
                Some(ids) => uuid_array(ids.iter().copied()),
                None => Value::String(None),
            }],
        ))
        .await
        .or_db("marking notifications read")?;
    Ok(result.rows_affected())
}

/// Records, once while unread, that the caller must sign the HIPAA notice
/// in force (called at login when it is unsigned).
pub async fn consent_required(tx: &Tx, actor: &Actor) -> ServiceResult<()> {
    tx.execute_raw(stmt(
        "INSERT INTO notifications (organization_id, user_id, kind, subject_type, subject_id) \
         SELECT $1, $2, 'CONSENT_REQUIRED', 'consent_documents', d.id \
         FROM consent_documents d \
         WHERE d.kind = 'HIPAA_NOTICE' AND d.is_active AND NOT EXISTS ( \
             SELECT 1 FROM notifications n \
             WHERE n.user_id = $2 AND n.kind = 'CONSENT_REQUIRED' AND n.subject_id = d.id \
               AND n.read_at IS NULL)",
        [
            actor.tenant.into_uuid().into(),
            actor.user.into_uuid().into(),
        ],
    ))
    .await
    .or_db("notifying that consent is required")?;
    Ok(())
}

/// Which notifications a user wants and their quiet hours.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Preferences {
    pub muted: Vec<NotificationKind>,
    /// From and to, in `timezone` (wrapping past midnight when to < from).
    pub quiet_hours: Option<(NaiveTime, NaiveTime)>,
    pub timezone: Option<String>,
}

impl Preferences {
    /// Whether a notification of `kind` is to be pushed to the user at
    /// `now`: not muted, and not inside their quiet hours.
    pub fn wants(&self, kind: Option<NotificationKind>, now: DateTime<Utc>) -> bool {
        if kind.is_some_and(|k| self.muted.contains(&k)) {
            return false;
        }
        let Some((from, to)) = self.quiet_hours else {
            return true;
        };
        let local = match self
            .timezone
            .as_deref()
            .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
        {
            Some(zone) => now.with_timezone(&zone).time(),
            None => now.time(),
        };
        let quiet = if from <= to {
            local >= from && local < to
        } else {
            local >= from || local < to
        };
        !quiet
    }
}

/// The caller's preferences (the defaults when they set none).
pub async fn preferences(tx: &Tx) -> ServiceResult<Preferences> {
    let row = tx
        .query_one_raw(stmt(
            "SELECT muted_kinds, quiet_start, quiet_end, timezone FROM notification_preferences \
             WHERE user_id = app.current_user_id() AND organization_id = app.current_tenant_id()",
            [],
        ))
        .await
        .or_db("loading notification preferences")?;
    let Some(row) = row else {
        return Ok(Preferences::default());
    };
    let muted: Vec<String> = row.try_get("", "muted_kinds").context("muted_kinds")?;
    let start: Option<NaiveTime> = row.try_get("", "quiet_start").context("quiet_start")?;
    let end: Option<NaiveTime> = row.try_get("", "quiet_end").context("quiet_end")?;
    Ok(Preferences {
        muted: muted
            .iter()
            .filter_map(|k| NotificationKind::parse(k))
            .collect(),
        quiet_hours: start.zip(end),
        timezone: row.try_get("", "timezone").context("timezone")?,
    })
}

/// Replaces the caller's preferences.
pub async fn set_preferences(
    tx: &Tx,
    actor: &Actor,
    muted: &[NotificationKind],
    quiet_hours: Option<(NaiveTime, NaiveTime)>,
    timezone: Option<IanaZone>,
) -> ServiceResult<Preferences> {
    let mut muted: Vec<NotificationKind> = muted.to_vec();
    muted.sort_by_key(|k| k.as_str());
    muted.dedup();
    let names: Vec<String> = muted.iter().map(|k| k.as_str().to_owned()).collect();
    let timezone = timezone.map(|z| z.tz().name().to_owned());
    tx.execute_raw(stmt(
        "INSERT INTO notification_preferences \
           (organization_id, user_id, muted_kinds, quiet_start, quiet_end, timezone) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (organization_id, user_id) DO UPDATE SET \
           muted_kinds = EXCLUDED.muted_kinds, quiet_start = EXCLUDED.quiet_start, \
           quiet_end = EXCLUDED.quiet_end, timezone = EXCLUDED.timezone",
        [
            actor.tenant.into_uuid().into(),
            actor.user.into_uuid().into(),
            Value::Array(
                sea_orm::sea_query::ArrayType::String,
                Some(Box::new(names.into_iter().map(Value::from).collect())),
            ),
            quiet_hours.map(|q| q.0).into(),
            quiet_hours.map(|q| q.1).into(),
            timezone.clone().into(),
        ],
    ))
    .await
    .or_db("saving notification preferences")?;
    Ok(Preferences {
        muted,
        quiet_hours,
        timezone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 7, 1, h, m, 0).unwrap()
    }

    #[test]
    fn quiet_hours_wrap_past_midnight_in_the_users_zone() {
        let prefs = Preferences {
            muted: vec![],
            quiet_hours: Some((
                NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
                NaiveTime::from_hms_opt(7, 0, 0).unwrap(),
            )),
            timezone: Some("America/New_York".to_owned()),
        };
        // 02:30 UTC is 22:30 in New York (EDT): quiet.
        assert!(!prefs.wants(Some(NotificationKind::NewMessage), at(2, 30)));
        // 11:00 UTC is 07:00 there: no longer quiet.
        assert!(prefs.wants(Some(NotificationKind::NewMessage), at(11, 0)));
        // 01:59 UTC is 21:59: not yet quiet.
        assert!(prefs.wants(None, at(1, 59)));
    }

    #[test]
    fn a_muted_kind_is_not_wanted_at_any_time() {
        let prefs = Preferences {
            muted: vec![NotificationKind::ClaimStatus],
            ..Default::default()
        };
        assert!(!prefs.wants(Some(NotificationKind::ClaimStatus), at(12, 0)));
        assert!(prefs.wants(Some(NotificationKind::NewMessage), at(12, 0)));
    }
}
