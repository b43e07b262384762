//! HTTP/1.1 over raw TCP: keep-alive, pipelining, HTTP/1.0, malformed and smuggling-prone
//! heads (each gets a 4xx JSON error, then the connection closes and the daemon keeps
//! serving), and the slow-client deadlines.

use crate::common::checks::id_of;
use crate::common::raw::{chunked, request, ReadError};
use crate::common::util::{files_under, poll, random_bytes};
use crate::common::{Client, Daemon, RawConn, Resp};
use serde_json::json;
use std::time::{Duration, Instant};

fn bearer(d: &Daemon) -> String {
    format!("Bearer {}", d.token())
}

/// The daemon still answers on a fresh connection and is still running.
#[track_caller]
fn assert_healthy(d: &mut Daemon) {
    d.assert_alive();
    let mut c = RawConn::connect(d.addr());
    c.send(&request("GET", "/healthz", &[], b""));
    let r = c.read_response();
    assert_eq!(
        r.status,
        200,
        "daemon unhealthy afterwards:\n{}",
        r.describe()
    );
}

#[test]
fn keep_alive_several_requests_on_one_connection() {
    let d = Daemon::start(&[]);
    let auth = bearer(&d);
    let mut conn = RawConn::connect(d.addr());
    conn.send(&request("GET", "/healthz", &[], b""));
    conn.read_response().expect(200);
    conn.send(&request(
        "POST",
        "/v1/objects?name=ka.txt",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        b"keep",
    ));
    let v = conn.read_response().expect_json(201);
    let id = id_of(&v);
    for _ in 0..3 {
        conn.send(&request(
            "GET",
            &format!("/v1/objects/{id}/content"),
            &[("Authorization", &auth)],
            b"",
        ));
        let r = conn.read_response().expect(200);
        assert_eq!(r.body, b"keep");
        assert!(
            !r.header("connection")
                .is_some_and(|c| c.eq_ignore_ascii_case("close")),
            "{}",
            r.describe()
        );
    }
    // An error response that is not a framing error keeps the connection too.
    conn.send(&request(
        "GET",
        "/v1/nope",
        &[("Authorization", &auth)],
        b"",
    ));
    conn.read_response().expect(404);
    conn.send(&request(
        "GET",
        "/v1/objects",
        &[("Authorization", &auth)],
        b"",
    ));
    conn.read_response().expect(200);
}

#[test]
fn pipelined_requests_answered_in_order() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let a = id_of(&c.upload("a.txt", None, Some("text/plain"), b"AAAA"));
    let b = id_of(&c.upload("b.txt", None, Some("text/plain"), b"BBBBBBBB"));
    let auth = bearer(&d);
    let h = [("Authorization", auth.as_str())];
    let mut bytes = vec![];
    bytes.extend(request("GET", &format!("/v1/objects/{a}"), &h, b""));
    bytes.extend(request(
        "POST",
        "/v1/objects?name=p.txt",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        b"posted",
    ));
    bytes.extend(request("GET", "/healthz", &[], b""));
    bytes.extend(request(
        "HEAD",
        &format!("/v1/objects/{a}/content"),
        &h,
        b"",
    ));
    let mut chunked_post = request(
        "POST",
        "/v1/objects?name=q.txt",
        &[("Authorization", &auth), ("Transfer-Encoding", "chunked")],
        b"",
    );
    chunked_post.extend(chunked(b"chunked body", 5));
    bytes.extend(chunked_post);
    bytes.extend(request("GET", &format!("/v1/objects/{b}/content"), &h, b""));
    bytes.extend(request("GET", "/v1/nope", &h, b""));
    bytes.extend(request("GET", &format!("/v1/objects/{a}/content"), &h, b""));

    let mut conn = RawConn::connect(d.addr());
    conn.send(&bytes);
    assert_eq!(conn.read_response().expect_json(200)["id"], a.as_str());
    assert_eq!(conn.read_response().expect_json(201)["name"], "p.txt");
    assert_eq!(conn.read_response().expect_json(200)["status"], "ok");
    let head = conn.read_head_response().expect(200);
    assert_eq!(head.header("content-length"), Some("4"));
    assert_eq!(conn.read_response().expect_json(201)["size"], 12);
    assert_eq!(conn.read_response().expect(200).body, b"BBBBBBBB");
    conn.read_response().expect(404);
    assert_eq!(conn.read_response().expect(200).body, b"AAAA");
    assert!(
        conn.pending().is_empty(),
        "extra bytes after the pipelined responses: {:?}",
        conn.pending()
    );
}

#[test]
fn http10_without_keep_alive_closes() {
    let d = Daemon::start(&[]);
    let mut conn = RawConn::connect(d.addr());
    conn.send(b"GET /healthz HTTP/1.0\r\n\r\n");
    let r = conn.read_response().expect(200);
    assert_eq!(r.json()["status"], "ok");
    conn.expect_closed(Duration::from_secs(3))
        .expect("HTTP/1.0 connection closed after the response");
}

