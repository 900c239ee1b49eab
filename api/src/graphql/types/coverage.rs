//! A patient's insurance coverages and diagnoses: what a claim bills to
//! whom, and for what.

use async_graphql::{Context, ID, InputObject, Object};
use entity::{diagnosis, patient_insurance};
use service::insurance::OtherSubscriber;
use uuid::Uuid;

use super::address::{AddressInput, PostalAddress, address_fields};
use super::enums::{CoveragePriority, SubscriberRelationship, SubscriberSex};
use crate::error::{GqlResult, IntoGql};
use crate::graphql::scalars::Date;
use crate::graphql::scope::ScopeExt;

#[derive(Clone)]
pub struct Insurance(pub patient_insurance::Model);

/// A patient's insurance coverage: the payer, the member's ids, and the
/// subscriber (the policy holder: the patient or someone else). Staff see
/// every patient's; a proxy, those of patients whose billing they may view.
#[Object]
impl Insurance {
    /// The coverage's id.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The payer (insurer), as it appears on claims.
    async fn payer_name(&self) -> &str {
        &self.0.payer_name
    }
    /// The payer's id for electronic claims (e.g. `60054`).
    async fn payer_id(&self) -> &str {
        &self.0.payer_id
    }
    /// The subscriber's member id; null while unknown (a claim cannot be
    /// submitted without it). In full to ADMIN and STAFF and to a patient
    /// or proxy allowed to see the patient's billing (each such read an
    /// audit event naming the field); masked (`********7301`) to providers.
    /// Stored encrypted.
    async fn member_id(&self, ctx: &Context<'_>) -> GqlResult<Option<String>> {
        let actor = ctx.clinical_actor()?;
        let keyring = ctx.shared::<std::sync::Arc<service::phi::Keyring>>()?;
        let scope = ctx.scope()?;
        service::insurance::member_id_shown(&scope.tx, actor, keyring, &self.0)
            .await
            .gql()
    }
    /// The group (plan) number; null when the plan has none.
    async fn group_number(&self) -> Option<&str> {
        self.0.group_number.as_deref()
    }
    /// Which payer is billed first; one active coverage per priority.
    async fn priority(&self) -> CoveragePriority {
        self.0.priority.into()
    }
    /// The claim filing indicator its claims carry (837P SBR09): `CI`
    /// commercial, `MB` Medicare part B, `MC` Medicaid, `BL` Blue Cross/Blue
    /// Shield, `HM` HMO, …
    async fn claim_filing_code(&self) -> &str {
        &self.0.claim_filing_code
    }
    /// The patient's relationship to the subscriber.
    async fn relationship(&self) -> SubscriberRelationship {
        self.0.relationship.into()
    }
    /// The subscriber's given name; null when the patient is the subscriber.
    async fn subscriber_first_name(&self) -> Option<&str> {
        self.0.subscriber_first_name.as_deref()
    }
    /// The subscriber's family name; null when the patient is the subscriber.
    async fn subscriber_last_name(&self) -> Option<&str> {
        self.0.subscriber_last_name.as_deref()
    }
    /// The subscriber's date of birth; null when the patient is the
    /// subscriber.
    async fn subscriber_date_of_birth(&self) -> Option<Date> {
        self.0.subscriber_date_of_birth.map(Date)
    }
    /// The subscriber's sex; null when the patient is the subscriber.
    async fn subscriber_sex(&self) -> Option<SubscriberSex> {
        self.0.subscriber_sex.map(Into::into)
    }
    /// The subscriber's address; null when the patient is the subscriber
    /// (the patient's address is used) or none was given.
    async fn subscriber_address(&self) -> Option<PostalAddress> {
        let m = &self.0;
        PostalAddress::from_parts(
            &m.subscriber_address_line1,
            &m.subscriber_address_line2,
            &m.subscriber_city,
            &m.subscriber_state,
            &m.subscriber_postal_code,
        )
    }
    /// First day covered.
    async fn effective_from(&self) -> Date {
        Date(self.0.effective_from)
    }
    /// Last day covered; null when open-ended.
    async fn effective_to(&self) -> Option<Date> {
        self.0.effective_to.map(Date)
    }
    /// False once ended (`updateInsurance` with `isActive: false`): kept,
    /// never billed again.
    async fn is_active(&self) -> bool {
        self.0.is_active
    }
}

/// The subscriber (policy holder) when it is not the patient.
#[derive(InputObject)]
pub struct SubscriberInput {
    /// The patient's relationship to the subscriber (not SELF: leave
    /// `subscriber` out when the patient is the subscriber).
    pub relationship: SubscriberRelationship,
    /// Given name: 1 to 35 characters.
    pub first_name: String,
    /// Family name: 1 to 60 characters.
    pub last_name: String,
    /// Date of birth.
    pub date_of_birth: Date,
    /// Sex as the payer records it.
    pub sex: SubscriberSex,
    /// The subscriber's address, when it differs from the patient's.
    pub address: Option<AddressInput>,
}

