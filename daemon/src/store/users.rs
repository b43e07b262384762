//! Reads of users, tokens, sessions and the per-owner indexes (each in one short read
//! transaction, like every store read). Writes are the writer's (`writer/users.rs`,
//! `writer/owners.rs`).

use std::ops::Bound;

use super::records::{self, ObjectRecord, SessionRecord, TokenRecord, UserRecord};
use super::{keys, ObjectId, Sha256, Store, StoreError};

/// One page of an owner's objects in creation order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnerPage {
    pub objects: Vec<ObjectRecord>,
    /// The id to continue after (pass it back as `after`), when more may follow.
    pub next: Option<ObjectId>,
}

impl Store {
    /// The user with this id.
    pub fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let txn = self.inner.env.read_txn()?;
        match self.inner.dbs.users.get(&txn, id.as_bytes())? {
            Some(v) => records::decode_user(v).map(Some),
            None => Ok(None),
        }
    }

    /// The user with this username (case-insensitive).
    pub fn get_user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let txn = self.inner.env.read_txn()?;
        let dbs = &self.inner.dbs;
        let Some(id) = dbs.usernames.get(&txn, &keys::username_key(username))? else {
            return Ok(None);
        };
        match dbs.users.get(&txn, id)? {
            Some(v) => records::decode_user(v).map(Some),
            None => Ok(None),
        }
    }

    /// Users in id order after `after` (exclusive), at most `limit`.
    pub fn list_users(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<UserRecord>, bool), StoreError> {
        let txn = self.inner.env.read_txn()?;
        let lower = match after {
            Some(a) => Bound::Excluded(a.as_bytes()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        let mut more = false;
        for item in self
            .inner
            .dbs
            .users
            .range(&txn, &(lower, Bound::Unbounded))?
        {
            let (_, v) = item?;
            if out.len() >= limit {
                more = true;
                break;
            }
            out.push(records::decode_user(v)?);
        }
        Ok((out, more))
    }

    /// The API token with this secret hash (whatever its expiry).
    pub fn get_token(&self, sha: &Sha256) -> Result<Option<TokenRecord>, StoreError> {
        let txn = self.inner.env.read_txn()?;
        match self.inner.dbs.tokens.get(&txn, sha)? {
            Some(v) => records::decode_token(v).map(Some),
            None => Ok(None),
        }
    }

    /// Every API token of a user.
    pub fn tokens_of(&self, user: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let txn = self.inner.env.read_txn()?;
        let dbs = &self.inner.dbs;
        let mut out = Vec::new();
        for item in dbs
            .user_tokens
            .prefix_iter(&txn, &keys::owner_prefix(user))?
        {
            let (_, sha) = item?;
            if let Some(v) = dbs.tokens.get(&txn, sha)? {
                out.push(records::decode_token(v)?);
            }
        }
        Ok(out)
    }

    /// The session of a refresh token.
    pub fn get_session(&self, refresh_sha: &Sha256) -> Result<Option<SessionRecord>, StoreError> {
        let txn = self.inner.env.read_txn()?;
        match self.inner.dbs.sessions.get(&txn, refresh_sha)? {
            Some(v) => records::decode_session(v).map(Some),
            None => Ok(None),
        }
    }

    /// Whether the access token `jti` was revoked (logout, rotation).
    pub fn is_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let txn = self.inner.env.read_txn()?;
        Ok(self.inner.dbs.revoked.get(&txn, jti.as_bytes())?.is_some())
    }

    /// Whether `owner` has an object with this content.
    pub fn owner_has_blob(&self, owner: &str, sha: &Sha256) -> Result<bool, StoreError> {
        let txn = self.inner.env.read_txn()?;
        Ok(self
            .inner
            .dbs
            .owner_blobs
            .get(&txn, &keys::owner_blob_key(owner, sha)?)?
            .is_some())
    }

    /// One page of `owner`'s objects by creation time: newest first (`newest_first`)
    /// or oldest first, continuing after `after` (exclusive).
    pub fn list_owner_by_time(
        &self,
        owner: &str,
        newest_first: bool,
        after: Option<ObjectId>,
        limit: usize,
    ) -> Result<OwnerPage, StoreError> {
        let prefix = keys::owner_prefix(owner);
        keys::validate_owner(owner)?;
        let txn = self.inner.env.read_txn()?;
        let dbs = &self.inner.dbs;
        let after_key = after
            .map(|id| keys::owner_time_key(owner, &id))
            .transpose()?;
        let mut end = prefix.clone();
        end.extend_from_slice(&[0xff; 17]);
        let mut ids: Vec<ObjectId> = Vec::new();
        let mut more = false;
        let mut take = |key: &[u8]| -> bool {
            if ids.len() >= limit {
                more = true;
                return false;
            }
            if let Ok(id) = ObjectId::from_slice(&key[prefix.len()..]) {
                ids.push(id);
            }
            true
        };
        if newest_first {
            let upper = match &after_key {
                Some(k) => Bound::Excluded(k.as_slice()),
                None => Bound::Included(end.as_slice()),
            };
            for item in dbs
                .owner_time
                .rev_range(&txn, &(Bound::Included(prefix.as_slice()), upper))?
            {
                let (k, _) = item?;
                if !take(k) {
                    break;
                }
            }
        } else {
            let lower = match &after_key {
                Some(k) => Bound::Excluded(k.as_slice()),
                None => Bound::Included(prefix.as_slice()),
            };
            for item in dbs
                .owner_time
                .range(&txn, &(lower, Bound::Included(end.as_slice())))?
            {
                let (k, _) = item?;
                if !take(k) {
                    break;
                }
            }
        }
        let mut objects = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(v) = dbs.objects.get(&txn, &keys::object_key(id))? {
                objects.push(records::decode_object(v)?);
            }
        }
        Ok(OwnerPage {
            next: if more { ids.last().copied() } else { None },
            objects,
        })
    }

    /// How many objects `owner` has in namespace `ns`: a counter kept by the writer
    /// in the transaction of every change (one read, whatever the count).
    pub fn count_owner_namespace(&self, owner: &str, ns: &str) -> Result<u64, StoreError> {
        let key = keys::owner_ns_key(owner, ns)?;
        let txn = self.inner.env.read_txn()?;
        Ok(self
            .inner
            .dbs
            .owner_ns_counts
            .get(&txn, &key)?
            .and_then(|v| <[u8; 8]>::try_from(v).ok())
            .map_or(0, u64::from_be_bytes))
    }
}
