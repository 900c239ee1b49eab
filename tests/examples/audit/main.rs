//! The audit trail at scale: partitioning 10 million events, looking up one
//! patient's events, and `caregate audit maintain` on that data set.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo run -p tests --example audit_trail -- [--rows 10000000] [--plans] [--keep]
//! ```
//!
//! It creates a fresh database (`caregate_audit_bench`) on the server of
//! DATABASE_URL (a role that may create databases), migrates it up to the
//! migration before the partitioning, loads the demo clinics, and, as the
//! owner, generates `--rows` audit events with `generate_series`: spread
//! evenly over the twelve whole months before this one and this month so
//! far, over 40 clinics (one of them the demo's Northside) and 100,000
//! patients (100 events each). Then it measures, printing a Markdown table:
//!
//! 1. `auditEvents(filter: {resourceId})` for one Northside patient, as the
//!    service runs it: in a request context the guard opens for Northside's
//!    admin (runtime role, row-level security on): the median of 50 calls,
//!    and the EXPLAIN ANALYZE of the statement — on the unpartitioned table;
//!    and again with the index the partitioning adds
//!    (organization_id, resource_id, occurred_at, id) built on the
//!    unpartitioned table (then dropped);
//! 2. the partitioning migration itself (moving every row);
//! 3. the same lookup on the partitioned table;
//! 4. `caregate audit maintain --months-ahead 6` (creating three months),
//!    and again (nothing to do);
//! 5. `caregate audit maintain --retain-months 11`: detaching, exporting,
//!    verifying and dropping the oldest month (the only one that ended more
//!    than 11 months ago).
//!
//! The database is dropped at the end unless `--keep`.

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sea_orm::sqlx::{self, Executor};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use uuid::Uuid;

const DB_NAME: &str = "caregate_audit_bench";
const MASTER_KEYS: &str = "1 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const CLINICS: i64 = 40;
const PATIENTS: i64 = 100_000;
const CALLS: usize = 50;

#[derive(Debug, Parser)]
#[command(name = "audit_trail", about = "The audit trail's partitions at scale")]
struct Args {
    /// Audit events to generate.
    #[arg(long, default_value_t = 10_000_000)]
    rows: i64,
    /// Rows per INSERT statement while generating.
    #[arg(long, default_value_t = 1_000_000)]
    batch: i64,
    /// A role that may create databases.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Where `audit maintain` writes the archive (default: a directory
    /// under the system's temporary directory).
    #[arg(long)]
    export_dir: Option<std::path::PathBuf>,
    /// Keep the database afterwards.
    #[arg(long)]
    keep: bool,
    /// Print both query plans (EXPLAIN ANALYZE, BUFFERS) in full.
    #[arg(long)]
    plans: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(err) = run(args).await {
        eprintln!("audit_trail: {err:#}");
        std::process::exit(1);
    }
}

fn progress(t0: Instant, what: impl std::fmt::Display) {
    eprintln!("[{:>7.1}s] {what}", t0.elapsed().as_secs_f64());
}

fn url_of(url: &str, db: &str) -> Result<String> {
    let mut u = url::Url::parse(url).context("parsing DATABASE_URL")?;
    u.set_path(&format!("/{db}"));
    Ok(u.to_string())
}

async fn pool(url: &str, size: u32) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(size)
        .connect_with(PgConnectOptions::from_str(url)?.application_name("caregate-audit-bench"))
        .await
        .context("connecting")
}

struct Lookup {
    median_ms: f64,
    min_ms: f64,
    rows: usize,
    planning_ms: f64,
    explain_ms: f64,
    plan: String,
}

async fn run(args: Args) -> Result<()> {
    let t0 = Instant::now();
    if args.rows < 1 || args.batch < 1 {
        bail!("--rows and --batch must be at least 1");
    }
    let admin = pool(&args.database_url, 1).await?;
    admin
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"
        ))))
        .await?;
    admin
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {DB_NAME}"
        ))))
        .await
        .context("creating the database")?;
    let url = url_of(&args.database_url, DB_NAME)?;
    let result = measure(&args, &url, t0).await;
    if !args.keep {
        admin
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"
            ))))
            .await?;
    }
    result
}

