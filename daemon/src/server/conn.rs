//! One connection's life: read a head (idle deadline before the first byte, then one
//! deadline over the whole head), frame the body, dispatch to the API, write the
//! response, and either loop (keep-alive, serial pipelining: leftover bytes are the
//! next request) or close.
//!
//! [`ConnIo`] owns the socket and the one read buffer of the connection, reused for
//! every request. It is the request body handlers read, as a core [`ByteStream`]:
//! the first read answers `Expect: 100-continue` (handlers read only after their auth
//! and size checks), `max_body` is enforced on chunked bodies, every read has a
//! deadline, and a body must keep up a minimum rate (`--min-body-rate`, after a 10 s
//! grace) so a trickle cannot hold a connection forever. Any framing error closes the
//! connection after the error response.
//!
//! A first byte that cannot start an HTTP request (a TLS ClientHello on the plain
//! port, binary garbage) is answered 400 and the connection closed at once, as nginx
//! does, instead of after the header timeout.
//!
//! Deadlines race each read against a timer; an expired read is dropped (monoio
//! cancels it) and the connection is closed, so no byte is ever needed from it.
//!
//! A `101` answer with an upgrade callback hands the socket (split into owned halves)
//! and the bytes already read over to that callback for the rest of the connection.

use std::time::{Duration, Instant};

use std::net::IpAddr;
use std::rc::Rc;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use ringbox_protocol::chunked::{ChunkedDecoder, ChunkedEvent};
use ringbox_protocol::head::{parse_request_head, BodyFraming, Method, RequestHead, Status};
use ringbox_protocol::Limits;

use crate::core::stream::{ByteStream, ChunkFuture};
use crate::core::{CoreError, ErrorKind};
use crate::http::errors::{core_error_from_protocol, render_native, ApiError};
use crate::metrics;
use crate::server::send;
use crate::server::upgraded;
use crate::server::workers::Worker;
use crate::sys;

/// Initial read buffer; grows to the head limit or [`BODY_BUF`] when needed. It is
/// what an idle keep-alive connection holds (its pending read needs a buffer), so it
/// is small: most request heads are a few hundred bytes.
const INITIAL_BUF: usize = 2048;
/// Read buffer size while streaming a body.
pub const BODY_BUF: usize = 256 * 1024;
/// Leftover request bodies up to this size are read and discarded to keep the
/// connection; larger ones close it.
const DRAIN_LIMIT: u64 = 1 << 20;
/// A body gets this long before `--min-body-rate` applies (slow starts, TCP ramp-up).
const BODY_RATE_GRACE: Duration = Duration::from_secs(10);

/// How a read ended when it did not return bytes.
#[derive(Debug)]
pub enum ReadFail {
    TimedOut,
    Shutdown,
    Io(std::io::Error),
}

enum BodyState {
    None,
    Length { remaining: u64 },
    Chunked(Box<ChunkedDecoder>),
    Done,
}

/// The socket, the reusable read buffer and the state of the current request body.
pub struct ConnIo {
    stream: TcpStream,
    /// Bytes `[pos, rbuf.len())` are read but not yet consumed.
    rbuf: Vec<u8>,
    pos: usize,
    /// Reused buffer for response heads and small bodies.
    pub(crate) out: Vec<u8>,
    body: BodyState,
    continue_pending: bool,
    body_read: u64,
    /// When the current body's first read happened.
    body_started: Option<Instant>,
    /// A body read failed: the body's state is unknown, the connection must close.
    body_failed: bool,
    max_body: u64,
    min_body_rate: u64,
    body_timeout: Duration,
    limits: Limits,
}

impl std::fmt::Debug for ConnIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnIo")
            .field("buffered", &(self.rbuf.len() - self.pos))
            .finish()
    }
}

enum Step {
    Data(usize, usize),
    Read,
    End,
}

