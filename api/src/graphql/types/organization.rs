//! The active clinic, the caller, and what a login returns.

use async_graphql::{ComplexObject, Context, ID, Object, SimpleObject};
use chrono::{DateTime, FixedOffset};
use entity::{organization, user};
use uuid::Uuid;

use super::enums::{Role, SubscriptionStatus};
use crate::error::{ApiError, GqlResult, IntoGql};
use crate::graphql::scope::ScopeExt;

/// A clinic. `.1` says whether the caller is staff there, when that is not
/// the request's own role (a switch answers about the clinic it moved to).
#[derive(Clone)]
pub struct Organization(pub organization::Model, pub Option<bool>);

impl Organization {
    pub fn of(row: organization::Model) -> Self {
        Self(row, None)
    }

    fn staff(&self, ctx: &Context<'_>) -> GqlResult<bool> {
        match self.1 {
            Some(staff) => Ok(staff),
            None => Ok(ctx.actor()?.role.is_staff()),
        }
    }
}

/// A clinic: the tenant all of its patients, providers and appointments
/// belong to. A caller acts in one clinic at a time and sees nothing of the
/// others.
#[Object]
impl Organization {
    /// The clinic's id (what `login` and `switchOrganization` take). A Relay node id: the object's UUID, which every argument taking a
    /// UUID accepts.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The clinic's name, to show.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// A short unique handle for the clinic: 2 to 63 lower-case letters,
    /// digits and dashes, starting with a letter or digit (fit for a URL).
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    /// IANA time zone of the clinic (e.g. America/New_York): show local times
    /// in it; appointment days are counted in it.
    async fn timezone(&self) -> &str {
        &self.0.timezone
    }
    /// Where the clinic's caregate plan stands, before any override (its
    /// admins see the status in force in `subscription.status`).
    async fn subscription_status(&self) -> SubscriptionStatus {
        self.0.subscription_status.into()
    }
    /// The clinic's subscription with its override (ADMIN; anyone else is
    /// FORBIDDEN, reason ROLE).
    async fn subscription(
        &self,
        ctx: &Context<'_>,
    ) -> GqlResult<super::payment::ClinicSubscription> {
        let actor = ctx.actor()?;
        if actor.tenant.into_uuid() != self.0.id {
            // Another of the user's clinics: its subscription is read there.
            return Err(ApiError::not_found().into());
        }
        let scope = ctx.scope()?;
        let sub = service::subscription::of_clinic(&scope.tx, actor)
            .await
            .gql()?;
        Ok(super::payment::ClinicSubscription(sub))
    }
    /// What the clinic may spend per minute, all servers together, and
    /// whether a super admin set its own limits (ADMIN; anyone else is
    /// FORBIDDEN, reason ROLE). Where it stands in the current window is in
    /// every response's `extensions.rateLimit`.
    async fn budget(&self, ctx: &Context<'_>) -> GqlResult<super::budget::ClinicBudget> {
        let actor = ctx.actor()?;
        if actor.tenant.into_uuid() != self.0.id {
            // Another of the user's clinics: its budget is read there.
            return Err(ApiError::not_found().into());
        }
        let scope = ctx.scope()?;
        let own = service::budgets::of_clinic(&scope.tx, actor).await.gql()?;
        let settings = *ctx.shared::<crate::budgets::Settings>()?;
        Ok(super::budget::ClinicBudget { own, settings })
    }
    /// Active memberships (staff only; null for patients and proxies).
    async fn member_count(&self, ctx: &Context<'_>) -> GqlResult<Option<i32>> {
        Ok(self.staff(ctx)?.then_some(self.0.member_count))
    }
    /// Open and discharged charts (staff only; null for patients and proxies).
    async fn patient_count(&self, ctx: &Context<'_>) -> GqlResult<Option<i32>> {
        Ok(self.staff(ctx)?.then_some(self.0.patient_count))
    }
    /// The clinic's identity on its claims (staff only; null for patients
    /// and proxies). Set with `setBillingIdentity`.
    async fn billing_identity(
        &self,
        ctx: &Context<'_>,
    ) -> GqlResult<Option<super::clinic::BillingIdentity>> {
        if !self.staff(ctx)? {
            return Ok(None);
        }
        let o = &self.0;
        let actor = ctx.actor()?;
        let keyring = ctx.shared::<std::sync::Arc<service::phi::Keyring>>()?;
        let tax_id = service::clinic::tax_id_shown(&ctx.scope()?.tx, actor, keyring, o)
            .await
            .gql()?;
        Ok(Some(super::clinic::BillingIdentity {
            group_npi: o.group_npi.clone(),
            tax_id,
            phone: o.billing_phone.clone(),
            address: super::address::PostalAddress::from_parts(
                &o.billing_address_line1,
                &o.billing_address_line2,
                &o.billing_city,
                &o.billing_state,
                &o.billing_postal_code,
            ),
        }))
    }
    /// The fee schedule, by code and date (staff only).
    async fn fee_schedule(
        &self,
        ctx: &Context<'_>,
    ) -> GqlResult<Vec<super::clinic::FeeScheduleEntry>> {
        let actor = ctx.clinical_actor()?;
        let scope = ctx.scope()?;
        let rows = service::clinic::fees(&scope.tx, actor).await.gql()?;
        Ok(rows
            .into_iter()
            .map(super::clinic::FeeScheduleEntry)
            .collect())
    }
    /// The catalogue of session event types, by code.
    async fn session_event_types(
        &self,
        ctx: &Context<'_>,
    ) -> GqlResult<Vec<super::clinic::SessionEventType>> {
        ctx.actor()?;
        let scope = ctx.scope()?;
        let rows = service::clinic::event_types(&scope.tx).await.gql()?;
        Ok(rows
            .into_iter()
            .map(super::clinic::SessionEventType)
            .collect())
    }
}

