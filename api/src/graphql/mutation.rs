//! The mutation root. Each mutation parses its arguments into domain types,
//! calls one service function inside its own savepoint, and maps the result.

use std::sync::Arc;

use async_graphql::{Context, MergedObject, Object};
use service::appointments::NewAppointment;
use service::auth::{Credentials, LoginSettings};
use service::authorizations::NewAuthorization;
use service::domain::{Email, Mrn, Npi, SessionId};
use service::patients::{NewContactMethod, NewPatient, PatientChanges};
use service::providers::NewProvider;
use service::proxies::{NewGrant, ProxyFlags};
use uuid::Uuid;

use super::scope::{ScopeExt, in_savepoint};
use super::types::appointment::{Appointment, ScheduleAppointmentInput};
use super::types::billing::{CreateAuthorizationInput, PayerAuthorization};
use super::types::care_team::CareTeamAssignment;
use super::types::consent::UserConsent;
use super::types::enums::AppointmentStatus;
use super::types::enums::CareTeamRole;
use super::types::organization::{AuthPayload, Viewer};
use super::types::patient::{
    ContactMethod, ContactMethodInput, EnrollPatientInput, Patient, UpdatePatientInput,
};
use super::types::provider::{CreateProviderInput, Provider};
use super::types::proxy::{GrantProxyAccessInput, ProxyAssignment, ProxyInvitation};
use crate::error::{ApiError, GqlResult, IntoGql};
use crate::tokens::Tokens;

/// Changes, in the caller's active clinic. Every mutation but `login` and
/// `verifyMfa` needs a token (`Authorization: Bearer <token>`); without a
/// valid one it is UNAUTHENTICATED. A mutation that fails changes nothing;
/// the mutations before it in the same request stand. "(staff)" marks a
/// mutation patients and proxies may not use (FORBIDDEN, reason ROLE); a
/// mutation on patient data is refused (FORBIDDEN, reason CONSENT_REQUIRED)
/// until the caller has signed the HIPAA notice in force. While the clinic
/// requires a second factor the caller has not enrolled, only `enrollMfa`,
/// `confirmMfa` and `logout` run (FORBIDDEN, reason MFA_ENROLMENT_REQUIRED).
#[derive(MergedObject, Default)]
pub struct Mutation(
    AuthMutation,
    ProviderMutation,
    PatientMutation,
    CareTeamMutation,
    ScheduleMutation,
    ProxyMutation,
    BillingMutation,
    ConsentMutation,
    super::therapy::ClinicSetupMutation,
    super::therapy::SessionMutation,
    super::therapy::ClaimMutation,
    super::facilities::FacilityMutation,
    super::payments::PaymentMutation,
    super::messaging::MessagingMutation,
    super::break_glass::BreakGlassMutation,
    super::mfa::MfaMutation,
    super::budgets::BudgetMutation,
);

#[derive(Default)]
pub struct AuthMutation;

/// A token for the caller's session, as login and switching answer it.
pub(super) fn payload(
    ctx: &Context<'_>,
    viewer: Viewer,
    session: SessionId,
    expires_at: chrono::DateTime<chrono::FixedOffset>,
) -> GqlResult<AuthPayload> {
    let token = ctx
        .shared::<Arc<Tokens>>()?
        .issue(
            viewer.user_id,
            viewer.organization_id,
            session.into_uuid(),
            expires_at,
        )
        .map_err(|e| ApiError::from(service::ServiceError::Unexpected(e)))?;
    Ok(AuthPayload {
        token,
        expires_at,
        viewer,
    })
}

