//! Claims: signed sessions of one patient, coverage and rendering provider
//! billed to the coverage's payer, and their rendering as an X12 837P.
//!
//! Lifecycle: DRAFT → SUBMITTED → ACCEPTED or REJECTED; ACCEPTED → PAID or
//! DENIED (`app.check_claim_transition` holds it; every change is audited
//! by the table's trigger). A session is billed at most once: a unique
//! index on the lines of live claims (a rejection releases them).

use std::collections::HashMap;

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use entity::claim::{self, ClaimStatus};
use entity::claim_line;
use entity::patient::LegalSex;
use entity::patient_insurance::{CoveragePriority, SubscriberRelationship, SubscriberSex};
use entity::therapy_session::SessionStatus;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, Set, Statement, Value,
};
use uuid::Uuid;

use crate::Tx;
use crate::actor::{Actor, Role};
use crate::domain::{PatientId, new_id, required_text};
use crate::error::{ConflictReason, DbResultExt, ServiceError, ServiceResult, constraint_name};
use crate::pagination::{Page, PageRequest, TimeKey};
use crate::phi::{Field, Keyring};
use crate::x12;

/// The most sessions (service lines) on one claim, as an 837P allows.
pub const MAX_LINES: usize = 50;
/// The most diagnoses on one claim, as an 837P allows.
const MAX_DIAGNOSES: usize = 12;
/// The most diagnoses one service line points at.
const MAX_POINTERS: usize = 4;

pub struct NewClaim {
    pub insurance: Uuid,
    pub sessions: Vec<Uuid>,
}

