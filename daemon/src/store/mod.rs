//! The blob store: managed blob files plus LMDB metadata, behind one cheap `Store`
//! handle that any worker thread can read through and one writer thread that makes
//! every change.
//!
//! Contract (the HTTP layer relies on each point):
//!
//! * **Reads** (`get_object`, `get_by_name`, `get_by_alias`, `get_blob`, `authenticate`,
//!   `list_objects`, `stats`) each open one short LMDB read transaction, copy out what
//!   they return, and drop it before returning. They never block on the writer and never
//!   open a second read transaction while one is open. The environment is opened with
//!   heed's `read_txn_without_tls` (LMDB `MDB_NOTLS`): a read transaction is then tied to
//!   its `RoTxn` object instead of to its thread, so any number of worker threads (or a
//!   monoio task that moved) can read concurrently without the "one read txn per thread"
//!   rule of LMDB's default. No cargo feature is needed for that in heed 0.22.
//! * **Writes** go through [`WriterHandle::submit`] as [`Command`]s. A reply means the
//!   change is committed (and, with [`Durability::Fsync`], on disk): only then may a 2xx
//!   be sent. See `writer/` for group commit, the order of file and LMDB effects, the
//!   two generation counters read caches key on, and supervision.
//! * **Schema evolution**: every record carries the layout version of its type
//!   (`records/`), and `open` migrates an older store in bounded, resumable batches
//!   before anything else touches it (`migrate.rs`). A store written by a newer ringbox
//!   is refused, never guessed at.
//! * **Crash safety**: an upload is fsynced in `tmp/` by the caller, renamed into
//!   `blobs/` and its directory fsynced by the writer, and only then is the record
//!   committed. A crash at any point leaves either nothing visible (`tmp/` is emptied at
//!   open) or a blob file no record references (collected by the background GC that
//!   every `open` starts). Blob files are unlinked only after the commit that dropped
//!   their last reference.
//! * **One process per data directory**: `open` takes an exclusive `flock` on
//!   `<data>/ringbox.lock`, so a second daemon (or `ringbox gc`) cannot run GC against
//!   uploads the first one is linking. `check` takes a shared lock: it refuses to run
//!   against a live daemon, whose in-flight changes would show up as false problems.
//!
//! * **Listing** is a range scan of the names index (see `keys.rs`): O(log n) to find
//!   the start, O(page) to read, never O(store). Measured (release build, 2-core VM,
//!   `stress_list_page`): a page of 100 takes ~180 µs with 1k objects in the store and
//!   ~110-150 µs with 1M, for a whole-store page, a namespace page after a cursor, a
//!   name prefix, a prefix across all namespaces (skip scan) and a `q` filter alike.
//!
//! Errors are [`StoreError`]; I/O errors carry the path and, where it helps, what the
//! operator can do about it. Out of disk (ENOSPC, EDQUOT) and out of LMDB map
//! (`MDB_MAP_FULL`) are both [`StoreError::Full`], which the HTTP layer answers with 507.

pub mod blobs;
pub mod check;
mod events;
pub mod expiry;
pub mod keys;
pub mod migrate;
pub mod records;
pub mod sharing;
mod tokens;
mod users;
mod webhooks;
pub mod writer;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use heed::types::Bytes;
use heed::{Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};

// The store's API for the daemon, re-exported flat. The daemon is a binary crate, so a
// re-export it does not use yet would be an unused import: allowed here.
#[allow(unused_imports)]
pub use crate::util::hex::encode as sha256_hex;
#[allow(unused_imports)]
pub use check::{check, check_with, gc, CheckReport};
#[allow(unused_imports)]
pub use expiry::{last_access_of, DueEntry, IdleEntry};
#[allow(unused_imports)]
pub use keys::{MAX_ALIAS_BYTES, MAX_NAMESPACE_BYTES, MAX_NAME_BYTES};
#[allow(unused_imports)]
pub use migrate::SCHEMA_VERSION;
#[allow(unused_imports)]
pub use records::{
    BlobRecord, DeliveryRecord, EventObject, EventRecord, ExternalFile, Gps, Kind, MediaInfo,
    ObjectRecord, Principal, Role, SessionRecord, Source, State, TokenRecord, UserRecord,
    WebhookRecord,
};
#[allow(unused_imports)]
pub use records::{CollectionRecord, ShareRecord, ShareTarget};
#[allow(unused_imports)]
pub use sharing::{MemberPage, OwnedPage};
#[allow(unused_imports)]
pub use tokens::{ct_eq, generate_token, new_token_id, token_sha256, ADMIN_USER};
#[allow(unused_imports)]
pub use users::OwnerPage;
#[allow(unused_imports)]
pub use writer::EventSettings;
#[allow(unused_imports)]
pub use writer::{
    CollectionCommand, Due, ExpiryCommand, ObjectAccess, ShareCommand, SweepItem, SweepReport,
    MAX_MEMBERS,
};
#[allow(unused_imports)]
pub use writer::{
    Command, GcReport, MetadataChange, NewBlob, ObjectPatch, Reply, UserChange, WebhookChange,
    WebhookProgress, WriterHandle, WriterStats, MAX_METADATA_BYTES,
};

