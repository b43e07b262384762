//! A bounded, seeded fuzzer of the whole request path over loopback: valid requests
//! for every route (chunked and Content-Length bodies, multipart, JSON, ranges,
//! conditionals, `Expect: 100-continue`, pipelines) are mutated (bit flips, byte
//! replacements, insertions of tokens that matter to HTTP, deletions, truncations,
//! duplications, splices, number swaps) and sent on fresh connections, one to three
//! requests per connection, which is then half-closed.
//!
//! Every byte the daemon sends back must parse as a sequence of well-formed
//! responses (status line `HTTP/1.1 NNN`, headers ending in CRLFCRLF, a
//! `Content-Length` body of exactly that length; errors as JSON), nothing may follow a
//! `Connection: close` response, the connection must close once the client's EOF is
//! read, and no response may be a 5xx other than 505 and 507. At the end the daemon
//! must be alive, stop cleanly on SIGTERM, and pass `ringbox check`.
//!
//! The seed is printed; a failure prints the request bytes and the answer. Replay
//! with `RINGBOX_TORTURE_SEED=<seed>` (threads are seeded from it, so the requests are
//! the same; their interleaving is not).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::{Client, Daemon};
use crate::support::{
    assert_consistent, assert_healthz, bearer, content, parse_response, seed, serial, Conn, Parsed,
    Rng,
};

/// One corpus entry: the request bytes, and whether it is a HEAD (no response body).
#[derive(Clone, Debug)]
struct Seed {
    bytes: Vec<u8>,
    head: bool,
}

fn build(method: &str, target: &str, headers: &[String], body: &[u8]) -> Seed {
    let mut s = format!("{method} {target} HTTP/1.1\r\nHost: ringbox.test\r\n");
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    let mut bytes = s.into_bytes();
    bytes.extend_from_slice(body);
    Seed {
        bytes,
        head: method == "HEAD",
    }
}

