//! The io_uring driver: one ring per core (SINGLE_ISSUER | DEFER_TASKRUN by default), an op
//! slab bounded by the completion queue, and [`Op`], the future of one submission.
//!
//! Ownership rule: whatever memory an SQE points at (a fixed buffer, an 8-byte eventfd counter)
//! is moved into the `Op` as its `hold`. If the `Op` is dropped before its completion arrives,
//! the hold moves into the slab slot and is dropped only when the op's final CQE is reaped, so
//! the kernel never touches memory that was handed to someone else.
//!
//! Most ops post one CQE. A zero-copy send (SEND_ZC, SENDMSG_ZC) posts two: the send's result
//! with `IORING_CQE_F_MORE`, and later a notification (`IORING_CQE_F_NOTIF`, no F_MORE) once the
//! kernel no longer reads the buffer (for TCP, not before the peer acknowledged the data). An op
//! completes on its final CQE (the first without F_MORE): it resolves with the first CQE's
//! result, and its hold is released only then. Multishot ops, which post one result per CQE
//! (each with F_MORE, the last without), are [`Multishot`]s, a stream; an `Op` that gets a
//! second CQE that is not a notification asserts.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use io_uring::{IoUring, cqueue, opcode, squeue, types};

/// The io_uring crate our `Op`s take entries from, so callers need not pin its version themselves.
pub use io_uring;

use crate::error::RuntimeError;
use crate::executor::{Driver, Park};
use crate::limits::{CQ_ENTRIES_PER_SQ_ENTRY, FILES_REGISTERED_MAX, RING_ENTRIES_MAX};
use crate::time::Instant;

/// How a core's ring is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingConfig {
    pub entries: u32,
    /// SQPOLL with this idle time in ms. Off by default: the poller thread burns a core, which on
    /// a machine with few cores takes it away from the shards (see kernel-notes.md).
    pub sqpoll_idle_ms: Option<u32>,
    pub files_max: u32,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig { entries: crate::limits::RING_ENTRIES_DEFAULT, sqpoll_idle_ms: None, files_max: FILES_REGISTERED_MAX }
    }
}

/// What the kernel reported for one op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The result of the op's first CQE: `>= 0` (bytes, for a send) or `-errno`.
    pub result: i32,
    /// The `res` of the notification CQE of an op that posted one (a zero-copy send); for
    /// SEND_ZC with `IORING_SEND_ZC_REPORT_USAGE`, bit 31 (`IORING_NOTIF_USAGE_ZC_COPIED`) says
    /// the kernel copied the data after all.
    pub notification: Option<i32>,
}

/// The CQEs of one op seen so far, and what it reserved in the completion queue.
#[derive(Clone, Copy)]
struct Progress {
    /// The first CQE's result, once a first CQE with F_MORE was reaped.
    first: Option<i32>,
    /// CQ entries reserved for this op until its final CQE (see `cqes_max`).
    cqes_reserved: u32,
}

impl Progress {
    /// Takes one CQE. Returns the completion once this CQE is the op's final one.
    fn step(&mut self, slot: u32, res: i32, flags: u32) -> Option<Completion> {
        let first = self.first;
        match (first, cqueue::more(flags)) {
            (None, false) => Some(Completion { result: res, notification: None }),
            (None, true) => {
                assert!(self.cqes_reserved >= 2, "op in slot {slot} posted F_MORE but reserved one CQE: a multishot op is not an Op");
                self.first = Some(res);
                None
            }
            (Some(result), more) => {
                assert!(!more, "op in slot {slot} posted a third CQE: a multishot op is not an Op");
                assert!(cqueue::notif(flags), "second CQE of the op in slot {slot} is not a notification (flags {flags:#x})");
                Some(Completion { result, notification: Some(res) })
            }
        }
    }
}

enum SlotState {
    Free,
    /// Submitted; the waker (if any) belongs to the task awaiting it. With `progress.first` set,
    /// the result is known but the kernel still uses the hold: the op is not done.
    InFlight(Option<Waker>, Progress),
    /// The final CQE was reaped; the kernel no longer uses the hold.
    Done(Completion),
    /// The future was dropped; the hold waits here for the final CQE.
    Abandoned(Option<Box<dyn Any>>, Progress),
    /// A multishot op: the results its CQEs brought that were not taken yet, and whether its
    /// final CQE (no F_MORE) came.
    Stream(Option<Waker>, StreamState),
    /// A multishot op whose stream was dropped and cancelled: each result that still arrives
    /// goes to `release` (an accepted fd is closed); the hold waits for the final CQE.
    StreamAbandoned(Option<Box<dyn Any>>, u32, fn(i32)),
}

