//! A bounded map of what was used lately: the service's conversations kept in memory between
//! steps. Two generations: entries go into the young one; when it is full, the old one is
//! dropped whole and the young one becomes old; an old entry that is used again moves back to
//! the young one. Every operation is O(1), and at most `bound` entries are ever kept, however
//! many keys pass through.

use std::collections::HashMap;
use std::hash::Hash;

/// At most `bound` entries, the ones used last kept first.
#[derive(Debug)]
pub(crate) struct Recent<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    /// The most entries of one generation.
    half: usize,
}

impl<K: Hash + Eq, V> Recent<K, V> {
    /// A map of at most `bound` entries (at least 2).
    pub(crate) fn new(bound: usize) -> Self {
        Recent { young: HashMap::new(), old: HashMap::new(), half: (bound / 2).max(1) }
    }

    /// Takes the entry of `key` out, if it is kept.
    pub(crate) fn take(&mut self, key: &K) -> Option<V> {
        self.young.remove(key).or_else(|| self.old.remove(key))
    }

    /// Keeps `value` under `key`, as the most recently used.
    pub(crate) fn put(&mut self, key: K, value: V) {
        self.old.remove(&key);
        if self.young.len() >= self.half && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, value);
    }

    /// Forgets `key`.
    pub(crate) fn remove(&mut self, key: &K) {
        self.young.remove(key);
        self.old.remove(key);
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.young = HashMap::new();
        self.old = HashMap::new();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_keeps_more_than_its_bound() {
        let mut recent = Recent::new(10);
        for i in 0..1_000 {
            recent.put(i, i);
            assert!(recent.len() <= 10, "{} entries after {i}", recent.len());
        }
        // The last ones put are kept; the first are long gone.
        assert_eq!(recent.take(&999), Some(999));
        assert_eq!(recent.take(&995), Some(995));
        assert_eq!(recent.take(&0), None);
    }

    #[test]
    fn an_entry_used_again_outlives_the_ones_that_were_not() {
        let mut recent = Recent::new(4);
        recent.put("a", 1);
        recent.put("b", 2);
        // Full: `a` and `b` become old.
        recent.put("c", 3);
        // `a` is used again, so it is young once more.
        let a = recent.take(&"a").unwrap();
        recent.put("a", a);
        // The young generation fills: `b`, never used again, is dropped with the old one.
        recent.put("d", 4);
        assert_eq!(recent.take(&"b"), None);
        assert_eq!(recent.take(&"a"), Some(1));
        assert_eq!(recent.take(&"c"), Some(3));
        assert_eq!(recent.take(&"d"), Some(4));
    }

    #[test]
    fn taken_removed_and_cleared_entries_are_gone() {
        let mut recent = Recent::new(100);
        recent.put(1, "one");
        recent.put(2, "two");
        recent.put(3, "three");
        assert_eq!(recent.take(&1), Some("one"));
        assert_eq!(recent.take(&1), None);
        recent.remove(&2);
        assert_eq!(recent.take(&2), None);
        // Put again: the newer value replaces the older.
        recent.put(3, "drei");
        assert_eq!(recent.take(&3), Some("drei"));
        recent.put(4, "four");
        recent.clear();
        assert_eq!(recent.len(), 0);
    }
}
