//! Serving bytes: an object's (or a blob's) content as a [`Representation`] with its
//! validators ready, the RFC 9110 §13.2.2 decision for a request's conditions, and the
//! open blob when bytes must be sent. Each API turns the result into its response
//! (the HTTP layer's `content` helper does the common part).
//!
//! Conditionals and ranges are decided from the record alone, before any file is
//! touched: a 304 or 412 costs one cached lookup. Only 200/206 open the blob, through
//! the worker's blob cache, which notices a file deleted or changed behind our back on
//! the very next request:
//! - a managed blob whose file is gone is `lost` (410); the record is marked lost in the
//!   background (only if it still names that content), and healed as soon as the file
//!   is back (the same bytes uploaded again);
//! - a scanned file that vanished is `not_found` (404) and one that changed since the
//!   scan is not served under its old ETag (404 `changed`) until the next scan;
//! - a blob whose size or hash does not match is 500 `corrupt`, never served.
//!
//! Expired objects are `not_found` here as everywhere (`core::expiry`). A 200/206 that
//! sends an object's bytes counts as one download (`core::stats`); a `HEAD`, a 304,
//! 412 or 416 does not.

use std::cell::Cell;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use ringbox_protocol::conditional::{evaluate, format_http_date, Conditions, Decision, Validators};
use ringbox_protocol::range::ByteRange;

use super::access::Caller;
use super::blob_cache::{BlobCache, BlobLocation, BlobSource, OpenError};
use super::error::{CoreError, CoreResult, ErrorKind};
use super::hot_cache::HotEntry;
use super::Local;
use crate::store::{Command, ObjectId, ShareRecord, State};
use crate::util::hex;
use crate::util::time::now_ms;

/// What is served: validators and header values, ready to be copied into a response
/// (shared, so a hot object costs no formatting).
#[derive(Debug)]
pub struct Representation {
    pub sha: [u8; 32],
    pub size: u64,
    pub mime: Rc<str>,
    /// `"<sha256 hex>"`.
    pub etag: Rc<str>,
    pub last_modified_secs: u64,
    pub last_modified: Rc<str>,
    /// The name for `Content-Disposition`.
    pub filename: Rc<str>,
    /// Ready `inline; filename=...` value.
    pub inline_disposition: Rc<str>,
    /// Text objects carry their bytes in the record.
    pub text: Option<Rc<[u8]>>,
    /// The object served, when served by object (None for a blob by hash).
    pub object: Option<ObjectId>,
    /// The record's content state (`Lost` objects are tried again before a 410).
    pub state: State,
    /// Where the bytes are when they are a file indexed in place (else the managed
    /// blob named by `sha`).
    pub external: Option<ExternalLoc>,
}

/// A file indexed in place, as served.
#[derive(Debug, Clone)]
pub struct ExternalLoc {
    pub path: Rc<Path>,
    /// The mtime the scan recorded (with the size, what the file must still have).
    pub mtime_ns: i64,
    /// The worker blob cache's key for this file (see `thumbs::external_key`).
    pub key: [u8; 32],
}

/// The outcome of serving a representation.
#[derive(Debug)]
pub enum Served {
    /// 304.
    NotModified,
    /// 412.
    PreconditionFailed,
    /// 416.
    RangeNotSatisfiable,
    /// 200 with the whole content.
    Full(BlobSource),
    /// 206 with these ranges (one or more).
    Partial(BlobSource, Vec<ByteRange>),
}

/// 410 for content that vanished from the managed store.
pub fn lost() -> CoreError {
    CoreError::new(
        ErrorKind::Gone,
        "lost",
        "the object's bytes are gone from the blob store; upload the content again (see `ringbox check`)",
    )
}

/// 409 for a file object without content yet.
pub fn pending() -> CoreError {
    CoreError::new(
        ErrorKind::Conflict,
        "pending",
        "the object has no content yet; upload it with PUT /v1/objects/{id}/content",
    )
}

impl Local {
    /// The content of object `id` as `caller` may see it: from the worker's hot cache
    /// or LMDB. `NotFound` when the caller may not read it or it expired; `pending`
    /// without content.
    pub fn object_content(&self, caller: &Caller, id: ObjectId) -> CoreResult<Rc<HotEntry>> {
        let entry = self.content_entry(id)?;
        if !self.settings.policy.may_read(caller, &entry.rec)
            || super::expiry::is_expired(&entry.rec, now_ms())
        {
            return Err(CoreError::not_found("the object"));
        }
        match &entry.rep {
            None => Err(pending()),
            Some(_) => Ok(entry),
        }
    }

