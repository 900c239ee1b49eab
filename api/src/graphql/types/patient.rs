//! Patients and their contact methods.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, FixedOffset};
use entity::{contact_method, patient};
use service::domain::{Mrn, PatientId};
use service::pagination::NameKey;
use service::patients::PatientFilter as Filter;
use uuid::Uuid;

use service::Purpose;
use service::appointments::Owner;
use service::pagination::TimeKey;

use super::appointment::{self, AppointmentConnection, AppointmentTotal};
use super::billing::PayerAuthorization;
use super::care_team::CareTeamAssignment;
use super::connection::page_request;
use super::coverage::{Diagnosis, Insurance};
use super::enums::{CareTeamRole, ContactMethodType, LegalSex, PatientStatus};
use super::provider::Provider;
use super::proxy::ProxyAssignment;
use super::session::SessionConnection;
use crate::error::{ApiError, GqlResult, IntoGql};
use crate::graphql::scalars::Date;
use crate::graphql::scope::ScopeExt;

#[derive(Clone)]
pub struct Patient(pub patient::Model);

impl Patient {
    /// Wraps rows about to be returned, noting them for the READ audit
    /// events of this request.
    pub fn returned(ctx: &Context<'_>, rows: Vec<patient::Model>) -> GqlResult<Vec<Patient>> {
        ctx.scope()?.record_reads(rows.iter().map(|p| p.id));
        Ok(rows.into_iter().map(Patient).collect())
    }

    fn key(&self) -> PatientId {
        self.0.id.into()
    }
}

