//! A clinic's providers.

use std::collections::HashMap;

use anyhow::Context;
use entity::{patient, provider};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement, Value,
};

use crate::Tx;
use crate::actor::{Actor, Role};
use crate::domain::{DeaNumber, Npi, ProviderId, StateLicenses, new_id, required_text};
use crate::error::{DbResultExt, ServiceResult};
use crate::pagination::{NameKey, Page, PageRequest, search_terms};
use crate::sql::uuid_array;

#[derive(Debug, Clone, Default)]
pub struct ProviderFilter {
    pub search: Option<String>,
    pub specialty: Option<String>,
    pub is_active: Option<bool>,
}

fn filtered(filter: &ProviderFilter) -> sea_orm::Select<provider::Entity> {
    let mut q = provider::Entity::find().filter(provider::Column::DeletedAt.is_null());
    if let Some(search) = &filter.search {
        for term in search_terms(search) {
            q = q.filter(Expr::cust_with_values("lower(name) LIKE $1", [term]));
        }
    }
    if let Some(s) = &filter.specialty {
        q = q.filter(Expr::cust_with_values(
            "lower(specialty) = lower($1)",
            [s.clone()],
        ));
    }
    if let Some(active) = filter.is_active {
        q = q.filter(provider::Column::IsActive.eq(active));
    }
    q
}

/// Providers by name, one page.
#[tracing::instrument(skip_all, name = "providers.list", level = "debug")]
pub async fn list(
    tx: &Tx,
    filter: &ProviderFilter,
    page: &PageRequest<NameKey>,
) -> ServiceResult<Page<provider::Model>> {
    let mut q = filtered(filter);
    if let Some(key) = &page.after {
        q = q.filter(Expr::cust_with_values(
            "(name, id) > ($1, $2)",
            [Value::from(key.a.clone()), Value::from(key.id)],
        ));
    }
    let rows = q
        .order_by_asc(provider::Column::Name)
        .order_by_asc(provider::Column::Id)
        .limit(page.first + 1)
        .all(tx)
        .await
        .or_db("listing providers")?;
    Ok(Page::from_overfetch(rows, page.first))
}

pub fn key_of(p: &provider::Model) -> NameKey {
    NameKey {
        a: p.name.clone(),
        b: String::new(),
        id: p.id,
    }
}

#[tracing::instrument(skip_all, name = "providers.count", level = "debug")]
pub async fn count(tx: &Tx, filter: &ProviderFilter) -> ServiceResult<u64> {
    filtered(filter).count(tx).await.or_db("counting providers")
}

/// Providers by id; ids not visible to the caller are simply absent.
#[tracing::instrument(skip_all, name = "providers.by_ids", level = "debug", fields(ids = ids.len()))]
pub async fn by_ids(tx: &Tx, ids: &[ProviderId]) -> ServiceResult<Vec<provider::Model>> {
    provider::Entity::find()
        .filter(provider::Column::Id.is_in(ids.iter().map(|id| id.into_uuid())))
        .filter(provider::Column::DeletedAt.is_null())
        .all(tx)
        .await
        .or_db("loading providers")
}

#[tracing::instrument(skip_all, name = "providers.get", level = "debug", fields(provider = %id))]
pub async fn get(tx: &Tx, id: ProviderId) -> ServiceResult<Option<provider::Model>> {
    Ok(by_ids(tx, &[id]).await?.into_iter().next())
}

pub struct NewProvider {
    pub name: String,
    pub npi: Npi,
    pub dea_number: Option<DeaNumber>,
    pub specialty: Option<String>,
    pub state_licenses: StateLicenses,
}

