//! The per-core buffer arena: 4 KiB-aligned buffers carved out of a few large mappings made at
//! start-up, one mapping per size class, each registered with the core's ring as one fixed
//! buffer (its index is the class index). Allocation is a pop from a free list; a buffer goes
//! back to its list when the last owner drops it, which for in-flight I/O is after the kernel
//! has posted the completion (see `uring::Op`).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use crate::limits::{BUFFER_SIZE_MAX, SECTOR_SIZE};

/// One size class: `count` buffers of `size_bytes` each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassConfig {
    pub size_bytes: usize,
    pub count: usize,
}

/// The arena's shape; everything is allocated from it at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArenaConfig {
    /// Size classes, ascending by size.
    pub classes: Vec<ClassConfig>,
}

impl ArenaConfig {
    /// 4 KiB × 1024, 64 KiB × 64, 1 MiB × 32: 40 MiB per core.
    pub fn default_per_core() -> ArenaConfig {
        ArenaConfig {
            classes: vec![
                ClassConfig { size_bytes: 4 << 10, count: 1024 },
                ClassConfig { size_bytes: 64 << 10, count: 64 },
                ClassConfig { size_bytes: 1 << 20, count: 32 },
            ],
        }
    }

    pub fn total_bytes(&self) -> usize {
        self.classes.iter().map(|c| c.size_bytes * c.count).sum()
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.classes.is_empty() {
            return Err("arena has no size classes".into());
        }
        if self.classes.len() > u16::MAX as usize {
            return Err("too many arena size classes".into());
        }
        for (i, c) in self.classes.iter().enumerate() {
            if c.size_bytes == 0 || c.size_bytes % SECTOR_SIZE != 0 {
                return Err(format!("arena class {i}: size {} is not a positive multiple of {SECTOR_SIZE}", c.size_bytes));
            }
            if c.size_bytes > BUFFER_SIZE_MAX {
                return Err(format!("arena class {i}: size {} exceeds {BUFFER_SIZE_MAX}", c.size_bytes));
            }
            if c.count == 0 || c.count > u32::MAX as usize {
                return Err(format!("arena class {i}: count {} out of range", c.count));
            }
            if i > 0 && self.classes[i - 1].size_bytes >= c.size_bytes {
                return Err(format!("arena classes must ascend by size (class {i})"));
            }
        }
        Ok(())
    }
}

struct Class {
    base: *mut u8,
    map_len: usize,
    size_bytes: usize,
    count: usize,
    free: RefCell<Vec<u32>>,
}

impl Drop for Class {
    fn drop(&mut self) {
        // SAFETY: base/map_len came from our mmap; every FixedBuf holds an Rc to the arena, so no
        // buffer outlives the mapping (and the ring unregisters before the arena drops).
        unsafe { libc::munmap(self.base.cast(), self.map_len) };
    }
}

struct ArenaInner {
    classes: Vec<Class>,
    /// Tasks waiting in `alloc_wait`; woken whenever a buffer comes back.
    waiters: RefCell<Vec<std::task::Waker>>,
}

/// A handle to one core's arena. Cheap to clone; not `Send`.
#[derive(Clone)]
pub struct Arena {
    inner: Rc<ArenaInner>,
}

/// The arena has no free buffer of a size that fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer arena exhausted for {len} bytes")]
pub struct ArenaExhausted {
    pub len: usize,
}

impl Arena {
    /// Maps and pre-faults every class. Fails only if the kernel refuses the memory.
    pub fn new(config: &ArenaConfig) -> std::io::Result<Arena> {
        config.validate().map_err(std::io::Error::other)?;
        let mut classes = Vec::with_capacity(config.classes.len());
        for c in &config.classes {
            let (base, map_len) = map_class(c.size_bytes * c.count)?;
            // Pop order hands out low addresses first (reverse list).
            let free = (0..c.count as u32).rev().collect();
            classes.push(Class { base, map_len, size_bytes: c.size_bytes, count: c.count, free: RefCell::new(free) });
        }
        Ok(Arena { inner: Rc::new(ArenaInner { classes, waiters: RefCell::new(Vec::new()) }) })
    }

    /// A buffer of at least `len` bytes (its capacity is its class size), with length `len`.
    pub fn alloc(&self, len: usize) -> Result<FixedBuf, ArenaExhausted> {
        for (index, class) in self.inner.classes.iter().enumerate() {
            if class.size_bytes < len {
                continue;
            }
            if let Some(slot) = class.free.borrow_mut().pop() {
                return Ok(FixedBuf { arena: self.inner.clone(), class: index as u16, slot, len });
            }
        }
        Err(ArenaExhausted { len })
    }

