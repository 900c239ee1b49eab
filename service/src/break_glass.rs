//! Break-glass: emergency access to one patient of the caller's clinic that
//! their normal scope does not cover, and the review of every such access.
//!
//! A staff member limited to some of the clinic's facilities does not see
//! a patient's visits, sessions and notes elsewhere. In an emergency they
//! open that one patient, saying why (an HL7 PurposeOfUse code and free
//! text) and for how long. The database does the rest in one definer
//! function: it records the opening and its BREAK_GLASS audit event,
//! notifies the clinic's admins, and adds the patient to the transaction's
//! scope, so the access starts within the very request. From then on
//! `app.begin_request` puts the session's live openings in every request's
//! context until each expires; nothing here filters rows.

use anyhow::Context;
use chrono::{DateTime, FixedOffset, Utc};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};
use uuid::Uuid;

use crate::Tx;
use crate::actor::{Actor, Role};
use crate::domain::PatientId;
use crate::error::{ConflictReason, DbResultExt, ServiceError, ServiceResult, sqlstate};
use crate::pagination::{Page, PageRequest, TimeKey};

/// How long an opening lasts when the caller does not say.
pub const DEFAULT_MINUTES: u32 = 60;
/// The longest opening the database accepts, whatever the configuration.
pub const HARD_MAX_MINUTES: u32 = 24 * 60;
/// The longest reason and review comment (the database holds the same bounds).
const MAX_REASON_CHARS: usize = 1000;
const MAX_COMMENT_CHARS: usize = 2000;

/// Why the access is needed: HL7 v3 PurposeOfUse (ActReason) codes for
/// emergencies (the database's check lists the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurposeOfUse {
    /// `ETREAT`: emergency treatment.
    EmergencyTreatment,
    /// `BTG`: break the glass (an emergency not covered by a narrower code).
    BreakTheGlass,
}

impl PurposeOfUse {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmergencyTreatment => "ETREAT",
            Self::BreakTheGlass => "BTG",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::EmergencyTreatment, Self::BreakTheGlass]
            .into_iter()
            .find(|p| p.as_str() == raw)
    }
}

/// An admin's judgement of an opening (the database's check lists the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewOutcome {
    /// The emergency justified the access.
    Appropriate,
    /// It did not; a running access ends at once.
    Inappropriate,
}

impl ReviewOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Appropriate => "APPROPRIATE",
            Self::Inappropriate => "INAPPROPRIATE",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Appropriate, Self::Inappropriate]
            .into_iter()
            .find(|o| o.as_str() == raw)
    }
}

