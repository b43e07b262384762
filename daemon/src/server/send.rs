//! Writing a response: the head (status line, `Date` from the worker's cache,
//! `Content-Length`, `Connection: close` when closing, the handler's headers) and the
//! body by the cheapest path for its kind:
//!
//! - small cached blobs (and a single range of them) go out with the head in one
//!   `writev`, without copying the body; other in-memory bodies (JSON, byteranges of
//!   cached blobs) are appended to the head and go out in one write;
//! - file-backed blobs go out with `sendfile(2)` (no copy through user space), the
//!   head sent just before with `MSG_MORE` so the kernel can coalesce them.
//!
//! A short read of a blob file (the file shrank behind our back) aborts the
//! connection: the head already promised a length, and sending other bytes under a
//! strong ETag would be worse.

use std::io;
use std::sync::atomic::Ordering::Relaxed;

use ringbox_protocol::range::ByteRange;
use ringbox_protocol::response::{write_content_length, write_header, write_status_line};

use crate::http::response::{BlobParts, BlobSource, Body, Response};
use crate::metrics;
use crate::server::conn::ConnIo;
use crate::server::workers::Worker;
use crate::sys;
use crate::util::time::now_secs;

/// Bodies up to this size are copied behind the head and sent in one write.
const INLINE_BODY: usize = 64 * 1024;

/// Write `resp`. `head_only` (HEAD requests) sends the head with the body's length but
/// no body. Returns the bytes written.
pub async fn write_response(
    io: &mut ConnIo,
    w: &Worker,
    resp: Response,
    head_only: bool,
    close: bool,
) -> io::Result<()> {
    let mut out = std::mem::take(&mut io.out);
    out.clear();
    write_status_line(&mut out, resp.status);
    {
        let mut date = w.date.borrow_mut();
        date.update(now_secs());
        write_header(&mut out, "Date", date.value());
    }
    let bodyless = resp.status < 200 || resp.status == 204 || resp.status == 304;
    if !bodyless {
        write_content_length(&mut out, resp.body.len());
    }
    for (name, value) in &resp.headers {
        write_header(&mut out, name, value.as_bytes());
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if head_only || bodyless {
        return finish(io, out).await;
    }
    let is_content = matches!(resp.body, Body::Blob(..));
    let result = match resp.body {
        Body::Empty => finish(io, out).await,
        Body::Bytes(b) if b.len() <= INLINE_BODY => {
            out.extend_from_slice(&b);
            finish(io, out).await
        }
        Body::Bytes(b) => {
            finish(io, out).await?;
            let (res, _) = io.write_all(b).await;
            res
        }
        Body::Blob(BlobSource::Memory(data), BlobParts::Full(_)) => {
            let len = data.len();
            head_and_body(io, sys::HeadAndBody::new(out, data, 0, len)).await
        }
        Body::Blob(BlobSource::Memory(data), BlobParts::Single(r)) => {
            let hb = sys::HeadAndBody::new(out, data, r.start as usize, r.end as usize);
            head_and_body(io, hb).await
        }
        Body::Blob(BlobSource::Memory(data), parts) => {
            match parts {
                BlobParts::Full(_) => out.extend_from_slice(&data),
                BlobParts::Single(r) => out.extend_from_slice(slice(&data, r)),
                BlobParts::Multi(writer, ranges) => {
                    for (i, r) in ranges.iter().enumerate() {
                        out.extend_from_slice(&writer.part_head(i, *r));
                        out.extend_from_slice(slice(&data, *r));
                    }
                    out.extend_from_slice(&writer.trailer());
                }
            }
            finish(io, out).await
        }
        Body::Blob(BlobSource::File(file), parts) => match parts {
            BlobParts::Full(len) => {
                send_file(io, &file, out, ByteRange { start: 0, end: len }).await
            }
            BlobParts::Single(r) => send_file(io, &file, out, r).await,
            BlobParts::Multi(writer, ranges) => {
                let mut pending = out;
                for (i, r) in ranges.iter().enumerate() {
                    pending.extend_from_slice(&writer.part_head(i, *r));
                    send_file(io, &file, pending, *r).await?;
                    pending = std::mem::take(&mut io.out);
                    pending.clear();
                }
                pending.extend_from_slice(&writer.trailer());
                finish(io, pending).await
            }
        },
    };
    if is_content && result.is_ok() {
        metrics::get().downloads.fetch_add(1, Relaxed);
    }
    result
}

fn slice(data: &[u8], r: ByteRange) -> &[u8] {
    &data[r.start as usize..r.end as usize]
}

/// Write a head with a cached body slice and keep the head buffer.
async fn head_and_body(io: &mut ConnIo, hb: sys::HeadAndBody) -> io::Result<()> {
    let (res, out) = io.write_head_and_body(hb).await;
    io.out = out;
    res
}

/// Write `out` and keep the buffer for the next response.
async fn finish(io: &mut ConnIo, out: Vec<u8>) -> io::Result<()> {
    let (res, mut out) = io.write_all(out).await;
    if out.capacity() > INLINE_BODY * 2 {
        out = Vec::with_capacity(4096);
    }
    io.out = out;
    res
}

/// Send `prefix` (a head or part head) followed by the bytes `r` of `file`, with
/// `sendfile(2)`: the bytes go from the page cache to the socket without a copy
/// through user space (nginx's path). The socket is non-blocking meanwhile, so a full
/// socket buffer means awaiting writability, never blocking the worker. A blob that
/// is not in the page cache makes `sendfile` wait for the disk, exactly like nginx
/// without `aio threads`; see tuning.md.
async fn send_file(
    io: &mut ConnIo,
    file: &monoio::fs::File,
    prefix: Vec<u8>,
    r: ByteRange,
) -> io::Result<()> {
    let _nonblocking = sys::NonBlocking::set(io.stream())?;
    let mut sent = 0;
    while sent < prefix.len() {
        match sys::send_more(io.stream(), &prefix[sent..]) {
            Ok(n) => sent += n,
            Err(e) => io.handle_send_error(e).await?,
        }
    }
    metrics::get()
        .bytes_out
        .fetch_add(prefix.len() as u64, Relaxed);
    io.out = prefix;
    let mut offset = r.start;
    while offset < r.end {
        // sendfile moves at most 2 GiB - 4 KiB per call.
        let want = (r.end - offset).min(1 << 30) as usize;
        match sys::sendfile(io.stream(), file, &mut offset, want) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob file is shorter than its record; run `ringbox check`",
                ))
            }
            Ok(n) => {
                metrics::get().bytes_out.fetch_add(n as u64, Relaxed);
            }
            Err(e) => io.handle_send_error(e).await?,
        }
    }
    Ok(())
}
