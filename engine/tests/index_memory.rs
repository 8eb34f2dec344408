//! Memory and time per object of the store's in-memory index (engine/src/store/index.rs).
//!
//! A counting global allocator measures the heap the index holds for 1,000,000 objects with
//! 16-byte keys, beyond the 16 key bytes themselves. The store issue's goal is at most 32 bytes;
//! the figures are printed beside those of the design it replaced (a `BTreeMap` per bucket), measured
//! in the same run, and not asserted (performance is measured, not asserted: a bound here would
//! depend on the allocator and the key mix). Run with `--release -- --nocapture` to read them.
#![allow(clippy::disallowed_methods)] // measures wall time on purpose

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use engine::rng::Prng;
use engine::store::index::{Index, Location};

/// System's allocator, counting the live bytes asked for and the live bytes malloc really holds
/// (usable size plus glibc's 8-byte chunk header), so the figure includes rounding to chunk sizes.
struct Counting;

static REQUESTED_BYTES: AtomicUsize = AtomicUsize::new(0);
static HEAP_BYTES: AtomicUsize = AtomicUsize::new(0);
const MALLOC_CHUNK_HEADER_BYTES: usize = 8;

fn counted(ptr: *mut u8, size: usize) {
    if !ptr.is_null() {
        REQUESTED_BYTES.fetch_add(size, Ordering::Relaxed);
        // SAFETY: ptr was just returned by System (malloc or posix_memalign) and is live.
        let usable = unsafe { libc::malloc_usable_size(ptr.cast()) };
        HEAP_BYTES.fetch_add(usable + MALLOC_CHUNK_HEADER_BYTES, Ordering::Relaxed);
    }
}

