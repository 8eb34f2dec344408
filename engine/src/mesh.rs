//! The cross-core mesh: one bounded queue per ordered pair of cores, so each queue has exactly
//! one producer and one consumer, and nothing is shared beyond that pair. A core that is about
//! to block in io_uring_enter announces it (`sleeping`); a sender that sees the flag writes the
//! receiver's eventfd, whose read is always in flight on the receiver's ring. Busy cores pay no
//! syscall for messages at all: they find them when they poll their queues each loop turn.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::task::{Context, Poll, Waker};

use crossbeam_queue::ArrayQueue;

use crate::limits::CORES_MAX;

struct Inbox {
    sleeping: AtomicBool,
    eventfd: OwnedFd,
    wakeups: AtomicU64,
}

/// The queues between every pair of cores. Build one per runtime and hand each core its endpoint.
pub struct Mesh<T> {
    cores: usize,
    /// Index `from * cores + to`.
    queues: Vec<ArrayQueue<T>>,
    inboxes: Vec<Inbox>,
}

impl<T: Send> Mesh<T> {
    pub fn new(cores: usize, capacity: usize) -> std::io::Result<Arc<Mesh<T>>> {
        assert!(cores > 0 && cores <= CORES_MAX, "cores {cores} out of range");
        assert!(capacity > 0);
        let queues = (0..cores * cores).map(|_| ArrayQueue::new(capacity)).collect();
        let mut inboxes = Vec::with_capacity(cores);
        for _ in 0..cores {
            // SAFETY: plain eventfd creation. Blocking on purpose: io_uring returns EAGAIN at once for an
            // O_NONBLOCK file instead of arming a poll, and the read must wait in the kernel.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: fresh fd owned by nobody else.
            let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
            inboxes.push(Inbox { sleeping: AtomicBool::new(false), eventfd, wakeups: AtomicU64::new(0) });
        }
        Ok(Arc::new(Mesh { cores, queues, inboxes }))
    }

    pub fn endpoint(self: &Arc<Self>, core: usize) -> MeshEndpoint<T> {
        assert!(core < self.cores);
        MeshEndpoint { mesh: self.clone(), core, waker: Rc::new(RefCell::new(None)), next_from: Rc::new(Cell::new(0)) }
    }

    /// Eventfd writes done to wake sleeping cores (for benchmarks: should be far below messages).
    pub fn wakeups(&self) -> u64 {
        self.inboxes.iter().map(|i| i.wakeups.load(Ordering::Relaxed)).sum()
    }
}

/// One core's side of the mesh. `!Send`: it lives on its core.
pub struct MeshEndpoint<T> {
    mesh: Arc<Mesh<T>>,
    core: usize,
    waker: Rc<RefCell<Option<Waker>>>,
    next_from: Rc<Cell<usize>>,
}

impl<T> Clone for MeshEndpoint<T> {
    fn clone(&self) -> Self {
        MeshEndpoint { mesh: self.mesh.clone(), core: self.core, waker: self.waker.clone(), next_from: self.next_from.clone() }
    }
}

/// The target's queue from this core is full: the message comes back.
#[derive(Debug)]
pub struct Full<T>(pub T);

impl<T: Send> MeshEndpoint<T> {
    pub fn core(&self) -> usize {
        self.core
    }

    pub fn cores(&self) -> usize {
        self.mesh.cores
    }

    /// Queues `msg` for core `to`. Never blocks; a full queue is the caller's to handle
    /// (back-pressure: the owning core is behind).
    pub fn try_send(&self, to: usize, msg: T) -> Result<(), Full<T>> {
        let q = &self.mesh.queues[self.core * self.mesh.cores + to];
        q.push(msg).map_err(Full)?;
        // Pairs with the fence in `poll_inbox`: either the receiver sees our message before it
        // sleeps, or we see its `sleeping` flag and wake it.
        fence(Ordering::SeqCst);
        let inbox = &self.mesh.inboxes[to];
        if inbox.sleeping.load(Ordering::Relaxed) && inbox.sleeping.swap(false, Ordering::AcqRel) {
            inbox.wakeups.fetch_add(1, Ordering::Relaxed);
            let one: u64 = 1;
            // SAFETY: writing 8 bytes from a valid u64 to our eventfd.
            let r = unsafe { libc::write(inbox.eventfd.as_raw_fd(), (&one as *const u64).cast(), 8) };
            // EAGAIN means the counter is saturated, which already guarantees a wake-up.
            assert!(r == 8 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN));
        }
        Ok(())
    }

    /// Sends, yielding to this core's loop while the target queue is full.
    pub async fn send(&self, to: usize, mut msg: T) {
        loop {
            match self.try_send(to, msg) {
                Ok(()) => return,
                Err(Full(m)) => {
                    msg = m;
                    crate::executor::yield_now().await;
                }
            }
        }
    }

    /// Takes one message, fairly across senders.
    pub fn try_recv(&self) -> Option<(usize, T)> {
        let cores = self.mesh.cores;
        let start = self.next_from.get();
        for i in 0..cores {
            let from = (start + i) % cores;
            if let Some(m) = self.mesh.queues[from * cores + self.core].pop() {
                self.next_from.set((from + 1) % cores);
                return Some((from, m));
            }
        }
        None
    }

    /// Waits for the next message.
    pub fn recv(&self) -> Recv<'_, T> {
        Recv { endpoint: self }
    }

    fn has_incoming(&self) -> bool {
        let cores = self.mesh.cores;
        (0..cores).any(|from| !self.mesh.queues[from * cores + self.core].is_empty())
    }

    /// The executor poller of this core: wakes `recv` when messages are queued, and implements
    /// the sleeping handshake before the core blocks.
    pub(crate) fn poll_inbox(&self, about_to_block: bool) -> bool {
        let inbox = &self.mesh.inboxes[self.core];
        inbox.sleeping.store(false, Ordering::Relaxed);
        let wake = || {
            if let Some(w) = self.waker.borrow_mut().take() {
                w.wake();
                return true;
            }
            false
        };
        if self.has_incoming() {
            return wake();
        }
        if about_to_block {
            inbox.sleeping.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if self.has_incoming() {
                inbox.sleeping.store(false, Ordering::Relaxed);
                return wake();
            }
        }
        false
    }

    pub(crate) fn eventfd(&self) -> i32 {
        self.mesh.inboxes[self.core].eventfd.as_raw_fd()
    }
}

