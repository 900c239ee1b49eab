//! What the database holds of the therapy rules whatever the application
//! does: a session's events are never changed or removed — not by the
//! runtime role, not by the owner — and a signed session is locked.

use sea_orm::sqlx::{self, PgPool};
use uuid::Uuid;

use super::fixtures::{clinics, patient, provider, sqlstate, user};
use crate::support::context::Ctx;
use crate::support::db::TestDb;
use crate::support::q;

/// The demo's signed session (Jonathan's, by Dr. Okafor).
async fn signed_demo_session(owner: &PgPool) -> Uuid {
    sqlx::query_scalar("SELECT id FROM therapy_sessions WHERE status = 'SIGNED'")
        .fetch_one(owner)
        .await
        .expect("the demo's signed session")
}

/// Every column of every event of a session, as one digest.
async fn events_digest(owner: &PgPool, session: Uuid) -> (i64, Option<String>) {
    sqlx::query_as(
        "SELECT count(*), md5(string_agg(to_jsonb(e)::text, '' ORDER BY id)) FROM session_events e
         WHERE session_id = $1",
    )
    .bind(session)
    .fetch_one(owner)
    .await
    .expect("digesting events")
}

async fn session_digest(owner: &PgPool, session: Uuid) -> String {
    sqlx::query_scalar("SELECT md5(to_jsonb(s)::text) FROM therapy_sessions s WHERE id = $1")
        .bind(session)
        .fetch_one(owner)
        .await
        .expect("digesting a session")
}

/// Dr. Okafor's context (role PROVIDER at Northside), as a request of hers
/// would set it.
async fn okafor_ctx(owner: &PgPool) -> Ctx {
    let c = clinics(owner).await;
    Ctx::staff(
        c.a,
        user(owner, "dr.okafor@northside.example").await,
        "PROVIDER",
    )
}

const REWRITES: [&str; 3] = [
    "UPDATE session_events SET payload = '{\"text\": \"rewritten\"}' WHERE session_id = $1",
    "DELETE FROM session_events WHERE session_id = $1",
    "TRUNCATE session_events",
];

#[tokio::test]
async fn the_runtime_role_may_neither_change_nor_remove_session_events() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    let runtime = db.runtime().await;
    let session = signed_demo_session(&owner).await;
    let before = events_digest(&owner, session).await;
    assert_eq!(before.0, 4, "the demo session's four events");
    let c = clinics(&owner).await;
    for ctx in [
        okafor_ctx(&owner).await,
        Ctx::staff(c.a, c.a_admin, "ADMIN"),
    ] {
        for sql in REWRITES {
            let mut tx = ctx.begin(&runtime).await;
            let mut query = sqlx::query(q(sql));
            if sql.contains("$1") {
                query = query.bind(session);
            }
            let err = query
                .execute(&mut *tx)
                .await
                .expect_err("a rewrite of the event stream");
            assert_eq!(sqlstate(&err), "42501", "{sql}: {err}");
            assert!(
                err.to_string().contains("permission denied"),
                "refused for want of the privilege: {sql}: {err}"
            );
        }
    }
    assert_eq!(events_digest(&owner, session).await, before);
}

#[tokio::test]
async fn not_even_the_owner_may_change_or_remove_session_events() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    let session = signed_demo_session(&owner).await;
    let before = events_digest(&owner, session).await;
    let is_superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&owner)
            .await
            .unwrap();
    assert!(
        is_superuser,
        "the owner connection bypasses every privilege"
    );
    for sql in REWRITES.into_iter().chain([
        "TRUNCATE therapy_sessions CASCADE",
        "UPDATE session_events SET is_addendum = true WHERE session_id = $1",
    ]) {
        let mut query = sqlx::query(q(sql));
        if sql.contains("$1") {
            query = query.bind(session);
        }
        let err = query
            .execute(&owner)
            .await
            .expect_err("a rewrite of the event stream");
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err}");
        assert!(
            err.to_string().contains("append-only"),
            "refused by the trigger: {sql}: {err}"
        );
    }
    assert_eq!(events_digest(&owner, session).await, before);
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM therapy_sessions")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(sessions, 1, "nothing was truncated");
}

