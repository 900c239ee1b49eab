//! Providers.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, ID, InputObject, Object};
use entity::provider;
use service::domain::ProviderId;
use service::pagination::NameKey;
use service::providers::ProviderFilter as Filter;

use service::appointments::Owner;

use super::appointment::{self, AppointmentConnection, AppointmentTotal};
use super::connection::page_request;
use super::patient::{self, PatientConnection, PatientTotal};
use crate::error::{ApiError, GqlResult, IntoGql};
use crate::graphql::scope::ScopeExt;

#[derive(Clone)]
pub struct Provider(pub provider::Model);

/// A clinician of the active clinic. Every signed-in caller of the clinic
/// may see its providers.
#[Object]
impl Provider {
    /// The provider's id. A Relay node id: the object's UUID, which every argument taking a
    /// UUID accepts.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The name to show (e.g. "Dr. Amara Okafor").
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// National Provider Identifier (10 digits, Luhn-checked).
    async fn npi(&self) -> &str {
        &self.0.npi
    }
    /// DEA registration number (two letters and seven digits), for
    /// providers who prescribe controlled substances; null when none.
    async fn dea_number(&self) -> Option<&str> {
        self.0.dea_number.as_deref()
    }
    /// The provider's specialty as the clinic wrote it (e.g. "Family Medicine");
    /// null when none.
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
    /// Whether the provider practises at the clinic now: only active
    /// providers can be booked or added to care teams.
    async fn is_active(&self) -> bool {
        self.0.is_active
    }

    /// The provider's appointments by start time, from `from` on when given.
    /// Staff only (FORBIDDEN, reason ROLE, for patients and proxies).
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn appointments(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
        after: Option<String>,
        #[graphql(desc = "Only appointments ending after this instant (still running \
                          or upcoming then). Omit for all, past ones included.")]
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

    /// Licences and certifications, by start date (staff only: FORBIDDEN
    /// for patients and proxies).
    async fn credentials(&self, ctx: &Context<'_>) -> GqlResult<Vec<super::clinic::Credential>> {
        ctx.clinical_actor()?.require_staff().gql()?;
        let rows = ctx
            .loaders()?
            .credentials
            .load_one(self.0.id.into())
            .await
            .gql()?;
        Ok(rows
            .unwrap_or_default()
            .into_iter()
            .map(super::clinic::Credential)
            .collect())
    }

    /// Patients with this provider on their active care team, by name (a
    /// patient or proxy: only the ones they may see).
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn patients(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
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

/// Which providers to list; every field given narrows the list (all of
/// them must match).
#[derive(InputObject, Default)]
pub struct ProviderFilter {
    /// Words matched against the name.
    pub search: Option<String>,
    /// Only providers of this specialty (the whole name, in any case).
    pub specialty: Option<String>,
    /// Only active (true) or only inactive (false) providers.
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
    /// How many providers match the filter, across all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> GqlResult<i64> {
        let scope = ctx.scope()?;
        Ok(service::providers::count(&scope.tx, &self.0).await.gql()? as i64)
    }
}

pub type ProviderConnection = Connection<OpaqueCursor<NameKey>, Provider, ProviderTotal>;

/// The description of `ProviderConnection` (async-graphql generates the
/// type; `graphql::builder` gives it this).
pub const CONNECTION_DESCRIPTION: &str = "\
    A page of providers, by name. Ask for the next page with `after:\n\
    pageInfo.endCursor` while `pageInfo.hasNextPage`.";

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

/// A provider to add. Text is trimmed; a value that breaks a rule below is
/// BAD_USER_INPUT on its field.
#[derive(InputObject)]
pub struct CreateProviderInput {
    /// The name to show: 1 to 200 characters.
    pub name: String,
    /// National Provider Identifier: 10 digits, the last a Luhn check digit;
    /// unique among the clinic's active providers (CONFLICT DUPLICATE_NPI).
    pub npi: String,
    /// DEA registration number: two capital letters (the second may be `9`)
    /// and seven digits. Omit or leave blank when none.
    pub dea_number: Option<String>,
    /// Specialty (up to 200 characters). Omit or leave blank when none.
    pub specialty: Option<String>,
    /// Two-letter codes (capitals, e.g. `NY`) of the states the provider is
    /// licensed in; none when omitted.
    #[graphql(default)]
    pub state_licenses: Vec<String>,
}
