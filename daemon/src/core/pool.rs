//! A bounded pool of plain threads for work that must never run on an io_uring
//! worker: password hashing, image decoding, EXIF parsing, SQLite, hashing whole files,
//! directory scans. A worker submits a closure and awaits its result; the worker's
//! runtime keeps serving other connections meanwhile (the result comes back through a
//! oneshot channel, which wakes the awaiting task from the pool thread).
//!
//! Bounds: `threads` threads and at most `queue` jobs waiting; beyond that `run`
//! answers `Busy` at once (a 503 for the client) instead of queueing without limit.
//! A job that panics is caught: the caller gets an `Internal` error, the thread goes
//! on, and the panic is counted (`ringbox_panics_total{where="pool"}`).
//!
//! A process may run more than one pool: thumbnails get their own small one (as many
//! threads as decodes may run at once), at a lower CPU priority, so that decoding
//! never takes the threads that hashing and password checks need, and yields the CPU
//! to the io_uring workers under load ([`BlockingPool::new_named`]).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use futures_channel::oneshot;

use super::error::{CoreError, ErrorKind};
use crate::metrics;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The pool handle; cheap to clone.
#[derive(Clone)]
pub struct BlockingPool {
    tx: Sender<Job>,
    inner: Arc<Inner>,
}

struct Inner {
    threads: usize,
    queued: AtomicUsize,
}

impl std::fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingPool")
            .field("threads", &self.inner.threads)
            .field("queued", &self.inner.queued.load(Ordering::Relaxed))
            .finish()
    }
}

impl BlockingPool {
    /// Start `threads` threads (at least 1) with room for `queue` waiting jobs.
    pub fn new(threads: usize, queue: usize) -> std::io::Result<BlockingPool> {
        Self::new_named(threads, queue, "ringbox-pool", None)
    }

    /// Like [`BlockingPool::new`], with threads named `<name>-<i>` (start it with
    /// `ringbox-pool` so [`BlockingPool::on_pool_thread`] knows them) and, on Linux, a
    /// nice value (0..=19; higher = yields more) applied to each thread. A nice value
    /// that cannot be set is logged and ignored.
    pub fn new_named(
        threads: usize,
        queue: usize,
        name: &str,
        nice: Option<i32>,
    ) -> std::io::Result<BlockingPool> {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(queue.max(1));
        let inner = Arc::new(Inner {
            threads: threads.max(1),
            queued: AtomicUsize::new(0),
        });
        for i in 0..inner.threads {
            let rx: Receiver<Job> = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    if let Some(n) = nice {
                        set_thread_nice(n);
                    }
                    // The loop ends when every sender (pool handle) is gone.
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })?;
        }
        Ok(BlockingPool { tx, inner })
    }

    /// Run `f` on a pool thread and await its result.
    pub async fn run<T, F>(&self, f: F) -> Result<T, CoreError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let inner = self.inner.clone();
        let job: Job = Box::new(move || {
            inner.queued.fetch_sub(1, Ordering::Relaxed);
            let out = std::panic::catch_unwind(AssertUnwindSafe(f));
            if out.is_err() {
                metrics::get().panic("pool");
                tracing::error!("a job of the blocking pool panicked");
            }
            let _ = tx.send(out.map_err(|_| ()));
        });
        self.inner.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.inner.queued.fetch_sub(1, Ordering::Relaxed);
                return Err(CoreError::new(
                    ErrorKind::Busy,
                    "busy",
                    "the server is busy with other slow work (hashing, thumbnails); retry shortly",
                ));
            }
            Err(TrySendError::Disconnected(_)) => {
                self.inner.queued.fetch_sub(1, Ordering::Relaxed);
                return Err(CoreError::internal("the blocking pool has stopped"));
            }
        }
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(())) => Err(CoreError::internal(
                "the operation failed unexpectedly (a bug: see the server log)",
            )),
            Err(_) => Err(CoreError::internal("the blocking pool dropped a job")),
        }
    }

    /// Run `f` on a pool thread without waiting for it (its result, if any, is the
    /// job's own business). A panic is caught and counted like in [`BlockingPool::run`].
    /// `Busy` when the queue is full.
    pub fn spawn<F>(&self, f: F) -> Result<(), CoreError>
    where
        F: FnOnce() + Send + 'static,
    {
        let inner = self.inner.clone();
        let job: Job = Box::new(move || {
            inner.queued.fetch_sub(1, Ordering::Relaxed);
            if std::panic::catch_unwind(AssertUnwindSafe(f)).is_err() {
                metrics::get().panic("pool");
                tracing::error!("a job of the blocking pool panicked");
            }
        });
        self.inner.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.inner.queued.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => CoreError::new(
                        ErrorKind::Busy,
                        "busy",
                        "the server is busy with other slow work; retry shortly",
                    ),
                    TrySendError::Disconnected(_) => {
                        CoreError::internal("the blocking pool has stopped")
                    }
                })
            }
        }
    }

    /// Whether the calling thread is one of this process's pool threads (for debug
    /// assertions that slow work never runs on a worker).
    #[allow(dead_code)] // asserted by password hashing and image decoding
    pub fn on_pool_thread() -> bool {
        std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("ringbox-pool-"))
    }
}

