//! Changing files: `PATCH /files/rename`, `PATCH /files/{hash}/metadata`,
//! `POST /files/metadata/batch`, `DELETE /files/{hash}`.
//!
//! Renames, metadata changes and deletes are the core's (`update_object`,
//! `delete_object_audited`), which write the audit records; RhinoBox's
//! `metadata/rename_log.ndjson` and `metadata/delete_log.ndjson` are views of those
//! records (`layout::AUDIT_VIEWS`). A rename and a delete answer only once their
//! records are on disk (the seed: "logged before the 200").

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::files::by_hash;
use super::layout::{file_json, parse_hash, stored_path, user_metadata, PROTECTED, SYSTEM_KEY};
use super::not_found_hash;
use crate::core::objects::{AuditOptions, Update};
use crate::core::stream::read_to_vec;
use crate::core::{Caller, CoreError, ErrorKind, Local};
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::store::{MetadataChange, ObjectRecord};
use crate::util::time::{now_ms, rfc3339_ms};

/// JSON bodies of these routes are read whole: bounded like the native API's.
const MAX_BODY: u64 = 1 << 20;
/// Longest new name (RhinoBox's limit).
const MAX_NAME: usize = 255;
/// Most updates in one batch.
const MAX_BATCH: usize = 1000;

fn durable() -> AuditOptions {
    AuditOptions {
        durable: true,
        details: None,
    }
}

/// A core error of a change to the file with hash `hash`.
fn change_error(e: CoreError, hash: &str) -> ApiError {
    match e.kind {
        ErrorKind::NotFound => not_found_hash(hash),
        _ => e.into(),
    }
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

#[derive(Deserialize)]
struct RenameBody {
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    new_name: Option<String>,
    /// RhinoBox can also rename the file on disk; stored paths are logical here, so
    /// it is accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    update_stored_file: Option<bool>,
}

/// RhinoBox's file-name rules that reach beyond the core's (no separators at all).
fn check_new_name(name: &str) -> Result<(), ApiError> {
    let bad = |why: &str| Err(ApiError::bad_request(format!("invalid filename: {why}")));
    if name.len() > MAX_NAME {
        return bad(&format!("longer than {MAX_NAME} bytes"));
    }
    if name.contains(['/', '\\']) {
        return bad("directory separators not allowed");
    }
    if name.contains("..") {
        return bad("path traversal detected");
    }
    if name.chars().any(char::is_control) {
        return bad("control characters not allowed");
    }
    if name.trim() != name {
        return bad("leading or trailing spaces not allowed");
    }
    Ok(())
}

/// `PATCH /files/rename` `{"hash","new_name"}`
pub async fn rename(ctx: Ctx<'_>) -> HandlerResult {
    let body = read_to_vec(ctx.body, MAX_BODY).await?;
    let req: RenameBody = parse_body(&body)?;
    let hash = req
        .hash
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ApiError::bad_request("hash is required"))?;
    let new_name = req
        .new_name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("new_name is required"))?;
    check_new_name(&new_name)?;
    let caller = &ctx.req.caller;
    let before = by_hash(ctx.svc, caller, &hash)?;
    let update = Update {
        name: Some(new_name),
        ..Update::default()
    };
    let after = ctx
        .svc
        .update_object(caller, before.id, update, durable())
        .await
        .map_err(|e| change_error(e, &hash))?;
    let mut out = file_json(&after);
    if let Value::Object(m) = &mut out {
        m.insert("renamed".into(), Value::Bool(true));
        m.insert(
            "message".into(),
            Value::String(format!("renamed {} to {}", before.name, after.name)),
        );
        m.insert("old_metadata".into(), file_json(&before));
        m.insert("new_metadata".into(), file_json(&after));
    }
    Ok(Response::json(200, &out))
}

/// One metadata update (the body of `PATCH /files/{hash}/metadata`, an entry of a
/// batch). `fields` is RhinoBox's name for `keys`.
#[derive(Deserialize, Default)]
struct MetadataBody {
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    keys: Option<Vec<String>>,
    #[serde(default)]
    fields: Option<Vec<String>>,
}

fn check_keys<'a>(keys: impl IntoIterator<Item = &'a String>) -> Result<(), ApiError> {
    for k in keys {
        if k.is_empty() {
            return Err(ApiError::bad_request("metadata keys must not be empty"));
        }
        if PROTECTED.iter().any(|p| p.eq_ignore_ascii_case(k)) {
            return Err(ApiError::bad_request(format!(
                "cannot modify protected metadata field: {k}"
            )));
        }
    }
    Ok(())
}

/// Applies one metadata update to the file with hash `hash`; returns the record
/// before and after.
async fn apply_metadata(
    svc: &Local,
    caller: &Caller,
    hash: &str,
    body: MetadataBody,
    audit: AuditOptions,
) -> Result<(ObjectRecord, ObjectRecord, &'static str), ApiError> {
    let action = match body.action.as_deref() {
        None | Some("") | Some("merge") => "merge",
        Some("replace") => "replace",
        Some("remove") => "remove",
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid action: {other} (must be 'replace', 'merge', or 'remove')"
            )))
        }
    };
    let change = match action {
        "remove" => {
            let keys = body.keys.or(body.fields).unwrap_or_default();
            if keys.is_empty() {
                return Err(ApiError::bad_request("keys is required for remove action"));
            }
            check_keys(&keys)?;
            MetadataChange::Remove(keys)
        }
        _ => {
            let map = match body.metadata {
                Some(Value::Object(m)) => m,
                None | Some(Value::Null) => {
                    return Err(ApiError::bad_request(
                        "metadata is required for replace/merge action",
                    ))
                }
                Some(_) => return Err(ApiError::bad_request("metadata must be a JSON object")),
            };
            check_keys(map.keys())?;
            if action == "merge" {
                MetadataChange::Merge(map)
            } else {
                MetadataChange::Replace(map)
            }
        }
    };
    let before = by_hash(svc, caller, hash)?;
    // A replace keeps RhinoBox's own fields.
    let change = match change {
        MetadataChange::Replace(mut map) => {
            let stored: Map<String, Value> =
                serde_json::from_str(&before.metadata_json).unwrap_or_default();
            if let Some(sys) = stored.get(SYSTEM_KEY) {
                map.insert(SYSTEM_KEY.into(), sys.clone());
            }
            MetadataChange::Replace(map)
        }
        other => other,
    };
    let update = Update {
        metadata: Some(change),
        ..Update::default()
    };
    let after = svc
        .update_object(caller, before.id, update, audit)
        .await
        .map_err(|e| change_error(e, hash))?;
    Ok((before, after, action))
}

