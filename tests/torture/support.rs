//! Helpers of the torture suite that `tests/common` does not have: a seeded RNG with
//! the usual conveniences, a strict HTTP/1.1 response reader for raw sockets (it never
//! assumes the daemon is well-behaved: every framing rule is checked, nothing panics),
//! `ringbox check` with its JSON report, `/proc` probes (descriptors, tmp/), a tmpfs
//! mount guard, `RLIMIT_NOFILE` and the lock that keeps load-sensitive tests apart.
//!
//! Not here: starting the daemon (`common::daemon`), the ureq client (`common::http`).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::daemon::run_cli;

// ---------------------------------------------------------------------------------
// Serialising the heavy tests
// ---------------------------------------------------------------------------------

static SERIAL: Mutex<()> = Mutex::new(());

/// Held by every torture test for its whole run. The tests measure latencies, count
/// descriptors and memory, and fill a 2-core machine on their own; running two at once
/// would make those measurements meaningless (and the crash tests slower than in
/// series). A panicking test poisons the lock; the next one takes it anyway.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------
// Seeds and randomness
// ---------------------------------------------------------------------------------

/// The seed of a randomised test: `RINGBOX_TORTURE_SEED` when set (to replay a
/// failure), else derived from the clock. Printed either way, so a failure's output
/// always says how to replay it.
pub fn seed(test: &str) -> u64 {
    let s = match std::env::var("RINGBOX_TORTURE_SEED") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("RINGBOX_TORTURE_SEED={v:?} is not a u64")),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
        }
    };
    eprintln!("{test}: seed {s} (replay with RINGBOX_TORTURE_SEED={s})");
    s
}

/// xorshift64* seeded through splitmix64: fast, deterministic, not cryptographic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 spreads close seeds (0, 1, 2...) apart.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    pub fn usize(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.usize(v.len())]
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
    /// A child generator (for a thread), deterministic given this one's state.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

/// `n` pseudo-random bytes named by `seed` (the same pair always gives the same bytes:
/// that is how the crash tests make duplicate uploads).
pub fn content(seed: u64, n: usize) -> Vec<u8> {
    Rng::new(seed).bytes(n)
}

// ---------------------------------------------------------------------------------
// A strict HTTP/1.1 response reader
// ---------------------------------------------------------------------------------

/// One response as read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
    /// `error.code` of a JSON error body.
    pub fn error_code(&self) -> Option<String> {
        self.json()?["error"]["code"].as_str().map(str::to_string)
    }
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("close"))
    }
    pub fn describe(&self) -> String {
        let mut s = format!("HTTP/1.1 {} {}\n", self.status, self.reason);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\n"));
        }
        let n = self.body.len().min(1024);
        match std::str::from_utf8(&self.body[..n]) {
            Ok(text) if !text.chars().any(|c| c.is_control() && !c.is_whitespace()) => {
                s.push_str(&format!("\n{text}"));
                if self.body.len() > n {
                    s.push_str(&format!("... ({} bytes)", self.body.len()));
                }
            }
            _ => s.push_str(&format!("\n<{} bytes of binary body>", self.body.len())),
        }
        s
    }
    /// Checks the contract of an error response: JSON `{"error":{"code","message"}}`
    /// (or a dialect's `{"detail": "..."}` or `{"code","name","description"}`) with `Content-Type: application/json`. Err
    /// says what is wrong.
    pub fn check_json_error(&self) -> Result<(), String> {
        let ct = self.header("content-type").unwrap_or("");
        if !ct.to_ascii_lowercase().starts_with("application/json") {
            return Err(format!(
                "error response is not application/json:\n{}",
                self.describe()
            ));
        }
        let v = self
            .json()
            .ok_or_else(|| format!("error body is not JSON:\n{}", self.describe()))?;
        let code_ok = v["error"]["code"].as_str().is_some_and(|c| !c.is_empty());
        let msg_ok = v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty());
        // The dialect APIs answer in their seed's shape: FastAPI's `{"detail": "..."}`
        // (Metaclip, pyBlobServer) is a clear JSON error too.
        let detail_ok = v["detail"].as_str().is_some_and(|m| !m.is_empty());
        // photobackup's: werkzeug's error as JSON, `{"code": 400, "name", "description"}`.
        let werkzeug_ok = v["code"].as_u64() == Some(u64::from(self.status))
            && v["description"].as_str().is_some_and(|m| !m.is_empty());
        if code_ok && msg_ok || detail_ok || werkzeug_ok {
            Ok(())
        } else {
            Err(format!(
                "error body lacks error.code/message:\n{}",
                self.describe()
            ))
        }
    }
}

