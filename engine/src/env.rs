//! The boundary between corestore's logic and the world: storage, time and randomness.
//!
//! Code above the engine (the store, raftlog's driver, s3front) is written against [`Env`], so
//! the deterministic simulator (`sim`) can drive the very same code with virtual time and
//! fault-injecting storage. The Linux implementation ([`LinuxEnv`]) is the only one that touches
//! the OS clock, files or randomness. The network joins this bundle with the net crate.

use std::future::Future;
use std::path::Path;
use std::rc::Rc;

use crate::arena::{Arena, ArenaExhausted, FixedBuf};
use crate::error::{IoError, OpenError};
use crate::time::Instant;

/// How to open a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Must exist.
    Existing,
    /// Created if missing, kept if present.
    Create,
    /// Created if missing, emptied if present.
    Truncate,
}

/// Sector-aligned file I/O on owned buffers. Offsets and lengths are multiples of
/// [`crate::SECTOR_SIZE`]; buffers come from the storage's arena.
pub trait File {
    /// Reads `len` bytes at `offset` into `buf`; `buf.len()` is set to the bytes read.
    fn read_at(&self, buf: FixedBuf, offset: u64, len: usize) -> impl Future<Output = (Result<usize, IoError>, FixedBuf)>;
    /// Writes `buf.len()` bytes at `offset`. Not durable until [`File::sync_data`] returns.
    fn write_at(&self, buf: FixedBuf, offset: u64) -> impl Future<Output = (Result<usize, IoError>, FixedBuf)>;
    /// Writes `buf.len()` bytes at `offset`, durable when it completes (RWF_DSYNC: the data and
    /// whatever metadata reading it back needs). One operation instead of a write and a sync.
    fn write_at_durable(&self, buf: FixedBuf, offset: u64) -> impl Future<Output = (Result<usize, IoError>, FixedBuf)>;
    /// Makes every completed write durable (fdatasync).
    fn sync_data(&self) -> impl Future<Output = Result<(), IoError>>;
    /// Reserves space so later writes in range do not fail with ENOSPC (fallocate).
    fn allocate(&self, len: u64) -> Result<(), IoError>;
    /// `allocate`, without blocking the core.
    fn allocate_async(&self, len: u64) -> impl Future<Output = Result<(), IoError>> {
        std::future::ready(self.allocate(len))
    }
    /// Cuts the file to `len` bytes, freeing the blocks past it (ftruncate).
    fn truncate(&self, len: u64) -> Result<(), IoError>;
    /// `truncate`, without blocking the core.
    fn truncate_async(&self, len: u64) -> impl Future<Output = Result<(), IoError>> {
        std::future::ready(self.truncate(len))
    }
    /// Current size in bytes.
    fn size(&self) -> Result<u64, IoError>;
    fn path(&self) -> &Path;
}

/// The O_DIRECT contract every `File` implementation checks before I/O: a broken one is a bug
/// in the caller, so it asserts (production and simulator alike).
pub(crate) fn assert_dma_aligned(offset: u64, len: usize, buf: &FixedBuf) {
    assert_eq!(offset % crate::SECTOR_SIZE as u64, 0, "DMA offset {offset} not sector-aligned");
    assert_eq!(len % crate::SECTOR_SIZE, 0, "DMA length {len} not sector-aligned");
    assert!(len <= buf.capacity(), "DMA length {len} beyond buffer capacity {}", buf.capacity());
}

/// A set of files on one core.
pub trait Storage {
    type File: File;
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Self::File, OpenError>;
    fn remove(&self, path: &Path) -> Result<(), OpenError>;
    /// Renames `from` to `to`, replacing `to` (durable after `sync_dir`).
    fn rename(&self, from: &Path, to: &Path) -> Result<(), OpenError>;
    /// The files directly in `dir`, sorted by path.
    fn list(&self, dir: &Path) -> Result<Vec<std::path::PathBuf>, OpenError>;
    /// Creates `dir` (and parents) if missing.
    fn create_dir(&self, dir: &Path) -> Result<(), OpenError>;
    /// Makes the creation and removal of files in `dir` durable (fsync of the directory).
    fn sync_dir(&self, dir: &Path) -> Result<(), OpenError>;
    /// `open` without blocking the core: on a real ring the kernel opens (and for `Truncate`
    /// creates) the file on its own threads. A filesystem's metadata work waits on its journal,
    /// which a core serving requests must not.
    fn open_async(&self, path: &Path, mode: OpenMode) -> impl Future<Output = Result<Self::File, OpenError>> {
        std::future::ready(self.open(path, mode))
    }
    /// `rename`, without blocking the core.
    fn rename_async(&self, from: &Path, to: &Path) -> impl Future<Output = Result<(), OpenError>> {
        std::future::ready(self.rename(from, to))
    }
    /// `remove`, without blocking the core.
    fn remove_async(&self, path: &Path) -> impl Future<Output = Result<(), OpenError>> {
        std::future::ready(self.remove(path))
    }
    /// `sync_dir`, without blocking the core.
    fn sync_dir_async(&self, dir: &Path) -> impl Future<Output = Result<(), OpenError>> {
        std::future::ready(self.sync_dir(dir))
    }
    fn arena(&self) -> &Arena;
    fn alloc(&self, len: usize) -> Result<FixedBuf, ArenaExhausted> {
        self.arena().alloc(len)
    }
}

/// Everything one core's logic may use from the world.
pub trait Env: 'static {
    type Storage: Storage;
    fn storage(&self) -> &Self::Storage;
    /// Monotonic time on this core (virtual in simulation).
    fn now(&self) -> Instant;
    /// A random number: OS randomness in production, seeded in simulation.
    fn random_u64(&self) -> u64;
    /// This core's index and the number of cores.
    fn core(&self) -> usize;
    fn cores(&self) -> usize;
}

/// The production environment of one core: its ring, its arena, its DMA files.
#[derive(Clone)]
pub struct LinuxEnv {
    pub(crate) storage: crate::dma::DmaStorage,
    pub(crate) core: usize,
    pub(crate) cores: usize,
    rng: Rc<std::cell::Cell<u64>>,
}

impl LinuxEnv {
    pub(crate) fn new(storage: crate::dma::DmaStorage, core: usize, cores: usize) -> LinuxEnv {
        let mut seed = [0u8; 8];
        // SAFETY: getrandom writes at most 8 bytes into our buffer.
        let n = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), 8, 0) };
        assert_eq!(n, 8, "getrandom failed");
        LinuxEnv { storage, core, cores, rng: Rc::new(std::cell::Cell::new(u64::from_ne_bytes(seed))) }
    }

    pub fn ring(&self) -> &Rc<crate::uring::Ring> {
        &self.storage.ring
    }
}

impl Env for LinuxEnv {
    type Storage = crate::dma::DmaStorage;
    fn storage(&self) -> &Self::Storage {
        &self.storage
    }
    fn now(&self) -> Instant {
        crate::uring::monotonic_now()
    }
    fn random_u64(&self) -> u64 {
        let (v, next) = crate::rng::splitmix64(self.rng.get());
        self.rng.set(next);
        v
    }
    fn core(&self) -> usize {
        self.core
    }
    fn cores(&self) -> usize {
        self.cores
    }
}
