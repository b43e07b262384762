//! Uploads: bytes streamed into the blob store, and the objects made from them.
//!
//! A body is streamed into a temp file under `<data>/tmp/` ([`BlobWriter`]): each piece
//! is hashed and appended with io_uring writes, so memory stays flat whatever the size.
//! At the end the temp file is fsynced (unless `--durability none`) and becomes a
//! [`TempBlob`]; committing it hands it to the writer thread, which links it into
//! `blobs/` (or drops it when the blob already exists: de-duplication), commits the
//! record, and only then does the caller answer 2xx. A `TempBlob` that is dropped
//! without being committed removes its file, so no error path leaks space.
//!
//! Limits enforced while streaming, before the bytes reach the disk:
//! - the per-file size limit (`--max-file-size`): 413, the partial file removed;
//! - what is left of the uploader's quota: 413 `quota_exceeded` when the quota was the
//!   tighter bound ([`Local::limit_exceeded`]), checked again by the writer at commit;
//! - a free-space reserve on the data volume (1% of it, 2 MiB to 256 MiB), so a full
//!   disk can still commit the deletes that empty it: 507.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;

use monoio::fs::File;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::access::Caller;
use super::error::{CoreError, CoreResult};
use super::media::sniff;
use super::naming;
use super::objects::blank_record;
use super::stream::ByteStream;
use super::Local;
use crate::metrics;
use crate::store::{Command, Durability, Kind, NewBlob, ObjectId, ObjectRecord, Reply, State};
use crate::util::time::now_ms;

/// Temp-file writes are batched into buffers of this size.
const WRITE_BUF: usize = 256 * 1024;
/// Space kept free on the data volume for metadata commits: 1% of the volume,
/// at least 2 MiB and at most 256 MiB.
const MIN_RESERVE: u64 = 2 << 20;
const MAX_RESERVE: u64 = 256 << 20;

/// What a new object is, apart from its bytes.
#[derive(Clone, Debug, Default)]
pub struct NewObject {
    pub namespace: String,
    pub name: String,
    pub tags: Vec<String>,
    pub metadata: Map<String, Value>,
    /// When the object expires (from a client's ttl: `core::expiry::expires_at_from_ttl`);
    /// `None` = the namespace's default ttl, if any.
    pub expires_at_ms: Option<i64>,
    /// Refuse (409) when another object already has this (namespace, name).
    pub unique_name: bool,
    /// Unique secondary names the object gets ("scheme:value", e.g. a short id);
    /// refused (409) when another object holds one.
    pub aliases: Vec<String>,
}

/// A file to store unless an object already holds `key`, an alias that names its
/// content (RhinoBox's hash addressing: `rhino:<sha256>`): see
/// [`Local::create_files_keyed`].
#[derive(Debug)]
pub struct KeyedFile {
    pub new: NewObject,
    pub blob: TempBlob,
    /// The client's `Content-Type` for the bytes, if any.
    pub claimed_type: Option<String>,
    /// The alias naming the content; a created object gets it.
    pub key: String,
    /// Further aliases a created object gets (`path:<stored path>`).
    pub aliases: Vec<String>,
}

/// The object of a [`KeyedFile`]: the one created, or the one that already held the
/// key (`existed`; the upload was dropped).
#[derive(Debug, Clone)]
pub struct Keyed {
    pub record: ObjectRecord,
    pub existed: bool,
}

/// A fully written, fsynced temp file with its hash and size, not yet committed.
/// Dropping it removes the file.
#[derive(Debug)]
pub struct TempBlob {
    path: Option<PathBuf>,
    pub sha256: [u8; 32],
    pub size: u64,
    /// The first bytes of the content, for type detection.
    pub head: Vec<u8>,
}

impl TempBlob {
    /// Hand the file over to the writer (which then owns it, whatever happens).
    fn into_new_blob(mut self) -> NewBlob {
        NewBlob {
            tmp_path: self.path.take().unwrap_or_default(),
            sha256: self.sha256,
            size: self.size,
        }
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            remove_later(path);
        }
    }
}

