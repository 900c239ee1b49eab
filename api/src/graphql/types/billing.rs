//! Payer authorizations.

use async_graphql::{Context, ID, InputObject, Object};
use entity::payer_authorization;
use uuid::Uuid;

use super::patient::Patient;
use crate::error::{GqlResult, IntoGql};
use crate::graphql::scalars::Date;
use crate::graphql::scope::ScopeExt;

#[derive(Clone)]
pub struct PayerAuthorization(pub payer_authorization::Model);

/// A payer's (insurer's) prior authorization for a patient: so many units
/// of one service, usable between two dates. Units are reserved as care is
/// scheduled and released when it is not given. Staff see every patient's;
/// a proxy, those of patients whose billing they may view.
#[Object]
impl PayerAuthorization {
    /// The authorization's id. A Relay node id: the object's UUID, which every argument taking a
    /// UUID accepts.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The payer (insurer) that granted it.
    async fn payer_name(&self) -> &str {
        &self.0.payer_name
    }
    /// The payer's reference for it; unique per payer within the clinic.
    async fn authorization_number(&self) -> &str {
        &self.0.authorization_number
    }
    /// The service the units are for, as the payer codes it (e.g. a CPT or
    /// HCPCS code).
    async fn service_code(&self) -> &str {
        &self.0.service_code
    }
    /// Units the payer approved in all.
    async fn total_units(&self) -> i32 {
        self.0.total_units
    }
    /// Units reserved so far (0 to `totalUnits`).
    async fn used_units(&self) -> i32 {
        self.0.used_units
    }
    /// Units still available: `totalUnits - usedUnits`.
    async fn remaining_units(&self) -> i32 {
        self.0.total_units - self.0.used_units
    }
    /// First day units may be reserved (inclusive, in the clinic's time zone).
    async fn valid_from(&self) -> Date {
        Date(self.0.valid_from)
    }
    /// Last day units may be reserved (inclusive, in the clinic's time zone).
    async fn valid_to(&self) -> Date {
        Date(self.0.valid_to)
    }
    /// The patient it covers; null when the caller may see the
    /// authorization but not the chart (a proxy without profile access).
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

/// A payer's authorization to record.
#[derive(InputObject)]
pub struct CreateAuthorizationInput {
    /// The patient it covers (BAD_USER_INPUT on `patientId` when there is no
    /// such patient).
    pub patient_id: Uuid,
    /// The payer (insurer): 1 to 200 characters.
    pub payer_name: String,
    /// The payer's reference for it: 1 to 64 characters, unique per payer
    /// within the clinic (CONFLICT DUPLICATE_AUTHORIZATION).
    pub authorization_number: String,
    /// The service the units are for, as the payer codes it: 1 to 32
    /// characters.
    pub service_code: String,
    /// Units approved: a positive number.
    pub total_units: i32,
    /// First day units may be reserved (inclusive, in the clinic's time zone).
    pub valid_from: Date,
    /// Last day units may be reserved (inclusive); not before `validFrom`.
    pub valid_to: Date,
}
