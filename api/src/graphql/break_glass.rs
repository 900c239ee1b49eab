//! The break-glass part of the query and mutation roots: emergency access
//! to one patient, and the admins' review queue. Merged into `Query` and
//! `Mutation`; each resolver parses, calls one service function and maps
//! the result.

use async_graphql::{Context, Object};
use service::break_glass::{Filter, Opening, Reason};
use service::pagination::TimeKey;
use uuid::Uuid;

use super::scope::{ScopeExt, in_savepoint};
use super::types::break_glass::{
    self, BreakGlassEvent, BreakGlassEventConnection, BreakGlassFilter, BreakGlassInput,
    BreakGlassOutcome,
};
use super::types::connection::page_request;
use crate::error::{ApiError, GqlResult, IntoGql};

/// The longest break-glass opening this server grants
/// (`BREAK_GLASS_MAX_MINUTES`), shared by every request.
#[derive(Debug, Clone, Copy)]
pub struct BreakGlassLimit {
    pub max_minutes: u32,
}

#[derive(Default)]
pub struct BreakGlassQuery;

#[Object]
impl BreakGlassQuery {
    /// Break-glass openings, newest first: the clinic's review queue for
    /// its admins (of the whole clinic), one's own openings for anyone
    /// else on staff.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn break_glass_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
        after: Option<String>,
        #[graphql(desc = "Which openings to list; all the caller may see when omitted.")]
        filter: Option<BreakGlassFilter>,
    ) -> GqlResult<BreakGlassEventConnection> {
        let actor = ctx.clinical_actor()?;
        let page = page_request::<TimeKey>(first, after)?;
        let filter = filter.unwrap_or_default();
        let filter = Filter {
            unreviewed_only: filter.unreviewed_only,
            patient: filter.patient_id.map(Into::into),
        };
        let rows = service::break_glass::list(&ctx.scope()?.tx, actor, &filter, &page)
            .await
            .gql()?;
        Ok(break_glass::connection(rows))
    }
}

#[derive(Default)]
pub struct BreakGlassMutation;

#[Object]
impl BreakGlassMutation {
    /// Opens emergency access to one patient of the caller's clinic whom
    /// their normal scope does not cover (staff limited to some
    /// facilities): at once, for this session, until `expiresAt`. The
    /// opening is audited (BREAK_GLASS), every read under it too
    /// (BREAK_GLASS_READ), and the clinic's admins are notified to review
    /// it. Portal users may not (FORBIDDEN ROLE); staff who already reach
    /// every patient need not (CONFLICT BREAK_GLASS_NOT_NEEDED); a session
    /// holds at most 25 live openings (CONFLICT BREAK_GLASS_LIMIT); a
    /// patient of another clinic is NOT_FOUND.
    async fn break_glass(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The patient, why, and for how long.")] input: BreakGlassInput,
    ) -> GqlResult<BreakGlassEvent> {
        let actor = ctx.clinical_actor()?;
        let limit = ctx.shared::<BreakGlassLimit>()?;
        let minutes = input
            .duration_minutes
            .map(|m| {
                u32::try_from(m).map_err(|_| {
                    ApiError::bad_input("durationMinutes", "a positive number of minutes")
                })
            })
            .transpose()?;
        let opening = Opening {
            patient: input.patient_id.into(),
            purpose: input.purpose.into(),
            reason: Reason::parse(&input.reason).gql()?,
            minutes,
        };
        let row = in_savepoint(ctx, async |tx| {
            service::break_glass::open(tx, actor, &opening, limit.max_minutes).await
        })
        .await?;
        ctx.scope()?.opened_break_glass(row.patient_id);
        Ok(BreakGlassEvent(row))
    }

    /// Records an admin's review of a break-glass opening (ADMIN of the
    /// whole clinic): once (CONFLICT ALREADY_REVIEWED), never one's own
    /// (FORBIDDEN OWN_BREAK_GLASS). INAPPROPRIATE ends an access still
    /// running.
    async fn review_break_glass(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The opening's id.")] id: Uuid,
        #[graphql(desc = "The judgement.")] outcome: BreakGlassOutcome,
        #[graphql(desc = "What the reviewer found (at most 2000 characters).")] comment: Option<
            String,
        >,
    ) -> GqlResult<BreakGlassEvent> {
        let actor = ctx.actor()?;
        let row = in_savepoint(ctx, async |tx| {
            service::break_glass::review(tx, actor, id, outcome.into(), comment.as_deref()).await
        })
        .await?;
        Ok(BreakGlassEvent(row))
    }
}
