//! The server on loopback port 0, plain and with every feature, answering real requests
//! (each socket has a 10 s timeout, so a hang fails instead of blocking).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use super::{start, Config, State};

struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one answer; `head_only` for a HEAD request (no body follows).
fn read_answer(s: &mut TcpStream, carry: &mut Vec<u8>, head_only: bool) -> Answer {
    let mut chunk = [0u8; 64 << 10];
    let end = loop {
        if let Some(p) = carry.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut chunk).expect("read head");
        assert!(n > 0, "connection closed before a whole head");
        carry.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(carry[..end].to_vec()).unwrap();
    carry.drain(..end);
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map(|v| v.trim().parse().unwrap())
        .expect("Content-Length");
    let want = if head_only { 0 } else { len };
    while carry.len() < want {
        let n = s.read(&mut chunk).expect("read body");
        assert!(n > 0, "connection closed inside a body");
        carry.extend_from_slice(&chunk[..n]);
    }
    let body = carry.drain(..want).collect();
    Answer { status, head, body }
}

fn get(s: &mut TcpStream, carry: &mut Vec<u8>, method: &str, target: &str) -> Answer {
    write!(s, "{method} {target} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    read_answer(s, carry, method == "HEAD")
}

fn exercise(config: Config) {
    let server = start(config).expect("start");
    let addr = server.addr();
    // Keep-alive: several requests of every size on one connection.
    let mut s = connect(addr);
    let mut carry = Vec::new();
    for _ in 0..3 {
        for (target, len) in [("/4k.bin", 4096), ("/64k.bin", 65536), ("/1m.bin", 1 << 20)] {
            let a = get(&mut s, &mut carry, "GET", target);
            assert_eq!(a.status, 200, "{}", a.head);
            assert_eq!(a.body.len(), len);
            assert!(a.body.starts_with(b"abcdefghijklmnopqrstuvwxyza"));
        }
    }
    let a = get(&mut s, &mut carry, "HEAD", "/1m.bin");
    assert_eq!(a.status, 200);
    assert!(a.head.contains("Content-Length: 1048576\r\n"));
    assert_eq!(get(&mut s, &mut carry, "GET", "/missing").status, 404);
    // Still the same connection, still serving.
    assert_eq!(get(&mut s, &mut carry, "GET", "/4k.bin").status, 200);
    // Pipelined: three requests in one write, three answers in order.
    s.write_all(
        b"GET /4k.bin HTTP/1.1\r\n\r\nHEAD /64k.bin HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_answer(&mut s, &mut carry, false).body.len(), 4096);
    assert!(read_answer(&mut s, &mut carry, true)
        .head
        .contains("Content-Length: 65536\r\n"));
    assert_eq!(read_answer(&mut s, &mut carry, false).status, 404);
    // A request split across writes, with a body to skip.
    s.write_all(b"POST /4k.bin HTTP/1.1\r\nContent-Len")
        .unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(b"gth: 3\r\n\r\nabc").unwrap();
    assert_eq!(read_answer(&mut s, &mut carry, false).status, 405);
    assert_eq!(get(&mut s, &mut carry, "GET", "/4k.bin").status, 200);
    // Connection: close is answered, then the server closes.
    s.write_all(b"GET /4k.bin HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let a = read_answer(&mut s, &mut carry, false);
    assert!(a.head.contains("Connection: close\r\n"));
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("server closes");
    assert!(rest.is_empty() && carry.is_empty());
    // Garbage gets a 400 and a close.
    let mut g = connect(addr);
    g.write_all(b"\x16\x03\x01 not http\r\n\r\n").unwrap();
    let mut all = Vec::new();
    g.read_to_end(&mut all).unwrap();
    assert!(all.starts_with(b"HTTP/1.1 400 "), "{all:?}");
    // Many connections at once, closed by the client half-way (slots are reused).
    let mut conns: Vec<(TcpStream, Vec<u8>)> =
        (0..64).map(|_| (connect(addr), Vec::new())).collect();
    for (c, carry) in conns.iter_mut() {
        assert_eq!(get(c, carry, "GET", "/4k.bin").status, 200);
    }
    for (c, _) in conns.iter().step_by(2) {
        let _ = c.shutdown(Shutdown::Both);
    }
    for (c, carry) in conns.iter_mut().skip(1).step_by(2) {
        assert_eq!(get(c, carry, "GET", "/64k.bin").body.len(), 65536);
    }
    drop(conns);
    let mut again = connect(addr);
    let mut carry = Vec::new();
    assert_eq!(
        get(&mut again, &mut carry, "GET", "/1m.bin").body.len(),
        1 << 20
    );
    server.stop().expect("clean stop");
}

#[test]
fn plain_ring_serves_keep_alive_pipelined_and_closing_connections() {
    exercise(Config {
        threads: 2,
        ..Config::default()
    });
}

#[test]
fn every_feature_serves_the_same_and_reports_what_it_runs_with() {
    let config = Config {
        threads: 2,
        // Small ring buffers: a 64 KiB request read spans buffers, and the ring can run dry.
        ring_buffers: 64,
        buf_size: 1024,
        send_zc_min: Some(64 << 10),
        ..Config::default()
    }
    .all_features();
    let server = start(config.clone()).expect("start");
    let f = server.features().clone();
    drop(server);
    // Every feature is either on or reported as missing from this kernel, never silently off.
    for name in [
        "multishot-accept",
        "multishot-recv",
        "fixed-files",
        "taskrun",
        "send-zc",
    ] {
        match f.get(name) {
            Some(State::On(_)) | Some(State::Unsupported(_)) => {}
            other => panic!("{name}: {other:?} ({})", f.line()),
        }
    }
    assert_eq!(f.get("sqpoll"), Some(&State::Off));
    assert!(!f.kernel.is_empty());
    exercise(config);
}

#[test]
fn no_batching_serves_too() {
    exercise(Config {
        threads: 1,
        batch: false,
        multishot_recv: true,
        ..Config::default()
    });
}
