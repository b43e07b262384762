//! Ingestion: `POST /ingest` (files and inline JSON), `POST /ingest/media` and
//! `POST /ingest/json`.
//!
//! Files are streamed to temp blobs by the form reader (flat memory), then routed by
//! their sniffed MIME type (extension as fallback): `image/*`, `video/*`, `audio/*` to
//! the media layout, anything else to `files/<namespace>/`. All the files of a request
//! are stored with one group commit, each as an object keyed by its content hash
//! (`Local::create_files_keyed`): a second upload of the same bytes stores nothing and
//! answers the first one's stored path with `duplicates: true`.
//!
//! `/ingest` answers 200 when anything was stored, listing what failed in `errors`
//! (`"<name>: <why>"`); 400 `{"error":"all items failed: [...]"}` when nothing was.
//! JSON (`data`, `/ingest/json`) is the core's ingest engine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{json, Map, Value};

use super::layout::{
    base_name, detect_mime, file_placement, hash_alias, hash_hex, is_media, label, media_placement,
    path_alias, stored_path, system_meta, user_metadata, Placement, NAMESPACE, SYSTEM_KEY,
};
use crate::core::error::CoreResult;
use crate::core::naming;
use crate::core::stream::{read_to_vec, ByteStream};
use crate::core::upload::{Keyed, KeyedFile, NewObject};
use crate::core::{Caller, Local};
use crate::http::errors::ApiError;
use crate::http::form::{read_form, Form, FormOptions};
use crate::http::request::{Ctx, HandlerResult, Request};
use crate::http::response::Response;
use crate::util::time::{now_ms, rfc3339_ms};

/// Reads the request's multipart form, keeping file parts named in `file_fields`.
async fn form(
    svc: &Local,
    req: &Request<'_>,
    body: &mut dyn ByteStream,
    file_fields: &'static [&'static str],
) -> Result<Form, ApiError> {
    let (media, content_type) = req.content_type();
    if media != "multipart/form-data" {
        return Err(ApiError::bad_request(
            "invalid multipart payload: send multipart/form-data (e.g. curl -F file=@photo.jpg)",
        ));
    }
    let content_type = content_type.to_string();
    let opts = FormOptions {
        file_fields: Some(file_fields),
        ..FormOptions::default()
    };
    read_form(svc, &req.caller, body, &content_type, opts)
        .await
        .map_err(|mut e| {
            if e.status == 400 {
                e.message = format!("invalid multipart payload: {}", e.message);
            }
            e
        })
}

/// A non-empty, trimmed form field.
fn field<'f>(form: &'f Form, name: &str) -> Option<&'f str> {
    form.field(name).map(str::trim).filter(|v| !v.is_empty())
}

/// A file of a form, placed and ready to store.
struct Prepared {
    original_name: String,
    placement: Placement,
    metadata: Map<String, Value>,
}

/// One stored (or refused) file of a request.
struct Outcome {
    prepared: Prepared,
    result: CoreResult<Keyed>,
}

/// Stores every file of `form`; `place` decides each file's placement from its name
/// and MIME type. Metadata: `user` plus RhinoBox's own fields.
async fn store_files(
    svc: &Local,
    caller: &Caller,
    form: &mut Form,
    user: &Map<String, Value>,
    place: impl Fn(&str, &str) -> Placement,
) -> Vec<Outcome> {
    let mut prepared = Vec::with_capacity(form.files.len());
    let mut keyed = Vec::with_capacity(form.files.len());
    for f in std::mem::take(&mut form.files) {
        let original_name = base_name(&f.filename).to_string();
        let mime = detect_mime(f.content_type.as_deref(), &original_name, &f.blob.head);
        let placement = place(&mime, &original_name);
        let mut metadata = user.clone();
        metadata.insert(SYSTEM_KEY.into(), system_meta(&placement));
        let key = hash_alias(&crate::util::hex::encode(&f.blob.sha256));
        keyed.push(KeyedFile {
            new: NewObject {
                namespace: NAMESPACE.into(),
                name: original_name.clone(),
                metadata: metadata.clone(),
                ..NewObject::default()
            },
            blob: f.blob,
            claimed_type: Some(mime.clone()),
            key,
            aliases: vec![path_alias(&placement.stored_path)],
        });
        metadata.remove(SYSTEM_KEY);
        prepared.push(Prepared {
            original_name,
            placement,
            metadata,
        });
    }
    let results = svc.create_files_keyed(caller, keyed).await;
    prepared
        .into_iter()
        .zip(results)
        .map(|(prepared, result)| Outcome { prepared, result })
        .collect()
}

/// The error line of a failed file.
fn file_error(o: &Outcome, e: &crate::core::CoreError) -> String {
    let name = if o.prepared.original_name.is_empty() {
        "(no name)"
    } else {
        &o.prepared.original_name
    };
    format!("{name}: {}", e.message)
}

/// `{"error":"all items failed: [a, b]"}`.
fn all_failed(errors: &[String]) -> ApiError {
    ApiError::bad_request(format!("all items failed: [{}]", errors.join(", ")))
}

