//! Access statistics without a write per download: a process-wide, in-memory
//! accumulator of per-object download counts and last-download times, and of
//! per-share download totals, written to the store in one writer command every few
//! seconds ([`Local::flush_access`], called by worker 0's lifecycle task).
//!
//! - A download is a 200 or 206 with bytes of an object (not a HEAD, a 304, a 412 or a
//!   416): `core::content::serve` notes it, so every API counts the same way.
//! - The flush adds the counts to the object records and moves their last-access time
//!   (and their `access_time` index entry, which the not-accessed expiry scans)
//!   **without moving the data generation**: the workers' read caches stay warm (see
//!   `store/writer/expiry.rs` for why that is safe).
//! - A share's `max_downloads` is enforced exactly, across workers: the accumulator
//!   holds each recently used share's total (stored count + downloads since), and a
//!   download takes a slot under the lock, so concurrent requests can never exceed the
//!   limit, not even by what one flush interval would allow. The first use of a share
//!   since start (or since its entry was evicted as idle) loads the stored count; an
//!   eviction counter makes that load race-free against the flush.
//! - Counts are approximate only in two ways, both documented: a crash loses the
//!   downloads of the last flush interval (a graceful stop flushes), and beyond
//!   [`MAX_PENDING_OBJECTS`] distinct objects in one interval further downloads are not
//!   counted (a bound on memory under a crawl of millions of objects).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::error::CoreResult;
use super::Local;
use crate::store::{Command, ExpiryCommand, ObjectAccess, ObjectId};
use crate::util::time::now_ms;

/// Most distinct objects noted per flush interval.
pub const MAX_PENDING_OBJECTS: usize = 262_144;
/// A share entry that was flushed and not used for this long is forgotten (its next
/// use reloads the stored count).
const SHARE_IDLE_MS: i64 = 60_000;

#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    downloads: u64,
    last_ms: i64,
}

#[derive(Clone, Copy, Debug)]
struct ShareCount {
    /// Stored count at load + downloads since.
    total: u64,
    /// The total the last successful (or in-flight) flush wrote.
    flushed: u64,
    touched_ms: i64,
}

#[derive(Debug, Default)]
struct Inner {
    objects: HashMap<ObjectId, Pending>,
    shares: HashMap<ObjectId, ShareCount>,
    /// Bumped whenever share entries are forgotten (see `take_share_download`).
    evictions: u64,
    dropped: u64,
}

/// The process-wide accumulator.
#[derive(Debug, Default)]
pub struct AccessStats {
    inner: Mutex<Inner>,
    flushing: AtomicBool,
}

impl AccessStats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Note one download of object `id` at `at_ms`.
    pub fn note_download(&self, id: ObjectId, at_ms: i64) {
        let mut g = self.lock();
        let full = g.objects.len() >= MAX_PENDING_OBJECTS;
        match g.objects.get_mut(&id) {
            Some(p) => {
                p.downloads += 1;
                p.last_ms = p.last_ms.max(at_ms);
            }
            None if full => g.dropped += 1,
            None => {
                g.objects.insert(
                    id,
                    Pending {
                        downloads: 1,
                        last_ms: at_ms,
                    },
                );
            }
        }
    }

    /// The latest download of `id` not yet written to the store.
    pub fn pending_access(&self, id: &ObjectId) -> Option<i64> {
        self.lock().objects.get(id).map(|p| p.last_ms)
    }

    /// Downloads of `id` not yet written to the store, and the latest of them.
    pub fn pending_downloads(&self, id: &ObjectId) -> Option<(u64, i64)> {
        self.lock()
            .objects
            .get(id)
            .map(|p| (p.downloads, p.last_ms))
    }

    /// Downloads of share `id` as far as this process knows (`stored` when it has not
    /// seen the share since its entry was last loaded).
    pub fn share_downloads(&self, id: &ObjectId, stored: u64) -> u64 {
        self.lock()
            .shares
            .get(id)
            .map_or(stored, |s| s.total.max(stored))
    }

    /// Take one download of share `id` if fewer than `max` were counted (`None`: no
    /// limit, the download is counted all the same). `load_stored` reads the stored
    /// count (called without the lock held, only when the share has no entry).
    pub fn take_share_download(
        &self,
        id: ObjectId,
        max: Option<u64>,
        mut load_stored: impl FnMut() -> CoreResult<u64>,
    ) -> CoreResult<bool> {
        let now = now_ms();
        loop {
            let epoch = {
                let mut g = self.lock();
                if let Some(s) = g.shares.get_mut(&id) {
                    if max.is_some_and(|m| s.total >= m) {
                        return Ok(false);
                    }
                    s.total += 1;
                    s.touched_ms = now;
                    return Ok(true);
                }
                g.evictions
            };
            let stored = load_stored()?;
            let mut g = self.lock();
            // Another request loaded it meanwhile: use theirs. An eviction meanwhile:
            // what we read may predate the flush that allowed it; read again.
            if g.shares.contains_key(&id) || g.evictions != epoch {
                continue;
            }
            g.shares.insert(
                id,
                ShareCount {
                    total: stored,
                    flushed: stored,
                    touched_ms: now,
                },
            );
        }
    }

    /// Everything to write: the objects' pending downloads (taken out) and the shares
    /// whose total moved since their last flush (marked flushed).
    fn drain(&self) -> (Vec<ObjectAccess>, Vec<(ObjectId, u64)>) {
        let mut g = self.lock();
        if g.dropped > 0 {
            tracing::warn!(
                dropped = g.dropped,
                "downloads not counted: too many distinct objects in one flush interval"
            );
            g.dropped = 0;
        }
        let objects = g
            .objects
            .drain()
            .map(|(id, p)| ObjectAccess {
                id,
                downloads: p.downloads,
                last_ms: p.last_ms,
            })
            .collect();
        let mut shares = Vec::new();
        for (id, s) in g.shares.iter_mut() {
            if s.total > s.flushed {
                s.flushed = s.total;
                shares.push((*id, s.total));
            }
        }
        (objects, shares)
    }

    /// A flush failed: keep its counts for the next one.
    fn restore(&self, objects: Vec<ObjectAccess>, shares: &[(ObjectId, u64)]) {
        let mut g = self.lock();
        for a in objects {
            let p = g.objects.entry(a.id).or_default();
            p.downloads += a.downloads;
            p.last_ms = p.last_ms.max(a.last_ms);
        }
        for (id, _) in shares {
            if let Some(s) = g.shares.get_mut(id) {
                s.flushed = 0;
            }
        }
    }

    /// After a committed flush: forget shares that are written and idle.
    fn forget_idle_shares(&self, now: i64) {
        let mut g = self.lock();
        let before = g.shares.len();
        g.shares
            .retain(|_, s| s.total != s.flushed || now - s.touched_ms < SHARE_IDLE_MS);
        if g.shares.len() != before {
            g.evictions += 1;
        }
    }
}

