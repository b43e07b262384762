//! The writer thread: the only place that opens LMDB write transactions and the only
//! place that changes the blob namespace (`blobs/`).
//!
//! Why one thread: LMDB admits one write transaction at a time (a second blocks on a
//! mutex) and a write transaction must commit on the thread that opened it; a commit
//! that fsyncs would stall a whole worker core. And because linking, unlinking and
//! garbage-collecting blob files all happen here, GC can never race an upload that is
//! linking the same blob.
//!
//! Group commit: the thread blocks on its queue, then drains up to `max_batch` queued
//! commands into ONE write transaction: many uploads, one LMDB fsync. For each command
//! it validates first (reads only), then does its file effect (rename the upload from
//! `tmp/` into `blobs/ab/<hex>`, or drop the temp file when the blob is already stored),
//! then its LMDB writes. A command that fails validation gets its own error and changes
//! nothing, so the others go on. After the last command, with `Durability::Fsync`, each
//! `blobs/ab` directory that received a new file is fsynced once; then the transaction
//! commits; then the blob files whose last reference the batch dropped are unlinked;
//! then every caller gets its reply through a oneshot (a monoio task awaiting it is
//! woken from this thread).
//!
//! If an LMDB write fails midway (the transaction is then unusable: `MDB_MAP_FULL`,
//! `MDB_TXN_FULL`, ...) or the commit fails (ENOSPC, EIO), the transaction is aborted and
//! every command of the batch gets the error (`Full` for ENOSPC and map-full). Blob
//! files this batch linked and that no committed record references are removed again;
//! a file that a committed record does reference is never removed (they are checked
//! against the committed state, not assumed).
//!
//! Blob refcounts: a `BlobRecord`'s refcount is the number of file records whose
//! `sha256` names it. When it reaches zero, the record is deleted in the same
//! transaction and the file is unlinked after the commit, unless a later command of the
//! same batch linked the same content again (checked after the commit). A crash between
//! commit and unlink leaves an orphan file, which GC removes.
//!
//! GC runs on this thread too, one `blobs/ab` directory per step, interleaved with
//! batches so uploads wait at most one directory scan. A run deletes blob records with
//! refcount 0 (none exist unless a crash or a bug left them) and removes files under
//! `blobs/ab/` named like a blob that have no blob record. Files not named like a blob
//! are left alone (they are not ours; `check` reports them).
//!
//! The queue is unbounded: a queued command is small (the upload's bytes are already on
//! disk), and the HTTP layer bounds connections.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::fs;
use std::future::Future;
use std::io;
use std::mem;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use futures_channel::oneshot;
use heed::{Env, RwTxn, WithoutTls};
use serde_json::{Map, Value};

use super::blobs::{fsync_dir, parse_blob_file_name, remove_file_quiet, sha256_hex, Layout};
use super::records::{self, BlobRecord, Kind, ObjectRecord, State, TokenRecord};
use super::{
    adjust_blob_bytes, io_context, keys, now_ms, Dbs, Durability, ObjectId, Sha256, StoreError,
};

/// A fully written temp file under `<data>/tmp/`, fsynced by the caller (unless
/// `Durability::None`). Once submitted, the writer owns the file: it renames it into
/// `blobs/` or removes it, whatever the outcome.
#[derive(Debug)]
pub struct NewBlob {
    pub tmp_path: PathBuf,
    pub sha256: Sha256,
    pub size: u64,
}

/// A change for the writer thread.
#[derive(Debug)]
pub enum Command {
    /// Insert a new object. `Kind::File` with `blob: Some` stores the upload (the record's
    /// `sha256`, `size` and `state` are set from it: `Stored`); with `blob: None` and
    /// `sha256: Some` it references an already stored blob (`Invalid` if there is none);
    /// with neither it is a pending file. `Kind::Text` keeps `content` inline and must not
    /// have a blob. An existing id is `Conflict`; a NUL or an over-long name or namespace,
    /// or `metadata_json` that is not a JSON object, is `Invalid`.
    Create {
        record: ObjectRecord,
        blob: Option<NewBlob>,
    },
    /// Set or replace a file object's content (pending -> stored). Sets `size`, `sha256`,
    /// `mime_type` (if given), `state = Stored`, `updated_at_ms`. Text object ->
    /// `Conflict`; unknown id -> `NotFound` (and the temp file is removed).
    SetContent {
        id: ObjectId,
        blob: NewBlob,
        mime_type: Option<String>,
        now_ms: i64,
    },
    /// Rename / move namespace (updates the names index), replace tags, merge metadata
    /// (top-level keys; a JSON null removes the key). Sets `updated_at_ms`.
    Patch {
        id: ObjectId,
        patch: ObjectPatch,
        now_ms: i64,
    },
    /// Delete the record, its index entry, and its blob reference (unlink at 0).
    Delete { id: ObjectId },
    /// Mark a file object `Lost` (its blob file vanished). It keeps its blob reference,
    /// so uploading the same bytes again restores the file.
    MarkLost { id: ObjectId },
    /// Collect unreferenced blobs (see the module docs). Replies `Reply::Gc`.
    Gc,
    /// Store a token (key: SHA-256 of the token text, see `token_sha256`). Replies `Done`.
    #[allow(dead_code)] // token management is not wired to a route or CLI yet
    PutToken {
        token_sha256: Sha256,
        record: TokenRecord,
    },
    /// Revoke a token. Replies `Deleted`, or `NotFound`.
    #[allow(dead_code)]
    DeleteToken { token_sha256: Sha256 },
}