pub struct Recv<'a, T> {
    endpoint: &'a MeshEndpoint<T>,
}

impl<T: Send> Future for Recv<'_, T> {
    type Output = (usize, T);
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(usize, T)> {
        if let Some(m) = self.endpoint.try_recv() {
            return Poll::Ready(m);
        }
        *self.endpoint.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    proptest! {
        /// Against a model of one FIFO per ordered pair: every message arrives once, in order per
        /// sender, `Full` exactly when the pair's queue holds `capacity`, nothing else is lost.
        #[test]
        fn mesh_model(cores in 1usize..5, capacity in 1usize..6,
                      steps in proptest::collection::vec((any::<bool>(), 0usize..5, 0usize..5), 1..300)) {
            let mesh: Arc<Mesh<(usize, u32)>> = Mesh::new(cores, capacity).expect("mesh");
            let eps: Vec<_> = (0..cores).map(|c| mesh.endpoint(c)).collect();
            let mut model: Vec<VecDeque<(usize, u32)>> = vec![VecDeque::new(); cores * cores];
            let mut seq = 0u32;
            for (send, a, b) in steps {
                let (from, to) = (a % cores, b % cores);
                if send {
                    seq += 1;
                    let q = &mut model[from * cores + to];
                    match eps[from].try_send(to, (from, seq)) {
                        Ok(()) => { prop_assert!(q.len() < capacity); q.push_back((from, seq)); }
                        Err(Full(m)) => { prop_assert_eq!(q.len(), capacity); prop_assert_eq!(m, (from, seq)); }
                    }
                } else if let Some((src, msg)) = eps[to].try_recv() {
                    prop_assert_eq!(src, msg.0);
                    let expected = model[src * cores + to].pop_front();
                    prop_assert_eq!(Some(msg), expected, "out of order or foreign message");
                } else {
                    for f in 0..cores {
                        prop_assert!(model[f * cores + to].is_empty(), "try_recv found nothing but a message was queued");
                    }
                }
            }
            for to in 0..cores {
                while let Some((src, msg)) = eps[to].try_recv() {
                    prop_assert_eq!(Some(msg), model[src * cores + to].pop_front());
                }
            }
            prop_assert!(model.iter().all(|q| q.is_empty()), "messages lost");
        }
    }

    #[test]
    fn sleeping_receiver_is_woken_by_eventfd_only_when_asleep() {
        let mesh: Arc<Mesh<u32>> = Mesh::new(2, 4).expect("mesh");
        let (a, b) = (mesh.endpoint(0), mesh.endpoint(1));
        // A task waits in recv (registers its waker).
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut b.recv()).poll(&mut cx).is_pending());
        a.try_send(1, 1).expect("send");
        assert_eq!(mesh.wakeups(), 0, "an awake core is not woken");
        assert!(b.poll_inbox(true), "queued work for a waiting task: must not block");
        b.try_recv().expect("message");
        assert!(Pin::new(&mut b.recv()).poll(&mut cx).is_pending());
        assert!(!b.poll_inbox(true), "nothing queued: may block");
        a.try_send(1, 2).expect("send");
        assert_eq!(mesh.wakeups(), 1, "a core about to block is woken");
        let mut counter = 0u64;
        // SAFETY: reading the 8-byte eventfd counter into a u64.
        let n = unsafe { libc::read(b.eventfd(), (&mut counter as *mut u64).cast(), 8) };
        assert_eq!((n, counter), (8, 1));
    }
}
