//! Raw TCP: send exact bytes and read exact responses, for what a real client would never
//! send (malformed heads, smuggling attempts, pipelining, `Expect: 100-continue` by hand)
//! and to see exactly what the daemon sends (no body after HEAD, connection closes).
//!
//! `RawConn` keeps the bytes it read past one response, so pipelined responses are read
//! one after another. Response framing follows RFC 9112 section 6.3: no body for HEAD,
//! 1xx, 204 and 304; then chunked; then Content-Length; else read to EOF.

use super::http::Resp;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Default deadline for one response.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response head the reader accepts (a guard against a runaway peer).
const MAX_HEAD: usize = 1 << 20;

#[derive(Debug)]
pub struct RawConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Deadline per `read_response`.
    pub timeout: Duration,
}

/// Why a read stopped.
#[derive(Debug)]
pub enum ReadError {
    /// Clean EOF; the bytes read so far (of this response) are attached.
    Eof(Vec<u8>),
    /// Timed out; bytes read so far attached.
    Timeout(Vec<u8>),
    /// ECONNRESET and friends.
    Io(std::io::Error, Vec<u8>),
    /// Unparseable response.
    Malformed(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |b: &Vec<u8>| String::from_utf8_lossy(&b[..b.len().min(2048)]).into_owned();
        match self {
            ReadError::Eof(b) => write!(
                f,
                "connection closed (EOF) after {} bytes: {:?}",
                b.len(),
                show(b)
            ),
            ReadError::Timeout(b) => write!(f, "timed out after {} bytes: {:?}", b.len(), show(b)),
            ReadError::Io(e, b) => {
                write!(f, "I/O error {e} after {} bytes: {:?}", b.len(), show(b))
            }
            ReadError::Malformed(m) => write!(f, "malformed response: {m}"),
        }
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if hay.len() < needle.len() + from {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

impl RawConn {
    pub fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        RawConn {
            stream,
            buf: Vec::new(),
            timeout: READ_TIMEOUT,
        }
    }

    /// Writes all of `bytes`; panics on error.
    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write to daemon: {e}"));
    }

    /// Writes all of `bytes`, returning the error (the daemon may have closed).
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Half-closes the writing side (the daemon then sees EOF).
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads more bytes into the buffer before `deadline`. Ok(0) is EOF.
    fn fill(&mut self, deadline: Instant) -> Result<usize, std::io::Error> {
        let now = Instant::now();
        if now >= deadline {
            return Err(std::io::Error::new(ErrorKind::TimedOut, "deadline"));
        }
        self.stream.set_read_timeout(Some(deadline - now)).unwrap();
        let mut tmp = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(std::io::Error::new(ErrorKind::TimedOut, "read timed out"))
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn need(&mut self, n: usize, deadline: Instant) -> Result<(), ReadError> {
        while self.buf.len() < n {
            match self.fill(deadline) {
                Ok(0) => return Err(ReadError::Eof(self.buf.clone())),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::TimedOut => {
                    return Err(ReadError::Timeout(self.buf.clone()))
                }
                Err(e) => return Err(ReadError::Io(e, self.buf.clone())),
            }
        }
        Ok(())
    }

    fn need_until(
        &mut self,
        pat: &[u8],
        from: usize,
        deadline: Instant,
    ) -> Result<usize, ReadError> {
        loop {
            if let Some(i) = find(&self.buf, pat, from) {
                return Ok(i);
            }
            if self.buf.len() > MAX_HEAD + from {
                return Err(ReadError::Malformed(
                    "no end of head/line within 1 MiB".into(),
                ));
            }
            let have = self.buf.len();
            self.need(have + 1, deadline)?;
        }
    }

    /// Reads one response to a non-HEAD request. Panics on error.
    #[track_caller]
    pub fn read_response(&mut self) -> Resp {
        self.try_read_response(false)
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    /// Reads one response to a HEAD request (no body expected). Panics on error.
    #[track_caller]
    pub fn read_head_response(&mut self) -> Resp {
        self.try_read_response(true)
            .unwrap_or_else(|e| panic!("reading a response to HEAD: {e}"))
    }

    /// Reads one response (an interim 1xx response counts as one).
    pub fn try_read_response(&mut self, head_request: bool) -> Result<Resp, ReadError> {
        let deadline = Instant::now() + self.timeout;
        let end = self.need_until(b"\r\n\r\n", 0, deadline)?;
        let head = String::from_utf8(self.buf[..end].to_vec())
            .map_err(|_| ReadError::Malformed(format!("head not UTF-8: {:?}", &self.buf[..end])))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut sp = status_line.splitn(3, ' ');
        let version = sp.next().unwrap_or_default().to_string();
        let status: u16 = sp
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ReadError::Malformed(format!("bad status line {status_line:?}")))?;
        let reason = sp.next().unwrap_or_default().to_string();
        if !version.starts_with("HTTP/1.") {
            return Err(ReadError::Malformed(format!(
                "bad status line {status_line:?}"
            )));
        }
        let mut headers = vec![];
        for l in lines {
            let (k, v) = l.split_once(':').ok_or_else(|| {
                ReadError::Malformed(format!("bad header line {l:?} in {head:?}"))
            })?;
            headers.push((k.to_string(), v.trim().to_string()));
        }
        self.buf.drain(..end + 4);
        let mut resp = Resp {
            version,
            status,
            reason,
            headers,
            body: vec![],
        };

        let no_body =
            head_request || (100..200).contains(&status) || status == 204 || status == 304;
        if no_body {
            return Ok(resp);
        }
        let te = resp
            .header("transfer-encoding")
            .map(|s| s.to_ascii_lowercase());
        if te.as_deref().is_some_and(|t| t.contains("chunked")) {
            resp.body = self.read_chunked(deadline)?;
        } else if let Some(cl) = resp.header("content-length") {
            let n: usize = cl
                .parse()
                .map_err(|_| ReadError::Malformed(format!("bad Content-Length {cl:?}")))?;
            self.need(n, deadline).map_err(|e| match e {
                ReadError::Eof(b) => ReadError::Malformed(format!(
                    "EOF in body: {} of {n} bytes after head {head:?}",
                    b.len()
                )),
                other => other,
            })?;
            resp.body = self.buf.drain(..n).collect();
        } else {
            // Close-delimited.
            loop {
                match self.fill(deadline) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::TimedOut => {
                        return Err(ReadError::Timeout(self.buf.clone()));
                    }
                    Err(e) => return Err(ReadError::Io(e, self.buf.clone())),
                }
            }
            resp.body = std::mem::take(&mut self.buf);
        }
        Ok(resp)
    }

    fn read_chunked(&mut self, deadline: Instant) -> Result<Vec<u8>, ReadError> {
        let mut body = vec![];
        loop {
            let eol = self.need_until(b"\r\n", 0, deadline)?;
            let line = String::from_utf8_lossy(&self.buf[..eol]).into_owned();
            let size_str = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_str, 16)
                .map_err(|_| ReadError::Malformed(format!("bad chunk size line {line:?}")))?;
            self.buf.drain(..eol + 2);
            if size == 0 {
                // trailers until an empty line
                loop {
                    let eol = self.need_until(b"\r\n", 0, deadline)?;
                    self.buf.drain(..eol + 2);
                    if eol == 0 {
                        return Ok(body);
                    }
                }
            }
            self.need(size + 2, deadline)?;
            body.extend_from_slice(&self.buf[..size]);
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err(ReadError::Malformed(
                    "chunk data not followed by CRLF".into(),
                ));
            }
            self.buf.drain(..size + 2);
        }
    }

    /// Reads exactly `n` bytes (e.g. to check an interim response byte for byte).
    pub fn read_exact_bytes(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        let deadline = Instant::now() + self.timeout;
        self.need(n, deadline)?;
        Ok(self.buf.drain(..n).collect())
    }

    /// Bytes received but not yet consumed by a `read_*` call.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Waits until the daemon closes the connection (EOF or reset) within `within`.
    /// Err describes what happened instead (extra bytes, or still open).
    pub fn expect_closed(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            match self.fill(deadline) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::TimedOut => {
                    return Err(format!(
                        "connection still open after {within:?} (unread bytes: {:?})",
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
                Err(_) => break, // reset counts as closed
            }
        }
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "closed, but sent extra bytes first: {:?}",
                String::from_utf8_lossy(&self.buf)
            ))
        }
    }

    /// True when nothing arrives and the connection stays open for `d`.
    pub fn is_quiet_and_open(&mut self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        matches!(self.fill(deadline), Err(e) if e.kind() == ErrorKind::TimedOut)
            && self.buf.is_empty()
    }
}

/// Builds a request: `METHOD TARGET HTTP/1.1`, `Host` (unless given), the `headers`,
/// and `Content-Length` when `body` is non-empty and neither it nor
/// `Transfer-Encoding` is among `headers`.
pub fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut s = format!("{method} {target} HTTP/1.1\r\n");
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has("host") {
        s.push_str("Host: ringbox.test\r\n");
    }
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() && !has("content-length") && !has("transfer-encoding") {
        s.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    s.push_str("\r\n");
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Encodes `body` with the chunked transfer coding in chunks of `chunk` bytes.
pub fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = vec![];
    for c in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Connects, sends `bytes`, reads one response.
#[track_caller]
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Resp {
    let mut c = RawConn::connect(addr);
    c.send(bytes);
    c.read_response()
}
