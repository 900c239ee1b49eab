//! The audit trail's monthly partitions: created ahead of time, and retired
//! once older than the retention period — detached, archived to a
//! gzip-compressed JSON-lines file with a manifest, the archive re-read and
//! verified, and only then dropped.
//!
//! Runs as the owner role (partitions are DDL on the owner's table), on one
//! connection of its own holding an advisory lock, so two runs never
//! interleave. Creating, detaching and attaching a partition lock the trail
//! briefly; a lock not granted within 3 s fails the step (every audited
//! write would queue behind a waiting lock) and the next run retries it. No request context: like `integrity`, this serves no request.
//! Reads run with `row_security = off`: a role that row-level security
//! would filter gets an error, never a silently empty archive.
//!
//! Nothing is dropped without a verified archive. When an archive cannot be
//! written or verified, its partition is re-attached (or, if even that
//! fails, left detached — still append-only, under forced row-level
//! security — for the next run to archive or re-attach), and the run
//! reports the failure.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail, ensure};
use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use sea_orm::DatabaseConnection;
use sea_orm::sqlx::{self, Connection, PgConnection};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ServiceError, ServiceResult};

/// Rows fetched from the database per round trip while archiving.
const FETCH_ROWS: u32 = 5_000;

/// What `maintain` should do.
#[derive(Debug, Clone)]
pub struct MaintainOptions {
    /// Months to keep a partition ready for beyond the current one.
    pub months_ahead: u32,
    /// Retire old months; `None`: keep everything.
    pub retention: Option<Retention>,
}

/// Which months to retire, and where their archives go.
#[derive(Debug, Clone)]
pub struct Retention {
    /// A month is retired once it ended more than this many months ago
    /// (at least 1).
    pub months: u32,
    /// Directory of the archives (created when missing).
    pub export_dir: PathBuf,
}

/// One month's partition, by name: `audit_events_YYYY_MM`. Parsed once, so
/// the name that goes into SQL text is only ever digits and the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionName(String);

impl PartitionName {
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        let digits = raw
            .strip_prefix("audit_events_")
            .filter(|rest| rest.len() == 7)
            .map(|rest| rest.as_bytes());
        match digits {
            Some([y1, y2, y3, y4, b'_', m1, m2])
                if [y1, y2, y3, y4, m1, m2].iter().all(|b| b.is_ascii_digit()) =>
            {
                Ok(Self(raw.to_owned()))
            }
            _ => Err(ServiceError::invalid(
                "partition",
                format!("{raw} is not a monthly audit partition"),
            )),
        }
    }
}

impl AsRef<str> for PartitionName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PartitionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What one run did.
#[derive(Debug, Default)]
pub struct MaintainReport {
    /// Partitions created (ahead of time, or for rows waiting in DEFAULT).
    pub created: Vec<String>,
    /// Detached months (left by an earlier run) attached again.
    pub reattached: Vec<String>,
    /// Months archived, verified and dropped.
    pub archived: Vec<Archive>,
    /// Months that could not be retired; their rows are still in the database.
    pub failed: Vec<Failure>,
    /// Rows in the DEFAULT partition that no monthly partition takes
    /// (timestamps outside any sane range).
    pub default_rows: i64,
}

/// A month retired: its verified archive.
#[derive(Debug, Clone)]
pub struct Archive {
    pub partition: String,
    pub file: PathBuf,
    pub manifest: PathBuf,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// Where a month that could not be retired was left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// Attached again: the trail is whole, nothing was lost.
    Attached,
    /// Detached but present (append-only, forced row-level security, no
    /// grants): the next run archives or re-attaches it.
    Detached,
}

/// A month that was not retired, and why.
#[derive(Debug, Clone)]
pub struct Failure {
    pub partition: String,
    pub left: Left,
    /// The whole cause chain.
    pub error: String,
}

