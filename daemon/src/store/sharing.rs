//! Collections and share links (since schema version 4): their databases, key
//! encodings and reads. Writes are the writer's (`writer/collections.rs`,
//! `writer/shares.rs`).
//!
//! Databases and keys (every index is a range scan, never a scan of all objects):
//!
//! * `collections`: collection id[16] -> [`CollectionRecord`]
//! * `collection_members`: collection id[16] ++ position (u64 BE) -> object id[16]:
//!   a collection's members in the order they were added (a page is a range scan after
//!   the last position seen).
//! * `object_collections`: object id[16] ++ collection id[16] -> position (u64 BE): the
//!   reverse index, so deleting an object removes it from every collection in the
//!   same transaction, and adding a member twice is noticed without a scan.
//! * `owner_collections`: owner \0 collection id[16] -> empty: a user's collections in
//!   creation order (ids are UUIDv7).
//! * `shares`: share id[16] -> [`ShareRecord`]
//! * `share_tokens`: SHA-256(token)[32] -> share id[16] (the token is never stored).
//! * `owner_shares`: owner \0 share id[16] -> empty: a user's shares.
//! * `target_shares`: object or collection id[16] ++ share id[16] -> empty: the shares
//!   of a target, deleted with it.

use std::ops::Bound;

use heed::types::Bytes;
use heed::{Env, RwTxn, WithoutTls};

use super::records::{self, CollectionRecord, ObjectRecord, ShareRecord};
use super::{keys, Db, ObjectId, Sha256, Store, StoreError};

/// The databases of this module.
#[derive(Clone, Copy)]
pub(crate) struct SharingDbs {
    pub collections: Db,
    pub collection_members: Db,
    pub object_collections: Db,
    pub owner_collections: Db,
    pub shares: Db,
    pub share_tokens: Db,
    pub owner_shares: Db,
    pub target_shares: Db,
}

impl SharingDbs {
    /// Opens (creating when missing) every database of this module.
    pub(crate) fn create(env: &Env<WithoutTls>, wtxn: &mut RwTxn) -> Result<Self, StoreError> {
        let mut open = |name: &str| env.create_database::<Bytes, Bytes>(wtxn, Some(name));
        Ok(SharingDbs {
            collections: open("collections")?,
            collection_members: open("collection_members")?,
            object_collections: open("object_collections")?,
            owner_collections: open("owner_collections")?,
            shares: open("shares")?,
            share_tokens: open("share_tokens")?,
            owner_shares: open("owner_shares")?,
            target_shares: open("target_shares")?,
        })
    }
}

/// `collection id ++ position`.
pub(crate) fn member_key(coll: &ObjectId, pos: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(coll.as_bytes());
    k[16..].copy_from_slice(&pos.to_be_bytes());
    k
}

/// `a ++ b` (the reverse member index, the target index).
pub(crate) fn pair_key(a: &ObjectId, b: &ObjectId) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(a.as_bytes());
    k[16..].copy_from_slice(b.as_bytes());
    k
}

/// `owner \0 id` (a user's collections, a user's shares).
pub(crate) fn owner_item_key(owner: &str, id: &ObjectId) -> Result<Vec<u8>, StoreError> {
    keys::owner_time_key(owner, id)
}

fn id_at(bytes: &[u8], at: usize) -> Option<ObjectId> {
    bytes
        .get(at..at + 16)
        .and_then(|b| ObjectId::from_slice(b).ok())
}

/// One page of a user's collections or shares.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnedPage<T> {
    pub items: Vec<T>,
    /// The id to continue after, when more may follow.
    pub next: Option<ObjectId>,
}

/// One page of a collection's members, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberPage {
    /// (position, object).
    pub members: Vec<(u64, ObjectRecord)>,
    /// The position to continue after, when more may follow.
    pub next: Option<u64>,
}

impl Store {
    fn sharing(&self) -> &SharingDbs {
        &self.inner.dbs.sharing
    }

    /// The collection with this id.
    pub fn get_collection(&self, id: &ObjectId) -> Result<Option<CollectionRecord>, StoreError> {
        let txn = self.inner.env.read_txn()?;
        match self.sharing().collections.get(&txn, id.as_bytes())? {
            Some(v) => records::decode_collection(v).map(Some),
            None => Ok(None),
        }
    }

    /// A page of ids from an `owner \0 id` index (collections, shares) by creation
    /// time, newest first or oldest first, after `after` (exclusive).
    fn owned_ids(
        &self,
        index: Db,
        owner: &str,
        newest_first: bool,
        after: Option<ObjectId>,
        limit: usize,
    ) -> Result<(Vec<ObjectId>, bool), StoreError> {
        keys::validate_owner(owner)?;
        let prefix = keys::owner_prefix(owner);
        let mut end = prefix.clone();
        end.extend_from_slice(&[0xff; 17]);
        let after_key = after.map(|id| owner_item_key(owner, &id)).transpose()?;
        let txn = self.inner.env.read_txn()?;
        let mut ids = Vec::new();
        let mut more = false;
        let mut take = |k: &[u8]| {
            if ids.len() >= limit {
                more = true;
                return false;
            }
            if let Some(id) = id_at(k, prefix.len()) {
                ids.push(id);
            }
            true
        };
        if newest_first {
            let upper = match &after_key {
                Some(k) => Bound::Excluded(k.as_slice()),
                None => Bound::Included(end.as_slice()),
            };
            for item in index.rev_range(&txn, &(Bound::Included(prefix.as_slice()), upper))? {
                if !take(item?.0) {
                    break;
                }
            }
        } else {
            let lower = match &after_key {
                Some(k) => Bound::Excluded(k.as_slice()),
                None => Bound::Included(prefix.as_slice()),
            };
            for item in index.range(&txn, &(lower, Bound::Included(end.as_slice())))? {
                if !take(item?.0) {
                    break;
                }
            }
        }
        Ok((ids, more))
    }