fn chunk(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = vec![];
    for (i, c) in body.chunks(size).enumerate() {
        if i % 2 == 1 {
            out.extend_from_slice(format!("{:x};ext=v{i}\r\n", c.len()).as_bytes());
        } else {
            out.extend_from_slice(format!("{:X}\r\n", c.len()).as_bytes());
        }
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
    out
}

struct Ids {
    file: String,
    sha: String,
    large: String,
    text: String,
    pending: String,
    victims: Vec<String>,
}

fn corpus(token: &str, ids: &Ids) -> Vec<Seed> {
    let a = format!("Authorization: {}", bearer(token));
    let auth = || vec![a.clone()];
    let with = |extra: &[&str]| {
        let mut h = auth();
        h.extend(extra.iter().map(|s| s.to_string()));
        h
    };
    let body = content(42, 300);
    let json = br#"{"type":"text","content":"fuzzed text","name":"t.txt","namespace":"fuzz","tags":["a"],"metadata":{"k":1}}"#;
    let pending_json = br#"{"type":"file","name":"later.bin","namespace":"fuzz"}"#;
    let patch = br#"{"name":"renamed.bin","tags":["x","y"],"metadata":{"k":"v","gone":null}}"#;
    let mp_body = {
        let mut m = b"--XyZ\r\nContent-Disposition: form-data; name=\"namespace\"\r\n\r\nfuzz\r\n--XyZ\r\nContent-Disposition: form-data; name=\"tags\"\r\n\r\na,b\r\n--XyZ\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"m\":true}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"one.txt\"\r\nContent-Type: text/plain\r\n\r\nfirst file\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"two.bin\"\r\n\r\n".to_vec();
        m.extend_from_slice(&body[..100]);
        m.extend_from_slice(b"\r\n--XyZ--\r\n");
        m
    };
    let cl = |b: &[u8]| format!("Content-Length: {}", b.len());
    let etag = format!("\"{}\"", ids.sha);
    let content_path = format!("/v1/objects/{}/content", ids.file);
    let large_path = format!("/v1/objects/{}/content", ids.large);
    let mut c = vec![
        build("GET", "/healthz", &[], b""),
        build("GET", "/metrics", &auth(), b""),
        build("GET", "/v1/objects?limit=3&prefix=f", &auth(), b""),
        build(
            "GET",
            "/v1/objects?namespace=fuzz&q=o&limit=2",
            &auth(),
            b"",
        ),
        build("GET", "/v1/objects?cursor=AAAA&limit=1000", &auth(), b""),
        build("GET", &format!("/v1/objects/{}", ids.file), &auth(), b""),
        build("GET", &format!("/v1/objects/{}", ids.text), &auth(), b""),
        build(
            "PATCH",
            &format!("/v1/objects/{}", ids.text),
            &with(&["Content-Type: application/json", &cl(patch)]),
            patch,
        ),
        build(
            "POST",
            "/v1/objects?name=fz.bin&namespace=fuzz&tags=a,b",
            &with(&[&cl(&body)]),
            &body,
        ),
        build(
            "POST",
            "/v1/objects?name=fz.txt",
            &with(&["Content-Type: text/plain", "Transfer-Encoding: chunked"]),
            &chunk(&body, 70),
        ),
        build(
            "POST",
            "/v1/objects",
            &with(&[
                "Content-Type: multipart/form-data; boundary=XyZ",
                &cl(&mp_body),
            ]),
            &mp_body,
        ),
        build(
            "POST",
            "/v1/objects",
            &with(&[
                "Content-Type: multipart/form-data; boundary=XyZ",
                "Transfer-Encoding: chunked",
            ]),
            &chunk(&mp_body, 97),
        ),
        build(
            "POST",
            "/v1/objects",
            &with(&["Content-Type: application/json", &cl(json)]),
            json,
        ),
        build(
            "POST",
            "/v1/objects",
            &with(&["Content-Type: application/json", &cl(pending_json)]),
            pending_json,
        ),
        build(
            "POST",
            "/v1/objects?name=expect.bin",
            &with(&["Expect: 100-continue", &cl(&body)]),
            &body,
        ),
        build("GET", &content_path, &with(&["Range: bytes=0-99"]), b""),
        build(
            "GET",
            &content_path,
            &with(&["Range: bytes=0-9,20-29,-5"]),
            b"",
        ),
        build(
            "GET",
            &large_path,
            &with(&["Range: bytes=100000-100099,5-6"]),
            b"",
        ),
        build("GET", &large_path, &with(&["Range: bytes=-100"]), b""),
        build(
            "GET",
            &content_path,
            &with(&[&format!("If-None-Match: {etag}")]),
            b"",
        ),
        build(
            "GET",
            &content_path,
            &with(&["If-Modified-Since: Sun, 06 Nov 2044 08:49:37 GMT"]),
            b"",
        ),
        build(
            "GET",
            &content_path,
            &with(&[&format!("If-Range: {etag}"), "Range: bytes=1-2"]),
            b"",
        ),
        build("GET", &content_path, &with(&["If-Match: \"nope\""]), b""),
        build(
            "GET",
            &content_path,
            &with(&["If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT"]),
            b"",
        ),
        build("GET", &format!("{content_path}?download=1"), &auth(), b""),
        build("HEAD", &content_path, &auth(), b""),
        build("HEAD", &format!("/v1/blobs/{}", ids.sha), &auth(), b""),
        build(
            "GET",
            &format!("/v1/blobs/{}", ids.sha),
            &with(&["Range: bytes=3-"]),
            b"",
        ),
        build(
            "GET",
            &format!("/v1/objects/{}/content", ids.text),
            &auth(),
            b"",
        ),
        build(
            "PUT",
            &format!("/v1/objects/{}/content", ids.pending),
            &with(&[&cl(&body)]),
            &body,
        ),
        build(
            "PUT",
            &format!("/v1/objects/{}/content", ids.pending),
            &with(&[
                "Content-Type: multipart/form-data; boundary=XyZ",
                &cl(&mp_body),
            ]),
            &mp_body,
        ),
        build("OPTIONS", "*", &[], b""),
        build("POST", "/healthz", &[cl(b"abc")], b"abc"),
        build("GET", "/nope/../v1/objects", &auth(), b""),
    ];
    for v in &ids.victims {
        c.push(build("DELETE", &format!("/v1/objects/{v}"), &auth(), b""));
    }
    c.push(Seed {
        bytes: format!(
            "GET /v1/objects/{} HTTP/1.0\r\n{a}\r\nConnection: keep-alive\r\n\r\n",
            ids.file
        )
        .into_bytes(),
        head: false,
    });
    c.push(Seed {
        bytes: format!("GET /v1/objects HTTP/1.1\r\nHost: x\r\n{a}\r\nConnection: close\r\n\r\n")
            .into_bytes(),
        head: false,
    });
    c
}

/// Strings that matter to an HTTP parser.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b" ",
    b"\t",
    b":",
    b",",
    b";",
    b"%",
    b"%00",
    b"%2e%2e/",
    b"..",
    b"/",
    b"?",
    b"#",
    b"0",
    b"-1",
    b"99999999999999999999",
    b"ffffffff",
    b"\xff\xfe",
    b"--",
    b"=",
    b"\r\nTransfer-Encoding: chunked",
    b"\r\nContent-Length: 0",
    b"\r\nContent-Length: 100000",
    b"\r\nExpect: 100-continue",
    b"\r\nRange: bytes=0-0,1-1,-5",
    b"\r\nConnection: close",
    b"\r\n\r\n",
    b"HTTP/1.0",
    b"chunked",
    b"boundary=",
    b"0\r\n\r\n",
    b"\r\nHost: y",
    b"\r\nIf-None-Match: *",
    b"\r\nContent-Type: application/json",
    b"\"",
    b"{",
    b"}",
];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Seed]) -> Vec<u8> {
    let mut b = input.to_vec();
    let n = rng.range(1, 4);
    for _ in 0..n {
        let len = b.len().max(1);
        let at = rng.usize(len);
        match rng.below(10) {
            0 => {
                if !b.is_empty() {
                    let i = at.min(b.len() - 1);
                    b[i] ^= 1 << rng.below(8);
                }
            }
            1 => {
                if !b.is_empty() {
                    let t = rng.pick(TOKENS);
                    let i = at.min(b.len() - 1);
                    b[i] = t[0];
                }
            }
            2 | 3 => {
                let t = rng.pick(TOKENS);
                let at = at.min(b.len());
                b.splice(at..at, t.iter().copied());
            }
            4 => {
                let end = (at + rng.range(1, 16) as usize).min(b.len());
                if at < end {
                    b.drain(at..end);
                }
            }
            5 => b.truncate(at),
            6 => {
                let end = (at + rng.range(1, 64) as usize).min(b.len());
                if at < end {
                    let dup = b[at..end].to_vec();
                    b.splice(end..end, dup);
                }
            }
            7 => {
                // Splice: our head, another request's tail.
                let other = &rng.pick(corpus).bytes;
                let from = rng.usize(other.len().max(1)).min(other.len());
                b.truncate(at.min(b.len()));
                b.extend_from_slice(&other[from..]);
            }
            8 => {
                // Replace a run of digits with another number.
                if let Some(start) = (at..b.len()).find(|&i| b[i].is_ascii_digit()) {
                    let end = (start..b.len())
                        .find(|&i| !b[i].is_ascii_digit())
                        .unwrap_or(b.len());
                    let num = match rng.below(5) {
                        0 => "0".to_string(),
                        1 => "1".to_string(),
                        2 => u64::MAX.to_string(),
                        3 => "18446744073709551616".to_string(),
                        _ => rng.below(1 << 24).to_string(),
                    };
                    b.splice(start..end, num.into_bytes());
                }
            }
            _ => {
                // Duplicate a whole header line.
                if let Some(s) = (at..b.len()).find(|&i| b[i] == b'\n') {
                    if let Some(e) = (s + 1..b.len()).find(|&i| b[i] == b'\n') {
                        let line = b[s + 1..=e].to_vec();
                        b.splice(e + 1..e + 1, line);
                    }
                }
            }
        }
    }
    b
}

