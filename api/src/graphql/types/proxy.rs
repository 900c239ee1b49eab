//! Proxy (guardian) grants.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
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
    /// The user's id.
    pub id: Uuid,
    /// The name to show for them.
    pub display_name: String,
    /// The email they log in with.
    pub email: String,
}

#[derive(Clone)]
pub struct ProxyAssignment(pub proxy_assignment::Model);

/// A grant letting a person (a parent, guardian, caregiver) act for a
/// patient of the clinic, within its permissions, from `grantedAt` until
/// `expiresAt` or revocation. Kept after it ends, for the record. Clinic
/// staff see the grants.
#[Object]
impl ProxyAssignment {
    /// The grant's id (for `revokeProxyAccess`). A Relay node id: the object's UUID, which every argument taking a
    /// UUID accepts.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// How the proxy is related to the patient.
    async fn relationship(&self) -> ProxyRelationship {
        self.0.relationship.into()
    }
    /// May see the patient's chart: name, date of birth, contact methods,
    /// care team.
    async fn can_view_profile(&self) -> bool {
        self.0.can_view_profile
    }
    /// May see the patient's appointments.
    async fn can_view_appointments(&self) -> bool {
        self.0.can_view_appointments
    }
    /// May book appointments for the patient, and cancel them.
    async fn can_schedule_appointments(&self) -> bool {
        self.0.can_schedule_appointments
    }
    /// May read the patient's clinical notes (kept with the grant; no part
    /// of this API serves notes).
    async fn can_view_clinical_notes(&self) -> bool {
        self.0.can_view_clinical_notes
    }
    /// May see the patient's payer authorizations.
    async fn can_view_billing(&self) -> bool {
        self.0.can_view_billing
    }
    /// May message the patient's providers (kept with the grant; no part of
    /// this API sends messages).
    async fn can_message_providers(&self) -> bool {
        self.0.can_message_providers
    }
    /// When the grant was made.
    async fn granted_at(&self) -> DateTime<FixedOffset> {
        self.0.granted_at
    }
    /// Access ends at this instant (never, when null).
    async fn expires_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.expires_at
    }
    /// When the grant was revoked (`revokeProxyAccess`); null while not.
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
        let name = ctx.loaders()?.user_names.load_one(user).await.gql()?;
        Ok(name.map(|n| UserSummary {
            id: user,
            display_name: n.display_name,
            email: n.email,
        }))
    }
    /// The patient the proxy acts for; null when not visible to the caller.
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

/// A grant to make. Every permission is off unless set to true.
#[derive(InputObject)]
pub struct GrantProxyAccessInput {
    /// The patient the proxy will act for (BAD_USER_INPUT on `patientId`
    /// when there is no such patient).
    pub patient_id: Uuid,
    /// The proxy's email (their caregate login, or an invitation to it).
    pub proxy_email: String,
    /// How the proxy is related to the patient; GUARDIAN when omitted.
    #[graphql(default_with = "ProxyRelationship::Guardian")]
    pub relationship: ProxyRelationship,
    /// May see the patient's chart: name, date of birth, contact methods,
    /// care team.
    #[graphql(default = false)]
    pub can_view_profile: bool,
    /// May see the patient's appointments.
    #[graphql(default = false)]
    pub can_view_appointments: bool,
    /// May book appointments for the patient, and cancel them.
    #[graphql(default = false)]
    pub can_schedule_appointments: bool,
    /// May read the patient's clinical notes (kept with the grant; no part
    /// of this API serves notes).
    #[graphql(default = false)]
    pub can_view_clinical_notes: bool,
    /// May see the patient's payer authorizations.
    #[graphql(default = false)]
    pub can_view_billing: bool,
    /// May message the patient's providers (kept with the grant; no part of
    /// this API sends messages).
    #[graphql(default = false)]
    pub can_message_providers: bool,
    /// When access ends: in the future (else BAD_USER_INPUT on
    /// `expiresAt`). Omit for a grant that lasts until revoked.
    pub expires_at: Option<DateTime<FixedOffset>>,
}

/// A pending invitation to act for a patient of a clinic, addressed to the
/// caller's email: the clinic and the relationship, nothing of the patient.
#[derive(SimpleObject)]
pub struct ProxyInvitation {
    /// The invitation's id (for `acceptProxyInvitation`).
    pub id: Uuid,
    /// The inviting clinic (to `switchOrganization` to, once accepted).
    pub organization_id: Uuid,
    /// The inviting clinic's name.
    pub organization_name: String,
    /// How the clinic recorded the invitee's relation to the patient.
    pub relationship: ProxyRelationship,
    /// When the clinic made the grant.
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
