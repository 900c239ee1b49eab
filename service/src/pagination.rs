//! Keyset pagination: a page is "the next `first` rows after this key", so
//! deep pages cost the same as the first and rows inserted meanwhile do not
//! shift the ones a client already saw.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ServiceError, ServiceResult};

/// The largest page a client may ask for.
pub const MAX_PAGE_SIZE: u64 = 100;
/// The page size when a client does not say.
pub const DEFAULT_PAGE_SIZE: u64 = 20;

/// `first` and `after` of a Relay connection, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageRequest<K> {
    pub first: u64,
    pub after: Option<K>,
}

impl<K> PageRequest<K> {
    pub fn new(first: Option<i32>, after: Option<K>) -> ServiceResult<Self> {
        let first = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if n < 0 => {
                return Err(ServiceError::invalid("first", "must not be negative"));
            }
            Some(n) if n as u64 > MAX_PAGE_SIZE => {
                return Err(ServiceError::invalid(
                    "first",
                    format!("must be at most {MAX_PAGE_SIZE}"),
                ));
            }
            Some(n) => n as u64,
        };
        Ok(Self { first, after })
    }
}

/// One page of rows, and whether more follow.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
}

impl<T> Page<T> {
    /// Cuts a result fetched with `first + 1` rows down to `first`.
    pub fn from_overfetch(mut items: Vec<T>, first: u64) -> Self {
        let has_next_page = items.len() as u64 > first;
        items.truncate(first as usize);
        Self {
            items,
            has_next_page,
        }
    }
}

/// Where a page of patients or providers listed by name resumes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NameKey {
    pub a: String,
    pub b: String,
    pub id: Uuid,
}

/// Where a page of rows listed by time resumes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeKey {
    pub at: chrono::DateTime<chrono::FixedOffset>,
    pub id: Uuid,
}

impl PageRequest<TimeKey> {
    /// The time and id the page resumes after, as statement parameters
    /// (both `None` for a first page).
    pub fn after_time(&self) -> (Option<chrono::DateTime<chrono::FixedOffset>>, Option<Uuid>) {
        match &self.after {
            Some(k) => (Some(k.at), Some(k.id)),
            None => (None, None),
        }
    }
}

/// A page for each owner from rows fetched `first + 1` per owner in page
/// order (as `(owner, row)`); an owner without rows gets an empty page.
pub fn pages_per_owner<T>(
    owners: &[Uuid],
    rows: impl IntoIterator<Item = (Uuid, T)>,
    first: u64,
) -> std::collections::HashMap<Uuid, Page<T>> {
    let mut grouped: std::collections::HashMap<Uuid, Vec<T>> = std::collections::HashMap::new();
    for (owner, row) in rows {
        grouped.entry(owner).or_default().push(row);
    }
    owners
        .iter()
        .map(|o| {
            (
                *o,
                Page::from_overfetch(grouped.remove(o).unwrap_or_default(), first),
            )
        })
        .collect()
}

/// Splits a search into lower-case words, each matched as a substring
/// (with `LIKE`'s wildcards escaped), so "jon smi" finds Jonathan Smith.
pub fn search_terms(raw: &str) -> Vec<String> {
    raw.split_whitespace()
        .take(5)
        .map(|w| {
            let escaped = w
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_is_bounded() {
        assert_eq!(PageRequest::<()>::new(None, None).unwrap().first, 20);
        assert_eq!(PageRequest::<()>::new(Some(100), None).unwrap().first, 100);
        assert!(PageRequest::<()>::new(Some(101), None).is_err());
        assert!(PageRequest::<()>::new(Some(-1), None).is_err());
    }

    #[test]
    fn overfetch_tells_whether_more_follow() {
        let p = Page::from_overfetch(vec![1, 2, 3], 2);
        assert_eq!((p.items, p.has_next_page), (vec![1, 2], true));
        let p = Page::from_overfetch(vec![1, 2], 2);
        assert_eq!((p.items, p.has_next_page), (vec![1, 2], false));
    }

    #[test]
    fn search_words_are_escaped_substrings() {
        assert_eq!(search_terms(" Jon  smi "), vec!["%jon%", "%smi%"]);
        assert_eq!(search_terms("50%_"), vec!["%50\\%\\_%"]);
    }
}
