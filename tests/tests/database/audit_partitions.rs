//! The audit trail's monthly partitions: every partition is as append-only
//! and as isolated as the parent, `caregate audit maintain` keeps months
//! ready ahead of time, and retention drops a month only after its archive
//! was written and verified.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use clap::Parser;
use sea_orm::sqlx::{self, PgPool};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::fixtures::{clinics, sqlstate};
use crate::support::context::Ctx;
use crate::support::db::TestDb;
use crate::support::q;

/// A policy: name, command, permissive, USING, WITH CHECK.
type PolicyRow = (String, String, bool, Option<String>, Option<String>);

async fn maintain(db: &TestDb, args: &[&str]) -> anyhow::Result<i32> {
    let mut argv = vec![
        "caregate",
        "--database-url",
        db.owner_url.as_str(),
        "audit",
        "maintain",
    ];
    argv.extend_from_slice(args);
    caregate::cli::run(caregate::cli::Cli::parse_from(argv)).await
}

/// (name, attached) of every monthly partition and the default one.
async fn partitions(owner: &PgPool) -> Vec<(String, bool)> {
    sqlx::query_as("SELECT name, attached FROM app.audit_partitions()")
        .fetch_all(owner)
        .await
        .unwrap()
}

/// The partition holding events of this moment.
async fn current_partition(owner: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT name FROM app.audit_partitions() WHERE range_from <= now() AND now() < range_to",
    )
    .fetch_one(owner)
    .await
    .unwrap()
}

/// Writes `n` events of `org` at `at` as the owner; returns their ids.
async fn events_at(owner: &PgPool, org: Uuid, at: &str, n: i32) -> Vec<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO audit_events (occurred_at, organization_id, action, resource_type, resource_id, changes) \
         SELECT $2::timestamptz + make_interval(secs => g), $1, 'READ', 'patients', app.new_ulid(), \
                jsonb_build_object('n', g) \
         FROM generate_series(1, $3) AS g RETURNING id",
    )
    .bind(org)
    .bind(at)
    .bind(n)
    .fetch_all(owner)
    .await
    .unwrap()
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "caregate-audit-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn the_runtime_role_cannot_update_delete_or_truncate_the_parent_or_a_partition_by_name() {
    let db = TestDb::seeded().await;
    let (owner, runtime) = (db.owner().await, db.runtime().await);
    let c = clinics(&owner).await;
    let current = current_partition(&owner).await;
    // A row in the current month's partition and one in DEFAULT (no month
    // that old has a partition), so that row triggers have rows to fire on.
    events_at(&owner, c.a, &chrono::Utc::now().to_rfc3339(), 1).await;
    events_at(&owner, c.a, "2001-01-10T00:00:00Z", 1).await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&owner)
        .await
        .unwrap();
    for table in ["audit_events", current.as_str(), "audit_events_default"] {
        for sql in [
            format!("UPDATE {table} SET action = 'READ'"),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table}"),
            format!("INSERT INTO {table} (action, resource_type) VALUES ('CREATE', 'patients')"),
        ] {
            let mut tx = Ctx::staff(c.a, c.a_admin, "ADMIN").begin(&runtime).await;
            let err = sqlx::query(q(sql.clone()))
                .execute(&mut *tx)
                .await
                .expect_err(&sql);
            assert_eq!(sqlstate(&err), "42501", "{sql}");
        }
    }
    // Not even the owner rewrites a partition named directly: the row
    // trigger is cloned into every partition, and each carries its own
    // TRUNCATE trigger (statement triggers are not cloned).
    for table in [current.as_str(), "audit_events_default"] {
        for sql in [
            format!("UPDATE {table} SET action = 'READ'"),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table}"),
        ] {
            let err = sqlx::query(q(sql.clone()))
                .execute(&owner)
                .await
                .expect_err(&sql);
            assert_eq!(sqlstate(&err), "42501", "{sql}");
        }
    }
    let err = sqlx::query("TRUNCATE audit_events")
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
async fn every_partition_carries_the_parents_policies_and_triggers_and_grants_nothing() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    sqlx::query("SELECT app.audit_partition_create('2025-02-01')")
        .execute(&owner)
        .await
        .unwrap();
    let parts = partitions(&owner).await;
    assert!(parts.len() >= 6, "{parts:?}");
    let policies = |table: String| {
        let owner = owner.clone();
        async move {
            let rows: Vec<PolicyRow> = sqlx::query_as(
                "SELECT polname::text, polcmd::text, polpermissive, \
                            pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid) \
                     FROM pg_policy WHERE polrelid = $1::regclass ORDER BY polname",
            )
            .bind(table)
            .fetch_all(&owner)
            .await
            .unwrap();
            rows
        }
    };
    let parent = policies("public.audit_events".into()).await;
    assert_eq!(parent.len(), 1);
    for (name, attached) in &parts {
        assert!(attached, "{name}");
        assert_eq!(policies(format!("public.{name}")).await, parent, "{name}");
        let (rls, force, triggers, runtime_rights): (bool, bool, Vec<String>, bool) =
            sqlx::query_as(
                "SELECT c.relrowsecurity, c.relforcerowsecurity, \
                        ARRAY(SELECT tgname::text FROM pg_trigger WHERE tgrelid = c.oid ORDER BY 1), \
                        has_table_privilege('caregate_app', c.oid, \
                          'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') \
                 FROM pg_class c WHERE c.oid = $1::regclass",
            )
            .bind(format!("public.{name}"))
            .fetch_one(&owner)
            .await
            .unwrap();
        assert!(rls && force, "{name}");
        assert_eq!(
            triggers,
            vec!["audit_events_append_only", "audit_events_no_truncate"],
            "{name}"
        );
        assert!(!runtime_rights, "{name}");
    }
}