fn show(b: &[u8]) -> String {
    let n = b.len().min(1500);
    let mut s = String::new();
    for &c in &b[..n] {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    if b.len() > n {
        s.push_str(&format!("... ({} bytes)", b.len()));
    }
    s
}

/// Checks everything the daemon sent on one connection. `head_only` when the
/// connection carried one HEAD request.
fn check_stream(mut buf: &[u8], mut head_only: bool) -> Result<usize, String> {
    let mut n = 0;
    while !buf.is_empty() {
        let (mut r, used) = match parse_response(buf, head_only) {
            Parsed::Complete(r, used) => (r, used),
            Parsed::Partial => {
                return Err(format!(
                    "the connection closed in the middle of response #{}",
                    n + 1
                ))
            }
            Parsed::Malformed(m) => return Err(format!("response #{} is malformed: {m}", n + 1)),
        };
        n += 1;
        buf = &buf[used..];
        if r.status < 200 {
            continue;
        }
        let was_head = head_only;
        if head_only {
            head_only = false;
            // What follows is either the next response (the HEAD was followed by more
            // bytes, mutated into another request) or, when the daemon could not
            // parse the HEAD as one, its error body.
            let next_is_response = matches!(parse_response(buf, false), Parsed::Complete(..));
            if !buf.is_empty() && !next_is_response {
                let cl: usize = r
                    .header("content-length")
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0);
                if buf.len() == cl && r.status >= 400 {
                    r.body = buf.to_vec();
                    buf = &[];
                } else {
                    return Err(format!(
                        "{} bytes after the response to a HEAD:\n{}",
                        buf.len(),
                        r.describe()
                    ));
                }
            }
        }
        if r.status >= 500 && r.status != 505 && r.status != 507 {
            return Err(format!(
                "a {} for a client's bytes:\n{}",
                r.status,
                r.describe()
            ));
        }
        if r.status >= 400 && !(was_head && r.body.is_empty()) {
            r.check_json_error()?;
        }
        if r.closes() && !buf.is_empty() {
            return Err(format!(
                "{} bytes after a `Connection: close` response",
                buf.len()
            ));
        }
    }
    Ok(n)
}

