//! The clinic's own billing: transactions of a patient's account, balances,
//! and the clinic's subscription with its override.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, FixedOffset};
use entity::{billing_transaction, subscription_override};
use service::pagination::{Page, PageRequest, TimeKey};
use uuid::Uuid;

use super::enums::{
    AccountOwner, SubscriptionOverrideKind, SubscriptionStatus, TransactionKind, TransactionStatus,
};
use super::patient::Patient;
use crate::error::{ApiError, GqlResult, IntoGql};
use crate::graphql::scalars::Date;
use crate::graphql::scope::ScopeExt;

#[derive(Clone)]
pub struct BillingTransaction(pub billing_transaction::Model);

/// A payment, refund or adjustment of a patient's account (or the
/// clinic's own). Amounts are in minor units (cents) of `currency`.
#[Object]
impl BillingTransaction {
    /// The transaction's id (a refund names its payment by it).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Whose account: a patient's or the clinic's.
    async fn owner(&self) -> AccountOwner {
        self.0.owner_kind.into()
    }
    /// The patient whose account it is on; null for the clinic's own.
    async fn patient(&self, ctx: &Context<'_>) -> GqlResult<Option<Patient>> {
        let Some(p) = self.0.patient_id else {
            return Ok(None);
        };
        let row = ctx.loaders()?.patient.load_one(p.into()).await.gql()?;
        Ok(Patient::returned(ctx, row.into_iter().collect())?.pop())
    }
    /// Payment, refund or adjustment.
    async fn kind(&self) -> TransactionKind {
        self.0.kind.into()
    }
    /// The amount in minor units: positive for payments and refunds; an
    /// adjustment's sign says which way it moves the balance.
    async fn amount_minor(&self) -> i64 {
        self.0.amount_minor
    }
    /// ISO 4217 currency code.
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    /// Only succeeded transactions count towards a balance.
    async fn status(&self) -> TransactionStatus {
        self.0.status.into()
    }
    /// For a refund: the payment it returns money of.
    async fn refund_of(&self) -> Option<ID> {
        self.0.refund_of.map(|id| ID(id.to_string()))
    }
    /// For a payment: how much of it has been refunded.
    async fn refunded_minor(&self) -> i64 {
        self.0.refunded_minor
    }
    /// The external processor (e.g. `stripe`); null when none.
    async fn processor(&self) -> Option<&str> {
        self.0.processor.as_deref()
    }
    /// The processor's reference (e.g. a payment intent id); null when none.
    async fn processor_ref(&self) -> Option<&str> {
        self.0.processor_ref.as_deref()
    }
    /// The proxy grant under which a proxy paid; null when the patient or
    /// the clinic's staff recorded it.
    async fn managed_by_proxy_id(&self) -> Option<ID> {
        self.0.managed_by_proxy_id.map(|id| ID(id.to_string()))
    }
    /// What it is for; null when not given.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// When it was recorded.
    async fn created_at(&self) -> DateTime<FixedOffset> {
        self.0.created_at
    }
}

pub type BillingTransactionConnection = Connection<OpaqueCursor<TimeKey>, BillingTransaction>;

/// The description of `BillingTransactionConnection`.
pub const CONNECTION_DESCRIPTION: &str = "\
    A page of billing transactions, newest first. Ask for the next page\n\
    with `after: pageInfo.endCursor` while `pageInfo.hasNextPage`.";

/// The transactions of a patient, a page: for `Patient.billingTransactions`.
pub async fn of_patient(
    ctx: &Context<'_>,
    patient: Uuid,
    page: PageRequest<TimeKey>,
) -> GqlResult<BillingTransactionConnection> {
    let result: Page<billing_transaction::Model> = ctx
        .loaders()?
        .transactions_by_patient
        .load_one((patient, page))
        .await
        .gql()?
        .ok_or_else(ApiError::internal)?;
    let mut conn = Connection::new(false, result.has_next_page);
    for t in result.items {
        conn.edges.push(Edge::new(
            OpaqueCursor(service::payments::key_of(&t)),
            BillingTransaction(t),
        ));
    }
    Ok(conn)
}

/// An account balance in one currency.
#[derive(SimpleObject, Clone)]
pub struct Balance {
    /// ISO 4217 currency code.
    pub currency: String,
    /// Minor units: positive when the patient owes the clinic, negative
    /// when the clinic owes the patient.
    pub amount_minor: i64,
}