impl ConnIo {
    /// Read more bytes into the buffer (appending), with a deadline, and (for idle
    /// waits) until the worker shuts down. Returns the number of bytes read; 0 means
    /// the peer closed.
    ///
    /// On a deadline or shutdown the in-flight read is dropped, which makes monoio
    /// cancel it; bytes it might have received are lost, which is fine because every
    /// caller closes the connection in that case. (Cancelable reads would keep them,
    /// at the price of an allocation per read on the hot path.)
    async fn read_more(
        &mut self,
        deadline: Instant,
        shutdown: Option<&Worker>,
    ) -> Result<usize, ReadFail> {
        if self.rbuf.capacity() == self.rbuf.len() {
            self.rbuf.reserve(INITIAL_BUF);
        }
        let buf = std::mem::take(&mut self.rbuf);
        let (len, cap) = (buf.len(), buf.capacity());
        let read = self.stream.read(buf.slice_mut(len..cap));
        let sleep = monoio::time::sleep_until(deadline.into());
        let (res, slice) = match shutdown {
            Some(w) => monoio::select! {
                r = read => r,
                _ = sleep => return Err(ReadFail::TimedOut),
                _ = w.shutdown.wait() => return Err(ReadFail::Shutdown),
            },
            None => monoio::select! {
                r = read => r,
                _ = sleep => return Err(ReadFail::TimedOut),
            },
        };
        self.rbuf = slice.into_inner();
        match res {
            Ok(n) => {
                metrics::get()
                    .bytes_in
                    .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => Err(ReadFail::Io(e)),
        }
    }

    /// Drop consumed bytes from the front of the buffer.
    fn compact(&mut self) {
        if self.pos > 0 {
            self.rbuf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Write all of `buf` with the body deadline; returns the buffer for reuse.
    pub(crate) async fn write_all(&mut self, buf: Vec<u8>) -> (std::io::Result<()>, Vec<u8>) {
        let n = buf.len() as u64;
        // On expiry the write is dropped (monoio cancels it); the connection is then
        // closed, so nothing depends on how much was written.
        let write = self.stream.write_all(buf);
        match monoio::time::timeout(self.body_timeout, write).await {
            Ok((res, buf)) => {
                if res.is_ok() {
                    metrics::get()
                        .bytes_out
                        .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                }
                (res.map(|_| ()), buf)
            }
            Err(_) => (
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client did not read the response in time",
                )),
                Vec::new(),
            ),
        }
    }

    /// Write a head and a cached body slice with one `writev` (no copy of the body);
    /// returns the head buffer for reuse.
    pub(crate) async fn write_head_and_body(
        &mut self,
        hb: sys::HeadAndBody,
    ) -> (std::io::Result<()>, Vec<u8>) {
        let total = hb.len();
        match monoio::time::timeout(self.body_timeout, self.stream.writev(hb)).await {
            Ok((Ok(n), hb)) if n == total => {
                metrics::get()
                    .bytes_out
                    .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                (Ok(()), hb.into_head())
            }
            Ok((Ok(n), hb)) => {
                // Partial write (a full socket buffer): send the rest the plain way.
                metrics::get()
                    .bytes_out
                    .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                let rest = hb.rest_after(n);
                let (res, _) = self.write_all(rest).await;
                (res, hb.into_head())
            }
            Ok((Err(e), hb)) => (Err(e), hb.into_head()),
            Err(_) => (
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client did not read the response in time",
                )),
                Vec::new(),
            ),
        }
    }

    /// The socket, for the raw send paths in `send`.
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// After a raw send failed: wait for writability on `EAGAIN` (bounded by the body
    /// timeout), retry on `EINTR`, give up on anything else.
    pub(crate) async fn handle_send_error(&self, e: std::io::Error) -> std::io::Result<()> {
        match e.kind() {
            std::io::ErrorKind::WouldBlock => {
                match monoio::time::timeout(self.body_timeout, self.stream.writable(true)).await {
                    Ok(r) => r,
                    Err(_) => Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "client did not read the response in time",
                    )),
                }
            }
            std::io::ErrorKind::Interrupted => Ok(()),
            _ => Err(e),
        }
    }

    /// Whether the request body has been read to its end (or there is none).
    pub fn body_finished(&self) -> bool {
        matches!(self.body, BodyState::None | BodyState::Done)
    }

    /// The declared body length, when framed by Content-Length.
    pub fn declared_length(&self) -> Option<u64> {
        match self.body {
            BodyState::Length { remaining } => Some(remaining + self.body_read),
            _ => None,
        }
    }

    /// Next piece of the request body, or `None` at its end. Sends `100 Continue` first
    /// if the client asked for it. Errors close the connection.
    pub async fn next_body_chunk(&mut self) -> Result<Option<&[u8]>, CoreError> {
        if self.body_failed {
            return Err(CoreError::invalid("the request body already failed"));
        }
        match self.read_body_chunk().await {
            Ok(Some((start, end))) => Ok(Some(&self.rbuf[start..end])),
            Ok(None) => Ok(None),
            Err(e) => {
                self.body_failed = true;
                Err(e)
            }
        }
    }

    /// [`ConnIo::next_body_chunk`], as a range of the read buffer.
    async fn read_body_chunk(&mut self) -> Result<Option<(usize, usize)>, CoreError> {
        if self.continue_pending {
            self.continue_pending = false;
            let (res, _) = self
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec())
                .await;
            res.map_err(|_| CoreError::invalid("client went away"))?;
        }
        let started = *self.body_started.get_or_insert_with(Instant::now);
        loop {
            let avail = self.rbuf.len() - self.pos;
            let step = match &mut self.body {
                BodyState::None | BodyState::Done => Step::End,
                BodyState::Length { remaining } if *remaining == 0 => {
                    self.body = BodyState::Done;
                    Step::End
                }
                BodyState::Length { remaining } => {
                    if avail > 0 {
                        let n = (*remaining).min(avail as u64) as usize;
                        *remaining -= n as u64;
                        let start = self.pos;
                        self.pos += n;
                        Step::Data(start, start + n)
                    } else {
                        Step::Read
                    }
                }
                BodyState::Chunked(dec) => {
                    if avail == 0 {
                        Step::Read
                    } else {
                        let input = &self.rbuf[self.pos..];
                        let base = input.as_ptr() as usize;
                        let (consumed, ev) = dec
                            .decode(input)
                            .map_err(|e| core_error_from_protocol(&e))?;
                        let step = match ev {
                            ChunkedEvent::Data(d) => {
                                let start = self.pos + (d.as_ptr() as usize - base);
                                Step::Data(start, start + d.len())
                            }
                            ChunkedEvent::NeedMore => Step::Read,
                            ChunkedEvent::Done => {
                                self.pos += consumed;
                                self.body = BodyState::Done;
                                continue;
                            }
                        };
                        // Consumption may extend past the data (e.g. a chunk's CRLF).
                        self.pos += consumed;
                        step
                    }
                }
            };
            match step {
                Step::End => return Ok(None),
                Step::Data(start, end) => {
                    self.body_read += (end - start) as u64;
                    if self.body_read > self.max_body {
                        return Err(CoreError::too_large(
                            "payload_too_large",
                            format!("the request body is larger than the limit of {} bytes (max_body); send less or raise the limit", self.max_body),
                        ));
                    }
                    return Ok(Some((start, end)));
                }
                Step::Read => {
                    self.compact();
                    if self.rbuf.capacity() < BODY_BUF {
                        self.rbuf.reserve(BODY_BUF - self.rbuf.len());
                    }
                    let now = Instant::now();
                    let mut deadline = now + self.body_timeout;
                    if self.min_body_rate > 0 {
                        // The body must have delivered `rate x (elapsed - grace)` bytes:
                        // read no longer than the moment it falls behind that line.
                        let owed_until = started
                            + BODY_RATE_GRACE
                            + Duration::from_secs_f64(
                                self.body_read as f64 / self.min_body_rate as f64,
                            );
                        deadline = deadline.min(owed_until.max(now + Duration::from_millis(1)));
                    }
                    match self.read_more(deadline, None).await {
                        Ok(0) => {
                            return Err(CoreError::invalid(
                                "the connection closed before the request body was complete",
                            ))
                        }
                        Ok(_) => {}
                        Err(ReadFail::TimedOut) => {
                            return Err(CoreError::new(
                                ErrorKind::Timeout,
                                "request_timeout",
                                if Instant::now() < now + self.body_timeout {
                                    format!("the request body arrived slower than min_body_rate ({} bytes/s)", self.min_body_rate)
                                } else {
                                    "the request body stalled longer than body_timeout".to_string()
                                },
                            ))
                        }
                        Err(_) => {
                            return Err(CoreError::invalid(
                                "the connection failed while reading the body",
                            ))
                        }
                    }
                }
            }
        }
    }

    /// Read and discard what is left of the body if it is small; false if the
    /// connection must be closed instead.
    async fn drain_body(&mut self) -> bool {
        if self.body_failed {
            return false;
        }
        if self.continue_pending {
            // We never asked for the body; the client may or may not send it.
            return false;
        }
        if let BodyState::Length { remaining } = self.body {
            if remaining > DRAIN_LIMIT {
                return false;
            }
        }
        let start = self.body_read;
        loop {
            match self.next_body_chunk().await {
                Ok(Some(_)) => {}
                Ok(None) => return true,
                Err(_) => return false,
            }
            if self.body_read - start > DRAIN_LIMIT {
                return false;
            }
        }
    }

    /// Close politely: stop writing, read and discard for a moment so the kernel does
    /// not reset the connection (and destroy our error response) while the client is
    /// still sending.
    async fn lingering_close(&mut self) {
        let _ = self.stream.shutdown().await;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut discarded = 0usize;
        while discarded < 4 << 20 {
            self.rbuf.clear();
            self.pos = 0;
            match self.read_more(deadline, None).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    }
}