/// Bills signed sessions to a coverage (ADMIN, STAFF): one line per
/// session (its code, modifiers, place, units and day in the clinic's time
/// zone), charged from the fee schedule in force on that day; the
/// patient's open diagnoses (primary first, at most 12) on the claim, each
/// line pointing at the first four. The sessions must be signed, of the
/// coverage's patient and of one rendering provider; the coverage active. A
/// session already on a live claim is `SESSION_ALREADY_BILLED`.
#[tracing::instrument(skip_all, name = "claims.create", level = "debug", fields(sessions = input.sessions.len()))]
pub async fn create(tx: &Tx, actor: &Actor, input: NewClaim) -> ServiceResult<claim::Model> {
    actor.require(&[Role::Admin, Role::Staff])?;
    actor.require_whole_clinic()?;
    let mut ids = input.sessions.clone();
    ids.sort();
    ids.dedup();
    if ids.is_empty() || ids.len() > MAX_LINES || ids.len() != input.sessions.len() {
        return Err(ServiceError::invalid(
            "sessionIds",
            format!("1 to {MAX_LINES} distinct sessions"),
        ));
    }
    let coverage = crate::insurance::get(tx, input.insurance)
        .await?
        .ok_or_else(|| ServiceError::invalid("insuranceId", "no such coverage"))?;
    if !coverage.is_active {
        return Err(ServiceError::invalid(
            "insuranceId",
            "the coverage has ended",
        ));
    }
    let mut sessions = crate::sessions::by_ids(tx, &ids).await?;
    if sessions.len() != ids.len() {
        return Err(ServiceError::invalid("sessionIds", "no such session"));
    }
    // Lines in the order the client gave the sessions.
    sessions.sort_by_key(|s| input.sessions.iter().position(|id| *id == s.id));
    let provider = sessions[0].provider_id;
    for s in &sessions {
        if s.patient_id != coverage.patient_id {
            return Err(ServiceError::invalid(
                "sessionIds",
                "every session must be of the coverage's patient",
            ));
        }
        if s.provider_id != provider {
            return Err(ServiceError::invalid(
                "sessionIds",
                "a claim bills the sessions of one rendering provider",
            ));
        }
        if s.status != SessionStatus::Signed {
            return Err(ServiceError::invalid(
                "sessionIds",
                format!("session {} is not signed", s.id),
            ));
        }
        if s.units.unwrap_or(0) <= 0 {
            return Err(ServiceError::invalid(
                "sessionIds",
                format!("session {} bills no units (under 8 minutes of care)", s.id),
            ));
        }
    }
    let diagnoses: Vec<String> =
        crate::diagnoses::of_patients(tx, actor, &[PatientId::new(coverage.patient_id)])
            .await?
            .into_iter()
            .take(MAX_DIAGNOSES)
            .map(|d| d.code)
            .collect();
    if diagnoses.is_empty() {
        return Err(ServiceError::invalid(
            "diagnoses",
            "the patient has no open diagnosis to bill",
        ));
    }
    let tz = crate::appointments::clinic_timezone(tx).await?;
    let days: Vec<(String, NaiveDate)> = sessions
        .iter()
        .map(|s| {
            (
                s.service_code.clone(),
                s.started_at.with_timezone(&tz).date_naive(),
            )
        })
        .collect();
    for (_, day) in &days {
        if *day < coverage.effective_from || coverage.effective_to.is_some_and(|to| *day > to) {
            return Err(ServiceError::invalid(
                "insuranceId",
                format!("the coverage does not cover {day}"),
            ));
        }
    }
    let fees = crate::clinic::unit_charges(tx, &days).await?;
    let mut charges = Vec::with_capacity(sessions.len());
    for ((code, day), fee) in days.iter().zip(&fees) {
        let fee = fee.ok_or_else(|| {
            ServiceError::invalid(
                "sessionIds",
                format!("the fee schedule has no fee for {code} on {day}"),
            )
        })?;
        charges.push(fee);
    }
    let pointers: Vec<i16> = (1..=diagnoses.len().min(MAX_POINTERS) as i16).collect();
    let lines: Vec<(i64, i32)> = sessions
        .iter()
        .zip(&charges)
        .map(|(s, fee)| {
            let units = s.units.unwrap_or(0);
            (fee * i64::from(units), units)
        })
        .collect();
    let total: i64 = lines.iter().map(|(c, _)| c).sum();
    let claim = claim::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(coverage.organization_id),
        patient_id: Set(coverage.patient_id),
        insurance_id: Set(coverage.id),
        provider_id: Set(provider),
        control_number: Set(next_number(tx).await?),
        status: Set(ClaimStatus::Draft),
        diagnosis_codes: Set(diagnoses),
        total_charge_cents: Set(total),
        created_by: Set(Some(actor.user.into_uuid())),
        ..Default::default()
    }
    .insert(tx)
    .await
    .or_db("creating a claim")?;
    let models = sessions.iter().zip(&lines).zip(&days).enumerate().map(
        |(n, ((s, (charge, units)), (_, day)))| claim_line::ActiveModel {
            id: Set(new_id()),
            organization_id: Set(claim.organization_id),
            claim_id: Set(claim.id),
            patient_id: Set(claim.patient_id),
            session_id: Set(s.id),
            line_number: Set(n as i32 + 1),
            service_code: Set(s.service_code.clone()),
            modifiers: Set(s.modifiers.clone()),
            place_of_service: Set(s.place_of_service.clone()),
            service_date: Set(*day),
            units: Set(*units),
            charge_cents: Set(*charge),
            diagnosis_pointers: Set(pointers.clone()),
            ..Default::default()
        },
    );
    claim_line::Entity::insert_many(models)
        .exec_without_returning(tx)
        .await
        .or_db("billing the sessions")?;
    Ok(claim)
}

/// Submits a draft claim (ADMIN, STAFF): only a claim that renders as a
/// valid 837P is submitted; otherwise BAD_USER_INPUT names the missing or
/// malformed field (e.g. `insurance.memberId`) and nothing changes. The
/// 837P is kept with the claim as submitted. A claim is submitted once
/// (`CLAIM_ALREADY_SUBMITTED`).
#[tracing::instrument(skip_all, name = "claims.submit", level = "debug", fields(claim = %id))]
pub async fn submit(
    tx: &Tx,
    actor: &Actor,
    keyring: &Keyring,
    id: Uuid,
) -> ServiceResult<claim::Model> {
    actor.require(&[Role::Admin, Role::Staff])?;
    actor.require_whole_clinic()?;
    let current = lock(tx, id).await?;
    if current.status != ClaimStatus::Draft {
        return Err(ServiceError::Conflict(
            ConflictReason::ClaimAlreadySubmitted,
        ));
    }
    let x12 = render_fresh(tx, actor, keyring, vec![current.clone()], true).await?;
    let sealed = keyring
        .seal(
            tx,
            current.organization_id,
            Field::ClaimX12,
            current.id,
            &x12,
        )
        .await?;
    let mut model = current.into_active_model();
    model.status = Set(ClaimStatus::Submitted);
    model.submitted_at = Set(Some(Utc::now().fixed_offset()));
    model.submitted_x12 = Set(None);
    model.submitted_x12_enc = Set(Some(sealed));
    model.update(tx).await.or_db("submitting a claim")
}

