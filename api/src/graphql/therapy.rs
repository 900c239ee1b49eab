//! The therapy-operations part of the query and mutation roots: sessions,
//! claims, and what a clinic sets up for them (credentials, coverages,
//! diagnoses, billing identity, fees, event catalogue). Merged into
//! `Query` and `Mutation`; each resolver parses, calls one service
//! function and maps the result.

use async_graphql::{Context, Object};
use service::claims::{ClaimResponse, NewClaim};
use service::clinic::BillingIdentity;
use service::codes::{
    ClaimFilingCode, EventTypeCode, IcdCode, Modifiers, PhoneDigits, PlaceOfService, ServiceCode,
    TaxId, UsState,
};
use service::credentials::NewCredential;
use service::diagnoses::NewDiagnosis;
use service::domain::Npi;
use service::insurance::{InsuranceChanges, NewInsurance};
use service::pagination::TimeKey;
use service::sessions::{NewEvent, NewSession};
use uuid::Uuid;

use super::scope::{ScopeExt, in_savepoint};
use super::types::address::address_fields;
use super::types::claim::{
    self, Claim, ClaimConnection, ClaimFilter, ClaimResponseInput, ClaimTotal, CreateClaimInput,
};
use super::types::clinic::{
    AddCredentialInput, BillingIdentityInput, Credential, FeeScheduleEntry, SessionEventType,
};
use super::types::connection::page_request;
use super::types::coverage::{
    AddDiagnosisInput, AddInsuranceInput, Diagnosis, Insurance, UpdateInsuranceInput,
};
use super::types::organization::{Organization, load_organization};
use super::types::session::{
    self, SessionConnection, SessionEvent, SessionEventInput, SessionFilter, SessionTotal,
    StartTherapySessionInput, TherapySession,
};
use crate::error::{ApiError, GqlResult, IntoGql};
use crate::graphql::scalars::Date;

#[derive(Default)]
pub struct TherapyQuery;

#[Object]
impl TherapyQuery {
    /// Therapy sessions, by start time. Staff see the clinic's; a patient
    /// their own; a proxy those of patients whose clinical notes they may
    /// view.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn sessions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
        after: Option<String>,
        #[graphql(desc = "Which sessions to list; all the caller may see when omitted.")]
        filter: Option<SessionFilter>,
    ) -> GqlResult<SessionConnection> {
        ctx.clinical_actor()?;
        let page = page_request::<TimeKey>(first, after)?;
        let filter: service::sessions::SessionFilter = filter.unwrap_or_default().into();
        let scope = ctx.scope()?;
        let rows = service::sessions::list(&scope.tx, &filter, &page)
            .await
            .gql()?;
        session::connection(ctx, rows, SessionTotal(Some(filter)))
    }

    /// One session; null when it does not exist or may not be seen.
    async fn session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The session's id.")] id: Uuid,
    ) -> GqlResult<Option<TherapySession>> {
        ctx.clinical_actor()?;
        let row = ctx.loaders()?.session.load_one(id).await.gql()?;
        if let Some(s) = &row {
            ctx.scope()?.record_reads([s.patient_id]);
        }
        Ok(row.map(TherapySession))
    }

    /// Claims, by creation time. Staff see the clinic's; a patient their
    /// own; a proxy those of patients whose billing they may view.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn claims(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
        after: Option<String>,
        #[graphql(desc = "Which claims to list; all the caller may see when omitted.")]
        filter: Option<ClaimFilter>,
    ) -> GqlResult<ClaimConnection> {
        ctx.clinical_actor()?;
        let page = page_request::<TimeKey>(first, after)?;
        let filter: service::claims::ClaimFilter = filter.unwrap_or_default().into();
        let scope = ctx.scope()?;
        let rows = service::claims::list(&scope.tx, &filter, &page)
            .await
            .gql()?;
        claim::connection(ctx, rows, ClaimTotal(filter))
    }

    /// One claim; null when it does not exist or may not be seen.
    async fn claim(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The claim's id.")] id: Uuid,
    ) -> GqlResult<Option<Claim>> {
        ctx.clinical_actor()?;
        let scope = ctx.scope()?;
        let row = service::claims::by_ids(&scope.tx, &[id]).await.gql()?.pop();
        if let Some(c) = &row {
            scope.record_reads([c.patient_id]);
        }
        Ok(row.map(Claim))
    }
}

#[derive(Default)]
pub struct ClinicSetupMutation;

