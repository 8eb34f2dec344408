//! Per-key async mutual exclusion on one core: the holder of a key's guard is the only one
//! between `lock` and the guard's drop; others wait without blocking the core. Used where a
//! write must read what it replaces (the store's large objects, multipart uploads).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// The keys held on this core and who waits for each. Cheap to clone (a handle).
#[derive(Clone, Default)]
pub struct KeyLocks {
    held: Rc<RefCell<HashMap<Vec<u8>, Vec<Waker>>>>,
}

/// Holds one key of a [`KeyLocks`] until dropped.
pub struct KeyGuard {
    held: Rc<RefCell<HashMap<Vec<u8>, Vec<Waker>>>>,
    key: Vec<u8>,
}

impl KeyLocks {
    /// Waits until `key` is free, then holds it. Waiters are all woken on release and race for
    /// it again (fair enough for the short critical sections this serves).
    pub async fn lock(&self, key: Vec<u8>) -> KeyGuard {
        std::future::poll_fn(|cx| {
            let mut held = self.held.borrow_mut();
            match held.get_mut(&key) {
                Some(waiters) => {
                    waiters.push(cx.waker().clone());
                    Poll::Pending
                }
                None => {
                    held.insert(key.clone(), Vec::new());
                    Poll::Ready(())
                }
            }
        })
        .await;
        KeyGuard { held: self.held.clone(), key }
    }

    /// Keys held now.
    pub fn held(&self) -> usize {
        self.held.borrow().len()
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        let waiters = self.held.borrow_mut().remove(&self.key).expect("a held key is in the table");
        for w in waiters {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{FaultConfig, SimWorld};

    #[test]
    fn one_holder_per_key_others_wait() {
        let world = SimWorld::new(1, FaultConfig::none());
        let executor = crate::Executor::new(world.clone());
        let order = executor.block_on(async {
            let locks = KeyLocks::default();
            let log = Rc::new(RefCell::new(Vec::new()));
            let first = locks.lock(b"k".to_vec()).await;
            let (l, lg) = (locks.clone(), log.clone());
            let waiter = crate::spawn(async move {
                let _g = l.lock(b"k".to_vec()).await;
                lg.borrow_mut().push("second");
            });
            let _other = locks.lock(b"other".to_vec()).await; // another key is free
            crate::yield_now().await;
            log.borrow_mut().push("first");
            assert_eq!(locks.held(), 2);
            drop(first);
            waiter.await;
            assert_eq!(locks.held(), 1);
            log.borrow().clone()
        });
        assert_eq!(order, vec!["first", "second"]);
    }
}