impl SubscriberInput {
    pub fn parse(self) -> GqlResult<OtherSubscriber> {
        let address = self
            .address
            .as_ref()
            .map(|a| a.parse(&address_fields!("subscriber.address")))
            .transpose()?;
        Ok(OtherSubscriber {
            relationship: self.relationship.into(),
            first_name: self.first_name,
            last_name: self.last_name,
            date_of_birth: self.date_of_birth.0,
            sex: self.sex.into(),
            address,
        })
    }
}

/// A coverage to record.
#[derive(InputObject)]
pub struct AddInsuranceInput {
    /// The patient (BAD_USER_INPUT on `patientId` when there is no such
    /// patient).
    pub patient_id: Uuid,
    /// The payer's name: 1 to 60 characters.
    pub payer_name: String,
    /// The payer's electronic id: 2 to 15 letters or digits.
    pub payer_id: String,
    /// The member id on the card: 1 to 80 letters, digits or `-`; may be
    /// left out while the coverage is verified (claims need it).
    pub member_id: Option<String>,
    /// The group number: 1 to 50 letters, digits or `-`.
    pub group_number: Option<String>,
    /// Which payer is billed first: one active coverage per priority
    /// (CONFLICT COVERAGE_PRIORITY_TAKEN).
    pub priority: CoveragePriority,
    /// The kind of plan, as claims say it (837P SBR09): one of the guide's
    /// 23 codes, e.g. `CI` commercial (when omitted), `MB` Medicare part B,
    /// `MC` Medicaid, `BL` Blue Cross/Blue Shield, `HM` HMO.
    pub claim_filing_code: Option<String>,
    /// The subscriber when it is not the patient; leave out when the
    /// patient holds the policy.
    pub subscriber: Option<SubscriberInput>,
    /// First day covered.
    pub effective_from: Date,
    /// Last day covered; omit when open-ended.
    pub effective_to: Option<Date>,
}

/// Changes to a coverage: only the fields given change.
#[derive(InputObject)]
pub struct UpdateInsuranceInput {
    /// The member id (1 to 80 letters, digits or `-`).
    pub member_id: Option<String>,
    /// The group number (1 to 50 letters, digits or `-`).
    pub group_number: Option<String>,
    /// A new priority (CONFLICT COVERAGE_PRIORITY_TAKEN when another active
    /// coverage has it).
    pub priority: Option<CoveragePriority>,
    /// A new claim filing indicator (e.g. `MC`).
    pub claim_filing_code: Option<String>,
    /// A new subscriber (not the patient).
    pub subscriber: Option<SubscriberInput>,
    /// The patient is now the subscriber (clears the subscriber's details).
    pub patient_is_subscriber: Option<bool>,
    /// Last day covered.
    pub effective_to: Option<Date>,
    /// False ends the coverage: it is kept but never billed again.
    pub is_active: Option<bool>,
}

#[derive(Clone)]
pub struct Diagnosis(pub diagnosis::Model);

/// A diagnosis of the patient (ICD-10-CM). Staff see every patient's; a
/// proxy, those of patients whose clinical notes they may view.
#[Object]
impl Diagnosis {
    /// The diagnosis's id.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The ICD-10-CM code, with its dot (e.g. `F84.0`).
    async fn code(&self) -> &str {
        &self.0.code
    }
    /// A description, as the clinician wrote it; null when none.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// The primary diagnosis comes first on a claim; at most one per patient.
    async fn is_primary(&self) -> bool {
        self.0.is_primary
    }
    /// When it was diagnosed.
    async fn diagnosed_on(&self) -> Date {
        Date(self.0.diagnosed_on)
    }
}

/// A diagnosis to record.
#[derive(InputObject)]
pub struct AddDiagnosisInput {
    /// The patient (BAD_USER_INPUT on `patientId` when there is no such
    /// patient).
    pub patient_id: Uuid,
    /// An ICD-10-CM code, with or without its dot (`F84.0`, `F840`); an
    /// open one is recorded once per patient (CONFLICT DUPLICATE_DIAGNOSIS).
    pub code: String,
    /// A description: up to 200 characters; blank means none.
    pub description: Option<String>,
    /// Make it the primary diagnosis (the current primary stays, no longer
    /// primary).
    #[graphql(default = false)]
    pub is_primary: bool,
    /// When it was diagnosed.
    pub diagnosed_on: Date,
}