#[Object]
impl ClinicSetupMutation {
    /// Sets the clinic's billing identity (ADMIN): group NPI, tax id, phone
    /// and billing address, as its claims carry them.
    async fn set_billing_identity(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The identity to set.")] input: BillingIdentityInput,
    ) -> GqlResult<Organization> {
        let actor = ctx.clinical_actor()?;
        let identity = BillingIdentity {
            group_npi: Npi::parse(&input.group_npi).map_err(|_| {
                ApiError::bad_input("groupNpi", "10 digits with a valid check digit")
            })?,
            tax_id: TaxId::parse("taxId", &input.tax_id).gql()?,
            phone: PhoneDigits::parse("phone", &input.phone).gql()?,
            address: input.address.parse(&address_fields!("address"))?,
        };
        let keyring = ctx.shared::<std::sync::Arc<service::phi::Keyring>>()?;
        let row = in_savepoint(ctx, async |tx| {
            service::clinic::set_billing_identity(tx, actor, keyring, identity).await
        })
        .await?;
        load_organization(ctx, row.id).await
    }

    /// Sets what the clinic charges per unit of a service from a date
    /// (ADMIN, STAFF). One entry per code and date: CONFLICT DUPLICATE_FEE.
    async fn set_fee(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The CPT/HCPCS code (5 characters).")] service_code: String,
        #[graphql(desc = "The charge per unit in cents: 0 to 10000000.")] unit_charge_cents: i32,
        #[graphql(desc = "The first day it applies.")] effective_from: Date,
    ) -> GqlResult<FeeScheduleEntry> {
        let actor = ctx.clinical_actor()?;
        let code = ServiceCode::parse("serviceCode", &service_code).gql()?;
        let row = in_savepoint(ctx, async |tx| {
            service::clinic::set_fee(
                tx,
                actor,
                code,
                i64::from(unit_charge_cents),
                effective_from.0,
            )
            .await
        })
        .await?;
        Ok(FeeScheduleEntry(row))
    }

    /// Adds a type to the clinic's session event catalogue (ADMIN). Codes
    /// are unique per clinic: CONFLICT DUPLICATE_EVENT_TYPE.
    async fn add_session_event_type(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The code: an upper-case letter, then up to 39 upper-case \
                          letters, digits or `_` (e.g. `GOAL_PROGRESS`).")]
        code: String,
        #[graphql(desc = "What it records: 1 to 200 characters.")] description: String,
    ) -> GqlResult<SessionEventType> {
        let actor = ctx.clinical_actor()?;
        let code = EventTypeCode::parse("code", &code).gql()?;
        let row = in_savepoint(ctx, async |tx| {
            service::clinic::add_event_type(tx, actor, code, &description).await
        })
        .await?;
        Ok(SessionEventType(row))
    }

    /// Records a provider's licence or certification (ADMIN, STAFF).
    async fn add_credential(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The credential to record.")] input: AddCredentialInput,
    ) -> GqlResult<Credential> {
        let actor = ctx.clinical_actor()?;
        let new = NewCredential {
            provider: input.provider_id.into(),
            kind: input.kind.into(),
            name: input.name,
            number: input.number,
            issuing_state: input
                .issuing_state
                .as_deref()
                .map(|s| UsState::parse("issuingState", s))
                .transpose()
                .gql()?,
            valid_from: input.valid_from.0,
            valid_to: input.valid_to.map(|d| d.0),
        };
        let row = in_savepoint(ctx, async |tx| {
            service::credentials::add(tx, actor, new).await
        })
        .await?;
        Ok(Credential(row))
    }

    /// Records a patient's insurance coverage (staff).
    async fn add_insurance(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The coverage to record.")] input: AddInsuranceInput,
    ) -> GqlResult<Insurance> {
        let actor = ctx.clinical_actor()?;
        let new = NewInsurance {
            patient: input.patient_id.into(),
            payer_name: input.payer_name,
            payer_id: input.payer_id,
            member_id: input.member_id,
            group_number: input.group_number,
            priority: input.priority.into(),
            claim_filing_code: input
                .claim_filing_code
                .as_deref()
                .map(|c| ClaimFilingCode::parse("claimFilingCode", c))
                .transpose()
                .gql()?,
            subscriber: input.subscriber.map(|s| s.parse()).transpose()?,
            effective_from: input.effective_from.0,
            effective_to: input.effective_to.map(|d| d.0),
        };
        let keyring = ctx.shared::<std::sync::Arc<service::phi::Keyring>>()?;
        let row = in_savepoint(ctx, async |tx| {
            service::insurance::add(tx, actor, keyring, new).await
        })
        .await?;
        Ok(Insurance(row))
    }

