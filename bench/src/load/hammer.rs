//! A wrk-like closed-loop load generator for requests wrk cannot measure: one thread,
//! epoll, N keep-alive connections, each sending the next request as soon as the answer
//! to the last one is complete.
//!
//! It exists because wrk 4.1 (Debian's) cannot read answers to `HEAD`: its parser waits
//! for the `Content-Length` bytes that a HEAD answer announces but never sends, so every
//! connection stalls. This client knows it sent HEAD. It reports the same [`WrkResult`]
//! figures. It is not used where wrk works, so the GET figures stay comparable with
//! published wrk numbers.
//!
//! Not supported: chunked answers (counted as errors), pipelining, TLS.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::event::epoll;

use super::wrk::WrkResult;
use super::HarnessError;

/// What to send, how often, for how long.
#[derive(Debug, Clone)]
pub struct HammerRun {
    /// Server address.
    pub addr: SocketAddr,
    /// The full request bytes, sent again and again.
    pub request: Vec<u8>,
    /// Whether the request is HEAD (answers carry no body).
    pub head: bool,
    /// Connections kept busy.
    pub connections: usize,
    /// Test length.
    pub duration: Duration,
}

struct ConnState {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Body bytes still to read of the current answer (`None`: reading the head).
    body_left: Option<usize>,
    sent_at: Instant,
    /// Status of the answer being read.
    status: u16,
    /// Bytes of the request still to write.
    unsent: usize,
}

impl ConnState {
    fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(8192),
            body_left: None,
            sent_at: Instant::now(),
            status: 0,
            unsent: 0,
        })
    }
}

/// Runs the load and returns wrk-style figures.
pub fn run(run: &HammerRun) -> Result<WrkResult, HarnessError> {
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)
        .map_err(|e| HarnessError::msg(format!("epoll_create: {e}")))?;
    let mut conns: Vec<ConnState> = Vec::with_capacity(run.connections);
    let mut result = WrkResult::default();
    for i in 0..run.connections {
        let c = ConnState::open(run.addr)
            .map_err(|e| HarnessError::msg(format!("connect {}: {e}", run.addr)))?;
        epoll::add(
            &ep,
            c.stream.as_fd(),
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN,
        )
        .map_err(|e| HarnessError::msg(format!("epoll_ctl: {e}")))?;
        conns.push(c);
    }
    let mut latencies: Vec<u32> = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    let deadline = start + run.duration;
    for (i, c) in conns.iter_mut().enumerate() {
        send(&ep, c, i, &run.request, &mut result);
    }
    let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
    let mut chunk = vec![0u8; 256 * 1024];
    let mut done: Vec<u16> = Vec::new();
    while Instant::now() < deadline {
        events.clear();
        let timeout = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        };
        match epoll::wait(
            &ep,
            rustix::buffer::spare_capacity(&mut events),
            Some(&timeout),
        ) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(HarnessError::msg(format!("epoll_wait: {e}"))),
        }
        for ev in events.iter() {
            let i = ev.data.u64() as usize;
            let flags = ev.flags;
            if flags.contains(epoll::EventFlags::OUT) {
                send(&ep, &mut conns[i], i, &run.request, &mut result);
                continue;
            }
            // Read what is there; bodies are counted, not kept.
            let mut closed = false;
            done.clear();
            loop {
                match conns[i].stream.read(&mut chunk) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        result.bytes += n as u64;
                        if feed(&mut conns[i], &chunk[..n], run.head, &mut done).is_err() {
                            result.err_read += 1;
                            closed = true;
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            for &status in &done {
                let us = conns[i].sent_at.elapsed().as_micros().min(u32::MAX as u128) as u32;
                if Instant::now() < deadline {
                    result.requests += 1;
                    latencies.push(us);
                    if !(200..400).contains(&status) {
                        result.err_status += 1;
                    }
                }
            }
            if !done.is_empty() && !closed && Instant::now() < deadline {
                send(&ep, &mut conns[i], i, &run.request, &mut result);
            }
            if closed && Instant::now() < deadline {
                result.err_read += 1;
                let _ = epoll::delete(&ep, conns[i].stream.as_fd());
                match ConnState::open(run.addr) {
                    Ok(c) => {
                        conns[i] = c;
                        if epoll::add(
                            &ep,
                            conns[i].stream.as_fd(),
                            epoll::EventData::new_u64(i as u64),
                            epoll::EventFlags::IN,
                        )
                        .is_ok()
                        {
                            send(&ep, &mut conns[i], i, &run.request, &mut result);
                        }
                    }
                    Err(_) => result.err_connect += 1,
                }
            }
        }
    }
    result.duration_us = start.elapsed().as_micros() as u64;
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            0.0
        } else {
            latencies[((latencies.len() - 1) as f64 * p) as usize] as f64
        }
    };
    result.p50_us = pct(0.50);
    result.p99_us = pct(0.99);
    result.max_us = latencies.last().copied().unwrap_or(0) as f64;
    Ok(result)
}

