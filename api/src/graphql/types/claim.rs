//! Claims and their service lines.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, FixedOffset};
use entity::{claim, claim_line};
use service::Purpose;
use service::claims::ClaimFilter as Filter;
use service::pagination::{Page, TimeKey};
use uuid::Uuid;

use super::coverage::Insurance;
use super::enums::ClaimStatus;
use super::patient::Patient;
use super::provider::Provider;
use super::session::TherapySession;
use crate::error::{GqlResult, IntoGql};
use crate::graphql::scalars::Date;
use crate::graphql::scope::ScopeExt;

#[derive(Clone)]
pub struct Claim(pub claim::Model);

/// A claim: signed therapy sessions of one patient and rendering provider,
/// billed to one of the patient's coverages. Staff see the clinic's claims;
/// a patient their own; a proxy those of patients whose billing they may
/// view (status and amounts; the 837P is for staff).
#[Object]
impl Claim {
    /// The claim's id.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Where the claim stands.
    async fn status(&self) -> ClaimStatus {
        self.0.status.into()
    }
    /// The claim's number: its 837P interchange control number, and (as
    /// `CG` + 9 digits) the patient control number the payer answers with.
    async fn control_number(&self) -> i32 {
        self.0.control_number
    }
    /// The total charge in cents: the sum of the lines.
    async fn total_charge_cents(&self) -> i64 {
        self.0.total_charge_cents
    }
    /// What the payer paid, in cents; set when PAID.
    async fn paid_cents(&self) -> Option<i64> {
        self.0.paid_cents
    }
    /// The payer's number for the claim, once it answered with one.
    async fn payer_claim_number(&self) -> Option<&str> {
        self.0.payer_claim_number.as_deref()
    }
    /// The payer's note on its last response (e.g. a rejection reason).
    async fn response_note(&self) -> Option<&str> {
        self.0.response_note.as_deref()
    }
    /// The ICD-10-CM codes billed, principal first; lines point into this
    /// list (1-based).
    async fn diagnosis_codes(&self) -> &[String] {
        &self.0.diagnosis_codes
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<FixedOffset> {
        self.0.created_at
    }
    /// When it was submitted; null while DRAFT.
    async fn submitted_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.submitted_at
    }
    /// When the payer's last response was recorded.
    async fn responded_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.responded_at
    }
    /// The patient; null when the caller may see the claim but not the
    /// chart.
    async fn patient(&self, ctx: &Context<'_>) -> GqlResult<Option<Patient>> {
        let row = ctx
            .loaders()?
            .patient
            .load_one(self.0.patient_id.into())
            .await
            .gql()?;
        Ok(Patient::returned(ctx, row.into_iter().collect())?.pop())
    }
    /// The coverage billed.
    async fn insurance(&self, ctx: &Context<'_>) -> GqlResult<Option<Insurance>> {
        ctx.clinical_actor()?
            .may(Purpose::Billing, self.0.patient_id.into())
            .gql()?;
        let row = ctx
            .loaders()?
            .insurance
            .load_one(self.0.insurance_id)
            .await
            .gql()?;
        Ok(row.map(Insurance))
    }
    /// The rendering provider.
    async fn provider(&self, ctx: &Context<'_>) -> GqlResult<Option<Provider>> {
        let row = ctx
            .loaders()?
            .provider
            .load_one(self.0.provider_id.into())
            .await
            .gql()?;
        Ok(row.map(Provider))
    }
    /// The service lines, in order: one per session billed.
    async fn lines(&self, ctx: &Context<'_>) -> GqlResult<Vec<ClaimLine>> {
        let rows = ctx.loaders()?.claim_lines.load_one(self.0.id).await.gql()?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(ClaimLine)
            .collect())
    }
    /// The claim as an ASC X12 005010X222A1 837P interchange (staff:
    /// ADMIN, STAFF). Once submitted: the interchange as it was submitted,
    /// byte for byte, whatever changed since. A DRAFT: a preview rendered
    /// from the current data (usage indicator T), or null with a
    /// BAD_USER_INPUT error naming the field to fix (e.g.
    /// `insurance.memberId`) when it would not be a valid 837P.
    #[graphql(complexity = 10)]
    async fn x12(&self, ctx: &Context<'_>) -> GqlResult<Option<String>> {
        let actor = ctx.clinical_actor()?;
        let scope = ctx.scope()?;
        let keyring = ctx.shared::<std::sync::Arc<service::phi::Keyring>>()?;
        service::claims::render(&scope.tx, actor, keyring, &[self.0.id])
            .await
            .gql()
            .map(Some)
    }
}

