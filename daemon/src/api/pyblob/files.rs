//! Files: `GET /s/{file_id}`, `GET /list`, `DELETE /delete/{file_id}`,
//! `DELETE /delete_all`.
//!
//! `GET /s/{file_id}` (and `HEAD`) with `output`:
//! - `file` (default): the bytes through the core's content path (hot cache, ranges,
//!   conditionals, `ETag`, `Last-Modified`), with the stored `Content-Type` and
//!   `Content-Disposition: attachment` with the original name (as FastAPI's
//!   `FileResponse(filename=...)`). A 200/206 with bytes counts as a download
//!   (batched by the core).
//! - `html`: a `text/html` page showing the file (`<img>` for images, `<video>` and
//!   `<audio>` for those, a link otherwise) with its name; every value is escaped.
//! - `json`: `{"file_id","filename","size","content_type","upload_date",
//!   "last_downloaded","downloads"}` (times RFC 3339 UTC, `last_downloaded` null
//!   before the first download).
//! - anything else: 400, checked before the id is looked up.
//!
//! An id of any shape that names no file the caller may see is 404. Who may see a
//! file: with `--pyblob-public-links` anyone, else its owner and admins (and whatever
//! the core's `--anonymous` mode opens); without public links a token is required
//! (401), and a bad token is 401 in both modes.
//!
//! `GET /list` answers the caller's own files (an admin's too: their own), newest
//! first, in the `output=json` shape: the caller's objects of the namespace through
//! the core's per-owner listing (pages of 1,000, each a short read transaction),
//! sorted by id (UUIDv7, creation order). At most [`MAX_LIST`] are answered (the
//! newest, with `X-Ringbox-Truncated: true`), so memory stays bounded.
//!
//! `DELETE /delete/{file_id}` deletes one of the caller's files (another user's is
//! 404, as if it did not exist). `DELETE /delete_all` needs `confirm=yes` (else 400
//! and nothing is deleted); `function=all` (default) deletes every file of the caller
//! and nobody else's, `function=expired` those not downloaded for
//! `--pyblob-expire-after` (90 days; counted from the upload for files never
//! downloaded).

use std::future::poll_fn;
use std::task::Poll;

use serde_json::{json, Value};

use super::{core_error, file_id_of, file_json, not_found, prefix_of, NAMESPACE, SCHEME};
use crate::core::objects::ListSpec;
use crate::core::ErrorKind;
use crate::http::content::{conditions, respond, Disposition};
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::{Body, Response};
use crate::store::ObjectRecord;
use crate::util::time::now_ms;

/// Most files one `GET /list` answers (the newest ones).
pub const MAX_LIST: usize = 100_000;
/// Objects per listing page (the core's largest).
const PAGE: usize = 1000;

/// What `output` asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    File,
    Html,
    Json,
}

/// `GET /s/{file_id}`
pub async fn show(ctx: Ctx<'_>) -> HandlerResult {
    let q = ctx.req.query()?;
    let output = match q.get("output").unwrap_or("file") {
        "file" => Output::File,
        "html" => Output::Html,
        "json" => Output::Json,
        other => {
            return Err(ApiError::bad_request(format!(
                "output `{other}` is not one of file, html, json"
            )))
        }
    };
    let caller = &ctx.req.caller;
    // The route is public at the router so that links can be; a credential that did
    // not authenticate is refused here, never taken as anonymous.
    if caller.principal.is_none()
        && (ctx.req.header("authorization").is_some() || !ctx.svc.is_public_scheme(SCHEME))
    {
        return Err(ApiError::unauthorized(
            "this route needs a valid token: send `Authorization: Bearer <token>`",
        ));
    }
    let id = ctx.req.param(0);
    match output {
        Output::File => {
            let entry = ctx
                .svc
                .content_by_link(caller, SCHEME, id)
                .map_err(core_error)?;
            if entry.rec.namespace != NAMESPACE {
                return Err(not_found());
            }
            let rep = entry.rep();
            let served = ctx
                .svc
                .serve(rep, &conditions(ctx.req.head))
                .await
                .map_err(core_error)?;
            Ok(respond(rep, served, Disposition::Attachment)?)
        }
        Output::Html => {
            let rec = file_for_link(&ctx, id)?;
            let src = format!("{}/s/{}", prefix_of(&ctx, &format!("/s/{id}")), id);
            let mut r = Response::new(200, Body::Bytes(html_page(&rec, &src).into_bytes()));
            r.content_type("text/html; charset=utf-8");
            Ok(r)
        }
        Output::Json => {
            let rec = file_for_link(&ctx, id)?;
            Ok(Response::json(200, &file_json(ctx.svc, &rec)))
        }
    }
}

/// The record of file `id` as a link reader may see it.
fn file_for_link(ctx: &Ctx<'_>, id: &str) -> Result<ObjectRecord, ApiError> {
    let rec = ctx
        .svc
        .object_by_link(&ctx.req.caller, SCHEME, id)
        .map_err(core_error)?;
    if rec.namespace != NAMESPACE {
        return Err(not_found());
    }
    Ok(rec)
}

