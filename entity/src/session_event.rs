//! The append-only clinical event stream of sessions.

use sea_orm::entity::prelude::*;

#[sea_orm::compact_model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub session_id: Uuid,
    /// Copied from the session by a trigger (for the row policy).
    pub patient_id: Uuid,
    pub event_type: String,
    pub occurred_at: DateTimeWithTimeZone,
    pub payload: Json,
    pub corrects_id: Option<Uuid>,
    /// Recorded after the session was signed (set by a trigger).
    pub is_addendum: bool,
    pub recorded_by: Uuid,
    pub recorded_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
