//! The query root.

use async_graphql::{Context, ID, MergedObject, Object};
use service::pagination::{NameKey, TimeKey};
use uuid::Uuid;

use super::scope::ScopeExt;
use super::types::appointment::{self, AppointmentConnection, AppointmentFilter, AppointmentTotal};
use super::types::audit::{self, AuditEventConnection, AuditEventFilter, AuditTotal};
use super::types::connection::page_request;
use super::types::consent::{ConsentDocument, UserConsent};
use super::types::node::{self, Node};
use super::types::organization::{Organization, Viewer, load_organization};
use super::types::patient::{self, Patient, PatientConnection, PatientFilter, PatientTotal};
use super::types::provider::{self, Provider, ProviderConnection, ProviderFilter, ProviderTotal};
use super::types::proxy::ProxyInvitation;
use crate::error::{GqlResult, IntoGql};

/// What a signed-in caller may read, in their active clinic. Every field
/// needs a token (`Authorization: Bearer <token>` from `login`); without a
/// valid one it is UNAUTHENTICATED. Patient data is refused (FORBIDDEN,
/// reason CONSENT_REQUIRED) until the caller has signed the HIPAA notice in
/// force (`Viewer.consentRequired`).
#[derive(MergedObject, Default)]
pub struct Query(
    ViewerQuery,
    PatientQuery,
    ProviderQuery,
    ScheduleQuery,
    ComplianceQuery,
    super::therapy::TherapyQuery,
    super::facilities::FacilityQuery,
    super::messaging::MessagingQuery,
    super::break_glass::BreakGlassQuery,
);

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The caller: user, active clinic and role.
    async fn me(&self, ctx: &Context<'_>) -> GqlResult<Viewer> {
        let scope = ctx.scope()?;
        // Answered while the clinic's MFA requirement restricts the caller:
        // it is how a client learns to send them to enrolment.
        let actor = ctx.actor_enrolling_mfa()?;
        Ok(Viewer::of(
            actor,
            scope.viewer.consent_required,
            scope.viewer.mfa_required,
        ))
    }

    /// The object with this id, of any type (Relay's global object
    /// identification); null when it does not exist or the caller may not
    /// see it — another clinic's object looks exactly like a missing one.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The object's id (its UUID).")] id: ID,
    ) -> GqlResult<Option<Node>> {
        Ok(node::load(ctx, &[id]).await?.pop().flatten())
    }

    /// The objects with these ids, in the same order (null for each that
    /// does not exist or may not be seen). At most 100 ids.
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Object ids (UUIDs), at most 100.")] ids: Vec<ID>,
    ) -> GqlResult<Vec<Option<Node>>> {
        if ids.len() > node::MAX_NODES {
            return Err(crate::error::ApiError::bad_input(
                "ids",
                format!("at most {} ids", node::MAX_NODES),
            )
            .into());
        }
        node::load(ctx, &ids).await
    }

    /// The active clinic.
    async fn organization(&self, ctx: &Context<'_>) -> GqlResult<Organization> {
        let actor = ctx.actor()?;
        load_organization(ctx, actor.tenant.into_uuid()).await
    }

    /// Proxy invitations addressed to the caller's email, at any clinic,
    /// awaiting acceptance (`acceptProxyInvitation`).
    async fn my_proxy_invitations(&self, ctx: &Context<'_>) -> GqlResult<Vec<ProxyInvitation>> {
        ctx.actor()?;
        let scope = ctx.scope()?;
        let found = service::proxies::my_invitations(&scope.tx).await.gql()?;
        Ok(found.into_iter().map(ProxyInvitation::from).collect())
    }
}

#[derive(Default)]
pub struct PatientQuery;

