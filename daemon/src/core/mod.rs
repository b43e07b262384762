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
pub mod auth;
pub mod blob_cache;
pub mod broadcast;
pub mod by_content;
pub mod collections;
pub mod content;
pub mod error;
pub mod events;
pub mod expiry;
pub mod hot_cache;
pub mod identity;
// The JSON ingest engine (RhinoBox's `/ingest/json`, the native datasets); parts of
// its API (analysis details, hints) are used by its own tests only.
#[allow(dead_code)]
pub mod ingest;
// Media type detection, probing and thumbnails: a library, not every item of which
// the daemon calls.
#[allow(dead_code)]
pub mod media;
pub mod media_jobs;
pub mod naming;
pub mod objects;
pub mod owned;
pub mod pages;
pub mod photos;
pub mod pool;
pub mod scan;
pub mod shares;
pub mod short_ids;
pub mod stats;
pub mod stream;
pub mod thumbs;
pub mod upload;
pub mod users;
pub mod webhooks;

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
use identity::{Accounts, CredentialCache};
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
    /// Bytes each user may store (`--user-quota`) unless their record overrides it;
    /// the store enforces it at commit, the core before streaming.
    pub default_quota: Option<u64>,
    /// Text content shown per object in listings (the full text is on the object).
    pub list_text_preview: usize,
    /// Bytes queued for one WebSocket client before it is cut off as too slow.
    pub ws_max_queued: usize,
    /// Largest JSON body of a dataset ingestion (`--max-json-body`).
    pub max_json_body: u64,
    /// Thumbnails: concurrency, limits, timeouts (`--thumbnail-*`).
    pub thumbnails: thumbs::ThumbSettings,
    /// Default ttls and not-accessed rules (`core::expiry`).
    pub expiry: expiry::ExpiryRules,
    /// `--public-url`: the scheme and authority (and path) links are made absolute
    /// with (share URLs), without a trailing slash.
    pub public_url: Option<String>,
    /// Where the `shares` mount sits (`""` at the root).
    pub share_prefix: String,
    /// Short-id links: id length, public schemes, idle time (`core::short_ids`).
    pub short_links: short_ids::ShortLinks,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            policy: Policy::default(),
            limits: Limits::default(),
            max_file_size: None,
            default_quota: None,
            list_text_preview: 256,
            ws_max_queued: 1 << 20,
            max_json_body: DEFAULT_MAX_JSON_BODY,
            thumbnails: thumbs::ThumbSettings::default(),
            expiry: expiry::ExpiryRules::default(),
            public_url: None,
            share_prefix: String::new(),
            short_links: short_ids::ShortLinks::default(),
        }
    }
}

/// The process-wide services.
#[derive(Debug)]
pub struct Core {
    pub store: Store,
    pub settings: Settings,
    pub pool: BlockingPool,
    pub accounts: Accounts,
    /// Committed events, fanned out to every worker (the store's event sink publishes
    /// here).
    pub events: Arc<events::EventHub>,
    /// Webhook deliveries (the event sink wakes them).
    pub webhooks: Arc<webhooks::Webhooks>,
    /// The audit log (deletes, renames, metadata changes; see `audit.rs`).
    pub audit: Audit,
    /// The JSON ingest engine's thread (datasets; see `ingest/service.rs`).
    pub ingest: IngestService,
    /// The thumbnail engine (its own decoding threads, the cache under `thumbs/`).
    pub thumbs: thumbs::ThumbEngine,
    /// Download counts and times not yet written (`core::stats`).
    pub access: stats::AccessStats,
    /// Share passwords verified recently (`core::shares`).
    pub share_passwords: shares::PasswordMemory,
    /// The namespaces of the directories indexed in place, set once when the scanner
    /// starts (`core::scan`); empty without `--scan-dir`.
    pub scan_namespaces: std::sync::OnceLock<Vec<String>>,
}

impl Core {
    #[allow(clippy::too_many_arguments)] // the composition root hands over every part
    pub fn new(
        store: Store,
        settings: Settings,
        pool: BlockingPool,
        accounts: Accounts,
        events: Arc<events::EventHub>,
        webhooks: Arc<webhooks::Webhooks>,
        audit: Audit,
        ingest: IngestService,
    ) -> Core {
        let thumbs = thumbs::ThumbEngine::new(&store, settings.thumbnails.clone(), &pool);
        Core {
            store,
            settings,
            pool,
            accounts,
            events,
            webhooks,
            audit,
            ingest,
            thumbs,
            access: stats::AccessStats::default(),
            share_passwords: shares::PasswordMemory::default(),
            scan_namespaces: std::sync::OnceLock::new(),
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
    pub(crate) creds: CredentialCache,
    /// This worker's event subscribers.
    pub(crate) fanout: std::rc::Rc<events::EventFanout>,
    /// Recently served thumbnails.
    pub(crate) thumbs_mem: RefCell<thumbs::ThumbCache>,
    /// The expiry sweeper's next round size (0 = none yet; see `expiry.rs`).
    pub(crate) sweep_size: std::cell::Cell<usize>,
}

impl Local {
    pub fn new(core: Arc<Core>) -> Local {
        let creds = CredentialCache::new(core.accounts.epoch.clone(), identity::CACHE_TTL, 4096);
        Local {
            core,
            blobs: RefCell::new(BlobCache::default()),
            hot: RefCell::new(HotCache::default()),
            creds,
            fanout: std::rc::Rc::new(events::EventFanout::default()),
            thumbs_mem: RefCell::new(thumbs::ThumbCache::default()),
            sweep_size: std::cell::Cell::new(0),
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
