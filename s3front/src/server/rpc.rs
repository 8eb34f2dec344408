//! Calls between cores over the mesh: a closure runs on the target core (which owns the data it
//! touches) and its result comes back as another message. No locks and no shared state: the
//! closure and its result are moved, never shared (as Seastar's `submit_to`).

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::Shard;

/// A message between cores: work to run on the receiving core.
pub type Job = Box<dyn FnOnce(Rc<Shard>) + Send>;

#[derive(Default)]
struct Pending {
    result: Option<Box<dyn Any + Send>>,
    waker: Option<Waker>,
}

/// The calls this core is waiting on.
#[derive(Default)]
pub struct Rpc {
    next: Cell<u64>,
    pending: RefCell<HashMap<u64, Pending>>,
}

impl Rpc {
    fn complete(&self, token: u64, result: Box<dyn Any + Send>) {
        // A caller that gave up (its connection closed) removed its token: the result is dropped.
        if let Some(p) = self.pending.borrow_mut().get_mut(&token) {
            p.result = Some(result);
            if let Some(w) = p.waker.take() {
                w.wake();
            }
        }
    }
}

/// Removes a call's token when the caller stops waiting.
struct Forget<'a> {
    rpc: &'a Rpc,
    token: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.rpc.pending.borrow_mut().remove(&self.token);
    }
}

/// Runs `f` on core `to` and returns its result; on this core it runs in place.
pub async fn call<R, F, Fut>(shard: &Rc<Shard>, to: usize, f: F) -> R
where
    R: Send + 'static,
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
{
    if to == shard.core {
        return f(shard.clone()).await;
    }
    let token = shard.rpc.next.get();
    shard.rpc.next.set(token + 1);
    shard.rpc.pending.borrow_mut().insert(token, Pending::default());
    let _forget = Forget { rpc: &shard.rpc, token };
    let from = shard.core;
    let job: Job = Box::new(move |remote: Rc<Shard>| {
        drop(engine::spawn(async move {
            let r = f(remote.clone()).await;
            let reply: Job = Box::new(move |origin: Rc<Shard>| origin.rpc.complete(token, Box::new(r)));
            remote.mesh.send(from, reply).await;
        }));
    });
    shard.mesh.send(to, job).await;
    let result = std::future::poll_fn(|cx| {
        let mut pending = shard.rpc.pending.borrow_mut();
        let p = pending.get_mut(&token).expect("a call's token stays until it returns");
        match p.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                p.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await;
    *result.downcast::<R>().expect("a reply carries its call's result type")
}

/// Sends `job` to run on core `to` as soon as it arrives there, in the order sent.
pub async fn post(shard: &Shard, to: usize, job: Job) {
    if to == shard.core {
        // Run it from this core's job loop's point of view: now.
        let me = shard.mesh.core();
        shard.mesh.send(me, job).await;
        return;
    }
    shard.mesh.send(to, job).await;
}

/// Runs every job other cores send to this one, until the process stops.
pub async fn serve_jobs(shard: Rc<Shard>) {
    loop {
        let (_from, job) = shard.mesh.recv().await;
        job(shard.clone());
    }
}
