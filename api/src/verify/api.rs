//! The API phase: read what clinic B's token sees, judge what both
//! tokens see alike, run every probe as clinic A (queries first, then
//! mutations), and read B's data again to prove it unchanged.

use std::collections::BTreeSet;

use serde_json::json;

use super::compare::{Volatile, compare};
use super::harvest::{Harvest, Plan};
use super::http::Endpoint;
use super::introspect::Schema;
use super::report::{ProbeRecord, Report, Verdict};
use super::{Side, VerifyArgs, VerifyError, fill, judge, probe};

/// The API probes.
pub(super) async fn run(
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
    let runner = judge::Runner {
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
fn overlap(report: &mut Report, b: &Harvest, a: &Harvest) -> BTreeSet<String> {
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
fn unchanged(report: &mut Report, before: &Harvest, after: &Harvest, volatile: &Volatile) {
    let changes = volatile.filter(compare(before, after), before, after);
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
