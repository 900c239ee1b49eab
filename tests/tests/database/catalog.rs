//! The catalog check: every table is under forced row-level security with
//! policies, unless it is on the short list of global tables.

use sea_orm::sqlx;

use crate::support::db::TestDb;

/// Tables that hold no tenant or personal data.
const GLOBAL_TABLES: &[&str] = &["seaql_migrations", "consent_documents"];

#[tokio::test]
async fn every_table_has_forced_rls_and_complete_policies_unless_allow_listed() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    let tables: Vec<(String, bool, bool, i64, i64)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity, \
                (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid), \
                (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid \
                   AND (p.polqual IS NULL OR (p.polcmd IN ('*', 'w') AND p.polwithcheck IS NULL))) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1",
    )
    .fetch_all(&owner)
    .await
    .unwrap();

    let mut failures = Vec::new();
    let mut forced = 0;
    for (table, enabled, force, policies, incomplete) in &tables {
        if GLOBAL_TABLES.contains(&table.as_str()) {
            continue;
        }
        if *enabled && *force && *policies > 0 && *incomplete == 0 {
            forced += 1;
        } else {
            failures.push(format!(
                "{table}: enabled={enabled} forced={force} policies={policies} \
                 without USING/WITH CHECK={incomplete}"
            ));
        }
    }
    println!(
        "forced RLS with complete policies: {forced}/{} tables ({} allow-listed)",
        tables.len(),
        GLOBAL_TABLES.len()
    );
    assert!(
        failures.is_empty(),
        "tables outside isolation: {failures:#?}"
    );
    assert_eq!(forced + GLOBAL_TABLES.len(), tables.len());
}

#[tokio::test]
async fn policies_contain_no_sub_query() {
    let db = TestDb::seeded().await;
    let owner = db.owner().await;
    let exprs: Vec<(String, String)> = sqlx::query_as(
        "SELECT tablename::text || '.' || policyname::text, \
                coalesce(qual, '') || ' ' || coalesce(with_check, '') \
         FROM pg_policies WHERE schemaname = 'public'",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert!(!exprs.is_empty());
    for (policy, expr) in exprs {
        assert!(
            !expr.to_lowercase().contains("select"),
            "{policy} runs a sub-query: {expr}"
        );
    }
}

#[tokio::test]
async fn runtime_role_cannot_bypass_rls() {
    let db = TestDb::seeded().await;
    let runtime = db.runtime().await;
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&runtime)
            .await
            .unwrap();
    assert!(!superuser && !bypass);
}

#[tokio::test]
async fn runtime_role_may_only_read_the_audit_trail_and_never_hard_delete() {
    let db = TestDb::seeded().await;
    let runtime = db.runtime().await;
    let audit: (bool, bool, bool, bool) = sqlx::query_as(
        "SELECT has_table_privilege('audit_events', 'SELECT'), \
                has_table_privilege('audit_events', 'INSERT'), \
                has_table_privilege('audit_events', 'UPDATE'), \
                has_table_privilege('audit_events', 'DELETE')",
    )
    .fetch_one(&runtime)
    .await
    .unwrap();
    assert_eq!(audit, (true, false, false, false));

    // Idempotency keys hold no clinical or identity data: expired ones are
    // purged (their policy lets only expired rows be deleted).
    let deletable: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'idempotency_keys' \
           AND (has_table_privilege(c.oid, 'DELETE') OR has_table_privilege(c.oid, 'TRUNCATE'))",
    )
    .fetch_all(&runtime)
    .await
    .unwrap();
    assert!(
        deletable.is_empty(),
        "runtime role may hard-delete from {deletable:?}"
    );
}
