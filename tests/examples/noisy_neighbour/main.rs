//! Noisy neighbour: does one clinic's flood slow another clinic down?
//! One command, rerunnable:
//!
//! ```sh
//! cargo build --release -p caregate --bin caregate && \
//!   cargo run --release -p tests --example noisy_neighbour -- [--seconds 20] \
//!     [--b-clients 4] [--b-think-ms 100] [--a-clients 32] [--pool 8] [--server-env KEY=VALUE]...
//! ```
//!
//! It creates a fresh database (`caregate_noisy`) on the server of
//! DATABASE_URL (or on the benchmark's private cluster under the target
//! directory), loads the benchmark's two clinics, and starts the release
//! server on it with its default budgets (or what `--server-env` sets).
//! Then:
//!
//! 1. clinic B alone: `--b-clients` clients, each sending a request (a
//!    patient's chart, or a page of 20 patients) and pausing
//!    `--b-think-ms` between requests — a clinic's ordinary traffic, within
//!    its budget — for `--seconds`, after a warm-up: B's p50 and p99;
//! 2. the same, while clinic A floods the server with `--a-clients`
//!    clients, each sending the benchmark's heaviest page (50 patients with
//!    their care teams' providers, 300 points) back to back, not honouring
//!    `Retry-After`: B's p50 and p99 again, and what became of A's requests.
//!
//! The target: B's p99 with the flood within 1.5× of its p99 alone. The
//! load generator runs on the same machine as the server and PostgreSQL;
//! B's clients and A's flood run on runtimes (threads) of their own, so
//! that A's clients cannot delay the reading of B's responses in the
//! generator itself. It prints a Markdown block for the README, stops the
//! server and drops the database.

#[allow(dead_code)]
#[path = "../bench/dataset.rs"]
mod dataset;
#[allow(dead_code)]
#[path = "../bench/fixture.rs"]
mod fixture;
#[allow(dead_code)]
#[path = "../bench/server.rs"]
mod server;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use sea_orm::sqlx::{self, Executor};
use serde_json::{Value, json};
use uuid::Uuid;

use server::Server;

#[derive(Debug, Parser)]
#[command(
    name = "noisy_neighbour",
    about = "Measures one clinic's latency alone and while another clinic floods caregate"
)]
struct Args {
    /// Timed seconds of each condition (B alone; B during A's flood), in
    /// alternating slices.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seconds per slice: the conditions take turns, so that whatever else
    /// the machine does weighs on both alike.
    #[arg(long, default_value_t = 10)]
    slice: u64,
    /// Seconds before each slice is timed (the flood starting or ending).
    #[arg(long, default_value_t = 2)]
    settle: u64,
    /// Clinic B's concurrent clients.
    #[arg(long, default_value_t = 4)]
    b_clients: usize,
    /// Milliseconds each of B's clients pauses between requests.
    #[arg(long, default_value_t = 100)]
    b_think_ms: u64,
    /// Clinic A's flooding clients (back to back, ignoring Retry-After).
    #[arg(long, default_value_t = 32)]
    a_clients: usize,
    /// The server's DB_POOL_SIZE.
    #[arg(long, default_value_t = 8)]
    pool: u32,
    /// More settings of the server, as KEY=VALUE (e.g.
    /// BUDGET_WINDOW_SECONDS=10); repeatable.
    #[arg(long = "server-env", value_name = "KEY=VALUE")]
    server_env: Vec<String>,
    /// A role that may create databases. Unset: the benchmark's private
    /// cluster under the target directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// The master key the server and the seeding share (the benchmark's).
const BENCH_MASTER_KEYS: &str =
    "1 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The database this creates (dropped first when present, and at the end).
const DB_NAME: &str = "caregate_noisy";

const CHART: &str = "query NoisyChart($id: UUID!) { patient(id: $id) { firstName lastName contactMethods { type value } careTeam { role provider { name } } appointments(first: 10) { edges { node { startsAt status } } } } }";
const LIST: &str =
    "query NoisyList { patients(first: 20) { edges { node { id firstName lastName } } } }";
const FLOOD: &str = "query NoisyFlood { patients(first: 50) { edges { node { firstName careTeam { provider { name } } } } } }";

fn progress(started: Instant, what: impl std::fmt::Display) {
    eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
}

fn main() {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("noisy_neighbour: starting a runtime: {err}");
            std::process::exit(1);
        }
    };
    if let Err(err) = runtime.block_on(run(args)) {
        eprintln!("noisy_neighbour: {err:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    let t0 = Instant::now();
    if args.seconds == 0
        || args.slice == 0
        || args.b_clients == 0
        || args.a_clients == 0
        || args.pool == 0
    {
        bail!("--seconds, --slice, --b-clients, --a-clients and --pool must be at least 1");
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build of the load generator; run it with `cargo run --release`"
        );
    }
    let mut env = Vec::new();
    for kv in &args.server_env {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--server-env {kv}: expected KEY=VALUE"))?;
        env.push((k.to_owned(), v.to_owned()));
    }
    let target = server::target_dir()?;
    let bin = server::binary(&target)?;
    let admin_url = match &args.database_url {
        Some(url) => url.clone(),
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
            cluster.url("postgres")
        }
    };
    progress(
        t0,
        format!("creating database {DB_NAME}; migrating, loading"),
    );
    let url = recreate(&admin_url).await?;
    let outcome = measure(&args, &env, &target, &bin, &url, t0).await;
    progress(t0, format!("dropping database {DB_NAME}"));
    let dropped = drop_database(&admin_url).await;
    let report = outcome?;
    dropped?;
    report.print(&args, &env);
    Ok(())
}

