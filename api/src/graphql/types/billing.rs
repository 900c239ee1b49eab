//! Payer authorizations.

use async_graphql::{Context, InputObject, Object};
use entity::payer_authorization;
use uuid::Uuid;

use super::patient::Patient;
use crate::error::{GqlResult, IntoGql};
use crate::graphql::scalars::Date;
use crate::graphql::scope::ScopeExt;

pub struct PayerAuthorization(pub payer_authorization::Model);

#[Object]
impl PayerAuthorization {
    async fn id(&self) -> Uuid {
        self.0.id
    }
    async fn payer_name(&self) -> &str {
        &self.0.payer_name
    }
    async fn authorization_number(&self) -> &str {
        &self.0.authorization_number
    }
    async fn service_code(&self) -> &str {
        &self.0.service_code
    }
    async fn total_units(&self) -> i32 {
        self.0.total_units
    }
    async fn used_units(&self) -> i32 {
        self.0.used_units
    }
    async fn remaining_units(&self) -> i32 {
        self.0.total_units - self.0.used_units
    }
    async fn valid_from(&self) -> Date {
        Date(self.0.valid_from)
    }
    /// Last day units may be reserved (inclusive, in the clinic's time zone).
    async fn valid_to(&self) -> Date {
        Date(self.0.valid_to)
    }
    async fn patient(&self, ctx: &Context<'_>) -> GqlResult<Option<Patient>> {
        let row = ctx
            .loaders()?
            .patient
            .load_one(self.0.patient_id.into())
            .await
            .gql()?;
        Ok(Patient::returned(ctx, row.into_iter().collect())?.pop())
    }
}

#[derive(InputObject)]
pub struct CreateAuthorizationInput {
    pub patient_id: Uuid,
    pub payer_name: String,
    pub authorization_number: String,
    pub service_code: String,
    pub total_units: i32,
    pub valid_from: Date,
    pub valid_to: Date,
}
