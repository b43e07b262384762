//! Writing response heads: status line, header fields, `Content-Length`, a cached
//! `Date`, and RFC 6266 `Content-Disposition` values.
//!
//! # Contract
//!
//! Every writer appends to a caller-owned `Vec<u8>` (the connection's reused write
//! buffer), so a whole head is built without allocating once the buffer has grown.
//! Callers pass valid values: header names are tokens and values contain no CR or LF
//! (checked with `debug_assert!` only, since every value is produced by our code or
//! validated where it came in). Time is an input: [`DateCache`] is told the current
//! unix time by the daemon and reformats only when the second changes.
//!
//! # Deliberately not done
//!
//! * Only `HTTP/1.1` status lines: we answer 1.0 clients in 1.1 as RFC 9110 §2.5
//!   requires (the major version is what matters).
//! * Dates after 9999-12-31T23:59:59Z are clamped to it: IMF-fixdate has a four-digit
//!   year and a fixed 29-byte length.
//! * No header folding, no validation of values at run time (see above), no
//!   `Content-Disposition` parsing (that is in `multipart`).

use std::fmt::Write as _;

/// The registered reason phrase for `status` (RFC 9110 §15 and the IANA registry),
/// or `""` for an unregistered code (RFC 9112 §4: the reason-phrase may be empty and
/// clients must ignore it).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        511 => "Network Authentication Required",
        _ => "",
    }
}

/// Appends "HTTP/1.1 <status> <reason>\r\n".
///
/// ```text
/// status-line = HTTP-version SP status-code SP [ reason-phrase ]   ; RFC 9112 §4
/// status-code = 3DIGIT
/// ```
pub fn write_status_line(out: &mut Vec<u8>, status: u16) {
    debug_assert!((100..=999).contains(&status), "status-code is 3DIGIT");
    out.extend_from_slice(b"HTTP/1.1 ");
    write_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends "<name>: <value>\r\n". (Callers pass valid values; debug_assert no CR/LF.)
///
/// ```text
/// field-line = field-name ":" OWS field-value OWS   ; RFC 9112 §5
/// ```
pub fn write_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    debug_assert!(
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':'),
        "header name must be a token: {name:?}"
    );
    debug_assert!(
        !value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0),
        "header value must not contain CR, LF or NUL"
    );
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends "Content-Length: <n>\r\n" without allocating (itoa-style).
pub fn write_content_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"Content-Length: ");
    write_decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

/// Appends the decimal digits of `n` using a stack buffer (u64::MAX has 20 digits).
fn write_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// 9999-12-31T23:59:59Z, the last instant IMF-fixdate's four-digit year can show.
const MAX_FIXDATE_SECS: u64 = 253_402_300_799;

/// IMF-fixdate, exactly 29 bytes: "Sun, 06 Nov 1994 08:49:37 GMT". Times after the
/// year 9999 are clamped to its last second.
///
/// ```text
/// IMF-fixdate  = day-name "," SP date1 SP time-of-day SP GMT   ; RFC 9110 §5.6.7
/// date1        = day SP month SP year     ; e.g., 02 Jun 1982
/// time-of-day  = hour ":" minute ":" second
/// ```
pub fn format_imf_fixdate(unix_secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let secs = unix_secs.min(MAX_FIXDATE_SECS);
    let days = secs / 86_400;
    let in_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 4 with Sunday = 0).
    let weekday = ((days + 4) % 7) as usize;

    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[0..3].copy_from_slice(DAYS[weekday]);
    put2(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    put2(&mut out[12..14], year / 100);
    put2(&mut out[14..16], year % 100);
    put2(&mut out[17..19], in_day / 3600);
    put2(&mut out[20..22], in_day / 60 % 60);
    put2(&mut out[23..25], in_day % 60);
    out
}

/// Write `n` (< 100) as two ASCII digits.
fn put2(dst: &mut [u8], n: u64) {
    dst[0] = b'0' + (n / 10 % 10) as u8;
    dst[1] = b'0' + (n % 10) as u8;
}