/// `POST /ingest/media`: `file` parts (repeatable), `category`, `comment`.
pub async fn media(ctx: Ctx<'_>) -> HandlerResult {
    let Ctx { svc, req, body } = ctx;
    let mut form = form(svc, &req, body, &["file", "files"]).await?;
    if form.files.is_empty() {
        return Err(ApiError::bad_request("no files provided"));
    }
    let category = field(&form, "category").unwrap_or_default().to_string();
    let comment = field(&form, "comment").unwrap_or_default().to_string();
    let mut user = Map::new();
    if !comment.is_empty() {
        user.insert("comment".into(), Value::String(comment.clone()));
    }
    let outcomes = store_files(svc, &req.caller, &mut form, &user, |mime, name| {
        media_placement(mime, name, &[&category, &comment])
    })
    .await;
    let mut stored = Vec::new();
    let mut errors = Vec::new();
    for o in &outcomes {
        match &o.result {
            Ok(k) => {
                let rec = &k.record;
                let p = &o.prepared;
                stored.push(json!({
                    "path": stored_path(rec),
                    "mime_type": rec.mime_type,
                    "media_type": p.placement.media_type,
                    "category": label(rec),
                    "comment": comment,
                    "original_name": p.original_name,
                    "uploaded_at": rfc3339_ms(rec.created_at_ms),
                    "hash": hash_hex(rec),
                    "size": rec.size,
                    "duplicates": k.existed,
                }));
            }
            Err(e) => errors.push(file_error(o, e)),
        }
    }
    if stored.is_empty() {
        return Err(all_failed(&errors));
    }
    let mut out = json!({ "stored": stored });
    if !errors.is_empty() {
        out["errors"] = json!(errors);
    }
    Ok(Response::json(200, &out))
}

/// A job id in the seed's shape (`job_<digits>`), unique in this process.
fn job_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed) % 1000;
    format!("job_{}{n:03}", now_ms())
}

/// `POST /ingest`: `files` (repeatable), `data`, `namespace`, `comment`, `metadata`.
pub async fn unified(ctx: Ctx<'_>) -> HandlerResult {
    let started = Instant::now();
    let Ctx { svc, req, body } = ctx;
    let mut form = form(svc, &req, body, &["files", "file"]).await?;
    let namespace = field(&form, "namespace").map(str::to_string);
    let comment = field(&form, "comment").map(str::to_string);
    let metadata_text = field(&form, "metadata").map(str::to_string);
    let data = field(&form, "data").map(str::to_string);
    let user_meta = match &metadata_text {
        None => Map::new(),
        Some(t) => naming::metadata_text(t)
            .map_err(|e| ApiError::bad_request(format!("invalid metadata JSON: {}", e.message)))?,
    };
    if form.files.is_empty() && data.is_none() {
        return Err(ApiError::bad_request(
            "no files or data provided: send files (-F files=@...) and/or data (-F 'data=[...]')",
        ));
    }
    let mut errors: Vec<String> = Vec::new();
    let mut media = Vec::new();
    let mut files = Vec::new();
    let mut timing = Map::new();

    if !form.files.is_empty() {
        let t = Instant::now();
        let mut user = user_meta.clone();
        if let Some(c) = &comment {
            user.insert("comment".into(), Value::String(c.clone()));
        }
        let hint = comment.clone().unwrap_or_default();
        let ns = namespace.clone();
        let outcomes = store_files(svc, &req.caller, &mut form, &user, |mime, name| {
            if is_media(mime) {
                media_placement(mime, name, &[&hint])
            } else {
                file_placement(ns.as_deref(), name)
            }
        })
        .await;
        for o in &outcomes {
            let p = &o.prepared;
            match &o.result {
                Ok(k) if p.placement.kind == "media" => {
                    let rec = &k.record;
                    media.push(json!({
                        "original_name": p.original_name,
                        "stored_path": stored_path(rec),
                        "category": label(rec),
                        "mime_type": rec.mime_type,
                        "size": rec.size,
                        "hash": hash_hex(rec),
                        "duplicates": k.existed,
                        "metadata": if k.existed { user_metadata(rec) } else { p.metadata.clone() },
                    }));
                }
                Ok(k) => {
                    let rec = &k.record;
                    files.push(json!({
                        "original_name": p.original_name,
                        "stored_path": stored_path(rec),
                        "file_type": rec.mime_type,
                        "size": rec.size,
                        "hash": hash_hex(rec),
                        "duplicates": k.existed,
                    }));
                }
                Err(e) => errors.push(file_error(o, e)),
            }
        }
        timing.insert(
            "processing_ms".into(),
            json!(t.elapsed().as_millis() as u64),
        );
    }

    let mut json_results = Vec::new();
    if let Some(data) = data {
        let t = Instant::now();
        match svc
            .ingest_form(&req.caller, data, namespace, comment, metadata_text)
            .await
        {
            Ok(outcome) => json_results.push(
                serde_json::to_value(outcome.unified_result())
                    .map_err(|e| ApiError::internal(e.to_string()))?,
            ),
            Err(e) => errors.push(format!("JSON processing: {}", e.message)),
        }
        timing.insert("json_ms".into(), json!(t.elapsed().as_millis() as u64));
    }
    timing.insert(
        "total_ms".into(),
        json!(started.elapsed().as_millis() as u64),
    );
    if media.is_empty() && files.is_empty() && json_results.is_empty() {
        return Err(all_failed(&errors));
    }
    Ok(Response::json(
        200,
        &json!({
            "job_id": job_id(),
            "status": "completed",
            "results": { "media": media, "json": json_results, "files": files },
            "timing": timing,
            "errors": errors,
        }),
    ))
}

/// `POST /ingest/json`: `{"namespace", "document"|"documents", "comment", "metadata"}`.
pub async fn json(ctx: Ctx<'_>) -> HandlerResult {
    let body = read_to_vec(ctx.body, ctx.svc.settings.max_json_body).await?;
    let outcome = ctx.svc.ingest_json(&ctx.req.caller, body).await?;
    Ok(Response::json(200, &outcome.json_response()))
}