/// Starts (or continues) writing the request on a connection.
fn send(ep: &impl AsFd, c: &mut ConnState, i: usize, request: &[u8], result: &mut WrkResult) {
    if c.unsent == 0 {
        c.unsent = request.len();
        c.sent_at = Instant::now();
    }
    while c.unsent > 0 {
        let from = request.len() - c.unsent;
        match c.stream.write(&request[from..]) {
            Ok(n) => c.unsent -= n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let _ = epoll::modify(
                    ep,
                    c.stream.as_fd(),
                    epoll::EventData::new_u64(i as u64),
                    epoll::EventFlags::OUT,
                );
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                result.err_write += 1;
                c.unsent = 0;
                return;
            }
        }
    }
    let _ = epoll::modify(
        ep,
        c.stream.as_fd(),
        epoll::EventData::new_u64(i as u64),
        epoll::EventFlags::IN,
    );
}

/// Feeds received bytes into the connection's answer parser; pushes the status of every
/// answer completed. Heads are buffered (up to 64 KiB); bodies are only counted.
fn feed(c: &mut ConnState, mut data: &[u8], head: bool, done: &mut Vec<u16>) -> Result<(), ()> {
    while !data.is_empty() {
        if let Some(left) = c.body_left {
            let take = left.min(data.len());
            data = &data[take..];
            if left == take {
                c.body_left = None;
                done.push(c.status);
            } else {
                c.body_left = Some(left - take);
            }
            continue;
        }
        let old = c.buf.len();
        c.buf.extend_from_slice(data);
        let from = old.saturating_sub(3);
        let Some(end) = c.buf[from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| from + p + 4)
        else {
            return if c.buf.len() > 64 * 1024 {
                Err(())
            } else {
                Ok(())
            };
        };
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut slots);
        match resp.parse(&c.buf[..end]) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Err(()),
        }
        let status = resp.code.unwrap_or(0);
        let mut len = 0usize;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                len = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or(())?;
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(());
            }
        }
        let no_body = head || status == 204 || status == 304 || (100..200).contains(&status);
        // The head ended inside `data` (it was not complete before this call).
        data = &data[end - old..];
        c.buf.clear();
        if no_body || len == 0 {
            done.push(status);
        } else {
            c.status = status;
            c.body_left = Some(len);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> (ConnState, std::net::TcpListener) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = ConnState::open(l.local_addr().unwrap()).unwrap();
        (c, l)
    }

    const TWO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n";

    #[test]
    fn answers_are_framed_whole_and_byte_by_byte() {
        let (mut c, _l) = conn();
        let mut done = Vec::new();
        feed(&mut c, TWO, false, &mut done).unwrap();
        assert_eq!(done, [200, 304]);

        let (mut c, _l) = conn();
        let mut done = Vec::new();
        for b in TWO {
            feed(&mut c, std::slice::from_ref(b), false, &mut done).unwrap();
        }
        assert_eq!(done, [200, 304]);
    }

    #[test]
    fn a_partial_answer_waits_for_more() {
        let (mut c, _l) = conn();
        let mut done = Vec::new();
        feed(&mut c, &TWO[..TWO.len() - 3], false, &mut done).unwrap();
        assert_eq!(done, [200]);
        feed(&mut c, &TWO[TWO.len() - 3..], false, &mut done).unwrap();
        assert_eq!(done, [200, 304]);
    }

    #[test]
    fn head_answers_have_no_body_and_chunked_is_refused() {
        let (mut c, _l) = conn();
        let mut done = Vec::new();
        feed(
            &mut c,
            b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n",
            true,
            &mut done,
        )
        .unwrap();
        assert_eq!(done, [200]);
        let (mut c, _l) = conn();
        assert!(feed(
            &mut c,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
            &mut done
        )
        .is_err());
    }
}