    /// The hot-cache entry of object `id` (read from LMDB on a miss), whoever asks:
    /// the callers decide access and expiry.
    pub(crate) fn content_entry(&self, id: ObjectId) -> CoreResult<Rc<HotEntry>> {
        let generation = self.data_generation();
        let cached = self.hot.borrow_mut().get(id, generation);
        Ok(match cached {
            Some(e) => e,
            None => {
                let rec = self
                    .store
                    .get_object(id)?
                    .ok_or_else(|| CoreError::not_found("the object"))?;
                let entry = Rc::new(HotEntry::new(rec));
                self.hot.borrow_mut().insert(id, generation, entry.clone());
                entry
            }
        })
    }

    /// The content of the object holding `alias` ("scheme:value": a dialect's short
    /// id, path or content hash) as `caller` may see it, from the worker's hot cache
    /// like [`Local::object_content`] (the alias lookup is cached too, under the same
    /// generation). `NotFound` when no object holds it, the caller may not read it or
    /// it expired; `pending` without content.
    pub fn object_content_by_alias(
        &self,
        caller: &Caller,
        alias: &str,
    ) -> CoreResult<Rc<HotEntry>> {
        match self.alias_target(alias)? {
            Some(id) => self.object_content(caller, id),
            None => Err(CoreError::not_found("the object")),
        }
    }

    /// The id of the object holding `alias`, whoever asks (the callers decide access),
    /// from the worker's hot cache under the data generation; a miss reads LMDB once
    /// and caches the record too.
    pub(crate) fn alias_target(&self, alias: &str) -> CoreResult<Option<ObjectId>> {
        let generation = self.data_generation();
        let cached = self.hot.borrow_mut().alias(alias, generation);
        Ok(match cached {
            Some(id) => id,
            None => {
                let rec = self.store.get_by_alias(alias)?;
                let id = rec.as_ref().map(|r| r.id);
                let mut hot = self.hot.borrow_mut();
                hot.insert_alias(alias, generation, id);
                if let Some(rec) = rec {
                    hot.insert(rec.id, generation, Rc::new(HotEntry::new(rec)));
                }
                id
            }
        })
    }

    /// The content of a blob by its hash (no object, no name): for admins (and
    /// everyone when the store is public), and for users who own an object with that
    /// content; others are told it does not exist. Served from the worker's hot cache
    /// (the representation and the ownership answer), like content by id: a hot blob
    /// costs no LMDB read and no formatting. Whether its file is still there is checked
    /// by [`Local::serve`] at every request, as for objects.
    pub fn blob_content(&self, caller: &Caller, sha: [u8; 32]) -> CoreResult<Rc<Representation>> {
        let generation = self.data_generation();
        if !self.may_see_blob(caller, &sha)? {
            return Err(CoreError::not_found("a blob with this hash"));
        }
        let cached = self.hot.borrow_mut().blob(&sha, generation);
        let rep = match cached {
            Some(rep) => rep,
            None => {
                let rep = self
                    .store
                    .get_blob(&sha)?
                    .filter(|b| b.refcount > 0)
                    .map(|b| Rc::new(blob_representation(sha, b.size, b.created_at_ms)));
                self.hot
                    .borrow_mut()
                    .insert_blob(sha, generation, rep.clone());
                rep
            }
        };
        rep.ok_or_else(|| CoreError::not_found("a blob with this hash"))
    }

    /// Whether `caller` may read content by hash `sha`: admins (and everyone when the
    /// store is public), and users who own an object with that content. The owner
    /// answer is cached in the worker's hot cache under the data generation.
    pub(crate) fn may_see_blob(&self, caller: &Caller, sha: &[u8; 32]) -> CoreResult<bool> {
        if self.settings.policy.sees_everything(caller) {
            return Ok(true);
        }
        let Some(user) = caller.user() else {
            return Ok(false);
        };
        let generation = self.data_generation();
        let cached = self.hot.borrow_mut().owns_blob(user, sha, generation);
        if let Some(owns) = cached {
            return Ok(owns);
        }
        let owns = self.store.owner_has_blob(user, sha)?;
        self.hot
            .borrow_mut()
            .insert_owns_blob(user, *sha, generation, owns);
        Ok(owns)
    }

    /// Decide what to answer for `conditions`, and open the bytes for a 200/206. A
    /// 200/206 of an object that sends its bytes (not a `HEAD`: see
    /// [`BodylessScope`]) counts as a download (`core::stats`), for every API.
    pub async fn serve(
        &self,
        rep: &Representation,
        conditions: &Conditions<'_>,
    ) -> CoreResult<Served> {
        self.serve_counted(rep, conditions, None).await
    }

