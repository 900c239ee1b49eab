//! A private PostgreSQL cluster for the zero-setup run (and for tests when no
//! DATABASE_URL is given), run with the machine's own PostgreSQL binaries.
//!
//! Written here rather than taken from a crate: the crates that do this
//! either download binaries (no network in a clinic's locked-down server
//! room) or cannot run when the process is root, where `initdb` refuses to
//! run and the cluster must belong to an unprivileged user. This module finds
//! `initdb`/`pg_ctl`, creates the cluster once under a data directory of its
//! own, and starts it (or finds it running) on a loopback port it remembers,
//! so data survives restarts.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// A running private cluster.
#[derive(Debug, Clone)]
pub struct PrivateCluster {
    pub port: u16,
    pub data_dir: PathBuf,
}

impl PrivateCluster {
    /// URL of database `db` as the cluster's superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the cluster (fast shutdown: open sessions are ended, their
    /// transactions rolled back). `ensure` starts it again.
    pub fn stop(&self) -> anyhow::Result<()> {
        let bin = find_binaries()?;
        let mut stop = Command::new(bin.join("pg_ctl"));
        stop.args(["stop", "-w", "-m", "fast", "-D"])
            .arg(&self.data_dir);
        if let Err(stderr) = run(&mut stop, &unprivileged_user()?).context("pg_ctl stop")? {
            bail!("the private PostgreSQL did not stop: {}", stderr.trim());
        }
        Ok(())
    }
}

/// Stops the private cluster under `root` if it runs; whether it did.
pub fn stop(root: &Path) -> anyhow::Result<bool> {
    let Ok(root) = root.canonicalize() else {
        return Ok(false);
    };
    let pgdata = root.join("pgdata");
    if !pgdata.join("PG_VERSION").exists() {
        return Ok(false);
    }
    let bin = find_binaries()?;
    let run_as = unprivileged_user()?;
    let mut status = Command::new(bin.join("pg_ctl"));
    status.arg("status").arg("-D").arg(&pgdata);
    if run(&mut status, &run_as)?.is_err() {
        return Ok(false);
    }
    PrivateCluster {
        port: 0,
        data_dir: pgdata,
    }
    .stop()?;
    Ok(true)
}

/// The owner of the cluster's files when caregate runs as root.
struct RunAs {
    uid: u32,
    gid: u32,
}

/// Starts (creating on first use) the private cluster under `root`.
pub fn ensure(root: &Path) -> anyhow::Result<PrivateCluster> {
    ensure_made(root, initdb)
}

/// Starts (creating it on first use with `pg_basebackup`) a streaming
/// standby of the running private cluster `primary` under `root`: a hot
/// standby that replays everything the primary writes, to try a read
/// replica (`READ_DATABASE_URL`) on one machine, as the tests do.
pub fn ensure_standby(root: &Path, primary: &PrivateCluster) -> anyhow::Result<PrivateCluster> {
    let primary_port = primary.port.to_string();
    ensure_made(root, |bin, pgdata, run_as| {
        let mut backup = Command::new(bin.join("pg_basebackup"));
        backup
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port,
                "-U",
                "postgres",
                "-D",
            ])
            .arg(pgdata)
            // Streams the WAL it needs, and writes the standby's settings
            // (standby.signal, primary_conninfo).
            .args(["-X", "stream", "-R", "--no-sync"]);
        if let Err(stderr) = run(&mut backup, run_as).context("pg_basebackup")? {
            let _ = std::fs::remove_dir_all(pgdata);
            bail!("pg_basebackup failed: {}", stderr.trim());
        }
        Ok(())
    })
}

/// `initdb` of a new cluster at `pgdata`.
fn initdb(bin: &Path, pgdata: &Path, run_as: &Option<RunAs>) -> anyhow::Result<()> {
    let mut initdb = Command::new(bin.join("initdb"));
    initdb.args(["-D"]).arg(pgdata).args([
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--no-locale",
        "--auth=trust",
        "--no-sync",
    ]);
    if let Err(stderr) = run(&mut initdb, run_as).context("initdb")? {
        let hint = if run_as.is_some() {
            format!(
                "\nRunning as root, the cluster belongs to the `postgres` user, which must be \
                 able to enter every directory above {}. Run caregate from a directory it can \
                 reach, or set CAREGATE_DATA_DIR (or --data-dir) to one, e.g. /var/lib/caregate.",
                pgdata.parent().unwrap_or(pgdata).display()
            )
        } else {
            String::new()
        };
        bail!("initdb failed: {}{hint}", stderr.trim());
    }
    Ok(())
}