async fn measure(args: &Args, url: &str, t0: Instant) -> Result<()> {
    let owner = caregate::db::connect_owner(url).await?;
    let names = migration::migration_names();
    let before = names
        .iter()
        .position(|n| n == "0022_audit_partitions")
        .context("the partitioning migration")?;
    progress(t0, format!("migrating up to {}", names[before - 1]));
    Migrator::up(&owner, Some(u32::try_from(before)?)).await?;
    let keyring = service::phi::Keyring::new(service::phi::MasterKeys::parse(MASTER_KEYS)?);
    service::demo::seed(&owner, &keyring).await?;
    let raw = pool(url, 1).await?;
    let north: Uuid = sqlx::query_scalar("SELECT id FROM organizations WHERE slug = 'northside'")
        .fetch_one(&raw)
        .await?;

    // The data set. Patient p belongs to clinic p % 40 (clinic 0 is
    // Northside); event g is about patient g % 100,000, at a time spread
    // evenly from the start of the month a year ago until now.
    let started = Instant::now();
    let mut done = 0;
    while done < args.rows {
        let n = args.batch.min(args.rows - done);
        sqlx::query(
            "WITH span AS (SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '12 months') \
                                  AT TIME ZONE 'UTC' AS start, now() AS stop) \
             INSERT INTO audit_events (id, occurred_at, organization_id, actor_user_id, action, \
                                       resource_type, resource_id, changes, request_id, ip, user_agent) \
             SELECT gen_random_uuid(), \
                    span.start + (span.stop - span.start) * (g::float8 / $3), \
                    CASE WHEN (g % $4) % $5 = 0 THEN $6 ELSE md5('clinic' || (g % $4) % $5)::uuid END, \
                    md5('user' || g % 997)::uuid, \
                    (ARRAY['READ','READ','READ','READ','READ','READ','UPDATE','CREATE','LOGIN','ACCESS_DENIED'])[1 + g % 10], \
                    'patients', md5('patient' || g % $4)::uuid, \
                    CASE WHEN g % 10 = 6 THEN jsonb_build_object('before', jsonb_build_object('last_name', 'Smith'), \
                                                                 'after', jsonb_build_object('last_name', 'Smith-Jones')) END, \
                    'req-' || (g / 3), ('10.1.' || (g % 250) || '.7')::inet, 'caregate-bench' \
             FROM span, generate_series($1::bigint, $2::bigint) AS g",
        )
        .bind(done)
        .bind(done + n - 1)
        .bind(args.rows as f64)
        .bind(PATIENTS)
        .bind(CLINICS)
        .bind(north)
        .execute(&raw)
        .await
        .context("generating audit events")?;
        done += n;
        progress(t0, format!("{done} events"));
    }
    let generate_secs = started.elapsed().as_secs_f64();
    raw.execute("VACUUM ANALYZE audit_events").await?;
    // Patient 40: a Northside patient (40 % 40 = 0) with 100 events.
    let patient: Uuid = sqlx::query_scalar("SELECT md5('patient' || 40)::uuid")
        .fetch_one(&raw)
        .await?;
    let size_before: String =
        sqlx::query_scalar("SELECT pg_size_pretty(pg_total_relation_size('audit_events'))")
            .fetch_one(&raw)
            .await?;

    progress(t0, "looking up one patient's events (unpartitioned)");
    let unpartitioned = lookup(url, &owner, patient).await?;

    // The same table with the index the partitioning adds, to tell what
    // the index brings from what partitioning costs; dropped again, so that
    // the migration below does what it does on a real upgrade.
    progress(
        t0,
        "the same, with the new index on the unpartitioned table",
    );
    let started = Instant::now();
    raw.execute(
        "CREATE INDEX bench_org_resource_idx ON audit_events \
         (organization_id, resource_id, occurred_at DESC, id DESC)",
    )
    .await?;
    let index_secs = started.elapsed().as_secs_f64();
    raw.execute("ANALYZE audit_events").await?;
    let indexed = lookup(url, &owner, patient).await?;
    raw.execute("DROP INDEX bench_org_resource_idx").await?;

    progress(t0, "migrating: partitioning the trail");
    let started = Instant::now();
    Migrator::up(&owner, None).await?;
    let migrate_secs = started.elapsed().as_secs_f64();
    // Autovacuum analyzes partitions in its own time; the measurement should
    // not depend on when it comes.
    raw.execute("ANALYZE audit_events").await?;
    let (partitions, size_after): (i64, String) = sqlx::query_as(
        "SELECT count(*), pg_size_pretty(sum(pg_total_relation_size(format('public.%I', name)))) \
         FROM app.audit_partitions()",
    )
    .fetch_one(&raw)
    .await?;

    progress(t0, "looking up one patient's events (partitioned)");
    let partitioned = lookup(url, &owner, patient).await?;

    progress(t0, "audit maintain: months ahead");
    let started = Instant::now();
    let created = maintain(url, &["--months-ahead", "6"]).await?;
    let ahead_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    maintain(url, &["--months-ahead", "6"]).await?;
    let noop_secs = started.elapsed().as_secs_f64();

    let oldest: (String, i64) = sqlx::query_as(
        "SELECT name, (SELECT count(*) FROM audit_events a \
                       WHERE a.occurred_at >= p.range_from AND a.occurred_at < p.range_to) \
         FROM app.audit_partitions() p WHERE attached AND NOT is_default ORDER BY range_from LIMIT 1",
    )
    .fetch_one(&raw)
    .await?;
    let dir = args.export_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "caregate-audit-bench-{}",
            ulid::Ulid::generate().to_string().to_lowercase()
        ))
    });
    let dir_arg = dir.to_string_lossy().into_owned();
    progress(t0, format!("audit maintain: retiring {}", oldest.0));
    let started = Instant::now();
    maintain(
        url,
        &[
            "--months-ahead",
            "6",
            "--retain-months",
            "11",
            "--export-dir",
            dir_arg.as_str(),
        ],
    )
    .await?;
    let retire_secs = started.elapsed().as_secs_f64();
    let archive_bytes: u64 = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl.gz"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let gone: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NULL")
        .bind(format!("public.{}", oldest.0))
        .fetch_one(&raw)
        .await?;
    if !gone {
        bail!("{} was not dropped", oldest.0);
    }
    let pg: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&raw)
        .await?;

    println!();
    println!(
        "{} audit events ({} clinics, {} patients, 13 months; generated in {generate_secs:.0} s), \
         PostgreSQL {pg}, {} build",
        args.rows,
        CLINICS,
        PATIENTS,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!();
    println!(
        "| | unpartitioned (indexes before 0022) | unpartitioned + the new index | partitioned by month (0022) |"
    );
    println!("|---|---|---|---|");
    println!(
        "| table + indexes | {size_before} | + index built in {index_secs:.0} s | {size_after} in {partitions} partitions |"
    );
    println!(
        "| `auditEvents(first: 20, filter: {{resourceId}})`, service call, median of {CALLS} | {:.2} ms | {:.2} ms | {:.2} ms |",
        unpartitioned.median_ms, indexed.median_ms, partitioned.median_ms
    );
    println!(
        "| fastest call | {:.2} ms | {:.2} ms | {:.2} ms |",
        unpartitioned.min_ms, indexed.min_ms, partitioned.min_ms
    );
    println!(
        "| EXPLAIN ANALYZE: planning + execution | {:.2} + {:.2} ms | {:.2} + {:.2} ms | {:.2} + {:.2} ms |",
        unpartitioned.planning_ms,
        unpartitioned.explain_ms,
        indexed.planning_ms,
        indexed.explain_ms,
        partitioned.planning_ms,
        partitioned.explain_ms
    );
    println!(
        "| rows returned | {} | {} | {} |",
        unpartitioned.rows, indexed.rows, partitioned.rows
    );
    println!();
    println!("| operation | time |");
    println!("|---|---|");
    println!(
        "| migration 0022 (move {} rows into partitions, build indexes) | {migrate_secs:.1} s |",
        args.rows
    );
    println!(
        "| `audit maintain --months-ahead 6` ({} created) | {ahead_secs:.2} s |",
        created
    );
    println!("| `audit maintain` again (nothing to do) | {noop_secs:.2} s |");
    println!(
        "| `audit maintain --retain-months 11`: retire {} ({} rows -> {:.1} MB gzip JSON lines, verified, dropped) | {retire_secs:.1} s |",
        oldest.0,
        oldest.1,
        archive_bytes as f64 / 1e6
    );
    if args.plans {
        println!();
        println!("plan (unpartitioned):\n{}", unpartitioned.plan);
        println!("plan (unpartitioned + the new index):\n{}", indexed.plan);
        println!("plan (partitioned):\n{}", partitioned.plan);
    }
    let _ = std::fs::remove_dir_all(&dir);
    owner.close().await.ok();
    raw.close().await;
    Ok(())
}