#[tokio::test]
async fn clinic_a_cannot_read_clinic_b_rows_through_a_partition_named_directly() {
    let db = TestDb::seeded().await;
    let (owner, runtime) = (db.owner().await, db.runtime().await);
    let c = clinics(&owner).await;
    let current = current_partition(&owner).await;
    let now = chrono::Utc::now().to_rfc3339();
    events_at(&owner, c.a, &now, 3).await;
    events_at(&owner, c.b, &now, 2).await;

    // The runtime role has no right on a partition at all.
    let mut tx = Ctx::staff(c.a, c.a_admin, "ADMIN").begin(&runtime).await;
    let err = sqlx::query(q(format!("SELECT count(*) FROM {current}")))
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    drop(tx);

    // Should an operator grant it one, the partition's own policies hold.
    sqlx::query(q(format!("GRANT SELECT ON {current} TO caregate_app")))
        .execute(&owner)
        .await
        .unwrap();
    for (me, admin, other) in [(c.a, c.a_admin, c.b), (c.b, c.b_admin, c.a)] {
        let mut tx = Ctx::staff(me, admin, "ADMIN").begin(&runtime).await;
        let (mine, theirs): (i64, i64) = sqlx::query_as(q(format!(
            "SELECT count(*) FILTER (WHERE organization_id = $1), \
                    count(*) FILTER (WHERE organization_id IS DISTINCT FROM $1) FROM {current}"
        )))
        .bind(me)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert!(mine >= 2, "{me}");
        assert_eq!(theirs, 0, "{me} reads {other}'s events");
        let by_id: i64 = sqlx::query_scalar(q(format!(
            "SELECT count(*) FROM {current} WHERE organization_id = $1"
        )))
        .bind(other)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(by_id, 0);
    }
    // No context: no rows.
    let mut tx = Ctx::default().begin(&runtime).await;
    let n: i64 = sqlx::query_scalar(q(format!("SELECT count(*) FROM {current}")))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn maintain_creates_months_ahead_and_a_second_run_changes_nothing() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    assert_eq!(maintain(&db, &["--months-ahead", "6"]).await.unwrap(), 0);
    let ahead: Vec<String> = sqlx::query_scalar(
        "SELECT (app.audit_partition_of(((now() AT TIME ZONE 'UTC')::date + make_interval(months => k))::date)).name \
         FROM generate_series(0, 6) AS k",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    let parts = partitions(&owner).await;
    for name in &ahead {
        assert!(parts.contains(&(name.clone(), true)), "{name}: {parts:?}");
    }
    assert!(parts.contains(&("audit_events_default".into(), true)));

    let conn = caregate::db::connect_owner(&db.owner_url).await.unwrap();
    let options = service::audit_partitions::MaintainOptions {
        months_ahead: 6,
        retention: None,
    };
    let again = service::audit_partitions::maintain(&conn, &options)
        .await
        .unwrap();
    assert!(again.created.is_empty(), "{:?}", again.created);
    assert!(again.failed.is_empty() && again.archived.is_empty());
    assert_eq!(partitions(&owner).await, parts);
}

#[tokio::test]
async fn rows_waiting_in_the_default_partition_move_into_their_month() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    let c = clinics(&owner).await;
    let ids = events_at(&owner, c.a, "2023-06-15T12:00:00Z", 3).await;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&owner)
        .await
        .unwrap();
    let home = |owner: PgPool, ids: Vec<Uuid>| async move {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT tableoid::regclass::text FROM audit_events WHERE id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&owner)
        .await
        .unwrap();
        rows
    };
    assert_eq!(
        home(owner.clone(), ids.clone()).await,
        ["audit_events_default"]
    );

    assert_eq!(maintain(&db, &[]).await.unwrap(), 0);
    assert_eq!(
        home(owner.clone(), ids.clone()).await,
        ["audit_events_2023_06"]
    );
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(after, total);
}

