//! Object records: get (by id, alias, or namespace and name), list with a filter spec,
//! patch (rename, move, tags, metadata, expiry), delete. Access is decided here: a
//! caller who may not read an object is told it does not exist, and an expired object
//! does not exist for anyone (`core::expiry`).
//!
//! Every committed delete, rename, move, retag and metadata change writes an audit
//! record (`audit.rs`): `object.deleted`, `object.renamed` (with `old_name`),
//! `object.moved`, `object.tagged`, `object.metadata`, with the object's aliases in
//! `details` (a delete also keeps its `mime_type`, `size` and `metadata`: what was
//! lost). By default the record is queued
//! ([`Audit::record_nowait`](super::audit::Audit::record_nowait)); an API that promises
//! its log before answering passes [`AuditOptions`] with `durable`.

use serde_json::{Map, Value};

use super::access::Caller;
use super::audit::AuditRecord;
use super::error::{CoreError, CoreResult};
use super::expiry::is_expired;
use super::naming;
use super::Local;
use crate::store::{
    Command, Kind, ListQuery, MetadataChange, ObjectId, ObjectPatch, ObjectRecord, Reply, State,
    DEFAULT_MAX_SCAN,
};
use crate::util::time::now_ms;

/// A record with every field at its empty value, with this id and times.
pub fn blank_record(id: ObjectId, now_ms: i64) -> ObjectRecord {
    ObjectRecord {
        id,
        kind: Kind::File,
        namespace: naming::DEFAULT_NAMESPACE.into(),
        state: State::Pending,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
        ..ObjectRecord::blank()
    }
}

/// Which objects a listing returns, and in which order.
#[derive(Clone, Debug, Default)]
pub struct ListSpec {
    pub namespace: Option<String>,
    /// Names starting with this.
    pub prefix: Option<String>,
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
    /// Objects carrying this tag.
    pub tag: Option<String>,
    /// MIME type: exact (`image/png`) or a major type (`image/` or `image/*`).
    pub mime: Option<String>,
    /// Only this owner's objects (admins may ask for anyone's).
    pub owner: Option<String>,
    pub limit: usize,
    pub cursor: Option<String>,
}

/// One page of objects.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub objects: Vec<ObjectRecord>,
    pub next_cursor: Option<String>,
}

/// A change to an object's record.
#[derive(Clone, Debug, Default)]
pub struct Change {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub tags: Option<Vec<String>>,
    /// Merged into the stored metadata (top-level keys; a null removes a key).
    pub metadata: Option<Map<String, Value>>,
    /// `Some(None)` clears the expiry, `Some(Some(ms))` sets it (a time in the past
    /// expires the object at once).
    pub expires_at_ms: Option<Option<i64>>,
}

/// A change to an object's record with the whole range of metadata changes (merge,
/// replace, remove), as [`Local::update_object`] takes it.
#[derive(Clone, Debug, Default)]
pub struct Update {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub tags: Option<Vec<String>>,
    pub metadata: Option<MetadataChange>,
    /// As [`Change::expires_at_ms`].
    pub expires_at_ms: Option<Option<i64>>,
}

/// How the audit records of a change are written.
#[derive(Clone, Debug, Default)]
pub struct AuditOptions {
    /// Wait until the records are on disk before the change is reported done (with
    /// fsync durability).
    pub durable: bool,
    /// Merged into each record's `details`.
    pub details: Option<Map<String, Value>>,
}

fn mime_matches(filter: &str, mime: &str) -> bool {
    let base = mime.split(';').next().unwrap_or("").trim();
    match filter
        .strip_suffix('*')
        .or_else(|| filter.strip_suffix('/').map(|_| filter))
    {
        Some(major) => base
            .get(..major.len())
            .is_some_and(|m| m.eq_ignore_ascii_case(major)),
        None => base.eq_ignore_ascii_case(filter),
    }
}

impl Local {
    /// The record of `id` if `caller` may read it; else `NotFound` (expired objects
    /// are `NotFound` for everyone).
    pub fn object_for_read(&self, caller: &Caller, id: ObjectId) -> CoreResult<ObjectRecord> {
        let rec = self.store.get_object(id)?;
        self.readable(caller, rec)
    }

    /// `rec` if it exists, has not expired and `caller` may read it.
    fn readable(&self, caller: &Caller, rec: Option<ObjectRecord>) -> CoreResult<ObjectRecord> {
        match rec {
            Some(rec)
                if self.settings.policy.may_read(caller, &rec) && !is_expired(&rec, now_ms()) =>
            {
                Ok(rec)
            }
            _ => Err(CoreError::not_found("the object")),
        }
    }

