//! The audit trail.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, ID, InputObject, Json, Object};
use chrono::{DateTime, FixedOffset};
use entity::audit_event;
use service::audit::AuditFilter as Filter;
use service::pagination::{Page, TimeKey};
use uuid::Uuid;

use super::enums::AuditAction;
use crate::error::{GqlResult, IntoGql};
use crate::graphql::scope::ScopeExt;

#[derive(Clone)]
pub struct AuditEvent(pub audit_event::Model);

/// One entry of the clinic's audit trail: who did what to which record,
/// when, and from where. Written by the database as the change happens (and
/// by the API for reads, logins and refusals); append-only, so no one can
/// change or delete an entry. Only clinic ADMINs see the trail.
#[Object]
impl AuditEvent {
    /// The event's id. A Relay node id: the object's UUID, which every argument taking a
    /// UUID accepts.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// When it happened (the database's clock).
    async fn occurred_at(&self) -> DateTime<FixedOffset> {
        self.0.occurred_at
    }
    /// What was done.
    async fn action(&self) -> AuditAction {
        self.0.action.into()
    }
    /// The table of the row (e.g. `patients`); `user_sessions` for LOGIN,
    /// LOGOUT and ACCESS_DENIED.
    async fn resource_type(&self) -> &str {
        &self.0.resource_type
    }
    /// The id of the row: for a READ of one patient the patient's, for
    /// LOGIN and LOGOUT the session's; null when the event is about no one
    /// row (a refused login) or several (see `resourceIds`).
    async fn resource_id(&self) -> Option<Uuid> {
        self.0.resource_id
    }
    /// Every row the event concerns: for a READ, the patients the request
    /// returned (one event per request lists them all; `resourceId` is
    /// then null); else `resourceId` alone, or none.
    async fn resource_ids(&self) -> Vec<Uuid> {
        match (&self.0.resource_ids, self.0.resource_id) {
            (Some(ids), _) => ids.clone(),
            (None, Some(id)) => vec![id],
            (None, None) => Vec::new(),
        }
    }
    /// The user who acted; null when no one was signed in (e.g. a refused
    /// login).
    async fn actor_id(&self) -> Option<Uuid> {
        self.0.actor_user_id
    }
    /// The super admin who acted through an impersonation, if any.
    async fn impersonator_id(&self) -> Option<Uuid> {
        self.0.impersonator_id
    }
    /// For CREATE, UPDATE and DELETE: `{ before, after }` of the changed
    /// columns, by column name (`before` is null on CREATE; password hashes
    /// and derived columns are left out). For ACCESS_DENIED: `{ email,
    /// reason }` of the refused login. Null for other events.
    async fn changes(&self) -> Option<Json<serde_json::Value>> {
        self.0.changes.clone().map(Json)
    }
    /// The `X-Request-Id` of the request that caused the event (the
    /// client's own, or the one the server made up and answered with), to
    /// match the event with a client's log and the server's.
    async fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }
    /// The client's IP address (IPv4 or IPv6, without a prefix length for a
    /// single host).
    async fn ip(&self) -> Option<&str> {
        super::address(self.0.ip.as_deref())
    }
    /// The client's `User-Agent` header, as sent.
    async fn user_agent(&self) -> Option<&str> {
        self.0.user_agent.as_deref()
    }
}

/// Which audit events to list; every field given narrows the list (all of
/// them must match).
#[derive(InputObject, Default)]
pub struct AuditEventFilter {
    /// Only events about rows of this table (exact, e.g. `patients`).
    pub resource_type: Option<String>,
    /// Only events about this row (e.g. a patient's id: the changes to the
    /// patient's record, and every READ of the chart, alone or listed with
    /// others).
    pub resource_id: Option<Uuid>,
    /// Only what this user did.
    pub actor_id: Option<Uuid>,
    /// Only events of this action.
    pub action: Option<AuditAction>,
    /// Only events at or after this instant.
    pub from: Option<DateTime<FixedOffset>>,
    /// Only events before this instant.
    pub to: Option<DateTime<FixedOffset>>,
}

impl From<AuditEventFilter> for Filter {
    fn from(f: AuditEventFilter) -> Self {
        Filter {
            resource_type: f.resource_type,
            resource_id: f.resource_id,
            actor: f.actor_id,
            action: f.action.map(Into::into),
            from: f.from,
            to: f.to,
        }
    }
}

/// `totalCount` of an audit list, counted only when asked for.
pub struct AuditTotal(pub Filter);

#[Object]
impl AuditTotal {
    /// How many events match the filter, across all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> GqlResult<i64> {
        let scope = ctx.scope()?;
        let actor = ctx.actor()?;
        Ok(service::audit::count(&scope.tx, actor, &self.0)
            .await
            .gql()? as i64)
    }
}

pub type AuditEventConnection = Connection<OpaqueCursor<TimeKey>, AuditEvent, AuditTotal>;

/// The description of `AuditEventConnection` (async-graphql generates the
/// type; `graphql::builder` gives it this).
pub const CONNECTION_DESCRIPTION: &str = "\
    A page of audit events, newest first. Ask for the next page with `after:\n\
    pageInfo.endCursor` while `pageInfo.hasNextPage`.";

pub fn connection(page: Page<audit_event::Model>, total: AuditTotal) -> AuditEventConnection {
    let mut conn = Connection::with_additional_fields(false, page.has_next_page, total);
    for e in page.items {
        let key = TimeKey {
            at: e.occurred_at,
            id: e.id,
        };
        conn.edges.push(Edge::new(OpaqueCursor(key), AuditEvent(e)));
    }
    conn
}