fn uncounted(ptr: *mut u8, size: usize) {
    REQUESTED_BYTES.fetch_sub(size, Ordering::Relaxed);
    // SAFETY: ptr is live until the caller frees it, after this call.
    let usable = unsafe { libc::malloc_usable_size(ptr.cast()) };
    HEAP_BYTES.fetch_sub(usable + MALLOC_CHUNK_HEADER_BYTES, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to System unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc(layout) };
        counted(ptr, layout.size());
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        counted(ptr, layout.size());
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        uncounted(ptr, layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        uncounted(ptr, layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if new.is_null() {
            counted(ptr, layout.size()); // the old block is still live
        } else {
            counted(new, new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const OBJECTS: usize = 1_000_000;
const KEY_BYTES: usize = 16;
/// Frames per 1 GiB segment of 4 KiB frames.
const FRAMES_PER_SEGMENT: u64 = 1 << 18;
/// Lsns and segment ids of a store that has run for a while, so that they are not flattered by
/// starting at 1 (an lsn past 2^32 and a four-digit segment id).
const LSN_BASE: u64 = 1 << 32;
const SEGMENT_BASE: u32 = 1000;

fn location(n: u64) -> Location {
    Location {
        segment: SEGMENT_BASE + (n / FRAMES_PER_SEGMENT) as u32,
        frame_len: 4096,
        offset: (n % FRAMES_PER_SEGMENT) * 4096,
        lsn: LSN_BASE + n,
        data_len: 100 + n % 3000,
        chunked: false,
    }
}

fn random_keys(seed: u64) -> Vec<[u8; KEY_BYTES]> {
    let mut rng = Prng::new(seed);
    (0..OBJECTS)
        .map(|_| {
            let mut k = [0u8; KEY_BYTES];
            k[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
            k[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
            k
        })
        .collect()
}

/// "obj/" and twelve digits, in order: what a bulk upload of numbered files looks like.
fn sequential_keys() -> Vec<[u8; KEY_BYTES]> {
    (0..OBJECTS)
        .map(|n| {
            let s = format!("obj/{n:012}");
            s.as_bytes().try_into().expect("16 bytes")
        })
        .collect()
}

fn ns_per(start: Instant, ops: usize) -> f64 {
    start.elapsed().as_nanos() as f64 / ops as f64
}

fn live() -> (usize, usize) {
    (REQUESTED_BYTES.load(Ordering::Relaxed), HEAP_BYTES.load(Ordering::Relaxed))
}

fn beyond_key(before: (usize, usize), after: (usize, usize), objects: usize) -> (f64, f64) {
    let per = |b: usize, a: usize| (a as f64 - b as f64) / objects as f64 - KEY_BYTES as f64;
    (per(before.0, after.0), per(before.1, after.1))
}

/// What is measured: the index, and the design it replaced.
trait Subject: Default {
    fn put(&mut self, bucket: &[u8], key: &[u8], location: Location);
    fn get(&self, bucket: &[u8], key: &[u8]) -> Option<Location>;
    fn delete(&mut self, bucket: &[u8], key: &[u8]) -> bool;
    fn list(&self, bucket: &[u8], prefix: &[u8], start_after: Option<&[u8]>, limit: usize) -> Vec<(Box<[u8]>, Location)>;
    fn objects(&self) -> u64;
}

impl Subject for Index {
    fn put(&mut self, bucket: &[u8], key: &[u8], location: Location) {
        Index::put(self, bucket, key, location)
    }
    fn get(&self, bucket: &[u8], key: &[u8]) -> Option<Location> {
        Index::get(self, bucket, key)
    }
    fn delete(&mut self, bucket: &[u8], key: &[u8]) -> bool {
        Index::delete(self, bucket, key)
    }
    fn list(&self, bucket: &[u8], prefix: &[u8], start_after: Option<&[u8]>, limit: usize) -> Vec<(Box<[u8]>, Location)> {
        Index::list(self, bucket, prefix, start_after, limit)
    }
    fn objects(&self) -> u64 {
        Index::objects(self)
    }
}

type Keys = BTreeMap<Box<[u8]>, Location>;

/// The index as it was before pages (commit 23a729a): per bucket, a `BTreeMap` from boxed key to
/// `Location`, with the same live-bytes map.
#[derive(Default)]
struct BTreeIndex {
    buckets: BTreeMap<Box<[u8]>, Keys>,
    objects: u64,
    live_bytes: BTreeMap<u32, u64>,
}

impl Subject for BTreeIndex {
    fn put(&mut self, bucket: &[u8], key: &[u8], location: Location) {
        let keys = match self.buckets.get_mut(bucket) {
            Some(k) => k,
            None => self.buckets.entry(bucket.into()).or_default(),
        };
        match keys.get_mut(key) {
            Some(l) => {
                assert!(l.lsn < location.lsn);
                let old = std::mem::replace(l, location);
                *self.live_bytes.get_mut(&old.segment).expect("tracked") -= old.frame_len as u64;
            }
            None => {
                keys.insert(key.into(), location);
                self.objects += 1;
            }
        }
        *self.live_bytes.entry(location.segment).or_default() += location.frame_len as u64;
    }
    fn get(&self, bucket: &[u8], key: &[u8]) -> Option<Location> {
        self.buckets.get(bucket)?.get(key).copied()
    }
    fn delete(&mut self, bucket: &[u8], key: &[u8]) -> bool {
        let Some(keys) = self.buckets.get_mut(bucket) else { return false };
        let Some(old) = keys.remove(key) else { return false };
        self.objects -= 1;
        *self.live_bytes.get_mut(&old.segment).expect("tracked") -= old.frame_len as u64;
        if keys.is_empty() {
            self.buckets.remove(bucket);
        }
        true
    }
    fn list(&self, bucket: &[u8], prefix: &[u8], start_after: Option<&[u8]>, limit: usize) -> Vec<(Box<[u8]>, Location)> {
        use std::ops::Bound;
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
    fn objects(&self) -> u64 {
        self.objects
    }
}

fn measure<S: Subject>(name: &str, keys: &[[u8; KEY_BYTES]], probe_order: &[usize]) {
    const BUCKET: &[u8] = b"bucket";
    let before = live();
    let mut index = S::default();
    let start = Instant::now();
    for (n, k) in keys.iter().enumerate() {
        index.put(BUCKET, k, location(n as u64));
    }
    let put_ns = ns_per(start, keys.len());
    let full = live();
    assert_eq!(index.objects(), keys.len() as u64);

    let start = Instant::now();
    for &n in probe_order {
        assert_eq!(black_box(index.get(BUCKET, &keys[n])), Some(location(n as u64)));
    }
    let get_ns = ns_per(start, probe_order.len());

    let start = Instant::now();
    let mut listed = 0;
    let mut after: Option<Box<[u8]>> = None;
    loop {
        let page = index.list(BUCKET, b"", after.as_deref(), 1000);
        listed += page.len();
        match page.last() {
            Some((k, _)) => after = Some(k.clone()),
            None => break,
        }
    }
    let list_ns = ns_per(start, listed);
    assert_eq!(listed, keys.len());
    drop(after);

    let start = Instant::now();
    for &n in probe_order.iter().filter(|&&n| n % 2 == 0) {
        assert!(index.delete(BUCKET, &keys[n]));
    }
    let delete_ns = ns_per(start, keys.len() / 2);
    let half = live();
    let remaining = index.objects() as usize;
    drop(index);
    let leaked = live().0 as i64 - before.0 as i64;
    assert_eq!(leaked, 0, "the index frees everything it allocated");
    let (requested, heap) = beyond_key(before, full, keys.len());
    let (requested_half, heap_half) = beyond_key(before, half, remaining);
    assert!(requested.is_finite(), "the figure is computed");
    assert!(heap.is_finite(), "the figure is computed");
    println!(
        "index {name}: {} objects: {requested:.1} bytes/object beyond the key asked of the allocator, {heap:.1} held by malloc; \
         after deleting half: {requested_half:.1} / {heap_half:.1}; put {put_ns:.0} ns, get {get_ns:.0} ns, \
         list {list_ns:.0} ns/object, delete {delete_ns:.0} ns",
        keys.len()
    );
}

/// Both key mixes and both designs in one test, so that no other test's allocations run beside
/// the counters and the designs are timed under the same load.
#[test]
fn bytes_per_object_beyond_key() {
    let mut rng = Prng::new(7);
    let mut probe_order: Vec<usize> = (0..OBJECTS).collect();
    for i in (1..probe_order.len()).rev() {
        probe_order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for (mix, keys) in [("random 16-byte keys", random_keys(1)), ("sequential 16-byte keys", sequential_keys())] {
        measure::<Index>(&format!("paged, {mix}"), &keys, &probe_order);
        measure::<BTreeIndex>(&format!("BTreeMap (before), {mix}"), &keys, &probe_order);
    }
}
