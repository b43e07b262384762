//! Change-event load: many WebSocket subscribers of ringbox's `GET /v1/events` read by
//! one epoll thread, and a writer creating small objects (one `object.created` event
//! each), for the events scenarios.
//!
//! The subscribers speak just enough RFC 6455 to count: a fixed handshake, then
//! unmasked server frames parsed by their headers; every text frame is one event (the
//! feed sends one JSON object per frame). A close frame marks the subscriber closed
//! (ringbox closes a subscriber that falls behind with 1008), and the scenario reports
//! it. Nothing here is timed against a deadline except the waits, which are bounded.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustix::event::epoll;

use serde_json::json;

use super::http::Conn;
use super::report::{Better, Measurement, Round, ScenarioResult};
use super::scenarios::Runner;
use super::servers::{start_ringbox, Durability, Server};
use super::HarnessError;

/// Subscribers in the events scenarios (the figure).
pub const SUBSCRIBERS: usize = 1000;
/// Objects created per round of `events-1000`.
const FANOUT_OBJECTS: u64 = 3000;
/// Writer connections of `events-1000`.
const FANOUT_WRITERS: usize = 8;
/// Objects per second the writer of `get-4k-events` creates.
const GET_EVENTS_PER_S: f64 = 100.0;
/// How long `get-4k-events` waits after the load for the last events to arrive.
const GET_EVENTS_DRAIN: Duration = Duration::from_secs(10);

/// A fixed `Sec-WebSocket-Key` (the harness does not check the accept value's hash;
/// ringbox's handshake is covered by its own tests).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Counters the reader thread updates and the scenario reads.
#[derive(Debug)]
struct Counts {
    /// Text frames received, per subscriber.
    frames: Vec<AtomicU64>,
    /// Subscribers the server closed (a close frame or EOF).
    closed: AtomicUsize,
}

/// `n` open subscriptions and the thread that reads them.
#[derive(Debug)]
pub struct Subscribers {
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
}

/// One subscriber's socket and what is left of a partly received frame.
struct Sub {
    stream: TcpStream,
    buf: Vec<u8>,
    open: bool,
}