/// One connection: 1-3 (mutated) requests, half-close, read to EOF, check.
type Outcome = Result<usize, (String, Vec<u8>, Vec<u8>)>;

/// Returns how many requests were sent, and the responses counted or the failure
/// (message, bytes sent, bytes received).
fn one_connection(
    addr: SocketAddr,
    rng: &mut Rng,
    corpus: &[Seed],
    no_head: &[Seed],
) -> (usize, Outcome) {
    let k = match rng.below(10) {
        0..=5 => 1,
        6..=8 => 2,
        _ => 3,
    };
    (k, exchange(addr, rng, corpus, no_head, k))
}

fn exchange(
    addr: SocketAddr,
    rng: &mut Rng,
    corpus: &[Seed],
    no_head: &[Seed],
    k: usize,
) -> Outcome {
    let (pool, k_is_one) = if k == 1 {
        let s = rng.pick(corpus);
        (vec![s.clone()], true)
    } else {
        (
            (0..k)
                .map(|_| rng.pick(no_head).clone())
                .collect::<Vec<_>>(),
            false,
        )
    };
    let splice_from = if k == 1 { corpus } else { no_head };
    let mut bytes = vec![];
    for s in &pool {
        if rng.chance(0.12) {
            bytes.extend_from_slice(&s.bytes);
        } else {
            bytes.extend(mutate(rng, &s.bytes, splice_from));
        }
    }
    // A HEAD is what the daemon reads as one after mutation: `HE#D` is a valid (unknown)
    // method and gets a body, and leading empty lines are skipped (RFC 9112 §2.2).
    let head_only = k_is_one && {
        let start = bytes
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(bytes.len());
        bytes[start..].starts_with(b"HEAD ")
    };
    let fail = |m: String, bytes: &[u8], got: &[u8]| Err((m, bytes.to_vec(), got.to_vec()));
    let mut c = match Conn::connect(addr) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                format!("connect failed (is the daemon dead?): {e}"),
                &bytes,
                b"",
            )
        }
    };
    // Sometimes in pieces, to vary what each read sees.
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let n = if rng.chance(0.7) {
            rest.len()
        } else {
            rng.range(1, rest.len() as u64) as usize
        };
        if c.send(&rest[..n]).is_err() {
            break; // the daemon may close early (an error after the head)
        }
        rest = &rest[n..];
    }
    c.shutdown_write();
    let t = Instant::now();
    let got = match c.read_to_close(Duration::from_secs(20)) {
        Ok(g) => g,
        Err(g) => {
            return fail(
                format!(
                    "the connection is still open {:?} after the client's EOF",
                    t.elapsed()
                ),
                &bytes,
                &g,
            )
        }
    };
    match check_stream(&got, head_only) {
        Ok(n) => Ok(n),
        Err(m) => fail(m, &bytes, &got),
    }
}

