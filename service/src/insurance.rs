//! Patients' insurance coverages: who pays, under which member id, and who
//! the subscriber is. At most one active coverage per priority per patient
//! (`COVERAGE_PRIORITY_TAKEN`, held by a partial unique index).

use chrono::NaiveDate;
use entity::patient_insurance::{self, CoveragePriority, SubscriberRelationship, SubscriberSex};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use crate::Tx;
use crate::actor::{Actor, Purpose, Role};
use crate::codes::{Address, ClaimFilingCode};
use crate::domain::{PatientId, new_id, required_text};
use crate::error::{DbResultExt, ServiceError, ServiceResult};
use crate::phi::{Field, Keyring};

/// A payer's id or a member or group number: letters, digits (and `-` for
/// member and group numbers), as payers issue them.
pub fn payer_code(
    field: &'static str,
    raw: &str,
    (min, max): (usize, usize),
    dash: bool,
) -> ServiceResult<String> {
    let value = raw.trim();
    let ok = value.len() >= min
        && value.len() <= max
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || (dash && b == b'-'));
    if !ok {
        return Err(ServiceError::invalid(
            field,
            format!("{min} to {max} letters or digits"),
        ));
    }
    Ok(value.to_owned())
}

/// A payer's electronic id: 2 to 15 characters, as an 837P's interchange
/// receiver id (ISA08) holds it.
const PAYER_ID: (usize, usize) = (2, 15);

/// The subscriber when it is someone other than the patient.
pub struct OtherSubscriber {
    pub relationship: SubscriberRelationship,
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: NaiveDate,
    pub sex: SubscriberSex,
    pub address: Option<Address>,
}

pub struct NewInsurance {
    pub patient: PatientId,
    pub payer_name: String,
    /// Checked with [`payer_code`].
    pub payer_id: String,
    pub member_id: Option<String>,
    pub group_number: Option<String>,
    pub priority: CoveragePriority,
    /// SBR09 of its claims; `CI` (commercial) when not given.
    pub claim_filing_code: Option<ClaimFilingCode>,
    /// `None`: the patient is the subscriber.
    pub subscriber: Option<OtherSubscriber>,
    pub effective_from: NaiveDate,
    pub effective_to: Option<NaiveDate>,
}

fn check_dates(from: NaiveDate, to: Option<NaiveDate>) -> ServiceResult<()> {
    if to.is_some_and(|to| to < from) {
        return Err(ServiceError::invalid(
            "effectiveTo",
            "must not be before effectiveFrom",
        ));
    }
    Ok(())
}

fn set_subscriber(
    model: &mut patient_insurance::ActiveModel,
    subscriber: Option<OtherSubscriber>,
) -> ServiceResult<()> {
    match subscriber {
        None => {
            model.relationship = Set(SubscriberRelationship::SelfInsured);
            model.subscriber_first_name = Set(None);
            model.subscriber_last_name = Set(None);
            model.subscriber_date_of_birth = Set(None);
            model.subscriber_sex = Set(None);
            model.subscriber_address_line1 = Set(None);
            model.subscriber_address_line2 = Set(None);
            model.subscriber_city = Set(None);
            model.subscriber_state = Set(None);
            model.subscriber_postal_code = Set(None);
        }
        Some(s) => {
            if s.relationship == SubscriberRelationship::SelfInsured {
                return Err(ServiceError::invalid(
                    "subscriber.relationship",
                    "SELF means the patient is the subscriber: leave subscriber out",
                ));
            }
            model.relationship = Set(s.relationship);
            model.subscriber_first_name = Set(Some(required_text(
                "subscriber.firstName",
                &s.first_name,
                35,
            )?));
            model.subscriber_last_name = Set(Some(required_text(
                "subscriber.lastName",
                &s.last_name,
                60,
            )?));
            let earliest = NaiveDate::from_ymd_opt(1880, 1, 1).unwrap_or_default();
            if s.date_of_birth < earliest || s.date_of_birth > chrono::Utc::now().date_naive() {
                return Err(ServiceError::invalid(
                    "subscriber.dateOfBirth",
                    "not in the future, not before 1880-01-01",
                ));
            }
            model.subscriber_date_of_birth = Set(Some(s.date_of_birth));
            model.subscriber_sex = Set(Some(s.sex));
            let a = s.address;
            model.subscriber_address_line1 = Set(a.as_ref().map(|a| a.line1.clone()));
            model.subscriber_address_line2 = Set(a.as_ref().and_then(|a| a.line2.clone()));
            model.subscriber_city = Set(a.as_ref().map(|a| a.city.clone()));
            model.subscriber_state = Set(a.as_ref().map(|a| a.state.clone().into_string()));
            model.subscriber_postal_code = Set(a.map(|a| a.postal_code.into_string()));
        }
    }
    Ok(())
}

/// Records a coverage (staff).
#[tracing::instrument(skip_all, name = "insurance.add", level = "debug", fields(patient = %input.patient))]
pub async fn add(
    tx: &Tx,
    actor: &Actor,
    keyring: &Keyring,
    input: NewInsurance,
) -> ServiceResult<patient_insurance::Model> {
    actor.require_staff()?;
    check_dates(input.effective_from, input.effective_to)?;
    let patient = crate::patients::get(tx, input.patient)
        .await?
        .ok_or_else(|| ServiceError::invalid("patientId", "no such patient"))?;
    let id = new_id();
    let member_id = match input.member_id {
        None => None,
        Some(m) => {
            let m = payer_code("memberId", &m, (1, 80), true)?;
            Some(
                keyring
                    .seal(tx, patient.organization_id, Field::MemberId, id, &m)
                    .await?,
            )
        }
    };
    let mut model = patient_insurance::ActiveModel {
        id: Set(id),
        organization_id: Set(patient.organization_id),
        patient_id: Set(patient.id),
        payer_name: Set(required_text("payerName", &input.payer_name, 60)?),
        payer_id: Set(payer_code("payerId", &input.payer_id, PAYER_ID, false)?),
        member_id: Set(None),
        member_id_enc: Set(member_id),
        group_number: Set(input
            .group_number
            .map(|g| payer_code("groupNumber", &g, (1, 50), true))
            .transpose()?),
        priority: Set(input.priority),
        claim_filing_code: Set(input
            .claim_filing_code
            .map(ClaimFilingCode::into_string)
            .unwrap_or_else(|| "CI".to_owned())),
        effective_from: Set(input.effective_from),
        effective_to: Set(input.effective_to),
        is_active: Set(true),
        ..Default::default()
    };
    set_subscriber(&mut model, input.subscriber)?;
    model.insert(tx).await.or_db("recording a coverage")
}