/// Runs `caregate audit maintain ARGS`; returns how many partitions it created.
async fn maintain(url: &str, args: &[&str]) -> Result<usize> {
    let before = partition_count(url).await?;
    let mut argv = vec!["caregate", "--database-url", url, "audit", "maintain"];
    argv.extend_from_slice(args);
    let code = caregate::cli::run(caregate::cli::Cli::parse_from(argv)).await?;
    if code != 0 {
        bail!("audit maintain exited with {code}");
    }
    Ok(partition_count(url).await?.saturating_sub(before))
}

async fn partition_count(url: &str) -> Result<usize> {
    let raw = pool(url, 1).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app.audit_partitions()")
        .fetch_one(&raw)
        .await?;
    raw.close().await;
    Ok(usize::try_from(n)?)
}

/// One patient's events, newest first, as the API's `auditEvents` runs it:
/// in a request context of Northside's admin opened by the guard.
async fn lookup(url: &str, owner: &sea_orm::DatabaseConnection, patient: Uuid) -> Result<Lookup> {
    let config = caregate::cli::Cli::parse_from(["caregate"]).config;
    let counter = service::tx::Counter::default();
    let tx_options = config.tx_options();
    let runtime = caregate::db::connect_runtime(
        caregate::db::runtime_options(&config, url)?,
        &tx_options,
        config.statement_timeout_ms,
        1,
        Duration::from_secs(5),
        counter.clone(),
    )
    .await?;
    let session =
        service::demo::dev_session(owner, "admin@northside.example", Some("northside"), 60).await?;
    let filter = service::audit::AuditFilter {
        resource_id: Some(patient),
        ..Default::default()
    };
    let page = service::pagination::PageRequest::new(Some(20), None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut times = Vec::new();
    let mut rows = 0;
    for i in 0..CALLS + 5 {
        let who = service::context::SessionOf {
            user: session.user.into(),
            tenant: session.organization.into(),
            session: session.session.into(),
            impersonate: false,
        };
        let meta = service::context::RequestMeta {
            request_id: format!("bench-{i}"),
            ip: None,
            user_agent: Some("audit_trail".into()),
            impersonate: None,
        };
        let (tx, viewer) = caregate::guard::open_as(&runtime, &tx_options, &counter, who, &meta)
            .await
            .map_err(|e| anyhow::anyhow!("opening a request: {e:?}"))?;
        let actor = viewer.actor.context("the admin acts in Northside")?;
        let started = Instant::now();
        let page_rows = service::audit::list(&tx, &actor, &filter, &page)
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        // The first calls warm the caches.
        if i >= 5 {
            times.push(ms);
        }
        rows = page_rows.items.len();
        drop(tx);
    }
    // A warm plan: the EXPLAIN again, after the calls.
    let who = service::context::SessionOf {
        user: session.user.into(),
        tenant: session.organization.into(),
        session: session.session.into(),
        impersonate: false,
    };
    let meta = service::context::RequestMeta {
        request_id: "bench-explain".into(),
        ip: None,
        user_agent: Some("audit_trail".into()),
        impersonate: None,
    };
    let (tx, _) = caregate::guard::open_as(&runtime, &tx_options, &counter, who, &meta)
        .await
        .map_err(|e| anyhow::anyhow!("opening a request: {e:?}"))?;
    let stmt = service::audit::list_statement(&filter, &page);
    let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {}", stmt.sql);
    let plan: Vec<String> = tx
        .query_all_raw(match stmt.values {
            Some(values) => Statement::from_sql_and_values(DbBackend::Postgres, sql, values.0),
            None => Statement::from_string(DbBackend::Postgres, sql),
        })
        .await?
        .iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<Vec<_>, _>>()?;
    drop(tx);
    let figure = |label: &str| {
        plan.iter()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|t| t.trim_end_matches(" ms").parse().ok())
            .unwrap_or(f64::NAN)
    };
    let (planning_ms, explain_ms) = (figure("Planning Time: "), figure("Execution Time: "));
    times.sort_by(f64::total_cmp);
    runtime.close().await.ok();
    Ok(Lookup {
        median_ms: times[times.len() / 2],
        min_ms: times[0],
        rows,
        planning_ms,
        explain_ms,
        plan: plan.join("\n"),
    })
}