/// Lower the calling thread's CPU priority (Linux applies nice values per thread).
fn set_thread_nice(nice: i32) {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), nice.clamp(0, 19)) {
        tracing::warn!(error = %e, nice, "cannot lower the priority of a pool thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_jobs_and_survives_panics() {
        let pool = BlockingPool::new(2, 8).unwrap();
        crate::core::test_support::block_on(async {
            assert_eq!(pool.run(|| 2 + 2).await.unwrap(), 4);
            assert!(pool.run(BlockingPool::on_pool_thread).await.unwrap());
            assert!(!BlockingPool::on_pool_thread());
            let e = pool.run(|| -> u32 { panic!("boom") }).await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Internal);
            assert_eq!(pool.run(|| 7).await.unwrap(), 7);
        });
    }

    #[test]
    fn spawned_jobs_run_on_named_lower_priority_threads() {
        let pool = BlockingPool::new_named(1, 4, "ringbox-pool-test", Some(5)).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        pool.spawn(move || {
            let name = std::thread::current().name().map(str::to_string);
            let nice = rustix::process::getpriority_process(None).ok();
            let _ = tx.send((name, nice, BlockingPool::on_pool_thread()));
        })
        .unwrap();
        let (name, nice, on_pool) = rx.recv().unwrap();
        assert_eq!(name.as_deref(), Some("ringbox-pool-test-0"));
        assert!(on_pool);
        // getpriority(PRIO_PROCESS, 0) reads the calling thread on Linux.
        assert!(nice.is_some_and(|n| n >= 5), "{nice:?}");
        // A panicking job does not take the thread down.
        pool.spawn(|| panic!("boom")).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        pool.spawn(move || {
            let _ = tx.send(7);
        })
        .unwrap();
        assert_eq!(rx.recv().unwrap(), 7);
    }

    #[test]
    fn refuses_when_the_queue_is_full() {
        let pool = BlockingPool::new(1, 1).unwrap();
        let (block_tx, block_rx) = crossbeam_channel::bounded::<()>(0);
        crate::core::test_support::block_on(async {
            // One job occupies the thread, one waits in the queue, the third is refused.
            let p1 = pool.clone();
            let rx1 = block_rx.clone();
            let first = monoio::spawn(async move { p1.run(move || rx1.recv().ok()).await });
            monoio::time::sleep(std::time::Duration::from_millis(50)).await;
            let p2 = pool.clone();
            let rx2 = block_rx.clone();
            let second = monoio::spawn(async move { p2.run(move || rx2.recv().ok()).await });
            monoio::time::sleep(std::time::Duration::from_millis(50)).await;
            let e = pool.run(|| ()).await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Busy);
            block_tx.send(()).unwrap();
            block_tx.send(()).unwrap();
            assert!(first.await.is_ok());
            assert!(second.await.is_ok());
        });
    }
}