/// A patient's chart at the active clinic (the same person at another
/// clinic has a separate chart there, never seen from here). Staff see the
/// clinic's charts; a patient their own; a proxy those they were granted
/// profile access to. Every chart returned is recorded in the audit trail
/// (a READ event).
#[Object]
impl Patient {
    /// The chart's id. A Relay node id: the object's UUID, which every argument taking a
    /// UUID accepts.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Given name.
    async fn first_name(&self) -> &str {
        &self.0.first_name
    }
    /// Family name.
    async fn last_name(&self) -> &str {
        &self.0.last_name
    }
    /// Date of birth.
    async fn date_of_birth(&self) -> Date {
        Date(self.0.date_of_birth)
    }
    /// The Social Security number; null when none is recorded. Masked
    /// (`***-**-6789`) unless `unmasked: true`, which only ADMIN and STAFF
    /// may ask (others are FORBIDDEN, reason ROLE); every unmasked read is
    /// an audit event naming the field. Stored encrypted: the database
    /// alone never holds it in the clear.
    async fn ssn(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Show it in full (ADMIN, STAFF).", default = false)] unmasked: bool,
    ) -> GqlResult<Option<String>> {
        let actor = ctx.clinical_actor()?;
        let keyring = ctx.shared::<std::sync::Arc<service::phi::Keyring>>()?;
        let scope = ctx.scope()?;
        service::ssn::reveal(&scope.tx, actor, keyring, &self.0, unmasked)
            .await
            .gql()
    }
    /// Sex as recorded for legal and insurance purposes.
    async fn legal_sex(&self) -> LegalSex {
        self.0.legal_sex.into()
    }
    /// Medical record number, unique within the clinic.
    async fn mrn(&self) -> &str {
        &self.0.medical_record_number
    }
    /// Whether the chart is open or discharged.
    async fn status(&self) -> PatientStatus {
        self.0.status.into()
    }
    /// When the chart was opened (`enrollPatient`).
    async fn enrolled_at(&self) -> DateTime<FixedOffset> {
        self.0.enrolled_at
    }
    /// When the chart was closed (`dischargePatient`); null while ACTIVE.
    async fn discharged_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.discharged_at
    }

    /// Live contact methods, primary first.
    async fn contact_methods(&self, ctx: &Context<'_>) -> GqlResult<Vec<ContactMethod>> {
        let rows = ctx
            .loaders()?
            .contact_methods
            .load_one(self.key())
            .await
            .gql()?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(ContactMethod)
            .collect())
    }

    /// Active care team assignments.
    async fn care_team(&self, ctx: &Context<'_>) -> GqlResult<Vec<CareTeamAssignment>> {
        let rows = ctx.loaders()?.care_team.load_one(self.key()).await.gql()?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(CareTeamAssignment)
            .collect())
    }

    /// Appointments by start time, from `from` on when given (e.g. now, for
    /// the upcoming ones). A proxy needs the appointments permission.
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
        #[graphql(desc = "Only appointments ending after this instant (still running \
                          or upcoming then). Omit for all, past ones included.")]
        from: Option<DateTime<FixedOffset>>,
    ) -> GqlResult<AppointmentConnection> {
        ctx.clinical_actor()?
            .may(Purpose::Appointments, self.key())
            .gql()?;
        let page = page_request::<TimeKey>(first, after)?;
        let key = (Owner::Patient(self.key()), from, page);
        let result = ctx
            .loaders()?
            .appointments
            .load_one(key)
            .await
            .gql()?
            .ok_or_else(ApiError::internal)?;
        appointment::connection(ctx, result, AppointmentTotal(None))
    }

    /// Payer authorizations. A proxy needs the billing permission.
    async fn authorizations(&self, ctx: &Context<'_>) -> GqlResult<Vec<PayerAuthorization>> {
        ctx.clinical_actor()?
            .may(Purpose::Billing, self.key())
            .gql()?;
        let rows = ctx
            .loaders()?
            .authorizations
            .load_one(self.key())
            .await
            .gql()?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(PayerAuthorization)
            .collect())
    }

    /// Proxy grants (live and past), for clinic staff.
    async fn proxies(&self, ctx: &Context<'_>) -> GqlResult<Vec<ProxyAssignment>> {
        ctx.clinical_actor()?.require_staff().gql()?;
        let loader = ctx
            .loaders()?
            .proxies
            .as_ref()
            .ok_or_else(ApiError::internal)?;
        let rows = loader.load_one(self.key()).await.gql()?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(ProxyAssignment)
            .collect())
    }

    /// The postal address; null when none is recorded. A proxy needs the
    /// profile permission (as for the chart itself).
    async fn address(&self) -> Option<super::address::PostalAddress> {
        let m = &self.0;
        super::address::PostalAddress::from_parts(
            &m.address_line1,
            &m.address_line2,
            &m.city,
            &m.state,
            &m.postal_code,
        )
    }

    /// Insurance coverages: active first, by priority. A proxy needs the
    /// billing permission.
    async fn insurances(&self, ctx: &Context<'_>) -> GqlResult<Vec<Insurance>> {
        ctx.clinical_actor()?
            .may(Purpose::Billing, self.key())
            .gql()?;
        let rows = ctx.loaders()?.insurances.load_one(self.key()).await.gql()?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(Insurance)
            .collect())
    }

    /// Open diagnoses: the primary first, then by date. A proxy needs the
    /// clinical-notes permission.
    async fn diagnoses(&self, ctx: &Context<'_>) -> GqlResult<Vec<Diagnosis>> {
        ctx.clinical_actor()?
            .may(Purpose::Notes, self.key())
            .gql()?;
        let rows = ctx.loaders()?.diagnoses.load_one(self.key()).await.gql()?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(Diagnosis)
            .collect())
    }

    /// Therapy sessions by start time. A proxy needs the clinical-notes
    /// permission.
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
    ) -> GqlResult<SessionConnection> {
        ctx.clinical_actor()?
            .may(Purpose::Notes, self.key())
            .gql()?;
        let page = page_request::<TimeKey>(first, after)?;
        super::session::of_patient(ctx, self.0.id, page).await
    }

    /// Payments, refunds and adjustments of the patient's account, newest
    /// first (ADMIN and STAFF; a patient or proxy with the billing
    /// permission; providers see none).
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn billing_transactions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
        after: Option<String>,
    ) -> GqlResult<super::payment::BillingTransactionConnection> {
        ctx.clinical_actor()?
            .may(Purpose::Billing, self.key())
            .gql()?;
        let page = page_request::<TimeKey>(first, after)?;
        super::payment::of_patient(ctx, self.0.id, page).await
    }

    /// Message threads about the patient the caller can see, most recently
    /// active first (staff: all of them; a patient or proxy: those they
    /// take part in, while allowed to message).
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn threads(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
        after: Option<String>,
    ) -> GqlResult<super::messaging::ThreadConnection> {
        ctx.clinical_actor()?;
        let page = page_request::<TimeKey>(first, after)?;
        let result = ctx
            .loaders()?
            .threads_by_patient
            .load_one((self.0.id, page))
            .await
            .gql()?
            .ok_or_else(ApiError::internal)?;
        Ok(super::messaging::thread_connection(result))
    }

    /// The patient's balance per currency, computed by the database from
    /// succeeded transactions (positive: the patient owes the clinic); empty
    /// when nothing was recorded. Same access as `billingTransactions`.
    async fn balance(&self, ctx: &Context<'_>) -> GqlResult<Vec<super::payment::Balance>> {
        ctx.clinical_actor()?
            .may(Purpose::Billing, self.key())
            .gql()?;
        let rows = ctx
            .loaders()?
            .balances
            .load_one(self.0.id)
            .await
            .gql()?
            .unwrap_or_default();
        Ok(rows
            .into_iter()
            .map(|b| super::payment::Balance {
                currency: b.currency,
                amount_minor: b.balance_minor,
            })
            .collect())
    }

    /// The provider of the active PRIMARY assignment, if any.
    async fn primary_provider(&self, ctx: &Context<'_>) -> GqlResult<Option<Provider>> {
        let loaders = ctx.loaders()?;
        let team = loaders
            .care_team
            .load_one(self.key())
            .await
            .gql()?
            .unwrap_or_default();
        let Some(primary) = team
            .into_iter()
            .find(|a| CareTeamRole::from(a.role) == CareTeamRole::Primary)
        else {
            return Ok(None);
        };
        let provider = loaders
            .provider
            .load_one(primary.provider_id.into())
            .await
            .gql()?;
        Ok(provider.map(Provider))
    }
}

