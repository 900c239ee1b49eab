//! The clinic's own billing in the mutation root: payments, refunds and
//! adjustments, and super admins' overrides of a clinic's subscription.
//! Merged into `Mutation`; each resolver parses, calls one service function
//! and maps the result.

use async_graphql::{Context, Object};
use service::payments::{Account, Money, NewAdjustment, NewPayment, NewRefund, ProcessorRef};
use service::subscription::NewOverride;
use uuid::Uuid;

use super::scope::{ScopeExt, in_savepoint};
use super::types::enums::{SubscriptionOverrideKind, TransactionStatus};
use super::types::payment::{
    BillingTransaction, GrantSubscriptionOverrideInput, RecordAdjustmentInput, RecordPaymentInput,
    RecordRefundInput, SubscriptionOverride,
};
use crate::error::{ApiError, GqlResult, IntoGql};

fn processor(p: Option<String>, r: Option<String>) -> GqlResult<Option<ProcessorRef>> {
    match (p, r) {
        (None, None) => Ok(None),
        (Some(p), Some(r)) => Ok(Some(ProcessorRef::parse(&p, &r).gql()?)),
        _ => Err(
            ApiError::bad_input("processorRef", "give processor and processorRef together").into(),
        ),
    }
}

#[derive(Default)]
pub struct PaymentMutation;

#[Object]
impl PaymentMutation {
    /// Records a payment into a patient's account (ADMIN, STAFF: SUCCEEDED;
    /// or the patient, or a proxy with the billing permission, paying for
    /// them: PENDING until staff settle it with `settleTransaction`).
    /// A processor reference already recorded is CONFLICT
    /// DUPLICATE_PROCESSOR_REF.
    async fn record_payment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The payment.")] input: RecordPaymentInput,
    ) -> GqlResult<BillingTransaction> {
        let actor = ctx.clinical_actor()?;
        let new = NewPayment {
            patient: input.patient_id.into(),
            amount: Money::positive(input.amount_minor, &input.currency).gql()?,
            processor: processor(input.processor, input.processor_ref)?,
            description: input.description,
        };
        let row = in_savepoint(ctx, async |tx| {
            service::payments::record_payment(tx, actor, new).await
        })
        .await?;
        ctx.scope()?.record_reads(row.patient_id);
        Ok(BillingTransaction(row))
    }

    /// Refunds part or all of a succeeded payment (ADMIN, STAFF). Refunds
    /// adding up to more than the payment are CONFLICT
    /// REFUND_EXCEEDS_PAYMENT, whatever runs at the same time.
    async fn record_refund(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The refund.")] input: RecordRefundInput,
    ) -> GqlResult<BillingTransaction> {
        let actor = ctx.clinical_actor()?;
        let new = NewRefund {
            payment: input.payment_id,
            amount_minor: input.amount_minor,
            processor: processor(input.processor, input.processor_ref)?,
            description: input.description,
        };
        let row = in_savepoint(ctx, async |tx| {
            service::payments::record_refund(tx, actor, new).await
        })
        .await?;
        ctx.scope()?.record_reads(row.patient_id);
        Ok(BillingTransaction(row))
    }

    /// Settles a PENDING transaction (ADMIN, STAFF) — e.g. a payment a
    /// patient or proxy recorded, once the processor confirmed it:
    /// SUCCEEDED (it counts towards the balance), FAILED or CANCELLED. A
    /// transaction that is not pending is CONFLICT NOT_PENDING.
    async fn settle_transaction(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The transaction.")] id: Uuid,
        #[graphql(desc = "SUCCEEDED, FAILED or CANCELLED.")] status: TransactionStatus,
    ) -> GqlResult<BillingTransaction> {
        let actor = ctx.clinical_actor()?;
        let row = in_savepoint(ctx, async |tx| {
            service::payments::settle(tx, actor, id, status.into()).await
        })
        .await?;
        ctx.scope()?.record_reads(row.patient_id);
        Ok(BillingTransaction(row))
    }

    /// Records an adjustment of a patient's account or the clinic's own
    /// (ADMIN, STAFF): a charge (positive) or a write-off (negative).
    async fn record_adjustment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The adjustment.")] input: RecordAdjustmentInput,
    ) -> GqlResult<BillingTransaction> {
        let actor = ctx.clinical_actor()?;
        let new = NewAdjustment {
            account: match input.patient_id {
                Some(p) => Account::Patient(p.into()),
                None => Account::Clinic,
            },
            amount: Money::signed(input.amount_minor, &input.currency).gql()?,
            description: input.description,
        };
        let row = in_savepoint(ctx, async |tx| {
            service::payments::record_adjustment(tx, actor, new).await
        })
        .await?;
        ctx.scope()?.record_reads(row.patient_id);
        Ok(BillingTransaction(row))
    }

    /// Grants an override of the clinic's plan: only a super admin acting
    /// in the clinic through an audited impersonation (else FORBIDDEN,
    /// reason IMPERSONATION_REQUIRED). One active override per clinic
    /// (CONFLICT OVERRIDE_ACTIVE: revoke it first).
    async fn grant_subscription_override(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The override.")] input: GrantSubscriptionOverrideInput,
    ) -> GqlResult<SubscriptionOverride> {
        let actor = ctx.actor()?;
        let wrong = |field: &'static str| -> GqlResult<()> {
            Err(ApiError::bad_input(field, "not for this kind of override").into())
        };
        let new = match input.kind {
            SubscriptionOverrideKind::Discount => match input.discount_percent {
                Some(percent) => NewOverride::Discount { percent },
                None => {
                    return Err(
                        ApiError::bad_input("discountPercent", "required for DISCOUNT").into(),
                    );
                }
            },
            SubscriptionOverrideKind::TrialExtension => match input.trial_ends_on {
                Some(d) => NewOverride::TrialExtension { ends_on: d.0 },
                None => {
                    return Err(
                        ApiError::bad_input("trialEndsOn", "required for TRIAL_EXTENSION").into(),
                    );
                }
            },
            SubscriptionOverrideKind::Free => NewOverride::Free,
            SubscriptionOverrideKind::ManualCancel => NewOverride::ManualCancel,
        };
        if input.discount_percent.is_some() && input.kind != SubscriptionOverrideKind::Discount {
            wrong("discountPercent")?;
        }
        if input.trial_ends_on.is_some() && input.kind != SubscriptionOverrideKind::TrialExtension {
            wrong("trialEndsOn")?;
        }
        let row = in_savepoint(ctx, async |tx| {
            service::subscription::grant_override(tx, actor, new, &input.reason).await
        })
        .await?;
        Ok(SubscriptionOverride(row))
    }

    /// Revokes the clinic's active override (a super admin impersonating
    /// the clinic); it is kept with who revoked it.
    async fn revoke_subscription_override(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The override's id.")] id: Uuid,
    ) -> GqlResult<SubscriptionOverride> {
        let actor = ctx.actor()?;
        let row = in_savepoint(ctx, async |tx| {
            service::subscription::revoke_override(tx, actor, id).await
        })
        .await?;
        Ok(SubscriptionOverride(row))
    }
}