struct StreamState {
    results: VecDeque<i32>,
    ended: bool,
    cqes_reserved: u32,
}

/// CQ entries a multishot op reserves. It may post more between two reaps (a burst of
/// connections); FEAT_NODROP (required at setup) keeps those in the kernel's overflow list
/// instead of losing them, so the reservation bounds the usual case, not correctness.
pub const MULTISHOT_CQES_RESERVED: u32 = 16;

/// user_data of the cancel SQE a dropped stream submits: its CQE belongs to no slot.
const CANCEL_USER_DATA: u64 = u64::MAX - 1;

/// Whether `entry` reads, writes or syncs a file (the ops `submit_now` sends early).
fn is_storage_io(entry: &squeue::Entry) -> bool {
    let code = entry.get_opcode();
    [opcode::ReadFixed::CODE, opcode::WriteFixed::CODE, opcode::Fsync::CODE].iter().any(|&c| u32::from(c) == code)
}

/// CQ entries an op may post. Zero-copy sends post a notification after their result.
fn cqes_max(entry: &squeue::Entry) -> u32 {
    let code = entry.get_opcode();
    if code == u32::from(opcode::SendZc::CODE) || code == u32::from(opcode::SendMsgZc::CODE) { 2 } else { 1 }
}

/// Counters of the ring's work.
#[derive(Default, Debug, Clone, Copy)]
pub struct RingStats {
    pub enters: u64,
    pub sqes: u64,
    pub cqes: u64,
    /// Notification CQEs (zero-copy sends), counted in `cqes` too.
    pub notifs: u64,
    /// Notifications with IORING_NOTIF_USAGE_ZC_COPIED: the kernel copied the data after all.
    pub notifs_copied: u64,
    pub slot_waits: u64,
}

pub struct Ring {
    ring: RefCell<IoUring>,
    slots: RefCell<Vec<SlotState>>,
    free_slots: RefCell<Vec<u32>>,
    slot_waiters: RefCell<VecDeque<Waker>>,
    /// Ops whose final CQE has not been reaped.
    in_flight: Cell<usize>,
    /// CQ entries reserved by those ops (`cqes_max` each), at most `cq_entries`: so the CQ never
    /// overflows even when every op posts all its CQEs between two reaps.
    cqes_reserved: Cell<u32>,
    cq_entries: u32,
    unsubmitted: Cell<usize>,
    /// Of those, storage I/O (reads, writes, syncs of files): what `submit_now` hands over early.
    unsubmitted_storage: Cell<usize>,
    files_free: RefCell<Vec<u32>>,
    stats: Cell<RingStats>,
    sqpoll: bool,
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// Turns an io_uring_setup failure into an error that tells the operator what to do.
fn setup_error(err: io::Error, flags: &'static str) -> RuntimeError {
    match err.raw_os_error() {
        Some(libc::ENOSYS) => RuntimeError::IoUringMissing,
        Some(libc::EPERM) | Some(libc::EACCES) => {
            let disabled = read_trimmed("/proc/sys/kernel/io_uring_disabled").unwrap_or_else(|| "0".into());
            if disabled != "0" {
                let group_hint = match (disabled.as_str(), read_trimmed("/proc/sys/kernel/io_uring_group")) {
                    ("1", Some(g)) => format!(", or run corestore as a member of group id {g} (kernel.io_uring_group)"),
                    _ => String::new(),
                };
                return RuntimeError::IoUringDisabled { value: disabled, group_hint };
            }
            let seccomp = std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| s.lines().find(|l| l.starts_with("Seccomp:")).map(|l| l["Seccomp:".len()..].trim().to_string()))
                .unwrap_or_else(|| "unknown".into());
            RuntimeError::IoUringForbidden { seccomp }
        }
        Some(libc::EINVAL) => RuntimeError::KernelTooOld { flags },
        _ => RuntimeError::Ring { op: "setup", source: err },
    }
}