/// A payer's answer to a claim.
pub struct ClaimResponse {
    pub status: ClaimStatus,
    pub payer_claim_number: Option<String>,
    /// Required when, and only when, `status` is PAID; at most the charge.
    pub paid_cents: Option<i64>,
    pub note: Option<String>,
}

fn status_name(s: ClaimStatus) -> &'static str {
    match s {
        ClaimStatus::Draft => "DRAFT",
        ClaimStatus::Submitted => "SUBMITTED",
        ClaimStatus::Accepted => "ACCEPTED",
        ClaimStatus::Rejected => "REJECTED",
        ClaimStatus::Paid => "PAID",
        ClaimStatus::Denied => "DENIED",
    }
}

/// Records a payer's response (ADMIN, STAFF): SUBMITTED → ACCEPTED or
/// REJECTED (a rejection releases the sessions to be billed again),
/// ACCEPTED → PAID (with the amount paid, never negative nor above the
/// charge) or DENIED. Any other step is BAD_USER_INPUT on `status`.
#[tracing::instrument(skip_all, name = "claims.record_response", level = "debug", fields(claim = %id))]
pub async fn record_response(
    tx: &Tx,
    actor: &Actor,
    id: Uuid,
    response: ClaimResponse,
) -> ServiceResult<claim::Model> {
    actor.require(&[Role::Admin, Role::Staff])?;
    actor.require_whole_clinic()?;
    let current = lock(tx, id).await?;
    let allowed = matches!(
        (current.status, response.status),
        (
            ClaimStatus::Submitted,
            ClaimStatus::Accepted | ClaimStatus::Rejected
        ) | (
            ClaimStatus::Accepted,
            ClaimStatus::Paid | ClaimStatus::Denied
        )
    );
    if !allowed {
        return Err(ServiceError::invalid(
            "status",
            format!(
                "a {} claim cannot become {} (SUBMITTED → ACCEPTED or REJECTED, ACCEPTED → PAID or DENIED)",
                status_name(current.status),
                status_name(response.status)
            ),
        ));
    }
    match (response.status, response.paid_cents) {
        (ClaimStatus::Paid, None) => {
            return Err(ServiceError::invalid(
                "paidCents",
                "a PAID response says how much",
            ));
        }
        (ClaimStatus::Paid, Some(p)) if p < 0 || p > current.total_charge_cents => {
            return Err(ServiceError::invalid(
                "paidCents",
                "between 0 and the claim's total charge",
            ));
        }
        (ClaimStatus::Paid, _) => {}
        (_, Some(_)) => {
            return Err(ServiceError::invalid(
                "paidCents",
                "only a PAID response has an amount",
            ));
        }
        (_, None) => {}
    }
    let number = match response.payer_claim_number.as_deref().map(str::trim) {
        None | Some("") => current.payer_claim_number.clone(),
        Some(n) => Some(required_text("payerClaimNumber", n, 50)?),
    };
    let note = match response.note.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) => Some(required_text("note", n, 1000)?),
    };
    let mut model = current.into_active_model();
    model.status = Set(response.status);
    model.paid_cents = Set(response.paid_cents);
    model.payer_claim_number = Set(number);
    model.response_note = Set(note);
    model.responded_at = Set(Some(Utc::now().fixed_offset()));
    model
        .update(tx)
        .await
        .map_err(|err| match constraint_name(&err).as_deref() {
            Some("claims_paid_check") => {
                ServiceError::invalid("paidCents", "between 0 and the claim's total charge")
            }
            _ => ServiceError::from_db(err, "recording a claim response"),
        })
}