/// Opens the handshake on `addr` and returns the socket once the 101 is read (with any
/// frame bytes that came along).
fn handshake(addr: SocketAddr, auth: Option<&str>, since: u64) -> Result<Sub, HarnessError> {
    let mut conn = Conn::connect(addr).map_err(|e| HarnessError::msg(format!("connect: {e}")))?;
    let mut req = format!(
        "GET /v1/events?since={since} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n"
    );
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    conn.send(req.as_bytes())
        .map_err(|e| HarnessError::msg(format!("send the handshake: {e}")))?;
    let mut stream = conn.into_stream();
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 16 * 1024 {
            return Err(HarnessError::msg("the handshake answer has no end"));
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| HarnessError::msg(format!("read the handshake answer: {e}")))?;
        if n == 0 {
            return Err(HarnessError::msg("the server closed during the handshake"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if !buf.starts_with(b"HTTP/1.1 101") {
        let head = String::from_utf8_lossy(&buf[..end.min(200)]).to_string();
        return Err(HarnessError::msg(format!(
            "GET /v1/events with Upgrade answered {head:?}, not 101"
        )));
    }
    buf.drain(..end);
    stream
        .set_nonblocking(true)
        .map_err(|e| HarnessError::io("set a subscriber non-blocking", e))?;
    Ok(Sub {
        stream,
        buf,
        open: true,
    })
}

/// Counts whole frames at the front of `buf` and removes them: (text frames, saw a
/// close frame).
fn take_frames(buf: &mut Vec<u8>) -> (u64, bool) {
    let mut at = 0;
    let mut texts = 0;
    let mut close = false;
    loop {
        let rest = &buf[at..];
        if rest.len() < 2 {
            break;
        }
        let opcode = rest[0] & 0x0f;
        let (len, header) = match rest[1] & 0x7f {
            126 if rest.len() >= 4 => (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4),
            127 if rest.len() >= 10 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&rest[2..10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if rest.len() < header + len {
            break;
        }
        match opcode {
            0x1 => texts += 1,
            0x8 => close = true,
            _ => {}
        }
        at += header + len;
    }
    buf.drain(..at);
    (texts, close)
}

impl Subscribers {
    /// Opens `n` subscriptions from `since` (a few threads for the handshakes) and starts
    /// the reader.
    pub fn open(
        addr: SocketAddr,
        auth: Option<&str>,
        n: usize,
        since: u64,
    ) -> Result<Subscribers, HarnessError> {
        let threads = 4usize.min(n.max(1));
        let per = n.div_ceil(threads);
        let mut handles = Vec::new();
        for t in 0..threads {
            let count = per.min(n.saturating_sub(t * per));
            let auth = auth.map(str::to_string);
            handles.push(thread::spawn(move || {
                (0..count)
                    .map(|_| handshake(addr, auth.as_deref(), since))
                    .collect::<Result<Vec<Sub>, HarnessError>>()
            }));
        }
        let mut subs = Vec::with_capacity(n);
        for h in handles {
            let v = h
                .join()
                .map_err(|_| HarnessError::msg("a subscriber thread panicked"))??;
            subs.extend(v);
        }
        let counts = Arc::new(Counts {
            frames: (0..subs.len()).map(|_| AtomicU64::new(0)).collect(),
            closed: AtomicUsize::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC)
            .map_err(|e| HarnessError::msg(format!("epoll_create: {e}")))?;
        for (i, s) in subs.iter_mut().enumerate() {
            // Frames that came with the 101.
            let (texts, close) = take_frames(&mut s.buf);
            counts.frames[i].fetch_add(texts, Ordering::Relaxed);
            if close {
                s.open = false;
                counts.closed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            epoll::add(
                &ep,
                s.stream.as_fd(),
                epoll::EventData::new_u64(i as u64),
                epoll::EventFlags::IN,
            )
            .map_err(|e| HarnessError::msg(format!("epoll_ctl: {e}")))?;
        }
        let reader = {
            let counts = Arc::clone(&counts);
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("subscribers".into())
                .spawn(move || read_all(ep, subs, &counts, &stop))
                .map_err(|e| HarnessError::io("start the subscriber reader", e))?
        };
        Ok(Subscribers {
            counts,
            stop,
            reader: Some(reader),
        })
    }

    /// Events received, per subscriber.
    pub fn frames(&self) -> Vec<u64> {
        self.counts
            .frames
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Subscribers the server closed.
    pub fn closed(&self) -> usize {
        self.counts.closed.load(Ordering::Relaxed)
    }

    /// Waits until every open subscriber has at least `want` events, or `timeout`;
    /// returns whether they all got there.
    pub fn wait_for(&self, want: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.frames().iter().all(|&n| n >= want) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

/// The reader: drains every readable subscriber and counts its frames until `stop`.
fn read_all(ep: rustix::fd::OwnedFd, mut subs: Vec<Sub>, counts: &Counts, stop: &AtomicBool) {
    let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
    let mut chunk = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        events.clear();
        let timeout = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        if epoll::wait(
            &ep,
            rustix::buffer::spare_capacity(&mut events),
            Some(&timeout),
        )
        .is_err()
        {
            continue;
        }
        for ev in events.iter() {
            let i = ev.data.u64() as usize;
            let s = &mut subs[i];
            if !s.open {
                continue;
            }
            loop {
                match s.stream.read(&mut chunk) {
                    Ok(0) => {
                        s.open = false;
                        break;
                    }
                    Ok(n) => s.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        s.open = false;
                        break;
                    }
                }
            }
            let (texts, close) = take_frames(&mut s.buf);
            counts.frames[i].fetch_add(texts, Ordering::Relaxed);
            if close || !s.open {
                if s.open || close {
                    counts.closed.fetch_add(1, Ordering::Relaxed);
                }
                s.open = false;
                let _ = epoll::delete(&ep, s.stream.as_fd());
            }
        }
    }
}

/// A writer of small objects: `conns` threads each creating objects in a loop, at
/// `per_second` in all when given, else as fast as the server answers.
#[derive(Debug)]
pub struct Writer {
    created: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Writer {
    /// Starts writing; `limit` objects in all when given.
    pub fn start(
        addr: SocketAddr,
        auth: &str,
        conns: usize,
        per_second: Option<f64>,
        limit: Option<u64>,
    ) -> Writer {
        let created = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let threads = (0..conns)
            .map(|t| {
                let (created, failed, stop, issued) = (
                    Arc::clone(&created),
                    Arc::clone(&failed),
                    Arc::clone(&stop),
                    Arc::clone(&issued),
                );
                let auth = auth.to_string();
                thread::spawn(move || {
                    let mut conn: Option<Conn> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let k = issued.fetch_add(1, Ordering::Relaxed);
                        if limit.is_some_and(|l| k >= l) {
                            break;
                        }
                        if let Some(rate) = per_second {
                            // Object k is due at k / rate seconds after the start.
                            let due = start + Duration::from_secs_f64(k as f64 / rate);
                            let now = Instant::now();
                            if due > now {
                                thread::sleep(due - now);
                            }
                        }
                        let c = match conn.as_mut() {
                            Some(c) if !c.closed => c,
                            _ => match Conn::connect(addr) {
                                Ok(c) => conn.insert(c),
                                Err(_) => {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                    thread::sleep(Duration::from_millis(10));
                                    continue;
                                }
                            },
                        };
                        let target = format!("/v1/objects?name=ev-{t}-{k}.txt");
                        let body = format!("event {k}\n");
                        match c.request(
                            "POST",
                            &target,
                            &[("Authorization", &auth), ("Content-Type", "text/plain")],
                            Some(body.as_bytes()),
                        ) {
                            Ok(r) if r.status == 201 => {
                                created.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                conn = None;
                            }
                        }
                    }
                })
            })
            .collect();
        Writer {
            created,
            failed,
            stop,
            threads,
        }
    }

    /// Objects created so far.
    pub fn created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// Stops (or waits for a `limit` to be reached) and returns (created, failed).
    pub fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
        (self.created(), self.failed.load(Ordering::Relaxed))
    }

    /// Waits for every thread to end by itself (a `limit` reached), then returns as
    /// [`Writer::finish`] does.
    pub fn join(mut self) -> (u64, u64) {
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
        (self.created(), self.failed.load(Ordering::Relaxed))
    }
}

/// The last event sequence number the caller can see (`GET /v1/events?since=0`, paged).
pub fn last_seq(addr: SocketAddr, auth: &str) -> Result<u64, HarnessError> {
    let mut conn = Conn::connect(addr).map_err(|e| HarnessError::msg(format!("connect: {e}")))?;
    let mut since = 0u64;
    loop {
        let target = format!("/v1/events?since={since}&limit=1000");
        let r = conn
            .request("GET", &target, &[("Authorization", auth)], None)
            .map_err(|e| HarnessError::msg(format!("GET {target}: {e}")))?;
        if r.status != 200 {
            return Err(HarnessError::msg(format!(
                "GET {target} answered {}: {}",
                r.status,
                r.body_text()
            )));
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .map_err(|e| HarnessError::msg(format!("GET {target}: not JSON: {e}")))?;
        let events = v["events"].as_array().cloned().unwrap_or_default();
        match events.last().and_then(|e| e["seq"].as_u64()) {
            Some(s) if s > since => since = s,
            _ => return Ok(since),
        }
        if events.len() < 1000 {
            return Ok(since);
        }
    }
}

/// The background of `get-4k-events`: [`SUBSCRIBERS`] subscribers of `/v1/events` and
/// a writer creating [`GET_EVENTS_PER_S`] objects a second, for as long as one ringbox
/// round of the GET runs.
#[derive(Debug)]
pub struct GetBackground {
    subscribers: Subscribers,
    writer: Writer,
    started: Instant,
}

/// What happened in the background of one `get-4k-events` round.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fanned {
    /// Objects the writer created (one event each).
    pub created: u64,
    /// Creates that failed.
    pub failed: u64,
    /// Seconds the writer ran.
    pub seconds: f64,
    /// Subscribers that stayed open.
    pub subscribers: usize,
    /// Subscribers the server closed.
    pub closed: usize,
    /// Events the slowest subscriber received.
    pub fewest_received: u64,
    /// Whether every open subscriber received every event within the drain time.
    pub all_delivered: bool,
}

impl Fanned {
    /// One line for the notes.
    pub fn summary(&self) -> String {
        format!(
            "ringbox created {} objects meanwhile ({:.0}/s), and fanned their events out to {} WebSocket \
             subscribers (slowest got {}, {} closed by the server, {} failed creates)",
            self.created,
            self.created as f64 / self.seconds.max(0.001),
            self.subscribers,
            self.fewest_received,
            self.closed,
            self.failed
        )
    }

    /// Why the round's figure cannot be trusted, if it cannot: lost or late events,
    /// closed subscribers or failed writes mean the background did not run as stated.
    pub fn problem(&self) -> Option<String> {
        (!self.all_delivered || self.closed > 0 || self.failed > 0 || self.created == 0)
            .then(|| format!("the events background did not hold: {}", self.summary()))
    }
}

impl GetBackground {
    /// Subscribes [`SUBSCRIBERS`] clients from the current end of the event log and
    /// starts the writer (four connections, paced).
    pub fn start(server: &Server) -> Result<GetBackground, HarnessError> {
        let auth = server
            .auth
            .clone()
            .ok_or_else(|| HarnessError::msg("ringbox has no admin token"))?;
        let since = last_seq(server.addr, &auth)?;
        let subscribers = Subscribers::open(server.addr, Some(&auth), SUBSCRIBERS, since)?;
        // Four connections: with fsync and a saturated worker a create takes tens of
        // milliseconds, and two connections fell short of the pace (60/s).
        let writer = Writer::start(server.addr, &auth, 4, Some(GET_EVENTS_PER_S), None);
        Ok(GetBackground {
            subscribers,
            writer,
            started: Instant::now(),
        })
    }

    /// Stops the writer, waits (bounded) for every subscriber to have every event, and
    /// closes the subscribers.
    pub fn finish(self) -> Fanned {
        let (created, failed) = self.writer.finish();
        let seconds = self.started.elapsed().as_secs_f64();
        let all_delivered = self.subscribers.wait_for(created, GET_EVENTS_DRAIN);
        let frames = self.subscribers.frames();
        Fanned {
            created,
            failed,
            seconds,
            subscribers: frames.len(),
            closed: self.subscribers.closed(),
            fewest_received: frames.iter().min().copied().unwrap_or(0),
            all_delivered,
        }
    }
}

impl Runner {
    /// `events-1000`: how many events per second ringbox delivers to every one of 1,000
    /// WebSocket subscribers, against how fast the same writer creates objects with no
    /// subscriber (the fan-out's cost to writes). Each round starts a fresh ringbox
    /// (durability `none`, so the writer is CPU-bound and fan-out cost shows).
    pub fn run_events_fanout(&mut self) {
        let rounds = self.settings.rounds;
        eprintln!("load: scenario events-1000 ({SUBSCRIBERS} subscribers, {FANOUT_OBJECTS} objects a round)");
        let mut all = Vec::new();
        let mut notes = Vec::new();
        for round in 1..=rounds {
            let mut r = Round {
                round,
                results: Vec::new(),
            };
            // Alternate which goes first, as the GET scenarios do.
            let order: [usize; 2] = if round % 2 == 1 {
                [0, SUBSCRIBERS]
            } else {
                [SUBSCRIBERS, 0]
            };
            for subs in order {
                let name = if subs == 0 {
                    "no-subscribers"
                } else {
                    "ringbox"
                };
                let m = match self.one_fanout(subs) {
                    Ok(m) => m,
                    Err(e) => {
                        notes.push(format!("round {round}, {name}: {e}"));
                        Measurement {
                            value: None,
                            detail: serde_json::Value::Null,
                            error: Some(e.to_string()),
                        }
                    }
                };
                match m.value {
                    Some(v) => eprintln!(
                        "  [events-1000] round {round}/{rounds} {name:<15} {v:.0} events/s"
                    ),
                    None => eprintln!("  [events-1000] round {round}/{rounds} {name:<15} FAILED"),
                }
                r.results.push((name.to_string(), m));
            }
            all.push(r);
        }
        let mut result = ScenarioResult {
            name: "events-1000".into(),
            title: format!("events to {SUBSCRIBERS} WebSocket subscribers"),
            description: format!(
                "{FANOUT_WRITERS} connections create {FANOUT_OBJECTS} small objects as fast as ringbox answers \
                 (one object.created event each, durability none) while {SUBSCRIBERS} WebSocket subscribers of \
                 /v1/events read; the figure is events per second from the first create until the last \
                 subscriber has every event (so deliveries per second are {SUBSCRIBERS}x it). \
                 `no-subscribers` is the same writer with nobody subscribed: the ratio is what the fan-out \
                 costs the writes."
            ),
            unit: "events/s".into(),
            better: Better::Higher,
            command: format!(
                "ringbox-bench: {SUBSCRIBERS} WebSocket subscribers (one epoll thread), {FANOUT_WRITERS} writers of \
                 POST /v1/objects"
            ),
            rounds: all,
            summary: Vec::new(),
            notes,
        };
        result.summarize();
        self.results.push(result);
    }

    /// One measurement of `events-1000` with `subs` subscribers.
    fn one_fanout(&self, subs: usize) -> Result<Measurement, HarnessError> {
        let mut server = start_ringbox(&self.tools, &self.place, Durability::None, &[])?;
        let auth = server.auth.clone().unwrap_or_default();
        let since = last_seq(server.addr, &auth)?;
        let subscribers = if subs > 0 {
            Some(Subscribers::open(server.addr, Some(&auth), subs, since)?)
        } else {
            None
        };
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        let writer = Writer::start(
            server.addr,
            &auth,
            FANOUT_WRITERS,
            None,
            Some(FANOUT_OBJECTS),
        );
        let (created, failed) = writer.join();
        let write_secs = t.elapsed().as_secs_f64();
        let mut detail = json!({
            "objects": created,
            "failed": failed,
            "write_seconds": write_secs,
            "subscribers": subs,
        });
        let value = match &subscribers {
            None => created as f64 / write_secs,
            Some(s) => {
                let all = s.wait_for(created, Duration::from_secs(120));
                let secs = t.elapsed().as_secs_f64();
                let frames = s.frames();
                detail["delivery_seconds"] = json!(secs);
                detail["closed_by_server"] = json!(s.closed());
                detail["fewest_received"] = json!(frames.iter().min().copied().unwrap_or(0));
                detail["deliveries"] = json!(frames.iter().sum::<u64>());
                if !all || s.closed() > 0 {
                    server.check_alive()?;
                    return Ok(Measurement {
                        value: None,
                        detail,
                        error: Some(format!(
                            "{} subscribers were closed and the slowest has {} of {created} events",
                            s.closed(),
                            frames.iter().min().copied().unwrap_or(0)
                        )),
                    });
                }
                created as f64 / secs
            }
        };
        drop(subscribers);
        server.check_alive()?;
        Ok(Measurement {
            value: Some(value),
            detail,
            error: (failed > 0).then(|| format!("{failed} creates failed")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_counted_across_reads() {
        let mut buf = Vec::new();
        let text = |s: &str| {
            let mut f = vec![0x81, s.len() as u8];
            f.extend_from_slice(s.as_bytes());
            f
        };
        buf.extend(text("{\"seq\":1}"));
        let second = text("{\"seq\":2}");
        buf.extend_from_slice(&second[..4]);
        assert_eq!(take_frames(&mut buf), (1, false));
        buf.extend_from_slice(&second[4..]);
        // A 300-byte frame uses the 16-bit length.
        let mut long = vec![0x81, 126, 0x01, 0x2c];
        long.extend(std::iter::repeat_n(b'x', 300));
        buf.extend(long);
        buf.extend([0x88, 0x02, 0x03, 0xf0]);
        assert_eq!(take_frames(&mut buf), (2, true));
        assert!(buf.is_empty());
    }
}