impl Ring {
    pub fn new(config: &RingConfig) -> Result<Ring, RuntimeError> {
        if config.entries == 0 || config.entries > RING_ENTRIES_MAX || !config.entries.is_power_of_two() {
            return Err(RuntimeError::Config(format!("ring entries {} must be a power of two in 1..={RING_ENTRIES_MAX}", config.entries)));
        }
        let cq_entries = config.entries * CQ_ENTRIES_PER_SQ_ENTRY;
        let mut builder = IoUring::builder();
        builder.setup_cqsize(cq_entries).setup_single_issuer();
        let flags = match config.sqpoll_idle_ms {
            // DEFER_TASKRUN is refused with SQPOLL: completions are run by the poller thread.
            Some(idle) => {
                builder.setup_sqpoll(idle);
                "SQPOLL|SINGLE_ISSUER"
            }
            None => {
                builder.setup_defer_taskrun();
                "SINGLE_ISSUER|DEFER_TASKRUN"
            }
        };
        let ring = builder.build(config.entries).map_err(|e| setup_error(e, flags))?;
        if !ring.params().is_feature_nodrop() {
            return Err(RuntimeError::KernelTooOld { flags: "FEAT_NODROP" });
        }
        ring.submitter()
            .register_files_sparse(config.files_max)
            .map_err(|source| RuntimeError::Ring { op: "register_files_sparse", source })?;
        let slots_max = cq_entries as usize;
        Ok(Ring {
            ring: RefCell::new(ring),
            slots: RefCell::new((0..slots_max).map(|_| SlotState::Free).collect()),
            free_slots: RefCell::new((0..slots_max as u32).rev().collect()),
            slot_waiters: RefCell::new(VecDeque::new()),
            in_flight: Cell::new(0),
            cqes_reserved: Cell::new(0),
            cq_entries,
            unsubmitted: Cell::new(0),
            unsubmitted_storage: Cell::new(0),
            files_free: RefCell::new((0..config.files_max).rev().collect()),
            stats: Cell::new(RingStats::default()),
            sqpoll: config.sqpoll_idle_ms.is_some(),
        })
    }