impl Command {
    /// Removes the temp file this command carries (when it will not be linked).
    fn discard_tmp(&self) {
        let tmp = match self {
            Command::Create { blob: Some(b), .. } | Command::SetContent { blob: b, .. } => {
                &b.tmp_path
            }
            _ => return,
        };
        if let Err(e) = remove_file_quiet(tmp) {
            tracing::warn!(path = %tmp.display(), error = %e, "cannot remove temp file");
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Command::Create { .. } => "create",
            Command::SetContent { .. } => "set_content",
            Command::Patch { .. } => "patch",
            Command::Delete { .. } => "delete",
            Command::MarkLost { .. } => "mark_lost",
            Command::Gc => "gc",
            Command::PutToken { .. } => "put_token",
            Command::DeleteToken { .. } => "delete_token",
        }
    }
}

/// The changes of a PATCH; `None` fields are left as they are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectPatch {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub tags: Option<Vec<String>>,
    pub metadata: Option<Map<String, Value>>,
}

/// What a committed command answers.
// The record is returned by value (the API is fixed and a reply is moved once, into a
// oneshot), so the size difference between variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// The record as committed (Create, SetContent, Patch, MarkLost).
    Object(ObjectRecord),
    /// Delete, DeleteToken.
    Deleted,
    Gc(GcReport),
    /// PutToken.
    Done,
}

/// What a GC run removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: u64,
    pub bytes_freed: u64,
}

/// Counters of the writer thread, for `/metrics` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(dead_code)] // see `WriterHandle::stats`
pub struct WriterStats {
    /// Write transactions committed for command batches.
    pub batches: u64,
    /// Commands answered (successfully or not) in committed batches.
    pub commands: u64,
    /// Batches whose transaction failed (every command got the error).
    pub failed_batches: u64,
    /// Completed GC runs.
    pub gc_runs: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    commands: AtomicU64,
    failed_batches: AtomicU64,
    gc_runs: AtomicU64,
}

type ReplyResult = Result<Reply, StoreError>;

enum ReplyTo {
    Async(oneshot::Sender<ReplyResult>),
    Blocking(crossbeam_channel::Sender<ReplyResult>),
}

impl ReplyTo {
    /// A caller that went away (dropped its future) is not an error.
    fn send(self, r: ReplyResult) {
        match self {
            ReplyTo::Async(tx) => {
                let _ = tx.send(r);
            }
            ReplyTo::Blocking(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

struct Job {
    cmd: Command,
    reply: ReplyTo,
}

// A message is moved once into the queue; boxing the job would cost an allocation per
// command to save queue slot space that is only used while commands wait.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Job(Job),
    /// The GC pass `Store::open` starts; nobody waits for it.
    BackgroundGc,
    /// The last `Store` handle is gone: finish what is queued, then stop.
    Shutdown,
}

/// The queue to the writer thread. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct WriterHandle {
    tx: Sender<Msg>,
    counters: Arc<Counters>,
}

impl fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriterHandle")
            .field("queued", &self.tx.len())
            .finish()
    }
}

impl WriterHandle {
    /// Queues a command; the future resolves once its batch has committed (or failed).
    /// Dropping the future does not cancel the command.
    pub fn submit(
        &self,
        cmd: Command,
    ) -> impl Future<Output = Result<Reply, StoreError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self.enqueue(cmd, ReplyTo::Async(tx));
        async move {
            if !queued {
                return Err(StoreError::Closed);
            }
            rx.await.unwrap_or(Err(StoreError::Closed))
        }
    }

    /// Blocking variant for CLI tools and tests. Never call it from the writer thread
    /// or from an async task (it blocks the thread until the batch commits).
    pub fn submit_blocking(&self, cmd: Command) -> Result<Reply, StoreError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if !self.enqueue(cmd, ReplyTo::Blocking(tx)) {
            return Err(StoreError::Closed);
        }
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// The number of committed batches: changes whenever anything was committed.
    /// Read caches key their entries on it (see `server::hot_cache`).
    pub fn generation(&self) -> u64 {
        self.counters.batches.load(Ordering::Acquire)
    }

    /// Commands waiting in the queue.
    // Store API the daemon does not call yet; allowed so the binary crate's dead-code
    // lint stays quiet until it does.
    #[allow(dead_code)]
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    #[allow(dead_code)]
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            commands: self.counters.commands.load(Ordering::Relaxed),
            failed_batches: self.counters.failed_batches.load(Ordering::Relaxed),
            gc_runs: self.counters.gc_runs.load(Ordering::Relaxed),
        }
    }

    fn enqueue(&self, cmd: Command, reply: ReplyTo) -> bool {
        match self.tx.send(Msg::Job(Job { cmd, reply })) {
            Ok(()) => true,
            Err(crossbeam_channel::SendError(msg)) => {
                if let Msg::Job(job) = msg {
                    job.cmd.discard_tmp();
                }
                false
            }
        }
    }

    pub(crate) fn start_background_gc(&self) {
        let _ = self.tx.send(Msg::BackgroundGc);
    }

    pub(crate) fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
    }
}

