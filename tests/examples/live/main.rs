//! caregate's live-update benchmark: memory of idle sockets and the latency
//! of fanning one event out to many subscribers. One command, rerunnable:
//!
//! ```sh
//! cargo build --release -p caregate --bin caregate && \
//!   cargo run --release -p tests --example live -- [--idle 1000] [--subscribers 50] [--messages 200]
//! ```
//!
//! It creates a fresh database (`caregate_live`) on the server of
//! DATABASE_URL (or on the benchmark's private cluster under the target
//! directory), migrates it, loads the demo clinics, and starts the release
//! server on it with the socket limits raised (all sockets come from one
//! address and two users, which the defaults would refuse: see
//! [`server_env`]). Then:
//!
//! 1. Idle sockets: the server's RSS before, with `--idle` sockets open (each
//!    acknowledged and holding one `threadUpdated` subscription that no
//!    event reaches) after they settle and again after a hold that spans a
//!    session check, and after they are closed.
//! 2. Fan-out: `--subscribers` sockets follow `messageAdded` on one thread;
//!    `--messages` messages are sent one after another over HTTP, and for
//!    each subscriber and message the time from just before the mutation was
//!    sent to the receipt of its `next` is recorded.
//!
//! It prints the figures and a Markdown block for the README, stops the
//! server and drops the database.

#[path = "../bench/server.rs"]
mod server;

mod db;
mod socket;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use uuid::Uuid;

use server::Server;
use socket::{Closed, Socket};

#[derive(Debug, Parser)]
#[command(
    name = "live",
    about = "Benchmarks caregate's live updates: idle-socket memory and event fan-out latency"
)]
struct Args {
    /// Idle sockets held open for the memory measurement (0: skip it).
    #[arg(long, default_value_t = 1000)]
    idle: usize,
    /// Seconds to let the idle sockets settle before the first reading.
    #[arg(long, default_value_t = 10)]
    settle: u64,
    /// Seconds to hold them after that before the second reading (the
    /// default spans the server's 30 s session check of every socket).
    #[arg(long, default_value_t = 25)]
    hold: u64,
    /// Sockets subscribed to `messageAdded` of one thread (0: skip fan-out).
    #[arg(long, default_value_t = 50)]
    subscribers: usize,
    /// Messages sent, one after another, for the fan-out measurement.
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Milliseconds to wait between one message's HTTP response and the
    /// next send (0: back to back).
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,
    /// Database connections of the server (DB_POOL_SIZE).
    #[arg(long, default_value_t = 8)]
    pool: u32,
    /// A role that may create databases. Unset: a private cluster under the
    /// target directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// The master key the server and the demo seeding share.
const BENCH_MASTER_KEYS: &str =
    "1 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// Sockets opened at once while setting up.
const OPEN_CONCURRENCY: usize = 32;

const IDLE_SUBSCRIPTION: &str = "subscription LiveIdle { threadUpdated { id } }";
const MESSAGE_ADDED: &str =
    "subscription LiveFanOut($t: UUID!) { messageAdded(threadId: $t) { id body } }";
const START_THREAD: &str =
    "mutation LiveStart($i: StartThreadInput!) { startThread(input: $i) { id } }";
const SEND_MESSAGE: &str =
    "mutation LiveSend($t: UUID!, $b: String!) { sendMessage(threadId: $t, body: $b) { id } }";

fn progress(started: Instant, what: impl std::fmt::Display) {
    eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(err) = run(args).await {
        eprintln!("live: {err:#}");
        std::process::exit(1);
    }
}

/// What the server is started with beyond the benchmark's usual settings:
/// every socket comes from 127.0.0.1 and belongs to one of two users, so
/// the per-user socket cap (LIVE_MAX_CONNECTIONS_PER_USER, default 8) and
/// the per-address connection cap (MAX_CONNECTIONS_PER_CLIENT, default 256)
/// are raised, and the totals (LIVE_MAX_CONNECTIONS, MAX_CONNECTIONS) with
/// them.
fn server_env(args: &Args) -> Vec<(&'static str, String)> {
    let sockets = args.idle.max(args.subscribers) + 64;
    let connections = sockets.max(1024);
    vec![
        ("LIVE_MAX_CONNECTIONS", sockets.max(10_000).to_string()),
        ("LIVE_MAX_CONNECTIONS_PER_USER", sockets.to_string()),
        ("MAX_CONNECTIONS", connections.to_string()),
        ("MAX_CONNECTIONS_PER_CLIENT", connections.to_string()),
    ]
}

async fn run(args: Args) -> Result<()> {
    let t0 = Instant::now();
    if args.subscribers > 0 && args.messages == 0 {
        bail!("--messages must be at least 1");
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
            "creating database {} on {where_db}; migrating, loading the demo",
            db::DB_NAME
        ),
    );
    let live_url = db::recreate(&admin_url).await?;
    let outcome = measure(&args, &target, &bin, &live_url, t0).await;
    progress(t0, format!("dropping database {}", db::DB_NAME));
    let dropped = db::drop(&admin_url).await;
    let report = outcome?;
    dropped?;
    report.print(&args);
    Ok(())
}

