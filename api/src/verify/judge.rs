//! Sending the probes and telling a leak: clinic A's token with clinic B's
//! ids, each call compared with the same call carrying a random id that
//! exists nowhere.
//!
//! A foreign id must look exactly like a missing one: the same HTTP
//! status, the same errors (codes, reasons, fields, paths, messages with
//! the id itself masked), the same data. Any difference is a leak, and so
//! is any of B's ids anywhere in an answer. A probe much slower than its
//! twin is a warning: timing can tell existence apart too.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::VerifyError;
use super::fill::placed_ids;
use super::http::{Answer, Endpoint};
use super::probe::{Probe, ProbeKind};
use super::report::{ProbeRecord, Timing, Verdict};

/// A probe this many times slower than its baseline (and by at least
/// [`SLOW_BY`]) is timed again, and reported if it still is.
const SLOW_FACTOR: u32 = 3;
const SLOW_BY: Duration = Duration::from_millis(25);
/// Characters of an answer kept in the report.
const SHOWN: usize = 600;

/// The probes' runner: as clinic A, each probe after its baseline.
pub struct Runner<'a> {
    pub endpoint: &'a Endpoint,
    pub token_a: &'a str,
    /// Every id clinic B showed that clinic A does not see.
    pub b_ids: BTreeSet<String>,
}

impl Runner<'_> {
    pub async fn run(&self, probe: &Probe) -> Result<ProbeRecord, VerifyError> {
        let randoms: Vec<String> = probe
            .placed
            .iter()
            .map(|_| uuid::Uuid::from(ulid::Ulid::generate()).to_string())
            .collect();
        let ids = placed_ids(&probe.placed);
        let mut baseline_vars = probe.variables.clone();
        let mut masks_b = Vec::new();
        let mut masks_r = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let random = randoms.get(i).cloned().unwrap_or_default();
            replace_strings(&mut baseline_vars, id, &random);
            masks_b.push((id.clone(), format!("<id{}>", i + 1)));
            masks_r.push((random, format!("<id{}>", i + 1)));
        }
        if let Some(value) = &probe.value {
            let random = same_shape(value);
            replace_strings(&mut baseline_vars, value, &random);
            masks_b.push((value.clone(), "<value>".to_owned()));
            masks_r.push((random, "<value>".to_owned()));
        }
        let mut baseline = self.call(probe, baseline_vars.clone()).await?;
        let mut actual = self.call(probe, probe.variables.clone()).await?;
        let mut slow = is_slow(&actual, &baseline);
        if slow {
            // Timed again: a single pair of timings is noisy.
            let again_b = self.call(probe, baseline_vars).await?;
            let again_a = self.call(probe, probe.variables.clone()).await?;
            baseline.elapsed = baseline.elapsed.min(again_b.elapsed);
            actual.elapsed = actual.elapsed.min(again_a.elapsed);
            slow = is_slow(&actual, &baseline);
        }
        let expected = outcome(&baseline, &masks_r);
        let got = outcome(&actual, &masks_b);
        let mut findings = Vec::new();
        if expected["status"] != got["status"] {
            findings.push(format!(
                "HTTP status {} where a missing id answers {}",
                got["status"], expected["status"]
            ));
        }
        if expected["errors"] != got["errors"] {
            findings.push("errors differ from a missing id's".to_owned());
        }
        if probe.value.is_none() && expected["data"] != got["data"] {
            findings.push("data differs from a missing id's".to_owned());
        }
        let sent: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        let mut seen = Vec::new();
        foreign_ids(actual.data(), &self.b_ids, &sent, &mut seen);
        if !seen.is_empty() {
            findings.push(format!(
                "the answer holds clinic B's id(s) {}",
                seen.into_iter().take(5).collect::<Vec<_>>().join(", ")
            ));
        }
        let mut warnings = Vec::new();
        if slow {
            warnings.push(format!(
                "slow: {} ms against {} ms for a missing id (a timing difference can tell existence apart)",
                actual.elapsed.as_millis(),
                baseline.elapsed.as_millis()
            ));
        }
        if findings.is_empty()
            && let Some(weak) = refused_elsewhere(&baseline, probe)
        {
            warnings.push(weak);
        }
        let sources: Vec<String> = probe
            .placed
            .iter()
            .map(|p| format!("{}: {} ({})", p.path, p.id, p.source))
            .collect();
        Ok(ProbeRecord {
            kind: probe.kind.as_str().to_owned(),
            target: probe.field.clone(),
            argument: Some(probe.argument.clone()).filter(|a| !a.is_empty()),
            ids,
            sources,
            variables: Some(probe.variables.clone()),
            expected: shorten(expected),
            actual: shorten(got),
            verdict: if findings.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Leak
            },
            detail: (!findings.is_empty()).then(|| findings.join("; ")),
            warnings,
            timing: Some(Timing {
                probe_ms: actual.elapsed.as_secs_f64() * 1000.0,
                baseline_ms: Some(baseline.elapsed.as_secs_f64() * 1000.0),
            }),
        })
    }

    async fn call(&self, probe: &Probe, variables: Value) -> Result<Answer, VerifyError> {
        self.endpoint
            .post(Some(self.token_a), &probe.document, variables)
            .await
    }
}

