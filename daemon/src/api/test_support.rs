//! Driving an API's handlers directly in unit tests: a request head from text, a call
//! with an in-memory body that arrives in small chunks, and readers of the response.
//! Shared by the dialects' `tests.rs` so each tests its translation, not this plumbing.

use ringbox_protocol::head::{parse_request_head, RequestHead, Status};
use serde_json::Value;

use crate::core::stream::MemoryStream;
use crate::core::{Caller, Local};
use crate::http::request::{Ctx, Handler, HandlerResult, Params, Request};
use crate::http::response::{BlobParts, BlobSource, Body, Response};

/// A parsed request head (the text must be a complete head).
pub fn head(raw: &str) -> RequestHead {
    let mut h = RequestHead::new();
    let status = parse_request_head(raw.as_bytes(), &ringbox_protocol::Limits::default(), &mut h);
    assert!(
        matches!(status, Ok(Status::Complete(_))),
        "{raw:?}: {status:?}"
    );
    h
}

/// `line` (`METHOD /path`) with `headers` (each ending in CRLF) and `body` (a
/// Content-Length is added when there is one), `param` as the route's one path
/// parameter, called by `caller`; the body arrives in pieces of 7 bytes.
pub async fn call(
    svc: &Local,
    handler: Handler,
    line: &str,
    param: Option<&str>,
    headers: &str,
    body: &[u8],
    caller: Caller,
) -> HandlerResult {
    call_chunked(svc, handler, line, param, headers, body, caller, 7).await
}

/// [`call`] with the body in pieces of `chunk` bytes.
#[allow(clippy::too_many_arguments)] // a test helper mirroring a request's parts
pub async fn call_chunked(
    svc: &Local,
    handler: Handler,
    line: &str,
    param: Option<&str>,
    headers: &str,
    body: &[u8],
    caller: Caller,
    chunk: usize,
) -> HandlerResult {
    let length = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let h = head(&format!(
        "{line} HTTP/1.1\r\nHost: x\r\n{headers}{length}\r\n"
    ));
    let mut p = Params::default();
    if let Some(v) = param {
        p.push(std::borrow::Cow::Owned(v.to_string()));
    }
    let mut stream = MemoryStream::new(body.to_vec(), chunk);
    let ctx = Ctx {
        svc,
        req: Request {
            head: &h,
            params: p,
            caller,
            credential: None,
        },
        body: &mut stream,
    };
    handler(ctx).await
}

/// The JSON of a response with an in-memory body.
pub fn json_of(r: &Response) -> Value {
    match &r.body {
        Body::Bytes(b) => serde_json::from_slice(b).unwrap(),
        other => panic!("not a JSON body: {other:?}"),
    }
}

/// A response header's value.
pub fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| std::str::from_utf8(v.as_bytes()).unwrap())
}

/// The bytes of a content response served from memory (whole, or one range).
pub fn bytes_of(r: &Response) -> Vec<u8> {
    match &r.body {
        Body::Blob(BlobSource::Memory(data), BlobParts::Full(_)) => data.to_vec(),
        Body::Blob(BlobSource::Memory(data), BlobParts::Single(range)) => {
            data[range.start as usize..range.end as usize].to_vec()
        }
        other => panic!("unexpected body {other:?}"),
    }
}
