//! The `caregate` command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use migration::{Migrator, MigratorTrait};
use sea_orm::ConnectionTrait;

use crate::config::Config;
use crate::server::{Server, shutdown_signal};
use crate::tokens::Tokens;
use crate::{db, startup, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "caregate",
    version,
    about = "GraphQL gateway for multi-tenant clinical data"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply, roll back, list or redo migrations (as the owner role).
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Report rows that break a rule the schema holds; exit 1 when any do.
    Check,
    /// Load the demo clinics (once; a second run changes nothing).
    SeedDemo,
    /// Mint a development token: opens a session for a user in a clinic.
    Token {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// Clinic slug or id (default: the user's first clinic).
        #[arg(long)]
        org: Option<String>,
    },
    /// Claims: write their ASC X12 837P.
    Claims {
        #[command(subcommand)]
        action: ClaimsAction,
    },
    /// Field-level encryption keys (as the owner role).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// The audit trail's monthly partitions and their retention (as the
    /// owner role).
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Prove against a running deployment that one clinic cannot reach
    /// another's data: clinic A's token against clinic B's ids, over the
    /// API (every id-taking query, node, and mutation from the live
    /// schema) and, with --database, in the database's own row-level
    /// security. Exit 0 when isolated, 1 on a leak, 2 when it could not run.
    VerifyIsolation(crate::verify::VerifyArgs),
    /// Stop the private PostgreSQL cluster under --data-dir (the zero-setup
    /// run leaves it running so the next start is quick).
    StopDb,
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Re-wrap every clinic's data keys under the newest master key of the
    /// key file (add the new key to the file first, keeping the old one,
    /// and restart the servers). Servers keep running throughout;
    /// resumable; each re-wrap is audited.
    Rotate,
    /// Move one clinic's encrypted values to a new data key, in batches
    /// (each its own transaction). Resumable: a rerun after an interruption
    /// continues with the same new key. Audited.
    Reencrypt {
        /// The clinic (slug or id).
        #[arg(long)]
        org: String,
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Create the partitions of this month and the next ones; with a
    /// retention, archive every month that ended more than that many months
    /// ago to a gzip-compressed JSON-lines file with a manifest, verify the
    /// archive, and only then drop the month. Idempotent; run it daily.
    /// Exits 1 when a month could not be archived (its rows stay).
    Maintain {
        /// Months to keep a partition ready for beyond the current one.
        #[arg(long, env = "AUDIT_MONTHS_AHEAD", default_value_t = 3)]
        months_ahead: u32,
        /// Keep this many months: a month is archived and dropped once it
        /// ended more than N months ago (at least 1). Unset: keep everything.
        #[arg(long, env = "AUDIT_RETENTION_MONTHS")]
        retain_months: Option<u32>,
        /// Where archives and manifests go (created when missing). Required
        /// with a retention.
        #[arg(long, env = "AUDIT_EXPORT_DIR")]
        export_dir: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClaimsAction {
    /// Write claims as one 837P interchange (005010X222A1) to a file. Runs
    /// as a clinic user (ADMIN or STAFF), under that user's row-level
    /// security and audit, like a request of theirs.
    Export {
        /// A claim's id; repeat for a batch (claims to one payer).
        #[arg(long = "claim", required = true)]
        claims: Vec<uuid::Uuid>,
        /// The email of the clinic user to act as (ADMIN or STAFF).
        #[arg(long = "as")]
        email: String,
        /// The clinic (slug or id); default: the user's first clinic.
        #[arg(long)]
        org: Option<String>,
        /// The file to write; default `claims-<interchange number>.x12`.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply pending migrations (all, or --steps N).
    Up {
        #[arg(long)]
        steps: Option<u32>,
    },
    /// Roll back the latest migration (or --steps N; --all for every one).
    Down {
        #[arg(long)]
        steps: Option<u32>,
        #[arg(long, conflicts_with = "steps")]
        all: bool,
    },
    /// List migrations and whether each is applied.
    Status,
    /// Drop everything caregate created and migrate from scratch.
    Fresh,
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    telemetry::init(cli.config.log_format);
    // Against a deployment of its own choosing: no local database is
    // opened or started for it, and of the server's settings it reads only
    // those describing that deployment's sessions and connections
    // (SESSION_IDLE_MINUTES, STATEMENT_TIMEOUT_MS, DB_TRANSACTION_POOLER),
    // so a server setting it does not use cannot stop it.
    if let Some(Command::VerifyIsolation(args)) = cli.command {
        return Ok(crate::verify::run(args, &cli.config).await);
    }
    cli.config.validate()?;
    if let Some(Command::Schema) = cli.command {
        print!("{}", crate::graphql::sdl());
        return Ok(0);
    }
    if let Some(Command::StopDb) = cli.command {
        let data_dir = cli.config.data_dir.clone();
        return tokio::task::spawn_blocking(move || crate::cluster::stop(&data_dir))
            .await
            .context("stopping the private PostgreSQL")?
            .map(|stopped| {
                if stopped {
                    println!(
                        "the private PostgreSQL under {} is stopped",
                        cli.config.data_dir.display()
                    );
                } else {
                    println!(
                        "no private PostgreSQL is running under {}",
                        cli.config.data_dir.display()
                    );
                }
                0
            });
    }
    let (owner_url, private) = startup::owner_url(&cli.config).await?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Schema | Command::StopDb | Command::VerifyIsolation(_) => Ok(0),
        Command::Token { email, org } => {
            let owner = db::connect_owner(&owner_url).await?;
            let tokens = Tokens::from_config(&cli.config)?;
            println!(
                "{}",
                mint(
                    &owner,
                    &tokens,
                    &email,
                    org.as_deref(),
                    cli.config.token_ttl_minutes
                )
                .await?
            );
            Ok(0)
        }
        Command::Claims {
            action:
                ClaimsAction::Export {
                    claims,
                    email,
                    org,
                    out,
                },
        } => {
            export_claims(
                &cli.config,
                &owner_url,
                &claims,
                &email,
                org.as_deref(),
                out,
            )
            .await
        }
        Command::Keys { action } => keys(&cli.config, &owner_url, action).await.map(|()| 0),
        Command::Audit { action } => audit(&owner_url, action).await,
        Command::Serve => serve(cli.config, &owner_url, private).await.map(|()| 0),
        Command::Migrate { action } => migrate(&owner_url, action).await.map(|()| 0),
        Command::Check => check(&owner_url).await,
        Command::SeedDemo => {
            let owner = db::connect_owner(&owner_url).await?;
            if service::demo::seed(&owner, &cli.config.keyring()?).await? {
                println!("demo data loaded");
            } else {
                println!("demo data already present");
            }
            Ok(0)
        }
    }
}

async fn keys(config: &Config, owner_url: &str, action: KeysAction) -> anyhow::Result<()> {
    let keyring = config.keyring()?;
    let owner = db::connect_owner(owner_url).await?;
    match action {
        KeysAction::Rotate => {
            let n = service::phi::admin::rotate(&owner, &keyring).await?;
            println!(
                "{} data key(s) re-wrapped and {} MFA secret(s) re-sealed under master key version {}",
                n.data_keys,
                n.user_secrets,
                keyring.master().current_version()
            );
        }
        KeysAction::Reencrypt { org, batch } => {
            anyhow::ensure!(batch > 0, "--batch must be at least 1");
            let clinic = service::demo::clinics(&owner)
                .await?
                .into_iter()
                .find(|(slug, id, _)| *slug == org || id.to_string() == org)
                .with_context(|| format!("no clinic {org}"))?;
            let (version, moved) =
                service::phi::admin::reencrypt(&owner, &keyring, clinic.1, batch).await?;
            println!(
                "{moved} value(s) of {} now under data key version {version}",
                clinic.0
            );
        }
    }
    owner.close().await.ok();
    Ok(())
}

/// `caregate audit maintain`: parses the options, runs the maintenance and
/// prints what it did; exit code 1 when a month could not be archived.
async fn audit(owner_url: &str, action: AuditAction) -> anyhow::Result<i32> {
    let AuditAction::Maintain {
        months_ahead,
        retain_months,
        export_dir,
    } = action;
    let retention = match (retain_months, export_dir) {
        (Some(months), Some(export_dir)) => {
            Some(service::audit_partitions::Retention { months, export_dir })
        }
        (Some(_), None) => {
            anyhow::bail!(
                "--retain-months (AUDIT_RETENTION_MONTHS) needs --export-dir (AUDIT_EXPORT_DIR): nothing is dropped without an archive"
            )
        }
        (None, _) => None,
    };
    let owner = db::connect_owner(owner_url).await?;
    let options = service::audit_partitions::MaintainOptions {
        months_ahead,
        retention,
    };
    let report = service::audit_partitions::maintain(&owner, &options)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    owner.close().await.ok();
    for name in &report.created {
        println!("created   {name}");
    }
    for name in &report.reattached {
        println!("attached  {name} (left detached by an earlier run)");
    }
    for a in &report.archived {
        println!(
            "archived  {} -> {} ({} events, {} bytes, sha256 {}), verified, dropped",
            a.partition,
            a.file.display(),
            a.rows,
            a.bytes,
            a.sha256
        );
    }
    for f in &report.failed {
        let left = match f.left {
            service::audit_partitions::Left::Attached => "still attached: its rows are in place",
            service::audit_partitions::Left::Detached => {
                "DETACHED but present (append-only, not readable by the server); the next run archives or re-attaches it"
            }
        };
        eprintln!("FAILED    {}: {}; {left}", f.partition, f.error);
    }
    if report.default_rows > 0 {
        println!(
            "{} event(s) in audit_events_default, outside any month's partition",
            report.default_rows
        );
    }
    if report.created.is_empty() && report.archived.is_empty() && report.failed.is_empty() {
        println!("audit partitions up to date");
    }
    Ok(if report.failed.is_empty() { 0 } else { 1 })
}

async fn serve(config: Config, owner_url: &str, private: bool) -> anyhow::Result<()> {
    if private || config.migrate_on_start {
        let owner = db::connect_owner(owner_url).await?;
        startup::migrate(&owner).await?;
        if private {
            service::demo::seed(&owner, &config.keyring()?).await?;
        }
        owner.close().await.ok();
    }
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("listening on {}", config.listen_addr))?;
    let (ttl, idle) = (config.token_ttl_minutes, config.session_idle_minutes);
    let graphiql = config.graphiql_enabled();
    let metrics = match config.metrics_listen_addr {
        Some(addr) => Some(addr.to_string()),
        None => {
            (config.environment == crate::config::Environment::Development).then_some(String::new())
        }
    };
    let server = Server::build(config, owner_url, listener).await?;
    let addr = server.local_addr()?;
    println!("caregate listening on http://{addr}");
    if graphiql {
        println!("  GraphiQL:  http://{addr}/graphql (in a browser)");
    }
    println!("  GraphQL:   POST (or GET, for queries) http://{addr}/graphql");
    println!("  health:    http://{addr}/healthz   readiness: http://{addr}/readyz");
    match metrics.as_deref() {
        Some("") => println!("  metrics:   http://{addr}/metrics"),
        Some(other) => println!("  metrics:   http://{other}/metrics"),
        None => {}
    }
    if private {
        print_demo_tokens(owner_url, &server.state.tokens, ttl, idle).await;
    }
    server.run(shutdown_signal()).await
}

/// Opens a session and signs a token for it.
async fn mint(
    owner: &sea_orm::DatabaseConnection,
    tokens: &Tokens,
    email: &str,
    org: Option<&str>,
    ttl: u32,
) -> anyhow::Result<String> {
    let s = service::demo::dev_session(owner, email, org, ttl).await?;
    if s.impersonate {
        eprintln!(
            "a super admin's token: send `x-caregate-impersonate: {}` with it on every request",
            s.organization
        );
    }
    tokens.issue(s.user, s.organization, s.session, s.expires_at)
}

/// `caregate claims export`: renders the claims in a transaction of the
/// given user's own session (a short one opened for the command), records
/// the READ of their patients, and writes the file only once that
/// transaction committed.
async fn export_claims(
    config: &Config,
    owner_url: &str,
    claims: &[uuid::Uuid],
    email: &str,
    org: Option<&str>,
    out: Option<std::path::PathBuf>,
) -> anyhow::Result<i32> {
    let owner = db::connect_owner(owner_url).await?;
    let session = service::demo::dev_session(&owner, email, org, 5).await?;
    let counter = service::tx::Counter::default();
    let runtime = db::connect_runtime(
        db::runtime_options(config, owner_url)?,
        &config.tx_options(),
        config.statement_timeout_ms,
        1,
        std::time::Duration::from_millis(config.db_acquire_timeout_ms),
        counter.clone(),
    )
    .await?;
    let who = service::context::SessionOf {
        user: session.user.into(),
        tenant: session.organization.into(),
        session: session.session.into(),
        impersonate: session.impersonate,
    };
    let meta = service::context::RequestMeta {
        request_id: format!("cli-{}", ulid::Ulid::generate()),
        ip: None,
        user_agent: Some("caregate claims export".into()),
        impersonate: session.impersonate.then_some(session.organization.into()),
    };
    let (tx, viewer) = crate::guard::open_as(&runtime, &config.tx_options(), &counter, who, &meta)
        .await
        .map_err(|e| anyhow::anyhow!("{email} cannot act in that clinic: {e:?}"))?;
    let actor = viewer
        .actor
        .with_context(|| format!("{email} cannot act in that clinic"))?;
    let rendered = service::claims::render(&tx, &actor, &config.keyring()?, claims).await;
    let text = match rendered {
        Ok(text) => text,
        Err(service::ServiceError::Invalid { field, message }) => {
            eprintln!("the claim cannot be rendered as a valid 837P: {field}: {message}");
            return Ok(1);
        }
        Err(service::ServiceError::NotFound) => {
            eprintln!("no such claim (or not visible to {email})");
            return Ok(1);
        }
        Err(err) => return Err(anyhow::anyhow!("{err:#}")),
    };
    let number = text
        .get(90..99)
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("000000000")
        .to_owned();
    let path = out.unwrap_or_else(|| format!("claims-{number}.x12").into());
    let patients: Vec<uuid::Uuid> = service::claims::by_ids(&tx, claims)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}"))?
        .into_iter()
        .map(|c| c.patient_id)
        .collect();
    // Claims are the whole clinic's: nobody reaches one by break-glass.
    service::audit::record_reads(&tx, &patients, &[])
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    // Written beside its final name before the commit, renamed after it:
    // an unwritable path refuses the export before anything is recorded,
    // and the file appears whole or not at all.
    let partial = path.with_extension("x12.partial");
    std::fs::write(&partial, &text).with_context(|| format!("writing {}", partial.display()))?;
    if let Err(e) = crate::guard::commit(tx).await {
        let _ = std::fs::remove_file(&partial);
        anyhow::bail!("committing: {e:?}");
    }
    std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {} ({} bytes)", path.display(), text.len());
    Ok(0)
}

async fn print_demo_tokens(owner_url: &str, tokens: &Tokens, ttl: u32, idle: u32) {
    let Ok(owner) = db::connect_owner(owner_url).await else {
        return;
    };
    let clinics = service::demo::clinics(&owner).await.unwrap_or_default();
    println!();
    println!("Demo clinics (for login's organizationId, switchOrganization, impersonation):");
    for (slug, id, name) in &clinics {
        println!("  {slug:10} {id}  {name}");
    }
    println!();
    println!(
        "Demo logins (password \"{}\"), and ready-to-paste headers for GraphiQL",
        service::demo::DEMO_PASSWORD
    );
    println!(
        "(a token stops working after {idle} idle minutes, or when its session switches clinic \
         or logs out; `caregate token --email ... --org ...` mints another):"
    );
    for (email, org, what) in service::demo::DEMO_LOGINS {
        match service::demo::dev_session(&owner, email, Some(org), ttl).await {
            Ok(s) => match tokens.issue(s.user, s.organization, s.session, s.expires_at) {
                Ok(token) => {
                    println!();
                    println!("  {email} — {what} [{} in {org}]", s.role);
                    if s.impersonate {
                        println!(
                            "  {{\"Authorization\": \"Bearer {token}\", \"x-caregate-impersonate\": \"{}\"}}",
                            s.organization
                        );
                    } else {
                        println!("  {{\"Authorization\": \"Bearer {token}\"}}");
                    }
                }
                Err(err) => tracing::warn!(error = format!("{err:#}"), "signing a demo token"),
            },
            Err(err) => tracing::warn!(error = format!("{err:#}"), "opening a demo session"),
        }
    }
    println!();
}

async fn migrate(owner_url: &str, action: MigrateAction) -> anyhow::Result<()> {
    let owner = db::connect_owner(owner_url).await?;
    match action {
        MigrateAction::Up { steps } => Migrator::up(&owner, steps).await?,
        MigrateAction::Down { steps, all } => {
            let steps = if all { None } else { Some(steps.unwrap_or(1)) };
            Migrator::down(&owner, steps).await?
        }
        MigrateAction::Status => {
            for m in Migrator::get_migration_with_status(&owner).await? {
                println!("{:8} {}", m.status().to_string().to_lowercase(), m.name());
            }
        }
        MigrateAction::Fresh => {
            // The helpers in schema `app` are not tables, which `fresh` alone would leave.
            owner
                .execute_unprepared("DROP SCHEMA IF EXISTS app CASCADE")
                .await
                .context("dropping schema app")?;
            Migrator::fresh(&owner).await?
        }
    }
    Ok(())
}

async fn check(owner_url: &str) -> anyhow::Result<i32> {
    let owner = db::connect_owner(owner_url).await?;
    let violations = service::integrity::check(&owner).await?;
    if violations.is_empty() {
        println!("no violations");
        return Ok(0);
    }
    for v in &violations {
        println!("VIOLATION [{}] {}", v.rule, v.detail);
    }
    println!("{} violation(s)", violations.len());
    Ok(1)
}
