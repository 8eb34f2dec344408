//! The in-memory index of one core's objects: per bucket, an ordered map from key to where the
//! object's latest record lies. Ordered so that listing by prefix after a marker is a range scan.
//!
//! Not yet compact: a `BTreeMap` entry costs its key allocation, node overhead and the 32-byte
//! `Location` (the store issue's goal is at most 32 bytes per object beyond the key; measuring
//! and shrinking this is the next step, see the issue notes).

use std::collections::BTreeMap;
use std::ops::Bound;

/// Where an object's record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub segment: u32,
    pub frame_len: u32,
    pub offset: u64,
    pub lsn: u64,
    pub data_len: u64,
}

#[derive(Default)]
pub struct Index {
    buckets: BTreeMap<Box<[u8]>, BTreeMap<Box<[u8]>, Location>>,
    objects: u64,
    /// Bytes of live frames per segment: what compaction would have to copy.
    live_bytes: BTreeMap<u32, u64>,
}

impl Index {
    pub fn get(&self, bucket: &[u8], key: &[u8]) -> Option<Location> {
        self.buckets.get(bucket)?.get(key).copied()
    }

    /// Records that `key` now lives at `location` (a put replayed or acknowledged in lsn order).
    pub fn put(&mut self, bucket: &[u8], key: &[u8], location: Location) {
        let keys = match self.buckets.get_mut(bucket) {
            Some(k) => k,
            None => self.buckets.entry(bucket.into()).or_default(),
        };
        match keys.get_mut(key) {
            Some(l) => {
                assert!(l.lsn < location.lsn, "index applied out of lsn order");
                let old = std::mem::replace(l, location);
                Self::unlive(&mut self.live_bytes, &old);
            }
            None => {
                keys.insert(key.into(), location);
                self.objects += 1;
            }
        }
        *self.live_bytes.entry(location.segment).or_default() += location.frame_len as u64;
    }

    fn unlive(live: &mut BTreeMap<u32, u64>, old: &Location) {
        let bytes = live.get_mut(&old.segment).expect("live bytes tracked for every indexed segment");
        *bytes -= old.frame_len as u64;
        if *bytes == 0 {
            live.remove(&old.segment);
        }
    }

    /// Live bytes in `segment`.
    pub fn live_bytes(&self, segment: u32) -> u64 {
        self.live_bytes.get(&segment).copied().unwrap_or(0)
    }

    pub fn live_bytes_total(&self) -> u64 {
        self.live_bytes.values().sum()
    }

    /// Removes `key`; true if it was there.
    pub fn delete(&mut self, bucket: &[u8], key: &[u8]) -> bool {
        let Some(keys) = self.buckets.get_mut(bucket) else { return false };
        let removed = keys.remove(key);
        if let Some(old) = &removed {
            self.objects -= 1;
            Self::unlive(&mut self.live_bytes, old);
        }
        let removed = removed.is_some();
        if keys.is_empty() {
            self.buckets.remove(bucket);
        }
        removed
    }

    pub fn objects(&self) -> u64 {
        self.objects
    }

    /// Up to `limit` keys of `bucket` that start with `prefix` and sort after `start_after`.
    pub fn list(&self, bucket: &[u8], prefix: &[u8], start_after: Option<&[u8]>, limit: usize) -> Vec<(Box<[u8]>, Location)> {
        let Some(keys) = self.buckets.get(bucket) else { return Vec::new() };
        let lower = match start_after {
            Some(s) if s >= prefix => Bound::Excluded(s),
            _ => Bound::Included(prefix),
        };
        keys.range::<[u8], _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, l)| (k.clone(), *l))
            .collect()
    }

    /// Every (bucket, key, location), for scrubbing and checks.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8], &Location)> {
        self.buckets.iter().flat_map(|(b, keys)| keys.iter().map(move |(k, l)| (&b[..], &k[..], l)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(lsn: u64) -> Location {
        Location { segment: 1, frame_len: 4096, offset: lsn * 4096, lsn, data_len: 1 }
    }

    #[test]
    fn list_by_prefix_after_marker() {
        let mut i = Index::default();
        for (n, k) in ["a", "photos/1", "photos/2", "photos/3", "q"].iter().enumerate() {
            i.put(b"b", k.as_bytes(), loc(n as u64 + 1));
        }
        let keys = |v: Vec<(Box<[u8]>, Location)>| v.into_iter().map(|(k, _)| String::from_utf8(k.into()).expect("utf8")).collect::<Vec<_>>();
        let check = |prefix: &str, after: Option<&str>, limit: usize, expected: &[&str]| {
            assert_eq!(keys(i.list(b"b", prefix.as_bytes(), after.map(str::as_bytes), limit)), expected, "{prefix} {after:?} {limit}");
        };
        check("photos/", None, 10, &["photos/1", "photos/2", "photos/3"]);
        check("photos/", Some("photos/1"), 10, &["photos/2", "photos/3"]);
        check("photos/", Some("a"), 10, &["photos/1", "photos/2", "photos/3"]);
        check("photos/", Some("photos/3"), 10, &[]);
        check("", None, 2, &["a", "photos/1"]);
        check("", Some("photos/3"), 10, &["q"]);
        assert!(i.list(b"other", b"", None, 10).is_empty());
        assert_eq!(i.objects(), 5);
        assert!(i.delete(b"b", b"a"));
        assert!(!i.delete(b"b", b"a"));
        assert_eq!(i.objects(), 4);
    }
}
