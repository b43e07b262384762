//! A per-worker cache of verified credentials that no revocation can outlive.
//!
//! Checking a credential costs a SHA-256 and an LMDB read (API tokens, refresh
//! tokens) or an HMAC plus JSON (JWTs), and a deny-list lookup. A worker remembers
//! what it verified, but a logout or revocation on *another* worker must stop the
//! credential on the very next request, on every worker. The design:
//!
//! - One global [`RevocationEpoch`] (an `AtomicU64`, shared through an `Arc`). Whoever
//!   revokes **first commits the revocation to the store, then calls
//!   [`RevocationEpoch::bump`]**. Anything that changes what a credential means counts:
//!   logout, token revocation, role change, user deletion, password change.
//! - Before looking a credential up in the store, the worker takes a [`Ticket`]
//!   ([`TokenCache::ticket`]), which records the epoch. After a successful lookup it
//!   inserts the result with that ticket, and the entry carries the ticket's epoch.
//! - An entry is trusted only while the global epoch still equals the entry's epoch
//!   and the entry is younger than its time to live.
//!
//! Why this is sound: a revocation R commits, then bumps the epoch from `e` to `e+1`.
//! An entry inserted with epoch `e` was looked up before the bump, and is refused by
//! every `get` that reads the epoch after the bump, on any thread (the bump is a
//! `Release` increment; the read an `Acquire` load of the same atomic). An entry
//! inserted with epoch `e+1` came from a ticket taken after the bump, so its store
//! lookup started after R committed and saw R. The ticket is taken *before* the
//! lookup; taking it after would let a revocation committed between the lookup and
//! the ticket slip through. So a request that starts after the revoking request
//! returned never sees the revoked credential.
//!
//! The cost: a bump makes every worker drop its whole cache once (one store lookup per
//! live credential, per worker). Revocations are rare next to requests, so this is
//! cheap; finer keys (an epoch per user) would buy nothing here. The time to live
//! bounds how long a cached credential outlives anything that does *not* bump
//! (e.g. an API token's own `expires_at`: pass its remaining life as `valid_for`).
//!
//! Failures are never cached: a token created a moment ago on another worker works
//! at once. Memory is bounded by `max_entries`; when full, stale entries are dropped,
//! and if none are, the whole cache is cleared (a refill costs one lookup per live
//! credential).
//!
//! What this module does not do: verify anything (the caller does, and hands in the
//! result), or share entries between workers (each worker owns its cache: no lock on
//! the hot path; only the epoch is shared).

use std::borrow::Borrow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The global revocation counter. One per process, shared by every worker's cache
/// and by whoever revokes.
#[derive(Debug, Default)]
pub struct RevocationEpoch(AtomicU64);

impl RevocationEpoch {
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// The current epoch.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Invalidates every cached credential on every worker. Call it after the
    /// revocation is committed, before answering the request that revoked. Returns
    /// the new epoch.
    pub fn bump(&self) -> u64 {
        self.0.fetch_add(1, Ordering::AcqRel) + 1
    }
}

/// Proof of when a lookup started: take it before the store lookup, hand it to
/// [`TokenCache::insert`] after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a ticket is taken before the store lookup and handed to insert"]
pub struct Ticket {
    epoch: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    epoch: u64,
    expires: Instant,
}

/// One worker's cache. Not `Sync` (it is per worker, with no lock); the epoch it
/// watches is shared.
#[derive(Debug)]
pub struct TokenCache<K, V> {
    epoch: Arc<RevocationEpoch>,
    ttl: Duration,
    max_entries: usize,
    /// The epoch of the entries the map holds: when the global one moves on, the
    /// whole map is stale and is cleared in one go.
    seen_epoch: Cell<u64>,
    entries: RefCell<HashMap<K, Entry<V>>>,
}

