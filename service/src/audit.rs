//! Audit events the API writes itself (row changes are written by database
//! triggers). Actor, clinic, impersonator and request id always come from
//! the request context, never from the caller.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

use crate::Tx;
use crate::error::{DbResultExt, ServiceResult};
use crate::sql::uuid_array;

/// Writes a non-row event (login, logout, refusal) to the audit trail.
#[tracing::instrument(skip_all, name = "audit.record_event", level = "debug", fields(action = action))]
pub async fn record_event(
    tx: &Tx,
    action: &str,
    resource_type: &str,
    resources: impl IntoIterator<Item = Uuid>,
    details: serde_json::Value,
) -> ServiceResult<()> {
    let event = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT app.record_event($1, $2, $3::uuid[], $4)",
        [
            action.into(),
            resource_type.into(),
            uuid_array(resources),
            details.into(),
        ],
    );
    // A read replica writes nothing: the event is written on the primary,
    // under the same context, before the response is sent.
    if tx.is_read_only() {
        tx.defer(event);
        return Ok(());
    }
    tx.execute_raw(event)
        .await
        .or_db("recording an audit event")?;
    Ok(())
}

/// The READ of every patient whose data a request returned — one event
/// listing them all (`resource_ids`), or naming the one — so a compliance
/// officer can answer "who looked at this patient's record, and when".
/// Patients the caller reached only through break-glass (`break_glass`)
/// are recorded apart, as one BREAK_GLASS_READ.
#[tracing::instrument(skip_all, name = "audit.record_reads", level = "debug", fields(patients = patients.len()))]
pub async fn record_reads(tx: &Tx, patients: &[Uuid], break_glass: &[Uuid]) -> ServiceResult<()> {
    for (action, ids) in by_access(patients, break_glass) {
        tx.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT app.record_event($1, 'patients', $2::uuid[], NULL)",
            [action.into(), uuid_array(ids)],
        ))
        .await
        .or_db("recording READ events")?;
    }
    Ok(())
}

/// The read patients split by how the caller reached them: the READ event
/// and the BREAK_GLASS_READ event to write (each only when it lists
/// someone).
fn by_access(patients: &[Uuid], break_glass: &[Uuid]) -> Vec<(&'static str, Vec<Uuid>)> {
    let (glass, ordinary): (Vec<Uuid>, Vec<Uuid>) =
        patients.iter().partition(|p| break_glass.contains(p));
    [("READ", ordinary), ("BREAK_GLASS_READ", glass)]
        .into_iter()
        .filter(|(_, ids)| !ids.is_empty())
        .collect()
}

/// The statements [`record_reads`] runs, as text to send with `COMMIT` in
/// one round trip ([`RequestTx::commit_after`](crate::tx::RequestTx::commit_after));
/// `None` when no patient was read. Its only values are the action names
/// above and patient ids, which this program formats (hexadecimal digits
/// and dashes): no client byte.
pub fn reads_statement(patients: &[Uuid], break_glass: &[Uuid]) -> Option<String> {
    let events = by_access(patients, break_glass);
    if events.is_empty() {
        return None;
    }
    let mut sql = String::with_capacity(80 * events.len() + patients.len() * 37);
    for (n, (action, ids)) in events.iter().enumerate() {
        if n > 0 {
            sql.push_str("; ");
        }
        sql.push_str("SELECT app.record_event('");
        sql.push_str(action);
        sql.push_str("', 'patients', '{");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
        }
        sql.push_str("}'::uuid[], NULL)");
    }
    Some(sql)
}

/// Which audit events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub resource_type: Option<String>,
    pub resource_id: Option<Uuid>,
    pub actor: Option<Uuid>,
    pub action: Option<entity::audit_event::AuditAction>,
    pub from: Option<chrono::DateTime<chrono::FixedOffset>>,
    pub to: Option<chrono::DateTime<chrono::FixedOffset>>,
}

