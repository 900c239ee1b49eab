//! `caregate verify-isolation`: proves, against a running deployment, that
//! one clinic cannot reach another's data.
//!
//! With a token of clinic A and one of clinic B, it reads everything B's
//! token can see ([`harvest`], with selections from [`select`]), then
//! calls — as A, with B's ids — every query field taking an id or a
//! filter, `node`/`nodes`, and every mutation taking an id, each generated
//! from the live schema ([`introspect`], [`probe`], values from [`fill`]).
//! Every answer must be indistinguishable from the answer to a random id
//! that exists nowhere ([`judge`]); afterwards B's data, read again, must
//! be unchanged ([`compare`]). With `--database`, the same promise is
//! checked below the API, table by table, in A's row-level security
//! context on the runtime role ([`database`], [`table`]). [`report`]
//! prints the summary and writes the JSON.
//!
//! Safe against staging: mutations are sent only with B's ids in every id
//! they take (so they must fail), never one that takes no id (it would act
//! on A's own data); `--read-only` sends none. The database mode writes
//! nothing (savepoints, rolled back). Exit code 0 when clean, 1 on any
//! leak, 2 when it could not run.

mod api;
pub mod compare;
pub mod database;
pub mod fill;
pub mod harvest;
pub mod http;
pub mod introspect;
pub mod judge;
pub mod probe;
pub mod report;
pub mod select;
pub mod table;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::Config;
use http::Endpoint;
use report::{Clinic, Report};

/// Why a run could not be made (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach {0}")]
    Unreachable(String),
    #[error("not signed in: {0}")]
    Unauthenticated(String),
    #[error("cannot read the schema: {0}")]
    Introspection(String),
    #[error("refusing to run: {0}")]
    Refused(String),
    #[error("database: {0}")]
    Database(String),
    #[error("writing the report: {0}")]
    Report(String),
}

/// `caregate verify-isolation`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The deployment's GraphQL endpoint, e.g. https://staging.example.org/graphql.
    #[arg(long, env = "VERIFY_URL")]
    pub url: Option<String>,
    /// Clinic A's token: every probe is sent with it. Prefer the variable
    /// to the flag (a command line is visible to others on the machine).
    #[arg(long, env = "VERIFY_TOKEN_A", hide_env_values = true)]
    pub token_a: Option<String>,
    /// Clinic B's token: B's ids are read, and B's data compared, with it.
    #[arg(long, env = "VERIFY_TOKEN_B", hide_env_values = true)]
    pub token_b: Option<String>,
    /// Instead of a token: sign in as this user of clinic A (the password
    /// is read from the variable --password-env-a names).
    #[arg(long)]
    pub email_a: Option<String>,
    /// Instead of a token: sign in as this user of clinic B.
    #[arg(long)]
    pub email_b: Option<String>,
    /// The clinic to sign in to as A (its id), when the user has several.
    #[arg(long)]
    pub org_a: Option<Uuid>,
    /// The clinic to sign in to as B (its id), when the user has several.
    #[arg(long)]
    pub org_b: Option<Uuid>,
    /// The environment variable holding A's password (never a flag).
    #[arg(long, default_value = "VERIFY_PASSWORD_A")]
    pub password_env_a: String,
    /// The environment variable holding B's password.
    #[arg(long, default_value = "VERIFY_PASSWORD_B")]
    pub password_env_b: String,
    /// Check the database too (or alone), connected as the runtime role
    /// (a superuser or BYPASSRLS role is refused). Nothing is written.
    #[arg(long, env = "VERIFY_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
    /// Send no mutation (only queries, and the database's rolled-back
    /// checks).
    #[arg(long)]
    pub read_only: bool,
    /// Write every probe, with its ids, expectation, answer, verdict and
    /// timing, to this JSON file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Give up on a request after this many milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
}

/// The claims of a caregate token this run needs (the database checks
/// the session itself, so the signature is not verified here).
#[derive(Debug, Clone, Copy, Deserialize)]
struct Claims {
    sub: Uuid,
    org: Uuid,
    sid: Uuid,
}

fn claims_of(token: &str) -> Option<Claims> {
    jsonwebtoken::dangerous::insecure_decode_claims::<Claims>(token).ok()
}

/// One side of the run: its token, and whether this run signed it in.
struct Side {
    token: String,
    signed_in: bool,
    clinic: Clinic,
    claims: Option<Claims>,
}

