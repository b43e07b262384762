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

use std::collections::HashMap;
use std::rc::Rc;

use super::content::{ExternalLoc, Representation};
use crate::store::{Kind, ObjectId, ObjectRecord, Source, State};
use crate::util::hex;

/// Most entries per worker (the cache is emptied when full).
const MAX_ENTRIES: usize = 8192;

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
}

impl HotCache {
    /// The entry for `id` if it is valid in `generation`.
    pub fn get(&mut self, id: ObjectId, generation: u64) -> Option<Rc<HotEntry>> {
        if generation != self.generation {
            self.map.clear();
            self.generation = generation;
            return None;
        }
        self.map.get(&id).cloned()
    }

    /// Remember an entry read from LMDB after observing `generation`.
    pub fn insert(&mut self, id: ObjectId, generation: u64, entry: Rc<HotEntry>) {
        if generation != self.generation {
            return;
        }
        if self.map.len() >= MAX_ENTRIES {
            self.map.clear();
        }
        self.map.insert(id, entry);
    }
}
