//! `caregate verify-isolation`: proves, against a running deployment, that
//! one clinic cannot reach another's data.
//!
//! With a token of clinic A and one of clinic B, it reads everything B's
//! token can see ([`harvest`]), then calls — as A, with B's ids — every
//! query field taking an id or a filter, `node`/`nodes`, and every
//! mutation taking an id, each generated from the live schema
//! ([`introspect`], [`probe`]). Every answer must be indistinguishable
//! from the answer to a random id that exists nowhere; afterwards B's
//! data, read again, must be unchanged. With `--database`, the same
//! promise is checked below the API, table by table, in A's row-level
//! security context on the runtime role ([`database`]).
//!
//! Safe against staging: mutations are sent only with B's ids in every
//! id they take (so they must fail), never one that takes no id (it would
//! act on A's own data); `--read-only` sends none. The database mode
//! writes nothing (savepoints, rolled back). Exit code 0 when clean, 1 on
//! any leak, 2 when it could not run.

pub mod database;
pub mod fill;
pub mod harvest;
pub mod http;
pub mod introspect;
pub mod probe;
pub mod report;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::Config;
use harvest::{Plan, Volatile};
use http::Endpoint;
use introspect::Schema;
use report::{Clinic, ProbeRecord, Report, Verdict};

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
        api(args, report, endpoint, a, b).await?;
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

/// The API probes.
async fn api(
    args: &VerifyArgs,
    report: &mut Report,
    endpoint: &Endpoint,
    a: &Side,
    b: &Side,
) -> Result<(), VerifyError> {
    println!("api: reading the schema...");
    let schema = Schema::read(endpoint, &b.token).await?;
    println!("api: reading what clinic B's token sees...");
    let (plan, first) = Plan::discover(&schema, endpoint, &b.token).await?;
    report
        .notes
        .extend(plan.notes.iter().map(|n| format!("reading B: {n}")));
    // Read again with nothing done in between: what changes by itself
    // (an audit trail, a session's activity) is not held against anyone.
    let before = plan.read(&schema, endpoint, &b.token).await?;
    let volatile = Volatile::learn(&first, &before);
    let seen_by_a = plan.read(&schema, endpoint, &a.token).await?;
    let shared = overlap(report, &before, &seen_by_a);
    let only_b = before.without_ids(&shared);
    println!(
        "api: {} ids of clinic B's in {} types ({} seen by A too, left out), from {} root queries",
        only_b.id_count(),
        only_b.ids_by_type.len(),
        before.id_count().saturating_sub(only_b.id_count()),
        plan.root_count()
    );
    if only_b.ids_by_type.is_empty() {
        return Err(VerifyError::Refused(
            "clinic B's token shows no id that clinic A does not also see: nothing to probe with"
                .to_owned(),
        ));
    }
    if seen_by_a.id_count() == 0 {
        report.notes.push(
            "clinic A's token sees nothing of its own (consent or a second factor pending?): \
             its answers to B's ids prove little"
                .to_owned(),
        );
    }
    let pool = fill::Pool {
        schema: &schema,
        b: &only_b,
        a: &seen_by_a,
    };
    let probes = probe::plan(&schema, &pool, args.read_only);
    report.skipped.extend(probes.skipped);
    let b_ids: BTreeSet<String> = only_b.all_ids().into_iter().map(str::to_owned).collect();
    let runner = probe::Runner {
        endpoint,
        token_a: &a.token,
        b_ids,
    };
    println!("api: {} query probes...", probes.queries.len());
    if !probes.mutations.is_empty() {
        println!("api: then {} mutation probes...", probes.mutations.len());
    }
    let mut previous = "the start".to_owned();
    for p in probes.queries.iter().chain(&probes.mutations) {
        let record = runner.run(p).await?;
        // A token that stopped working (its session moved by a leaking
        // switch of clinic, or gone idle) would make every later probe
        // look like a missing id's twin: stop here.
        let refused = record.expected["errors"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["code"] == "UNAUTHENTICATED"));
        report.probes.push(record);
        if refused {
            return Err(VerifyError::Unauthenticated(format!(
                "clinic A's token stopped working after {previous}: the probes from there on would prove nothing"
            )));
        }
        previous = format!("{} {}", p.kind.as_str(), p.field);
    }
    println!("api: reading clinic B's data again...");
    let after = plan.read(&schema, endpoint, &b.token).await?;
    unchanged(report, &before, &after, &volatile);
    Ok(())
}

