//! The time indexes of expiry (since schema version 4): which objects (and share links)
//! are due, found by a range scan from the oldest time up, never by a scan of all
//! objects. The writer keeps both in the transaction of every create, patch and delete
//! (`writer/expiry.rs`); the core's sweeper reads them and submits bounded deletes.
//!
//! * `expiry`: expires_at (Unix ms, u64 BE) ++ kind (1 byte: [`KIND_OBJECT`],
//!   [`KIND_SHARE`]) ++ id[16] -> empty. Everything due at `now` is the range from the
//!   start to `now`.
//! * `access_time`: namespace \0 last access (Unix ms, u64 BE) ++ id[16] -> empty, with
//!   the last access taken as the upload time for objects never downloaded. Per
//!   namespace, so a rule for one namespace (pyBlobServer's 90 days for its files)
//!   scans only that namespace's oldest entries, and namespaces without a rule cost
//!   one seek each (a skip scan), whatever they hold. Updated by the batched
//!   access-statistics flush, not by each download.
//!
//! Times before 1970 are stored as 0 (they sort first, so they are due).

use std::ops::Bound;

use heed::types::Bytes;
use heed::{Env, RwTxn, WithoutTls};

use super::records::ObjectRecord;
use super::{keys, Db, ObjectId, Store, StoreError};

/// An expiry entry of an object.
pub const KIND_OBJECT: u8 = 0;
/// An expiry entry of a share link.
pub const KIND_SHARE: u8 = 1;

/// The databases of this module.
#[derive(Clone, Copy)]
pub(crate) struct ExpiryDbs {
    pub expiry: Db,
    pub access_time: Db,
}

impl ExpiryDbs {
    pub(crate) fn create(env: &Env<WithoutTls>, wtxn: &mut RwTxn) -> Result<Self, StoreError> {
        Ok(ExpiryDbs {
            expiry: env.create_database::<Bytes, Bytes>(wtxn, Some("expiry"))?,
            access_time: env.create_database::<Bytes, Bytes>(wtxn, Some("access_time"))?,
        })
    }
}

fn time_bytes(ms: i64) -> [u8; 8] {
    (ms.max(0) as u64).to_be_bytes()
}

/// `at ++ kind ++ id`.
pub(crate) fn expiry_key(at_ms: i64, kind: u8, id: &ObjectId) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[..8].copy_from_slice(&time_bytes(at_ms));
    k[8] = kind;
    k[9..].copy_from_slice(id.as_bytes());
    k
}

/// When an object counts as last accessed: its last download, or its upload for one
/// never downloaded.
pub fn last_access_of(rec: &ObjectRecord) -> i64 {
    rec.last_access_ms
        .map_or(rec.created_at_ms, |t| t.max(rec.created_at_ms))
}

/// `namespace \0 at ++ id` of an object.
pub(crate) fn access_key(rec: &ObjectRecord) -> Result<Vec<u8>, StoreError> {
    access_key_at(&rec.namespace, last_access_of(rec), &rec.id)
}

pub(crate) fn access_key_at(ns: &str, at_ms: i64, id: &ObjectId) -> Result<Vec<u8>, StoreError> {
    keys::validate_namespace(ns)?;
    let mut k = Vec::with_capacity(ns.len() + 25);
    k.extend_from_slice(ns.as_bytes());
    k.push(0);
    k.extend_from_slice(&time_bytes(at_ms));
    k.extend_from_slice(id.as_bytes());
    Ok(k)
}

/// The namespace of an `access_time` key.
fn access_key_namespace(key: &[u8]) -> Option<&str> {
    let sep = key.len().checked_sub(25)?;
    (key[sep] == 0)
        .then(|| std::str::from_utf8(&key[..sep]).ok())
        .flatten()
}

/// One due entry of the `expiry` index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DueEntry {
    pub at_ms: i64,
    pub kind: u8,
    pub id: ObjectId,
}

/// An object not accessed since `cutoff_ms` or before (its indexed last access is
/// `at_ms`, in `namespace`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdleEntry {
    pub id: ObjectId,
    pub namespace: String,
    pub at_ms: i64,
    pub cutoff_ms: i64,
}

