//! Collection commands: create, change, delete, add and remove members, and the hook
//! that removes a deleted object from every collection in the object's own
//! transaction. None moves `data_generation` (no object or blob record changes:
//! membership lives in its own indexes, see `store/sharing.rs`), so the workers'
//! object caches survive them.
//!
//! Membership is kept both ways (`collection_members` by position, `object_collections`
//! by object) and the record's `member_count` with them, all in one transaction.
//! Adding an object that is already a member is a no-op (one membership); adding an
//! object that does not exist is `NotFound` for the whole command (nothing is added).
//! Deleting a collection deletes its membership entries and its share links, never
//! its objects.
//!
//! Events (visible to the collection's owner): `collection.created`,
//! `collection.updated` (`changes`: the new `name`, `description`),
//! `collection.deleted`, `collection.objects_added` and `collection.objects_removed`
//! (`changes.object_ids`; `reason: "object_deleted"` when an object's deletion took it
//! out).

use heed::RwTxn;
use serde_json::json;

use super::{fatal, rejected, Batch, Fail, Reply, Writer};
use crate::store::records::{self, CollectionRecord};
use crate::store::sharing::{member_key, owner_item_key, pair_key};
use crate::store::{ObjectId, StoreError};

/// Most members one collection may have: deleting a collection removes its membership
/// entries in one transaction, which this bounds.
pub const MAX_MEMBERS: u64 = 100_000;

/// A change to collections, for the writer.
#[derive(Clone, Debug, PartialEq)]
pub enum CollectionCommand {
    /// A new collection (`Conflict` if the id exists). Replies `Collection`.
    Create { record: CollectionRecord },
    /// Rename or re-describe (`Some(None)` clears the description). Replies
    /// `Collection`, or `NotFound`.
    Change {
        id: ObjectId,
        name: Option<String>,
        description: Option<Option<String>>,
        now_ms: i64,
    },
    /// Delete the collection, its membership entries and its share links (not its
    /// objects). Replies `Deleted`, or `NotFound`.
    Delete { id: ObjectId },
    /// Append objects (in the given order; members already in it and duplicates are
    /// skipped). `NotFound` (nothing added) if the collection or any object does not
    /// exist; `Conflict` beyond [`MAX_MEMBERS`]. Replies `Collection`.
    AddMembers {
        id: ObjectId,
        objects: Vec<ObjectId>,
        now_ms: i64,
    },
    /// Remove one member. `NotFound` if it is not one. Replies `Collection`.
    RemoveMember {
        id: ObjectId,
        object: ObjectId,
        now_ms: i64,
    },
}

impl Writer {
    pub(super) fn collection_command(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        cmd: CollectionCommand,
    ) -> Result<Reply, Fail> {
        match cmd {
            CollectionCommand::Create { record } => self.create_collection(txn, b, record),
            CollectionCommand::Change {
                id,
                name,
                description,
                now_ms,
            } => self.change_collection(txn, b, id, name, description, now_ms),
            CollectionCommand::Delete { id } => self.delete_collection(txn, b, id),
            CollectionCommand::AddMembers {
                id,
                objects,
                now_ms,
            } => self.add_members(txn, b, id, objects, now_ms),
            CollectionCommand::RemoveMember { id, object, now_ms } => {
                self.remove_member(txn, b, id, object, now_ms)
            }
        }
    }

    pub(super) fn load_collection(
        &self,
        txn: &RwTxn,
        id: &ObjectId,
    ) -> Result<CollectionRecord, Fail> {
        match self
            .dbs
            .sharing
            .collections
            .get(txn, id.as_bytes())
            .map_err(rejected)?
        {
            Some(v) => records::decode_collection(v).map_err(Fail::Rejected),
            None => Err(Fail::Rejected(StoreError::NotFound)),
        }
    }

    fn put_collection(&self, txn: &mut RwTxn, rec: &CollectionRecord) -> Result<(), Fail> {
        let value = records::encode_collection(rec).map_err(fatal)?;
        self.dbs
            .sharing
            .collections
            .put(txn, rec.id.as_bytes(), &value)
            .map_err(fatal)
    }

