//! The deterministic simulator: virtual time and fault-injecting storage behind the same
//! [`Env`] and [`Driver`] as production. One seed fixes every latency, every fault and every
//! completion order, so any failing run replays exactly.
//!
//! Storage model (what the store's format must survive; see engine/docs/format.md later):
//! - a completed write is visible to reads at once but is only *volatile* until a sync;
//! - concurrent operations complete in a random order (latencies are drawn per op);
//! - a crash keeps each unsynced "atom" (`torn_unit_bytes`) of every file independently with
//!   probability 1/2: unsynced writes are lost, reordered and torn;
//! - reads, writes and syncs fail with EIO at configured rates; a failed write may have written
//!   some atoms; a failed sync loses an arbitrary subset of what it covered (Linux fsyncgate);
//! - writes past the disk capacity fail with ENOSPC;
//! - bits flip at rest at a configured rate;
//! - a crash undoes every file creation, rename and removal since its directory's last sync
//!   (truncation, `open` with `OpenMode::Truncate` and `File::truncate`, is durable at once).

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::arena::{Arena, ArenaConfig, FixedBuf};
use crate::env::{Env, File, OpenMode, Storage};
use crate::error::{IoError, OpenError};
use crate::executor::{Driver, Park};
use crate::limits::SECTOR_SIZE;
use crate::rng::Prng;
use crate::time::Instant;

/// Fault rates are per million operations.
#[derive(Clone, Debug)]
pub struct FaultConfig {
    pub read_eio_ppm: u32,
    pub write_eio_ppm: u32,
    pub sync_eio_ppm: u32,
    /// Chance per read that one random bit of one file flips at rest.
    pub bitflip_ppm: u32,
    pub latency_ns_min: u64,
    pub latency_ns_max: u64,
    pub capacity_bytes: u64,
    pub torn_unit_bytes: usize,
}

impl FaultConfig {
    pub fn none() -> FaultConfig {
        FaultConfig {
            read_eio_ppm: 0,
            write_eio_ppm: 0,
            sync_eio_ppm: 0,
            bitflip_ppm: 0,
            latency_ns_min: 10_000,
            latency_ns_max: 200_000,
            capacity_bytes: u64::MAX,
            torn_unit_bytes: 512,
        }
    }

    /// Rates drawn from the seed, so different seeds explore different mixes.
    pub fn random(rng: &mut Prng) -> FaultConfig {
        FaultConfig {
            read_eio_ppm: rng.below(20_000) as u32,
            write_eio_ppm: rng.below(20_000) as u32,
            sync_eio_ppm: rng.below(20_000) as u32,
            bitflip_ppm: rng.below(5_000) as u32,
            latency_ns_min: rng.range(1_000, 50_000),
            latency_ns_max: rng.range(50_000, 5_000_000),
            capacity_bytes: if rng.chance(300_000) { rng.range(64 << 10, 4 << 20) } else { u64::MAX },
            torn_unit_bytes: [512, 4096][rng.below(2) as usize],
        }
    }
}

#[derive(Default, Debug, Clone, Copy)]
pub struct SimStats {
    pub reads: u64,
    pub writes: u64,
    pub syncs: u64,
    pub eio: u64,
    pub enospc: u64,
    pub bitflips: u64,
    pub crashes: u64,
}

struct Event {
    at: Instant,
    seq: u64,
    action: Box<dyn FnOnce(&SimWorld)>,
}

impl PartialEq for Event {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Event {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Default)]
struct FileData {
    /// What reads see.
    volatile: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Atoms of `volatile` not yet in `durable`.
    dirty: BTreeSet<u64>,
}

/// The simulated world of one core: its clock, its disk, its pending completions.
pub struct SimWorld {
    seed: u64,
    now: Cell<Instant>,
    rng: RefCell<Prng>,
    events: RefCell<BinaryHeap<Reverse<Event>>>,
    seq: Cell<u64>,
    files: RefCell<HashMap<PathBuf, Rc<RefCell<FileData>>>>,
    /// The names a crash keeps: as of each directory's last sync (creating, renaming and
    /// removing a file change `files` only).
    names_durable: RefCell<HashMap<PathBuf, Rc<RefCell<FileData>>>>,
    faults: RefCell<FaultConfig>,
    stats: Cell<SimStats>,
}

