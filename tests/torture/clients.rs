//! Broken and abundant clients: clients that vanish mid-request, slowloris clients
//! dribbling a head, and more connections than `--max-connections` allows.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::common::{Client, Daemon};
use crate::support::{
    assert_consistent, assert_healthz, bearer, content, fd_targets, head_bytes, one_shot,
    parse_response, raise_nofile, seed, serial, wait_no_fd_leaks, wait_tmp_empty, Conn, Parsed,
    Rng,
};

// ---------------------------------------------------------------------------------
// Clients that vanish
// ---------------------------------------------------------------------------------

/// One request that is abandoned part-way: `bytes` is the whole request, `cut` how
/// much of it is sent, `reset` whether the socket is reset (RST) or closed (FIN).
#[derive(Debug)]
struct Vanish {
    label: &'static str,
    bytes: Vec<u8>,
    cut: usize,
    reset: bool,
    /// Wait for `100 Continue` after the head (sent with `Expect: 100-continue`).
    expect_continue: bool,
    /// A download: read this many bytes of the response, then vanish.
    read_then_vanish: Option<usize>,
}

fn vanishing_request(rng: &mut Rng, token: &str, pending: &str, big: &str, i: u64) -> Vanish {
    let auth = format!("Authorization: {}", bearer(token));
    let size = match rng.below(4) {
        0 => rng.range(1, 4096),
        1 => rng.range(4096, 128 * 1024),
        _ => rng.range(128 * 1024, 3 << 20),
    } as usize;
    let data = content(i, size);
    let reset = rng.chance(0.5);
    let kind = i % 9;
    if kind == 8 {
        let range = if rng.chance(0.3) {
            "Range: bytes=1000-\r\n"
        } else {
            ""
        };
        return Vanish {
            label: "download",
            bytes: format!(
                "GET /v1/objects/{big}/content HTTP/1.1\r\nHost: x\r\n{auth}\r\n{range}\r\n"
            )
            .into_bytes(),
            cut: usize::MAX,
            reset,
            expect_continue: false,
            read_then_vanish: Some(rng.below(256 * 1024) as usize),
        };
    }
    let (label, bytes, head_len, expect_continue) = match kind {
        0 | 1 => {
            let head = format!(
                "POST /v1/objects?name=gone-{i}.bin HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: {size}\r\nX-Pad: {}\r\n\r\n",
                "p".repeat(rng.below(3000) as usize)
            );
            let h = head.into_bytes();
            let n = h.len();
            // Cut inside the head.
            return Vanish {
                label: "mid-head",
                cut: rng.range(1, n as u64 - 1) as usize,
                bytes: h,
                reset,
                expect_continue: false,
                read_then_vanish: None,
            };
        }
        2 | 3 => {
            let head = format!("POST /v1/objects?name=gone-{i}.bin HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: {size}\r\n\r\n");
            let n = head.len();
            let mut b = head.into_bytes();
            b.extend_from_slice(&data);
            ("Content-Length body", b, n, false)
        }
        4 => {
            let head = format!("POST /v1/objects?name=gone-{i}.bin HTTP/1.1\r\nHost: x\r\n{auth}\r\nTransfer-Encoding: chunked\r\n\r\n");
            let n = head.len();
            let mut b = head.into_bytes();
            for piece in data.chunks(rng.range(1, 70_000) as usize) {
                b.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                b.extend_from_slice(piece);
                b.extend_from_slice(b"\r\n");
            }
            b.extend_from_slice(b"0\r\n\r\n");
            ("chunked body", b, n, false)
        }
        5 => {
            let mut body = b"--VV\r\nContent-Disposition: form-data; name=\"namespace\"\r\n\r\ngone\r\n--VV\r\nContent-Disposition: form-data; name=\"file\"; filename=\"gone.bin\"\r\n\r\n".to_vec();
            body.extend_from_slice(&data);
            body.extend_from_slice(b"\r\n--VV--\r\n");
            let head = format!(
                "POST /v1/objects HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Type: multipart/form-data; boundary=VV\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let n = head.len();
            let mut b = head.into_bytes();
            b.extend_from_slice(&body);
            ("multipart body", b, n, false)
        }
        6 => {
            let head = format!("PUT /v1/objects/{pending}/content HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: {size}\r\n\r\n");
            let n = head.len();
            let mut b = head.into_bytes();
            b.extend_from_slice(&data);
            ("PUT content body", b, n, false)
        }
        _ => {
            let head = format!("POST /v1/objects?name=gone-{i}.bin HTTP/1.1\r\nHost: x\r\n{auth}\r\nExpect: 100-continue\r\nContent-Length: {size}\r\n\r\n");
            let n = head.len();
            let mut b = head.into_bytes();
            b.extend_from_slice(&data);
            ("body after 100 Continue", b, n, true)
        }
    };
    // Cut somewhere in the body (never after its last byte).
    let cut = rng.range(head_len as u64, bytes.len() as u64 - 1) as usize;
    Vanish {
        label,
        bytes,
        cut,
        reset,
        expect_continue,
        read_then_vanish: None,
    }
}

fn vanish(addr: SocketAddr, v: &Vanish, pause: Duration) {
    let Ok(mut c) = Conn::connect(addr) else {
        panic!("connect failed")
    };
    if let Some(n) = v.read_then_vanish {
        c.send(&v.bytes).unwrap();
        let mut got = 0;
        let mut buf = vec![0u8; 16 * 1024];
        c.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        while got < n {
            match c.stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => got += k,
            }
        }
        if v.reset {
            c.set_linger_zero();
        }
        return;
    }
    let head_end = v
        .bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(v.bytes.len(), |p| p + 4);
    if v.expect_continue && v.cut >= head_end {
        c.send(&v.bytes[..head_end]).unwrap();
        let r = c
            .read_response(false, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("no 100 Continue: {e}"));
        assert_eq!(r.status, 100, "expected 100 Continue:\n{}", r.describe());
        let _ = c.send(&v.bytes[head_end..v.cut]);
    } else {
        let _ = c.send(&v.bytes[..v.cut]);
    }
    // Let the daemon start on it (create the temp file, write some of it).
    std::thread::sleep(pause);
    if v.reset {
        c.set_linger_zero();
    }
    drop(c);
}

