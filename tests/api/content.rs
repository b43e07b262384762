//! `GET|HEAD /v1/objects/{id}/content` and `GET|HEAD /v1/blobs/{sha256}`: headers,
//! ranges (single, open, suffix, multi, coalesced, unsatisfiable, too many), and
//! conditionals (If-Range, If-None-Match, If-Modified-Since, If-Match,
//! If-Unmodified-Since), checked against a reference computed in the test.
//!
//! Most checks run on both routes: `both!(check)` makes `check::object` and
//! `check::blob`, each with its own daemon and a random 1 MiB + 1 KiB file.

use crate::common::checks::id_of;
use crate::common::raw::request;
use crate::common::util::{
    format_http_date, media_type_param, now_unix_ms, parse_byteranges, parse_content_range,
    parse_http_date, parse_rfc3339, pct_decode, random_bytes, sha256_hex,
};
use crate::common::{Client, Daemon, RawConn, Resp};
use serde_json::Value;

const LEN: usize = 1024 * 1024 + 1024;
const OBJECT_MIME: &str = "video/mp4";
const OBJECT_NAME: &str = "clip.mp4";

struct Fixture {
    _d: Daemon,
    c: Client,
    data: Vec<u8>,
    sha: String,
    obj: Value,
    addr: std::net::SocketAddr,
    token: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Object,
    Blob,
}

/// One of the two routes that serve the fixture's bytes.
struct Target {
    kind: Kind,
    path: String,
    content_type: &'static str,
}

impl Fixture {
    fn new() -> Fixture {
        let d = Daemon::start(&[]);
        let c = Client::new(&d);
        let data = random_bytes(0xC0FFEE, LEN);
        let obj = c.upload(OBJECT_NAME, None, Some(OBJECT_MIME), &data);
        let sha = sha256_hex(&data);
        assert_eq!(obj["sha256"], sha);
        let addr = d.addr();
        let token = d.token().to_string();
        Fixture {
            _d: d,
            c,
            data,
            sha,
            obj,
            addr,
            token,
        }
    }
    fn id(&self) -> String {
        id_of(&self.obj)
    }
    fn target(&self, kind: Kind) -> Target {
        match kind {
            Kind::Object => Target {
                kind,
                path: format!("/v1/objects/{}/content", self.id()),
                content_type: OBJECT_MIME,
            },
            Kind::Blob => Target {
                kind,
                path: format!("/v1/blobs/{}", self.sha),
                content_type: "application/octet-stream",
            },
        }
    }
    fn etag(&self) -> String {
        format!("\"{}\"", self.sha)
    }
    fn get(&self, t: &Target, headers: &[(&str, &str)]) -> Resp {
        let mut r = self.c.req("GET", &t.path);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.call()
    }
    fn range(&self, t: &Target, spec: &str) -> Resp {
        self.get(t, &[("Range", spec)])
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn object() {
                let f = super::Fixture::new();
                let t = f.target(super::Kind::Object);
                super::$name(&f, &t);
            }
            #[test]
            fn blob() {
                let f = super::Fixture::new();
                let t = f.target(super::Kind::Blob);
                super::$name(&f, &t);
            }
        }
    )*};
}

both!(
    full_get_headers,
    download_disposition,
    head_same_headers_no_body,
    single_range,
    open_range,
    suffix_range,
    multi_range_byteranges,
    overlapping_ranges_coalesced,
    unsatisfiable_range_416,
    too_many_ranges_gives_full_200,
    unknown_range_unit_ignored,
    if_range,
    if_none_match_304,
    if_modified_since_304,
    if_match_412,
    if_unmodified_since_412,
);

/// (filename, filename*) parameters of a Content-Disposition value, unquoted/decoded.
fn disposition_filenames(v: &str) -> (Option<String>, Option<String>) {
    let mut plain = None;
    let mut ext = None;
    for p in v.split(';').skip(1) {
        let Some((k, val)) = p.split_once('=') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        let val = val.trim();
        if k == "filename" {
            plain = Some(
                val.trim_matches('"')
                    .replace("\\\"", "\"")
                    .replace("\\\\", "\\"),
            );
        } else if k == "filename*" {
            let lower = val.to_ascii_lowercase();
            assert!(
                lower.starts_with("utf-8''"),
                "filename* not in UTF-8'' form: {v:?}"
            );
            ext = Some(
                pct_decode(&val[7..])
                    .unwrap_or_else(|| panic!("filename* not percent-encoded UTF-8: {v:?}")),
            );
        }
    }
    (plain, ext)
}

