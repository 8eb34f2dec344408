//! The in-memory index of one core's objects: per bucket, an ordered map from key to where the
//! object's latest record lies. Ordered so that listing by prefix after a marker is a range scan.
//!
//! Compact, because it holds every object of the core in memory: a bucket is a `BTreeMap` from
//! separator key to page, and a page (`index/page.rs`) packs up to 2 KiB of entries sorted by
//! key: the key's length and bytes, then the location as five varints (offsets and frame lengths
//! counted in units of 64 bytes). With 16-byte keys an object costs about 17 bytes beyond its key (the
//! `BTreeMap<Box<[u8]>, Location>` before cost 74); engine/tests/index_memory.rs measures it.
//! Lookups are O(log pages) in the map plus a walk of one bounded page; listing walks the pages
//! in order.

mod page;

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Included, Unbounded};

pub use page::Unpacked;
use page::{PAGE_BYTES_MAX, PAGE_BYTES_MERGE_BELOW, PAGE_BYTES_MERGED_MAX, Page, Put};

/// Where an object's record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub segment: u32,
    pub frame_len: u32,
    pub offset: u64,
    pub lsn: u64,
    /// The object's size: its data, or for a chunked object the size its manifest gives.
    pub data_len: u64,
    /// The record is a manifest (`Kind::Manifest`): the data lies in chunks.
    pub chunked: bool,
}

/// Keys `delete_prefix` lists at a time.
const DELETE_PREFIX_STEP: usize = 256;

#[derive(Default)]
pub struct Index {
    buckets: BTreeMap<Box<[u8]>, Pages>,
    objects: u64,
    /// Bytes of live frames per segment: what compaction would have to copy.
    live_bytes: BTreeMap<u32, u64>,
}

/// One bucket's pages by separator: a page holds the keys from its separator up to the next
/// page's. The first page's separator is the empty key, which sorts below every key, so every key
/// has a page; a bucket with no keys is removed, so no page is ever empty.
type Pages = BTreeMap<Box<[u8]>, Page>;

fn page_of<'a>(pages: &'a Pages, key: &[u8]) -> (&'a [u8], &'a Page) {
    let (separator, page) =
        pages.range::<[u8], _>((Unbounded, Included(key))).next_back().expect("a bucket's first page has the empty separator");
    (separator, page)
}

fn page_of_mut<'a>(pages: &'a mut Pages, key: &[u8]) -> (&'a [u8], &'a mut Page) {
    let (separator, page) =
        pages.range_mut::<[u8], _>((Unbounded, Included(key))).next_back().expect("a bucket's first page has the empty separator");
    (separator, page)
}

impl Index {
    pub fn get(&self, bucket: &[u8], key: &[u8]) -> Option<Location> {
        page_of(self.buckets.get(bucket)?, key).1.get(key)
    }

    /// Records that `key` now lives at `location` (a put replayed or acknowledged in lsn order).
    pub fn put(&mut self, bucket: &[u8], key: &[u8], location: Location) {
        let pages = match self.buckets.get_mut(bucket) {
            Some(p) => p,
            None => self.buckets.entry(bucket.into()).or_insert_with(|| Pages::from([(Box::default(), Page::default())])),
        };
        let (separator, page) = page_of_mut(pages, key);
        let put = page.put(key, &location);
        match put {
            Put::Replaced(old) => Self::unlive(&mut self.live_bytes, &old),
            Put::Inserted | Put::Appended => self.objects += 1,
        }
        if page.len_bytes() > PAGE_BYTES_MAX && page.has_entries_to_split() {
            let separator: Box<[u8]> = separator.into();
            // Keys arriving in ascending order fill pages instead of leaving them half full.
            let ascending = put == Put::Appended && pages.last_key_value().is_some_and(|(last, _)| *last == separator);
            let (right_separator, right) = pages.get_mut(&separator).expect("the page put to").split(ascending);
            let replaced = pages.insert(right_separator.clone(), right);
            assert!(replaced.is_none(), "a split page's separator is new to its bucket");
            Self::split_to_fit(pages, separator);
            Self::split_to_fit(pages, right_separator);
        }
        *self.live_bytes.entry(location.segment).or_default() += location.frame_len as u64;
    }

