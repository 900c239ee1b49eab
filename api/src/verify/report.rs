//! What a run found: a summary for a person on stdout, and every probe in
//! a JSON report (`--report FILE`) for a pipeline or an auditor.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::VerifyError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Indistinguishable from a missing id; refused; unchanged.
    Pass,
    /// Clinic A reached something of clinic B's.
    Leak,
    /// Ran, but proves nothing either way (the detail says why).
    Inconclusive,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    pub probe_ms: f64,
    /// The same call with a random id, for API probes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_ms: Option<f64>,
}

/// One probe: what was tried, with which ids, what a missing id (or the
/// rule) expects, what came back, and the verdict.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeRecord {
    /// `query`, `node`, `nodes`, `filter`, `mutation`, `unchanged`, or
    /// `db.select`, `db.insert`, `db.update`, `db.move`, `db.delete`.
    pub kind: String,
    /// The root field, object type or table.
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argument: Option<String>,
    /// Ids of clinic B (and, moving a row, of clinic A) the probe used.
    pub ids: Vec<String>,
    /// Where each id came from (`input.patientId: <id> (Patient)`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// The variables an API probe sent (its document is generated from
    /// the field's arguments, one variable each).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variables: Option<Value>,
    pub expected: Value,
    pub actual: Value,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Not leaks, but worth a look: a slow probe, a probe refused for
    /// another reason first, a per-person table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
}

/// Something not probed, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skip {
    pub kind: String,
    pub target: String,
    pub reason: String,
}

impl Skip {
    pub fn new(kind: &str, target: &str, reason: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            target: target.to_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// A clinic as the run knew it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Clinic {
    pub id: Option<String>,
    pub name: Option<String>,
    pub user: Option<String>,
    pub role: Option<String>,
}

/// Facts about one table in database mode.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableFacts {
    pub table: String,
    pub tenant_column: String,
    pub row_security: bool,
    pub forced: bool,
    /// Rows of clinic B its own user sees (at most 1,000 counted): when 0,
    /// "A sees none of them" proves little.
    pub b_rows: i64,
    /// Rows of clinic A's own its user sees (at most 1,000 counted).
    pub a_rows: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub probes: usize,
    pub passed: usize,
    pub leaks: usize,
    pub inconclusive: usize,
    pub warnings: usize,
    pub skipped: usize,
    pub api_probes: usize,
    pub mutation_probes: usize,
    pub database_probes: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub started_at: String,
    pub duration_ms: u64,
    pub url: Option<String>,
    /// The database, without its password.
    pub database: Option<String>,
    pub read_only: bool,
    pub clinic_a: Clinic,
    pub clinic_b: Clinic,
    pub summary: Summary,
    /// Why the run stopped short, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub probes: Vec<ProbeRecord>,
    pub skipped: Vec<Skip>,
    pub tables: Vec<TableFacts>,
    /// What the run noticed on the way (fields it could not read, ...).
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(read_only: bool) -> Self {
        Self {
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            duration_ms: 0,
            url: None,
            database: None,
            read_only,
            clinic_a: Clinic::default(),
            clinic_b: Clinic::default(),
            summary: Summary::default(),
            error: None,
            probes: Vec::new(),
            skipped: Vec::new(),
            tables: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn leaks(&self) -> usize {
        self.probes
            .iter()
            .filter(|p| p.verdict == Verdict::Leak)
            .count()
    }

    /// Counts the probes (call once all have run).
    pub fn summarise(&mut self) {
        let count = |f: &dyn Fn(&ProbeRecord) -> bool| self.probes.iter().filter(|p| f(p)).count();
        self.summary = Summary {
            probes: self.probes.len(),
            passed: count(&|p| p.verdict == Verdict::Pass),
            leaks: count(&|p| p.verdict == Verdict::Leak),
            inconclusive: count(&|p| p.verdict == Verdict::Inconclusive),
            warnings: count(&|p| !p.warnings.is_empty()),
            skipped: self.skipped.len(),
            api_probes: count(&|p| !p.kind.starts_with("db.")),
            mutation_probes: count(&|p| p.kind == "mutation"),
            database_probes: count(&|p| p.kind.starts_with("db.")),
        };
    }

    pub fn write(&self, path: &Path) -> Result<(), VerifyError> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| VerifyError::Report(format!("{}: {e}", path.display())))?;
        std::fs::write(path, text)
            .map_err(|e| VerifyError::Report(format!("{}: {e}", path.display())))
    }

    /// The summary for a person: counts, then every leak, every
    /// inconclusive probe, every warning and every skip, one line each.
    pub fn print_summary(&self) {
        let s = &self.summary;
        println!();
        if let (Some(error), 0, 0) = (&self.error, s.probes, s.skipped) {
            // Stopped before anything ran: the reason is all there is.
            println!("STOPPED       {error}");
            return;
        }
        println!(
            "{} probes: {} passed, {} leak(s), {} inconclusive; {} with warnings; {} skipped",
            s.probes, s.passed, s.leaks, s.inconclusive, s.warnings, s.skipped
        );
        println!(
            "  API probes {} (mutations {}), database probes {}; {:.1} s",
            s.api_probes,
            s.mutation_probes,
            s.database_probes,
            self.duration_ms as f64 / 1000.0
        );
        for p in &self.probes {
            let what = match &p.argument {
                Some(arg) => format!("{} {}({arg})", p.kind, p.target),
                None => format!("{} {}", p.kind, p.target),
            };
            match p.verdict {
                Verdict::Leak => println!(
                    "LEAK          {what}: {} [ids {}]",
                    p.detail.as_deref().unwrap_or(""),
                    p.ids.join(", ")
                ),
                Verdict::Inconclusive => println!(
                    "INCONCLUSIVE  {what}: {}",
                    p.detail.as_deref().unwrap_or("")
                ),
                Verdict::Pass => {}
            }
            for w in &p.warnings {
                println!("WARNING       {what}: {w}");
            }
        }
        let empty: Vec<&str> = self
            .tables
            .iter()
            .filter(|t| t.b_rows == 0)
            .map(|t| t.table.as_str())
            .collect();
        if !empty.is_empty() {
            println!(
                "NOTE          clinic B's own user sees no row of {} table(s), where \"A sees none of B's\" proves little: {}",
                empty.len(),
                empty.join(", ")
            );
        }
        for skip in &self.skipped {
            println!(
                "SKIPPED       {} {}: {}",
                skip.kind, skip.target, skip.reason
            );
        }
        for note in &self.notes {
            println!("NOTE          {note}");
        }
        if let Some(error) = &self.error {
            println!("STOPPED       {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(kind: &str, verdict: Verdict) -> ProbeRecord {
        ProbeRecord {
            kind: kind.to_owned(),
            target: "t".to_owned(),
            argument: None,
            ids: Vec::new(),
            sources: Vec::new(),
            variables: None,
            expected: Value::Null,
            actual: Value::Null,
            verdict,
            detail: None,
            warnings: Vec::new(),
            timing: None,
        }
    }

    #[test]
    fn the_summary_counts_each_kind_of_probe() {
        let mut r = Report::new(false);
        r.probes = vec![
            probe("node", Verdict::Pass),
            probe("mutation", Verdict::Leak),
            probe("db.insert", Verdict::Pass),
            probe("db.move", Verdict::Inconclusive),
        ];
        r.summarise();
        let s = &r.summary;
        assert_eq!((s.probes, s.passed, s.leaks, s.inconclusive), (4, 2, 1, 1));
        assert_eq!(
            (s.api_probes, s.mutation_probes, s.database_probes),
            (2, 1, 2)
        );
        assert_eq!(r.leaks(), 1);
    }
}
