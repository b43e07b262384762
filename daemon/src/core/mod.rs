//! The core services every API calls: objects, content, uploads, access decisions,
//! and the shared machinery under them (per-worker read caches, the blocking pool,
//! the cross-worker broadcast). Nothing here knows HTTP: inputs are plain values and
//! byte streams, outputs are records, representations and [`CoreError`]s that each API
//! translates into its own routes, JSON shapes and error bodies.
//!
//! Every rule lives here once (naming, ownership, quotas, de-duplication, lost and
//! pending content, expiry), so every API enforces it the same way.
//!
//! Two handles:
//! - [`Core`]: process-wide, `Send + Sync` (the store, the settings, the pool).
//! - [`Local`]: one per worker thread (its caches), dereferencing to [`Core`]; the
//!   services are methods on it. It is never shared across threads and its `RefCell`s
//!   are never borrowed across an `.await`.

pub mod access;
pub mod audit;
// Users, sessions and rate limits are wired by the users work; until then only the
// library's own tests use it.
#[allow(dead_code)]
pub mod auth;
pub mod blob_cache;
// The cross-worker broadcast is the transport of the change-event feed (WebSocket
// subscriptions); until that feed exists only its tests use it.
#[allow(dead_code)]
pub mod broadcast;
pub mod content;
pub mod error;
pub mod hot_cache;
pub mod identity;
// The JSON ingest engine (RhinoBox's `/ingest/json`, the native datasets); parts of
// its API (analysis details, hints) are used by its own tests only.
#[allow(dead_code)]
pub mod ingest;
pub mod naming;
pub mod objects;
pub mod pool;
pub mod stream;
pub mod upload;

#[cfg(test)]
pub(crate) mod test_support;

use std::cell::RefCell;
use std::ops::Deref;
use std::sync::Arc;

use ringbox_protocol::Limits;

use crate::store::Store;

pub use access::{Anonymous, Caller, Policy};
pub use audit::Audit;
pub use error::{CoreError, ErrorKind};
pub use ingest::IngestService;

use blob_cache::BlobCache;
use hot_cache::HotCache;
use identity::TokenCache;
use pool::BlockingPool;

/// The default `--max-json-body`: a batch of 10,000 small documents fits.
pub const DEFAULT_MAX_JSON_BODY: u64 = 8 << 20;

/// Settings of the core services (a validated subset of the configuration).
#[derive(Clone, Debug)]
pub struct Settings {
    pub policy: Policy,
    /// Protocol limits (ranges per request, multipart bounds).
    pub limits: Limits,
    /// Largest single file (`--max-file-size`); `None` = unlimited.
    pub max_file_size: Option<u64>,
    /// Text content shown per object in listings (the full text is on the object).
    pub list_text_preview: usize,
    /// Largest JSON body of a dataset ingestion (`--max-json-body`).
    pub max_json_body: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            policy: Policy::default(),
            limits: Limits::default(),
            max_file_size: None,
            list_text_preview: 256,
            max_json_body: DEFAULT_MAX_JSON_BODY,
        }
    }
}

/// The process-wide services.
#[derive(Debug)]
pub struct Core {
    pub store: Store,
    pub settings: Settings,
    pub pool: BlockingPool,
    /// The audit log (deletes, renames, metadata changes; see `audit.rs`).
    pub audit: Audit,
    /// The JSON ingest engine's thread (datasets; see `ingest/service.rs`).
    pub ingest: IngestService,
}

impl Core {
    pub fn new(
        store: Store,
        settings: Settings,
        pool: BlockingPool,
        audit: Audit,
        ingest: IngestService,
    ) -> Core {
        Core {
            store,
            settings,
            pool,
            audit,
            ingest,
        }
    }

    /// The generation of object data: moves whenever an object record or blob changed
    /// (not for writes that leave objects alone), so read caches keyed on it stay warm
    /// under token, event or audit writes.
    pub fn data_generation(&self) -> u64 {
        self.store.writer().data_generation()
    }
}

/// One worker's view of the services: the shared [`Core`] plus the worker's caches.
#[derive(Debug)]
pub struct Local {
    core: Arc<Core>,
    pub(crate) blobs: RefCell<BlobCache>,
    pub(crate) hot: RefCell<HotCache>,
    pub(crate) tokens: RefCell<TokenCache>,
}

impl Local {
    pub fn new(core: Arc<Core>) -> Local {
        Local {
            core,
            blobs: RefCell::new(BlobCache::default()),
            hot: RefCell::new(HotCache::default()),
            tokens: RefCell::new(TokenCache::default()),
        }
    }

    /// Close cached descriptors of blobs deleted since the last call (the worker's
    /// sweeper calls it when the data generation moved).
    pub fn sweep_deleted_blobs(&self) {
        self.blobs.borrow_mut().drop_deleted();
    }
}

impl Deref for Local {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}
