//! Expiry and access statistics on the writer: the time indexes kept in the
//! transaction of every object create, patch and delete, the batched flush of
//! download counts and last-access times, and the sweep that deletes due objects and
//! shares in bounded batches.
//!
//! **The access flush does not move `data_generation`.** It rewrites object records,
//! but only their `downloads` and `last_access_ms`, which no reader takes from a cache
//! keyed on the generation: the workers' hot cache serves content headers (hash,
//! size, type, name, `updated_at`) and decides access (owner) and TTL expiry
//! (`expires_at_ms`) from fields this command never changes, and the object's JSON
//! (which shows the counters) is read from LMDB, not from that cache. Moving the
//! generation here would empty every worker's caches every few seconds under a pure
//! download load, which is exactly the load they exist for. Any later command reads
//! the record in its own transaction, so nothing it writes loses the counters.
//!
//! The sweep re-checks every item inside its transaction (an object whose expiry was
//! extended, or that was downloaded since the sweeper looked, stays), deletes through
//! the ordinary object delete (its blob reference, indexes, collections, shares, and
//! an `object.deleted` event with `changes.reason` `expired` or `not_accessed`, actor
//! `system`), and removes index entries that no longer match their record (so a stale
//! entry can never make the sweeper spin).

use heed::RwTxn;

use super::{fatal, Batch, Fail, Reply, Writer};
use crate::store::expiry::{
    access_key, access_key_at, expiry_key, last_access_of, KIND_OBJECT, KIND_SHARE,
};
use crate::store::records::{self, ObjectRecord};
use crate::store::{keys, ObjectId};

/// Downloads of one object since the last flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectAccess {
    pub id: ObjectId,
    /// Downloads to add.
    pub downloads: u64,
    /// The latest download (Unix ms).
    pub last_ms: i64,
}

/// Why the sweeper thinks an object is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Its `expires_at_ms` (the indexed value) has passed.
    Expired { at_ms: i64 },
    /// Not accessed since `cutoff_ms` (the indexed key was `namespace`, `at_ms`).
    Idle { cutoff_ms: i64, at_ms: i64 },
}

/// One thing the sweeper found due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SweepItem {
    Object {
        id: ObjectId,
        due: Due,
        /// The namespace of an `Idle` entry (to remove a stale index key).
        namespace: String,
    },
    Share {
        id: ObjectId,
        at_ms: i64,
    },
}

/// What a sweep deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub objects: u64,
    pub shares: u64,
    /// Index entries that no longer matched their record (removed).
    pub stale: u64,
    /// Items that were not due any more (left alone).
    pub kept: u64,
}

/// Expiry work for the writer.
#[derive(Clone, Debug, PartialEq)]
pub enum ExpiryCommand {
    /// Add download counts and last-access times to objects, and set shares' stored
    /// download counts to at least the given totals. Missing objects and shares are
    /// skipped. Does not move `data_generation` (see the module docs). Replies `Done`.
    RecordAccess {
        objects: Vec<ObjectAccess>,
        shares: Vec<(ObjectId, u64)>,
    },
    /// Delete what is still due at `now_ms`. Replies `Swept`.
    Sweep { items: Vec<SweepItem>, now_ms: i64 },
}

impl Writer {
    pub(super) fn expiry_command(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        cmd: ExpiryCommand,
    ) -> Result<Reply, Fail> {
        match cmd {
            ExpiryCommand::RecordAccess { objects, shares } => {
                self.record_access(txn, objects, shares)
            }
            ExpiryCommand::Sweep { items, now_ms } => self.sweep(txn, b, items, now_ms),
        }
    }

    /// Index a new object (its expiry, its last access = its upload).
    pub(super) fn lifecycle_add(&self, txn: &mut RwTxn, rec: &ObjectRecord) -> Result<(), Fail> {
        if let Some(at) = rec.expires_at_ms {
            self.dbs
                .expiry
                .expiry
                .put(txn, &expiry_key(at, KIND_OBJECT, &rec.id), &[])
                .map_err(fatal)?;
        }
        let akey = access_key(rec).map_err(fatal)?;
        self.dbs
            .expiry
            .access_time
            .put(txn, &akey, &[])
            .map_err(fatal)
    }

    /// Follow a change of expiry, namespace or last access.
    pub(super) fn lifecycle_update(
        &self,
        txn: &mut RwTxn,
        before: &ObjectRecord,
        after: &ObjectRecord,
    ) -> Result<(), Fail> {
        let e = &self.dbs.expiry;
        if before.expires_at_ms != after.expires_at_ms {
            if let Some(at) = before.expires_at_ms {
                e.expiry
                    .delete(txn, &expiry_key(at, KIND_OBJECT, &before.id))
                    .map_err(fatal)?;
            }
            if let Some(at) = after.expires_at_ms {
                e.expiry
                    .put(txn, &expiry_key(at, KIND_OBJECT, &after.id), &[])
                    .map_err(fatal)?;
            }
        }
        let old = access_key(before).map_err(fatal)?;
        let new = access_key(after).map_err(fatal)?;
        if old != new {
            e.access_time.delete(txn, &old).map_err(fatal)?;
            e.access_time.put(txn, &new, &[]).map_err(fatal)?;
        }
        Ok(())
    }

