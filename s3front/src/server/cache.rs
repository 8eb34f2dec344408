//! A per-core cache of recently read objects, in memory.
//!
//! The store reads with O_DIRECT, so without this every GET is a disk read (nginx, the
//! benchmark's reference, serves from the page cache). An entry is valid only for the record it
//! was read from: a lookup names the lsn the index holds for the key now, and an entry with
//! another lsn is a miss. Puts, deletes, compaction relocations and multipart completions all
//! change that lsn, so no write path has to invalidate anything, and nothing stale can be
//! served. Eviction: CLOCK (second chance) over insertion order, bounded in bytes.
//!
//! An entry may hold the metadata and size alone (`insert_meta`): what a HEAD or a listing read
//! with `Store::head`, a sector instead of the object. Such an entry answers `get_meta` (HEAD,
//! listings) but not `get` (a GET reads the object and replaces it with a whole entry).

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
    /// The object's size (`data`'s length where the data is here).
    size: u64,
    /// `Arc`: the owner core hands the bytes to the core holding the connection. `None`: the
    /// metadata alone.
    data: Option<Arc<Vec<u8>>>,
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
    /// `get_meta` answered from an entry (with its data or without).
    pub meta_hits: u64,
    /// Lookup key buffer, reused so a lookup allocates nothing.
    scratch: Vec<u8>,
}

fn cost(key: &Key, data: Option<&Arc<Vec<u8>>>) -> usize {
    // Data, key, and a rough fixed cost for the entry and its metadata.
    data.map_or(0, |d| d.len()) + key.len() + 256
}

fn fill_key(out: &mut Vec<u8>, bucket: &str, key: &str) {
    out.clear();
    out.extend_from_slice(bucket.as_bytes());
    out.push(0);
    out.extend_from_slice(key.as_bytes());
}

impl ObjectCache {
    pub fn new(max_bytes: usize) -> ObjectCache {
        ObjectCache { entries: HashMap::new(), order: VecDeque::new(), bytes: 0, max_bytes, hits: 0, misses: 0, meta_hits: 0, scratch: Vec::new() }
    }

    /// The cached object if it is the version the index names (`lsn`) and its data is here.
    pub fn get(&mut self, bucket: &str, key: &str, lsn: u64) -> Option<(Rc<CachedMeta>, Arc<Vec<u8>>)> {
        let e = self.entry(bucket, key, lsn);
        let hit = e.and_then(|e| Some((e.meta.clone(), e.data.clone()?)));
        if hit.is_some() { self.hits += 1 } else { self.misses += 1 }
        hit
    }

    /// The cached metadata and size of the version the index names (`lsn`), with or without
    /// its data.
    pub fn get_meta(&mut self, bucket: &str, key: &str, lsn: u64) -> Option<(Rc<CachedMeta>, u64)> {
        let hit = self.entry(bucket, key, lsn).map(|e| (e.meta.clone(), e.size));
        if hit.is_some() {
            self.meta_hits += 1;
        }
        hit
    }

    /// The entry of `bucket`/`key` if it is at `lsn`, marked referenced; an entry of another
    /// version is dropped.
    fn entry(&mut self, bucket: &str, key: &str, lsn: u64) -> Option<&Entry> {
        fill_key(&mut self.scratch, bucket, key);
        let stale = match self.entries.get_mut(&self.scratch[..]) {
            Some(e) if e.lsn == lsn => false,
            Some(_) => true,
            None => return None,
        };
        if stale {
            let (k, e) = self.entries.remove_entry(&self.scratch[..]).expect("present");
            self.bytes -= cost(&k, e.data.as_ref());
            return None;
        }
        let e = self.entries.get_mut(&self.scratch[..]).expect("present");
        e.referenced = true;
        Some(e)
    }

    /// Keeps an object read at `lsn`.
    pub fn insert(&mut self, bucket: &str, key: &str, lsn: u64, meta: ObjectMeta, data: Arc<Vec<u8>>) {
        if data.len() > CACHE_OBJECT_BYTES_MAX {
            return;
        }
        let size = data.len() as u64;
        self.put(bucket, key, Entry { lsn, meta: Rc::new(CachedMeta { meta, lines: OnceCell::new() }), size, data: Some(data), referenced: false });
    }

    /// Keeps the metadata and size of the object read at `lsn` (not its data). An entry of the
    /// same version stays as it is: it may hold the data.
    pub fn insert_meta(&mut self, bucket: &str, key: &str, lsn: u64, meta: ObjectMeta, size: u64) {
        fill_key(&mut self.scratch, bucket, key);
        if self.entries.get(&self.scratch[..]).is_some_and(|e| e.lsn == lsn) {
            return;
        }
        self.put(bucket, key, Entry { lsn, meta: Rc::new(CachedMeta { meta, lines: OnceCell::new() }), size, data: None, referenced: false });
    }

    fn put(&mut self, bucket: &str, key: &str, entry: Entry) {
        if self.max_bytes == 0 {
            return;
        }
        let mut k = Vec::with_capacity(bucket.len() + 1 + key.len());
        fill_key(&mut k, bucket, key);
        let c = cost(&k, entry.data.as_ref());
        if c > self.max_bytes {
            return;
        }
        if let Some(old) = self.entries.remove(&k) {
            self.bytes -= cost(&k, old.data.as_ref());
        }
        while self.bytes + c > self.max_bytes {
            self.evict_one();
        }
        self.bytes += c;
        self.order.push_back(k.clone());
        self.entries.insert(k, entry);
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
        self.bytes -= cost(&k, e.data.as_ref());
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
    fn a_metadata_entry_answers_heads_not_gets() {
        let mut c = ObjectCache::new(10_000);
        let meta = ObjectMeta { etag: "e1".into(), ..ObjectMeta::default() };
        c.insert_meta("b", "k", 5, meta.clone(), 1 << 20);
        assert!(c.get("b", "k", 5).is_none(), "no data to send");
        assert_eq!(c.get_meta("b", "k", 5).map(|(m, size)| (m.meta.etag.clone(), size)), Some(("e1".to_string(), 1 << 20)));
        assert_eq!(c.bytes(), 256 + 3, "a metadata entry does not count the object's size");
        // A GET's whole entry replaces it; a later metadata insert of that version keeps the data.
        c.insert("b", "k", 5, meta.clone(), Arc::new(vec![1; 100]));
        c.insert_meta("b", "k", 5, meta.clone(), 100);
        assert_eq!(c.get("b", "k", 5).map(|(_, d)| d.len()), Some(100));
        assert_eq!(c.get_meta("b", "k", 5).map(|(_, size)| size), Some(100));
        // Another version is a miss for both, and drops the entry.
        assert!(c.get_meta("b", "k", 6).is_none());
        assert!(c.get_meta("b", "k", 5).is_none());
        assert_eq!(c.bytes(), 0);
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
