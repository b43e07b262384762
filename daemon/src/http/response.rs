//! What a handler returns: a status, headers and a [`Body`]. The connection writes
//! the head (adding `Date`, `Content-Length` and `Connection`) and then the body by the
//! fastest path for its kind (the server's send path). A 101 answer may carry an
//! [`OnUpgrade`] that takes the connection over afterwards.

use std::rc::Rc;

use ringbox_protocol::range::{ByteRange, ByteRangesWriter};

pub use crate::core::blob_cache::BlobSource;
use crate::http::upgrade::OnUpgrade;

/// Which bytes of a blob to send.
#[derive(Debug)]
pub enum BlobParts {
    /// The whole blob of this length.
    Full(u64),
    /// One range (206 with Content-Range).
    Single(ByteRange),
    /// Several ranges as `multipart/byteranges`.
    Multi(ByteRangesWriter, Vec<ByteRange>),
}

/// A response body.
#[derive(Debug)]
pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    Blob(BlobSource, BlobParts),
}

impl Body {
    /// The exact number of body bytes (the Content-Length).
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Blob(_, BlobParts::Full(len)) => *len,
            Body::Blob(_, BlobParts::Single(r)) => r.len(),
            Body::Blob(_, BlobParts::Multi(w, ranges)) => w.body_len(ranges),
        }
    }
}

/// A header value: static, owned, or shared with a cache (no copy per response).
#[derive(Debug, Clone)]
pub enum HeaderValue {
    Static(&'static str),
    Owned(String),
    Shared(Rc<str>),
}

impl HeaderValue {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            HeaderValue::Static(s) => s.as_bytes(),
            HeaderValue::Owned(s) => s.as_bytes(),
            HeaderValue::Shared(s) => s.as_bytes(),
        }
    }
}

impl From<&'static str> for HeaderValue {
    fn from(s: &'static str) -> Self {
        HeaderValue::Static(s)
    }
}

impl From<String> for HeaderValue {
    fn from(s: String) -> Self {
        HeaderValue::Owned(s)
    }
}

impl From<Rc<str>> for HeaderValue {
    fn from(s: Rc<str>) -> Self {
        HeaderValue::Shared(s)
    }
}

/// A handler's answer.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, HeaderValue)>,
    pub body: Body,
    /// Close the connection after this response.
    pub close: bool,
    /// For a 101: what takes the connection over once the head is written.
    pub upgrade: Option<OnUpgrade>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .field("close", &self.close)
            .field("upgrade", &self.upgrade.is_some())
            .finish()
    }
}

impl Response {
    pub fn new(status: u16, body: Body) -> Self {
        Self {
            status,
            headers: Vec::with_capacity(8),
            body,
            close: false,
            upgrade: None,
        }
    }

    /// 200/201 with a JSON body.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_default();
        let mut r = Self::new(status, Body::Bytes(body));
        r.content_type("application/json");
        r
    }

    pub fn empty(status: u16) -> Self {
        Self::new(status, Body::Empty)
    }

    pub fn header(&mut self, name: &'static str, value: impl Into<HeaderValue>) -> &mut Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn content_type(&mut self, value: impl Into<HeaderValue>) -> &mut Self {
        self.header("Content-Type", value)
    }
}
