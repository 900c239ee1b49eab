//! `caregate verify-isolation` against a running server on a seeded
//! database: clean, it passes with many probes and leaves clinic B's rows
//! byte for byte as they were; `--read-only` sends no mutation; with a
//! tenant policy weakened, it exits 1 and names the table and the fields;
//! it refuses a database role that bypasses row-level security, and
//! exits 2 when it cannot run.

use std::collections::BTreeSet;

use clap::Parser;
use sea_orm::sqlx::{self, PgPool};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::database::fixtures::org;
use crate::support::app::{TestApp, spawn_app, spawn_app_with};
use crate::support::q;

const ADMIN_A: &str = "admin@northside.example";
const ADMIN_B: &str = "admin@lakeside.example";

/// Runs `caregate verify-isolation` in-process against `url` (when given)
/// with `args`; returns the exit code and the JSON report.
async fn verify(url: Option<&str>, args: &[&str]) -> (i32, Value) {
    let report = std::env::temp_dir().join(format!(
        "caregate-verify-isolation-{}.json",
        ulid::Ulid::generate()
    ));
    let report_path = report.to_str().unwrap().to_owned();
    let mut argv = vec!["caregate", "verify-isolation", "--report", &report_path];
    if let Some(url) = url {
        argv.extend(["--url", url]);
    }
    argv.extend(args);
    let code = caregate::cli::run(caregate::cli::Cli::parse_from(argv))
        .await
        .expect("verify-isolation returns an exit code");
    let text = std::fs::read_to_string(&report).expect("the report is written");
    std::fs::remove_file(&report).ok();
    (
        code,
        serde_json::from_str(&text).expect("the report is JSON"),
    )
}

/// The test database's URL as the runtime role the server uses.
fn runtime_url(app: &TestApp) -> String {
    let mut url = url::Url::parse(&app.db.owner_url).unwrap();
    url.set_username(migration::RUNTIME_ROLE).unwrap();
    url.set_password(None).unwrap();
    url.to_string()
}

/// A digest of each table's rows of clinic B (and of B's own row), read
/// as the owner. Left out: `audit_events`, where B's own readings of its
/// data are recorded, `user_sessions`, where they move B's session's last
/// activity, and `clinic_budget_usage`, where they are counted against B's
/// budget — all B's own doing, with B's token.
async fn clinic_b_rows(owner: &PgPool, b: Uuid) -> Vec<(String, Option<String>)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'organization_id' \
              AND NOT a.attisdropped \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
           AND c.relname NOT IN ('audit_events', 'user_sessions', 'clinic_budget_usage') \
         ORDER BY 1",
    )
    .fetch_all(owner)
    .await
    .unwrap();
    assert!(tables.len() > 20, "tables of clinic data: {tables:?}");
    let mut out = Vec::new();
    for (table, column) in tables
        .iter()
        .map(|t| (t.as_str(), "organization_id"))
        .chain([("organizations", "id")])
    {
        let digest: Option<String> = sqlx::query_scalar(q(format!(
            "SELECT md5(string_agg(to_jsonb(t)::text, '' ORDER BY to_jsonb(t)::text)) \
             FROM {table} t WHERE {column} = $1"
        )))
        .bind(b)
        .fetch_one(owner)
        .await
        .unwrap();
        out.push((table.to_owned(), digest));
    }
    out
}

fn probes(report: &Value) -> &[Value] {
    report["probes"].as_array().map(Vec::as_slice).unwrap()
}

fn of_kind<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    probes(report)
        .iter()
        .filter(|p| p["kind"] == kind)
        .collect()
}

fn targets(report: &Value, kind: &str) -> BTreeSet<String> {
    of_kind(report, kind)
        .iter()
        .map(|p| p["target"].as_str().unwrap().to_owned())
        .collect()
}

fn leaks(report: &Value) -> Vec<&Value> {
    probes(report)
        .iter()
        .filter(|p| p["verdict"] == "leak")
        .collect()
}

