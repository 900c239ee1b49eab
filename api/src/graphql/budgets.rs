//! A super admin's override of a clinic's budget, in the mutation root.
//! Merged into `Mutation`; it parses, calls one service function and maps
//! the result.

use async_graphql::{Context, MaybeUndefined, Object};
use service::budgets::Change;
use uuid::Uuid;

use super::scope::{ScopeExt, in_savepoint};
use super::types::budget::ClinicBudget;
use crate::error::{ApiError, GqlResult};

/// A limit as the mutation gives it: left out (kept), null (the default)
/// or a number of at least 0.
fn change(field: &'static str, value: MaybeUndefined<i32>) -> GqlResult<Change> {
    match value {
        MaybeUndefined::Undefined => Ok(Change::Keep),
        MaybeUndefined::Null => Ok(Change::Default),
        MaybeUndefined::Value(n) => u32::try_from(n)
            .map(Change::Set)
            .map_err(|_| ApiError::bad_input(field, "must be 0 (no limit) or more").into()),
    }
}

#[derive(Default)]
pub struct BudgetMutation;

#[Object]
impl BudgetMutation {
    /// Sets a clinic's own budget per minute in place of the servers'
    /// defaults (BUDGET_REQUESTS_PER_MINUTE, BUDGET_POINTS_PER_MINUTE): only
    /// a super admin acting in that clinic through an audited impersonation
    /// (anyone else, its admins included: FORBIDDEN, reason
    /// IMPERSONATION_REQUIRED); another clinic than the one acted in is
    /// NOT_FOUND. A limit left out stays as it is, null restores the
    /// default, 0 is no limit. Every server applies it within
    /// BUDGET_SYNC_MS. Audited.
    async fn set_clinic_budget(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The clinic (the one acted in).")] organization_id: Uuid,
        #[graphql(desc = "Requests per minute; null: the default; 0: no limit.")]
        requests_per_minute: MaybeUndefined<i32>,
        #[graphql(desc = "Complexity points per minute; null: the default; 0: no limit.")]
        points_per_minute: MaybeUndefined<i32>,
    ) -> GqlResult<ClinicBudget> {
        let actor = ctx.actor()?;
        let requests = change("requestsPerMinute", requests_per_minute)?;
        let points = change("pointsPerMinute", points_per_minute)?;
        let settings = *ctx.shared::<crate::budgets::Settings>()?;
        let own = in_savepoint(ctx, async |tx| {
            service::budgets::set(tx, actor, organization_id.into(), requests, points).await
        })
        .await?;
        Ok(ClinicBudget { own, settings })
    }
}
