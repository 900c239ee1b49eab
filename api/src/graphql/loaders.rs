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
    appointment, billing_transaction, care_team_assignment, claim_line, contact_method, diagnosis,
    facility, patient, patient_insurance, payer_authorization, provider, proxy_assignment,
    session_event, staff_credential, therapy_session,
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

/// Rows by their own id: a loader over a `by_ids` service function.
macro_rules! by_id_loader {
    ($(#[$doc:meta])* $name:ident, $model:ty, $fetch:path) => {
        $(#[$doc])*
        pub struct $name(TxRef);

        impl Loader<Uuid> for $name {
            type Value = $model;
            type Error = ApiError;

            async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, $model>, ApiError> {
                let tx = self.0.get()?;
                Ok($fetch(&tx, keys).await?.into_iter().map(|r| (r.id, r)).collect())
            }
        }
    };
}

by_id_loader!(
    SessionById,
    therapy_session::Model,
    service::sessions::by_ids
);
by_id_loader!(
    InsuranceById,
    patient_insurance::Model,
    service::nodes::insurances
);
by_id_loader!(
    AuthorizationById,
    payer_authorization::Model,
    service::nodes::authorizations
);

by_id_loader!(FacilityById, facility::Model, service::facilities::by_ids);

/// Each patient's balances, per currency.
pub struct BalancesByPatient(TxRef);

impl Loader<Uuid> for BalancesByPatient {
    type Value = Vec<service::payments::Balance>;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let rows = service::payments::balances_of(&tx, keys).await?;
        Ok(group(keys, rows, |b| b.patient_id))
    }
}

/// The live staff of each facility (staff only).
pub struct StaffByFacility(TxRef, Option<Actor>);

impl Loader<Uuid> for StaffByFacility {
    type Value = Vec<service::facilities::Assignment>;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let actor = self.1.as_ref().ok_or_else(ApiError::internal)?;
        Ok(service::facilities::staff_of(&tx, actor, keys).await?)
    }
}

/// A page of each facility's appointments, on one local day or all;
/// keys with the same day and page arguments share one statement.
pub struct AppointmentsByFacility(TxRef);

type FacilityPageKey = (Uuid, Option<chrono::NaiveDate>, PageRequest<TimeKey>);

impl Loader<FacilityPageKey> for AppointmentsByFacility {
    type Value = Page<appointment::Model>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[FacilityPageKey],
    ) -> Result<HashMap<FacilityPageKey, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let mut by_page: HashMap<(Option<chrono::NaiveDate>, &PageRequest<TimeKey>), Vec<Uuid>> =
            HashMap::new();
        for (facility, on, page) in keys {
            by_page.entry((*on, page)).or_default().push(*facility);
        }
        let mut out = HashMap::new();
        for ((on, page), facilities) in by_page {
            let pages =
                service::appointments::pages_of_facilities(&tx, &facilities, on, page).await?;
            for (facility, result) in pages {
                out.insert((facility, on, page.clone()), result);
            }
        }
        Ok(out)
    }
}

pub struct CredentialsByProvider(TxRef);

impl Loader<ProviderId> for CredentialsByProvider {
    type Value = Vec<staff_credential::Model>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[ProviderId],
    ) -> Result<HashMap<ProviderId, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let rows = service::credentials::of_providers(&tx, keys).await?;
        Ok(group(keys, rows, |c| c.provider_id.into()))
    }
}

/// Coverages of patients (those whose billing the caller may view).
pub struct InsurancesByPatient(TxRef, Option<Actor>);

impl Loader<PatientId> for InsurancesByPatient {
    type Value = Vec<patient_insurance::Model>;
    type Error = ApiError;

    async fn load(&self, keys: &[PatientId]) -> Result<HashMap<PatientId, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let Some(actor) = &self.1 else {
            return Ok(HashMap::new());
        };
        let rows = service::insurance::of_patients(&tx, actor, keys).await?;
        Ok(group(keys, rows, |i| i.patient_id.into()))
    }
}