/// An object's id: a UUIDv7, stored as its 16 big-endian bytes (time-ordered).
pub type ObjectId = uuid::Uuid;
/// A SHA-256 digest.
pub type Sha256 = [u8; 32];

/// LMDB's map is virtual address space, not disk: reserve a lot so a growing store never
/// hits `MDB_MAP_FULL` in practice (which would be a 507, not a crash).
#[cfg(target_pointer_width = "64")]
pub const DEFAULT_MAP_SIZE: usize = 1 << 40;
/// On 32-bit targets the address space itself is the limit.
#[cfg(not(target_pointer_width = "64"))]
pub const DEFAULT_MAP_SIZE: usize = 1 << 30;
/// Group commit: how many queued commands share one write transaction (one fsync).
pub const DEFAULT_MAX_BATCH: usize = 256;
/// Index entries one `list_objects` call may scan, so a rare `q` cannot make a single
/// request walk the whole store; it returns fewer objects and a cursor instead.
pub const DEFAULT_MAX_SCAN: usize = 10_000;
/// LMDB reader slots. With `MDB_NOTLS` one slot is used per open read transaction;
/// reads are short and synchronous, so this bounds concurrent readers (threads), not
/// requests.
const MAX_READERS: u32 = 1024;
/// objects, names, blobs, tokens, meta, aliases, plus room for the tables still to come
/// (users, sessions, collections, shares, events, webhooks, audit, datasets, ...). LMDB
/// sizes per-transaction arrays by it and scans it on every database open, so it is a
/// modest bound, not "unlimited" (raised from 32 when collections, shares and the
/// expiry indexes brought ten more).
const MAX_DBS: u32 = 64;
/// Map sizes are rounded up to this, a multiple of every page size Linux uses.
const MAP_SIZE_ALIGN: usize = 64 * 1024;
const META_SCHEMA_VERSION: &[u8] = b"schema_version";
const META_ADMIN_TOKEN: &[u8] = b"admin_token_sha256";
const META_BLOB_BYTES: &[u8] = b"blob_bytes";

/// How hard a commit tries to reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every acknowledged change survives power loss: blobs and their directories are
    /// fsynced and LMDB syncs on commit.
    #[default]
    Fsync,
    /// No fsync anywhere (LMDB `NO_SYNC | NO_META_SYNC`): a crash of the process loses
    /// nothing, a power loss may lose recent commits. For tests and scratch stores.
    None,
}

/// How to open a store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub durability: Durability,
    /// LMDB map size in bytes (virtual; default 1 TiB). Rounded up to 64 KiB.
    pub map_size: usize,
    /// Most commands per write transaction (default 256).
    pub max_batch: usize,
    /// Bytes each user may store unless their record overrides it (`None` = unlimited).
    pub default_quota: Option<u64>,
    /// Event retention: at most this many events are kept (the oldest go first).
    pub events_max: u64,
    /// Event retention: events older than this are dropped.
    pub events_max_age: std::time::Duration,
    /// Called on the writer thread after each commit with the events it committed, in
    /// order (the daemon fans them out to its workers' subscribers).
    pub on_events: Option<EventSink>,
}

/// Receives committed events (see [`StoreConfig::on_events`]).
#[derive(Clone)]
pub struct EventSink(pub Arc<dyn Fn(Arc<[EventRecord]>) + Send + Sync>);

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventSink")
    }
}

impl StoreConfig {
    /// A config with the defaults: `Durability::Fsync`, 1 TiB map, batches of 256, no
    /// quota.
    pub fn new(data_dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            data_dir: data_dir.into(),
            durability: Durability::Fsync,
            map_size: DEFAULT_MAP_SIZE,
            max_batch: DEFAULT_MAX_BATCH,
            default_quota: None,
            events_max: 1_000_000,
            events_max_age: std::time::Duration::from_secs(7 * 86_400),
            on_events: None,
        }
    }
}

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such object.
    #[error("object not found")]
    NotFound,
    /// The request contradicts the object (e.g. PUT content on a text object).
    #[error("{0}")]
    Conflict(String),
    /// Bad input caught by the store (e.g. a NUL in a name, a malformed cursor).
    #[error("{0}")]
    Invalid(String),
    /// The owner's quota would be exceeded (413): `limit` bytes, `used` now, `wanted`
    /// more.
    #[error("the quota of {limit} bytes would be exceeded: {used} bytes are used and this needs {wanted} more")]
    QuotaExceeded { limit: u64, used: u64, wanted: u64 },
    /// ENOSPC/EDQUOT or `MDB_MAP_FULL`: the HTTP layer answers 507.
    #[error("no space left: the disk or the metadata map is full")]
    Full,
    /// An I/O error; the message names the path and, where it helps, the remedy.
    #[error("{0}")]
    Io(io::Error),
    /// Any other LMDB (heed) error, or a record that cannot be decoded.
    #[error("metadata store: {0}")]
    Lmdb(String),
    /// A bug caught at run time (the writer panicked while applying the command's
    /// batch; nothing of the batch was applied). The HTTP layer answers 500.
    #[error("{0}")]
    Internal(String),
    /// The writer thread is gone (the store was dropped).
    #[error("the store is closed (its writer thread has stopped)")]
    Closed,
}

