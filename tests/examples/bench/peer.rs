//! PostGraphile 4 as a peer for operation 1 (`--peer postgraphile`): the
//! same page through another GraphQL server over the same database, as the
//! same runtime role, under the same row-level security and the same
//! per-request context (`postgraphile.js` says how).
//!
//! It is installed from the npm registry under the target directory on
//! first use (`npm install postgraphile@4`); without Node and npm the
//! benchmark says so and runs without it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::driver::{Op, Recorder};
use crate::fixture::{Fixture, WorkerState};
use crate::http;

/// What is installed, from the npm registry.
pub const PACKAGE: &str = "postgraphile@4";

/// The script that serves PostGraphile with caregate's request context.
const SCRIPT: &str = include_str!("postgraphile.js");

/// Operation 1 in PostGraphile's schema: its names for the same fields,
/// the same order (last name, first name, id), the same filters (patients
/// not deleted; assignments not removed, by assignment time).
pub const PATIENTS_PAGE: &str = "query BenchPatientsPage($first: Int!) { allPatients(first: $first, orderBy: [LAST_NAME_ASC, FIRST_NAME_ASC, ID_ASC], condition: {deletedAt: null}) { edges { node { firstName careTeamAssignmentsByOrganizationIdAndPatientId(condition: {removedAt: null}, orderBy: [ASSIGNED_AT_ASC, ID_ASC]) { nodes { providerByOrganizationIdAndProviderId { name } } } } } } }";

/// An installation: its directory and PostGraphile's version.
pub struct Install {
    pub dir: PathBuf,
    pub version: String,
    pub node: String,
}

fn output_of(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Installs PostGraphile under `target/postgraphile` unless it is there;
/// `None` (and why) when Node or npm is missing.
pub fn install(target: &Path) -> Result<std::result::Result<Install, String>> {
    let Some(node) = output_of("node", &["--version"]) else {
        return Ok(Err(
            "`node --version` did not run (no Node.js on PATH?)".to_owned()
        ));
    };
    let dir = target.join("postgraphile");
    let manifest = dir
        .join("node_modules")
        .join("postgraphile")
        .join("package.json");
    if !manifest.is_file() {
        if output_of("npm", &["--version"]).is_none() {
            return Ok(Err(
                "`npm --version` did not run (no npm on PATH?)".to_owned()
            ));
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // A package of its own, so npm installs here and not into a parent.
        std::fs::write(dir.join("package.json"), "{ \"private\": true }\n")
            .context("writing package.json")?;
        eprintln!("  installing {PACKAGE} into {}", dir.display());
        let status = std::process::Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg(PACKAGE)
            .stdin(Stdio::null())
            .status()
            .context("running npm install")?;
        if !status.success() {
            bail!("npm install {PACKAGE} failed ({status})");
        }
    }
    let version = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .with_context(|| format!("reading {}", manifest.display()))?;
    std::fs::write(dir.join("bench-postgraphile.js"), SCRIPT)
        .context("writing the PostGraphile script")?;
    Ok(Ok(Install { dir, version, node }))
}

/// The running PostGraphile.
pub struct PostGraphile {
    child: tokio::process::Child,
    pid: u32,
    base: String,
    pub log: PathBuf,
}

impl PostGraphile {
    /// Starts it on `runtime_url` (the bench database as the runtime role)
    /// and waits until it answers a query with `bearer`'s token.
    pub async fn start(
        install: &Install,
        runtime_url: &str,
        pool: u32,
        client: &reqwest::Client,
        bearer: &reqwest::header::HeaderValue,
    ) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let log = install.dir.join("postgraphile.log");
        let out = std::fs::File::create(&log)
            .with_context(|| format!("creating the PostGraphile log {}", log.display()))?;
        let mut child = tokio::process::Command::new("node")
            .arg(install.dir.join("bench-postgraphile.js"))
            .current_dir(&install.dir)
            .env("NODE_ENV", "production")
            .env("PG_URL", runtime_url)
            .env("PG_POOL", pool.to_string())
            .env("PORT", port.to_string())
            // The server's signing key in development (the bench server
            // runs with it) and its issuer and audience.
            .env("JWT_SECRET", caregate::config::DEV_JWT_SECRET)
            .env("JWT_ISSUER", "caregate")
            .env("JWT_AUDIENCE", "caregate-api")
            .env("IDLE_MINUTES", "60")
            .stdin(Stdio::null())
            .stdout(out.try_clone().context("the log file")?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .context("starting node")?;
        let pid = child.id().context("node exited at once")?;
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let probe = json!({ "query": "{ __typename }" }).to_string();
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "PostGraphile exited ({status}); its log ({}):\n{}",
                    log.display(),
                    crate::server::tail(&log, 30)
                );
            }
            if http::post(client, &format!("{base}/graphql"), bearer, probe.clone())
                .await
                .is_ok()
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                bail!(
                    "PostGraphile did not answer within 120 s; its log ({}):\n{}",
                    log.display(),
                    crate::server::tail(&log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Self {
            child,
            pid,
            base,
            log,
        })
    }

    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.base)
    }

    /// Round trips to PostgreSQL so far (its context hook counts them).
    pub async fn round_trips(&self, client: &reqwest::Client) -> Result<u64> {
        let stats: Value = client
            .get(format!("{}/bench-stats", self.base))
            .send()
            .await
            .context("GET /bench-stats")?
            .json()
            .await
            .context("reading /bench-stats")?;
        stats["roundTrips"]
            .as_u64()
            .context("/bench-stats has no roundTrips")
    }

    /// (VmHWM, VmRSS) of the Node process, in KiB.
    pub fn memory(&self) -> Result<(u64, u64)> {
        crate::server::memory_of(self.pid)
    }

    pub async fn stop(mut self) -> Result<()> {
        self.child.kill().await.context("stopping PostGraphile")
    }
}