/// Mutations of the schema with an id-typed argument of their own, read
/// independently of the command (which also looks inside input objects).
async fn mutations_taking_an_id(app: &TestApp, token: &str) -> BTreeSet<String> {
    let res = app
        .graphql(
            Some(token),
            "{ __schema { mutationType { fields { name args { type { name ofType { name ofType { name } } } } } } } }",
            json!({}),
        )
        .await;
    let fields = res["data"]["__schema"]["mutationType"]["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("{res}"));
    fields
        .iter()
        .filter(|f| {
            f["args"].as_array().unwrap().iter().any(|a| {
                let t = &a["type"];
                [
                    &t["name"],
                    &t["ofType"]["name"],
                    &t["ofType"]["ofType"]["name"],
                ]
                .iter()
                .any(|n| *n == "UUID" || *n == "ID")
            })
        })
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .filter(|name| name != "login")
        .collect()
}

/// The operations the server counted, by name (its Prometheus metrics).
async fn metrics(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_isolated_deployment_passes_every_probe_and_clinic_b_is_unchanged() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let b = org(&owner, "lakeside").await;
    let (token_a, token_b) = (app.login_as(ADMIN_A).await, app.login_as(ADMIN_B).await);
    let expected_mutations = mutations_taking_an_id(&app, &token_a).await;
    let before = clinic_b_rows(&owner, b).await;

    let url = app.url("/graphql");
    let database = runtime_url(&app);
    let started = std::time::Instant::now();
    let (code, report) = verify(
        Some(&url),
        &[
            "--token-a",
            &token_a,
            "--token-b",
            &token_b,
            "--database",
            &database,
        ],
    )
    .await;
    let took = started.elapsed();
    assert_eq!(code, 0, "{:#}", json!(leaks(&report)));
    assert!(report.get("error").is_none(), "{}", report["error"]);
    assert_eq!(report["summary"]["leaks"], 0);
    assert_eq!(
        report["clinicB"]["id"],
        b.to_string(),
        "{}",
        report["clinicB"]
    );

    // Every node type clinic B showed, by id; patients and providers by
    // their own fields; filters with B's ids.
    let nodes = of_kind(&report, "node");
    assert!(nodes.len() >= 20, "{} node probes", nodes.len());
    let node_types: BTreeSet<String> = nodes
        .iter()
        .map(|p| {
            let source = p["sources"][0].as_str().unwrap();
            source
                .rsplit('(')
                .next()
                .unwrap()
                .trim_end_matches(')')
                .to_owned()
        })
        .collect();
    for ty in [
        "Patient",
        "Provider",
        "Appointment",
        "CareTeamAssignment",
        "Organization",
    ] {
        assert!(
            node_types.contains(ty),
            "node probes of {ty}: {node_types:?}"
        );
    }
    assert!(!of_kind(&report, "nodes").is_empty());
    let queries = targets(&report, "query");
    for field in ["patient", "provider"] {
        assert!(queries.contains(field), "{queries:?}");
    }
    let filters = targets(&report, "filter");
    for field in ["patients", "appointments", "auditEvents"] {
        assert!(filters.contains(field), "{filters:?}");
    }

    // Every mutation taking an id was sent, filled with B's ids, and
    // refused like one with a missing id.
    let sent = targets(&report, "mutation");
    assert!(expected_mutations.len() >= 30, "{expected_mutations:?}");
    let missing: Vec<_> = expected_mutations.difference(&sent).collect();
    assert!(missing.is_empty(), "mutations not probed: {missing:?}");
    for m in [
        "updatePatient",
        "dischargePatient",
        "assignPrimaryProvider",
        "removeCareTeamMember",
        "scheduleAppointment",
        "grantProxyAccess",
        "switchOrganization",
    ] {
        assert!(sent.contains(m), "{m}: {sent:?}");
    }
    assert!(
        metrics(&app)
            .await
            .contains("operation=\"VerifyIsolationMutation\""),
        "the server saw the probes' mutations"
    );

    // The database, table by table, as the runtime role in A's context.
    let tables: BTreeSet<String> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap().to_owned())
        .collect();
    assert!(tables.len() >= 25, "{tables:?}");
    for t in [
        "public.patients",
        "public.providers",
        "public.appointments",
        "public.organizations",
    ] {
        assert!(tables.contains(t), "{t}: {tables:?}");
    }
    for kind in [
        "db.select",
        "db.insert",
        "db.update",
        "db.move",
        "db.delete",
    ] {
        assert_eq!(targets(&report, kind), tables, "{kind}");
    }
    let patients = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.patients")
        .unwrap();
    assert!(patients["bRows"].as_i64().unwrap() > 0, "{patients}");
    assert!(patients["aRows"].as_i64().unwrap() > 0, "{patients}");
    let refused = of_kind(&report, "db.insert")
        .into_iter()
        .find(|p| p["target"] == "public.patients")
        .unwrap();
    assert_eq!(refused["verdict"], "pass", "{refused}");
    assert!(
        refused["actual"]
            .as_str()
            .unwrap()
            .contains("row-level security"),
        "{refused}"
    );

    // B's data as its own token reads it, compared before and after.
    let unchanged = of_kind(&report, "unchanged");
    assert!(unchanged.len() >= 10, "{}", unchanged.len());

    let (api, mutations, db) = (
        report["summary"]["apiProbes"].as_u64().unwrap(),
        report["summary"]["mutationProbes"].as_u64().unwrap(),
        report["summary"]["databaseProbes"].as_u64().unwrap(),
    );
    assert!(api >= 120 && db >= 125, "api {api}, database {db}");
    println!(
        "verify-isolation: {api} API probes ({mutations} mutations), {db} database probes in {took:?}"
    );

    assert_eq!(
        before,
        clinic_b_rows(&owner, b).await,
        "clinic B's rows changed"
    );
}