/// The manifest written beside each archive (`<archive>.manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// What the file holds.
    pub format: String,
    /// The partition archived.
    pub table: String,
    /// The archive's file name (in the same directory).
    pub file: String,
    /// Audit events in the archive: one per line.
    pub rows: u64,
    /// Size of the compressed file.
    pub bytes: u64,
    /// SHA-256 of the compressed file, hex.
    pub sha256: String,
    /// The month archived: events with `range_from <= occurred_at < range_to`.
    pub range_from: DateTime<Utc>,
    pub range_to: DateTime<Utc>,
    pub exported_at: DateTime<Utc>,
}

const FORMAT: &str = "gzip-compressed JSON lines: one audit event per line, \
                      the row as PostgreSQL's to_jsonb, ordered by occurred_at, id";

/// Creates the partitions of this month and the `months_ahead` after it
/// (and of any month whose rows wait in DEFAULT), re-attaches months an
/// earlier run left detached, and, with a retention, retires every month
/// that ended more than `retention.months` ago. Idempotent: a second run
/// in the same month changes nothing.
///
/// Errors that stop the run (no connection, another run holding the lock)
/// are errors; a month that could not be retired is reported in
/// [`MaintainReport::failed`] while the run goes on with the others.
pub async fn maintain(
    db: &DatabaseConnection,
    options: &MaintainOptions,
) -> ServiceResult<MaintainReport> {
    if options.retention.as_ref().is_some_and(|r| r.months == 0) {
        return Err(ServiceError::invalid(
            "retain_months",
            "the retention is at least 1 month",
        ));
    }
    let months_ahead = i32::try_from(options.months_ahead)
        .ok()
        .filter(|m| *m <= 120)
        .ok_or_else(|| ServiceError::invalid("months_ahead", "at most 120 months ahead"))?;
    let mut conn = db
        .get_postgres_connection_pool()
        .acquire()
        .await
        .context("connecting as the owner")?
        // The advisory lock lives as long as this connection: closed (not
        // returned to the pool) when the run ends, however it ends.
        .detach();
    sqlx::raw_sql(
        "SET TimeZone = 'UTC'; SET row_security = off; SET lock_timeout = '3s'; \
         SET statement_timeout = 0",
    )
    .execute(&mut conn)
    .await
    .context("preparing the maintenance connection")?;
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('caregate.audit_maintain'))")
            .fetch_one(&mut conn)
            .await
            .context("taking the maintenance lock")?;
    if !locked {
        return Err(
            anyhow!("another `caregate audit maintain` is running on this database").into(),
        );
    }

    let mut report = MaintainReport::default();
    create_ahead(&mut conn, months_ahead, &mut report).await?;

    let cutoff: Option<DateTime<Utc>> = match &options.retention {
        Some(r) => Some(
            sqlx::query_scalar("SELECT now() - make_interval(months => $1)")
                .bind(i32::try_from(r.months).unwrap_or(i32::MAX))
                .fetch_one(&mut conn)
                .await
                .context("reading the clock")?,
        ),
        None => None,
    };
    let partitions = list(&mut conn).await?;
    for p in partitions.iter().filter(|p| !p.is_default) {
        let retire = match (cutoff, p.range_to) {
            (Some(cutoff), Some(to)) => to <= cutoff,
            _ => false,
        };
        let name = PartitionName::parse(&p.name)?;
        match (&options.retention, retire, p.attached) {
            (Some(r), true, attached) => {
                retire_month(&mut conn, &name, p, attached, &r.export_dir, &mut report).await
            }
            (_, _, false) => match attach(&mut conn, &name).await {
                Ok(()) => report.reattached.push(p.name.clone()),
                Err(e) => report.failed.push(Failure {
                    partition: p.name.clone(),
                    left: Left::Detached,
                    error: format!("re-attaching: {e:#}"),
                }),
            },
            _ => {}
        }
    }

    report.default_rows = sqlx::query_scalar("SELECT count(*) FROM public.audit_events_default")
        .fetch_one(&mut conn)
        .await
        .context("counting rows in the default partition")?;
    conn.close().await.ok();
    Ok(report)
}

