//! Proxy (guardian) grants.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, FixedOffset};
use entity::proxy_assignment;
use uuid::Uuid;

use super::enums::ProxyRelationship;
use super::patient::Patient;
use crate::error::{GqlResult, IntoGql};
use crate::graphql::scope::ScopeExt;

/// A user as the clinic's staff may see them.
#[derive(SimpleObject, Clone)]
pub struct UserSummary {
    pub id: Uuid,
    pub display_name: String,
    pub email: String,
}

pub struct ProxyAssignment(pub proxy_assignment::Model);

#[Object]
impl ProxyAssignment {
    async fn id(&self) -> Uuid {
        self.0.id
    }
    async fn relationship(&self) -> ProxyRelationship {
        self.0.relationship.into()
    }
    async fn can_view_profile(&self) -> bool {
        self.0.can_view_profile
    }
    async fn can_view_appointments(&self) -> bool {
        self.0.can_view_appointments
    }
    async fn can_schedule_appointments(&self) -> bool {
        self.0.can_schedule_appointments
    }
    async fn can_view_clinical_notes(&self) -> bool {
        self.0.can_view_clinical_notes
    }
    async fn can_view_billing(&self) -> bool {
        self.0.can_view_billing
    }
    async fn can_message_providers(&self) -> bool {
        self.0.can_message_providers
    }
    async fn granted_at(&self) -> DateTime<FixedOffset> {
        self.0.granted_at
    }
    /// Access ends at this instant (never, when null).
    async fn expires_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.expires_at
    }
    async fn revoked_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.revoked_at
    }
    /// Whether the grant is in force now (a pending invitation is not).
    async fn is_active(&self) -> bool {
        let now = chrono::Utc::now();
        self.0.proxy_user_id.is_some()
            && self.0.revoked_at.is_none()
            && self.0.granted_at <= now
            && self.0.expires_at.is_none_or(|e| e > now)
    }
    /// An invitation the person has not accepted yet: it reaches no patient.
    async fn pending(&self) -> bool {
        self.0.proxy_user_id.is_none()
    }
    /// The email the clinic typed when granting.
    async fn invited_email(&self) -> Option<&str> {
        self.0.invited_email.as_deref()
    }
    /// When the invited person accepted.
    async fn accepted_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.accepted_at
    }
    /// The proxy (null while the grant is a pending invitation).
    async fn proxy_user(&self, ctx: &Context<'_>) -> GqlResult<Option<UserSummary>> {
        let Some(user) = self.0.proxy_user_id else {
            return Ok(None);
        };
        Ok(ctx.loaders()?.user_names.load_one(user).await.gql()?)
    }
    async fn patient(&self, ctx: &Context<'_>) -> GqlResult<Option<Patient>> {
        let row = ctx
            .loaders()?
            .patient
            .load_one(self.0.patient_id.into())
            .await
            .gql()?;
        Ok(Patient::returned(ctx, row.into_iter().collect())?.pop())
    }
}

#[derive(InputObject)]
pub struct GrantProxyAccessInput {
    pub patient_id: Uuid,
    /// The proxy's email (their caregate login, or an invitation to it).
    pub proxy_email: String,
    #[graphql(default_with = "ProxyRelationship::Guardian")]
    pub relationship: ProxyRelationship,
    #[graphql(default = false)]
    pub can_view_profile: bool,
    #[graphql(default = false)]
    pub can_view_appointments: bool,
    #[graphql(default = false)]
    pub can_schedule_appointments: bool,
    #[graphql(default = false)]
    pub can_view_clinical_notes: bool,
    #[graphql(default = false)]
    pub can_view_billing: bool,
    #[graphql(default = false)]
    pub can_message_providers: bool,
    pub expires_at: Option<DateTime<FixedOffset>>,
}

/// A pending invitation to act for a patient of a clinic, addressed to the
/// caller's email: the clinic and the relationship, nothing of the patient.
#[derive(SimpleObject)]
pub struct ProxyInvitation {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub organization_name: String,
    pub relationship: ProxyRelationship,
    pub granted_at: DateTime<FixedOffset>,
    /// The invitation (and the access) ends at this instant (never, when null).
    pub expires_at: Option<DateTime<FixedOffset>>,
}

impl From<service::proxies::Invitation> for ProxyInvitation {
    fn from(i: service::proxies::Invitation) -> Self {
        Self {
            id: i.id,
            organization_id: i.organization_id,
            organization_name: i.organization_name,
            relationship: i.relationship.into(),
            granted_at: i.granted_at,
            expires_at: i.expires_at,
        }
    }
}