/// Starts the writer thread.
pub(crate) fn start(
    env: Env<WithoutTls>,
    dbs: Dbs,
    layout: Layout,
    durability: Durability,
    max_batch: usize,
) -> Result<(WriterHandle, JoinHandle<()>), StoreError> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let counters = Arc::new(Counters::default());
    let writer = Writer {
        env,
        dbs,
        layout,
        durability,
        max_batch,
        counters: counters.clone(),
    };
    let thread = thread::Builder::new()
        .name("ringbox-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| io_context(e, "cannot start the writer thread"))?;
    Ok((WriterHandle { tx, counters }, thread))
}

struct Writer {
    env: Env<WithoutTls>,
    dbs: Dbs,
    layout: Layout,
    durability: Durability,
    max_batch: usize,
    counters: Arc<Counters>,
}

/// How a command failed.
enum Fail {
    /// Before any change to the transaction: only this command fails.
    Rejected(StoreError),
    /// The transaction is unusable: the whole batch fails.
    Fatal(StoreError),
}

fn rejected(e: impl Into<StoreError>) -> Fail {
    Fail::Rejected(e.into())
}

fn fatal(e: impl Into<StoreError>) -> Fail {
    Fail::Fatal(e.into())
}

/// What a batch must do around its commit.
struct Batch {
    now_ms: i64,
    /// `blobs/ab` directories that received a file: fsynced once before the commit.
    dirty_dirs: BTreeSet<u8>,
    /// Blobs linked by this batch with no blob record before: removed again if the
    /// commit fails (after checking the committed state).
    linked_new: Vec<Sha256>,
    /// Blobs whose refcount reached 0: unlinked after the commit (after checking that
    /// no later command of the batch linked them again).
    unlink_after: Vec<Sha256>,
    /// Change of the total blob bytes.
    bytes_delta: i128,
}

/// A blob a command is about to reference, read during validation.
struct Attach {
    sha: Sha256,
    size: u64,
    existing: Option<BlobRecord>,
}

/// Pending GC work.
#[derive(Default)]
struct GcState {
    active: Option<GcRun>,
    /// Callers that asked while a run was active: they get the next full run.
    waiting: Vec<ReplyTo>,
    background_requested: bool,
}

struct GcRun {
    next_dir: u16,
    report: GcReport,
    waiters: Vec<ReplyTo>,
}

impl GcState {
    fn has_work(&self) -> bool {
        self.active.is_some() || !self.waiting.is_empty() || self.background_requested
    }

    /// At shutdown, a run nobody waits for is abandoned (the next open starts one).
    fn drop_unwanted(&mut self) {
        self.background_requested = false;
        if self.waiting.is_empty() && self.active.as_ref().is_some_and(|r| r.waiters.is_empty()) {
            self.active = None;
        }
    }
}

