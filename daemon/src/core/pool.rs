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
        let (tx, rx) = crossbeam_channel::bounded::<Job>(queue.max(1));
        let inner = Arc::new(Inner {
            threads: threads.max(1),
            queued: AtomicUsize::new(0),
        });
        for i in 0..inner.threads {
            let rx: Receiver<Job> = rx.clone();
            std::thread::Builder::new()
                .name(format!("ringbox-pool-{i}"))
                .spawn(move || {
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

    /// Whether the calling thread is one of this process's pool threads (for debug
    /// assertions that slow work never runs on a worker).
    #[allow(dead_code)] // asserted by password hashing and image decoding
    pub fn on_pool_thread() -> bool {
        std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("ringbox-pool-"))
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