/// The filename a client would use: filename* when present, else filename.
fn effective_filename(v: &str) -> Option<String> {
    let (plain, ext) = disposition_filenames(v);
    ext.or(plain)
}

#[track_caller]
fn assert_common_headers(f: &Fixture, t: &Target, r: &Resp) {
    let ct = r.must_header("content-type").to_ascii_lowercase();
    assert_eq!(ct, t.content_type, "Content-Type:\n{}", r.describe());
    assert_eq!(
        r.header("etag"),
        Some(f.etag().as_str()),
        "ETag:\n{}",
        r.describe()
    );
    assert_eq!(
        r.header("accept-ranges"),
        Some("bytes"),
        "Accept-Ranges:\n{}",
        r.describe()
    );
    let lm = r.must_header("last-modified");
    let lm_s = parse_http_date(lm)
        .unwrap_or_else(|| panic!("Last-Modified is not an IMF-fixdate: {lm:?}"));
    match t.kind {
        Kind::Object => {
            let updated = parse_rfc3339(f.obj["updated_at"].as_str().unwrap())
                .unwrap()
                .unix_ms;
            assert_eq!(
                lm_s,
                updated.div_euclid(1000),
                "Last-Modified {lm} is not the object's updated_at {}",
                f.obj["updated_at"]
            );
        }
        Kind::Blob => {
            let skew = (lm_s * 1000 - now_unix_ms()).abs();
            assert!(
                skew < 10 * 60 * 1000,
                "blob Last-Modified {lm} far from now"
            );
        }
    }
}

fn full_get_headers(f: &Fixture, t: &Target) {
    let r = f.get(t, &[]).expect(200);
    assert!(
        r.body == f.data,
        "full body differs ({} bytes)",
        r.body.len()
    );
    assert_eq!(
        r.header("content-length"),
        Some(LEN.to_string().as_str()),
        "{}",
        r.describe()
    );
    assert_common_headers(f, t, &r);
    let cd = r.header("content-disposition");
    match t.kind {
        Kind::Object => {
            let cd = cd.unwrap_or_else(|| panic!("no Content-Disposition:\n{}", r.describe()));
            assert!(
                cd.to_ascii_lowercase().starts_with("inline"),
                "Content-Disposition {cd:?}"
            );
            assert_eq!(
                effective_filename(cd).as_deref(),
                Some(OBJECT_NAME),
                "Content-Disposition {cd:?}"
            );
        }
        Kind::Blob => assert_eq!(
            cd, None,
            "blobs get Content-Disposition only with ?download=1"
        ),
    }
}

fn download_disposition(f: &Fixture, t: &Target) {
    let r = f.c.get(&format!("{}?download=1", t.path)).expect(200);
    assert!(r.body == f.data);
    let cd = r
        .header("content-disposition")
        .unwrap_or_else(|| panic!("no Content-Disposition:\n{}", r.describe()));
    assert!(
        cd.to_ascii_lowercase().starts_with("attachment"),
        "Content-Disposition {cd:?}"
    );
    let want = match t.kind {
        Kind::Object => OBJECT_NAME.to_string(),
        Kind::Blob => f.sha.clone(),
    };
    assert_eq!(
        effective_filename(cd),
        Some(want),
        "Content-Disposition {cd:?}"
    );
}

