//! The common part of every content response: a core [`Representation`] and what the
//! core decided for the request's conditions ([`Served`]) become a response with
//! `ETag`, `Last-Modified`, `Accept-Ranges`, `Content-Range` or `multipart/byteranges`,
//! and the `Content-Disposition` the API asks for. An API adds its own headers to the
//! result (RhinoBox's `X-File-Hash`, say) or overrides the content type.

use ringbox_protocol::conditional::Conditions;
use ringbox_protocol::head::RequestHead;
use ringbox_protocol::range::{content_range, unsatisfied_content_range, ByteRangesWriter};
use ringbox_protocol::response::{content_disposition, DispositionKind};

use crate::core::content::{Representation, Served};
use crate::http::errors::ApiError;
use crate::http::response::{BlobParts, Body, Response};
use crate::util::hex;

/// Which `Content-Disposition` a content response carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    None,
    /// `inline; filename=...` (shared, precomputed for hot objects).
    Inline,
    /// `attachment; filename=...`.
    Attachment,
}

/// The conditional headers of a request.
pub fn conditions(head: &RequestHead) -> Conditions<'_> {
    Conditions {
        if_match: head.header("if-match"),
        if_none_match: head.header("if-none-match"),
        if_modified_since: head.header("if-modified-since"),
        if_unmodified_since: head.header("if-unmodified-since"),
        if_range: head.header("if-range"),
        range: head.header("range"),
    }
}

/// The response for `served`; 412 and 416 are errors (rendered by the API).
pub fn respond(
    rep: &Representation,
    served: Served,
    disposition: Disposition,
) -> Result<Response, ApiError> {
    let mut resp = match served {
        Served::NotModified => {
            let mut r = Response::empty(304);
            r.header("ETag", rep.etag.clone())
                .header("Last-Modified", rep.last_modified.clone());
            return Ok(r);
        }
        Served::PreconditionFailed => {
            return Err(ApiError::new(
                412,
                "precondition_failed",
                "If-Match or If-Unmodified-Since did not match the current content",
            )
            .with_header("ETag", rep.etag.to_string()));
        }
        Served::RangeNotSatisfiable => {
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
        Served::Full(source) => {
            let mut r = Response::new(200, Body::Blob(source, BlobParts::Full(rep.size)));
            r.content_type(rep.mime.clone());
            r
        }
        Served::Partial(source, mut ranges) if ranges.len() == 1 => {
            let range = ranges.remove(0);
            let mut r = Response::new(206, Body::Blob(source, BlobParts::Single(range)));
            r.content_type(rep.mime.clone());
            r.header("Content-Range", content_range(range, rep.size));
            r
        }
        Served::Partial(source, ranges) => {
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
    match disposition {
        Disposition::None => {}
        Disposition::Inline => {
            resp.header("Content-Disposition", rep.inline_disposition.clone());
        }
        Disposition::Attachment => {
            resp.header(
                "Content-Disposition",
                content_disposition(DispositionKind::Attachment, &rep.filename),
            );
        }
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