impl Store {
    /// At most `limit` entries of the `expiry` index due at `now_ms` (oldest first).
    pub fn due_expiries(&self, now_ms: i64, limit: usize) -> Result<Vec<DueEntry>, StoreError> {
        let txn = self.inner.env.read_txn()?;
        let upper = expiry_key(now_ms, u8::MAX, &ObjectId::max());
        let mut out = Vec::new();
        for item in self
            .inner
            .dbs
            .expiry
            .expiry
            .range(&txn, &(Bound::Unbounded, Bound::Included(&upper[..])))?
        {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            if k.len() != 25 {
                tracing::error!(?k, "malformed expiry index key; run `ringbox check`");
                continue;
            }
            let at = u64::from_be_bytes(k[..8].try_into().unwrap_or_default());
            let Ok(id) = ObjectId::from_slice(&k[9..]) else {
                continue;
            };
            out.push(DueEntry {
                at_ms: at.min(i64::MAX as u64) as i64,
                kind: k[8],
                id,
            });
        }
        Ok(out)
    }

    /// At most `limit` objects not accessed since their namespace's cutoff:
    /// `cutoff_of(namespace)` is the latest last-access time that is due (`None`: the
    /// namespace has no rule). One seek per namespace, then a range scan of the due
    /// entries only.
    pub fn idle_objects(
        &self,
        cutoff_of: &dyn Fn(&str) -> Option<i64>,
        limit: usize,
    ) -> Result<Vec<IdleEntry>, StoreError> {
        let db = self.inner.dbs.expiry.access_time;
        let txn = self.inner.env.read_txn()?;
        let mut out = Vec::new();
        let mut start: Option<Vec<u8>> = None;
        while out.len() < limit {
            let lower = match &start {
                Some(s) => Bound::Included(s.as_slice()),
                None => Bound::Unbounded,
            };
            let ns = match db.range(&txn, &(lower, Bound::Unbounded))?.next() {
                None => break,
                Some(item) => {
                    let (k, _) = item?;
                    match access_key_namespace(k) {
                        Some(ns) => ns.to_string(),
                        None => {
                            tracing::error!(?k, "malformed access_time key; run `ringbox check`");
                            // Skip past it.
                            let mut next = k.to_vec();
                            next.push(0);
                            start = Some(next);
                            continue;
                        }
                    }
                }
            };
            if let Some(cutoff) = cutoff_of(&ns) {
                let lo = access_key_at(&ns, 0, &ObjectId::nil())?;
                let hi = access_key_at(&ns, cutoff, &ObjectId::max())?;
                for item in db.range(
                    &txn,
                    &(
                        Bound::Included(lo.as_slice()),
                        Bound::Included(hi.as_slice()),
                    ),
                )? {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, _) = item?;
                    let n = k.len();
                    let at = k
                        .get(n - 24..n - 16)
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                        .map_or(0, u64::from_be_bytes);
                    if let Ok(id) = ObjectId::from_slice(&k[n - 16..]) {
                        out.push(IdleEntry {
                            id,
                            namespace: ns.clone(),
                            at_ms: at.min(i64::MAX as u64) as i64,
                            cutoff_ms: cutoff,
                        });
                    }
                }
            }
            start = Some(keys::namespace_end(&ns));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_time() {
        let a = ObjectId::max();
        let b = ObjectId::nil();
        assert!(expiry_key(1, KIND_OBJECT, &a) < expiry_key(2, KIND_OBJECT, &b));
        assert_eq!(expiry_key(-5, 0, &b), expiry_key(0, 0, &b));
        let k1 = access_key_at("ns", 10, &a).unwrap();
        let k2 = access_key_at("ns", 11, &b).unwrap();
        assert!(k1 < k2);
        assert!(k2 < keys::namespace_end("ns"));
        assert_eq!(access_key_namespace(&k1), Some("ns"));
        assert_eq!(
            access_key_namespace(&access_key_at("", 1, &a).unwrap()),
            Some("")
        );
        let mut rec = ObjectRecord {
            created_at_ms: 100,
            ..ObjectRecord::blank()
        };
        assert_eq!(last_access_of(&rec), 100);
        rec.last_access_ms = Some(50);
        assert_eq!(last_access_of(&rec), 100);
        rec.last_access_ms = Some(500);
        assert_eq!(last_access_of(&rec), 500);
    }
}