async fn recreate(admin_url: &str) -> Result<String> {
    let admin = dataset::pool(admin_url, 1, None).await?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"),
        format!("CREATE DATABASE {DB_NAME}"),
    ] {
        admin
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)))
            .await
            .context("recreating the database (does the DATABASE_URL role have CREATEDB?)")?;
    }
    admin.close().await;
    dataset::url_of(admin_url, DB_NAME)
}

async fn drop_database(admin_url: &str) -> Result<()> {
    let admin = dataset::pool(admin_url, 1, None).await?;
    admin
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"
        ))))
        .await
        .context("dropping the database")?;
    admin.close().await;
    Ok(())
}

/// B's latencies in one phase.
struct Phase {
    hist: Histogram<u64>,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    /// CPU seconds the server process used.
    server_cpu: f64,
    /// CPU seconds the whole machine used (all processes).
    machine_cpu: f64,
}

impl Phase {
    fn empty() -> Self {
        Self {
            hist: histogram(),
            requests: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            server_cpu: 0.0,
            machine_cpu: 0.0,
        }
    }

    /// Adds another slice of the same condition.
    fn merge(&mut self, other: Phase) -> Result<()> {
        self.hist.add(&other.hist).context("merging histograms")?;
        self.requests += other.requests;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.elapsed += other.elapsed;
        self.server_cpu += other.server_cpu;
        self.machine_cpu += other.machine_cpu;
        Ok(())
    }

