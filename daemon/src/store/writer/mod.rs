//! The writer thread: the only place that opens LMDB write transactions (after
//! `Store::open` has run its migrations) and the only place that changes the blob
//! namespace (`blobs/`).
//!
//! This file holds the thread, its queue, batching, group commit, the two generation
//! counters and supervision. What each command does is in `objects.rs` (objects, blob
//! references, aliases), `tokens.rs` and `gc.rs`.
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
//! nothing, so the others go on. Commands of one batch see each other's writes (they
//! share the transaction), so uniqueness checks (names, aliases) hold across the batch
//! too. After the last command, with `Durability::Fsync`, each `blobs/ab` directory that
//! received a new file is fsynced once; then the transaction commits; then the blob
//! files whose last reference the batch dropped are unlinked; then every caller gets its
//! reply through a oneshot (a monoio task awaiting it is woken from this thread).
//!
//! If an LMDB write fails midway (the transaction is then unusable: `MDB_MAP_FULL`,
//! `MDB_TXN_FULL`, ...) or the commit fails (ENOSPC, EIO), the transaction is aborted and
//! every command of the batch gets the error (`Full` for ENOSPC and map-full). Blob
//! files this batch linked and that no committed record references are removed again;
//! a file that a committed record does reference is never removed (they are checked
//! against the committed state, not assumed).
//!
//! Generations: readers cache what they read (the workers' hot record cache, their open
//! blob descriptors) and need to know when to drop it. Two counters serve that, both
//! bumped after the commit (and after the post-commit unlinks) and before any reply,
//! with `Release`, read with `Acquire`: a reader that sees the new value also sees
//! everything the commit wrote, and an acknowledged change is never hidden by a cache
//! keyed on the value it read before.
//!
//! * [`WriterHandle::data_generation`] moves only after a batch in which at least one
//!   command changed object records or blob records or files (create, set_content,
//!   patch, delete, mark_lost, heal, set_media and set_external when they changed
//!   something), and after a GC
//!   step that removed something. Read caches of object records and blobs key on it.
//! * [`WriterHandle::commits`] moves after every committed batch, whatever it held.
//!
//! Token writes, and every record type still to come that does not describe objects or
//! blobs (events, audit, rate limits, token last-use), must leave `data_generation`
//! alone: otherwise every authenticated request that records something would empty
//! every worker's caches. A new object-changing command sets `Batch::data_changed`.
//!
//! Supervision: a panic while applying a batch (a bug) must not take the store down.
//! The batch runs under `catch_unwind`; on a panic its transaction is aborted, every
//! caller of the batch gets [`StoreError::Internal`], the temp files and fresh blob files
//! of the batch are removed, the panic is logged with `tracing::error!`, the
//! process-wide counter behind [`WriterHandle::panics`] is incremented, and the thread
//! goes on with the next batch. A GC step is supervised the same way.
//!
//! The queue is unbounded: a queued command is small (the upload's bytes are already on
//! disk), and the HTTP layer bounds connections.

mod collections;
mod documents;
mod events;
mod expiry;
mod gc;
mod objects;
mod owners;
mod shares;
mod users;
mod webhooks;

use std::any::Any;
use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use futures_channel::oneshot;
use heed::{Env, RwTxn, WithoutTls};

use super::blobs::{fsync_dir, remove_file_quiet, Layout};
use super::records::{
    ExternalFile, MediaInfo, ObjectRecord, SessionRecord, TokenRecord, UserRecord, WebhookRecord,
};
use super::{adjust_blob_bytes, io_context, Dbs, Durability, ObjectId, Sha256, StoreError};
use crate::util::hex;
use crate::util::time::now_ms;

