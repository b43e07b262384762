//! Reading files: `GET /files/download`, `GET /files/stream` (by `hash` or `path`),
//! `GET /files/metadata` and `GET /files/search`.
//!
//! Downloads are the core's content responses (ranges, conditionals, lost content)
//! with the seed's extra headers: `X-File-Category`, `X-File-Hash` and
//! `Cache-Control: private, max-age=3600`. `download` answers
//! `Content-Disposition: attachment`, `stream` `inline` (`?disposition=` overrides, as
//! in RhinoBox), both with the file's current name. A `path` under `json/` is a batch
//! or schema file of the ingest engine.

use ringbox_protocol::head::RequestHead;
use serde_json::Value;

use super::layout::{
    category, file_json, has_traversal, hash_alias, hash_hex, parse_hash, path_alias, NAMESPACE,
};
use super::{not_found_hash, not_found_path};
use crate::core::content::Representation;
use crate::core::objects::ListSpec;
use crate::core::{Caller, CoreError, ErrorKind, Local};
use crate::http::content::{conditions, respond, Disposition};
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::store::ObjectRecord;
use crate::util::hex;
use crate::util::query::Query;

/// Most records one search answers.
const MAX_RESULTS: usize = 1000;
/// Most listing pages one search reads. Each scans at most 10,000 index entries on the
/// worker, so a search looks at the first 100,000 RhinoBox files (by name) at most.
const MAX_PAGES: usize = 10;

fn traversal() -> ApiError {
    ApiError::bad_request("invalid path: path traversal detected")
}

/// A non-empty query parameter.
fn param<'q>(q: &'q Query, name: &str) -> Option<&'q str> {
    q.get(name).filter(|v| !v.is_empty())
}

/// The RhinoBox file with content hash `raw`; 404 with the seed's message when there
/// is none the caller may see (a malformed hash names no file either).
pub(super) fn by_hash(svc: &Local, caller: &Caller, raw: &str) -> Result<ObjectRecord, ApiError> {
    let Some(hash) = parse_hash(raw) else {
        return Err(not_found_hash(raw));
    };
    match svc.object_by_alias(caller, &hash_alias(&hash)) {
        Ok(rec) => Ok(rec),
        Err(e) if e.kind == ErrorKind::NotFound => Err(not_found_hash(raw)),
        Err(e) => Err(e.into()),
    }
}

/// The RhinoBox file stored at `path` (traversal is refused first).
fn by_path(svc: &Local, caller: &Caller, path: &str) -> Result<ObjectRecord, ApiError> {
    if has_traversal(path) {
        return Err(traversal());
    }
    match svc.object_by_alias(caller, &path_alias(path)) {
        Ok(rec) => Ok(rec),
        Err(e) if e.kind == ErrorKind::NotFound => Err(not_found_path(path)),
        Err(e) => Err(e.into()),
    }
}

/// RhinoBox's 416 body is `{"error":"invalid range"}` (the `Content-Range: bytes */N`
/// header stays).
fn range_message(mut e: ApiError) -> ApiError {
    if e.status == 416 {
        e.message = "invalid range".into();
    }
    e
}

/// The content response for `rep`, with RhinoBox's headers.
async fn respond_with(
    svc: &Local,
    head: &RequestHead,
    rep: &Representation,
    disposition: Disposition,
    category: String,
) -> HandlerResult {
    let served = svc.serve(rep, &conditions(head)).await?;
    let mut resp = respond(rep, served, disposition).map_err(range_message)?;
    resp.header("X-File-Category", category)
        .header("X-File-Hash", hex::encode(&rep.sha))
        .header("Cache-Control", "private, max-age=3600");
    Ok(resp)
}

/// The content of the object holding `alias` (its `hash:` or `path:` alias), through
/// the core's hot cache (no LMDB read for a hot file). `not_found` builds the seed's
/// 404 when no file the caller may see holds it.
async fn serve_object(
    ctx: &Ctx<'_>,
    alias: &str,
    disposition: Disposition,
    not_found: impl FnOnce() -> ApiError,
) -> HandlerResult {
    let entry = ctx
        .svc
        .object_content_by_alias(&ctx.req.caller, alias)
        .map_err(|e| match e.kind {
            ErrorKind::NotFound => not_found(),
            _ => ApiError::from(e),
        })?;
    respond_with(
        ctx.svc,
        ctx.req.head,
        entry.rep(),
        disposition,
        category(&entry.rec),
    )
    .await
}