/// (year, month 1..=12, day 1..=31) of the proleptic Gregorian calendar for a count of
/// days since 1970-01-01, after Howard Hinnant's `civil_from_days`: shift to eras of
/// 400 years (146097 days) starting on 0000-03-01, so the leap day is the last day of
/// a shifted year and every step is plain integer division. Unsigned, because we only
/// format times from 1970 on.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let doe = z - era * 146_097; // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year
    let mp = (5 * doy + 2) / 153; // March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Cached "Date" value: time is an input. update() reformats only when the second changed.
#[derive(Debug)]
pub struct DateCache {
    secs: u64,
    value: [u8; 29],
}

impl DateCache {
    /// A cache showing `unix_secs`.
    pub fn new(unix_secs: u64) -> Self {
        DateCache {
            secs: unix_secs,
            value: format_imf_fixdate(unix_secs),
        }
    }

    /// Move to `unix_secs`; formats only if the second differs from the cached one.
    pub fn update(&mut self, unix_secs: u64) {
        if unix_secs != self.secs {
            self.secs = unix_secs;
            self.value = format_imf_fixdate(unix_secs);
        }
    }

    /// The IMF-fixdate for the last time given, ready for `write_header(out, "Date", ..)`.
    pub fn value(&self) -> &[u8] {
        &self.value
    }
}

/// The disposition type of a `Content-Disposition` response header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DispositionKind {
    /// Show in the browser if it can.
    Inline,
    /// Download as a file.
    Attachment,
}