/// Remove a temp file without blocking: an io_uring unlink in a task of its own.
fn remove_later(path: PathBuf) {
    monoio::spawn(async move { remove_tmp(&path).await });
}

async fn remove_tmp(path: &std::path::Path) {
    if let Err(e) = monoio::fs::remove_file(path).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a temp file");
        }
    }
}

/// A blob being written: temp file + running SHA-256 + size.
#[derive(Debug)]
pub struct BlobWriter {
    file: Option<File>,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    buf: Vec<u8>,
    head: Vec<u8>,
    limit: Option<u64>,
    durability: Durability,
}

impl BlobWriter {
    /// A new temp file; `limit` is the most bytes it may receive (413 beyond).
    pub async fn create(svc: &Local, limit: Option<u64>) -> CoreResult<BlobWriter> {
        let path = svc.store.tmp_path();
        let file = File::create(&path).await.map_err(|e| {
            tracing::error!(path = %path.display(), error = %e, "cannot create a temp file");
            CoreError::from(e)
        })?;
        Ok(BlobWriter {
            file: Some(file),
            path,
            hasher: Sha256::new(),
            size: 0,
            buf: Vec::with_capacity(WRITE_BUF),
            head: Vec::with_capacity(sniff::SNIFF_LEN),
            limit,
            durability: svc.store.durability(),
        })
    }

    /// Bytes received so far.
    pub fn len(&self) -> u64 {
        self.size + self.buf.len() as u64
    }