#[tokio::test]
async fn retention_archives_verifies_and_only_then_drops_old_months() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    let c = clinics(&owner).await;
    let mut january = events_at(&owner, c.a, "2024-01-05T00:00:00Z", 40).await;
    january.extend(events_at(&owner, c.b, "2024-01-20T00:00:00Z", 25).await);
    let february = events_at(&owner, c.b, "2024-02-29T23:59:00Z", 7).await;
    let recent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE occurred_at >= '2025-01-01T00:00:00Z'",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert!(recent > 0);
    // Those months get their partitions first (their rows wait in DEFAULT).
    assert_eq!(maintain(&db, &[]).await.unwrap(), 0);

    let dir = scratch_dir().join("archives");
    let dir_arg = dir.to_string_lossy().into_owned();
    let code = maintain(
        &db,
        &["--retain-months", "12", "--export-dir", dir_arg.as_str()],
    )
    .await
    .unwrap();
    assert_eq!(code, 0);

    let names: Vec<String> = partitions(&owner).await.into_iter().map(|p| p.0).collect();
    assert!(
        !names.iter().any(|n| n.starts_with("audit_events_2024_")),
        "{names:?}"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(left, recent, "only the retired months are gone");

    let files = files_in(&dir);
    assert_eq!(files.len(), 4, "{files:?}");
    for (month, ids) in [("2024_01", &january), ("2024_02", &february)] {
        let manifest_name = files
            .iter()
            .find(|f| {
                f.starts_with(&format!("audit_events_{month}-")) && f.ends_with(".manifest.json")
            })
            .unwrap_or_else(|| panic!("a manifest of {month}: {files:?}"));
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(manifest_name)).unwrap()).unwrap();
        assert_eq!(manifest["table"], format!("audit_events_{month}"));
        assert_eq!(manifest["rows"], ids.len());
        let file = dir.join(manifest["file"].as_str().unwrap());
        // Who read which chart is PHI: readable by the operator alone.
        for written in [&file, &dir.join(manifest_name)] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(written).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", written.display());
        }

        // The archive, checked independently of the code that wrote it.
        let mut bytes = Vec::new();
        std::fs::File::open(&file)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        let sha: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(manifest["sha256"], sha);
        assert_eq!(manifest["bytes"], bytes.len());
        let lines: Vec<serde_json::Value> =
            BufReader::new(flate2::read::GzDecoder::new(bytes.as_slice()))
                .lines()
                .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
                .collect();
        assert_eq!(lines.len(), ids.len());
        let mut read: Vec<Uuid> = lines
            .iter()
            .map(|e| e["id"].as_str().unwrap().parse().unwrap())
            .collect();
        read.sort();
        let mut expected = ids.clone();
        expected.sort();
        assert_eq!(read, expected);
        assert!(
            lines
                .iter()
                .all(|e| e["action"] == "READ" && e["changes"]["n"].is_number())
        );
        assert!(
            manifest["range_from"]
                .as_str()
                .unwrap()
                .starts_with(&month.replace('_', "-"))
        );
    }
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[tokio::test]
async fn a_failing_export_leaves_the_month_in_place_and_exits_with_an_error() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    let c = clinics(&owner).await;
    let ids = events_at(&owner, c.a, "2024-03-10T00:00:00Z", 5).await;
    sqlx::query("SELECT app.audit_partition_create('2024-03-01')")
        .execute(&owner)
        .await
        .unwrap();
    // A directory that cannot be created, even by root: its parent is a file.
    let scratch = scratch_dir();
    std::fs::write(scratch.join("not-a-dir"), b"x").unwrap();
    let dir = scratch.join("not-a-dir").join("archives");
    let dir_arg = dir.to_string_lossy().into_owned();
    let code = maintain(
        &db,
        &["--retain-months", "12", "--export-dir", dir_arg.as_str()],
    )
    .await
    .unwrap();
    assert_eq!(code, 1);

    assert!(
        partitions(&owner)
            .await
            .contains(&("audit_events_2024_03".into(), true)),
        "re-attached"
    );
    let home: Vec<String> =
        sqlx::query_scalar("SELECT tableoid::regclass::text FROM audit_events WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&owner)
            .await
            .unwrap();
    assert_eq!(home, vec!["audit_events_2024_03"; 5]);
    assert_eq!(files_in(&scratch), ["not-a-dir"]);

    // Without a place for the archive, retention refuses to start at all.
    let err = maintain(&db, &["--retain-months", "12"]).await.unwrap_err();
    assert!(err.to_string().contains("--export-dir"), "{err:#}");
    let _ = std::fs::remove_dir_all(&scratch);
}

