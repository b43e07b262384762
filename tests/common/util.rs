//! Small helpers with no I/O of their own: hashing, deterministic test data, percent
//! encoding, RFC 3339 / IMF-fixdate parsing, multipart bodies (building
//! `multipart/form-data`, parsing `multipart/byteranges`), Prometheus text parsing and
//! polling with a deadline.
//!
//! Written by hand rather than pulling in crates (rand, httpdate, chrono, multipart) so
//! the suite's dev-dependencies stay small; each helper does only what the tests need.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::time::{Duration, Instant};

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// xorshift64*: deterministic, seedable test data (not cryptographic).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
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
}

/// Random bytes of length `n` from `seed`.
pub fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    Rng::new(seed).bytes(n)
}

/// A `Read` that produces `len` pseudo-random bytes without holding them, hashing them as
/// they go out, so a test can stream a 100 MiB body and still know its SHA-256.
///
/// It repeats one 64 KiB random block with the block number XORed into its first
/// 8 bytes (cheap in a debug build, and no two blocks are equal).
#[derive(Debug)]
pub struct Generator {
    block: Vec<u8>,
    len: u64,
    pos: u64,
    hasher: Sha256,
}

const GEN_BLOCK: usize = 64 * 1024;

impl Generator {
    pub fn new(seed: u64, len: u64) -> Generator {
        Generator {
            block: random_bytes(seed, GEN_BLOCK),
            len,
            pos: 0,
            hasher: Sha256::new(),
        }
    }
    /// SHA-256 of everything read so far (call after the body was fully sent).
    pub fn sha256_hex(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }
    pub fn bytes_read(&self) -> u64 {
        self.pos
    }
}