#[allow(unused_imports)] // re-exported by the store
pub use collections::{CollectionCommand, MAX_MEMBERS};
#[allow(unused_imports)]
pub use documents::{DocumentsPage, MAX_DOCUMENTS_PER_COMMAND};
pub use events::EventSettings;
pub(crate) use events::META_LAST_SEQ;
#[allow(unused_imports)] // re-exported by the store
pub use expiry::{Due, ExpiryCommand, ObjectAccess, SweepItem, SweepReport};
pub use gc::GcReport;
pub use objects::{MetadataChange, ObjectPatch, MAX_METADATA_BYTES};
pub(crate) use owners::owner_of;
pub use shares::ShareCommand;
pub use users::UserChange;
pub use webhooks::{WebhookChange, WebhookProgress};

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
// A command is built once and moved once into the queue (a queue slot is ~600 bytes
// while it waits); boxing the record would cost every create an allocation and every
// caller a `Box::new` for nothing measurable.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Command {
    /// Insert a new object. A managed `Kind::File` with `blob: Some` stores the upload
    /// (the record's `sha256`, `size` and `state` are set from it: `Stored`); with
    /// `blob: None` and `sha256: Some` it references an already stored blob (`Invalid` if
    /// there is none); with neither it is a pending file. `Kind::Text` keeps `content`
    /// inline and must not have a blob. A `Source::External` file is indexed in place:
    /// no blob, no reference, its `state`, `size` and `sha256` are taken as given.
    ///
    /// An existing id is `Conflict`; so is an alias of the record that another object
    /// holds, and, with `unique_name`, another object with the same namespace and name
    /// (checked inside the transaction, so of two concurrent creates only one wins). A NUL
    /// or an over-long name or namespace, a malformed alias, or `metadata_json` that is
    /// not a JSON object or exceeds [`MAX_METADATA_BYTES`], is `Invalid`.
    Create {
        record: ObjectRecord,
        blob: Option<NewBlob>,
        unique_name: bool,
    },
    /// Set or replace a managed file object's content (pending -> stored). Sets `size`,
    /// `sha256`, `mime_type` (if given), `state = Stored`, `updated_at_ms`. Text or
    /// external object -> `Conflict`; unknown id -> `NotFound` (and the temp file is
    /// removed).
    SetContent {
        id: ObjectId,
        blob: NewBlob,
        mime_type: Option<String>,
        now_ms: i64,
    },
    /// Rename / move namespace (updates the names index), replace tags, change metadata,
    /// set or clear the expiry, add aliases (see [`ObjectPatch`]). Sets `updated_at_ms`.
    Patch {
        id: ObjectId,
        patch: ObjectPatch,
        now_ms: i64,
    },
    /// Delete the record, its names index entry, its aliases, and its blob reference
    /// (unlink at 0). Replies `Deleted`.
    Delete { id: ObjectId },
    /// Mark a file object `Lost` (its blob file vanished), only if the record is still
    /// `Stored` with this `sha256`: otherwise (a concurrent SetContent replaced the
    /// content, or it is already lost) nothing changes and the reply is the current
    /// record. A lost object keeps its blob reference, so uploading the same bytes again
    /// restores the file (then `Heal`).
    MarkLost { id: ObjectId, sha256: Sha256 },
    /// `Lost` -> `Stored` if the record still has this `sha256` (otherwise a no-op reply
    /// of the current record). For a managed blob, `Conflict` unless its blob file is
    /// back, intact in size (`link` repairs the file when the same bytes are uploaded
    /// again).
    #[allow(dead_code)] // the content path will call it; tests do now
    Heal { id: ObjectId, sha256: Sha256 },
    /// Record what probing an image found (dimensions, EXIF) and why a preview was
    /// refused, only if the object still has content `sha256` (else a no-op reply of
    /// the current record). `media` replaces the stored section, except that a stored
    /// `error` is kept when `media.error` is `None`. Moves `data_generation` when it
    /// changed the record; `updated_at_ms` stays (derived data, not new content).
    SetMedia {
        id: ObjectId,
        sha256: Sha256,
        media: MediaInfo,
    },
    /// Add `error` to the object's `media.error` (joined with `"; "`, once), creating the
    /// section if there is none, only if the object still has content `sha256`. The
    /// merge happens here, in the transaction, so a refusal and a probe that commit in
    /// either order both keep what they found. Same generation and time rules as
    /// `SetMedia`.
    AddMediaError {
        id: ObjectId,
        sha256: Sha256,
        error: String,
    },
    /// A file indexed in place (`Source::External`) changed on disk and was hashed
    /// again: its source, `sha256`, `size` (= `file.size`), `mime_type`, `media` and
    /// its whole alias list are replaced, `state = Stored`, `updated_at_ms = now_ms`.
    /// A managed or text object is `Conflict`; an alias another object holds is
    /// `Conflict`.
    SetExternal {
        id: ObjectId,
        file: ExternalFile,
        sha256: Sha256,
        mime_type: String,
        media: Option<MediaInfo>,
        aliases: Vec<String>,
        now_ms: i64,
    },
    /// Collect unreferenced blobs (see `gc.rs`). Replies `Reply::Gc`.
    Gc,
    /// Store an API token (key: SHA-256 of the token text, see `token_sha256`) and its
    /// (user, id) index entry. Replies `Done`.
    PutToken {
        token_sha256: Sha256,
        record: TokenRecord,
    },
    /// Revoke a token by its secret's hash. Replies `Deleted`, or `NotFound`.
    #[allow(dead_code)] // part of the module's API; not every caller uses it yet
    DeleteToken { token_sha256: Sha256 },
    /// Revoke one of `user`'s tokens by its id. Replies `Deleted`, or `NotFound`.
    RevokeToken { user: String, token_id: [u8; 16] },
    /// Record tokens' last use (batched by the caller). Replies `Done`.
    TouchTokens { uses: Vec<(Sha256, i64)> },
    /// A new user (`Conflict` if the username is taken), with an optional first API
    /// token. Replies `User`.
    CreateUser {
        user: UserRecord,
        token: Option<(Sha256, TokenRecord)>,
    },
    /// Change a user. Replies `User` (the new record), or `NotFound`.
    UpdateUser { id: String, change: UserChange },
    /// Delete a user and every API token of theirs. Replies `User` (the old record).
    DeleteUser { id: String },
    /// Store a sign-in session (key: SHA-256 of its refresh token). Replies `Done`.
    CreateSession {
        refresh_sha256: Sha256,
        record: SessionRecord,
        now_ms: i64,
    },
    /// Refresh-token rotation (see `users.rs`). Replies `Session` (the old one), or
    /// `NotFound` when the old refresh token is unknown, used or expired.
    RotateSession {
        old_refresh_sha256: Sha256,
        new_refresh_sha256: Sha256,
        record: SessionRecord,
        now_ms: i64,
    },
    /// Logout: revoke the access token `jti` (until `expires_at_ms`) and forget its
    /// session. Replies `Deleted`.
    EndSession {
        jti: String,
        expires_at_ms: i64,
        now_ms: i64,
    },
    /// A new webhook (its cursor starts at the current last event). Replies `Webhook`.
    CreateWebhook { record: WebhookRecord },
    /// Change a webhook's URL, events or enabled state. Replies `Webhook`.
    ChangeWebhook { id: ObjectId, change: WebhookChange },
    /// Delete a webhook and its delivery log. Replies `Webhook` (the old record).
    DeleteWebhook { id: ObjectId },
    /// The delivery thread's progress on a webhook. Replies `Webhook`.
    WebhookProgress {
        id: ObjectId,
        progress: WebhookProgress,
    },
    /// Append JSON documents to a NoSQL dataset (see `documents.rs`). Replies
    /// `Documents`.
    PutDocuments {
        namespace: String,
        documents: Vec<String>,
    },
    /// Collections and their members (see `collections.rs`).
    Collection(CollectionCommand),
    /// Share links (see `shares.rs`).
    Share(ShareCommand),
    /// The access-statistics flush and the expiry sweep (see `expiry.rs`).
    Expiry(ExpiryCommand),
    /// Panics inside the writer while the batch is applied: exercises supervision.
    /// Compiled only into tests and debug builds.
    #[cfg(any(test, debug_assertions))]
    #[allow(dead_code)] // used by the daemon's debug-only hook later, by tests now
    DebugPanic,
}

