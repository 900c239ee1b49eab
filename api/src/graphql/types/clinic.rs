//! What a clinic sets up to treat and bill: staff credentials, its billing
//! identity, its fee schedule and its session event catalogue.

use async_graphql::{ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, FixedOffset};
use entity::{fee_schedule_entry, session_event_type, staff_credential};
use uuid::Uuid;

use super::address::AddressInput;
use super::enums::CredentialKind;
use crate::graphql::scalars::Date;

#[derive(Clone)]
pub struct Credential(pub staff_credential::Model);

/// A provider's licence or certification. Clinic staff see them; patients
/// and proxies do not.
#[Object]
impl Credential {
    /// The credential's id.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Licence or certification.
    async fn kind(&self) -> CredentialKind {
        self.0.kind.into()
    }
    /// What it is (e.g. "Licensed Clinical Social Worker").
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Its number, as issued.
    async fn number(&self) -> &str {
        &self.0.number
    }
    /// The issuing state's two-letter code; null for a national
    /// certification.
    async fn issuing_state(&self) -> Option<&str> {
        self.0.issuing_state.as_deref()
    }
    /// First day valid.
    async fn valid_from(&self) -> Date {
        Date(self.0.valid_from)
    }
    /// Last day valid; null when it does not expire.
    async fn valid_to(&self) -> Option<Date> {
        self.0.valid_to.map(Date)
    }
}

/// A licence or certification to record.
#[derive(InputObject)]
pub struct AddCredentialInput {
    /// The provider (BAD_USER_INPUT on `providerId` when there is no such
    /// provider).
    pub provider_id: Uuid,
    /// Licence or certification.
    pub kind: CredentialKind,
    /// What it is: 1 to 100 characters.
    pub name: String,
    /// Its number: 1 to 50 characters (the same number is recorded once per
    /// provider, kind and state: CONFLICT DUPLICATE_CREDENTIAL).
    pub number: String,
    /// The issuing state's two-letter code; required for a licence.
    pub issuing_state: Option<String>,
    /// First day valid.
    pub valid_from: Date,
    /// Last day valid; omit when it does not expire.
    pub valid_to: Option<Date>,
}

/// The clinic's identity on its claims (the billing provider of an 837P).
#[derive(SimpleObject)]
pub struct BillingIdentity {
    /// The clinic's group NPI.
    pub group_npi: Option<String>,
    /// The clinic's tax id (EIN), 9 digits: in full to ADMIN and STAFF
    /// (each such read audited), masked to providers. Stored encrypted.
    pub tax_id: Option<String>,
    /// The billing office's phone, 10 digits.
    pub phone: Option<String>,
    /// The billing address; its state is the clinic's state for licences.
    pub address: Option<super::address::PostalAddress>,
}

/// The clinic's billing identity to set.
#[derive(InputObject)]
pub struct BillingIdentityInput {
    /// The group NPI: 10 digits with a valid check digit.
    pub group_npi: String,
    /// The tax id (EIN): 9 digits (`12-3456789` accepted).
    pub tax_id: String,
    /// The billing office's US phone number (10 digits; punctuation allowed).
    pub phone: String,
    /// The billing address (ZIP+4, as 837P claims require). Its state is
    /// the clinic's state: providers render sessions with a licence issued
    /// there.
    pub address: AddressInput,
}

#[derive(Clone)]
pub struct FeeScheduleEntry(pub fee_schedule_entry::Model);

/// What the clinic charges per unit of a service, from a date on (until the
/// next entry of the same code).
#[Object]
impl FeeScheduleEntry {
    /// The entry's id.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The CPT/HCPCS code.
    async fn service_code(&self) -> &str {
        &self.0.service_code
    }
    /// The charge per unit, in cents.
    async fn unit_charge_cents(&self) -> i64 {
        self.0.unit_charge_cents
    }
    /// The first day it applies.
    async fn effective_from(&self) -> Date {
        Date(self.0.effective_from)
    }
}

#[derive(Clone)]
pub struct SessionEventType(pub session_event_type::Model);

/// A kind of clinical event the clinic records in therapy sessions.
#[Object]
impl SessionEventType {
    /// The type's id.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Its code, as events name it (e.g. `GOAL_PROGRESS`).
    async fn code(&self) -> &str {
        &self.0.code
    }
    /// What it records.
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// When it was added.
    async fn created_at(&self) -> DateTime<FixedOffset> {
        self.0.created_at
    }
}