/// Starts the cluster under `root`, made by `make` when it does not exist.
fn ensure_made(
    root: &Path,
    make: impl FnOnce(&Path, &Path, &Option<RunAs>) -> anyhow::Result<()>,
) -> anyhow::Result<PrivateCluster> {
    let bin = find_binaries()?;
    std::fs::create_dir_all(root)
        .with_context(|| format!("creating the data directory {}", root.display()))?;
    let root = root
        .canonicalize()
        .with_context(|| format!("resolving {}", root.display()))?;
    let pgdata = root.join("pgdata");
    let run_as = unprivileged_user()?;
    if let Some(user) = &run_as {
        std::os::unix::fs::chown(&root, Some(user.uid), Some(user.gid))
            .with_context(|| format!("giving {} to the postgres user", root.display()))?;
    }

    if !pgdata.join("PG_VERSION").exists() {
        make(&bin, &pgdata, &run_as)?;
    }

    let port_file = root.join("port");
    let port = match std::fs::read_to_string(&port_file) {
        Ok(s) => s
            .trim()
            .parse()
            .context("reading the cluster's port file")?,
        Err(_) => {
            let port = free_port()?;
            std::fs::write(&port_file, port.to_string()).context("writing the port file")?;
            port
        }
    };

    let mut status = Command::new(bin.join("pg_ctl"));
    status.arg("status").arg("-D").arg(&pgdata);
    if !run(&mut status, &run_as).is_ok_and(|r| r.is_ok()) {
        let log = root.join("postgres.log");
        let mut start = Command::new(bin.join("pg_ctl"));
        start
            .arg("start")
            .arg("-w")
            .arg("-D")
            .arg(&pgdata)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(format!(
                "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200"
            ));
        if let Err(stderr) = run(&mut start, &run_as).context("pg_ctl start")? {
            let detail = std::fs::read_to_string(&log)
                .ok()
                .and_then(|l| l.lines().last().map(str::to_owned))
                .unwrap_or_default();
            bail!(
                "the private PostgreSQL did not start: {} {}\n(its log: {})",
                stderr.trim(),
                detail,
                log.display()
            );
        }
    }
    Ok(PrivateCluster {
        port,
        data_dir: pgdata,
    })
}

/// Runs a command (as the unprivileged user when there is one);
/// `Ok(Err(stderr))` when it ran and failed.
fn run(cmd: &mut Command, run_as: &Option<RunAs>) -> anyhow::Result<Result<(), String>> {
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
        // The postgres user may not be able to enter the caller's directory.
        cmd.current_dir("/");
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if out.status.success() {
        return Ok(Ok(()));
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    tracing::debug!(stderr = %stderr, "{:?} failed", cmd.get_program());
    Ok(Err(stderr))
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// `initdb` refuses to run as root: when we are root, the cluster belongs to
/// the `postgres` system user (present wherever PostgreSQL is installed).
fn unprivileged_user() -> anyhow::Result<Option<RunAs>> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .context("running id")?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        return Ok(None);
    }
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output()?;
        if !out.status.success() {
            bail!(
                "running as root, the private PostgreSQL needs an unprivileged `postgres` user \
                 (create one, run caregate as another user, or set DATABASE_URL)"
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok(Some(RunAs {
        uid: id("-u")?,
        gid: id("-g")?,
    }))
}

/// `initdb` and `pg_ctl`, from PATH or the newest `/usr/lib/postgresql/*/bin`.
fn find_binaries() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                // Where the server's binaries really are: a directory on
                // PATH may link to only some of them.
                let real = std::fs::canonicalize(dir.join("initdb"))
                    .ok()
                    .and_then(|initdb| initdb.parent().map(Path::to_path_buf));
                return Ok(real.unwrap_or(dir));
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "no PostgreSQL server binaries (initdb, pg_ctl) found on PATH or under \
             /usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: `apt-get install \
             postgresql postgresql-contrib`; Fedora: `dnf install postgresql-server \
             postgresql-contrib`; macOS: `brew install postgresql@16`), or set DATABASE_URL \
             to a PostgreSQL server you already run"
        ),
    }
}