    /// Registers the arena's classes as the ring's fixed buffers (index = class index).
    pub fn register_buffers(&self, arena: &crate::arena::Arena) -> Result<(), RuntimeError> {
        let iovecs = arena.iovecs();
        // SAFETY: the iovecs point into the arena's mappings, which live until the arena drops;
        // the runtime drops the ring (unregistering) before the arena.
        let result = unsafe { self.ring.borrow().submitter().register_buffers(&iovecs) };
        result.map_err(|source| {
            let memlock = read_trimmed("/proc/self/limits")
                .and_then(|s| {
                    s.lines().find(|l| l.starts_with("Max locked memory")).map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        format!("soft {} / hard {} bytes", f.get(3).unwrap_or(&"?"), f.get(4).unwrap_or(&"?"))
                    })
                })
                .unwrap_or_else(|| "unknown".into());
            RuntimeError::Memlock { bytes: arena.total_bytes(), memlock, source }
        })
    }

    /// Puts `fd` in the ring's registered-file table; ops then name it by slot.
    pub fn register_file(&self, fd: RawFd) -> io::Result<u32> {
        let slot = self.files_free.borrow_mut().pop().ok_or_else(|| io::Error::other("registered file table full"))?;
        if let Err(e) = self.ring.borrow().submitter().register_files_update(slot, &[fd]) {
            self.files_free.borrow_mut().push(slot);
            return Err(e);
        }
        Ok(slot)
    }

    pub fn unregister_file(&self, slot: u32) {
        // In-flight ops hold their own reference to the file; clearing the slot is always safe.
        let r = self.ring.borrow().submitter().register_files_update(slot, &[-1]);
        assert!(r.is_ok(), "unregistering file slot {slot}: {r:?}");
        self.files_free.borrow_mut().push(slot);
    }

    pub fn stats(&self) -> RingStats {
        self.stats.get()
    }

    /// Ops whose final CQE has not been reaped (abandoned ones and armed multishot ops too).
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    fn stat(&self, f: impl FnOnce(&mut RingStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    /// Queues an SQE tagged with `slot`. If the SQ is full, submits what is there first.
    fn push(&self, entry: squeue::Entry, slot: u32) {
        let entry = entry.user_data(slot as u64);
        let mut ring = self.ring.borrow_mut();
        loop {
            // SAFETY: every pointer in the entry refers to memory held by the Op (its `hold`) or
            // by the slab after the Op is dropped, until the op's final CQE is reaped.
            if unsafe { ring.submission().push(&entry) }.is_ok() {
                break;
            }
            // SQ full: hand the batch to the kernel now, then retry.
            match ring.submit() {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => panic!("io_uring_enter failed while the SQ was full: {e}"),
            }
            self.stat(|s| s.enters += 1);
            self.unsubmitted.set(0);
            self.unsubmitted_storage.set(0);
        }
        self.unsubmitted.set(self.unsubmitted.get() + 1);
        if is_storage_io(&entry) {
            self.unsubmitted_storage.set(self.unsubmitted_storage.get() + 1);
        }
        self.stat(|s| s.sqes += 1);
    }

    /// A slot and `cqes` CQ entries for a new op, or `None` with the waker queued. Every release
    /// of CQ entries is followed by a `free_slot` of the same op (when its owner polls or drops
    /// it), which wakes the next waiter.
    fn alloc_slot(&self, waker: &Waker, cqes: u32) -> Option<u32> {
        let cq_room = self.cqes_reserved.get() + cqes <= self.cq_entries;
        let slot = if cq_room { self.free_slots.borrow_mut().pop() } else { None };
        match slot {
            Some(s) => {
                let progress = Progress { first: None, cqes_reserved: cqes };
                self.slots.borrow_mut()[s as usize] = SlotState::InFlight(Some(waker.clone()), progress);
                self.in_flight.set(self.in_flight.get() + 1);
                self.cqes_reserved.set(self.cqes_reserved.get() + cqes);
                Some(s)
            }
            None => {
                self.stat(|s| s.slot_waits += 1);
                self.slot_waiters.borrow_mut().push_back(waker.clone());
                None
            }
        }
    }

    /// Bookkeeping of an op's final CQE: it no longer counts as in flight or holds CQ entries.
    fn finished(&self, progress: &Progress) {
        self.release(progress.cqes_reserved);
    }

    fn release(&self, cqes_reserved: u32) {
        self.in_flight.set(self.in_flight.get() - 1);
        assert!(self.cqes_reserved.get() >= cqes_reserved, "CQ reservations below an op's own");
        self.cqes_reserved.set(self.cqes_reserved.get() - cqes_reserved);
    }

    fn count_cqe(&self, flags: u32, res: i32) {
        self.stat(|s| {
            s.cqes += 1;
            if cqueue::notif(flags) {
                s.notifs += 1;
                if res as u32 & NOTIF_USAGE_ZC_COPIED != 0 {
                    s.notifs_copied += 1;
                }
            }
        });
    }

    fn free_slot(&self, slot: u32) {
        self.slots.borrow_mut()[slot as usize] = SlotState::Free;
        self.free_slots.borrow_mut().push(slot);
        // Wake every waiter, not one: a waiter whose op future was dropped leaves a stale waker
        // behind, and waking only that one would leave a live waiter asleep. The rest retry and
        // queue again; the list is bounded by the tasks that are waiting.
        let waiters = std::mem::take(&mut *self.slot_waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }

    /// Drains the completion queue, waking tasks whose ops are done and dropping holds of
    /// abandoned ops that are done. A CQE with F_MORE only records the result.
    fn reap(&self) {
        let mut abandoned: Vec<Box<dyn Any>> = Vec::new();
        let mut freed = Vec::new();
        {
            let mut ring = self.ring.borrow_mut();
            let mut slots = self.slots.borrow_mut();
            for cqe in ring.completion() {
                if cqe.user_data() == CANCEL_USER_DATA {
                    continue;
                }
                let (slot, res, flags) = (cqe.user_data() as u32, cqe.result(), cqe.flags());
                self.count_cqe(flags, res);
                let state = &mut slots[slot as usize];
                match state {
                    SlotState::Stream(waker, stream) => {
                        stream.results.push_back(res);
                        if !cqueue::more(flags) {
                            stream.ended = true;
                            self.release(stream.cqes_reserved);
                        }
                        if let Some(w) = waker.take() {
                            w.wake();
                        }
                    }
                    SlotState::StreamAbandoned(hold, cqes_reserved, release) => {
                        if res >= 0 {
                            release(res);
                        }
                        if cqueue::more(flags) {
                            continue;
                        }
                        self.release(*cqes_reserved);
                        if let Some(h) = hold.take() {
                            abandoned.push(h);
                        }
                        freed.push(slot);
                    }
                    SlotState::InFlight(waker, progress) => {
                        let Some(completion) = progress.step(slot, res, flags) else { continue };
                        self.finished(progress);
                        if let Some(w) = waker.take() {
                            w.wake();
                        }
                        *state = SlotState::Done(completion);
                    }
                    SlotState::Abandoned(hold, progress) => {
                        if progress.step(slot, res, flags).is_none() {
                            continue;
                        }
                        self.finished(progress);
                        if let Some(h) = hold.take() {
                            abandoned.push(h);
                        }
                        freed.push(slot);
                    }
                    SlotState::Free | SlotState::Done(_) => panic!("completion for slot {slot} that was not in flight"),
                }
            }
        }
        // Outside the borrows: dropping a hold returns a buffer to the arena.
        drop(abandoned);
        for slot in freed {
            self.free_slot(slot);
        }
    }

    /// One io_uring_enter: submit everything queued, and wait as `park` says.
    fn enter(&self, park: Park, now: Instant) {
        let ring = self.ring.borrow();
        let result = match park {
            // SQPOLL: the kernel thread submits; submit() enters only to wake it if it sleeps.
            Park::NoWait if self.sqpoll => ring.submit(),
            Park::NoWait if self.unsubmitted.get() == 0 && self.in_flight.get() == 0 => return,
            // GETEVENTS with no wait: submits and runs deferred completions (DEFER_TASKRUN).
            Park::NoWait => unsafe {
                // SAFETY: plain enter with no argument pointer.
                ring.submitter().enter::<libc::sigset_t>(self.unsubmitted.get() as u32, 0, io_uring::EnterFlags::GETEVENTS.bits(), None)
            },
            Park::Until(None) => ring.submit_and_wait(1),
            Park::Until(Some(deadline)) => {
                let wait = deadline.saturating_duration_since(now);
                let ts = types::Timespec::from(wait);
                let args = types::SubmitArgs::new().timespec(&ts);
                ring.submitter().submit_with_args(1, &args)
            }
        };
        drop(ring);
        // With SQPOLL only the waits are sure to enter the kernel; a NoWait submit usually does not.
        if !(self.sqpoll && park == Park::NoWait) {
            self.stat(|s| s.enters += 1);
        }
        self.unsubmitted.set(0);
        self.unsubmitted_storage.set(0);
        match result {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)) => {}
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && !self.sqpoll => {}
            Err(e) => panic!("io_uring_enter failed: {e}"),
        }
    }

    /// Submits `entry` with `hold` kept alive until its completion. Nothing reaches the kernel
    /// until the end of the loop turn (or until the SQ is full).
    ///
    /// # Safety
    /// Every pointer in `entry` (buffers, iovecs, paths) must point into `hold` or into memory
    /// that outlives the ring (such as a registered arena); the fd or registered file slot must
    /// stay valid until the completion. The `Op` then guarantees the memory outlives the kernel's
    /// use of it, even if the future is dropped.
    pub unsafe fn op<H: 'static>(self: &Rc<Self>, entry: squeue::Entry, hold: H) -> Op<H> {
        Op { ring: self.clone(), entry: Some(entry), slot: None, hold: Some(hold) }
    }

    /// Submits a multishot `entry` (such as a multishot accept): a stream of one result per
    /// CQE, ending after the CQE without F_MORE. `release` is called with every non-negative
    /// result that arrives after the stream was dropped (an accepted fd must be closed).
    ///
    /// # Safety
    /// As for [`Ring::op`]: what `entry` points at lives in `hold` or outlives the ring, and the
    /// fd stays valid until the final CQE.
    pub unsafe fn multishot<H: 'static>(self: &Rc<Self>, entry: squeue::Entry, hold: H, release: fn(i32)) -> Multishot<H> {
        Multishot { ring: self.clone(), entry: Some(entry), slot: None, hold: Some(hold), release }
    }

    /// Asks the kernel to cancel the op in `slot` (its CQEs still arrive, the last one final).
    fn cancel(&self, slot: u32) {
        let entry = opcode::AsyncCancel::new(slot as u64).build();
        // Pushed directly: the cancel's own CQE is skipped by `reap`, and the op it targets
        // keeps its slot until its final CQE.
        let entry = entry.user_data(CANCEL_USER_DATA);
        let mut ring = self.ring.borrow_mut();
        // SAFETY: the cancel SQE points at no memory.
        while unsafe { ring.submission().push(&entry) }.is_err() {
            let _ = ring.submit();
        }
        self.unsubmitted.set(self.unsubmitted.get() + 1);
        self.stat(|s| s.sqes += 1);
    }
}

