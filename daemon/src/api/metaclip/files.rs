//! File bytes: `HEAD|GET /file/{item_id}` and `PUT /file/{item_id}`.
//!
//! `GET`/`HEAD` serve through the core's content path (hot cache, conditionals,
//! ranges, the blob cache's check that the file is still there) and the common
//! content response, with `Content-Type: application/octet-stream` as the seed shows
//! (the parts of a `multipart/byteranges` answer keep the stored type). The seed's
//! statuses: a text item is 415 "Not a file"; a file item without bytes yet, a deleted
//! or unknown item, 404; bytes gone from the store, 410 "File lost" (on the very next
//! request: the core checks the file on every open). Ranges follow RFC 9110
//! (`Content-Range: bytes first-last/size`, several ranges as `multipart/byteranges`,
//! none satisfiable 416 with `Content-Range: bytes */size`), except that, as the seed
//! says, a `Range` this API cannot read is a 400 "Invalid range format" instead of
//! being ignored, and `bytes=5-2` (last before first) is a 416. More ranges than the
//! limit (16) are ignored (200), as everywhere in ringbox.
//!
//! `PUT` takes a `multipart/form-data` body with a part named `file` (other parts are
//! skipped) or any other body as the bytes themselves; 201 with no body. A text item
//! is 400 "Not a file", checked before anything is read.

use ringbox_protocol::head::BodyFraming;
use ringbox_protocol::range::{parse_range, RangeError};

use super::{core_error, item_id, not_found, NAMESPACE};
use crate::core::ErrorKind;
use crate::http::content::{conditions, respond, Disposition};
use crate::http::errors::ApiError;
use crate::http::form::{read_form, FormOptions};
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::{HeaderValue, Response};
use crate::store::Kind;

/// A range the core always judges unsatisfiable (a zero-length suffix), standing in
/// for `first-last` with last before first, so the core still applies the
/// conditionals (304, 412, `If-Range`) before the 416.
const UNSATISFIABLE: &[u8] = b"bytes=-0";

fn not_a_file(status: u16) -> ApiError {
    ApiError::new(status, "not_a_file", "Not a file")
}

/// `GET|HEAD /file/{item_id}`
pub async fn get(ctx: Ctx<'_>) -> HandlerResult {
    let id = item_id(&ctx)?;
    let entry = ctx
        .svc
        .object_content(&ctx.req.caller, id)
        .map_err(|e| match e.kind {
            // A file item that has no bytes yet.
            ErrorKind::Conflict => ApiError::new(
                404,
                "not_found",
                "File not found: the item has no content yet (PUT /file/{item_id})",
            ),
            _ => core_error(e),
        })?;
    if entry.rec.namespace != NAMESPACE {
        return Err(not_found());
    }
    if entry.rec.kind == Kind::Text {
        return Err(not_a_file(415));
    }
    let mut cond = conditions(ctx.req.head);
    if let Some(range) = cond.range {
        match parse_range(range, &ctx.svc.settings.limits) {
            Ok(_) | Err(RangeError::TooManyRanges { .. }) => {}
            Err(RangeError::LastBeforeFirst) => cond.range = Some(UNSATISFIABLE),
            Err(RangeError::Malformed(_) | RangeError::UnknownUnit) => {
                return Err(ApiError::new(400, "invalid_range", "Invalid range format"))
            }
        }
    }
    let rep = entry.rep();
    let served = ctx.svc.serve(rep, &cond).await.map_err(core_error)?;
    let mut resp = respond(rep, served, Disposition::None).map_err(|mut e| {
        if e.status == 416 {
            e.message = "Invalid range".into();
        }
        e
    })?;
    octet_stream(&mut resp);
    Ok(resp)
}

/// The seed's `Content-Type` for bytes (a `multipart/byteranges` answer keeps its own).
fn octet_stream(resp: &mut Response) {
    for (name, value) in resp.headers.iter_mut() {
        if *name == "Content-Type" && !value.as_bytes().starts_with(b"multipart/") {
            *value = HeaderValue::Static("application/octet-stream");
        }
    }
}

/// `PUT /file/{item_id}`
pub async fn put(ctx: Ctx<'_>) -> HandlerResult {
    let id = item_id(&ctx)?;
    let caller = &ctx.req.caller;
    // Refuse before reading the body: unknown, not the caller's, not an item, text.
    let rec = ctx.svc.object_for_write(caller, id).map_err(core_error)?;
    if rec.namespace != NAMESPACE {
        return Err(not_found());
    }
    if rec.kind == Kind::Text {
        return Err(not_a_file(400));
    }
    let (media, content_type) = ctx.req.content_type();
    let (blob, claim) = if media == "multipart/form-data" {
        let content_type = content_type.to_string();
        let opts = FormOptions {
            max_files: 1,
            file_fields: Some(&["file"]),
            ..FormOptions::default()
        };
        let mut form = read_form(ctx.svc, caller, ctx.body, &content_type, opts).await?;
        if form.files.is_empty() {
            return Err(ApiError::new(
                422,
                "unprocessable",
                "the form has no file part named `file` (e.g. curl -F file=@document.pdf)",
            ));
        }
        let f = form.files.remove(0);
        (f.blob, f.content_type)
    } else {
        if ctx.req.head.framing() == BodyFraming::None {
            return Err(ApiError::new(
                411,
                "length_required",
                "send the file as the body (multipart with a `file` part, or raw) with Content-Length or chunked encoding",
            ));
        }
        ctx.svc
            .check_declared_size(caller, ctx.body.declared_length())
            .map_err(core_error)?;
        let blob = ctx
            .svc
            .store_stream(caller, ctx.body)
            .await
            .map_err(core_error)?;
        (blob, ctx.req.header("content-type").map(str::to_string))
    };
    ctx.svc
        .set_content(caller, id, blob, claim.as_deref())
        .await
        .map_err(|e| match e.kind {
            // It became a text object meanwhile (the core refuses bytes for text).
            ErrorKind::Conflict => not_a_file(400),
            _ => core_error(e),
        })?;
    Ok(Response::empty(201))
}