impl Writer {
    fn run(self, rx: Receiver<Msg>) {
        tracing::debug!("writer thread started");
        let mut gc = GcState::default();
        let mut shutting_down = false;
        loop {
            let first = if shutting_down || gc.has_work() {
                match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => {
                        shutting_down = true;
                        None
                    }
                }
            } else {
                match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => {
                        shutting_down = true;
                        None
                    }
                }
            };
            let got_message = first.is_some();
            let mut jobs = Vec::new();
            let mut next = first;
            while let Some(msg) = next {
                match msg {
                    Msg::Shutdown => shutting_down = true,
                    // A run already under way covers what a new one would.
                    Msg::BackgroundGc => gc.background_requested |= gc.active.is_none(),
                    Msg::Job(Job {
                        cmd: Command::Gc,
                        reply,
                    }) => gc.waiting.push(reply),
                    Msg::Job(job) => jobs.push(job),
                }
                if jobs.len() >= self.max_batch {
                    break;
                }
                next = rx.try_recv().ok();
            }
            if !jobs.is_empty() {
                self.run_batch(jobs);
            }
            if shutting_down {
                gc.drop_unwanted();
            }
            if gc.has_work() {
                self.gc_step(&mut gc);
            }
            if shutting_down && !got_message && !gc.has_work() {
                break;
            }
        }
        tracing::debug!("writer thread stopped");
    }

    fn run_batch(&self, jobs: Vec<Job>) {
        let started = Instant::now();
        let n = jobs.len();
        let mut batch = Batch {
            now_ms: now_ms(),
            dirty_dirs: BTreeSet::new(),
            linked_new: Vec::new(),
            unlink_after: Vec::new(),
            bytes_delta: 0,
        };
        let mut wtxn = match self.env.write_txn() {
            Ok(t) => t,
            Err(e) => {
                let e = StoreError::from(e);
                tracing::error!(error = %e, commands = n, "cannot begin a write transaction");
                for job in jobs {
                    job.cmd.discard_tmp();
                    job.reply.send(Err(e.replicate()));
                }
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let mut outcomes: Vec<(ReplyTo, ReplyResult)> = Vec::with_capacity(n);
        let mut failure: Option<StoreError> = None;
        for job in jobs {
            if let Some(e) = &failure {
                job.cmd.discard_tmp();
                outcomes.push((job.reply, Err(e.replicate())));
                continue;
            }
            let what = job.cmd.name();
            match self.apply(&mut wtxn, &mut batch, job.cmd) {
                Ok(reply) => outcomes.push((job.reply, Ok(reply))),
                Err(Fail::Rejected(e)) => {
                    tracing::debug!(command = what, error = %e, "command rejected");
                    outcomes.push((job.reply, Err(e)));
                }
                Err(Fail::Fatal(e)) => {
                    tracing::error!(command = what, error = %e, "write failed; failing the batch");
                    outcomes.push((job.reply, Err(e.replicate())));
                    failure = Some(e);
                }
            }
        }
        if failure.is_none() {
            failure = self.before_commit(&mut wtxn, &batch).err();
        }
        let failure = match failure {
            None => wtxn.commit().err().map(|e| self.commit_error(e)),
            Some(e) => {
                wtxn.abort();
                Some(e)
            }
        };
        match failure {
            None => {
                self.unlink_unreferenced(&mut batch.unlink_after);
                // Release: a reader that sees the new count (Acquire in `generation`)
                // also sees everything this commit wrote. Bumped before any reply, so an
                // acknowledged change is never hidden by a cache keyed on the count.
                self.counters.batches.fetch_add(1, Ordering::Release);
                self.counters
                    .commands
                    .fetch_add(n as u64, Ordering::Relaxed);
                tracing::debug!(
                    commands = n,
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "batch committed"
                );
                for (reply, res) in outcomes {
                    reply.send(res);
                }
            }
            Some(e) => {
                tracing::error!(error = %e, commands = n, "batch failed; no command of it was applied");
                self.unlink_unreferenced(&mut batch.linked_new);
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                for (reply, res) in outcomes {
                    reply.send(match res {
                        Ok(_) => Err(e.replicate()),
                        own_error => own_error,
                    });
                }
            }
        }
    }

    /// The blob-bytes counter, then the directory fsyncs that make this batch's links
    /// durable before the records that reference them are.
    fn before_commit(&self, wtxn: &mut RwTxn, batch: &Batch) -> Result<(), StoreError> {
        if batch.bytes_delta != 0 {
            adjust_blob_bytes(&self.dbs, wtxn, batch.bytes_delta)?;
        }
        if self.durability == Durability::Fsync && !batch.dirty_dirs.is_empty() {
            let dirs: Vec<PathBuf> = batch
                .dirty_dirs
                .iter()
                .map(|&d| self.layout.blob_dir(d))
                .collect();
            fsync_dirs_parallel(&dirs)?;
        }
        Ok(())
    }

    /// Unlinks the blob files in `shas` that have no blob record in the committed state.
    fn unlink_unreferenced(&self, shas: &mut Vec<Sha256>) {
        if shas.is_empty() {
            return;
        }
        shas.sort_unstable();
        shas.dedup();
        let referenced: Vec<bool> = match self.env.read_txn() {
            Ok(txn) => shas
                .iter()
                .map(|s| {
                    self.dbs
                        .blobs
                        .get(&txn, s)
                        .map(|v| v.is_some())
                        .unwrap_or(true)
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot check blob references; leaving files for gc");
                return;
            }
        };
        for (sha, referenced) in shas.iter().zip(referenced) {
            if referenced {
                continue;
            }
            let path = self.layout.blob_path(sha);
            match remove_file_quiet(&path) {
                Ok(()) => tracing::debug!(blob = %sha256_hex(sha), "unlinked unreferenced blob"),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot unlink blob; gc will retry")
                }
            }
        }
    }

    fn apply(&self, txn: &mut RwTxn, b: &mut Batch, cmd: Command) -> Result<Reply, Fail> {
        match cmd {
            Command::Create { record, blob } => {
                let tmp = blob.as_ref().map(|nb| nb.tmp_path.clone());
                let res = self.create(txn, b, record, blob);
                if let (Err(_), Some(tmp)) = (&res, tmp) {
                    let _ = remove_file_quiet(&tmp);
                }
                res
            }
            Command::SetContent {
                id,
                blob,
                mime_type,
                now_ms,
            } => {
                let tmp = blob.tmp_path.clone();
                let res = self.set_content(txn, b, id, blob, mime_type, now_ms);
                if res.is_err() {
                    let _ = remove_file_quiet(&tmp);
                }
                res
            }
            Command::Patch { id, patch, now_ms } => self.patch(txn, id, patch, now_ms),
            Command::Delete { id } => self.delete(txn, b, id),
            Command::MarkLost { id } => self.mark_lost(txn, id),
            Command::PutToken {
                token_sha256,
                record,
            } => {
                let value = records::encode_token(&record).map_err(rejected)?;
                self.dbs
                    .tokens
                    .put(txn, &token_sha256, &value)
                    .map_err(fatal)?;
                Ok(Reply::Done)
            }
            Command::DeleteToken { token_sha256 } => {
                if self
                    .dbs
                    .tokens
                    .get(txn, &token_sha256)
                    .map_err(rejected)?
                    .is_none()
                {
                    return Err(Fail::Rejected(StoreError::NotFound));
                }
                self.dbs.tokens.delete(txn, &token_sha256).map_err(fatal)?;
                Ok(Reply::Deleted)
            }
            // Routed to the GC state before batching; kept total for safety.
            Command::Gc => Err(Fail::Rejected(StoreError::Invalid(
                "gc cannot run inside a batch".into(),
            ))),
        }
    }

    fn load(&self, txn: &RwTxn, id: &ObjectId) -> Result<ObjectRecord, Fail> {
        match self
            .dbs
            .objects
            .get(txn, &keys::object_key(id))
            .map_err(rejected)?
        {
            Some(bytes) => records::decode_object(bytes).map_err(Fail::Rejected),
            None => Err(Fail::Rejected(StoreError::NotFound)),
        }
    }

    fn read_blob(&self, txn: &RwTxn, sha: &Sha256) -> Result<Option<BlobRecord>, Fail> {
        match self.dbs.blobs.get(txn, sha).map_err(rejected)? {
            Some(bytes) => records::decode_blob(bytes)
                .map(Some)
                .map_err(Fail::Rejected),
            None => Ok(None),
        }
    }

    /// Validation half of referencing a blob: reads its record, checks the size.
    fn prepare_attach(&self, txn: &RwTxn, sha: Sha256, size: u64) -> Result<Attach, Fail> {
        let existing = self.read_blob(txn, &sha)?;
        if let Some(rec) = &existing {
            if rec.size != size {
                return Err(Fail::Rejected(StoreError::Invalid(format!(
                    "blob {} is stored with {} bytes but the upload has {size}",
                    sha256_hex(&sha),
                    rec.size
                ))));
            }
        }
        Ok(Attach {
            sha,
            size,
            existing,
        })
    }

    /// File half: puts the upload in place, or drops it when the blob is already
    /// stored intact (de-duplication).
    fn link(&self, b: &mut Batch, a: &Attach, nb: &NewBlob) -> Result<(), Fail> {
        let path = self.layout.blob_path(&a.sha);
        let intact = a.existing.is_some()
            && fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == a.size);
        if intact {
            if let Err(e) = remove_file_quiet(&nb.tmp_path) {
                tracing::warn!(path = %nb.tmp_path.display(), error = %e, "cannot remove duplicate upload");
            }
            return Ok(());
        }
        // No record (new blob; a leftover file of the same name is replaced by the
        // verified upload), or a record whose file is missing or damaged (repaired).
        fs::rename(&nb.tmp_path, &path).map_err(|e| {
            Fail::Rejected(io_context(
                e,
                format!(
                    "cannot move upload {} to {}",
                    nb.tmp_path.display(),
                    path.display()
                ),
            ))
        })?;
        b.dirty_dirs.insert(a.sha[0]);
        if a.existing.is_none() {
            b.linked_new.push(a.sha);
        }
        Ok(())
    }

    /// LMDB half: one more reference.
    fn incref(&self, txn: &mut RwTxn, b: &mut Batch, a: &Attach) -> Result<(), Fail> {
        let rec = match a.existing {
            Some(mut r) => {
                r.refcount += 1;
                r
            }
            None => {
                b.bytes_delta += i128::from(a.size);
                BlobRecord {
                    size: a.size,
                    refcount: 1,
                    created_at_ms: b.now_ms,
                }
            }
        };
        let value = records::encode_blob(&rec).map_err(fatal)?;
        self.dbs.blobs.put(txn, &a.sha, &value).map_err(fatal)
    }

    /// One reference fewer; at zero the record goes and the file is unlinked after the
    /// commit.
    fn decref(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        sha: &Sha256,
        existing: Option<BlobRecord>,
    ) -> Result<(), Fail> {
        match existing {
            None => {
                tracing::warn!(blob = %sha256_hex(sha), "an object referenced a blob without a record");
                Ok(())
            }
            Some(r) if r.refcount <= 1 => {
                self.dbs.blobs.delete(txn, sha).map_err(fatal)?;
                b.bytes_delta -= i128::from(r.size);
                b.unlink_after.push(*sha);
                Ok(())
            }
            Some(mut r) => {
                r.refcount -= 1;
                let value = records::encode_blob(&r).map_err(fatal)?;
                self.dbs.blobs.put(txn, sha, &value).map_err(fatal)
            }
        }
    }

    fn create(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        mut rec: ObjectRecord,
        blob: Option<NewBlob>,
    ) -> Result<Reply, Fail> {
        let okey = keys::object_key(&rec.id);
        if self
            .dbs
            .objects
            .get(txn, &okey)
            .map_err(rejected)?
            .is_some()
        {
            return Err(Fail::Rejected(StoreError::Conflict(format!(
                "an object with id {} already exists",
                rec.id
            ))));
        }
        let nkey = keys::name_key(&rec.namespace, &rec.name, &rec.id).map_err(Fail::Rejected)?;
        rec.metadata_json = normalize_metadata(&rec.metadata_json).map_err(Fail::Rejected)?;
        let attach = match (rec.kind, &blob) {
            (Kind::Text, Some(_)) => {
                return Err(Fail::Rejected(StoreError::Invalid(
                    "a text object keeps its content inline and cannot have a blob".into(),
                )))
            }
            (Kind::Text, None) => {
                rec.state = State::Stored;
                None
            }
            (Kind::File, Some(nb)) => {
                let a = self.prepare_attach(txn, nb.sha256, nb.size)?;
                rec.sha256 = Some(nb.sha256);
                rec.size = nb.size;
                rec.state = State::Stored;
                Some(a)
            }
            (Kind::File, None) => match rec.sha256 {
                Some(sha) => {
                    let Some(existing) = self.read_blob(txn, &sha)? else {
                        return Err(Fail::Rejected(StoreError::Invalid(format!(
                            "no stored blob has sha256 {}; upload the content instead",
                            sha256_hex(&sha)
                        ))));
                    };
                    rec.size = existing.size;
                    rec.state = State::Stored;
                    Some(Attach {
                        sha,
                        size: existing.size,
                        existing: Some(existing),
                    })
                }
                None => {
                    rec.state = State::Pending;
                    None
                }
            },
        };
        let value = records::encode_object(&rec).map_err(Fail::Rejected)?;
        if let (Some(a), Some(nb)) = (&attach, &blob) {
            self.link(b, a, nb)?;
        }
        if let Some(a) = &attach {
            self.incref(txn, b, a)?;
        }
        self.dbs.objects.put(txn, &okey, &value).map_err(fatal)?;
        self.dbs.names.put(txn, &nkey, &[]).map_err(fatal)?;
        Ok(Reply::Object(rec))
    }

    fn set_content(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        id: ObjectId,
        nb: NewBlob,
        mime_type: Option<String>,
        now_ms: i64,
    ) -> Result<Reply, Fail> {
        let mut rec = self.load(txn, &id)?;
        if rec.kind == Kind::Text {
            return Err(Fail::Rejected(StoreError::Conflict(format!(
                "object {id} is a text object; its content is not uploaded as bytes"
            ))));
        }
        let same = rec.sha256 == Some(nb.sha256);
        let attach = self.prepare_attach(txn, nb.sha256, nb.size)?;
        let old = match rec.sha256 {
            Some(old) if !same => Some((old, self.read_blob(txn, &old)?)),
            _ => None,
        };
        rec.size = nb.size;
        rec.sha256 = Some(nb.sha256);
        if let Some(m) = mime_type {
            rec.mime_type = m;
        }
        rec.state = State::Stored;
        rec.updated_at_ms = now_ms;
        let value = records::encode_object(&rec).map_err(Fail::Rejected)?;
        self.link(b, &attach, &nb)?;
        if !same {
            // The new reference first, so replacing content by itself never reaches 0.
            self.incref(txn, b, &attach)?;
            if let Some((old, existing)) = old {
                self.decref(txn, b, &old, existing)?;
            }
        }
        self.dbs
            .objects
            .put(txn, &keys::object_key(&id), &value)
            .map_err(fatal)?;
        Ok(Reply::Object(rec))
    }

    fn patch(
        &self,
        txn: &mut RwTxn,
        id: ObjectId,
        patch: ObjectPatch,
        now_ms: i64,
    ) -> Result<Reply, Fail> {
        let mut rec = self.load(txn, &id)?;
        let old_key = keys::name_key(&rec.namespace, &rec.name, &id).map_err(Fail::Rejected)?;
        if let Some(ns) = patch.namespace {
            rec.namespace = ns;
        }
        if let Some(name) = patch.name {
            rec.name = name;
        }
        let new_key = keys::name_key(&rec.namespace, &rec.name, &id).map_err(Fail::Rejected)?;
        if let Some(tags) = patch.tags {
            rec.tags = tags;
        }
        if let Some(changes) = patch.metadata {
            rec.metadata_json = merge_metadata(&rec.metadata_json, changes);
        }
        rec.updated_at_ms = now_ms;
        let value = records::encode_object(&rec).map_err(Fail::Rejected)?;
        if old_key != new_key {
            self.dbs.names.delete(txn, &old_key).map_err(fatal)?;
            self.dbs.names.put(txn, &new_key, &[]).map_err(fatal)?;
        }
        self.dbs
            .objects
            .put(txn, &keys::object_key(&id), &value)
            .map_err(fatal)?;
        Ok(Reply::Object(rec))
    }

    fn delete(&self, txn: &mut RwTxn, b: &mut Batch, id: ObjectId) -> Result<Reply, Fail> {
        let rec = self.load(txn, &id)?;
        let nkey = keys::name_key(&rec.namespace, &rec.name, &id).map_err(Fail::Rejected)?;
        let blob = match (rec.kind, rec.sha256) {
            (Kind::File, Some(sha)) => Some((sha, self.read_blob(txn, &sha)?)),
            _ => None,
        };
        self.dbs
            .objects
            .delete(txn, &keys::object_key(&id))
            .map_err(fatal)?;
        self.dbs.names.delete(txn, &nkey).map_err(fatal)?;
        if let Some((sha, existing)) = blob {
            self.decref(txn, b, &sha, existing)?;
        }
        Ok(Reply::Deleted)
    }

    fn mark_lost(&self, txn: &mut RwTxn, id: ObjectId) -> Result<Reply, Fail> {
        let mut rec = self.load(txn, &id)?;
        if rec.kind != Kind::File || rec.sha256.is_none() {
            return Err(Fail::Rejected(StoreError::Conflict(format!(
                "object {id} has no blob content that could be lost"
            ))));
        }
        rec.state = State::Lost;
        let value = records::encode_object(&rec).map_err(Fail::Rejected)?;
        self.dbs
            .objects
            .put(txn, &keys::object_key(&id), &value)
            .map_err(fatal)?;
        Ok(Reply::Object(rec))
    }

    /// One step of GC: directory `blobs/<next_dir>`. Starts a run when none is active.
    fn gc_step(&self, gc: &mut GcState) {
        let run = gc.active.get_or_insert_with(|| {
            gc.background_requested = false;
            GcRun {
                next_dir: 0,
                report: GcReport::default(),
                waiters: mem::take(&mut gc.waiting),
            }
        });
        let dir = u8::try_from(run.next_dir).unwrap_or(u8::MAX);
        if let Err(e) = self.gc_dir(dir, &mut run.report) {
            tracing::error!(error = %e, dir = %self.layout.blob_dir(dir).display(), "gc failed");
            if let Some(run) = gc.active.take() {
                for w in run.waiters {
                    w.send(Err(e.replicate()));
                }
            }
            return;
        }
        run.next_dir += 1;
        if run.next_dir > u16::from(u8::MAX) {
            if let Some(run) = gc.active.take() {
                self.counters.gc_runs.fetch_add(1, Ordering::Relaxed);
                let r = run.report;
                if r.blobs_removed > 0 {
                    tracing::info!(
                        blobs_removed = r.blobs_removed,
                        bytes_freed = r.bytes_freed,
                        "gc removed unreferenced blobs"
                    );
                } else {
                    tracing::debug!("gc found nothing to remove");
                }
                for w in run.waiters {
                    w.send(Ok(Reply::Gc(r)));
                }
            }
        }
    }

    fn gc_dir(&self, dir: u8, report: &mut GcReport) -> Result<(), StoreError> {
        // 1. The blob records of this directory (their keys start with the byte `dir`).
        let mut live: HashSet<Sha256> = HashSet::new();
        let mut dead: Vec<(Sha256, u64)> = Vec::new();
        {
            let rtxn = self.env.read_txn()?;
            for item in self.dbs.blobs.prefix_iter(&rtxn, &[dir])? {
                let (key, value) = item?;
                let Ok(sha) = Sha256::try_from(key) else {
                    tracing::warn!(
                        ?key,
                        "blob record with a malformed key; run `ringbox check`"
                    );
                    continue;
                };
                match records::decode_blob(value) {
                    Ok(r) if r.refcount == 0 => dead.push((sha, r.size)),
                    Ok(_) => {
                        live.insert(sha);
                    }
                    Err(e) => {
                        tracing::warn!(blob = %sha256_hex(&sha), error = %e, "undecodable blob record kept");
                        live.insert(sha);
                    }
                }
            }
        }
        // 2. Records with no reference left: delete, commit, then unlink.
        if !dead.is_empty() {
            let mut wtxn = self.env.write_txn()?;
            let mut bytes = 0i128;
            for (sha, size) in &dead {
                self.dbs.blobs.delete(&mut wtxn, sha)?;
                bytes += i128::from(*size);
            }
            adjust_blob_bytes(&self.dbs, &mut wtxn, -bytes)?;
            wtxn.commit()?;
            for (sha, size) in dead {
                let path = self.layout.blob_path(&sha);
                match remove_file_quiet(&path) {
                    Ok(()) => {
                        report.blobs_removed += 1;
                        report.bytes_freed += size;
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot unlink blob")
                    }
                }
            }
        }
        // 3. Files without a record. Nothing else changes blobs/ or blob records while
        //    this thread runs, so `live` is exact.
        let dir_path = self.layout.blob_dir(dir);
        let entries = match fs::read_dir(&dir_path) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(dir = %dir_path.display(), "blob directory missing");
                return Ok(());
            }
            Err(e) => return Err(io_context(e, format!("cannot read {}", dir_path.display()))),
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(dir = %dir_path.display(), error = %e, "cannot read directory entry");
                    continue;
                }
            };
            let Some(sha) = parse_blob_file_name(&entry.file_name()) else {
                continue; // not a managed blob: not ours to remove
            };
            if sha[0] != dir || live.contains(&sha) {
                continue; // misplaced files are reported by `check`, not guessed at
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            match remove_file_quiet(&entry.path()) {
                Ok(()) => {
                    report.blobs_removed += 1;
                    report.bytes_freed += meta.len();
                    tracing::debug!(blob = %sha256_hex(&sha), "removed unreferenced blob file");
                }
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove unreferenced blob file")
                }
            }
        }
        Ok(())
    }
}

