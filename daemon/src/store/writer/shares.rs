//! Share-link commands: create and delete (revoke), and the hook that deletes the
//! shares of an object or collection deleted in the same transaction. None moves
//! `data_generation`. A share with an expiry has an entry in the `expiry` index, so the
//! sweeper deletes it when it is due (lookups refuse it before that).
//!
//! Events (visible to the share's owner): `share.created` (`changes`: `object_id` or
//! `collection_id`, `expires_at_ms`) and `share.deleted` (`changes.reason`: `revoked`,
//! `expired`, `object_deleted`, `collection_deleted`).

use heed::RwTxn;
use serde_json::json;

use super::{fatal, rejected, Batch, Fail, Reply, Writer};
use crate::store::expiry::{expiry_key, KIND_SHARE};
use crate::store::records::{self, ShareRecord, ShareTarget};
use crate::store::sharing::{owner_item_key, pair_key};
use crate::store::{ObjectId, StoreError};

/// A change to share links, for the writer.
#[derive(Clone, Debug, PartialEq)]
pub enum ShareCommand {
    /// A new share of an existing object or collection (`NotFound` if the target is
    /// gone, `Conflict` if the id or the token hash is taken). Replies `Share`.
    Create { record: ShareRecord },
    /// Revoke a share. Replies `Share` (the deleted record), or `NotFound`.
    Delete { id: ObjectId },
}

impl Writer {
    pub(super) fn share_command(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        cmd: ShareCommand,
    ) -> Result<Reply, Fail> {
        match cmd {
            ShareCommand::Create { record } => self.create_share(txn, b, record),
            ShareCommand::Delete { id } => {
                let rec = self.load_share(txn, &id)?;
                self.delete_share(txn, b, &rec, "revoked")?;
                Ok(Reply::Share(rec))
            }
        }
    }

    pub(super) fn load_share(&self, txn: &RwTxn, id: &ObjectId) -> Result<ShareRecord, Fail> {
        match self
            .dbs
            .sharing
            .shares
            .get(txn, id.as_bytes())
            .map_err(rejected)?
        {
            Some(v) => records::decode_share(v).map_err(Fail::Rejected),
            None => Err(Fail::Rejected(StoreError::NotFound)),
        }
    }

    pub(super) fn put_share(&self, txn: &mut RwTxn, rec: &ShareRecord) -> Result<(), Fail> {
        let value = records::encode_share(rec).map_err(fatal)?;
        self.dbs
            .sharing
            .shares
            .put(txn, rec.id.as_bytes(), &value)
            .map_err(fatal)
    }

    fn create_share(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        rec: ShareRecord,
    ) -> Result<Reply, Fail> {
        let okey = owner_item_key(&rec.owner, &rec.id).map_err(Fail::Rejected)?;
        let exists = match rec.target {
            ShareTarget::Object(id) => self.dbs.objects.get(txn, id.as_bytes()),
            ShareTarget::Collection(id) => self.dbs.sharing.collections.get(txn, id.as_bytes()),
        }
        .map_err(rejected)?
        .is_some();
        if !exists {
            return Err(Fail::Rejected(StoreError::NotFound));
        }
        let taken = self
            .dbs
            .sharing
            .shares
            .get(txn, rec.id.as_bytes())
            .map_err(rejected)?
            .is_some()
            || self
                .dbs
                .sharing
                .share_tokens
                .get(txn, &rec.token_sha256)
                .map_err(rejected)?
                .is_some();
        if taken {
            return Err(Fail::Rejected(StoreError::Conflict(
                "a share with this id or token exists; try again".into(),
            )));
        }
        let value = records::encode_share(&rec).map_err(Fail::Rejected)?;
        let s = &self.dbs.sharing;
        s.shares
            .put(txn, rec.id.as_bytes(), &value)
            .map_err(fatal)?;
        s.share_tokens
            .put(txn, &rec.token_sha256, rec.id.as_bytes())
            .map_err(fatal)?;
        s.owner_shares.put(txn, &okey, &[]).map_err(fatal)?;
        s.target_shares
            .put(txn, &pair_key(&rec.target.id(), &rec.id), &[])
            .map_err(fatal)?;
        if let Some(at) = rec.expires_at_ms {
            self.dbs
                .expiry
                .expiry
                .put(txn, &expiry_key(at, KIND_SHARE, &rec.id), &[])
                .map_err(fatal)?;
        }
        let target = match rec.target {
            ShareTarget::Object(id) => json!({ "object_id": id.to_string() }),
            ShareTarget::Collection(id) => json!({ "collection_id": id.to_string() }),
        };
        let mut changes = target;
        changes["expires_at_ms"] = json!(rec.expires_at_ms);
        self.emit(
            b,
            "share.created",
            Some(rec.owner.clone()),
            None,
            Some(rec.id.to_string()),
            Some(changes),
        );
        Ok(Reply::Share(rec))
    }

    /// Deletes a share and every index entry of it (failures are fatal: callers may
    /// have written already).
    pub(super) fn delete_share(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        rec: &ShareRecord,
        reason: &str,
    ) -> Result<(), Fail> {
        let s = &self.dbs.sharing;
        s.shares.delete(txn, rec.id.as_bytes()).map_err(fatal)?;
        // Only the token entry that still names this share.
        if s.share_tokens
            .get(txn, &rec.token_sha256)
            .map_err(fatal)?
            .is_some_and(|v| v == rec.id.as_bytes())
        {
            s.share_tokens
                .delete(txn, &rec.token_sha256)
                .map_err(fatal)?;
        }
        if let Ok(okey) = owner_item_key(&rec.owner, &rec.id) {
            s.owner_shares.delete(txn, &okey).map_err(fatal)?;
        }
        s.target_shares
            .delete(txn, &pair_key(&rec.target.id(), &rec.id))
            .map_err(fatal)?;
        if let Some(at) = rec.expires_at_ms {
            self.dbs
                .expiry
                .expiry
                .delete(txn, &expiry_key(at, KIND_SHARE, &rec.id))
                .map_err(fatal)?;
        }
        self.emit(
            b,
            "share.deleted",
            Some(rec.owner.clone()),
            None,
            Some(rec.id.to_string()),
            Some(json!({ "reason": reason })),
        );
        Ok(())
    }

    /// Deletes every share of an object or collection that is being deleted.
    pub(super) fn delete_shares_of(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        target: &ObjectId,
        reason: &str,
    ) -> Result<(), Fail> {
        let mut ids = Vec::new();
        for item in self
            .dbs
            .sharing
            .target_shares
            .prefix_iter(txn, target.as_bytes())
            .map_err(fatal)?
        {
            let (k, _) = item.map_err(fatal)?;
            if let Some(id) = k.get(16..32).and_then(|s| ObjectId::from_slice(s).ok()) {
                ids.push(id);
            }
        }
        for id in ids {
            match self
                .dbs
                .sharing
                .shares
                .get(txn, id.as_bytes())
                .map_err(fatal)?
            {
                Some(v) => {
                    let rec = records::decode_share(v).map_err(fatal)?;
                    self.delete_share(txn, b, &rec, reason)?;
                }
                None => {
                    self.dbs
                        .sharing
                        .target_shares
                        .delete(txn, &pair_key(target, &id))
                        .map_err(fatal)?;
                }
            }
        }
        Ok(())
    }
}
