//! Patient charts: one clinic's own record of a person.

use chrono::NaiveDate;
use entity::contact_method::{self, ContactMethodType};
use entity::patient::{self, LegalSex, PatientStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Value,
};

use crate::Tx;
use crate::actor::Actor;
use crate::domain::{ContactValue, Mrn, PatientId, ProviderId, new_id, required_text};
use crate::error::{ConflictReason, DbResultExt, ServiceError, ServiceResult};
use crate::pagination::{NameKey, Page, PageRequest, search_terms};

#[derive(Debug, Clone, Default)]
pub struct PatientFilter {
    /// Words matched against "first last" (each a substring): "jon smi"
    /// finds Jonathan Smith. Served by a trigram index.
    pub search: Option<String>,
    pub mrn: Option<Mrn>,
    /// Only patients with this provider on their active care team.
    pub provider: Option<ProviderId>,
    pub status: Option<PatientStatus>,
}

fn filtered(filter: &PatientFilter) -> sea_orm::Select<patient::Entity> {
    let mut q = patient::Entity::find().filter(patient::Column::DeletedAt.is_null());
    if let Some(search) = &filter.search {
        for term in search_terms(search) {
            q = q.filter(Expr::cust_with_values("search_name LIKE $1", [term]));
        }
    }
    if let Some(mrn) = &filter.mrn {
        q = q.filter(patient::Column::MedicalRecordNumber.eq(mrn.as_ref()));
    }
    if let Some(provider) = filter.provider {
        q = q.filter(Expr::cust_with_values(
            "patients.id IN (SELECT c.patient_id FROM care_team_assignments c \
             WHERE c.provider_id = $1 AND c.removed_at IS NULL)",
            [provider.into_uuid()],
        ));
    }
    if let Some(status) = filter.status {
        q = q.filter(patient::Column::Status.eq(status));
    }
    q
}

/// Patients by name (last, first), one page.
#[tracing::instrument(skip_all, name = "patients.list", level = "debug")]
pub async fn list(
    tx: &Tx,
    filter: &PatientFilter,
    page: &PageRequest<NameKey>,
) -> ServiceResult<Page<patient::Model>> {
    let mut q = filtered(filter);
    if let Some(key) = &page.after {
        q = q.filter(Expr::cust_with_values(
            "(last_name, first_name, patients.id) > ($1, $2, $3)",
            [
                Value::from(key.a.clone()),
                Value::from(key.b.clone()),
                Value::from(key.id),
            ],
        ));
    }
    let rows = q
        .order_by_asc(patient::Column::LastName)
        .order_by_asc(patient::Column::FirstName)
        .order_by_asc(patient::Column::Id)
        .limit(page.first + 1)
        .all(tx)
        .await
        .or_db("listing patients")?;
    Ok(Page::from_overfetch(rows, page.first))
}

pub fn key_of(p: &patient::Model) -> NameKey {
    NameKey {
        a: p.last_name.clone(),
        b: p.first_name.clone(),
        id: p.id,
    }
}

#[tracing::instrument(skip_all, name = "patients.count", level = "debug")]
pub async fn count(tx: &Tx, filter: &PatientFilter) -> ServiceResult<u64> {
    filtered(filter).count(tx).await.or_db("counting patients")
}

/// Patients by id; ids not visible to the caller (another clinic's, or
/// outside a proxy's grant) are simply absent.
#[tracing::instrument(skip_all, name = "patients.by_ids", level = "debug", fields(ids = ids.len()))]
pub async fn by_ids(tx: &Tx, ids: &[PatientId]) -> ServiceResult<Vec<patient::Model>> {
    patient::Entity::find()
        .filter(patient::Column::Id.is_in(ids.iter().map(|id| id.into_uuid())))
        .filter(patient::Column::DeletedAt.is_null())
        .all(tx)
        .await
        .or_db("loading patients")
}

#[tracing::instrument(skip_all, name = "patients.get", level = "debug", fields(patient = %id))]
pub async fn get(tx: &Tx, id: PatientId) -> ServiceResult<Option<patient::Model>> {
    Ok(by_ids(tx, &[id]).await?.into_iter().next())
}

async fn require(tx: &Tx, id: PatientId) -> ServiceResult<patient::Model> {
    get(tx, id).await?.ok_or(ServiceError::NotFound)
}

fn check_birth_date(dob: NaiveDate) -> ServiceResult<NaiveDate> {
    let today = chrono::Utc::now().date_naive();
    let earliest = NaiveDate::from_ymd_opt(1880, 1, 1).unwrap_or(NaiveDate::MIN);
    if dob > today || dob < earliest {
        return Err(ServiceError::invalid(
            "dateOfBirth",
            "must be a past date after 1880",
        ));
    }
    Ok(dob)
}

pub struct NewPatient {
    pub mrn: Mrn,
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: NaiveDate,
    pub legal_sex: LegalSex,
}

/// Opens a chart at the actor's clinic. Staff only. The MRN is unique per
/// clinic (`DUPLICATE_MRN`); the same person may hold charts at other
/// clinics, which this one never sees.
#[tracing::instrument(skip_all, name = "patients.enroll", level = "debug")]
pub async fn enroll(tx: &Tx, actor: &Actor, input: NewPatient) -> ServiceResult<patient::Model> {
    actor.require_staff()?;
    let model = patient::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(actor.tenant.into_uuid()),
        medical_record_number: Set(input.mrn.as_ref().to_owned()),
        first_name: Set(required_text("firstName", &input.first_name, 100)?),
        last_name: Set(required_text("lastName", &input.last_name, 100)?),
        date_of_birth: Set(check_birth_date(input.date_of_birth)?),
        legal_sex: Set(input.legal_sex),
        ..Default::default()
    };
    model.insert(tx).await.or_db("enrolling a patient")
}