#[tokio::test]
async fn a_month_left_detached_is_archived_or_reattached_by_the_next_run() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    let c = clinics(&owner).await;
    events_at(&owner, c.a, "2024-05-10T00:00:00Z", 2).await;
    events_at(&owner, c.a, "2024-06-10T00:00:00Z", 3).await;
    for month in ["2024-05-01", "2024-06-01"] {
        sqlx::query("SELECT app.audit_partition_create($1::date)")
            .bind(month)
            .execute(&owner)
            .await
            .unwrap();
    }
    // As a crash between detaching and archiving would leave them.
    for name in ["audit_events_2024_05", "audit_events_2024_06"] {
        sqlx::query("SELECT app.audit_partition_detach($1)")
            .bind(name)
            .execute(&owner)
            .await
            .unwrap();
        // Still append-only while detached.
        let err = sqlx::query(q(format!("DELETE FROM {name}")))
            .execute(&owner)
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err), "42501");
    }
    // Without a retention, the next run attaches them again.
    assert_eq!(maintain(&db, &[]).await.unwrap(), 0);
    let parts = partitions(&owner).await;
    assert!(
        parts.contains(&("audit_events_2024_05".into(), true)),
        "{parts:?}"
    );
    assert!(
        parts.contains(&("audit_events_2024_06".into(), true)),
        "{parts:?}"
    );

    // With one, a detached old month is archived and dropped.
    sqlx::query("SELECT app.audit_partition_detach('audit_events_2024_05')")
        .execute(&owner)
        .await
        .unwrap();
    let dir = scratch_dir();
    let dir_arg = dir.to_string_lossy().into_owned();
    assert_eq!(
        maintain(
            &db,
            &["--retain-months", "12", "--export-dir", dir_arg.as_str()]
        )
        .await
        .unwrap(),
        0
    );
    let names: Vec<String> = partitions(&owner).await.into_iter().map(|p| p.0).collect();
    assert!(
        !names.iter().any(|n| n.starts_with("audit_events_2024_")),
        "{names:?}"
    );
    assert_eq!(files_in(&dir).len(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_security_check_reports_a_partition_weaker_than_the_trail() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    let conn = caregate::db::connect_owner(&db.owner_url).await.unwrap();
    assert!(
        service::integrity::security(&conn)
            .await
            .unwrap()
            .is_empty(),
        "a fresh catalog passes"
    );
    let current = current_partition(&owner).await;
    sqlx::raw_sql(q(format!(
        "DROP POLICY tenant_isolation ON {current}; \
         CREATE POLICY tenant_isolation ON {current} USING (true) WITH CHECK (true); \
         DROP TRIGGER audit_events_no_truncate ON audit_events_default;"
    )))
    .execute(&owner)
    .await
    .unwrap();
    let findings = service::integrity::security(&conn).await.unwrap();
    let mut details: Vec<&str> = findings
        .iter()
        .filter(|f| f.rule == "every audit partition is as protected as the audit trail")
        .map(|f| f.detail.as_str())
        .collect();
    details.sort();
    assert_eq!(details.len(), 2, "{findings:#?}");
    assert!(details[0].starts_with(&current), "{details:?}");
    assert!(
        details[1].starts_with("audit_events_default"),
        "{details:?}"
    );
}