/// Open diagnoses of patients (those whose clinical notes the caller may
/// view).
pub struct DiagnosesByPatient(TxRef, Option<Actor>);

impl Loader<PatientId> for DiagnosesByPatient {
    type Value = Vec<diagnosis::Model>;
    type Error = ApiError;

    async fn load(&self, keys: &[PatientId]) -> Result<HashMap<PatientId, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let Some(actor) = &self.1 else {
            return Ok(HashMap::new());
        };
        let rows = service::diagnoses::of_patients(&tx, actor, keys).await?;
        Ok(group(keys, rows, |d| d.patient_id.into()))
    }
}

/// The lines of claims, in order.
pub struct LinesByClaim(TxRef);

impl Loader<Uuid> for LinesByClaim {
    type Value = Vec<claim_line::Model>;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let rows = service::claims::lines_of(&tx, keys).await?;
        Ok(group(keys, rows, |l| l.claim_id))
    }
}

/// A page per owner, with keys of the same page sharing one statement.
macro_rules! page_loader {
    ($(#[$doc:meta])* $name:ident, $model:ty, $fetch:path) => {
        $(#[$doc])*
        pub struct $name(TxRef);

        impl Loader<(Uuid, PageRequest<TimeKey>)> for $name {
            type Value = Page<$model>;
            type Error = ApiError;

            async fn load(
                &self,
                keys: &[(Uuid, PageRequest<TimeKey>)],
            ) -> Result<HashMap<(Uuid, PageRequest<TimeKey>), Self::Value>, ApiError> {
                let tx = self.0.get()?;
                let mut by_page: HashMap<&PageRequest<TimeKey>, Vec<Uuid>> = HashMap::new();
                for (owner, page) in keys {
                    by_page.entry(page).or_default().push(*owner);
                }
                let mut out = HashMap::new();
                for (page, owners) in by_page {
                    for (owner, result) in $fetch(&tx, &owners, page).await? {
                        out.insert((owner, page.clone()), result);
                    }
                }
                Ok(out)
            }
        }
    };
}

page_loader!(
    /// A page of sessions of each patient.
    SessionsByPatient,
    therapy_session::Model,
    service::sessions::pages_of_patients
);
page_loader!(
    /// A page of billing transactions of each patient, newest first.
    TransactionsByPatient,
    billing_transaction::Model,
    service::payments::pages_of_patients
);
page_loader!(
    /// A page of events of each session.
    EventsBySession,
    session_event::Model,
    service::sessions::event_pages
);

page_loader!(
    /// A page of message threads of each patient, most recently active first.
    ThreadsByPatient,
    service::messaging::Thread,
    service::messaging::thread_pages_of_patients
);
page_loader!(
    /// A page of messages of each thread, newest first.
    MessagesByThread,
    service::messaging::Message,
    service::messaging::message_pages_of_threads
);

pub struct ThreadById(TxRef);

impl Loader<Uuid> for ThreadById {
    type Value = service::messaging::Thread;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let rows = service::messaging::threads_by_ids(&tx, keys).await?;
        Ok(rows.into_iter().map(|t| (t.id, t)).collect())
    }
}

pub struct ParticipantsByThread(TxRef);

impl Loader<Uuid> for ParticipantsByThread {
    type Value = Vec<service::messaging::Participant>;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let rows = service::messaging::participants_of(&tx, keys).await?;
        Ok(group(keys, rows, |p| p.thread_id))
    }
}

pub struct AttachmentsByMessage(TxRef);

impl Loader<Uuid> for AttachmentsByMessage {
    type Value = Vec<service::messaging::Attachment>;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let rows = service::messaging::attachments_of(&tx, keys).await?;
        Ok(group(keys, rows, |a| a.message_id))
    }
}

pub struct RevisionsByMessage(TxRef);

impl Loader<Uuid> for RevisionsByMessage {
    type Value = Vec<service::messaging::Revision>;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, ApiError> {
        let tx = self.0.get()?;
        let rows = service::messaging::revisions_of(&tx, keys).await?;
        Ok(group(keys, rows, |r| r.message_id))
    }
}

