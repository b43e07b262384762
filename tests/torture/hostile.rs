//! Hostile requests on raw sockets: a table of malformed and malicious requests, each
//! with the status it must get (README "Supported HTTP", daemon-http.md) and whether
//! the connection must close (framing errors), may stay open, or must stay usable.
//!
//! The catalogue runs three times against one daemon: each request written whole,
//! each dribbled in random small writes (the incremental parsers must agree), and
//! whole again; then the daemon must be healthy, with no descriptor leaked, `tmp/`
//! empty, nothing stored by a rejected request, its memory where it started (+20 MiB),
//! and `ringbox check` passing. No response may ever contain the admin token.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::{Client, Daemon};
use crate::support::{
    assert_consistent, assert_healthz, bearer, content, seed, serial, sha256_hex, wait_tmp_empty,
    Conn, ReadErr, Response, Rng,
};

/// What must happen to the connection after the response.
#[derive(Clone, Copy, Debug, PartialEq)]
enum After {
    /// Closed by the daemon, with nothing sent after the response (a framing error, or
    /// a refused body: anything after it must not be read as a request).
    Closes,
    /// Still usable: a `GET /healthz` on it is answered 200.
    KeepsAlive,
    /// Either is fine.
    Either,
}

/// `0` in `statuses`: the daemon may also close without answering.
const CLOSED: u16 = 0;

#[derive(Clone, Debug)]
struct Case {
    name: String,
    bytes: Vec<u8>,
    statuses: Vec<u16>,
    after: After,
    /// The request is a HEAD (the response has no body).
    head: bool,
    /// Half-close after sending (the daemon sees EOF after the bytes).
    eof: bool,
    /// Upper bound on the response body (amplification checks).
    max_body: Option<usize>,
    /// The first thing the daemon sends must be the final response (no
    /// `100 Continue` for a refused upload).
    no_interim: bool,
    /// Too big to dribble byte by byte in reasonable time.
    big: bool,
    /// Statuses of the pipelined responses that must follow the first one.
    then: Vec<u16>,
}

fn case(name: &str, bytes: impl Into<Vec<u8>>, statuses: &[u16], after: After) -> Case {
    let bytes = bytes.into();
    Case {
        name: name.to_string(),
        big: bytes.len() > 24 * 1024,
        bytes,
        statuses: statuses.to_vec(),
        after,
        head: false,
        eof: false,
        max_body: None,
        no_interim: false,
        then: vec![],
    }
}

impl Case {
    fn eof(mut self) -> Case {
        self.eof = true;
        self
    }
    fn max_body(mut self, n: usize) -> Case {
        self.max_body = Some(n);
        self
    }
    fn then(mut self, statuses: &[u16]) -> Case {
        self.then = statuses.to_vec();
        self
    }
    fn no_interim(mut self) -> Case {
        self.no_interim = true;
        self
    }
}

/// Objects the catalogue needs.
struct Fixture {
    auth: String,
    /// 10 KiB (memory-cached) and 1 MiB (sendfile) stored objects.
    small: (String, usize),
    large: (String, usize),
    pending: String,
    text: String,
}

use After::{Closes, Either, KeepsAlive};