impl StoreError {
    /// A copy of this error, for replying the same failure to every command of a batch
    /// (`io::Error` is not `Clone`).
    pub(crate) fn replicate(&self) -> StoreError {
        match self {
            StoreError::NotFound => StoreError::NotFound,
            StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
            StoreError::Invalid(m) => StoreError::Invalid(m.clone()),
            StoreError::Full => StoreError::Full,
            StoreError::QuotaExceeded {
                limit,
                used,
                wanted,
            } => StoreError::QuotaExceeded {
                limit: *limit,
                used: *used,
                wanted: *wanted,
            },
            StoreError::Io(e) => StoreError::Io(io::Error::new(e.kind(), e.to_string())),
            StoreError::Lmdb(m) => StoreError::Lmdb(m.clone()),
            StoreError::Internal(m) => StoreError::Internal(m.clone()),
            StoreError::Closed => StoreError::Closed,
        }
    }
}

fn is_storage_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == io::ErrorKind::StorageFull
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> StoreError {
        if is_storage_full(&e) {
            StoreError::Full
        } else {
            StoreError::Io(e)
        }
    }
}

impl From<heed::Error> for StoreError {
    fn from(e: heed::Error) -> StoreError {
        match e {
            heed::Error::Mdb(heed::MdbError::MapFull) => StoreError::Full,
            heed::Error::Io(e) => e.into(),
            other => StoreError::Lmdb(other.to_string()),
        }
    }
}

/// An I/O error with what was being done (and the path) in its message, plus a hint for
/// the common operator mistakes. Storage-full errors become [`StoreError::Full`].
pub(crate) fn io_context(e: io::Error, what: impl fmt::Display) -> StoreError {
    if is_storage_full(&e) {
        tracing::warn!(error = %e, "{what}");
        return StoreError::Full;
    }
    let hint = match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::PermissionDenied, _) => {
            "; check that the data directory is writable by the ringbox user"
        }
        (_, Some(libc::EROFS)) => "; the file system is mounted read-only",
        (_, Some(libc::EXDEV)) => "; tmp/ and blobs/ must be on the same file system",
        _ => "",
    };
    StoreError::Io(io::Error::new(e.kind(), format!("{what}: {e}{hint}")))
}

pub(crate) type Db = heed::Database<Bytes, Bytes>;

/// The named LMDB databases (all keys and values are raw bytes, encoded by `keys.rs`
/// and `records/`).
#[derive(Clone, Copy)]
pub(crate) struct Dbs {
    /// id[16] -> ObjectRecord
    pub objects: Db,
    /// ns \0 name \0 id[16] -> empty
    pub names: Db,
    /// sha256[32] -> BlobRecord
    pub blobs: Db,
    /// sha256(token)[32] -> TokenRecord
    pub tokens: Db,
    /// schema_version, admin_token_sha256, blob_bytes, migration.<v>.cursor
    pub meta: Db,
    /// alias ("scheme:value") -> id[16] (since schema version 2)
    pub aliases: Db,
    /// user id -> UserRecord (since schema version 3)
    pub users: Db,
    /// lower-cased username -> user id
    pub usernames: Db,
    /// user \0 token id[16] -> sha256(token)[32]
    pub user_tokens: Db,
    /// sha256(refresh token)[32] -> SessionRecord
    pub sessions: Db,
    /// access token jti -> sha256(refresh token)[32] of its session
    pub session_jtis: Db,
    /// revoked access token jti -> its expiry (Unix ms, big-endian i64)
    pub revoked: Db,
    /// owner \0 ns \0 name \0 id[16] -> empty
    pub owner_names: Db,
    /// owner \0 id[16] -> empty
    pub owner_time: Db,
    /// owner \0 sha256[32] -> count (big-endian u64)
    pub owner_blobs: Db,
    /// owner \0 ns -> the owner's object count in ns (big-endian u64; since schema
    /// version 5)
    pub owner_ns_counts: Db,
    /// seq (big-endian u64) -> EventRecord
    pub events: Db,
    /// webhook id[16] -> WebhookRecord
    pub webhooks: Db,
    /// webhook id[16] ++ attempt counter (big-endian u64) -> DeliveryRecord
    pub deliveries: Db,
    /// namespace \0 seq[8 BE] -> a JSON document (NoSQL datasets; see
    /// `writer/documents.rs`). Created at open where missing: no migration needed.
    pub documents: Db,
    /// Collections and share links (since schema version 4; see `sharing.rs`).
    pub sharing: sharing::SharingDbs,
    /// The expiry and last-access time indexes (since schema version 4; `expiry.rs`).
    pub expiry: expiry::ExpiryDbs,
}