/// Everything between creating the database and dropping it.
async fn measure(
    args: &Args,
    target: &std::path::Path,
    bin: &std::path::Path,
    url: &str,
    t0: Instant,
) -> Result<Report> {
    let owner = caregate::db::connect_owner(url).await?;
    caregate::startup::migrate(&owner).await?;
    service::demo::seed(
        &owner,
        &service::phi::Keyring::new(service::phi::MasterKeys::parse(BENCH_MASTER_KEYS)?),
    )
    .await?;
    owner.close().await.ok();
    let patient = db::patient(url, "NS-0001").await?;
    let pg_version = db::version(url).await?;

    let client = reqwest::Client::builder()
        .no_proxy()
        .user_agent("caregate-live-bench")
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let env = server_env(args);
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    progress(
        t0,
        format!(
            "starting {} serve ({})",
            bin.display(),
            env.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    let log = target.join("tmp").join("caregate-live-server.log");
    let srv = Server::start(bin, url, args.pool, log, &client, &env_refs).await?;
    let outcome = exercise(args, &srv, &client, patient, t0).await;
    let log = srv.log.clone();
    srv.stop().await?;
    let mut report = outcome?;
    report.log = server::log_summary(&log);
    report.log_path = log.display().to_string();
    report.pg_version = pg_version;
    Ok(report)
}

/// The two measurements, on the running server.
async fn exercise(
    args: &Args,
    srv: &Server,
    client: &reqwest::Client,
    patient: Uuid,
    t0: Instant,
) -> Result<Report> {
    let url = srv.graphql_url();
    let ws_url = format!("{}/graphql/ws", srv.base.replacen("http://", "ws://", 1));
    let admin = login(client, &url, "admin@northside.example").await?;
    let desk = login(client, &url, "frontdesk@northside.example").await?;
    let (_, rss_ready) = srv.memory()?;
    let mut report = Report {
        rss_ready,
        ..Report::default()
    };

    if args.idle > 0 {
        report.idle = Some(idle(args, srv, client, &ws_url, &admin, t0).await?);
    }
    if args.subscribers > 0 {
        report.fanout =
            Some(fan_out(args, srv, client, &url, &ws_url, &admin, &desk, patient, t0).await?);
    }
    report.hwm = srv.memory()?.0;
    Ok(report)
}

async fn login(client: &reqwest::Client, url: &str, email: &str) -> Result<String> {
    let res = graphql(
        client,
        url,
        None,
        "mutation LiveLogin($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
        json!({ "e": email, "p": service::demo::DEMO_PASSWORD }),
    )
    .await
    .with_context(|| format!("logging in as {email}"))?;
    res["data"]["login"]["token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("login as {email} returned no token: {res}"))
}

/// One GraphQL request over HTTP; the response, which must have no errors.
async fn graphql(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Result<Value> {
    let mut req = client
        .post(url)
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.context("POST /graphql")?;
    let status = resp.status();
    let text = resp.text().await.context("reading a response")?;
    anyhow::ensure!(status.is_success(), "HTTP {status}: {text}");
    let value: Value = serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?;
    anyhow::ensure!(
        value.get("errors").is_none(),
        "GraphQL errors: {}",
        value["errors"]
    );
    Ok(value)
}

/// Open file descriptors of the server (its sockets among them).
fn fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

#[derive(Default)]
struct Idle {
    requested: usize,
    opened: usize,
    open_failures: Vec<String>,
    open_secs: f64,
    rss_before: u64,
    fds_before: Option<usize>,
    rss_settled: u64,
    rss_held: u64,
    /// Lowest and highest RSS sampled each second while holding.
    rss_hold_range: (u64, u64),
    fds_open: Option<usize>,
    rss_closed: u64,
    fds_closed: Option<usize>,
    /// Statements the server ran while the sockets were held (their
    /// session checks), and over how many seconds.
    hold_statements: u64,
    hold_secs: f64,
    /// Sockets the server closed or sent something on while they should
    /// have been idle.
    unexpected: Vec<String>,
}

/// Idle sockets: the server's memory before, with them and after them.
async fn idle(
    args: &Args,
    srv: &Server,
    client: &reqwest::Client,
    ws_url: &str,
    token: &str,
    t0: Instant,
) -> Result<Idle> {
    let mut out = Idle {
        requested: args.idle,
        ..Idle::default()
    };
    // One socket first, opened, subscribed and closed, so that what is
    // allocated once (on the first socket) is not counted per socket.
    {
        let mut s = Socket::connect(ws_url, token).await?;
        s.subscribe("t", IDLE_SUBSCRIPTION, json!({})).await?;
        s.close().await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    out.rss_before = srv.memory()?.1;
    out.fds_before = fds(srv.pid);

    progress(
        t0,
        format!(
            "idle: opening {} sockets (connection_init, ack, one threadUpdated subscription each)",
            args.idle
        ),
    );
    let started = Instant::now();
    let results: Vec<Result<Socket>> = futures::stream::iter(0..args.idle)
        .map(|_| async move {
            let mut s = Socket::connect(ws_url, token).await?;
            s.subscribe("t", IDLE_SUBSCRIPTION, json!({})).await?;
            Ok::<_, anyhow::Error>(s)
        })
        .buffer_unordered(OPEN_CONCURRENCY)
        .collect()
        .await;
    out.open_secs = started.elapsed().as_secs_f64();
    let mut sockets = Vec::new();
    for r in results {
        match r {
            Ok(s) => sockets.push(s),
            Err(e) => out.open_failures.push(format!("{e:#}")),
        }
    }
    out.opened = sockets.len();
    progress(
        t0,
        format!(
            "idle: {} open in {:.1} s ({} failed); settling {} s",
            out.opened,
            out.open_secs,
            out.open_failures.len(),
            args.settle
        ),
    );
    // Each socket is watched while idle: the server should neither send
    // anything nor close it.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watchers: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let stopped = stopped.clone();
            tokio::spawn(s.watch_idle(i, stopped))
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    out.rss_settled = srv.memory()?.1;
    out.fds_open = fds(srv.pid);
    progress(
        t0,
        format!(
            "idle: RSS {:.1} MiB after settling; holding {} s",
            mib(out.rss_settled),
            args.hold
        ),
    );
    let statements_before = srv.statements(client).await?;
    let hold_started = Instant::now();
    let mut range = (out.rss_settled, out.rss_settled);
    while hold_started.elapsed() < Duration::from_secs(args.hold) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = srv.memory()?.1;
        range = (range.0.min(rss), range.1.max(rss));
    }
    out.rss_held = srv.memory()?.1;
    out.hold_secs = hold_started.elapsed().as_secs_f64();
    out.hold_statements = srv
        .statements(client)
        .await?
        .saturating_sub(statements_before);
    out.rss_hold_range = range;

    progress(t0, "idle: closing the sockets");
    let _ = stop.send(true);
    for w in watchers {
        if let Some(what) = w.await.context("a socket watcher panicked")? {
            out.unexpected.push(what);
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    out.rss_closed = srv.memory()?.1;
    out.fds_closed = fds(srv.pid);
    progress(
        t0,
        format!(
            "idle: RSS {:.1} MiB after closing ({} unexpected event(s))",
            mib(out.rss_closed),
            out.unexpected.len()
        ),
    );
    Ok(out)
}

struct FanOut {
    subscribers: usize,
    messages: usize,
    /// Microseconds from just before the mutation was sent to a
    /// subscriber's receipt, every (subscriber, message) delivered.
    latency: Histogram<u64>,
    /// Per message, until the last subscriber had it.
    last: Histogram<u64>,
    /// The mutation's own round trip.
    http: Histogram<u64>,
    delivered: usize,
    missing: Vec<String>,
    duplicates: usize,
    errors: Vec<String>,
    closed: Vec<String>,
    send_secs: f64,
    statements: u64,
    rss_after: u64,
}

/// Sockets following one thread; messages sent to it one after another.
#[allow(clippy::too_many_arguments)]
async fn fan_out(
    args: &Args,
    srv: &Server,
    client: &reqwest::Client,
    url: &str,
    ws_url: &str,
    admin: &str,
    desk: &str,
    patient: Uuid,
    t0: Instant,
) -> Result<FanOut> {
    let n = args.subscribers;
    let m = args.messages;
    // The front desk starts the thread and sends every message; half of the
    // subscribers are the clinic's admin, half the front desk itself (a
    // sender gets its own messages too).
    let started = graphql(
        client,
        url,
        Some(desk),
        START_THREAD,
        json!({ "i": { "patientId": patient, "subject": "Live benchmark",
                       "body": "Opening the thread.", "participantIds": [] } }),
    )
    .await
    .context("startThread")?;
    let thread = started["data"]["startThread"]["id"]
        .as_str()
        .with_context(|| format!("startThread returned no id: {started}"))?
        .to_owned();
    progress(
        t0,
        format!("fan-out: opening {n} sockets on messageAdded(threadId: {thread})"),
    );
    let variables = json!({ "t": thread });
    let results: Vec<Result<Socket>> = futures::stream::iter(0..n)
        .map(|i| {
            let token = if i % 2 == 0 { admin } else { desk };
            let variables = variables.clone();
            async move {
                let mut s = Socket::connect(ws_url, token).await?;
                s.subscribe("m", MESSAGE_ADDED, variables).await?;
                Ok::<_, anyhow::Error>(s)
            }
        })
        .buffered(OPEN_CONCURRENCY)
        .collect()
        .await;
    let sockets = results
        .into_iter()
        .collect::<Result<Vec<_>>>()
        .context("opening a fan-out subscriber")?;

    // Message 0 is the warm-up (and the proof every subscription is live);
    // 1..=m are measured. Each receipt bumps its message's counter.
    let counts: Arc<Vec<AtomicUsize>> = Arc::new((0..=m).map(|_| AtomicUsize::new(0)).collect());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|s| tokio::spawn(s.receive(m, counts.clone(), stopped.clone())))
        .collect();
    let body = |i: usize| format!("live-bench #{i}");

    let warmup_deadline = Instant::now() + Duration::from_secs(20);
    let mut warmed = false;
    while Instant::now() < warmup_deadline {
        graphql(
            client,
            url,
            Some(desk),
            SEND_MESSAGE,
            json!({ "t": thread, "b": body(0) }),
        )
        .await
        .context("sendMessage (warm-up)")?;
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until && counts[0].load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if counts[0].load(Ordering::Relaxed) >= n {
            warmed = true;
            break;
        }
    }
    if !warmed {
        let _ = stop.send(true);
        bail!(
            "only {} of {n} subscribers received the warm-up message in 20 s",
            counts[0].load(Ordering::Relaxed)
        );
    }
    // Every subscriber has seen message 0 at least once; a second warm-up
    // send may still be on its way: let it pass.
    tokio::time::sleep(Duration::from_millis(500)).await;

    progress(
        t0,
        format!(
            "fan-out: {n} subscribers live; sending {m} messages one after another{}",
            if args.interval_ms > 0 {
                format!(" ({} ms apart)", args.interval_ms)
            } else {
                String::new()
            }
        ),
    );
    let statements_before = srv.statements(client).await?;
    let mut sent = vec![None; m + 1];
    let mut http = hist()?;
    let send_started = Instant::now();
    for (i, slot) in sent.iter_mut().enumerate().skip(1) {
        let at = Instant::now();
        *slot = Some(at);
        graphql(
            client,
            url,
            Some(desk),
            SEND_MESSAGE,
            json!({ "t": thread, "b": body(i) }),
        )
        .await
        .with_context(|| format!("sendMessage #{i}"))?;
        http.saturating_record(at.elapsed().as_micros() as u64);
        if args.interval_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
        }
    }
    let send_secs = send_started.elapsed().as_secs_f64();
    // Every delivery, or 30 s without one.
    let expected = n * m;
    let received = || {
        counts[1..]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<usize>()
    };
    let mut last_progress = (received(), Instant::now());
    while received() < expected {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = received();
        if now != last_progress.0 {
            last_progress = (now, Instant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    let statements = srv
        .statements(client)
        .await?
        .saturating_sub(statements_before);
    let _ = stop.send(true);

    let mut out = FanOut {
        subscribers: n,
        messages: m,
        latency: hist()?,
        last: hist()?,
        http,
        delivered: 0,
        missing: Vec::new(),
        duplicates: 0,
        errors: Vec::new(),
        closed: Vec::new(),
        send_secs,
        statements,
        rss_after: srv.memory()?.1,
    };
    let mut last_of: Vec<Option<Instant>> = vec![None; m + 1];
    for (k, r) in readers.into_iter().enumerate() {
        let got = r.await.context("a subscriber panicked")?;
        let mut missing = Vec::new();
        for i in 1..=m {
            match (got.at[i], sent[i]) {
                (Some(at), Some(s)) => {
                    out.delivered += 1;
                    out.latency
                        .saturating_record(at.saturating_duration_since(s).as_micros() as u64);
                    last_of[i] = Some(last_of[i].map_or(at, |l| l.max(at)));
                }
                _ => missing.push(i),
            }
        }
        if !missing.is_empty() {
            out.missing.push(format!(
                "subscriber {k}: {} missing (#{}{})",
                missing.len(),
                missing
                    .iter()
                    .take(10)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", #"),
                if missing.len() > 10 { ", …" } else { "" }
            ));
        }
        out.duplicates += got.duplicates;
        out.errors.extend(
            got.errors
                .into_iter()
                .map(|e| format!("subscriber {k}: {e}")),
        );
        if let Some(c) = got.closed {
            out.closed.push(format!("subscriber {k}: {c}"));
        }
    }
    for i in 1..=m {
        if let (Some(l), Some(s)) = (last_of[i], sent[i]) {
            out.last
                .saturating_record(l.saturating_duration_since(s).as_micros() as u64);
        }
    }
    progress(
        t0,
        format!(
            "fan-out: {} of {expected} deliveries in {:.1} s of sending",
            out.delivered, out.send_secs
        ),
    );
    Ok(out)
}

fn hist() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3).context("a histogram")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[derive(Default)]
struct Report {
    rss_ready: u64,
    hwm: u64,
    idle: Option<Idle>,
    fanout: Option<FanOut>,
    log: (usize, usize, Vec<String>),
    log_path: String,
    pg_version: String,
}

impl Idle {
    /// KiB per socket, from the settled and held readings.
    fn per_socket(&self) -> (f64, f64) {
        let n = self.opened.max(1) as f64;
        (
            (self.rss_settled as f64 - self.rss_before as f64) / n,
            (self.rss_held as f64 - self.rss_before as f64) / n,
        )
    }
}

impl Report {
    fn print(&self, args: &Args) {
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
        let fd = |f: Option<usize>| f.map_or("?".to_owned(), |f| f.to_string());

        println!();
        println!("== Idle sockets ==");
        if let Some(i) = &self.idle {
            let (settled, held) = i.per_socket();
            println!(
                "sockets: {} requested, {} opened in {:.1} s, {} failed",
                i.requested,
                i.opened,
                i.open_secs,
                i.open_failures.len()
            );
            for f in i.open_failures.iter().take(5) {
                println!("  failed: {f}");
            }
            println!(
                "RSS before:                        {:>8} KiB ({:.1} MiB; {} fds)",
                i.rss_before,
                mib(i.rss_before),
                fd(i.fds_before)
            );
            println!(
                "RSS with {:>5} sockets, +{:>3} s:   {:>8} KiB ({:.1} MiB; {} fds)",
                i.opened,
                args.settle,
                i.rss_settled,
                mib(i.rss_settled),
                fd(i.fds_open)
            );
            println!(
                "RSS with {:>5} sockets, +{:>3} s:   {:>8} KiB ({:.1} MiB; {:.1}–{:.1} MiB sampled each second of the hold)",
                i.opened,
                args.settle + args.hold,
                i.rss_held,
                mib(i.rss_held),
                mib(i.rss_hold_range.0),
                mib(i.rss_hold_range.1)
            );
            println!(
                "RSS after closing them (+3 s):     {:>8} KiB ({:.1} MiB; {} fds)",
                i.rss_closed,
                mib(i.rss_closed),
                fd(i.fds_closed)
            );
            println!("per socket: {settled:.1} KiB settled, {held:.1} KiB held");
            println!(
                "statements while holding: {} in {:.0} s ({:.2} per socket: the session check every 30 s)",
                i.hold_statements,
                i.hold_secs,
                i.hold_statements as f64 / i.opened.max(1) as f64
            );
            println!(
                "unexpected closes or messages while idle: {}",
                i.unexpected.len()
            );
            for u in i.unexpected.iter().take(10) {
                println!("  {u}");
            }
        } else {
            println!("(skipped: --idle 0)");
        }

        println!();
        println!("== Fan-out ==");
        if let Some(f) = &self.fanout {
            let expected = f.subscribers * f.messages;
            println!(
                "{} subscribers × {} messages: {} of {} delivered, {} missing, {} duplicate(s)",
                f.subscribers,
                f.messages,
                f.delivered,
                expected,
                expected - f.delivered,
                f.duplicates
            );
            println!(
                "send → receipt, every delivery:     p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                ms(&f.latency, 0.5),
                ms(&f.latency, 0.9),
                ms(&f.latency, 0.99),
                f.latency.max() as f64 / 1000.0
            );
            println!(
                "send → last subscriber, per message: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                ms(&f.last, 0.5),
                ms(&f.last, 0.9),
                ms(&f.last, 0.99),
                f.last.max() as f64 / 1000.0
            );
            println!(
                "sendMessage over HTTP:              p50 {:.2} ms, p99 {:.2} ms ({} sent in {:.1} s: {:.0}/s)",
                ms(&f.http, 0.5),
                ms(&f.http, 0.99),
                f.messages,
                f.send_secs,
                f.messages as f64 / f.send_secs.max(1e-9)
            );
            println!(
                "statements: {} ({:.2} per delivery, sends included)",
                f.statements,
                f.statements as f64 / f.delivered.max(1) as f64
            );
            println!("RSS after fan-out: {:.1} MiB", mib(f.rss_after));
            for x in f.missing.iter().take(10) {
                println!("  missing: {x}");
            }
            for x in f.errors.iter().take(10) {
                println!("  error: {x}");
            }
            for x in f.closed.iter().take(10) {
                println!("  closed early: {x}");
            }
        } else {
            println!("(skipped: --subscribers 0)");
        }

        let (warnings, errors, samples) = &self.log;
        println!();
        println!(
            "server log (RUST_LOG=warn, {}): {warnings} warning line(s), {errors} error line(s)",
            self.log_path
        );
        for s in samples {
            println!("  {s}");
        }

        // The block for the README.
        println!();
        println!("---- Markdown ----");
        if let Some(i) = &self.idle {
            let (settled, held) = i.per_socket();
            println!(
                "| idle sockets (1 `threadUpdated` subscription each) | server RSS | per socket |"
            );
            println!("|---|---:|---:|");
            println!("| none (before) | {:.1} MiB | |", mib(i.rss_before));
            println!(
                "| {} open, after {} s | {:.1} MiB | {:.1} KiB |",
                i.opened,
                args.settle,
                mib(i.rss_settled),
                settled
            );
            println!(
                "| {} open, after {} s | {:.1} MiB | {:.1} KiB |",
                i.opened,
                args.settle + args.hold,
                mib(i.rss_held),
                held
            );
            println!("| closed again (+3 s) | {:.1} MiB | |", mib(i.rss_closed));
            println!();
        }
        if let Some(f) = &self.fanout {
            let expected = f.subscribers * f.messages;
            println!(
                "| fan-out: {} `messageAdded` subscribers, {} messages | p50 ms | p90 ms | p99 ms | max ms |",
                f.subscribers, f.messages
            );
            println!("|---|---:|---:|---:|---:|");
            println!(
                "| `sendMessage` sent → each subscriber's `next` | {:.2} | {:.2} | {:.2} | {:.2} |",
                ms(&f.latency, 0.5),
                ms(&f.latency, 0.9),
                ms(&f.latency, 0.99),
                f.latency.max() as f64 / 1000.0
            );
            println!(
                "| `sendMessage` sent → the last subscriber's `next` | {:.2} | {:.2} | {:.2} | {:.2} |",
                ms(&f.last, 0.5),
                ms(&f.last, 0.9),
                ms(&f.last, 0.99),
                f.last.max() as f64 / 1000.0
            );
            println!(
                "| `sendMessage` HTTP round trip (reference) | {:.2} | {:.2} | {:.2} | {:.2} |",
                ms(&f.http, 0.5),
                ms(&f.http, 0.9),
                ms(&f.http, 0.99),
                f.http.max() as f64 / 1000.0
            );
            println!();
            println!(
                "- delivered {} of {} ({} missing, {} duplicate); messages sent one after another{}, {:.0}/s; {:.2} SQL statements per delivery",
                f.delivered,
                expected,
                expected - f.delivered,
                f.duplicates,
                if args.interval_ms > 0 {
                    format!(", {} ms apart", args.interval_ms)
                } else {
                    " (each after the previous response)".to_owned()
                },
                f.messages as f64 / f.send_secs.max(1e-9),
                f.statements as f64 / f.delivered.max(1) as f64
            );
        }
        if let Some(i) = &self.idle {
            println!(
                "- idle: {} of {} sockets opened in {:.1} s; {} closed or sent anything while idle; {} SQL statements in the {:.0} s hold (session checks)",
                i.opened,
                i.requested,
                i.open_secs,
                i.unexpected.len(),
                i.hold_statements,
                i.hold_secs
            );
        }
        println!(
            "- server: RSS when ready {:.1} MiB, peak (VmHWM) {:.1} MiB; DB_POOL_SIZE={}; {}",
            mib(self.rss_ready),
            mib(self.hwm),
            args.pool,
            server_env(args)
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "- machine: nproc {nproc}, {cpu}; PostgreSQL {}; load generator, server and PostgreSQL share it",
            self.pg_version
        );
        println!(
            "- server log (RUST_LOG=warn): {warnings} warning line(s), {errors} error line(s)"
        );
        println!("---- end ----");
    }
}

/// What one fan-out subscriber received.
pub struct Received {
    /// When each message (by index) first arrived.
    pub at: Vec<Option<Instant>>,
    pub duplicates: usize,
    pub errors: Vec<String>,
    /// How the socket ended, when the server ended it.
    pub closed: Option<Closed>,
}