impl<K: Hash + Eq, V: Clone> TokenCache<K, V> {
    /// A cache trusting entries for at most `ttl`, holding at most `max_entries`.
    pub fn new(epoch: Arc<RevocationEpoch>, ttl: Duration, max_entries: usize) -> Self {
        let seen = epoch.current();
        Self {
            epoch,
            ttl,
            max_entries: max_entries.max(1),
            seen_epoch: Cell::new(seen),
            entries: RefCell::new(HashMap::new()),
        }
    }

    /// The cached value for `key`, if it is still trusted at `now`.
    pub fn get<Q>(&self, key: &Q, now: Instant) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let current = self.epoch.current();
        let mut entries = self.entries.borrow_mut();
        if current != self.seen_epoch.get() {
            entries.clear();
            self.seen_epoch.set(current);
            return None;
        }
        match entries.get(key) {
            Some(e) if e.epoch == current && now < e.expires => Some(e.value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Take this before looking the credential up in the store.
    pub fn ticket(&self) -> Ticket {
        Ticket {
            epoch: self.epoch.current(),
        }
    }

    /// Remembers a credential verified by a lookup that started at `ticket`. It is
    /// trusted for `min(ttl, valid_for)` from `now`; pass the credential's remaining
    /// life as `valid_for` (`Duration::MAX` if it does not expire). Nothing is stored
    /// if a revocation happened since the ticket was taken.
    pub fn insert(&self, ticket: Ticket, key: K, value: V, now: Instant, valid_for: Duration) {
        let current = self.epoch.current();
        if ticket.epoch != current {
            return;
        }
        let life = self.ttl.min(valid_for);
        let Some(expires) = now.checked_add(life) else {
            return;
        };
        let mut entries = self.entries.borrow_mut();
        if current != self.seen_epoch.get() {
            entries.clear();
            self.seen_epoch.set(current);
        }
        if entries.len() >= self.max_entries {
            entries.retain(|_, e| e.epoch == current && now < e.expires);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                value,
                epoch: ticket.epoch,
                expires,
            },
        );
    }

    /// Forgets `key` on this worker (e.g. the worker itself just revoked it; other
    /// workers learn through the epoch).
    #[allow(dead_code)] // part of the module's API; not every caller uses it yet
    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.borrow_mut().remove(key);
    }

    /// Entries held (trusted or not yet found stale).
    #[allow(dead_code)] // part of the module's API; not every caller uses it yet
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Whether no entry is held.
    #[allow(dead_code)] // part of the module's API; not every caller uses it yet
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(1);

