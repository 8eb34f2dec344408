//! Time as the engine sees it: a monotonic instant read from the core's driver (the OS clock in
//! production, virtual time in the simulator), and sleeps that are timers on the core's executor.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::executor;

/// Nanoseconds on the driver's monotonic clock. Only differences are meaningful.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    pub ns: u64,
}

impl Instant {
    pub const fn from_ns(ns: u64) -> Instant {
        Instant { ns }
    }

    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.ns.saturating_sub(earlier.ns))
    }

    pub fn checked_add(self, d: Duration) -> Option<Instant> {
        let d_ns = u64::try_from(d.as_nanos()).ok()?;
        Some(Instant { ns: self.ns.checked_add(d_ns)? })
    }

    /// Adds, saturating at the end of time (a deadline that never comes).
    pub fn saturating_add(self, d: Duration) -> Instant {
        self.checked_add(d).unwrap_or(Instant { ns: u64::MAX })
    }
}

/// The current instant on this core.
pub fn now() -> Instant {
    executor::with_current(|e| e.now())
}

/// Completes once the core's clock reaches `now() + duration`.
pub fn sleep(duration: Duration) -> Sleep {
    Sleep { deadline: now().saturating_add(duration), timer: None }
}

pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { deadline, timer: None }
}

/// A timer on the core's executor. Dropping it removes the timer.
pub struct Sleep {
    deadline: Instant,
    timer: Option<executor::TimerKey>,
}

impl Sleep {
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        executor::with_current(|e| {
            if e.now() >= this.deadline {
                if let Some(key) = this.timer.take() {
                    e.timer_cancel(key);
                }
                return Poll::Ready(());
            }
            match this.timer {
                Some(key) => e.timer_update_waker(key, cx.waker()),
                None => this.timer = Some(e.timer_add(this.deadline, cx.waker().clone())),
            }
            Poll::Pending
        })
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.timer.take() {
            // The executor may be gone when a task is dropped at shutdown; then so is the timer.
            executor::try_with_current(|e| e.timer_cancel(key));
        }
    }
}

/// Runs `future` until it completes or `duration` passes.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = std::pin::pin!(future);
    let mut sleep = std::pin::pin!(sleep(duration));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(Elapsed));
        }
        Poll::Pending
    })
    .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline elapsed")]
pub struct Elapsed;