    /// Splits the page at `separator` until every part fits in `PAGE_BYTES_MAX` or holds a single
    /// entry. One split suffices unless entries are large against the page (long keys).
    fn split_to_fit(pages: &mut Pages, separator: Box<[u8]>) {
        let page = pages.get_mut(&separator).expect("the page to split");
        if page.len_bytes() <= PAGE_BYTES_MAX || !page.has_entries_to_split() {
            return;
        }
        let (right_separator, right) = page.split(false);
        let replaced = pages.insert(right_separator.clone(), right);
        assert!(replaced.is_none(), "a split page's separator is new to its bucket");
        Self::split_to_fit(pages, separator);
        Self::split_to_fit(pages, right_separator);
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
        let Some(pages) = self.buckets.get_mut(bucket) else { return false };
        let alone = pages.len() == 1;
        let (separator, page) = page_of_mut(pages, key);
        let Some(old) = page.remove(key) else { return false };
        self.objects -= 1;
        Self::unlive(&mut self.live_bytes, &old);
        if page.len_bytes() < PAGE_BYTES_MERGE_BELOW && !alone {
            let separator: Box<[u8]> = separator.into();
            Self::rebalance(pages, separator);
        }
        if pages.len() == 1 && pages.values().all(Page::is_empty) {
            self.buckets.remove(bucket);
        }
        true
    }

    /// Removes every key of `bucket` that starts with `prefix`; returns how many.
    pub fn delete_prefix(&mut self, bucket: &[u8], prefix: &[u8]) -> u64 {
        let mut deleted = 0;
        loop {
            let doomed = self.list(bucket, prefix, None, DELETE_PREFIX_STEP);
            if doomed.is_empty() {
                return deleted;
            }
            for (key, _) in doomed {
                let removed = self.delete(bucket, &key);
                assert!(removed, "a listed key is deletable");
                deleted += 1;
            }
        }
    }

    /// Merges a page that has shrunk below `PAGE_BYTES_MERGE_BELOW` with a neighbour if the two fit
    /// in `PAGE_BYTES_MERGED_MAX`, and drops it if it is empty. The pair merges into its left page,
    /// whose separator then covers both ranges, so the first page keeps the empty separator.
    fn rebalance(pages: &mut Pages, separator: Box<[u8]>) {
        let len = pages[&separator[..]].len_bytes();
        let next = pages.range::<[u8], _>((Excluded(&separator[..]), Unbounded)).next().map(|(s, p)| (s.clone(), p.len_bytes()));
        let prev = pages.range::<[u8], _>((Unbounded, Excluded(&separator[..]))).next_back().map(|(s, p)| (s.clone(), p.len_bytes()));
        let (left, right) = match (prev, next) {
            (_, Some((next, next_len))) if len + next_len <= PAGE_BYTES_MERGED_MAX || len == 0 => (separator, next),
            (Some((prev, prev_len)), _) if prev_len + len <= PAGE_BYTES_MERGED_MAX || len == 0 => (prev, separator),
            _ => return,
        };
        let right = pages.remove(&right).expect("the right page of the pair");
        pages.get_mut(&left).expect("the left page of the pair").append(right);
    }

    pub fn objects(&self) -> u64 {
        self.objects
    }

