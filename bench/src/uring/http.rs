//! Request parsing and response framing of the io_uring ceiling server.
//!
//! Contract: [`parse`] looks at the front of a connection's bytes and says whether a whole
//! request head is there, how long it is, how many body bytes follow it
//! (`Content-Length`), which of the fixed bodies it asks for, and whether the connection
//! stays open afterwards (HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
//! `Connection: keep-alive`). [`Responses`] holds every answer the server can give,
//! built once, so answering a request is picking a `&'static [u8]`: no formatting, no
//! allocation, no copy on the hot path.
//!
//! Deliberately not done: chunked request bodies (answered 400 and closed: the server
//! cannot find the next request without decoding them), `Expect: 100-continue`, a `Date`
//! header (a clock read per answer is exactly what a ceiling should not pay; the monoio
//! ceiling sends none either), ranges, conditionals. Limits: 32 header lines
//! ([`MAX_HEADERS`]); the caller bounds the head's length.

use std::sync::OnceLock;

/// Header slots for `httparse`; wrk sends three or four headers.
pub const MAX_HEADERS: usize = 32;

/// The fixed bodies, selected by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/4k.bin` (also `/4k` and `/`): 4 KiB.
    Small,
    /// `/64k.bin` (also `/64k`): 64 KiB.
    Medium,
    /// `/1m.bin` (also `/1m`): 1 MiB.
    Large,
    /// Anything else: 404.
    NotFound,
}

impl Route {
    /// The route of a request target (the query string is ignored).
    pub fn of(target: &str) -> Route {
        let path = target.split_once('?').map_or(target, |(p, _)| p);
        match path {
            "/" | "/4k" | "/4k.bin" => Route::Small,
            "/64k" | "/64k.bin" => Route::Medium,
            "/1m" | "/1m.bin" => Route::Large,
            _ => Route::NotFound,
        }
    }

    /// Body length of the route's 200 answer.
    pub fn body_len(self) -> usize {
        match self {
            Route::Small => 4 << 10,
            Route::Medium => 64 << 10,
            Route::Large => 1 << 20,
            Route::NotFound => NOT_FOUND_BODY.len(),
        }
    }

    fn index(self) -> usize {
        match self {
            Route::Small => 0,
            Route::Medium => 1,
            Route::Large => 2,
            Route::NotFound => 3,
        }
    }
}

/// The method, as far as the answer depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`: head and body.
    Get,
    /// `HEAD`: the same head, no body.
    Head,
    /// Anything else: 405.
    Other,
}

/// A whole request head at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Bytes of the head, including the blank line.
    pub head_len: usize,
    /// Body bytes announced by `Content-Length` (skipped by the server).
    pub body_len: u64,
    /// What to answer with.
    pub method: Method,
    /// Which body.
    pub route: Route,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
}

/// What [`parse`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A whole request head.
    Request(Request),
    /// Not enough bytes yet.
    Partial,
    /// Malformed, chunked, or conflicting `Content-Length`: answer 400 and close.
    Invalid,
}

/// Parses the request head at the front of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    };
    let http11 = req.version == Some(1);
    let mut keep_alive = http11;
    let mut body_len: Option<u64> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = match std::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
            {
                Some(n) => n,
                None => return Parsed::Invalid,
            };
            // Two different lengths: request smuggling territory; refuse.
            if body_len.is_some_and(|b| b != n) {
                return Parsed::Invalid;
            }
            body_len = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Invalid;
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                    keep_alive = true;
                }
            }
        }
    }
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => Method::Other,
    };
    Parsed::Request(Request {
        head_len,
        body_len: body_len.unwrap_or(0),
        method,
        route: Route::of(req.path.unwrap_or("")),
        keep_alive,
    })
}

const NOT_FOUND_BODY: &[u8] = b"not found\n";
const NOT_ALLOWED_BODY: &[u8] = b"method not allowed\n";
const BAD_REQUEST_BODY: &[u8] = b"bad request\n";

/// Every answer, built once: per route, full and head-only, keep-alive and closing; the
/// 405 and 400 answers.
#[derive(Debug)]
pub struct Responses {
    /// `[route][head_only][close]`.
    answers: [[[Vec<u8>; 2]; 2]; 4],
    not_allowed: [Vec<u8>; 2],
    bad_request: Vec<u8>,
}