    /// [`Local::serve`], taking a download slot of `share` when it serves bytes.
    pub(crate) async fn serve_counted(
        &self,
        rep: &Representation,
        conditions: &Conditions<'_>,
        share: Option<&ShareRecord>,
    ) -> CoreResult<Served> {
        let validators = Validators {
            etag: &rep.etag,
            last_modified: Some(rep.last_modified_secs),
            len: rep.size,
        };
        match evaluate(true, conditions, &validators, &self.settings.limits) {
            Decision::NotModified => Ok(Served::NotModified),
            Decision::PreconditionFailed => Ok(Served::PreconditionFailed),
            Decision::RangeNotSatisfiable => Ok(Served::RangeNotSatisfiable),
            Decision::Full => Ok(Served::Full(self.open_download(rep, share).await?)),
            Decision::Partial(ranges) => Ok(Served::Partial(
                self.open_download(rep, share).await?,
                ranges,
            )),
        }
    }

    /// The bytes of a 200/206, counted as a download of the object (and of `share`,
    /// whose slot is taken after the open, atomically: a burst of requests can never
    /// take more than `max_downloads`).
    async fn open_download(
        &self,
        rep: &Representation,
        share: Option<&ShareRecord>,
    ) -> CoreResult<BlobSource> {
        let source = self.open_content(rep).await?;
        if let (Some(id), false) = (rep.object, bodyless_request()) {
            if let Some(s) = share {
                if !self.take_share_slot(s)? {
                    return Err(super::shares::no_share());
                }
            }
            self.access.note_download(id, now_ms());
        }
        Ok(source)
    }

    /// The bytes of `rep`, through the worker's blob cache.
    pub async fn open_content(&self, rep: &Representation) -> CoreResult<BlobSource> {
        if let Some(text) = &rep.text {
            return Ok(BlobSource::Memory(text.clone()));
        }
        if let Some(ext) = &rep.external {
            return self.open_external(rep, ext).await;
        }
        let path = self.store.blob_path(&rep.sha);
        let opened = BlobCache::open(
            &self.blobs,
            &self.pool,
            BlobLocation::Managed(&path),
            &rep.sha,
            rep.size,
        )
        .await;
        match opened {
            Ok(source) => {
                if rep.state == State::Lost {
                    if let Some(id) = rep.object {
                        self.heal_in_background(id, rep.sha);
                    }
                }
                Ok(source)
            }
            Err(OpenError::Lost) => {
                if let (Some(id), State::Stored) = (rep.object, rep.state) {
                    tracing::warn!(%id, sha = %hex::encode(&rep.sha), "blob file is missing; marking the object lost");
                    self.mark_lost_in_background(id, rep.sha);
                }
                Err(lost())
            }
            Err(OpenError::Changed) => Err(CoreError::new(
                ErrorKind::NotFound,
                "changed",
                "the file changed since it was indexed; it is served again after the next scan",
            )),
            Err(OpenError::Corrupt(msg)) => {
                tracing::error!(sha = %hex::encode(&rep.sha), "{msg}");
                Err(CoreError::new(
                    ErrorKind::Internal,
                    "corrupt",
                    format!("{msg}; the content is not served under its hash. Run `ringbox check`"),
                ))
            }
            Err(OpenError::Io(e)) => Err(e.into()),
        }
    }

    /// A file indexed in place: checked (size and mtime) at open and at every use of
    /// the cached descriptor. Gone is 404 at once (not `lost`: the scanner owns the
    /// index, and the next scan removes the object); changed is 404 `changed`.
    async fn open_external(
        &self,
        rep: &Representation,
        ext: &ExternalLoc,
    ) -> CoreResult<BlobSource> {
        let opened = BlobCache::open(
            &self.blobs,
            &self.pool,
            BlobLocation::External {
                path: &ext.path,
                mtime_ns: ext.mtime_ns,
            },
            &ext.key,
            rep.size,
        )
        .await;
        match opened {
            Ok(source) => Ok(source),
            Err(OpenError::Lost) => Err(CoreError::new(
                ErrorKind::NotFound,
                "not_found",
                "the file was removed from disk; it leaves the index at the next scan",
            )),
            Err(OpenError::Changed) => Err(CoreError::new(
                ErrorKind::NotFound,
                "changed",
                "the file changed since it was indexed; it is served again after the next scan",
            )),
            Err(OpenError::Corrupt(msg)) => Err(CoreError::internal(msg)),
            Err(OpenError::Io(e)) => Err(e.into()),
        }
    }

