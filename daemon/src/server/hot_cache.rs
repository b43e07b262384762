//! Per-worker cache of object records and the header values derived from them, so a
//! hot object costs no LMDB read, no record decoding and no header formatting.
//!
//! Correctness rests on the writer's data generation (`WriterHandle::data_generation`),
//! which the writer bumps after each commit that changed object or blob records and
//! before answering anyone. The whole cache belongs to one generation: when it moves on,
//! everything is dropped. An entry is only inserted if the generation read *before*
//! its LMDB read is still current, so a record read during a concurrent commit is
//! never kept past that commit. Under a read-only load nothing is ever re-read; any
//! write to objects or blobs empties every worker's cache once.

use std::collections::HashMap;
use std::rc::Rc;

use crate::store::{ObjectId, ObjectRecord};
use crate::util::hex;

/// Most entries per worker (the cache is emptied when full).
const MAX_ENTRIES: usize = 8192;

/// A record and the response header values of its content.
#[derive(Debug)]
pub struct HotEntry {
    pub rec: ObjectRecord,
    /// `"<sha256 hex>"`, when the object has content.
    pub etag: Rc<str>,
    pub last_modified: Rc<str>,
    pub mime: Rc<str>,
    /// `inline; filename=...`
    pub inline_disposition: Rc<str>,
}

impl HotEntry {
    pub fn new(rec: ObjectRecord) -> HotEntry {
        let etag = rec
            .sha256
            .map(|s| format!("\"{}\"", hex::encode(&s)))
            .unwrap_or_default();
        let lm = ringbox_protocol::conditional::format_http_date(last_modified_secs(&rec));
        let last_modified = std::str::from_utf8(&lm).unwrap_or_default().to_string();
        let inline = ringbox_protocol::response::content_disposition(
            ringbox_protocol::response::DispositionKind::Inline,
            &rec.name,
        );
        HotEntry {
            etag: etag.into(),
            last_modified: last_modified.into(),
            mime: rec.mime_type.as_str().into(),
            inline_disposition: inline.into(),
            rec,
        }
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
