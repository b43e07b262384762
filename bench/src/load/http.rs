//! A small blocking HTTP/1.1 client over raw `std` sockets, for everything the harness
//! sends that wrk cannot: fixture uploads and warm-up checks, upload load from many
//! keep-alive connections, one streamed 1 GiB body, 10,000 idle connections and the
//! metadata benchmark's JSON requests.
//!
//! It writes the head and body exactly as given (so a benchmark controls its bytes) and
//! reads responses framed by `Content-Length`, `chunked` or connection close. It does not
//! follow redirects, pipeline, or speak TLS. Every socket has read and write timeouts, so
//! no call blocks forever.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Read and write timeout of every socket: long enough for a 64 MiB body or an fsync.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// A client-side failure: the connection, or a response we cannot read.
#[derive(Debug)]
pub enum ClientError {
    /// The socket failed (connect, read, write, timeout).
    Io(io::Error),
    /// The bytes received are not an HTTP/1.1 response we understand.
    Protocol(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Protocol(m) => write!(f, "bad response: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// A response with its body read completely.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (empty for HEAD, 204 and 304).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, for messages.
    pub fn body_text(&self) -> String {
        let n = self.body.len().min(2000);
        String::from_utf8_lossy(&self.body[..n]).into_owned()
    }
}

/// Builds a request head. `headers` are written as given; `Host` is always added and
/// `Content-Length` when `content_length` is set.
pub fn request_head(
    method: &str,
    target: &str,
    addr: SocketAddr,
    headers: &[(&str, &str)],
    content_length: Option<u64>,
) -> Vec<u8> {
    let mut h = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n");
    for (n, v) in headers {
        h.push_str(n);
        h.push_str(": ");
        h.push_str(v);
        h.push_str("\r\n");
    }
    if let Some(len) = content_length {
        h.push_str(&format!("Content-Length: {len}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// One keep-alive connection.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Set when the server said `Connection: close` or closed the socket.
    pub closed: bool,
}

impl Conn {
    /// Connects with `TCP_NODELAY` and the harness's I/O timeouts.
    pub fn connect(addr: SocketAddr) -> Result<Self, ClientError> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Self {
            stream,
            buf: Vec::new(),
            closed: false,
        })
    }

    /// Writes bytes of a request (head or body part).
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Sends a whole request and reads the response.
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, ClientError> {
        let addr = self.stream.peer_addr()?;
        let head = request_head(method, target, addr, headers, body.map(|b| b.len() as u64));
        match body {
            Some(b) if b.len() <= 64 * 1024 => {
                let mut all = head;
                all.extend_from_slice(b);
                self.send(&all)?;
            }
            Some(b) => {
                self.send(&head)?;
                self.send(b)?;
            }
            None => self.send(&head)?,
        }
        self.read_response(method == "HEAD")
    }

    /// Reads one response; `to_head` says the request was HEAD (no body follows).
    pub fn read_response(&mut self, to_head: bool) -> Result<Response, ClientError> {
        let head_len = loop {
            if let Some(pos) = find_head_end(&self.buf) {
                break pos;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ClientError::Protocol("response head over 64 KiB".into()));
            }
            if self.fill()? == 0 {
                self.closed = true;
                return Err(ClientError::Protocol(if self.buf.is_empty() {
                    "connection closed before a response".into()
                } else {
                    "connection closed inside the response head".into()
                }));
            }
        };
        let mut header_slots = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut header_slots);
        match resp.parse(&self.buf[..head_len]) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(ClientError::Protocol("partial head".into()))
            }
            Err(e) => return Err(ClientError::Protocol(format!("head: {e}"))),
        }
        let status = resp.code.unwrap_or(0);
        let headers: Vec<(String, String)> = resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).trim().to_string(),
                )
            })
            .collect();
        self.buf.drain(..head_len);
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        if get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            self.closed = true;
        }
        let no_body = to_head || status == 204 || status == 304 || (100..200).contains(&status);
        let body = if no_body {
            Vec::new()
        } else if get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            self.read_chunked()?
        } else if let Some(len) = get("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| ClientError::Protocol(format!("bad Content-Length {len:?}")))?;
            self.read_exact_body(len)?
        } else {
            self.closed = true;
            let mut rest = std::mem::take(&mut self.buf);
            self.stream.read_to_end(&mut rest)?;
            rest
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    fn fill(&mut self) -> Result<usize, ClientError> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn read_exact_body(&mut self, len: usize) -> Result<Vec<u8>, ClientError> {
        let mut body = Vec::with_capacity(len);
        let take = len.min(self.buf.len());
        body.extend_from_slice(&self.buf[..take]);
        self.buf.drain(..take);
        if body.len() < len {
            let start = body.len();
            body.resize(len, 0);
            self.stream.read_exact(&mut body[start..]).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    ClientError::Protocol(format!(
                        "connection closed after {start} of {len} body bytes"
                    ))
                } else {
                    ClientError::Io(e)
                }
            })?;
        }
        Ok(body)
    }

    fn read_line(&mut self) -> Result<String, ClientError> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                self.buf.drain(..pos + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ClientError::Protocol("chunk line too long".into()));
            }
            if self.fill()? == 0 {
                return Err(ClientError::Protocol(
                    "connection closed inside a chunked body".into(),
                ));
            }
        }
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, ClientError> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size_hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| ClientError::Protocol(format!("bad chunk size line {line:?}")))?;
            if size == 0 {
                // Trailer fields up to the empty line.
                while !self.read_line()?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.read_exact_body(size)?);
            if !self.read_line()?.is_empty() {
                return Err(ClientError::Protocol(
                    "chunk data not followed by CRLF".into(),
                ));
            }
        }
    }

    /// Gives up the buffers and keeps only the socket (for idle connections).
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// How an upload is framed for a server.
#[derive(Debug, Clone)]
pub enum UploadStyle {
    /// ringbox: `POST /v1/objects?name=...` with the raw body and the bearer token.
    RingboxRaw {
        /// `Authorization` header value.
        auth: String,
    },
    /// nginx WebDAV: `PUT <prefix><name>` with the raw body.
    DavPut {
        /// Path prefix of the DAV location, e.g. `/up/`.
        prefix: String,
    },
    /// rustypaste: `POST /` with `multipart/form-data` and one `file` part.
    Multipart,
}

