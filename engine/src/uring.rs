//! The io_uring driver: one ring per core (SINGLE_ISSUER | DEFER_TASKRUN by default), an op
//! slab bounded by the completion queue, and [`Op`], the future of one submission.
//!
//! Ownership rule: whatever memory an SQE points at (a fixed buffer, an 8-byte eventfd counter)
//! is moved into the `Op` as its `hold`. If the `Op` is dropped before its completion arrives,
//! the hold moves into the slab slot and is dropped only when the CQE is reaped, so the kernel
//! never writes into memory that was handed to someone else.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use io_uring::{IoUring, squeue, types};

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

enum SlotState {
    Free,
    /// Submitted; the waker (if any) belongs to the task awaiting it.
    InFlight(Option<Waker>),
    Done(i32),
    /// The future was dropped; the hold waits here for the CQE.
    Abandoned(Option<Box<dyn Any>>),
}

/// Counters of the ring's work.
#[derive(Default, Debug, Clone, Copy)]
pub struct RingStats {
    pub enters: u64,
    pub sqes: u64,
    pub cqes: u64,
    pub slot_waits: u64,
}

pub struct Ring {
    ring: RefCell<IoUring>,
    slots: RefCell<Vec<SlotState>>,
    free_slots: RefCell<Vec<u32>>,
    slot_waiters: RefCell<VecDeque<Waker>>,
    in_flight: Cell<usize>,
    unsubmitted: Cell<usize>,
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
            unsubmitted: Cell::new(0),
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
            // by the slab after the Op is dropped, until the CQE is reaped.
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
        }
        self.unsubmitted.set(self.unsubmitted.get() + 1);
        self.stat(|s| s.sqes += 1);
    }

    fn alloc_slot(&self, waker: &Waker) -> Option<u32> {
        let slot = self.free_slots.borrow_mut().pop();
        match slot {
            Some(s) => {
                self.slots.borrow_mut()[s as usize] = SlotState::InFlight(Some(waker.clone()));
                self.in_flight.set(self.in_flight.get() + 1);
                Some(s)
            }
            None => {
                self.stat(|s| s.slot_waits += 1);
                self.slot_waiters.borrow_mut().push_back(waker.clone());
                None
            }
        }
    }

    fn free_slot(&self, slot: u32) {
        self.slots.borrow_mut()[slot as usize] = SlotState::Free;
        self.free_slots.borrow_mut().push(slot);
        if let Some(w) = self.slot_waiters.borrow_mut().pop_front() {
            w.wake();
        }
    }

    /// Drains the completion queue, waking tasks and dropping holds of abandoned ops.
    fn reap(&self) {
        let mut abandoned: Vec<Box<dyn Any>> = Vec::new();
        let mut freed = Vec::new();
        {
            let mut ring = self.ring.borrow_mut();
            let mut slots = self.slots.borrow_mut();
            let mut n = 0u64;
            for cqe in ring.completion() {
                n += 1;
                let slot = cqe.user_data() as u32;
                let state = std::mem::replace(&mut slots[slot as usize], SlotState::Done(cqe.result()));
                self.in_flight.set(self.in_flight.get() - 1);
                match state {
                    SlotState::InFlight(waker) => {
                        if let Some(w) = waker {
                            w.wake();
                        }
                    }
                    SlotState::Abandoned(hold) => {
                        if let Some(h) = hold {
                            abandoned.push(h);
                        }
                        freed.push(slot);
                    }
                    SlotState::Free | SlotState::Done(_) => panic!("completion for slot {slot} that was not in flight"),
                }
            }
            self.stat(|s| s.cqes += n);
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
        self.stat(|s| s.enters += 1);
        self.unsubmitted.set(0);
        match result {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)) => {}
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
        if self.sqpoll {
            // SQPOLL: the kernel thread submits; we only enter to wait or wake it.
            let ring = self.ring.borrow();
            let result = match park {
                Park::NoWait => ring.submit(),
                Park::Until(None) => ring.submit_and_wait(1),
                Park::Until(Some(deadline)) => {
                    let ts = types::Timespec::from(deadline.saturating_duration_since(now));
                    ring.submitter().submit_with_args(1, &types::SubmitArgs::new().timespec(&ts))
                }
            };
            drop(ring);
            self.unsubmitted.set(0);
            // Only waits are sure to enter the kernel; a NoWait submit usually does not.
            if matches!(park, Park::Until(_)) {
                self.stat(|s| s.enters += 1);
            }
            if let Err(e) = result {
                assert!(matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)), "io_uring_enter: {e}");
            }
        } else {
            self.enter(park, now);
        }
        self.reap();
    }

    fn idle(&self) -> bool {
        self.in_flight.get() == 0 && self.unsubmitted.get() == 0
    }
}