    /// Up to `limit` keys of `bucket` that start with `prefix` and sort after `start_after`.
    pub fn list(&self, bucket: &[u8], prefix: &[u8], start_after: Option<&[u8]>, limit: usize) -> Vec<(Box<[u8]>, Location)> {
        let Some(pages) = self.buckets.get(bucket) else { return Vec::new() };
        let (lower, lower_included) = match start_after {
            Some(s) if s >= prefix => (s, false),
            _ => (prefix, true),
        };
        let first = page_of(pages, lower).0;
        let mut listed = Vec::new();
        for (i, page) in pages.range::<[u8], _>((Included(first), Unbounded)).map(|(_, p)| p).enumerate() {
            let cursor = if i == 0 { page.cursor_from(lower) } else { page.cursor() };
            for (key, location) in cursor {
                if key < lower || (key == lower && !lower_included) {
                    continue;
                }
                // Past every key with the prefix, or full.
                if !key.starts_with(prefix) || listed.len() == limit {
                    return listed;
                }
                listed.push((key.into(), location));
            }
        }
        listed
    }

    /// Appends to `out` the (offset, frame length) of each record in `segment` among at most
    /// `keys_max` keys that sort after `after` (bucket, key; from the first key when `None`).
    /// Returns where to go on, or `None` once past the last key. Resuming by key, not by page,
    /// keeps the walk exact while pages split and merge between calls (a key put meanwhile lies
    /// in the tail segment, never in a full one).
    pub fn frames_in(
        &self,
        segment: u32,
        after: Option<&(Box<[u8]>, Box<[u8]>)>,
        keys_max: usize,
        out: &mut Vec<(u64, u32)>,
    ) -> Option<(Box<[u8]>, Box<[u8]>)> {
        assert!(keys_max > 0);
        let mut seen = 0;
        let buckets = match after {
            Some((b, _)) => self.buckets.range::<[u8], _>((Included(&b[..]), Unbounded)),
            None => self.buckets.range::<[u8], _>(..),
        };
        for (bucket, pages) in buckets {
            let resume_key = after.filter(|(b, _)| b == bucket).map(|(_, k)| &k[..]);
            let first = resume_key.map_or(&[][..], |k| page_of(pages, k).0);
            for page in pages.range::<[u8], _>((Included(first), Unbounded)).map(|(_, p)| p) {
                for (key, l) in page.cursor() {
                    if resume_key.is_some_and(|r| key <= r) {
                        continue;
                    }
                    if l.segment == segment {
                        out.push((l.offset, l.frame_len));
                    }
                    seen += 1;
                    if seen == keys_max {
                        return Some((bucket.clone(), key.into()));
                    }
                }
            }
        }
        None
    }

    /// The greatest key of `bucket`.
    pub fn last_key(&self, bucket: &[u8]) -> Option<Box<[u8]>> {
        let (_, page) = self.buckets.get(bucket)?.last_key_value()?;
        page.cursor().last().map(|(key, _)| key.into())
    }

    /// Drops every entry whose record lies in one of the `gone` segments; returns how many.
    /// Start-up from a checkpoint taken before compaction removed those segments: each such
    /// entry was deleted or replaced after the checkpoint (its tombstone may have been dropped
    /// with its segment), or relocated by a record that replay applies next.
    pub fn forget_segments(&mut self, gone: &std::collections::BTreeSet<u32>) -> u64 {
        if !gone.iter().any(|s| self.live_bytes.contains_key(s)) {
            return 0;
        }
        let doomed: Vec<Box<[u8]>> =
            self.iter().filter(|(_, _, l)| gone.contains(&l.segment)).flat_map(|(b, k, _)| [b.into(), k.into()]).collect();
        for pair in doomed.chunks_exact(2) {
            self.delete(&pair[0], &pair[1]);
        }
        (doomed.len() / 2) as u64
    }

    /// Every (bucket, key, location), for scrubbing, checkpoints and checks.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8], Unpacked)> {
        self.buckets.iter().flat_map(|(bucket, pages)| {
            pages.values().flat_map(move |page| page.cursor().map(move |(key, l)| (&bucket[..], key, Unpacked(l))))
        })
    }
}