const BOUNDARY: &str = "ringbox-bench-boundary-7d1f0c";

impl UploadStyle {
    /// The head and the multipart framing around a body of `len` bytes named `name`.
    pub fn frame(&self, addr: SocketAddr, name: &str, len: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        match self {
            UploadStyle::RingboxRaw { auth } => {
                let target = format!("/v1/objects?name={name}");
                let head = request_head(
                    "POST",
                    &target,
                    addr,
                    &[
                        ("Authorization", auth),
                        ("Content-Type", "application/octet-stream"),
                    ],
                    Some(len),
                );
                (head, Vec::new(), Vec::new())
            }
            UploadStyle::DavPut { prefix } => {
                let target = format!("{prefix}{name}");
                let head = request_head(
                    "PUT",
                    &target,
                    addr,
                    &[("Content-Type", "application/octet-stream")],
                    Some(len),
                );
                (head, Vec::new(), Vec::new())
            }
            UploadStyle::Multipart => {
                let pre = format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .into_bytes();
                let post = format!("\r\n--{BOUNDARY}--\r\n").into_bytes();
                let ctype = format!("multipart/form-data; boundary={BOUNDARY}");
                let total = pre.len() as u64 + len + post.len() as u64;
                let head =
                    request_head("POST", "/", addr, &[("Content-Type", &ctype)], Some(total));
                (head, pre, post)
            }
        }
    }

    /// The statuses that count as a stored upload.
    pub fn is_success(&self, status: u16) -> bool {
        match self {
            UploadStyle::RingboxRaw { .. } => status == 201,
            UploadStyle::DavPut { .. } => status == 201 || status == 204,
            UploadStyle::Multipart => status == 200 || status == 201,
        }
    }
}