#[Object]
impl AuthMutation {
    /// Exchanges an email and password for a token, in `organizationId` or
    /// the user's first clinic (a super admin must name one). Wrong
    /// credentials are UNAUTHENTICATED (the same for unknown emails);
    /// repeated failures per email or per client address are RATE_LIMITED.
    /// Refusals within the limits are audited. A user with a second factor
    /// gets no token from the password alone: UNAUTHENTICATED, reason
    /// MFA_REQUIRED, with `extensions.mfaChallenge` (and
    /// `mfaChallengeExpiresAt`) to answer with `verifyMfa`. Only as the sole
    /// operation of its request.
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user's email (any case).")] email: String,
        #[graphql(desc = "The user's password.")] password: String,
        #[graphql(desc = "The clinic to act in (`Organization.id`); the user's first \
                          clinic when omitted. Required of a super admin.")]
        organization_id: Option<Uuid>,
    ) -> GqlResult<AuthPayload> {
        let scope = ctx.scope()?;
        let credentials = Credentials {
            email: &email,
            password: &password,
            organization: organization_id.map(Into::into),
        };
        let settings = ctx.shared::<LoginSettings>()?;
        let logged_in = service::auth::login(&scope.tx, settings, credentials, &scope.meta)
            .await
            .gql()?;
        let shown = Viewer::of(
            &logged_in.actor,
            logged_in.consent_required,
            logged_in.mfa_required,
        );
        payload(ctx, shown, logged_in.actor.session, logged_in.expires_at)
    }

    /// Moves the caller's session to another clinic they belong to and
    /// returns a token for it (NOT_FOUND when they may not act there). The
    /// old token stops working. Only as the sole operation of its request.
    async fn switch_organization(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The clinic to act in next (`Organization.id`, or \
                          `ProxyInvitation.organizationId`).")]
        organization_id: Uuid,
    ) -> GqlResult<AuthPayload> {
        let actor = ctx.actor()?.clone();
        let scope = ctx.scope()?;
        let switched = scope
            .in_savepoint(async |tx| {
                service::auth::switch_organization(tx, &actor, organization_id.into()).await
            })
            .await
            .gql()?;
        let mfa_enabled = service::mfa::enabled(&scope.tx, actor.user).await.gql()?;
        let shown = Viewer::switched(
            &actor,
            switched.role,
            switched.organization,
            scope.viewer.consent_required,
            mfa_enabled,
        );
        payload(ctx, shown, actor.session, switched.session.expires_at)
    }

    /// Ends the caller's session: its token stops working at once.
    async fn logout(&self, ctx: &Context<'_>) -> GqlResult<bool> {
        // Allowed while the clinic's MFA requirement restricts the caller.
        let actor = ctx.actor_enrolling_mfa()?;
        let scope = ctx.scope()?;
        scope
            .in_savepoint(async |tx| service::auth::logout(tx, actor).await)
            .await
            .gql()?;
        Ok(true)
    }
}

#[derive(Default)]
pub struct ProviderMutation;

#[Object]
impl ProviderMutation {
    /// Adds a provider (clinic ADMIN). A malformed NPI is BAD_USER_INPUT on
    /// `npi`; an NPI already used by an active provider is CONFLICT
    /// DUPLICATE_NPI.
    async fn create_provider(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The provider to add.")] input: CreateProviderInput,
    ) -> GqlResult<Provider> {
        let actor = ctx.actor()?;
        let new = NewProvider {
            npi: Npi::parse(&input.npi).gql()?,
            name: input.name,
            dea_number: service::domain::DeaNumber::parse_optional(input.dea_number.as_deref())
                .gql()?,
            specialty: input.specialty,
            state_licenses: service::domain::StateLicenses::parse(&input.state_licenses).gql()?,
        };
        let row = in_savepoint(ctx, async |tx| {
            service::providers::create(tx, actor, new).await
        })
        .await?;
        Ok(Provider(row))
    }
}

#[derive(Default)]
pub struct PatientMutation;

#[Object]
impl PatientMutation {
    /// Opens a chart (staff). A used MRN is CONFLICT DUPLICATE_MRN.
    async fn enroll_patient(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The chart to open.")] input: EnrollPatientInput,
    ) -> GqlResult<Patient> {
        let actor = ctx.clinical_actor()?;
        let new = NewPatient {
            mrn: Mrn::parse(&input.mrn).gql()?,
            first_name: input.first_name,
            last_name: input.last_name,
            date_of_birth: input.date_of_birth.0,
            legal_sex: input.legal_sex.into(),
        };
        let row = in_savepoint(ctx, async |tx| {
            service::patients::enroll(tx, actor, new).await
        })
        .await?;
        Ok(Patient::returned(ctx, vec![row])?.remove(0))
    }

    /// Changes a chart (staff); only the fields given change. NOT_FOUND when
    /// there is no such chart.
    async fn update_patient(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The chart's id.")] id: Uuid,
        #[graphql(desc = "The fields to change.")] input: UpdatePatientInput,
    ) -> GqlResult<Patient> {
        let actor = ctx.clinical_actor()?;
        let changes = PatientChanges {
            mrn: input.mrn.as_deref().map(Mrn::parse).transpose().gql()?,
            first_name: input.first_name,
            last_name: input.last_name,
            date_of_birth: input.date_of_birth.map(|d| d.0),
            legal_sex: input.legal_sex.map(Into::into),
            address: input
                .address
                .as_ref()
                .map(|a| a.parse(&super::types::address::address_fields!("address")))
                .transpose()?,
        };
        let row = in_savepoint(ctx, async |tx| {
            service::patients::update(tx, actor, id.into(), changes).await
        })
        .await?;
        Ok(Patient::returned(ctx, vec![row])?.remove(0))
    }