    /// Like `alloc`, but waits for a buffer to come back when none fits. Only for lengths some
    /// class can hold; a length no class holds is an error at once.
    pub async fn alloc_wait(&self, len: usize) -> Result<FixedBuf, ArenaExhausted> {
        if !self.inner.classes.iter().any(|c| c.size_bytes >= len) {
            return Err(ArenaExhausted { len });
        }
        std::future::poll_fn(|cx| match self.alloc(len) {
            Ok(b) => std::task::Poll::Ready(Ok(b)),
            Err(_) => {
                self.inner.waiters.borrow_mut().push(cx.waker().clone());
                std::task::Poll::Pending
            }
        })
        .await
    }

    /// The iovecs to register with a ring, one per class; index = class index.
    pub fn iovecs(&self) -> Vec<libc::iovec> {
        self.inner.classes.iter().map(|c| libc::iovec { iov_base: c.base.cast(), iov_len: c.map_len }).collect()
    }

    /// Free buffers per class.
    pub fn free_counts(&self) -> Vec<usize> {
        self.inner.classes.iter().map(|c| c.free.borrow().len()).collect()
    }

    /// Total buffers per class.
    pub fn capacities(&self) -> Vec<usize> {
        self.inner.classes.iter().map(|c| c.count).collect()
    }

    pub fn total_bytes(&self) -> usize {
        self.inner.classes.iter().map(|c| c.map_len).sum()
    }
}

/// Transparent huge page size on x86_64 and aarch64 (4 KiB granule).
const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Maps `len` bytes for one class, 2 MiB-aligned and advised as huge pages, then faults every
/// page in. Physically contiguous buffers matter for large I/O: a 1 MiB buffer of scattered
/// 4 KiB pages is 256 DMA segments, more than many devices take in one request (virtio-blk here:
/// 254), so the block layer splits it; see kernel-notes.md. Falls back to small pages silently
/// where THP is off: correctness does not depend on it.
fn map_class(len: usize) -> std::io::Result<(*mut u8, usize)> {
    let map_len = len.div_ceil(HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES;
    let reserve = map_len + HUGE_PAGE_BYTES;
    // SAFETY: anonymous private mapping of fresh memory.
    let raw = unsafe {
        libc::mmap(std::ptr::null_mut(), reserve, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
    };
    if raw == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let raw = raw as usize;
    let base = raw.next_multiple_of(HUGE_PAGE_BYTES);
    // SAFETY: unmapping the unaligned head and the tail of our own reservation.
    unsafe {
        if base > raw {
            libc::munmap(raw as *mut libc::c_void, base - raw);
        }
        let tail = raw + reserve - (base + map_len);
        if tail > 0 {
            libc::munmap((base + map_len) as *mut libc::c_void, tail);
        }
        // Advice only: an error (THP compiled out) leaves small pages, which still work.
        libc::madvise(base as *mut libc::c_void, map_len, libc::MADV_HUGEPAGE);
    }
    // Fault everything in now so the first I/O does not pay for it and resident memory is flat
    // from the start.
    for page in (0..map_len).step_by(SECTOR_SIZE) {
        // SAFETY: inside our mapping.
        unsafe { ((base + page) as *mut u8).write_volatile(0) };
    }
    Ok((base as *mut u8, map_len))
}

/// An owned, aligned buffer from an [`Arena`]. `len` is how many bytes are valid (for a write:
/// how many to write; after a read: how many were read); capacity is the class size.
pub struct FixedBuf {
    arena: Rc<ArenaInner>,
    class: u16,
    slot: u32,
    len: usize,
}

impl FixedBuf {
    fn class(&self) -> &Class {
        &self.arena.classes[self.class as usize]
    }

    /// Index of the registered buffer this one lies in (for ReadFixed/WriteFixed).
    pub fn buf_index(&self) -> u16 {
        self.class
    }

    pub fn capacity(&self) -> usize {
        self.class().size_bytes
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.capacity(), "set_len {len} beyond capacity {}", self.capacity());
        self.len = len;
    }

    pub fn as_ptr(&self) -> *const u8 {
        let c = self.class();
        // SAFETY: slot < count, so the offset stays inside the mapping.
        unsafe { c.base.add(self.slot as usize * c.size_bytes) }
    }

    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.as_ptr() as *mut u8
    }

    /// The valid bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the slot's memory is ours alone while this FixedBuf lives, len <= capacity.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// The whole capacity, read-only.
    pub fn as_slice_capacity(&self) -> &[u8] {
        // SAFETY: the slot's memory is ours alone while this FixedBuf lives.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.capacity()) }
    }

    /// The whole capacity, for filling before a write.
    pub fn as_mut_capacity(&mut self) -> &mut [u8] {
        let cap = self.capacity();
        // SAFETY: as above; &mut self guarantees exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), cap) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.as_mut_capacity()[..len]
    }
}