/// A payment to record.
#[derive(InputObject)]
pub struct RecordPaymentInput {
    /// The patient whose account it is paid into.
    pub patient_id: Uuid,
    /// A positive amount in minor units (cents).
    pub amount_minor: i64,
    /// ISO 4217 currency code; `USD` when omitted.
    #[graphql(default = "USD")]
    pub currency: String,
    /// The external processor (lower-case, e.g. `stripe`), with
    /// `processorRef`; both or neither.
    pub processor: Option<String>,
    /// The processor's reference (e.g. a payment intent id), recorded once.
    pub processor_ref: Option<String>,
    /// What it is for (up to 500 characters).
    pub description: Option<String>,
}

/// A refund to record.
#[derive(InputObject)]
pub struct RecordRefundInput {
    /// The succeeded payment it returns money of.
    pub payment_id: Uuid,
    /// A positive amount in minor units, in the payment's currency; all
    /// refunds of a payment add up to at most the payment.
    pub amount_minor: i64,
    /// The external processor, with `processorRef`; both or neither.
    pub processor: Option<String>,
    /// The processor's reference of the refund, recorded once.
    pub processor_ref: Option<String>,
    /// Why (up to 500 characters).
    pub description: Option<String>,
}

/// An adjustment to record.
#[derive(InputObject)]
pub struct RecordAdjustmentInput {
    /// The patient whose account it adjusts; the clinic's own when omitted.
    pub patient_id: Option<Uuid>,
    /// Non-zero minor units: positive adds to what the account owes (a
    /// charge), negative takes from it (a write-off).
    pub amount_minor: i64,
    /// ISO 4217 currency code; `USD` when omitted.
    #[graphql(default = "USD")]
    pub currency: String,
    /// Why (1 to 500 characters).
    pub description: String,
}

pub struct ClinicSubscription(pub service::subscription::Subscription);

/// The clinic's caregate subscription (its admins only).
#[Object]
impl ClinicSubscription {
    /// The status in force: the plan's, as the active override changes it
    /// (FREE: ACTIVE; MANUAL_CANCEL: CANCELLED; TRIAL_EXTENSION: TRIAL until
    /// its end; DISCOUNT leaves it).
    async fn status(&self) -> SubscriptionStatus {
        self.0.status.into()
    }
    /// The plan's own status, before any override.
    async fn plan_status(&self) -> SubscriptionStatus {
        self.0.plan_status.into()
    }
    /// The active override; null when none.
    #[graphql(name = "override")]
    async fn active_override(&self) -> Option<SubscriptionOverride> {
        self.0.active_override.clone().map(SubscriptionOverride)
    }
}

#[derive(Clone)]
pub struct SubscriptionOverride(pub subscription_override::Model);

/// An override of the clinic's plan, granted by caregate's super admins.
#[Object]
impl SubscriptionOverride {
    /// The override's id (for `revokeSubscriptionOverride`).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// What it does.
    async fn kind(&self) -> SubscriptionOverrideKind {
        self.0.kind.into()
    }
    /// For DISCOUNT: the percentage taken off (0 to 100).
    async fn discount_percent(&self) -> Option<i32> {
        self.0.discount_percent
    }
    /// For TRIAL_EXTENSION: the trial's last day.
    async fn trial_ends_on(&self) -> Option<Date> {
        self.0.trial_ends_on.map(Date)
    }
    /// Why it was granted.
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    /// Who granted it (a super admin's user id).
    async fn granted_by(&self) -> Uuid {
        self.0.granted_by
    }
    /// When.
    async fn granted_at(&self) -> DateTime<FixedOffset> {
        self.0.granted_at
    }
    /// Who revoked it; null while active.
    async fn revoked_by(&self) -> Option<Uuid> {
        self.0.revoked_by
    }
    /// When it was revoked; null while active.
    async fn revoked_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.revoked_at
    }
}

/// An override to grant: `discountPercent` for DISCOUNT, `trialEndsOn` for
/// TRIAL_EXTENSION, neither otherwise.
#[derive(InputObject)]
pub struct GrantSubscriptionOverrideInput {
    /// What the override does.
    pub kind: SubscriptionOverrideKind,
    /// 0 to 100, for DISCOUNT only.
    pub discount_percent: Option<i32>,
    /// Not in the past, for TRIAL_EXTENSION only.
    pub trial_ends_on: Option<Date>,
    /// Why (1 to 500 characters).
    pub reason: String,
}
