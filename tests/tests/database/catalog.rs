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

    let deletable: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' \
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

#[tokio::test]
async fn definer_functions_are_pinned_and_owned_by_a_confined_role_and_the_runtime_role_creates_nothing()
 {
    let db = TestDb::seeded().await;
    let owner = caregate::db::connect_owner(&db.owner_url).await.unwrap();
    let findings = service::integrity::security(&owner).await.unwrap();
    assert!(findings.is_empty(), "{findings:#?}");

    let pool = db.owner().await;
    let definers: Vec<(String, String, bool, bool)> = sqlx::query_as(
        "SELECT p.oid::regprocedure::text, r.rolname::text, r.rolsuper, r.rolcanlogin \
         FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner \
         JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE p.prosecdef AND n.nspname = 'app' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(definers.len() >= 10, "{definers:?}");
    for (f, owner, superuser, login) in &definers {
        assert_eq!(owner, "caregate_definer", "{f}");
        assert!(!superuser && !login, "{f}");
    }

    let runtime = db.runtime().await;
    let err = sqlx::query("CREATE TEMP TABLE t (i int)")
        .execute(&runtime)
        .await
        .expect_err("the runtime role may not create temporary tables");
    assert_eq!(crate::database::fixtures::sqlstate(&err), "42501");
    let err = sqlx::query("CREATE TABLE public.t (i int)")
        .execute(&runtime)
        .await
        .expect_err("the runtime role may not create tables");
    assert_eq!(crate::database::fixtures::sqlstate(&err), "42501");
}

#[tokio::test]
async fn the_security_check_reports_a_weakened_catalog() {
    let db = TestDb::seeded().await;
    let pool = db.owner().await;
    sqlx::raw_sql(crate::support::q(format!(
        "CREATE FUNCTION app.careless() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'; \
         GRANT TEMPORARY ON DATABASE {} TO caregate_app; \
         CREATE TABLE public.leaky (organization_id uuid); \
         CREATE POLICY nosy ON public.patients FOR SELECT \
             USING (EXISTS (SELECT 1 FROM public.providers));",
        db.name
    )))
    .execute(&pool)
    .await
    .unwrap();
    let owner = caregate::db::connect_owner(&db.owner_url).await.unwrap();
    let findings = service::integrity::security(&owner).await.unwrap();
    let rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
    assert!(
        rules.contains(&"SECURITY DEFINER functions pin search_path with pg_temp last"),
        "{findings:#?}"
    );
    assert!(
        rules.contains(&"SECURITY DEFINER functions are not owned by a superuser"),
        "{findings:#?}"
    );
    assert!(
        rules.contains(&"the runtime role cannot create objects"),
        "{findings:#?}"
    );
    let named = |rule: &str, object: &str| {
        findings
            .iter()
            .any(|f| f.rule == rule && f.detail.contains(object))
    };
    assert!(
        named(
            "every table is under forced row-level security with complete policies",
            "leaky"
        ),
        "{findings:#?}"
    );
    assert!(named("no policy runs a sub-query", "nosy"), "{findings:#?}");
}

#[tokio::test]
async fn a_temporary_view_cannot_hijack_a_definer_function() {
    let db = TestDb::seeded().await;
    let pool = db.owner().await;
    // Even where an operator granted TEMP back, pg_temp comes last.
    sqlx::raw_sql(crate::support::q(format!(
        "GRANT TEMPORARY ON DATABASE {} TO caregate_app",
        db.name
    )))
    .execute(&pool)
    .await
    .unwrap();
    let runtime = db.runtime_pool(1).await;
    let mut conn = runtime.acquire().await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION pg_temp.evil() RETURNS uuid LANGUAGE plpgsql AS \
           $$ BEGIN RAISE EXCEPTION 'hijacked'; END $$; \
         CREATE TEMP VIEW users AS SELECT pg_temp.evil() AS id, 'x'::text AS password_hash, \
           'admin@northside.example'::text AS email, NULL::timestamptz AS deleted_at;",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let found: Option<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT user_id, password_hash FROM app.login_lookup('admin@northside.example')",
    )
    .fetch_optional(&mut *conn)
    .await
    .expect("the function reads the real table, not the temporary view");
    let (_, hash) = found.expect("the real user");
    assert!(hash.starts_with("$argon2"), "{hash}");
}

#[tokio::test]
async fn the_request_context_is_set_once_and_a_refusal_sets_none_of_it() {
    let db = TestDb::seeded().await;
    let runtime = db.runtime().await;
    let mut tx = runtime.begin().await.unwrap();
    sqlx::query(
        "SELECT * FROM app.begin_request('r1', NULL, NULL, NULL, NULL, NULL, 15, false, true)",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let err = sqlx::query(
        "SELECT * FROM app.begin_request('r2', NULL, NULL, NULL, NULL, NULL, 15, false, true)",
    )
    .execute(&mut *tx)
    .await
    .expect_err("a second anonymous context");
    assert_eq!(crate::database::fixtures::sqlstate(&err), "55000");
    tx.rollback().await.unwrap();

    // An unknown session raises (28000): there is no status to ignore and
    // the transaction cannot go on with half a context.
    let mut tx = runtime.begin().await.unwrap();
    let err = sqlx::query(
        "SELECT * FROM app.begin_request('r3', NULL, NULL, app.new_ulid(), app.new_ulid(), app.new_ulid(), 15, false, true)",
    )
    .execute(&mut *tx)
    .await
    .expect_err("an unknown session");
    assert_eq!(crate::database::fixtures::sqlstate(&err), "28000");
    let after = sqlx::query("SELECT app.current_user_id()")
        .execute(&mut *tx)
        .await;
    assert!(after.is_err(), "the transaction is aborted");
}
