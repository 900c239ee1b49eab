//! GraphQL enums, each mirroring a database check constraint.

use async_graphql::Enum;

/// A patient's sex as recorded for legal and insurance purposes.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::patient::LegalSex")]
pub enum LegalSex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Recorded as neither female nor male.
    Other,
    /// Not known or not recorded.
    Unknown,
}

/// Whether a patient's chart is open.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::patient::PatientStatus")]
pub enum PatientStatus {
    /// Enrolled: appointments can be booked and providers added to the care
    /// team.
    Active,
    /// Closed by `dischargePatient` (see `dischargedAt`). The chart is kept
    /// and can still be read, but no appointment can be booked for it and no
    /// provider added to its care team.
    Discharged,
}

/// A provider's role on a patient's care team.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::care_team_assignment::CareTeamRole")]
pub enum CareTeamRole {
    /// The provider mainly responsible for the patient: at most one at a
    /// time (`Patient.primaryProvider`; change it with
    /// `assignPrimaryProvider`).
    Primary,
    /// A specialist treating the patient; a replaced primary stays on the
    /// team as one.
    Specialist,
    /// A provider consulted about the patient.
    Consultant,
}

/// What kind of address a contact method is.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::contact_method::ContactMethodType")]
pub enum ContactMethodType {
    /// A mobile phone number.
    Mobile,
    /// A home phone number.
    Home,
    /// A work phone number.
    Work,
    /// An email address (never safe for voicemail).
    Email,
}

/// Where the clinic's caregate subscription stands.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::organization::SubscriptionStatus")]
pub enum SubscriptionStatus {
    /// A trial.
    Trial,
    /// Paid and current.
    Active,
    /// A payment is overdue.
    PastDue,
    /// Ended.
    Cancelled,
}

/// A caller's role in the active clinic. PORTAL is a patient or a proxy
/// (parent, guardian) acting for patients they were granted.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "service::Role")]
pub enum Role {
    /// Runs the clinic: all STAFF may do, and adds providers and reads the
    /// audit trail.
    Admin,
    /// A clinician: works with charts, care teams, appointments and
    /// authorizations, but does not grant or revoke proxy access.
    Provider,
    /// Clinic staff: works with charts, care teams, appointments,
    /// authorizations and proxy grants.
    Staff,
    /// A patient, or a proxy acting for patients: sees only the charts they
    /// hold or were granted, within the grant's permissions. Of the
    /// clinic's data they change nothing but appointments they may
    /// schedule (booking, cancelling).
    Portal,
}

/// Where an appointment is in its life: SCHEDULED -> CONFIRMED ->
/// CHECKED_IN -> COMPLETED, or CANCELLED / NO_SHOW from SCHEDULED or
/// CONFIRMED (see `transitionAppointment`).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::appointment::AppointmentStatus")]
pub enum AppointmentStatus {
    /// Booked; every appointment starts here.
    Scheduled,
    /// The patient confirmed they will come.
    Confirmed,
    /// The patient has arrived.
    CheckedIn,
    /// The visit took place. Final.
    Completed,
    /// Called off, with a reason (`cancelReason`). Final.
    Cancelled,
    /// The patient did not come. Final.
    NoShow,
}

/// How an appointment takes place.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::appointment::AppointmentType")]
pub enum AppointmentType {
    /// At the clinic (the default when booking).
    InPerson,
    /// By video.
    Telehealth,
    /// By telephone.
    Phone,
}

/// How a proxy is related to the patient they act for (recorded with the
/// grant; what the proxy may do is set by the grant's permissions, not by
/// this).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::proxy_assignment::ProxyRelationship")]
pub enum ProxyRelationship {
    /// A parent.
    Parent,
    /// A legal guardian (the default when granting).
    Guardian,
    /// A caregiver.
    Caregiver,
    /// Any other relationship.
    Other,
}

/// Which legal document a consent document is.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::consent_document::ConsentKind")]
pub enum ConsentKind {
    /// The terms of service.
    Tos,
    /// The HIPAA Notice of Privacy Practices. Until its version in force is
    /// signed, patient data is refused (FORBIDDEN, reason CONSENT_REQUIRED).
    HipaaNotice,
    /// The privacy policy.
    PrivacyPolicy,
}

