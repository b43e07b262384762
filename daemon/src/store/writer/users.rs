//! User, token and session commands. None of them moves `data_generation` (they change
//! no object or blob), so the workers' object caches survive them; credential caches
//! are invalidated by the caller through the revocation epoch after the reply.
//!
//! - Users: `usernames` (case-folded) makes a username unique; deleting a user removes
//!   the record, the username, and every API token of the user (their sessions and
//!   access tokens stop working because their user is gone). The user's objects are
//!   the caller's business (the core deletes them in bounded batches).
//! - Tokens: `tokens` by SHA-256 of the secret, `user_tokens` by (user, token id).
//! - Sessions: `sessions` by SHA-256 of the refresh token, `session_jtis` from the
//!   access token's id to its session. Rotating or ending a session revokes its access
//!   token (`revoked`: jti -> expiry) until that token would have expired anyway;
//!   expired revocations and sessions are pruned now and then.

use heed::RwTxn;

use super::{fatal, rejected, Fail, Reply, Writer};
use crate::store::records::{self, Role, SessionRecord, TokenRecord, UserRecord};
use crate::store::{keys, Sha256, StoreError};

/// What an admin (or the user) changes on a user; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserChange {
    pub role: Option<Role>,
    /// `Some(None)` removes the override (the global quota applies).
    pub quota_bytes: Option<Option<u64>>,
    pub password_hash: Option<String>,
    pub display_name: Option<Option<String>>,
}

/// Every how many session or revocation writes the expired ones are pruned.
const PRUNE_EVERY: u64 = 256;

impl Writer {
    pub(super) fn create_user(
        &self,
        txn: &mut RwTxn,
        user: UserRecord,
        token: Option<(Sha256, TokenRecord)>,
    ) -> Result<Reply, Fail> {
        keys::validate_owner(&user.id).map_err(Fail::Rejected)?;
        let name_key = keys::username_key(&user.username);
        if self
            .dbs
            .usernames
            .get(txn, &name_key)
            .map_err(rejected)?
            .is_some()
        {
            return Err(Fail::Rejected(StoreError::Conflict(format!(
                "the username {:?} is taken; choose another",
                user.username
            ))));
        }
        if self.read_user(txn, &user.id)?.is_some() {
            return Err(Fail::Rejected(StoreError::Conflict(format!(
                "a user with id {:?} exists",
                user.id
            ))));
        }
        let token_value = match &token {
            Some((_, rec)) => Some(records::encode_token(rec).map_err(Fail::Rejected)?),
            None => None,
        };
        self.write_user(txn, &user)?;
        self.dbs
            .usernames
            .put(txn, &name_key, user.id.as_bytes())
            .map_err(fatal)?;
        if let (Some((sha, rec)), Some(value)) = (&token, &token_value) {
            self.put_token_indexed(txn, sha, rec, value)?;
        }
        Ok(Reply::User(user))
    }

    pub(super) fn update_user(
        &self,
        txn: &mut RwTxn,
        id: &str,
        change: UserChange,
    ) -> Result<Reply, Fail> {
        let mut user = self
            .read_user(txn, id)?
            .ok_or(Fail::Rejected(StoreError::NotFound))?;
        if let Some(role) = change.role {
            user.role = role;
        }
        if let Some(q) = change.quota_bytes {
            user.quota_bytes = q;
        }
        if let Some(h) = change.password_hash {
            user.password_hash = Some(h);
        }
        if let Some(d) = change.display_name {
            user.display_name = d;
        }
        self.write_user(txn, &user)?;
        Ok(Reply::User(user))
    }

    pub(super) fn delete_user(&self, txn: &mut RwTxn, id: &str) -> Result<Reply, Fail> {
        let user = self
            .read_user(txn, id)?
            .ok_or(Fail::Rejected(StoreError::NotFound))?;
        let prefix = keys::owner_prefix(id);
        let mut tokens: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for item in self
            .dbs
            .user_tokens
            .prefix_iter(txn, &prefix)
            .map_err(rejected)?
        {
            let (k, v) = item.map_err(rejected)?;
            tokens.push((k.to_vec(), v.to_vec()));
        }
        for (k, sha) in tokens {
            self.dbs.user_tokens.delete(txn, &k).map_err(fatal)?;
            self.dbs.tokens.delete(txn, &sha).map_err(fatal)?;
        }
        self.dbs.users.delete(txn, id.as_bytes()).map_err(fatal)?;
        self.dbs
            .usernames
            .delete(txn, &keys::username_key(&user.username))
            .map_err(fatal)?;
        Ok(Reply::User(user))
    }