impl Writer {
    /// LMDB reports a write that hit a full volume as ENOSPC on some paths and as a
    /// plain EIO on others (its page flush and meta write). When the data volume is
    /// (nearly) out of space, either is "full": the client gets 507 and can retry once
    /// space is freed, instead of a 500 that suggests corruption.
    fn commit_error(&self, e: heed::Error) -> StoreError {
        let err = StoreError::from(e);
        if matches!(err, StoreError::Full) {
            return err;
        }
        const NEARLY_FULL: u64 = 4 << 20;
        match rustix::fs::statvfs(self.layout.root()) {
            Ok(st) if st.f_bavail.saturating_mul(st.f_frsize) < NEARLY_FULL => {
                tracing::warn!(error = %err, "commit failed on a full data volume");
                StoreError::Full
            }
            _ => err,
        }
    }
}

/// Most threads fsyncing `blobs/ab` directories at once for one batch.
const MAX_FSYNC_THREADS: usize = 16;

/// fsyncs every directory in `dirs`, in parallel. Each directory fsync costs about one
/// device cache flush (measured: ~4 ms on a virtio disk, even for a clean directory);
/// concurrent flushes are merged by the block layer, so 8 directories in parallel cost
/// about what 2 cost serially. A batch of 256 uploads touches ~160 of the 256
/// directories, which serially would add over half a second to its commit.
fn fsync_dirs_parallel(dirs: &[PathBuf]) -> Result<(), StoreError> {
    let sync = |dir: &PathBuf| {
        fsync_dir(dir).map_err(|e| io_context(e, format!("cannot fsync {}", dir.display())))
    };
    if dirs.len() == 1 {
        return sync(&dirs[0]);
    }
    let per_thread = dirs.len().div_ceil(MAX_FSYNC_THREADS);
    thread::scope(|s| {
        let mut handles = Vec::new();
        let mut inline = Vec::new();
        for chunk in dirs.chunks(per_thread) {
            let job = move || chunk.iter().try_for_each(sync);
            match thread::Builder::new()
                .name("ringbox-fsync".into())
                .spawn_scoped(s, job)
            {
                Ok(h) => handles.push(h),
                // No thread to be had: do this chunk here.
                Err(_) => inline.push(chunk),
            }
        }
        let mut result = inline.into_iter().flatten().try_for_each(sync);
        for h in handles {
            let r = h.join().unwrap_or_else(|_| {
                Err(StoreError::Io(io::Error::other(
                    "a directory fsync thread panicked",
                )))
            });
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

/// `metadata_json` as stored: `"{}"` when empty, `Invalid` unless a JSON object.
fn normalize_metadata(json: &str) -> Result<String, StoreError> {
    if json.trim().is_empty() {
        return Ok("{}".into());
    }
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(_)) => Ok(json.to_owned()),
        _ => Err(StoreError::Invalid("metadata must be a JSON object".into())),
    }
}

/// Top-level merge: each key of `changes` replaces the stored one; a null removes it.
fn merge_metadata(stored: &str, changes: Map<String, Value>) -> String {
    let mut map = match serde_json::from_str::<Value>(stored) {
        Ok(Value::Object(m)) => m,
        _ => {
            tracing::warn!("stored metadata was not a JSON object; replacing it");
            Map::new()
        }
    };
    for (k, v) in changes {
        if v.is_null() {
            map.remove(&k);
        } else {
            map.insert(k, v);
        }
    }
    Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_merge() {
        let mut changes = Map::new();
        changes.insert("a".into(), Value::Null);
        changes.insert("c".into(), Value::from(3));
        let merged = merge_metadata(r#"{"a":1,"b":2}"#, changes);
        let v: Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(v, serde_json::json!({"b":2,"c":3}));
        assert_eq!(normalize_metadata("").unwrap(), "{}");
        assert!(normalize_metadata("[1]").is_err());
        assert!(normalize_metadata("{").is_err());
    }
}