fn head(status: &str, content_type: &str, len: usize, close: bool, extra: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nServer: ceiling-uring\r\nContent-Type: {content_type}\r\n\
         Content-Length: {len}\r\n{extra}{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes()
}

/// The body bytes of a route: a fixed pattern (the harness checks lengths, not bytes).
fn body(route: Route) -> Vec<u8> {
    match route {
        Route::NotFound => NOT_FOUND_BODY.to_vec(),
        r => (0..r.body_len()).map(|i| b'a' + (i % 26) as u8).collect(),
    }
}

impl Responses {
    /// Builds every answer (about 2.2 MiB, most of it the two 1 MiB answers).
    pub fn build() -> Responses {
        let routes = [Route::Small, Route::Medium, Route::Large, Route::NotFound];
        let answers = routes.map(|route| {
            let (status, ctype) = match route {
                Route::NotFound => ("404 Not Found", "text/plain"),
                _ => ("200 OK", "application/octet-stream"),
            };
            let b = body(route);
            [false, true].map(|head_only| {
                [false, true].map(|close| {
                    let mut v = head(status, ctype, b.len(), close, "");
                    if !head_only {
                        v.extend_from_slice(&b);
                    }
                    v
                })
            })
        });
        let not_allowed = [false, true].map(|close| {
            let mut v = head(
                "405 Method Not Allowed",
                "text/plain",
                NOT_ALLOWED_BODY.len(),
                close,
                "Allow: GET, HEAD\r\n",
            );
            v.extend_from_slice(NOT_ALLOWED_BODY);
            v
        });
        let mut bad_request = head(
            "400 Bad Request",
            "text/plain",
            BAD_REQUEST_BODY.len(),
            true,
            "",
        );
        bad_request.extend_from_slice(BAD_REQUEST_BODY);
        Responses {
            answers,
            not_allowed,
            bad_request,
        }
    }

    /// The process-wide answers: in-flight sends point into them, so they live as long
    /// as the process.
    pub fn shared() -> &'static Responses {
        static R: OnceLock<Responses> = OnceLock::new();
        R.get_or_init(Responses::build)
    }

    /// The answer to a parsed request.
    pub fn answer(&self, req: &Request) -> &[u8] {
        let close = usize::from(!req.keep_alive);
        match req.method {
            Method::Get => &self.answers[req.route.index()][0][close],
            Method::Head => &self.answers[req.route.index()][1][close],
            Method::Other => &self.not_allowed[close],
        }
    }

    /// The answer to a request that cannot be parsed (always closes).
    pub fn bad_request(&self) -> &[u8] {
        &self.bad_request
    }
}

/// What [`feed`] decided for a connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// An answer closes the connection: stop reading, close after sending.
    pub close_after: bool,
}

/// Per-connection request framing state: partial head bytes and body bytes to skip.
#[derive(Debug, Default)]
pub struct Framing {
    /// Bytes of an incomplete head, kept between reads (empty in the usual case).
    pub pending: Vec<u8>,
    /// Request body bytes still to skip.
    pub skip: u64,
}

/// Largest request head kept across reads; a longer one closes the connection.
pub const MAX_HEAD: usize = 16 << 10;