impl Command {
    /// The temp file this command carries, if any.
    fn tmp_path(&self) -> Option<&Path> {
        match self {
            Command::Create { blob: Some(b), .. } | Command::SetContent { blob: b, .. } => {
                Some(&b.tmp_path)
            }
            _ => None,
        }
    }

    /// Removes the temp file this command carries (when it will not be linked).
    fn discard_tmp(&self) {
        if let Some(tmp) = self.tmp_path() {
            remove_tmp(tmp);
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Command::Create { .. } => "create",
            Command::SetContent { .. } => "set_content",
            Command::Patch { .. } => "patch",
            Command::Delete { .. } => "delete",
            Command::MarkLost { .. } => "mark_lost",
            Command::Heal { .. } => "heal",
            Command::SetMedia { .. } => "set_media",
            Command::AddMediaError { .. } => "add_media_error",
            Command::SetExternal { .. } => "set_external",
            Command::Gc => "gc",
            Command::PutToken { .. } => "put_token",
            Command::DeleteToken { .. } => "delete_token",
            Command::RevokeToken { .. } => "revoke_token",
            Command::TouchTokens { .. } => "touch_tokens",
            Command::CreateUser { .. } => "create_user",
            Command::UpdateUser { .. } => "update_user",
            Command::DeleteUser { .. } => "delete_user",
            Command::CreateSession { .. } => "create_session",
            Command::RotateSession { .. } => "rotate_session",
            Command::EndSession { .. } => "end_session",
            Command::CreateWebhook { .. } => "create_webhook",
            Command::ChangeWebhook { .. } => "change_webhook",
            Command::DeleteWebhook { .. } => "delete_webhook",
            Command::WebhookProgress { .. } => "webhook_progress",
            Command::PutDocuments { .. } => "put_documents",
            Command::Collection(_) => "collection",
            Command::Share(_) => "share",
            Command::Expiry(_) => "expiry",
            #[cfg(any(test, debug_assertions))]
            Command::DebugPanic => "debug_panic",
        }
    }
}