#[Object]
impl PatientQuery {
    /// Patients of the active clinic (a portal user: the ones they may see),
    /// by name.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn patients(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
        after: Option<String>,
        #[graphql(desc = "Which patients to list (by name, MRN, provider, status); all \
                          the caller may see when omitted.")]
        filter: Option<PatientFilter>,
    ) -> GqlResult<PatientConnection<PatientTotal>> {
        ctx.clinical_actor()?;
        let page = page_request::<NameKey>(first, after)?;
        let filter = filter.unwrap_or_default().parse()?;
        let scope = ctx.scope()?;
        let rows = service::patients::list(&scope.tx, &filter, &page)
            .await
            .gql()?;
        patient::connection(ctx, rows, PatientTotal::Filtered(filter)).await
    }

    /// The clinic's patients with this Social Security number (ADMIN,
    /// STAFF): an exact match through a keyed blind index, never by
    /// decrypting rows. Usually one; empty when none.
    async fn patients_by_ssn(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Nine digits, dashes allowed.")] ssn: String,
    ) -> GqlResult<Vec<Patient>> {
        let actor = ctx.clinical_actor()?;
        let keyring = ctx.shared::<std::sync::Arc<service::phi::Keyring>>()?;
        let ssn = service::ssn::Ssn::parse("ssn", &ssn).gql()?;
        let scope = ctx.scope()?;
        let rows = service::ssn::find(&scope.tx, actor, keyring, ssn)
            .await
            .gql()?;
        Patient::returned(ctx, rows)
    }

    /// One patient; null when it does not exist or is not visible to the
    /// caller (the two are never told apart).
    async fn patient(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The chart's id.")] id: Uuid,
    ) -> GqlResult<Option<Patient>> {
        ctx.clinical_actor()?;
        let scope = ctx.scope()?;
        let row = service::patients::get(&scope.tx, id.into()).await.gql()?;
        Ok(Patient::returned(ctx, row.into_iter().collect())?.pop())
    }
}

#[derive(Default)]
pub struct ProviderQuery;

#[Object]
impl ProviderQuery {
    /// Providers of the active clinic, by name.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn providers(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
        after: Option<String>,
        #[graphql(desc = "Which providers; all of them, active or not, when omitted.")]
        filter: Option<ProviderFilter>,
    ) -> GqlResult<ProviderConnection> {
        ctx.actor()?;
        let page = page_request::<NameKey>(first, after)?;
        let filter: service::providers::ProviderFilter = filter.unwrap_or_default().into();
        let scope = ctx.scope()?;
        let rows = service::providers::list(&scope.tx, &filter, &page)
            .await
            .gql()?;
        Ok(provider::connection(rows, ProviderTotal(filter)))
    }

    /// One provider; null when not visible.
    async fn provider(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The provider's id.")] id: Uuid,
    ) -> GqlResult<Option<Provider>> {
        ctx.actor()?;
        let scope = ctx.scope()?;
        Ok(service::providers::get(&scope.tx, id.into())
            .await
            .gql()?
            .map(Provider))
    }
}

#[derive(Default)]
pub struct ScheduleQuery;

#[Object]
impl ScheduleQuery {
    /// Appointments by start time (a proxy: those of the patients whose
    /// appointments they may see).
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn appointments(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
        after: Option<String>,
        #[graphql(desc = "Which appointments; all of them, past ones included, when \
                          omitted.")]
        filter: Option<AppointmentFilter>,
    ) -> GqlResult<AppointmentConnection> {
        ctx.clinical_actor()?;
        let page = page_request::<TimeKey>(first, after)?;
        let filter: service::appointments::AppointmentFilter = filter.unwrap_or_default().into();
        let scope = ctx.scope()?;
        let rows = service::appointments::list(&scope.tx, &filter, &page)
            .await
            .gql()?;
        appointment::connection(ctx, rows, AppointmentTotal(Some(filter)))
    }
}

#[derive(Default)]
pub struct ComplianceQuery;

#[Object]
impl ComplianceQuery {
    /// The clinic's audit trail, newest first (clinic ADMIN).
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
        after: Option<String>,
        #[graphql(desc = "Which events to list (by row, user, action, time); all of \
                          the clinic's when omitted.")]
        filter: Option<AuditEventFilter>,
    ) -> GqlResult<AuditEventConnection> {
        let actor = ctx.actor()?;
        let page = page_request::<TimeKey>(first, after)?;
        let filter: service::audit::AuditFilter = filter.unwrap_or_default().into();
        let scope = ctx.scope()?;
        let rows = service::audit::list(&scope.tx, actor, &filter, &page)
            .await
            .gql()?;
        Ok(audit::connection(rows, AuditTotal(filter)))
    }

    /// The documents in force (terms, HIPAA notice, privacy policy). Until
    /// the HIPAA notice is signed, patient data is refused with
    /// CONSENT_REQUIRED.
    async fn consent_documents(&self, ctx: &Context<'_>) -> GqlResult<Vec<ConsentDocument>> {
        ctx.actor()?;
        let scope = ctx.scope()?;
        let rows = service::consent::active_documents(&scope.tx).await.gql()?;
        Ok(rows.into_iter().map(ConsentDocument).collect())
    }

    /// The caller's signatures, newest first.
    async fn my_consents(&self, ctx: &Context<'_>) -> GqlResult<Vec<UserConsent>> {
        ctx.actor()?;
        let scope = ctx.scope()?;
        let rows = service::consent::my_signatures(&scope.tx).await.gql()?;
        Ok(rows.into_iter().map(UserConsent).collect())
    }
}