#[derive(Clone)]
pub struct User(pub user::Model);

/// The signed-in user (a person, across all the clinics they belong to).
#[Object]
impl User {
    /// The user's id. A Relay node id: the object's UUID, which every argument taking a
    /// UUID accepts.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The email they log in with (unique, compared case-insensitively).
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// The name to show for them.
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    /// The user's own IANA time zone (e.g. `Europe/Paris`), when they set
    /// one; null otherwise (use the clinic's `Organization.timezone`).
    async fn timezone(&self) -> Option<&str> {
        self.0.timezone.as_deref()
    }
}

/// Who is asking, in which clinic, with which role.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Viewer {
    /// The caller's role in the active clinic: what they may see and do.
    pub role: Role,
    /// A super admin acting in this clinic through an audited impersonation.
    pub impersonating: bool,
    /// The active HIPAA notice awaits this user's signature; patient data is
    /// refused (FORBIDDEN, reason CONSENT_REQUIRED) until then.
    pub consent_required: bool,
    /// The clinic requires a second factor of this user's role and they have
    /// none yet: until they enrol one (`enrollMfa`, then `confirmMfa`), every
    /// field but `me`, `enrollMfa`, `confirmMfa` and `logout` is refused
    /// (FORBIDDEN, reason MFA_ENROLMENT_REQUIRED).
    pub mfa_required: bool,
    #[graphql(skip)]
    pub user_id: Uuid,
    #[graphql(skip)]
    pub organization_id: Uuid,
    /// The clinic, already read (a switch reads it before its context
    /// exists).
    #[graphql(skip)]
    pub organization: Option<organization::Model>,
}

/// A clinic the caller may act in, and their role there.
#[derive(SimpleObject)]
pub struct ViewerClinic {
    /// The clinic's id (what `switchOrganization` and `login` take).
    pub id: Uuid,
    /// The clinic's name.
    pub name: String,
    /// The caller's role there.
    pub role: Role,
}

