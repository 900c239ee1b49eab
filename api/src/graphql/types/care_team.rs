//! Care team assignments.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, FixedOffset};
use entity::care_team_assignment;

use super::enums::CareTeamRole;
use super::patient::Patient;
use super::provider::Provider;
use crate::error::{GqlResult, IntoGql};
use crate::graphql::scope::ScopeExt;

#[derive(Clone)]
pub struct CareTeamAssignment(pub care_team_assignment::Model);

/// A provider on a patient's care team, in a role. Removing a provider
/// keeps the assignment, with `removedAt` set.
#[Object]
impl CareTeamAssignment {
    /// The assignment's id (for `removeCareTeamMember`). A Relay node id: the object's UUID, which every argument taking a
    /// UUID accepts.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The provider's role on the team.
    async fn role(&self) -> CareTeamRole {
        self.0.role.into()
    }
    /// When the provider joined the team.
    async fn assigned_at(&self) -> DateTime<FixedOffset> {
        self.0.assigned_at
    }
    /// Set when the provider was taken off the team (the row is kept).
    async fn removed_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.removed_at
    }
    /// The patient; null when not visible to the caller.
    async fn patient(&self, ctx: &Context<'_>) -> GqlResult<Option<Patient>> {
        let row = ctx
            .loaders()?
            .patient
            .load_one(self.0.patient_id.into())
            .await
            .gql()?;
        Ok(Patient::returned(ctx, row.into_iter().collect())?.pop())
    }
    /// The provider; null when the provider's record was deleted.
    async fn provider(&self, ctx: &Context<'_>) -> GqlResult<Option<Provider>> {
        let row = ctx
            .loaders()?
            .provider
            .load_one(self.0.provider_id.into())
            .await
            .gql()?;
        Ok(row.map(Provider))
    }
}