    /// A page of `owner`'s collections by creation time.
    pub fn owner_collections(
        &self,
        owner: &str,
        newest_first: bool,
        after: Option<ObjectId>,
        limit: usize,
    ) -> Result<OwnedPage<CollectionRecord>, StoreError> {
        let db = self.sharing().owner_collections;
        let (ids, more) = self.owned_ids(db, owner, newest_first, after, limit)?;
        let txn = self.inner.env.read_txn()?;
        let mut items = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(v) = self.sharing().collections.get(&txn, id.as_bytes())? {
                items.push(records::decode_collection(v)?);
            }
        }
        Ok(OwnedPage {
            next: if more { ids.last().copied() } else { None },
            items,
        })
    }

    /// A page of a collection's members in order, after position `after` (exclusive).
    /// Members whose record is missing (never, unless the store is damaged) are
    /// skipped.
    pub fn collection_members(
        &self,
        coll: &ObjectId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<MemberPage, StoreError> {
        let lower = match after {
            Some(p) => Bound::Excluded(member_key(coll, p)),
            None => Bound::Included(member_key(coll, 0)),
        };
        let upper = Bound::Included(member_key(coll, u64::MAX));
        let txn = self.inner.env.read_txn()?;
        let db = &self.sharing().collection_members;
        let range = (
            lower.as_ref().map(|k| k.as_slice()),
            upper.as_ref().map(|k| k.as_slice()),
        );
        let mut members = Vec::new();
        let mut last = None;
        let mut more = false;
        for item in db.range(&txn, &range)? {
            let (k, v) = item?;
            if members.len() >= limit {
                more = true;
                break;
            }
            let pos = k
                .get(16..24)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            last = Some(pos);
            let Some(id) = id_at(v, 0) else { continue };
            if let Some(bytes) = self.inner.dbs.objects.get(&txn, &keys::object_key(&id))? {
                members.push((pos, records::decode_object(bytes)?));
            }
        }
        Ok(MemberPage {
            members,
            next: if more { last } else { None },
        })
    }

    /// Whether `obj` is a member of `coll`.
    pub fn collection_has(&self, coll: &ObjectId, obj: &ObjectId) -> Result<bool, StoreError> {
        let txn = self.inner.env.read_txn()?;
        Ok(self
            .sharing()
            .object_collections
            .get(&txn, &pair_key(obj, coll))?
            .is_some())
    }

    /// The share whose token has this SHA-256.
    pub fn share_by_token(&self, sha: &Sha256) -> Result<Option<ShareRecord>, StoreError> {
        let txn = self.inner.env.read_txn()?;
        let Some(id) = self.sharing().share_tokens.get(&txn, sha)? else {
            return Ok(None);
        };
        match self.sharing().shares.get(&txn, id)? {
            Some(v) => records::decode_share(v).map(Some),
            None => Ok(None),
        }
    }

    /// The share with this id.
    pub fn get_share(&self, id: &ObjectId) -> Result<Option<ShareRecord>, StoreError> {
        let txn = self.inner.env.read_txn()?;
        match self.sharing().shares.get(&txn, id.as_bytes())? {
            Some(v) => records::decode_share(v).map(Some),
            None => Ok(None),
        }
    }

    /// A page of `owner`'s shares, newest first.
    pub fn owner_shares(
        &self,
        owner: &str,
        after: Option<ObjectId>,
        limit: usize,
    ) -> Result<OwnedPage<ShareRecord>, StoreError> {
        let db = self.sharing().owner_shares;
        let (ids, more) = self.owned_ids(db, owner, true, after, limit)?;
        let txn = self.inner.env.read_txn()?;
        let mut items = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(v) = self.sharing().shares.get(&txn, id.as_bytes())? {
                items.push(records::decode_share(v)?);
            }
        }
        Ok(OwnedPage {
            next: if more { ids.last().copied() } else { None },
            items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order() {
        let c = ObjectId::now_v7();
        assert!(member_key(&c, 1) < member_key(&c, 2));
        assert!(member_key(&c, 255) < member_key(&c, 256));
        let a = ObjectId::from_u128(1);
        let b = ObjectId::from_u128(2);
        assert!(pair_key(&a, &b)[..16] == *a.as_bytes());
        assert_eq!(id_at(&pair_key(&a, &b), 16), Some(b));
    }
}