/// Sends one upload of `total` bytes on `conn`, streamed from `block` (repeated), with the
/// first 16 bytes of every block replaced by `(tag, counter)` so that no two uploads and no
/// two blocks of one upload are equal (content-addressed stores cannot deduplicate them).
pub fn send_upload(
    conn: &mut Conn,
    style: &UploadStyle,
    name: &str,
    block: &mut [u8],
    total: u64,
    tag: u64,
    counter: &mut u64,
) -> Result<Response, ClientError> {
    let addr = conn.stream.peer_addr()?;
    let (head, pre, post) = style.frame(addr, name, total);
    let mut first = head;
    first.extend_from_slice(&pre);
    conn.send(&first)?;
    let mut left = total;
    while left > 0 {
        let n = (block.len() as u64).min(left) as usize;
        *counter += 1;
        let mut stamp = [0u8; 16];
        stamp[..8].copy_from_slice(&tag.to_le_bytes());
        stamp[8..].copy_from_slice(&counter.to_le_bytes());
        let s = n.min(16);
        block[..s].copy_from_slice(&stamp[..s]);
        conn.send(&block[..n])?;
        left -= n as u64;
    }
    if !post.is_empty() {
        conn.send(&post)?;
    }
    conn.read_response(false)
}

/// What an upload load run achieved.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UploadOutcome {
    /// Uploads answered with a success status.
    pub completed: u64,
    /// Uploads that failed (error status or connection error).
    pub failed: u64,
    /// Count per response status.
    pub statuses: BTreeMap<u16, u64>,
    /// Wall time from start until the last connection finished its last upload.
    pub elapsed_s: f64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
}

/// Uploads bodies of `size` bytes from `connections` keep-alive connections for
/// `duration`: each connection starts new uploads until the time is up, and finishes the
/// one in flight. A failed connection is reopened (the failure is counted).
pub fn upload_load(
    addr: SocketAddr,
    style: &UploadStyle,
    connections: usize,
    duration: Duration,
    size: u64,
    block: Arc<Vec<u8>>,
) -> UploadOutcome {
    let start = Instant::now();
    let deadline = start + duration;
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(Mutex::new(UploadOutcome::default()));
    let mut handles = Vec::new();
    for t in 0..connections {
        let style = style.clone();
        let mut block: Vec<u8> = block.as_ref().clone();
        let total = Arc::clone(&total);
        let stop = Arc::clone(&stop);
        handles.push(thread::spawn(move || {
            let mut mine = UploadOutcome::default();
            let tag = random_u64() ^ t as u64;
            let mut counter = 0u64;
            let mut conn: Option<Conn> = None;
            let mut seq = 0u64;
            // A connection that keeps failing must not spin: stop after many errors.
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) && mine.failed < 1000 {
                let c = match conn.as_mut() {
                    Some(c) if !c.closed => c,
                    _ => match Conn::connect(addr) {
                        Ok(c) => conn.insert(c),
                        Err(e) => {
                            mine.failed += 1;
                            mine.first_error
                                .get_or_insert_with(|| format!("connect: {e}"));
                            thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    },
                };
                seq += 1;
                let name = format!("u{t}-{seq}-{tag:x}.bin");
                match send_upload(c, &style, &name, &mut block, size, tag, &mut counter) {
                    Ok(resp) => {
                        *mine.statuses.entry(resp.status).or_default() += 1;
                        if style.is_success(resp.status) {
                            mine.completed += 1;
                        } else {
                            mine.failed += 1;
                            mine.first_error.get_or_insert_with(|| {
                                format!("status {}: {}", resp.status, resp.body_text())
                            });
                        }
                    }
                    Err(e) => {
                        mine.failed += 1;
                        mine.first_error.get_or_insert_with(|| e.to_string());
                        conn = None;
                    }
                }
            }
            let mut all = total.lock().unwrap_or_else(|p| p.into_inner());
            all.completed += mine.completed;
            all.failed += mine.failed;
            for (s, n) in mine.statuses {
                *all.statuses.entry(s).or_default() += n;
            }
            if all.first_error.is_none() {
                all.first_error = mine.first_error;
            }
        }));
    }
    for h in handles {
        let _ = h.join();
    }
    stop.store(true, Ordering::Relaxed);
    let mut out = total.lock().unwrap_or_else(|p| p.into_inner()).clone();
    out.elapsed_s = start.elapsed().as_secs_f64();
    out
}

