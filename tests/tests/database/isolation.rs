//! Clinic A's context against clinic B's rows, table by table, as the
//! runtime role: nothing of B can be read, written for, changed or deleted.

use sea_orm::sqlx::{self, PgPool};
use uuid::Uuid;

use super::fixtures::{Clinics, clinics, sqlstate};
use crate::support::context::Ctx;
use crate::support::db::TestDb;
use crate::support::q;

/// Every table that belongs to one clinic, and its tenant column.
const TENANT_TABLES: &[(&str, &str)] = &[
    ("organizations", "id"),
    ("organization_memberships", "organization_id"),
    ("providers", "organization_id"),
    ("patients", "organization_id"),
    ("contact_methods", "organization_id"),
    ("care_team_assignments", "organization_id"),
    ("proxy_assignments", "organization_id"),
    ("appointments", "organization_id"),
    ("payer_authorizations", "organization_id"),
    ("audit_events", "organization_id"),
];

/// Tables that belong to one person rather than one clinic.
const PERSONAL_TABLES: &[&str] = &["users", "user_sessions", "user_consents"];

async fn count(tx: &mut sqlx::PgConnection, sql: &str, id: Uuid) -> i64 {
    sqlx::query_scalar(q(sql))
        .bind(id)
        .fetch_one(tx)
        .await
        .unwrap()
}

/// A copy of one of B's rows with a fresh id, inserted with A's context.
async fn insert_copy_of_b_row(
    owner: &PgPool,
    tx: &mut sqlx::PgConnection,
    table: &str,
    col: &str,
    b: Uuid,
) -> Result<(), sqlx::Error> {
    let row: serde_json::Value = sqlx::query_scalar(q(format!(
        "SELECT to_jsonb(t) FROM {table} t WHERE {col} = $1 LIMIT 1"
    )))
    .bind(b)
    .fetch_one(owner)
    .await
    .unwrap_or_else(|e| panic!("clinic B has no row in {table}: {e}"));
    let mut row = row;
    row["id"] = serde_json::json!(Uuid::from(ulid::Ulid::generate()));
    let cols: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name = $1 AND is_generated = 'NEVER' \
         ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(owner)
    .await
    .unwrap();
    let cols = cols.join(", ");
    sqlx::query(q(format!(
        "INSERT INTO {table} ({cols}) SELECT {cols} FROM jsonb_populate_record(NULL::{table}, $1)"
    )))
    .bind(row)
    .execute(tx)
    .await
    .map(|_| ())
}

