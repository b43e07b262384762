//! A per-worker "we are shutting down" flag that idle connections can await, so a
//! SIGTERM closes idle keep-alive connections at once while requests in flight finish.
//!
//! Each waiting connection registers its waker under a key and removes it when its
//! wait ends (the future is dropped), so the table holds only current waiters.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Single-threaded (per worker) shutdown notification.
#[derive(Debug, Default)]
pub struct Shutdown {
    fired: Cell<bool>,
    next_key: Cell<u64>,
    waiters: RefCell<HashMap<u64, Waker>>,
}

impl Shutdown {
    pub fn is_fired(&self) -> bool {
        self.fired.get()
    }

    /// Fire once; wakes every waiter.
    pub fn fire(&self) {
        self.fired.set(true);
        for (_, w) in self.waiters.borrow_mut().drain() {
            w.wake();
        }
    }

    /// Resolves when [`fire`](Self::fire) has been called.
    pub fn wait(&self) -> Wait<'_> {
        Wait { s: self, key: None }
    }
}

/// Future returned by [`Shutdown::wait`].
#[derive(Debug)]
pub struct Wait<'a> {
    s: &'a Shutdown,
    key: Option<u64>,
}

impl Future for Wait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.s.fired.get() {
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(k) => k,
            None => {
                let k = self.s.next_key.get();
                self.s.next_key.set(k + 1);
                self.key = Some(k);
                k
            }
        };
        self.s.waiters.borrow_mut().insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            self.s.waiters.borrow_mut().remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_do_not_accumulate() {
        let s = Shutdown::default();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        for _ in 0..100 {
            let mut w = std::pin::pin!(s.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        assert!(s.waiters.borrow().is_empty());
        let mut w = std::pin::pin!(s.wait());
        assert!(w.as_mut().poll(&mut cx).is_pending());
        s.fire();
        assert!(w.as_mut().poll(&mut cx).is_ready());
    }
}