const DB_NAMES: [&str; 20] = [
    "objects",
    "names",
    "blobs",
    "tokens",
    "meta",
    "aliases",
    "users",
    "usernames",
    "user_tokens",
    "sessions",
    "session_jtis",
    "revoked",
    "owner_names",
    "owner_time",
    "owner_blobs",
    "events",
    "webhooks",
    "deliveries",
    "documents",
    "owner_ns_counts",
];

impl Dbs {
    /// Opens every database, creating the missing ones (a new store, or one of an older
    /// schema that did not have them yet).
    fn create(env: &Env<WithoutTls>, wtxn: &mut RwTxn) -> Result<Dbs, StoreError> {
        let mut dbs = Vec::with_capacity(DB_NAMES.len());
        for name in DB_NAMES {
            dbs.push(env.create_database::<Bytes, Bytes>(wtxn, Some(name))?);
        }
        Ok(Dbs {
            objects: dbs[0],
            names: dbs[1],
            blobs: dbs[2],
            tokens: dbs[3],
            meta: dbs[4],
            aliases: dbs[5],
            users: dbs[6],
            usernames: dbs[7],
            user_tokens: dbs[8],
            sessions: dbs[9],
            session_jtis: dbs[10],
            revoked: dbs[11],
            owner_names: dbs[12],
            owner_time: dbs[13],
            owner_blobs: dbs[14],
            events: dbs[15],
            webhooks: dbs[16],
            deliveries: dbs[17],
            documents: dbs[18],
            owner_ns_counts: dbs[19],
            sharing: sharing::SharingDbs::create(env, wtxn)?,
            expiry: expiry::ExpiryDbs::create(env, wtxn)?,
        })
    }
}

/// Reads a big-endian u64 from the meta database (0 when absent).
pub(crate) fn meta_u64(meta: &Db, txn: &RoTxn, key: &[u8]) -> Result<u64, StoreError> {
    match meta.get(txn, key)? {
        None => Ok(0),
        Some(v) => <[u8; 8]>::try_from(v)
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Lmdb(format!("corrupt meta value for {key:?}"))),
    }
}

/// Adds `delta` to the stored total of blob bytes (kept so `stats` is O(1)).
pub(crate) fn adjust_blob_bytes(dbs: &Dbs, txn: &mut RwTxn, delta: i128) -> Result<(), StoreError> {
    let current = meta_u64(&dbs.meta, txn, META_BLOB_BYTES)?;
    let next = (i128::from(current) + delta).clamp(0, i128::from(u64::MAX)) as u64;
    dbs.meta.put(txn, META_BLOB_BYTES, &next.to_be_bytes())?;
    Ok(())
}

/// Opens the LMDB environment in `meta_dir`.
pub(crate) fn open_env(
    meta_dir: &Path,
    map_size: usize,
    durability: Durability,
    read_only: bool,
) -> Result<Env<WithoutTls>, StoreError> {
    let map_size = map_size
        .max(MAP_SIZE_ALIGN)
        .checked_next_multiple_of(MAP_SIZE_ALIGN)
        .unwrap_or(usize::MAX - usize::MAX % MAP_SIZE_ALIGN);
    let mut opts = EnvOpenOptions::new().read_txn_without_tls();
    opts.map_size(map_size)
        .max_dbs(MAX_DBS)
        .max_readers(MAX_READERS);
    let mut flags = EnvFlags::empty();
    if durability == Durability::None {
        flags |= EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC;
    }
    if read_only {
        flags |= EnvFlags::READ_ONLY;
    }
    // SAFETY: NO_SYNC and NO_META_SYNC are "unsafe" in heed because a power loss may
    // lose or (with NO_SYNC) roll back recent commits; the operator chose exactly that
    // with Durability::None. READ_ONLY only forbids writes.
    unsafe {
        opts.flags(flags);
    }
    // SAFETY: LMDB maps the data file; modifying it behind LMDB's back is UB. Only this
    // module opens <data>/meta, once per process (heed refuses a second open with
    // EnvAlreadyOpened, and Store::open holds an exclusive flock on the data directory
    // against other ringbox processes; other LMDB processes use LMDB's own locking).
    // It is never on a network file system by our documentation.
    let env = unsafe { opts.open(meta_dir) }.map_err(|e| match e {
        heed::Error::Io(e) => io_context(
            e,
            format!("cannot open the metadata store {}", meta_dir.display()),
        ),
        heed::Error::EnvAlreadyOpened => StoreError::Lmdb(format!(
            "{} is already open in this process",
            meta_dir.display()
        )),
        heed::Error::Mdb(heed::MdbError::Invalid) => StoreError::Lmdb(format!(
            "{} does not hold a valid LMDB environment (MDB_INVALID); is the data \
             directory right?",
            meta_dir.display()
        )),
        other => StoreError::Lmdb(format!(
            "cannot open the metadata store {}: {other}",
            meta_dir.display()
        )),
    })?;
    Ok(env)
}