#[tokio::test]
async fn clinic_a_sees_none_of_clinic_b_rows_in_any_tenant_table() {
    let db = TestDb::seeded().await;
    let (owner, runtime) = (db.owner().await, db.runtime().await);
    let Clinics { a, b, a_admin, .. } = clinics(&owner).await;

    for (table, col) in TENANT_TABLES {
        let b_rows = count(
            &mut owner.acquire().await.unwrap(),
            &format!("SELECT count(*) FROM {table} WHERE {col} = $1"),
            b,
        )
        .await;
        assert!(b_rows > 0, "fixture: clinic B has no {table}");
        let a_rows = count(
            &mut owner.acquire().await.unwrap(),
            &format!("SELECT count(*) FROM {table} WHERE {col} = $1"),
            a,
        )
        .await;

        let mut tx = Ctx::staff(a, a_admin, "ADMIN").begin(&runtime).await;
        let seen_b = count(
            &mut tx,
            &format!("SELECT count(*) FROM {table} WHERE {col} = $1"),
            b,
        )
        .await;
        assert_eq!(seen_b, 0, "clinic A read clinic B's {table}");
        let seen_all: i64 = sqlx::query_scalar(q(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(seen_all, a_rows, "clinic A sees exactly its own {table}");
    }
}

#[tokio::test]
async fn clinic_a_cannot_insert_rows_for_clinic_b() {
    let db = TestDb::seeded().await;
    let (owner, runtime) = (db.owner().await, db.runtime().await);
    let Clinics { a, b, a_admin, .. } = clinics(&owner).await;

    for (table, col) in TENANT_TABLES {
        let mut tx = Ctx::staff(a, a_admin, "ADMIN").begin(&runtime).await;
        let err = insert_copy_of_b_row(&owner, &mut tx, table, col, b)
            .await
            .expect_err(&format!(
                "clinic A inserted a row for clinic B into {table}"
            ));
        assert_eq!(sqlstate(&err), "42501", "{table}: {err}");
    }
}

#[tokio::test]
async fn clinic_a_cannot_update_or_soft_delete_clinic_b_rows() {
    let db = TestDb::seeded().await;
    let (owner, runtime) = (db.owner().await, db.runtime().await);
    let Clinics { a, b, a_admin, .. } = clinics(&owner).await;
    let before: Vec<String> = sqlx::query_scalar(
        "SELECT md5(string_agg(to_jsonb(p)::text, '' ORDER BY id)) FROM patients p WHERE organization_id = $1 \
         UNION ALL SELECT md5(string_agg(to_jsonb(a)::text, '' ORDER BY id)) FROM appointments a WHERE organization_id = $1",
    )
    .bind(b)
    .fetch_all(&owner)
    .await
    .unwrap();

    let updates = [
        "UPDATE organizations SET name = 'taken over' WHERE id = $1",
        "UPDATE organization_memberships SET role = 'ADMIN' WHERE organization_id = $1",
        "UPDATE providers SET is_active = false WHERE organization_id = $1",
        "UPDATE patients SET last_name = 'Changed' WHERE organization_id = $1",
        "UPDATE patients SET deleted_at = now() WHERE organization_id = $1",
        "UPDATE contact_methods SET value = 'x@x.example' WHERE organization_id = $1",
        "UPDATE care_team_assignments SET removed_at = now() WHERE organization_id = $1",
        "UPDATE proxy_assignments SET revoked_at = now() WHERE organization_id = $1",
        "UPDATE appointments SET status = 'CANCELLED', cancel_reason = 'x' WHERE organization_id = $1",
        "UPDATE payer_authorizations SET used_units = 0 WHERE organization_id = $1",
    ];
    for sql in updates {
        let mut tx = Ctx::staff(a, a_admin, "ADMIN").begin(&runtime).await;
        let done = sqlx::query(sql).bind(b).execute(&mut *tx).await.unwrap();
        assert_eq!(done.rows_affected(), 0, "{sql}");
        tx.commit().await.unwrap();
    }
    for (table, col) in TENANT_TABLES {
        let mut tx = Ctx::staff(a, a_admin, "ADMIN").begin(&runtime).await;
        let err = sqlx::query(q(format!("DELETE FROM {table} WHERE {col} = $1")))
            .bind(b)
            .execute(&mut *tx)
            .await
            .expect_err("the runtime role hard-deleted");
        assert_eq!(sqlstate(&err), "42501", "{table}");
    }
    let after: Vec<String> = sqlx::query_scalar(
        "SELECT md5(string_agg(to_jsonb(p)::text, '' ORDER BY id)) FROM patients p WHERE organization_id = $1 \
         UNION ALL SELECT md5(string_agg(to_jsonb(a)::text, '' ORDER BY id)) FROM appointments a WHERE organization_id = $1",
    )
    .bind(b)
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(before, after, "clinic B's rows changed");
}

#[tokio::test]
async fn clinic_a_cannot_move_its_rows_into_clinic_b() {
    let db = TestDb::seeded().await;
    let (owner, runtime) = (db.owner().await, db.runtime().await);
    let Clinics { a, b, a_admin, .. } = clinics(&owner).await;
    for table in [
        "patients",
        "providers",
        "appointments",
        "care_team_assignments",
        "contact_methods",
        "payer_authorizations",
    ] {
        let mut tx = Ctx::staff(a, a_admin, "ADMIN").begin(&runtime).await;
        let err = sqlx::query(q(format!(
            "UPDATE {table} SET organization_id = $1 WHERE organization_id = $2"
        )))
        .bind(b)
        .bind(a)
        .execute(&mut *tx)
        .await
        .expect_err("a row moved to another clinic");
        assert_eq!(sqlstate(&err), "42501", "{table}: {err}");
    }
}

#[tokio::test]
async fn one_user_cannot_see_or_change_another_users_personal_rows() {
    let db = TestDb::seeded().await;
    let (owner, runtime) = (db.owner().await, db.runtime().await);
    let Clinics {
        a,
        a_admin,
        b_admin,
        ..
    } = clinics(&owner).await;
    for user in [a_admin, b_admin] {
        sqlx::query("INSERT INTO user_sessions (user_id, expires_at) VALUES ($1, now() + interval '1 hour')")
            .bind(user)
            .execute(&owner)
            .await
            .unwrap();
    }
    for table in PERSONAL_TABLES {
        let col = if *table == "users" { "id" } else { "user_id" };
        let mut tx = Ctx::staff(a, a_admin, "ADMIN").begin(&runtime).await;
        let theirs = count(
            &mut tx,
            &format!("SELECT count(*) FROM {table} WHERE {col} = $1"),
            b_admin,
        )
        .await;
        assert_eq!(theirs, 0, "{table}: another user's rows are visible");
        let mine = count(
            &mut tx,
            &format!("SELECT count(*) FROM {table} WHERE {col} = $1"),
            a_admin,
        )
        .await;
        assert!(mine > 0, "{table}: the user's own rows are not visible");
    }
    let mut tx = Ctx::staff(a, a_admin, "ADMIN").begin(&runtime).await;
    let done = sqlx::query("UPDATE users SET display_name = 'x' WHERE id = $1")
        .bind(b_admin)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 0);
    let done = sqlx::query("UPDATE user_sessions SET revoked_at = now() WHERE user_id = $1")
        .bind(b_admin)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 0);
}

#[tokio::test]
async fn without_context_nothing_is_visible() {
    let db = TestDb::seeded().await;
    let runtime = db.runtime().await;
    let tables = TENANT_TABLES
        .iter()
        .map(|(t, _)| *t)
        .chain(PERSONAL_TABLES.iter().copied());
    for table in tables {
        let n: i64 = sqlx::query_scalar(q(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&runtime)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} visible without a context");
    }
}

#[tokio::test]
async fn context_of_a_committed_transaction_does_not_leak_to_the_next_one() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    let Clinics { a, a_admin, .. } = clinics(&owner).await;
    // One connection, so the second transaction reuses the first one's session.
    let runtime = db.runtime_pool(1).await;
    let mut tx = Ctx::staff(a, a_admin, "ADMIN").begin(&runtime).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM patients")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(n > 0);
    tx.commit().await.unwrap();

    let mut conn = runtime.acquire().await.unwrap();
    let leftover: String =
        sqlx::query_scalar("SELECT coalesce(current_setting('app.tenant_id', true), '<null>')")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert!(
        leftover.is_empty() || leftover == "<null>",
        "setting survived: {leftover}"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM patients")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(n, 0, "a pooled connection carried the previous tenant");
}