impl Local {
    /// Write the downloads noted since the last flush, in one writer command. At most
    /// one flush runs at a time (a second caller returns at once).
    pub async fn flush_access(&self) {
        let stats = &self.access;
        if stats.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        // Cleared however this ends (a dropped future included).
        struct Flushing<'a>(&'a AtomicBool);
        impl Drop for Flushing<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _flushing = Flushing(&stats.flushing);
        let (objects, shares) = stats.drain();
        if !objects.is_empty() || !shares.is_empty() {
            let cmd = Command::Expiry(ExpiryCommand::RecordAccess {
                objects: objects.clone(),
                shares: shares.clone(),
            });
            match self.store.writer().submit(cmd).await {
                Ok(_) => stats.forget_idle_shares(now_ms()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record downloads; keeping them for the next flush");
                    stats.restore(objects, &shares);
                }
            }
        } else {
            stats.forget_idle_shares(now_ms());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_drains() {
        let s = AccessStats::default();
        let a = ObjectId::now_v7();
        s.note_download(a, 10);
        s.note_download(a, 5);
        assert_eq!(s.pending_access(&a), Some(10));
        let (objects, shares) = s.drain();
        assert_eq!(objects.len(), 1);
        assert_eq!((objects[0].downloads, objects[0].last_ms), (2, 10));
        assert!(shares.is_empty());
        assert_eq!(s.pending_access(&a), None);
        s.restore(objects, &[]);
        assert_eq!(s.pending_access(&a), Some(10));
    }

    #[test]
    fn share_limit_is_exact() {
        let s = AccessStats::default();
        let id = ObjectId::now_v7();
        let mut loads = 0;
        let mut take = || {
            s.take_share_download(id, Some(3), || {
                loads += 1;
                Ok(1)
            })
            .unwrap()
        };
        // Stored 1 of 3: two more downloads, then no more.
        assert!(take());
        assert!(take());
        assert!(!take());
        assert_eq!(loads, 1, "the stored count is loaded once");
        assert_eq!(s.share_downloads(&id, 0), 3);
        let (_, shares) = s.drain();
        assert_eq!(shares, vec![(id, 3)]);
        // Nothing new: nothing to flush; an idle, flushed entry is forgotten.
        assert!(s.drain().1.is_empty());
        s.forget_idle_shares(now_ms() + SHARE_IDLE_MS + 1);
        assert_eq!(s.share_downloads(&id, 3), 3);
        assert!(!s.take_share_download(id, Some(3), || Ok(3)).unwrap());
    }

    #[test]
    fn many_threads_never_exceed_the_limit() {
        let s = std::sync::Arc::new(AccessStats::default());
        let id = ObjectId::now_v7();
        let taken = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (s, taken) = (s.clone(), taken.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        if s.take_share_download(id, Some(100), || Ok(0)).unwrap() {
                            taken.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(taken.load(Ordering::Relaxed), 100);
    }
}