/// The error for a store whose schema is newer than this build's.
pub(crate) fn newer_schema(meta_dir: &Path, found: u32) -> StoreError {
    StoreError::Lmdb(format!(
        "{} has schema version {found}, this ringbox understands versions up to {}: it was \
         written by a newer ringbox; run that release (or newer) on it",
        meta_dir.display(),
        migrate::SCHEMA_VERSION
    ))
}

/// A data directory whose metadata file is missing but whose `blobs/` holds files was
/// damaged or half-restored: opening it would create an empty store and the
/// background GC would then delete every blob. Refuse, and say what to do.
fn refuse_orphaned_blobs(layout: &blobs::Layout) -> Result<(), StoreError> {
    if layout.meta_dir().join("data.mdb").exists() {
        return Ok(());
    }
    for b in 0..=255u8 {
        let dir = layout.blob_dir(b);
        let has_blob = fs::read_dir(&dir)
            .map(|mut entries| {
                entries.any(|e| {
                    e.ok()
                        .and_then(|e| blobs::parse_blob_file_name(&e.file_name()))
                        .is_some()
                })
            })
            .unwrap_or(false);
        if has_blob {
            return Err(StoreError::Io(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} is missing but {} holds blob files: the metadata of this data \
                     directory is gone (restore meta/ from a backup, or move blobs/ away to \
                     start an empty store); refusing to start, which would delete the blobs",
                    layout.meta_dir().join("data.mdb").display(),
                    layout.blobs_dir().display()
                ),
            )));
        }
    }
    Ok(())
}

/// Takes the data directory's lock file: exclusive for a running store, shared for
/// `check`. `create` = create the lock file if missing.
pub(crate) fn lock_data_dir(
    root: &Path,
    exclusive: bool,
    create: bool,
) -> Result<Option<fs::File>, StoreError> {
    use rustix::fs::FlockOperation;
    let path = root.join("ringbox.lock");
    let file = match fs::OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if !create && e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_context(e, format!("cannot open {}", path.display()))),
    };
    let op = if exclusive {
        FlockOperation::NonBlockingLockExclusive
    } else {
        FlockOperation::NonBlockingLockShared
    };
    match rustix::fs::flock(&file, op) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(StoreError::Io(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "the data directory {} is in use by another ringbox process (or another \
                 store in this one); stop it first",
                root.display()
            ),
        ))),
        Err(e) => Err(io_context(
            e.into(),
            format!("cannot lock {}", path.display()),
        )),
    }
}

/// A handle to an open store. Cheap to clone (an `Arc`), `Send + Sync`. Dropping the
/// last handle stops the writer thread after it has finished the queued commands.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    env: Env<WithoutTls>,
    dbs: Dbs,
    layout: blobs::Layout,
    durability: Durability,
    writer: WriterHandle,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    admin_token_created: bool,
    /// Held for the life of the store; declared last so it is released after the
    /// environment is closed.
    _lock: Option<fs::File>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.writer.shutdown();
        let handle = match self.writer_thread.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(handle) = handle {
            if handle.thread().id() == std::thread::current().id() {
                return;
            }
            if handle.join().is_err() {
                tracing::error!("the store's writer thread panicked");
            }
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.inner.layout.root())
            .field("durability", &self.inner.durability)
            .finish_non_exhaustive()
    }
}

/// A listing request. `limit` 0 is treated as 1.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// `None` = every namespace (ordered by namespace, then name, then id).
    pub namespace: Option<String>,
    /// Name starts with (a range scan when `namespace` is set; a skip scan over the
    /// namespaces otherwise).
    pub prefix: Option<String>,
    /// Case-insensitive substring of the name (a filter on the scanned range).
    pub q: Option<String>,
    pub limit: usize,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only this owner's objects (through the per-owner index, not a filter).
    pub owner: Option<String>,
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListPage {
    pub objects: Vec<ObjectRecord>,
    /// Set when more objects may follow; pass it back as `ListQuery::cursor`.
    pub next_cursor: Option<String>,
}

/// Counts for `/v1/stats` and `/metrics`. All O(1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(dead_code)] // see `Store::stats`
pub struct StoreStats {
    pub objects: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
}

/// How `Store::open_with` opens: what the CLI tools and tests change.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpenHooks {
    /// Queue a GC pass at open (the daemon does; `ringbox gc` runs its own).
    pub background_gc: bool,
    pub migration: migrate::Options,
}

