//! Object commands: create, set_content, patch, delete, mark_lost, heal, set_media,
//! set_external, and the blob references and aliases they maintain.
//!
//! Blob refcounts: a `BlobRecord`'s refcount is the number of managed file records whose
//! `sha256` names it (stored and lost alike). When it reaches zero, the record is
//! deleted in the same transaction and the file is unlinked after the commit, unless a
//! later command of the same batch linked the same content again (checked after the
//! commit). A crash between commit and unlink leaves an orphan file, which GC removes.
//! Objects indexed in place (`Source::External`) never hold a reference: their
//! `sha256`, when known, names their file's content, not a blob under `blobs/`.
//!
//! Uniqueness: an alias names at most one object (the `aliases` database maps it to the
//! id), and with `unique_name` a (namespace, name) pair names at most one object. Both
//! are checked against the index inside the batch's transaction, so two concurrent
//! commands cannot both win: the second sees the first's write, in the same batch or
//! in a later one.
//!
//! Every command here validates before it writes (a rejected command changes nothing)
//! and sets `Batch::data_changed` when it writes an object or blob record, which moves
//! `data_generation` after the commit.

use std::fs;

use heed::RwTxn;
use serde_json::{Map, Value};

use super::{fatal, rejected, Batch, Fail, NewBlob, Reply, Writer};
use crate::store::records::{
    self, BlobRecord, ExternalFile, Kind, MediaInfo, ObjectRecord, Source, State,
};
use crate::store::{io_context, keys, ObjectId, Sha256, StoreError};
use crate::util::hex;

/// Largest `metadata_json` an object may hold, in serialized bytes. The limit applies
/// to the stored result (after a merge), so many small patches cannot grow a record
/// past it: records are copied whole into every read, listing page and cache.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// The changes of a PATCH; `None` (or empty, or `false`) fields are left as they are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectPatch {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub tags: Option<Vec<String>>,
    pub metadata: Option<MetadataChange>,
    /// `Some(None)` clears the expiry, `Some(Some(t))` sets it.
    pub expires_at_ms: Option<Option<i64>>,
    /// On a rename or move: `Conflict` if another object already has the new
    /// (namespace, name).
    pub unique_name: bool,
    /// Aliases to add (`Conflict` if another object holds one; one this object already
    /// has is a no-op).
    pub aliases_add: Vec<String>,
}

/// How a PATCH changes the metadata (a JSON object). The result is capped at
/// [`MAX_METADATA_BYTES`] serialized bytes (`Invalid` beyond).
#[derive(Clone, Debug, PartialEq)]
pub enum MetadataChange {
    /// Top-level merge: each key replaces the stored one; a JSON null removes the key.
    Merge(Map<String, Value>),
    /// The whole metadata becomes this object.
    #[allow(dead_code)] // for the dialects that replace metadata; tests use it now
    Replace(Map<String, Value>),
    /// These top-level keys are removed (absent ones are ignored).
    #[allow(dead_code)]
    Remove(Vec<String>),
}

/// A blob a command is about to reference, read during validation.
pub(super) struct Attach {
    sha: Sha256,
    size: u64,
    existing: Option<BlobRecord>,
}