/// A partition as the catalog lists it (`app.audit_partitions()`).
#[derive(Debug, Clone)]
pub struct Partition {
    pub name: String,
    pub attached: bool,
    pub is_default: bool,
    pub range_from: Option<DateTime<Utc>>,
    pub range_to: Option<DateTime<Utc>>,
}

/// Every monthly partition (attached or detached) and the DEFAULT one,
/// oldest month first.
pub async fn partitions(db: &DatabaseConnection) -> ServiceResult<Vec<Partition>> {
    let mut conn = db
        .get_postgres_connection_pool()
        .acquire()
        .await
        .context("connecting as the owner")?;
    list(&mut conn).await
}

type PartitionRow = (
    String,
    bool,
    bool,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

async fn list(conn: &mut PgConnection) -> ServiceResult<Vec<Partition>> {
    let rows: Vec<PartitionRow> = sqlx::query_as(
        "SELECT name, attached, is_default, range_from, range_to FROM app.audit_partitions()",
    )
    .fetch_all(conn)
    .await
    .context("listing audit partitions")?;
    Ok(rows
        .into_iter()
        .map(
            |(name, attached, is_default, range_from, range_to)| Partition {
                name,
                attached,
                is_default,
                range_from,
                range_to,
            },
        )
        .collect())
}

async fn create_ahead(
    conn: &mut PgConnection,
    months_ahead: i32,
    report: &mut MaintainReport,
) -> ServiceResult<()> {
    sqlx::query("SELECT app.audit_default_partition()")
        .execute(&mut *conn)
        .await
        .context("creating the default partition")?;
    let months: Vec<chrono::NaiveDate> = sqlx::query_scalar(
        "SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => k))::date \
         FROM generate_series(0, $1) AS k \
         UNION \
         SELECT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date \
         FROM public.audit_events_default \
         WHERE occurred_at >= '1900-01-01T00:00:00Z' AND occurred_at < '3000-01-01T00:00:00Z' \
         ORDER BY 1",
    )
    .bind(months_ahead)
    .fetch_all(&mut *conn)
    .await
    .context("listing the months that need a partition")?;
    for month in months {
        let mut tx = conn.begin().await.context("beginning")?;
        let created: Option<String> = sqlx::query_scalar("SELECT app.audit_partition_create($1)")
            .bind(month)
            .fetch_one(&mut *tx)
            .await
            .with_context(|| format!("creating the audit partition of {month}"))?;
        tx.commit().await.context("committing a new partition")?;
        report.created.extend(created);
    }
    Ok(())
}

async fn attach(conn: &mut PgConnection, name: &PartitionName) -> anyhow::Result<()> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT app.audit_partition_attach($1)")
        .bind(name.as_ref())
        .execute(&mut *tx)
        .await
        .with_context(|| format!("attaching {name}"))?;
    tx.commit().await?;
    Ok(())
}

/// Detaches (when attached), archives, verifies and drops one month;
/// re-attaches it when the archive fails.
async fn retire_month(
    conn: &mut PgConnection,
    name: &PartitionName,
    p: &Partition,
    attached: bool,
    dir: &Path,
    report: &mut MaintainReport,
) {
    if attached {
        let detached = async {
            let mut tx = conn.begin().await?;
            sqlx::query("SELECT app.audit_partition_detach($1)")
                .bind(name.as_ref())
                .execute(&mut *tx)
                .await
                .with_context(|| format!("detaching {name}"))?;
            tx.commit().await?;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = detached {
            report.failed.push(Failure {
                partition: name.to_string(),
                left: Left::Attached,
                error: format!("{e:#}"),
            });
            return;
        }
    }
    let (Some(from), Some(to)) = (p.range_from, p.range_to) else {
        return;
    };
    let archive = match export(conn, name, from, to, dir).await {
        Ok(archive) => archive,
        Err(e) => {
            let error = format!("archiving: {e:#}");
            let failure = match attach(conn, name).await {
                Ok(()) => Failure {
                    partition: name.to_string(),
                    left: Left::Attached,
                    error,
                },
                Err(again) => Failure {
                    partition: name.to_string(),
                    left: Left::Detached,
                    error: format!("{error}; then re-attaching: {again:#}"),
                },
            };
            report.failed.push(failure);
            return;
        }
    };
    let dropped = async {
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT app.audit_partition_drop($1, $2)")
            .bind(name.as_ref())
            .bind(i64::try_from(archive.rows)?)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("dropping {name}"))?;
        tx.commit().await?;
        anyhow::Ok(())
    }
    .await;
    match dropped {
        Ok(()) => report.archived.push(archive),
        Err(e) => report.failed.push(Failure {
            partition: name.to_string(),
            left: Left::Detached,
            error: format!(
                "archived and verified as {}, but not dropped: {e:#}",
                archive.file.display()
            ),
        }),
    }
}