#[derive(Clone)]
pub struct ContactMethod(pub contact_method::Model);

/// A way to reach a patient: a phone number or an email address.
#[Object]
impl ContactMethod {
    /// The contact method's id. A Relay node id: the object's UUID, which every argument taking a
    /// UUID accepts.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Phone (which one) or email.
    #[graphql(name = "type")]
    async fn kind(&self) -> ContactMethodType {
        self.0.r#type.into()
    }
    /// The phone number or email address, as entered.
    async fn value(&self) -> &str {
        &self.0.value
    }
    /// The patient's preferred way to be reached; at most one per patient.
    async fn is_primary(&self) -> bool {
        self.0.is_primary
    }
    /// Whether PHI may be left on a voicemail at this number.
    async fn is_safe_for_voicemail(&self) -> bool {
        self.0.is_safe_for_voicemail
    }
}

/// Which patients to list; every field given narrows the list (all of them
/// must match).
#[derive(InputObject, Default)]
pub struct PatientFilter {
    /// Words matched against the name: "jon smi" finds Jonathan Smith.
    pub search: Option<String>,
    /// Only the chart with this medical record number (exact; a malformed
    /// MRN is BAD_USER_INPUT on `mrn`).
    pub mrn: Option<String>,
    /// Only patients with this provider on their active care team.
    pub provider_id: Option<Uuid>,
    /// Only charts in this status.
    pub status: Option<PatientStatus>,
}

impl PatientFilter {
    pub fn parse(self) -> GqlResult<Filter> {
        Ok(Filter {
            search: self.search.filter(|s| !s.trim().is_empty()),
            mrn: self.mrn.as_deref().map(Mrn::parse).transpose().gql()?,
            provider: self.provider_id.map(Into::into),
            status: self.status.map(Into::into),
        })
    }
}

/// `totalCount` of a patient list, counted only when asked for.
pub enum PatientTotal {
    /// The root list, with its filter.
    Filtered(Filter),
    /// A provider's patients (counted for all providers of a response in
    /// one statement).
    OfProvider(service::domain::ProviderId),
}

