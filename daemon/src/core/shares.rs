//! Share links, for every API: a token that opens one object, or one collection's
//! members, without any credential (MinIO's presigned links, nginx `secure_link`,
//! Media Vault's `POST /media/{id}/share`).
//!
//! - Creating: the caller must be able to read the object (or own the collection);
//!   otherwise `not_found`. Options: an expiry (`expires_in`), a download limit
//!   (`max_downloads`), a password (8 characters to 1,024 bytes, like an account's).
//!   The token is 128 random bits, base64url (22
//!   characters); only its SHA-256 is stored, so it is shown once. Its URL is
//!   `/share/{token}` under the `shares` mount, absolute with `--public-url`.
//! - Opening ([`Local::open_share`]): unknown, revoked, expired and exhausted tokens
//!   all get the same `not_found` (so a token's history is not leaked); a share whose
//!   owner was deleted is gone too. A password-protected share needs the password
//!   (`password_required` 403 without it, `wrong_password` 403 for a wrong one); it is
//!   checked against an Argon2id hash on the blocking pool, and a correct one is
//!   remembered for 10 minutes (by a hash of share id and password), so the range
//!   requests of one download do not each cost an Argon2 run.
//! - Content ([`Local::share_content`], [`Local::serve_share`]): everything the object
//!   content path has (ranges, conditionals, validators). For a collection share, only
//!   its current, unexpired members. A download (a 200/206 with bytes) is counted, and
//!   with `max_downloads` it takes one of the share's slots, exactly, across workers
//!   (`core::stats`): the download after the last slot is `not_found`.
//! - Revoking (`DELETE /v1/shares/{token or id}`) takes effect on the next request:
//!   shares are read from LMDB on every request (one short read), never cached.
//!
//! Rate-limit the public path with `--rate-limit shares=ANON,0,0` to slow password
//! guessing.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ringbox_protocol::conditional::Conditions;
use sha2::{Digest, Sha256};

use super::access::Caller;
use super::collections::MembersPage;
use super::content::Served;
use super::error::{CoreError, CoreResult, ErrorKind};
use super::expiry::is_expired;
use super::hot_cache::HotEntry;
use super::Local;
use crate::store::{
    CollectionRecord, Command, ObjectId, Reply, ShareCommand, ShareRecord, ShareTarget, StoreError,
};
use crate::util::time::now_ms;

/// How long a verified share password is remembered.
const PASSWORD_MEMORY_MS: i64 = 10 * 60 * 1000;
/// Most remembered share passwords (the memory is emptied when full).
const PASSWORD_MEMORY_MAX: usize = 4096;
/// Longest share password, in bytes.
const MAX_PASSWORD_BYTES: usize = 1024;

/// What a caller asks for.
#[derive(Clone, Debug)]
pub struct NewShare {
    pub target: ShareTarget,
    pub expires_in: Option<Duration>,
    pub max_downloads: Option<u64>,
    pub password: Option<String>,
}

/// A new share: the token is shown here only.
#[derive(Clone, Debug)]
pub struct IssuedShare {
    pub record: ShareRecord,
    pub token: String,
    /// `/share/{token}`, absolute when `--public-url` is set.
    pub url: String,
}

/// Remembered correct share passwords (process-wide).
#[derive(Debug, Default)]
pub struct PasswordMemory {
    verified: Mutex<HashMap<[u8; 32], i64>>,
}

impl PasswordMemory {
    fn key(share: &ObjectId, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(share.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn knows(&self, share: &ObjectId, password: &str, now: i64) -> bool {
        let m = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&Self::key(share, password))
            .is_some_and(|&until| now < until)
    }

    fn remember(&self, share: &ObjectId, password: &str, now: i64) {
        let mut m = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= PASSWORD_MEMORY_MAX {
            m.clear();
        }
        m.insert(Self::key(share, password), now + PASSWORD_MEMORY_MS);
    }
}

/// The one answer for unknown, revoked, expired and exhausted shares.
pub fn no_share() -> CoreError {
    CoreError::not_found("the share")
}

fn expect_share(reply: Reply) -> CoreResult<ShareRecord> {
    match reply {
        Reply::Share(s) => Ok(s),
        other => Err(CoreError::internal(format!(
            "unexpected writer reply {other:?}"
        ))),
    }
}

/// A new token and its SHA-256.
fn new_token() -> CoreResult<(String, [u8; 32])> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw)
        .map_err(|e| CoreError::internal(format!("no randomness for a share token: {e}")))?;
    let token = URL_SAFE_NO_PAD.encode(raw);
    let sha = token_sha256(&token);
    Ok((token, sha))
}