/// Adds a provider to the actor's clinic. Clinic admins only. The NPI is
/// unique among the clinic's active providers (the database's partial
/// unique index decides under concurrency: `DUPLICATE_NPI`).
#[tracing::instrument(skip_all, name = "providers.create", level = "debug")]
pub async fn create(tx: &Tx, actor: &Actor, input: NewProvider) -> ServiceResult<provider::Model> {
    actor.require(&[Role::Admin])?;
    let name = required_text("name", &input.name, 200)?;
    let specialty = match input.specialty.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(required_text("specialty", s, 200)?),
    };
    let model = provider::ActiveModel {
        id: Set(new_id()),
        organization_id: Set(actor.tenant.into_uuid()),
        name: Set(name),
        npi: Set(input.npi.as_ref().to_owned()),
        dea_number: Set(input.dea_number.map(|dea| dea.as_ref().to_owned())),
        specialty: Set(specialty),
        state_licenses: Set(serde_json::json!(input.state_licenses.as_ref())),
        ..Default::default()
    };
    model.insert(tx).await.or_db("creating a provider")
}

/// The patients on each provider's care team (active assignments), by
/// name: one statement for any number of providers.
#[tracing::instrument(skip_all, name = "providers.patients_of", level = "debug", fields(providers = providers.len()))]
pub async fn patients_of(
    tx: &Tx,
    providers: &[ProviderId],
    page: &PageRequest<NameKey>,
) -> ServiceResult<HashMap<ProviderId, Page<patient::Model>>> {
    let (after_a, after_b, after_id) = match &page.after {
        Some(k) => (Some(k.a.clone()), Some(k.b.clone()), Some(k.id)),
        None => (None, None, None),
    };
    let rows = tx
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT * FROM ( \
               SELECT p.*, c.provider_id AS via_provider, row_number() OVER ( \
                   PARTITION BY c.provider_id ORDER BY p.last_name, p.first_name, p.id) AS rn \
               FROM care_team_assignments c \
               JOIN patients p ON p.organization_id = c.organization_id AND p.id = c.patient_id \
               WHERE c.provider_id = ANY ($1::uuid[]) AND c.removed_at IS NULL \
                 AND p.deleted_at IS NULL \
                 AND ($2::text IS NULL OR (p.last_name, p.first_name, p.id) > ($2, $3, $4)) \
             ) t WHERE rn <= $5 ORDER BY via_provider, rn",
            [
                uuid_array(providers.iter().map(|p| p.into_uuid())),
                after_a.into(),
                after_b.into(),
                after_id.into(),
                ((page.first + 1) as i64).into(),
            ],
        ))
        .await
        .or_db("loading providers' patients")?;
    let mut grouped: HashMap<ProviderId, Vec<patient::Model>> = HashMap::new();
    for row in rows {
        let via: uuid::Uuid = row
            .try_get("", "via_provider")
            .context("reading via_provider")?;
        let patient = patient::Model::from_query_result(&row, "").context("reading a patient")?;
        grouped.entry(via.into()).or_default().push(patient);
    }
    Ok(providers
        .iter()
        .map(|p| {
            let items = grouped.remove(p).unwrap_or_default();
            (*p, Page::from_overfetch(items, page.first))
        })
        .collect())
}

/// How many live patients each provider has on active care teams: one
/// statement for any number of providers.
#[tracing::instrument(skip_all, name = "providers.patient_counts", level = "debug", fields(providers = providers.len()))]
pub async fn patient_counts(
    tx: &Tx,
    providers: &[ProviderId],
) -> ServiceResult<HashMap<ProviderId, i64>> {
    let rows = tx
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT c.provider_id, count(*) AS n FROM care_team_assignments c \
             JOIN patients p ON p.organization_id = c.organization_id AND p.id = c.patient_id \
             WHERE c.provider_id = ANY ($1::uuid[]) AND c.removed_at IS NULL AND p.deleted_at IS NULL \
             GROUP BY c.provider_id",
            [uuid_array(providers.iter().map(|p| p.into_uuid()))],
        ))
        .await
        .or_db("counting providers' patients")?;
    let mut out: HashMap<ProviderId, i64> = providers.iter().map(|p| (*p, 0)).collect();
    for row in rows {
        let provider: uuid::Uuid = row.try_get("", "provider_id").context("provider_id")?;
        let n: i64 = row.try_get("", "n").context("n")?;
        out.insert(provider.into(), n);
    }
    Ok(out)
}
