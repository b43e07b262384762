//! A request body as the core sees it: a stream of byte chunks, pulled one at a time.
//! The connection implements it over its socket (framing, `100 Continue`, deadlines,
//! the body size limit); tests implement it over memory ([`MemoryStream`]). The core
//! never sees the connection itself.
//!
//! A chunk borrows the stream's buffer until the next call, so streaming an upload
//! copies nothing between the socket buffer and the temp-file write buffer. Each call
//! returns a boxed future (one small allocation per chunk of up to 256 KiB), which is
//! what lets handlers take `&mut dyn ByteStream` and be plain functions in a table.

use std::future::Future;
use std::pin::Pin;

use super::error::CoreError;

/// The future of one [`ByteStream::next_chunk`] call.
pub type ChunkFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<&'a [u8]>, CoreError>> + 'a>>;

/// A request body.
pub trait ByteStream {
    /// The next piece of the body, or `None` at its end. Errors are final: the stream
    /// must not be read again after one.
    fn next_chunk(&mut self) -> ChunkFuture<'_>;

    /// The length the client declared (`Content-Length`), if any.
    fn declared_length(&self) -> Option<u64>;
}

/// Read a whole (small) body, refusing more than `limit` bytes with 413.
pub async fn read_to_vec(body: &mut dyn ByteStream, limit: u64) -> Result<Vec<u8>, CoreError> {
    let too_large = || {
        CoreError::too_large(
            "payload_too_large",
            format!("this body may be at most {limit} bytes"),
        )
    };
    if body.declared_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    while let Some(chunk) = body.next_chunk().await? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        out.extend_from_slice(chunk);
    }
    Ok(out)
}

/// A body held in memory, handed out in chunks of a chosen size (tests drive
/// handlers and services with it).
#[cfg(test)]
#[derive(Debug)]
pub struct MemoryStream {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
    declared: bool,
}

#[cfg(test)]
impl MemoryStream {
    /// `data` in chunks of at most `chunk` bytes, declared with its length.
    pub fn new(data: Vec<u8>, chunk: usize) -> MemoryStream {
        MemoryStream {
            data,
            pos: 0,
            chunk: chunk.max(1),
            declared: true,
        }
    }

    /// The same, as if sent chunked (no declared length).
    pub fn undeclared(mut self) -> MemoryStream {
        self.declared = false;
        self
    }
}

#[cfg(test)]
impl ByteStream for MemoryStream {
    fn next_chunk(&mut self) -> ChunkFuture<'_> {
        Box::pin(async move {
            if self.pos >= self.data.len() {
                return Ok(None);
            }
            let end = (self.pos + self.chunk).min(self.data.len());
            let start = self.pos;
            self.pos = end;
            Ok(Some(&self.data[start..end]))
        })
    }

    fn declared_length(&self) -> Option<u64> {
        self.declared.then_some(self.data.len() as u64)
    }
}