/// CLOCK_MONOTONIC in nanoseconds. The only place the engine reads the OS clock.
pub fn monotonic_now() -> Instant {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec; CLOCK_MONOTONIC always exists on Linux.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(r, 0);
    Instant::from_ns(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// The future of one submission. Output: the raw CQE result (`>= 0` or `-errno`) and the hold.
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
}

impl<H: 'static> Unpin for Op<H> {}

impl<H: 'static> Future for Op<H> {
    type Output = (i32, H);
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(i32, H)> {
        let this = &mut *self;
        let Some(slot) = this.slot else {
            let Some(slot) = this.ring.alloc_slot(cx.waker()) else { return Poll::Pending };
            let entry = this.entry.take().expect("unsubmitted op has its entry");
            this.ring.push(entry, slot);
            this.slot = Some(slot);
            return Poll::Pending;
        };
        let mut slots = this.ring.slots.borrow_mut();
        match &mut slots[slot as usize] {
            SlotState::Done(res) => {
                let res = *res;
                drop(slots);
                this.ring.free_slot(slot);
                this.slot = None;
                Poll::Ready((res, this.hold.take().expect("op polled after completion")))
            }
            SlotState::InFlight(w) => {
                match w {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            SlotState::Free | SlotState::Abandoned(_) => panic!("op slot {slot} in a wrong state"),
        }
    }
}

impl<H: 'static> Drop for Op<H> {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else { return };
        let mut slots = self.ring.slots.borrow_mut();
        match &slots[slot as usize] {
            SlotState::Done(_) => {
                drop(slots);
                self.ring.free_slot(slot);
            }
            SlotState::InFlight(_) => {
                let hold = self.hold.take().map(|h| Box::new(h) as Box<dyn Any>);
                slots[slot as usize] = SlotState::Abandoned(hold);
            }
            SlotState::Free | SlotState::Abandoned(_) => panic!("dropping op with slot {slot} in a wrong state"),
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Ops still in flight (an abandoned eventfd read, say) point at memory in their slots:
        // cancel them and wait for their completions before that memory goes.
        if self.in_flight.get() == 0 {
            return;
        }
        let cancel = io_uring::opcode::AsyncCancel2::new(types::CancelBuilder::any()).build().user_data(u64::MAX);
        {
            let mut ring = self.ring.borrow_mut();
            // SAFETY: the cancel SQE points at no memory.
            let _ = unsafe { ring.submission().push(&cancel) };
        }
        for _ in 0..1000 {
            if self.in_flight.get() == 0 {
                break;
            }
            let r = self.ring.borrow().submit_and_wait(1);
            if r.is_err() {
                break;
            }
            let mut ring = self.ring.borrow_mut();
            let mut slots = self.slots.borrow_mut();
            for cqe in ring.completion() {
                if cqe.user_data() == u64::MAX {
                    continue;
                }
                slots[cqe.user_data() as usize] = SlotState::Free;
                self.in_flight.set(self.in_flight.get() - 1);
            }
        }
    }
}