/// Objects both tokens' own readings show say something by themselves,
/// though the API alone cannot always say what (its objects do not name
/// their clinic):
/// - every one of B's objects of a type in A's reading, beside A's own:
///   a list that leaks one way (a leak; its ids are still probed, so the
///   fields that leak are named);
/// - the same set on both sides: global data (documents in force), or a
///   leak both ways (inconclusive; the database mode tells them apart);
/// - a part of B's: something both clinics share by design (a person at
///   both), or a leak (inconclusive).
///
/// Returns the ids to leave out of the probes (the last two cases: a
/// global document answers A as it answers B, which is no leak).
fn overlap(report: &mut Report, b: &harvest::Harvest, a: &harvest::Harvest) -> BTreeSet<String> {
    let mut excluded = BTreeSet::new();
    for (ty, b_ids) in &b.ids_by_type {
        let a_ids: BTreeSet<&String> = a.ids_by_type.get(ty).into_iter().flatten().collect();
        let b_set: BTreeSet<&String> = b_ids.iter().collect();
        let shared: Vec<String> = b_set.intersection(&a_ids).map(|s| (*s).clone()).collect();
        if shared.is_empty() {
            continue;
        }
        let n = shared.len();
        let (verdict, detail) = if a_ids == b_set {
            excluded.extend(shared.iter().cloned());
            (
                Verdict::Inconclusive,
                format!(
                    "both clinics' readings show the same {n} {ty} object(s): global data (such as \
                     documents in force), or a leak both ways; not probed (--database tells them apart)"
                ),
            )
        } else if n == b_set.len() {
            (
                Verdict::Leak,
                format!(
                    "clinic A's own reading shows every one of clinic B's {n} {ty} object(s), beside its own"
                ),
            )
        } else {
            excluded.extend(shared.iter().cloned());
            (
                Verdict::Inconclusive,
                format!(
                    "clinic A's own reading also shows {n} of clinic B's {} {ty} object(s): shared by \
                     design (e.g. a person known to both clinics) or a leak; not probed",
                    b_set.len()
                ),
            )
        };
        report.probes.push(ProbeRecord {
            kind: "overlap".to_owned(),
            target: ty.clone(),
            argument: None,
            ids: shared,
            sources: Vec::new(),
            variables: None,
            expected: json!("none of clinic B's objects in clinic A's own reading"),
            actual: json!(detail),
            verdict,
            detail: Some(detail),
            warnings: Vec::new(),
            timing: None,
        });
    }
    excluded
}

/// One probe per type of B's objects: every object read before the probes
/// is there after them, unchanged, and no new one appeared.
fn unchanged(
    report: &mut Report,
    before: &harvest::Harvest,
    after: &harvest::Harvest,
    volatile: &Volatile,
) {
    let changes = volatile.filter(harvest::compare(before, after), before, after);
    let type_of = |key: &str| {
        before
            .objects
            .get(key)
            .or_else(|| after.objects.get(key))
            .map(|r| r.type_name.clone())
            .unwrap_or_default()
    };
    let mut types: BTreeSet<String> = before
        .objects
        .values()
        .map(|r| r.type_name.clone())
        .collect();
    types.extend(after.objects.values().map(|r| r.type_name.clone()));
    for ty in types {
        if volatile.types.contains(&ty) {
            report.notes.push(format!(
                "{ty}: changes by itself between two readings (e.g. an audit trail); its new or missing objects are not compared"
            ));
        }
        let count = before
            .objects
            .values()
            .filter(|r| r.type_name == ty)
            .count();
        let mut findings = Vec::new();
        let mut ids = Vec::new();
        for key in changes.gone.iter().filter(|k| type_of(k) == ty) {
            findings.push(format!("{key} is gone"));
            ids.push(key.clone());
        }
        for key in changes.new.iter().filter(|k| type_of(k) == ty) {
            findings.push(format!("{key} appeared"));
            ids.push(key.clone());
        }
        for (key, field, was, now) in changes.changed.iter().filter(|(k, ..)| type_of(k) == ty) {
            findings.push(format!("{key}.{field} changed from {was} to {now}"));
            ids.push(key.clone());
        }
        ids.dedup();
        report.probes.push(ProbeRecord {
            kind: "unchanged".to_owned(),
            target: ty,
            argument: None,
            ids,
            sources: Vec::new(),
            variables: None,
            expected: json!(format!("{count} object(s) as before the probes")),
            actual: json!(if findings.is_empty() {
                "unchanged".to_owned()
            } else {
                findings.join("; ")
            }),
            verdict: if findings.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Leak
            },
            detail: (!findings.is_empty()).then(|| {
                format!(
                    "clinic B's data changed while clinic A probed it (unless one of B's own \
                     users changed it meanwhile): {}",
                    findings.join("; ")
                )
            }),
            warnings: Vec::new(),
            timing: None,
        });
    }
}
