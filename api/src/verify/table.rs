//! The probes of one table in clinic A's context, and their verdicts:
//! reading B's rows, inserting a row for B, updating and deleting one of
//! B's, moving one of A's into B. Only a refusal by PostgreSQL (42501)
//! passes a write; a row the policy let through that a constraint stopped
//! later is a leak all the same.

use std::time::{Duration, Instant};

use serde_json::json;
use service::Tx;

use super::database::{Failure, Table, Who, attempt, count};
use super::report::{ProbeRecord, Report, TableFacts, Timing, Verdict};

/// The five probes of one table, in clinic A's transaction `tx`.
pub(super) async fn probe(
    tx: &Tx,
    t: &Table,
    facts: &TableFacts,
    a: Who,
    b: Who,
    report: &mut Report,
) {
    let column = facts.tenant_column.as_str();
    let (a_count, b_count) = (facts.a_rows, facts.b_rows);
    let table = t.qualified.as_str();
    let b_id = b.clinic.to_string();
    let a_id = a.clinic.to_string();
    let record = |kind: &str,
                  expected: &str,
                  actual: String,
                  verdict: Verdict,
                  detail: Option<String>,
                  ms: Duration| ProbeRecord {
        kind: kind.to_owned(),
        target: table.to_owned(),
        argument: Some(column.to_owned()),
        ids: if kind == "db.move" {
            vec![b_id.clone(), a_id.clone()]
        } else {
            vec![b_id.clone()]
        },
        sources: Vec::new(),
        variables: None,
        expected: json!(expected),
        actual: json!(actual),
        verdict,
        detail,
        warnings: Vec::new(),
        timing: Some(Timing {
            probe_ms: ms.as_secs_f64() * 1000.0,
            baseline_ms: None,
        }),
    };

    // Reading: none of B's rows.
    let started = Instant::now();
    let seen = count(tx, t, b.clinic).await;
    let select = match seen {
        Ok(0) => record(
            "db.select",
            "0 rows of clinic B",
            "0 rows".into(),
            Verdict::Pass,
            (b_count == 0).then(|| {
                "clinic B's own user sees no row here either: 0 seen by A proves little".to_owned()
            }),
            started.elapsed(),
        ),
        Ok(n) => record(
            "db.select",
            "0 rows of clinic B",
            format!("{n} row(s)"),
            Verdict::Leak,
            Some(format!("clinic A's context sees {n} of clinic B's rows")),
            started.elapsed(),
        ),
        Err(f) => record(
            "db.select",
            "0 rows of clinic B",
            format!("error {}: {}", f.state, f.message),
            Verdict::Inconclusive,
            Some(format!("the count failed ({}: {})", f.state, f.message)),
            started.elapsed(),
        ),
    };
    report.probes.push(select);

    // Inserting a row for B: refused by the policy's WITH CHECK (which
    // PostgreSQL checks before NOT NULL and other constraints).
    let (result, _, ms) = attempt(
        tx,
        format!("INSERT INTO {table} ({column}) VALUES ($1)"),
        vec![b.clinic.into()],
        None,
    )
    .await;
    let (verdict, actual, detail) = judge_write(result, "inserted a row for clinic B");
    report.probes.push(record(
        "db.insert",
        "refused (42501)",
        actual,
        verdict,
        detail,
        ms,
    ));

    // Updating one of B's rows (setting its tenant to itself).
    let (result, _, ms) = attempt(
        tx,
        format!(
            "UPDATE {table} SET {column} = {column} WHERE {column} = $1 \
             AND ctid = ANY (ARRAY(SELECT ctid FROM {table} WHERE {column} = $1 LIMIT 1))"
        ),
        vec![b.clinic.into()],
        None,
    )
    .await;
    let (verdict, actual, detail) = judge_touch(result, "updated");
    report.probes.push(record(
        "db.update",
        "0 rows, or refused",
        actual,
        verdict,
        detail,
        ms,
    ));

    // Moving one of A's own rows into B.
    let (result, after, ms) = attempt(
        tx,
        format!(
            "UPDATE {table} SET {column} = $1 WHERE {column} = $2 \
             AND ctid = ANY (ARRAY(SELECT ctid FROM {table} WHERE {column} = $2 LIMIT 1))"
        ),
        vec![b.clinic.into(), a.clinic.into()],
        Some((t, b.clinic)),
    )
    .await;
    let mut moved = match result {
        Ok(0) => record(
            "db.move",
            "refused (42501)",
            "0 rows".into(),
            Verdict::Inconclusive,
            Some(if a_count == 0 {
                "clinic A has no row here to move".to_owned()
            } else {
                "no row of clinic A's could be updated".to_owned()
            }),
            ms,
        ),
        Ok(n) => {
            if after.unwrap_or(0) > 0 {
                let mut r = record(
                    "db.move",
                    "refused (42501)",
                    format!("{n} row(s) took clinic B's id and stayed visible to clinic A"),
                    Verdict::Pass,
                    None,
                    ms,
                );
                r.warnings.push(
                    "the policy does not tie rows to a clinic (a per-person table?): a row of clinic A's \
                     user can be given clinic B's id, though it stays that user's"
                        .to_owned(),
                );
                r
            } else {
                record(
                    "db.move",
                    "refused (42501)",
                    format!("{n} row(s) moved"),
                    Verdict::Leak,
                    Some("a row of clinic A's moved into clinic B".to_owned()),
                    ms,
                )
            }
        }
        Err(f) => {
            let (verdict, actual, detail) = judge_write(Err(f), "moved a row into clinic B");
            record("db.move", "refused (42501)", actual, verdict, detail, ms)
        }
    };
    moved.ids = vec![b_id.clone(), a_id.clone()];
    report.probes.push(moved);

    // Deleting one of B's rows.
    let (result, _, ms) = attempt(
        tx,
        format!(
            "DELETE FROM {table} WHERE {column} = $1 \
             AND ctid = ANY (ARRAY(SELECT ctid FROM {table} WHERE {column} = $1 LIMIT 1))"
        ),
        vec![b.clinic.into()],
        None,
    )
    .await;
    let (verdict, actual, detail) = judge_touch(result, "deleted");
    report.probes.push(record(
        "db.delete",
        "0 rows, or refused",
        actual,
        verdict,
        detail,
        ms,
    ));
}