    /// The object is being deleted: drop its time index entries, its memberships and
    /// its shares, in the same transaction.
    pub(super) fn object_unlinked(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        rec: &ObjectRecord,
    ) -> Result<(), Fail> {
        if let Some(at) = rec.expires_at_ms {
            self.dbs
                .expiry
                .expiry
                .delete(txn, &expiry_key(at, KIND_OBJECT, &rec.id))
                .map_err(fatal)?;
        }
        if let Ok(akey) = access_key(rec) {
            self.dbs
                .expiry
                .access_time
                .delete(txn, &akey)
                .map_err(fatal)?;
        }
        self.remove_from_collections(txn, b, &rec.id)?;
        self.delete_shares_of(txn, b, &rec.id, "object_deleted")
    }

    fn record_access(
        &self,
        txn: &mut RwTxn,
        objects: Vec<ObjectAccess>,
        shares: Vec<(ObjectId, u64)>,
    ) -> Result<Reply, Fail> {
        for a in objects {
            let okey = keys::object_key(&a.id);
            let Some(bytes) = self.dbs.objects.get(txn, &okey).map_err(fatal)? else {
                continue; // deleted since it was downloaded
            };
            let mut rec = match records::decode_object(bytes) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(id = %a.id, error = %e, "cannot record access to an undecodable object");
                    continue;
                }
            };
            let before = rec.clone();
            rec.downloads = rec.downloads.saturating_add(a.downloads);
            rec.last_access_ms = Some(rec.last_access_ms.map_or(a.last_ms, |t| t.max(a.last_ms)));
            let value = records::encode_object(&rec).map_err(fatal)?;
            // Deliberately not `put_object`: no `data_changed` (see the module docs).
            self.dbs.objects.put(txn, &okey, &value).map_err(fatal)?;
            self.lifecycle_update(txn, &before, &rec)?;
        }
        for (id, total) in shares {
            let Ok(mut rec) = self.load_share(txn, &id) else {
                continue; // revoked or expired since
            };
            if total > rec.downloads {
                rec.downloads = total;
                self.put_share(txn, &rec)?;
            }
        }
        Ok(Reply::Done)
    }

    fn sweep(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        items: Vec<SweepItem>,
        now_ms: i64,
    ) -> Result<Reply, Fail> {
        let mut report = SweepReport::default();
        for item in items {
            match item {
                SweepItem::Object { id, due, namespace } => {
                    let rec = match self.load(txn, &id) {
                        Ok(r) => Some(r),
                        Err(Fail::Rejected(_)) => None,
                        Err(f) => return Err(f),
                    };
                    let (is_due, reason) = match (&rec, due) {
                        (Some(r), Due::Expired { at_ms }) => {
                            (r.expires_at_ms == Some(at_ms) && at_ms <= now_ms, "expired")
                        }
                        (Some(r), Due::Idle { cutoff_ms, .. }) => {
                            (last_access_of(r) <= cutoff_ms, "not_accessed")
                        }
                        (None, _) => (false, ""),
                    };
                    if is_due {
                        match self.delete(txn, b, id) {
                            Ok(_) => {
                                report.objects += 1;
                                if let Some(ev) = b
                                    .events
                                    .iter_mut()
                                    .rev()
                                    .find(|e| e.kind == "object.deleted")
                                {
                                    ev.changes_json =
                                        Some(serde_json::json!({ "reason": reason }).to_string());
                                }
                            }
                            // Refused before it wrote anything (an undecodable blob
                            // record, say): left for `ringbox check`.
                            Err(Fail::Rejected(e)) => {
                                tracing::warn!(%id, error = %e, "cannot delete an expired object");
                                report.kept += 1;
                            }
                            Err(f) => return Err(f),
                        }
                        continue;
                    }
                    // Not due: either the record moved on (its current entries are
                    // elsewhere: remove this one if it is stale) or it is gone.
                    match due {
                        Due::Expired { at_ms } => {
                            if rec.as_ref().is_some_and(|r| r.expires_at_ms == Some(at_ms)) {
                                report.kept += 1;
                            } else {
                                self.dbs
                                    .expiry
                                    .expiry
                                    .delete(txn, &expiry_key(at_ms, KIND_OBJECT, &id))
                                    .map_err(fatal)?;
                                report.stale += 1;
                            }
                        }
                        Due::Idle { at_ms, .. } => {
                            let indexed = access_key_at(&namespace, at_ms, &id).ok();
                            let current = rec.as_ref().and_then(|r| access_key(r).ok());
                            match indexed {
                                Some(k) if current.as_ref() != Some(&k) => {
                                    self.dbs.expiry.access_time.delete(txn, &k).map_err(fatal)?;
                                    report.stale += 1;
                                }
                                _ => report.kept += 1,
                            }
                        }
                    }
                }
                SweepItem::Share { id, at_ms } => match self.load_share(txn, &id) {
                    Ok(rec) if rec.expires_at_ms == Some(at_ms) && at_ms <= now_ms => {
                        self.delete_share(txn, b, &rec, "expired")?;
                        report.shares += 1;
                    }
                    Ok(rec) if rec.expires_at_ms == Some(at_ms) => report.kept += 1,
                    Ok(_) | Err(Fail::Rejected(_)) => {
                        self.dbs
                            .expiry
                            .expiry
                            .delete(txn, &expiry_key(at_ms, KIND_SHARE, &id))
                            .map_err(fatal)?;
                        report.stale += 1;
                    }
                    Err(f) => return Err(f),
                },
            }
        }
        Ok(Reply::Swept(report))
    }
}