/// Checks the structure against what it promises: no empty bucket or page, the first separator
/// empty, keys ascending and within their page's range, and the counters equal to a recount.
#[cfg(test)]
impl Index {
    fn check(&self) {
        let mut objects = 0;
        let mut live_bytes = BTreeMap::new();
        for pages in self.buckets.values() {
            assert_eq!(pages.keys().next().map(|s| &s[..]), Some(&b""[..]), "the first page's separator is empty");
            let separators: Vec<&[u8]> = pages.keys().map(|s| &s[..]).collect();
            let mut previous: Option<&[u8]> = None;
            for (n, page) in pages.values().enumerate() {
                assert!(!page.is_empty(), "no page is empty");
                page.check();
                assert!(page.len_bytes() <= PAGE_BYTES_MAX || page.cursor().count() == 1, "a page fits or holds one entry");
                for (key, location) in page.cursor() {
                    assert!(key >= separators[n], "a key sorts at or above its page's separator");
                    assert!(separators.get(n + 1).is_none_or(|&next| key < next), "a key sorts below the next page's separator");
                    assert!(previous.is_none_or(|p| p < key), "keys ascend");
                    previous = Some(key);
                    objects += 1;
                    *live_bytes.entry(location.segment).or_default() += location.frame_len as u64;
                }
            }
        }
        assert_eq!(objects, self.objects);
        assert_eq!(live_bytes, self.live_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(lsn: u64) -> Location {
        Location { segment: 1, frame_len: 4096, offset: lsn * 4096, lsn, data_len: 1, chunked: false }
    }

    #[test]
    fn list_by_prefix_after_marker() {
        let mut i = Index::default();
        for (n, k) in ["a", "photos/1", "photos/2", "photos/3", "q"].iter().enumerate() {
            i.put(b"b", k.as_bytes(), loc(n as u64 + 1));
        }
        let keys =
            |v: Vec<(Box<[u8]>, Location)>| v.into_iter().map(|(k, _)| String::from_utf8(k.into()).expect("utf8")).collect::<Vec<_>>();
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

    #[test]
    #[should_panic(expected = "index applied out of lsn order")]
    fn put_asserts_lsn_order() {
        let mut i = Index::default();
        i.put(b"b", b"k", loc(2));
        i.put(b"b", b"k", loc(2));
    }

    #[test]
    #[should_panic(expected = "not a multiple of the frame alignment")]
    fn put_asserts_frame_aligned_offset() {
        Index::default().put(b"b", b"k", Location { offset: 100, ..loc(1) });
    }

    #[test]
    fn pages_split_as_keys_arrive_and_merge_as_they_go() {
        let mut i = Index::default();
        let key = |n: u64| format!("photos/{n:06}").into_bytes();
        for n in 0..1000 {
            i.put(b"b", &key(n), loc(n + 1));
        }
        i.check();
        let pages = |i: &Index| i.buckets.get(&b"b"[..]).map_or(0, |p| p.len());
        assert!(pages(&i) > 1000 * 20 / PAGE_BYTES_MAX, "{} pages", pages(&i));
        for n in 1..999 {
            assert!(i.delete(b"b", &key(n)));
        }
        i.check();
        assert_eq!(pages(&i), 1);
        assert!(i.delete(b"b", &key(0)));
        assert!(i.delete(b"b", &key(999)));
        assert!(i.buckets.is_empty());
    }

    mod model {
        use std::collections::BTreeMap;

        use proptest::prelude::*;
        use proptest::sample::Index as Pick;

        use super::super::{Index, Location};

        type Model = BTreeMap<(Vec<u8>, Vec<u8>), Location>;

        /// A key already in the bucket (picked when the op runs) or a new one.
        #[derive(Clone, Debug)]
        enum Key {
            Existing(Pick),
            New(Vec<u8>),
        }

        #[derive(Clone, Debug)]
        enum Op {
            Put {
                bucket: u8,
                key: Key,
                location: Location,
                lsn_gap: u64,
            },
            /// Keys `stem` + 0, 1, ... in order: fills pages from the end, as uploads do.
            PutRun {
                bucket: u8,
                stem: Vec<u8>,
                count: usize,
            },
            Delete {
                bucket: u8,
                key: Key,
            },
            /// Every key of the bucket with this prefix, in order: empties runs of pages.
            DeletePrefix {
                bucket: u8,
                prefix: Key,
                prefix_len: usize,
            },
            Get {
                bucket: u8,
                key: Key,
            },
            List {
                bucket: u8,
                prefix: Key,
                prefix_len: usize,
                after: Option<Key>,
                limit: usize,
            },
            Iter,
        }

        const BUCKETS: u8 = 3;
        const SEGMENTS: u32 = 4;

        fn bucket_name(b: u8) -> Vec<u8> {
            // The empty name too: the index gives no name a meaning.
            if b == 0 { Vec::new() } else { vec![b'b', b] }
        }

        /// Keys that share prefixes and are prefixes of each other: a stem (empty, short, long)
        /// and a short tail from a small alphabet with the extreme bytes; or any bytes. 0..200.
        fn new_key() -> impl Strategy<Value = Vec<u8>> {
            let stem = prop_oneof![
                Just(Vec::new()),
                Just(b"a".to_vec()),
                Just(b"ab".to_vec()),
                Just(b"photos/".to_vec()),
                Just(b"photos/2024/".to_vec()),
                Just(vec![0u8; 3]),
                Just(vec![0xffu8; 150]),
            ];
            let byte = prop_oneof![Just(b'a'), Just(b'b'), Just(b'/'), Just(0u8), Just(0xffu8)];
            let tail = prop_oneof![3 => proptest::collection::vec(byte.clone(), 0..4), 1 => proptest::collection::vec(byte, 0..50)];
            prop_oneof![
                6 => (stem, tail).prop_map(|(mut s, t)| {
                    s.extend(t);
                    s
                }),
                1 => proptest::collection::vec(any::<u8>(), 0..200),
            ]
        }

        fn key() -> impl Strategy<Value = Key> {
            prop_oneof![any::<Pick>().prop_map(Key::Existing), new_key().prop_map(Key::New)]
        }

        fn location() -> impl Strategy<Value = Location> {
            let unit = crate::store::record::FRAME_ALIGN_BYTES as u64;
            let segment = prop_oneof![8 => 0..SEGMENTS, 1 => Just(u32::MAX)];
            let offset_units = prop_oneof![0u64..1 << 20, any::<u64>().prop_map(move |s| s / unit)];
            let frame_units = prop_oneof![1u64..100, 1..=u32::MAX as u64 / unit];
            (segment, offset_units, frame_units, 0..1u64 << 62, any::<bool>()).prop_map(
                move |(segment, offset, frame, data_len, chunked)| Location {
                    segment,
                    frame_len: (frame * unit) as u32,
                    offset: offset * unit,
                    lsn: 0,
                    data_len,
                    chunked,
                },
            )
        }

        fn op() -> impl Strategy<Value = Op> {
            let lsn_gap = prop_oneof![1u64..3, 1..1u64 << 40];
            prop_oneof![
                8 => (0..BUCKETS, key(), location(), lsn_gap).prop_map(|(bucket, key, location, lsn_gap)| Op::Put { bucket, key, location, lsn_gap }),
                1 => (0..BUCKETS, new_key(), 1usize..120).prop_map(|(bucket, stem, count)| Op::PutRun { bucket, stem, count }),
                4 => (0..BUCKETS, key()).prop_map(|(bucket, key)| Op::Delete { bucket, key }),
                1 => (0..BUCKETS, key(), 0usize..20).prop_map(|(bucket, prefix, prefix_len)| Op::DeletePrefix { bucket, prefix, prefix_len }),
                3 => (0..BUCKETS, key()).prop_map(|(bucket, key)| Op::Get { bucket, key }),
                3 => (0..BUCKETS, key(), 0usize..20, proptest::option::of(key()), prop_oneof![0usize..12, Just(usize::MAX)])
                    .prop_map(|(bucket, prefix, prefix_len, after, limit)| Op::List { bucket, prefix, prefix_len, after, limit }),
                1 => Just(Op::Iter),
            ]
        }

        fn resolve(model: &Model, bucket: &[u8], key: &Key) -> Vec<u8> {
            match key {
                Key::New(k) => k.clone(),
                Key::Existing(pick) => {
                    let keys: Vec<&Vec<u8>> = model.keys().filter(|(b, _)| b == bucket).map(|(_, k)| k).collect();
                    if keys.is_empty() { Vec::new() } else { keys[pick.index(keys.len())].clone() }
                }
            }
        }

        /// A prefix of a key: of one in the bucket, to hit runs of keys.
        fn resolve_prefix(model: &Model, bucket: &[u8], key: &Key, len: usize) -> Vec<u8> {
            let mut k = resolve(model, bucket, key);
            k.truncate(len);
            k
        }

        fn apply(index: &mut Index, model: &mut Model, lsn: &mut u64, op: &Op) {
            match op {
                Op::Put { bucket, key, location, lsn_gap } => {
                    let b = bucket_name(*bucket);
                    let k = resolve(model, &b, key);
                    *lsn += lsn_gap;
                    let location = Location { lsn: *lsn, ..*location };
                    index.put(&b, &k, location);
                    model.insert((b, k), location);
                }
                Op::PutRun { bucket, stem, count } => {
                    let b = bucket_name(*bucket);
                    for n in 0..*count {
                        let mut k = stem.clone();
                        k.extend_from_slice(format!("{n:04}").as_bytes());
                        *lsn += 1;
                        let location = Location {
                            segment: (n as u32) % SEGMENTS,
                            frame_len: 4096,
                            offset: n as u64 * 4096,
                            lsn: *lsn,
                            data_len: n as u64,
                            chunked: false,
                        };
                        index.put(&b, &k, location);
                        model.insert((b.clone(), k), location);
                    }
                }
                Op::Delete { bucket, key } => {
                    let b = bucket_name(*bucket);
                    let k = resolve(model, &b, key);
                    let expected = model.remove(&(b.clone(), k.clone())).is_some();
                    assert_eq!(index.delete(&b, &k), expected, "delete {b:?} {k:?}");
                }
                Op::DeletePrefix { bucket, prefix, prefix_len } => {
                    let b = bucket_name(*bucket);
                    let p = resolve_prefix(model, &b, prefix, *prefix_len);
                    let doomed: Vec<Vec<u8>> =
                        model.keys().filter(|(mb, k)| *mb == b && k.starts_with(&p)).map(|(_, k)| k.clone()).collect();
                    assert_eq!(index.delete_prefix(&b, &p), doomed.len() as u64, "delete prefix {b:?} {p:?}");
                    for k in doomed {
                        model.remove(&(b.clone(), k));
                    }
                }
                Op::Get { bucket, key } => {
                    let b = bucket_name(*bucket);
                    let k = resolve(model, &b, key);
                    assert_eq!(index.get(&b, &k), model.get(&(b.clone(), k.clone())).copied(), "get {b:?} {k:?}");
                }
                Op::List { bucket, prefix, prefix_len, after, limit } => {
                    let b = bucket_name(*bucket);
                    let p = resolve_prefix(model, &b, prefix, *prefix_len);
                    let after = after.as_ref().map(|a| resolve(model, &b, a));
                    let expected: Vec<(Box<[u8]>, Location)> = model
                        .iter()
                        .filter(|((mb, k), _)| *mb == b && k.starts_with(&p) && after.as_ref().is_none_or(|a| k > a))
                        .take(*limit)
                        .map(|((_, k), l)| (k.clone().into(), *l))
                        .collect();
                    assert_eq!(index.list(&b, &p, after.as_deref(), *limit), expected, "list {b:?} {p:?} after {after:?} limit {limit}");
                }
                Op::Iter => {
                    let listed: Vec<(Vec<u8>, Vec<u8>, Location)> = index.iter().map(|(b, k, l)| (b.to_vec(), k.to_vec(), *l)).collect();
                    let expected: Vec<(Vec<u8>, Vec<u8>, Location)> = model.iter().map(|((b, k), l)| (b.clone(), k.clone(), *l)).collect();
                    assert_eq!(listed, expected);
                }
            }
        }

        fn check(index: &Index, model: &Model) {
            index.check();
            assert_eq!(index.objects(), model.len() as u64);
            let mut buckets: Vec<&Vec<u8>> = model.keys().map(|(b, _)| b).collect();
            buckets.dedup();
            assert_eq!(index.buckets.len(), buckets.len(), "a bucket goes with its last key");
            let live = |segment: u32| model.values().filter(|l| l.segment == segment).map(|l| l.frame_len as u64).sum::<u64>();
            for segment in (0..SEGMENTS).chain([u32::MAX]) {
                assert_eq!(index.live_bytes(segment), live(segment), "live bytes of segment {segment}");
            }
            assert_eq!(index.live_bytes_total(), model.values().map(|l| l.frame_len as u64).sum::<u64>());
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
            #[test]
            fn index_matches_a_btreemap(ops in proptest::collection::vec(op(), 1..150)) {
                let (mut index, mut model, mut lsn) = (Index::default(), Model::new(), 0);
                for op in &ops {
                    apply(&mut index, &mut model, &mut lsn, op);
                    check(&index, &model);
                }
            }

            /// A walk for a segment's frames (compaction's), a slice at a time with the index
            /// changing between slices, finds every record of the segment that stays; a walk with
            /// nothing changing finds exactly the segment's records.
            #[test]
            fn frames_in_finds_every_record_that_stays(
                ops in proptest::collection::vec(op(), 1..150),
                segment in 0..SEGMENTS,
                keys_max in 1usize..40,
            ) {
                let (mut index, mut model, mut lsn) = (Index::default(), Model::new(), 0);
                let half = ops.len() / 2;
                for op in &ops[..half] {
                    apply(&mut index, &mut model, &mut lsn, op);
                }
                let in_segment = |model: &Model| -> Vec<((Vec<u8>, Vec<u8>), Location)> {
                    model.iter().filter(|(_, l)| l.segment == segment).map(|(k, l)| (k.clone(), *l)).collect()
                };
                let at_start = in_segment(&model);
                let (mut found, mut after, mut rest) = (Vec::new(), None, ops[half..].iter());
                loop {
                    after = index.frames_in(segment, after.as_ref(), keys_max, &mut found);
                    let Some(_) = after else { break };
                    if let Some(op) = rest.next() {
                        apply(&mut index, &mut model, &mut lsn, op);
                    }
                }
                for (key, l) in &at_start {
                    if model.get(key) == Some(l) {
                        prop_assert!(found.contains(&(l.offset, l.frame_len)), "{key:?} at {l:?} stayed but was not found");
                    }
                }
                for op in rest {
                    apply(&mut index, &mut model, &mut lsn, op);
                }
                let (mut found, mut after) = (Vec::new(), None);
                while let Some(a) = index.frames_in(segment, after.as_ref(), keys_max, &mut found) {
                    after = Some(a);
                }
                let mut expected: Vec<(u64, u32)> = in_segment(&model).iter().map(|(_, l)| (l.offset, l.frame_len)).collect();
                expected.sort_unstable();
                found.sort_unstable();
                prop_assert_eq!(found, expected);
            }
        }
    }
}