impl Driver for Ring {
    fn now(&self) -> Instant {
        monotonic_now()
    }

    fn turn(&self, park: Park) {
        let now = match park {
            Park::Until(Some(_)) => monotonic_now(),
            _ => Instant::default(),
        };
        self.enter(park, now);
        self.reap();
    }

    fn idle(&self) -> bool {
        self.in_flight.get() == 0 && self.unsubmitted.get() == 0
    }

    fn submit_now(&self) {
        // Only for storage: a device idles until it has the request, while socket sends and
        // receives complete inline and cost less batched (4 KiB S3 GETs: 0.77 of nginx with
        // sends held to the turn's end, 0.69 when they went out mid-turn).
        if self.unsubmitted_storage.get() == 0 || self.sqpoll {
            return;
        }
        // A plain submit: completions stay for the turn's own enter (DEFER_TASKRUN runs them
        // only with GETEVENTS, which this leaves out so the turn stays short).
        let result = self.ring.borrow().submit();
        self.stat(|s| s.enters += 1);
        self.unsubmitted.set(0);
        self.unsubmitted_storage.set(0);
        match result {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)) => {}
            Err(e) => panic!("io_uring_enter (submit) failed: {e}"),
        }
    }
}

/// How long dropping a ring waits for the final CQEs of ops still in flight, and per enter.
const RING_DROP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
const RING_DROP_WAIT_STEP: std::time::Duration = std::time::Duration::from_millis(10);

