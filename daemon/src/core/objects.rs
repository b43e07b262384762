//! Object records: get (by id, alias, or namespace and name), list with a filter spec,
//! patch (rename, move, tags, metadata, expiry), delete. Access is decided here: a
//! caller who may not read an object is told it does not exist, and an expired object
//! does not exist for anyone (`core::expiry`).

use serde_json::{Map, Value};

use super::access::Caller;
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
    #[allow(dead_code)] // for the dialects that address objects by alias
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

    /// `GET` of an object's record.
    pub fn get_object(&self, caller: &Caller, id: ObjectId) -> CoreResult<ObjectRecord> {
        self.object_for_read(caller, id)
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
            objects: page.objects,
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
        self.object_for_write(caller, id)?;
        let patch = ObjectPatch {
            name: change.name.as_deref().map(naming::name).transpose()?,
            namespace: change
                .namespace
                .as_deref()
                .map(naming::namespace)
                .transpose()?,
            tags: change.tags.map(naming::tags).transpose()?,
            metadata: change
                .metadata
                .map(|m| naming::metadata(Value::Object(m)))
                .transpose()?
                .map(MetadataChange::Merge),
            expires_at_ms: change.expires_at_ms,
            ..ObjectPatch::default()
        };
        self.commit_object_as(
            caller,
            Command::Patch {
                id,
                patch,
                now_ms: now_ms(),
            },
        )
        .await
    }

    /// Delete an object (its blob goes when nothing else references it).
    pub async fn delete_object(&self, caller: &Caller, id: ObjectId) -> CoreResult<ObjectRecord> {
        let rec = self.object_for_write(caller, id)?;
        match self
            .store
            .writer()
            .submit_as(Command::Delete { id }, &caller.owner_id())
            .await?
        {
            Reply::Deleted => Ok(rec),
            other => Err(CoreError::internal(format!(
                "unexpected writer reply {other:?}"
            ))),
        }
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
