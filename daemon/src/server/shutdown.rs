//! A per-worker "we are shutting down" flag that idle connections can await, so a
//! SIGTERM closes idle keep-alive connections at once while requests in flight finish.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Single-threaded (per worker) shutdown notification.
#[derive(Debug, Default)]
pub struct Shutdown {
    fired: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl Shutdown {
    pub fn is_fired(&self) -> bool {
        self.fired.get()
    }

    /// Fire once; wakes every waiter.
    pub fn fire(&self) {
        self.fired.set(true);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Resolves when [`fire`](Self::fire) has been called.
    pub fn wait(&self) -> Wait<'_> {
        Wait { s: self }
    }
}

/// Future returned by [`Shutdown::wait`].
#[derive(Debug)]
pub struct Wait<'a> {
    s: &'a Shutdown,
}

impl Future for Wait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.s.fired.get() {
            return Poll::Ready(());
        }
        let mut waiters = self.s.waiters.borrow_mut();
        // Idle connections poll this once per wait; drop stale wakers of finished waits
        // so the list stays bounded by the number of idle connections.
        waiters.retain(|w| !w.will_wake(cx.waker()));
        waiters.push(cx.waker().clone());
        Poll::Pending
    }
}