    /// Records a patient's Social Security number, or removes it with
    /// `ssn: null` (ADMIN, STAFF). It is stored encrypted under the
    /// clinic's data key, with a blind index for `patientsBySsn`.
    async fn set_patient_ssn(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The patient.")] id: Uuid,
        #[graphql(desc = "Nine digits, dashes allowed (e.g. 123-45-6789); null removes it.")]
        ssn: Option<String>,
    ) -> GqlResult<Patient> {
        let actor = ctx.clinical_actor()?;
        let keyring = ctx.shared::<std::sync::Arc<service::phi::Keyring>>()?;
        let ssn = ssn
            .map(|s| service::ssn::Ssn::parse("ssn", &s))
            .transpose()
            .gql()?;
        let row = in_savepoint(ctx, async |tx| {
            service::ssn::set(tx, actor, keyring, id.into(), ssn).await
        })
        .await?;
        Ok(Patient::returned(ctx, vec![row])?.remove(0))
    }

    /// Closes a chart (staff): status DISCHARGED, with the time. A chart
    /// already discharged is CONFLICT ALREADY_DISCHARGED; NOT_FOUND when
    /// there is no such chart.
    async fn discharge_patient(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The chart's id.")] id: Uuid,
    ) -> GqlResult<Patient> {
        let actor = ctx.clinical_actor()?;
        let row = in_savepoint(ctx, async |tx| {
            service::patients::discharge(tx, actor, id.into()).await
        })
        .await?;
        Ok(Patient::returned(ctx, vec![row])?.remove(0))
    }

    /// Adds a way to reach a patient (staff). A new primary method replaces
    /// the previous primary.
    async fn add_contact_method(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The patient's chart.")] patient_id: Uuid,
        #[graphql(desc = "The phone number or email address to add.")] input: ContactMethodInput,
    ) -> GqlResult<ContactMethod> {
        let actor = ctx.clinical_actor()?;
        let new = NewContactMethod {
            value: service::domain::ContactValue::parse(input.kind.into(), &input.value).gql()?,
            is_primary: input.is_primary,
            is_safe_for_voicemail: input.is_safe_for_voicemail,
        };
        let row = in_savepoint(ctx, async |tx| {
            service::patients::add_contact_method(tx, actor, patient_id.into(), new).await
        })
        .await?;
        ctx.scope()?.record_reads([patient_id]);
        Ok(ContactMethod(row))
    }
}

#[derive(Default)]
pub struct CareTeamMutation;

#[Object]
impl CareTeamMutation {
    /// Makes a provider the patient's PRIMARY; the previous primary stays on
    /// the team as SPECIALIST. Racing calls leave exactly one primary.
    async fn assign_primary_provider(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The patient's chart: not discharged (else BAD_USER_INPUT \
                          on `patientId`).")]
        patient_id: Uuid,
        #[graphql(desc = "The new primary: an active provider (else BAD_USER_INPUT on \
                          `providerId`).")]
        provider_id: Uuid,
    ) -> GqlResult<CareTeamAssignment> {
        let actor = ctx.clinical_actor()?;
        let row = in_savepoint(ctx, async |tx| {
            service::care_team::assign_primary(tx, actor, patient_id.into(), provider_id.into())
                .await
        })
        .await?;
        Ok(CareTeamAssignment(row))
    }

    /// Adds a provider to a patient's team. PRIMARY when one exists is
    /// CONFLICT PRIMARY_PROVIDER_EXISTS; a provider already on the team is
    /// CONFLICT ALREADY_ON_CARE_TEAM.
    async fn add_care_team_member(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The patient's chart: not discharged (else BAD_USER_INPUT \
                          on `patientId`).")]
        patient_id: Uuid,
        #[graphql(desc = "The provider to add: an active one (else BAD_USER_INPUT on \
                          `providerId`).")]
        provider_id: Uuid,
        #[graphql(desc = "The provider's role on the team.")] role: CareTeamRole,
    ) -> GqlResult<CareTeamAssignment> {
        let actor = ctx.clinical_actor()?;
        let row = in_savepoint(ctx, async |tx| {
            service::care_team::add_member(
                tx,
                actor,
                patient_id.into(),
                provider_id.into(),
                role.into(),
            )
            .await
        })
        .await?;
        Ok(CareTeamAssignment(row))
    }

    /// Takes a provider off a team (soft: the assignment keeps who removed
    /// it and when). An assignment already removed is CONFLICT
    /// ALREADY_REMOVED.
    async fn remove_care_team_member(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The assignment to end (`CareTeamAssignment.id`).")] assignment_id: Uuid,
    ) -> GqlResult<CareTeamAssignment> {
        let actor = ctx.clinical_actor()?;
        let row = in_savepoint(ctx, async |tx| {
            service::care_team::remove_member(tx, actor, assignment_id.into()).await
        })
        .await?;
        Ok(CareTeamAssignment(row))
    }
}