#[ComplexObject]
impl Viewer {
    /// Every clinic the caller may act in (staff memberships first, then
    /// clinics where they hold a chart or a proxy grant), with their role in
    /// each — what a clinic switcher shows.
    async fn organizations(&self, ctx: &Context<'_>) -> GqlResult<Vec<ViewerClinic>> {
        let scope = ctx.scope()?;
        let clinics = service::auth::clinics_of_current_user(&scope.tx)
            .await
            .map_err(ApiError::from)?;
        Ok(clinics
            .into_iter()
            .map(|c| ViewerClinic {
                id: c.id.into_uuid(),
                name: c.name,
                role: c.role.into(),
            })
            .collect())
    }

    /// The user signs in with a second factor (a TOTP app): set by
    /// `confirmMfa`, cleared by `disableMfa`.
    async fn mfa_enabled(&self, ctx: &Context<'_>) -> GqlResult<bool> {
        let scope = ctx.scope()?;
        service::nodes::users(&scope.tx, &[self.user_id])
            .await
            .gql()?
            .pop()
            .map(|u| u.mfa_enabled)
            .ok_or_else(|| ApiError::unauthenticated().into())
    }

    /// The signed-in user.
    async fn user(&self, ctx: &Context<'_>) -> GqlResult<User> {
        let scope = ctx.scope()?;
        service::nodes::users(&scope.tx, &[self.user_id])
            .await
            .gql()?
            .pop()
            .map(User)
            .ok_or_else(|| ApiError::unauthenticated().into())
    }

    /// Messages in the caller's threads they have not read yet (their own
    /// and deleted ones aside).
    async fn unread_count(&self, ctx: &Context<'_>) -> GqlResult<i64> {
        let actor = ctx.actor()?;
        service::messaging::unread_count(&ctx.scope()?.tx, actor)
            .await
            .gql()
    }

    /// The caller's notifications not marked read yet.
    async fn unread_notification_count(&self, ctx: &Context<'_>) -> GqlResult<i64> {
        ctx.actor()?;
        service::notifications::unread_count(&ctx.scope()?.tx)
            .await
            .gql()
    }

    /// The active clinic (after `switchOrganization`, the one moved to).
    async fn organization(&self, ctx: &Context<'_>) -> GqlResult<Organization> {
        match &self.organization {
            Some(row) => Ok(Organization(
                row.clone(),
                Some(service::Role::from(self.role).is_staff()),
            )),
            None => load_organization(ctx, self.organization_id).await,
        }
    }
}

pub async fn load_organization(ctx: &Context<'_>, id: Uuid) -> GqlResult<Organization> {
    let scope = ctx.scope()?;
    service::nodes::organizations(&scope.tx, &[id])
        .await
        .gql()?
        .pop()
        .map(Organization::of)
        .ok_or_else(|| ApiError::not_found().into())
}

impl Viewer {
    pub fn of(actor: &service::Actor, consent_required: bool, mfa_required: bool) -> Self {
        Self {
            role: actor.role.into(),
            impersonating: actor.impersonating,
            consent_required,
            mfa_required,
            user_id: actor.user.into_uuid(),
            organization_id: actor.tenant.into_uuid(),
            organization: None,
        }
    }

    /// The caller after moving their session to `organization`.
    pub fn switched(
        actor: &service::Actor,
        role: service::Role,
        organization: organization::Model,
        consent_required: bool,
        mfa_enabled: bool,
    ) -> Self {
        let mfa_required = !mfa_enabled
            && service::mfa::Requirement::of_settings(&organization.settings).applies_to(role);
        Self {
            role: role.into(),
            impersonating: false,
            consent_required,
            mfa_required,
            user_id: actor.user.into_uuid(),
            organization_id: organization.id,
            organization: Some(organization),
        }
    }
}

/// A signed access token and the session behind it.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// When the session ends (it also ends after SESSION_IDLE_MINUTES unused).
    pub expires_at: DateTime<FixedOffset>,
    /// Who the token acts as: user, clinic and role.
    pub viewer: Viewer,
}
