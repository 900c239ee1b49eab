//! Two readings of the same plan, compared: what appeared, disappeared
//! or changed; and what changes by itself, learned from two readings with
//! nothing done in between, so that it is not held against anyone.

use std::collections::BTreeSet;

use serde_json::Value;

use super::harvest::Harvest;

/// What changed between two readings of the same plan.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Changes {
    /// Keys of objects seen only in the first reading.
    pub gone: Vec<String>,
    /// Keys of objects seen only in the second.
    pub new: Vec<String>,
    /// (key, field, before, after).
    pub changed: Vec<(String, String, Value, Value)>,
}

/// What changes between two readings with nothing done in between: an
/// audit trail grows with every reading, a session's last activity moves.
/// Those are left out of the comparison that proves clinic B unchanged.
#[derive(Debug, Default, Clone)]
pub struct Volatile {
    /// Types (or root queries) whose objects come and go by themselves.
    pub types: BTreeSet<String>,
    /// (type, field) pairs whose value changes by itself.
    pub fields: BTreeSet<(String, String)>,
}

impl Volatile {
    pub fn learn(first: &Harvest, second: &Harvest) -> Self {
        let mut volatile = Volatile::default();
        let changes = compare(first, second);
        for key in changes.gone.iter().chain(&changes.new) {
            if let Some(record) = first.objects.get(key).or_else(|| second.objects.get(key)) {
                volatile.types.insert(record.type_name.clone());
            }
        }
        for (key, field, _, _) in &changes.changed {
            if let Some(record) = first.objects.get(key) {
                volatile
                    .fields
                    .insert((record.type_name.clone(), field.clone()));
            }
        }
        volatile
    }

    /// `changes` without what changes by itself.
    pub fn filter(&self, changes: Changes, before: &Harvest, after: &Harvest) -> Changes {
        let type_of = |key: &String| {
            before
                .objects
                .get(key)
                .or_else(|| after.objects.get(key))
                .map(|r| r.type_name.clone())
                .unwrap_or_default()
        };
        Changes {
            gone: changes
                .gone
                .into_iter()
                .filter(|k| !self.types.contains(&type_of(k)))
                .collect(),
            new: changes
                .new
                .into_iter()
                .filter(|k| !self.types.contains(&type_of(k)))
                .collect(),
            changed: changes
                .changed
                .into_iter()
                .filter(|(k, f, _, _)| !self.fields.contains(&(type_of(k), f.clone())))
                .collect(),
        }
    }
}

/// Objects that appeared, disappeared or changed between two readings.
pub fn compare(before: &Harvest, after: &Harvest) -> Changes {
    let mut changes = Changes::default();
    for (key, record) in &before.objects {
        match after.objects.get(key) {
            None => changes.gone.push(key.clone()),
            Some(later) => {
                let names: BTreeSet<&String> =
                    record.fields.keys().chain(later.fields.keys()).collect();
                for name in names {
                    let (a, b) = (record.fields.get(name), later.fields.get(name));
                    if a != b {
                        changes.changed.push((
                            key.clone(),
                            name.clone(),
                            a.cloned().unwrap_or(Value::Null),
                            b.cloned().unwrap_or(Value::Null),
                        ));
                    }
                }
            }
        }
    }
    for key in after.objects.keys() {
        if !before.objects.contains_key(key) {
            changes.new.push(key.clone());
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::verify::harvest::Record;

    fn record(ty: &str, fields: Value) -> Record {
        Record {
            type_name: ty.to_owned(),
            fields: fields.as_object().cloned().unwrap_or_default(),
        }
    }

    fn harvest(objects: &[(&str, Record)]) -> Harvest {
        Harvest {
            objects: objects
                .iter()
                .map(|(k, r)| ((*k).to_owned(), r.clone()))
                .collect(),
            ..Harvest::default()
        }
    }

    #[test]
    fn what_changes_by_itself_is_learned_and_left_out() {
        let h1 = harvest(&[
            (
                "Patient:1",
                record("Patient", json!({ "lastName": "Ng", "readAt": 1 })),
            ),
            ("AuditEvent:1", record("AuditEvent", json!({}))),
        ]);
        let h2 = harvest(&[
            (
                "Patient:1",
                record("Patient", json!({ "lastName": "Ng", "readAt": 2 })),
            ),
            ("AuditEvent:1", record("AuditEvent", json!({}))),
            ("AuditEvent:2", record("AuditEvent", json!({}))),
        ]);
        let volatile = Volatile::learn(&h1, &h2);
        assert!(volatile.types.contains("AuditEvent"));
        assert!(
            volatile
                .fields
                .contains(&("Patient".to_owned(), "readAt".to_owned()))
        );
        let h3 = harvest(&[
            (
                "Patient:1",
                record("Patient", json!({ "lastName": "Taken", "readAt": 3 })),
            ),
            ("AuditEvent:3", record("AuditEvent", json!({}))),
            ("Patient:2", record("Patient", json!({}))),
        ]);
        let changes = volatile.filter(compare(&h2, &h3), &h2, &h3);
        assert_eq!(changes.new, vec!["Patient:2".to_owned()]);
        assert!(changes.gone.is_empty());
        assert_eq!(changes.changed.len(), 1);
        assert_eq!(changes.changed[0].1, "lastName");
    }
}
