//! A per-core cache of recently read objects, in memory.
//!
//! The store reads with O_DIRECT, so without this every GET is a disk read (nginx, the
//! benchmark's reference, serves from the page cache). An entry is valid only for the record it
//! was read from: a lookup names the lsn the index holds for the key now, and an entry with
//! another lsn is a miss. Puts, deletes, compaction relocations and multipart completions all
//! change that lsn, so no write path has to invalidate anything, and nothing stale can be
//! served. Eviction: CLOCK (second chance) over insertion order, bounded in bytes.

use std::cell::OnceCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use super::meta::ObjectMeta;
use crate::http::HeaderLines;

/// A cached object's metadata, and the response header lines rendered from it by the first hit
/// that needed them (formatting the ETag and Last-Modified took 7% of a core on 4 KiB GETs).
pub struct CachedMeta {
    pub meta: ObjectMeta,
    pub lines: OnceCell<HeaderLines>,
}

/// Largest object the cache keeps.
pub const CACHE_OBJECT_BYTES_MAX: usize = 4 << 20;

struct Entry {
    lsn: u64,
    meta: Rc<CachedMeta>,
    /// `Arc`: the owner core hands the bytes to the core holding the connection.
    data: Arc<Vec<u8>>,
    referenced: bool,
}

/// `bucket \0 key`: one allocation per entry, and lookups through a reused buffer.
type Key = Vec<u8>;

pub struct ObjectCache {
    entries: HashMap<Key, Entry>,
    /// Insertion order for the clock; a key may appear after its entry left (skipped).
    order: VecDeque<Key>,
    bytes: usize,
    max_bytes: usize,
    pub hits: u64,
    pub misses: u64,
    /// Lookup key buffer, reused so a lookup allocates nothing.
    scratch: Vec<u8>,
}

fn cost(key: &Key, data: &[u8]) -> usize {
    // Data, key, and a rough fixed cost for the entry and its metadata.
    data.len() + key.len() + 256
}

fn fill_key(out: &mut Vec<u8>, bucket: &str, key: &str) {
    out.clear();
    out.extend_from_slice(bucket.as_bytes());
    out.push(0);
    out.extend_from_slice(key.as_bytes());
}

impl ObjectCache {
    pub fn new(max_bytes: usize) -> ObjectCache {
        ObjectCache { entries: HashMap::new(), order: VecDeque::new(), bytes: 0, max_bytes, hits: 0, misses: 0, scratch: Vec::new() }
    }

    /// The cached object if it is the version the index names (`lsn`).
    pub fn get(&mut self, bucket: &str, key: &str, lsn: u64) -> Option<(Rc<CachedMeta>, Arc<Vec<u8>>)> {
        fill_key(&mut self.scratch, bucket, key);
        match self.entries.get_mut(&self.scratch[..]) {
            Some(e) if e.lsn == lsn => {
                e.referenced = true;
                self.hits += 1;
                Some((e.meta.clone(), e.data.clone()))
            }
            Some(_) => {
                let (k, e) = self.entries.remove_entry(&self.scratch[..]).expect("present");
                self.bytes -= cost(&k, &e.data);
                self.misses += 1;
                None
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Keeps an object read at `lsn`.
    pub fn insert(&mut self, bucket: &str, key: &str, lsn: u64, meta: ObjectMeta, data: Arc<Vec<u8>>) {
        if self.max_bytes == 0 || data.len() > CACHE_OBJECT_BYTES_MAX {
            return;
        }
        let mut k = Vec::with_capacity(bucket.len() + 1 + key.len());
        fill_key(&mut k, bucket, key);
        let c = cost(&k, &data);
        if c > self.max_bytes {
            return;
        }
        if let Some(old) = self.entries.remove(&k) {
            self.bytes -= cost(&k, &old.data);
        }
        while self.bytes + c > self.max_bytes {
            self.evict_one();
        }
        self.bytes += c;
        self.order.push_back(k.clone());
        self.entries.insert(k, Entry { lsn, meta: Rc::new(CachedMeta { meta, lines: OnceCell::new() }), data, referenced: false });
    }

    fn evict_one(&mut self) {
        let k = self.order.pop_front().expect("over budget means something is cached");
        let Some(e) = self.entries.get_mut(&k) else { return };
        if e.referenced {
            e.referenced = false;
            self.order.push_back(k);
            return;
        }
        let e = self.entries.remove(&k).expect("present");
        self.bytes -= cost(&k, &e.data);
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_version_is_a_miss_and_the_budget_holds() {
        let mut c = ObjectCache::new(10_000);
        c.insert("b", "k", 5, ObjectMeta::default(), Arc::new(vec![1; 100]));
        assert_eq!(c.get("b", "k", 5).map(|(_, d)| d.len()), Some(100));
        assert!(c.get("b", "k", 6).is_none(), "another lsn is another version");
        assert!(c.get("b", "k", 5).is_none(), "the stale entry was dropped");
        for i in 0..100 {
            c.insert("b", &format!("k{i}"), i, ObjectMeta::default(), Arc::new(vec![0; 1000]));
            assert!(c.bytes() <= 10_000);
        }
        assert!(c.get("b", "k99", 99).is_some(), "the newest entry stays");
        assert!(c.get("b", "k0", 0).is_none(), "the oldest was evicted");
    }

    #[test]
    fn referenced_entries_get_a_second_chance() {
        let mut c = ObjectCache::new(3 * (1000 + 4 + 256));
        for i in 0..3 {
            c.insert("b", &format!("k{i}"), i, ObjectMeta::default(), Arc::new(vec![0; 1000]));
        }
        assert!(c.get("b", "k0", 0).is_some());
        c.insert("b", "k3", 3, ObjectMeta::default(), Arc::new(vec![0; 1000]));
        assert!(c.get("b", "k0", 0).is_some(), "k0 was referenced: k1 went instead");
        assert!(c.get("b", "k1", 1).is_none());
    }
}
