//! Relay's global object identification: every entity is a `Node`, found
//! again by its id alone with `node(id:)` / `nodes(ids:)`.
//!
//! A node id is the object's UUID (a ULID, unique across every table): the
//! same value every other field and argument uses, typed `ID` as Relay
//! requires. An id of another clinic's object — or of one the caller may
//! not see — answers null, exactly like an id that names nothing, because
//! the lookup runs under the request's row-level security.

use std::collections::HashMap;

use async_graphql::{Context, ID, Interface};
use service::nodes::{self, Kind};
use uuid::Uuid;

use super::appointment::Appointment;
use super::audit::AuditEvent;
use super::billing::PayerAuthorization;
use super::care_team::CareTeamAssignment;
use super::claim::Claim;
use super::clinic::Credential;
use super::consent::{ConsentDocument, UserConsent};
use super::coverage::{Diagnosis, Insurance};
use super::facility::Facility;
use super::organization::{Organization, User};
use super::patient::{ContactMethod, Patient};
use super::provider::Provider;
use super::proxy::ProxyAssignment;
use super::session::{SessionEvent, TherapySession};
use crate::error::{GqlResult, IntoGql};
use crate::graphql::scope::ScopeExt;

/// An object that can be fetched again by its id alone (`node(id:)`), as
/// Relay's refetchable fragments do.
#[derive(Interface, Clone)]
#[graphql(field(
    name = "id",
    ty = "ID",
    desc = "The object's id: its UUID, unique across every type."
))]
pub enum Node {
    Patient(Patient),
    ContactMethod(ContactMethod),
    Provider(Provider),
    Appointment(Appointment),
    CareTeamAssignment(CareTeamAssignment),
    PayerAuthorization(PayerAuthorization),
    ProxyAssignment(ProxyAssignment),
    AuditEvent(AuditEvent),
    ConsentDocument(ConsentDocument),
    UserConsent(UserConsent),
    Organization(Organization),
    User(User),
    Credential(Credential),
    Insurance(Insurance),
    Diagnosis(Diagnosis),
    TherapySession(TherapySession),
    SessionEvent(SessionEvent),
    Claim(Claim),
    Facility(Facility),
}

/// The most ids one `nodes` call takes.
pub const MAX_NODES: usize = 100;

/// The objects `ids` name, in order: null where an id names nothing the
/// caller may see (or is no UUID at all).
pub async fn load(ctx: &Context<'_>, ids: &[ID]) -> GqlResult<Vec<Option<Node>>> {
    ctx.actor()?;
    let uuids: Vec<Option<Uuid>> = ids.iter().map(|id| id.parse().ok()).collect();
    let wanted: Vec<Uuid> = uuids.iter().flatten().copied().collect();
    let scope = ctx.scope()?;
    let tx = scope.tx.as_ref();
    let kinds = nodes::kinds(tx, &wanted).await.gql()?;
    let of = |kind: Kind| -> Vec<Uuid> {
        wanted
            .iter()
            .copied()
            .filter(|id| kinds.get(id) == Some(&kind))
            .collect()
    };
    // Patient data needs the HIPAA notice signed, as everywhere else.
    let clinical = [
        Kind::Patient,
        Kind::ContactMethod,
        Kind::Appointment,
        Kind::CareTeamAssignment,
        Kind::PayerAuthorization,
        Kind::ProxyAssignment,
        Kind::Insurance,
        Kind::Diagnosis,
        Kind::TherapySession,
        Kind::SessionEvent,
        Kind::Claim,
    ];
    if kinds.values().any(|k| clinical.contains(k)) {
        ctx.clinical_actor()?;
    }
    let mut found: HashMap<Uuid, Node> = HashMap::new();
    let patient_ids: Vec<service::domain::PatientId> =
        of(Kind::Patient).into_iter().map(Into::into).collect();
    if !patient_ids.is_empty() {
        let rows = service::patients::by_ids(tx, &patient_ids).await.gql()?;
        for p in Patient::returned(ctx, rows)? {
            found.insert(p.0.id, Node::Patient(p));
        }
    }
    let provider_ids: Vec<service::domain::ProviderId> =
        of(Kind::Provider).into_iter().map(Into::into).collect();
    if !provider_ids.is_empty() {
        for p in service::providers::by_ids(tx, &provider_ids).await.gql()? {
            found.insert(p.id, Node::Provider(Provider(p)));
        }
    }
    // What shows a patient's data counts as a read of that patient.
    macro_rules! load_kind {
        ($kind:expr, $fetch:path, $variant:ident, $wrap:expr, patient) => {{
            let ids = of($kind);
            if !ids.is_empty() {
                let rows = $fetch(tx, &ids).await.gql()?;
                scope.record_reads(rows.iter().map(|r| r.patient_id));
                for r in rows {
                    found.insert(r.id, Node::$variant($wrap(r)));
                }
            }
        }};
        ($kind:expr, $fetch:path, $variant:ident, $wrap:expr) => {{
            let ids = of($kind);
            if !ids.is_empty() {
                for r in $fetch(tx, &ids).await.gql()? {
                    found.insert(r.id, Node::$variant($wrap(r)));
                }
            }
        }};
    }
    load_kind!(
        Kind::ContactMethod,
        nodes::contact_methods,
        ContactMethod,
        ContactMethod,
        patient
    );
    load_kind!(
        Kind::Appointment,
        nodes::appointments,
        Appointment,
        Appointment,
        patient
    );
    load_kind!(
        Kind::CareTeamAssignment,
        nodes::care_team,
        CareTeamAssignment,
        CareTeamAssignment
    );
    load_kind!(
        Kind::PayerAuthorization,
        nodes::authorizations,
        PayerAuthorization,
        PayerAuthorization,
        patient
    );
    load_kind!(
        Kind::ProxyAssignment,
        nodes::proxies,
        ProxyAssignment,
        ProxyAssignment
    );
    load_kind!(
        Kind::AuditEvent,
        nodes::audit_events,
        AuditEvent,
        AuditEvent
    );
    load_kind!(
        Kind::ConsentDocument,
        nodes::consent_documents,
        ConsentDocument,
        ConsentDocument
    );
    load_kind!(
        Kind::UserConsent,
        nodes::user_consents,
        UserConsent,
        UserConsent
    );
    load_kind!(
        Kind::Organization,
        nodes::organizations,
        Organization,
        Organization::of
    );
    load_kind!(Kind::User, nodes::users, User, User);
    if !of(Kind::Credential).is_empty() {
        // Staff only, as `Provider.credentials` (the row policy agrees).
        ctx.clinical_actor()?.require_staff().gql()?;
    }
    load_kind!(Kind::Credential, nodes::credentials, Credential, Credential);
    load_kind!(
        Kind::Insurance,
        nodes::insurances,
        Insurance,
        Insurance,
        patient
    );
    load_kind!(
        Kind::Diagnosis,
        nodes::diagnoses,
        Diagnosis,
        Diagnosis,
        patient
    );
    load_kind!(
        Kind::TherapySession,
        service::sessions::by_ids,
        TherapySession,
        TherapySession,
        patient
    );
    load_kind!(
        Kind::SessionEvent,
        nodes::session_events,
        SessionEvent,
        SessionEvent,
        patient
    );
    load_kind!(Kind::Claim, service::claims::by_ids, Claim, Claim, patient);
    load_kind!(
        Kind::Facility,
        service::facilities::by_ids,
        Facility,
        Facility
    );
    // An id asked for twice is answered twice.
    Ok(uuids
        .into_iter()
        .map(|id| id.and_then(|id| found.get(&id).cloned()))
        .collect())
}
