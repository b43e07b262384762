//! Media: `POST /media/upload`, `GET /media`, `GET|PATCH|DELETE /media/{id}`,
//! `GET /media/{id}/download`, `GET /media/{id}/thumbnail`, `POST /media/{id}/share`.
//!
//! - Upload is `multipart/form-data` with a `file` part (streamed into the core like
//!   every upload: hashed, quota- and size-checked, de-duplicated) and optional
//!   `title`, `description` and `tags` (comma-separated, or a JSON array) fields; the
//!   type comes from the core's detection (content first, then name and the part's
//!   `Content-Type`). No `file` part is a `validation_error`. 201 with the item.
//! - The list is the caller's items newest first, `page`/`per_page` (the core's
//!   numbered pages: a per-namespace count of index keys and a walk of the owner's
//!   creation-order index, never a read of every item).
//! - Download is the core's content answer (ranges, conditionals, ETag, 410 when the
//!   bytes are lost) as an attachment; thumbnails are the core's (`?size=128|256|512`,
//!   `?format=png|jpeg|webp`); both are bytes, not envelopes.
//! - Patch takes `title`, `description` (strings, `null` clears) and `tags` (an
//!   array of strings); other fields are `validation_error`s.
//! - Share makes a core share link of the item (`expires_in` seconds or a duration like
//!   `7d`, `max_downloads`): `url` is the public `/share/{token}` that opens the file
//!   without any credential (absolute with `--public-url`).

use serde_json::{json, Map, Value};

use super::{
    core_error, created, invalid, is_callers_media, json_object, media_for, media_id, media_json,
    no_content, not_found, ok, only_fields, opt_string, page_params, paged, with_request_id,
    NAMESPACE,
};
use crate::core::objects::Change;
use crate::core::shares::NewShare;
use crate::core::thumbs;
use crate::core::upload::NewObject;
use crate::http::content::{conditions, respond, Disposition};
use crate::http::errors::ApiError;
use crate::http::form::{read_form, FormOptions};
use crate::http::request::{Ctx, HandlerResult};
use crate::store::ShareTarget;
use crate::util::time::{parse_ttl, rfc3339_ms};

/// Most tags an item carries, and their length.
const MAX_TAGS: usize = 64;
const MAX_TAG_CHARS: usize = 64;
const MAX_TITLE: usize = 256;
const MAX_DESCRIPTION: usize = 4096;

/// Tags from a form field: a JSON array of strings, or a comma-separated list.
pub(super) fn parse_tags_field(raw: &str) -> Result<Vec<String>, ApiError> {
    let raw = raw.trim();
    let list: Vec<String> = if raw.starts_with('[') {
        serde_json::from_str::<Vec<String>>(raw).map_err(|_| {
            invalid(
                "tags",
                "tags must be a JSON array of strings or a comma-separated list",
            )
        })?
    } else {
        raw.split(',').map(str::to_string).collect()
    };
    clean_tags(list)
}

fn clean_tags(list: Vec<String>) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for t in list {
        let t = t.trim().to_string();
        if t.is_empty() || out.contains(&t) {
            continue;
        }
        if t.chars().count() > MAX_TAG_CHARS || t.chars().any(char::is_control) {
            return Err(invalid(
                "tags",
                format!("a tag is 1-{MAX_TAG_CHARS} characters without control characters"),
            ));
        }
        out.push(t);
    }
    if out.len() > MAX_TAGS {
        return Err(invalid("tags", format!("at most {MAX_TAGS} tags")));
    }
    Ok(out)
}

/// The object name of an uploaded file: the last path segment of what the client
/// sent (browsers on some systems send full paths), `upload` when nothing is left.
pub(super) fn file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("").trim();
    let clean: String = base.chars().filter(|c| !c.is_control()).collect();
    if clean.is_empty() || clean == "." || clean == ".." {
        "upload".to_string()
    } else {
        clean
    }
}