    /// Stores a token and its (user, id) index entry.
    pub(super) fn put_token(
        &self,
        txn: &mut RwTxn,
        token_sha256: Sha256,
        record: TokenRecord,
    ) -> Result<Reply, Fail> {
        keys::validate_owner(&record.user).map_err(Fail::Rejected)?;
        let value = records::encode_token(&record).map_err(Fail::Rejected)?;
        self.put_token_indexed(txn, &token_sha256, &record, &value)?;
        Ok(Reply::Done)
    }

    fn put_token_indexed(
        &self,
        txn: &mut RwTxn,
        sha: &Sha256,
        record: &TokenRecord,
        value: &[u8],
    ) -> Result<(), Fail> {
        let ikey = keys::user_token_key(&record.user, &record.id).map_err(Fail::Rejected)?;
        self.dbs.tokens.put(txn, sha, value).map_err(fatal)?;
        self.dbs.user_tokens.put(txn, &ikey, sha).map_err(fatal)
    }

    /// Revokes a token by its secret's hash.
    pub(super) fn delete_token(
        &self,
        txn: &mut RwTxn,
        token_sha256: Sha256,
    ) -> Result<Reply, Fail> {
        let Some(bytes) = self.dbs.tokens.get(txn, &token_sha256).map_err(rejected)? else {
            return Err(Fail::Rejected(StoreError::NotFound));
        };
        let rec = records::decode_token(bytes).map_err(Fail::Rejected)?;
        if let Ok(ikey) = keys::user_token_key(&rec.user, &rec.id) {
            self.dbs.user_tokens.delete(txn, &ikey).map_err(fatal)?;
        }
        self.dbs.tokens.delete(txn, &token_sha256).map_err(fatal)?;
        Ok(Reply::Deleted)
    }

    /// Revokes a token by (user, id): `NotFound` when that user has no such token.
    pub(super) fn revoke_token(
        &self,
        txn: &mut RwTxn,
        user: &str,
        token_id: [u8; 16],
    ) -> Result<Reply, Fail> {
        let ikey = keys::user_token_key(user, &token_id).map_err(Fail::Rejected)?;
        let sha = match self.dbs.user_tokens.get(txn, &ikey).map_err(rejected)? {
            Some(v) => Sha256::try_from(v).map_err(|_| {
                Fail::Rejected(StoreError::Lmdb("corrupt user_tokens entry".into()))
            })?,
            None => return Err(Fail::Rejected(StoreError::NotFound)),
        };
        self.dbs.user_tokens.delete(txn, &ikey).map_err(fatal)?;
        self.dbs.tokens.delete(txn, &sha).map_err(fatal)?;
        Ok(Reply::Deleted)
    }

    /// Records last-use times (coarse; tokens that vanished meanwhile are skipped).
    pub(super) fn touch_tokens(
        &self,
        txn: &mut RwTxn,
        uses: Vec<(Sha256, i64)>,
    ) -> Result<Reply, Fail> {
        for (sha, at) in uses {
            let Some(bytes) = self.dbs.tokens.get(txn, &sha).map_err(rejected)? else {
                continue;
            };
            let Ok(mut rec) = records::decode_token(bytes) else {
                continue;
            };
            if rec.last_used_ms.is_some_and(|t| t >= at) {
                continue;
            }
            rec.last_used_ms = Some(at);
            let value = records::encode_token(&rec).map_err(Fail::Rejected)?;
            self.dbs.tokens.put(txn, &sha, &value).map_err(fatal)?;
        }
        Ok(Reply::Done)
    }

    pub(super) fn create_session(
        &self,
        txn: &mut RwTxn,
        refresh_sha: Sha256,
        record: SessionRecord,
        now_ms: i64,
    ) -> Result<Reply, Fail> {
        let value = records::encode_session(&record).map_err(Fail::Rejected)?;
        self.dbs
            .sessions
            .put(txn, &refresh_sha, &value)
            .map_err(fatal)?;
        self.dbs
            .session_jtis
            .put(txn, record.access_jti.as_bytes(), &refresh_sha)
            .map_err(fatal)?;
        self.maybe_prune(txn, now_ms)?;
        Ok(Reply::Done)
    }