#[test]
fn connection_close_is_honoured() {
    let d = Daemon::start(&[]);
    let mut conn = RawConn::connect(d.addr());
    conn.send(&request("GET", "/healthz", &[("Connection", "close")], b""));
    conn.read_response().expect(200);
    conn.expect_closed(Duration::from_secs(3))
        .expect("connection closed after `Connection: close`");
}

#[test]
fn request_split_into_tiny_writes() {
    let d = Daemon::start(&[]);
    let body = random_bytes(41, 3000);
    let bytes = request(
        "POST",
        "/v1/objects?name=tiny.bin",
        &[("Authorization", &bearer(&d))],
        &body,
    );
    let mut conn = RawConn::connect(d.addr());
    let head_len = bytes.len() - body.len();
    for (i, b) in bytes[..head_len].iter().enumerate() {
        conn.send(&[*b]);
        if i % 16 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for c in body.chunks(7) {
        conn.send(c);
    }
    let v = conn.read_response().expect_json(201);
    assert_eq!(v["size"], 3000);
    assert_eq!(Client::new(&d).content(&id_of(&v)).expect(200).body, body);
}

/// Sends `bytes` on a fresh connection and expects a JSON error with `status` (and
/// `code` when given), then a closed connection, then a healthy daemon.
#[track_caller]
fn assert_rejected(d: &mut Daemon, bytes: &[u8], status: u16, code: Option<&str>) -> Resp {
    let mut conn = RawConn::connect(d.addr());
    conn.timeout = Duration::from_secs(5);
    let _ = conn.try_send(bytes);
    let r = conn.try_read_response(false).unwrap_or_else(|e| {
        panic!(
            "no response to malformed request {:?}: {e}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        )
    });
    assert_eq!(
        r.status,
        status,
        "request {:?} should get {status}:\n{}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(300)]),
        r.describe()
    );
    match code {
        Some(code) => {
            r.clone().expect_error(status, code);
        }
        None => {
            r.expect_error_status(status);
        }
    }
    conn.expect_closed(Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("after a {status}: {e}"));
    assert_healthy(d);
    r
}

macro_rules! rejected {
    ($($name:ident: |$tok:ident| $bytes:expr => $status:expr, $code:expr;)*) => {$(
        #[test]
        fn $name() {
            let mut d = Daemon::start(&[]);
            let $tok = format!("Bearer {}", d.token());
            let bytes: Vec<u8> = $bytes;
            assert_rejected(&mut d, &bytes, $status, $code);
        }
    )*};
}

fn big_header() -> Vec<u8> {
    let mut v = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    v.extend(std::iter::repeat_n(b'a', 20 * 1024));
    v.extend_from_slice(b"\r\n\r\n");
    v
}

fn many_headers() -> Vec<u8> {
    let mut v = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..101 {
        v.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    v.extend_from_slice(b"\r\n");
    v
}

fn post(tok: &str, extra: &str, body: &str) -> Vec<u8> {
    format!("POST /v1/objects?name=s.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {tok}\r\n{extra}\r\n{body}").into_bytes()
}

rejected! {
    bad_request_line: |_t| b"GARBAGE\r\n\r\n".to_vec() => 400, None;
    request_line_without_version: |_t| b"GET /healthz\r\n\r\n".to_vec() => 400, None;
    nul_in_header_value: |_t| b"GET /healthz HTTP/1.1\r\nHost: a\0b\r\n\r\n".to_vec() => 400, None;
    nul_in_target: |_t| b"GET /heal\0thz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec() => 400, None;
    obs_fold: |_t| b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n".to_vec() => 400, None;
    space_before_colon: |_t| b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n".to_vec() => 400, None;
    content_length_and_transfer_encoding: |t| post(&t, "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n") => 400, None;
    two_different_content_lengths: |t| post(&t, "Content-Length: 5\r\nContent-Length: 6\r\n", "hello!") => 400, None;
    content_length_list_differs: |t| post(&t, "Content-Length: 5, 6\r\n", "hello!") => 400, None;
    negative_content_length: |t| post(&t, "Content-Length: -1\r\n", "") => 400, None;
    signed_content_length: |t| post(&t, "Content-Length: +5\r\n", "hello") => 400, None;
    bad_chunk_size: |t| post(&t, "Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n") => 400, None;
    chunk_without_crlf: |t| post(&t, "Transfer-Encoding: chunked\r\n", "5\r\nhelloXX0\r\n\r\n") => 400, None;
    huge_head_431: |_t| big_header() => 431, Some("head_too_large");
    too_many_headers_431: |_t| many_headers() => 431, Some("too_many_headers");
    http_2_version_505: |_t| b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n".to_vec() => 505, None;
}

#[test]
fn max_head_and_max_headers_flags() {
    let mut d = Daemon::start(&["--max-head", "2KiB", "--max-headers", "10"]);
    let mut ok = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ".to_vec();
    ok.extend(std::iter::repeat_n(b'a', 1500));
    ok.extend_from_slice(b"\r\n\r\n");
    let mut conn = RawConn::connect(d.addr());
    conn.send(&ok);
    conn.read_response().expect(200);

    let mut big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 3000));
    big.extend_from_slice(b"\r\n\r\n");
    assert_rejected(&mut d, &big, 431, Some("head_too_large"));

    let mut many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..11 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_rejected(&mut d, &many, 431, Some("too_many_headers"));
}

#[test]
fn smuggling_attempts_store_nothing() {
    let mut d = Daemon::start(&[]);
    let t = bearer(&d);
    // The classic CL.TE desync: a front end using CL would pass the "GPOST" on.
    let smuggle = post(
        &t,
        "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
        "0\r\n\r\nGPOST / HTTP/1.1\r\n\r\n",
    );
    assert_rejected(&mut d, &smuggle, 400, None);
    let list = Client::new(&d).get("/v1/objects").expect_json(200);
    assert_eq!(list["objects"], json!([]), "{list}");
}

#[test]
fn header_deadline_covers_the_whole_head() {
    // A slowloris client sends one byte of head every 200 ms; with --header-timeout 1s
    // the daemon must give up on it (408 or a plain close) within a few seconds.
    let d = Daemon::start(&["--header-timeout", "1s"]);
    let mut conn = RawConn::connect(d.addr());
    let mut writer = conn.stream.try_clone().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let t = std::thread::spawn(move || {
        use std::io::Write;
        let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        if writer.write_all(head).is_err() {
            return;
        }
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            if writer.write_all(b"a").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let t0 = Instant::now();
    conn.timeout = Duration::from_secs(6);
    let outcome = conn.try_read_response(false);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    t.join().unwrap();
    match outcome {
        Ok(r) => {
            r.expect_error(408, "request_timeout");
        }
        Err(ReadError::Eof(b)) | Err(ReadError::Io(_, b)) if b.is_empty() => {}
        Err(e) => panic!("slow head not cut off: {e} after {:?}", t0.elapsed()),
    }
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
}

#[test]
fn body_deadline_applies_per_read() {
    let mut d = Daemon::start(&["--body-timeout", "1s"]);
    let mut conn = RawConn::connect(d.addr());
    conn.send(&request(
        "POST",
        "/v1/objects?name=stall.bin",
        &[("Authorization", &bearer(&d)), ("Content-Length", "1000")],
        b"",
    ));
    conn.send(b"only ten b");
    let t0 = Instant::now();
    conn.timeout = Duration::from_secs(6);
    match conn.try_read_response(false) {
        Ok(r) => {
            r.expect_error(408, "request_timeout");
        }
        Err(ReadError::Eof(b)) | Err(ReadError::Io(_, b)) if b.is_empty() => {}
        Err(e) => panic!("stalled body not cut off: {e}"),
    }
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    assert_healthy(&mut d);
    assert_eq!(
        Client::new(&d).get("/v1/objects").expect_json(200)["objects"],
        json!([])
    );
    let clean = poll(Duration::from_secs(3), || {
        files_under(&d.data_dir().join("tmp"))
            .is_empty()
            .then_some(())
    });
    assert!(
        clean.is_some(),
        "tmp/ holds {:?} after a timed-out upload",
        files_under(&d.data_dir().join("tmp"))
    );
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let d = Daemon::start(&["--idle-timeout", "1s"]);
    let mut conn = RawConn::connect(d.addr());
    conn.send(&request("GET", "/healthz", &[], b""));
    conn.read_response().expect(200);
    conn.expect_closed(Duration::from_secs(4))
        .expect("idle connection closed after --idle-timeout");
}

#[test]
fn abrupt_disconnects_do_not_hurt() {
    let mut d = Daemon::start(&[]);
    let auth = bearer(&d);
    for i in 0..40 {
        let mut conn = RawConn::connect(d.addr());
        let full = request(
            "POST",
            "/v1/objects?name=abrupt.bin",
            &[("Authorization", &auth), ("Content-Length", "100000")],
            &random_bytes(i, 5000),
        );
        let cut = (i as usize * 131) % full.len();
        let _ = conn.try_send(&full[..cut]);
        if i % 2 == 0 {
            // RST instead of FIN.
            let _ = socket_linger_zero(&conn);
        }
    }
    assert_healthy(&mut d);
    assert_eq!(
        Client::new(&d).get("/v1/objects").expect_json(200)["objects"],
        json!([])
    );
}

/// SO_LINGER 0, so dropping the socket sends RST.
fn socket_linger_zero(conn: &RawConn) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a valid, open socket fd with a correctly sized linger struct.
    let rc = unsafe {
        libc::setsockopt(
            conn.stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