/// A random text of the same shape as `value` (each digit another digit,
/// each letter another letter of the same case, the rest kept): it passes
/// the same format checks (an MRN stays an MRN) and exists nowhere.
fn same_shape(value: &str) -> String {
    // Five random bits per character, from the random part of ULIDs.
    let (mut bits, mut left) = (0u128, 0u32);
    value
        .chars()
        .map(|c| {
            if left < 5 {
                (bits, left) = (ulid::Ulid::generate().random(), 80);
            }
            let r = (bits & 31) as u8 % 26;
            (bits, left) = (bits >> 5, left - 5);
            if c.is_ascii_digit() {
                char::from(b'0' + r % 10)
            } else if c.is_ascii_lowercase() {
                char::from(b'a' + r)
            } else if c.is_ascii_uppercase() {
                char::from(b'A' + r)
            } else {
                c
            }
        })
        .collect()
}

fn is_slow(actual: &Answer, baseline: &Answer) -> bool {
    actual.elapsed >= baseline.elapsed * SLOW_FACTOR && actual.elapsed >= baseline.elapsed + SLOW_BY
}

/// A mutation refused for another argument before any id was looked at
/// (the baseline says BAD_USER_INPUT on a field that holds no id): it
/// proves less than one refused as NOT_FOUND.
fn refused_elsewhere(baseline: &Answer, probe: &Probe) -> Option<String> {
    if probe.kind != ProbeKind::Mutation {
        return None;
    }
    let error = baseline.errors().first()?;
    if error.pointer("/extensions/code").and_then(Value::as_str) != Some("BAD_USER_INPUT") {
        return None;
    }
    let field = error.pointer("/extensions/field").and_then(Value::as_str)?;
    let holds_id = probe.placed.iter().any(|p| {
        p.path == field || p.path.ends_with(&format!(".{field}")) || field.ends_with(&p.path)
    });
    (!holds_id).then(|| {
        format!("inconclusive: refused for `{field}` (not an id) before any id was looked at")
    })
}

/// An answer as compared: status, errors (without their request ids) and
/// data, with the probe's ids masked wherever they appear.
fn outcome(answer: &Answer, masks: &[(String, String)]) -> Value {
    let errors: Vec<Value> = answer
        .errors()
        .iter()
        .map(|e| {
            let mut shape = json!({
                "code": e.pointer("/extensions/code"),
                "reason": e.pointer("/extensions/reason"),
                "field": e.pointer("/extensions/field"),
                "message": e.get("message"),
                "path": e.get("path"),
            });
            mask(&mut shape, masks);
            shape
        })
        .collect();
    let mut data = answer.data().clone();
    mask(&mut data, masks);
    let mut sorted = errors;
    sorted.sort_by_key(|e| e.to_string());
    json!({ "status": answer.status, "errors": sorted, "data": data })
}