    fn p_ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// What became of A's requests.
#[derive(Default)]
struct Flood {
    admitted: AtomicU64,
    request_budget: AtomicU64,
    cost_budget: AtomicU64,
    other: AtomicU64,
}

struct Report {
    alone: Phase,
    flooded: Phase,
    flood: Flood,
    flood_elapsed: Duration,
    budget: Value,
    machine: String,
}

async fn measure(
    args: &Args,
    env: &[(String, String)],
    target: &std::path::Path,
    bin: &std::path::Path,
    url: &str,
    t0: Instant,
) -> Result<Report> {
    let owner = caregate::db::connect_owner(url).await?;
    caregate::startup::migrate(&owner).await?;
    owner.close().await.ok();
    let owner_pool = dataset::pool(url, 2, None).await?;
    dataset::load(&owner_pool).await?;
    let ids = dataset::clinic_ids(&owner_pool).await?;
    owner_pool.close().await;
    let (Some(a), Some(b)) = (ids.first(), ids.get(1)) else {
        bail!("the data set has fewer than two clinics");
    };

    let client = http_client(args.b_clients)?;
    let log = target.join("tmp").join("caregate-noisy-server.log");
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    progress(t0, format!("starting {} serve", bin.display()));
    let srv = Server::start(bin, url, args.pool, log, &client, &env_refs).await?;
    let graphql = srv.graphql_url();
    let a_token = login(&client, &graphql, &a.admin_email).await?;
    let b_token = login(&client, &graphql, &b.admin_email).await?;
    let b = Arc::new(Workload {
        url: graphql.clone(),
        token: format!("Bearer {b_token}"),
        patients: b.patients.clone(),
    });
    // Once, checked: B's requests work and say where B's budget stands.
    let first = b.send(&client, 0).await.map_err(anyhow::Error::msg)?;
    let budget = first["extensions"]["rateLimit"].clone();
    if budget.is_null() {
        bail!("the response carries no extensions.rateLimit: {first}");
    }

    let slices = args.seconds.div_ceil(args.slice).max(1);
    let mut alone = Phase::empty();
    let mut flooded = Phase::empty();
    let flood = Arc::new(Flood::default());
    let mut flood_elapsed = Duration::ZERO;
    run_b(&b, &client, args, Duration::from_secs(3)).await?;
    for slice in 1..=slices {
        progress(
            t0,
            format!(
                "slice {slice}/{slices}: clinic B alone for {} s",
                args.slice
            ),
        );
        alone.merge(phase(&b, &client, args, &srv).await?)?;
        progress(
            t0,
            format!(
                "slice {slice}/{slices}: clinic A floods with {} clients; clinic B for {} s",
                args.a_clients, args.slice
            ),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let flooding = {
            let (stop, flood) = (stop.clone(), flood.clone());
            let (url, token, clients) =
                (graphql.clone(), format!("Bearer {a_token}"), args.a_clients);
            std::thread::spawn(move || run_flood(&url, &token, clients, &stop, &flood))
        };
        let started = Instant::now();
        let timed = phase(&b, &client, args, &srv).await;
        stop.store(true, Ordering::Relaxed);
        flood_elapsed += started.elapsed();
        flooding
            .join()
            .map_err(|_| anyhow::anyhow!("the flood's thread panicked"))??;
        flooded.merge(timed?)?;
    }
    srv.stop().await?;
    Ok(Report {
        alone,
        flooded,
        flood: Arc::try_unwrap(flood).unwrap_or_default(),
        flood_elapsed,
        budget,
        machine: machine(),
    })
}

fn http_client(idle: usize) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .user_agent("caregate-noisy-neighbour")
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(idle * 2)
        .build()
        .context("building the HTTP client")
}

async fn login(client: &reqwest::Client, url: &str, email: &str) -> Result<String> {
    let res: Value = client
        .post(url)
        .json(&json!({
            "query": "mutation NoisyLogin($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            "variables": { "e": email, "p": dataset::PASSWORD },
        }))
        .send()
        .await
        .context("logging in")?
        .json()
        .await
        .context("reading a login")?;
    res["data"]["login"]["token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("login as {email}: {res}"))
}

/// Clinic B's ordinary traffic.
struct Workload {
    url: String,
    token: String,
    patients: Vec<Uuid>,
}

impl Workload {
    /// The n-th request of a client: a chart, or a page of patients.
    async fn send(&self, client: &reqwest::Client, n: usize) -> Result<Value, String> {
        let body = if n.is_multiple_of(2) {
            let id = self.patients[n / 2 % self.patients.len()];
            json!({ "query": CHART, "variables": { "id": id } })
        } else {
            json!({ "query": LIST })
        };
        let resp = client
            .post(&self.url)
            .header(reqwest::header::AUTHORIZATION, &self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("sending: {e}"))?;
        let status = resp.status();
        let value: Value = resp.json().await.map_err(|e| format!("reading: {e}"))?;
        if status != reqwest::StatusCode::OK || value.get("errors").is_some() {
            return Err(format!("HTTP {status}: {value}"));
        }
        Ok(value)
    }
}

/// B's clients for a warm-up, then timed.
async fn phase(
    b: &Arc<Workload>,
    client: &reqwest::Client,
    args: &Args,
    srv: &Server,
) -> Result<Phase> {
    run_b(b, client, args, Duration::from_secs(args.settle)).await?;
    let cpu = cpu_seconds(srv.pid)?;
    let machine = machine_cpu_seconds()?;
    let started = Instant::now();
    let mut out = run_b(b, client, args, Duration::from_secs(args.slice)).await?;
    out.elapsed = started.elapsed();
    out.server_cpu = cpu_seconds(srv.pid)? - cpu;
    out.machine_cpu = machine_cpu_seconds()? - machine;
    Ok(out)
}

async fn run_b(
    b: &Arc<Workload>,
    client: &reqwest::Client,
    args: &Args,
    duration: Duration,
) -> Result<Phase> {
    let deadline = Instant::now() + duration;
    let think = Duration::from_millis(args.b_think_ms);
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..args.b_clients {
        let (b, client) = (b.clone(), client.clone());
        clients.spawn(async move {
            let mut hist = histogram();
            let (mut requests, mut errors, mut first_error) = (0, 0, None);
            let mut n = c * 7919;
            while Instant::now() < deadline {
                let started = Instant::now();
                let res = b.send(&client, n).await;
                hist.saturating_record(started.elapsed().as_micros().max(1) as u64);
                requests += 1;
                if let Err(e) = res {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
                n += 1;
                tokio::time::sleep(think).await;
            }
            (hist, requests, errors, first_error)
        });
    }
    let mut out = Phase {
        elapsed: duration,
        ..Phase::empty()
    };
    while let Some(done) = clients.join_next().await {
        let (hist, requests, errors, first_error) = done.context("a client of B panicked")?;
        out.hist.add(&hist).context("merging histograms")?;
        out.requests += requests;
        out.errors += errors;
        if out.first_error.is_none() {
            out.first_error = first_error;
        }
    }
    Ok(out)
}

fn histogram() -> Histogram<u64> {
    // 1 us .. 60 s at 3 significant digits: constant bounds, always valid.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid")
}

/// A's clients, on a runtime of their own (one thread), until `stop`.
fn run_flood(
    url: &str,
    token: &str,
    clients: usize,
    stop: &AtomicBool,
    flood: &Flood,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the flood's runtime")?;
    runtime.block_on(async {
        let client = http_client(clients)?;
        let body = json!({ "query": FLOOD }).to_string();
        let flooders = (0..clients).map(|_| {
            let (client, body) = (client.clone(), body.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    let sent = client
                        .post(url)
                        .header(reqwest::header::AUTHORIZATION, token)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    let Ok(resp) = sent else {
                        flood.other.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    let counter = match status.as_u16() {
                        200 if !text.contains("\"errors\"") => &flood.admitted,
                        429 if text.contains("REQUEST_BUDGET") => &flood.request_budget,
                        429 if text.contains("COST_BUDGET") => &flood.cost_budget,
                        _ => &flood.other,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        futures::future::join_all(flooders).await;
        Ok(())
    })
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/<pid>/stat")?;
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field, stime the 15th; in clock ticks of 1/100 s on Linux.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((tick(11) + tick(12)) / 100.0)
}

/// CPU seconds the machine has been busy (every core).
fn machine_cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().next().unwrap_or_default();
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle
    // and iowait.
    let busy: f64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Ok(busy / 100.0)
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    format!("nproc {cores}, {model}")
}

impl Report {
    fn print(&self, args: &Args, env: &[(String, String)]) {
        let (alone, flooded) = (&self.alone, &self.flooded);
        let ratio = flooded.p_ms(0.99) / alone.p_ms(0.99);
        let secs = self.flood_elapsed.as_secs_f64();
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let row = |label: &str, p: &Phase| {
            println!(
                "| {label} | {:.0} | {:.2} | {:.2} | {} | {:.0} % | {:.0} % |",
                p.per_second(),
                p.p_ms(0.50),
                p.p_ms(0.99),
                p.errors,
                100.0 * p.server_cpu / p.elapsed.as_secs_f64(),
                100.0 * p.machine_cpu / p.elapsed.as_secs_f64(),
            );
        };
        println!();
        println!(
            "| clinic B ({} clients, {} ms pauses) | B req/s | B p50 ms | B p99 ms | B errors | server CPU | machine CPU |",
            args.b_clients, args.b_think_ms
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        row("alone", alone);
        row(
            &format!("while A floods ({} clients)", args.a_clients),
            flooded,
        );
        println!();
        println!(
            "- B's p99 with A's flood ÷ alone: **{ratio:.2}** (target: at most 1.5); p50: {:.2}",
            flooded.p_ms(0.50) / alone.p_ms(0.50)
        );
        println!(
            "- A's flood, {secs:.0} s: {:.0} req/s answered; admitted {:.0}/s, refused REQUEST_BUDGET {:.0}/s, refused COST_BUDGET {:.0}/s, other {:.0}/s",
            (count(&self.flood.admitted)
                + count(&self.flood.request_budget)
                + count(&self.flood.cost_budget)
                + count(&self.flood.other)) as f64
                / secs,
            count(&self.flood.admitted) as f64 / secs,
            count(&self.flood.request_budget) as f64 / secs,
            count(&self.flood.cost_budget) as f64 / secs,
            count(&self.flood.other) as f64 / secs,
        );
        let settings: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "- budgets: {}; B's first answer: `extensions.rateLimit` = `{}`",
            if settings.is_empty() {
                "the defaults".to_owned()
            } else {
                settings.join(", ")
            },
            self.budget
        );
        println!(
            "- {} s timed per condition, in alternating slices of {} s (each after {} s to settle); DB_POOL_SIZE={}; machine: {}; load generator, server and PostgreSQL share it",
            args.seconds, args.slice, args.settle, args.pool, self.machine
        );
        for (label, p) in [("alone", alone), ("flooded", flooded)] {
            if let Some(e) = &p.first_error {
                println!(
                    "- B's first error ({label}): {}",
                    e.chars().take(300).collect::<String>()
                );
            }
        }
    }
}