#[tokio::test]
async fn read_only_sends_no_mutation_and_still_passes() {
    let app = spawn_app().await;
    let (token_a, token_b) = (app.login_as(ADMIN_A).await, app.login_as(ADMIN_B).await);
    let url = app.url("/graphql");
    let (code, report) = verify(
        Some(&url),
        &["--token-a", &token_a, "--token-b", &token_b, "--read-only"],
    )
    .await;
    assert_eq!(code, 0, "{:#}", json!(leaks(&report)));
    assert_eq!(report["readOnly"], true);
    assert!(of_kind(&report, "mutation").is_empty());
    assert_eq!(report["summary"]["mutationProbes"], 0);
    assert!(report["summary"]["apiProbes"].as_u64().unwrap() >= 50);
    let skipped = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["kind"] == "mutation" && s["reason"].as_str().unwrap().contains("--read-only")
        })
        .count();
    assert!(skipped >= 30, "{skipped} mutations skipped as read-only");
    let served = metrics(&app).await;
    assert!(
        served.contains("operation=\"VerifyIsolationProbe\""),
        "{served}"
    );
    assert!(
        !served.contains("operation=\"VerifyIsolationMutation\""),
        "a mutation reached the server: {served}"
    );
}

#[tokio::test]
async fn a_permissive_patients_policy_is_a_leak_named_by_its_table() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let (token_a, token_b) = (app.login_as(ADMIN_A).await, app.login_as(ADMIN_B).await);
    sqlx::raw_sql(
        "DROP POLICY tenant_isolation ON patients; \
         CREATE POLICY leak ON patients USING (true) WITH CHECK (true)",
    )
    .execute(&owner)
    .await
    .unwrap();

    let url = app.url("/graphql");
    let database = runtime_url(&app);
    let (code, report) = verify(
        Some(&url),
        &[
            "--token-a",
            &token_a,
            "--token-b",
            &token_b,
            "--database",
            &database,
        ],
    )
    .await;
    assert_eq!(code, 1, "{}", report["summary"]);
    let leaks = leaks(&report);
    let db_leaks: BTreeSet<(&str, &str)> = leaks
        .iter()
        .filter(|p| p["kind"].as_str().unwrap().starts_with("db."))
        .map(|p| (p["kind"].as_str().unwrap(), p["target"].as_str().unwrap()))
        .collect();
    for kind in ["db.select", "db.insert", "db.update"] {
        assert!(
            db_leaks.contains(&(kind, "public.patients")),
            "{kind}: {db_leaks:?}"
        );
    }
    assert!(
        db_leaks.iter().all(|(_, t)| *t == "public.patients"),
        "only the weakened table leaks: {db_leaks:?}"
    );
    // Through the API, each clinic now sees both clinics' patients: from
    // the outside that looks like global data, so the API side names the
    // type as inconclusive and the database decides.
    let overlap = of_kind(&report, "overlap")
        .into_iter()
        .find(|p| p["target"] == "Patient")
        .unwrap_or_else(|| panic!("{:#}", json!(of_kind(&report, "overlap"))));
    assert_eq!(overlap["verdict"], "inconclusive", "{overlap}");
    assert!(
        overlap["detail"]
            .as_str()
            .unwrap()
            .contains("a leak both ways"),
        "{overlap}"
    );
}

