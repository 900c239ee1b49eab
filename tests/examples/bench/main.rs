//! caregate's benchmark: one command, rerunnable by anyone.
//!
//! ```sh
//! cargo build --release -p caregate --bin caregate && \
//!   cargo run --release -p tests --example bench -- [--concurrency 16] [--seconds 15] [--pool 8] \
//!     [--peer postgraphile]
//! ```
//!
//! It creates a fresh database (`caregate_bench`) on the server of
//! DATABASE_URL (or on a private cluster under the target directory),
//! migrates it and loads a fixed data set, starts the release server on it,
//! and drives five operations over HTTP at a fixed concurrency. The same
//! work is then done straight against PostgreSQL by a pooled sqlx client
//! as the runtime role: the raw-SQL ceiling. Operation 1 is also measured
//! against the one-statement ceiling (the whole page's JSON built by one
//! hand-written statement, with and without its READ audit) and, with
//! `--peer postgraphile`, against PostGraphile over the same database. It
//! prints Markdown tables of all of them and their ratios, ready to paste
//! into the README.

mod ceiling;
mod dataset;
mod driver;
mod fixture;
mod flood;
mod http;
mod peer;
mod raw;
mod server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use reqwest::header::HeaderValue;
use sea_orm::sqlx;
use serde_json::Value;

use ceiling::CeilingOp;
use driver::Outcome;
use fixture::{Clinic, Fixture, Kind, day_from_today};
use http::HttpOp;
use peer::{PeerOp, PostGraphile};
use raw::RawOp;
use server::Server;

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Benchmarks the release caregate server against raw SQL on the same database"
)]
struct Args {
    /// Concurrent workers, each looping request -> response.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Timed seconds per operation (and per client).
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Warm-up seconds before each timed run (samples discarded).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Database connections of the server (DB_POOL_SIZE) and of the raw-SQL client.
    #[arg(long, default_value_t = 8)]
    pool: u32,
    /// A role that may create databases. Unset: a private cluster under the
    /// target directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Instead of the benchmark: send this many unique maximal queries (on
    /// the demo data, default limits) and report the server's memory.
    #[arg(long)]
    flood: Option<u64>,
    /// DOCUMENT_CACHE_BYTES of the server during --flood (default: the
    /// server's own default).
    #[arg(long, requires = "flood")]
    flood_cache_bytes: Option<u64>,
    /// Another GraphQL server to run operation 1 against, over the same
    /// database as the same runtime role (installed under the target
    /// directory on first use; skipped when Node is missing).
    #[arg(long, value_enum)]
    peer: Option<Peer>,
    /// `host:port` of a PgBouncer in transaction mode in front of the
    /// benchmark's PostgreSQL: caregate's runtime role connects through it
    /// (`DB_TRANSACTION_POOLER=true`); the raw-SQL client stays direct.
    #[arg(long, value_name = "HOST:PORT")]
    through_pgbouncer: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Peer {
    /// PostGraphile 4 (npm `postgraphile@4`), run by Node.
    Postgraphile,
}

/// Partial-name searches the workers cycle through.
const SEARCHES: usize = 64;

/// Operation 1's page size.
const PAGE: i32 = 50;

/// Another way of doing operation 1, measured in the same slices.
enum Contender {
    Ceiling(Arc<CeilingOp>),
    Peer(Arc<PeerOp>),
}

impl Contender {
    async fn run(&self, concurrency: usize, duration: Duration, phase: u64) -> Result<Outcome> {
        match self {
            Contender::Ceiling(op) => driver::run(op, concurrency, duration, phase).await,
            Contender::Peer(op) => driver::run(op, concurrency, duration, phase).await,
        }
    }