async fn lock(tx: &Tx, id: Uuid) -> ServiceResult<claim::Model> {
    claim::Entity::find_by_id(id)
        .lock_exclusive()
        .one(tx)
        .await
        .or_db("locking a claim")?
        .ok_or(ServiceError::NotFound)
}

#[derive(Debug, Clone, Default)]
pub struct ClaimFilter {
    pub patient: Option<PatientId>,
    pub status: Option<ClaimStatus>,
}

fn filtered(filter: &ClaimFilter) -> sea_orm::Select<claim::Entity> {
    let mut q = claim::Entity::find();
    if let Some(p) = filter.patient {
        q = q.filter(claim::Column::PatientId.eq(p.into_uuid()));
    }
    if let Some(s) = filter.status {
        q = q.filter(claim::Column::Status.eq(s));
    }
    q
}

/// Claims by creation time, one page. Staff see the clinic's; a portal
/// user those of patients whose billing they may view (the row policy).
#[tracing::instrument(skip_all, name = "claims.list", level = "debug")]
pub async fn list(
    tx: &Tx,
    filter: &ClaimFilter,
    page: &PageRequest<TimeKey>,
) -> ServiceResult<Page<claim::Model>> {
    let mut q = filtered(filter);
    if let Some(key) = &page.after {
        q = q.filter(Expr::cust_with_values(
            "(claims.created_at, claims.id) > ($1, $2)",
            [Value::from(key.at), Value::from(key.id)],
        ));
    }
    let rows = q
        .order_by_asc(claim::Column::CreatedAt)
        .order_by_asc(claim::Column::Id)
        .limit(page.first + 1)
        .all(tx)
        .await
        .or_db("listing claims")?;
    Ok(Page::from_overfetch(rows, page.first))
}

#[tracing::instrument(skip_all, name = "claims.count", level = "debug")]
pub async fn count(tx: &Tx, filter: &ClaimFilter) -> ServiceResult<u64> {
    use sea_orm::PaginatorTrait;
    filtered(filter).count(tx).await.or_db("counting claims")
}

pub fn key_of(c: &claim::Model) -> TimeKey {
    TimeKey {
        at: c.created_at,
        id: c.id,
    }
}

#[tracing::instrument(skip_all, name = "claims.by_ids", level = "debug", fields(ids = ids.len()))]
pub async fn by_ids(tx: &Tx, ids: &[Uuid]) -> ServiceResult<Vec<claim::Model>> {
    claim::Entity::find()
        .filter(claim::Column::Id.is_in(ids.iter().copied()))
        .all(tx)
        .await
        .or_db("loading claims")
}

/// The lines of several claims, in line order: one statement.
#[tracing::instrument(skip_all, name = "claims.lines_of", level = "debug", fields(claims = claims.len()))]
pub async fn lines_of(tx: &Tx, claims: &[Uuid]) -> ServiceResult<Vec<claim_line::Model>> {
    claim_line::Entity::find()
        .filter(claim_line::Column::ClaimId.is_in(claims.iter().copied()))
        .order_by_asc(claim_line::Column::ClaimId)
        .order_by_asc(claim_line::Column::LineNumber)
        .all(tx)
        .await
        .or_db("loading claim lines")
}

/// Claims as one 837P interchange (ADMIN, STAFF). A submitted claim (and
/// every later status) answers the 837P kept when it was submitted, byte
/// for byte. Drafts are rendered from the current data as a preview
/// (usage indicator T, test): one draft under its own number, or a batch
/// of drafts to one payer under a fresh interchange number. A draft that
/// would not be a valid 837P is refused with BAD_USER_INPUT naming the
/// field to fix.
#[tracing::instrument(skip_all, name = "claims.render", level = "debug", fields(claims = ids.len()))]
pub async fn render(
    tx: &Tx,
    actor: &Actor,
    keyring: &Keyring,
    ids: &[Uuid],
) -> ServiceResult<String> {
    actor.require(&[Role::Admin, Role::Staff])?;
    actor.require_whole_clinic()?;
    let mut wanted = ids.to_vec();
    wanted.sort();
    wanted.dedup();
    if wanted.is_empty() {
        return Err(ServiceError::invalid("claims", "at least one claim"));
    }
    let claims = by_ids(tx, &wanted).await?;
    if claims.len() != wanted.len() {
        return Err(ServiceError::NotFound);
    }
    let text = match claims.as_slice() {
        [one] if one.status != ClaimStatus::Draft => keyring
            .reveal(
                tx,
                one.organization_id,
                Field::ClaimX12,
                one.id,
                one.submitted_x12_enc.as_deref(),
                one.submitted_x12.as_deref(),
            )
            .await?
            .ok_or_else(|| anyhow::anyhow!("a submitted claim without its 837P"))?,
        _ if claims.iter().any(|c| c.status != ClaimStatus::Draft) => {
            return Err(ServiceError::invalid(
                "claims",
                "a batch renders drafts (a preview); a submitted claim's 837P is the one kept \
                 at submission: ask for it alone",
            ));
        }
        _ => render_fresh(tx, actor, keyring, claims, false).await?,
    };
    // The 837P carries the member id and the tax id in full.
    crate::phi::audit_unmasked(tx, "claims", wanted.iter().copied(), "x12").await?;
    Ok(text)
}

