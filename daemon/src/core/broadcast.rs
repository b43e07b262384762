//! Cross-worker broadcast: one publisher (the writer's event fan-out, any thread)
//! delivers each message to every worker, and each worker hands it to its local
//! subscribers (WebSocket sessions) through bounded per-subscriber queues.
//!
//! - [`Hub`] is process-wide (`Send + Sync`). Each worker calls [`Hub::register`] once
//!   and gets a [`WorkerFeed`]; [`Hub::publish`] sends an `Arc` of the message to every
//!   registered worker through an unbounded channel (a message is small and shared; the
//!   bound that matters is per subscriber, below).
//! - [`LocalFanout`] lives on one worker (not `Send`): [`LocalFanout::subscribe`] gives a
//!   [`Subscription`] with a queue of at most `capacity` messages. [`LocalFanout::run`]
//!   forwards the worker's feed to every subscriber. A subscriber whose queue is full
//!   is cut off (its next `recv` answers [`Recv::Lagged`]) instead of slowing the
//!   publisher, the worker or the other subscribers; it is expected to resume from its
//!   last known position (events carry sequence numbers).
//!
//! Messages published before a subscriber subscribed are not delivered to it; replay
//! of history is the event log's job.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;

/// The process-wide publisher side.
#[derive(Debug)]
pub struct Hub<T> {
    workers: Mutex<Vec<UnboundedSender<Arc<T>>>>,
}

impl<T> Default for Hub<T> {
    fn default() -> Self {
        Hub {
            workers: Mutex::new(Vec::new()),
        }
    }
}

/// A worker's end of the hub.
#[derive(Debug)]
pub struct WorkerFeed<T> {
    rx: UnboundedReceiver<Arc<T>>,
}

impl<T: Send + Sync + 'static> Hub<T> {
    /// Register a worker; messages published from now on reach its feed.
    pub fn register(&self) -> WorkerFeed<T> {
        let (tx, rx) = unbounded();
        self.lock().push(tx);
        WorkerFeed { rx }
    }

    /// Send `msg` to every registered worker (workers that went away are forgotten).
    pub fn publish(&self, msg: T) {
        let msg = Arc::new(msg);
        self.lock()
            .retain(|tx| tx.unbounded_send(msg.clone()).is_ok());
    }

    /// Workers registered.
    pub fn workers(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<UnboundedSender<Arc<T>>>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> WorkerFeed<T> {
    /// The next message, or `None` when the hub is gone.
    pub async fn next(&mut self) -> Option<Arc<T>> {
        self.rx.next().await
    }
}

#[derive(Debug)]
struct Slot<T> {
    queue: VecDeque<Arc<T>>,
    capacity: usize,
    lagged: bool,
    closed: bool,
    waker: Option<Waker>,
}

/// One worker's subscribers.
#[derive(Debug)]
pub struct LocalFanout<T> {
    subscribers: RefCell<Vec<Weak<RefCell<Slot<T>>>>>,
}

impl<T> Default for LocalFanout<T> {
    fn default() -> Self {
        LocalFanout {
            subscribers: RefCell::new(Vec::new()),
        }
    }
}

/// What a subscriber receives.
#[derive(Debug, PartialEq, Eq)]
pub enum Recv<T> {
    Message(Arc<T>),
    /// The queue overflowed: messages were dropped, and nothing more will come.
    Lagged,
    /// The worker's feed ended (shutdown).
    Closed,
}

/// A subscriber's queue. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription<T> {
    slot: Rc<RefCell<Slot<T>>>,
}

impl<T> LocalFanout<T> {
    /// A new subscriber with room for `capacity` undelivered messages.
    pub fn subscribe(&self, capacity: usize) -> Subscription<T> {
        let slot = Rc::new(RefCell::new(Slot {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            lagged: false,
            closed: false,
            waker: None,
        }));
        let mut subs = self.subscribers.borrow_mut();
        subs.retain(|w| w.strong_count() > 0);
        subs.push(Rc::downgrade(&slot));
        Subscription { slot }
    }