/// The answer of a metadata update: the record with RhinoBox's `action`,
/// `old_metadata`, `new_metadata` and `updated_at` beside it.
fn metadata_answer(before: &ObjectRecord, after: &ObjectRecord, action: &str) -> Value {
    let mut out = file_json(after);
    if let Value::Object(m) = &mut out {
        m.insert("action".into(), Value::String(action.into()));
        m.insert("old_metadata".into(), Value::Object(user_metadata(before)));
        m.insert("new_metadata".into(), Value::Object(user_metadata(after)));
        m.insert(
            "updated_at".into(),
            Value::String(rfc3339_ms(after.updated_at_ms)),
        );
    }
    out
}

/// `PATCH /files/{hash}/metadata` `{"action":"merge"|"replace"|"remove","metadata":{},
/// "keys":[]}`
pub async fn metadata(ctx: Ctx<'_>) -> HandlerResult {
    let hash = ctx.req.param(0).to_string();
    let body = read_to_vec(ctx.body, MAX_BODY).await?;
    let req: MetadataBody = parse_body(&body)?;
    let (before, after, action) =
        apply_metadata(ctx.svc, &ctx.req.caller, &hash, req, durable()).await?;
    Ok(Response::json(
        200,
        &metadata_answer(&before, &after, action),
    ))
}

#[derive(Deserialize)]
struct BatchBody {
    #[serde(default)]
    updates: Option<Vec<Value>>,
}

/// `POST /files/metadata/batch` `{"updates":[{"hash","action","metadata","keys"},…]}`:
/// each entry on its own (one bad entry does not fail the others), in order; the
/// answer is `{"results":[…],"succeeded","failed"}`, one result per entry.
pub async fn metadata_batch(ctx: Ctx<'_>) -> HandlerResult {
    let body = read_to_vec(ctx.body, MAX_BODY).await?;
    let req: BatchBody = parse_body(&body)?;
    let updates = req.updates.unwrap_or_default();
    if updates.is_empty() {
        return Err(ApiError::bad_request("updates is required"));
    }
    if updates.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_BATCH} updates per batch"
        )));
    }
    let caller = &ctx.req.caller;
    let mut results = Vec::with_capacity(updates.len());
    let (mut ok, mut failed) = (0usize, 0usize);
    for (i, raw) in updates.into_iter().enumerate() {
        let res = match serde_json::from_value::<MetadataBody>(raw) {
            Err(e) => Err(ApiError::bad_request(format!("updates[{i}]: {e}"))),
            Ok(u) => match u.hash.clone().filter(|h| !h.is_empty()) {
                None => Err(ApiError::bad_request("hash is required")),
                Some(hash) => {
                    // Records are queued here and synced once, after the loop.
                    apply_metadata(ctx.svc, caller, &hash, u, AuditOptions::default())
                        .await
                        .map(|(b, a, action)| (hash, b, a, action))
                }
            },
        };
        match res {
            Ok((hash, before, after, action)) => {
                ok += 1;
                results.push(json!({
                    "hash": hash,
                    "success": true,
                    "record": metadata_answer(&before, &after, action),
                }));
            }
            Err(e) => {
                failed += 1;
                results.push(json!({
                    "index": i,
                    "success": false,
                    "status": e.status,
                    "error": e.message,
                }));
            }
        }
    }
    if ok > 0 {
        ctx.svc.audit.flush().await?;
    }
    Ok(Response::json(
        200,
        &json!({ "results": results, "succeeded": ok, "failed": failed }),
    ))
}

/// `DELETE /files/{hash}`
pub async fn delete(ctx: Ctx<'_>) -> HandlerResult {
    let raw = ctx.req.param(0);
    if parse_hash(raw).is_none() {
        return Err(ApiError::bad_request(
            "invalid input: hash must be 64 hexadecimal characters (the file's SHA-256)",
        ));
    }
    let caller = &ctx.req.caller;
    let rec = by_hash(ctx.svc, caller, raw)?;
    let path = stored_path(&rec);
    let done = ctx
        .svc
        .delete_object_audited(caller, rec.id, durable())
        .await
        .map_err(|e| match e.kind {
            ErrorKind::NotFound => not_found_hash(raw),
            ErrorKind::Internal => ApiError::internal(format!("delete failed: {}", e.message)),
            _ => e.into(),
        })?;
    Ok(Response::json(
        200,
        &json!({
            "hash": parse_hash(raw),
            "original_name": done.name,
            "stored_path": path,
            "deleted": true,
            "deleted_at": rfc3339_ms(now_ms()),
            "message": format!("deleted file {}", done.name),
        }),
    ))
}
