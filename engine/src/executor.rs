//! The local executor: one per core, for `!Send` tasks, driven by one [`Driver`].
//!
//! A loop turn polls up to [`TASKS_PER_TURN_MAX`] ready tasks, fires due timers, then hands
//! control to the driver once: the io_uring driver makes one `io_uring_enter` per turn
//! (submitting everything the tasks queued and reaping completions), the simulator advances
//! virtual time. A turn whose tasks run longer than `SUBMIT_DELAY_NS_MAX` also submits queued
//! storage I/O in the middle, so a device does not wait for the rest of a busy turn. Wakers are
//! thread-bound: waking a task from another thread is a bug and
//! asserts (cross-core work goes through the mesh, whose wake-ups are the driver's business).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::thread::ThreadId;

use crate::limits::{SUBMIT_DELAY_NS_MAX, TASKS_PER_TURN_MAX};
use crate::time::Instant;

/// How long the driver may block in one turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Park {
    /// Tasks are ready: submit and reap without blocking.
    NoWait,
    /// Nothing is ready: block until a completion arrives or the deadline (if any) passes.
    Until(Option<Instant>),
}

/// What turns the world for an executor: the io_uring ring, or the simulator.
pub trait Driver {
    fn now(&self) -> Instant;
    /// Submits what tasks queued and reaps completions, waking their tasks. Blocks as `park` says.
    fn turn(&self, park: Park);
    /// True when no operation is in flight and nothing else could ever complete on its own. A
    /// blocked executor over an idle driver can never make progress; that is a bug.
    fn idle(&self) -> bool;
    /// Hands the storage I/O tasks queued so far to the kernel now, without reaping or blocking:
    /// called in the middle of a long turn so the device does not wait for the turn's end.
    /// Drivers whose submissions take no time (the simulator) need nothing here.
    fn submit_now(&self) {}
}

/// Runs every loop turn; may wake tasks. Given `about_to_block`, returns true if there is work
/// and the driver must not block (the mesh uses this to avoid lost wake-ups).
pub type Poller = Box<dyn Fn(bool) -> bool>;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Inner>>> = const { RefCell::new(None) };
}

pub(crate) fn with_current<R>(f: impl FnOnce(&Inner) -> R) -> R {
    CURRENT.with(|c| {
        let c = c.borrow();
        let inner = c.as_ref().expect("no executor on this thread: call this inside Executor::block_on");
        f(inner)
    })
}

