//! The rules the database holds whatever the application does, each refused
//! with its SQLSTATE, and allowed where it should be. Run as the runtime
//! role with a clinic admin's context, as a request would.

use sea_orm::sqlx::{self, Acquire, PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::fixtures::{Clinics, clinics, patient, provider, sqlstate};
use crate::support::context::Ctx;
use crate::support::db::TestDb;
use crate::support::q;

struct Fixture {
    owner: PgPool,
    runtime: PgPool,
    c: Clinics,
}

async fn fixture(db: &TestDb) -> Fixture {
    let owner = db.owner().await;
    let c = clinics(&owner).await;
    Fixture {
        runtime: db.runtime().await,
        owner,
        c,
    }
}

impl Fixture {
    async fn as_a(&self) -> Transaction<'static, Postgres> {
        Ctx::staff(self.c.a, self.c.a_admin, "ADMIN")
            .begin(&self.runtime)
            .await
    }
    async fn as_b(&self) -> Transaction<'static, Postgres> {
        Ctx::staff(self.c.b, self.c.b_admin, "ADMIN")
            .begin(&self.runtime)
            .await
    }
}

async fn exec(conn: &mut PgConnection, sql: &str, binds: &[Uuid]) -> Result<u64, sqlx::Error> {
    let mut query = sqlx::query(q(sql));
    for b in binds {
        query = query.bind(*b);
    }
    query.execute(conn).await.map(|r| r.rows_affected())
}

async fn refused(conn: &mut PgConnection, sql: &str, binds: &[Uuid]) -> String {
    let err = exec(conn, sql, binds).await.expect_err(sql);
    sqlstate(&err)
}

const ASSIGN: &str = "INSERT INTO care_team_assignments (organization_id, patient_id, provider_id, role) \
                      VALUES ($1, $2, $3, $4::text)";

async fn assign(
    conn: &mut PgConnection,
    org: Uuid,
    patient: Uuid,
    provider: Uuid,
    role: &str,
) -> Result<u64, sqlx::Error> {
    sqlx::query(ASSIGN)
        .bind(org)
        .bind(patient)
        .bind(provider)
        .bind(role)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
}

#[tokio::test]
async fn a_second_active_primary_is_refused() {
    let db = TestDb::seeded().await;
    let f = fixture(&db).await;
    let jonathan = patient(&f.owner, "NS-0001").await;
    let chloe = provider(&f.owner, f.c.a, "1456789019").await;
    let mut tx = f.as_a().await;
    let err = assign(&mut tx, f.c.a, jonathan, chloe, "PRIMARY")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23505");
    assert_eq!(
        err.as_database_error().and_then(|e| e.constraint()),
        Some("care_team_one_primary_key")
    );
}