/// `POST /media/upload`
pub async fn upload(ctx: Ctx<'_>) -> HandlerResult {
    let (media, ct) = ctx.req.content_type();
    if media != "multipart/form-data" {
        return Err(invalid(
            "file",
            "upload a multipart/form-data body with a `file` part",
        ));
    }
    let ct = ct.to_string();
    let form = read_form(
        ctx.svc,
        &ctx.req.caller,
        ctx.body,
        &ct,
        FormOptions {
            max_files: 1,
            file_fields: Some(&["file"]),
            on_field: None,
        },
    )
    .await
    .map_err(|mut e| {
        if e.status == 400 && e.details.is_empty() {
            e.details.push(("file", e.message.clone()));
        }
        e
    })?;
    let mut metadata = Map::new();
    for (field, max) in [("title", MAX_TITLE), ("description", MAX_DESCRIPTION)] {
        if let Some(v) = form.field(field) {
            if v.chars().count() > max {
                return Err(invalid(
                    if field == "title" {
                        "title"
                    } else {
                        "description"
                    },
                    format!("{field} is at most {max} characters"),
                ));
            }
            metadata.insert(field.to_string(), Value::String(v.to_string()));
        }
    }
    let tags = form
        .field("tags")
        .map(parse_tags_field)
        .transpose()?
        .unwrap_or_default();
    let Some(file) = form.files.into_iter().next() else {
        return Err(invalid("file", "a `file` part is required"));
    };
    let rec = ctx
        .svc
        .create_file(
            &ctx.req.caller,
            NewObject {
                namespace: NAMESPACE.to_string(),
                name: file_name(&file.filename),
                tags,
                metadata,
                expires_at_ms: None,
                unique_name: false,
                aliases: Vec::new(),
            },
            file.blob,
            file.content_type.as_deref(),
        )
        .await
        .map_err(core_error)?;
    let location = format!("{}/media/{}", super::PREFIX, rec.id);
    let mut r = created(media_json(&ctx.svc.shown_to(&ctx.req.caller, rec)))?;
    r.header("Location", location);
    Ok(r)
}

/// `GET /media?page=&per_page=`
pub async fn list(ctx: Ctx<'_>) -> HandlerResult {
    let q = ctx.req.query()?;
    let (page, per_page) = page_params(&q)?;
    let offset = (page - 1).saturating_mul(per_page);
    let p = ctx
        .svc
        .owned_page(&ctx.req.caller, NAMESPACE, offset, per_page as usize)
        .map_err(core_error)?;
    let items = p.objects.iter().map(media_json).collect();
    paged(items, p.total, page, per_page, |n| {
        format!("/media?page={n}&per_page={per_page}")
    })
}

/// `GET /media/{id}`
pub async fn get(ctx: Ctx<'_>) -> HandlerResult {
    let rec = media_for(&ctx, media_id(ctx.req.param(0))?)?;
    ok(media_json(&rec))
}

/// `PATCH /media/{id}` `{"title","description","tags"}`
pub async fn patch(mut ctx: Ctx<'_>) -> HandlerResult {
    let id = media_id(ctx.req.param(0))?;
    media_for(&ctx, id)?;
    let body = json_object(&mut ctx, false).await?;
    only_fields(&body, &["title", "description", "tags"])?;
    let mut metadata = Map::new();
    for (field, max) in [("title", MAX_TITLE), ("description", MAX_DESCRIPTION)] {
        if body.contains_key(field) {
            let f = if field == "title" {
                "title"
            } else {
                "description"
            };
            let v = opt_string(&body, f, max)?;
            metadata.insert(field.to_string(), v.map_or(Value::Null, Value::String));
        }
    }
    let tags = match body.get("tags") {
        None => None,
        Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(a)) => {
            let list = a
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| invalid("tags", "tags must be an array of strings"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(clean_tags(list)?)
        }
        Some(Value::String(s)) => Some(parse_tags_field(s)?),
        Some(_) => return Err(invalid("tags", "tags must be an array of strings")),
    };
    let rec = ctx
        .svc
        .change_object(
            &ctx.req.caller,
            id,
            Change {
                tags,
                metadata: (!metadata.is_empty()).then_some(metadata),
                ..Change::default()
            },
        )
        .await
        .map_err(core_error)?;
    ok(media_json(&ctx.svc.shown_to(&ctx.req.caller, rec)))
}

