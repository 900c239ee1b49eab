//! What a clinic sets up to bill and to record sessions: its billing
//! identity, its fee schedule and its catalogue of session event types.

use chrono::NaiveDate;
use entity::{fee_schedule_entry, organization, session_event_type};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
};

use crate::Tx;
use crate::actor::{Actor, Role};
use crate::codes::{Address, EventTypeCode, PhoneDigits, ServiceCode, TaxId};
use crate::domain::{Npi, new_id, required_text};
use crate::error::{DbResultExt, ServiceError, ServiceResult};

/// A clinic's identity on its claims (2010AA of an 837P).
pub struct BillingIdentity {
    pub group_npi: Npi,
    pub tax_id: TaxId,
    pub phone: PhoneDigits,
    /// Its state is the clinic's state: providers render care with a
    /// licence issued there.
    pub address: Address,
}

/// Sets the clinic's billing identity (ADMIN).
#[tracing::instrument(skip_all, name = "clinic.set_billing_identity", level = "debug")]
pub async fn set_billing_identity(
    tx: &Tx,
    actor: &Actor,
    keyring: &crate::phi::Keyring,
    identity: BillingIdentity,
) -> ServiceResult<organization::Model> {
    actor.require(&[Role::Admin])?;
    let current = organization::Entity::find_by_id(actor.tenant.into_uuid())
        .one(tx)
        .await
        .or_db("reading the clinic")?
        .ok_or(ServiceError::NotFound)?;
    let mut model = current.into_active_model();
    model.group_npi = Set(Some(identity.group_npi.as_ref().to_owned()));
    let org = actor.tenant.into_uuid();
    let tax_id = identity.tax_id.into_string();
    model.tax_id = Set(None);
    model.tax_id_enc = Set(Some(
        keyring
            .seal(tx, org, crate::phi::Field::TaxId, org, &tax_id)
            .await?,
    ));
    model.billing_phone = Set(Some(identity.phone.into_string()));
    model.billing_address_line1 = Set(Some(identity.address.line1));
    model.billing_address_line2 = Set(identity.address.line2);
    model.billing_city = Set(Some(identity.address.city));
    model.billing_state = Set(Some(identity.address.state.into_string()));
    model.billing_postal_code = Set(Some(identity.address.postal_code.into_string()));
    model.update(tx).await.or_db("setting the billing identity")
}

/// The clinic's tax id as the caller may see it: in full to ADMIN and
/// STAFF (an audit event naming the field), masked to providers, never to
/// portal users (`None`, as while unset).
pub async fn tax_id_shown(
    tx: &Tx,
    actor: &Actor,
    keyring: &crate::phi::Keyring,
    clinic: &organization::Model,
) -> ServiceResult<Option<String>> {
    if !actor.role.is_staff() || actor.tenant.into_uuid() != clinic.id {
        return Ok(None);
    }
    let Some(value) = keyring
        .reveal(
            tx,
            clinic.id,
            crate::phi::Field::TaxId,
            clinic.id,
            clinic.tax_id_enc.as_deref(),
            clinic.tax_id.as_deref(),
        )
        .await?
    else {
        return Ok(None);
    };
    if !matches!(actor.role, Role::Admin | Role::Staff) {
        return Ok(Some(crate::phi::mask_tail(&value)));
    }
    crate::phi::audit_unmasked(tx, "organizations", [clinic.id], "taxId").await?;
    Ok(Some(value))
}

/// The clinic's fee schedule, by code and date.
#[tracing::instrument(skip_all, name = "clinic.fees", level = "debug")]
pub async fn fees(tx: &Tx, actor: &Actor) -> ServiceResult<Vec<fee_schedule_entry::Model>> {
    actor.require_staff()?;
    fee_schedule_entry::Entity::find()
        .order_by_asc(fee_schedule_entry::Column::ServiceCode)
        .order_by_asc(fee_schedule_entry::Column::EffectiveFrom)
        .all(tx)
        .await
        .or_db("reading the fee schedule")
}

/// Sets what the clinic charges per unit of a service from a date (ADMIN,
/// STAFF). One entry per code and date (`DUPLICATE_FEE`); an entry applies
/// until the next one of the same code.
#[tracing::instrument(skip_all, name = "clinic.set_fee", level = "debug")]
pub async fn set_fee(
    tx: &Tx,
    actor: &Actor,
    code: ServiceCode,
    unit_charge_cents: i64,
    effective_from: NaiveDate,
) -> ServiceResult<fee_schedule_entry::Model> {
    actor.require(&[Role::Admin, Role::Staff])?;
    if !(0..=10_000_000).contains(&unit_charge_cents) {
        return Err(ServiceError::invalid(
            "unitChargeCents",
            "must be between 0 and 10000000 (100,000.00)",
        ));
    }
    fee_schedule_entry::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(actor.tenant.into_uuid()),
        service_code: Set(code.as_str().to_owned()),
        unit_charge_cents: Set(unit_charge_cents),
        effective_from: Set(effective_from),
        ..Default::default()
    }
    .insert(tx)
    .await
    .or_db("setting a fee")
}

/// The clinic's session event types, by code.
#[tracing::instrument(skip_all, name = "clinic.event_types", level = "debug")]
pub async fn event_types(tx: &Tx) -> ServiceResult<Vec<session_event_type::Model>> {
    session_event_type::Entity::find()
        .order_by_asc(session_event_type::Column::Code)
        .all(tx)
        .await
        .or_db("reading the event catalogue")
}

/// Adds a type to the clinic's session event catalogue (ADMIN); codes are
/// unique per clinic (`DUPLICATE_EVENT_TYPE`).
#[tracing::instrument(skip_all, name = "clinic.add_event_type", level = "debug")]
pub async fn add_event_type(
    tx: &Tx,
    actor: &Actor,
    code: EventTypeCode,
    description: &str,
) -> ServiceResult<session_event_type::Model> {
    actor.require(&[Role::Admin])?;
    session_event_type::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(actor.tenant.into_uuid()),
        code: Set(code.into_string()),
        description: Set(required_text("description", description, 200)?),
        is_active: Set(true),
        ..Default::default()
    }
    .insert(tx)
    .await
    .or_db("adding an event type")
}

/// The fee in force for each code on each date: `(code, date) -> cents per
/// unit`, one statement.
pub(crate) async fn unit_charges(
    tx: &Tx,
    wanted: &[(String, NaiveDate)],
) -> ServiceResult<Vec<Option<i64>>> {
    let codes: Vec<String> = wanted.iter().map(|(c, _)| c.clone()).collect();
    let rows = fee_schedule_entry::Entity::find()
        .filter(fee_schedule_entry::Column::ServiceCode.is_in(codes))
        .order_by_desc(fee_schedule_entry::Column::EffectiveFrom)
        .all(tx)
        .await
        .or_db("reading fees")?;
    Ok(wanted
        .iter()
        .map(|(code, day)| {
            rows.iter()
                .find(|f| &f.service_code == code && f.effective_from <= *day)
                .map(|f| f.unit_charge_cents)
        })
        .collect())
}