#[tokio::test]
async fn a_specialist_beside_the_primary_is_allowed() {
    let db = TestDb::seeded().await;
    let f = fixture(&db).await;
    let sofia = patient(&f.owner, "NS-0002").await;
    let chloe = provider(&f.owner, f.c.a, "1456789019").await;
    let mut tx = f.as_a().await;
    assert_eq!(
        assign(&mut tx, f.c.a, sofia, chloe, "SPECIALIST")
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn a_removed_primary_does_not_block_a_new_one() {
    let db = TestDb::seeded().await;
    let f = fixture(&db).await;
    let sofia = patient(&f.owner, "NS-0002").await;
    let chloe = provider(&f.owner, f.c.a, "1456789019").await;
    let mut tx = f.as_a().await;
    let removed = exec(
        &mut tx,
        "UPDATE care_team_assignments SET removed_at = now(), removed_by = $2 \
         WHERE patient_id = $1 AND role = 'PRIMARY' AND removed_at IS NULL",
        &[sofia, f.c.a_admin],
    )
    .await
    .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        assign(&mut tx, f.c.a, sofia, chloe, "PRIMARY")
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn the_same_person_has_a_different_primary_at_each_clinic() {
    let db = TestDb::seeded().await;
    let f = fixture(&db).await;
    let person = super::fixtures::user(&f.owner, "jonathan.smith@example.com").await;
    let primary = "SELECT pr.name FROM care_team_assignments c JOIN providers pr ON pr.id = c.provider_id \
                   JOIN patients p ON p.id = c.patient_id \
                   WHERE p.user_id = $1 AND c.role = 'PRIMARY' AND c.removed_at IS NULL";
    let mut tx = f.as_a().await;
    let at_a: Vec<String> = sqlx::query_scalar(primary)
        .bind(person)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    let mut tx = f.as_b().await;
    let at_b: Vec<String> = sqlx::query_scalar(primary)
        .bind(person)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(at_a, vec!["Dr. Amara Okafor".to_owned()]);
    assert_eq!(at_b, vec!["Dr. Erik Lindqvist".to_owned()]);
}

#[tokio::test]
async fn a_provider_is_on_a_team_once_at_a_time() {
    let db = TestDb::seeded().await;
    let f = fixture(&db).await;
    let jonathan = patient(&f.owner, "NS-0001").await;
    let hale = provider(&f.owner, f.c.a, "1987654328").await;
    let mut tx = f.as_a().await;
    let err = assign(&mut tx, f.c.a, jonathan, hale, "CONSULTANT")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23505");
}

#[tokio::test]
async fn a_reference_across_clinics_is_refused_even_for_the_owner() {
    let db = TestDb::seeded().await;
    let f = fixture(&db).await;
    let sofia = patient(&f.owner, "NS-0002").await;
    let lakeside_doctor = provider(&f.owner, f.c.b, "1555555550").await;
    // The owner bypasses row-level security; the composite foreign key still holds.
    let mut conn = f.owner.acquire().await.unwrap();
    let err = assign(&mut conn, f.c.a, sofia, lakeside_doctor, "SPECIALIST")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23503");
}

const PROVIDER: &str =
    "INSERT INTO providers (organization_id, name, npi) VALUES ($1, 'Dr. Test', $2)";

async fn add_provider(conn: &mut PgConnection, org: Uuid, npi: &str) -> Result<u64, sqlx::Error> {
    sqlx::query(PROVIDER)
        .bind(org)
        .bind(npi)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
}

#[tokio::test]
async fn npi_check_digit_and_uniqueness_among_active_providers() {
    let db = TestDb::seeded().await;
    let f = fixture(&db).await;
    for (npi, state, why) in [
        ("1234567890", "23514", "bad check digit"),
        ("12345", "23514", "too short"),
        ("1234567893", "23505", "duplicate NPI"),
    ] {
        let mut tx = f.as_a().await;
        let err = add_provider(&mut tx, f.c.a, npi).await.unwrap_err();
        assert_eq!(sqlstate(&err), state, "{why}");
    }

    let mut tx = f.as_a().await;
    exec(
        &mut tx,
        "UPDATE providers SET is_active = false WHERE npi = '1234567893'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        add_provider(&mut tx, f.c.a, "1234567893").await.unwrap(),
        1,
        "an inactive provider's NPI is free"
    );
    tx.commit().await.unwrap();

    let mut tx = f.as_b().await;
    assert_eq!(
        add_provider(&mut tx, f.c.b, "1234567893").await.unwrap(),
        1,
        "another clinic may use the NPI"
    );
}

#[tokio::test]
async fn mrn_is_unique_per_clinic_only() {
    let db = TestDb::seeded().await;
    let f = fixture(&db).await;
    let enroll = "INSERT INTO patients (organization_id, medical_record_number, first_name, last_name, \
                  date_of_birth, legal_sex) VALUES ($1, $2, 'Test', 'Patient', '1990-01-01', 'OTHER')";
    let mut tx = f.as_a().await;
    let err = sqlx::query(enroll)
        .bind(f.c.a)
        .bind("NS-0001")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23505");
    let mut tx = f.as_b().await;
    let done = sqlx::query(enroll)
        .bind(f.c.b)
        .bind("NS-0001")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
}

#[tokio::test]
async fn authorization_units_and_validity_are_checked() {
    let db = TestDb::seeded().await;
    let f = fixture(&db).await;
    let mut tx = f.as_a().await;
    for (sql, state) in [
        (
            "UPDATE payer_authorizations SET used_units = total_units + 1",
            "23514",
        ),
        ("UPDATE payer_authorizations SET used_units = -1", "23514"),
        (
            "UPDATE payer_authorizations SET valid_to = valid_from - 1",
            "23514",
        ),
    ] {
        let mut sp = (&mut *tx).begin().await.unwrap();
        assert_eq!(refused(&mut sp, sql, &[]).await, state, "{sql}");
    }
    let done = exec(
        &mut tx,
        "UPDATE payer_authorizations SET used_units = total_units \
         WHERE authorization_number = 'BH-2026-0042'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(done, 1, "using every unit is allowed");
}

#[tokio::test]
async fn a_provider_cannot_be_double_booked() {
    let db = TestDb::seeded().await;
    let f = fixture(&db).await;
    let jonathan = patient(&f.owner, "NS-0001").await;
    let sofia = patient(&f.owner, "NS-0002").await;
    let okafor = provider(&f.owner, f.c.a, "1234567893").await;
    let book = |p: Uuid, start: &'static str, end: &'static str| {
        sqlx::query(
            "INSERT INTO appointments (organization_id, patient_id, provider_id, starts_at, ends_at) \
             VALUES ($1, $2, $3, $4::timestamptz, $5::timestamptz) RETURNING id",
        )
        .bind(f.c.a)
        .bind(p)
        .bind(okafor)
        .bind(start)
        .bind(end)
    };
    let mut tx = f.as_a().await;
    book(jonathan, "2030-01-07 09:00Z", "2030-01-07 09:30Z")
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut sp = (&mut *tx).begin().await.unwrap();
    let err = book(sofia, "2030-01-07 09:15Z", "2030-01-07 09:45Z")
        .execute(&mut *sp)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23P01");
    drop(sp);
    // Back to back is fine: the ranges are half-open.
    book(sofia, "2030-01-07 09:30Z", "2030-01-07 10:00Z")
        .execute(&mut *tx)
        .await
        .unwrap();
    // A cancelled booking frees its slot.
    exec(
        &mut tx,
        "UPDATE appointments SET status = 'CANCELLED', cancel_reason = 'patient request' \
         WHERE starts_at = '2030-01-07 09:00Z'",
        &[],
    )
    .await
    .unwrap();
    book(sofia, "2030-01-07 09:00Z", "2030-01-07 09:30Z")
        .execute(&mut *tx)
        .await
        .unwrap();
}

#[tokio::test]
async fn contact_method_type_is_checked() {
    let db = TestDb::seeded().await;
    let f = fixture(&db).await;
    let jonathan = patient(&f.owner, "NS-0001").await;
    let mut tx = f.as_a().await;
    let err = sqlx::query(
        "INSERT INTO contact_methods (organization_id, patient_id, type, value) VALUES ($1, $2, 'FAX', '555')",
    )
    .bind(f.c.a)
    .bind(jonathan)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&err), "23514");
}

#[tokio::test]
async fn email_is_unique_regardless_of_case() {
    let db = TestDb::seeded().await;
    let f = fixture(&db).await;
    let err = sqlx::query(
        "INSERT INTO users (email, password_hash, display_name) \
         VALUES ('Admin@Northside.EXAMPLE', '$argon2id$x', 'Copy')",
    )
    .execute(&f.owner)
    .await
    .unwrap_err();
    assert_eq!(sqlstate(&err), "23505");
}

#[tokio::test]
async fn counters_follow_enrolment_and_soft_delete() {
    let db = TestDb::seeded().await;
    let f = fixture(&db).await;
    let counts = || async {
        sqlx::query_as::<_, (i32, i32)>(
            "SELECT member_count, patient_count FROM organizations WHERE id = $1",
        )
        .bind(f.c.a)
        .fetch_one(&f.owner)
        .await
        .unwrap()
    };
    // Northside's demo staff: two admins (one with MFA), two front desks,
    // Dr. Okafor.
    assert_eq!(counts().await, (5, 8));
    let mut tx = f.as_a().await;
    sqlx::query(
        "INSERT INTO patients (organization_id, medical_record_number, first_name, last_name, date_of_birth, legal_sex) \
         VALUES ($1, 'NS-0100', 'New', 'Patient', '2000-01-01', 'FEMALE')",
    )
    .bind(f.c.a)
    .execute(&mut *tx)
    .await
    .unwrap();
    exec(
        &mut tx,
        "UPDATE organization_memberships SET deleted_at = now() WHERE role = 'STAFF'",
        &[],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(counts().await, (3, 9));
    let mut tx = f.as_a().await;
    exec(
        &mut tx,
        "UPDATE patients SET deleted_at = now() WHERE medical_record_number = 'NS-0100'",
        &[],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(counts().await, (3, 8));
}

#[tokio::test]
async fn organization_timezone_must_be_iana() {
    let db = TestDb::seeded().await;
    let f = fixture(&db).await;
    let mut tx = f.as_a().await;
    assert_eq!(
        refused(
            &mut tx,
            "UPDATE organizations SET timezone = 'Mars/Olympus'",
            &[]
        )
        .await,
        "23514"
    );
}