    pub async fn write(&mut self, mut data: &[u8]) -> CoreResult<()> {
        if let Some(limit) = self.limit {
            if self.len() + data.len() as u64 > limit {
                return Err(file_too_large(limit));
            }
        }
        if self.head.len() < sniff::SNIFF_LEN {
            let n = (sniff::SNIFF_LEN - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..n]);
        }
        self.hasher.update(data);
        while !data.is_empty() {
            let n = (WRITE_BUF - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == WRITE_BUF {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> CoreResult<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(file) = &self.file else {
            return Err(CoreError::internal("write after close"));
        };
        // Leave a reserve on the data volume: LMDB needs free pages to commit anything,
        // deletes included, so uploads must never take the last bytes (else a full disk
        // could not be emptied through the API).
        if let Ok((free, total)) = crate::sys::fs_space(file) {
            let reserve = (total / 100).clamp(MIN_RESERVE, MAX_RESERVE);
            if free < reserve + self.buf.len() as u64 {
                return Err(CoreError::full());
            }
        }
        let buf = std::mem::take(&mut self.buf);
        let n = buf.len() as u64;
        let (res, mut buf) = file.write_all_at(buf, self.size).await;
        res?;
        self.size += n;
        buf.clear();
        self.buf = buf;
        Ok(())
    }

    /// Flush, fsync (with fsync durability) and close: the temp file is complete.
    pub async fn finish(mut self) -> CoreResult<TempBlob> {
        let flushed = self.flush().await;
        let file = self.file.take();
        let synced = match (flushed, self.durability, &file) {
            (Err(e), _, _) => Err(e),
            (Ok(()), Durability::Fsync, Some(f)) => f.sync_all().await.map_err(CoreError::from),
            (Ok(()), _, _) => Ok(()),
        };
        if let Some(f) = file {
            let _ = f.close().await;
        }
        let blob = TempBlob {
            path: Some(std::mem::take(&mut self.path)),
            sha256: self.hasher.clone().finalize().into(),
            size: self.size,
            head: std::mem::take(&mut self.head),
        };
        // On error the TempBlob is dropped here, which removes the file.
        synced.map(|()| blob)
    }

    /// Close and delete the temp file.
    pub async fn abort(mut self) {
        if let Some(f) = self.file.take() {
            let _ = f.close().await;
        }
        remove_tmp(&std::mem::take(&mut self.path)).await;
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Dropped mid-stream (a failed request, a panic): the file goes.
        if !self.path.as_os_str().is_empty() {
            remove_later(std::mem::take(&mut self.path));
        }
    }
}

/// 413 for the per-file limit.
pub fn file_too_large(limit: u64) -> CoreError {
    CoreError::too_large(
        "file_too_large",
        format!("the file is larger than the limit of {limit} bytes per file (max_file_size)"),
    )
}

fn count_upload(size: u64) {
    let m = metrics::get();
    m.uploads.fetch_add(1, Relaxed);
    m.upload_bytes.fetch_add(size, Relaxed);
}

impl Local {
    /// The most bytes one file of `caller` may have now: the per-file limit, and what
    /// is left of their quota (the writer checks the quota again at commit, so
    /// concurrent uploads cannot overshoot it).
    pub fn file_limit(&self, caller: &Caller) -> Option<u64> {
        let left = self.quota_left(caller).map(|(left, _)| left);
        match (self.settings.max_file_size, left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `(bytes left, quota)` for a signed-in caller with a quota.
    fn quota_left(&self, caller: &Caller) -> Option<(u64, u64)> {
        let user = self.store.get_user(caller.user()?).ok()??;
        let quota = user.quota_bytes.or(self.settings.default_quota)?;
        Some((quota.saturating_sub(user.usage_bytes), quota))
    }

    /// The 413 for an upload of `caller` that went past [`Local::file_limit`] (`e`,
    /// the stream's `file_too_large`): the quota's when the quota was the tighter
    /// bound, so the client is told what to do (delete something, not send less).
    pub fn limit_exceeded(&self, caller: &Caller, e: CoreError) -> CoreError {
        if e.code != "file_too_large" {
            return e;
        }
        match self.quota_left(caller) {
            Some((left, quota)) if self.settings.max_file_size.is_none_or(|m| left < m) => {
                CoreError::too_large(
                    "quota_exceeded",
                    format!(
                        "the file is larger than the {left} bytes left of your quota of {quota} bytes; delete something first"
                    ),
                )
            }
            _ => e,
        }
    }

    /// Refuse before reading a body whose declared length is over the per-file limit
    /// or the caller's quota.
    pub fn check_declared_size(&self, caller: &Caller, declared: Option<u64>) -> CoreResult<()> {
        let Some(n) = declared else {
            return Ok(());
        };
        if let Some(limit) = self.settings.max_file_size {
            if n > limit {
                return Err(file_too_large(limit));
            }
        }
        if let Some((left, quota)) = self.quota_left(caller) {
            if n > left {
                return Err(super::error::quota_exceeded(quota, quota - left, n));
            }
        }
        Ok(())
    }

    /// Stream a whole body into a temp blob.
    pub async fn store_stream(
        &self,
        caller: &Caller,
        body: &mut dyn ByteStream,
    ) -> CoreResult<TempBlob> {
        let mut bw = BlobWriter::create(self, self.file_limit(caller)).await?;
        loop {
            match body.next_chunk().await {
                Ok(Some(chunk)) => {
                    if let Err(e) = bw.write(chunk).await {
                        bw.abort().await;
                        return Err(self.limit_exceeded(caller, e));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    bw.abort().await;
                    return Err(e);
                }
            }
        }
        bw.finish().await
    }

    /// The record of a new object, with the naming rules applied (an empty name is
    /// replaced by the object's id).
    fn new_record(&self, caller: &Caller, kind: Kind, new: &NewObject) -> CoreResult<ObjectRecord> {
        let mut rec = blank_record(uuid::Uuid::now_v7(), now_ms());
        rec.kind = kind;
        rec.name = if new.name.is_empty() {
            rec.id.to_string()
        } else {
            naming::name(&new.name)?
        };
        rec.namespace = naming::namespace(&new.namespace)?;
        rec.tags = naming::tags(new.tags.clone())?;
        rec.metadata_json =
            Value::Object(naming::metadata(Value::Object(new.metadata.clone()))?).to_string();
        rec.owner = Some(caller.owner_id());
        rec.aliases = new.aliases.clone();
        rec.expires_at_ms =
            self.default_expiry(&rec.namespace, new.expires_at_ms, rec.created_at_ms);
        Ok(rec)
    }

    fn check_create(&self, caller: &Caller) -> CoreResult<()> {
        if self.settings.policy.may_create(caller) {
            Ok(())
        } else {
            Err(CoreError::unauthorized(
                "creating objects needs a token: send `Authorization: Bearer <token>`",
            ))
        }
    }

    /// A file object from a finished temp blob. `claimed_type` is the client's
    /// `Content-Type` for the bytes, if any.
    pub async fn create_file(
        &self,
        caller: &Caller,
        new: NewObject,
        blob: TempBlob,
        claimed_type: Option<&str>,
    ) -> CoreResult<ObjectRecord> {
        let mut out = self
            .create_files(caller, vec![(new, blob, claimed_type.map(str::to_string))])
            .await;
        out.pop()
            .unwrap_or_else(|| Err(CoreError::internal("no result")))
    }

    /// Several file objects, queued together so they share one group commit. Each
    /// gets its own result (one failure does not undo the others).
    pub async fn create_files(
        &self,
        caller: &Caller,
        files: Vec<(NewObject, TempBlob, Option<String>)>,
    ) -> Vec<CoreResult<ObjectRecord>> {
        if let Err(e) = self.check_create(caller) {
            return files.iter().map(|_| Err(e.clone())).collect();
        }
        let actor = caller.owner_id();
        let mut waits = Vec::with_capacity(files.len());
        for (new, blob, claim) in files {
            let mut rec = match self.new_record(caller, Kind::File, &new) {
                Ok(r) => r,
                Err(e) => {
                    waits.push(Err(e));
                    continue;
                }
            };
            rec.mime_type = sniff::detect(&blob.head, &rec.name, claim.as_deref()).into_owned();
            rec.size = blob.size;
            rec.sha256 = Some(blob.sha256);
            rec.state = State::Stored;
            let size = blob.size;
            let cmd = Command::Create {
                record: rec,
                blob: Some(blob.into_new_blob()),
                unique_name: new.unique_name,
            };
            waits.push(Ok((self.store.writer().submit_as(cmd, &actor), size)));
        }
        let mut out = Vec::with_capacity(waits.len());
        for wait in waits {
            let (wait, size) = match wait {
                Ok(w) => w,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            out.push(match wait.await {
                Ok(Reply::Object(rec)) => {
                    count_upload(size);
                    // Images: probed and thumbnailed in the background, after the 2xx.
                    self.after_content_commit(&rec);
                    Ok(rec)
                }
                Ok(other) => Err(CoreError::internal(format!(
                    "unexpected writer reply {other:?}"
                ))),
                Err(e) => Err(e.into()),
            });
        }
        out
    }

    /// Files addressed by a content key: each is stored as a new object (with the key
    /// and its aliases) unless an object already holds the key, which is then returned
    /// with `existed` (the upload is dropped: one object per key). The creates that
    /// remain share one group commit; two files with the same key in one call, or in
    /// concurrent calls, give one object (the writer refuses the second alias, which is
    /// then looked up). An existing object the caller may not read is a `Conflict`
    /// (the key space is shared: see the RhinoBox notes in the README).
    pub async fn create_files_keyed(
        &self,
        caller: &Caller,
        files: Vec<KeyedFile>,
    ) -> Vec<CoreResult<Keyed>> {
        if let Err(e) = self.check_create(caller) {
            return files.iter().map(|_| Err(e.clone())).collect();
        }
        // One per file, moved once: boxing the finished result would cost an
        // allocation for nothing.
        #[allow(clippy::large_enum_variant)]
        enum Step<F> {
            Done(CoreResult<Keyed>),
            Wait(F, String, u64),
        }
        let mut steps = Vec::with_capacity(files.len());
        for f in files {
            match self.existing_key(caller, &f.key) {
                Ok(Some(rec)) => {
                    steps.push(Step::Done(Ok(Keyed {
                        record: rec,
                        existed: true,
                    })));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    steps.push(Step::Done(Err(e)));
                    continue;
                }
            }
            let mut rec = match self.new_record(caller, Kind::File, &f.new) {
                Ok(r) => r,
                Err(e) => {
                    steps.push(Step::Done(Err(e)));
                    continue;
                }
            };
            rec.mime_type =
                sniff::detect(&f.blob.head, &rec.name, f.claimed_type.as_deref()).into_owned();
            rec.size = f.blob.size;
            rec.sha256 = Some(f.blob.sha256);
            rec.state = State::Stored;
            let given = std::mem::take(&mut rec.aliases);
            rec.aliases = std::iter::once(f.key.clone())
                .chain(f.aliases)
                .chain(given)
                .collect();
            let size = f.blob.size;
            let cmd = Command::Create {
                record: rec,
                blob: Some(f.blob.into_new_blob()),
                unique_name: f.new.unique_name,
            };
            steps.push(Step::Wait(self.store.writer().submit(cmd), f.key, size));
        }
        let mut out = Vec::with_capacity(steps.len());
        for step in steps {
            out.push(match step {
                Step::Done(r) => r,
                Step::Wait(wait, key, size) => match wait.await {
                    Ok(Reply::Object(record)) => {
                        count_upload(size);
                        Ok(Keyed {
                            record,
                            existed: false,
                        })
                    }
                    Ok(other) => Err(CoreError::internal(format!(
                        "unexpected writer reply {other:?}"
                    ))),
                    // Lost a race for the key: the winner is the object.
                    Err(crate::store::StoreError::Conflict(m)) => {
                        match self.existing_key(caller, &key) {
                            Ok(Some(record)) => Ok(Keyed {
                                record,
                                existed: true,
                            }),
                            Ok(None) => Err(CoreError::conflict(m)),
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e.into()),
                },
            });
        }
        out
    }

    /// The object holding content key `key`, if any; `Conflict` when the caller may
    /// not read it.
    fn existing_key(&self, caller: &Caller, key: &str) -> CoreResult<Option<ObjectRecord>> {
        match self.store.get_by_alias(key)? {
            None => Ok(None),
            Some(rec) if self.settings.policy.may_read(caller, &rec) => Ok(Some(rec)),
            Some(_) => Err(CoreError::conflict(
                "this content is already stored by another user; its hash names their file",
            )),
        }
    }

    /// A text object, its content kept in the record.
    pub async fn create_text(
        &self,
        caller: &Caller,
        new: NewObject,
        content: String,
    ) -> CoreResult<ObjectRecord> {
        self.check_create(caller)?;
        let mut rec = self.new_record(caller, Kind::Text, &new)?;
        rec.size = content.len() as u64;
        rec.sha256 = Some(Sha256::digest(content.as_bytes()).into());
        rec.mime_type = "text/plain; charset=utf-8".into();
        rec.state = State::Stored;
        rec.content = Some(content);
        self.commit_object_as(
            caller,
            Command::Create {
                record: rec,
                blob: None,
                unique_name: new.unique_name,
            },
        )
        .await
    }

    /// A file object without content yet (`pending`).
    pub async fn create_pending(
        &self,
        caller: &Caller,
        new: NewObject,
    ) -> CoreResult<ObjectRecord> {
        self.check_create(caller)?;
        let mut rec = self.new_record(caller, Kind::File, &new)?;
        // No bytes yet: the name decides (the content's type is detected when it comes).
        rec.mime_type = sniff::detect(&[], &rec.name, None).into_owned();
        self.commit_object_as(
            caller,
            Command::Create {
                record: rec,
                blob: None,
                unique_name: new.unique_name,
            },
        )
        .await
    }

    /// Set or replace a file object's bytes.
    pub async fn set_content(
        &self,
        caller: &Caller,
        id: ObjectId,
        blob: TempBlob,
        claimed_type: Option<&str>,
    ) -> CoreResult<ObjectRecord> {
        let existing = self.object_for_write(caller, id)?;
        if existing.kind == Kind::Text {
            return Err(CoreError::new(
                super::ErrorKind::Conflict,
                "conflict",
                "a text object has no file content; PATCH it instead",
            ));
        }
        let mime = sniff::detect(&blob.head, &existing.name, claimed_type).into_owned();
        let size = blob.size;
        let rec = self
            .commit_object_as(
                caller,
                Command::SetContent {
                    id,
                    blob: blob.into_new_blob(),
                    mime_type: Some(mime),
                    now_ms: now_ms(),
                },
            )
            .await?;
        count_upload(size);
        self.after_content_commit(&rec);
        Ok(rec)
    }

    /// Submit a command of `caller` (the actor of its events) that answers with a
    /// record.
    pub(crate) async fn commit_object_as(
        &self,
        caller: &Caller,
        cmd: Command,
    ) -> CoreResult<ObjectRecord> {
        match self
            .store
            .writer()
            .submit_as(cmd, &caller.owner_id())
            .await?
        {
            Reply::Object(rec) => Ok(rec),
            other => Err(CoreError::internal(format!(
                "unexpected writer reply {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stream::MemoryStream;
    use crate::core::test_support::{admin, with_services};

    #[test]
    fn streams_hashes_and_dedups() {
        with_services(|svc| async move {
            let caller = admin();
            let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
            let mut body = MemoryStream::new(data.clone(), 7_001);
            let blob = svc.store_stream(&caller, &mut body).await.unwrap();
            assert_eq!(blob.size, data.len() as u64);
            let want: [u8; 32] = Sha256::digest(&data).into();
            assert_eq!(blob.sha256, want);
            let new = NewObject {
                namespace: "default".into(),
                name: "a.bin".into(),
                ..NewObject::default()
            };
            let rec = svc
                .create_file(&caller, new.clone(), blob, None)
                .await
                .unwrap();
            assert_eq!(rec.size, data.len() as u64);
            assert_eq!(rec.state, State::Stored);
            // The same bytes again: one blob, two objects.
            let mut body = MemoryStream::new(data.clone(), 65_536).undeclared();
            let blob = svc.store_stream(&caller, &mut body).await.unwrap();
            let rec2 = svc.create_file(&caller, new, blob, None).await.unwrap();
            assert_ne!(rec.id, rec2.id);
            let b = svc.store.get_blob(&want).unwrap().unwrap();
            assert_eq!(b.refcount, 2);
            // Nothing is left in tmp/.
            let tmp = svc.store.data_dir().join("tmp");
            monoio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
        });
    }

    #[test]
    fn file_limit_stops_the_stream_and_removes_the_file() {
        let settings = crate::core::Settings {
            max_file_size: Some(1000),
            ..crate::core::Settings::default()
        };
        crate::core::test_support::with_settings(settings, |local| async move {
            let caller = admin();
            let mut body = MemoryStream::new(vec![1u8; 5000], 600).undeclared();
            let err = local.store_stream(&caller, &mut body).await.unwrap_err();
            assert_eq!(err.kind, crate::core::ErrorKind::TooLarge);
            assert!(err.message.contains("1000"), "{}", err.message);
            assert!(local.check_declared_size(&caller, Some(1001)).is_err());
            assert!(local.check_declared_size(&caller, Some(1000)).is_ok());
            monoio::time::sleep(std::time::Duration::from_millis(50)).await;
            let tmp = local.store.data_dir().join("tmp");
            assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
        });
    }
}
