//! Per-owner bookkeeping, kept in the same transaction as the object change it follows:
//! the owner's names index (`owner_names`), creation-order index (`owner_time`),
//! content index (`owner_blobs`), per-namespace object counts (`owner_ns_counts`,
//! for numbered pages without counting), and the usage counters of the owner's user record
//! (logical bytes and object count), against which quotas are checked.
//!
//! Quota: a change that grows an owner's usage is refused (`QuotaExceeded`, before
//! anything is written) when the result would exceed the owner's quota (the user
//! record's override, else the store's default). Because every change is checked and
//! applied in the writer's one transaction at a time, concurrent uploads cannot
//! overshoot a quota: at most what is still streaming (not yet committed) is lost work,
//! never stored bytes. Owners without a user record (`anonymous`) have no quota and no
//! counters. Objects without an owner (written before owners existed) belong to `admin`.

use heed::RwTxn;

use super::{fatal, rejected, Fail, Writer};
use crate::store::records::{self, Kind, ObjectRecord, UserRecord};
use crate::store::tokens::ADMIN_USER;
use crate::store::{keys, Sha256, StoreError};

/// The owner id of a record.
pub(crate) fn owner_of(rec: &ObjectRecord) -> &str {
    rec.owner.as_deref().unwrap_or(ADMIN_USER)
}

/// The content an object holds for the owner's content index: managed or external
/// files with a hash (text objects are not blobs).
fn content_of(rec: &ObjectRecord) -> Option<Sha256> {
    match rec.kind {
        Kind::File => rec.sha256,
        Kind::Text => None,
    }
}

impl Writer {
    pub(super) fn read_user(&self, txn: &RwTxn, id: &str) -> Result<Option<UserRecord>, Fail> {
        match self.dbs.users.get(txn, id.as_bytes()).map_err(rejected)? {
            Some(bytes) => records::decode_user(bytes)
                .map(Some)
                .map_err(Fail::Rejected),
            None => Ok(None),
        }
    }

    pub(super) fn write_user(&self, txn: &mut RwTxn, user: &UserRecord) -> Result<(), Fail> {
        let value = records::encode_user(user).map_err(Fail::Rejected)?;
        self.dbs
            .users
            .put(txn, user.id.as_bytes(), &value)
            .map_err(fatal)
    }

    /// `QuotaExceeded` if adding `grow` bytes to `owner`'s usage passes their quota.
    /// Call before writing anything.
    pub(super) fn check_quota(&self, txn: &RwTxn, owner: &str, grow: u64) -> Result<(), Fail> {
        if grow == 0 {
            return Ok(());
        }
        let Some(user) = self.read_user(txn, owner)? else {
            return Ok(());
        };
        if let Some(limit) = user.quota_bytes.or(self.default_quota) {
            if user.usage_bytes.saturating_add(grow) > limit {
                return Err(Fail::Rejected(StoreError::QuotaExceeded {
                    limit,
                    used: user.usage_bytes,
                    wanted: grow,
                }));
            }
        }
        Ok(())
    }

    /// Adds `rec` to its owner's indexes and counters.
    pub(super) fn owner_add(&self, txn: &mut RwTxn, rec: &ObjectRecord) -> Result<(), Fail> {
        let owner = owner_of(rec);
        let nkey = keys::owner_name_key(owner, &rec.namespace, &rec.name, &rec.id)
            .map_err(Fail::Rejected)?;
        let tkey = keys::owner_time_key(owner, &rec.id).map_err(Fail::Rejected)?;
        self.dbs.owner_names.put(txn, &nkey, &[]).map_err(fatal)?;
        self.dbs.owner_time.put(txn, &tkey, &[]).map_err(fatal)?;
        self.owner_ns_delta(txn, owner, &rec.namespace, 1)?;
        if let Some(sha) = content_of(rec) {
            self.owner_blob_delta(txn, owner, &sha, 1)?;
        }
        self.usage_delta(txn, owner, i128::from(rec.size), 1)
    }