pub(crate) fn try_with_current<R>(f: impl FnOnce(&Inner) -> R) -> Option<R> {
    CURRENT.with(|c| c.try_borrow().ok().and_then(|c| c.as_ref().map(|i| f(i))))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerKey {
    deadline: Instant,
    seq: u64,
}

pub(crate) struct Inner {
    ready: RefCell<VecDeque<Rc<Task>>>,
    /// Every spawned task that may still be alive, so that dropping the executor can drop their
    /// futures: a parked task is otherwise owned only by wakers, possibly stored in state the
    /// task itself owns (an `Rc` cycle that would leak its buffers).
    tasks: RefCell<Vec<std::rc::Weak<Task>>>,
    timers: RefCell<BTreeMap<TimerKey, Waker>>,
    timer_seq: Cell<u64>,
    driver: Rc<dyn Driver>,
    pollers: RefCell<Vec<Poller>>,
    main_woken: Rc<MainFlag>,
    thread: ThreadId,
    stats: Stats,
}

/// Counters of the executor's work, for benchmarks and tests.
#[derive(Default, Debug)]
pub struct Stats {
    pub turns: Cell<u64>,
    pub polls: Cell<u64>,
    pub timers_fired: Cell<u64>,
}

impl Inner {
    pub(crate) fn now(&self) -> Instant {
        self.driver.now()
    }

    pub(crate) fn timer_add(&self, deadline: Instant, waker: Waker) -> TimerKey {
        let seq = self.timer_seq.get();
        self.timer_seq.set(seq + 1);
        let key = TimerKey { deadline, seq };
        self.timers.borrow_mut().insert(key, waker);
        key
    }

    pub(crate) fn timer_update_waker(&self, key: TimerKey, waker: &Waker) {
        if let Some(w) = self.timers.borrow_mut().get_mut(&key)
            && !w.will_wake(waker)
        {
            *w = waker.clone();
        }
    }

    pub(crate) fn timer_cancel(&self, key: TimerKey) {
        // Drop the waker after the borrow ends: it may be the last reference to a task.
        let waker = self.timers.borrow_mut().remove(&key);
        drop(waker);
    }

    fn timer_next(&self) -> Option<Instant> {
        self.timers.borrow().keys().next().map(|k| k.deadline)
    }

    /// Wakes every timer whose deadline has passed, earliest first.
    fn timers_fire(&self) {
        let now = self.now();
        loop {
            let due = {
                let mut timers = self.timers.borrow_mut();
                match timers.first_key_value() {
                    Some((key, _)) if key.deadline <= now => timers.pop_first(),
                    _ => None,
                }
            };
            let Some((_, waker)) = due else { break };
            self.stats.timers_fired.set(self.stats.timers_fired.get() + 1);
            waker.wake();
        }
    }

    fn schedule(&self, task: Rc<Task>) {
        assert_eq!(std::thread::current().id(), self.thread, "task woken from a foreign thread");
        self.ready.borrow_mut().push_back(task);
    }
}

struct Task {
    future: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>>,
    queued: Cell<bool>,
    executor: Weak<Inner>,
}

impl LocalWake for Task {
    fn wake_by_ref(self: &Rc<Self>) {
        if self.queued.replace(true) {
            return;
        }
        match self.executor.upgrade() {
            Some(e) => e.schedule(self.clone()),
            None => self.queued.set(false), // executor gone: the task will never run again
        }
    }
}

struct MainFlag {
    woken: Cell<bool>,
}

impl LocalWake for MainFlag {
    fn wake_by_ref(self: &Rc<Self>) {
        self.woken.set(true);
    }
}

/// An `Rc`-based waker. Wakers must be `Send` by type; ours are not in fact, which is why every
/// wake asserts the thread (in `schedule`). This is what glommio and monoio do as well.
trait LocalWake: 'static {
    fn wake_by_ref(self: &Rc<Self>);
}

fn local_waker<W: LocalWake>(w: Rc<W>) -> Waker {
    unsafe fn clone<W: LocalWake>(p: *const ()) -> RawWaker {
        // SAFETY: p came from Rc::into_raw of an Rc<W> that is still alive (we hold a count).
        unsafe { Rc::increment_strong_count(p as *const W) };
        RawWaker::new(p, vtable::<W>())
    }
    unsafe fn wake<W: LocalWake>(p: *const ()) {
        // SAFETY: consumes the count this waker held.
        let rc = unsafe { Rc::from_raw(p as *const W) };
        rc.wake_by_ref();
    }
    unsafe fn wake_by_ref<W: LocalWake>(p: *const ()) {
        // SAFETY: borrows the count this waker holds without consuming it.
        let rc = std::mem::ManuallyDrop::new(unsafe { Rc::from_raw(p as *const W) });
        rc.wake_by_ref();
    }
    unsafe fn drop<W: LocalWake>(p: *const ()) {
        // SAFETY: releases the count this waker held.
        unsafe { Rc::decrement_strong_count(p as *const W) };
    }
    fn vtable<W: LocalWake>() -> &'static RawWakerVTable {
        &RawWakerVTable::new(clone::<W>, wake::<W>, wake_by_ref::<W>, drop::<W>)
    }
    let raw = RawWaker::new(Rc::into_raw(w) as *const (), vtable::<W>());
    // SAFETY: the vtable functions uphold the RawWaker contract for an Rc<W> pointer.
    unsafe { Waker::from_raw(raw) }
}