impl Writer {
    pub(super) fn create(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        mut rec: ObjectRecord,
        blob: Option<NewBlob>,
        unique_name: bool,
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
        rec.aliases = normalize_aliases(std::mem::take(&mut rec.aliases))?;
        if unique_name {
            self.ensure_name_free(txn, &rec.namespace, &rec.name, &rec.id)?;
        }
        for alias in &rec.aliases {
            self.ensure_alias_free(txn, alias, &rec.id)?;
        }
        let size = blob.as_ref().map_or(rec.size, |nb| nb.size);
        self.check_quota(txn, super::owner_of(&rec), size)?;
        let attach = match (rec.kind, rec.is_managed(), &blob) {
            (Kind::Text, _, Some(_)) => {
                return Err(Fail::Rejected(StoreError::Invalid(
                    "a text object keeps its content inline and cannot have a blob".into(),
                )))
            }
            (Kind::Text, false, None) => {
                return Err(Fail::Rejected(StoreError::Invalid(
                    "a text object keeps its content inline; it cannot be an external file".into(),
                )))
            }
            (Kind::Text, true, None) => {
                rec.state = State::Stored;
                None
            }
            (Kind::File, false, Some(_)) => {
                return Err(Fail::Rejected(StoreError::Invalid(
                    "an external file is indexed in place and cannot carry an upload".into(),
                )))
            }
            // Indexed in place: state, size and sha256 as the scan found them.
            (Kind::File, false, None) => None,
            (Kind::File, true, Some(nb)) => {
                let a = self.prepare_attach(txn, nb.sha256, nb.size)?;
                rec.sha256 = Some(nb.sha256);
                rec.size = nb.size;
                rec.state = State::Stored;
                Some(a)
            }
            (Kind::File, true, None) => match rec.sha256 {
                Some(sha) => {
                    let Some(existing) = self.read_blob(txn, &sha)? else {
                        return Err(Fail::Rejected(StoreError::Invalid(format!(
                            "no stored blob has sha256 {}; upload the content instead",
                            hex::encode(&sha)
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
        for alias in &rec.aliases {
            self.dbs
                .aliases
                .put(txn, alias.as_bytes(), rec.id.as_bytes())
                .map_err(fatal)?;
        }
        self.owner_add(txn, &rec)?;
        self.lifecycle_add(txn, &rec)?;
        b.data_changed = true;
        self.emit_object(b, "object.created", &rec, None);
        Ok(Reply::Object(rec))
    }

    pub(super) fn set_content(
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
        if !rec.is_managed() {
            return Err(Fail::Rejected(StoreError::Conflict(format!(
                "object {id} is a file indexed in place; its content is that file on disk"
            ))));
        }
        let same = rec.sha256 == Some(nb.sha256);
        let before = rec.clone();
        self.check_quota(txn, super::owner_of(&rec), nb.size.saturating_sub(rec.size))?;
        let attach = self.prepare_attach(txn, nb.sha256, nb.size)?;
        let old = match rec.sha256 {
            Some(old) if !same => Some((old, self.read_blob(txn, &old)?)),
            _ => None,
        };
        rec.size = nb.size;
        rec.sha256 = Some(nb.sha256);
        if !same {
            // What was probed from the old bytes says nothing about the new ones; the
            // core probes the new content after this commit.
            rec.media = None;
        }
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
        self.put_object(txn, b, &id, &value)?;
        self.owner_update(txn, &before, &rec)?;
        self.emit_object(b, "object.content_set", &rec, None);
        Ok(Reply::Object(rec))
    }

    pub(super) fn patch(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        id: ObjectId,
        patch: ObjectPatch,
        now_ms: i64,
    ) -> Result<Reply, Fail> {
        let mut rec = self.load(txn, &id)?;
        let before = rec.clone();
        let old_key = keys::name_key(&rec.namespace, &rec.name, &id).map_err(Fail::Rejected)?;
        if let Some(ns) = patch.namespace {
            rec.namespace = ns;
        }
        if let Some(name) = patch.name {
            rec.name = name;
        }
        let new_key = keys::name_key(&rec.namespace, &rec.name, &id).map_err(Fail::Rejected)?;
        if patch.unique_name && old_key != new_key {
            self.ensure_name_free(txn, &rec.namespace, &rec.name, &id)?;
        }
        if let Some(tags) = patch.tags {
            rec.tags = tags;
        }
        if let Some(change) = patch.metadata {
            rec.metadata_json =
                change_metadata(&rec.metadata_json, change).map_err(Fail::Rejected)?;
        }
        if let Some(expires) = patch.expires_at_ms {
            rec.expires_at_ms = expires;
        }
        let mut new_aliases = Vec::new();
        for alias in normalize_aliases(patch.aliases_add)? {
            if rec.aliases.contains(&alias) {
                continue;
            }
            self.ensure_alias_free(txn, &alias, &id)?;
            rec.aliases.push(alias.clone());
            new_aliases.push(alias);
        }
        rec.updated_at_ms = now_ms;
        let value = records::encode_object(&rec).map_err(Fail::Rejected)?;
        if old_key != new_key {
            self.dbs.names.delete(txn, &old_key).map_err(fatal)?;
            self.dbs.names.put(txn, &new_key, &[]).map_err(fatal)?;
        }
        for alias in &new_aliases {
            self.dbs
                .aliases
                .put(txn, alias.as_bytes(), id.as_bytes())
                .map_err(fatal)?;
        }
        self.put_object(txn, b, &id, &value)?;
        self.owner_update(txn, &before, &rec)?;
        self.lifecycle_update(txn, &before, &rec)?;
        let changes = patch_changes(&before, &rec);
        self.emit_object(b, "object.updated", &rec, Some(changes));
        Ok(Reply::Object(rec))
    }

    pub(super) fn delete(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        id: ObjectId,
    ) -> Result<Reply, Fail> {
        let rec = self.load(txn, &id)?;
        let nkey = keys::name_key(&rec.namespace, &rec.name, &id).map_err(Fail::Rejected)?;
        let blob = match (rec.kind, rec.is_managed(), rec.sha256) {
            (Kind::File, true, Some(sha)) => Some((sha, self.read_blob(txn, &sha)?)),
            _ => None,
        };
        // Only the aliases that still point here: one pointing elsewhere is not ours
        // to remove (`check` reports the mismatch).
        let mut aliases = Vec::with_capacity(rec.aliases.len());
        for alias in &rec.aliases {
            match self
                .dbs
                .aliases
                .get(txn, alias.as_bytes())
                .map_err(rejected)?
            {
                Some(owner) if owner == id.as_bytes() => aliases.push(alias.as_str()),
                Some(_) => {
                    tracing::warn!(%id, alias, "alias of a deleted object points elsewhere; left alone")
                }
                None => tracing::warn!(%id, alias, "alias of a deleted object was not indexed"),
            }
        }
        self.dbs
            .objects
            .delete(txn, &keys::object_key(&id))
            .map_err(fatal)?;
        self.dbs.names.delete(txn, &nkey).map_err(fatal)?;
        for alias in aliases {
            self.dbs
                .aliases
                .delete(txn, alias.as_bytes())
                .map_err(fatal)?;
        }
        if let Some((sha, existing)) = blob {
            self.decref(txn, b, &sha, existing)?;
        }
        self.owner_remove(txn, &rec)?;
        // Its time index entries, collections and share links go in the same
        // transaction.
        self.object_unlinked(txn, b, &rec)?;
        b.data_changed = true;
        self.emit_object(b, "object.deleted", &rec, None);
        Ok(Reply::Deleted)
    }

    pub(super) fn mark_lost(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        id: ObjectId,
        sha256: Sha256,
    ) -> Result<Reply, Fail> {
        let mut rec = self.load(txn, &id)?;
        // Whoever saw the file missing saw it for this content: if the record moved on
        // (new content, already lost, pending again) that observation is stale.
        if rec.kind != Kind::File || rec.sha256 != Some(sha256) || rec.state != State::Stored {
            return Ok(Reply::Object(rec));
        }
        rec.state = State::Lost;
        let value = records::encode_object(&rec).map_err(Fail::Rejected)?;
        self.put_object(txn, b, &id, &value)?;
        self.emit_object(b, "object.lost", &rec, None);
        Ok(Reply::Object(rec))
    }

    pub(super) fn heal(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        id: ObjectId,
        sha256: Sha256,
    ) -> Result<Reply, Fail> {
        let mut rec = self.load(txn, &id)?;
        if rec.kind != Kind::File || rec.sha256 != Some(sha256) || rec.state != State::Lost {
            return Ok(Reply::Object(rec));
        }
        if rec.is_managed() {
            let size = self.read_blob(txn, &sha256)?.map(|r| r.size);
            let path = self.layout.blob_path(&sha256);
            let intact = size.is_some_and(|size| {
                fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == size)
            });
            if !intact {
                return Err(Fail::Rejected(StoreError::Conflict(format!(
                    "object {id} cannot be healed: its blob file {} is still missing or \
                     damaged; upload the same bytes again",
                    path.display()
                ))));
            }
        }
        // External files: verifying the file in place is the scanner's job (it will
        // come with the scanner); the caller has seen it back.
        rec.state = State::Stored;
        let value = records::encode_object(&rec).map_err(Fail::Rejected)?;
        self.put_object(txn, b, &id, &value)?;
        self.emit_object(
            b,
            "object.updated",
            &rec,
            Some(serde_json::json!({ "state": "stored" })),
        );
        Ok(Reply::Object(rec))
    }

    /// Records what probing found in an object's content (see `Command::SetMedia`).
    pub(super) fn set_media(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        id: ObjectId,
        sha256: Sha256,
        mut media: MediaInfo,
    ) -> Result<Reply, Fail> {
        let mut rec = self.load(txn, &id)?;
        // A probe of content the object no longer has is stale: nothing changes.
        if rec.kind != Kind::File || rec.sha256 != Some(sha256) {
            return Ok(Reply::Object(rec));
        }
        if media.error.is_none() {
            // A refusal recorded first (a thumbnail asked for at once) is not erased by
            // the probe that commits after it.
            media.error = rec.media.as_ref().and_then(|m| m.error.clone());
        }
        if rec.media.as_ref() == Some(&media) {
            return Ok(Reply::Object(rec));
        }
        rec.media = Some(media);
        // Derived data, not a change of the content: `updated_at_ms` (the content's
        // Last-Modified) stays. Still an `object.updated` event: the record changed,
        // and clients showing dates or dimensions want it.
        let value = records::encode_object(&rec).map_err(Fail::Rejected)?;
        self.put_object(txn, b, &id, &value)?;
        self.emit_object(
            b,
            "object.updated",
            &rec,
            Some(serde_json::json!({ "media": true })),
        );
        Ok(Reply::Object(rec))
    }

    /// Adds a reason to `media.error` (see `Command::AddMediaError`).
    pub(super) fn add_media_error(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        id: ObjectId,
        sha256: Sha256,
        error: String,
    ) -> Result<Reply, Fail> {
        let mut rec = self.load(txn, &id)?;
        if rec.kind != Kind::File || rec.sha256 != Some(sha256) {
            return Ok(Reply::Object(rec));
        }
        let media = rec.media.get_or_insert_with(MediaInfo::default);
        match &media.error {
            Some(e) if e.contains(&error) => return Ok(Reply::Object(rec)),
            Some(e) => media.error = Some(format!("{e}; {error}")),
            None => media.error = Some(error),
        }
        // An object update, like `set_media`.
        let value = records::encode_object(&rec).map_err(Fail::Rejected)?;
        self.put_object(txn, b, &id, &value)?;
        self.emit_object(
            b,
            "object.updated",
            &rec,
            Some(serde_json::json!({ "media": true })),
        );
        Ok(Reply::Object(rec))
    }

    /// A file indexed in place changed on disk (see `Command::SetExternal`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn set_external(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        id: ObjectId,
        file: ExternalFile,
        sha256: Sha256,
        mime_type: String,
        media: Option<MediaInfo>,
        aliases: Vec<String>,
        now_ms: i64,
    ) -> Result<Reply, Fail> {
        let mut rec = self.load(txn, &id)?;
        if rec.is_managed() || rec.kind != Kind::File {
            return Err(Fail::Rejected(StoreError::Conflict(format!(
                "object {id} is not a file indexed in place"
            ))));
        }
        let before = rec.clone();
        let aliases = normalize_aliases(aliases)?;
        for alias in &aliases {
            self.ensure_alias_free(txn, alias, &id)?;
        }
        self.check_quota(
            txn,
            super::owner_of(&rec),
            file.size.saturating_sub(rec.size),
        )?;
        rec.size = file.size;
        rec.source = Source::External(file);
        rec.sha256 = Some(sha256);
        rec.mime_type = mime_type;
        rec.media = media;
        rec.state = State::Stored;
        rec.updated_at_ms = now_ms;
        let dropped: Vec<String> = before
            .aliases
            .iter()
            .filter(|a| !aliases.contains(a))
            .cloned()
            .collect();
        let added: Vec<String> = aliases
            .iter()
            .filter(|a| !before.aliases.contains(a))
            .cloned()
            .collect();
        rec.aliases = aliases;
        let value = records::encode_object(&rec).map_err(Fail::Rejected)?;
        for alias in &dropped {
            // Only an entry that still points here is ours to remove.
            let ours = self
                .dbs
                .aliases
                .get(txn, alias.as_bytes())
                .map_err(fatal)?
                .is_some_and(|v| v == id.as_bytes());
            if ours {
                self.dbs
                    .aliases
                    .delete(txn, alias.as_bytes())
                    .map_err(fatal)?;
            }
        }
        for alias in &added {
            self.dbs
                .aliases
                .put(txn, alias.as_bytes(), id.as_bytes())
                .map_err(fatal)?;
        }
        self.put_object(txn, b, &id, &value)?;
        self.owner_update(txn, &before, &rec)?;
        // The file changed on disk: new content, as a `PUT` of new bytes would be.
        self.emit_object(b, "object.content_set", &rec, None);
        Ok(Reply::Object(rec))
    }

    /// Writes an encoded object record and notes that data changed.
    fn put_object(
        &self,
        txn: &mut RwTxn,
        b: &mut Batch,
        id: &ObjectId,
        value: &[u8],
    ) -> Result<(), Fail> {
        self.dbs
            .objects
            .put(txn, &keys::object_key(id), value)
            .map_err(fatal)?;
        b.data_changed = true;
        Ok(())
    }

    pub(super) fn load(&self, txn: &RwTxn, id: &ObjectId) -> Result<ObjectRecord, Fail> {
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

    /// `Conflict` if an object other than `except` is named `name` in `ns`.
    fn ensure_name_free(
        &self,
        txn: &RwTxn,
        ns: &str,
        name: &str,
        except: &ObjectId,
    ) -> Result<(), Fail> {
        let prefix = keys::exact_name_prefix(ns, name).map_err(Fail::Rejected)?;
        for item in self.dbs.names.prefix_iter(txn, &prefix).map_err(rejected)? {
            let (key, _) = item.map_err(rejected)?;
            let other = keys::parse_name_key(key).map(|k| k.id);
            if other.as_ref() != Some(except) {
                return Err(Fail::Rejected(StoreError::Conflict(format!(
                    "an object named {name:?} already exists in namespace {ns:?}"
                ))));
            }
        }
        Ok(())
    }

    /// `Conflict` if `alias` names an object other than `owner`.
    fn ensure_alias_free(&self, txn: &RwTxn, alias: &str, owner: &ObjectId) -> Result<(), Fail> {
        match self
            .dbs
            .aliases
            .get(txn, alias.as_bytes())
            .map_err(rejected)?
        {
            Some(id) if id != owner.as_bytes() => Err(Fail::Rejected(StoreError::Conflict(
                format!("the alias {alias:?} already names another object"),
            ))),
            _ => Ok(()),
        }
    }

    /// Validation half of referencing a blob: reads its record, checks the size.
    fn prepare_attach(&self, txn: &RwTxn, sha: Sha256, size: u64) -> Result<Attach, Fail> {
        let existing = self.read_blob(txn, &sha)?;
        if let Some(rec) = &existing {
            if rec.size != size {
                return Err(Fail::Rejected(StoreError::Invalid(format!(
                    "blob {} is stored with {} bytes but the upload has {size}",
                    hex::encode(&sha),
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
            super::remove_tmp(&nb.tmp_path);
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
        self.dbs.blobs.put(txn, &a.sha, &value).map_err(fatal)?;
        b.data_changed = true;
        Ok(())
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
        b.data_changed = true;
        match existing {
            None => {
                tracing::warn!(blob = %hex::encode(sha), "an object referenced a blob without a record");
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
}

/// Validated aliases without duplicates, in their first order.
fn normalize_aliases(aliases: Vec<String>) -> Result<Vec<String>, Fail> {
    let mut out: Vec<String> = Vec::with_capacity(aliases.len());
    for alias in aliases {
        keys::validate_alias(&alias).map_err(Fail::Rejected)?;
        if !out.contains(&alias) {
            out.push(alias);
        }
    }
    Ok(out)
}

/// `Invalid` unless the serialized metadata fits [`MAX_METADATA_BYTES`].
fn check_metadata_size(json: &str) -> Result<(), StoreError> {
    if json.len() > MAX_METADATA_BYTES {
        return Err(StoreError::Invalid(format!(
            "metadata would be {} bytes; at most {MAX_METADATA_BYTES} (64 KiB) are allowed",
            json.len()
        )));
    }
    Ok(())
}

/// `metadata_json` as stored: `"{}"` when empty, `Invalid` unless a JSON object of at
/// most [`MAX_METADATA_BYTES`].
fn normalize_metadata(json: &str) -> Result<String, StoreError> {
    if json.trim().is_empty() {
        return Ok("{}".into());
    }
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(_)) => {
            check_metadata_size(json)?;
            Ok(json.to_owned())
        }
        _ => Err(StoreError::Invalid("metadata must be a JSON object".into())),
    }
}

/// The stored metadata after `change`, capped at [`MAX_METADATA_BYTES`].
fn change_metadata(stored: &str, change: MetadataChange) -> Result<String, StoreError> {
    let current = || match serde_json::from_str::<Value>(stored) {
        Ok(Value::Object(m)) => m,
        _ => {
            tracing::warn!("stored metadata was not a JSON object; replacing it");
            Map::new()
        }
    };
    let map = match change {
        MetadataChange::Merge(changes) => {
            let mut map = current();
            for (k, v) in changes {
                if v.is_null() {
                    map.remove(&k);
                } else {
                    map.insert(k, v);
                }
            }
            map
        }
        MetadataChange::Replace(map) => map,
        MetadataChange::Remove(keys) => {
            let mut map = current();
            for k in keys {
                map.remove(&k);
            }
            map
        }
    };
    let json = Value::Object(map).to_string();
    check_metadata_size(&json)?;
    Ok(json)
}

/// What a patch changed, for its event: each changed field with its new value
/// (`metadata` as `true`: metadata can be large, readers fetch the object).
fn patch_changes(before: &ObjectRecord, after: &ObjectRecord) -> Value {
    let mut c = Map::new();
    if before.name != after.name {
        c.insert("name".into(), Value::String(after.name.clone()));
        c.insert("old_name".into(), Value::String(before.name.clone()));
    }
    if before.namespace != after.namespace {
        c.insert("namespace".into(), Value::String(after.namespace.clone()));
    }
    if before.tags != after.tags {
        c.insert("tags".into(), serde_json::json!(after.tags));
    }
    if before.metadata_json != after.metadata_json {
        c.insert("metadata".into(), Value::Bool(true));
    }
    if before.expires_at_ms != after.expires_at_ms {
        c.insert(
            "expires_at_ms".into(),
            serde_json::json!(after.expires_at_ms),
        );
    }
    if before.aliases != after.aliases {
        c.insert("aliases".into(), serde_json::json!(after.aliases));
    }
    Value::Object(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn parsed(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn metadata_changes() {
        let stored = r#"{"a":1,"b":2}"#;
        let merged = change_metadata(
            stored,
            MetadataChange::Merge(map(json!({"a": null, "c": 3}))),
        )
        .unwrap();
        assert_eq!(parsed(&merged), json!({"b":2,"c":3}));
        let replaced =
            change_metadata(stored, MetadataChange::Replace(map(json!({"z": [1]})))).unwrap();
        assert_eq!(parsed(&replaced), json!({"z":[1]}));
        let removed =
            change_metadata(stored, MetadataChange::Remove(vec!["a".into(), "x".into()])).unwrap();
        assert_eq!(parsed(&removed), json!({"b":2}));
        assert_eq!(normalize_metadata("").unwrap(), "{}");
        assert!(normalize_metadata("[1]").is_err());
        assert!(normalize_metadata("{").is_err());
    }

    #[test]
    fn metadata_cap_applies_to_the_result() {
        let half = "x".repeat(MAX_METADATA_BYTES / 2);
        let stored = json!({ "a": half }).to_string();
        // Each patch alone is small enough; the merged result is not.
        let err =
            change_metadata(&stored, MetadataChange::Merge(map(json!({ "b": half })))).unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid(m) if m.contains("65536")),
            "{err}"
        );
        // Replacing the big value keeps it under the cap.
        assert!(change_metadata(&stored, MetadataChange::Merge(map(json!({ "a": 1 })))).is_ok());
        let big = json!({ "a": "x".repeat(MAX_METADATA_BYTES) }).to_string();
        assert!(matches!(
            normalize_metadata(&big),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn aliases_are_validated_and_deduplicated() {
        let got = normalize_aliases(vec!["s:a".into(), "p:b".into(), "s:a".into()])
            .ok()
            .unwrap();
        assert_eq!(got, ["s:a", "p:b"]);
        assert!(matches!(
            normalize_aliases(vec!["nope".into()]),
            Err(Fail::Rejected(StoreError::Invalid(_)))
        ));
    }
}
