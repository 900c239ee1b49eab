//! Break-glass openings: emergency access to one patient, and their review.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, Enum, InputObject, Object};
use chrono::{DateTime, FixedOffset};
use service::break_glass as svc;
use service::pagination::{Page, TimeKey};
use uuid::Uuid;

use super::patient::Patient;
use super::proxy::UserSummary;
use crate::error::{ApiError, GqlResult, IntoGql};
use crate::graphql::scope::ScopeExt;

pub type BreakGlassEventConnection = Connection<OpaqueCursor<TimeKey>, BreakGlassEvent>;

/// The description of `BreakGlassEventConnection`.
pub const CONNECTION_DESCRIPTION: &str = "\
    A page of break-glass openings, newest first. Ask for the next page\n\
    with `after: pageInfo.endCursor` while `pageInfo.hasNextPage`.";

pub fn connection(page: Page<svc::BreakGlassEvent>) -> BreakGlassEventConnection {
    let mut conn = Connection::new(false, page.has_next_page);
    for e in page.items {
        conn.edges
            .push(Edge::new(OpaqueCursor(e.key()), BreakGlassEvent(e)));
    }
    conn
}

/// Why emergency access is needed: an HL7 v3 PurposeOfUse code.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "service::break_glass::PurposeOfUse")]
pub enum PurposeOfUse {
    /// `ETREAT`: emergency treatment.
    #[graphql(name = "ETREAT")]
    EmergencyTreatment,
    /// `BTG`: break the glass — an emergency no narrower code covers.
    #[graphql(name = "BTG")]
    BreakTheGlass,
}

/// An admin's judgement of a break-glass opening.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "service::break_glass::ReviewOutcome")]
pub enum BreakGlassOutcome {
    /// The emergency justified the access.
    Appropriate,
    /// It did not; an access still running ends at once.
    Inappropriate,
}

/// `breakGlass`'s input.
#[derive(InputObject)]
pub struct BreakGlassInput {
    /// The patient (of the caller's clinic) to open.
    pub patient_id: Uuid,
    /// Why: an HL7 PurposeOfUse code.
    pub purpose: PurposeOfUse,
    /// What the emergency is, in the caller's words (1 to 1000 characters);
    /// the clinic's admins read it when they review the access.
    pub reason: String,
    /// How long the access lasts, in minutes: 60 when omitted, at most the
    /// server's `BREAK_GLASS_MAX_MINUTES`.
    pub duration_minutes: Option<i32>,
}

/// Which openings to list.
#[derive(InputObject, Default)]
pub struct BreakGlassFilter {
    /// Only those not reviewed yet: the review queue.
    #[graphql(default)]
    pub unreviewed_only: bool,
    /// Only those of this patient.
    pub patient_id: Option<Uuid>,
}

#[derive(Clone)]
pub struct BreakGlassEvent(pub svc::BreakGlassEvent);

/// Emergency access to one patient outside the opener's normal scope, for
/// their session, until it expires. Every opening is audited
/// (BREAK_GLASS), so is every read under it (BREAK_GLASS_READ), and the
/// clinic's admins are notified and review it.
#[Object]
impl BreakGlassEvent {
    /// The opening's id (for `reviewBreakGlass`).
    async fn id(&self) -> Uuid {
        self.0.id
    }
    /// The patient opened; null when the reader may not see them.
    async fn patient(&self, ctx: &Context<'_>) -> GqlResult<Option<Patient>> {
        let p = ctx
            .loaders()?
            .patient
            .load_one(self.0.patient_id.into())
            .await
            .gql()?;
        Ok(Patient::returned(ctx, p.into_iter().collect())?.pop())
    }
    /// The patient's id.
    async fn patient_id(&self) -> Uuid {
        self.0.patient_id
    }
    /// Who opened it.
    async fn opened_by(&self, ctx: &Context<'_>) -> GqlResult<Option<UserSummary>> {
        user(ctx, Some(self.0.user_id)).await
    }
    /// Why, as an HL7 PurposeOfUse code.
    async fn purpose(&self) -> GqlResult<PurposeOfUse> {
        self.0
            .purpose()
            .map(Into::into)
            .ok_or_else(|| ApiError::internal().into())
    }
    /// What the emergency was, in the opener's words.
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    /// When it was opened.
    async fn opened_at(&self) -> DateTime<FixedOffset> {
        self.0.opened_at
    }
    /// When the access ends (or ended).
    async fn expires_at(&self) -> DateTime<FixedOffset> {
        self.0.expires_at
    }
    /// Whether the access is still running.
    async fn active(&self) -> bool {
        self.0.is_active()
    }
    /// The review's outcome; null until an admin reviews it.
    async fn outcome(&self) -> GqlResult<Option<BreakGlassOutcome>> {
        match &self.0.outcome {
            None => Ok(None),
            Some(_) => self
                .0
                .outcome()
                .map(|o| Some(o.into()))
                .ok_or_else(|| ApiError::internal().into()),
        }
    }
    /// The reviewer's comment.
    async fn review_comment(&self) -> Option<&str> {
        self.0.review_comment.as_deref()
    }
    /// Who reviewed it; null until reviewed.
    async fn reviewed_by(&self, ctx: &Context<'_>) -> GqlResult<Option<UserSummary>> {
        user(ctx, self.0.reviewed_by).await
    }
    /// When it was reviewed.
    async fn reviewed_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.reviewed_at
    }
}

async fn user(ctx: &Context<'_>, id: Option<Uuid>) -> GqlResult<Option<UserSummary>> {
    let Some(id) = id else {
        return Ok(None);
    };
    let name = ctx.loaders()?.user_names.load_one(id).await.gql()?;
    Ok(name.map(|n| UserSummary {
        id,
        display_name: n.display_name,
        email: n.email,
    }))
}