impl Framing {
    /// Consumes `data` (the bytes of one read): every complete request's answer is passed
    /// to `answer`, in order. Partial heads are kept for the next read.
    pub fn feed<'r>(
        &mut self,
        data: &[u8],
        responses: &'r Responses,
        mut answer: impl FnMut(&'r [u8]),
    ) -> Fed {
        let mut fed = Fed::default();
        // The usual case: no leftovers, parse the read's bytes in place.
        let owned;
        let buf: &[u8] = if self.pending.is_empty() {
            data
        } else {
            self.pending.extend_from_slice(data);
            owned = std::mem::take(&mut self.pending);
            &owned
        };
        let mut pos = 0usize;
        while pos < buf.len() {
            if self.skip > 0 {
                let n = self.skip.min((buf.len() - pos) as u64);
                self.skip -= n;
                pos += n as usize;
                continue;
            }
            match parse(&buf[pos..]) {
                Parsed::Request(req) => {
                    pos += req.head_len;
                    self.skip = req.body_len;
                    answer(responses.answer(&req));
                    if !req.keep_alive {
                        fed.close_after = true;
                        return fed;
                    }
                }
                Parsed::Partial => {
                    let rest = &buf[pos..];
                    if rest.len() > MAX_HEAD {
                        answer(responses.bad_request());
                        fed.close_after = true;
                        return fed;
                    }
                    self.pending = rest.to_vec();
                    return fed;
                }
                Parsed::Invalid => {
                    answer(responses.bad_request());
                    fed.close_after = true;
                    return fed;
                }
            }
        }
        fed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(buf: &[u8]) -> Request {
        match parse(buf) {
            Parsed::Request(r) => r,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn heads_are_parsed_whole_partial_or_invalid() {
        let get = b"GET /4k.bin HTTP/1.1\r\nHost: a\r\n\r\n";
        let r = req(get);
        assert_eq!(r.head_len, get.len());
        assert_eq!(
            (r.method, r.route, r.body_len),
            (Method::Get, Route::Small, 0)
        );
        assert!(r.keep_alive);
        assert_eq!(parse(&get[..get.len() - 1]), Parsed::Partial);
        assert_eq!(
            req(b"HEAD /1m.bin?x=1 HTTP/1.1\r\n\r\n").route,
            Route::Large
        );
        assert_eq!(req(b"HEAD /64k HTTP/1.1\r\n\r\n").method, Method::Head);
        assert_eq!(req(b"GET /nope HTTP/1.1\r\n\r\n").route, Route::NotFound);
        assert_eq!(
            req(b"PUT / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").body_len,
            5
        );
        assert_eq!(req(b"DELETE / HTTP/1.1\r\n\r\n").method, Method::Other);
        for bad in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            b"\x01\x02 nonsense\r\n\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Parsed::Invalid,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_tokens() {
        assert!(!req(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!req(b"GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n").keep_alive);
        assert!(!req(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(req(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(req(b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    }

    fn split(answer: &[u8]) -> (String, &[u8]) {
        let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        (
            String::from_utf8(answer[..end].to_vec()).unwrap(),
            &answer[end..],
        )
    }

    #[test]
    fn answers_are_framed_by_content_length() {
        let r = Responses::shared();
        for (target, len) in [("/4k.bin", 4096), ("/64k.bin", 65536), ("/1m.bin", 1 << 20)] {
            let get = req(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes());
            let (head, body) = split(r.answer(&get));
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert!(
                head.contains(&format!("\r\nContent-Length: {len}\r\n")),
                "{head}"
            );
            assert!(!head.contains("Connection: close"));
            assert_eq!(body.len(), len);
            let head_req = req(format!("HEAD {target} HTTP/1.1\r\n\r\n").as_bytes());
            let (head2, body2) = split(r.answer(&head_req));
            assert_eq!(head2, head);
            assert!(body2.is_empty());
        }
        let close = req(b"GET /4k.bin HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(split(r.answer(&close))
            .0
            .contains("\r\nConnection: close\r\n"));
        let (h, b) = split(r.answer(&req(b"GET /x HTTP/1.1\r\n\r\n")));
        assert!(h.starts_with("HTTP/1.1 404 ") && h.contains("Content-Length: 10\r\n"));
        assert_eq!(b, NOT_FOUND_BODY);
        let (h, _) = split(r.answer(&req(b"POST / HTTP/1.1\r\n\r\n")));
        assert!(h.starts_with("HTTP/1.1 405 ") && h.contains("Allow: GET, HEAD\r\n"));
        let (h, b) = split(r.bad_request());
        assert!(h.starts_with("HTTP/1.1 400 ") && h.contains("Connection: close\r\n"));
        assert_eq!(b, BAD_REQUEST_BODY);
    }

    fn feed_all(f: &mut Framing, chunks: &[&[u8]]) -> (Vec<String>, Fed) {
        let r = Responses::shared();
        let mut statuses = Vec::new();
        let mut fed = Fed::default();
        for c in chunks {
            fed = f.feed(c, r, |a| {
                let (h, _) = split(a);
                statuses.push(h.lines().next().unwrap().to_string());
            });
        }
        (statuses, fed)
    }

    #[test]
    fn pipelined_split_and_bodied_requests_are_answered_in_order() {
        let mut f = Framing::default();
        let (s, fed) = feed_all(
            &mut f,
            &[
                b"GET /4k.bin HTTP/1.1\r\n\r\nHEAD /x HTTP/1.1\r\n\r\nGET /64k.b",
                b"in HTTP/1.1\r\n\r\n",
            ],
        );
        assert_eq!(
            s,
            [
                "HTTP/1.1 200 OK",
                "HTTP/1.1 404 Not Found",
                "HTTP/1.1 200 OK"
            ]
        );
        assert!(!fed.close_after && f.pending.is_empty());
        // A body spanning reads is skipped, then the next request is answered.
        let (s, _) = feed_all(
            &mut f,
            &[
                b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nhello",
                b"world",
                b"GET / HTTP/1.1\r\n\r\n",
            ],
        );
        assert_eq!(s, ["HTTP/1.1 405 Method Not Allowed", "HTTP/1.1 200 OK"]);
        assert_eq!(f.skip, 0);
        // Connection: close stops at that request; later bytes are ignored.
        let (s, fed) = feed_all(
            &mut f,
            &[b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n"],
        );
        assert_eq!(s.len(), 1);
        assert!(fed.close_after);
        // Garbage gets a 400 and a close.
        let mut g = Framing::default();
        let (s, fed) = feed_all(&mut g, &[b"\x00\x01\x02\r\n\r\n"]);
        assert_eq!(s, ["HTTP/1.1 400 Bad Request"]);
        assert!(fed.close_after);
        // A head that never ends is cut off.
        let mut h = Framing::default();
        let long = vec![b'a'; MAX_HEAD + 10];
        let (s, fed) = feed_all(&mut h, &[b"GET /", &long]);
        assert!(fed.close_after && s.len() == 1);
    }
}