/// Opens `n` connections that each send `request` once, read the answer, and then stay
/// open and idle. Uses a few threads so opening 10,000 takes about a second.
pub fn open_idle(
    addr: SocketAddr,
    n: usize,
    request: &[u8],
    to_head: bool,
) -> Result<Vec<TcpStream>, ClientError> {
    let threads = 4usize.min(n.max(1));
    let per = n.div_ceil(threads);
    let request = Arc::new(request.to_vec());
    let mut handles = Vec::new();
    for t in 0..threads {
        let count = per.min(n.saturating_sub(t * per));
        let request = Arc::clone(&request);
        handles.push(thread::spawn(
            move || -> Result<Vec<TcpStream>, ClientError> {
                let mut v = Vec::with_capacity(count);
                for _ in 0..count {
                    let mut c = Conn::connect(addr)?;
                    c.send(&request)?;
                    let resp = c.read_response(to_head)?;
                    if !(200..400).contains(&resp.status) {
                        return Err(ClientError::Protocol(format!(
                            "idle connection {}: status {}: {}",
                            v.len(),
                            resp.status,
                            resp.body_text()
                        )));
                    }
                    if c.closed {
                        return Err(ClientError::Protocol(
                            "the server closed a keep-alive connection".into(),
                        ));
                    }
                    v.push(c.into_stream());
                }
                Ok(v)
            },
        ));
    }
    let mut all = Vec::with_capacity(n);
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(v)) => all.extend(v),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(ClientError::Protocol("an opener thread panicked".into()));
            }
        }
    }
    match first_err {
        Some(e) => Err(ClientError::Protocol(format!(
            "opened {} of {n} idle connections, then: {e}",
            all.len()
        ))),
        None => Ok(all),
    }
}

/// How many of `conns` are still open: a non-blocking peek sees no EOF.
pub fn count_open(conns: &[TcpStream]) -> usize {
    let mut open = 0;
    let mut byte = [0u8; 1];
    for c in conns {
        if c.set_nonblocking(true).is_err() {
            continue;
        }
        match c.peek(&mut byte) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => open += 1,
            Ok(n) if n > 0 => open += 1,
            _ => {}
        }
        let _ = c.set_nonblocking(false);
    }
    open
}

/// A random u64 from the OS.
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that writes `answer` to the first connection and keeps it open.
    fn serve_once(answer: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            // Dribble the answer to exercise partial reads.
            for part in answer.chunks(7) {
                s.write_all(part).unwrap();
                thread::sleep(Duration::from_millis(1));
            }
            thread::sleep(Duration::from_millis(200));
        });
        addr
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let addr = serve_once(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n");
        let mut c = Conn::connect(addr).unwrap();
        let r = c.request("GET", "/", &[], None).unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.body, b"hello world");
        assert!(!c.closed);
    }

    #[test]
    fn content_length_bodies_and_headers_are_read() {
        let addr = serve_once(b"HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz");
        let mut c = Conn::connect(addr).unwrap();
        let r = c.request("GET", "/", &[("X", "1")], None).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"xyz"[..]));
        assert_eq!(r.header("ETAG"), Some("\"abc\""));
        assert!(c.closed);
    }

    #[test]
    fn multipart_framing_adds_up_to_the_content_length() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let (head, pre, post) = UploadStyle::Multipart.frame(addr, "a.bin", 1000);
        let head = String::from_utf8(head).unwrap();
        let total = pre.len() + 1000 + post.len();
        assert!(
            head.contains(&format!("Content-Length: {total}\r\n")),
            "{head}"
        );
        assert!(head.starts_with("POST / HTTP/1.1\r\n"));
        assert!(String::from_utf8(pre)
            .unwrap()
            .contains("name=\"file\"; filename=\"a.bin\""));
    }
}