/// The key a token is stored under.
pub fn token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `s` could be a token this module issued (22 base64url characters).
fn looks_like_token(s: &str) -> bool {
    s.len() == 22
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Local {
    /// The URL of a share token (`/share/{token}`, absolute with `--public-url`).
    pub fn share_url(&self, token: &str) -> String {
        format!(
            "{}{}/share/{token}",
            self.settings.public_url.as_deref().unwrap_or(""),
            self.settings.share_prefix
        )
    }

    /// `POST /v1/shares`.
    pub async fn create_share(&self, caller: &Caller, new: NewShare) -> CoreResult<IssuedShare> {
        let owner = caller
            .user()
            .ok_or_else(|| CoreError::unauthorized("shares belong to users: sign in first"))?
            .to_string();
        match new.target {
            ShareTarget::Object(id) => {
                self.object_for_read(caller, id)?;
            }
            ShareTarget::Collection(id) => {
                self.collection_for(caller, id)?;
            }
        }
        if new.max_downloads == Some(0) {
            return Err(CoreError::invalid_field(
                "max_downloads",
                "max_downloads must be at least 1 (leave it out for no limit)",
            ));
        }
        let password_hash = match new.password {
            None => None,
            Some(p) => {
                // The account password rule: 8 characters to 1,024 bytes.
                super::auth::credentials::validate_password(&p).map_err(|e| {
                    CoreError::invalid_field("password", format!("share password: {e}"))
                })?;
                let hasher = self.accounts.hasher.clone();
                Some(
                    self.pool
                        // Argon2 takes tens of milliseconds: never on an io_uring worker.
                        .run(move || hasher.hash(&p))
                        .await?
                        .map_err(|e| CoreError::invalid(e.to_string()))?,
                )
            }
        };
        let (token, sha) = new_token()?;
        let now = now_ms();
        let record = ShareRecord {
            id: uuid::Uuid::now_v7(),
            owner: owner.clone(),
            target: new.target,
            token_sha256: sha,
            created_at_ms: now,
            expires_at_ms: new
                .expires_in
                .map(|d| now.saturating_add(d.as_millis() as i64)),
            max_downloads: new.max_downloads,
            downloads: 0,
            password_hash,
        };
        let reply = self
            .store
            .writer()
            .submit_as(Command::Share(ShareCommand::Create { record }), &owner)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => match new.target {
                    ShareTarget::Object(_) => CoreError::not_found("the object"),
                    ShareTarget::Collection(_) => CoreError::not_found("the collection"),
                },
                e => e.into(),
            })?;
        let record = expect_share(reply)?;
        let url = self.share_url(&token);
        Ok(IssuedShare { record, token, url })
    }

    /// `GET /v1/shares`: the caller's shares, newest first (no tokens: they are not
    /// stored).
    pub fn list_shares(
        &self,
        caller: &Caller,
        cursor: Option<&str>,
        limit: usize,
    ) -> CoreResult<(Vec<ShareRecord>, Option<String>)> {
        let owner = caller
            .user()
            .ok_or_else(|| CoreError::unauthorized("shares belong to users: sign in first"))?;
        let after = match cursor {
            None | Some("") => None,
            Some(c) => Some(uuid::Uuid::try_parse(c).map_err(|_| {
                CoreError::invalid_field("cursor", "cursor is malformed; pass it back unchanged")
            })?),
        };
        let page = self
            .store
            .owner_shares(owner, after, limit.clamp(1, 1000))?;
        Ok((page.items, page.next.map(|id| id.to_string())))
    }

    /// Downloads of a share, including those not yet written to the store.
    pub fn share_downloads(&self, rec: &ShareRecord) -> u64 {
        self.access.share_downloads(&rec.id, rec.downloads)
    }

    /// `DELETE /v1/shares/{token or id}`: the caller's share (any share for an admin),
    /// by its token or its id; others are `not_found`.
    pub async fn revoke_share(&self, caller: &Caller, token_or_id: &str) -> CoreResult<()> {
        let rec = if let Ok(id) = uuid::Uuid::try_parse(token_or_id) {
            self.store.get_share(&id)?
        } else if looks_like_token(token_or_id) {
            self.store.share_by_token(&token_sha256(token_or_id))?
        } else {
            None
        };
        let rec = rec
            .filter(|r| caller.is_admin() || caller.user() == Some(r.owner.as_str()))
            .ok_or_else(no_share)?;
        self.store
            .writer()
            .submit_as(
                Command::Share(ShareCommand::Delete { id: rec.id }),
                &caller.owner_id(),
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound => no_share(),
                e => e.into(),
            })?;
        Ok(())
    }

    /// The share a token opens, checked: not expired, not exhausted, its owner still
    /// there, and the password when it has one. `not_found` for every token that does
    /// not open (see the module docs).
    pub async fn open_share(&self, token: &str, password: Option<&str>) -> CoreResult<ShareRecord> {
        if !looks_like_token(token) {
            return Err(no_share());
        }
        let rec = self
            .store
            .share_by_token(&token_sha256(token))?
            .ok_or_else(no_share)?;
        let now = now_ms();
        let downloads = self.share_downloads(&rec);
        let open = rec.expires_at_ms.is_none_or(|t| now < t)
            && rec.max_downloads.is_none_or(|m| downloads < m);
        if !open || self.store.get_user(&rec.owner)?.is_none() {
            return Err(no_share());
        }
        if let Some(hash) = &rec.password_hash {
            let Some(given) = password.filter(|p| !p.is_empty()) else {
                return Err(CoreError::new(
                    ErrorKind::Forbidden,
                    "password_required",
                    "this share is protected by a password: send it as ?password=... or in an X-Share-Password header",
                ));
            };
            if given.len() > MAX_PASSWORD_BYTES {
                return Err(wrong_password());
            }
            if !self.share_passwords.knows(&rec.id, given, now) {
                let hasher = self.accounts.hasher.clone();
                let (hash, given_owned) = (hash.clone(), given.to_string());
                let ok = self
                    .pool
                    // Argon2 takes tens of milliseconds: never on an io_uring worker.
                    .run(move || hasher.verify(&hash, &given_owned).unwrap_or(false))
                    .await?;
                if !ok {
                    return Err(wrong_password());
                }
                self.share_passwords.remember(&rec.id, given, now);
            }
        }
        Ok(rec)
    }

    /// The content a share serves: its object, or (`member`) one current member of
    /// its collection. `not_found` for anything else.
    pub fn share_content(
        &self,
        share: &ShareRecord,
        member: Option<ObjectId>,
    ) -> CoreResult<Rc<HotEntry>> {
        let id = match (share.target, member) {
            (ShareTarget::Object(id), None) => id,
            (ShareTarget::Collection(coll), Some(obj))
                if self.store.collection_has(&coll, &obj)? =>
            {
                obj
            }
            _ => return Err(CoreError::not_found("the object")),
        };
        // An object share whose object is gone (expired, not yet swept) is as gone as
        // the share itself: the same answer as an unknown token.
        let gone = || match share.target {
            ShareTarget::Object(_) => no_share(),
            ShareTarget::Collection(_) => CoreError::not_found("the object"),
        };
        let entry = match self.content_entry(id) {
            Err(e) if e.kind == ErrorKind::NotFound => return Err(gone()),
            other => other?,
        };
        if is_expired(&entry.rec, now_ms()) {
            return Err(gone());
        }
        match &entry.rep {
            None => Err(super::content::pending()),
            Some(_) => Ok(entry),
        }
    }

    /// [`Local::serve`] for a share: a download also takes one of the share's slots
    /// (`not_found` when none is left).
    pub async fn serve_share(
        &self,
        share: &ShareRecord,
        rep: &super::content::Representation,
        conditions: &Conditions<'_>,
    ) -> CoreResult<Served> {
        self.serve_counted(rep, conditions, Some(share)).await
    }

    /// Take one download slot of `share` (true when it may be served).
    pub(crate) fn take_share_slot(&self, share: &ShareRecord) -> CoreResult<bool> {
        self.access
            .take_share_download(share.id, share.max_downloads, || {
                Ok(self
                    .store
                    .get_share(&share.id)?
                    .map_or(u64::MAX, |s| s.downloads))
            })
    }

    /// The collection of a collection share and a page of its current members.
    pub fn share_members(
        &self,
        share: &ShareRecord,
        cursor: Option<&str>,
        limit: usize,
    ) -> CoreResult<(CollectionRecord, MembersPage)> {
        let ShareTarget::Collection(id) = share.target else {
            return Err(CoreError::not_found("the collection"));
        };
        let coll = self.store.get_collection(&id)?.ok_or_else(no_share)?;
        let page = self.member_page(&coll, cursor, limit, |_| true)?;
        Ok((coll, page))
    }
}

