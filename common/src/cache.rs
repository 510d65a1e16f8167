//! `BoundedCache`: a small map from immutable keys (metadata and manifest locations) to values,
//! holding at most a fixed number of entries and dropping the oldest first.
//!
//! Iceberg metadata files and manifests never change once written, so entries never go stale;
//! the bound only caps memory. Insertion-order eviction is enough for query planning, where the
//! working set is the tables of the current queries.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// See the module docs.
#[derive(Debug)]
pub struct BoundedCache<V> {
    max_entries: usize,
    entries: Mutex<(HashMap<String, V>, VecDeque<String>)>,
}

impl<V: Clone> BoundedCache<V> {
    /// A cache holding at most `max_entries` values (at least one).
    pub fn new(max_entries: usize) -> Self {
        Self {
            max_entries: max_entries.max(1),
            entries: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// The value cached under `key`.
    pub fn get(&self, key: &str) -> Option<V> {
        self.entries.lock().ok()?.0.get(key).cloned()
    }

    /// Caches `value` under `key` unless a value is already there; returns the cached value.
    pub fn get_or_insert(&self, key: &str, value: V) -> V {
        let Ok(mut guard) = self.entries.lock() else {
            return value;
        };
        let (map, order) = &mut *guard;
        if let Some(existing) = map.get(key) {
            return existing.clone();
        }
        while map.len() >= self.max_entries {
            let Some(oldest) = order.pop_front() else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(key.to_string(), value.clone());
        order.push_back(key.to_string());
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_max_entries_oldest_out_first() {
        let cache = BoundedCache::new(2);
        assert_eq!(cache.get_or_insert("a", 1), 1);
        assert_eq!(cache.get_or_insert("a", 9), 1, "an existing entry wins");
        cache.get_or_insert("b", 2);
        cache.get_or_insert("c", 3);
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get("b"), Some(2));
        assert_eq!(cache.get("c"), Some(3));
    }
}