#[derive(Default)]
pub struct ScheduleMutation;

#[Object]
impl ScheduleMutation {
    /// Books an appointment (staff, or a proxy allowed to schedule). A
    /// provider already booked then is CONFLICT DOUBLE_BOOKED.
    async fn schedule_appointment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The appointment to book.")] input: ScheduleAppointmentInput,
    ) -> GqlResult<Appointment> {
        let actor = ctx.clinical_actor()?;
        let new = NewAppointment {
            patient: input.patient_id.into(),
            provider: input.provider_id.into(),
            starts_at: input.starts_at,
            ends_at: input.ends_at,
            kind: input.kind.into(),
            reason: input.reason,
            facility: input.facility_id.map(Into::into),
        };
        let row = in_savepoint(ctx, async |tx| {
            service::appointments::schedule(tx, actor, new).await
        })
        .await?;
        ctx.scope()?.record_reads([row.patient_id]);
        Ok(Appointment(row))
    }

    /// Moves an appointment along SCHEDULED -> CONFIRMED -> CHECKED_IN ->
    /// COMPLETED, or to CANCELLED (with a reason) / NO_SHOW from SCHEDULED or
    /// CONFIRMED; any other move is BAD_USER_INPUT on `to`. A proxy may only
    /// cancel, for a patient they may schedule for (otherwise FORBIDDEN,
    /// reason PROXY_SCOPE).
    async fn transition_appointment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The appointment's id.")] id: Uuid,
        #[graphql(desc = "The status to move to.")] to: AppointmentStatus,
        #[graphql(desc = "Why it is cancelled (up to 1000 characters): required with \
                          `to: CANCELLED` (else BAD_USER_INPUT on `reason`), ignored \
                          otherwise.")]
        reason: Option<String>,
    ) -> GqlResult<Appointment> {
        let actor = ctx.clinical_actor()?;
        let row = in_savepoint(ctx, async |tx| {
            service::appointments::transition(tx, actor, id.into(), to.into(), reason).await
        })
        .await?;
        ctx.scope()?.record_reads([row.patient_id]);
        Ok(Appointment(row))
    }
}

#[derive(Default)]
pub struct ProxyMutation;

#[Object]
impl ProxyMutation {
    /// Lets a person act for a patient within the given permissions (clinic
    /// ADMIN or STAFF), until `expiresAt` or revocation. Someone already
    /// tied to the clinic gets it at once; anyone else gets a pending
    /// invitation (`pending: true`, only the email typed is shown), answered
    /// the same whether or not the email is a caregate user's, which they
    /// accept after logging in (`acceptProxyInvitation`).
    async fn grant_proxy_access(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Who, for which patient, with which permissions.")]
        input: GrantProxyAccessInput,
    ) -> GqlResult<ProxyAssignment> {
        let actor = ctx.clinical_actor()?;
        let new = NewGrant {
            patient: input.patient_id.into(),
            proxy_email: Email::parse(&input.proxy_email)
                .map_err(|_| ApiError::bad_input("proxyEmail", "not an email address"))?,
            relationship: input.relationship.into(),
            flags: ProxyFlags {
                can_view_profile: input.can_view_profile,
                can_view_appointments: input.can_view_appointments,
                can_schedule_appointments: input.can_schedule_appointments,
                can_view_clinical_notes: input.can_view_clinical_notes,
                can_view_billing: input.can_view_billing,
                can_message_providers: input.can_message_providers,
            },
            expires_at: input.expires_at,
        };
        let row = in_savepoint(ctx, async |tx| {
            service::proxies::grant(tx, actor, new).await
        })
        .await?;
        Ok(ProxyAssignment(row))
    }

