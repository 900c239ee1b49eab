//! The clinic's own billing: payments, refunds and adjustments of a
//! patient's account (or the clinic's), and the balance the database
//! computes from them.
//!
//! A refund never exceeds what its payment took: the database adds it to
//! the payment's refunded amount under the payment's row lock, and a CHECK
//! holds the sum (`REFUND_EXCEEDS_PAYMENT`).

use std::collections::HashMap;

use anyhow::Context;
use entity::billing_transaction::{self, AccountOwner, TransactionKind, TransactionStatus};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, Set, Statement,
};
use uuid::Uuid;

use crate::Tx;
use crate::actor::{Actor, Purpose, Role};
use crate::domain::{PatientId, new_id, required_text};
use crate::error::{DbResultExt, ServiceError, ServiceResult};
use crate::pagination::{Page, PageRequest, TimeKey, pages_per_owner};
use crate::sql::uuid_array;

/// The largest amount one transaction moves: a billion in major units.
const MAX_MINOR: i64 = 100_000_000_000;

/// An amount of money in minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    minor: i64,
    currency: String,
}

impl Money {
    /// A positive amount (payments, refunds).
    pub fn positive(minor: i64, currency: &str) -> ServiceResult<Self> {
        if !(1..=MAX_MINOR).contains(&minor) {
            return Err(ServiceError::invalid(
                "amountMinor",
                "a positive amount in minor units (cents), at most 100000000000",
            ));
        }
        Self::of(minor, currency)
    }

    /// A signed, non-zero amount (adjustments).
    pub fn signed(minor: i64, currency: &str) -> ServiceResult<Self> {
        if minor == 0 || minor.unsigned_abs() > MAX_MINOR as u64 {
            return Err(ServiceError::invalid(
                "amountMinor",
                "a non-zero amount in minor units (cents), at most 100000000000 either way",
            ));
        }
        Self::of(minor, currency)
    }

    fn of(minor: i64, currency: &str) -> ServiceResult<Self> {
        let c = currency.trim();
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ServiceError::invalid(
                "currency",
                "an ISO 4217 code of three capital letters (e.g. USD)",
            ));
        }
        Ok(Self {
            minor,
            currency: c.to_owned(),
        })
    }
}

/// An external processor's reference to a transaction (e.g. `stripe` and a
/// payment intent id): stored, never called.
#[derive(Debug, Clone)]
pub struct ProcessorRef {
    processor: String,
    reference: String,
}

impl ProcessorRef {
    pub fn parse(processor: &str, reference: &str) -> ServiceResult<Self> {
        let p = processor.trim();
        let ok = (1..=40).contains(&p.len())
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return Err(ServiceError::invalid(
                "processor",
                "1 to 40 lower-case letters, digits, _ or - (e.g. stripe)",
            ));
        }
        Ok(Self {
            processor: p.to_owned(),
            reference: required_text("processorRef", reference, 255)?,
        })
    }
}

fn description_of(raw: Option<&str>) -> ServiceResult<Option<String>> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(d) => required_text("description", d, 500).map(Some),
    }
}

pub struct NewPayment {
    pub patient: PatientId,
    pub amount: Money,
    pub processor: Option<ProcessorRef>,
    pub description: Option<String>,
}

/// Records a patient's payment (ADMIN, STAFF; or a patient or proxy allowed
/// to see the patient's billing, paying for them — a proxy's payment
/// records the grant it was made under, and a portal payment is PENDING
/// until the clinic settles it, so a balance moves only by what the clinic
/// confirmed). A processor reference is recorded
/// once (`DUPLICATE_PROCESSOR_REF`).
#[tracing::instrument(skip_all, name = "payments.record_payment", level = "debug", fields(patient = %input.patient))]
pub async fn record_payment(
    tx: &Tx,
    actor: &Actor,
    input: NewPayment,
) -> ServiceResult<billing_transaction::Model> {
    let patient = match actor.role {
        Role::Admin | Role::Staff => {
            crate::patients::get(tx, input.patient)
                .await?
                .ok_or_else(|| ServiceError::invalid("patientId", "no such patient"))?
                .id
        }
        // The billing scope the guard loaded names live charts of this
        // clinic; a proxy holding only the billing permission may not read
        // the chart itself.
        Role::Portal => {
            actor.may(Purpose::Billing, input.patient)?;
            input.patient.into_uuid()
        }
        Role::Provider => {
            return Err(ServiceError::Forbidden(crate::error::ForbiddenReason::Role));
        }
    };
    let status = if actor.role == Role::Portal {
        TransactionStatus::Pending
    } else {
        TransactionStatus::Succeeded
    };
    insert(
        tx,
        status,
        actor.tenant.into_uuid(),
        Some(patient),
        TransactionKind::Payment,
        input.amount,
        None,
        input.processor,
        description_of(input.description.as_deref())?,
    )
    .await
}