    fn cache(epoch: &Arc<RevocationEpoch>) -> TokenCache<Vec<u8>, &'static str> {
        TokenCache::new(Arc::clone(epoch), TTL, 4)
    }

    #[test]
    fn hit_until_ttl() {
        let epoch = Arc::new(RevocationEpoch::new());
        let c = cache(&epoch);
        let t0 = Instant::now();
        assert_eq!(c.get(b"tok".as_slice(), t0), None);
        let ticket = c.ticket();
        c.insert(ticket, b"tok".to_vec(), "alice", t0, Duration::MAX);
        // Table: (elapsed, expected).
        for (dt, want) in [
            (Duration::ZERO, Some("alice")),
            (Duration::from_millis(999), Some("alice")),
            (TTL, None),
            (Duration::from_millis(1), None),
        ] {
            assert_eq!(c.get(b"tok".as_slice(), t0 + dt), want, "{dt:?}");
        }
    }

    #[test]
    fn credential_expiry_shortens_the_life() {
        let epoch = Arc::new(RevocationEpoch::new());
        let c = cache(&epoch);
        let t0 = Instant::now();
        c.insert(
            c.ticket(),
            b"tok".to_vec(),
            "alice",
            t0,
            Duration::from_millis(10),
        );
        assert_eq!(
            c.get(b"tok".as_slice(), t0 + Duration::from_millis(9)),
            Some("alice")
        );
        assert_eq!(
            c.get(b"tok".as_slice(), t0 + Duration::from_millis(10)),
            None
        );
    }

    #[test]
    fn a_bump_invalidates_everything() {
        let epoch = Arc::new(RevocationEpoch::new());
        let c = cache(&epoch);
        let t0 = Instant::now();
        c.insert(c.ticket(), b"a".to_vec(), "alice", t0, Duration::MAX);
        c.insert(c.ticket(), b"b".to_vec(), "bob", t0, Duration::MAX);
        assert_eq!(epoch.bump(), 1);
        assert_eq!(c.get(b"b".as_slice(), t0), None);
        assert!(c.is_empty());
        // Re-validated after the bump: trusted again.
        c.insert(c.ticket(), b"b".to_vec(), "bob", t0, Duration::MAX);
        assert_eq!(c.get(b"b".as_slice(), t0), Some("bob"));
    }

    #[test]
    fn a_lookup_racing_a_revocation_is_not_cached() {
        let epoch = Arc::new(RevocationEpoch::new());
        let c = cache(&epoch);
        let t0 = Instant::now();
        let ticket = c.ticket(); // the worker starts its store lookup...
        epoch.bump(); // ...another worker commits a revocation and bumps...
        c.insert(ticket, b"tok".to_vec(), "alice", t0, Duration::MAX); // ...stale answer
        assert_eq!(c.get(b"tok".as_slice(), t0), None);
        assert!(c.is_empty());
    }

    #[test]
    fn revocation_on_another_thread_is_seen_by_the_next_get() {
        let epoch = Arc::new(RevocationEpoch::new());
        let c = cache(&epoch);
        let t0 = Instant::now();
        c.insert(c.ticket(), b"tok".to_vec(), "alice", t0, Duration::MAX);
        assert_eq!(c.get(b"tok".as_slice(), t0), Some("alice"));
        // "Logout on worker 1": commit (here: nothing), then bump, then answer. The
        // join is the answer reaching the client, whose next request lands here.
        let e = Arc::clone(&epoch);
        std::thread::spawn(move || e.bump()).join().unwrap();
        assert_eq!(c.get(b"tok".as_slice(), t0), None);
    }

    #[test]
    fn many_workers_see_a_revocation() {
        // 4 "workers", each with its own cache of one token, polling; one bump on the
        // main thread; every worker must stop trusting its entry.
        let epoch = Arc::new(RevocationEpoch::new());
        let barrier = Arc::new(std::sync::Barrier::new(5));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let epoch = Arc::clone(&epoch);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let c: TokenCache<String, u32> =
                        TokenCache::new(epoch, Duration::from_secs(3600), 16);
                    let now = Instant::now();
                    c.insert(c.ticket(), "tok".into(), 7, now, Duration::MAX);
                    assert_eq!(c.get("tok", now), Some(7));
                    barrier.wait(); // cached
                    barrier.wait(); // revoked
                    c.get("tok", now)
                })
            })
            .collect();
        barrier.wait();
        epoch.bump();
        barrier.wait();
        for h in handles {
            assert_eq!(h.join().unwrap(), None);
        }
    }

    #[test]
    fn bounded() {
        let epoch = Arc::new(RevocationEpoch::new());
        let c = cache(&epoch);
        let t0 = Instant::now();
        for i in 0..100u8 {
            c.insert(c.ticket(), vec![i], "x", t0, Duration::MAX);
            assert!(c.len() <= 4);
        }
        // Stale entries go first: two expired, two live, one new.
        let c = cache(&epoch);
        c.insert(c.ticket(), vec![1], "old", t0, Duration::from_millis(1));
        c.insert(c.ticket(), vec![2], "old", t0, Duration::from_millis(1));
        c.insert(c.ticket(), vec![3], "live", t0, Duration::MAX);
        c.insert(c.ticket(), vec![4], "live", t0, Duration::MAX);
        let later = t0 + Duration::from_millis(5);
        c.insert(c.ticket(), vec![5], "new", later, Duration::MAX);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get([3u8].as_slice(), later), Some("live"));
        assert_eq!(c.get([5u8].as_slice(), later), Some("new"));
        c.remove([5u8].as_slice());
        assert_eq!(c.get([5u8].as_slice(), later), None);
    }
}