/// Runs the command; returns the exit code (0 clean, 1 leak, 2 could not
/// run). Writes the report, when asked, whatever happened.
pub async fn run(args: VerifyArgs, config: &Config) -> i32 {
    let started = Instant::now();
    let mut report = Report::new(args.read_only);
    let result = verify(&args, config, &mut report).await;
    report.duration_ms = started.elapsed().as_millis() as u64;
    if let Err(e) = &result {
        report.error = Some(e.to_string());
    }
    report.summarise();
    report.print_summary();
    // A leak is reported as one whatever else went wrong.
    let leaks = report.leaks();
    let code = match &result {
        _ if leaks > 0 => {
            println!("RESULT: {leaks} LEAK(S): clinic A reached clinic B's data");
            1
        }
        Err(e) => {
            eprintln!("verify-isolation could not run: {e}");
            println!("RESULT: NOT VERIFIED");
            2
        }
        Ok(()) => {
            println!("RESULT: ISOLATED: nothing of clinic B's reached clinic A");
            0
        }
    };
    if let Some(path) = &args.report
        && let Err(e) = report.write(path)
    {
        eprintln!("verify-isolation: {e}");
        // The report asked for is missing: not a clean run.
        return if code == 0 { 2 } else { code };
    }
    code
}

async fn verify(
    args: &VerifyArgs,
    config: &Config,
    report: &mut Report,
) -> Result<(), VerifyError> {
    if args.url.is_none() && args.database.is_none() {
        return Err(VerifyError::Usage(
            "give --url (the API), --database (the runtime role's URL), or both".to_owned(),
        ));
    }
    let endpoint = match &args.url {
        Some(url) => Some(Endpoint::new(url, Duration::from_millis(args.timeout_ms))?),
        None => None,
    };
    report.url = endpoint.as_ref().map(|e| e.url().to_owned());
    report.database = args.database.as_deref().map(database::display_url);

    let a = side(
        endpoint.as_ref(),
        "A",
        args.token_a.as_deref(),
        args.email_a.as_deref(),
        args.org_a,
        &args.password_env_a,
    )
    .await?;
    let b = match side(
        endpoint.as_ref(),
        "B",
        args.token_b.as_deref(),
        args.email_b.as_deref(),
        args.org_b,
        &args.password_env_b,
    )
    .await
    {
        Ok(b) => b,
        Err(e) => {
            sign_out(endpoint.as_ref(), &[&a]).await;
            return Err(e);
        }
    };
    let result = verify_as(args, config, report, endpoint.as_ref(), &a, &b).await;
    sign_out(endpoint.as_ref(), &[&a, &b]).await;
    result
}

async fn verify_as(
    args: &VerifyArgs,
    config: &Config,
    report: &mut Report,
    endpoint: Option<&Endpoint>,
    a: &Side,
    b: &Side,
) -> Result<(), VerifyError> {
    report.clinic_a = a.clinic.clone();
    report.clinic_b = b.clinic.clone();
    if a.clinic.id.is_some() && a.clinic.id == b.clinic.id {
        return Err(VerifyError::Refused(
            "both tokens act in the same clinic: give one token of each of two clinics".to_owned(),
        ));
    }
    if let (Some(ca), Some(cb)) = (a.claims, b.claims)
        && ca.sub == cb.sub
    {
        return Err(VerifyError::Refused(
            "both tokens are the same user's: what is theirs in both clinics would look like a leak; \
             use two different users"
                .to_owned(),
        ));
    }

    let pool = match &args.database {
        Some(url) => Some(database::connect(url, config).await?),
        None => None,
    };
    banner(
        args,
        endpoint,
        a,
        b,
        pool.as_ref().map(|(_, role)| role.as_str()),
    );

    if let Some(endpoint) = endpoint {
        api::run(args, report, endpoint, a, b).await?;
    }
    if let Some((pool, _)) = &pool {
        let (Some(ca), Some(cb)) = (a.claims, b.claims) else {
            return Err(VerifyError::Usage(
                "--database needs caregate tokens (JWTs naming user, clinic and session)"
                    .to_owned(),
            ));
        };
        let who = |c: Claims| database::Who {
            user: c.sub,
            clinic: c.org,
            session: c.sid,
        };
        println!("database: probing every table as clinic A...");
        let result = database::run(pool, config, who(ca), who(cb), report).await;
        pool.close().await;
        result?;
    }
    Ok(())
}