#[Object]
impl PatientTotal {
    /// How many patients the list has, across all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> GqlResult<i64> {
        match self {
            Self::Filtered(filter) => {
                let scope = ctx.scope()?;
                Ok(service::patients::count(&scope.tx, filter).await.gql()? as i64)
            }
            Self::OfProvider(provider) => {
                let n = ctx
                    .loaders()?
                    .patient_count_by_provider
                    .load_one(*provider)
                    .await
                    .gql()?;
                Ok(n.unwrap_or(0))
            }
        }
    }
}

pub type PatientConnection<Extra> = Connection<OpaqueCursor<NameKey>, Patient, Extra>;

/// The description of `PatientConnection` (async-graphql generates the type;
/// `graphql::builder` gives it this).
pub const CONNECTION_DESCRIPTION: &str = "\
    A page of patients, by name (last, then first). Ask for the next page\n\
    with `after: pageInfo.endCursor` while `pageInfo.hasNextPage`.";

/// Builds a connection from one page of patients.
pub async fn connection<Extra: async_graphql::ObjectType>(
    ctx: &Context<'_>,
    page: service::pagination::Page<patient::Model>,
    extra: Extra,
) -> GqlResult<PatientConnection<Extra>> {
    let mut conn = Connection::with_additional_fields(false, page.has_next_page, extra);
    let cursors: Vec<_> = page.items.iter().map(service::patients::key_of).collect();
    for (key, patient) in cursors.into_iter().zip(Patient::returned(ctx, page.items)?) {
        conn.edges.push(Edge::new(OpaqueCursor(key), patient));
    }
    Ok(conn)
}

/// A chart to open. Text is trimmed; a value that breaks a rule below is
/// BAD_USER_INPUT on its field.
#[derive(InputObject)]
pub struct EnrollPatientInput {
    /// Medical record number: 1 to 32 letters, digits or dashes, unique
    /// within the clinic (CONFLICT DUPLICATE_MRN).
    pub mrn: String,
    /// Given name: 1 to 100 characters.
    pub first_name: String,
    /// Family name: 1 to 100 characters.
    pub last_name: String,
    /// Date of birth: not in the future, and not before 1880-01-01.
    pub date_of_birth: Date,
    /// Sex as recorded for legal and insurance purposes.
    pub legal_sex: LegalSex,
}

/// Changes to a chart: only the fields given change (null or omitted
/// leaves a field as it is), under the rules of `EnrollPatientInput`.
#[derive(InputObject)]
pub struct UpdatePatientInput {
    /// New medical record number (1 to 32 letters, digits or dashes, unique
    /// within the clinic: CONFLICT DUPLICATE_MRN).
    pub mrn: Option<String>,
    /// New given name (1 to 100 characters).
    pub first_name: Option<String>,
    /// New family name (1 to 100 characters).
    pub last_name: Option<String>,
    /// Corrected date of birth (not in the future, not before 1880-01-01).
    pub date_of_birth: Option<Date>,
    /// Corrected legal sex.
    pub legal_sex: Option<LegalSex>,
    /// The postal address (replaces the one recorded).
    pub address: Option<super::address::AddressInput>,
}

/// A way to reach a patient, to add. A value that breaks a rule below is
/// BAD_USER_INPUT on its field.
#[derive(InputObject)]
pub struct ContactMethodInput {
    /// Phone (which one) or email.
    #[graphql(name = "type")]
    pub kind: ContactMethodType,
    /// For EMAIL an email address; otherwise a phone number of 7 to 15
    /// digits, which may also hold spaces and `+ - ( ) . x`. At most 320
    /// characters.
    pub value: String,
    /// Make it the patient's preferred way to be reached (the previous
    /// primary, if any, stops being primary).
    #[graphql(default = false)]
    pub is_primary: bool,
    /// Leave PHI on voicemail at this number only where the patient agreed.
    /// An email address has no voicemail: true with EMAIL is BAD_USER_INPUT.
    #[graphql(default = false)]
    pub is_safe_for_voicemail: bool,
}