fn req(method: &str, target: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut s = format!("{method} {target} HTTP/1.1\r\nHost: ringbox.test\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    let mut v = s.into_bytes();
    v.extend_from_slice(body);
    v
}

fn catalogue(f: &Fixture) -> Vec<Case> {
    let a = format!("Authorization: {}", f.auth);
    let a = a.as_str();
    let post = |extra: &[&str], body: &[u8]| {
        let mut h = vec![a];
        h.extend_from_slice(extra);
        req("POST", "/v1/objects?name=evil.bin", &h, body)
    };
    let get_small = |extra: &[&str]| {
        let mut h = vec![a];
        h.extend_from_slice(extra);
        req(
            "GET",
            &format!("/v1/objects/{}/content", f.small.0),
            &h,
            b"",
        )
    };
    let get_large = |extra: &[&str]| {
        let mut h = vec![a];
        h.extend_from_slice(extra);
        req(
            "GET",
            &format!("/v1/objects/{}/content", f.large.0),
            &h,
            b"",
        )
    };
    let name_upload = |query: &str| {
        req(
            "POST",
            &format!("/v1/objects?{query}"),
            &[a, "Content-Length: 1"],
            b"x",
        )
    };
    let mut c = vec![];

    // --- Request smuggling and body framing -------------------------------------
    c.push(case(
        "CL+TE",
        post(
            &["Content-Length: 6", "Transfer-Encoding: chunked"],
            b"0\r\n\r\nGPOST / HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        &[400],
        Closes,
    ));
    c.push(case(
        "TE+CL",
        post(
            &["Transfer-Encoding: chunked", "Content-Length: 6"],
            b"0\r\n\r\nGPOST / HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        &[400],
        Closes,
    ));
    c.push(case(
        "two different Content-Length",
        post(&["Content-Length: 5", "Content-Length: 6"], b"hello!"),
        &[400],
        Closes,
    ));
    c.push(case(
        "Content-Length list differs",
        post(&["Content-Length: 5, 6"], b"hello!"),
        &[400],
        Closes,
    ));
    c.push(case(
        "TE chunked, identity",
        post(
            &["Transfer-Encoding: chunked, identity"],
            b"5\r\nhello\r\n0\r\n\r\n",
        ),
        &[400],
        Closes,
    ));
    c.push(case(
        "TE gzip, chunked",
        post(
            &["Transfer-Encoding: gzip, chunked"],
            b"5\r\nhello\r\n0\r\n\r\n",
        ),
        &[400],
        Closes,
    ));
    c.push(case(
        "TE identity",
        post(&["Transfer-Encoding: identity"], b"hello"),
        &[400, 501],
        Closes,
    ));
    c.push(case(
        "TE chunked twice",
        post(
            &["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
            b"0\r\n\r\n",
        ),
        &[400],
        Closes,
    ));
    c.push(case(
        "TE xchunked",
        post(&["Transfer-Encoding: xchunked"], b"0\r\n\r\n"),
        &[400, 501],
        Closes,
    ));
    c.push(case(
        "TE in HTTP/1.0",
        format!("POST /v1/objects?name=evil.bin HTTP/1.0\r\nHost: x\r\n{a}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        &[400],
        Closes,
    ));
    c.push(case(
        "TE obs-fold",
        post(&["Transfer-Encoding:", " chunked"], b"0\r\n\r\n"),
        &[400],
        Closes,
    ));
    c.push(case(
        "TE space before colon",
        post(
            &["Transfer-Encoding : chunked", "Content-Length: 5"],
            b"hello",
        ),
        &[400],
        Closes,
    ));
    c.push(case(
        "negative Content-Length",
        post(&["Content-Length: -1"], b""),
        &[400],
        Closes,
    ));
    c.push(case(
        "signed Content-Length",
        post(&["Content-Length: +5"], b"hello"),
        &[400],
        Closes,
    ));
    c.push(case(
        "hex Content-Length",
        post(&["Content-Length: 0x5"], b"hello"),
        &[400],
        Closes,
    ));
    c.push(case(
        "overflowing Content-Length",
        post(&["Content-Length: 184467440737095516160"], b"hello"),
        &[400, 413],
        Closes,
    ));
    c.push(case(
        "Content-Length with inner space",
        post(&["Content-Length: 5 5"], b"hello"),
        &[400],
        Closes,
    ));
    c.push(case(
        "empty Content-Length",
        post(&["Content-Length:"], b"hello"),
        &[400],
        Closes,
    ));

    // --- Line endings, NUL, tokens --------------------------------------------------
    c.push(case(
        "bare LF line ends",
        b"GET /healthz HTTP/1.1\nHost: x\n\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "bare LF in one header",
        b"GET /healthz HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "bare CR in a value",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "NUL in a value",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "NUL in the target",
        b"GET /heal\0thz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "NUL in the method",
        b"G\0T /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "obs-fold",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "whitespace before the first header",
        b"GET /healthz HTTP/1.1\r\n Host: x\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "space before colon",
        b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "bad header name",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX(y): z\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "empty header name",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n: z\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "header without colon",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "bad method token",
        b"G@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "lower-case method",
        b"get /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        &[400, 404, 405, 501],
        Either,
    ));
    c.push(case(
        "control byte in the target",
        b"GET /heal\x01thz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "DEL in the target",
        b"GET /heal\x7fthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "space in the target",
        b"GET /heal thz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "invalid UTF-8 in the target",
        b"GET /v1/objects/\xc3\x28\xff HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "obs-text in a value",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: \xff\xfe\r\n\r\n".to_vec(),
        &[200, 400],
        Either,
    ));
    c.push(case(
        "binary garbage",
        Rng::new(99).bytes(1024),
        &[400, CLOSED],
        Closes,
    ));
    c.push(case("TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03abcdefghijklmnopqrstuvwxyz012345\x00\x00\x02\x13\x01\x01\x00".to_vec(), &[400, CLOSED], Closes).eof());

    // --- Targets and versions -----------------------------------------------------------
    c.push(case(
        "absolute-form",
        b"GET http://ringbox.test/healthz HTTP/1.1\r\nHost: ringbox.test\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "authority-form",
        b"CONNECT ringbox.test:443 HTTP/1.1\r\nHost: ringbox.test:443\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "asterisk with GET",
        b"GET * HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "OPTIONS *",
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        &[200, 204, 404, 405],
        Either,
    ));
    c.push(case(
        "fragment in the target",
        b"GET /healthz#frag HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "empty target",
        b"GET  HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "HTTP/2 preface",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        &[505],
        Closes,
    ));
    c.push(case(
        "HTTP/1.2",
        b"GET /healthz HTTP/1.2\r\nHost: x\r\n\r\n".to_vec(),
        &[505],
        Closes,
    ));
    c.push(case(
        "HTTP/3.0",
        b"GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n".to_vec(),
        &[505],
        Closes,
    ));
    c.push(case(
        "HTTP/0.9 request line",
        b"GET /healthz\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "HTTP/1.10",
        b"GET /healthz HTTP/1.10\r\nHost: x\r\n\r\n".to_vec(),
        &[400, 505],
        Closes,
    ));
    c.push(case(
        "no Host in HTTP/1.1",
        b"GET /healthz HTTP/1.1\r\nX-A: b\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "two Hosts",
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(),
        &[400],
        Closes,
    ));
    c.push(case(
        "HTTP/1.0 without keep-alive",
        b"GET /healthz HTTP/1.0\r\n\r\n".to_vec(),
        &[200],
        Closes,
    ));
    c.push(case(
        "Connection: close",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        &[200],
        Closes,
    ));
    c.push(case(
        "empty lines before the request",
        b"\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        &[200, 400],
        Either,
    ));
    c.push(case("upgrade to websocket", b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".to_vec(), &[200, 400, 404, 426], Either));

    // --- Traversal in paths and names -------------------------------------------------
    for (label, path) in [
        ("dot-dot id", "/v1/objects/..%2F..%2Fadmin.token"),
        ("raw dot-dot path", "/v1/objects/../../admin.token"),
        ("encoded dot-dot path", "/%2e%2e/%2e%2e/admin.token"),
        ("dot-dot content", "/v1/objects/%2e%2e/content"),
        ("dot-dot blob", "/v1/blobs/..%2f..%2fadmin.token"),
        ("encoded slash blob", "/v1/blobs/%2Fetc%2Fpasswd"),
    ] {
        c.push(case(
            label,
            req("GET", path, &[a], b""),
            &[400, 404],
            Either,
        ));
    }
    for (label, query) in [
        ("name ..%2Fetc%2Fpasswd", "name=..%2Fetc%2Fpasswd"),
        ("name ..", "name=.."),
        ("name %2e%2e", "name=%2e%2e"),
        ("name a/../b", "name=a%2F..%2Fb"),
        ("name a\\..\\b", "name=a%5C..%5Cb"),
        ("name with a leading slash", "name=%2Fetc%2Fpasswd"),
        ("name with NUL", "name=a%00b"),
        ("name with newline", "name=a%0Ab"),
        ("name invalid UTF-8", "name=%FF%FE"),
        ("name broken escape", "name=%G1"),
        ("name 321 bytes", &format!("name={}", "n".repeat(321))),
        ("namespace ..", "name=ok&namespace=.."),
        ("namespace with slash", "name=ok&namespace=a%2Fb"),
        (
            "namespace 65 chars",
            &format!("name=ok&namespace={}", "n".repeat(65)),
        ),
    ] {
        c.push(case(label, name_upload(query), &[400], Either));
    }

    // --- Bodies -------------------------------------------------------------------------
    // A GET with a body that is itself a request: it must be skipped as a body, never
    // run (the follow-up on the same connection gets the /healthz answer).
    let inner = req("DELETE", &format!("/v1/objects/{}", f.small.0), &[a], b"");
    c.push(case(
        "body on GET hiding a DELETE",
        req(
            "GET",
            "/healthz",
            &[&format!("Content-Length: {}", inner.len())],
            &inner,
        ),
        &[200],
        KeepsAlive,
    ));
    c.push(case(
        "413 before the body (head only)",
        post(&["Content-Length: 2097152"], b""),
        &[413],
        Closes,
    ));
    c.push(case(
        "413 for a huge Content-Length",
        post(&["Content-Length: 999999999999999"], b""),
        &[413],
        Closes,
    ));
    c.push(
        case(
            "413 with Expect: 100-continue",
            post(&["Content-Length: 2097152", "Expect: 100-continue"], b""),
            &[413],
            Closes,
        )
        .no_interim(),
    );
    c.push(
        case(
            "401 with Expect: 100-continue",
            req(
                "POST",
                "/v1/objects?name=evil.bin",
                &["Content-Length: 10", "Expect: 100-continue"],
                b"",
            ),
            &[401],
            Closes,
        )
        .no_interim(),
    );
    {
        let mut body = b"180000\r\n".to_vec();
        body.extend(std::iter::repeat_n(b'z', 0x180000));
        body.extend_from_slice(b"\r\n0\r\n\r\n");
        c.push(case(
            "chunked body over max-body",
            post(&["Transfer-Encoding: chunked"], &body),
            &[413],
            Closes,
        ));
    }
    c.push(case(
        "chunk size zz",
        post(&["Transfer-Encoding: chunked"], b"zz\r\nhello\r\n0\r\n\r\n"),
        &[400],
        Closes,
    ));
    c.push(case(
        "chunk size -1",
        post(&["Transfer-Encoding: chunked"], b"-1\r\nhello\r\n0\r\n\r\n"),
        &[400],
        Closes,
    ));
    c.push(case(
        "chunk size 0x5",
        post(
            &["Transfer-Encoding: chunked"],
            b"0x5\r\nhello\r\n0\r\n\r\n",
        ),
        &[400],
        Closes,
    ));
    c.push(case(
        "chunk size overflow",
        post(
            &["Transfer-Encoding: chunked"],
            b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        ),
        &[400, 413],
        Closes,
    ));
    c.push(case(
        "chunk size with a space",
        post(&["Transfer-Encoding: chunked"], b" 5\r\nhello\r\n0\r\n\r\n"),
        &[400],
        Closes,
    ));
    c.push(case(
        "chunk line with bare LF",
        post(&["Transfer-Encoding: chunked"], b"5\nhello\r\n0\r\n\r\n"),
        &[400],
        Closes,
    ));
    c.push(case(
        "chunk data without CRLF",
        post(&["Transfer-Encoding: chunked"], b"5\r\nhelloXX0\r\n\r\n"),
        &[400],
        Closes,
    ));
    {
        let ext = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(2048));
        c.push(case(
            "chunk extension over 1 KiB",
            post(&["Transfer-Encoding: chunked"], ext.as_bytes()),
            &[400],
            Closes,
        ));
        let mut trailer = b"5\r\nhello\r\n0\r\n".to_vec();
        for i in 0..200 {
            trailer.extend_from_slice(format!("X-T{i}: {}\r\n", "t".repeat(60)).as_bytes());
        }
        trailer.extend_from_slice(b"\r\n");
        c.push(case(
            "trailer over 8 KiB",
            post(&["Transfer-Encoding: chunked"], &trailer),
            &[400, 413, 431],
            Closes,
        ));
        c.push(case(
            "trailer without colon",
            post(
                &["Transfer-Encoding: chunked"],
                b"5\r\nhello\r\n0\r\nbroken trailer\r\n\r\n",
            ),
            &[400],
            Closes,
        ));
    }
    c.push(
        case(
            "chunked body cut by EOF",
            post(&["Transfer-Encoding: chunked"], b"5\r\nhel"),
            &[400, CLOSED],
            Closes,
        )
        .eof(),
    );
    c.push(
        case(
            "Content-Length body cut by EOF",
            post(&["Content-Length: 100"], b"hello"),
            &[400, CLOSED],
            Closes,
        )
        .eof(),
    );

    // --- Multipart ------------------------------------------------------------------------
    let mp = |body: &[u8], boundary: &str| {
        req(
            "POST",
            "/v1/objects",
            &[
                a,
                &format!("Content-Type: multipart/form-data; boundary={boundary}"),
                &format!("Content-Length: {}", body.len()),
            ],
            body,
        )
    };
    c.push(case(
        "truncated multipart",
        mp(b"--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"evil-mp.bin\"\r\n\r\nsome bytes without an end", "BB"),
        &[400],
        Either,
    ));
    // Errors after a complete file part: its temp file must go too.
    let file_part = b"--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"evil-mp.bin\"\r\n\r\ncomplete file\r\n";
    let then = |rest: &[u8]| {
        let mut b = file_part.to_vec();
        b.extend_from_slice(rest);
        b
    };
    c.push(case(
        "multipart cut after a file part",
        mp(&then(b"--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"evil-2.bin\"\r\n\r\nno end"), "BB"),
        &[400],
        Either,
    ));
    c.push(case(
        "multipart bad metadata after a file",
        mp(&then(b"--BB\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{not json\r\n--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"evil-3.bin\"\r\n\r\nx\r\n--BB--\r\n"), "BB"),
        &[400],
        Either,
    ));
    c.push(case(
        "multipart bad namespace after a file",
        mp(&then(b"--BB\r\nContent-Disposition: form-data; name=\"namespace\"\r\n\r\n../x\r\n--BB--\r\n"), "BB"),
        &[400],
        Either,
    ));
    c.push(case(
        "multipart second file named ..",
        mp(&then(b"--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../evil\"\r\n\r\nx\r\n--BB--\r\n"), "BB"),
        &[400],
        Either,
    ));
    c.push(case(
        "multipart name field .. with one file",
        mp(&then(b"--BB\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n../evil\r\n--BB--\r\n"), "BB"),
        &[400],
        Either,
    ));
    {
        let body = then(
            b"--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"y\"\r\n\r\ncut",
        );
        c.push(case(
            "PUT multipart cut after the first file",
            req(
                "PUT",
                &format!("/v1/objects/{}/content", f.pending),
                &[
                    a,
                    "Content-Type: multipart/form-data; boundary=BB",
                    &format!("Content-Length: {}", body.len()),
                ],
                &body,
            ),
            &[400],
            Either,
        ));
    }
    c.push(case(
        "JSON upload with ?name=..",
        req(
            "POST",
            "/v1/objects?name=..%2Fevil.json",
            &[a, "Content-Type: application/json", "Content-Length: 2"],
            b"{}",
        ),
        &[400],
        Either,
    ));
    c.push(case(
        "PUT to a text object",
        req(
            "PUT",
            &format!("/v1/objects/{}/content", f.text),
            &[a, "Content-Length: 5"],
            b"hello",
        ),
        &[409],
        Either,
    ));
    c.push(case(
        "PUT to an unknown object",
        req(
            "PUT",
            "/v1/objects/01a20000-0000-7000-8000-000000000000/content",
            &[a, "Content-Length: 5"],
            b"hello",
        ),
        &[404],
        Either,
    ));
    c.push(case(
        "multipart without boundary",
        req(
            "POST",
            "/v1/objects",
            &[a, "Content-Type: multipart/form-data", "Content-Length: 4"],
            b"abcd",
        ),
        &[400, 415],
        Either,
    ));
    {
        let mut many = Vec::new();
        for i in 0..1001 {
            many.extend_from_slice(
                format!("--BB\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv\r\n")
                    .as_bytes(),
            );
        }
        many.extend_from_slice(b"--BB--\r\n");
        c.push(case(
            "1001 multipart parts",
            mp(&many, "BB"),
            &[400, 413],
            Either,
        ));
        let big_head = format!(
            "--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"evil-mp.bin\"\r\nX-Pad: {}\r\n\r\ndata\r\n--BB--\r\n",
            "p".repeat(9000)
        );
        c.push(case(
            "multipart part head over 8 KiB",
            mp(big_head.as_bytes(), "BB"),
            &[400, 431],
            Either,
        ));
        let big_field = format!(
            "--BB\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{}\r\n--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"evil-mp.bin\"\r\n\r\ndata\r\n--BB--\r\n",
            "m".repeat(70 * 1024)
        );
        c.push(case(
            "multipart field over 64 KiB",
            mp(big_field.as_bytes(), "BB"),
            &[400, 413],
            Either,
        ));
    }
    {
        let deep = format!(
            "{{\"type\":\"text\",\"content\":\"x\",\"metadata\":{}{}}}",
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        c.push(case(
            "JSON nested 50,000 deep",
            req(
                "POST",
                "/v1/objects",
                &[
                    a,
                    "Content-Type: application/json",
                    &format!("Content-Length: {}", deep.len()),
                ],
                deep.as_bytes(),
            ),
            &[400],
            Either,
        ));
        let bad = b"{\"type\":\"text\",\"content\":";
        c.push(case(
            "truncated JSON",
            req(
                "POST",
                "/v1/objects",
                &[
                    a,
                    "Content-Type: application/json",
                    &format!("Content-Length: {}", bad.len()),
                ],
                bad,
            ),
            &[400],
            Either,
        ));
        let patch = b"{\"name\": 5, \"tags\": \"x\"}";
        c.push(case(
            "PATCH with wrong types",
            req(
                "PATCH",
                &format!("/v1/objects/{}", f.small.0),
                &[
                    a,
                    "Content-Type: application/json",
                    &format!("Content-Length: {}", patch.len()),
                ],
                patch,
            ),
            &[400],
            Either,
        ));
        c.push(
            case(
                "PUT to a pending object cut by EOF",
                req(
                    "PUT",
                    &format!("/v1/objects/{}/content", f.pending),
                    &[a, "Content-Length: 1000"],
                    b"partial",
                ),
                &[400, CLOSED],
                Closes,
            )
            .eof(),
        );
    }

    // --- Ranges ---------------------------------------------------------------------------
    let (small_len, large_len) = (f.small.1, f.large.1);
    let bound = |len: usize| len + 16 * 256 + 1024;
    {
        let mut r = String::from("Range: bytes=");
        let mut i = 0;
        while r.len() < 14_000 {
            let at = (i * 7) % small_len;
            r.push_str(&format!("{at}-{at},"));
            i += 1;
        }
        r.pop();
        c.push(
            case(
                "about 1,500 ranges",
                get_small(&[&r]),
                &[200, 206],
                KeepsAlive,
            )
            .max_body(bound(small_len)),
        );
        let mut r = String::from("Range: bytes=");
        let mut i = 0;
        while r.len() < 14_000 {
            r.push_str(&format!(
                "{}-{},",
                (i * 613) % large_len,
                (i * 613) % large_len + 10
            ));
            i += 1;
        }
        r.pop();
        c.push(
            case(
                "about 1,000 ranges on a large blob",
                get_large(&[&r]),
                &[200, 206],
                KeepsAlive,
            )
            .max_body(bound(large_len)),
        );
        let sixteen = format!("Range: bytes={}", vec!["0-"; 16].join(","));
        c.push(
            case(
                "16 overlapping whole ranges",
                get_large(&[&sixteen]),
                &[200, 206],
                KeepsAlive,
            )
            .max_body(bound(large_len)),
        );
        let suffixes = format!("Range: bytes={}", vec!["-1000000"; 16].join(","));
        c.push(
            case(
                "16 overlapping suffix ranges",
                get_large(&[&suffixes]),
                &[200, 206],
                KeepsAlive,
            )
            .max_body(bound(large_len)),
        );
        let ones: Vec<String> = (0..16)
            .map(|i| format!("{}-{}", i * 100, i * 100))
            .collect();
        c.push(
            case(
                "16 one-byte ranges",
                get_small(&[&format!("Range: bytes={}", ones.join(","))]),
                &[206],
                KeepsAlive,
            )
            .max_body(16 * 256),
        );
        let huge = format!("Range: bytes={}", "0-0,".repeat(5000));
        c.push(case(
            "Range header over the head limit",
            get_small(&[&huge]),
            &[431],
            Closes,
        ));
        c.push(case(
            "overflowing range",
            get_small(&["Range: bytes=99999999999999999999999-"]),
            &[200, 416],
            KeepsAlive,
        ));
        c.push(case(
            "range bytes=-0",
            get_small(&["Range: bytes=-0"]),
            &[416],
            KeepsAlive,
        ));
        c.push(
            case(
                "range unit items",
                get_small(&["Range: items=0-1"]),
                &[200],
                KeepsAlive,
            )
            .max_body(small_len),
        );
        c.push(case(
            "inverted range",
            get_small(&["Range: bytes=5-1"]),
            &[200, 416],
            KeepsAlive,
        ));
    }

    // --- Limits ---------------------------------------------------------------------------
    c.push(case(
        "20 KiB request line",
        format!(
            "GET /healthz?{} HTTP/1.1\r\nHost: x\r\n\r\n",
            "q".repeat(20 * 1024)
        ),
        &[431, 414],
        Closes,
    ));
    c.push(case(
        "20 KiB header",
        format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "b".repeat(20 * 1024)
        ),
        &[431],
        Closes,
    ));
    {
        let mut h = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
        for i in 0..100 {
            h.push_str(&format!("X-{i}: v\r\n"));
        }
        h.push_str("\r\n");
        c.push(case("101 header fields", h, &[431], Closes));
        let mut h = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
        for i in 0..99 {
            h.push_str(&format!("X-{i}: v\r\n"));
        }
        h.push_str("\r\n");
        c.push(case("exactly 100 header fields", h, &[200], KeepsAlive));
        let mut h = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
        for i in 0..5000 {
            h.push_str(&format!("X{i}:\r\n"));
        }
        h.push_str("\r\n");
        c.push(case("5,000 empty header fields", h, &[431], Closes));
    }
    c.push(case(
        "15 KiB bearer token",
        req(
            "GET",
            "/v1/objects",
            &[&format!("Authorization: Bearer {}", "t".repeat(15 * 1024))],
            b"",
        ),
        &[401],
        Either,
    ));
    c.push(case(
        "Basic credentials",
        req(
            "GET",
            "/v1/objects",
            &["Authorization: Basic YWRtaW46YWRtaW4="],
            b"",
        ),
        &[401],
        Either,
    ));
    c.push(case(
        "no credentials",
        req("DELETE", &format!("/v1/objects/{}", f.small.0), &[], b""),
        &[401],
        Either,
    ));

    // --- Pipelining across an error -----------------------------------------------------
    let mut pipe = req("GET", "/healthz", &[], b"");
    pipe.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n");
    pipe.extend_from_slice(&req(
        "DELETE",
        &format!("/v1/objects/{}", f.small.0),
        &[a],
        b"",
    ));
    // The DELETE after the bad request must never run (checked at the end).
    c.push(case("pipelined good, bad, DELETE", pipe, &[200], Closes).then(&[400]));
    c
}

/// Runs one case; returns a description of a failure.
fn run_case(
    addr: SocketAddr,
    token: &str,
    cs: &Case,
    dribble: Option<&mut Rng>,
) -> Result<(), String> {
    let mut conn = Conn::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let mut writer = None;
    match dribble {
        Some(rng) if !cs.big => {
            let mut rest = &cs.bytes[..];
            while !rest.is_empty() {
                let n = (rng.range(1, 9) as usize).min(rest.len());
                if conn.send(&rest[..n]).is_err() {
                    break;
                }
                rest = &rest[n..];
            }
        }
        _ => {
            // The daemon may answer and close before reading everything: a writer
            // thread keeps sending while this one reads.
            let mut w = conn.stream.try_clone().unwrap();
            let bytes = cs.bytes.clone();
            writer = Some(std::thread::spawn(move || {
                use std::io::Write;
                let _ = w.write_all(&bytes);
            }));
        }
    }
    let result = check_answer(&mut conn, token, cs, &mut writer);
    let _ = conn.stream.shutdown(std::net::Shutdown::Both);
    if let Some(w) = writer {
        let _ = w.join();
    }
    result
}

fn check_answer(
    conn: &mut Conn,
    token: &str,
    cs: &Case,
    writer: &mut Option<std::thread::JoinHandle<()>>,
) -> Result<(), String> {
    if cs.eof {
        if let Some(w) = writer.take() {
            let _ = w.join();
        }
        conn.shutdown_write();
    }
    let first = conn.read_response(cs.head, Duration::from_secs(8));
    let resp: Response = match first {
        Ok(r) if r.status < 200 && cs.no_interim => {
            return Err(format!(
                "sent an interim {} before refusing:\n{}",
                r.status,
                r.describe()
            ))
        }
        Ok(r) if r.status < 200 => conn
            .read_final(cs.head, Duration::from_secs(8))
            .map_err(|e| format!("no final response after {}: {e}", r.status))?,
        Ok(r) => r,
        Err(e) if e.is_clean_close() && cs.statuses.contains(&CLOSED) => return Ok(()),
        Err(ReadErr::Timeout(b)) => {
            return Err(format!(
                "no response within 8 s (the daemon waits for something?) after {} bytes",
                b.len()
            ))
        }
        Err(e) => return Err(format!("no response: {e}")),
    };
    if !cs.statuses.contains(&resp.status) {
        return Err(format!(
            "expected {:?}, got:\n{}",
            cs.statuses,
            resp.describe()
        ));
    }
    if resp.status >= 400 {
        resp.check_json_error()?;
    }
    if !token.is_empty() && String::from_utf8_lossy(&resp.body).contains(token) {
        return Err("the response contains the admin token".into());
    }
    if let Some(max) = cs.max_body {
        if resp.body.len() > max {
            return Err(format!(
                "response body of {} bytes exceeds the bound {max}",
                resp.body.len()
            ));
        }
    }
    for want in &cs.then {
        let r = conn
            .read_final(false, Duration::from_secs(5))
            .map_err(|e| format!("pipelined response {want} missing: {e}"))?;
        if r.status != *want {
            return Err(format!(
                "pipelined response: expected {want}, got:\n{}",
                r.describe()
            ));
        }
    }
    match cs.after {
        Closes => match conn.read_to_close(Duration::from_secs(5)) {
            Ok(rest) if rest.is_empty() => {}
            Ok(rest) => {
                return Err(format!(
                    "after the {} the daemon sent more: {:?}",
                    resp.status,
                    String::from_utf8_lossy(&rest[..rest.len().min(300)])
                ))
            }
            Err(_) => {
                return Err(format!(
                    "connection still open 5 s after the {}",
                    resp.status
                ))
            }
        },
        KeepsAlive => {
            if resp.closes() {
                return Err(format!(
                    "the {} closed a connection that should stay usable",
                    resp.status
                ));
            }
            if let Some(w) = writer.take() {
                let _ = w.join();
            }
            conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .map_err(|e| format!("follow-up send: {e}"))?;
            let r = conn
                .read_final(false, Duration::from_secs(5))
                .map_err(|e| format!("follow-up GET /healthz: {e}"))?;
            if r.status != 200 || !String::from_utf8_lossy(&r.body).contains("\"ok\"") {
                return Err(format!("follow-up GET /healthz got:\n{}", r.describe()));
            }
        }
        Either => {}
    }
    Ok(())
}

/// A rejected request must not leave its temp file in `tmp/` (until the next start);
/// notes it (once per case) as a failure and removes the files, so later cases are
/// judged alone.
fn note_tmp_leftovers(data: &std::path::Path, case: &str, failures: &mut Vec<String>) {
    let line = format!("{case}: leaves its temp file in tmp/ (still there 1 s after the answer)");
    let known = failures.contains(&line);
    let wait = if known {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    };
    if let Err(left) = wait_tmp_empty(data, wait) {
        if !known {
            failures.push(line);
        }
        for p in left {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Issue 5: a catalogue of malformed and malicious requests, each answered as the
/// README promises; the daemon stays healthy and its memory bounded.
#[test]
fn hostile_request_catalogue() {
    let _serial = serial();
    let seed = seed("hostile_request_catalogue");
    let mut rng = Rng::new(seed);
    let mut d = Daemon::start(&[
        "--max-body",
        "1MiB",
        "--header-timeout",
        "4s",
        "--body-timeout",
        "4s",
    ]);
    let c = Client::new(&d);
    let small = content(1, 10 * 1024);
    let large = content(2, 1 << 20);
    let sv = c.upload("small.bin", None, None, &small);
    let lv = c.upload("large.bin", None, None, &large);
    let pv = c
        .post_json(
            "/v1/objects",
            &serde_json::json!({"type": "file", "name": "pending.bin"}),
        )
        .expect_json(201);
    let id = |v: &serde_json::Value| v["id"].as_str().unwrap().to_string();
    let f = Fixture {
        auth: bearer(d.token()),
        small: (id(&sv), small.len()),
        large: (id(&lv), large.len()),
        pending: id(&pv),
        text: id(&c.create_text("text.txt", None, "a text object")),
    };
    let cases = catalogue(&f);
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let pid = d.pid();
    // Warm up every path once (noting which requests leave a temp file behind), then
    // take the baselines.
    let mut failures = vec![];
    for cs in &cases {
        let _ = run_case(d.addr(), d.token(), cs, None);
        note_tmp_leftovers(d.data_dir(), &cs.name, &mut failures);
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss0 = d.proc_status_kib("VmRSS");
    let fds0 = crate::support::fd_targets(pid);
    let t0 = Instant::now();
    for pass in ["whole", "dribbled", "whole again"] {
        for cs in &cases {
            let dribble = (pass == "dribbled").then_some(&mut rng);
            if let Err(e) = run_case(d.addr(), d.token(), cs, dribble) {
                failures.push(format!("[{pass}] {}: {e}", cs.name));
            }
            note_tmp_leftovers(d.data_dir(), &cs.name, &mut failures);
            if !d.is_running() {
                panic!(
                    "the daemon died on case {:?} ({pass}); failures so far:\n{}",
                    cs.name,
                    failures.join("\n")
                );
            }
        }
    }
    eprintln!("{} cases x 3 passes in {:?}", cases.len(), t0.elapsed());
    // Healthy, nothing stored, nothing leaked.
    assert_healthz(d.addr());
    let mut names: Vec<String> = c.get("/v1/objects?limit=1000").expect_json(200)["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap_or("?").to_string())
        .collect();
    names.sort();
    if names != ["large.bin", "pending.bin", "small.bin", "text.txt"] {
        failures.push(format!(
            "a rejected request stored something: the store holds {names:?}"
        ));
    }
    let r = c.content(&f.small.0);
    if sha256_hex(&r.body) != sha256_hex(&small) {
        failures.push(format!("the small object changed:\n{}", r.describe()));
    }
    if c.object(&f.pending)["state"] != "pending" {
        failures.push("the pending object changed".into());
    }
    if let Err(leaks) = crate::support::wait_no_fd_leaks(pid, &fds0, Duration::from_secs(5)) {
        failures.push(format!(
            "descriptors opened by the catalogue and never closed: {leaks:?}"
        ));
    }
    let rss = d.proc_status_kib("VmRSS");
    eprintln!(
        "VmRSS {rss0} KiB before, {rss} KiB after; VmHWM {} KiB",
        d.proc_status_kib("VmHWM")
    );
    if rss > rss0 + 20 * 1024 {
        failures.push(format!("VmRSS grew from {rss0} KiB to {rss} KiB"));
    }
    d.assert_alive();
    assert!(
        failures.is_empty(),
        "{} problems with {} cases x 3 passes (seed {seed}):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    let data = d.data_dir().to_path_buf();
    assert!(d.stop().success());
    assert_consistent(&data, "after the hostile catalogue");
}
