//! Serving bytes: `GET|HEAD /v1/objects/{id}/content` and `GET|HEAD /v1/blobs/{sha}`.
//!
//! Conditionals and ranges are answered from the record alone (RFC 9110 §13.2.2
//! order, in `ringbox_protocol::conditional::evaluate`), before any file is touched:
//! a 304 or 412 costs one LMDB read. Only 200/206 open the blob, through the worker's
//! blob cache. A blob whose file is gone is 410 `lost` (and the record is marked lost
//! in the background); one whose size or hash does not match is 500 `corrupt`, never
//! served under its strong ETag.

use std::rc::Rc;

use ringbox_protocol::conditional::{evaluate, format_http_date, Conditions, Decision, Validators};
use ringbox_protocol::range::{content_range, unsatisfied_content_range, ByteRangesWriter};
use ringbox_protocol::response::{content_disposition, DispositionKind};

use super::Result;
use crate::api::Ctx;
use crate::http::errors::ApiError;
use crate::http::response::{BlobParts, BlobSource, Body, Response};
use crate::server::blob_cache::{BlobCache, OpenError};
use crate::server::hot_cache::{last_modified_secs, HotEntry};
use crate::store::{Command, Kind, ObjectId, State};
use crate::util::hex;

/// What is being served, with its response header values ready.
struct Representation<'a> {
    sha: [u8; 32],
    size: u64,
    mime: Rc<str>,
    etag: Rc<str>,
    last_modified_secs: u64,
    last_modified: Rc<str>,
    /// Name for `Content-Disposition`, and its ready `inline` value (objects only).
    filename: &'a str,
    inline_disposition: Option<Rc<str>>,
    /// Text objects carry their bytes in the record.
    inline: Option<&'a str>,
    object: Option<ObjectId>,
}

/// The object's record with its header values, from the worker's hot cache or LMDB.
fn hot_entry(ctx: &Ctx<'_>, id: ObjectId) -> Result<Rc<HotEntry>> {
    let store = ctx.w.store();
    let generation = store.writer().data_generation();
    if let Some(e) = ctx.w.hot.borrow_mut().get(id, generation) {
        return Ok(e);
    }
    let rec = store
        .get_object(id)?
        .ok_or_else(|| ApiError::not_found("the object"))?;
    let entry = Rc::new(HotEntry::new(rec));
    ctx.w.hot.borrow_mut().insert(id, generation, entry.clone());
    Ok(entry)
}

/// `/v1/objects/{id}/content`
pub async fn object(ctx: &Ctx<'_>, id: ObjectId) -> Result<Response> {
    let entry = hot_entry(ctx, id)?;
    let rec = &entry.rec;
    match (rec.kind, rec.state, rec.sha256) {
        (_, State::Lost, _) => Err(lost()),
        (_, State::Pending, _) | (_, _, None) => Err(ApiError::new(
            409,
            "pending",
            "the object has no content yet; upload it with PUT /v1/objects/{id}/content",
        )),
        (kind, State::Stored, Some(sha)) => {
            let rep = Representation {
                sha,
                size: rec.size,
                mime: entry.mime.clone(),
                etag: entry.etag.clone(),
                last_modified_secs: last_modified_secs(rec),
                last_modified: entry.last_modified.clone(),
                filename: &rec.name,
                inline_disposition: Some(entry.inline_disposition.clone()),
                inline: if kind == Kind::Text {
                    rec.content.as_deref()
                } else {
                    None
                },
                object: Some(id),
            };
            serve(ctx, &rep).await
        }
    }
}

/// `/v1/blobs/{sha256}`
pub async fn blob(ctx: &Ctx<'_>, sha: [u8; 32]) -> Result<Response> {
    let b = ctx
        .w
        .store()
        .get_blob(&sha)?
        .filter(|b| b.refcount > 0)
        .ok_or_else(|| ApiError::not_found("a blob with this hash"))?;
    let hex_name = hex::encode(&sha);
    let secs = (b.created_at_ms / 1000).max(0) as u64;
    let lm = format_http_date(secs);
    let rep = Representation {
        sha,
        size: b.size,
        mime: "application/octet-stream".into(),
        etag: format!("\"{hex_name}\"").into(),
        last_modified_secs: secs,
        last_modified: std::str::from_utf8(&lm).unwrap_or_default().into(),
        filename: &hex_name,
        inline_disposition: None,
        inline: None,
        object: None,
    };
    serve(ctx, &rep).await
}

fn lost() -> ApiError {
    ApiError::new(
        410,
        "lost",
        "the object's bytes are gone from the blob store; upload the content again (see `ringbox check`)",
    )
}