fn head_same_headers_no_body(f: &Fixture, t: &Target) {
    let get = f.get(t, &[]).expect(200);
    // HEAD then a pipelined GET /healthz in one write: if the daemon sent any body bytes
    // after the HEAD response, the second response would not parse.
    let auth = format!("Bearer {}", f.token);
    let mut bytes = request("HEAD", &t.path, &[("Authorization", &auth)], b"");
    bytes.extend(request("GET", "/healthz", &[], b""));
    let mut conn = RawConn::connect(f.addr);
    conn.send(&bytes);
    let head = conn.read_head_response().expect(200);
    let next = conn.read_response();
    assert_eq!(
        next.status,
        200,
        "the response after HEAD is garbled (body bytes after HEAD?):\n{}",
        next.describe()
    );
    assert_eq!(next.json()["status"], "ok");
    for h in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "accept-ranges",
        "content-disposition",
    ] {
        assert_eq!(
            head.header(h),
            get.header(h),
            "HEAD and GET differ in {h}:\nHEAD {}\nGET {}",
            head.describe(),
            get.describe()
        );
    }
    // Through ureq too.
    let r = f.c.head(&t.path).expect(200);
    assert!(r.body.is_empty());
}

#[track_caller]
fn assert_206(f: &Fixture, t: &Target, r: &Resp, first: usize, last: usize) {
    assert_eq!(
        r.status,
        206,
        "expected 206 for {first}-{last}:\n{}",
        r.describe()
    );
    let cr = r.must_header("content-range");
    assert_eq!(
        parse_content_range(cr),
        Some((Some((first as u64, last as u64)), LEN as u64)),
        "Content-Range {cr:?}"
    );
    assert_eq!(
        r.header("content-length"),
        Some((last - first + 1).to_string().as_str()),
        "{}",
        r.describe()
    );
    assert!(
        r.body == f.data[first..=last],
        "206 body differs for {first}-{last} ({} bytes)",
        r.body.len()
    );
    assert_eq!(
        r.must_header("content-type").to_ascii_lowercase(),
        t.content_type
    );
    assert_eq!(r.header("etag"), Some(f.etag().as_str()));
}

fn single_range(f: &Fixture, t: &Target) {
    assert_206(f, t, &f.range(t, "bytes=100-199"), 100, 199);
    assert_206(f, t, &f.range(t, "bytes=0-0"), 0, 0);
    assert_206(
        f,
        t,
        &f.range(t, &format!("bytes={}-{}", LEN - 1, LEN - 1)),
        LEN - 1,
        LEN - 1,
    );
    // A last-byte-pos past the end is clipped.
    assert_206(
        f,
        t,
        &f.range(t, &format!("bytes={}-{}", LEN - 10, LEN + 100)),
        LEN - 10,
        LEN - 1,
    );
}

fn open_range(f: &Fixture, t: &Target) {
    assert_206(f, t, &f.range(t, "bytes=1000000-"), 1_000_000, LEN - 1);
    assert_206(f, t, &f.range(t, "bytes=0-"), 0, LEN - 1);
}

fn suffix_range(f: &Fixture, t: &Target) {
    assert_206(f, t, &f.range(t, "bytes=-500"), LEN - 500, LEN - 1);
    assert_206(f, t, &f.range(t, "bytes=-1"), LEN - 1, LEN - 1);
    // A suffix longer than the representation selects all of it.
    assert_206(
        f,
        t,
        &f.range(t, &format!("bytes=-{}", LEN + 10)),
        0,
        LEN - 1,
    );
}