pub struct NewRefund {
    pub payment: Uuid,
    pub amount_minor: i64,
    pub processor: Option<ProcessorRef>,
    pub description: Option<String>,
}

/// Refunds part or all of a succeeded payment (ADMIN, STAFF), in its
/// currency. Refunds of one payment never add up to more than it
/// (`REFUND_EXCEEDS_PAYMENT`, decided by the database under concurrency).
#[tracing::instrument(skip_all, name = "payments.record_refund", level = "debug", fields(payment = %input.payment))]
pub async fn record_refund(
    tx: &Tx,
    actor: &Actor,
    input: NewRefund,
) -> ServiceResult<billing_transaction::Model> {
    actor.require(&[Role::Admin, Role::Staff])?;
    let payment = billing_transaction::Entity::find_by_id(input.payment)
        .one(tx)
        .await
        .or_db("reading a payment")?
        .ok_or_else(|| ServiceError::invalid("paymentId", "no such payment"))?;
    if payment.kind != TransactionKind::Payment || payment.status != TransactionStatus::Succeeded {
        return Err(ServiceError::invalid(
            "paymentId",
            "only a succeeded payment can be refunded",
        ));
    }
    let amount = Money::positive(input.amount_minor, &payment.currency)?;
    let row = insert(
        tx,
        TransactionStatus::Succeeded,
        payment.organization_id,
        payment.patient_id,
        TransactionKind::Refund,
        amount,
        Some(payment.id),
        input.processor,
        description_of(input.description.as_deref())?,
    )
    .await?;
    Ok(row)
}

/// Whose account an adjustment is on.
#[derive(Debug, Clone, Copy)]
pub enum Account {
    Patient(PatientId),
    Clinic,
}

pub struct NewAdjustment {
    pub account: Account,
    pub amount: Money,
    pub description: String,
}

/// Records an adjustment (ADMIN, STAFF): positive adds to what the account
/// owes (a charge, e.g. a copay), negative takes from it (a write-off). It
/// says why.
#[tracing::instrument(skip_all, name = "payments.record_adjustment", level = "debug")]
pub async fn record_adjustment(
    tx: &Tx,
    actor: &Actor,
    input: NewAdjustment,
) -> ServiceResult<billing_transaction::Model> {
    actor.require(&[Role::Admin, Role::Staff])?;
    let description = required_text("description", &input.description, 500)?;
    let patient = match input.account {
        Account::Clinic => None,
        Account::Patient(p) => Some(
            crate::patients::get(tx, p)
                .await?
                .ok_or_else(|| ServiceError::invalid("patientId", "no such patient"))?
                .id,
        ),
    };
    insert(
        tx,
        TransactionStatus::Succeeded,
        actor.tenant.into_uuid(),
        patient,
        TransactionKind::Adjustment,
        input.amount,
        None,
        None,
        Some(description),
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    tx: &Tx,
    status: TransactionStatus,
    organization: Uuid,
    patient: Option<Uuid>,
    kind: TransactionKind,
    amount: Money,
    refund_of: Option<Uuid>,
    processor: Option<ProcessorRef>,
    description: Option<String>,
) -> ServiceResult<billing_transaction::Model> {
    let (processor, processor_ref) = match processor {
        Some(p) => (Some(p.processor), Some(p.reference)),
        None => (None, None),
    };
    billing_transaction::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(organization),
        owner_kind: Set(if patient.is_some() {
            AccountOwner::Patient
        } else {
            AccountOwner::Clinic
        }),
        patient_id: Set(patient),
        kind: Set(kind),
        amount_minor: Set(amount.minor),
        currency: Set(amount.currency),
        // What a patient or proxy records waits for the clinic (the
        // database holds the same rule).
        status: Set(status),
        refund_of: Set(refund_of),
        processor: Set(processor),
        processor_ref: Set(processor_ref),
        description: Set(description),
        ..Default::default()
    }
    .insert(tx)
    .await
    .or_db("recording a billing transaction")
}