fn wrong_password() -> CoreError {
    CoreError::new(
        ErrorKind::Forbidden,
        "wrong_password",
        "the share's password is wrong",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::{admin, with_services};
    use crate::core::upload::NewObject;

    #[test]
    fn tokens() {
        let (t, sha) = new_token().unwrap();
        assert!(looks_like_token(&t), "{t}");
        assert_eq!(token_sha256(&t), sha);
        assert!(!looks_like_token("short"));
        assert!(!looks_like_token(&"a".repeat(21)));
        assert!(!looks_like_token("aaaaaaaaaaaaaaaaaaaaa="));
    }

    #[test]
    fn open_revoke_and_limits() {
        with_services(|svc| async move {
            let a = admin();
            let rec = svc
                .create_text(
                    &a,
                    NewObject {
                        namespace: "default".into(),
                        name: "n.txt".into(),
                        ..NewObject::default()
                    },
                    "hello".into(),
                )
                .await
                .unwrap();
            let s = svc
                .create_share(
                    &a,
                    NewShare {
                        target: ShareTarget::Object(rec.id),
                        expires_in: None,
                        max_downloads: Some(1),
                        password: Some("open sesame".into()),
                    },
                )
                .await
                .unwrap();
            assert!(s.url.ends_with(&format!("/share/{}", s.token)));
            let e = svc.open_share(&s.token, None).await.unwrap_err();
            assert_eq!(e.code, "password_required");
            let e = svc.open_share(&s.token, Some("nope")).await.unwrap_err();
            assert_eq!(e.code, "wrong_password");
            let share = svc.open_share(&s.token, Some("open sesame")).await.unwrap();
            assert!(svc.take_share_slot(&share).unwrap());
            assert!(!svc.take_share_slot(&share).unwrap());
            // Exhausted: the same 404 as an unknown token.
            let e = svc
                .open_share(&s.token, Some("open sesame"))
                .await
                .unwrap_err();
            assert_eq!((e.kind, e.code), (ErrorKind::NotFound, "not_found"));
            let unknown = svc
                .open_share("AAAAAAAAAAAAAAAAAAAAAA", None)
                .await
                .unwrap_err();
            assert_eq!(unknown.message, e.message);
            // The count reaches the store at the next flush.
            svc.flush_access().await;
            assert_eq!(
                svc.store.get_share(&share.id).unwrap().unwrap().downloads,
                1
            );
            // Revoke by id.
            let s2 = svc
                .create_share(
                    &a,
                    NewShare {
                        target: ShareTarget::Object(rec.id),
                        expires_in: Some(Duration::from_secs(60)),
                        max_downloads: None,
                        password: None,
                    },
                )
                .await
                .unwrap();
            svc.open_share(&s2.token, None).await.unwrap();
            svc.revoke_share(&a, &s2.record.id.to_string())
                .await
                .unwrap();
            assert!(svc.open_share(&s2.token, None).await.is_err());
            // Deleting the object deletes its shares.
            svc.delete_object(&a, rec.id).await.unwrap();
            assert!(svc.store.get_share(&share.id).unwrap().is_none());
            let (shares, _) = svc.list_shares(&a, None, 10).unwrap();
            assert!(shares.is_empty());
        });
    }
}