/// Parses a 206 multipart/byteranges response into (first, last, data) triples.
#[track_caller]
fn byteranges(f: &Fixture, t: &Target, r: &Resp) -> Vec<(usize, usize, Vec<u8>)> {
    assert_eq!(r.status, 206, "{}", r.describe());
    let ct = r.must_header("content-type");
    assert!(
        ct.to_ascii_lowercase().starts_with("multipart/byteranges"),
        "Content-Type {ct:?}"
    );
    let boundary =
        media_type_param(ct, "boundary").unwrap_or_else(|| panic!("no boundary in {ct:?}"));
    if let Some(cl) = r.header("content-length") {
        assert_eq!(
            cl,
            r.body.len().to_string(),
            "Content-Length of the multipart body"
        );
    }
    assert_eq!(
        r.header("content-range"),
        None,
        "a multipart 206 must not have a top-level Content-Range"
    );
    let parts = parse_byteranges(&r.body, &boundary)
        .unwrap_or_else(|e| panic!("bad multipart/byteranges ({e}):\n{}", r.describe()));
    parts
        .into_iter()
        .map(|p| {
            let cr = p
                .header("content-range")
                .unwrap_or_else(|| panic!("part without Content-Range: {:?}", p.headers));
            let (Some((a, b)), len) =
                parse_content_range(cr).unwrap_or_else(|| panic!("bad part Content-Range {cr:?}"))
            else {
                panic!("part Content-Range without a range: {cr:?}")
            };
            assert_eq!(len, LEN as u64, "{cr}");
            assert_eq!(
                p.header("content-type")
                    .map(str::to_ascii_lowercase)
                    .as_deref(),
                Some(t.content_type)
            );
            let (a, b) = (a as usize, b as usize);
            assert!(
                p.data == f.data[a..=b],
                "part {a}-{b} differs ({} bytes)",
                p.data.len()
            );
            (a, b, p.data)
        })
        .collect()
}

fn multi_range_byteranges(f: &Fixture, t: &Target) {
    let r = f.range(t, "bytes=0-99,1000-1999,-100");
    let got: Vec<(usize, usize)> = byteranges(f, t, &r)
        .iter()
        .map(|(a, b, _)| (*a, *b))
        .collect();
    assert_eq!(got, vec![(0, 99), (1000, 1999), (LEN - 100, LEN - 1)]);
}

fn overlapping_ranges_coalesced(f: &Fixture, t: &Target) {
    for spec in [
        "bytes=0-99,50-149",
        "bytes=50-149,0-99",
        "bytes=0-149,10-20",
    ] {
        let r = f.range(t, spec);
        assert_eq!(r.status, 206, "{spec}:\n{}", r.describe());
        let ct = r.must_header("content-type").to_ascii_lowercase();
        if ct.starts_with("multipart/byteranges") {
            let parts: Vec<(usize, usize)> = byteranges(f, t, &r)
                .iter()
                .map(|(a, b, _)| (*a, *b))
                .collect();
            assert_eq!(
                parts,
                vec![(0, 149)],
                "{spec}: overlapping ranges not coalesced"
            );
        } else {
            assert_206(f, t, &r, 0, 149);
        }
    }
}

#[track_caller]
fn assert_416(r: Resp) {
    let r = r.expect_error(416, "range_not_satisfiable");
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{LEN}").as_str()),
        "{}",
        r.describe()
    );
}

fn unsatisfiable_range_416(f: &Fixture, t: &Target) {
    assert_416(f.range(t, &format!("bytes={LEN}-")));
    assert_416(f.range(t, &format!("bytes={}-{}", LEN + 5, LEN + 10)));
    assert_416(f.range(t, &format!("bytes={LEN}-,{}-", LEN + 1)));
    // One satisfiable range among unsatisfiable ones is served.
    assert_206(f, t, &f.range(t, &format!("bytes={LEN}-,5-9")), 5, 9);
}

fn too_many_ranges_gives_full_200(f: &Fixture, t: &Target) {
    let spec: Vec<String> = (0..17)
        .map(|i| format!("{}-{}", i * 1000, i * 1000 + 9))
        .collect();
    let r = f.range(t, &format!("bytes={}", spec.join(","))).expect(200);
    assert!(
        r.body == f.data,
        "17 ranges should give the whole representation"
    );
    // 16 is still served as ranges.
    let spec: Vec<String> = (0..16)
        .map(|i| format!("{}-{}", i * 1000, i * 1000 + 9))
        .collect();
    assert_eq!(
        byteranges(f, t, &f.range(t, &format!("bytes={}", spec.join(",")))).len(),
        16
    );
}

fn unknown_range_unit_ignored(f: &Fixture, t: &Target) {
    let r = f.range(t, "items=0-1").expect(200);
    assert!(r.body == f.data);
}