#[tokio::test]
async fn a_signed_session_is_refused_any_update_even_in_its_providers_context() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    let runtime = db.runtime().await;
    let c = clinics(&owner).await;
    let signed = signed_demo_session(&owner).await;
    let before = session_digest(&owner, signed).await;

    // An unsigned session of hers she may still change: the refusal below
    // is the signature's.
    let okafor = provider(&owner, c.a, "1234567893").await;
    let marcus = patient(&owner, "NS-0004").await;
    let appointment: Uuid = sqlx::query_scalar(
        "INSERT INTO appointments (organization_id, patient_id, provider_id, starts_at, ends_at, status)
         VALUES ($1, $2, $3, now() + interval '500 days', now() + interval '500 days 30 minutes', 'CHECKED_IN')
         RETURNING id",
    )
    .bind(c.a)
    .bind(marcus)
    .bind(okafor)
    .fetch_one(&owner)
    .await
    .unwrap();
    let ctx = okafor_ctx(&owner).await;
    let mut tx = ctx.begin(&runtime).await;
    let running: Uuid = sqlx::query_scalar(
        "INSERT INTO therapy_sessions (organization_id, appointment_id, patient_id, provider_id, service_code,
                                       place_of_service, started_at)
         VALUES ($1, $2, $3, $4, '97110', '11', now() - interval '20 minutes') RETURNING id",
    )
    .bind(c.a)
    .bind(appointment)
    .bind(marcus)
    .bind(okafor)
    .fetch_one(&mut *tx)
    .await
    .expect("her own session, in her context");
    let changed = sqlx::query("UPDATE therapy_sessions SET place_of_service = '02' WHERE id = $1")
        .bind(running)
        .execute(&mut *tx)
        .await
        .expect("an unsigned session changes")
        .rows_affected();
    assert_eq!(changed, 1);
    tx.commit().await.unwrap();

    for sql in [
        "UPDATE therapy_sessions SET place_of_service = '02' WHERE id = $1",
        "UPDATE therapy_sessions SET units = units + 1 WHERE id = $1",
        "UPDATE therapy_sessions SET status = 'COMPLETED', signed_at = NULL, signed_by = NULL, content_hash = NULL WHERE id = $1",
    ] {
        let mut tx = ctx.begin(&runtime).await;
        let err = sqlx::query(q(sql))
            .bind(signed)
            .execute(&mut *tx)
            .await
            .expect_err("a change to a signed session");
        assert_eq!(sqlstate(&err), "CG409", "{sql}: {err}");
        assert!(err.to_string().contains("SESSION_SIGNED"), "{sql}: {err}");
    }
    assert_eq!(session_digest(&owner, signed).await, before);
}

#[tokio::test]
async fn a_line_of_a_live_claim_is_released_only_by_its_rejection() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    let runtime = db.runtime().await;
    let c = clinics(&owner).await;
    let (claim, session): (Uuid, Uuid) =
        sqlx::query_as("SELECT claim_id, session_id FROM claim_lines")
            .fetch_one(&owner)
            .await
            .expect("the demo's line");
    let status: String = sqlx::query_scalar("SELECT status FROM claims WHERE id = $1")
        .bind(claim)
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(status, "SUBMITTED");
    let staff = Ctx::staff(
        c.a,
        user(&owner, "frontdesk@northside.example").await,
        "STAFF",
    );

    // Released by hand while the claim is live, the session could be
    // billed a second time.
    let mut tx = staff.begin(&runtime).await;
    let released = sqlx::query("UPDATE claim_lines SET released_at = now() WHERE session_id = $1")
        .bind(session)
        .execute(&mut *tx)
        .await;
    assert!(
        released.is_err(),
        "a line of a submitted claim was released without a rejection: {released:?}"
    );
    drop(tx);
    let live: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT released_at FROM claim_lines WHERE session_id = $1")
            .bind(session)
            .fetch_one(&owner)
            .await
            .unwrap();
    assert!(live.is_none());

    // The rejection releases it.
    let mut tx = staff.begin(&runtime).await;
    sqlx::query("UPDATE claims SET status = 'REJECTED', responded_at = now() WHERE id = $1")
        .bind(claim)
        .execute(&mut *tx)
        .await
        .expect("a rejection");
    let released: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT released_at FROM claim_lines WHERE session_id = $1")
            .bind(session)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert!(released.is_some(), "released by the rejection");
}
