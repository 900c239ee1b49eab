//! DataLoaders for every relation, built per request by the handler (never
//! on the schema: a loader shared across requests would serve one clinic's
//! rows to another). Each batches the keys asked for during one tick into a
//! single statement inside the request's transaction, so the statements a
//! request runs grow with its nesting depth, never with list length.
//!
//! Loaders hold the transaction weakly: when the request ends, the handler
//! is its only owner and can commit it.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use entity::{care_team_assignment, contact_method, patient, provider};
use sea_orm::DatabaseTransaction;
use service::domain::{PatientId, ProviderId};
use service::pagination::{NameKey, Page, PageRequest};
use tracing::Instrument;

use crate::error::ApiError;

/// The request's transaction, as loaders see it.
#[derive(Clone)]
pub struct TxRef(Weak<DatabaseTransaction>);

impl TxRef {
    fn get(&self) -> Result<Arc<DatabaseTransaction>, ApiError> {
        self.0.upgrade().ok_or_else(|| {
            tracing::error!("a loader ran after its request ended");
            ApiError::internal()
        })
    }
}

pub struct ProviderById(TxRef);

impl Loader<ProviderId> for ProviderById {
    type Value = provider::Model;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[ProviderId],
    ) -> Result<HashMap<ProviderId, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let rows = service::providers::by_ids(&tx, keys).await?;
        Ok(rows.into_iter().map(|p| (p.id.into(), p)).collect())
    }
}

pub struct PatientById(TxRef);

impl Loader<PatientId> for PatientById {
    type Value = patient::Model;
    type Error = ApiError;

    async fn load(&self, keys: &[PatientId]) -> Result<HashMap<PatientId, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let rows = service::patients::by_ids(&tx, keys).await?;
        Ok(rows.into_iter().map(|p| (p.id.into(), p)).collect())
    }
}

pub struct CareTeamByPatient(TxRef);

impl Loader<PatientId> for CareTeamByPatient {
    type Value = Vec<care_team_assignment::Model>;
    type Error = ApiError;

    async fn load(&self, keys: &[PatientId]) -> Result<HashMap<PatientId, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let rows = service::care_team::active_of(&tx, keys).await?;
        Ok(group(keys, rows, |a| a.patient_id.into()))
    }
}

pub struct ContactMethodsByPatient(TxRef);

impl Loader<PatientId> for ContactMethodsByPatient {
    type Value = Vec<contact_method::Model>;
    type Error = ApiError;

    async fn load(&self, keys: &[PatientId]) -> Result<HashMap<PatientId, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let rows = service::patients::contact_methods_of(&tx, keys).await?;
        Ok(group(keys, rows, |c| c.patient_id.into()))
    }
}

/// A page of each provider's patients; keys with the same page arguments
/// share one statement.
pub struct PatientsByProvider(TxRef);

impl Loader<(ProviderId, PageRequest<NameKey>)> for PatientsByProvider {
    type Value = Page<patient::Model>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[(ProviderId, PageRequest<NameKey>)],
    ) -> Result<HashMap<(ProviderId, PageRequest<NameKey>), Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let mut by_page: HashMap<&PageRequest<NameKey>, Vec<ProviderId>> = HashMap::new();
        for (provider, page) in keys {
            by_page.entry(page).or_default().push(*provider);
        }
        let mut out = HashMap::new();
        for (page, providers) in by_page {
            for (provider, result) in service::providers::patients_of(&tx, &providers, page).await?
            {
                out.insert((provider, page.clone()), result);
            }
        }
        Ok(out)
    }
}

/// How many patients each provider has on active care teams.
pub struct PatientCountByProvider(TxRef);

impl Loader<ProviderId> for PatientCountByProvider {
    type Value = i64;
    type Error = ApiError;

    async fn load(&self, keys: &[ProviderId]) -> Result<HashMap<ProviderId, i64>, ApiError> {
        let tx = self.0.get()?;
        Ok(service::providers::patient_counts(&tx, keys).await?)
    }
}

/// Every key gets an entry (an empty list when it has no rows), in the
/// order the rows came.
fn group<T>(
    keys: &[PatientId],
    rows: Vec<T>,
    key: impl Fn(&T) -> PatientId,
) -> HashMap<PatientId, Vec<T>> {
    let mut out: HashMap<PatientId, Vec<T>> = keys.iter().map(|k| (*k, Vec::new())).collect();
    for row in rows {
        out.entry(key(&row)).or_default().push(row);
    }
    out
}

/// The loaders of one request.
pub struct Loaders {
    pub provider: DataLoader<ProviderById, HashMapCache>,
    pub patient: DataLoader<PatientById, HashMapCache>,
    pub care_team: DataLoader<CareTeamByPatient, HashMapCache>,
    pub contact_methods: DataLoader<ContactMethodsByPatient, HashMapCache>,
    pub patients_by_provider: DataLoader<PatientsByProvider, HashMapCache>,
    pub patient_count_by_provider: DataLoader<PatientCountByProvider, HashMapCache>,
}

impl Loaders {
    pub fn new(tx: &Arc<DatabaseTransaction>) -> Self {
        let tx = TxRef(Arc::downgrade(tx));
        // Batches run on spawned tasks; they keep the request's span, so
        // their log lines carry its request id.
        let span = tracing::Span::current();
        let spawner = move |fut: futures::future::BoxFuture<'static, ()>| {
            tokio::spawn(fut.instrument(span.clone()))
        };
        Self {
            provider: DataLoader::with_cache(
                ProviderById(tx.clone()),
                spawner.clone(),
                HashMapCache::default(),
            ),
            patient: DataLoader::with_cache(
                PatientById(tx.clone()),
                spawner.clone(),
                HashMapCache::default(),
            ),
            care_team: DataLoader::with_cache(
                CareTeamByPatient(tx.clone()),
                spawner.clone(),
                HashMapCache::default(),
            ),
            contact_methods: DataLoader::with_cache(
                ContactMethodsByPatient(tx.clone()),
                spawner.clone(),
                HashMapCache::default(),
            ),
            patients_by_provider: DataLoader::with_cache(
                PatientsByProvider(tx.clone()),
                spawner.clone(),
                HashMapCache::default(),
            ),
            patient_count_by_provider: DataLoader::with_cache(
                PatientCountByProvider(tx),
                spawner,
                HashMapCache::default(),
            ),
        }
    }
}