#[tokio::test]
async fn a_policy_that_lets_one_clinic_read_another_is_named_field_by_field() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let a = org(&owner, "northside").await;
    let (token_a, token_b) = (app.login_as(ADMIN_A).await, app.login_as(ADMIN_B).await);
    // A read-only hole for one clinic: writes still go by the tenant policy.
    sqlx::raw_sql(q(format!(
        "CREATE POLICY one_way ON patients FOR SELECT USING (app.current_tenant_id() = '{a}')"
    )))
    .execute(&owner)
    .await
    .unwrap();

    let url = app.url("/graphql");
    let (code, report) = verify(Some(&url), &["--token-a", &token_a, "--token-b", &token_b]).await;
    assert_eq!(code, 1, "{}", report["summary"]);
    let fields: BTreeSet<(&str, &str)> = leaks(&report)
        .iter()
        .map(|p| (p["kind"].as_str().unwrap(), p["target"].as_str().unwrap()))
        .collect();
    for leak in [
        ("overlap", "Patient"),
        ("query", "patient"),
        ("node", "node"),
        ("nodes", "nodes"),
    ] {
        assert!(fields.contains(&leak), "{leak:?}: {fields:?}");
    }
    // A mutation on one of B's patients now answers unlike one on a
    // missing patient: it tells A the patient exists.
    assert!(
        fields.iter().any(|(kind, _)| *kind == "mutation"),
        "{fields:?}"
    );
    assert!(
        !fields.iter().any(|(kind, _)| *kind == "unchanged"),
        "writes still go by the tenant policy: {fields:?}"
    );
}

#[tokio::test]
async fn a_table_without_row_level_security_is_a_leak_in_database_mode() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let (token_a, token_b) = (app.login_as(ADMIN_A).await, app.login_as(ADMIN_B).await);
    sqlx::raw_sql("ALTER TABLE contact_methods DISABLE ROW LEVEL SECURITY")
        .execute(&owner)
        .await
        .unwrap();

    let database = runtime_url(&app);
    let (code, report) = verify(
        None,
        &[
            "--token-a",
            &token_a,
            "--token-b",
            &token_b,
            "--database",
            &database,
        ],
    )
    .await;
    assert_eq!(code, 1, "{}", report["summary"]);
    let leaked: BTreeSet<(&str, &str)> = leaks(&report)
        .iter()
        .map(|p| (p["kind"].as_str().unwrap(), p["target"].as_str().unwrap()))
        .collect();
    for kind in ["db.select", "db.insert", "db.update", "db.move"] {
        assert!(
            leaked.contains(&(kind, "public.contact_methods")),
            "{kind}: {leaked:?}"
        );
    }
    assert!(
        leaked.iter().all(|(_, t)| *t == "public.contact_methods"),
        "{leaked:?}"
    );
    let facts = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.contact_methods")
        .unwrap();
    assert_eq!(facts["rowSecurity"], false, "{facts}");
    assert_eq!(report["summary"]["apiProbes"], 0, "no API was given");
}

