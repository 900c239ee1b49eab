//! The audit trail: written by triggers with actor and request id, and
//! beyond the reach of the runtime role.

use sea_orm::sqlx;
use serde_json::json;
use uuid::Uuid;

use super::fixtures::{clinics, patient, sqlstate};
use crate::support::context::Ctx;
use crate::support::db::TestDb;

#[tokio::test]
async fn a_write_is_audited_with_actor_request_id_and_changed_columns() {
    let db = TestDb::seeded().await;
    let (owner, runtime) = (db.owner().await, db.runtime().await);
    let c = clinics(&owner).await;
    let jonathan = patient(&owner, "NS-0001").await;
    let ctx = Ctx::staff(c.a, c.a_admin, "ADMIN");
    let mut tx = ctx.begin(&runtime).await;
    sqlx::query("UPDATE patients SET last_name = 'Smith-Jones' WHERE id = $1")
        .bind(jonathan)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let (org, actor, action, request, changes): (Uuid, Uuid, String, String, serde_json::Value) =
        sqlx::query_as(
            "SELECT organization_id, actor_user_id, action, request_id, changes FROM audit_events \
         WHERE resource_type = 'patients' AND resource_id = $1 AND action = 'UPDATE' \
           AND request_id = $2",
        )
        .bind(jonathan)
        .bind(&ctx.request_id)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!((org, actor, action.as_str()), (c.a, c.a_admin, "UPDATE"));
    assert_eq!(Some(request), ctx.request_id);
    assert_eq!(
        changes,
        json!({ "before": { "last_name": "Smith" }, "after": { "last_name": "Smith-Jones" } })
    );
}

#[tokio::test]
async fn a_soft_delete_is_audited_as_delete() {
    let db = TestDb::seeded().await;
    let (owner, runtime) = (db.owner().await, db.runtime().await);
    let c = clinics(&owner).await;
    let sofia = patient(&owner, "NS-0002").await;
    let mut tx = Ctx::staff(c.a, c.a_admin, "ADMIN").begin(&runtime).await;
    sqlx::query("UPDATE patients SET deleted_at = now() WHERE id = $1")
        .bind(sofia)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE resource_id = $1 AND action = 'DELETE' AND actor_user_id = $2",
    )
    .bind(sofia)
    .bind(c.a_admin)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn the_runtime_role_cannot_insert_update_delete_or_truncate_audit_events() {
    let db = TestDb::seeded().await;
    let (owner, runtime) = (db.owner().await, db.runtime().await);
    let c = clinics(&owner).await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&owner)
        .await
        .unwrap();
    for sql in [
        "UPDATE audit_events SET action = 'READ'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "INSERT INTO audit_events (action, resource_type) VALUES ('CREATE', 'patients')",
    ] {
        let mut tx = Ctx::staff(c.a, c.a_admin, "ADMIN").begin(&runtime).await;
        let err = sqlx::query(sql).execute(&mut *tx).await.expect_err(sql);
        assert_eq!(sqlstate(&err), "42501", "{sql}");
    }
    // Not even the owner rewrites history: a trigger refuses.
    let err = sqlx::query("UPDATE audit_events SET action = 'READ'")
        .execute(&owner)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn read_events_take_actor_and_request_from_the_context_and_writes_cannot_be_forged() {
    let db = TestDb::seeded().await;
    let (owner, runtime) = (db.owner().await, db.runtime().await);
    let c = clinics(&owner).await;
    let ids = vec![
        patient(&owner, "NS-0001").await,
        patient(&owner, "NS-0003").await,
    ];
    let ctx = Ctx::staff(c.a, c.a_admin, "ADMIN");
    let mut tx = ctx.begin(&runtime).await;
    sqlx::query("SELECT app.record_event('READ', 'patients', $1, NULL)")
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .unwrap();
    let err = sqlx::query("SELECT app.record_event('CREATE', 'patients', $1, NULL)")
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    drop(tx);
    let mut tx = ctx.begin(&runtime).await;
    sqlx::query("SELECT app.record_event('READ', 'patients', $1, NULL)")
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // One event lists every patient the request read.
    let rows: Vec<(Option<Uuid>, Vec<Uuid>, Uuid, String)> = sqlx::query_as(
        "SELECT resource_id, resource_ids, actor_user_id, request_id FROM audit_events WHERE action = 'READ'",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [(None, ids, c.a_admin, ctx.request_id.clone().unwrap())]
    );
}
