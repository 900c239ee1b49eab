//! The release server under test, as a child process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The command that builds what the benchmark runs.
pub const BUILD_COMMAND: &str = "cargo build --release -p caregate --bin caregate";

/// The workspace's target directory: the one this executable was built
/// into (target/<profile>/examples/bench), else CARGO_TARGET_DIR.
pub fn target_dir() -> Result<PathBuf> {
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.ancestors().skip(1).find(|d| d.join("release").is_dir())
    {
        return Ok(dir.to_owned());
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(dir));
    }
    bail!("cannot tell where the workspace's target directory is: set CARGO_TARGET_DIR")
}

/// `target/release/caregate`, or a message saying how to build it.
pub fn binary(target: &Path) -> Result<PathBuf> {
    let mut candidates = vec![target.join("release").join("caregate")];
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("release").join("caregate"));
    }
    for c in &candidates {
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    bail!(
        "the release server is not built (looked for {}). Build it first:\n\n    {BUILD_COMMAND}\n",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub struct Server {
    child: tokio::process::Child,
    pub pid: u32,
    pub base: String,
    pub log: PathBuf,
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Server {
    /// Starts `caregate serve` on the bench database and waits until
    /// /readyz answers 200.
    pub async fn start(
        bin: &Path,
        database_url: &str,
        pool: u32,
        log: PathBuf,
        client: &reqwest::Client,
        extra_env: &[(&str, &str)],
    ) -> Result<Self> {
        let port = free_port()?;
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let stderr = std::fs::File::create(&log)
            .with_context(|| format!("creating the server log {}", log.display()))?;
        let mut cmd = tokio::process::Command::new(bin);
        cmd.arg("serve")
            // Only what is set here: a caregate variable of the caller's
            // environment must not change what is measured.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("DB_POOL_SIZE", pool.to_string())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .env("CAREGATE_ENV", "development")
            .env("PHI_MASTER_KEYS", crate::BENCH_MASTER_KEYS)
            .env("SESSION_IDLE_MINUTES", "60")
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the server exited ({status}) before it was ready; its log ({}):\n{}",
                    log.display(),
                    tail(&log, 20)
                );
            }
            if let Ok(resp) = client.get(format!("{base}/readyz")).send().await
                && resp.status() == reqwest::StatusCode::OK
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the server was not ready after 60 s; its log ({}):\n{}",
                    log.display(),
                    tail(&log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
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

    /// `caregate_db_statements_total` from /metrics.
    pub async fn statements(&self, client: &reqwest::Client) -> Result<u64> {
        let text = client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .context("GET /metrics")?
            .error_for_status()
            .context("GET /metrics")?
            .text()
            .await
            .context("reading /metrics")?;
        text.lines()
            .find_map(|l| l.strip_prefix("caregate_db_statements_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .context("/metrics has no caregate_db_statements_total")
    }

    /// (VmHWM, VmRSS) of the server process, in KiB.
    pub fn memory(&self) -> Result<(u64, u64)> {
        memory_of(self.pid)
    }

    pub async fn stop(mut self) -> Result<()> {
        self.child.kill().await.context("stopping the server")?;
        Ok(())
    }
}

/// (VmHWM, VmRSS) of a process, in KiB.
pub fn memory_of(pid: u32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .with_context(|| format!("{path} has no {name}"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

/// The last `n` lines of a file (for error messages).
pub fn tail(path: &Path, n: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(unreadable: {e})"),
    }
}

/// What the server logged at WARN or above: (warnings, errors, first few lines).
pub fn log_summary(path: &Path) -> (usize, usize, Vec<String>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (0, 0, Vec::new());
    };
    let mut warnings = 0;
    let mut errors = 0;
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if line.contains("\"level\":\"ERROR\"") {
            errors += 1;
        } else {
            warnings += 1;
        }
        if samples.len() < 5 {
            samples.push(line.chars().take(400).collect());
        }
    }
    (warnings, errors, samples)
}