fn remove_tmp(tmp: &Path) {
    if let Err(e) = remove_file_quiet(tmp) {
        tracing::warn!(path = %tmp.display(), error = %e, "cannot remove temp file");
    }
}

/// What a committed command answers.
// The record is returned by value (the API is fixed and a reply is moved once, into a
// oneshot), so the size difference between variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// The record as committed (Create, SetContent, Patch), or as it is (MarkLost and
    /// Heal, changed or not).
    Object(ObjectRecord),
    /// Delete, DeleteToken.
    Deleted,
    Gc(GcReport),
    /// PutToken, TouchTokens, CreateSession.
    Done,
    /// CreateUser, UpdateUser (the new record), DeleteUser (the old one).
    User(UserRecord),
    /// RotateSession (the session that ended).
    Session(SessionRecord),
    /// The webhook commands.
    Webhook(WebhookRecord),
    /// PutDocuments: the sequence numbers given, `first..first + count`.
    Documents {
        first: u64,
        count: u64,
    },
    /// The collection commands (the record after the change).
    Collection(super::records::CollectionRecord),
    /// Share creation and deletion.
    Share(super::records::ShareRecord),
    /// An expiry sweep.
    Swept(SweepReport),
}

/// Counters of the writer thread, for `/metrics` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(dead_code)] // see `WriterHandle::stats`
pub struct WriterStats {
    /// Write transactions committed for command batches.
    pub batches: u64,
    /// Commands answered (successfully or not) in committed batches.
    pub commands: u64,
    /// Batches whose transaction failed or panicked (every command got the error).
    pub failed_batches: u64,
    /// Completed GC runs.
    pub gc_runs: u64,
}

/// Called with the hash of every blob file the writer removed (after the commit that
/// dropped its last reference, or by GC), on the writer thread: the core removes what
/// it derived from the content (thumbnails). Keep it short: it delays the next batch.
pub type BlobRemovedHook = Box<dyn Fn(&Sha256) + Send + Sync>;

#[derive(Default)]
struct Counters {
    /// Set once by the core (see [`WriterHandle::on_blob_removed`]); kept beside the
    /// counters because both are shared by the handle and the thread.
    blob_removed: std::sync::OnceLock<BlobRemovedHook>,
    /// Committed batches: [`WriterHandle::commits`].
    batches: AtomicU64,
    /// [`WriterHandle::data_generation`].
    data_generation: AtomicU64,
    commands: AtomicU64,
    failed_batches: AtomicU64,
    gc_runs: AtomicU64,
}