/// Renders claims from the current data: production (P) for a submission,
/// else a test (T) preview.
async fn render_fresh(
    tx: &Tx,
    actor: &Actor,
    keyring: &Keyring,
    mut claims: Vec<claim::Model>,
    production: bool,
) -> ServiceResult<String> {
    claims.sort_by_key(|c| c.control_number);
    let clinic = entity::organization::Entity::find_by_id(actor.tenant.into_uuid())
        .one(tx)
        .await
        .or_db("reading the clinic")?
        .ok_or(ServiceError::NotFound)?;
    let claim_ids: Vec<Uuid> = claims.iter().map(|c| c.id).collect();
    let lines = lines_of(tx, &claim_ids).await?;
    let coverages = entity::patient_insurance::Entity::find()
        .filter(entity::patient_insurance::Column::Id.is_in(claims.iter().map(|c| c.insurance_id)))
        .all(tx)
        .await
        .or_db("loading coverages")?;
    let patients = crate::patients::by_ids(
        tx,
        &claims
            .iter()
            .map(|c| PatientId::new(c.patient_id))
            .collect::<Vec<_>>(),
    )
    .await?;
    let providers = crate::providers::by_ids(
        tx,
        &claims
            .iter()
            .map(|c| c.provider_id.into())
            .collect::<Vec<_>>(),
    )
    .await?;
    let authorizations = authorization_numbers(tx, &claim_ids).await?;
    let tax_id = keyring
        .reveal(
            tx,
            clinic.id,
            Field::TaxId,
            clinic.id,
            clinic.tax_id_enc.as_deref(),
            clinic.tax_id.as_deref(),
        )
        .await?
        .unwrap_or_default();
    let mut member_ids = HashMap::with_capacity(coverages.len());
    for c in &coverages {
        let m = keyring
            .reveal(
                tx,
                c.organization_id,
                Field::MemberId,
                c.id,
                c.member_id_enc.as_deref(),
                c.member_id.as_deref(),
            )
            .await?;
        member_ids.insert(c.id, m.unwrap_or_default());
    }

    let billing = x12::BillingProvider {
        name: clinic.name.clone(),
        npi: clinic.group_npi.clone().unwrap_or_default(),
        tax_id: tax_id.clone(),
        address: x12::Address {
            line1: clinic.billing_address_line1.clone().unwrap_or_default(),
            line2: clinic.billing_address_line2.clone(),
            city: clinic.billing_city.clone().unwrap_or_default(),
            state: clinic.billing_state.clone().unwrap_or_default(),
            postal_code: clinic.billing_postal_code.clone().unwrap_or_default(),
        },
    };
    let mut documents = Vec::with_capacity(claims.len());
    let mut receiver: Option<x12::Receiver> = None;
    for c in &claims {
        let coverage = coverages
            .iter()
            .find(|i| i.id == c.insurance_id)
            .context("a claim's coverage")?;
        let patient = patients
            .iter()
            .find(|p| p.id == c.patient_id)
            .context("a claim's patient")?;
        let provider = providers.iter().find(|p| p.id == c.provider_id);
        let this_receiver = x12::Receiver {
            name: coverage.payer_name.clone(),
            id: coverage.payer_id.clone(),
        };
        match &receiver {
            Some(r) if r.id != this_receiver.id => {
                return Err(ServiceError::invalid(
                    "claims",
                    "a batch holds claims to one payer",
                ));
            }
            Some(_) => {}
            None => receiver = Some(this_receiver),
        }
        let patient_address = patient.address_line1.as_ref().map(|line1| x12::Address {
            line1: line1.clone(),
            line2: patient.address_line2.clone(),
            city: patient.city.clone().unwrap_or_default(),
            state: patient.state.clone().unwrap_or_default(),
            postal_code: patient.postal_code.clone().unwrap_or_default(),
        });
        let patient_person = x12::Person {
            first_name: patient.first_name.clone(),
            last_name: patient.last_name.clone(),
            date_of_birth: patient.date_of_birth,
            sex: match patient.legal_sex {
                LegalSex::Female => x12::Sex::Female,
                LegalSex::Male => x12::Sex::Male,
                LegalSex::Other | LegalSex::Unknown => x12::Sex::Unknown,
            },
            address: patient_address,
        };
        let (relationship, subscriber, dependent) = match coverage.relationship {
            SubscriberRelationship::SelfInsured => {
                (x12::Relationship::SelfInsured, patient_person, None)
            }
            other => {
                let person = x12::Person {
                    first_name: coverage.subscriber_first_name.clone().unwrap_or_default(),
                    last_name: coverage.subscriber_last_name.clone().unwrap_or_default(),
                    date_of_birth: coverage
                        .subscriber_date_of_birth
                        .context("a subscriber's birth date")?,
                    sex: match coverage.subscriber_sex {
                        Some(SubscriberSex::Female) => x12::Sex::Female,
                        Some(SubscriberSex::Male) => x12::Sex::Male,
                        _ => x12::Sex::Unknown,
                    },
                    address: coverage
                        .subscriber_address_line1
                        .as_ref()
                        .map(|line1| x12::Address {
                            line1: line1.clone(),
                            line2: coverage.subscriber_address_line2.clone(),
                            city: coverage.subscriber_city.clone().unwrap_or_default(),
                            state: coverage.subscriber_state.clone().unwrap_or_default(),
                            postal_code: coverage
                                .subscriber_postal_code
                                .clone()
                                .unwrap_or_default(),
                        }),
                };
                let relationship = match other {
                    SubscriberRelationship::Spouse => x12::Relationship::Spouse,
                    SubscriberRelationship::Child => x12::Relationship::Child,
                    _ => x12::Relationship::Other,
                };
                (relationship, person, Some(patient_person))
            }
        };
        let claim_lines: Vec<x12::ServiceLine> = lines
            .iter()
            .filter(|l| l.claim_id == c.id)
            .map(|l| x12::ServiceLine {
                service_code: l.service_code.clone(),
                modifiers: l.modifiers.clone(),
                charge_cents: l.charge_cents,
                units: l.units,
                service_date: l.service_date,
                diagnosis_pointers: l
                    .diagnosis_pointers
                    .iter()
                    .map(|p| u8::try_from(*p).unwrap_or(0))
                    .collect(),
                place_of_service: l.place_of_service.clone(),
            })
            .collect();
        let rendering = provider.map(|p| {
            let (first, last) = split_name(&p.name);
            x12::RenderingProvider {
                first_name: first,
                last_name: last,
                npi: p.npi.clone(),
            }
        });
        documents.push(x12::ClaimDocument {
            patient_control_number: format!("CG{:09}", c.control_number),
            billing: billing.clone(),
            payer: x12::Payer {
                name: coverage.payer_name.clone(),
                payer_id: coverage.payer_id.clone(),
                claim_filing_code: Some(coverage.claim_filing_code.clone()),
            },
            subscriber: x12::Subscriber {
                member_id: member_ids.get(&coverage.id).cloned().unwrap_or_default(),
                group_number: coverage.group_number.clone(),
                priority: match coverage.priority {
                    CoveragePriority::Primary => x12::Priority::Primary,
                    CoveragePriority::Secondary => x12::Priority::Secondary,
                    CoveragePriority::Tertiary => x12::Priority::Tertiary,
                },
                relationship,
                person: subscriber,
            },
            patient: dependent,
            rendering,
            place_of_service: claim_lines
                .first()
                .map(|l| l.place_of_service.clone())
                .unwrap_or_default(),
            diagnoses: c.diagnosis_codes.clone(),
            prior_authorization: authorizations.get(&c.id).cloned(),
            lines: claim_lines,
        });
    }
    let control_number = match claims.as_slice() {
        [only] => only.control_number,
        _ => next_number(tx).await?,
    };
    let control_number = u32::try_from(control_number).context("a control number")?;
    let receiver = receiver.context("a receiver")?;
    // The interchange's date and time are the clinic's (service dates are
    // clinic days, and none may be after the file's date).
    let tz: chrono_tz::Tz = clinic
        .timezone
        .parse()
        .map_err(|_| anyhow::anyhow!("clinic time zone {} is not IANA", clinic.timezone))?;
    let interchange = x12::Interchange {
        control_number,
        created_at: Utc::now().with_timezone(&tz).naive_local(),
        sender_id: tax_id.clone(),
        receiver_id: receiver.id.clone(),
        production,
        submitter: x12::Submitter {
            name: clinic.name.clone(),
            id: tax_id,
            contact_name: format!("{} billing", clinic.name),
            phone: clinic.billing_phone.clone().unwrap_or_default(),
        },
        receiver,
        claims: documents,
    };
    x12::render(&interchange).map_err(|e| ServiceError::invalid(e.field, e.message))
}