impl Read for Generator {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len {
            return Ok(0);
        }
        let block_no = self.pos / GEN_BLOCK as u64;
        let off = (self.pos % GEN_BLOCK as u64) as usize;
        let n = buf
            .len()
            .min(GEN_BLOCK - off)
            .min((self.len - self.pos) as usize);
        buf[..n].copy_from_slice(&self.block[off..off + n]);
        // XOR the block number into the block's first 8 bytes.
        let tweak = block_no.to_le_bytes();
        for i in off..(off + n).min(8) {
            buf[i - off] ^= tweak[i];
        }
        self.hasher.update(&buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// A shared Generator handle, so the test can read the hash after ureq consumed the reader.
#[derive(Debug, Clone)]
pub struct SharedGenerator(pub std::sync::Arc<std::sync::Mutex<Generator>>);

impl SharedGenerator {
    pub fn new(seed: u64, len: u64) -> SharedGenerator {
        SharedGenerator(std::sync::Arc::new(std::sync::Mutex::new(Generator::new(
            seed, len,
        ))))
    }
    pub fn sha256_hex(&self) -> String {
        self.0.lock().unwrap().sha256_hex()
    }
    pub fn bytes_read(&self) -> u64 {
        self.0.lock().unwrap().bytes_read()
    }
}

impl Read for SharedGenerator {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().read(buf)
    }
}

/// Percent-encodes everything except RFC 3986 unreserved characters (for query values).
pub fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (either hex case); `None` on a broken escape or bad UTF-8.
pub fn pct_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn num(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A parsed RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rfc3339 {
    /// Unix time in milliseconds (fraction truncated to millis).
    pub unix_ms: i64,
    /// Digits after the decimal point (0 when absent).
    pub frac_digits: usize,
    /// True when the offset is `Z` (or `z`).
    pub zulu: bool,
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)` (RFC 3339 `date-time`).
pub fn parse_rfc3339(s: &str) -> Option<Rfc3339> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let y = num(&s[0..4])? as i64;
    let mo = num(&s[5..7])?;
    let d = num(&s[8..10])?;
    let h = num(&s[11..13])?;
    let mi = num(&s[14..16])?;
    let se = num(&s[17..19])?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut ms = 0i64;
    let mut frac_digits = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let frac = &r[..n];
        frac_digits = n;
        let mut padded = frac.to_string();
        padded.push_str("000");
        ms = padded[..3].parse().ok()?;
        rest = &r[n..];
    }
    let (zulu, offset_min) = match rest {
        "Z" | "z" => (true, 0i64),
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            if &rest[3..4] != ":" {
                return None;
            }
            let oh = num(&rest[1..3])? as i64;
            let om = num(&rest[4..6])? as i64;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            (false, sign * (oh * 60 + om))
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + se as i64 - offset_min * 60;
    Some(Rfc3339 {
        unix_ms: secs * 1000 + ms,
        frac_digits,
        zulu,
    })
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 5.6.7) to unix seconds.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split(' ').collect();
    if parts.len() != 6 || parts[5] != "GMT" || !parts[0].ends_with(',') {
        return None;
    }
    let wd = parts[0].trim_end_matches(',');
    if parts[1].len() != 2 || parts[3].len() != 4 || parts[4].len() != 8 {
        return None;
    }
    let d = num(parts[1])?;
    let mo = MONTHS.iter().position(|m| *m == parts[2])? as u32 + 1;
    let y = num(parts[3])?;
    let t: Vec<&str> = parts[4].split(':').collect();
    if t.len() != 3 || t.iter().any(|x| x.len() != 2) {
        return None;
    }
    let (h, mi, se) = (num(t[0])?, num(t[1])?, num(t[2])?);
    let days = days_from_civil(y as i64, mo, d);
    if WEEKDAYS[days.rem_euclid(7) as usize] != wd {
        return None;
    }
    Some(days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + se as i64)
}

/// Formats unix seconds as an IMF-fixdate.
pub fn format_http_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let rem = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[m as usize - 1],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One part of a `multipart/form-data` body under construction.
#[derive(Debug, Clone)]
pub enum Part {
    Field {
        name: String,
        value: Vec<u8>,
    },
    File {
        name: String,
        filename: String,
        content_type: Option<String>,
        data: Vec<u8>,
    },
}

/// Builds a `multipart/form-data` body (RFC 7578).
#[derive(Debug, Clone)]
pub struct Multipart {
    pub boundary: String,
    pub parts: Vec<Part>,
}

impl Default for Multipart {
    fn default() -> Self {
        Self::new()
    }
}

impl Multipart {
    pub fn new() -> Multipart {
        Multipart {
            boundary: "----ringboxTestBoundary7MA4YWxkTrZu0gW".into(),
            parts: vec![],
        }
    }
    pub fn field(mut self, name: &str, value: &str) -> Multipart {
        self.parts.push(Part::Field {
            name: name.into(),
            value: value.as_bytes().to_vec(),
        });
        self
    }
    pub fn file(
        mut self,
        name: &str,
        filename: &str,
        content_type: Option<&str>,
        data: &[u8],
    ) -> Multipart {
        self.parts.push(Part::File {
            name: name.into(),
            filename: filename.into(),
            content_type: content_type.map(Into::into),
            data: data.to_vec(),
        });
        self
    }
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }
    pub fn body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.parts {
            out.extend_from_slice(format!("--{}\r\n", self.boundary).as_bytes());
            match p {
                Part::Field { name, value } => {
                    out.extend_from_slice(
                        format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                            .as_bytes(),
                    );
                    out.extend_from_slice(value);
                }
                Part::File {
                    name,
                    filename,
                    content_type,
                    data,
                } => {
                    out.extend_from_slice(
                        format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n")
                            .as_bytes(),
                    );
                    if let Some(ct) = content_type {
                        out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(data);
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        out
    }
}

/// One part of a `multipart/byteranges` response.
#[derive(Debug, Clone)]
pub struct BytePart {
    pub headers: Vec<(String, String)>,
    pub data: Vec<u8>,
}

impl BytePart {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Extracts a parameter (e.g. `boundary`) from a media type, unquoting it.
pub fn media_type_param(ct: &str, param: &str) -> Option<String> {
    for p in ct.split(';').skip(1) {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case(param) {
            return Some(v.trim().trim_matches('"').to_string());
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

/// Parses a `multipart/byteranges` body (RFC 9110 14.6). Returns an error message
/// describing the first structural problem.
pub fn parse_byteranges(body: &[u8], boundary: &str) -> Result<Vec<BytePart>, String> {
    let delim = format!("--{boundary}");
    let mut pos = find(body, delim.as_bytes(), 0).ok_or("no first boundary")?;
    let mut parts = vec![];
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            return Ok(parts);
        }
        if !body[pos..].starts_with(b"\r\n") {
            return Err(format!("boundary at {pos} not followed by CRLF"));
        }
        pos += 2;
        let head_end = find(body, b"\r\n\r\n", pos).ok_or("part head not terminated")?;
        let head = std::str::from_utf8(&body[pos..head_end]).map_err(|_| "part head not UTF-8")?;
        let mut headers = vec![];
        for line in head.split("\r\n").filter(|l| !l.is_empty()) {
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| format!("bad part header {line:?}"))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let data_start = head_end + 4;
        let next = find(body, format!("\r\n{delim}").as_bytes(), data_start)
            .ok_or("part data not terminated")?;
        parts.push(BytePart {
            headers,
            data: body[data_start..next].to_vec(),
        });
        pos = next + 2;
    }
}

/// Parses `bytes FIRST-LAST/LEN` (or `bytes */LEN`) into (Some((first,last)), len).
pub fn parse_content_range(v: &str) -> Option<(Option<(u64, u64)>, u64)> {
    let rest = v.strip_prefix("bytes ")?;
    let (range, len) = rest.split_once('/')?;
    let len = len.trim().parse().ok()?;
    if range == "*" {
        return Some((None, len));
    }
    let (a, b) = range.split_once('-')?;
    Some((Some((a.parse().ok()?, b.parse().ok()?)), len))
}

/// One sample of the Prometheus text exposition format.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses Prometheus text format 0.0.4 (comments skipped). Panics on a line it cannot
/// read, since a scraper would choke on it too.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = vec![];
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, rest) = match line.find('{') {
            Some(_) => {
                let close = line
                    .rfind('}')
                    .unwrap_or_else(|| panic!("metrics line without '}}': {line:?}"));
                (&line[..close + 1], &line[close + 1..])
            }
            None => line.split_at(
                line.find(' ')
                    .unwrap_or_else(|| panic!("metrics line without value: {line:?}")),
            ),
        };
        let value_str = rest
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let value: f64 = match value_str {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad metrics value in {line:?}")),
        };
        let (name, labels) = match series.find('{') {
            Some(i) => {
                let inner = &series[i + 1..series.len() - 1];
                let mut labels = vec![];
                let mut rest = inner;
                while !rest.trim().is_empty() {
                    let (k, r) = rest
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad labels in {line:?}"));
                    // value runs to the next unescaped quote
                    let mut end = None;
                    let rb = r.as_bytes();
                    let mut j = 0;
                    while j < rb.len() {
                        if rb[j] == b'\\' {
                            j += 2;
                            continue;
                        }
                        if rb[j] == b'"' {
                            end = Some(j);
                            break;
                        }
                        j += 1;
                    }
                    let end = end.unwrap_or_else(|| panic!("unterminated label value in {line:?}"));
                    labels.push((
                        k.trim().trim_start_matches(',').trim().to_string(),
                        r[..end].to_string(),
                    ));
                    rest = r[end + 1..].trim_start_matches(',');
                }
                (series[..i].to_string(), labels)
            }
            None => (series.trim().to_string(), vec![]),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// Sum of all samples named `name` whose labels include every `(k, v)` of `filter`.
pub fn metric_sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && filter.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

/// Polls `f` every 20 ms until it returns `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every regular file under `dir`, recursively (empty when `dir` does not exist).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

#[test]
fn helpers_self_check() {
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let t = parse_rfc3339("2024-02-29T23:59:58.123Z").unwrap();
    assert_eq!(t.unix_ms, 1_709_251_198_123);
    assert!(t.zulu && t.frac_digits == 3);
    assert_eq!(
        parse_rfc3339("1970-01-01T01:00:00+01:00").unwrap().unix_ms,
        0
    );
    assert!(parse_rfc3339("2024-02-29 junk").is_none());
    assert_eq!(
        parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(784_111_777)
    );
    assert_eq!(
        format_http_date(784_111_777),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    assert_eq!(pct("a b/ü"), "a%20b%2F%C3%BC");
    assert_eq!(pct_decode("a%20b%2f%C3%BC").unwrap(), "a b/ü");
    let mut g = Generator::new(1, 200_000);
    let mut all = vec![];
    g.read_to_end(&mut all).unwrap();
    assert_eq!(all.len(), 200_000);
    assert_eq!(g.sha256_hex(), sha256_hex(&all));
    assert_ne!(&all[..GEN_BLOCK], &all[GEN_BLOCK..2 * GEN_BLOCK]);
    let m = parse_metrics("# HELP x\nringbox_requests_total{route=\"a\",status=\"200\"} 3\nringbox_open_connections 2\n");
    assert_eq!(
        metric_sum(&m, "ringbox_requests_total", &[("status", "200")]),
        3.0
    );
    assert_eq!(metric_sum(&m, "ringbox_open_connections", &[]), 2.0);
}