/// Panics caught on writer threads, process-wide (there is one store per process in the
/// daemon; tests open many and only compare before and after).
static WRITER_PANICS: AtomicU64 = AtomicU64::new(0);

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
    /// Who asked (the actor of the events the command produces).
    actor: String,
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
        self.submit_as(cmd, "system")
    }

    /// [`WriterHandle::submit`] on behalf of `actor` (a user id, `anonymous`): the
    /// events the command produces name them.
    pub fn submit_as(
        &self,
        cmd: Command,
        actor: &str,
    ) -> impl Future<Output = Result<Reply, StoreError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self.enqueue(cmd, ReplyTo::Async(tx), actor);
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
        if !self.enqueue(cmd, ReplyTo::Blocking(tx), "system") {
            return Err(StoreError::Closed);
        }
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// Moves after every commit that changed object records or blob records or files
    /// (and after a GC step that removed something); never for token writes or other
    /// bookkeeping. Caches of object records and blobs key their entries on it (see
    /// `core::hot_cache`): read it, then read LMDB, then cache under the value read.
    pub fn data_generation(&self) -> u64 {
        self.counters.data_generation.load(Ordering::Acquire)
    }

    /// The number of committed batches: moves whenever anything was committed.
    #[allow(dead_code)] // Store API the daemon does not call yet
    pub fn commits(&self) -> u64 {
        self.counters.batches.load(Ordering::Acquire)
    }

    /// Panics caught on writer threads in this process (each failed its batch or GC
    /// step with `StoreError::Internal`; the thread went on).
    #[allow(dead_code)] // Store API the daemon does not call yet
    pub fn panics(&self) -> u64 {
        WRITER_PANICS.load(Ordering::Relaxed)
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

    fn enqueue(&self, cmd: Command, reply: ReplyTo, actor: &str) -> bool {
        let actor = actor.to_string();
        match self.tx.send(Msg::Job(Job { cmd, reply, actor })) {
            Ok(()) => true,
            Err(crossbeam_channel::SendError(msg)) => {
                if let Msg::Job(job) = msg {
                    job.cmd.discard_tmp();
                }
                false
            }
        }
    }

    /// Install the hook called for every blob file the writer removes (once; a second
    /// call is ignored and returns false).
    pub fn on_blob_removed(&self, hook: BlobRemovedHook) -> bool {
        self.counters.blob_removed.set(hook).is_ok()
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
    default_quota: Option<u64>,
    events: EventSettings,
) -> Result<(WriterHandle, JoinHandle<()>), StoreError> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let counters = Arc::new(Counters::default());
    let last_seq = {
        let rtxn = env.read_txn()?;
        super::meta_u64(&dbs.meta, &rtxn, events::META_LAST_SEQ)?
    };
    let writer = Writer {
        events,
        next_seq: std::cell::Cell::new(last_seq + 1),
        env,
        dbs,
        layout,
        durability,
        max_batch,
        default_quota,
        session_writes: AtomicU64::new(0),
        counters: counters.clone(),
    };
    let thread = thread::Builder::new()
        .name("ringbox-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| io_context(e, "cannot start the writer thread"))?;
    Ok((WriterHandle { tx, counters }, thread))
}

struct Writer {
    /// Event retention and delivery.
    events: EventSettings,
    /// The sequence number of the next event (see `events.rs`).
    next_seq: std::cell::Cell<u64>,
    env: Env<WithoutTls>,
    dbs: Dbs,
    layout: Layout,
    durability: Durability,
    max_batch: usize,
    /// Per-user quota unless a user record overrides it.
    default_quota: Option<u64>,
    /// Session and revocation writes so far (expired ones are pruned every few).
    session_writes: AtomicU64,
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
    /// A command changed object records or blob records or files: `data_generation`
    /// moves after the commit.
    data_changed: bool,
    /// The events of the batch's commands, in order.
    events: Vec<super::records::EventRecord>,
    /// The actor of the command being applied.
    actor: String,
}

/// The replies of a batch's commands (in order) and the error that failed the whole
/// batch, if any.
struct Applied {
    outcomes: Vec<ReplyResult>,
    failure: Option<StoreError>,
}

impl Writer {
    fn run(self, rx: Receiver<Msg>) {
        tracing::debug!("writer thread started");
        let mut gc = gc::GcState::default();
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
                        ..
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
                self.supervised_gc_step(&mut gc);
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
            data_changed: false,
            events: Vec::new(),
            actor: String::new(),
        };
        let first_seq = self.next_seq.get();
        let mut replies = Vec::with_capacity(jobs.len());
        let mut cmds = Vec::with_capacity(jobs.len());
        for j in jobs {
            replies.push(j.reply);
            cmds.push((j.cmd, j.actor));
        }
        let mut wtxn = match self.env.write_txn() {
            Ok(t) => t,
            Err(e) => {
                let e = StoreError::from(e);
                tracing::error!(error = %e, commands = n, "cannot begin a write transaction");
                for (cmd, _) in &cmds {
                    cmd.discard_tmp();
                }
                for reply in replies {
                    reply.send(Err(e.replicate()));
                }
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        // Kept outside the supervised part: if it panics, these are what must go.
        let tmp_paths: Vec<PathBuf> = cmds
            .iter()
            .filter_map(|(c, _)| c.tmp_path().map(Path::to_path_buf))
            .collect();
        // Unwind safety: after a panic nothing the closure touched is used as if it
        // were consistent: the transaction is aborted, the batch's bookkeeping is only
        // used to remove files no committed record references.
        let applied = panic::catch_unwind(AssertUnwindSafe(|| {
            self.apply_all(&mut wtxn, &mut batch, cmds)
        }));
        let Applied { outcomes, failure } = match applied {
            Ok(applied) => applied,
            Err(payload) => {
                wtxn.abort();
                self.next_seq.set(first_seq);
                self.after_panic(&payload, "applying a batch", n);
                for tmp in &tmp_paths {
                    remove_tmp(tmp);
                }
                self.unlink_unreferenced(&mut batch.linked_new);
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                for reply in replies {
                    reply.send(Err(panic_error("this batch")));
                }
                return;
            }
        };
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
                self.publish_events(&mut batch);
                // Release: a reader that sees a new value (Acquire) also sees everything
                // this commit wrote. Bumped before any reply, so an acknowledged change
                // is never hidden by a cache keyed on the value.
                if batch.data_changed {
                    self.counters
                        .data_generation
                        .fetch_add(1, Ordering::Release);
                }
                self.counters.batches.fetch_add(1, Ordering::Release);
                self.counters
                    .commands
                    .fetch_add(n as u64, Ordering::Relaxed);
                tracing::debug!(
                    commands = n,
                    data_changed = batch.data_changed,
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "batch committed"
                );
                for (reply, res) in replies.into_iter().zip(outcomes) {
                    reply.send(res);
                }
            }
            Some(e) => {
                // The batch's events were never committed: their numbers are free again.
                self.next_seq.set(first_seq);
                tracing::error!(error = %e, commands = n, "batch failed; no command of it was applied");
                self.unlink_unreferenced(&mut batch.linked_new);
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                for (reply, res) in replies.into_iter().zip(outcomes) {
                    reply.send(match res {
                        Ok(_) => Err(e.replicate()),
                        own_error => own_error,
                    });
                }
            }
        }
    }

    /// Applies every command of a batch in order, then does what must precede the
    /// commit. One outcome per command, in order.
    fn apply_all(
        &self,
        wtxn: &mut RwTxn,
        batch: &mut Batch,
        cmds: Vec<(Command, String)>,
    ) -> Applied {
        let mut outcomes: Vec<ReplyResult> = Vec::with_capacity(cmds.len());
        let mut failure: Option<StoreError> = None;
        for (cmd, actor) in cmds {
            if let Some(e) = &failure {
                cmd.discard_tmp();
                outcomes.push(Err(e.replicate()));
                continue;
            }
            let what = cmd.name();
            batch.actor = actor;
            let (events_before, seq_before) = (batch.events.len(), self.next_seq.get());
            match self.apply(wtxn, batch, cmd) {
                Ok(reply) => outcomes.push(Ok(reply)),
                Err(Fail::Rejected(e)) => {
                    // A rejected command changed nothing: nor does it leave events.
                    batch.events.truncate(events_before);
                    self.next_seq.set(seq_before);
                    tracing::debug!(command = what, error = %e, "command rejected");
                    outcomes.push(Err(e));
                }
                Err(Fail::Fatal(e)) => {
                    tracing::error!(command = what, error = %e, "write failed; failing the batch");
                    outcomes.push(Err(e.replicate()));
                    failure = Some(e);
                }
            }
        }
        if failure.is_none() {
            failure = self.before_commit(wtxn, batch).err();
        }
        Applied { outcomes, failure }
    }

    fn apply(&self, txn: &mut RwTxn, b: &mut Batch, cmd: Command) -> Result<Reply, Fail> {
        match cmd {
            Command::Create {
                record,
                blob,
                unique_name,
            } => {
                let tmp = blob.as_ref().map(|nb| nb.tmp_path.clone());
                let res = self.create(txn, b, record, blob, unique_name);
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
            Command::Patch { id, patch, now_ms } => self.patch(txn, b, id, patch, now_ms),
            Command::Delete { id } => self.delete(txn, b, id),
            Command::MarkLost { id, sha256 } => self.mark_lost(txn, b, id, sha256),
            Command::Heal { id, sha256 } => self.heal(txn, b, id, sha256),
            Command::SetMedia { id, sha256, media } => self.set_media(txn, b, id, sha256, media),
            Command::AddMediaError { id, sha256, error } => {
                self.add_media_error(txn, b, id, sha256, error)
            }
            Command::SetExternal {
                id,
                file,
                sha256,
                mime_type,
                media,
                aliases,
                now_ms,
            } => self.set_external(txn, b, id, file, sha256, mime_type, media, aliases, now_ms),
            Command::PutToken {
                token_sha256,
                record,
            } => self.put_token(txn, token_sha256, record),
            Command::DeleteToken { token_sha256 } => self.delete_token(txn, token_sha256),
            Command::RevokeToken { user, token_id } => self.revoke_token(txn, &user, token_id),
            Command::TouchTokens { uses } => self.touch_tokens(txn, uses),
            Command::CreateUser { user, token } => self.create_user(txn, b, user, token),
            Command::UpdateUser { id, change } => self.update_user(txn, &id, change),
            Command::DeleteUser { id } => self.delete_user(txn, b, &id),
            Command::CreateSession {
                refresh_sha256,
                record,
                now_ms,
            } => self.create_session(txn, refresh_sha256, record, now_ms),
            Command::RotateSession {
                old_refresh_sha256,
                new_refresh_sha256,
                record,
                now_ms,
            } => self.rotate_session(txn, old_refresh_sha256, new_refresh_sha256, record, now_ms),
            Command::EndSession {
                jti,
                expires_at_ms,
                now_ms,
            } => self.end_session(txn, &jti, expires_at_ms, now_ms),
            Command::CreateWebhook { record } => self.create_webhook(txn, record),
            Command::ChangeWebhook { id, change } => self.change_webhook(txn, id, change),
            Command::DeleteWebhook { id } => self.delete_webhook(txn, id),
            Command::WebhookProgress { id, progress } => self.webhook_progress(txn, id, progress),
            Command::PutDocuments {
                namespace,
                documents,
            } => self.put_documents(txn, &namespace, documents),
            Command::Collection(c) => self.collection_command(txn, b, c),
            Command::Share(c) => self.share_command(txn, b, c),
            Command::Expiry(c) => self.expiry_command(txn, b, c),
            // Routed to the GC state before batching; kept total for safety.
            Command::Gc => Err(Fail::Rejected(StoreError::Invalid(
                "gc cannot run inside a batch".into(),
            ))),
            #[cfg(any(test, debug_assertions))]
            Command::DebugPanic => {
                panic!("Command::DebugPanic: a deliberate panic inside the writer")
            }
        }
    }

    /// The blob-bytes counter, then the directory fsyncs that make this batch's links
    /// durable before the records that reference them are.
    fn before_commit(&self, wtxn: &mut RwTxn, batch: &Batch) -> Result<(), StoreError> {
        self.write_events(wtxn, batch).map_err(|f| match f {
            Fail::Rejected(e) | Fail::Fatal(e) => e,
        })?;
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
                Ok(()) => {
                    tracing::debug!(blob = %hex::encode(sha), "unlinked unreferenced blob");
                    self.blob_removed(sha);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot unlink blob; gc will retry")
                }
            }
        }
    }

    /// Runs the blob-removed hook, if any.
    fn blob_removed(&self, sha: &Sha256) {
        if let Some(hook) = self.counters.blob_removed.get() {
            hook(sha);
        }
    }

    /// One GC step under `catch_unwind`: a panic fails the run (its waiters get
    /// `Internal`) instead of the thread.
    fn supervised_gc_step(&self, gc: &mut gc::GcState) {
        let res = panic::catch_unwind(AssertUnwindSafe(|| self.gc_step(gc)));
        if let Err(payload) = res {
            self.after_panic(&payload, "a gc step", 0);
            for waiter in gc.abandon() {
                waiter.send(Err(panic_error("this gc run")));
            }
        }
    }

    /// Logs and counts a caught panic.
    fn after_panic(&self, payload: &(dyn Any + Send), during: &str, commands: usize) {
        let total = WRITER_PANICS.fetch_add(1, Ordering::Relaxed) + 1;
        crate::metrics::get().panic("writer");
        tracing::error!(
            panic = panic_message(payload),
            commands,
            panics_so_far = total,
            "the writer thread panicked while {during}; it was aborted (nothing of it was \
             applied) and the writer goes on. This is a bug: please report it with this log"
        );
    }

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

