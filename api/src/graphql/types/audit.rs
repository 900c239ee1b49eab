//! The audit trail.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, InputObject, Json, Object};
use chrono::{DateTime, FixedOffset};
use entity::audit_event;
use service::audit::AuditFilter as Filter;
use service::pagination::{Page, TimeKey};
use uuid::Uuid;

use super::enums::AuditAction;
use crate::error::{GqlResult, IntoGql};
use crate::graphql::scope::ScopeExt;

pub struct AuditEvent(pub audit_event::Model);

#[Object]
impl AuditEvent {
    async fn id(&self) -> Uuid {
        self.0.id
    }
    async fn occurred_at(&self) -> DateTime<FixedOffset> {
        self.0.occurred_at
    }
    async fn action(&self) -> AuditAction {
        self.0.action.into()
    }
    /// The table of the row (e.g. `patients`).
    async fn resource_type(&self) -> &str {
        &self.0.resource_type
    }
    async fn resource_id(&self) -> Option<Uuid> {
        self.0.resource_id
    }
    async fn actor_id(&self) -> Option<Uuid> {
        self.0.actor_user_id
    }
    /// The super admin who acted through an impersonation, if any.
    async fn impersonator_id(&self) -> Option<Uuid> {
        self.0.impersonator_id
    }
    /// `{ before, after }` of the changed columns.
    async fn changes(&self) -> Option<Json<serde_json::Value>> {
        self.0.changes.clone().map(Json)
    }
    async fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }
    async fn ip(&self) -> Option<&str> {
        super::address(self.0.ip.as_deref())
    }
    async fn user_agent(&self) -> Option<&str> {
        self.0.user_agent.as_deref()
    }
}

#[derive(InputObject, Default)]
pub struct AuditEventFilter {
    pub resource_type: Option<String>,
    pub resource_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub action: Option<AuditAction>,
    pub from: Option<DateTime<FixedOffset>>,
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
    async fn total_count(&self, ctx: &Context<'_>) -> GqlResult<i64> {
        let scope = ctx.scope()?;
        let actor = ctx.actor()?;
        Ok(service::audit::count(&scope.tx, actor, &self.0)
            .await
            .gql()? as i64)
    }
}

pub type AuditEventConnection = Connection<OpaqueCursor<TimeKey>, AuditEvent, AuditTotal>;

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
