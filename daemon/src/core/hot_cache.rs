//! Per-worker cache of object records and the content representations derived from
//! them, so a hot object costs no LMDB read, no record decoding and no header
//! formatting.
//!
//! Correctness rests on the writer's data generation ([`super::Core::data_generation`]),
//! which the writer bumps after each commit that changed object data and before
//! answering anyone. The whole cache belongs to one generation: when it moves on,
//! everything is dropped. An entry is only inserted if the generation read *before* its
//! LMDB read is still current, so a record read during a concurrent commit is never
//! kept past that commit. Under a read-only load nothing is ever re-read, and writes
//! that leave objects alone (tokens, events, audit) keep the cache warm. So does the
//! batched download-statistics flush, which rewrites object records but only their
//! `downloads` and `last_access_ms`: an entry's `rec` may show old counters, so nothing
//! reads them from here (the object's JSON comes from LMDB; see
//! `store/writer/expiry.rs`).
//!
//! Routes that name content by hash or by alias use the same cache, under the same
//! generation rule, so they cost what a route by id costs:
//! - the representation of a blob by hash (`/v1/blobs/{sha}` and every API that
//!   serves a blob without an object), or the fact that no stored blob has that hash;
//! - whether a user owns an object with a given content (the by-hash visibility rule);
//! - which object holds an alias ("scheme:value", e.g. RhinoBox's `hash:`), or that
//!   none does.
//!
//! Every one of these facts only changes with object or blob records, which move the
//! generation, so a cached answer (positive or negative) is never older than the last
//! commit the worker could have seen. They describe records only: whether a blob's file
//! is still on disk (lost, or a scanned file changed) is decided at every request by
//! the blob cache's `fstat`, and access and expiry are decided by the caller at every
//! request from the cached record.

use std::collections::HashMap;
use std::rc::Rc;

use super::content::{ExternalLoc, Representation};
use crate::store::{Kind, ObjectId, ObjectRecord, Source, State};
use crate::util::hex;

/// Most entries per worker (the cache is emptied when full), counted over records,
/// blob representations, ownership answers and aliases together.
const MAX_ENTRIES: usize = 8192;
/// Most users remembered per blob for the ownership answer (more are read from LMDB).
const MAX_OWNERS_PER_BLOB: usize = 16;

/// A record and, when it has content, its representation.
#[derive(Debug)]
pub struct HotEntry {
    pub rec: ObjectRecord,
    /// `None` for pending files (no content yet).
    pub rep: Option<Representation>,
}

impl HotEntry {
    pub fn new(rec: ObjectRecord) -> HotEntry {
        let rep = match (rec.state, rec.sha256) {
            (State::Stored | State::Lost, Some(sha)) => Some(representation(&rec, sha)),
            _ => None,
        };
        HotEntry { rec, rep }
    }

    /// The representation (present whenever `object_content` returned this entry).
    pub fn rep(&self) -> &Representation {
        self.rep
            .as_ref()
            .expect("object_content only returns entries with content")
    }
}

fn representation(rec: &ObjectRecord, sha: [u8; 32]) -> Representation {
    let secs = last_modified_secs(rec);
    let lm = ringbox_protocol::conditional::format_http_date(secs);
    let inline = ringbox_protocol::response::content_disposition(
        ringbox_protocol::response::DispositionKind::Inline,
        &rec.name,
    );
    Representation {
        sha,
        size: rec.size,
        mime: rec.mime_type.as_str().into(),
        etag: format!("\"{}\"", hex::encode(&sha)).into(),
        last_modified_secs: secs,
        last_modified: std::str::from_utf8(&lm).unwrap_or_default().into(),
        filename: rec.name.as_str().into(),
        inline_disposition: inline.into(),
        text: match (rec.kind, &rec.content) {
            (Kind::Text, Some(c)) => Some(Rc::from(c.as_bytes())),
            _ => None,
        },
        object: Some(rec.id),
        state: rec.state,
        external: match &rec.source {
            Source::Managed => None,
            Source::External(f) => {
                use std::os::unix::ffi::OsStrExt as _;
                let path = std::path::Path::new(std::ffi::OsStr::from_bytes(&f.path));
                Some(ExternalLoc {
                    path: Rc::from(path),
                    mtime_ns: f.mtime_ns,
                    key: super::thumbs::external_key(&f.path),
                })
            }
        },
    }
}