/// The `output=html` page of `rec`, whose bytes are at `src`.
fn html_page(rec: &ObjectRecord, src: &str) -> String {
    let name = escape_html(&rec.name);
    let src = escape_html(src);
    let mime = rec.mime_type.to_ascii_lowercase();
    let body = if mime.starts_with("image/") {
        format!("<img src=\"{src}\" alt=\"{name}\">")
    } else if mime.starts_with("video/") {
        format!("<video controls src=\"{src}\"></video>")
    } else if mime.starts_with("audio/") {
        format!("<audio controls src=\"{src}\"></audio>")
    } else {
        format!("<a href=\"{src}\">{name}</a>")
    };
    format!(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>{name}</title></head>\n\
         <body>\n<h1>{name}</h1>\n{body}\n</body>\n</html>\n"
    )
}

/// Text made safe inside HTML elements and quoted attribute values.
pub(super) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /list` (with an `Authorization` header)
pub async fn list(ctx: Ctx<'_>) -> HandlerResult {
    let caller = &ctx.req.caller;
    let mut spec = ListSpec {
        namespace: Some(NAMESPACE.into()),
        owner: caller.user().map(str::to_string),
        limit: PAGE,
        ..ListSpec::default()
    };
    let mut all: Vec<ObjectRecord> = Vec::new();
    let mut truncated = false;
    loop {
        let page = ctx.svc.list_objects(caller, &spec).map_err(core_error)?;
        all.extend(page.objects.into_iter().filter(|r| caller.owns(r)));
        if all.len() >= 2 * MAX_LIST {
            keep_newest(&mut all, MAX_LIST);
            truncated = true;
        }
        match page.next_cursor {
            Some(c) => spec.cursor = Some(c),
            None => break,
        }
        // Let the worker's other connections run between pages of a long listing.
        yield_now().await;
    }
    if all.len() > MAX_LIST {
        truncated = true;
    }
    keep_newest(&mut all, MAX_LIST);
    let files: Vec<Value> = all.iter().map(|r| file_json(ctx.svc, r)).collect();
    let mut resp = Response::json(200, &files);
    if truncated {
        resp.header("X-Ringbox-Truncated", "true");
    }
    Ok(resp)
}

/// Newest first (ids are UUIDv7: creation order), at most `max`.
pub(super) fn keep_newest(all: &mut Vec<ObjectRecord>, max: usize) {
    all.sort_unstable_by_key(|r| std::cmp::Reverse(r.id));
    all.truncate(max);
}

/// Give the runtime a turn (monoio has no `yield_now`).
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// `DELETE /delete/{file_id}`
pub async fn delete(ctx: Ctx<'_>) -> HandlerResult {
    let caller = &ctx.req.caller;
    let id = ctx.req.param(0);
    if !crate::core::short_ids::is_short_id(id) {
        return Err(not_found());
    }
    let rec = ctx
        .svc
        .object_by_alias(caller, &format!("{SCHEME}:{id}"))
        .map_err(core_error)?;
    if rec.namespace != NAMESPACE || file_id_of(&rec) != id {
        return Err(not_found());
    }
    ctx.svc
        .delete_object(caller, rec.id)
        .await
        .map_err(|e| match e.kind {
            // Readable (an anonymous-read mode) but not the caller's: as unknown.
            ErrorKind::Forbidden => not_found(),
            _ => core_error(e),
        })?;
    Ok(Response::json(200, &json!({ "message": "File deleted" })))
}

/// `DELETE /delete_all?confirm=yes[&function=all|expired]`
pub async fn delete_all(ctx: Ctx<'_>) -> HandlerResult {
    let q = ctx.req.query()?;
    if q.get("confirm") != Some("yes") {
        return Err(ApiError::bad_request(
            "deleting files in bulk needs confirm=yes; nothing was deleted",
        ));
    }
    let caller = &ctx.req.caller;
    match q.get("function").unwrap_or("all") {
        "all" => {
            ctx.svc
                .delete_owned(caller, NAMESPACE, None)
                .await
                .map_err(core_error)?;
            Ok(Response::json(
                200,
                &json!({ "message": "All files deleted" }),
            ))
        }
        "expired" => {
            let after = ctx.svc.settings.short_links.idle_after;
            let cutoff = now_ms().saturating_sub(after.as_millis() as i64);
            let n = ctx
                .svc
                .delete_owned(caller, NAMESPACE, Some(cutoff))
                .await
                .map_err(core_error)?;
            let days = after.as_secs() / 86_400;
            let span = if days > 0 && after.as_secs() % 86_400 == 0 {
                format!("{days} days")
            } else {
                format!("{} seconds", after.as_secs())
            };
            Ok(Response::json(
                200,
                &json!({
                    "message": format!("{n} expired files deleted (not downloaded for {span})")
                }),
            ))
        }
        other => Err(ApiError::bad_request(format!(
            "function `{other}` is not one of all, expired; nothing was deleted"
        ))),
    }
}