/// The result of trying to parse one response from the front of a buffer.
#[derive(Debug)]
pub enum Parsed {
    /// A whole response and the bytes it used.
    Complete(Response, usize),
    /// More bytes are needed.
    Partial,
    /// The bytes cannot be a well-formed HTTP/1.1 response from ringbox.
    Malformed(String),
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses one response strictly: `HTTP/1.1 NNN reason` CRLF, `token: value` CRLF
/// lines, CRLF; a body of exactly `Content-Length` bytes, which every response has
/// except 1xx, 204, 304 and the answer to a HEAD (`head_request`). ringbox never sends
/// chunked responses, so `Transfer-Encoding` is malformed here.
pub fn parse_response(buf: &[u8], head_request: bool) -> Parsed {
    const MAX_HEAD: usize = 64 * 1024;
    let Some(end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Parsed::Malformed("no end of response head within 64 KiB".into());
        }
        // A prefix that cannot start a status line is wrong already.
        let n = buf.len().min(9);
        if buf[..n] != b"HTTP/1.1 "[..n] {
            return Parsed::Malformed(format!(
                "response does not start with `HTTP/1.1 `: {:?}",
                String::from_utf8_lossy(&buf[..buf.len().min(200)])
            ));
        }
        return Parsed::Partial;
    };
    let head = &buf[..end];
    let Ok(head) = std::str::from_utf8(head) else {
        return Parsed::Malformed(format!("response head is not UTF-8: {:?}", &buf[..end]));
    };
    if head.bytes().any(|b| b == b'\0') {
        return Parsed::Malformed(format!("NUL in response head {head:?}"));
    }
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let sl = status_line.as_bytes();
    if sl.len() < 12
        || !status_line.starts_with("HTTP/1.1 ")
        || !sl[9..12].iter().all(u8::is_ascii_digit)
        || (sl.len() > 12 && sl[12] != b' ')
    {
        return Parsed::Malformed(format!("bad status line {status_line:?}"));
    }
    let status: u16 = status_line[9..12].parse().unwrap();
    if !(100..600).contains(&status) {
        return Parsed::Malformed(format!("status out of range in {status_line:?}"));
    }
    let reason = status_line.get(13..).unwrap_or("").to_string();
    let mut headers = vec![];
    for l in lines {
        if l.contains('\r') || l.contains('\n') {
            return Parsed::Malformed(format!("bare CR/LF in response header {l:?}"));
        }
        let Some((k, v)) = l.split_once(':') else {
            return Parsed::Malformed(format!("response header without colon: {l:?}"));
        };
        if k.is_empty() || !k.bytes().all(is_tchar) {
            return Parsed::Malformed(format!("bad response header name {k:?}"));
        }
        headers.push((k.to_string(), v.trim_matches([' ', '\t']).to_string()));
    }
    let mut resp = Response {
        status,
        reason,
        headers,
        body: vec![],
    };
    let head_len = end + 4;
    if resp.header("transfer-encoding").is_some() {
        return Parsed::Malformed(format!(
            "unexpected Transfer-Encoding in a response:\n{}",
            resp.describe()
        ));
    }
    let cls: Vec<&str> = resp
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.as_str())
        .collect();
    if cls.len() > 1 {
        return Parsed::Malformed(format!("several Content-Length:\n{}", resp.describe()));
    }
    let bodyless_status = status < 200 || status == 204 || status == 304;
    if bodyless_status {
        if status < 200 && !cls.is_empty() {
            return Parsed::Malformed(format!("Content-Length on a 1xx:\n{}", resp.describe()));
        }
        return Parsed::Complete(resp, head_len);
    }
    let Some(cl) = cls.first() else {
        return Parsed::Malformed(format!("no Content-Length:\n{}", resp.describe()));
    };
    if cl.is_empty() || !cl.bytes().all(|b| b.is_ascii_digit()) || cl.len() > 18 {
        return Parsed::Malformed(format!("bad Content-Length {cl:?}"));
    }
    if head_request {
        return Parsed::Complete(resp, head_len);
    }
    let n: usize = cl.parse().unwrap();
    if buf.len() < head_len + n {
        return Parsed::Partial;
    }
    resp.body = buf[head_len..head_len + n].to_vec();
    Parsed::Complete(resp, head_len + n)
}