    fn emit_collection(
        &self,
        b: &mut Batch,
        kind: &str,
        rec: &CollectionRecord,
        changes: Option<serde_json::Value>,
    ) {
        self.emit(
            b,
            kind,
            Some(rec.owner.clone()),
            None,
            Some(rec.id.to_string()),
            changes,
        );
    }

    fn create_collection(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        rec: CollectionRecord,
    ) -> Result<Reply, Fail> {
        let okey = owner_item_key(&rec.owner, &rec.id).map_err(Fail::Rejected)?;
        if self.load_collection(txn, &rec.id).is_ok() {
            return Err(Fail::Rejected(StoreError::Conflict(format!(
                "a collection with id {} already exists",
                rec.id
            ))));
        }
        let value = records::encode_collection(&rec).map_err(Fail::Rejected)?;
        self.dbs
            .sharing
            .collections
            .put(txn, rec.id.as_bytes(), &value)
            .map_err(fatal)?;
        self.dbs
            .sharing
            .owner_collections
            .put(txn, &okey, &[])
            .map_err(fatal)?;
        self.emit_collection(
            b,
            "collection.created",
            &rec,
            Some(json!({ "name": rec.name })),
        );
        Ok(Reply::Collection(rec))
    }

    fn change_collection(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        id: ObjectId,
        name: Option<String>,
        description: Option<Option<String>>,
        now_ms: i64,
    ) -> Result<Reply, Fail> {
        let mut rec = self.load_collection(txn, &id)?;
        let mut changes = serde_json::Map::new();
        if let Some(n) = name {
            if n != rec.name {
                changes.insert("name".into(), json!(n));
                changes.insert("old_name".into(), json!(rec.name));
                rec.name = n;
            }
        }
        if let Some(d) = description {
            if d != rec.description {
                changes.insert("description".into(), json!(d));
                rec.description = d;
            }
        }
        rec.updated_at_ms = now_ms;
        self.put_collection(txn, &rec)?;
        self.emit_collection(
            b,
            "collection.updated",
            &rec,
            Some(serde_json::Value::Object(changes)),
        );
        Ok(Reply::Collection(rec))
    }

    fn delete_collection(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        id: ObjectId,
    ) -> Result<Reply, Fail> {
        let rec = self.load_collection(txn, &id)?;
        let okey = owner_item_key(&rec.owner, &rec.id).map_err(Fail::Rejected)?;
        let mut members = Vec::new();
        for item in self
            .dbs
            .sharing
            .collection_members
            .prefix_iter(txn, id.as_bytes())
            .map_err(rejected)?
        {
            let (k, v) = item.map_err(rejected)?;
            members.push((k.to_vec(), v.to_vec()));
        }
        for (mkey, obj) in members {
            self.dbs
                .sharing
                .collection_members
                .delete(txn, &mkey)
                .map_err(fatal)?;
            if let Ok(obj) = ObjectId::from_slice(&obj) {
                self.dbs
                    .sharing
                    .object_collections
                    .delete(txn, &pair_key(&obj, &id))
                    .map_err(fatal)?;
            }
        }
        self.dbs
            .sharing
            .owner_collections
            .delete(txn, &okey)
            .map_err(fatal)?;
        self.dbs
            .sharing
            .collections
            .delete(txn, id.as_bytes())
            .map_err(fatal)?;
        self.delete_shares_of(txn, b, &id, "collection_deleted")?;
        self.emit_collection(b, "collection.deleted", &rec, None);
        Ok(Reply::Deleted)
    }