    /// Ends a grant at once (clinic ADMIN or STAFF); the grant is kept, with
    /// `revokedAt`. A grant already revoked is CONFLICT ALREADY_REVOKED.
    async fn revoke_proxy_access(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The grant's id (`ProxyAssignment.id`).")] id: Uuid,
    ) -> GqlResult<ProxyAssignment> {
        let actor = ctx.clinical_actor()?;
        let row = in_savepoint(ctx, async |tx| {
            service::proxies::revoke(tx, actor, id.into()).await
        })
        .await?;
        Ok(ProxyAssignment(row))
    }

    /// Accepts a proxy invitation addressed to the caller's email (see
    /// `myProxyInvitations`); it reaches the patient from the caller's next
    /// request in that clinic (`switchOrganization` to it). NOT_FOUND when
    /// there is no such pending invitation for the caller.
    async fn accept_proxy_invitation(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The invitation's id (`ProxyInvitation.id`).")] id: Uuid,
    ) -> GqlResult<ProxyInvitation> {
        ctx.actor()?;
        let accepted = in_savepoint(ctx, async |tx| {
            service::proxies::accept_invitation(tx, id).await
        })
        .await?;
        Ok(ProxyInvitation::from(accepted))
    }
}

#[derive(Default)]
pub struct BillingMutation;

#[Object]
impl BillingMutation {
    /// Records a payer's authorization for a patient (staff), with no units
    /// used. An authorization number the payer already has at the clinic is
    /// CONFLICT DUPLICATE_AUTHORIZATION.
    async fn create_authorization(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The authorization to record.")] input: CreateAuthorizationInput,
    ) -> GqlResult<PayerAuthorization> {
        let actor = ctx.clinical_actor()?;
        let new = NewAuthorization {
            patient: input.patient_id.into(),
            payer_name: input.payer_name,
            authorization_number: input.authorization_number,
            service_code: input.service_code,
            total_units: input.total_units,
            valid_from: input.valid_from.0,
            valid_to: input.valid_to.0,
        };
        let row = in_savepoint(ctx, async |tx| {
            service::authorizations::create(tx, actor, new).await
        })
        .await?;
        Ok(PayerAuthorization(row))
    }

    /// Reserves units (staff), atomically: more than remain is CONFLICT
    /// UNITS_EXHAUSTED and nothing is reserved; outside the validity dates
    /// (today in the clinic's time zone) is CONFLICT
    /// AUTHORIZATION_NOT_VALID_TODAY.
    async fn reserve_authorization_units(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The authorization (`PayerAuthorization.id`).")] authorization_id: Uuid,
        #[graphql(desc = "How many units to reserve: a positive number.")] units: i32,
    ) -> GqlResult<PayerAuthorization> {
        let actor = ctx.clinical_actor()?;
        let row = in_savepoint(ctx, async |tx| {
            service::authorizations::reserve(tx, actor, authorization_id.into(), units).await
        })
        .await?;
        Ok(PayerAuthorization(row))
    }

    /// Gives units back (staff); never below zero (CONFLICT
    /// UNITS_NOT_RESERVED).
    async fn release_authorization_units(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The authorization (`PayerAuthorization.id`).")] authorization_id: Uuid,
        #[graphql(desc = "How many units to give back: a positive number, at most \
                          `usedUnits`.")]
        units: i32,
    ) -> GqlResult<PayerAuthorization> {
        let actor = ctx.clinical_actor()?;
        let row = in_savepoint(ctx, async |tx| {
            service::authorizations::release(tx, actor, authorization_id.into(), units).await
        })
        .await?;
        Ok(PayerAuthorization(row))
    }
}

#[derive(Default)]
pub struct ConsentMutation;

#[Object]
impl ConsentMutation {
    /// Signs the version in force of a document, with the server's time and
    /// the client's address and user agent. Signing a version twice is
    /// CONFLICT CONSENT_ALREADY_SIGNED; a version no longer in force is
    /// BAD_USER_INPUT on `documentId`.
    async fn sign_consent(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The version to sign (`ConsentDocument.id` from \
                          `consentDocuments`).")]
        document_id: Uuid,
    ) -> GqlResult<UserConsent> {
        let actor = ctx.actor()?;
        let scope = ctx.scope()?;
        let row = scope
            .in_savepoint(async |tx| {
                service::consent::sign(tx, actor, document_id.into(), &scope.meta).await
            })
            .await
            .gql()?;
        Ok(UserConsent(row))
    }
}