    /// Replaces the session of `old_refresh` by a new one (refresh-token rotation): the
    /// old refresh token and its access token stop working. `NotFound` when the old
    /// refresh token is unknown, already used, or expired (so a stolen and replayed
    /// refresh token gets nothing).
    pub(super) fn rotate_session(
        &self,
        txn: &mut RwTxn,
        old_refresh: Sha256,
        new_refresh: Sha256,
        record: SessionRecord,
        now_ms: i64,
    ) -> Result<Reply, Fail> {
        let old = self.read_session(txn, &old_refresh)?;
        let old = match old {
            Some(s) if s.expires_at_ms > now_ms && s.user == record.user => s,
            _ => return Err(Fail::Rejected(StoreError::NotFound)),
        };
        self.end_session_record(txn, &old_refresh, &old)?;
        self.create_session(txn, new_refresh, record, now_ms)?;
        Ok(Reply::Session(old))
    }

    /// Ends the session whose access token is `jti` (logout): the access token is
    /// revoked and its refresh token forgotten. Without a session, the token itself is
    /// still revoked until `expires_at_ms`.
    pub(super) fn end_session(
        &self,
        txn: &mut RwTxn,
        jti: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<Reply, Fail> {
        let refresh = match self
            .dbs
            .session_jtis
            .get(txn, jti.as_bytes())
            .map_err(rejected)?
        {
            Some(v) => Sha256::try_from(v).ok(),
            None => None,
        };
        match refresh {
            Some(sha) => match self.read_session(txn, &sha)? {
                Some(s) => self.end_session_record(txn, &sha, &s)?,
                None => self.revoke_jti(txn, jti, expires_at_ms)?,
            },
            None => self.revoke_jti(txn, jti, expires_at_ms)?,
        }
        self.maybe_prune(txn, now_ms)?;
        Ok(Reply::Deleted)
    }

    fn read_session(&self, txn: &RwTxn, sha: &Sha256) -> Result<Option<SessionRecord>, Fail> {
        match self.dbs.sessions.get(txn, sha).map_err(rejected)? {
            Some(bytes) => records::decode_session(bytes)
                .map(Some)
                .map_err(Fail::Rejected),
            None => Ok(None),
        }
    }

    fn end_session_record(
        &self,
        txn: &mut RwTxn,
        sha: &Sha256,
        s: &SessionRecord,
    ) -> Result<(), Fail> {
        self.dbs.sessions.delete(txn, sha).map_err(fatal)?;
        self.dbs
            .session_jtis
            .delete(txn, s.access_jti.as_bytes())
            .map_err(fatal)?;
        self.revoke_jti(txn, &s.access_jti, s.access_expires_at_ms)
    }

    fn revoke_jti(&self, txn: &mut RwTxn, jti: &str, expires_at_ms: i64) -> Result<(), Fail> {
        self.dbs
            .revoked
            .put(txn, jti.as_bytes(), &expires_at_ms.to_be_bytes())
            .map_err(fatal)
    }

    /// Every [`PRUNE_EVERY`] session writes, drop expired revocations and sessions.
    fn maybe_prune(&self, txn: &mut RwTxn, now_ms: i64) -> Result<(), Fail> {
        let n = self
            .session_writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % PRUNE_EVERY != PRUNE_EVERY - 1 {
            return Ok(());
        }
        let mut dead: Vec<Vec<u8>> = Vec::new();
        for item in self.dbs.revoked.iter(txn).map_err(rejected)? {
            let (k, v) = item.map_err(rejected)?;
            let exp = <[u8; 8]>::try_from(v).map(i64::from_be_bytes).unwrap_or(0);
            if exp <= now_ms {
                dead.push(k.to_vec());
            }
        }
        for k in dead {
            self.dbs.revoked.delete(txn, &k).map_err(fatal)?;
        }
        let mut expired: Vec<(Vec<u8>, String)> = Vec::new();
        for item in self.dbs.sessions.iter(txn).map_err(rejected)? {
            let (k, v) = item.map_err(rejected)?;
            if let Ok(s) = records::decode_session(v) {
                if s.expires_at_ms <= now_ms {
                    expired.push((k.to_vec(), s.access_jti));
                }
            }
        }
        for (k, jti) in expired {
            self.dbs.sessions.delete(txn, &k).map_err(fatal)?;
            self.dbs
                .session_jtis
                .delete(txn, jti.as_bytes())
                .map_err(fatal)?;
        }
        Ok(())
    }
}