/// Replaces each masked text (an id, in its usual and its bare form) in
/// every string of `value`.
fn mask(value: &mut Value, masks: &[(String, String)]) {
    match value {
        Value::String(s) => {
            for (text, token) in masks {
                if text.is_empty() {
                    continue;
                }
                *s = s.replace(text.as_str(), token);
                let bare = text.replace('-', "");
                if bare.len() == 32 {
                    *s = s.replace(&bare, token);
                    *s = s.replace(&text.to_ascii_uppercase(), token);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask(v, masks)),
        Value::Object(map) => map.values_mut().for_each(|v| mask(v, masks)),
        _ => {}
    }
}

fn replace_strings(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(s) if s == from => *s = to.to_owned(),
        Value::Array(items) => items.iter_mut().for_each(|v| replace_strings(v, from, to)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_strings(v, from, to)),
        _ => {}
    }
}

/// B's ids in an answer, other than those the probe itself sent.
fn foreign_ids(
    value: &Value,
    b_ids: &BTreeSet<String>,
    sent: &BTreeSet<&str>,
    out: &mut Vec<String>,
) {
    match value {
        Value::String(s) if b_ids.contains(s) && !sent.contains(s.as_str()) && !out.contains(s) => {
            out.push(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|v| foreign_ids(v, b_ids, sent, out)),
        Value::Object(map) => map.values().for_each(|v| foreign_ids(v, b_ids, sent, out)),
        _ => {}
    }
}

/// An answer for the report: whole when short, else its start.
fn shorten(value: Value) -> Value {
    let text = value.to_string();
    if text.len() <= SHOWN {
        return value;
    }
    let cut: String = text.chars().take(SHOWN).collect();
    Value::String(format!("{cut}…"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_masked_in_messages_in_every_form() {
        let id = "01a22274-b8dc-45d3-1452-5d194a13b283";
        let mut v = json!({ "message": format!("no patient {id} / {} / {}", id.replace('-', ""), id.to_ascii_uppercase()) });
        mask(&mut v, &[(id.to_owned(), "<id1>".to_owned())]);
        assert_eq!(v["message"], "no patient <id1> / <id1> / <id1>");
    }

    #[test]
    fn ids_of_b_are_found_anywhere_in_an_answer_except_those_sent() {
        let b: BTreeSet<String> = ["b1".to_owned(), "b2".to_owned()].into();
        let sent: BTreeSet<&str> = ["b1"].into();
        let mut out = Vec::new();
        foreign_ids(
            &json!({ "x": [{ "id": "b1" }, { "owner": { "id": "b2" } }, "a1"] }),
            &b,
            &sent,
            &mut out,
        );
        assert_eq!(out, vec!["b2".to_owned()]);
    }

    #[test]
    fn outcomes_compare_without_request_ids_and_with_ids_masked() {
        let answer = |id: &str, request: &str| Answer {
            status: 200,
            body: json!({ "data": null, "errors": [{ "message": format!("no {id}"), "path": ["patient"],
                "extensions": { "code": "NOT_FOUND", "requestId": request } }] }),
            elapsed: Duration::from_millis(1),
        };
        let a = outcome(&answer("b-id", "r1"), &[("b-id".into(), "<id1>".into())]);
        let b = outcome(
            &answer("random", "r2"),
            &[("random".into(), "<id1>".into())],
        );
        assert_eq!(a, b);
        let c = outcome(&answer("b-id", "r3"), &[]);
        assert_ne!(a, c);
    }

    #[test]
    fn a_value_keeps_its_shape_when_made_up() {
        let made = same_shape("LS-0002 ab");
        assert_eq!(made.len(), 10);
        assert_eq!(&made[2..3], "-");
        assert!(made[..2].chars().all(|c| c.is_ascii_uppercase()));
        assert!(made[3..7].chars().all(|c| c.is_ascii_digit()));
        assert!(made[8..].chars().all(|c| c.is_ascii_lowercase()));
        assert_ne!(same_shape("LS-0002-LS-0002"), same_shape("LS-0002-LS-0002"));
    }

    #[test]
    fn only_a_clearly_slower_probe_is_slow() {
        let at = |ms| Answer {
            status: 200,
            body: Value::Null,
            elapsed: Duration::from_millis(ms),
        };
        assert!(is_slow(&at(100), &at(10)));
        assert!(!is_slow(&at(12), &at(3)));
        assert!(!is_slow(&at(40), &at(20)));
    }
}