async fn serve(ctx: Ctx<'_>, default: Disposition) -> HandlerResult {
    let q = ctx.req.query()?;
    let disposition = match q.get("disposition") {
        Some("inline") => Disposition::Inline,
        Some("attachment") => Disposition::Attachment,
        _ => default,
    };
    let caller = &ctx.req.caller;
    match (param(&q, "hash"), param(&q, "path")) {
        (Some(h), _) => {
            // A malformed hash names no file.
            let Some(hash) = parse_hash(h) else {
                return Err(not_found_hash(h));
            };
            serve_object(&ctx, &hash_alias(&hash), disposition, || not_found_hash(h)).await
        }
        (None, Some(p)) if p.starts_with("json/") => {
            if has_traversal(p) {
                return Err(traversal());
            }
            let rep = ctx
                .svc
                .dataset_file(caller, p)
                .await
                .map_err(|e: CoreError| match e.kind {
                    ErrorKind::NotFound => not_found_path(p),
                    _ => e.into(),
                })?;
            let engine = p.split('/').nth(1).unwrap_or("sql");
            respond_with(
                ctx.svc,
                ctx.req.head,
                &rep,
                disposition,
                format!("json/{engine}"),
            )
            .await
        }
        (None, Some(p)) => {
            if has_traversal(p) {
                return Err(traversal());
            }
            serve_object(&ctx, &path_alias(p), disposition, || not_found_path(p)).await
        }
        (None, None) => Err(ApiError::bad_request(
            "hash or path query parameter is required",
        )),
    }
}

/// `GET /files/download?hash=|path=`
pub async fn download(ctx: Ctx<'_>) -> HandlerResult {
    serve(ctx, Disposition::Attachment).await
}

/// `GET /files/stream?hash=|path=` (with ranges)
pub async fn stream(ctx: Ctx<'_>) -> HandlerResult {
    serve(ctx, Disposition::Inline).await
}

/// `GET /files/metadata?hash=` (or `?path=`)
pub async fn metadata(ctx: Ctx<'_>) -> HandlerResult {
    let q = ctx.req.query()?;
    let caller = &ctx.req.caller;
    let rec = match (param(&q, "hash"), param(&q, "path")) {
        (Some(h), _) => by_hash(ctx.svc, caller, h)?,
        (None, Some(p)) => by_path(ctx.svc, caller, p)?,
        (None, None) => return Err(ApiError::bad_request("hash query parameter is required")),
    };
    Ok(Response::json(200, &file_json(&rec)))
}

/// Whether `rec` passes a search's optional `type` and `category` filters.
fn matches_filters(rec: &ObjectRecord, kind: Option<&str>, cat: Option<&str>) -> bool {
    let category = category(rec).to_ascii_lowercase();
    let mime = rec.mime_type.to_ascii_lowercase();
    kind.is_none_or(|t| category.starts_with(t) || mime.starts_with(t))
        && cat.is_none_or(|c| category.contains(c))
}

/// `GET /files/search?name=&type=&category=`: the RhinoBox files whose current name
/// contains `name` (case-insensitive), at most 1000 (among the first 100,000 files in
/// name order), as a JSON array of records.
/// `type` keeps those whose category or MIME type starts with it (`images`, `video`,
/// `files`); `category` those whose category contains it.
pub async fn search(ctx: Ctx<'_>) -> HandlerResult {
    let q = ctx.req.query()?;
    let name = param(&q, "name")
        .ok_or_else(|| ApiError::bad_request("name query parameter is required"))?;
    let kind = param(&q, "type").map(str::to_ascii_lowercase);
    let cat = param(&q, "category").map(str::to_ascii_lowercase);
    let mut spec = ListSpec {
        namespace: Some(NAMESPACE.into()),
        q: Some(name.to_string()),
        limit: 1000,
        ..ListSpec::default()
    };
    let mut out: Vec<Value> = Vec::new();
    for _ in 0..MAX_PAGES {
        let page = ctx.svc.list_objects(&ctx.req.caller, &spec)?;
        for rec in &page.objects {
            let is_rhinobox =
                !hash_hex(rec).is_empty() && rec.aliases.iter().any(|a| a.starts_with("rhino:"));
            if is_rhinobox && matches_filters(rec, kind.as_deref(), cat.as_deref()) {
                out.push(file_json(rec));
            }
            if out.len() >= MAX_RESULTS {
                break;
            }
        }
        match page.next_cursor {
            Some(c) if out.len() < MAX_RESULTS => spec.cursor = Some(c),
            _ => break,
        }
    }
    Ok(Response::json(200, &Value::Array(out)))
}