/// RFC 6266 value: `inline; filename="fallback"; filename*=UTF-8''percent-encoded`
/// (ASCII fallback replaces non-ASCII/quotes/backslash/control with '_'; filename* only when needed).
///
/// ```text
/// content-disposition = "Content-Disposition" ":"
///                        disposition-type *( ";" disposition-parm )   ; RFC 6266 §4.1
/// filename-parm       = "filename" "=" value
///                     / "filename*" "=" ext-value
/// ext-value     = charset  "'" [ language ] "'" value-chars           ; RFC 5987 §3.2
/// value-chars   = *( pct-encoded / attr-char )
/// attr-char     = ALPHA / DIGIT
///               / "!" / "#" / "$" / "&" / "+" / "-" / "."
///               / "^" / "_" / "`" / "|" / "~"
/// ```
/// `%` is also replaced in the fallback (and triggers `filename*`): RFC 6266 Appendix D
/// warns that some user agents percent-decode the plain `filename`. An empty name gives
/// the bare disposition type.
pub fn content_disposition(kind: DispositionKind, filename: &str) -> String {
    let kind_str = match kind {
        DispositionKind::Inline => "inline",
        DispositionKind::Attachment => "attachment",
    };
    if filename.is_empty() {
        return kind_str.to_string();
    }
    let mut out = String::with_capacity(kind_str.len() + 13 + filename.len() * 4);
    out.push_str(kind_str);
    out.push_str("; filename=\"");
    let mut needs_ext = false;
    for c in filename.chars() {
        if c.is_ascii() && !c.is_ascii_control() && !matches!(c, '"' | '\\' | '%') {
            out.push(c);
        } else {
            out.push('_');
            needs_ext = true;
        }
    }
    out.push('"');
    if needs_ext {
        out.push_str("; filename*=UTF-8''");
        for &b in filename.as_bytes() {
            if is_attr_char(b) {
                out.push(char::from(b));
            } else {
                // Writing to a String cannot fail.
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// `attr-char` of RFC 5987 §3.2.1.
fn is_attr_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let mut out = Vec::new();
        write_status_line(&mut out, 200);
        write_status_line(&mut out, 431);
        write_status_line(&mut out, 599);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nHTTP/1.1 431 Request Header Fields Too Large\r\nHTTP/1.1 599 \r\n"
        );
    }

    #[test]
    fn every_status_we_send_has_a_reason() {
        for s in [
            100, 101, 200, 201, 204, 206, 301, 304, 400, 401, 403, 404, 405, 408, 409, 410, 411,
            412, 413, 414, 415, 416, 417, 422, 426, 429, 431, 500, 501, 503, 505, 507,
        ] {
            assert!(!reason_phrase(s).is_empty(), "{s}");
        }
        assert_eq!(reason_phrase(413), "Content Too Large");
        assert_eq!(reason_phrase(999), "");
    }

    #[test]
    fn headers_and_content_length() {
        let mut out = Vec::new();
        write_header(&mut out, "ETag", b"\"abc\"");
        for n in [0, 7, 10, 1234567890, u64::MAX] {
            write_content_length(&mut out, n);
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ETag: \"abc\"\r\nContent-Length: 0\r\nContent-Length: 7\r\nContent-Length: 10\r\n\
             Content-Length: 1234567890\r\nContent-Length: 18446744073709551615\r\n"
        );
    }

    #[test]
    fn content_length_does_not_allocate_once_grown() {
        let mut out = Vec::with_capacity(64);
        let ptr = out.as_ptr();
        write_content_length(&mut out, u64::MAX);
        assert_eq!(out.as_ptr(), ptr);
    }

    #[test]
    #[should_panic]
    #[cfg(debug_assertions)]
    fn header_value_with_crlf_is_a_bug() {
        write_header(&mut Vec::new(), "X", b"a\r\nSet-Cookie: x");
    }

    #[test]
    fn known_dates() {
        let cases: [(u64, &str); 8] = [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (951_868_800, "Wed, 01 Mar 2000 00:00:00 GMT"),
            (1_700_000_000, "Tue, 14 Nov 2023 22:13:20 GMT"),
            (4_107_542_399, "Sun, 28 Feb 2100 23:59:59 GMT"),
            (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 GMT"),
            (MAX_FIXDATE_SECS, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        for (secs, want) in cases {
            assert_eq!(
                std::str::from_utf8(&format_imf_fixdate(secs)).unwrap(),
                want
            );
        }
        assert_eq!(
            format_imf_fixdate(u64::MAX),
            format_imf_fixdate(MAX_FIXDATE_SECS)
        );
    }

    /// Compare civil_from_days with a naive day-by-day calendar walk over 1970..2500.
    #[test]
    fn civil_from_days_matches_a_naive_calendar() {
        let leap = |y: u64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..(530 * 366) {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let month_len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > month_len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn date_cache_reformats_only_on_a_new_second() {
        let mut cache = DateCache::new(784_111_777);
        assert_eq!(cache.value(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        cache.update(784_111_777);
        assert_eq!(cache.value(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        cache.update(784_111_778);
        assert_eq!(cache.value(), b"Sun, 06 Nov 1994 08:49:38 GMT");
        // Time going backwards (clock step) is just another second.
        cache.update(0);
        assert_eq!(cache.value(), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn dispositions() {
        use DispositionKind::*;
        let cases: [(DispositionKind, &str, &str); 8] = [
            (Inline, "report.pdf", "inline; filename=\"report.pdf\""),
            (Attachment, "a b.txt", "attachment; filename=\"a b.txt\""),
            (Attachment, "", "attachment"),
            (
                Attachment,
                "naïve café.txt",
                "attachment; filename=\"na_ve caf_.txt\"; filename*=UTF-8''na%C3%AFve%20caf%C3%A9.txt",
            ),
            (
                Inline,
                "say \"hi\"\\.txt",
                "inline; filename=\"say _hi__.txt\"; filename*=UTF-8''say%20%22hi%22%5C.txt",
            ),
            (
                Attachment,
                "evil\r\nSet-Cookie: x",
                "attachment; filename=\"evil__Set-Cookie: x\"; filename*=UTF-8''evil%0D%0ASet-Cookie%3A%20x",
            ),
            (
                Attachment,
                "100%.txt",
                "attachment; filename=\"100_.txt\"; filename*=UTF-8''100%25.txt",
            ),
            (
                Inline,
                "😀",
                "inline; filename=\"_\"; filename*=UTF-8''%F0%9F%98%80",
            ),
        ];
        for (kind, name, want) in cases {
            let got = content_disposition(kind, name);
            assert_eq!(got, want);
            assert!(got.is_ascii() && !got.contains(['\r', '\n']));
        }
        // attr-char passes through unencoded.
        assert!(content_disposition(Inline, "é!#$&+-.^_`|~")
            .ends_with("filename*=UTF-8''%C3%A9!#$&+-.^_`|~"));
    }
}