/// Writes the detached month to `<dir>/<name>-<stamp>.jsonl.gz` and its
/// manifest, both re-read and verified. Files of a failed attempt are
/// removed: the directory only ever holds verified archives with their
/// manifests (and, after a crash, `.partial` files).
async fn export(
    conn: &mut PgConnection,
    name: &PartitionName,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    dir: &Path,
) -> anyhow::Result<Archive> {
    let exported_at = Utc::now();
    let stem = format!("{name}-{}", exported_at.format("%Y%m%dT%H%M%SZ"));
    let file = dir.join(format!("{stem}.jsonl.gz"));
    let manifest_path = dir.join(format!("{stem}.manifest.json"));
    // Never overwrite (nor, on failure, remove) a file this attempt did not
    // write; two runs never overlap (the advisory lock).
    for path in [&file, &manifest_path] {
        for path in [path.clone(), partial(path)] {
            ensure!(!path.exists(), "{} exists already", path.display());
        }
    }
    let result = export_files(
        conn,
        name,
        from,
        to,
        dir,
        exported_at,
        &file,
        &manifest_path,
    )
    .await;
    if result.is_err() {
        for path in [&file, &manifest_path] {
            let _ = fs::remove_file(path);
            let _ = fs::remove_file(partial(path));
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn export_files(
    conn: &mut PgConnection,
    name: &PartitionName,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    dir: &Path,
    exported_at: DateTime<Utc>,
    file: &Path,
    manifest_path: &Path,
) -> anyhow::Result<Archive> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (rows, bytes, sha256) = write_rows(conn, name, &partial(file)).await?;
    publish(&partial(file), file)?;

    let manifest = Manifest {
        format: FORMAT.to_owned(),
        table: name.to_string(),
        file: file
            .file_name()
            .and_then(|f| f.to_str())
            .context("the archive's file name")?
            .to_owned(),
        rows,
        bytes,
        sha256: sha256.clone(),
        range_from: from,
        range_to: to,
        exported_at,
    };
    let text = serde_json::to_vec_pretty(&manifest).context("writing the manifest")?;
    {
        let mut f = create_private(&partial(manifest_path))
            .with_context(|| format!("creating {}", partial(manifest_path).display()))?;
        f.write_all(&text)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    publish(&partial(manifest_path), manifest_path)?;
    let reread: Manifest = serde_json::from_slice(
        &fs::read(manifest_path).with_context(|| format!("reading {}", manifest_path.display()))?,
    )
    .context("parsing the manifest written")?;
    ensure!(reread == manifest, "the manifest read back differs");
    // The archive as a reader will find it, checked against its manifest.
    verify_manifest(manifest_path).with_context(|| format!("verifying {}", file.display()))?;

    Ok(Archive {
        partition: name.to_string(),
        file: file.to_owned(),
        manifest: manifest_path.to_owned(),
        rows,
        bytes,
        sha256,
    })
}

fn partial(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Renames a written, synced file to its final name and syncs the directory.
fn publish(from: &Path, to: &Path) -> anyhow::Result<()> {
    ensure!(!to.exists(), "{} exists already", to.display());
    fs::rename(from, to).with_context(|| format!("renaming to {}", to.display()))?;
    if let Some(dir) = to.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Streams the table's rows (one snapshot, through a cursor) into a gzip
/// file; returns rows, compressed bytes and their SHA-256.
/// A new file readable by its owner alone (an archive holds PHI: who read
/// which patient's chart), never one that exists already.
fn create_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

async fn write_rows(
    conn: &mut PgConnection,
    name: &PartitionName,
    path: &Path,
) -> anyhow::Result<(u64, u64, String)> {
    let out = create_private(path).with_context(|| format!("creating {}", path.display()))?;
    let mut gz = GzEncoder::new(
        Hashing {
            inner: BufWriter::with_capacity(1 << 20, out),
            hash: Sha256::new(),
            bytes: 0,
        },
        Compression::default(),
    );
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    // The name is a parsed PartitionName: the prefix and digits only.
    let expected: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM public.{name}"
    )))
    .fetch_one(&mut *tx)
    .await
    .with_context(|| format!("counting {name}"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DECLARE archive_rows NO SCROLL CURSOR FOR \
         SELECT to_jsonb(t)::text FROM public.{name} AS t ORDER BY occurred_at, id"
    )))
    .execute(&mut *tx)
    .await
    .with_context(|| format!("reading {name}"))?;
    let fetch = format!("FETCH FORWARD {FETCH_ROWS} FROM archive_rows");
    let mut rows: u64 = 0;
    loop {
        let batch: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(fetch.clone()))
            .fetch_all(&mut *tx)
            .await
            .with_context(|| format!("reading {name}"))?;
        if batch.is_empty() {
            break;
        }
        for line in &batch {
            gz.write_all(line.as_bytes())?;
            gz.write_all(b"\n")?;
        }
        rows += batch.len() as u64;
    }
    tx.commit().await?;
    ensure!(
        i64::try_from(rows)? == expected,
        "{name}: {rows} rows read, {expected} counted"
    );
    let mut hashing = gz.finish().context("finishing the gzip stream")?;
    hashing.flush()?;
    let Hashing { inner, hash, bytes } = hashing;
    let file = inner
        .into_inner()
        .map_err(|e| anyhow!("writing {}: {}", path.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok((rows, bytes, hex::encode(hash.finalize())))
}

/// Re-reads an archive: its SHA-256 must be `sha256`, and it must
/// decompress to exactly `rows` lines, each a JSON object with an `id` and
/// an `occurred_at`.
pub fn verify_archive(path: &Path, rows: u64, sha256: &str) -> anyhow::Result<()> {
    let mut hash = Sha256::new();
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    let actual = hex::encode(hash.finalize());
    ensure!(
        actual == sha256,
        "SHA-256 {actual} read back, {sha256} written"
    );
    let reader = BufReader::with_capacity(
        1 << 20,
        GzDecoder::new(File::open(path).with_context(|| format!("opening {}", path.display()))?),
    );
    let mut n: u64 = 0;
    for line in reader.lines() {
        let line = line.context("decompressing")?;
        n += 1;
        let event: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("line {n} is not JSON"))?;
        if event.get("id").is_none() || event.get("occurred_at").is_none() {
            bail!("line {n} is not an audit event");
        }
    }
    ensure!(n == rows, "{n} events read back, {rows} written");
    Ok(())
}

/// Verifies the archive a manifest describes (in the manifest's directory).
pub fn verify_manifest(manifest: &Path) -> anyhow::Result<Manifest> {
    let m: Manifest = serde_json::from_slice(
        &fs::read(manifest).with_context(|| format!("reading {}", manifest.display()))?,
    )
    .with_context(|| format!("parsing {}", manifest.display()))?;
    let file = manifest
        .parent()
        .map(|d| d.join(&m.file))
        .context("the manifest's directory")?;
    verify_archive(&file, m.rows, &m.sha256)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_are_the_prefix_a_year_and_a_month() {
        assert!(PartitionName::parse("audit_events_2026_11").is_ok());
        for bad in [
            "audit_events_default",
            "audit_events_2026_1",
            "audit_events_2026-11",
            "audit_events_2026_11; DROP TABLE x",
            "patients_2026_11",
            "audit_events_20a6_11",
        ] {
            assert!(PartitionName::parse(bad).is_err(), "{bad}");
        }
    }
}