/// The `Last-Modified` of an object's content, in unix seconds.
pub fn last_modified_secs(rec: &ObjectRecord) -> u64 {
    (rec.updated_at_ms / 1000).max(0) as u64
}

/// The cache (one per worker, in a `RefCell`; never borrowed across `.await`).
#[derive(Debug, Default)]
pub struct HotCache {
    generation: u64,
    map: HashMap<ObjectId, Rc<HotEntry>>,
    /// Blob by hash: its representation, or `None` when no stored blob has it.
    blobs: HashMap<[u8; 32], Option<Rc<Representation>>>,
    /// Blob by hash: users known to own (true) or not to own (false) an object with
    /// that content.
    owners: HashMap<[u8; 32], Vec<(Box<str>, bool)>>,
    /// Alias -> the object holding it, or `None` when no object does.
    aliases: HashMap<Box<str>, Option<ObjectId>>,
    /// Entries in `blobs`, `owners` (each user counted) and `aliases`.
    extra: usize,
}

impl HotCache {
    /// Empty the cache when `generation` moved on; whether it is current.
    fn current(&mut self, generation: u64) -> bool {
        if generation != self.generation {
            self.clear();
            self.generation = generation;
            return false;
        }
        true
    }

    fn clear(&mut self) {
        self.map.clear();
        self.blobs.clear();
        self.owners.clear();
        self.aliases.clear();
        self.extra = 0;
    }

    /// Room for one more entry (everything goes when full: hot entries come back at
    /// once, and the bound is what matters).
    fn make_room(&mut self) {
        if self.map.len() + self.extra >= MAX_ENTRIES {
            self.clear();
        }
    }

    /// The entry for `id` if it is valid in `generation`.
    pub fn get(&mut self, id: ObjectId, generation: u64) -> Option<Rc<HotEntry>> {
        if !self.current(generation) {
            return None;
        }
        self.map.get(&id).cloned()
    }

    /// Remember an entry read from LMDB after observing `generation`.
    pub fn insert(&mut self, id: ObjectId, generation: u64, entry: Rc<HotEntry>) {
        if generation != self.generation {
            return;
        }
        self.make_room();
        self.map.insert(id, entry);
    }

    /// The cached representation of blob `sha` (`Some(None)`: known not stored).
    pub fn blob(&mut self, sha: &[u8; 32], generation: u64) -> Option<Option<Rc<Representation>>> {
        if !self.current(generation) {
            return None;
        }
        self.blobs.get(sha).cloned()
    }

    /// Remember blob `sha`'s representation (or its absence) read after observing
    /// `generation`.
    pub fn insert_blob(&mut self, sha: [u8; 32], generation: u64, rep: Option<Rc<Representation>>) {
        if generation != self.generation {
            return;
        }
        self.make_room();
        if self.blobs.insert(sha, rep).is_none() {
            self.extra += 1;
        }
    }

    /// Whether `user` owns an object with content `sha`, if known in `generation`.
    pub fn owns_blob(&mut self, user: &str, sha: &[u8; 32], generation: u64) -> Option<bool> {
        if !self.current(generation) {
            return None;
        }
        self.owners
            .get(sha)?
            .iter()
            .find(|(u, _)| &**u == user)
            .map(|(_, owns)| *owns)
    }

    /// Remember whether `user` owns an object with content `sha`, as read after
    /// observing `generation`.
    pub fn insert_owns_blob(&mut self, user: &str, sha: [u8; 32], generation: u64, owns: bool) {
        if generation != self.generation {
            return;
        }
        self.make_room();
        let users = self.owners.entry(sha).or_default();
        if users.len() < MAX_OWNERS_PER_BLOB && !users.iter().any(|(u, _)| &**u == user) {
            users.push((user.into(), owns));
            self.extra += 1;
        }
    }

    /// The object holding `alias`, if known in `generation` (`Some(None)`: none does).
    pub fn alias(&mut self, alias: &str, generation: u64) -> Option<Option<ObjectId>> {
        if !self.current(generation) {
            return None;
        }
        self.aliases.get(alias).copied()
    }

    /// Remember which object holds `alias` (or that none does), as read after observing
    /// `generation`.
    pub fn insert_alias(&mut self, alias: &str, generation: u64, id: Option<ObjectId>) {
        if generation != self.generation {
            return;
        }
        self.make_room();
        if self.aliases.insert(alias.into(), id).is_none() {
            self.extra += 1;
        }
    }
}