/// CLOCK_MONOTONIC in nanoseconds. The only place the engine reads the OS clock.
/// Waits on the ring, without blocking the core, until eventfd `fd` is signalled; returns its
/// counter (and resets it). The eventfd must be blocking: for a non-blocking one io_uring
/// completes at once with EAGAIN (kernel-notes.md, "An eventfd read must use a blocking
/// eventfd"). A signal handler may write to it (write is async-signal-safe), which makes this
/// the way to hear of a signal on a core.
///
/// # Safety
/// `fd` must stay open until this returns (or its future is dropped and the read completes).
pub async unsafe fn read_eventfd(ring: &Rc<Ring>, fd: RawFd) -> io::Result<u64> {
    let counter = Box::new(0u64);
    let ptr: *const u64 = &*counter;
    let entry = io_uring::opcode::Read::new(io_uring::types::Fd(fd), ptr.cast_mut().cast(), 8).build();
    // SAFETY: the entry points into `counter`, which the op holds until the read completes; the
    // caller keeps `fd` open.
    let (res, counter) = unsafe { ring.op(entry, counter) }.result().await;
    res.map(|_| *counter)
}

pub fn monotonic_now() -> Instant {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec; CLOCK_MONOTONIC always exists on Linux.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(r, 0);
    Instant::from_ns(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// `IORING_NOTIF_USAGE_ZC_COPIED` (the io-uring crate keeps its `sys` module private): set in a
/// SEND_ZC notification's `res`, when the send asked for `IORING_SEND_ZC_REPORT_USAGE`, if the
/// kernel copied the data instead of sending from the buffer.
pub const NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;
/// `IORING_SEND_ZC_REPORT_USAGE`, for `SendZc::zc_flags`: the notification then reports
/// `NOTIF_USAGE_ZC_COPIED`.
pub const SEND_ZC_REPORT_USAGE: u16 = 1 << 3;

/// The future of one submission. Output: the raw result of its first CQE (`>= 0` or `-errno`)
/// and the hold, once its final CQE is reaped (for a zero-copy send: the notification).
pub struct Op<H: 'static> {
    ring: Rc<Ring>,
    entry: Option<squeue::Entry>,
    slot: Option<u32>,
    hold: Option<H>,
}

impl<H: 'static> Op<H> {
    /// Resolves to `Ok(result)` or the errno as an `io::Error`.
    pub async fn result(self) -> (io::Result<u32>, H) {
        let (res, hold) = self.await;
        let r = if res < 0 { Err(io::Error::from_raw_os_error(-res)) } else { Ok(res as u32) };
        (r, hold)
    }

    /// Resolves like the future, and also gives a zero-copy send's notification `res`.
    pub async fn completion(mut self) -> (Completion, H) {
        std::future::poll_fn(|cx| self.poll_completion(cx)).await
    }

    fn poll_completion(&mut self, cx: &mut Context<'_>) -> Poll<(Completion, H)> {
        let Some(slot) = self.slot else {
            let entry = self.entry.as_ref().expect("unsubmitted op has its entry");
            let Some(slot) = self.ring.alloc_slot(cx.waker(), cqes_max(entry)) else { return Poll::Pending };
            let entry = self.entry.take().expect("unsubmitted op has its entry");
            self.ring.push(entry, slot);
            self.slot = Some(slot);
            return Poll::Pending;
        };
        let mut slots = self.ring.slots.borrow_mut();
        match &mut slots[slot as usize] {
            SlotState::Done(completion) => {
                let completion = *completion;
                drop(slots);
                self.ring.free_slot(slot);
                self.slot = None;
                Poll::Ready((completion, self.hold.take().expect("op polled after completion")))
            }
            SlotState::InFlight(w, _) => {
                match w {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            SlotState::Free | SlotState::Abandoned(..) | SlotState::Stream(..) | SlotState::StreamAbandoned(..) => {
                panic!("op slot {slot} in a wrong state")
            }
        }
    }
}

impl<H: 'static> Unpin for Op<H> {}

impl<H: 'static> Future for Op<H> {
    type Output = (i32, H);
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(i32, H)> {
        self.poll_completion(cx).map(|(completion, hold)| (completion.result, hold))
    }
}

impl<H: 'static> Drop for Op<H> {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else { return };
        let mut slots = self.ring.slots.borrow_mut();
        let state = &mut slots[slot as usize];
        match state {
            SlotState::Done(_) => {
                drop(slots);
                self.ring.free_slot(slot);
            }
            // Also when the result is in but the notification is not: the kernel still reads
            // the buffer.
            SlotState::InFlight(_, progress) => {
                let progress = *progress;
                let hold = self.hold.take().map(|h| Box::new(h) as Box<dyn Any>);
                *state = SlotState::Abandoned(hold, progress);
            }
            SlotState::Free | SlotState::Abandoned(..) | SlotState::Stream(..) | SlotState::StreamAbandoned(..) => {
                panic!("dropping op with slot {slot} in a wrong state")
            }
        }
    }
}