/// Changes to a coverage; `None` leaves a field as it is.
#[derive(Default)]
pub struct InsuranceChanges {
    pub member_id: Option<String>,
    pub group_number: Option<String>,
    pub priority: Option<CoveragePriority>,
    pub claim_filing_code: Option<ClaimFilingCode>,
    /// `Some(None)`: the patient is now the subscriber.
    pub subscriber: Option<Option<OtherSubscriber>>,
    pub effective_to: Option<NaiveDate>,
    /// `false` ends the coverage: it is kept, but no longer billed.
    pub is_active: Option<bool>,
}

/// Changes a coverage (staff).
#[tracing::instrument(skip_all, name = "insurance.update", level = "debug", fields(insurance = %id))]
pub async fn update(
    tx: &Tx,
    actor: &Actor,
    keyring: &Keyring,
    id: Uuid,
    changes: InsuranceChanges,
) -> ServiceResult<patient_insurance::Model> {
    actor.require_staff()?;
    let current = get(tx, id).await?.ok_or(ServiceError::NotFound)?;
    if let Some(to) = changes.effective_to {
        check_dates(current.effective_from, Some(to))?;
    }
    let (org, row) = (current.organization_id, current.id);
    let mut model = current.into_active_model();
    if let Some(m) = changes.member_id {
        let m = payer_code("memberId", &m, (1, 80), true)?;
        model.member_id = Set(None);
        model.member_id_enc = Set(Some(keyring.seal(tx, org, Field::MemberId, row, &m).await?));
    }
    if let Some(g) = changes.group_number {
        model.group_number = Set(Some(payer_code("groupNumber", &g, (1, 50), true)?));
    }
    if let Some(p) = changes.priority {
        model.priority = Set(p);
    }
    if let Some(c) = changes.claim_filing_code {
        model.claim_filing_code = Set(c.into_string());
    }
    if let Some(s) = changes.subscriber {
        set_subscriber(&mut model, s)?;
    }
    if let Some(to) = changes.effective_to {
        model.effective_to = Set(Some(to));
    }
    if let Some(active) = changes.is_active {
        model.is_active = Set(active);
    }
    model.update(tx).await.or_db("updating a coverage")
}

/// A coverage's member id as the caller may see it: in full to those who
/// bill or pay (ADMIN, STAFF, and a patient or proxy allowed to see the
/// patient's billing) — each such read an audit event naming the field —
/// and masked (`********7301`) to providers. `None` while unknown.
pub async fn member_id_shown(
    tx: &Tx,
    actor: &Actor,
    keyring: &Keyring,
    coverage: &patient_insurance::Model,
) -> ServiceResult<Option<String>> {
    let Some(value) = keyring
        .reveal(
            tx,
            coverage.organization_id,
            Field::MemberId,
            coverage.id,
            coverage.member_id_enc.as_deref(),
            coverage.member_id.as_deref(),
        )
        .await?
    else {
        return Ok(None);
    };
    let full = match actor.role {
        Role::Admin | Role::Staff => true,
        Role::Portal => actor
            .may(Purpose::Billing, coverage.patient_id.into())
            .is_ok(),
        Role::Provider => false,
    };
    if !full {
        return Ok(Some(crate::phi::mask_tail(&value)));
    }
    crate::phi::audit_unmasked(tx, "patient_insurances", [coverage.id], "memberId").await?;
    Ok(Some(value))
}

pub async fn get(tx: &Tx, id: Uuid) -> ServiceResult<Option<patient_insurance::Model>> {
    patient_insurance::Entity::find_by_id(id)
        .filter(patient_insurance::Column::DeletedAt.is_null())
        .one(tx)
        .await
        .or_db("reading a coverage")
}

/// The coverages of several patients, active first by priority: one
/// statement. A portal user sees those of patients whose billing they may
/// view (the row policy; `may` refuses the others first).
#[tracing::instrument(skip_all, name = "insurance.of_patients", level = "debug", fields(patients = patients.len()))]
pub async fn of_patients(
    tx: &Tx,
    actor: &Actor,
    patients: &[PatientId],
) -> ServiceResult<Vec<patient_insurance::Model>> {
    let visible: Vec<Uuid> = patients
        .iter()
        .filter(|p| actor.may(Purpose::Billing, **p).is_ok())
        .map(|p| p.into_uuid())
        .collect();
    if visible.is_empty() {
        return Ok(Vec::new());
    }
    patient_insurance::Entity::find()
        .filter(patient_insurance::Column::PatientId.is_in(visible))
        .filter(patient_insurance::Column::DeletedAt.is_null())
        .order_by_desc(patient_insurance::Column::IsActive)
        .order_by_asc(patient_insurance::Column::Priority)
        .order_by_asc(patient_insurance::Column::EffectiveFrom)
        .all(tx)
        .await
        .or_db("loading coverages")
}