/// Serve one connection until it closes.
pub async fn serve(w: &Rc<Worker>, stream: TcpStream, peer: Option<IpAddr>) {
    let cfg = w.cfg();
    let mut io = ConnIo {
        stream,
        rbuf: Vec::with_capacity(INITIAL_BUF),
        pos: 0,
        out: Vec::new(),
        body: BodyState::None,
        continue_pending: false,
        body_read: 0,
        body_started: None,
        body_failed: false,
        max_body: cfg.max_body,
        min_body_rate: cfg.min_body_rate,
        body_timeout: cfg.body_timeout,
        limits: w.shared.limits.clone(),
    };
    let mut head = RequestHead::new();
    loop {
        match read_head(w, &mut io, &mut head).await {
            HeadRead::Ready => {}
            HeadRead::Closed => return,
            HeadRead::Failed(e) => {
                let status = e.status;
                let resp = render_native(e);
                io.out = w.take_buffer();
                let _ = send::write_response(&mut io, w, resp, false, true).await;
                metrics::get().request(None, status);
                io.lingering_close().await;
                return;
            }
        }
        io.body_read = 0;
        io.body_started = None;
        io.body_failed = false;
        io.body = match head.framing() {
            BodyFraming::None => BodyState::None,
            BodyFraming::ContentLength(0) => BodyState::None,
            BodyFraming::ContentLength(n) => BodyState::Length { remaining: n },
            BodyFraming::Chunked => BodyState::Chunked(Box::new(ChunkedDecoder::new(&io.limits))),
        };
        io.continue_pending = head.expects_continue() && !io.body_finished();

        let (mut resp, route) = w.router.dispatch(&w.svc, &head, &mut io, peer).await;
        let status = resp.status;
        let upgrade = if status == 101 {
            resp.upgrade.take()
        } else {
            None
        };
        let mut close = resp.close || !head.keep_alive() || w.shutdown.is_fired();
        if upgrade.is_none() && !close && !io.body_finished() && !io.drain_body().await {
            close = true;
        }
        let unread_body = !io.body_finished();
        resp.close = close && upgrade.is_none();
        let is_head = head.method() == Method::Head;
        io.out = w.take_buffer();
        let sent =
            send::write_response(&mut io, w, resp, is_head, close && upgrade.is_none()).await;
        w.return_buffer(std::mem::take(&mut io.out));
        metrics::get().request(route, status);
        if sent.is_err() {
            return;
        }
        if let Some(on_upgrade) = upgrade {
            let leftover = io.rbuf[io.pos..].to_vec();
            let session = upgraded::split(io.stream, leftover, w);
            on_upgrade(session).await;
            return;
        }
        if close {
            if unread_body {
                io.lingering_close().await;
            }
            return;
        }
        io.compact();
        if io.rbuf.capacity() > BODY_BUF {
            // Give back the large body buffer while the connection idles.
            io.rbuf.shrink_to(INITIAL_BUF.max(io.rbuf.len()));
        }
    }
}