/// A write that must be refused: 42501 (the policy, or no privilege) is a
/// pass; success, or a constraint stopping it after the policy let it
/// through (SQLSTATE class 23), a leak; anything else proves nothing.
fn judge_write(result: Result<u64, Failure>, what: &str) -> (Verdict, String, Option<String>) {
    match result {
        Err(f) if f.state == "42501" => (Verdict::Pass, format!("refused: {}", f.message), None),
        Ok(n) => (
            Verdict::Leak,
            format!("{n} row(s)"),
            Some(format!("clinic A's context {what}")),
        ),
        Err(f) if f.state.starts_with("23") => (
            Verdict::Leak,
            format!("error {}: {}", f.state, f.message),
            Some(format!(
                "row-level security let it through (clinic A's context {what}); only a constraint stopped it: {}",
                f.message
            )),
        ),
        Err(f) => (
            Verdict::Inconclusive,
            format!("error {}: {}", f.state, f.message),
            Some(format!(
                "failed before the policy could be seen at work ({}: {})",
                f.state, f.message
            )),
        ),
    }
}

/// A write to B's rows: it must touch none (they are invisible) or be
/// refused.
fn judge_touch(result: Result<u64, Failure>, what: &str) -> (Verdict, String, Option<String>) {
    match result {
        Ok(0) => (Verdict::Pass, "0 rows".to_owned(), None),
        Ok(n) => (
            Verdict::Leak,
            format!("{n} row(s)"),
            Some(format!("clinic A's context {what} clinic B's row(s)")),
        ),
        Err(f) if f.state == "42501" => (Verdict::Pass, format!("refused: {}", f.message), None),
        Err(f) if f.state.starts_with("23") => (
            Verdict::Leak,
            format!("error {}: {}", f.state, f.message),
            Some(format!(
                "clinic A's context reached clinic B's row; a constraint stopped it: {}",
                f.message
            )),
        ),
        Err(f) => (
            Verdict::Inconclusive,
            format!("error {}: {}", f.state, f.message),
            Some(format!("{}: {}", f.state, f.message)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(state: &str) -> Failure {
        Failure {
            state: state.to_owned(),
            message: "m".to_owned(),
        }
    }

    #[test]
    fn a_write_for_b_passes_only_when_refused() {
        assert_eq!(judge_write(Err(failure("42501")), "x").0, Verdict::Pass);
        assert_eq!(judge_write(Ok(1), "x").0, Verdict::Leak);
        // NOT NULL comes after WITH CHECK: the policy let the row through.
        assert_eq!(judge_write(Err(failure("23502")), "x").0, Verdict::Leak);
        assert_eq!(
            judge_write(Err(failure("P0001")), "x").0,
            Verdict::Inconclusive
        );
    }

    #[test]
    fn a_write_to_b_rows_passes_when_it_touches_none() {
        assert_eq!(judge_touch(Ok(0), "x").0, Verdict::Pass);
        assert_eq!(judge_touch(Ok(2), "x").0, Verdict::Leak);
        assert_eq!(judge_touch(Err(failure("42501")), "x").0, Verdict::Pass);
    }
}