/// The error every caller of a batch (or GC run) that panicked gets.
fn panic_error(what: &str) -> StoreError {
    StoreError::Internal(format!(
        "internal error: the writer panicked while applying {what}; nothing of it was \
         applied (see the server log)"
    ))
}

/// The message of a panic payload (`panic!` with a literal or with format arguments).
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(a non-string panic payload)"
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::{Kind, State};
    use crate::store::{OpenHooks, Store, StoreConfig};
    use sha2::Digest as _;
    use std::fs;

    /// A second `Writer` over a store's environment, so a test can hand it an exact
    /// batch (the store's own thread may interleave its own transactions; LMDB
    /// serializes them).
    fn writer_of(store: &Store) -> Writer {
        Writer {
            events: EventSettings {
                max: 1_000_000,
                max_age_ms: i64::MAX,
                sink: None,
            },
            next_seq: std::cell::Cell::new(1),
            env: store.inner.env.clone(),
            dbs: store.inner.dbs,
            layout: store.inner.layout.clone(),
            durability: Durability::None,
            max_batch: 16,
            default_quota: None,
            session_writes: AtomicU64::new(0),
            counters: Arc::new(Counters::default()),
        }
    }

    fn job(cmd: Command) -> (Job, crossbeam_channel::Receiver<ReplyResult>) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job = Job {
            cmd,
            reply: ReplyTo::Blocking(tx),
            actor: "test".into(),
        };
        (job, rx)
    }

    fn create_with_blob(
        store: &Store,
        name: &str,
        bytes: &[u8],
    ) -> (Command, PathBuf, Sha256, ObjectId) {
        let tmp_path = store.tmp_path();
        fs::write(&tmp_path, bytes).unwrap();
        let sha256: Sha256 = sha2::Sha256::digest(bytes).into();
        let record = ObjectRecord::new(Kind::File, "ns", name, 1);
        let id = record.id;
        let cmd = Command::Create {
            record,
            blob: Some(NewBlob {
                tmp_path: tmp_path.clone(),
                sha256,
                size: bytes.len() as u64,
            }),
            unique_name: false,
        };
        (cmd, tmp_path, sha256, id)
    }

    #[test]
    fn a_panic_fails_every_command_of_its_batch_and_removes_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = StoreConfig::new(dir.path().join("data"));
        cfg.durability = Durability::None;
        // No background GC: it would race this second writer's links (the store's
        // invariant is one writer thread; only this test breaks it, knowingly).
        let hooks = OpenHooks {
            background_gc: false,
            ..OpenHooks::default()
        };
        let store = Store::open_with(cfg, hooks).unwrap();
        let w = writer_of(&store);
        let panics = WRITER_PANICS.load(Ordering::Relaxed);

        // Linked before the panic (its file is already under blobs/), queued after it,
        // and the panic itself: all three fail, nothing remains.
        let (first, tmp1, sha1, id1) = create_with_blob(&store, "first", b"linked before");
        let (last, tmp2, sha2, _) = create_with_blob(&store, "last", b"queued after");
        let (j1, r1) = job(first);
        let (j2, r2) = job(Command::DebugPanic);
        let (j3, r3) = job(last);
        w.run_batch(vec![j1, j2, j3]);
        for rx in [r1, r2, r3] {
            let r = rx.recv().unwrap();
            assert!(matches!(&r, Err(StoreError::Internal(_))), "{r:?}");
        }
        assert!(WRITER_PANICS.load(Ordering::Relaxed) > panics);
        assert_eq!(w.counters.failed_batches.load(Ordering::Relaxed), 1);
        assert_eq!(w.counters.batches.load(Ordering::Relaxed), 0);
        assert_eq!(w.counters.data_generation.load(Ordering::Relaxed), 0);
        assert!(!tmp1.exists() && !tmp2.exists(), "temp files left");
        assert!(
            !store.blob_path(&sha1).exists(),
            "a fresh blob file was left"
        );
        assert!(!store.blob_path(&sha2).exists());
        assert_eq!(store.get_object(id1).unwrap(), None);
        assert_eq!(store.get_blob(&sha1).unwrap(), None);

        // The next batch goes through.
        let (cmd, _, sha, _) = create_with_blob(&store, "next", b"next batch");
        let (j, r) = job(cmd);
        w.run_batch(vec![j]);
        let rec = match r.recv().unwrap() {
            Ok(Reply::Object(rec)) => rec,
            other => panic!("{other:?}"),
        };
        assert_eq!((rec.state, rec.sha256), (State::Stored, Some(sha)));
        assert_eq!(w.counters.data_generation.load(Ordering::Relaxed), 1);
        drop(w);
        drop(store);
        let report = crate::store::check(&dir.path().join("data")).unwrap();
        assert!(report.is_consistent(), "{:?}", report.problems);
        assert!(report.orphans.is_empty(), "{:?}", report.orphans);
    }

    #[test]
    fn panic_messages() {
        let r = panic::catch_unwind(|| panic!("literal"));
        assert_eq!(panic_message(r.unwrap_err().as_ref()), "literal");
        let n = 3;
        let r = panic::catch_unwind(|| panic!("formatted {n}"));
        assert_eq!(panic_message(r.unwrap_err().as_ref()), "formatted 3");
    }
}