#[derive(Clone)]
pub struct ClaimLine(pub claim_line::Model);

/// One service line of a claim: a billed session.
#[Object]
impl ClaimLine {
    /// The line's id.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// 1 to 50, in claim order.
    async fn line_number(&self) -> i32 {
        self.0.line_number
    }
    /// The CPT/HCPCS code.
    async fn service_code(&self) -> &str {
        &self.0.service_code
    }
    /// Procedure modifiers.
    async fn modifiers(&self) -> &[String] {
        &self.0.modifiers
    }
    /// The place-of-service code.
    async fn place_of_service(&self) -> &str {
        &self.0.place_of_service
    }
    /// The day of service (in the clinic's time zone).
    async fn service_date(&self) -> Date {
        Date(self.0.service_date)
    }
    /// Units billed.
    async fn units(&self) -> i32 {
        self.0.units
    }
    /// The charge in cents: units × the fee schedule's unit charge that day.
    async fn charge_cents(&self) -> i64 {
        self.0.charge_cents
    }
    /// Positions (1-based) in the claim's `diagnosisCodes` this line treats.
    async fn diagnosis_pointers(&self) -> Vec<i32> {
        self.0
            .diagnosis_pointers
            .iter()
            .map(|p| i32::from(*p))
            .collect()
    }
    /// The session billed; null when the caller may not see sessions (a
    /// proxy without clinical-notes access).
    async fn session(&self, ctx: &Context<'_>) -> GqlResult<Option<TherapySession>> {
        let row = ctx
            .loaders()?
            .session
            .load_one(self.0.session_id)
            .await
            .gql()?;
        Ok(row.map(TherapySession))
    }
}

/// Which claims to list; every field given narrows the list.
#[derive(InputObject, Default)]
pub struct ClaimFilter {
    /// Only this patient's claims.
    pub patient_id: Option<Uuid>,
    /// Only claims in this status.
    pub status: Option<ClaimStatus>,
}

impl From<ClaimFilter> for Filter {
    fn from(f: ClaimFilter) -> Self {
        Filter {
            patient: f.patient_id.map(Into::into),
            status: f.status.map(Into::into),
        }
    }
}

/// `totalCount` of a claim list.
pub struct ClaimTotal(pub Filter);

#[Object]
impl ClaimTotal {
    /// How many claims match the filter.
    async fn total_count(&self, ctx: &Context<'_>) -> GqlResult<i64> {
        let scope = ctx.scope()?;
        Ok(service::claims::count(&scope.tx, &self.0).await.gql()? as i64)
    }
}

pub type ClaimConnection = Connection<OpaqueCursor<TimeKey>, Claim, ClaimTotal>;

pub const CONNECTION_DESCRIPTION: &str = "\
    A page of claims, by creation time (oldest first). Ask for the next page\n\
    with `after: pageInfo.endCursor` while `pageInfo.hasNextPage`.";

pub fn connection(
    ctx: &Context<'_>,
    page: Page<claim::Model>,
    total: ClaimTotal,
) -> GqlResult<ClaimConnection> {
    ctx.scope()?
        .record_reads(page.items.iter().map(|c| c.patient_id));
    let mut conn = Connection::with_additional_fields(false, page.has_next_page, total);
    for c in page.items {
        conn.edges.push(Edge::new(
            OpaqueCursor(service::claims::key_of(&c)),
            Claim(c),
        ));
    }
    Ok(conn)
}

/// A claim to create.
#[derive(InputObject)]
pub struct CreateClaimInput {
    /// The patient's active coverage to bill (BAD_USER_INPUT on
    /// `insuranceId` when there is none such).
    pub insurance_id: Uuid,
    /// The signed sessions to bill, 1 to 50, of the coverage's patient and
    /// one rendering provider; a session on another live claim is CONFLICT
    /// SESSION_ALREADY_BILLED.
    pub session_ids: Vec<Uuid>,
}

/// A payer's response to record.
#[derive(InputObject)]
pub struct ClaimResponseInput {
    /// The new status: ACCEPTED or REJECTED for a SUBMITTED claim, PAID or
    /// DENIED for an ACCEPTED one (any other step is BAD_USER_INPUT on
    /// `status`).
    pub status: ClaimStatus,
    /// The payer's number for the claim: up to 50 characters.
    pub payer_claim_number: Option<String>,
    /// With PAID (and only then): the amount paid in cents, 0 to the total
    /// charge.
    pub paid_cents: Option<i64>,
    /// The payer's note (e.g. a rejection reason): up to 1000 characters.
    pub note: Option<String>,
}