fn if_range(f: &Fixture, t: &Target) {
    let r = f.get(t, &[("Range", "bytes=10-19"), ("If-Range", &f.etag())]);
    assert_206(f, t, &r, 10, 19);
    for other in ["\"0000\"".to_string(), format!("W/{}", f.etag())] {
        let r = f
            .get(t, &[("Range", "bytes=10-19"), ("If-Range", &other)])
            .expect(200);
        assert!(
            r.body == f.data,
            "If-Range {other} must give the full representation"
        );
    }
}

#[track_caller]
fn assert_304(f: &Fixture, r: Resp) {
    let r = r.expect(304);
    assert!(r.body.is_empty(), "304 with a body");
    assert_eq!(
        r.header("etag"),
        Some(f.etag().as_str()),
        "304 without the ETag:\n{}",
        r.describe()
    );
}

fn if_none_match_304(f: &Fixture, t: &Target) {
    let e = f.etag();
    assert_304(f, f.get(t, &[("If-None-Match", &e)]));
    assert_304(
        f,
        f.get(t, &[("If-None-Match", &format!("\"abc\", {e}, \"def\""))]),
    );
    assert_304(f, f.get(t, &[("If-None-Match", "*")]));
    assert_304(f, f.get(t, &[("If-None-Match", &format!("W/{e}"))]));
    // With a Range too: still 304.
    assert_304(
        f,
        f.get(t, &[("If-None-Match", &e), ("Range", "bytes=0-9")]),
    );
    let r = f
        .get(t, &[("If-None-Match", "\"abc\", W/\"def\"")])
        .expect(200);
    assert!(r.body == f.data);
    // Through raw TCP: 304 has no body, the connection stays usable.
    let auth = format!("Bearer {}", f.token);
    let mut bytes = request(
        "GET",
        &t.path,
        &[("Authorization", &auth), ("If-None-Match", &e)],
        b"",
    );
    bytes.extend(request("GET", "/healthz", &[], b""));
    let mut conn = RawConn::connect(f.addr);
    conn.send(&bytes);
    conn.read_response().expect(304);
    conn.read_response().expect(200);
}

fn if_modified_since_304(f: &Fixture, t: &Target) {
    let lm = f
        .get(t, &[])
        .expect(200)
        .must_header("last-modified")
        .to_string();
    assert_304(f, f.get(t, &[("If-Modified-Since", &lm)]));
    let r = f
        .get(t, &[("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")])
        .expect(200);
    assert!(r.body == f.data);
    // If-None-Match takes precedence: a non-matching tag means 200 whatever the date says.
    f.get(
        t,
        &[("If-None-Match", "\"nope\""), ("If-Modified-Since", &lm)],
    )
    .expect(200);
    // An unparseable date is ignored.
    f.get(t, &[("If-Modified-Since", "yesterday")]).expect(200);
}

fn if_match_412(f: &Fixture, t: &Target) {
    f.get(t, &[("If-Match", "\"0000\"")])
        .expect_error(412, "precondition_failed");
    // If-Match uses the strong comparison: a weak tag never matches.
    f.get(t, &[("If-Match", &format!("W/{}", f.etag()))])
        .expect_error(412, "precondition_failed");
    f.get(t, &[("If-Match", &f.etag())]).expect(200);
    f.get(t, &[("If-Match", &format!("\"x\", {}", f.etag()))])
        .expect(200);
    f.get(t, &[("If-Match", "*")]).expect(200);
}