impl Default for OpenHooks {
    fn default() -> OpenHooks {
        OpenHooks {
            background_gc: true,
            migration: migrate::Options::default(),
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `cfg.data_dir`: creates the directories
    /// (`meta/`, `blobs/00..ff`, `tmp/`), locks the data directory, empties `tmp/`, opens
    /// LMDB, refuses a store written by a newer ringbox, migrates one of an older schema
    /// (see `migrate.rs`; resumes an interrupted migration), creates the admin token on
    /// first open, starts the writer thread and queues a background GC pass (not waited
    /// for).
    pub fn open(cfg: StoreConfig) -> Result<Store, StoreError> {
        Store::open_with(cfg, OpenHooks::default())
    }

    pub(crate) fn open_with(cfg: StoreConfig, hooks: OpenHooks) -> Result<Store, StoreError> {
        let layout = blobs::Layout::new(&cfg.data_dir);
        blobs::create_layout(&layout, cfg.durability)?;
        let lock = lock_data_dir(layout.root(), true, true)?;
        blobs::empty_tmp(&layout)?;
        refuse_orphaned_blobs(&layout)?;
        let env = open_env(&layout.meta_dir(), cfg.map_size, cfg.durability, false)?;
        if cfg.durability == Durability::Fsync {
            // LMDB creates data.mdb and lock.mdb but never syncs their directory: without
            // this, a power loss could forget the files' names and with them the store.
            blobs::fsync_dir(&layout.meta_dir()).map_err(|e| {
                io_context(e, format!("cannot fsync {}", layout.meta_dir().display()))
            })?;
        }
        match env.clear_stale_readers() {
            Ok(0) => {}
            Ok(n) => tracing::info!(n, "cleared stale LMDB readers left by a killed process"),
            Err(e) => tracing::warn!(error = %e, "cannot clear stale LMDB readers"),
        }
        // The version first, in a read transaction: a store of a newer ringbox is refused
        // before this build writes anything to it (not even a database it lacks).
        let found = {
            let rtxn = env.read_txn()?;
            match env.open_database::<Bytes, Bytes>(&rtxn, Some("meta"))? {
                Some(meta) => migrate::stored_version(&meta, &rtxn)?,
                None => None,
            }
        };
        if let Some(v) = found.filter(|&v| v > migrate::SCHEMA_VERSION) {
            return Err(newer_schema(&layout.meta_dir(), v));
        }
        let mut wtxn = env.write_txn()?;
        let dbs = Dbs::create(&env, &mut wtxn)?;
        if found.is_none() {
            dbs.meta.put(
                &mut wtxn,
                META_SCHEMA_VERSION,
                &migrate::SCHEMA_VERSION.to_be_bytes(),
            )?;
        }
        wtxn.commit()?;
        if let Some(v) = found.filter(|&v| v < migrate::SCHEMA_VERSION) {
            tracing::info!(
                data_dir = %layout.root().display(),
                from = v,
                to = migrate::SCHEMA_VERSION,
                "the store was written by an older ringbox; migrating it"
            );
            migrate::run(&env, &dbs, v, hooks.migration)?;
        }
        let admin_token_created = tokens::ensure_admin_token(&env, &dbs, &layout)?;
        let (writer, thread) = writer::start(
            env.clone(),
            dbs,
            layout.clone(),
            cfg.durability,
            cfg.max_batch.max(1),
            cfg.default_quota,
            writer::EventSettings {
                max: cfg.events_max.max(1),
                max_age_ms: cfg.events_max_age.as_millis().min(i64::MAX as u128) as i64,
                sink: cfg.on_events.clone(),
            },
        )?;
        if hooks.background_gc {
            writer.start_background_gc();
        }
        tracing::info!(data_dir = %layout.root().display(), durability = ?cfg.durability, "store opened");
        Ok(Store {
            inner: Arc::new(Inner {
                env,
                dbs,
                layout,
                durability: cfg.durability,
                writer,
                writer_thread: Mutex::new(Some(thread)),
                admin_token_created,
                _lock: lock,
            }),
        })
    }

    pub fn data_dir(&self) -> &Path {
        self.inner.layout.root()
    }

    /// `<data>/admin.token`.
    pub fn admin_token_path(&self) -> PathBuf {
        self.inner.layout.admin_token_path()
    }

    /// Whether this `open` created the admin token (first start), so the caller can
    /// say where it was written.
    // Store API the daemon does not call yet; allowed so the binary crate's dead-code
    // lint stays quiet until it does.
    #[allow(dead_code)]
    pub fn admin_token_created(&self) -> bool {
        self.inner.admin_token_created
    }

    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// The object with this id, if any.
    pub fn get_object(&self, id: ObjectId) -> Result<Option<ObjectRecord>, StoreError> {
        let txn = self.inner.env.read_txn()?;
        self.object_in(&txn, &id)
    }

    /// The object named `name` in namespace `ns` (the first by id when several share
    /// the name; see `Command::Create`'s `unique_name`). `Invalid` for a namespace or
    /// name the index cannot hold.
    #[allow(dead_code)] // Store API the daemon does not call yet
    pub fn get_by_name(&self, ns: &str, name: &str) -> Result<Option<ObjectRecord>, StoreError> {
        let prefix = keys::exact_name_prefix(ns, name)?;
        let txn = self.inner.env.read_txn()?;
        let id = match self.inner.dbs.names.prefix_iter(&txn, &prefix)?.next() {
            None => return Ok(None),
            Some(item) => match keys::parse_name_key(item?.0) {
                Some(k) => k.id,
                None => {
                    return Err(StoreError::Lmdb(
                        "malformed names index key; run `ringbox check`".into(),
                    ))
                }
            },
        };
        self.object_in(&txn, &id)
    }

    /// The object that holds `alias` ("scheme:value"), if any.
    #[allow(dead_code)] // Store API the daemon does not call yet
    pub fn get_by_alias(&self, alias: &str) -> Result<Option<ObjectRecord>, StoreError> {
        if alias.is_empty() || alias.len() > keys::MAX_ALIAS_BYTES {
            return Ok(None); // no such key can exist (and LMDB refuses it as a key)
        }
        let txn = self.inner.env.read_txn()?;
        let Some(value) = self.inner.dbs.aliases.get(&txn, alias.as_bytes())? else {
            return Ok(None);
        };
        let id = ObjectId::from_slice(value).map_err(|_| {
            StoreError::Lmdb(format!(
                "alias {alias:?} has a malformed id; run `ringbox check`"
            ))
        })?;
        self.object_in(&txn, &id)
    }

    /// The ids of the objects holding an alias that starts with `prefix` (at most
    /// `limit`, in alias order): a lookup by a key several objects may share, spelled
    /// as one alias per object (`scheme:key:object`).
    pub fn ids_by_alias_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<ObjectId>, StoreError> {
        if prefix.is_empty() || prefix.len() > keys::MAX_ALIAS_BYTES {
            return Ok(Vec::new());
        }
        let txn = self.inner.env.read_txn()?;
        let mut out = Vec::new();
        for item in self
            .inner
            .dbs
            .aliases
            .prefix_iter(&txn, prefix.as_bytes())?
        {
            let (_, value) = item?;
            if let Ok(id) = ObjectId::from_slice(value) {
                out.push(id);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The object with this id, read in an open transaction.
    fn object_in(&self, txn: &RoTxn, id: &ObjectId) -> Result<Option<ObjectRecord>, StoreError> {
        match self.inner.dbs.objects.get(txn, &keys::object_key(id))? {
            Some(bytes) => records::decode_object(bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The blob record for this hash, if the blob is stored.
    pub fn get_blob(&self, sha: &Sha256) -> Result<Option<BlobRecord>, StoreError> {
        let txn = self.inner.env.read_txn()?;
        match self.inner.dbs.blobs.get(&txn, sha)? {
            Some(bytes) => records::decode_blob(bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Who `token` (as presented by the client, without `Bearer `) belongs to. Looks up
    /// SHA-256(token); the final equality is decided by a constant-time comparison of
    /// the digests, and expired tokens do not authenticate.
    #[allow(dead_code)] // part of the module's API; not every caller uses it yet
    pub fn authenticate(&self, token: &[u8]) -> Result<Option<Principal>, StoreError> {
        let digest = token_sha256(token);
        let txn = self.inner.env.read_txn()?;
        let Some((key, value)) = self
            .inner
            .dbs
            .tokens
            .get_greater_than_or_equal_to(&txn, &digest)?
        else {
            return Ok(None);
        };
        if !ct_eq(key, &digest) {
            return Ok(None);
        }
        let rec = records::decode_token(value)?;
        Ok(rec
            .is_valid_at(crate::util::time::now_ms())
            .then(|| rec.principal()))
    }

    /// One page of a listing, scanning at most [`DEFAULT_MAX_SCAN`] index entries.
    /// Every object appears exactly once across pages, even when others are added or
    /// deleted between pages. A malformed cursor is `Invalid("cursor ...")`.
    #[allow(dead_code)] // the core lists through `list_objects_filtered`
    pub fn list_objects(&self, q: &ListQuery) -> Result<ListPage, StoreError> {
        self.list_objects_filtered(q, DEFAULT_MAX_SCAN, |_| true)
    }

    /// [`Store::list_objects`] with an explicit scan bound and a filter on the decoded
    /// record (for `tag=`, `mime=`, owner, ...). Objects the filter rejects still count
    /// as scanned, so a page may hold fewer than `limit` objects and still have a cursor.
    pub fn list_objects_filtered<F>(
        &self,
        q: &ListQuery,
        max_scan: usize,
        mut filter: F,
    ) -> Result<ListPage, StoreError>
    where
        F: FnMut(&ObjectRecord) -> bool,
    {
        let limit = q.limit.max(1);
        let max_scan = max_scan.max(1);
        let prefix = q.prefix.as_deref().unwrap_or("");
        keys::validate_name(prefix)?;
        let needle = q.q.as_deref().filter(|s| !s.is_empty()).map(Needle::new);
        // One owner's objects are the `owner_names` index, whose keys are `owner \0`
        // followed by a names index key: the same scan, under that prefix. Cursors hold
        // the key without it, so they look the same either way.
        let base = match &q.owner {
            Some(owner) => {
                keys::validate_owner(owner)?;
                keys::owner_prefix(owner)
            }
            None => Vec::new(),
        };
        let with_base = |k: &[u8]| {
            let mut v = Vec::with_capacity(base.len() + k.len());
            v.extend_from_slice(&base);
            v.extend_from_slice(k);
            v
        };
        // Every key of the listed range starts with `bound`.
        let bound = match &q.namespace {
            Some(ns) => with_base(&keys::scan_prefix(ns, prefix)?),
            None => base.clone(),
        };
        // No namespace but a prefix: visit each namespace's `ns\0prefix` range in turn.
        let skip_scan = q.namespace.is_none() && !prefix.is_empty();
        let (mut start, mut inclusive) = match &q.cursor {
            Some(c) => {
                let key = with_base(&keys::decode_cursor(c)?);
                if !key.starts_with(&bound) {
                    return Err(StoreError::Invalid(
                        "cursor does not belong to this listing (namespace or prefix changed)"
                            .into(),
                    ));
                }
                (key, false)
            }
            None => (bound.clone(), true),
        };
        let in_range = |k: &[u8]| k.starts_with(&bound);
        let index = if q.owner.is_some() {
            self.inner.dbs.owner_names
        } else {
            self.inner.dbs.names
        };

        let dbs = &self.inner.dbs;
        let txn = self.inner.env.read_txn()?;
        let mut objects = Vec::new();
        let mut scanned = 0usize;
        let mut last = Vec::new();
        let more = 'scan: loop {
            // LMDB refuses an empty key (MDB_BAD_VALSIZE): "from the start" is Unbounded.
            let lower = if inclusive && start.is_empty() {
                Bound::Unbounded
            } else if inclusive {
                Bound::Included(start.as_slice())
            } else {
                Bound::Excluded(start.as_slice())
            };
            let mut iter = index.range(&txn, &(lower, Bound::Unbounded))?;
            let mut reseek = None;
            while let Some(item) = iter.next() {
                let (full, _) = item?;
                if !in_range(full) {
                    break 'scan false;
                }
                let key = &full[base.len()..];
                scanned += 1;
                last.clear();
                last.extend_from_slice(key);
                match keys::parse_name_key(key) {
                    None => tracing::error!(?key, "malformed names index key; run `ringbox check`"),
                    Some(nk) if skip_scan && !nk.name.starts_with(prefix) => {
                        reseek = Some(with_base(&if nk.name < prefix {
                            keys::scan_prefix(nk.namespace, prefix)?
                        } else {
                            keys::namespace_end(nk.namespace)
                        }));
                        break;
                    }
                    Some(nk) => {
                        if needle.as_ref().is_none_or(|n| n.matches(nk.name)) {
                            match dbs.objects.get(&txn, &keys::object_key(&nk.id))? {
                                None => tracing::error!(
                                    id = %nk.id,
                                    "names index entry without its object; run `ringbox check`"
                                ),
                                Some(bytes) => match records::decode_object(bytes) {
                                    Ok(rec) => {
                                        if filter(&rec) {
                                            objects.push(rec);
                                        }
                                    }
                                    Err(e) => {
                                        tracing::error!(id = %nk.id, error = %e, "skipping undecodable object")
                                    }
                                },
                            }
                        }
                    }
                }
                if objects.len() >= limit || scanned >= max_scan {
                    // More may follow if the range has another key.
                    break 'scan match iter.next() {
                        None => false,
                        Some(item) => in_range(item?.0),
                    };
                }
            }
            match reseek {
                Some(k) => {
                    start = k;
                    inclusive = true;
                }
                None => break false,
            }
        };
        drop(txn);
        let next_cursor = (more && !last.is_empty()).then(|| keys::encode_cursor(&last));
        Ok(ListPage {
            objects,
            next_cursor,
        })
    }

    /// `<data>/blobs/ab/<hex>`.
    pub fn blob_path(&self, sha: &Sha256) -> PathBuf {
        self.inner.layout.blob_path(sha)
    }

    /// A fresh unique `<data>/tmp/<uuid>` path (not created) for an upload.
    pub fn tmp_path(&self) -> PathBuf {
        self.inner.layout.tmp_path()
    }

    /// Object count, blob count and total blob bytes.
    // Store API the daemon does not call yet; allowed so the binary crate's dead-code
    // lint stays quiet until it does.
    #[allow(dead_code)]
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let dbs = &self.inner.dbs;
        let txn = self.inner.env.read_txn()?;
        Ok(StoreStats {
            objects: dbs.objects.len(&txn)?,
            blobs: dbs.blobs.len(&txn)?,
            blob_bytes: meta_u64(&dbs.meta, &txn, META_BLOB_BYTES)?,
        })
    }

    /// The queue to the writer thread.
    pub fn writer(&self) -> &WriterHandle {
        &self.inner.writer
    }
}

/// A case-insensitive substring matcher for `q`. ASCII needles against ASCII names (the
/// common case) compare bytes without allocating; anything else lowercases both.
struct Needle {
    lower: String,
}

impl Needle {
    fn new(q: &str) -> Needle {
        Needle {
            lower: q.to_lowercase(),
        }
    }

    fn matches(&self, name: &str) -> bool {
        let needle = self.lower.as_bytes();
        if self.lower.is_ascii() && name.is_ascii() {
            name.as_bytes()
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle))
        } else {
            name.to_lowercase().contains(&self.lower)
        }
    }
}