/// Why no (complete) response came.
#[derive(Debug)]
pub enum ReadErr {
    /// The daemon closed (FIN); bytes of an incomplete response attached.
    Eof(Vec<u8>),
    /// ECONNRESET and friends.
    Reset(std::io::Error, Vec<u8>),
    Timeout(Vec<u8>),
    Malformed(String),
}

impl std::fmt::Display for ReadErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |b: &Vec<u8>| String::from_utf8_lossy(&b[..b.len().min(500)]).into_owned();
        match self {
            ReadErr::Eof(b) => write!(f, "EOF after {} bytes {:?}", b.len(), show(b)),
            ReadErr::Reset(e, b) => write!(f, "{e} after {} bytes {:?}", b.len(), show(b)),
            ReadErr::Timeout(b) => write!(f, "timeout after {} bytes {:?}", b.len(), show(b)),
            ReadErr::Malformed(m) => write!(f, "malformed: {m}"),
        }
    }
}

impl ReadErr {
    /// The connection ended (FIN or RST) before any byte of a response.
    pub fn is_clean_close(&self) -> bool {
        matches!(self, ReadErr::Eof(b) | ReadErr::Reset(_, b) if b.is_empty())
    }
}

/// A raw connection with a strict reader. Unlike `common::RawConn`, connecting and
/// reading never panic: the crash tests expect the daemon to vanish under them.
#[derive(Debug)]
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Half-close: the daemon sees EOF after what was sent.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads into the buffer until `deadline`; Ok(0) is EOF.
    fn fill(&mut self, deadline: Instant) -> std::io::Result<usize> {
        let now = Instant::now();
        if now >= deadline {
            return Err(std::io::Error::new(ErrorKind::TimedOut, "deadline"));
        }
        self.stream.set_read_timeout(Some(deadline - now))?;
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

    /// Reads one response (a 1xx counts as one) within `timeout`.
    pub fn read_response(
        &mut self,
        head_request: bool,
        timeout: Duration,
    ) -> Result<Response, ReadErr> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.buf.is_empty() {
                match parse_response(&self.buf, head_request) {
                    Parsed::Complete(r, n) => {
                        self.buf.drain(..n);
                        return Ok(r);
                    }
                    Parsed::Partial => {}
                    Parsed::Malformed(m) => return Err(ReadErr::Malformed(m)),
                }
            }
            match self.fill(deadline) {
                Ok(0) => return Err(ReadErr::Eof(std::mem::take(&mut self.buf))),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::TimedOut => {
                    return Err(ReadErr::Timeout(std::mem::take(&mut self.buf)))
                }
                Err(e) => return Err(ReadErr::Reset(e, std::mem::take(&mut self.buf))),
            }
        }
    }

    /// Reads one final response, skipping `100 Continue` interim responses.
    pub fn read_final(
        &mut self,
        head_request: bool,
        timeout: Duration,
    ) -> Result<Response, ReadErr> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let r = self.read_response(head_request, left)?;
            if r.status >= 200 {
                return Ok(r);
            }
        }
    }

    /// Reads everything until the daemon closes (FIN or RST) within `timeout`;
    /// returns the bytes, or Err when the connection is still open at the deadline.
    pub fn read_to_close(&mut self, timeout: Duration) -> Result<Vec<u8>, Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Ok(0) => return Ok(std::mem::take(&mut self.buf)),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::TimedOut => {
                    return Err(std::mem::take(&mut self.buf))
                }
                Err(_) => return Ok(std::mem::take(&mut self.buf)),
            }
        }
    }

    /// SO_LINGER 0: dropping the socket then sends RST instead of FIN.
    pub fn set_linger_zero(&self) {
        set_linger_zero(&self.stream);
    }
}