    /// Subscribers alive now.
    pub fn len(&self) -> usize {
        self.subscribers
            .borrow()
            .iter()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// Hand `msg` to every subscriber; those whose queue is full are cut off.
    pub fn deliver(&self, msg: &Arc<T>) {
        let mut subs = self.subscribers.borrow_mut();
        subs.retain(|w| {
            let Some(slot) = w.upgrade() else {
                return false;
            };
            let mut s = slot.borrow_mut();
            if s.queue.len() >= s.capacity {
                s.lagged = true;
                s.queue.clear();
            } else {
                s.queue.push_back(msg.clone());
            }
            if let Some(waker) = s.waker.take() {
                waker.wake();
            }
            !s.lagged
        });
    }

    /// Tell every subscriber that nothing more will come.
    pub fn close_all(&self) {
        for w in self.subscribers.borrow_mut().drain(..) {
            if let Some(slot) = w.upgrade() {
                let mut s = slot.borrow_mut();
                s.closed = true;
                if let Some(waker) = s.waker.take() {
                    waker.wake();
                }
            }
        }
    }

    /// Forward the worker's feed to the subscribers until the hub goes away.
    pub async fn run(&self, mut feed: WorkerFeed<T>) {
        while let Some(msg) = feed.next().await {
            self.deliver(&msg);
        }
        self.close_all();
    }
}

impl<T> Subscription<T> {
    /// The next message (cancel-safe: a dropped `recv` loses nothing).
    pub async fn recv(&self) -> Recv<T> {
        poll_fn(|cx| {
            let mut s = self.slot.borrow_mut();
            if s.lagged {
                return Poll::Ready(Recv::Lagged);
            }
            if let Some(m) = s.queue.pop_front() {
                return Poll::Ready(Recv::Message(m));
            }
            if s.closed {
                return Poll::Ready(Recv::Closed);
            }
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Messages waiting.
    pub fn pending(&self) -> usize {
        self.slot.borrow().queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::block_on;

    #[test]
    fn every_worker_and_subscriber_gets_every_message_in_order() {
        let hub: Arc<Hub<u32>> = Arc::new(Hub::default());
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        for _ in 0..3 {
            let hub = hub.clone();
            let ready = ready_tx.clone();
            threads.push(std::thread::spawn(move || {
                block_on(async move {
                    let fan = Rc::new(LocalFanout::default());
                    let subs: Vec<_> = (0..4).map(|_| fan.subscribe(1000)).collect();
                    let feed = hub.register();
                    let f = fan.clone();
                    monoio::spawn(async move { f.run(feed).await });
                    ready.send(()).unwrap();
                    let mut got = vec![Vec::new(); subs.len()];
                    for (i, s) in subs.iter().enumerate() {
                        loop {
                            match s.recv().await {
                                Recv::Message(m) => got[i].push(*m),
                                Recv::Closed => break,
                                Recv::Lagged => panic!("lagged"),
                            }
                            if got[i].len() == 500 {
                                break;
                            }
                        }
                    }
                    got
                })
            }));
        }
        for _ in 0..3 {
            ready_rx.recv().unwrap();
        }
        for i in 0..500 {
            hub.publish(i);
        }
        let want: Vec<u32> = (0..500).collect();
        for t in threads {
            for got in t.join().unwrap() {
                assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn a_full_queue_cuts_off_only_that_subscriber() {
        block_on(async {
            let fan: LocalFanout<u32> = LocalFanout::default();
            let slow = fan.subscribe(2);
            let fast = fan.subscribe(100);
            for i in 0..3 {
                fan.deliver(&Arc::new(i));
            }
            assert_eq!(slow.recv().await, Recv::Lagged);
            for i in 0..3 {
                assert_eq!(fast.recv().await, Recv::Message(Arc::new(i)));
            }
            assert_eq!(fan.len(), 1);
            drop(fast);
            assert_eq!(fan.len(), 0);
            let late = fan.subscribe(1);
            fan.close_all();
            assert_eq!(late.recv().await, Recv::Closed);
        });
    }
}
