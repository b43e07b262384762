//! Content by hash among the objects a dialect shows: the files indexed in place by
//! the directory scans, and the uploads of one namespace that are keyed by their
//! content. Dialects that name files by their SHA-256 (photobackup's
//! `GET /image/<sha256>`) resolve the hash here, so "which file answers for this hash,
//! and may this caller see it" is decided once.
//!
//! Contract:
//! - Candidates, in this order: the scanned files with the content (the
//!   `xsha:<sha>:<id>` aliases of `core::scan`) whose namespace is one of the roots
//!   configured now (objects of a root no longer scanned are not shown), then the
//!   uploads of the namespace holding an upload key of the content
//!   ([`upload_key`], one per owner, so each owner's uploads de-duplicate among
//!   themselves and never collide with another user's). At most [`MAX_CANDIDATES`] of
//!   each are looked at.
//! - Only objects the caller may read, that have not expired and still have that
//!   content, are candidates (the policy of `core::access`, as everywhere).
//! - [`Local::content_by_sha`] answers the first candidate whose bytes are still there:
//!   a scanned file deleted or changed on disk is skipped at once, before any rescan,
//!   through the blob cache's check of the file (an `fstat` of the cached descriptor on
//!   every use: a descriptor cached while the file existed cannot serve it after it is
//!   unlinked). A managed upload is answered as is (a blob gone from the store is the
//!   content path's `lost`).
//!
//! Cost: the candidate ids of a hash are two short LMDB prefix seeks, remembered per
//! worker until the writer's data generation moves (as the hot cache: any change of an
//! object or blob empties it; reads, tokens, events and download statistics do not), so
//! a hot hash costs a hash-map lookup, then the object's representation from the
//! worker's hot cache. At most [`MAX_RESOLVED`] hashes are remembered per worker.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::access::Caller;
use super::error::{CoreError, CoreResult, ErrorKind};
use super::expiry::is_expired;
use super::hot_cache::HotEntry;
use super::scan::content_alias_prefix;
use super::Local;
use crate::store::{ObjectId, Source, State};
use crate::util::hex;
use crate::util::time::now_ms;

/// Most scanned files (and most owners' uploads) looked at for one hash.
pub const MAX_CANDIDATES: usize = 16;
/// Most hashes whose candidates each worker remembers (emptied when full).
pub const MAX_RESOLVED: usize = 8192;

/// The namespace asked with a hash, and the candidate ids found.
type Candidates = (Box<str>, Rc<[ObjectId]>);

/// The candidates of recently asked hashes, valid for one store and data generation.
#[derive(Default)]
struct Resolved {
    /// The `Core` they were read from (tests run several stores on one thread).
    core: usize,
    generation: u64,
    map: HashMap<[u8; 32], Candidates>,
}

thread_local! {
    /// Per worker thread (the workers are thread-per-core runtimes; never borrowed
    /// across an `.await`).
    static RESOLVED: RefCell<Resolved> = RefCell::new(Resolved::default());
}

/// `ukey:<namespace>:<sha256 hex>:`: the prefix of the upload keys of a content in a
/// namespace.
pub fn upload_key_prefix(namespace: &str, sha: &[u8; 32]) -> String {
    format!("ukey:{namespace}:{}:", hex::encode(sha))
}

/// `ukey:<namespace>:<sha256 hex>:<owner>`: the alias an upload of `namespace` holds for
/// its content (unique: one upload per owner and content).
pub fn upload_key(namespace: &str, sha: &[u8; 32], owner: &str) -> String {
    format!("{}{owner}", upload_key_prefix(namespace, sha))
}

impl Local {
    /// The ids of the objects that may answer for content `sha` in the view "scanned
    /// files, then uploads of `namespace`", in that order, before any access check.
    fn content_candidates(&self, sha: &[u8; 32], namespace: &str) -> CoreResult<Rc<[ObjectId]>> {
        let core = std::sync::Arc::as_ptr(&self.core) as usize;
        // Read before LMDB: a commit in between moves it, and the entry is not kept.
        let generation = self.data_generation();
        let cached = RESOLVED.with(|r| {
            let r = r.borrow();
            if r.core != core || r.generation != generation {
                return None;
            }
            match r.map.get(sha) {
                Some((ns, ids)) if &**ns == namespace => Some(ids.clone()),
                _ => None,
            }
        });
        if let Some(ids) = cached {
            return Ok(ids);
        }
        let mut ids = self
            .store
            .ids_by_alias_prefix(&content_alias_prefix(sha), MAX_CANDIDATES)?;
        ids.extend(
            self.store
                .ids_by_alias_prefix(&upload_key_prefix(namespace, sha), MAX_CANDIDATES)?,
        );
        let ids: Rc<[ObjectId]> = ids.into();
        RESOLVED.with(|r| {
            let mut r = r.borrow_mut();
            if r.core != core || r.generation != generation || r.map.len() >= MAX_RESOLVED {
                r.map.clear();
                r.core = core;
                r.generation = generation;
            }
            if self.data_generation() == generation {
                r.map.insert(*sha, (namespace.into(), ids.clone()));
            }
        });
        Ok(ids)
    }

    /// The hot-cache entries of the objects with content `sha` that `caller` may read,
    /// in the order of the module docs: scanned files of the configured roots, then
    /// the uploads of `namespace`.
    pub fn objects_by_content(
        &self,
        caller: &Caller,
        sha: &[u8; 32],
        namespace: &str,
    ) -> CoreResult<Vec<Rc<HotEntry>>> {
        let scanned = self.scan_namespaces.get().map(Vec::as_slice).unwrap_or(&[]);
        let now = now_ms();
        let mut out = Vec::new();
        for &id in self.content_candidates(sha, namespace)?.iter() {
            let entry = match self.content_entry(id) {
                Ok(e) => e,
                Err(e) if e.kind == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let rec = &entry.rec;
            let shown = match &rec.source {
                Source::External(_) => scanned.contains(&rec.namespace),
                Source::Managed => rec.namespace == namespace,
            };
            if shown
                && rec.sha256.as_ref() == Some(sha)
                && rec.state != State::Pending
                && entry.rep.is_some()
                && self.settings.policy.may_read(caller, rec)
                && !is_expired(rec, now)
            {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// The content `sha` as the first candidate whose bytes are still there (see the
    /// module docs). `NotFound` when there is none (a scanned file that vanished from
    /// disk included, before any rescan).
    pub async fn content_by_sha(
        &self,
        caller: &Caller,
        sha: &[u8; 32],
        namespace: &str,
    ) -> CoreResult<Rc<HotEntry>> {
        let mut gone = None;
        for entry in self.objects_by_content(caller, sha, namespace)? {
            if entry.rep().external.is_none() {
                return Ok(entry);
            }
            // A scanned file: still the file that was hashed? (Cheap when cached: one
            // fstat of the open descriptor.)
            match self.open_content(entry.rep()).await {
                Ok(_) => return Ok(entry),
                Err(e) if e.kind == ErrorKind::NotFound => gone = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(gone.unwrap_or_else(|| CoreError::not_found("a file with this hash")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_aliases_and_share_their_prefix() {
        let sha = [0x5a; 32];
        let p = upload_key_prefix("photobackup", &sha);
        let k = upload_key("photobackup", &sha, "anonymous");
        assert!(k.starts_with(&p));
        assert!(crate::store::keys::validate_alias(&k).is_ok());
        assert_eq!(p.len(), "ukey:photobackup:".len() + 64 + 1);
    }
}
