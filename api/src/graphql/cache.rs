//! A least-recently-used map bounded by the bytes its entries hold, not by
//! their count: a count bound lets a few large entries take any amount of
//! memory. (The `lru` crate orders entries; the weighing is ours.)

use std::borrow::Borrow;
use std::hash::Hash;

pub struct WeighedLru<K: Hash + Eq, V> {
    entries: lru::LruCache<K, (V, usize)>,
    bytes: usize,
    max_bytes: usize,
}

impl<K: Hash + Eq, V> WeighedLru<K, V> {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            entries: lru::LruCache::unbounded(),
            bytes: 0,
            max_bytes,
        }
    }

    pub fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key).map(|(v, _)| v)
    }

    /// Inserts an entry of `weight` bytes, evicting the least recently used
    /// ones until everything fits. An entry larger than the whole budget is
    /// not kept.
    pub fn put(&mut self, key: K, value: V, weight: usize) {
        if weight > self.max_bytes {
            return;
        }
        if let Some((_, old)) = self.entries.put(key, (value, weight)) {
            self.bytes -= old;
        }
        self.bytes += weight;
        while self.bytes > self.max_bytes {
            match self.entries.pop_lru() {
                Some((_, (_, w))) => self.bytes -= w,
                None => break,
            }
        }
    }

    /// The bytes the entries are counted as holding.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::WeighedLru;

    #[test]
    fn stays_within_its_byte_budget_evicting_the_oldest() {
        let mut c = WeighedLru::new(100);
        c.put(1, "a", 40);
        c.put(2, "b", 40);
        assert_eq!(c.get(&1), Some(&"a"));
        c.put(3, "c", 40);
        assert_eq!(c.bytes(), 80);
        assert_eq!(c.get(&2), None, "least recently used goes first");
        assert_eq!(c.get(&1), Some(&"a"));
        c.put(4, "huge", 101);
        assert_eq!(c.get(&4), None);
        c.put(1, "a2", 10);
        assert_eq!(c.bytes(), 50);
        assert_eq!(c.len(), 2);
    }
}
