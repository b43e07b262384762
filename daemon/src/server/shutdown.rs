//! A per-worker "we are shutting down" flag that idle connections can await, so a
//! SIGTERM closes idle keep-alive connections at once while requests in flight finish.
//!
//! Every keep-alive wait registers here, so this is on the hot path: waiters live in a
//! slab (a vector plus a free list, no hashing); each removes its slot when its wait
//! ends (the future is dropped), so the slab holds only current waiters.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Single-threaded (per worker) shutdown notification.
#[derive(Debug, Default)]
pub struct Shutdown {
    fired: Cell<bool>,
    waiters: RefCell<Slab>,
}

#[derive(Debug, Default)]
struct Slab {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Slab {
    fn insert(&mut self, w: Waker) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(w);
                i
            }
            None => {
                self.slots.push(Some(w));
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, i: usize) {
        if self.slots.get_mut(i).and_then(Option::take).is_some() {
            self.free.push(i);
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.slots.len() == self.free.len()
    }
}

impl Shutdown {
    pub fn is_fired(&self) -> bool {
        self.fired.get()
    }

    /// Fire once; wakes every waiter.
    pub fn fire(&self) {
        self.fired.set(true);
        let mut slab = self.waiters.borrow_mut();
        let wakers: Vec<Waker> = slab.slots.iter_mut().filter_map(Option::take).collect();
        slab.free = (0..slab.slots.len()).collect();
        drop(slab);
        for w in wakers {
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
    key: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.s.fired.get() {
            return Poll::Ready(());
        }
        let mut slab = self.s.waiters.borrow_mut();
        match self.key {
            Some(k) => match &mut slab.slots[k] {
                Some(w) if w.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            },
            None => {
                let k = slab.insert(cx.waker().clone());
                drop(slab);
                self.key = Some(k);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            self.s.waiters.borrow_mut().remove(k);
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