/// A multishot op: each result (`>= 0` or `-errno`) in order, then `None` once its final CQE
/// came (the kernel ends a multishot op on an error or when it cannot go on; submit a new one).
/// Dropping it cancels the op; results still arriving go to its `release`.
pub struct Multishot<H: 'static> {
    ring: Rc<Ring>,
    entry: Option<squeue::Entry>,
    slot: Option<u32>,
    hold: Option<H>,
    release: fn(i32),
}

impl<H: 'static> Multishot<H> {
    /// The next result; `None` once the op ended. Submits the op on first use.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<i32>> {
        let Some(slot) = self.slot else {
            let Some(entry) = self.entry.take() else { return Poll::Ready(None) };
            let Some(slot) = self.ring.alloc_slot(cx.waker(), MULTISHOT_CQES_RESERVED) else {
                self.entry = Some(entry);
                return Poll::Pending;
            };
            let stream = StreamState { results: VecDeque::new(), ended: false, cqes_reserved: MULTISHOT_CQES_RESERVED };
            self.ring.slots.borrow_mut()[slot as usize] = SlotState::Stream(Some(cx.waker().clone()), stream);
            self.ring.push(entry, slot);
            self.slot = Some(slot);
            return Poll::Pending;
        };
        let mut slots = self.ring.slots.borrow_mut();
        let SlotState::Stream(waker, stream) = &mut slots[slot as usize] else { panic!("multishot slot {slot} in a wrong state") };
        if let Some(res) = stream.results.pop_front() {
            return Poll::Ready(Some(res));
        }
        if stream.ended {
            drop(slots);
            self.ring.free_slot(slot);
            self.slot = None;
            return Poll::Ready(None);
        }
        match waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    pub async fn next(&mut self) -> Option<i32> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}