    fn add_members(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        id: ObjectId,
        objects: Vec<ObjectId>,
        now_ms: i64,
    ) -> Result<Reply, Fail> {
        let mut rec = self.load_collection(txn, &id)?;
        // Validate everything first (reads only): a refused command changes nothing.
        let mut new = Vec::with_capacity(objects.len());
        for obj in objects {
            if new.contains(&obj) {
                continue;
            }
            if self
                .dbs
                .objects
                .get(txn, obj.as_bytes())
                .map_err(rejected)?
                .is_none()
            {
                return Err(Fail::Rejected(StoreError::NotFound));
            }
            let member = self
                .dbs
                .sharing
                .object_collections
                .get(txn, &pair_key(&obj, &id))
                .map_err(rejected)?
                .is_some();
            if !member {
                new.push(obj);
            }
        }
        if rec.member_count + new.len() as u64 > MAX_MEMBERS {
            return Err(Fail::Rejected(StoreError::Conflict(format!(
                "a collection holds at most {MAX_MEMBERS} objects; this one has {}",
                rec.member_count
            ))));
        }
        if new.is_empty() {
            return Ok(Reply::Collection(rec));
        }
        for obj in &new {
            let pos = rec.next_position;
            rec.next_position += 1;
            self.dbs
                .sharing
                .collection_members
                .put(txn, &member_key(&id, pos), obj.as_bytes())
                .map_err(fatal)?;
            self.dbs
                .sharing
                .object_collections
                .put(txn, &pair_key(obj, &id), &pos.to_be_bytes())
                .map_err(fatal)?;
        }
        rec.member_count += new.len() as u64;
        rec.updated_at_ms = now_ms;
        self.put_collection(txn, &rec)?;
        let ids: Vec<String> = new.iter().map(ObjectId::to_string).collect();
        self.emit_collection(
            b,
            "collection.objects_added",
            &rec,
            Some(json!({ "object_ids": ids })),
        );
        Ok(Reply::Collection(rec))
    }

    fn remove_member(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        id: ObjectId,
        object: ObjectId,
        now_ms: i64,
    ) -> Result<Reply, Fail> {
        let mut rec = self.load_collection(txn, &id)?;
        let rkey = pair_key(&object, &id);
        let Some(pos) = self
            .dbs
            .sharing
            .object_collections
            .get(txn, &rkey)
            .map_err(rejected)?
            .and_then(|v| <[u8; 8]>::try_from(v).ok())
            .map(u64::from_be_bytes)
        else {
            return Err(Fail::Rejected(StoreError::NotFound));
        };
        self.unlink_member(txn, &mut rec, &object, pos, now_ms)?;
        self.emit_collection(
            b,
            "collection.objects_removed",
            &rec,
            Some(json!({ "object_ids": [object.to_string()] })),
        );
        Ok(Reply::Collection(rec))
    }

    /// Removes one membership (both index entries) and updates the record.
    fn unlink_member(
        &self,
        txn: &mut RwTxn,
        rec: &mut CollectionRecord,
        object: &ObjectId,
        pos: u64,
        now_ms: i64,
    ) -> Result<(), Fail> {
        self.dbs
            .sharing
            .collection_members
            .delete(txn, &member_key(&rec.id, pos))
            .map_err(fatal)?;
        self.dbs
            .sharing
            .object_collections
            .delete(txn, &pair_key(object, &rec.id))
            .map_err(fatal)?;
        rec.member_count = rec.member_count.saturating_sub(1);
        rec.updated_at_ms = now_ms;
        self.put_collection(txn, rec)
    }

    /// The object is being deleted: take it out of every collection (its reverse index
    /// names them), in the same transaction. Call only after the delete began writing
    /// (failures are fatal to the batch).
    pub(super) fn remove_from_collections(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        object: &ObjectId,
    ) -> Result<(), Fail> {
        let mut memberships = Vec::new();
        for item in self
            .dbs
            .sharing
            .object_collections
            .prefix_iter(txn, object.as_bytes())
            .map_err(fatal)?
        {
            let (k, v) = item.map_err(fatal)?;
            let coll = k.get(16..32).and_then(|c| ObjectId::from_slice(c).ok());
            let pos = <[u8; 8]>::try_from(v).ok().map(u64::from_be_bytes);
            if let (Some(coll), Some(pos)) = (coll, pos) {
                memberships.push((coll, pos));
            }
        }
        for (coll, pos) in memberships {
            let mut rec = match self.load_collection(txn, &coll) {
                Ok(r) => r,
                Err(_) => {
                    // A dangling reverse entry (a collection that is gone): drop it.
                    self.dbs
                        .sharing
                        .object_collections
                        .delete(txn, &pair_key(object, &coll))
                        .map_err(fatal)?;
                    continue;
                }
            };
            self.unlink_member(txn, &mut rec, object, pos, b.now_ms)?;
            self.emit_collection(
                b,
                "collection.objects_removed",
                &rec,
                Some(json!({ "object_ids": [object.to_string()], "reason": "object_deleted" })),
            );
        }
        Ok(())
    }
}