    /// Mark the object lost, unless its content changed meanwhile (the writer checks
    /// that it still names `sha256`).
    fn mark_lost_in_background(&self, id: ObjectId, sha256: [u8; 32]) {
        let mark = self.store.writer().submit(Command::MarkLost { id, sha256 });
        monoio::spawn(async move {
            let _ = mark.await;
        });
    }

    /// The blob of a lost object is back (the same bytes were uploaded again): the
    /// object is stored again.
    fn heal_in_background(&self, id: ObjectId, sha256: [u8; 32]) {
        tracing::info!(%id, "blob file is back; the object is no longer lost");
        let heal = self.store.writer().submit(Command::Heal { id, sha256 });
        monoio::spawn(async move {
            let _ = heal.await;
        });
    }
}

/// The representation of a managed blob served by hash: `application/octet-stream`,
/// named by its hash, last modified when the blob was first stored.
fn blob_representation(sha: [u8; 32], size: u64, created_at_ms: i64) -> Representation {
    let hex_name = hex::encode(&sha);
    let secs = (created_at_ms / 1000).max(0) as u64;
    let lm = format_http_date(secs);
    let inline = ringbox_protocol::response::content_disposition(
        ringbox_protocol::response::DispositionKind::Inline,
        &hex_name,
    );
    Representation {
        sha,
        size,
        mime: "application/octet-stream".into(),
        etag: format!("\"{hex_name}\"").into(),
        last_modified_secs: secs,
        last_modified: std::str::from_utf8(&lm).unwrap_or_default().into(),
        filename: hex_name.into(),
        inline_disposition: inline.into(),
        text: None,
        object: None,
        state: State::Stored,
        external: None,
    }
}

thread_local! {
    /// Set while a request that sends no body (a `HEAD`) is being handled on this
    /// thread (see [`BodylessScope`]).
    static BODYLESS: Cell<bool> = const { Cell::new(false) };
}

/// Runs a request's handler knowing whether its response will carry a body: while the
/// wrapped future is polled, [`BodylessScope::is_active`] answers for it. The router
/// wraps every handler, so `serve` does not count a `HEAD` as a download whatever API
/// called it, without every API passing the method down. Correct on a thread-per-core
/// runtime: the flag is set for exactly the duration of one synchronous poll of this
/// request's future, so interleaved requests on the same worker never see each
/// other's value. Outside any scope (unit tests calling handlers directly) a request
/// sends its body.
#[derive(Debug)]
pub struct BodylessScope<F> {
    inner: F,
    bodyless: bool,
}

impl<F> BodylessScope<F> {
    pub fn new(bodyless: bool, inner: F) -> Self {
        BodylessScope { inner, bodyless }
    }
}

/// Whether the request being handled on this thread sends no body (see
/// [`BodylessScope`]).
pub fn bodyless_request() -> bool {
    BODYLESS.with(Cell::get)
}

