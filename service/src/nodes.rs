//! Objects by id alone, whatever their type (Relay's `node(id:)`).
//!
//! Every id is a ULID, unique across all tables, so an id names one object.
//! Everything here runs under the request's row-level security: an object
//! of another clinic, or one the caller may not see, is not found — exactly
//! like an id that names nothing.

use std::collections::HashMap;

use entity::{
    appointment, audit_event, care_team_assignment, consent_document, contact_method, diagnosis,
    organization, patient_insurance, payer_authorization, proxy_assignment, session_event,
    staff_credential, user, user_consent,
};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Statement};
use uuid::Uuid;

use crate::Tx;
use crate::error::{DbResultExt, ServiceResult};
use crate::sql::uuid_array;

/// The kinds of object an id may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Patient,
    ContactMethod,
    Provider,
    Appointment,
    CareTeamAssignment,
    PayerAuthorization,
    ProxyAssignment,
    AuditEvent,
    ConsentDocument,
    UserConsent,
    Organization,
    User,
    Credential,
    Insurance,
    Diagnosis,
    TherapySession,
    SessionEvent,
    Claim,
    Facility,
}

impl Kind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "patients" => Self::Patient,
            "contact_methods" => Self::ContactMethod,
            "providers" => Self::Provider,
            "appointments" => Self::Appointment,
            "care_team_assignments" => Self::CareTeamAssignment,
            "payer_authorizations" => Self::PayerAuthorization,
            "proxy_assignments" => Self::ProxyAssignment,
            "audit_events" => Self::AuditEvent,
            "consent_documents" => Self::ConsentDocument,
            "user_consents" => Self::UserConsent,
            "organizations" => Self::Organization,
            "users" => Self::User,
            "staff_credentials" => Self::Credential,
            "patient_insurances" => Self::Insurance,
            "diagnoses" => Self::Diagnosis,
            "therapy_sessions" => Self::TherapySession,
            "session_events" => Self::SessionEvent,
            "claims" => Self::Claim,
            "facilities" => Self::Facility,
            _ => return None,
        })
    }
}

/// Which visible object each id names, in one statement.
#[tracing::instrument(skip_all, name = "nodes.kinds", level = "debug", fields(ids = ids.len()))]
pub async fn kinds(tx: &Tx, ids: &[Uuid]) -> ServiceResult<HashMap<Uuid, Kind>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // Each table with what makes a row live: not soft-deleted, and, for
    // what belongs to a chart, a chart that is not soft-deleted either —
    // the same rows every other path shows. (Table names and conditions
    // are this constant list, never input.)
    const LIVE_PATIENT: &str = "EXISTS (SELECT 1 FROM patients p \
         WHERE p.organization_id = t.organization_id AND p.id = t.patient_id AND p.deleted_at IS NULL)";
    let tables: [(&str, String); 19] = [
        ("patients", "t.deleted_at IS NULL".to_owned()),
        (
            "contact_methods",
            format!("t.deleted_at IS NULL AND {LIVE_PATIENT}"),
        ),
        ("providers", "t.deleted_at IS NULL".to_owned()),
        (
            "appointments",
            format!("t.deleted_at IS NULL AND {LIVE_PATIENT}"),
        ),
        ("care_team_assignments", LIVE_PATIENT.to_owned()),
        (
            "payer_authorizations",
            format!("t.deleted_at IS NULL AND {LIVE_PATIENT}"),
        ),
        ("proxy_assignments", LIVE_PATIENT.to_owned()),
        ("audit_events", "true".to_owned()),
        ("consent_documents", "true".to_owned()),
        ("user_consents", "true".to_owned()),
        ("organizations", "t.deleted_at IS NULL".to_owned()),
        ("users", "t.deleted_at IS NULL".to_owned()),
        ("staff_credentials", "t.deleted_at IS NULL".to_owned()),
        (
            "patient_insurances",
            format!("t.deleted_at IS NULL AND {LIVE_PATIENT}"),
        ),
        (
            "diagnoses",
            format!("t.deleted_at IS NULL AND {LIVE_PATIENT}"),
        ),
        ("therapy_sessions", LIVE_PATIENT.to_owned()),
        ("session_events", LIVE_PATIENT.to_owned()),
        ("claims", LIVE_PATIENT.to_owned()),
        ("facilities", "true".to_owned()),
    ];
    let sql = tables
        .iter()
        .map(|(table, live)| {
            format!("SELECT t.id, '{table}' AS kind FROM {table} t WHERE t.id = ANY ($1::uuid[]) AND {live}")
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let rows = tx
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [uuid_array(ids.iter().copied())],
        ))
        .await
        .or_db("looking up objects by id")?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get("", "id").or_db("reading an object's id")?;
        let kind: String = row.try_get("", "kind").or_db("reading an object's kind")?;
        if let Some(kind) = Kind::parse(&kind) {
            out.insert(id, kind);
        }
    }
    Ok(out)
}

macro_rules! by_ids {
    ($name:ident, $entity:ident, $what:literal, $span:literal) => {
        /// The visible rows among `ids`.
        #[tracing::instrument(skip_all, name = $span, level = "debug", fields(ids = ids.len()))]
        pub async fn $name(tx: &Tx, ids: &[Uuid]) -> ServiceResult<Vec<$entity::Model>> {
            $entity::Entity::find()
                .filter($entity::Column::Id.is_in(ids.iter().copied()))
                .all(tx)
                .await
                .or_db($what)
        }
    };
}

by_ids!(
    contact_methods,
    contact_method,
    "loading contact methods",
    "nodes.contact_methods"
);
by_ids!(
    appointments,
    appointment,
    "loading appointments",
    "nodes.appointments"
);
by_ids!(
    care_team,
    care_team_assignment,
    "loading care team rows",
    "nodes.care_team"
);
by_ids!(
    authorizations,
    payer_authorization,
    "loading authorizations",
    "nodes.authorizations"
);
by_ids!(
    proxies,
    proxy_assignment,
    "loading proxy grants",
    "nodes.proxies"
);
by_ids!(
    audit_events,
    audit_event,
    "loading audit events",
    "nodes.audit_events"
);
by_ids!(
    consent_documents,
    consent_document,
    "loading consent documents",
    "nodes.consent_documents"
);
by_ids!(
    user_consents,
    user_consent,
    "loading consents",
    "nodes.user_consents"
);
by_ids!(
    organizations,
    organization,
    "loading clinics",
    "nodes.organizations"
);
by_ids!(users, user, "loading users", "nodes.users");
by_ids!(
    credentials,
    staff_credential,
    "loading credentials",
    "nodes.credentials"
);
by_ids!(diagnoses, diagnosis, "loading diagnoses", "nodes.diagnoses");
by_ids!(
    session_events,
    session_event,
    "loading session events",
    "nodes.session_events"
);
by_ids!(
    insurances,
    patient_insurance,
    "loading coverages",
    "nodes.insurances"
);