async fn serve(ctx: &Ctx<'_>, rep: &Representation<'_>) -> Result<Response> {
    let head = ctx.head;
    let conditions = Conditions {
        if_match: head.header("if-match"),
        if_none_match: head.header("if-none-match"),
        if_modified_since: head.header("if-modified-since"),
        if_unmodified_since: head.header("if-unmodified-since"),
        if_range: head.header("if-range"),
        range: head.header("range"),
    };
    let validators = Validators {
        etag: &rep.etag,
        last_modified: Some(rep.last_modified_secs),
        len: rep.size,
    };
    let decision = evaluate(true, &conditions, &validators, &ctx.w.shared.limits);

    let mut resp = match decision {
        Decision::NotModified => {
            let mut r = Response::empty(304);
            r.header("ETag", rep.etag.clone())
                .header("Last-Modified", rep.last_modified.clone());
            return Ok(r);
        }
        Decision::PreconditionFailed => {
            return Err(ApiError::new(
                412,
                "precondition_failed",
                "If-Match or If-Unmodified-Since did not match the current content",
            )
            .with_header("ETag", rep.etag.to_string()));
        }
        Decision::RangeNotSatisfiable => {
            return Err(ApiError::new(
                416,
                "range_not_satisfiable",
                format!(
                    "no requested range lies within the {} bytes of the content",
                    rep.size
                ),
            )
            .with_header("Content-Range", unsatisfied_content_range(rep.size)));
        }
        Decision::Full => {
            let source = open(ctx, rep).await?;
            let mut r = Response::new(200, Body::Blob(source, BlobParts::Full(rep.size)));
            r.content_type(rep.mime.clone());
            r
        }
        Decision::Partial(mut ranges) if ranges.len() == 1 => {
            let range = ranges.remove(0);
            let source = open(ctx, rep).await?;
            let mut r = Response::new(206, Body::Blob(source, BlobParts::Single(range)));
            r.content_type(rep.mime.clone());
            r.header("Content-Range", content_range(range, rep.size));
            r
        }
        Decision::Partial(ranges) => {
            let source = open(ctx, rep).await?;
            let writer = ByteRangesWriter::new(&boundary(), &rep.mime, rep.size);
            let ct = writer.content_type();
            let mut r = Response::new(206, Body::Blob(source, BlobParts::Multi(writer, ranges)));
            r.content_type(ct);
            r
        }
    };
    resp.header("ETag", rep.etag.clone())
        .header("Last-Modified", rep.last_modified.clone())
        .header("Accept-Ranges", "bytes");
    let download = head.query().is_some_and(|q| q.contains("download"))
        && crate::util::query::Query::parse(head.query())
            .ok()
            .and_then(|q| q.get("download").map(|v| v == "1" || v == "true"))
            .unwrap_or(false);
    if download {
        resp.header(
            "Content-Disposition",
            content_disposition(DispositionKind::Attachment, rep.filename),
        );
    } else if let Some(inline) = &rep.inline_disposition {
        resp.header("Content-Disposition", inline.clone());
    }
    Ok(resp)
}

/// A random multipart boundary (it must not occur in the body; 96 random bits).
fn boundary() -> String {
    let mut b = [0u8; 12];
    if getrandom::fill(&mut b).is_err() {
        // Falls back to the clock: still unpredictable enough for a delimiter.
        b[..8].copy_from_slice(&crate::util::time::now_ms().to_le_bytes());
    }
    format!("ringbox-{}", hex::encode(&b))
}

async fn open(ctx: &Ctx<'_>, rep: &Representation<'_>) -> Result<BlobSource> {
    if let Some(text) = rep.inline {
        return Ok(BlobSource::Memory(Rc::from(text.as_bytes())));
    }
    match BlobCache::open(&ctx.w.blobs, ctx.w.store(), &rep.sha, rep.size).await {
        Ok(s) => Ok(s),
        Err(OpenError::Lost) => {
            if let Some(id) = rep.object {
                tracing::warn!(%id, sha = %hex::encode(&rep.sha), "blob file is missing; marking the object lost");
                let mark = ctx.w.store().writer().submit(Command::MarkLost {
                    id,
                    sha256: rep.sha,
                });
                monoio::spawn(async move {
                    let _ = mark.await;
                });
            }
            Err(lost())
        }
        Err(OpenError::Corrupt(msg)) => {
            tracing::error!(sha = %hex::encode(&rep.sha), "{msg}");
            Err(ApiError::new(
                500,
                "corrupt",
                format!("{msg}; the content is not served under its hash. Run `ringbox check`"),
            ))
        }
        Err(OpenError::Io(e)) => Err(e.into()),
    }
}