/// The free-text account of the emergency: 1 to 1000 characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    pub fn parse(raw: &str) -> ServiceResult<Self> {
        let text = raw.trim();
        // Blank or invisible text (zero-width spaces, say) says nothing.
        if !text.chars().any(char::is_alphanumeric) {
            return Err(ServiceError::invalid("reason", "must say why"));
        }
        if text.chars().count() > MAX_REASON_CHARS {
            return Err(ServiceError::invalid(
                "reason",
                format!("at most {MAX_REASON_CHARS} characters"),
            ));
        }
        if text.contains('\0') {
            return Err(ServiceError::invalid("reason", "must not contain NUL"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One opening, as its table holds it.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct BreakGlassEvent {
    pub id: Uuid,
    pub user_id: Uuid,
    pub patient_id: Uuid,
    pub purpose: String,
    pub reason: String,
    pub opened_at: DateTime<FixedOffset>,
    pub expires_at: DateTime<FixedOffset>,
    pub outcome: Option<String>,
    pub review_comment: Option<String>,
    pub reviewed_by: Option<Uuid>,
    pub reviewed_at: Option<DateTime<FixedOffset>>,
}

impl BreakGlassEvent {
    pub fn key(&self) -> TimeKey {
        TimeKey {
            at: self.opened_at,
            id: self.id,
        }
    }

    pub fn purpose(&self) -> Option<PurposeOfUse> {
        PurposeOfUse::parse(&self.purpose)
    }

    pub fn outcome(&self) -> Option<ReviewOutcome> {
        self.outcome.as_deref().and_then(ReviewOutcome::parse)
    }

    /// Whether the access is still running.
    pub fn is_active(&self) -> bool {
        self.expires_at > Utc::now()
    }
}

const COLUMNS: &str = "id, user_id, patient_id, purpose, reason, opened_at, expires_at, outcome, \
                       review_comment, reviewed_by, reviewed_at";

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn event_of(row: &sea_orm::QueryResult) -> ServiceResult<BreakGlassEvent> {
    Ok(BreakGlassEvent::from_query_result(row, "").context("a break-glass event")?)
}

/// What to open: the patient, why, and for how many minutes (`None`: the
/// default, capped by the configured maximum).
pub struct Opening {
    pub patient: PatientId,
    pub purpose: PurposeOfUse,
    pub reason: Reason,
    pub minutes: Option<u32>,
}

/// Opens emergency access to one patient for the caller's session, at
/// once. Portal users may not (FORBIDDEN ROLE); staff who already reach
/// every patient need not (CONFLICT BREAK_GLASS_NOT_NEEDED); a patient not
/// of this clinic is not found.
pub async fn open(
    tx: &Tx,
    actor: &Actor,
    opening: &Opening,
    max_minutes: u32,
) -> ServiceResult<BreakGlassEvent> {
    actor.require(&[Role::Admin, Role::Provider, Role::Staff])?;
    if actor.facility_scope.is_none() {
        return Err(ServiceError::Conflict(ConflictReason::BreakGlassNotNeeded));
    }
    let max = max_minutes.clamp(1, HARD_MAX_MINUTES);
    let minutes = opening.minutes.unwrap_or(DEFAULT_MINUTES.min(max));
    if !(1..=max).contains(&minutes) {
        return Err(ServiceError::invalid(
            "durationMinutes",
            format!("1 to {max} minutes"),
        ));
    }
    let row = tx
        .query_one_raw(stmt(
            &format!("SELECT {COLUMNS} FROM app.open_break_glass($1, $2, $3, $4)"),
            [
                opening.patient.into_uuid().into(),
                opening.purpose.as_str().into(),
                opening.reason.as_str().into(),
                (minutes as i32).into(),
            ],
        ))
        .await;
    let row = match row {
        // The function's refusal of a patient it cannot find in the clinic.
        Err(err) if sqlstate(&err).as_deref() == Some("P0002") => {
            return Err(ServiceError::NotFound);
        }
        other => other.or_db("opening break-glass access")?,
    };
    event_of(&row.context("open_break_glass returned no row")?)
}

/// Which openings to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only those no admin has reviewed yet (the review queue).
    pub unreviewed_only: bool,
    pub patient: Option<PatientId>,
}

/// A page of openings, newest first: every one of the clinic for its
/// admins, their own for anyone else on staff (row-level security decides).
pub async fn list(
    tx: &Tx,
    actor: &Actor,
    filter: &Filter,
    page: &PageRequest<TimeKey>,
) -> ServiceResult<Page<BreakGlassEvent>> {
    actor.require_staff()?;
    let (after_at, after_id) = page.after_time();
    let rows = tx
        .query_all_raw(stmt(
            &format!(
                "SELECT {COLUMNS} FROM break_glass_events \
                 WHERE (NOT $1 OR outcome IS NULL) \
                   AND ($2::uuid IS NULL OR patient_id = $2) \
                   AND ($3::timestamptz IS NULL OR (opened_at, id) < ($3, $4)) \
                 ORDER BY opened_at DESC, id DESC LIMIT $5"
            ),
            [
                filter.unreviewed_only.into(),
                filter.patient.map(PatientId::into_uuid).into(),
                after_at.into(),
                after_id.into(),
                ((page.first + 1) as i64).into(),
            ],
        ))
        .await
        .or_db("listing break-glass events")?;
    let items = rows.iter().map(event_of).collect::<ServiceResult<_>>()?;
    Ok(Page::from_overfetch(items, page.first))
}

/// One opening the caller may see.
pub async fn by_id(tx: &Tx, id: Uuid) -> ServiceResult<BreakGlassEvent> {
    let row = tx
        .query_one_raw(stmt(
            &format!("SELECT {COLUMNS} FROM break_glass_events WHERE id = $1"),
            [id.into()],
        ))
        .await
        .or_db("loading a break-glass event")?
        .ok_or(ServiceError::NotFound)?;
    event_of(&row)
}

/// An admin's review of an opening: once (CONFLICT ALREADY_REVIEWED), never
/// of their own (FORBIDDEN OWN_BREAK_GLASS). INAPPROPRIATE ends a running
/// access at once.
pub async fn review(
    tx: &Tx,
    actor: &Actor,
    id: Uuid,
    outcome: ReviewOutcome,
    comment: Option<&str>,
) -> ServiceResult<BreakGlassEvent> {
    actor.require(&[Role::Admin])?;
    actor.require_whole_clinic()?;
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS || c.contains('\0')) {
        return Err(ServiceError::invalid(
            "comment",
            format!("at most {MAX_COMMENT_CHARS} characters, without NUL"),
        ));
    }
    let row = tx
        .query_one_raw(stmt(
            &format!(
                "UPDATE break_glass_events SET outcome = $2, review_comment = $3 \
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            [
                id.into(),
                outcome.as_str().into(),
                comment.map(str::to_owned).into(),
            ],
        ))
        .await
        .or_db("reviewing a break-glass event")?
        .ok_or(ServiceError::NotFound)?;
    event_of(&row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_trimmed_and_bounded() {
        assert_eq!(
            Reason::parse("  unconscious on arrival ").unwrap().as_str(),
            "unconscious on arrival"
        );
        assert!(Reason::parse("   ").is_err());
        assert!(Reason::parse("\u{200b}\u{feff}").is_err());
        assert!(Reason::parse(&"x".repeat(1001)).is_err());
        assert!(Reason::parse(&"é".repeat(1000)).is_ok());
    }

    #[test]
    fn purposes_are_hl7_codes() {
        assert_eq!(
            PurposeOfUse::parse("ETREAT"),
            Some(PurposeOfUse::EmergencyTreatment)
        );
        assert_eq!(
            PurposeOfUse::parse("BTG"),
            Some(PurposeOfUse::BreakTheGlass)
        );
        assert_eq!(PurposeOfUse::parse("TREAT"), None);
    }
}