fn if_unmodified_since_412(f: &Fixture, t: &Target) {
    f.get(
        t,
        &[("If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:37 GMT")],
    )
    .expect_error(412, "precondition_failed");
    let tomorrow = format_http_date(now_unix_ms() / 1000 + 86_400);
    f.get(t, &[("If-Unmodified-Since", &tomorrow)]).expect(200);
    // If-Match present: If-Unmodified-Since is not evaluated.
    f.get(
        t,
        &[
            ("If-Match", &f.etag()),
            ("If-Unmodified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ],
    )
    .expect(200);
}

#[test]
fn non_ascii_filename_uses_filename_star() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let name = "Grüße 日本 résumé.txt";
    let v = c.upload(name, None, Some("text/plain"), b"hello");
    for (q, disp) in [("", "inline"), ("?download=1", "attachment")] {
        let r = c
            .get(&format!("/v1/objects/{}/content{q}", id_of(&v)))
            .expect(200);
        let cd = r.must_header("content-disposition");
        assert!(cd.is_ascii(), "Content-Disposition must be ASCII: {cd:?}");
        assert!(cd.to_ascii_lowercase().starts_with(disp), "{cd:?}");
        let (plain, ext) = disposition_filenames(cd);
        assert_eq!(
            ext.as_deref(),
            Some(name),
            "filename* must carry the UTF-8 name: {cd:?}"
        );
        if let Some(p) = plain {
            assert!(p.is_ascii(), "filename fallback must be ASCII: {cd:?}");
        }
    }
    // Quotes and backslashes in a name do not break the header.
    let tricky = "a \"quoted\" \\ name;.txt";
    let v = c.upload(tricky, None, Some("text/plain"), b"x");
    let r = c
        .get(&format!("/v1/objects/{}/content", id_of(&v)))
        .expect(200);
    let cd = r.must_header("content-disposition");
    assert_eq!(
        effective_filename_strict(cd).as_deref(),
        Some(tricky),
        "{cd:?}"
    );
}

/// Like `effective_filename` but parses quoted-strings properly (a `;` inside quotes).
fn effective_filename_strict(v: &str) -> Option<String> {
    let mut plain = None;
    let mut ext = None;
    let b = v.as_bytes();
    let mut i = v.find(';')?;
    while i < b.len() {
        i += 1; // skip ';'
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let eq = v[i..].find('=')? + i;
        let key = v[i..eq].trim().to_ascii_lowercase();
        i = eq + 1;
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch = v[i..].chars().next()?;
                val.push(ch);
                i += ch.len_utf8();
            }
            i += 1; // closing quote
            while i < b.len() && b[i] != b';' {
                i += 1;
            }
        } else {
            let end = v[i..].find(';').map_or(b.len(), |e| e + i);
            val = v[i..end].trim().to_string();
            i = end;
        }
        if key == "filename" {
            plain = Some(val);
        } else if key == "filename*" {
            ext = val.get(7..).and_then(pct_decode);
        }
    }
    ext.or(plain)
}

#[test]
fn malformed_and_unknown_hash() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    for bad in [
        "xyz".to_string(),
        "a".repeat(63),
        "a".repeat(65),
        "g".repeat(64),
        format!("{}.", "a".repeat(63)),
    ] {
        c.get(&format!("/v1/blobs/{bad}"))
            .expect_error(400, "invalid_hash");
    }
    c.get(&format!("/v1/blobs/{}", "0".repeat(64)))
        .expect_error(404, "not_found");
    c.head(&format!("/v1/blobs/{}", "0".repeat(64))).expect(404);
}

#[test]
fn text_object_content_is_text_plain() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let content = "line one\nzwei: Grüße\n";
    let v = c.create_text("n", None, content);
    let r = c.content(&id_of(&v)).expect(200);
    assert_eq!(r.text(), content);
    let ct = r
        .must_header("content-type")
        .to_ascii_lowercase()
        .replace(' ', "");
    assert_eq!(ct, "text/plain;charset=utf-8", "{}", r.describe());
    assert_eq!(
        r.header("etag"),
        Some(format!("\"{}\"", sha256_hex(content.as_bytes())).as_str())
    );
    assert_eq!(
        r.header("content-length"),
        Some(content.len().to_string().as_str())
    );
    let r = c
        .req("GET", &format!("/v1/objects/{}/content", id_of(&v)))
        .header("Range", "bytes=5-7")
        .call()
        .expect(206);
    assert_eq!(r.body, &content.as_bytes()[5..=7]);
}

#[test]
fn empty_object_content_and_ranges() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let v = c.upload("empty", None, None, b"");
    let path = format!("/v1/objects/{}/content", id_of(&v));
    let r = c.get(&path).expect(200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some("0"));
    let r = c
        .req("GET", &path)
        .header("Range", "bytes=0-0")
        .call()
        .expect_error(416, "range_not_satisfiable");
    assert_eq!(r.header("content-range"), Some("bytes */0"));
}