    /// Removes `rec` from its owner's indexes and counters.
    pub(super) fn owner_remove(&self, txn: &mut RwTxn, rec: &ObjectRecord) -> Result<(), Fail> {
        let owner = owner_of(rec);
        let nkey = keys::owner_name_key(owner, &rec.namespace, &rec.name, &rec.id)
            .map_err(Fail::Rejected)?;
        let tkey = keys::owner_time_key(owner, &rec.id).map_err(Fail::Rejected)?;
        self.dbs.owner_names.delete(txn, &nkey).map_err(fatal)?;
        self.dbs.owner_time.delete(txn, &tkey).map_err(fatal)?;
        self.owner_ns_delta(txn, owner, &rec.namespace, -1)?;
        if let Some(sha) = content_of(rec) {
            self.owner_blob_delta(txn, owner, &sha, -1)?;
        }
        self.usage_delta(txn, owner, -i128::from(rec.size), -1)
    }

    /// Follows a rename, a move or a content change from `old` to `new` (same object).
    pub(super) fn owner_update(
        &self,
        txn: &mut RwTxn,
        old: &ObjectRecord,
        new: &ObjectRecord,
    ) -> Result<(), Fail> {
        let owner = owner_of(new);
        if old.namespace != new.namespace || old.name != new.name {
            let okey = keys::owner_name_key(owner, &old.namespace, &old.name, &old.id)
                .map_err(Fail::Rejected)?;
            let nkey = keys::owner_name_key(owner, &new.namespace, &new.name, &new.id)
                .map_err(Fail::Rejected)?;
            self.dbs.owner_names.delete(txn, &okey).map_err(fatal)?;
            self.dbs.owner_names.put(txn, &nkey, &[]).map_err(fatal)?;
        }
        if old.namespace != new.namespace {
            self.owner_ns_delta(txn, owner, &old.namespace, -1)?;
            self.owner_ns_delta(txn, owner, &new.namespace, 1)?;
        }
        let (before, after) = (content_of(old), content_of(new));
        if before != after {
            if let Some(sha) = before {
                self.owner_blob_delta(txn, owner, &sha, -1)?;
            }
            if let Some(sha) = after {
                self.owner_blob_delta(txn, owner, &sha, 1)?;
            }
        }
        if old.size != new.size {
            self.usage_delta(txn, owner, i128::from(new.size) - i128::from(old.size), 0)?;
        }
        Ok(())
    }

    fn owner_blob_delta(
        &self,
        txn: &mut RwTxn,
        owner: &str,
        sha: &Sha256,
        delta: i64,
    ) -> Result<(), Fail> {
        let key = keys::owner_blob_key(owner, sha).map_err(Fail::Rejected)?;
        let current = match self.dbs.owner_blobs.get(txn, &key).map_err(rejected)? {
            Some(v) => <[u8; 8]>::try_from(v).map(u64::from_be_bytes).unwrap_or(0),
            None => 0,
        };
        let next = (i128::from(current) + i128::from(delta)).max(0) as u64;
        if next == 0 {
            self.dbs.owner_blobs.delete(txn, &key).map_err(fatal)?;
        } else {
            self.dbs
                .owner_blobs
                .put(txn, &key, &next.to_be_bytes())
                .map_err(fatal)?;
        }
        Ok(())
    }

    /// Adds `delta` to `owner`'s object count in `ns` (a zero count is removed).
    fn owner_ns_delta(
        &self,
        txn: &mut RwTxn,
        owner: &str,
        ns: &str,
        delta: i64,
    ) -> Result<(), Fail> {
        let key = keys::owner_ns_key(owner, ns).map_err(Fail::Rejected)?;
        let now = self
            .dbs
            .owner_ns_counts
            .get(txn, &key)
            .map_err(rejected)?
            .and_then(|v| <[u8; 8]>::try_from(v).ok())
            .map_or(0, u64::from_be_bytes);
        let next = (i128::from(now) + i128::from(delta)).max(0) as u64;
        if next == 0 {
            self.dbs.owner_ns_counts.delete(txn, &key).map_err(fatal)?;
        } else {
            self.dbs
                .owner_ns_counts
                .put(txn, &key, &next.to_be_bytes())
                .map_err(fatal)?;
        }
        Ok(())
    }

    fn usage_delta(
        &self,
        txn: &mut RwTxn,
        owner: &str,
        bytes: i128,
        objects: i64,
    ) -> Result<(), Fail> {
        let Some(mut user) = self.read_user(txn, owner)? else {
            return Ok(());
        };
        user.usage_bytes = (i128::from(user.usage_bytes) + bytes).max(0) as u64;
        user.object_count = (i128::from(user.object_count) + i128::from(objects)).max(0) as u64;
        self.write_user(txn, &user)
    }
}