/// `DELETE /media/{id}`
pub async fn delete(ctx: Ctx<'_>) -> HandlerResult {
    let id = media_id(ctx.req.param(0))?;
    media_for(&ctx, id)?;
    ctx.svc
        .delete_object(&ctx.req.caller, id)
        .await
        .map_err(core_error)?;
    no_content()
}

/// `GET /media/{id}/download`
pub async fn download(ctx: Ctx<'_>) -> HandlerResult {
    let id = media_id(ctx.req.param(0))?;
    // The hot path reads the worker's cache only; the ownership rule is `media_for`'s,
    // which also decides (from LMDB) what a failed lookup answers: 404 for anything
    // not the caller's, the content's own error otherwise.
    let entry = match ctx.svc.object_content(&ctx.req.caller, id) {
        Ok(entry) if is_callers_media(&ctx, &entry.rec) => entry,
        Ok(_) => return Err(not_found("media")),
        Err(e) => {
            media_for(&ctx, id)?;
            return Err(core_error(e));
        }
    };
    let rep = entry.rep();
    let served = ctx.svc.serve(rep, &conditions(ctx.req.head)).await?;
    Ok(with_request_id(respond(
        rep,
        served,
        Disposition::Attachment,
    )?))
}

/// `GET /media/{id}/thumbnail?size=&format=`
pub async fn thumbnail(ctx: Ctx<'_>) -> HandlerResult {
    let id = media_id(ctx.req.param(0))?;
    media_for(&ctx, id)?;
    let q = ctx.req.query()?;
    let size = thumbs::parse_size(q.get("size"))?;
    let format = thumbs::parse_format(q.get("format"))?;
    let rep = ctx
        .svc
        .object_thumbnail(&ctx.req.caller, id, size, format)
        .await
        .map_err(core_error)?;
    let served = ctx.svc.serve(&rep, &conditions(ctx.req.head)).await?;
    let mut r = respond(&rep, served, Disposition::None)?;
    r.header("Cache-Control", thumbs::CACHE_CONTROL);
    Ok(with_request_id(r))
}

/// `expires_in`: seconds, or a duration string like `30m`, `12h`, `7d`.
fn expires_in(v: Option<&Value>) -> Result<Option<std::time::Duration>, ApiError> {
    let bad = || {
        invalid(
            "expires_in",
            "expires_in is seconds or a duration like 30m, 12h or 7d",
        )
    };
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().filter(|&n| n > 0) {
            Some(n) => Ok(Some(std::time::Duration::from_secs(n))),
            None => Err(bad()),
        },
        Some(Value::String(s)) => parse_ttl(s)
            .filter(|d| !d.is_zero())
            .map(Some)
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// `POST /media/{id}/share` (body optional: `expires_in`, `max_downloads`)
pub async fn share(mut ctx: Ctx<'_>) -> HandlerResult {
    let id = media_id(ctx.req.param(0))?;
    media_for(&ctx, id)?;
    let body = json_object(&mut ctx, true).await?;
    only_fields(&body, &["expires_in", "max_downloads"])?;
    let max_downloads =
        match body.get("max_downloads") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|&n| n > 0).ok_or_else(|| {
                invalid("max_downloads", "max_downloads is a whole number from 1")
            })?),
        };
    let issued = ctx
        .svc
        .create_share(
            &ctx.req.caller,
            NewShare {
                target: ShareTarget::Object(id),
                expires_in: expires_in(body.get("expires_in"))?,
                max_downloads,
                password: None,
            },
        )
        .await
        .map_err(core_error)?;
    created(json!({
        "url": issued.url,
        "token": issued.token,
        "expires_at": issued.record.expires_at_ms.map(rfc3339_ms),
        "max_downloads": issued.record.max_downloads,
        "media_id": id.to_string(),
    }))
}
