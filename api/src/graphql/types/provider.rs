//! Providers.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, InputObject, Object};
use entity::provider;
use service::domain::ProviderId;
use service::pagination::NameKey;
use service::providers::ProviderFilter as Filter;
use uuid::Uuid;

use service::appointments::Owner;

use super::appointment::{self, AppointmentConnection, AppointmentTotal};
use super::connection::page_request;
use super::patient::{self, PatientConnection, PatientTotal};
use crate::error::{ApiError, GqlResult, IntoGql};
use crate::graphql::scope::ScopeExt;

pub struct Provider(pub provider::Model);

#[Object]
impl Provider {
    async fn id(&self) -> Uuid {
        self.0.id
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// National Provider Identifier (10 digits, Luhn-checked).
    async fn npi(&self) -> &str {
        &self.0.npi
    }
    async fn dea_number(&self) -> Option<&str> {
        self.0.dea_number.as_deref()
    }
    async fn specialty(&self) -> Option<&str> {
        self.0.specialty.as_deref()
    }
    /// Two-letter codes of the states the provider is licensed in.
    async fn state_licenses(&self) -> Vec<String> {
        match &self.0.state_licenses {
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }
    async fn is_active(&self) -> bool {
        self.0.is_active
    }

    /// The provider's appointments by start time, from `from` on when given.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn appointments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        from: Option<chrono::DateTime<chrono::FixedOffset>>,
    ) -> GqlResult<AppointmentConnection> {
        ctx.clinical_actor()?.require_staff().gql()?;
        let page = page_request::<service::pagination::TimeKey>(first, after)?;
        let key = (Owner::Provider(ProviderId::from(self.0.id)), from, page);
        let result = ctx
            .loaders()?
            .appointments
            .load_one(key)
            .await
            .gql()?
            .ok_or_else(ApiError::internal)?;
        appointment::connection(ctx, result, AppointmentTotal(None))
    }

    /// Patients with this provider on their active care team, by name.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn patients(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> GqlResult<PatientConnection<PatientTotal>> {
        ctx.clinical_actor()?;
        let page = page_request::<NameKey>(first, after)?;
        let provider = ProviderId::from(self.0.id);
        let key = (provider, page);
        let result = ctx
            .loaders()?
            .patients_by_provider
            .load_one(key)
            .await
            .gql()?
            .ok_or_else(ApiError::internal)?;
        patient::connection(ctx, result, PatientTotal::OfProvider(provider)).await
    }
}

#[derive(InputObject, Default)]
pub struct ProviderFilter {
    /// Words matched against the name.
    pub search: Option<String>,
    pub specialty: Option<String>,
    pub is_active: Option<bool>,
}

impl From<ProviderFilter> for Filter {
    fn from(f: ProviderFilter) -> Self {
        Filter {
            search: f.search.filter(|s| !s.trim().is_empty()),
            specialty: f.specialty,
            is_active: f.is_active,
        }
    }
}

pub struct ProviderTotal(pub Filter);

#[Object]
impl ProviderTotal {
    async fn total_count(&self, ctx: &Context<'_>) -> GqlResult<i64> {
        let scope = ctx.scope()?;
        Ok(service::providers::count(&scope.tx, &self.0).await.gql()? as i64)
    }
}

pub type ProviderConnection = Connection<OpaqueCursor<NameKey>, Provider, ProviderTotal>;

pub fn connection(
    page: service::pagination::Page<provider::Model>,
    total: ProviderTotal,
) -> ProviderConnection {
    let mut conn = Connection::with_additional_fields(false, page.has_next_page, total);
    for p in page.items {
        conn.edges.push(Edge::new(
            OpaqueCursor(service::providers::key_of(&p)),
            Provider(p),
        ));
    }
    conn
}

#[derive(InputObject)]
pub struct CreateProviderInput {
    pub name: String,
    pub npi: String,
    pub dea_number: Option<String>,
    pub specialty: Option<String>,
    #[graphql(default)]
    pub state_licenses: Vec<String>,
}