    /// Changes a coverage (staff); only the fields given change. NOT_FOUND
    /// when there is no such coverage.
    async fn update_insurance(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The coverage's id.")] id: Uuid,
        #[graphql(desc = "The fields to change.")] input: UpdateInsuranceInput,
    ) -> GqlResult<Insurance> {
        let actor = ctx.clinical_actor()?;
        let subscriber = match (input.subscriber, input.patient_is_subscriber) {
            (Some(_), Some(true)) => {
                return Err(ApiError::bad_input(
                    "patientIsSubscriber",
                    "give a subscriber or make the patient the subscriber, not both",
                )
                .into());
            }
            (Some(s), _) => Some(Some(s.parse()?)),
            (None, Some(true)) => Some(None),
            (None, _) => None,
        };
        let changes = InsuranceChanges {
            member_id: input.member_id,
            group_number: input.group_number,
            priority: input.priority.map(Into::into),
            claim_filing_code: input
                .claim_filing_code
                .as_deref()
                .map(|c| ClaimFilingCode::parse("claimFilingCode", c))
                .transpose()
                .gql()?,
            subscriber,
            effective_to: input.effective_to.map(|d| d.0),
            is_active: input.is_active,
        };
        let keyring = ctx.shared::<std::sync::Arc<service::phi::Keyring>>()?;
        let row = in_savepoint(ctx, async |tx| {
            service::insurance::update(tx, actor, keyring, id, changes).await
        })
        .await?;
        Ok(Insurance(row))
    }

    /// Records a diagnosis (staff). A new primary one demotes the current
    /// primary.
    async fn add_diagnosis(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The diagnosis to record.")] input: AddDiagnosisInput,
    ) -> GqlResult<Diagnosis> {
        let actor = ctx.clinical_actor()?;
        let new = NewDiagnosis {
            patient: input.patient_id.into(),
            code: IcdCode::parse("code", &input.code).gql()?,
            description: input.description,
            is_primary: input.is_primary,
            diagnosed_on: input.diagnosed_on.0,
        };
        let row = in_savepoint(ctx, async |tx| {
            service::diagnoses::add(tx, actor, new).await
        })
        .await?;
        Ok(Diagnosis(row))
    }
}

