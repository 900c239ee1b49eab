//! A patient's Social Security number: sealed at rest (`phi`), shown
//! masked (`***-**-1234`) except to the roles that need it, and found by
//! exact match through its blind index — never by decrypting rows.

use entity::patient;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
};

use crate::Tx;
use crate::actor::{Actor, Purpose, Role};
use crate::domain::PatientId;
use crate::error::{DbResultExt, ServiceError, ServiceResult};
use crate::phi::{Field, Keyring, mask_ssn};

/// A valid SSN as nine digits (dashes and spaces dropped): no area 000,
/// 666 or 900–999, no group 00, no serial 0000.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssn(String);

impl Ssn {
    pub fn parse(field: &'static str, raw: &str) -> ServiceResult<Self> {
        let digits: String = raw.chars().filter(|c| *c != '-' && *c != ' ').collect();
        let ok = digits.len() == 9
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !matches!(&digits[..3], "000" | "666")
            && !digits.starts_with('9')
            && &digits[3..5] != "00"
            && &digits[5..] != "0000";
        if !ok {
            return Err(ServiceError::invalid(
                field,
                "a Social Security number: nine digits (e.g. 123-45-6789)",
            ));
        }
        Ok(Self(digits))
    }
}

/// Who may see an SSN in full: the staff who bill and register (ADMIN,
/// STAFF).
pub fn may_unmask(actor: &Actor) -> bool {
    matches!(actor.role, Role::Admin | Role::Staff)
}

/// Records (or, with `None`, removes) a patient's SSN (ADMIN, STAFF).
#[tracing::instrument(skip_all, name = "ssn.set", level = "debug", fields(patient = %id))]
pub async fn set(
    tx: &Tx,
    actor: &Actor,
    keyring: &Keyring,
    id: PatientId,
    ssn: Option<Ssn>,
) -> ServiceResult<patient::Model> {
    actor.require(&[Role::Admin, Role::Staff])?;
    let current = patient::Entity::find_by_id(id.into_uuid())
        .filter(patient::Column::DeletedAt.is_null())
        .one(tx)
        .await
        .or_db("reading a patient")?
        .ok_or(ServiceError::NotFound)?;
    let (org, row) = (current.organization_id, current.id);
    let (sealed, index) = match ssn {
        None => (None, None),
        Some(Ssn(digits)) => {
            let (sealed, index) = keyring
                .seal_indexed(tx, org, Field::Ssn, row, &digits)
                .await?;
            (Some(sealed), Some(index))
        }
    };
    let mut model = current.into_active_model();
    model.ssn_enc = Set(sealed);
    model.ssn_index = Set(index);
    model.update(tx).await.or_db("recording an SSN")
}

/// The patient's SSN as the caller may see it: in full when `unmasked` and
/// the caller's role allows it (else FORBIDDEN), masked otherwise; `None`
/// when none is recorded. A value shown in full is an audit event naming
/// the field. A stored value that fails authentication is an integrity
/// failure (INTERNAL), never shown.
pub async fn reveal(
    tx: &Tx,
    actor: &Actor,
    keyring: &Keyring,
    p: &patient::Model,
    unmasked: bool,
) -> ServiceResult<Option<String>> {
    actor.may(Purpose::Profile, p.id.into())?;
    if unmasked && !may_unmask(actor) {
        return Err(ServiceError::Forbidden(crate::error::ForbiddenReason::Role));
    }
    let Some(sealed) = &p.ssn_enc else {
        return Ok(None);
    };
    let digits = keyring
        .open(tx, p.organization_id, Field::Ssn, p.id, sealed)
        .await?;
    if digits.len() != 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ServiceError::Unexpected(anyhow::anyhow!(
            "integrity failure: the SSN of {} is not nine digits",
            p.id
        )));
    }
    if !unmasked {
        return Ok(Some(mask_ssn(&digits)));
    }
    crate::phi::audit_unmasked(tx, "patients", [p.id], "ssn").await?;
    Ok(Some(format!(
        "{}-{}-{}",
        &digits[..3],
        &digits[3..5],
        &digits[5..]
    )))
}

/// The clinic's patients with this SSN (ADMIN, STAFF), by blind index under
/// each of the clinic's data keys: one indexed lookup, no decryption.
#[tracing::instrument(skip_all, name = "ssn.find", level = "debug")]
pub async fn find(
    tx: &Tx,
    actor: &Actor,
    keyring: &Keyring,
    ssn: Ssn,
) -> ServiceResult<Vec<patient::Model>> {
    actor.require(&[Role::Admin, Role::Staff])?;
    let indexes = keyring
        .blind_indexes(tx, actor.tenant.into_uuid(), Field::Ssn, &ssn.0)
        .await?;
    let found = if indexes.is_empty() {
        Vec::new()
    } else {
        patient::Entity::find()
            .filter(patient::Column::OrganizationId.eq(actor.tenant.into_uuid()))
            .filter(patient::Column::SsnIndex.is_in(indexes))
            .filter(patient::Column::DeletedAt.is_null())
            .order_by_asc(patient::Column::LastName)
            .order_by_asc(patient::Column::Id)
            .all(tx)
            .await
            .or_db("finding patients by SSN")?
    };
    // Every lookup is in the trail, found or not (the number itself never).
    crate::audit::record_event(
        tx,
        "READ",
        "patients",
        None,
        serde_json::json!({ "field": "ssn", "lookup": true, "matches": found.len() }),
    )
    .await?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ssn_is_nine_digits_outside_the_never_issued_ranges() {
        assert_eq!(Ssn::parse("ssn", "123-45-6789").unwrap().0, "123456789");
        assert_eq!(Ssn::parse("ssn", "123456789").unwrap().0, "123456789");
        for bad in [
            "",
            "12345678",
            "1234567890",
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "12a-45-6789",
        ] {
            assert!(Ssn::parse("ssn", bad).is_err(), "{bad}");
        }
    }
}