/// One core's executor.
pub struct Executor {
    inner: Rc<Inner>,
}

impl Executor {
    pub fn new(driver: Rc<dyn Driver>) -> Executor {
        Executor {
            inner: Rc::new(Inner {
                ready: RefCell::new(VecDeque::with_capacity(1024)),
                tasks: RefCell::new(Vec::new()),
                timers: RefCell::new(BTreeMap::new()),
                timer_seq: Cell::new(0),
                driver,
                pollers: RefCell::new(Vec::new()),
                main_woken: Rc::new(MainFlag { woken: Cell::new(true) }),
                thread: std::thread::current().id(),
                stats: Stats::default(),
            }),
        }
    }

    /// Adds a hook that runs every loop turn (see [`Poller`]).
    pub fn add_poller(&self, poller: Poller) {
        self.inner.pollers.borrow_mut().push(poller);
    }

    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Runs `future` and every task it spawns until `future` completes. Tasks still pending then
    /// are dropped with the executor (their in-flight I/O keeps its buffers until it completes).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let _guard = CurrentGuard::enter(self.inner.clone());
        // The new future has never been polled: poll it first (also on a second block_on).
        self.inner.main_woken.woken.set(true);
        let mut future = std::pin::pin!(future);
        let main_waker = local_waker(self.inner.main_woken.clone());
        let mut cx = Context::from_waker(&main_waker);
        loop {
            if self.inner.main_woken.woken.replace(false)
                && let Poll::Ready(v) = future.as_mut().poll(&mut cx)
            {
                return v;
            }
            self.run_ready();
            self.inner.timers_fire();
            self.park();
            self.inner.timers_fire();
        }
    }

    fn run_ready(&self) {
        let mut submitted = self.inner.driver.now();
        for _ in 0..TASKS_PER_TURN_MAX {
            let Some(task) = self.inner.ready.borrow_mut().pop_front() else { break };
            task.queued.set(false);
            let waker = local_waker(task.clone());
            let mut cx = Context::from_waker(&waker);
            let mut slot = task.future.borrow_mut();
            if let Some(f) = slot.as_mut() {
                self.inner.stats.polls.set(self.inner.stats.polls.get() + 1);
                if f.as_mut().poll(&mut cx).is_ready() {
                    *slot = None;
                }
            }
            drop(slot);
            let now = self.inner.driver.now();
            if now.ns.saturating_sub(submitted.ns) > SUBMIT_DELAY_NS_MAX {
                self.inner.driver.submit_now();
                submitted = now;
            }
        }
    }

    fn park(&self) {
        let inner = &self.inner;
        inner.stats.turns.set(inner.stats.turns.get() + 1);
        let runnable = || !inner.ready.borrow().is_empty() || inner.main_woken.woken.get();
        let mut work = runnable();
        for poller in inner.pollers.borrow().iter() {
            work |= poller(!work);
        }
        if work || runnable() {
            inner.driver.turn(Park::NoWait);
            return;
        }
        let deadline = inner.timer_next();
        assert!(
            deadline.is_some() || !inner.driver.idle(),
            "executor stuck: the main future is pending with no ready task, no timer and no I/O in flight"
        );
        inner.driver.turn(Park::Until(deadline));
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Break Task -> future -> Rc cycles: drop every future still queued.
        let _guard = CurrentGuard::enter(self.inner.clone());
        let tasks: Vec<_> = self.inner.ready.borrow_mut().drain(..).collect();
        for t in tasks {
            let f = t.future.borrow_mut().take();
            drop(f);
        }
        let all = std::mem::take(&mut *self.inner.tasks.borrow_mut());
        for t in all.iter().filter_map(std::rc::Weak::upgrade) {
            let f = t.future.borrow_mut().take();
            drop(f);
        }
        // Take the map out first: dropping a waker can drop a task whose Sleep cancels its timer.
        let timers = std::mem::take(&mut *self.inner.timers.borrow_mut());
        drop(timers);
    }
}