#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Starts a therapy session at a checked-in appointment (the
    /// appointment's provider, role PROVIDER: FORBIDDEN
    /// NOT_RENDERING_PROVIDER otherwise). The provider needs a licence of
    /// the clinic's state valid that day (FORBIDDEN NO_VALID_LICENSE).
    async fn start_therapy_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The session to start.")] input: StartTherapySessionInput,
    ) -> GqlResult<TherapySession> {
        let actor = ctx.clinical_actor()?;
        let new = NewSession {
            appointment: input.appointment_id.into(),
            service_code: ServiceCode::parse("serviceCode", &input.service_code).gql()?,
            modifiers: Modifiers::parse("modifiers", &input.modifiers).gql()?,
            place_of_service: PlaceOfService::parse("placeOfService", &input.place_of_service)
                .gql()?,
            authorization: input.authorization_id.map(Into::into),
            started_at: input.started_at,
        };
        let row = in_savepoint(ctx, async |tx| {
            service::sessions::start(tx, actor, new).await
        })
        .await?;
        ctx.scope()?.record_reads([row.patient_id]);
        Ok(TherapySession(row))
    }

    /// Records a batch of clinical events (the session's provider), in one
    /// statement: 1 to 500 events, all or none (the request body must also
    /// fit `MAX_BODY_BYTES`, 64 KiB by default: a few hundred small events). Events are never changed; a
    /// correction is a new event with `correctsId`. Events recorded after
    /// the signature are addenda.
    async fn record_session_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The session's id.")] session_id: Uuid,
        #[graphql(desc = "The events, 1 to 500, in order.")] events: Vec<SessionEventInput>,
    ) -> GqlResult<Vec<SessionEvent>> {
        let actor = ctx.clinical_actor()?;
        if events.len() > service::sessions::MAX_EVENTS_PER_BATCH {
            return Err(ApiError::bad_input(
                "events",
                format!(
                    "at most {} events per call",
                    service::sessions::MAX_EVENTS_PER_BATCH
                ),
            )
            .into());
        }
        let new: Vec<NewEvent> = events
            .into_iter()
            .map(|e| NewEvent {
                event_type: e.event_type,
                occurred_at: e.occurred_at,
                payload: e.payload.0,
                corrects: e.corrects_id,
            })
            .collect();
        let rows = in_savepoint(ctx, async |tx| {
            service::sessions::record_events(tx, actor, session_id, new).await
        })
        .await?;
        if let Some(e) = rows.first() {
            ctx.scope()?.record_reads([e.patient_id]);
        }
        Ok(rows.into_iter().map(SessionEvent).collect())
    }

    /// Ends a session (its provider): its units are computed (15-minute
    /// units, 8-minute rule) and consumed from its authorization, and its
    /// appointment completed, all or nothing. Units that do not fit are
    /// CONFLICT UNITS_EXHAUSTED; a session day outside the authorization's
    /// dates CONFLICT AUTHORIZATION_NOT_VALID_ON_DATE; a session already
    /// ended CONFLICT SESSION_ENDED.
    async fn end_therapy_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The session's id.")] id: Uuid,
        #[graphql(
            desc = "When care ended (after the start, at most 24 hours later, not \
                          in the future); now when omitted."
        )]
        ended_at: Option<chrono::DateTime<chrono::FixedOffset>>,
    ) -> GqlResult<TherapySession> {
        let actor = ctx.clinical_actor()?;
        let row = in_savepoint(ctx, async |tx| {
            service::sessions::end(tx, actor, id, ended_at).await
        })
        .await?;
        ctx.scope()?.record_reads([row.patient_id]);
        Ok(TherapySession(row))
    }

    /// Signs an ended session (its provider): server time, signer and a
    /// content hash; the session is then locked. CONFLICT SESSION_NOT_ENDED
    /// or SESSION_SIGNED.
    async fn sign_therapy_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The session's id.")] id: Uuid,
    ) -> GqlResult<TherapySession> {
        let actor = ctx.clinical_actor()?;
        let row =
            in_savepoint(ctx, async |tx| service::sessions::sign(tx, actor, id).await).await?;
        ctx.scope()?.record_reads([row.patient_id]);
        Ok(TherapySession(row))
    }
}

#[derive(Default)]
pub struct ClaimMutation;

#[Object]
impl ClaimMutation {
    /// Bills signed sessions to a coverage (ADMIN, STAFF): a DRAFT claim,
    /// one line per session, charged from the fee schedule.
    async fn create_claim(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The claim to create.")] input: CreateClaimInput,
    ) -> GqlResult<Claim> {
        let actor = ctx.clinical_actor()?;
        let new = NewClaim {
            insurance: input.insurance_id,
            sessions: input.session_ids,
        };
        let row = in_savepoint(ctx, async |tx| {
            service::claims::create(tx, actor, new).await
        })
        .await?;
        ctx.scope()?.record_reads([row.patient_id]);
        Ok(Claim(row))
    }

    /// Submits a DRAFT claim (ADMIN, STAFF): its 837P is rendered and kept
    /// with it (`Claim.x12` answers it from then on). It must render as a
    /// valid 837P: otherwise BAD_USER_INPUT names the field to fix (e.g.
    /// `insurance.memberId`) and nothing changes. A claim no longer DRAFT
    /// is CONFLICT CLAIM_ALREADY_SUBMITTED.
    async fn submit_claim(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The claim's id.")] id: Uuid,
    ) -> GqlResult<Claim> {
        let actor = ctx.clinical_actor()?;
        let keyring = ctx.shared::<std::sync::Arc<service::phi::Keyring>>()?;
        let row = in_savepoint(ctx, async |tx| {
            service::claims::submit(tx, actor, keyring, id).await
        })
        .await?;
        ctx.scope()?.record_reads([row.patient_id]);
        Ok(Claim(row))
    }

    /// Records the payer's response to a claim (ADMIN, STAFF).
    async fn record_claim_response(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The claim's id.")] id: Uuid,
        #[graphql(desc = "The response.")] input: ClaimResponseInput,
    ) -> GqlResult<Claim> {
        let actor = ctx.clinical_actor()?;
        let response = ClaimResponse {
            status: input.status.into(),
            payer_claim_number: input.payer_claim_number,
            paid_cents: input.paid_cents,
            note: input.note,
        };
        let row = in_savepoint(ctx, async |tx| {
            service::claims::record_response(tx, actor, id, response).await
        })
        .await?;
        ctx.scope()?.record_reads([row.patient_id]);
        Ok(Claim(row))
    }
}