fn filtered(filter: &AuditFilter) -> sea_orm::Select<entity::audit_event::Entity> {
    use entity::audit_event;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let mut q = audit_event::Entity::find();
    if let Some(t) = &filter.resource_type {
        q = q.filter(audit_event::Column::ResourceType.eq(t.clone()));
    }
    if let Some(id) = filter.resource_id {
        // The row's own events, and every READ that listed it.
        q = q.filter(
            sea_orm::Condition::any()
                .add(audit_event::Column::ResourceId.eq(id))
                // No `[...]` around the placeholder: sea-query reads
                // brackets as a quoted name and would not bind it.
                .add(sea_orm::sea_query::Expr::cust_with_values(
                    "audit_events.resource_ids @> array_append('{}'::uuid[], $1::uuid)",
                    [sea_orm::Value::from(id)],
                )),
        );
    }
    if let Some(a) = filter.actor {
        q = q.filter(audit_event::Column::ActorUserId.eq(a));
    }
    if let Some(a) = filter.action {
        q = q.filter(audit_event::Column::Action.eq(a));
    }
    if let Some(from) = filter.from {
        q = q.filter(audit_event::Column::OccurredAt.gte(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(audit_event::Column::OccurredAt.lt(to));
    }
    q
}

/// How many events match (clinic ADMIN).
#[tracing::instrument(skip_all, name = "audit.count", level = "debug")]
pub async fn count(tx: &Tx, actor: &crate::Actor, filter: &AuditFilter) -> ServiceResult<u64> {
    use sea_orm::PaginatorTrait;
    actor.require(&[crate::Role::Admin])?;
    actor.require_whole_clinic()?;
    filtered(filter)
        .count(tx)
        .await
        .or_db("counting audit events")
}

/// The clinic's audit trail, newest first (clinic ADMIN; the database's
/// policy shows it to no one else).
#[tracing::instrument(skip_all, name = "audit.list", level = "debug")]
pub async fn list(
    tx: &Tx,
    actor: &crate::Actor,
    filter: &AuditFilter,
    page: &crate::pagination::PageRequest<crate::pagination::TimeKey>,
) -> ServiceResult<crate::pagination::Page<entity::audit_event::Model>> {
    actor.require(&[crate::Role::Admin])?;
    actor.require_whole_clinic()?;
    let rows = list_query(filter, page)
        .all(tx)
        .await
        .or_db("listing audit events")?;
    Ok(crate::pagination::Page::from_overfetch(rows, page.first))
}

/// The statement [`list`] runs (for measuring it with EXPLAIN).
pub fn list_statement(
    filter: &AuditFilter,
    page: &crate::pagination::PageRequest<crate::pagination::TimeKey>,
) -> Statement {
    use sea_orm::QueryTrait;
    list_query(filter, page).build(DbBackend::Postgres)
}

fn list_query(
    filter: &AuditFilter,
    page: &crate::pagination::PageRequest<crate::pagination::TimeKey>,
) -> sea_orm::Select<entity::audit_event::Entity> {
    use entity::audit_event;
    use sea_orm::sea_query::Expr;
    use sea_orm::{QueryFilter, QueryOrder, QuerySelect};
    let mut q = filtered(filter);
    if let Some(key) = &page.after {
        q = q.filter(Expr::cust_with_values(
            "(occurred_at, audit_events.id) < ($1, $2)",
            [sea_orm::Value::from(key.at), sea_orm::Value::from(key.id)],
        ));
    }
    q.order_by_desc(audit_event::Column::OccurredAt)
        .order_by_desc(audit_event::Column::Id)
        .limit(page.first + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pagination::{PageRequest, TimeKey};

    #[test]
    fn a_resource_filter_binds_its_id_wherever_it_stands_among_the_filters() {
        let id = Uuid::from_u128(7);
        let filter = AuditFilter {
            resource_type: Some("claims".into()),
            resource_id: Some(id),
            ..Default::default()
        };
        let page = PageRequest::<TimeKey> {
            first: 50,
            after: None,
        };
        let st = list_statement(&filter, &page);
        // $1 the type, $2 and $3 the id (named and listed), $4 the limit.
        assert!(
            st.sql.contains("resource_id\" = $2")
                && st.sql.contains("array_append('{}'::uuid[], $3::uuid)")
                && st.sql.ends_with("LIMIT $4"),
            "{}",
            st.sql
        );
        let values = st.values.map(|v| v.0).unwrap_or_default();
        assert_eq!(values[1], sea_orm::Value::from(id));
        assert_eq!(values[2], sea_orm::Value::from(id));
    }
}