/// Issue 5: 100 clients vanish mid-head and mid-body (Content-Length, chunked,
/// multipart, PUT, after `100 Continue`; FIN and RST) or in the middle of a download:
/// no object, no temp file, no leaked descriptor.
#[test]
fn vanishing_clients_leave_nothing() {
    let _serial = serial();
    let seed = seed("vanishing_clients_leave_nothing");
    let mut rng = Rng::new(seed);
    let mut d = Daemon::start(&[]);
    let (addr, token) = (d.addr(), d.token().to_string());
    let pending = {
        let c = Client::new(&d);
        let v = c
            .post_json(
                "/v1/objects",
                &serde_json::json!({"type": "file", "name": "pending.bin"}),
            )
            .expect_json(201);
        // A completed upload first, so every path (temp files, writer) is warm.
        c.upload("warm.bin", None, None, &content(1, 100_000));
        v["id"].as_str().unwrap().to_string()
    };
    let big = Client::new(&d).upload("big.bin", None, None, &content(2, 4 << 20))["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Both workers cache an open descriptor of big.bin on first read: read it on
    // enough fresh connections that each worker has it before the baseline.
    for _ in 0..16 {
        let r = one_shot(
            addr,
            &head_bytes(
                "GET",
                &format!("/v1/objects/{big}/content"),
                &[("Authorization", &bearer(&token))],
            ),
            false,
        )
        .unwrap();
        assert_eq!(r.status, 200);
    }
    let pid = d.pid();
    std::thread::sleep(Duration::from_millis(300));
    let fds0 = fd_targets(pid);
    let t0 = Instant::now();
    let mut labels = std::collections::BTreeMap::<&str, u32>::new();
    for batch in 0..10u64 {
        let reqs: Vec<Vanish> = (0..10)
            .map(|k| vanishing_request(&mut rng, &token, &pending, &big, batch * 10 + k))
            .collect();
        for v in &reqs {
            *labels.entry(v.label).or_default() += 1;
        }
        let pauses: Vec<Duration> = (0..10)
            .map(|_| Duration::from_millis(rng.below(60)))
            .collect();
        std::thread::scope(|s| {
            for (v, p) in reqs.iter().zip(pauses) {
                s.spawn(move || vanish(addr, v, p));
            }
        });
    }
    eprintln!("100 vanishing clients in {:?}: {labels:?}", t0.elapsed());
    d.assert_alive();
    wait_tmp_empty(d.data_dir(), Duration::from_secs(5)).unwrap_or_else(|t| {
        panic!(
            "(seed {seed}) tmp/ keeps {} temp file(s) 5 s after the clients vanished: {t:?}",
            t.len()
        )
    });
    wait_no_fd_leaks(pid, &fds0, Duration::from_secs(5)).unwrap_or_else(|leaks| {
        panic!("(seed {seed}) 5 s after the clients vanished the daemon still holds {leaks:?}")
    });
    assert_healthz(addr);
    let c = Client::new(&d);
    let list = c.get("/v1/objects?limit=1000").expect_json(200);
    let mut names: Vec<&str> = list["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["big.bin", "pending.bin", "warm.bin"],
        "(seed {seed}) an abandoned upload was stored: {list}"
    );
    assert_eq!(
        c.object(&pending)["state"],
        "pending",
        "an abandoned PUT changed the object"
    );
    let data = d.data_dir().to_path_buf();
    assert!(d.stop().success());
    assert_consistent(&data, "after 100 vanishing clients");
}

// ---------------------------------------------------------------------------------
// Slow clients
// ---------------------------------------------------------------------------------

/// One slowloris connection and what happened to it.
struct Slow {
    stream: TcpStream,
    first_byte: Instant,
    closed_at: Option<Instant>,
    received: Vec<u8>,
    sent: usize,
}

/// Issue 5: 500 connections dribble a head one byte a second; normal requests are
/// answered promptly meanwhile (each < 1 s) and the slow ones are closed at the head
/// deadline (`--header-timeout 3s`: after ~3 s, by 5.5 s at the latest, never before
/// 2.5 s), with a 408 or a plain close.
#[test]
fn slow_clients_do_not_starve_others() {
    let _serial = serial();
    raise_nofile(4096);
    let d = Daemon::start(&["--header-timeout", "3s"]);
    let (addr, token) = (d.addr(), d.token().to_string());
    const SLOW: usize = 500;
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut slow: Vec<Slow> = (0..SLOW)
        .map(|i| {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("slow connection {i}: {e}"));
            s.set_nodelay(true).unwrap();
            Slow {
                stream: s,
                first_byte: Instant::now(),
                closed_at: None,
                received: vec![],
                sent: 0,
            }
        })
        .collect();
    for s in &mut slow {
        (&s.stream).write_all(&head[..1]).unwrap();
        s.first_byte = Instant::now();
        s.sent = 1;
        s.stream.set_nonblocking(true).unwrap();
    }
    let start = Instant::now();
    // The dribbler/watcher: one byte a second to each open connection, and a
    // non-blocking read every 20 ms to notice the close.
    let watcher = std::thread::spawn(move || {
        let mut last_write = Instant::now();
        let mut buf = [0u8; 4096];
        while start.elapsed() < Duration::from_secs(8) && slow.iter().any(|s| s.closed_at.is_none())
        {
            let write_now = last_write.elapsed() >= Duration::from_secs(1);
            if write_now {
                last_write = Instant::now();
            }
            for s in slow.iter_mut().filter(|s| s.closed_at.is_none()) {
                loop {
                    match (&s.stream).read(&mut buf) {
                        Ok(0) => {
                            s.closed_at = Some(Instant::now());
                            break;
                        }
                        Ok(n) => s.received.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {
                            s.closed_at = Some(Instant::now());
                            break;
                        }
                    }
                }
                if write_now && s.closed_at.is_none() {
                    let b = head[s.sent % head.len()..][..1].to_vec();
                    match (&s.stream).write(&b) {
                        Ok(_) => s.sent += 1,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(_) => s.closed_at = Some(Instant::now()),
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        slow
    });

    // Normal clients meanwhile: fresh connections, health, an upload and a read.
    let mut worst = Duration::ZERO;
    let mut n = 0;
    let auth = bearer(&token);
    while start.elapsed() < Duration::from_secs(6) {
        n += 1;
        let body = content(n, 10_000);
        let mut upload = head_bytes(
            "POST",
            &format!("/v1/objects?name=normal-{n}.bin"),
            &[
                ("Authorization", auth.as_str()),
                ("Content-Length", "10000"),
            ],
        );
        upload.extend_from_slice(&body);
        for (what, bytes, status) in [
            ("GET /healthz", head_bytes("GET", "/healthz", &[]), 200),
            ("POST upload", upload, 201),
            (
                "GET /v1/objects",
                head_bytes(
                    "GET",
                    "/v1/objects?limit=5",
                    &[("Authorization", auth.as_str())],
                ),
                200,
            ),
        ] {
            let t = Instant::now();
            let r = one_shot(addr, &bytes, false)
                .unwrap_or_else(|e| panic!("{what} while 500 slow clients hang on: {e}"));
            let took = t.elapsed();
            assert_eq!(r.status, status, "{what}:\n{}", r.describe());
            assert!(
                took < Duration::from_secs(1),
                "{what} took {took:?} while 500 slow clients hang on (must be < 1 s)"
            );
            worst = worst.max(took);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let slow = watcher.join().unwrap();
    eprintln!("{} rounds of normal requests; slowest {worst:?}", n);
    let mut early = vec![];
    let mut late = 0;
    let mut answers = std::collections::BTreeMap::<String, u32>::new();
    for (i, s) in slow.iter().enumerate() {
        let Some(at) = s.closed_at else {
            late += 1;
            continue;
        };
        let after = at - s.first_byte;
        if after < Duration::from_millis(2500) {
            early.push((i, after));
        }
        if after > Duration::from_millis(5500) {
            late += 1;
        }
        let what = if s.received.is_empty() {
            "closed without an answer".to_string()
        } else {
            match parse_response(&s.received, false) {
                Parsed::Complete(r, used) if used == s.received.len() && r.status == 408 => {
                    r.check_json_error().unwrap();
                    "408".to_string()
                }
                other => panic!("slow connection {i} got {other:?}"),
            }
        };
        *answers.entry(what).or_default() += 1;
    }
    eprintln!("slow connections: {answers:?}");
    assert!(
        early.is_empty(),
        "closed before the 3 s header deadline: {early:?}"
    );
    assert_eq!(
        late, 0,
        "{late} slow connections still open after 5.5 s (header-timeout 3s)"
    );
    assert_healthz(addr);
}

// ---------------------------------------------------------------------------------
// Too many clients
// ---------------------------------------------------------------------------------

/// Issue 5: 10,000 concurrent connections against `--max-connections 2000`: those
/// beyond the limit get a 503 JSON error or are closed, none hangs, at most 2000 are
/// served, and afterwards the daemon serves a fresh connection and its open-connection
/// gauge returns to zero.
#[test]
fn ten_thousand_connections_beyond_max_are_refused_cleanly() {
    let _serial = serial();
    let limit = raise_nofile(30_000);
    let total = 10_000.min(limit.saturating_sub(300) as usize);
    if total < 10_000 {
        eprintln!(
            "note: RLIMIT_NOFILE allows only {limit} descriptors; opening {total} connections"
        );
    }
    assert!(
        total > 2500,
        "RLIMIT_NOFILE {limit} is too low for this test"
    );
    let d = Daemon::start(&["--max-connections", "2000"]);
    let addr = d.addr();
    let t0 = Instant::now();
    let mut conns = Vec::with_capacity(total);
    for i in 0..total {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connection {i} of {total}: {e}"));
        conns.push(s);
    }
    let connected = t0.elapsed();
    std::thread::sleep(Duration::from_millis(1000));
    #[derive(Default, Debug)]
    struct Tally {
        refused_503: usize,
        closed: usize,
        served: usize,
    }
    let mut tally = Tally::default();
    let mut open = vec![];
    let mut buf = vec![0u8; 8192];
    // First, what the daemon already said: refusals arrive without a request.
    for (i, s) in conns.iter().enumerate() {
        s.set_nonblocking(true).unwrap();
        match (&*s).read(&mut buf) {
            Ok(0) => tally.closed += 1,
            Ok(n) => {
                let mut got = buf[..n].to_vec();
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                loop {
                    match (&*s).read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(m) => got.extend_from_slice(&buf[..m]),
                    }
                }
                check_refusal(&got, i);
                tally.refused_503 += 1;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => open.push(i),
            Err(_) => tally.closed += 1,
        }
    }
    // Then every connection still open must be served (or refused) promptly.
    for &i in &open {
        let s = &conns[i];
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = (&*s).write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut got = vec![];
        let t = Instant::now();
        loop {
            match parse_response(&got, false) {
                Parsed::Complete(r, _) => {
                    match r.status {
                        200 => tally.served += 1,
                        503 => {
                            check_refusal(&got, i);
                            tally.refused_503 += 1
                        }
                        _ => panic!("connection {i}: unexpected {}", r.describe()),
                    }
                    break;
                }
                Parsed::Malformed(m) => panic!("connection {i}: {m}"),
                Parsed::Partial => {}
            }
            match (&*s).read(&mut buf) {
                Ok(0) => {
                    assert!(
                        got.is_empty(),
                        "connection {i} closed mid-response: {got:?}"
                    );
                    tally.closed += 1;
                    break;
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("connection {i} hangs: no answer {:?} after a request (tally so far {tally:?})", t.elapsed())
                }
                Err(_) => {
                    tally.closed += 1;
                    break;
                }
            }
        }
    }
    eprintln!(
        "{total} connections (connected in {connected:?}), {} still open after 1 s: {tally:?}; {:?} in all",
        open.len(),
        t0.elapsed()
    );
    assert_eq!(tally.refused_503 + tally.closed + tally.served, total);
    assert!(
        tally.served <= 2000,
        "{} connections served with --max-connections 2000",
        tally.served
    );
    assert!(tally.served > 0, "no connection was served at all");
    drop(conns);
    // The daemon keeps serving, and its gauge comes back down.
    assert_healthz(addr);
    let gauge = crate::common::util::poll(Duration::from_secs(10), || {
        let r = one_shot(
            addr,
            &head_bytes("GET", "/metrics", &[("Authorization", &bearer(d.token()))]),
            false,
        )
        .ok()?;
        let samples = crate::common::util::parse_metrics(&String::from_utf8_lossy(&r.body));
        let open = crate::common::util::metric_sum(&samples, "ringbox_open_connections", &[]);
        (open <= 1.0).then_some(open)
    });
    assert!(
        gauge.is_some(),
        "ringbox_open_connections did not return to 1 (this request) within 10 s"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t0.elapsed()
    );
}

#[track_caller]
fn check_refusal(bytes: &[u8], i: usize) {
    match parse_response(bytes, false) {
        Parsed::Complete(r, used) => {
            assert_eq!(r.status, 503, "connection {i}: {}", r.describe());
            r.check_json_error()
                .unwrap_or_else(|e| panic!("connection {i}: {e}"));
            assert_eq!(used, bytes.len(), "connection {i}: bytes after the 503");
        }
        other => panic!("connection {i}: refusal is not a whole response: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------
// Slow readers
// ---------------------------------------------------------------------------------

/// Clients that ask for a large blob and never read it: the daemon must not buffer
/// the blob per connection, must keep answering others promptly, and must drop the
/// stalled connections after `--body-timeout` (README: "every body read (and response
/// write) must make progress within this").
#[test]
fn slow_readers_are_cut_off_without_starving_others() {
    let _serial = serial();
    let d = Daemon::start(&["--body-timeout", "2s"]);
    let (addr, token) = (d.addr(), d.token().to_string());
    let auth = bearer(&token);
    let size = 16 << 20;
    let id = {
        let c = Client::new(&d);
        c.upload("big.bin", None, None, &content(3, size))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let get = head_bytes(
        "GET",
        &format!("/v1/objects/{id}/content"),
        &[("Authorization", auth.as_str())],
    );
    for _ in 0..16 {
        assert_eq!(one_shot(addr, &get, false).unwrap().status, 200);
    }
    let pid = d.pid();
    std::thread::sleep(Duration::from_millis(300));
    let fds0 = fd_targets(pid);
    let rss0 = d.proc_status_kib("VmRSS");
    const STALLED: usize = 20;
    let stalled: Vec<TcpStream> = (0..STALLED)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            (&s).write_all(&get).unwrap();
            s
        })
        .collect();
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(3) {
        for bytes in [head_bytes("GET", "/healthz", &[]), get.clone()] {
            let t = Instant::now();
            let r = one_shot(addr, &bytes, false)
                .unwrap_or_else(|e| panic!("while {STALLED} readers stall: {e}"));
            assert_eq!(r.status, 200);
            worst = worst.max(t.elapsed());
        }
    }
    let rss = d.proc_status_kib("VmRSS");
    eprintln!("slowest normal request {worst:?}; VmRSS {rss0} -> {rss} KiB with {STALLED} stalled 16 MiB downloads");
    assert!(
        worst < Duration::from_secs(1),
        "a normal request took {worst:?} while readers stall"
    );
    assert!(
        rss < rss0 + 64 * 1024,
        "VmRSS grew from {rss0} to {rss} KiB: stalled downloads are buffered in memory"
    );
    // The daemon gives up on them (body-timeout 2s, so by ~2-4 s after the socket
    // buffers filled); its descriptors come back although the clients keep theirs.
    wait_no_fd_leaks(pid, &fds0, Duration::from_secs(10)).unwrap_or_else(|leaks| {
        panic!("10 s after {STALLED} downloads stalled the daemon still holds {leaks:?}: stalled writers are never timed out")
    });
    for (i, s) in stalled.iter().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = 0usize;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match (&*s).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("stalled reader {i}: the connection is still open after {got} bytes")
                }
                Err(_) => break,
            }
        }
        assert!(
            got < size,
            "stalled reader {i} got the whole blob ({got} bytes) after the timeout"
        );
    }
    assert_healthz(addr);
}