    /// The object holding `alias` ("scheme:value") if `caller` may read it (dialects'
    /// short ids and paths); `NotFound` otherwise, expired ones included.
    pub fn object_by_alias(&self, caller: &Caller, alias: &str) -> CoreResult<ObjectRecord> {
        let rec = self.store.get_by_alias(alias)?;
        self.readable(caller, rec)
    }

    /// The object named `name` in namespace `ns` if `caller` may read it; `NotFound`
    /// otherwise, expired ones included.
    #[allow(dead_code)] // for the dialects that address objects by name
    pub fn object_by_name(
        &self,
        caller: &Caller,
        ns: &str,
        name: &str,
    ) -> CoreResult<ObjectRecord> {
        let rec = self.store.get_by_name(ns, name)?;
        self.readable(caller, rec)
    }

    /// The record of `id` if `caller` may change it: `NotFound` when they may not even
    /// read it, `Forbidden` when they may read but not change it.
    pub fn object_for_write(&self, caller: &Caller, id: ObjectId) -> CoreResult<ObjectRecord> {
        let rec = self.object_for_read(caller, id)?;
        if !self.settings.policy.may_write(caller, &rec) {
            return Err(CoreError::forbidden(
                "this object belongs to another user; you may read it but not change it",
            ));
        }
        Ok(rec)
    }

    /// `GET` of an object's record, as `caller` may see it (see [`Local::shown_to`]).
    pub fn get_object(&self, caller: &Caller, id: ObjectId) -> CoreResult<ObjectRecord> {
        Ok(self.shown_to(caller, self.object_for_read(caller, id)?))
    }

    /// A record as `caller` may see it: the GPS position of its media is removed for
    /// anyone but its owner and admins. Every service that hands a record to an API
    /// for display passes it through here, so no renderer decides.
    pub fn shown_to(&self, caller: &Caller, mut rec: ObjectRecord) -> ObjectRecord {
        if !self.settings.policy.may_see_location(caller, &rec) {
            if let Some(m) = &mut rec.media {
                m.gps = None;
            }
        }
        rec
    }