/// The token of one side: given, or obtained by signing in.
async fn side(
    endpoint: Option<&Endpoint>,
    label: &str,
    token: Option<&str>,
    email: Option<&str>,
    org: Option<Uuid>,
    password_env: &str,
) -> Result<Side, VerifyError> {
    let (token, signed_in) = match (token, email) {
        (Some(_), Some(_)) => {
            return Err(VerifyError::Usage(format!(
                "clinic {label}: give a token or an email, not both"
            )));
        }
        (Some(t), None) => (t.trim().to_owned(), false),
        (None, Some(email)) => {
            let endpoint = endpoint.ok_or_else(|| {
                VerifyError::Usage(format!("clinic {label}: signing in needs --url"))
            })?;
            let password = std::env::var(password_env).map_err(|_| {
                VerifyError::Usage(format!(
                    "clinic {label}: set the password in the environment variable {password_env}"
                ))
            })?;
            (sign_in(endpoint, label, email, &password, org).await?, true)
        }
        (None, None) => {
            return Err(VerifyError::Usage(format!(
                "clinic {label}: give --token-{0} (or VERIFY_TOKEN_{1}) or --email-{0}",
                label.to_ascii_lowercase(),
                label
            )));
        }
    };
    let claims = claims_of(&token);
    let mut clinic = Clinic {
        id: claims.map(|c| c.org.to_string()),
        user: email.map(str::to_owned),
        ..Clinic::default()
    };
    if let Some(endpoint) = endpoint {
        let answer = endpoint
            .post(
                Some(&token),
                "query VerifyIsolationWho { organization { id name } }",
                json!({}),
            )
            .await?;
        let org = answer.data().get("organization");
        let Some(id) = org.and_then(|o| o.get("id")).and_then(Value::as_str) else {
            return Err(VerifyError::Unauthenticated(format!(
                "clinic {label}'s token was refused: HTTP {} {}",
                answer.status,
                answer.error_summary()
            )));
        };
        clinic.id = Some(id.to_owned());
        clinic.name = org
            .and_then(|o| o.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let me = endpoint
            .post(
                Some(&token),
                "query VerifyIsolationRole { me { role } }",
                json!({}),
            )
            .await?;
        clinic.role = me
            .data()
            .pointer("/me/role")
            .and_then(Value::as_str)
            .map(str::to_owned);
    } else if claims.is_none() {
        return Err(VerifyError::Unauthenticated(format!(
            "clinic {label}'s token is not a caregate token (no user, clinic and session in it)"
        )));
    }
    Ok(Side {
        token,
        signed_in,
        clinic,
        claims,
    })
}

async fn sign_in(
    endpoint: &Endpoint,
    label: &str,
    email: &str,
    password: &str,
    org: Option<Uuid>,
) -> Result<String, VerifyError> {
    let answer = endpoint
        .post(
            None,
            "mutation VerifyIsolationLogin($email: String!, $password: String!, $org: UUID) { \
             login(email: $email, password: $password, organizationId: $org) { token } }",
            json!({ "email": email, "password": password, "org": org }),
        )
        .await?;
    answer
        .data()
        .pointer("/login/token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            VerifyError::Unauthenticated(format!(
                "signing in as {email} for clinic {label}: {} (a user with a second factor must give a token)",
                answer.error_summary()
            ))
        })
}

/// Ends the sessions this run opened (best effort: they expire anyway).
async fn sign_out(endpoint: Option<&Endpoint>, sides: &[&Side]) {
    let Some(endpoint) = endpoint else {
        return;
    };
    for side in sides.iter().filter(|s| s.signed_in) {
        let _ = endpoint
            .post(
                Some(&side.token),
                "mutation VerifyIsolationLogout { logout }",
                json!({}),
            )
            .await;
    }
}

/// What is about to happen, before anything does.
fn banner(args: &VerifyArgs, endpoint: Option<&Endpoint>, a: &Side, b: &Side, role: Option<&str>) {
    let clinic = |c: &Clinic| {
        format!(
            "{} ({}){}{}",
            c.name.as_deref().unwrap_or("?"),
            c.id.as_deref().unwrap_or("?"),
            c.user
                .as_deref()
                .map(|u| format!(", as {u}"))
                .unwrap_or_default(),
            c.role
                .as_deref()
                .map(|r| format!(", role {r}"))
                .unwrap_or_default(),
        )
    };
    println!("caregate verify-isolation");
    match endpoint {
        Some(e) => println!("  target:    {}", e.url()),
        None => println!("  target:    (no API: database only)"),
    }
    if let Some(url) = &args.database {
        println!(
            "  database:  {} as {}",
            database::display_url(url),
            role.unwrap_or("?")
        );
    }
    println!(
        "  clinic A:  {}  <- every probe is sent as A",
        clinic(&a.clinic)
    );
    println!(
        "  clinic B:  {}  <- its ids are the bait",
        clinic(&b.clinic)
    );
    if endpoint.is_some() {
        println!(
            "  queries:   every query field taking an id or a filter, node and nodes, with B's ids, \
             each compared with a random id's answer"
        );
        if args.read_only {
            println!("  mutations: none (--read-only)");
        } else {
            println!(
                "  mutations: WILL BE SENT as clinic A: every mutation taking an id, with B's ids \
                 in all of them. Each must fail; B's data is read before and after and must be unchanged"
            );
        }
    }
    if args.database.is_some() {
        println!(
            "  database:  every table with organization_id, in A's context: reads, inserts, updates, \
             deletes aimed at B, each in a savepoint rolled back at once (nothing is written)"
        );
    }
    println!();
}