/// Operation 1 against PostGraphile, its response checked for errors as
/// caregate's is.
pub struct PeerOp {
    fx: Arc<Fixture>,
    client: reqwest::Client,
    url: String,
    body: String,
}

impl PeerOp {
    pub fn new(fx: Arc<Fixture>, client: reqwest::Client, url: String, first: i32) -> Self {
        let body = json!({ "query": PATIENTS_PAGE, "variables": { "first": first } }).to_string();
        Self {
            fx,
            client,
            url,
            body,
        }
    }

    /// One page, rewritten into caregate's shape (for the check that both
    /// return the same data).
    pub async fn page(&self, st: &WorkerState) -> Result<Value> {
        let body: Value = serde_json::from_str(&self.body)?;
        let res = http::call(
            &self.client,
            &self.url,
            Some(&self.fx.clinic(st).bearer),
            &body,
        )
        .await?;
        let edges = res["data"]["allPatients"]["edges"]
            .as_array()
            .with_context(|| format!("no edges: {res}"))?;
        let edges: Vec<Value> = edges
            .iter()
            .map(|e| {
                let node = &e["node"];
                let team: Vec<Value> = node["careTeamAssignmentsByOrganizationIdAndPatientId"]
                    ["nodes"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|m| json!({ "provider": m["providerByOrganizationIdAndProviderId"] }))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({ "node": { "firstName": node["firstName"], "careTeam": team } })
            })
            .collect();
        Ok(json!({ "data": { "patients": { "edges": edges } } }))
    }
}

impl Op for PeerOp {
    type State = WorkerState;

    fn state(&self, worker: usize, phase: u64) -> WorkerState {
        self.fx.state(worker, phase)
    }

    async fn run(&self, st: &mut WorkerState, rec: &mut Recorder) {
        let bearer = &self.fx.clinic(st).bearer;
        http::read(&self.client, &self.url, bearer, self.body.clone(), rec).await;
    }
}
