//! Licences and certifications of providers. A provider renders a therapy
//! session only with a licence of the clinic's state valid on the session's
//! day: the database checks it when the session starts.

use chrono::NaiveDate;
use entity::staff_credential::{self, CredentialKind};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use crate::Tx;
use crate::actor::{Actor, Role};
use crate::codes::UsState;
use crate::domain::{ProviderId, new_id, required_text};
use crate::error::{DbResultExt, ServiceError, ServiceResult};

pub struct NewCredential {
    pub provider: ProviderId,
    pub kind: CredentialKind,
    pub name: String,
    pub number: String,
    /// Required for a licence.
    pub issuing_state: Option<UsState>,
    pub valid_from: NaiveDate,
    pub valid_to: Option<NaiveDate>,
}

/// Records a provider's licence or certification (ADMIN, STAFF). The same
/// number is recorded once per provider, kind and state
/// (`DUPLICATE_CREDENTIAL`).
#[tracing::instrument(skip_all, name = "credentials.add", level = "debug", fields(provider = %input.provider))]
pub async fn add(
    tx: &Tx,
    actor: &Actor,
    input: NewCredential,
) -> ServiceResult<staff_credential::Model> {
    actor.require(&[Role::Admin, Role::Staff])?;
    if input.kind == CredentialKind::License && input.issuing_state.is_none() {
        return Err(ServiceError::invalid(
            "issuingState",
            "a licence names the state that issued it",
        ));
    }
    if input.valid_to.is_some_and(|to| to < input.valid_from) {
        return Err(ServiceError::invalid(
            "validTo",
            "must not be before validFrom",
        ));
    }
    let provider = crate::providers::by_ids(tx, &[input.provider])
        .await?
        .pop()
        .ok_or_else(|| ServiceError::invalid("providerId", "no such provider"))?;
    staff_credential::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(provider.organization_id),
        provider_id: Set(provider.id),
        kind: Set(input.kind),
        name: Set(required_text("name", &input.name, 100)?),
        number: Set(required_text("number", &input.number, 50)?),
        issuing_state: Set(input.issuing_state.map(UsState::into_string)),
        valid_from: Set(input.valid_from),
        valid_to: Set(input.valid_to),
        ..Default::default()
    }
    .insert(tx)
    .await
    .or_db("recording a credential")
}

/// The credentials of several providers (staff), by start date: one
/// statement.
#[tracing::instrument(skip_all, name = "credentials.of_providers", level = "debug", fields(providers = providers.len()))]
pub async fn of_providers(
    tx: &Tx,
    providers: &[ProviderId],
) -> ServiceResult<Vec<staff_credential::Model>> {
    staff_credential::Entity::find()
        .filter(staff_credential::Column::ProviderId.is_in(providers.iter().map(|p| p.into_uuid())))
        .filter(staff_credential::Column::DeletedAt.is_null())
        .order_by_asc(staff_credential::Column::ValidFrom)
        .order_by_asc(staff_credential::Column::Id)
        .all(tx)
        .await
        .or_db("loading credentials")
}