impl<F: Future + Unpin> Future for BodylessScope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let before = BODYLESS.with(|b| b.replace(this.bodyless));
        // Restored even if the poll panics (the router catches handler panics).
        struct Restore(bool);
        impl Drop for Restore {
            fn drop(&mut self) {
                BODYLESS.with(|b| b.set(self.0));
            }
        }
        let _restore = Restore(before);
        Pin::new(&mut this.inner).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stream::MemoryStream;
    use crate::core::test_support::{admin, user, with_services};
    use crate::core::upload::{KeyedFile, NewObject};
    use sha2::Digest as _;

    fn new_object(name: &str) -> NewObject {
        NewObject {
            namespace: "default".into(),
            name: name.into(),
            ..NewObject::default()
        }
    }

    async fn upload(svc: &Local, caller: &Caller, name: &str, data: &[u8]) -> ObjectId {
        let mut body = MemoryStream::new(data.to_vec(), 4096);
        let blob = svc.store_stream(caller, &mut body).await.unwrap();
        svc.create_file(caller, new_object(name), blob, None)
            .await
            .unwrap()
            .id
    }

    async fn body_of(svc: &Local, rep: &Representation) -> CoreResult<Vec<u8>> {
        match svc.serve(rep, &Conditions::default()).await? {
            Served::Full(BlobSource::Memory(m)) => Ok(m.to_vec()),
            other => panic!("expected a 200 from memory, got {other:?}"),
        }
    }

    /// A blob by hash is served from the hot cache like an object by id, and every
    /// rule still holds: others do not see it, a file deleted behind our back is a 410
    /// at once, and a blob no object holds any more is gone.
    #[test]
    fn blob_by_hash_is_cached_and_checked_per_request() {
        with_services(|svc| async move {
            let (a, bob) = (admin(), user("bob"));
            let data = vec![7u8; 4096];
            let sha: [u8; 32] = sha2::Sha256::digest(&data).into();
            let id = upload(&svc, &a, "a.bin", &data).await;

            let first = svc.blob_content(&a, sha).unwrap();
            let second = svc.blob_content(&a, sha).unwrap();
            assert!(Rc::ptr_eq(&first, &second), "the second lookup is cached");
            assert_eq!(body_of(&svc, &second).await.unwrap(), data);
            assert_eq!(&*first.etag, format!("\"{}\"", hex::encode(&sha)));
            assert!(first.object.is_none());

            // Not bob's content (twice: the negative answer is cached too).
            for _ in 0..2 {
                let e = svc.blob_content(&bob, sha).unwrap_err();
                assert_eq!(e.kind, ErrorKind::NotFound);
            }
            let unknown = [9u8; 32];
            for _ in 0..2 {
                let e = svc.blob_content(&a, unknown).unwrap_err();
                assert_eq!(e.kind, ErrorKind::NotFound);
            }

            // The file vanishes behind ringbox's back: noticed on the next request
            // although the representation is cached.
            let path = svc.store.blob_path(&sha);
            std::fs::remove_file(&path).unwrap();
            let cached = svc.blob_content(&a, sha).unwrap();
            assert!(Rc::ptr_eq(&first, &cached));
            let e = body_of(&svc, &cached).await.unwrap_err();
            assert_eq!((e.kind, e.code), (ErrorKind::Gone, "lost"));
            std::fs::write(&path, &data).unwrap();
            assert_eq!(body_of(&svc, &cached).await.unwrap(), data);

            // The only object with that content goes: so does the blob by hash.
            svc.delete_object(&a, id).await.unwrap();
            let e = svc.blob_content(&a, sha).unwrap_err();
            assert_eq!(e.kind, ErrorKind::NotFound);
        });
    }

    /// A user sees a blob by hash once they own an object with that content, at once
    /// (the cached "does not own" answer goes with the write).
    #[test]
    fn blob_ownership_follows_writes() {
        with_services(|svc| async move {
            let (a, bob) = (admin(), user("bob"));
            let data = b"shared bytes".repeat(100);
            let sha: [u8; 32] = sha2::Sha256::digest(&data).into();
            upload(&svc, &a, "a.bin", &data).await;
            assert_eq!(
                svc.blob_content(&bob, sha).unwrap_err().kind,
                ErrorKind::NotFound
            );
            let mine = upload(&svc, &bob, "b.bin", &data).await;
            assert_eq!(
                body_of(&svc, &svc.blob_content(&bob, sha).unwrap())
                    .await
                    .unwrap(),
                data
            );
            svc.delete_object(&bob, mine).await.unwrap();
            assert_eq!(
                svc.blob_content(&bob, sha).unwrap_err().kind,
                ErrorKind::NotFound
            );
        });
    }

    /// Content by alias (RhinoBox's `hash:`) comes from the hot cache, and access and
    /// expiry are still decided at every request.
    #[test]
    fn content_by_alias_is_cached_and_checked_per_request() {
        with_services(|svc| async move {
            let (a, bob) = (admin(), user("bob"));
            let data = vec![3u8; 2000];
            let mut body = MemoryStream::new(data.clone(), 4096);
            let blob = svc.store_stream(&a, &mut body).await.unwrap();
            let new = NewObject {
                expires_at_ms: Some(now_ms() + 400),
                ..new_object("k.bin")
            };
            let created = svc
                .create_files_keyed(
                    &a,
                    vec![KeyedFile {
                        new,
                        blob,
                        claimed_type: None,
                        key: "test:key".into(),
                        aliases: Vec::new(),
                    }],
                )
                .await;
            assert!(created[0].is_ok());

            let first = svc.object_content_by_alias(&a, "test:key").unwrap();
            let second = svc.object_content_by_alias(&a, "test:key").unwrap();
            assert!(Rc::ptr_eq(&first, &second), "the second lookup is cached");
            assert_eq!(body_of(&svc, second.rep()).await.unwrap(), data);
            for _ in 0..2 {
                let e = svc.object_content_by_alias(&bob, "test:key").unwrap_err();
                assert_eq!(e.kind, ErrorKind::NotFound);
                let e = svc.object_content_by_alias(&a, "test:other").unwrap_err();
                assert_eq!(e.kind, ErrorKind::NotFound);
            }

            // Expired while cached: not served.
            monoio::time::sleep(std::time::Duration::from_millis(500)).await;
            let e = svc.object_content_by_alias(&a, "test:key").unwrap_err();
            assert_eq!(e.kind, ErrorKind::NotFound);
        });
    }
}