    /// Round trips to PostgreSQL so far.
    async fn round_trips(
        &self,
        client: &reqwest::Client,
        peer: Option<&PostGraphile>,
    ) -> Result<u64> {
        match (self, peer) {
            (Contender::Ceiling(op), _) => Ok(op.round_trips()),
            (Contender::Peer(_), Some(pg)) => pg.round_trips(client).await,
            (Contender::Peer(_), None) => bail!("the peer is not running"),
        }
    }
}

/// One contender's figures for operation 1.
struct Extra {
    label: String,
    contender: Contender,
    out: Outcome,
    trips: u64,
}

struct Row {
    kind: Kind,
    http: Outcome,
    /// The server's statements per request (its /metrics counter).
    stmts: f64,
    raw: Outcome,
    /// The raw client's round trips per request, counted the same way.
    raw_stmts: f64,
}

/// `--flood`: the demo data, the server with its default limits, a flood
/// of unique queries, its memory.
async fn run_flood(
    args: &Args,
    target: &std::path::Path,
    bin: &std::path::Path,
    url: &str,
    count: u64,
) -> Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let log = target.join("tmp").join("caregate-flood-server.log");
    let cache = args.flood_cache_bytes.map(|b| b.to_string());
    // The flood is one clinic's thousands of documents: its budget would
    // refuse most of them before they are parsed, which is not what this
    // measures.
    let mut env = vec![
        ("BUDGET_REQUESTS_PER_MINUTE", "0"),
        ("BUDGET_POINTS_PER_MINUTE", "0"),
    ];
    if let Some(bytes) = &cache {
        env.push(("DOCUMENT_CACHE_BYTES", bytes.as_str()));
    }
    let srv = Server::start(bin, url, args.pool, log, &client, &env).await?;
    let token = http::login(
        &client,
        &srv.graphql_url(),
        "admin@northside.example",
        "caregate-demo",
    )
    .await?;
    let report = flood::run(&srv, &client, &token, count, args.concurrency).await?;
    report.print(args.concurrency, cache.as_deref());
    srv.stop().await
}

fn progress(started: Instant, what: impl std::fmt::Display) {
    eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
}