fn fuzz(test: &str, requests: usize, threads: usize) {
    let _serial = serial();
    let seed = seed(test);
    let mut rng = Rng::new(seed);
    let mut d = Daemon::start(&[
        "--max-body",
        "8MiB",
        "--header-timeout",
        "5s",
        "--body-timeout",
        "5s",
    ]);
    let c = Client::new(&d);
    let file_bytes = content(1, 5000);
    let file = c.upload("file.bin", None, None, &file_bytes);
    let large = c.upload("large.bin", None, None, &content(2, 300_000));
    let text = c.create_text("text.txt", Some("fuzz"), "hello fuzz");
    let pending = c
        .post_json(
            "/v1/objects",
            &serde_json::json!({"type": "file", "name": "p.bin"}),
        )
        .expect_json(201);
    let victims = (0..10)
        .map(|i| {
            c.upload(&format!("victim-{i}"), None, None, &content(100 + i, 50))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let id = |v: &serde_json::Value| v["id"].as_str().unwrap().to_string();
    let ids = Ids {
        file: id(&file),
        sha: file["sha256"].as_str().unwrap().to_string(),
        large: id(&large),
        text: id(&text),
        pending: id(&pending),
        victims,
    };
    let token = d.token().to_string();
    let corpus = corpus(&token, &ids);
    let no_head: Vec<Seed> = corpus.iter().filter(|s| !s.head).cloned().collect();
    let addr = d.addr();
    let t0 = Instant::now();
    let per_thread = requests / threads;
    let results: Vec<(usize, usize, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mut trng = rng.fork();
                let (corpus, no_head) = (&corpus, &no_head);
                s.spawn(move || {
                    let (mut sent, mut answered, mut failures) = (0, 0, vec![]);
                    let mut conn_no = 0;
                    while sent < per_thread && failures.len() < 5 {
                        conn_no += 1;
                        let (k, outcome) = one_connection(addr, &mut trng, corpus, no_head);
                        sent += k;
                        match outcome {
                            Ok(n) => answered += n,
                            Err((m, bytes, got)) => {
                                failures.push(format!(
                                    "thread {t}, connection {conn_no}: {m}\n--- sent ---\n{}\n--- received ---\n{}",
                                    show(&bytes),
                                    show(&got)
                                ));
                                if m.contains("connect failed") {
                                    break;
                                }
                            }
                        }
                    }
                    (sent, answered, failures)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let sent: usize = results.iter().map(|r| r.0).sum();
    let answered: usize = results.iter().map(|r| r.1).sum();
    let failures: Vec<String> = results.into_iter().flat_map(|r| r.2).collect();
    eprintln!(
        "{test}: {sent} requests, {answered} responses in {:?}",
        t0.elapsed()
    );
    let alive = d.is_running();
    assert!(
        failures.is_empty() && alive,
        "{test} (seed {seed}, replay with RINGBOX_TORTURE_SEED={seed}): daemon alive: {alive}; {} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert_healthz(addr);
    let data = d.data_dir().to_path_buf();
    let st = d.stop();
    assert!(st.success(), "ringbox exited with {st} after SIGTERM");
    assert_consistent(&data, &format!("{test} (seed {seed})"));
}

/// Issue 5: 3,000 fuzzed requests (CI-sized).
#[test]
fn fuzz_request_path() {
    fuzz("fuzz_request_path", 6000, 4);
}

#[test]
#[ignore = "long: run in the stress step"]
fn stress_fuzz_request_path() {
    fuzz("stress_fuzz_request_path", 200_000, 4);
}