impl ByteStream for ConnIo {
    fn next_chunk(&mut self) -> ChunkFuture<'_> {
        Box::pin(self.next_body_chunk())
    }

    fn declared_length(&self) -> Option<u64> {
        ConnIo::declared_length(self)
    }
}

/// Whether `buf` (the start of a request head, possibly incomplete) can still become
/// a request line: after optional empty lines, a method token (RFC 9110 tchars) and a
/// space. `false` for a TLS ClientHello or binary garbage, at its first byte.
fn plausible_request_start(buf: &[u8]) -> bool {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    for &b in &buf[start..] {
        match b {
            b' ' => return true,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
            | b'`' | b'|' | b'~' => {}
            b if b.is_ascii_alphanumeric() => {}
            _ => return false,
        }
    }
    true
}

enum HeadRead {
    Ready,
    Closed,
    Failed(ApiError),
}

async fn read_head(w: &Worker, io: &mut ConnIo, head: &mut RequestHead) -> HeadRead {
    let cfg = w.cfg();
    let max_head = w.shared.limits.max_head_bytes;
    let mut deadline: Option<Instant> = None;
    let mut scan_from = io.pos;
    loop {
        if io.rbuf.len() > io.pos {
            // Only re-run the parser when a line end arrived (a head dribbled one byte
            // at a time would otherwise be re-parsed per byte).
            let new_bytes = &io.rbuf[scan_from..];
            if !plausible_request_start(&io.rbuf[io.pos..]) {
                return HeadRead::Failed(
                    ApiError::bad_request(
                        "this is not an HTTP/1.x request (TLS or binary data on a plain HTTP port?)",
                    )
                    .closing(),
                );
            }
            if memchr::memchr(b'\n', new_bytes).is_some() || io.rbuf.len() - io.pos >= max_head {
                match parse_request_head(&io.rbuf[io.pos..], &w.shared.limits, head) {
                    Ok(Status::Complete(n)) => {
                        io.pos += n;
                        return HeadRead::Ready;
                    }
                    Ok(Status::Partial) => {}
                    Err(e) => return HeadRead::Failed(ApiError::from_protocol(&e)),
                }
            }
            deadline.get_or_insert_with(|| Instant::now() + cfg.header_timeout);
        }
        io.compact();
        scan_from = io.rbuf.len();
        if io.rbuf.len() >= io.rbuf.capacity() {
            let want = (io.rbuf.capacity() * 2).min(max_head + 1).max(INITIAL_BUF);
            io.rbuf.reserve(want.saturating_sub(io.rbuf.len()));
        }
        let (dl, idle) = match deadline {
            Some(d) => (d, false),
            None => (Instant::now() + cfg.idle_timeout, true),
        };
        if idle && w.shutdown.is_fired() {
            return HeadRead::Closed;
        }
        match io.read_more(dl, idle.then_some(w)).await {
            Ok(0) => {
                if io.rbuf.len() > io.pos {
                    tracing::debug!("connection closed in the middle of a request head");
                }
                return HeadRead::Closed;
            }
            Ok(_) => {}
            Err(ReadFail::TimedOut) if !idle => {
                return HeadRead::Failed(
                    ApiError::new(
                        408,
                        "request_timeout",
                        "the request head did not arrive within header_timeout",
                    )
                    .closing(),
                )
            }
            Err(ReadFail::Io(e)) => {
                tracing::debug!(error = %e, "read failed; closing the connection");
                return HeadRead::Closed;
            }
            Err(_) => return HeadRead::Closed,
        }
    }
}