/// Settles a pending transaction (ADMIN, STAFF): SUCCEEDED (it now counts),
/// FAILED or CANCELLED. Only a PENDING one moves, once (`NOT_PENDING`).
#[tracing::instrument(skip_all, name = "payments.settle", level = "debug", fields(id = %id))]
pub async fn settle(
    tx: &Tx,
    actor: &Actor,
    id: Uuid,
    to: TransactionStatus,
) -> ServiceResult<billing_transaction::Model> {
    use sea_orm::{IntoActiveModel, QuerySelect};
    actor.require(&[Role::Admin, Role::Staff])?;
    if to == TransactionStatus::Pending {
        return Err(ServiceError::invalid(
            "status",
            "SUCCEEDED, FAILED or CANCELLED",
        ));
    }
    let current = billing_transaction::Entity::find_by_id(id)
        .lock_exclusive()
        .one(tx)
        .await
        .or_db("reading a transaction")?
        .ok_or(ServiceError::NotFound)?;
    if current.status != TransactionStatus::Pending {
        return Err(ServiceError::Conflict(
            crate::error::ConflictReason::NotPending,
        ));
    }
    let mut model = current.into_active_model();
    model.status = Set(to);
    model.update(tx).await.or_db("settling a transaction")
}

/// A page of transactions of each of several patients, newest first: one
/// statement for all of them.
#[tracing::instrument(skip_all, name = "payments.pages_of_patients", level = "debug", fields(patients = patients.len()))]
pub async fn pages_of_patients(
    tx: &Tx,
    patients: &[Uuid],
    page: &PageRequest<TimeKey>,
) -> ServiceResult<HashMap<Uuid, Page<billing_transaction::Model>>> {
    let (after_at, after_id) = match &page.after {
        Some(k) => (Some(k.at), Some(k.id)),
        None => (None, None),
    };
    let rows = tx
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT * FROM ( \
               SELECT b.*, row_number() OVER ( \
                   PARTITION BY b.patient_id ORDER BY b.created_at DESC, b.id DESC) AS rn \
               FROM billing_transactions b \
               WHERE b.patient_id = ANY ($1::uuid[]) \
                 AND ($2::timestamptz IS NULL OR (b.created_at, b.id) < ($2, $3)) \
             ) t WHERE rn <= $4 ORDER BY patient_id, rn",
            [
                uuid_array(patients.iter().copied()),
                after_at.into(),
                after_id.into(),
                ((page.first + 1) as i64).into(),
            ],
        ))
        .await
        .or_db("loading billing transactions")?;
    let mut owned = Vec::with_capacity(rows.len());
    for row in rows {
        let t = billing_transaction::Model::from_query_result(&row, "").context("a transaction")?;
        if let Some(p) = t.patient_id {
            owned.push((p, t));
        }
    }
    Ok(pages_per_owner(patients, owned, page.first))
}

pub fn key_of(t: &billing_transaction::Model) -> TimeKey {
    TimeKey {
        at: t.created_at,
        id: t.id,
    }
}

/// A balance in one currency (positive: the patient owes the clinic).
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Balance {
    pub patient_id: Uuid,
    pub currency: String,
    pub balance_minor: i64,
}

/// The balances of several patients, per currency, as the database's
/// `patient_balances` view computes them: one statement.
#[tracing::instrument(skip_all, name = "payments.balances_of", level = "debug", fields(patients = patients.len()))]
pub async fn balances_of(tx: &Tx, patients: &[Uuid]) -> ServiceResult<Vec<Balance>> {
    let rows = tx
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT patient_id, currency, balance_minor FROM patient_balances \
             WHERE patient_id = ANY ($1::uuid[]) ORDER BY patient_id, currency",
            [uuid_array(patients.iter().copied())],
        ))
        .await
        .or_db("computing balances")?;
    rows.iter()
        .map(|r| Ok(Balance::from_query_result(r, "").context("a balance")?))
        .collect()
}
