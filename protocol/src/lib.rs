//! `ringbox-protocol`: the sans-IO half of ringbox.
//!
//! This crate knows bytes and grammars and nothing else: no sockets, no files, no
//! async runtime, no clock (time is always passed in). Every parser is incremental
//! (feed bytes, get `Partial`/`NeedMore` or an event), bounded by an explicit
//! [`Limits`], and returns a typed error that knows the HTTP status it maps to
//! ([`HttpError::status`]). The daemon (`ringbox`) drives these state machines from
//! its monoio workers; the fuzz targets and criterion benches drive them directly.
//!
//! | module | what it does |
//! | --- | --- |
//! | [`head`] | HTTP/1.x request heads on `httparse`, body framing (RFC 9112 §6) |
//! | [`chunked`] | push decoder for `Transfer-Encoding: chunked` bodies and trailers |
//! | [`range`] | `Range: bytes=` parsing and resolution, `If-Range`, `multipart/byteranges` |
//! | [`conditional`] | ETag lists, HTTP-dates, RFC 9110 §13.2.2 evaluation order |
//! | [`multipart`] | streaming `multipart/form-data` parser (RFC 7578 / 2046) |
//! | [`percent`] | percent-decoding of path segments and query components (RFC 3986) |
//! | [`response`] | response heads, cached `Date`, RFC 6266 `Content-Disposition` |
//! | [`websocket`] | RFC 6455 handshake, frame codec and message assembly |
//!
//! The crate contains no `unsafe` code (`#![forbid(unsafe_code)]`): parsing bytes from
//! strangers is exactly where memory safety must not rest on reasoning, and no code
//! here needs it to be fast (httparse's SIMD sits behind its own safe API).

#![forbid(unsafe_code)]

pub mod chunked;
pub mod conditional;
pub mod error;
pub mod head;
pub mod limits;
pub mod multipart;
pub mod percent;
pub mod range;
pub mod response;
pub mod websocket;

pub use error::HttpError;
pub use limits::Limits;

/// Property checks shared by the cargo-fuzz targets and the stable corpus-replay test
/// (`protocol/tests/corpus.rs`): each takes arbitrary bytes and panics only when a
/// property of the parser is violated. Not part of the supported API.
#[doc(hidden)]
pub mod props;