    /// One page of the objects `caller` may see.
    pub fn list_objects(&self, caller: &Caller, spec: &ListSpec) -> CoreResult<Page> {
        if let Some(ns) = &spec.namespace {
            naming::namespace(ns)?;
        }
        let policy = self.settings.policy;
        // Whose objects: everyone's for those who see everything (or the owner they
        // ask for), else the caller's own, through the per-owner index.
        let owner = if policy.sees_everything(caller) {
            spec.owner.clone()
        } else {
            match (caller.user(), spec.owner.as_deref()) {
                (Some(me), None) => Some(me.to_string()),
                (Some(me), Some(o)) if o == me => Some(me.to_string()),
                _ => return Ok(Page::default()),
            }
        };
        let q = ListQuery {
            owner,
            namespace: spec.namespace.clone(),
            prefix: spec.prefix.clone().filter(|p| !p.is_empty()),
            q: spec.q.clone().filter(|p| !p.is_empty()),
            limit: spec.limit.clamp(1, 1000),
            cursor: spec.cursor.clone().filter(|c| !c.is_empty()),
        };
        let now = now_ms();
        let page = self
            .store
            .list_objects_filtered(&q, DEFAULT_MAX_SCAN, |rec| {
                policy.may_read(caller, rec)
                    && !is_expired(rec, now)
                    && spec
                        .tag
                        .as_deref()
                        .is_none_or(|t| rec.tags.iter().any(|x| x == t))
                    && spec
                        .mime
                        .as_deref()
                        .is_none_or(|m| mime_matches(m, &rec.mime_type))
            })?;
        Ok(Page {
            objects: page
                .objects
                .into_iter()
                .map(|r| self.shown_to(caller, r))
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Rename, move, retag or merge metadata.
    pub async fn change_object(
        &self,
        caller: &Caller,
        id: ObjectId,
        change: Change,
    ) -> CoreResult<ObjectRecord> {
        let update = Update {
            name: change.name,
            namespace: change.namespace,
            tags: change.tags,
            metadata: change.metadata.map(MetadataChange::Merge),
            expires_at_ms: change.expires_at_ms,
        };
        self.update_object(caller, id, update, AuditOptions::default())
            .await
    }

    /// Rename, move, retag, or merge, replace or remove metadata, with the audit
    /// records written as `audit` says.
    pub async fn update_object(
        &self,
        caller: &Caller,
        id: ObjectId,
        update: Update,
        audit: AuditOptions,
    ) -> CoreResult<ObjectRecord> {
        let before = self.object_for_write(caller, id)?;
        let metadata = match update.metadata {
            None => None,
            Some(MetadataChange::Merge(m)) => {
                Some(MetadataChange::Merge(naming::metadata(Value::Object(m))?))
            }
            Some(MetadataChange::Replace(m)) => {
                Some(MetadataChange::Replace(naming::metadata(Value::Object(m))?))
            }
            Some(MetadataChange::Remove(keys)) => {
                if keys.len() > 1000 {
                    return Err(CoreError::invalid_field(
                        "metadata",
                        "at most 1000 metadata keys may be removed at once",
                    ));
                }
                Some(MetadataChange::Remove(keys))
            }
        };
        let metadata_kind = metadata.as_ref().map(|m| match m {
            MetadataChange::Merge(m) => ("merge", m.keys().cloned().collect::<Vec<_>>()),
            MetadataChange::Replace(m) => ("replace", m.keys().cloned().collect()),
            MetadataChange::Remove(k) => ("remove", k.clone()),
        });
        let patch = ObjectPatch {
            name: update.name.as_deref().map(naming::name).transpose()?,
            namespace: update
                .namespace
                .as_deref()
                .map(naming::namespace)
                .transpose()?,
            tags: update.tags.map(naming::tags).transpose()?,
            metadata,
            expires_at_ms: update.expires_at_ms,
            ..ObjectPatch::default()
        };
        let after = self
            .commit_object_as(
                caller,
                Command::Patch {
                    id,
                    patch,
                    now_ms: now_ms(),
                },
            )
            .await?;
        let mut records = Vec::new();
        if after.name != before.name {
            let mut r = AuditRecord::object("object.renamed", caller, &after);
            r.old_name = Some(before.name.clone());
            records.push(r);
        }
        if after.namespace != before.namespace {
            let mut r = AuditRecord::object("object.moved", caller, &after);
            r.set_detail("old_namespace", Value::String(before.namespace.clone()));
            records.push(r);
        }
        if after.tags != before.tags {
            let mut r = AuditRecord::object("object.tagged", caller, &after);
            r.set_detail("tags", serde_json::json!(after.tags));
            records.push(r);
        }
        if let Some((change, keys)) = metadata_kind {
            let mut r = AuditRecord::object("object.metadata", caller, &after);
            r.set_detail("change", Value::from(change));
            r.set_detail("keys", serde_json::json!(keys));
            records.push(r);
        }
        self.write_audit(records, &audit).await?;
        Ok(self.shown_to(caller, after))
    }

    /// Delete an object (its blob goes when nothing else references it).
    pub async fn delete_object(&self, caller: &Caller, id: ObjectId) -> CoreResult<ObjectRecord> {
        self.delete_object_audited(caller, id, AuditOptions::default())
            .await
    }

    /// [`Local::delete_object`] with the audit record written as `audit` says. A blob
    /// file that is already gone is no obstacle: the record goes (metadata-only).
    pub async fn delete_object_audited(
        &self,
        caller: &Caller,
        id: ObjectId,
        audit: AuditOptions,
    ) -> CoreResult<ObjectRecord> {
        let rec = self.object_for_write(caller, id)?;
        match self
            .store
            .writer()
            .submit_as(Command::Delete { id }, &caller.owner_id())
            .await?
        {
            Reply::Deleted => {}
            other => {
                return Err(CoreError::internal(format!(
                    "unexpected writer reply {other:?}"
                )))
            }
        }
        let mut record = AuditRecord::object("object.deleted", caller, &rec);
        record.set_detail("mime_type", Value::String(rec.mime_type.clone()));
        record.set_detail("size", Value::from(rec.size));
        let metadata: Value = serde_json::from_str(&rec.metadata_json).unwrap_or(Value::Null);
        record.set_detail("metadata", metadata);
        self.write_audit(vec![record], &audit).await?;
        Ok(rec)
    }

    /// Writes audit records of a committed change, with the options' details; waits
    /// for them when the options say so.
    async fn write_audit(&self, records: Vec<AuditRecord>, opts: &AuditOptions) -> CoreResult<()> {
        let mut waits = Vec::new();
        for mut r in records {
            for (k, v) in opts.details.iter().flatten() {
                r.set_detail(k, v.clone());
            }
            if opts.durable {
                waits.push(self.audit.record(r));
            } else {
                self.audit.record_nowait(r);
            }
        }
        for w in waits {
            w.await.map_err(|e| {
                CoreError::internal(format!(
                    "the change was committed, but its audit record could not be written: {}",
                    e.message
                ))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_filters() {
        assert!(mime_matches("image/png", "image/png"));
        assert!(mime_matches("image/png", "IMAGE/PNG; x=y"));
        assert!(!mime_matches("image/png", "image/jpeg"));
        assert!(mime_matches("image/*", "image/jpeg"));
        assert!(mime_matches("image/", "image/jpeg"));
        assert!(!mime_matches("image/*", "video/mp4"));
        assert!(!mime_matches("image/*", "imag"));
    }
}