/// The master key the benchmark's server and its seeding share.
const BENCH_MASTER_KEYS: &str =
    "1 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(err) = run(args).await {
        eprintln!("bench: {err:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    let t0 = Instant::now();
    if args.concurrency == 0 || args.seconds == 0 || args.pool == 0 {
        bail!("--concurrency, --seconds and --pool must be at least 1");
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build of the load generator; run it with `cargo run --release`"
        );
    }
    let target = server::target_dir()?;
    let bin = server::binary(&target)?;

    // The database.
    let (admin_url, where_db) = match &args.database_url {
        Some(url) => (url.clone(), "the server at DATABASE_URL"),
        None => {
            let root = target.join("tmp").join("caregate-bench-pg");
            progress(
                t0,
                format!("starting a private PostgreSQL under {}", root.display()),
            );
            let cluster = tokio::task::spawn_blocking(move || caregate::cluster::ensure(&root))
                .await
                .context("the cluster task failed")?
                .context("starting the private PostgreSQL (or set DATABASE_URL)")?;
            (cluster.url("postgres"), "a private cluster")
        }
    };
    progress(
        t0,
        format!(
            "creating database {} on {where_db}; migrating",
            dataset::DB_NAME
        ),
    );
    let bench_url = dataset::recreate(&admin_url).await?;
    let owner = caregate::db::connect_owner(&bench_url).await?;
    caregate::startup::migrate(&owner).await?;
    if let Some(count) = args.flood {
        service::demo::seed(
            &owner,
            &service::phi::Keyring::new(service::phi::MasterKeys::parse(BENCH_MASTER_KEYS)?),
        )
        .await?;
        owner.close().await.ok();
        return run_flood(&args, &target, &bin, &bench_url, count).await;
    }
    let owner_pool = dataset::pool(&bench_url, 2, None).await?;
    progress(t0, "loading the data set");
    let load_started = Instant::now();
    dataset::load(&owner_pool).await?;
    let load_secs = load_started.elapsed().as_secs_f64();
    let ids = dataset::clinic_ids(&owner_pool).await?;
    dataset::load_therapy(&owner_pool, args.concurrency).await?;
    let mut therapists = Vec::new();
    for c in &ids {
        therapists.push(dataset::therapist(&owner_pool, c.org).await?);
    }
    let data_summary = dataset::summary(&owner_pool).await?;
    let pg_version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&owner_pool)
        .await
        .context("reading the PostgreSQL version")?;
    progress(t0, format!("loaded in {load_secs:.1} s: {data_summary}"));

    // The raw-SQL client runs under sessions of its own, opened by the
    // owner the way `caregate token` opens them.
    let mut sessions = Vec::new();
    for (c, (therapist_email, ..)) in ids.iter().zip(&therapists) {
        let s = service::demo::dev_session(&owner, &c.admin_email, Some(c.slug), 24 * 60)
            .await
            .with_context(|| format!("opening a session for {}", c.admin_email))?;
        let t = service::demo::dev_session(&owner, therapist_email, Some(c.slug), 24 * 60)
            .await
            .with_context(|| format!("opening a session for {therapist_email}"))?;
        sessions.push((s.user, s.session, t.session));
    }
    owner.close().await.ok();

    // The server.
    let client = reqwest::Client::builder()
        .no_proxy()
        .user_agent("caregate-bench")
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()
        .context("building the HTTP client")?;
    progress(t0, format!("starting {} serve", bin.display()));
    let log = target.join("tmp").join("caregate-bench-server.log");
    let pooled_url = args.through_pgbouncer.as_ref().map(|bouncer| {
        let database = bench_url.rsplit('/').next().unwrap_or_default();
        format!("postgres://caregate_app@{bouncer}/{database}")
    });
    // One clinic's load here is far beyond any sensible clinic budget:
    // budgets are counted (as in production) but limit nothing.
    let mut env = vec![
        ("MAX_QUERY_COMPLEXITY", "1000000"),
        ("BUDGET_REQUESTS_PER_MINUTE", "0"),
        ("BUDGET_POINTS_PER_MINUTE", "0"),
    ];
    if let Some(url) = &pooled_url {
        progress(
            t0,
            format!("caregate's runtime role goes through PgBouncer: {url}"),
        );
        env.push(("APP_DATABASE_URL", url.as_str()));
        env.push(("DB_TRANSACTION_POOLER", "true"));
    }
    let srv = Server::start(&bin, &bench_url, args.pool, log, &client, &env).await?;
    let (_, rss_at_start) = srv.memory()?;
    let url = srv.graphql_url();

    let mut clinics = Vec::new();
    for ((c, (user, session, therapist_session)), (therapist_email, therapist, therapy_sessions)) in
        ids.into_iter().zip(sessions).zip(therapists)
    {
        let bearer_of = |token: String| {
            HeaderValue::from_str(&format!("Bearer {token}"))
                .context("the token is not a valid header value")
        };
        let bearer =
            bearer_of(http::login(&client, &url, &c.admin_email, dataset::PASSWORD).await?)?;
        let therapist_bearer =
            bearer_of(http::login(&client, &url, &therapist_email, dataset::PASSWORD).await?)?;
        clinics.push(Clinic {
            ids: c,
            bearer,
            user,
            session,
            therapist_bearer,
            therapist,
            therapist_session,
            therapy_sessions,
        });
    }
    let fx = Arc::new(Fixture {
        clinics,
        searches: dataset::search_fragments(SEARCHES),
        concurrency: args.concurrency,
    });
    let raw_pool = dataset::pool(&bench_url, args.pool, Some(migration::RUNTIME_ROLE)).await?;
    let http_day = day_from_today(400);
    let raw_day = day_from_today(500);

    // Operation 1's other contenders: the one-statement ceiling with and
    // without its audit write, and the peer when asked for.
    let ceiling = Arc::new(CeilingOp::new(fx.clone(), raw_pool.clone(), PAGE, true));
    let ceiling_bare = Arc::new(CeilingOp::new(fx.clone(), raw_pool.clone(), PAGE, false));
    let mut postgraphile: Option<(PostGraphile, peer::Install)> = None;
    if args.peer == Some(Peer::Postgraphile) {
        match peer::install(&target)? {
            Ok(install) => {
                progress(
                    t0,
                    format!(
                        "starting PostGraphile {} (Node {}) as {}",
                        install.version,
                        install.node,
                        migration::RUNTIME_ROLE
                    ),
                );
                let pg = PostGraphile::start(
                    &install,
                    &runtime_url(&bench_url)?,
                    args.pool,
                    &client,
                    &fx.clinics[0].bearer,
                )
                .await?;
                postgraphile = Some((pg, install));
            }
            Err(why) => eprintln!(
                "--peer postgraphile: {why}; it needs Node.js 18 or later with npm. \
                 Going on without it."
            ),
        }
    }
    let peer_op = postgraphile.as_ref().map(|(pg, _)| {
        Arc::new(PeerOp::new(
            fx.clone(),
            client.clone(),
            pg.graphql_url(),
            PAGE,
        ))
    });
    let mut extras = vec![
        Extra {
            label: "one-statement ceiling (`json_agg` page + READ audit)".to_owned(),
            contender: Contender::Ceiling(ceiling.clone()),
            out: Outcome::empty(),
            trips: 0,
        },
        Extra {
            label: "one-statement ceiling, no audit write".to_owned(),
            contender: Contender::Ceiling(ceiling_bare.clone()),
            out: Outcome::empty(),
            trips: 0,
        },
    ];
    if let (Some(op), Some((_, install))) = (&peer_op, &postgraphile) {
        extras.push(Extra {
            label: format!("PostGraphile {} (Node {})", install.version, install.node),
            contender: Contender::Peer(op.clone()),
            out: Outcome::empty(),
            trips: 0,
        });
    }

    let kinds = [
        Kind::PatientsPage { first: 50 },
        Kind::PatientDetail,
        Kind::PatientSearch,
        Kind::ScheduleCancel,
        Kind::RecordEvents { batch: 50 },
    ];

    // Every operation once, checked, before anything is timed.
    progress(t0, "checking every operation once (GraphQL and raw SQL)");
    for kind in kinds {
        let op = HttpOp::new(kind, fx.clone(), client.clone(), url.clone(), http_day)?;
        smoke_http(&op, &client, &url, &fx, kind).await?;
        driver::once(&op)
            .await
            .map_err(|e| anyhow::anyhow!("caregate, {}: {e}", kind.label()))?;
        let rop = RawOp::new(kind, fx.clone(), raw_pool.clone(), raw_day);
        driver::once(&rop)
            .await
            .map_err(|e| anyhow::anyhow!("raw SQL, {}: {e}", kind.label()))?;
    }
    check_page_agrees(
        &fx,
        &client,
        &url,
        &owner_pool,
        &ceiling,
        &ceiling_bare,
        peer_op.as_deref(),
    )
    .await?;

    // Each operation: both clients warm up, then take turns in slices of
    // about 3 s until each has had its timed seconds, so a drift of the
    // machine (other load, a growing audit table, autovacuum) hits both
    // alike and the ratio stays fair.
    let warmup = Duration::from_secs(args.warmup);
    let slices = (args.seconds as f64 / 3.0).round().max(1.0) as u32;
    let slice = Duration::from_secs(args.seconds) / slices;
    let mut rows = Vec::new();
    for kind in kinds {
        let op = Arc::new(HttpOp::new(
            kind,
            fx.clone(),
            client.clone(),
            url.clone(),
            http_day,
        )?);
        let rop = Arc::new(RawOp::new(kind, fx.clone(), raw_pool.clone(), raw_day));
        // Operation 1 has more contenders, in the same slices.
        let others: &mut [Extra] = if kind == (Kind::PatientsPage { first: PAGE }) {
            &mut extras
        } else {
            &mut []
        };
        let peer_srv = postgraphile.as_ref().map(|(pg, _)| pg);
        progress(t0, format!("{}: warm-up", kind.label()));
        driver::run(&op, args.concurrency, warmup, 0).await?;
        driver::run(&rop, args.concurrency, warmup, 0).await?;
        for x in others.iter() {
            x.contender.run(args.concurrency, warmup, 0).await?;
        }
        progress(
            t0,
            format!(
                "{}: {slices} x ({} ms caregate, {} ms raw SQL{})",
                kind.label(),
                slice.as_millis(),
                slice.as_millis(),
                others
                    .iter()
                    .map(|x| format!(", {} ms {}", slice.as_millis(), x.label))
                    .collect::<String>()
            ),
        );
        let mut http = Outcome::empty();
        let mut raw = Outcome::empty();
        let mut statements = 0;
        let mut raw_trips = 0;
        for i in 0..slices {
            let phase = 1 + u64::from(i);
            let before = srv.statements(&client).await?;
            http.merge(driver::run(&op, args.concurrency, slice, phase).await?)?;
            statements += srv.statements(&client).await?.saturating_sub(before);
            let before = rop.round_trips();
            raw.merge(driver::run(&rop, args.concurrency, slice, phase).await?)?;
            raw_trips += rop.round_trips() - before;
            for x in others.iter_mut() {
                let before = x.contender.round_trips(&client, peer_srv).await?;
                x.out
                    .merge(x.contender.run(args.concurrency, slice, phase).await?)?;
                x.trips += x.contender.round_trips(&client, peer_srv).await? - before;
            }
        }
        for x in others.iter() {
            report_errors(&x.label, kind, &x.out);
        }
        let stmts = statements as f64 / http.requests.max(1) as f64;
        let raw_stmts = raw_trips as f64 / raw.requests.max(1) as f64;
        report_errors("caregate", kind, &http);
        report_errors("raw SQL", kind, &raw);
        rows.push(Row {
            kind,
            http,
            stmts,
            raw,
            raw_stmts,
        });
    }

    // Statements per request must not grow with the page size: measured
    // with one worker (no contention) and under the full load.
    let short = Duration::from_secs(args.seconds.min(3));
    let mut flat: Vec<(usize, i32, f64)> = Vec::new();
    let mut worker_counts = vec![1, args.concurrency];
    worker_counts.dedup();
    for &workers in &worker_counts {
        for first in [10, 50, 100] {
            let kind = Kind::PatientsPage { first };
            progress(
                t0,
                format!(
                    "{}: statements per request, {workers} worker(s)",
                    kind.label()
                ),
            );
            let op = Arc::new(HttpOp::new(
                kind,
                fx.clone(),
                client.clone(),
                url.clone(),
                http_day,
            )?);
            let before = srv.statements(&client).await?;
            let out = driver::run(&op, workers, short, 2).await?;
            let after = srv.statements(&client).await?;
            report_errors("caregate", kind, &out);
            flat.push((
                workers,
                first,
                after.saturating_sub(before) as f64 / out.requests.max(1) as f64,
            ));
        }
    }

    let (peak_kib, rss_kib) = srv.memory()?;
    let log = srv.log.clone();
    srv.stop().await?;
    let mut peer_memory = None;
    if let Some((pg, _)) = postgraphile.take() {
        peer_memory = Some((pg.memory()?, pg.log.clone()));
        pg.stop().await?;
    }
    raw_pool.close().await;
    owner_pool.close().await;
    progress(
        t0,
        format!(
            "done; database {} is left for inspection, the server's log is {}",
            dataset::DB_NAME,
            log.display()
        ),
    );

    let (warnings, errors, samples) = server::log_summary(&log);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "?".to_owned());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());

    println!();
    println!(
        "| operation | caregate req/s | p50 ms | p99 ms | errors | stmts/req | raw req/s | raw p50 | raw p99 | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} |",
            r.kind.label(),
            r.http.per_second(),
            r.http.p_ms(0.50),
            r.http.p_ms(0.99),
            r.http.errors,
            r.stmts,
            r.raw.per_second(),
            r.raw.p_ms(0.50),
            r.raw.p_ms(0.99),
            r.http.per_second() / r.raw.per_second().max(f64::MIN_POSITIVE),
        );
    }
    println!();
    if let Some(r) = rows
        .iter()
        .find(|r| r.kind == (Kind::PatientsPage { first: PAGE }))
    {
        print_operation_one(r, &extras);
    }
    for &workers in &worker_counts {
        let of_run: Vec<&(usize, i32, f64)> = flat.iter().filter(|f| f.0 == workers).collect();
        let equal = of_run.iter().all(|f| (f.2 - of_run[0].2).abs() < 0.005);
        println!(
            "- SQL statements per request of operation 1 by page size, {workers} worker(s): {} ({})",
            of_run
                .iter()
                .map(|(_, first, s)| format!("first: {first} → {s:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            if equal { "equal" } else { "NOT equal" }
        );
    }
    println!(
        "- stmts/req counts round trips as the server's counter does (`BEGIN` with the context call 1, each statement 1, `COMMIT` 1); raw SQL, counted the same way: {}; raw-SQL errors: {}",
        rows.iter()
            .map(|r| format!("{:.2}", r.raw_stmts))
            .collect::<Vec<_>>()
            .join(", "),
        rows.iter()
            .map(|r| r.raw.errors.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "- server memory: peak RSS (VmHWM) {:.1} MiB; RSS after load (VmRSS) {:.1} MiB; RSS when ready {:.1} MiB",
        mib(peak_kib),
        mib(rss_kib),
        mib(rss_at_start)
    );
    if let Some(((peak, rss), log)) = &peer_memory {
        println!(
            "- PostGraphile's memory (the Node process): peak RSS (VmHWM) {:.1} MiB; RSS after load (VmRSS) {:.1} MiB; its log: {}",
            mib(*peak),
            mib(*rss),
            log.display()
        );
    }
    println!(
        "- load: {} workers (closed loop over keep-alive HTTP/1.1), {} s per operation and client (in {slices} alternating slices) after a {} s warm-up each; DB_POOL_SIZE={} and a raw-SQL pool of {}",
        args.concurrency, args.seconds, args.warmup, args.pool, args.pool
    );
    println!(
        "- machine: nproc {nproc}, {cpu}; PostgreSQL {pg_version} ({where_db}); load generator, server and PostgreSQL share it"
    );
    println!("- data: {data_summary}, as loaded");
    println!(
        "- ratio = caregate req/s ÷ raw-SQL req/s, same run; raw SQL = the same statements through sqlx as `{}` (RLS on), no HTTP or GraphQL",
        migration::RUNTIME_ROLE
    );
    println!(
        "- server log (RUST_LOG=warn): {warnings} warning line(s), {errors} error line(s){}",
        if samples.is_empty() {
            String::new()
        } else {
            format!("; first: {}", samples.join(" | "))
        }
    );
    Ok(())
}

/// Operation 1 against every contender, and caregate's ratio to each.
fn print_operation_one(caregate: &Row, extras: &[Extra]) {
    let ratio = |o: &Outcome| caregate.http.per_second() / o.per_second().max(f64::MIN_POSITIVE);
    println!(
        "{}, every contender in the same alternating slices:",
        caregate.kind.label()
    );
    println!();
    println!(
        "| contender | req/s | p50 ms | p99 ms | errors | round trips/req | caregate ÷ contender |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let line = |label: &str, o: &Outcome, trips: f64| {
        println!(
            "| {label} | {:.0} | {:.2} | {:.2} | {} | {trips:.2} | {:.2} |",
            o.per_second(),
            o.p_ms(0.50),
            o.p_ms(0.99),
            o.errors,
            ratio(o)
        );
    };
    line(
        "caregate (GraphQL over HTTP)",
        &caregate.http,
        caregate.stmts,
    );
    line(
        "raw SQL: caregate's statements through sqlx",
        &caregate.raw,
        caregate.raw_stmts,
    );
    for x in extras {
        line(
            &x.label,
            &x.out,
            x.trips as f64 / x.out.requests.max(1) as f64,
        );
    }
    println!();
    println!(
        "- operation 1, caregate req/s ÷: {}",
        std::iter::once(("raw SQL", ratio(&caregate.raw)))
            .chain(extras.iter().map(|x| (x.label.as_str(), ratio(&x.out))))
            .map(|(l, r)| format!("{l} {r:.2}"))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

/// Operation 1's page from caregate, from both one-statement ceilings and
/// from the peer must be the same data, and the ceiling must write the
/// page's READ audit (one event listing its patients) while its variant
/// writes none.
async fn check_page_agrees(
    fx: &Fixture,
    client: &reqwest::Client,
    url: &str,
    owner: &sqlx::PgPool,
    ceiling: &CeilingOp,
    bare: &CeilingOp,
    peer: Option<&PeerOp>,
) -> Result<()> {
    let st = fx.state(0, 9);
    let body = serde_json::json!({ "query": http::PATIENTS_PAGE, "variables": { "first": PAGE } });
    let expected = http::call(client, url, Some(&fx.clinic(&st).bearer), &body).await?;
    let expected = serde_json::json!({ "data": expected["data"] });
    let reads = || async {
        // Patients whose READ is recorded: listed in an event, or named.
        sqlx::query_scalar::<_, i64>(
            "SELECT coalesce(sum(coalesce(cardinality(resource_ids), 1)), 0)::bigint \
             FROM audit_events WHERE action = 'READ'",
        )
        .fetch_one(owner)
        .await
        .context("counting READ events")
    };
    for (op, audited, what) in [
        (ceiling, true, "the one-statement ceiling"),
        (bare, false, "the one-statement ceiling without audit"),
    ] {
        let before = reads().await?;
        let json = op
            .page(&st)
            .await
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        let written = reads().await? - before;
        let got: Value =
            serde_json::from_str(&json).with_context(|| format!("{what}: not JSON"))?;
        if got != expected {
            bail!("{what} returned another page than caregate:\n{got}\ncaregate:\n{expected}");
        }
        let want = if audited { i64::from(PAGE) } else { 0 };
        if written != want {
            bail!("{what} recorded the READ of {written} patients, not {want}");
        }
    }
    if let Some(peer) = peer {
        let got = peer.page(&st).await.context("PostGraphile")?;
        if got != expected {
            bail!(
                "PostGraphile returned another page than caregate:\n{got}\ncaregate:\n{expected}"
            );
        }
    }
    Ok(())
}

/// The bench database's URL as the runtime role (it has no password).
fn runtime_url(bench_url: &str) -> Result<String> {
    let mut u = url::Url::parse(bench_url).context("parsing the bench database URL")?;
    u.set_username(migration::RUNTIME_ROLE)
        .and_then(|()| u.set_password(None))
        .map_err(|()| anyhow::anyhow!("the bench database URL takes no user name"))?;
    Ok(u.to_string())
}

fn report_errors(who: &str, kind: Kind, out: &Outcome) {
    if out.errors > 0 {
        eprintln!(
            "  {who}, {}: {} errors of {} requests; first: {}",
            kind.label(),
            out.errors,
            out.requests,
            out.first_error.as_deref().unwrap_or("?")
        );
    }
}

/// Runs one request of `kind` and checks that the response has the shape
/// the data set promises, so a broken server or data set fails loudly
/// instead of being timed.
async fn smoke_http(
    op: &HttpOp,
    client: &reqwest::Client,
    url: &str,
    fx: &Fixture,
    kind: Kind,
) -> Result<()> {
    let mut st = fx.state(0, 9);
    let bearer = &match kind {
        Kind::RecordEvents { .. } => fx.clinic(&st).therapist_bearer.clone(),
        _ => fx.clinic(&st).bearer.clone(),
    };
    let body: Value = serde_json::from_str(&op.body(kind, &mut st)).context("a request body")?;
    let res = http::call(client, url, Some(bearer), &body)
        .await
        .with_context(|| kind.label())?;
    let data = &res["data"];
    let fail = |what: &str| anyhow::anyhow!("{}: {what}; response: {res}", kind.label());
    match kind {
        Kind::PatientsPage { first } => {
            let edges = data["patients"]["edges"]
                .as_array()
                .ok_or_else(|| fail("no edges"))?;
            if edges.len() != first as usize {
                return Err(fail(&format!("{} patients, not {first}", edges.len())));
            }
            for e in edges {
                let team = e["node"]["careTeam"]
                    .as_array()
                    .ok_or_else(|| fail("no careTeam"))?;
                if team.len() != 3 || team.iter().any(|a| !a["provider"]["name"].is_string()) {
                    return Err(fail("a care team is not 3 named providers"));
                }
            }
        }
        Kind::PatientDetail => {
            let p = &data["patient"];
            let ok = p["contactMethods"].as_array().map(Vec::len) == Some(1)
                && p["careTeam"].as_array().map(Vec::len) == Some(3)
                && p["appointments"]["edges"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty() && a.len() <= 10);
            if !ok {
                return Err(fail(
                    "expected 1 contact method, 3 care-team members, 1 to 10 upcoming appointments",
                ));
            }
        }
        Kind::PatientSearch => {
            let edges = data["patients"]["edges"]
                .as_array()
                .ok_or_else(|| fail("no edges"))?;
            if edges.is_empty() {
                return Err(fail("the search found no one"));
            }
        }
        Kind::ScheduleCancel => {
            let a = &data["scheduleAppointment"];
            if a["status"] != "SCHEDULED" {
                return Err(fail("not SCHEDULED"));
            }
            let id = a["id"].as_str().ok_or_else(|| fail("no id"))?;
            let res = http::call(
                client,
                url,
                Some(bearer),
                &serde_json::json!({ "query": http::CANCEL, "variables": { "id": id } }),
            )
            .await
            .context("cancelling the checked booking")?;
            if res["data"]["transitionAppointment"]["status"] != "CANCELLED" {
                return Err(anyhow::anyhow!("cancel did not cancel: {res}"));
            }
        }
        Kind::RecordEvents { batch } => {
            let events = data["recordSessionEvents"]
                .as_array()
                .ok_or_else(|| fail("no events"))?;
            if events.len() != batch || events.iter().any(|e| !e["id"].is_string()) {
                return Err(fail(&format!(
                    "{} events recorded, not {batch}",
                    events.len()
                )));
            }
        }
    }
    Ok(())
}