impl<H: 'static> Drop for Multishot<H> {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else { return };
        let mut slots = self.ring.slots.borrow_mut();
        let state = std::mem::replace(&mut slots[slot as usize], SlotState::Free);
        let SlotState::Stream(_, stream) = state else { panic!("dropping multishot slot {slot} in a wrong state") };
        for &res in stream.results.iter().filter(|r| **r >= 0) {
            (self.release)(res);
        }
        if stream.ended {
            drop(slots);
            self.ring.free_slot(slot);
            return;
        }
        let hold = self.hold.take().map(|h| Box::new(h) as Box<dyn Any>);
        slots[slot as usize] = SlotState::StreamAbandoned(hold, stream.cqes_reserved, self.release);
        drop(slots);
        self.ring.cancel(slot);
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Ops still in flight (an abandoned eventfd read, a send_zc awaiting its notification)
        // point at memory in their slots: cancel them and wait for their final CQEs before that
        // memory goes.
        if self.in_flight.get() == 0 {
            return;
        }
        let cancel = io_uring::opcode::AsyncCancel2::new(types::CancelBuilder::any()).build().user_data(u64::MAX);
        {
            let mut ring = self.ring.borrow_mut();
            // SAFETY: the cancel SQE points at no memory.
            if unsafe { ring.submission().push(&cancel) }.is_err() {
                // SQ full: hand its entries to the kernel first, then the cancel fits.
                let _ = ring.submit();
                // SAFETY: as above.
                let pushed = unsafe { ring.submission().push(&cancel) };
                assert!(pushed.is_ok(), "the SQ has room right after a submit");
            }
        }
        // Cancelling ends reads and sends at once, but not a zero-copy send's wait for its
        // notification: that comes when the peer acknowledges the data, which a stalled peer
        // may never do. So the wait is bounded.
        let deadline = monotonic_now().saturating_add(RING_DROP_WAIT);
        while self.in_flight.get() > 0 && monotonic_now() < deadline {
            let ts = types::Timespec::from(RING_DROP_WAIT_STEP);
            let r = self.ring.borrow().submitter().submit_with_args(1, &types::SubmitArgs::new().timespec(&ts));
            if let Err(e) = r
                && !matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY))
            {
                break;
            }
            let mut ring = self.ring.borrow_mut();
            let mut slots = self.slots.borrow_mut();
            for cqe in ring.completion() {
                if cqe.user_data() == u64::MAX || cqe.user_data() == CANCEL_USER_DATA {
                    continue;
                }
                let (slot, res, flags) = (cqe.user_data() as u32, cqe.result(), cqe.flags());
                let state = &mut slots[slot as usize];
                let done = match state {
                    SlotState::InFlight(_, progress) | SlotState::Abandoned(_, progress) => progress.step(slot, res, flags).is_some(),
                    SlotState::Stream(..) => !cqueue::more(flags),
                    SlotState::StreamAbandoned(_, _, release) => {
                        if res >= 0 {
                            release(res);
                        }
                        !cqueue::more(flags)
                    }
                    SlotState::Free | SlotState::Done(_) => panic!("completion for slot {slot} that was not in flight"),
                };
                if done {
                    self.in_flight.set(self.in_flight.get() - 1);
                    *state = SlotState::Free;
                }
            }
        }
        // What is still in flight may still be read by the kernel: leak its holds rather than
        // let a buffer go back to an arena that outlives this ring and be handed out again.
        for state in self.slots.get_mut().iter_mut() {
            if let SlotState::InFlight(..) | SlotState::Abandoned(..) | SlotState::Stream(..) | SlotState::StreamAbandoned(..) = state {
                std::mem::forget(std::mem::replace(state, SlotState::Free));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IORING_CQE_F_MORE and IORING_CQE_F_NOTIF (io_uring's sys module is private).
    const MORE: u32 = 1 << 1;
    const NOTIF: u32 = 1 << 3;

    /// Feeds `cqes` (res, flags) to a fresh op that reserved `cqes_reserved` CQ entries; the
    /// op completes exactly at the last one, with `expected`.
    fn check(cqes_reserved: u32, cqes: &[(i32, u32)], expected: Completion) {
        let mut progress = Progress { first: None, cqes_reserved };
        let (last, before) = cqes.split_last().expect("at least one CQE");
        for &(res, flags) in before {
            assert_eq!(progress.step(0, res, flags), None, "completed early on {res}, {flags:#x}");
        }
        assert_eq!(progress.step(0, last.0, last.1), Some(expected));
    }

    fn done(result: i32, notification: Option<i32>) -> Completion {
        Completion { result, notification }
    }

    #[test]
    fn an_op_completes_on_its_final_cqe_with_its_first_result() {
        check(1, &[(4096, 0)], done(4096, None));
        check(1, &[(-libc::EIO, 0)], done(-libc::EIO, None));
        // send_zc: result with F_MORE, then the notification.
        check(2, &[(65536, MORE), (0, NOTIF)], done(65536, Some(0)));
        check(2, &[(65536, MORE), (NOTIF_USAGE_ZC_COPIED as i32, NOTIF)], done(65536, Some(NOTIF_USAGE_ZC_COPIED as i32)));
        // A failed send_zc that had already set up its notification still posts it.
        check(2, &[(-libc::EPIPE, MORE), (0, NOTIF)], done(-libc::EPIPE, Some(0)));
        // One that failed before (bad fd, old kernel) posts no notification.
        check(2, &[(-libc::EINVAL, 0)], done(-libc::EINVAL, None));
    }

    #[test]
    #[should_panic(expected = "multishot")]
    fn more_from_an_op_that_reserved_one_cqe_asserts() {
        check(1, &[(1, MORE), (2, 0)], done(1, None));
    }

    #[test]
    #[should_panic(expected = "not a notification")]
    fn a_second_result_instead_of_a_notification_asserts() {
        check(2, &[(1, MORE), (2, 0)], done(1, None));
    }

    #[test]
    #[should_panic(expected = "third CQE")]
    fn a_third_cqe_asserts() {
        check(2, &[(1, MORE), (0, MORE | NOTIF), (0, NOTIF)], done(1, Some(0)));
    }
}