impl SimWorld {
    pub fn new(seed: u64, faults: FaultConfig) -> Rc<SimWorld> {
        assert!(faults.latency_ns_min <= faults.latency_ns_max);
        assert!(faults.torn_unit_bytes > 0 && SECTOR_SIZE.is_multiple_of(faults.torn_unit_bytes));
        Rc::new(SimWorld {
            seed,
            // Start far from zero so that nothing depends on time starting at 0.
            now: Cell::new(Instant::from_ns(1_000_000_000 + (seed % 1_000_000))),
            rng: RefCell::new(Prng::new(seed)),
            events: RefCell::new(BinaryHeap::new()),
            seq: Cell::new(0),
            files: RefCell::new(HashMap::new()),
            names_durable: RefCell::new(HashMap::new()),
            faults: RefCell::new(faults),
            stats: Cell::new(SimStats::default()),
        })
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn stats(&self) -> SimStats {
        self.stats.get()
    }

    pub fn set_faults(&self, faults: FaultConfig) {
        *self.faults.borrow_mut() = faults;
    }

    pub fn random_u64(&self) -> u64 {
        self.rng.borrow_mut().next_u64()
    }

    fn chance(&self, ppm: u32) -> bool {
        ppm > 0 && self.rng.borrow_mut().chance(ppm)
    }

    fn stat(&self, f: impl FnOnce(&mut SimStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    fn schedule(&self, action: Box<dyn FnOnce(&SimWorld)>) {
        let (lo, hi) = {
            let f = self.faults.borrow();
            (f.latency_ns_min, f.latency_ns_max)
        };
        let delay = self.rng.borrow_mut().range(lo, hi);
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        let at = Instant::from_ns(self.now.get().ns + delay);
        self.events.borrow_mut().push(Reverse(Event { at, seq, action }));
    }

    fn run_due(&self) {
        loop {
            let event = {
                let mut events = self.events.borrow_mut();
                match events.peek() {
                    Some(Reverse(e)) if e.at <= self.now.get() => events.pop().map(|Reverse(e)| e),
                    _ => None,
                }
            };
            let Some(event) = event else { break };
            (event.action)(self);
        }
    }

    /// The machine loses power: pending operations vanish (their buffers are dropped), and each
    /// file keeps its durable bytes plus a random subset of unsynced atoms. The executor that
    /// ran on this world must be dropped first; a new one models the restarted process.
    pub fn crash(&self) {
        self.events.borrow_mut().clear();
        let unit = self.faults.borrow().torn_unit_bytes;
        // Names created, renamed or removed since their directory's last sync are undone.
        *self.files.borrow_mut() = self.names_durable.borrow().clone();
        let files: Vec<_> = self.files.borrow().values().cloned().collect();
        for file in files {
            let mut f = file.borrow_mut();
            let dirty: Vec<u64> = std::mem::take(&mut f.dirty).into_iter().collect();
            for atom in dirty {
                if self.rng.borrow_mut().chance(500_000) {
                    persist_atom(&mut f, atom, unit);
                }
            }
            let durable = f.durable.clone();
            f.volatile = durable;
        }
        self.stat(|s| s.crashes += 1);
    }

    fn total_bytes(&self) -> u64 {
        self.files.borrow().values().map(|f| f.borrow().volatile.len() as u64).sum()
    }

    /// Flips one random bit of one random file, in both its durable and volatile bytes.
    fn flip_random_bit(&self) {
        let mut files: Vec<_> = self.files.borrow().iter().map(|(p, f)| (p.clone(), f.clone())).collect();
        files.sort_by(|a, b| a.0.cmp(&b.0)); // HashMap order is not deterministic
        files.retain(|(_, f)| !f.borrow().durable.is_empty());
        if files.is_empty() {
            return;
        }
        let (_, file) = &files[self.rng.borrow_mut().below(files.len() as u64) as usize];
        let mut f = file.borrow_mut();
        let bit = self.rng.borrow_mut().below(f.durable.len() as u64 * 8);
        let (byte, mask) = ((bit / 8) as usize, 1u8 << (bit % 8));
        f.durable[byte] ^= mask;
        if byte < f.volatile.len() {
            f.volatile[byte] ^= mask;
        }
        self.stat(|s| s.bitflips += 1);
    }
}

fn persist_atom(f: &mut FileData, atom: u64, unit: usize) {
    let start = atom as usize * unit;
    let end = (start + unit).min(f.volatile.len());
    if start >= end {
        return;
    }
    if f.durable.len() < end {
        f.durable.resize(end, 0);
    }
    let (src, dst) = (&f.volatile[start..end], &mut f.durable[start..end]);
    dst.copy_from_slice(src);
}

impl Driver for SimWorld {
    fn now(&self) -> Instant {
        self.now.get()
    }

    fn turn(&self, park: Park) {
        if let Park::Until(deadline) = park {
            let next_event = self.events.borrow().peek().map(|Reverse(e)| e.at);
            let target = match (next_event, deadline) {
                (Some(e), Some(d)) => Some(e.min(d)),
                (e, d) => e.or(d),
            };
            if let Some(t) = target
                && t > self.now.get()
            {
                self.now.set(t);
            }
        }
        self.run_due();
    }

    fn idle(&self) -> bool {
        self.events.borrow().is_empty()
    }
}

/// One core's simulated disk.
#[derive(Clone)]
pub struct SimStorage {
    world: Rc<SimWorld>,
    arena: Arena,
}

impl SimStorage {
    pub fn new(world: Rc<SimWorld>, arena: &ArenaConfig) -> SimStorage {
        SimStorage { world, arena: Arena::new(arena).expect("simulator arena") }
    }
}

impl Storage for SimStorage {
    type File = SimFile;

    fn open(&self, path: &Path, mode: OpenMode) -> Result<SimFile, OpenError> {
        let mut files = self.world.files.borrow_mut();
        let data = match (files.get(path), mode) {
            (None, OpenMode::Existing) => {
                return Err(OpenError { path: path.into(), source: io::Error::from_raw_os_error(libc::ENOENT) });
            }
            (Some(d), OpenMode::Truncate) => {
                // Truncation is metadata: durable at once in this model (as after O_TRUNC + fsync).
                *d.borrow_mut() = FileData::default();
                d.clone()
            }
            (Some(d), _) => d.clone(),
            (None, _) => files.entry(path.to_path_buf()).or_default().clone(),
        };
        Ok(SimFile { world: self.world.clone(), data, path: path.to_path_buf() })
    }

    fn remove(&self, path: &Path) -> Result<(), OpenError> {
        match self.world.files.borrow_mut().remove(path) {
            Some(_) => Ok(()),
            None => Err(OpenError { path: path.into(), source: io::Error::from_raw_os_error(libc::ENOENT) }),
        }
    }

    /// Atomic; durable once the directory is synced (`sync_dir`), like creation and removal.
    fn rename(&self, from: &Path, to: &Path) -> Result<(), OpenError> {
        let mut files = self.world.files.borrow_mut();
        let data = files.remove(from).ok_or_else(|| OpenError { path: from.into(), source: io::Error::from_raw_os_error(libc::ENOENT) })?;
        files.insert(to.to_path_buf(), data);
        Ok(())
    }

    fn list(&self, dir: &Path) -> Result<Vec<PathBuf>, OpenError> {
        let mut out: Vec<PathBuf> = self.world.files.borrow().keys().filter(|p| p.parent() == Some(dir)).cloned().collect();
        out.sort();
        Ok(out)
    }

    /// Directories are implicit in this model.
    fn create_dir(&self, _dir: &Path) -> Result<(), OpenError> {
        Ok(())
    }

    /// Makes the directory's names as they are now (created, renamed, removed) survive a crash.
    fn sync_dir(&self, dir: &Path) -> Result<(), OpenError> {
        let files = self.world.files.borrow();
        let mut durable = self.world.names_durable.borrow_mut();
        durable.retain(|p, _| p.parent() != Some(dir));
        durable.extend(files.iter().filter(|(p, _)| p.parent() == Some(dir)).map(|(p, d)| (p.clone(), d.clone())));
        Ok(())
    }

    fn arena(&self) -> &Arena {
        &self.arena
    }
}

pub struct SimFile {
    world: Rc<SimWorld>,
    data: Rc<RefCell<FileData>>,
    path: PathBuf,
}

struct Completion<R> {
    result: Option<R>,
    waker: Option<Waker>,
}

/// Resolves when the world runs the scheduled action that fills it.
struct SimOp<R> {
    slot: Rc<RefCell<Completion<R>>>,
}

impl<R> Future for SimOp<R> {
    type Output = R;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let mut c = self.slot.borrow_mut();
        match c.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                c.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

fn complete<R>(slot: &Rc<RefCell<Completion<R>>>, r: R) {
    let waker = {
        let mut c = slot.borrow_mut();
        c.result = Some(r);
        c.waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
}

impl SimFile {
    fn err(&self, op: &'static str, offset: u64, len: usize, errno: i32) -> IoError {
        IoError::new(op, self.path.clone(), offset, len, io::Error::from_raw_os_error(errno))
    }

    /// Schedules `action` to run at a random future instant and awaits its result.
    fn submit<R: 'static>(&self, action: impl FnOnce(&SimWorld) -> R + 'static) -> SimOp<R> {
        let slot = Rc::new(RefCell::new(Completion { result: None, waker: None }));
        let s2 = slot.clone();
        self.world.schedule(Box::new(move |w| complete(&s2, action(w))));
        SimOp { slot }
    }
}

impl File for SimFile {
    fn read_at(&self, buf: FixedBuf, offset: u64, len: usize) -> impl Future<Output = (Result<usize, IoError>, FixedBuf)> {
        crate::env::assert_dma_aligned(offset, len, &buf);
        let data = self.data.clone();
        let eio = self.err("read", offset, len, libc::EIO);
        let mut buf = buf;
        self.submit(move |w| {
            w.stat(|s| s.reads += 1);
            if w.chance(w.faults.borrow().bitflip_ppm) {
                w.flip_random_bit();
            }
            if w.chance(w.faults.borrow().read_eio_ppm) {
                w.stat(|s| s.eio += 1);
                buf.set_len(0);
                return (Err(eio), buf);
            }
            let d = data.borrow();
            let start = (offset as usize).min(d.volatile.len());
            let end = (offset as usize + len).min(d.volatile.len());
            let n = end - start;
            buf.set_len(n);
            buf.as_mut_slice().copy_from_slice(&d.volatile[start..end]);
            (Ok(n), buf)
        })
    }

    fn write_at(&self, buf: FixedBuf, offset: u64) -> impl Future<Output = (Result<usize, IoError>, FixedBuf)> {
        let len = buf.len();
        crate::env::assert_dma_aligned(offset, len, &buf);
        let data = self.data.clone();
        let (eio, enospc) = (self.err("write", offset, len, libc::EIO), self.err("write", offset, len, libc::ENOSPC));
        self.submit(move |w| {
            w.stat(|s| s.writes += 1);
            let unit = w.faults.borrow().torn_unit_bytes;
            let end = offset as usize + len;
            let growth = end.saturating_sub(data.borrow().volatile.len()) as u64;
            if growth > 0 && w.total_bytes() + growth > w.faults.borrow().capacity_bytes {
                w.stat(|s| s.enospc += 1);
                return (Err(enospc), buf);
            }
            let mut d = data.borrow_mut();
            let failed = w.chance(w.faults.borrow().write_eio_ppm);
            if d.volatile.len() < end {
                d.volatile.resize(end, 0);
            }
            for atom_start in (offset as usize..end).step_by(unit) {
                // A failed write may still have written any of its atoms.
                if failed && w.rng.borrow_mut().chance(500_000) {
                    continue;
                }
                let src = &buf.as_slice()[atom_start - offset as usize..atom_start - offset as usize + unit];
                d.volatile[atom_start..atom_start + unit].copy_from_slice(src);
                d.dirty.insert((atom_start / unit) as u64);
            }
            if failed {
                w.stat(|s| s.eio += 1);
                return (Err(eio), buf);
            }
            (Ok(len), buf)
        })
    }

    /// Lands in two steps, as on a device: first in flight (a crash now may keep any subset of
    /// its atoms: torn), then, at completion, durable. A failed one may have left any atoms.
    fn write_at_durable(&self, buf: FixedBuf, offset: u64) -> impl Future<Output = (Result<usize, IoError>, FixedBuf)> {
        let written = self.write_at(buf, offset);
        let data = self.data.clone();
        let world = self.world.clone();
        async move {
            let (res, buf) = written.await;
            if res.is_ok() {
                // The write is visible and dirty; now it becomes durable, after a further delay
                // during which a crash tears it.
                let unit = world.faults.borrow().torn_unit_bytes;
                let slot = Rc::new(RefCell::new(Completion { result: None, waker: None }));
                let s2 = slot.clone();
                let (start, end) = (offset, offset + buf.len() as u64);
                let eio = self.err("write (dsync)", offset, buf.len(), libc::EIO);
                world.schedule(Box::new(move |w| {
                    // Like a failed fdatasync: some atoms may have made it, none are retried.
                    let failed = w.chance(w.faults.borrow().sync_eio_ppm);
                    let mut d = data.borrow_mut();
                    let atoms: Vec<u64> = d.dirty.range(start / unit as u64..end.div_ceil(unit as u64)).copied().collect();
                    for atom in atoms {
                        d.dirty.remove(&atom);
                        if !failed || w.rng.borrow_mut().chance(500_000) {
                            persist_atom(&mut d, atom, unit);
                        }
                    }
                    drop(d);
                    if failed {
                        w.stat(|s| s.eio += 1);
                    }
                    complete(&s2, if failed { Err(eio) } else { Ok(()) });
                }));
                if let Err(e) = (SimOp { slot }).await {
                    return (Err(e), buf);
                }
            }
            (res, buf)
        }
    }

    fn sync_data(&self) -> impl Future<Output = Result<(), IoError>> {
        let data = self.data.clone();
        let eio = self.err("fdatasync", 0, 0, libc::EIO);
        self.submit(move |w| {
            w.stat(|s| s.syncs += 1);
            let unit = w.faults.borrow().torn_unit_bytes;
            let failed = w.chance(w.faults.borrow().sync_eio_ppm);
            let mut d = data.borrow_mut();
            let dirty: Vec<u64> = std::mem::take(&mut d.dirty).into_iter().collect();
            for atom in dirty {
                // After a failed fsync the kernel marks pages clean whether or not they reached
                // the disk; a later fsync will not retry them.
                if !failed || w.rng.borrow_mut().chance(500_000) {
                    persist_atom(&mut d, atom, unit);
                }
            }
            if failed {
                w.stat(|s| s.eio += 1);
                return Err(eio);
            }
            Ok(())
        })
    }

    fn allocate(&self, _len: u64) -> Result<(), IoError> {
        Ok(())
    }

    /// Durable at once (a simplification, like `OpenMode::Truncate` here: on a real filesystem
    /// the size change waits for a sync). The store cuts only free files whose name it synced,
    /// and a cut lost in a crash would only leave a longer free file.
    fn truncate(&self, len: u64) -> Result<(), IoError> {
        let mut d = self.data.borrow_mut();
        let len = len as usize;
        d.volatile.truncate(len);
        d.durable.truncate(len);
        Ok(())
    }

    fn size(&self) -> Result<u64, IoError> {
        Ok(self.data.borrow().volatile.len() as u64)
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// The simulated environment of one core.
#[derive(Clone)]
pub struct SimEnv {
    world: Rc<SimWorld>,
    storage: SimStorage,
}

impl SimEnv {
    pub fn new(world: Rc<SimWorld>, arena: &ArenaConfig) -> SimEnv {
        SimEnv { storage: SimStorage::new(world.clone(), arena), world }
    }

    pub fn world(&self) -> &Rc<SimWorld> {
        &self.world
    }
}

impl Env for SimEnv {
    type Storage = SimStorage;
    fn storage(&self) -> &SimStorage {
        &self.storage
    }
    fn now(&self) -> Instant {
        self.world.now.get()
    }
    fn random_u64(&self) -> u64 {
        self.world.random_u64()
    }
    fn core(&self) -> usize {
        0
    }
    fn cores(&self) -> usize {
        1
    }
}

/// The seed to run with: `CORESTORE_SIM_SEED` if set (to replay a failure), else `default`.
pub fn seed_from_env(default: u64) -> u64 {
    std::env::var("CORESTORE_SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// How many seeds a simulator test runs: environment variable `var` (a count), else `default`.
pub fn seeds_from_env(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Runs `run` for each seed of `first..first + n`, in order. A seed whose run returns `Err` or
/// panics ends the test there, naming the seed and `rerun(seed)`: the command that replays it.
pub fn each_seed(first: u64, n: u64, rerun: impl Fn(u64) -> String, mut run: impl FnMut(u64) -> Result<(), String>) {
    for seed in first..first + n {
        // The caller's totals are not looked at after a panic: it is passed on at once.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed))) {
            Ok(Ok(())) => {}
            Ok(Err(msg)) => panic!("seed {seed}: {msg}\nrerun: {}", rerun(seed)),
            Err(p) => {
                eprintln!("seed {seed} panicked\nrerun: {}", rerun(seed));
                std::panic::resume_unwind(p);
            }
        }
    }
}

impl SimWorld {
    /// The virtual clock, for replay comparisons in tests.
    pub fn now_for_tests(&self) -> u64 {
        self.now.get().ns
    }
}

#[cfg(test)]
mod tests {
    use super::each_seed;

    #[test]
    fn each_seed_stops_at_a_failing_seed_and_names_how_to_rerun_it() {
        let mut ran = Vec::new();
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            each_seed(10, 5, |seed| format!("REPLAY={seed}"), |seed| {
                ran.push(seed);
                if seed == 12 { Err("broke".into()) } else { Ok(()) }
            })
        }));
        let message = failed.expect_err("a failing seed panics");
        let message = message.downcast_ref::<String>().expect("a formatted message");
        assert_eq!(message, "seed 12: broke\nrerun: REPLAY=12");
        assert_eq!(ran, vec![10, 11, 12], "seeds run in order, none after the failure");
    }
}