/// SO_LINGER 0 on a socket, so closing it resets the connection.
pub fn set_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket with a correctly sized `linger`.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

/// `METHOD TARGET HTTP/1.1` + Host + `headers` + CRLF (no body, no automatic framing).
pub fn head_bytes(method: &str, target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("{method} {target} HTTP/1.1\r\nHost: ringbox.test\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// One request on a fresh connection: send, read the final response (5 s).
pub fn one_shot(addr: SocketAddr, bytes: &[u8], head_request: bool) -> Result<Response, String> {
    let mut c = Conn::connect(addr).map_err(|e| format!("connect: {e}"))?;
    c.send(bytes).map_err(|e| format!("send: {e}"))?;
    c.read_final(head_request, Duration::from_secs(5))
        .map_err(|e| e.to_string())
}

/// `GET /healthz` on a fresh connection answers 200 within 5 s.
#[track_caller]
pub fn assert_healthz(addr: SocketAddr) {
    let r = one_shot(addr, &head_bytes("GET", "/healthz", &[]), false)
        .unwrap_or_else(|e| panic!("GET /healthz on a fresh connection failed: {e}"));
    assert_eq!(r.status, 200, "GET /healthz:\n{}", r.describe());
}

// ---------------------------------------------------------------------------------
// The data directory, `ringbox check`, /proc
// ---------------------------------------------------------------------------------

/// Entries of `<data>/tmp` (uploads in flight).
pub fn tmp_entries(data: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(data.join("tmp")) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => vec![],
    }
}

/// Waits up to `within` for `<data>/tmp` to be empty; Err lists what stayed.
pub fn wait_tmp_empty(data: &Path, within: Duration) -> Result<(), Vec<PathBuf>> {
    let deadline = Instant::now() + within;
    loop {
        let t = tmp_entries(data);
        if t.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(t);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a process's descriptors point at (`/proc/<pid>/fd/*` link targets), sorted.
pub fn fd_targets(pid: u32) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|l| l.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The descriptors in `now` that were not in `before` (a multiset difference).
pub fn fd_diff(before: &[String], now: &[String]) -> Vec<String> {
    let mut left = before.to_vec();
    let mut extra = vec![];
    for t in now {
        match left.iter().position(|b| b == t) {
            Some(i) => {
                left.swap_remove(i);
            }
            None => extra.push(t.clone()),
        }
    }
    extra
}

/// Descriptors the process opened since `before` (see [`fd_targets`]) that are
/// leaks: every new one except open blob files, which the workers' blob caches keep
/// open on purpose, unless that blob file was deleted (then it pins disk space).
pub fn fd_leaks(pid: u32, before: &[String]) -> Vec<String> {
    fd_diff(before, &fd_targets(pid))
        .into_iter()
        .filter(|t| !t.contains("/blobs/") || t.ends_with("(deleted)"))
        .collect()
}

/// Waits up to `within` until [`fd_leaks`] is empty; Err lists the leaks.
pub fn wait_no_fd_leaks(pid: u32, before: &[String], within: Duration) -> Result<(), Vec<String>> {
    let deadline = Instant::now() + within;
    loop {
        let leaks = fd_leaks(pid, before);
        if leaks.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(leaks);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What `ringbox check` said.
#[derive(Debug)]
pub struct Check {
    pub ok: bool,
    pub report: Option<Value>,
    pub text: String,
}

impl Check {
    pub fn problems(&self) -> Vec<String> {
        self.report
            .as_ref()
            .and_then(|r| r["problems"].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect()
    }
}

/// Runs `ringbox check --data DIR` (the daemon must be stopped).
pub fn run_check(data: &Path) -> Check {
    let out = run_cli(
        &["check", "--data", data.to_str().unwrap()],
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = format!(
        "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    Check {
        ok: out.status.success(),
        report: serde_json::from_str(&stdout).ok(),
        text,
    }
}

/// `ringbox check` exits 0 and reports no problem.
#[track_caller]
pub fn assert_consistent(data: &Path, ctx: &str) {
    let c = run_check(data);
    assert!(
        c.ok && c.problems().is_empty(),
        "{ctx}: `ringbox check` says the store is not consistent:\n{}",
        c.text
    );
}

/// `ringbox check` on a store whose daemon was SIGKILLed: no problem other than orphan
/// blob files (an upload killed between its rename into `blobs/` and its commit; the
/// next start's GC removes them, see the store's crash-safety contract), which the
/// strict `check_passes_on_a_store_killed_mid_upload` holds to exit 0 as well.
/// Returns how many orphans there were.
#[track_caller]
pub fn assert_consistent_after_kill(data: &Path, ctx: &str) -> usize {
    let c = run_check(data);
    assert!(
        c.report.is_some(),
        "{ctx}: `ringbox check` printed no JSON report:\n{}",
        c.text
    );
    let problems = c.problems();
    let bad: Vec<&String> = problems
        .iter()
        .filter(|p| !p.starts_with("orphan blob file"))
        .collect();
    assert!(
        bad.is_empty(),
        "{ctx}: `ringbox check` on the killed store found real problems:\n{}",
        c.text
    );
    assert!(
        c.ok || !problems.is_empty(),
        "{ctx}: `ringbox check` failed without naming a problem:\n{}",
        c.text
    );
    // Orphans are listed apart from problems (reclaimable space, not an
    // inconsistency); older builds listed them as problems.
    let listed = c
        .report
        .as_ref()
        .and_then(|r| r["orphans"].as_array().map(Vec::len));
    problems.len() + listed.unwrap_or(0)
}

// ---------------------------------------------------------------------------------
// Environment: tmpfs, rlimits
// ---------------------------------------------------------------------------------

/// A tmpfs mounted on a fresh temporary directory; unmounted (lazily if busy) on drop.
/// Declare it BEFORE the `Daemon` that uses it, so the daemon is killed first.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `32m`); `None` (with the reason on stderr) when
    /// mounting is not possible here (not root, no CAP_SYS_ADMIN, a container).
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::Builder::new()
            .prefix("ringbox-tmpfs-")
            .tempdir()
            .ok()?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                path: dir.path().to_path_buf(),
                _dir: dir,
            }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs ({}); run as root to test full disks",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount(8): {e}");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remounts read-only; false when that fails.
    pub fn remount_ro(&self) -> bool {
        Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` towards `want` (capped by the hard
/// limit); daemons started afterwards inherit it. Returns the new soft limit.
pub fn raise_nofile(want: u64) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        let cur: u64 = r.rlim_cur;
        if cur >= want {
            return cur;
        }
        let mut n = r;
        n.rlim_cur = want.min(r.rlim_max);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &n) == 0 {
            return n.rlim_cur;
        }
        cur
    }
}

/// `Authorization: Bearer <token>` value.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    crate::common::util::sha256_hex(data)
}

#[test]
fn response_parser_is_strict() {
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\nhiHTTP/1.1";
    match parse_response(ok, false) {
        Parsed::Complete(r, n) => {
            assert_eq!(
                (r.status, r.body.as_slice(), n),
                (200, &b"hi"[..], ok.len() - 8)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhi", false),
        Parsed::Partial
    ));
    assert!(matches!(
        parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true),
        Parsed::Complete(..)
    ));
    assert!(matches!(
        parse_response(b"HTTP/1.1 204 No Content\r\n\r\n", false),
        Parsed::Complete(..)
    ));
    assert!(matches!(
        parse_response(b"HTTP/1.1 200 OK\r\n\r\n", false),
        Parsed::Malformed(_)
    ));
    assert!(matches!(
        parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        Parsed::Malformed(_)
    ));
    assert!(matches!(
        parse_response(b"HTTX", false),
        Parsed::Malformed(_)
    ));
    assert!(matches!(
        parse_response(b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", false),
        Parsed::Malformed(_)
    ));
    let mut r = Rng::new(1);
    assert!((0..1000).all(|_| r.below(7) < 7));
    assert_eq!(content(5, 100), content(5, 100));
}