/// What an audit event records.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::audit_event::AuditAction")]
pub enum AuditAction {
    /// A row was created.
    Create,
    /// Patients' data was returned to the caller: one event per request,
    /// naming the patient (`resourceId`) or listing them (`resourceIds`).
    Read,
    /// A row was changed.
    Update,
    /// A row was deleted (a soft delete counts as one).
    Delete,
    /// A session was opened.
    Login,
    /// A session was ended.
    Logout,
    /// A login was refused: wrong credentials, or a clinic the user may not
    /// act in.
    AccessDenied,
    /// Emergency access to a patient outside the caller's scope was opened
    /// (break-glass); `changes` holds the purpose, reason and expiry.
    BreakGlass,
    /// Patients' data was returned under break-glass access: like READ,
    /// for the patients reached only through it.
    BreakGlassRead,
}

/// What a staff credential is.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::staff_credential::CredentialKind")]
pub enum CredentialKind {
    /// A state licence to practise (names its issuing state): a provider
    /// renders therapy sessions only with one of the clinic's state, valid
    /// on the session's day.
    License,
    /// A professional certification (e.g. a board certification).
    Certification,
}

/// Which payer a coverage is billed to first.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::patient_insurance::CoveragePriority")]
pub enum CoveragePriority {
    /// Billed first.
    Primary,
    /// Billed after the primary payer.
    Secondary,
    /// Billed after the secondary payer.
    Tertiary,
}

/// The patient's relationship to a coverage's subscriber (the policy
/// holder).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::patient_insurance::SubscriberRelationship")]
pub enum SubscriberRelationship {
    /// The patient is the subscriber.
    #[graphql(name = "SELF")]
    SelfInsured,
    /// The patient is the subscriber's spouse.
    Spouse,
    /// The patient is the subscriber's child.
    Child,
    /// Another relationship.
    Other,
}

/// A subscriber's sex as the payer records it.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::patient_insurance::SubscriberSex")]
pub enum SubscriberSex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Not known.
    Unknown,
}

/// Where a therapy session stands.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::therapy_session::SessionStatus")]
pub enum SessionStatus {
    /// Started, not ended: events are being recorded.
    InProgress,
    /// Ended: units computed and consumed from the authorization; awaiting
    /// the provider's signature.
    Completed,
    /// Signed by its rendering provider: locked. Events recorded later are
    /// addenda.
    Signed,
}

/// Where a claim stands: DRAFT → SUBMITTED → ACCEPTED or REJECTED;
/// ACCEPTED → PAID or DENIED.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::claim::ClaimStatus")]
pub enum ClaimStatus {
    /// Created, not sent.
    Draft,
    /// Sent to the payer (its 837P rendered and checked).
    Submitted,
    /// The payer accepted it for adjudication.
    Accepted,
    /// The payer's front end rejected it; its sessions may be billed again.
    Rejected,
    /// Paid (see `paidCents`).
    Paid,
    /// Adjudicated and denied.
    Denied,
}

/// A person's role at one facility.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::facility_staff::FacilityRole")]
pub enum FacilityRole {
    /// Runs the site.
    Manager,
    /// Checks patients in and books their visits.
    FrontDesk,
    /// Sees patients there.
    Clinician,
    /// Handles the site's billing.
    Billing,
}

/// Whose account a billing transaction is on.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::billing_transaction::AccountOwner")]
pub enum AccountOwner {
    /// A patient's account.
    Patient,
    /// The clinic's own account.
    Clinic,
}

/// What a billing transaction is.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::billing_transaction::TransactionKind")]
pub enum TransactionKind {
    /// Money received.
    Payment,
    /// Money returned from a payment.
    Refund,
    /// A charge (positive) or a write-off (negative).
    Adjustment,
}

/// Where a billing transaction stands; only SUCCEEDED ones count.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::billing_transaction::TransactionStatus")]
pub enum TransactionStatus {
    /// Awaiting the processor.
    Pending,
    /// Done.
    Succeeded,
    /// The processor refused it.
    Failed,
    /// Withdrawn before it was done.
    Cancelled,
}

/// What an override of a clinic's plan does.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::subscription_override::OverrideKind")]
pub enum SubscriptionOverrideKind {
    /// The clinic uses caregate free of charge (status ACTIVE).
    Free,
    /// The trial runs until `trialEndsOn` (status TRIAL).
    TrialExtension,
    /// The subscription is cancelled by hand (status CANCELLED).
    ManualCancel,
    /// A discount of `discountPercent` on the plan.
    Discount,
}