struct CurrentGuard {
    previous: Option<Rc<Inner>>,
}

impl CurrentGuard {
    fn enter(inner: Rc<Inner>) -> CurrentGuard {
        let previous = CURRENT.with(|c| c.borrow_mut().replace(inner));
        CurrentGuard { previous }
    }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Spawns a task on this core's executor.
pub fn spawn<T: 'static>(future: impl Future<Output = T> + 'static) -> JoinHandle<T> {
    let slot = Rc::new(JoinSlot { value: RefCell::new(None), waker: RefCell::new(None), done: Cell::new(false) });
    let slot2 = slot.clone();
    let wrapped = async move {
        let v = future.await;
        *slot2.value.borrow_mut() = Some(v);
        slot2.done.set(true);
        if let Some(w) = slot2.waker.borrow_mut().take() {
            w.wake();
        }
    };
    with_current(|inner| {
        let task = Rc::new(Task {
            future: RefCell::new(Some(Box::pin(wrapped))),
            queued: Cell::new(true),
            executor: Rc::downgrade(&CURRENT.with(|c| c.borrow().clone()).expect("executor")),
        });
        {
            let mut tasks = inner.tasks.borrow_mut();
            // Prune finished tasks when the list doubles: amortized O(1) per spawn.
            if tasks.len() == tasks.capacity() {
                tasks.retain(|t| t.strong_count() > 0);
            }
            tasks.push(Rc::downgrade(&task));
        }
        inner.schedule(task);
    });
    JoinHandle { slot }
}

struct JoinSlot<T> {
    value: RefCell<Option<T>>,
    waker: RefCell<Option<Waker>>,
    done: Cell<bool>,
}

/// Awaits a spawned task's output. Dropping it detaches the task (it keeps running).
pub struct JoinHandle<T> {
    slot: Rc<JoinSlot<T>>,
}

impl<T> JoinHandle<T> {
    pub fn is_finished(&self) -> bool {
        self.slot.done.get()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(v) = self.slot.value.borrow_mut().take() {
            return Poll::Ready(v);
        }
        assert!(!self.slot.done.get(), "JoinHandle polled after it returned its value");
        *self.slot.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Lets the other ready tasks and the driver run once before continuing.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{FaultConfig, SimWorld};
    use std::time::Duration;

    fn executor() -> Executor {
        Executor::new(SimWorld::new(1, FaultConfig::none()))
    }

    #[test]
    fn block_on_twice_polls_each_future() {
        // Regression: the main-woken flag was only set at construction.
        let e = executor();
        assert_eq!(e.block_on(async { 1 }), 1);
        assert_eq!(e.block_on(async { 2 }), 2);
    }

    #[test]
    fn spawned_tasks_join_and_sleeps_advance_virtual_time() {
        let e = executor();
        let out = e.block_on(async {
            let start = crate::time::now();
            let a = spawn(async {
                crate::sleep(Duration::from_millis(5)).await;
                "a"
            });
            let b = spawn(async {
                yield_now().await;
                "b"
            });
            let (a, b) = (a.await, b.await);
            (a, b, crate::time::now().saturating_duration_since(start))
        });
        assert_eq!((out.0, out.1), ("a", "b"));
        assert_eq!(out.2, Duration::from_millis(5), "virtual time moves exactly to the deadline");
    }

    #[test]
    fn timeout_elapses_and_cancels_its_timer() {
        let e = executor();
        let r = e.block_on(crate::timeout(Duration::from_millis(1), std::future::pending::<()>()));
        assert_eq!(r, Err(crate::time::Elapsed));
        assert!(e.inner.timers.borrow().is_empty(), "the inner sleep's timer was not removed");
    }

    #[test]
    #[should_panic(expected = "executor stuck")]
    fn a_future_that_can_never_complete_is_reported() {
        executor().block_on(std::future::pending::<()>());
    }
}
