//! The append-only audit trail, written only by database triggers and functions.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// What happened (`audit_events.action`). `Create`, `Update` and `Delete`
/// come from row triggers only; the rest from `app.record_event`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditAction {
    #[sea_orm(string_value = "CREATE")]
    Create,
    #[sea_orm(string_value = "READ")]
    Read,
    #[sea_orm(string_value = "UPDATE")]
    Update,
    #[sea_orm(string_value = "DELETE")]
    Delete,
    #[sea_orm(string_value = "LOGIN")]
    Login,
    #[sea_orm(string_value = "LOGOUT")]
    Logout,
    #[sea_orm(string_value = "ACCESS_DENIED")]
    AccessDenied,
    #[sea_orm(string_value = "BREAK_GLASS")]
    BreakGlass,
    #[sea_orm(string_value = "BREAK_GLASS_READ")]
    BreakGlassRead,
}

/// The table has no foreign keys (events outlive what they describe), so
/// the entity declares no relations. The runtime role may only select it.
#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub occurred_at: DateTimeWithTimeZone,
    pub organization_id: Option<Uuid>,
    pub actor_user_id: Option<Uuid>,
    pub impersonator_id: Option<Uuid>,
    pub action: AuditAction,
    /// The table name for row events; free text otherwise.
    pub resource_type: String,
    pub resource_id: Option<Uuid>,
    /// Every row a READ of several concerned (one event per request lists
    /// the patients it returned); null otherwise.
    pub resource_ids: Option<Vec<Uuid>>,
    /// `{"before": .., "after": ..}` for row events; caller details otherwise.
    pub changes: Option<Json>,
    pub request_id: Option<String>,
    /// Postgres `inet`, read as `ip::text` (so with its prefix, e.g.
    /// `203.0.113.7/32`) and written through a cast to `inet`.
    #[sea_orm(
        column_type = r#"custom("inet")"#,
        select_as = "text",
        save_as = "inet"
    )]
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