#[tokio::test]
async fn database_mode_refuses_a_role_that_bypasses_row_level_security() {
    let app = spawn_app().await;
    let owner = app.db.owner().await;
    let (token_a, token_b) = (app.login_as(ADMIN_A).await, app.login_as(ADMIN_B).await);
    let tokens = ["--token-a", &token_a, "--token-b", &token_b];

    // The owner of the test databases is a superuser.
    let superuser = app.db.owner_url.clone();
    let (code, report) = verify(None, &[&tokens[..], &["--database", &superuser]].concat()).await;
    assert_eq!(code, 2);
    assert!(
        report["error"].as_str().unwrap().contains("is a superuser"),
        "{}",
        report["error"]
    );
    assert!(probes(&report).is_empty(), "nothing ran");

    // A role that is no superuser but has BYPASSRLS.
    let role = format!(
        "verify_bypass_{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    sqlx::raw_sql(q(format!(
        "CREATE ROLE {role} LOGIN NOSUPERUSER BYPASSRLS; GRANT CONNECT ON DATABASE {} TO {role}",
        app.db.name
    )))
    .execute(&owner)
    .await
    .unwrap();
    let mut bypass = url::Url::parse(&app.db.owner_url).unwrap();
    bypass.set_username(&role).unwrap();
    let (code, report) = verify(
        None,
        &[&tokens[..], &["--database", bypass.as_str()]].concat(),
    )
    .await;
    sqlx::raw_sql(q(format!(
        "REVOKE CONNECT ON DATABASE {} FROM {role}; DROP ROLE {role}",
        app.db.name
    )))
    .execute(&owner)
    .await
    .ok();
    assert_eq!(code, 2);
    assert!(
        report["error"].as_str().unwrap().contains("has BYPASSRLS"),
        "{}",
        report["error"]
    );
    assert!(probes(&report).is_empty(), "nothing ran");
}

#[tokio::test]
async fn it_exits_2_when_it_cannot_run() {
    let app = spawn_app().await;
    let token_a = app.login_as(ADMIN_A).await;
    let url = app.url("/graphql");

    // A token the server refuses.
    let (code, report) = verify(
        Some(&url),
        &["--token-a", &token_a, "--token-b", "not-a-token"],
    )
    .await;
    assert_eq!(code, 2);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("clinic B's token was refused"),
        "{}",
        report["error"]
    );

    // Two tokens of one clinic.
    let other_a = app.login_as("frontdesk@northside.example").await;
    let (code, report) = verify(Some(&url), &["--token-a", &token_a, "--token-b", &other_a]).await;
    assert_eq!(code, 2);
    assert!(
        report["error"].as_str().unwrap().contains("same clinic"),
        "{}",
        report["error"]
    );

    // Nothing listening.
    let (code, report) = verify(
        Some("http://127.0.0.1:9/graphql"),
        &["--token-a", &token_a, "--token-b", &token_a],
    )
    .await;
    assert_eq!(code, 2);
    assert!(
        report["error"].as_str().unwrap().contains("cannot reach"),
        "{}",
        report["error"]
    );

    // A deployment that does not serve introspection.
    let prod = spawn_app_with(|c| {
        c.environment = caregate::config::Environment::Production;
        c.jwt_secret = Some("a-production-secret-of-at-least-32-bytes".to_owned());
    })
    .await;
    let (prod_a, prod_b) = (prod.login_as(ADMIN_A).await, prod.login_as(ADMIN_B).await);
    let prod_url = prod.url("/graphql");
    let (code, report) = verify(
        Some(&prod_url),
        &["--token-a", &prod_a, "--token-b", &prod_b],
    )
    .await;
    assert_eq!(code, 2);
    assert!(
        report["error"].as_str().unwrap().contains("INTROSPECTION"),
        "{}",
        report["error"]
    );
}