/// A provider's one-field name as an 837P's first and last name: the last
/// word is the last name, a leading "Dr." is dropped ("Dr. Ana María
/// Ruiz" → "Ana María", "Ruiz").
fn split_name(name: &str) -> (String, String) {
    let name = name.trim();
    let name = ["Dr. ", "Dr "]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name)
        .trim();
    match name.rsplit_once(char::is_whitespace) {
        Some((first, last)) => (first.trim().to_owned(), last.to_owned()),
        None => (String::new(), name.to_owned()),
    }
}

/// The prior authorization number of each claim whose sessions used one
/// (the first line's).
async fn authorization_numbers(tx: &Tx, claims: &[Uuid]) -> ServiceResult<HashMap<Uuid, String>> {
    let rows = tx
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT DISTINCT ON (l.claim_id) l.claim_id, a.authorization_number \
             FROM claim_lines l \
             JOIN therapy_sessions s ON s.organization_id = l.organization_id AND s.id = l.session_id \
             JOIN payer_authorizations a ON a.organization_id = s.organization_id AND a.id = s.authorization_id \
             WHERE l.claim_id = ANY ($1::uuid[]) ORDER BY l.claim_id, l.line_number",
            [crate::sql::uuid_array(claims.iter().copied())],
        ))
        .await
        .or_db("reading authorization numbers")?;
    let mut out = HashMap::new();
    for row in rows {
        let claim: Uuid = row.try_get("", "claim_id").context("claim_id")?;
        let number: String = row
            .try_get("", "authorization_number")
            .context("authorization_number")?;
        out.insert(claim, number);
    }
    Ok(out)
}

/// The clinic's next claim or interchange number (1, 2, …): its counter
/// row, locked until the transaction ends, so numbers never repeat and a
/// refused claim takes none.
async fn next_number(tx: &Tx) -> ServiceResult<i32> {
    let row = tx
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "INSERT INTO claim_counters AS c (organization_id, last_number) \
             VALUES (app.current_tenant_id(), 1) \
             ON CONFLICT (organization_id) DO UPDATE SET last_number = c.last_number + 1 \
             RETURNING last_number",
        ))
        .await
        .or_db("numbering a claim")?
        .context("a claim number")?;
    Ok(row
        .try_get::<i32>("", "last_number")
        .context("last_number")?)
}

#[cfg(test)]
mod tests {
    use super::split_name;

    #[test]
    fn a_providers_name_splits_into_first_and_last() {
        assert_eq!(
            split_name("Dr. Amara Okafor"),
            ("Amara".into(), "Okafor".into())
        );
        assert_eq!(
            split_name("Ana María Ruiz"),
            ("Ana María".into(), "Ruiz".into())
        );
        assert_eq!(split_name("Madonna"), (String::new(), "Madonna".into()));
    }
}