impl Drop for FixedBuf {
    fn drop(&mut self) {
        let class = &self.arena.classes[self.class as usize];
        let mut free = class.free.borrow_mut();
        debug_assert!(!free.contains(&self.slot), "double free of arena slot");
        assert!(free.len() < class.count, "arena free list overflow");
        free.push(self.slot);
        drop(free);
        let waiters = std::mem::take(&mut *self.arena.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }
}

impl fmt::Debug for FixedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBuf").field("class", &self.class).field("slot", &self.slot).field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> ArenaConfig {
        ArenaConfig { classes: vec![ClassConfig { size_bytes: 4096, count: 8 }, ClassConfig { size_bytes: 16384, count: 4 }] }
    }

    #[test]
    fn validate_rejects_bad_shapes() {
        let check = |classes: Vec<(usize, usize)>, ok: bool| {
            let c = ArenaConfig { classes: classes.into_iter().map(|(s, n)| ClassConfig { size_bytes: s, count: n }).collect() };
            assert_eq!(c.validate().is_ok(), ok, "{c:?}");
        };
        check(vec![(4096, 1)], true);
        check(vec![], false);
        check(vec![(4095, 1)], false);
        check(vec![(4096, 0)], false);
        check(vec![(8192, 1), (4096, 1)], false);
        check(vec![(BUFFER_SIZE_MAX + 4096, 1)], false);
    }

    #[test]
    fn smallest_fitting_class_then_larger_when_exhausted() {
        let a = Arena::new(&small()).expect("arena");
        let b = a.alloc(100).expect("alloc");
        assert_eq!(b.capacity(), 4096);
        assert_eq!(b.len(), 100);
        let mut held: Vec<_> = (0..7).map(|_| a.alloc(4096).expect("alloc")).collect();
        let spill = a.alloc(4096).expect("spills into the 16 KiB class");
        assert_eq!(spill.capacity(), 16384);
        held.push(spill);
        held.extend((0..3).map(|_| a.alloc(1).expect("alloc")));
        assert_eq!(a.alloc(1).unwrap_err(), ArenaExhausted { len: 1 });
        assert_eq!(a.alloc(16385).unwrap_err(), ArenaExhausted { len: 16385 });
        drop(held);
        drop(b);
        assert_eq!(a.free_counts(), a.capacities());
    }

    #[derive(Debug, Clone)]
    enum Step {
        Alloc(usize),
        Free(usize),
        Write(usize, u8),
    }

    proptest! {
        /// Against a model: live buffers never overlap, are aligned, keep their contents, and every
        /// buffer comes back to the free list exactly once.
        #[test]
        fn arena_model(steps in proptest::collection::vec(prop_oneof![
            (1usize..20000).prop_map(Step::Alloc),
            any::<usize>().prop_map(Step::Free),
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Step::Write(i, b)),
        ], 1..200)) {
            let a = Arena::new(&small()).expect("arena");
            let mut live: Vec<(FixedBuf, u8)> = Vec::new();
            for step in steps {
                match step {
                    Step::Alloc(len) => match a.alloc(len) {
                        Ok(mut b) => {
                            prop_assert_eq!(b.as_ptr() as usize % SECTOR_SIZE, 0);
                            prop_assert!(b.capacity() >= len);
                            let start = b.as_ptr() as usize;
                            for (o, _) in &live {
                                let os = o.as_ptr() as usize;
                                prop_assert!(start + b.capacity() <= os || os + o.capacity() <= start, "overlap");
                            }
                            b.as_mut_capacity().fill(0);
                            live.push((b, 0));
                        }
                        Err(_) => {
                            let fits = small().classes.iter().enumerate().any(|(i, c)| {
                                c.size_bytes >= len && live.iter().filter(|(b, _)| b.buf_index() as usize == i).count() < c.count
                            });
                            prop_assert!(!fits, "exhausted although a class had room");
                        }
                    },
                    Step::Free(i) if !live.is_empty() => { live.swap_remove(i % live.len()); }
                    Step::Write(i, byte) if !live.is_empty() => {
                        let k = i % live.len();
                        live[k].0.as_mut_capacity().fill(byte);
                        live[k].1 = byte;
                    }
                    _ => {}
                }
                for (b, byte) in &live {
                    let cap = b.capacity();
                    // SAFETY: reading our own live buffer's capacity.
                    let all = unsafe { std::slice::from_raw_parts(b.as_ptr(), cap) };
                    prop_assert!(all.iter().all(|x| x == byte), "buffer contents changed under its owner");
                }
            }
            drop(live);
            prop_assert_eq!(a.free_counts(), a.capacities());
        }
    }
}