/// Fields of a chart to change; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct PatientChanges {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub legal_sex: Option<LegalSex>,
    pub mrn: Option<Mrn>,
    /// The postal address (a claim's subscriber or patient address).
    pub address: Option<crate::codes::Address>,
}

/// Changes a chart. Staff only.
#[tracing::instrument(skip_all, name = "patients.update", level = "debug", fields(patient = %id))]
pub async fn update(
    tx: &Tx,
    actor: &Actor,
    id: PatientId,
    changes: PatientChanges,
) -> ServiceResult<patient::Model> {
    actor.require_staff()?;
    let current = require(tx, id).await?;
    let mut model = current.into_active_model();
    if let Some(v) = changes.first_name {
        model.first_name = Set(required_text("firstName", &v, 100)?);
    }
    if let Some(v) = changes.last_name {
        model.last_name = Set(required_text("lastName", &v, 100)?);
    }
    if let Some(v) = changes.date_of_birth {
        model.date_of_birth = Set(check_birth_date(v)?);
    }
    if let Some(v) = changes.legal_sex {
        model.legal_sex = Set(v);
    }
    if let Some(v) = changes.mrn {
        model.medical_record_number = Set(v.as_ref().to_owned());
    }
    if let Some(a) = changes.address {
        model.address_line1 = Set(Some(a.line1));
        model.address_line2 = Set(a.line2);
        model.city = Set(Some(a.city));
        model.state = Set(Some(a.state.into_string()));
        model.postal_code = Set(Some(a.postal_code.into_string()));
    }
    model.update(tx).await.or_db("updating a patient")
}

/// Closes a chart (status DISCHARGED, with the time). Staff only; a chart
/// is discharged once (`ALREADY_DISCHARGED`).
#[tracing::instrument(skip_all, name = "patients.discharge", level = "debug", fields(patient = %id))]
pub async fn discharge(tx: &Tx, actor: &Actor, id: PatientId) -> ServiceResult<patient::Model> {
    actor.require_staff()?;
    let current = require(tx, id).await?;
    if current.status == PatientStatus::Discharged {
        return Err(ServiceError::Conflict(ConflictReason::AlreadyDischarged));
    }
    let mut model = current.into_active_model();
    model.status = Set(PatientStatus::Discharged);
    model.discharged_at = Set(Some(chrono::Utc::now().fixed_offset()));
    model.update(tx).await.or_db("discharging a patient")
}

/// The live contact methods of several patients, primary first: one
/// statement for any number of patients.
#[tracing::instrument(skip_all, name = "patients.contact_methods_of", level = "debug", fields(patients = patients.len()))]
pub async fn contact_methods_of(
    tx: &Tx,
    patients: &[PatientId],
) -> ServiceResult<Vec<contact_method::Model>> {
    contact_method::Entity::find()
        .filter(contact_method::Column::PatientId.is_in(patients.iter().map(|p| p.into_uuid())))
        .filter(contact_method::Column::DeletedAt.is_null())
        .order_by_desc(contact_method::Column::IsPrimary)
        .order_by_asc(contact_method::Column::CreatedAt)
        .order_by_asc(contact_method::Column::Id)
        .all(tx)
        .await
        .or_db("loading contact methods")
}

pub struct NewContactMethod {
    pub value: ContactValue,
    pub is_primary: bool,
    pub is_safe_for_voicemail: bool,
}

/// Adds a way to reach a patient. Staff only. A new primary method takes
/// over from the previous one; PHI may be left on voicemail only where the
/// patient said so (`is_safe_for_voicemail` defaults to false), and never on
/// an email address.
#[tracing::instrument(skip_all, name = "patients.add_contact_method", level = "debug", fields(patient = %patient))]
pub async fn add_contact_method(
    tx: &Tx,
    actor: &Actor,
    patient: PatientId,
    input: NewContactMethod,
) -> ServiceResult<contact_method::Model> {
    actor.require_staff()?;
    let current = require(tx, patient).await?;
    if input.value.kind() == ContactMethodType::Email && input.is_safe_for_voicemail {
        return Err(ServiceError::invalid(
            "isSafeForVoicemail",
            "an email address has no voicemail",
        ));
    }
    if input.is_primary {
        contact_method::Entity::update_many()
            .col_expr(contact_method::Column::IsPrimary, Expr::value(false))
            .filter(contact_method::Column::PatientId.eq(current.id))
            .filter(contact_method::Column::IsPrimary.eq(true))
            .filter(contact_method::Column::DeletedAt.is_null())
            .exec(tx)
            .await
            .or_db("demoting the primary contact method")?;
    }
    let model = contact_method::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(current.organization_id),
        patient_id: Set(current.id),
        r#type: Set(input.value.kind()),
        value: Set(input.value.as_ref().to_owned()),
        is_primary: Set(input.is_primary),
        is_safe_for_voicemail: Set(input.is_safe_for_voicemail),
        ..Default::default()
    };
    model.insert(tx).await.or_db("adding a contact method")
}
