//! DataLoaders for every relation, built per request by the handler (never
//! on the schema: a loader shared across requests would serve one clinic's
//! rows to another). Each batches the keys asked for while the request's
//! execution runs into a single statement inside the request's
//! transaction (`batches` says when a batch starts), so the statements a
//! request runs grow with its nesting depth, never with list length.
//!
//! Loaders hold the transaction weakly: when the request ends, the handler
//! is its only owner and can commit it.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use chrono::{DateTime, FixedOffset};
use entity::{
    appointment, care_team_assignment, contact_method, patient, payer_authorization, provider,
    proxy_assignment,
};
use service::Actor;
use service::Tx;
use service::appointments::Owner;
use service::domain::{PatientId, ProviderId};
use service::pagination::{NameKey, Page, PageRequest, TimeKey};
use uuid::Uuid;

use crate::error::ApiError;
use crate::graphql::batches::Batches;

/// The request's transaction, as loaders see it.
#[derive(Clone)]
pub struct TxRef(Weak<Tx>);

impl TxRef {
    fn get(&self) -> Result<Arc<Tx>, ApiError> {
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

/// A page of appointments of each patient or provider, from an instant;
/// keys with the same page arguments share one statement.
pub struct AppointmentPages(TxRef);

pub type AppointmentKey = (Owner, Option<DateTime<FixedOffset>>, PageRequest<TimeKey>);

/// Keys that share one statement: the same `from` and page.
type AppointmentGroup<'a> = (Option<DateTime<FixedOffset>>, &'a PageRequest<TimeKey>);

impl Loader<AppointmentKey> for AppointmentPages {
    type Value = Page<appointment::Model>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[AppointmentKey],
    ) -> Result<HashMap<AppointmentKey, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let mut groups: HashMap<AppointmentGroup<'_>, Vec<Owner>> = HashMap::new();
        for (owner, from, page) in keys {
            groups.entry((*from, page)).or_default().push(*owner);
        }
        let mut out = HashMap::new();
        for ((from, page), owners) in groups {
            for (owner, result) in service::appointments::pages_of(&tx, &owners, from, page).await?
            {
                out.insert((owner, from, page.clone()), result);
            }
        }
        Ok(out)
    }
}

pub struct AuthorizationsByPatient(TxRef);

impl Loader<PatientId> for AuthorizationsByPatient {
    type Value = Vec<payer_authorization::Model>;
    type Error = ApiError;

    async fn load(&self, keys: &[PatientId]) -> Result<HashMap<PatientId, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let rows = service::authorizations::of_patients(&tx, keys).await?;
        Ok(group(keys, rows, |a| a.patient_id.into()))
    }
}

/// Proxy grants of patients (staff only: the resolver checks the role).
pub struct ProxiesByPatient(TxRef, Actor);

impl Loader<PatientId> for ProxiesByPatient {
    type Value = Vec<proxy_assignment::Model>;
    type Error = ApiError;

    async fn load(&self, keys: &[PatientId]) -> Result<HashMap<PatientId, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let rows = service::proxies::of_patients(&tx, &self.1, keys).await?;
        Ok(group(keys, rows, |a| a.patient_id.into()))
    }
}

pub struct UserNames(TxRef);

/// A user's name and login email, as the clinic's staff may see them.
#[derive(Clone)]
pub struct UserName {
    pub display_name: String,
    pub email: String,
}

impl Loader<Uuid> for UserNames {
    type Value = UserName;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, UserName>, ApiError> {
        let tx = self.0.get()?;
        Ok(service::proxies::user_names(&tx, keys)
            .await?
            .into_iter()
            .map(|(id, display_name, email)| {
                (
                    id,
                    UserName {
                        display_name,
                        email,
                    },
                )
            })
            .collect())
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

fn loader<L>(inner: L, batches: &Batches) -> DataLoader<L, HashMapCache>
where
    L: Send + Sync + 'static,
{
    let batches = batches.clone();
    // No delay: a batch starts when the request's execution is waiting
    // (`Batches::drive`), not after a time.
    DataLoader::with_cache(
        inner,
        move |batch| batches.queue(batch),
        HashMapCache::default(),
    )
    .delay(Duration::ZERO)
}

/// The loaders of one request.
pub struct Loaders {
    pub provider: DataLoader<ProviderById, HashMapCache>,
    pub patient: DataLoader<PatientById, HashMapCache>,
    pub care_team: DataLoader<CareTeamByPatient, HashMapCache>,
    pub contact_methods: DataLoader<ContactMethodsByPatient, HashMapCache>,
    pub patients_by_provider: DataLoader<PatientsByProvider, HashMapCache>,
    pub patient_count_by_provider: DataLoader<PatientCountByProvider, HashMapCache>,
    pub appointments: DataLoader<AppointmentPages, HashMapCache>,
    pub authorizations: DataLoader<AuthorizationsByPatient, HashMapCache>,
    /// Present for staff only.
    pub proxies: Option<DataLoader<ProxiesByPatient, HashMapCache>>,
    pub user_names: DataLoader<UserNames, HashMapCache>,
    batches: Batches,
}

impl Loaders {
    pub fn new(tx: &Arc<Tx>, actor: Option<&Actor>) -> Self {
        let tx = TxRef(Arc::downgrade(tx));
        let batches = Batches::default();
        let b = &batches;
        Self {
            provider: loader(ProviderById(tx.clone()), b),
            patient: loader(PatientById(tx.clone()), b),
            care_team: loader(CareTeamByPatient(tx.clone()), b),
            contact_methods: loader(ContactMethodsByPatient(tx.clone()), b),
            patients_by_provider: loader(PatientsByProvider(tx.clone()), b),
            patient_count_by_provider: loader(PatientCountByProvider(tx.clone()), b),
            appointments: loader(AppointmentPages(tx.clone()), b),
            authorizations: loader(AuthorizationsByPatient(tx.clone()), b),
            proxies: actor
                .filter(|a| a.role.is_staff())
                .map(|a| loader(ProxiesByPatient(tx.clone(), a.clone()), b)),
            user_names: loader(UserNames(tx), b),
            batches,
        }
    }

    /// Runs a request's execution with these loaders' batches (see
    /// [`Batches::drive`]): every resolver that uses them runs inside it.
    pub async fn drive<F: std::future::Future>(&self, execution: F) -> F::Output {
        self.batches.drive(execution).await
    }
}