/// Names of people taking part in threads the caller can see.
pub struct ParticipantNames(TxRef);

impl Loader<Uuid> for ParticipantNames {
    type Value = String;
    type Error = ApiError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, String>, ApiError> {
        let tx = self.0.get()?;
        Ok(service::messaging::participant_names(&tx, keys)
            .await?
            .into_iter()
            .collect())
    }
}

/// Every key gets an entry (an empty list when it has no rows), in the
/// order the rows came.
fn group<K: Copy + Eq + std::hash::Hash, T>(
    keys: &[K],
    rows: Vec<T>,
    key: impl Fn(&T) -> K,
) -> HashMap<K, Vec<T>> {
    let mut out: HashMap<K, Vec<T>> = keys.iter().map(|k| (*k, Vec::new())).collect();
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
    pub credentials: DataLoader<CredentialsByProvider, HashMapCache>,
    pub insurances: DataLoader<InsurancesByPatient, HashMapCache>,
    pub insurance: DataLoader<InsuranceById, HashMapCache>,
    pub diagnoses: DataLoader<DiagnosesByPatient, HashMapCache>,
    pub authorization: DataLoader<AuthorizationById, HashMapCache>,
    pub session: DataLoader<SessionById, HashMapCache>,
    pub sessions_by_patient: DataLoader<SessionsByPatient, HashMapCache>,
    pub session_events: DataLoader<EventsBySession, HashMapCache>,
    pub claim_lines: DataLoader<LinesByClaim, HashMapCache>,
    pub facility: DataLoader<FacilityById, HashMapCache>,
    /// Present for staff only.
    pub facility_staff: DataLoader<StaffByFacility, HashMapCache>,
    pub facility_appointments: DataLoader<AppointmentsByFacility, HashMapCache>,
    pub transactions_by_patient: DataLoader<TransactionsByPatient, HashMapCache>,
    pub balances: DataLoader<BalancesByPatient, HashMapCache>,
    pub threads_by_patient: DataLoader<ThreadsByPatient, HashMapCache>,
    pub messages_by_thread: DataLoader<MessagesByThread, HashMapCache>,
    pub thread: DataLoader<ThreadById, HashMapCache>,
    pub participants: DataLoader<ParticipantsByThread, HashMapCache>,
    pub attachments: DataLoader<AttachmentsByMessage, HashMapCache>,
    pub revisions: DataLoader<RevisionsByMessage, HashMapCache>,
    pub participant_names: DataLoader<ParticipantNames, HashMapCache>,
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
            credentials: loader(CredentialsByProvider(tx.clone()), b),
            insurances: loader(InsurancesByPatient(tx.clone(), actor.cloned()), b),
            insurance: loader(InsuranceById(tx.clone()), b),
            diagnoses: loader(DiagnosesByPatient(tx.clone(), actor.cloned()), b),
            authorization: loader(AuthorizationById(tx.clone()), b),
            session: loader(SessionById(tx.clone()), b),
            sessions_by_patient: loader(SessionsByPatient(tx.clone()), b),
            session_events: loader(EventsBySession(tx.clone()), b),
            claim_lines: loader(LinesByClaim(tx.clone()), b),
            facility: loader(FacilityById(tx.clone()), b),
            facility_staff: loader(StaffByFacility(tx.clone(), actor.cloned()), b),
            facility_appointments: loader(AppointmentsByFacility(tx.clone()), b),
            transactions_by_patient: loader(TransactionsByPatient(tx.clone()), b),
            balances: loader(BalancesByPatient(tx.clone()), b),
            threads_by_patient: loader(ThreadsByPatient(tx.clone()), b),
            messages_by_thread: loader(MessagesByThread(tx.clone()), b),
            thread: loader(ThreadById(tx.clone()), b),
            participants: loader(ParticipantsByThread(tx.clone()), b),
            attachments: loader(AttachmentsByMessage(tx.clone()), b),
            revisions: loader(RevisionsByMessage(tx.clone()), b),
            participant_names: loader(ParticipantNames(tx.clone()), b),
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
