//! `Range: bytes=...` requests (RFC 9110 §14): parsing, resolution against a
//! representation length, `If-Range`, `Content-Range` values and the part heads of a
//! `multipart/byteranges` response.
//!
//! Contract:
//! - [`parse_range`] accepts only the `bytes` unit (case-insensitive) and the three
//!   forms `first-last`, `first-` and `-suffix`, in a comma-separated list with
//!   optional whitespace and empty elements (RFC 9110 §5.6.1). Anything else is an
//!   error, which the caller answers by *ignoring* the header and serving 200
//!   (RFC 9110 §14.2: a server MAY ignore the Range header field).
//! - More than [`Limits::max_ranges`] range-specs is also an error, so the header is
//!   ignored (nginx `max_ranges`): "thousands of tiny overlapping ranges" cannot turn
//!   one request into an amplified multipart response.
//! - [`resolve_range`] turns the specs into half-open [`ByteRange`]s inside the length,
//!   sorted by start and coalesced (overlapping *and* adjacent ranges are merged), or
//!   reports that none is satisfiable (416), or that the header is to be ignored.
//! - Numbers too large for `u64` saturate at `u64::MAX`: since every length is a
//!   `u64`, a position beyond it behaves exactly like `u64::MAX` for every length (a
//!   first-pos beyond the end, a last-pos clamped to `len - 1`, a suffix covering the
//!   whole representation). `last < first` is still decided exactly, on the digits.
//! - [`ByteRangesWriter`] never touches the body: it yields the bytes that go between
//!   the ranges, so the daemon can send file bytes itself (sendfile, splice, mmap).
//!
//! Deliberately not done:
//! - Ranges are returned sorted, not in request order (RFC 9110 §14.2 says a server
//!   SHOULD keep request order). Sorting is what makes coalescing cheap and the output
//!   canonical; every part carries its own `Content-Range`, so clients cope.
//! - No other range units and no `other-range` syntax: they are ignored as a whole.
//! - No heuristics about "too many small ranges" beyond `max_ranges` and coalescing.
//! - `If-Range` with a date does not check that `Last-Modified` is at least one second
//!   older than `Date` (RFC 9110 §8.8.2.2 strong-date rule): there is no clock here.

use crate::conditional::{parse_entity_tag, parse_http_date};
use crate::error::HttpError;
use crate::limits::Limits;

/// Half-open byte range `[start, end)` inside a representation; `start < end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte position (inclusive).
    pub start: u64,
    /// One past the last byte position (exclusive).
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range is empty (never true for ranges produced by this module).
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Last byte position (inclusive), i.e. `end - 1`, as written in `Content-Range`.
    pub fn last(&self) -> u64 {
        self.end.saturating_sub(1)
    }
}

/// One `range-spec` of a `Range: bytes=` header, as written by the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last`, both inclusive; `first <= last`.
    FromTo(u64, u64),
    /// `first-`: from `first` to the end.
    From(u64),
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

/// Why a `Range` header is not used. The daemon ignores the header on any of these
/// (serving 200, RFC 9110 §14.2); the status is for a caller that wants to be strict.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// A unit other than `bytes`.
    #[error("unsupported range unit; only `Range: bytes=first-last` (or `first-`, `-suffix`) is supported")]
    UnknownUnit,
    /// Not `bytes=` followed by a list of range-specs.
    #[error("malformed Range header ({0}); send `Range: bytes=first-last`, `bytes=first-` or `bytes=-suffix`, comma-separated")]
    Malformed(&'static str),
    /// `first-last` with `last < first`.
    #[error(
        "a range ends before it starts; in `bytes=first-last` last must not be smaller than first"
    )]
    LastBeforeFirst,
    /// More range-specs than [`Limits::max_ranges`].
    #[error("more than {max} ranges in one Range header; ask for at most {max} ranges")]
    TooManyRanges {
        /// The configured limit.
        max: usize,
    },
}

impl HttpError for RangeError {
    fn status(&self) -> u16 {
        416
    }

    fn code(&self) -> &'static str {
        match self {
            RangeError::TooManyRanges { .. } => "too_many_ranges",
            _ => "invalid_range",
        }
    }

    /// The request framing is intact: a bad `Range` never closes the connection.
    fn must_close(&self) -> bool {
        false
    }
}

/// Parse a `Range` header value into its range-specs, in request order.
///
/// ```text
/// Range             = ranges-specifier
/// ranges-specifier  = range-unit "=" range-set
/// range-unit        = token                      ; case-insensitive
/// range-set         = 1#range-spec
/// range-spec        = int-range / suffix-range / other-range
/// int-range         = first-pos "-" [ last-pos ]
/// first-pos         = 1*DIGIT
/// last-pos          = 1*DIGIT
/// suffix-range      = "-" suffix-length
/// suffix-length     = 1*DIGIT
/// #element          = [ element ] *( OWS "," OWS [ element ] )   ; RFC 9110 §5.6.1.2
/// ```
///
/// Syntactically invalid values, `other-range`, units other than `bytes` and more than
/// `limits.max_ranges` specs are errors: the caller ignores the header.
pub fn parse_range(value: &[u8], limits: &Limits) -> Result<Vec<RangeSpec>, RangeError> {
    let value = trim_ows(value);
    let eq = value
        .iter()
        .position(|&b| b == b'=')
        .ok_or(RangeError::Malformed("no `=` after the range unit"))?;
    let (unit, set) = (&value[..eq], &value[eq + 1..]);
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return Err(if !unit.is_empty() && unit.iter().all(|&b| is_tchar(b)) {
            RangeError::UnknownUnit
        } else {
            RangeError::Malformed("the range unit is not a token")
        });
    }
    let mut specs = Vec::new();
    for element in set.split(|&b| b == b',') {
        let element = trim_ows(element);
        if element.is_empty() {
            continue; // empty list elements are allowed (RFC 9110 §5.6.1.2)
        }
        if specs.len() >= limits.max_ranges {
            return Err(RangeError::TooManyRanges {
                max: limits.max_ranges,
            });
        }
        specs.push(parse_range_spec(element)?);
    }
    if specs.is_empty() {
        return Err(RangeError::Malformed("no range-spec after `bytes=`"));
    }
    Ok(specs)
}

/// One `range-spec` (see [`parse_range`]), without surrounding whitespace.
fn parse_range_spec(spec: &[u8]) -> Result<RangeSpec, RangeError> {
    let dash = spec
        .iter()
        .position(|&b| b == b'-')
        .ok_or(RangeError::Malformed("a range-spec has no `-`"))?;
    let (before, after) = (&spec[..dash], &spec[dash + 1..]);
    if before.is_empty() {
        let (suffix, _) = parse_digits(after)?;
        return Ok(RangeSpec::Suffix(suffix));
    }
    let (first, first_digits) = parse_digits(before)?;
    if after.is_empty() {
        return Ok(RangeSpec::From(first));
    }
    let (last, last_digits) = parse_digits(after)?;
    if cmp_decimal(first_digits, last_digits) == std::cmp::Ordering::Greater {
        return Err(RangeError::LastBeforeFirst);
    }
    Ok(RangeSpec::FromTo(first, last))
}

/// `1*DIGIT`, saturating at `u64::MAX`. Also returns the digits without leading zeros
/// so that two numbers can be compared exactly even when both saturate.
fn parse_digits(digits: &[u8]) -> Result<(u64, &[u8]), RangeError> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(RangeError::Malformed("a position is not a decimal number"));
    }
    let value = digits.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    let significant = digits
        .iter()
        .position(|&d| d != b'0')
        .unwrap_or(digits.len());
    Ok((value, &digits[significant..]))
}

/// Compares two decimal numbers given as digit strings without leading zeros.
fn cmp_decimal(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// What to do with a request's `Range` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Serve the whole representation with 200 (no/invalid/too-many ranges, unknown unit).
    Ignore,
    /// Serve 206: non-empty, sorted, coalesced (overlapping or adjacent merged), all within len.
    Satisfiable(Vec<ByteRange>),
    /// Serve 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Parse and resolve a Range header value against a representation length.
///
/// Errors from [`parse_range`] give [`RangeOutcome::Ignore`]; see [`resolve_specs`].
pub fn resolve_range(value: &[u8], len: u64, limits: &Limits) -> RangeOutcome {
    match parse_range(value, limits) {
        Ok(specs) => resolve_specs(&specs, len),
        Err(_) => RangeOutcome::Ignore,
    }
}

/// Resolve parsed range-specs against a representation length (RFC 9110 §14.1.2):
///
/// - `first-last`: satisfiable iff `first < len`; `last >= len` is clamped to `len - 1`;
/// - `first-`: satisfiable iff `first < len`;
/// - `-suffix`: satisfiable iff `suffix > 0` and `len > 0`; a suffix longer than the
///   representation selects all of it.
///
/// The satisfiable ranges are sorted and coalesced; if none is satisfiable (including
/// any range against an empty representation) the outcome is `Unsatisfiable`. An empty
/// `specs` gives `Ignore` (there was no range to honour).
pub fn resolve_specs(specs: &[RangeSpec], len: u64) -> RangeOutcome {
    if specs.is_empty() {
        return RangeOutcome::Ignore;
    }
    let mut ranges: Vec<ByteRange> = specs
        .iter()
        .filter_map(|&spec| match spec {
            RangeSpec::FromTo(first, last) if first < len => Some(ByteRange {
                start: first,
                end: last.min(len - 1) + 1,
            }),
            RangeSpec::From(first) if first < len => Some(ByteRange {
                start: first,
                end: len,
            }),
            RangeSpec::Suffix(suffix) if suffix > 0 && len > 0 => Some(ByteRange {
                start: len.saturating_sub(suffix),
                end: len,
            }),
            _ => None,
        })
        .collect();
    if ranges.is_empty() {
        return RangeOutcome::Unsatisfiable;
    }
    ranges.sort_unstable_by_key(|r| (r.start, r.end));
    // Coalesce in place: `kept` ranges at the front are final.
    let mut kept: usize = 0;
    for i in 0..ranges.len() {
        let r = ranges[i];
        match kept.checked_sub(1).map(|last| &mut ranges[last]) {
            // `<=`: adjacent ranges are merged too, so parts are never back to back.
            Some(prev) if r.start <= prev.end => prev.end = prev.end.max(r.end),
            _ => {
                ranges[kept] = r;
                kept += 1;
            }
        }
    }
    ranges.truncate(kept);
    RangeOutcome::Satisfiable(ranges)
}

/// `If-Range` (RFC 9110 §13.1.5): true if the range may be honoured. `etag` is our
/// strong ETag including quotes (e.g. "\"abc\""); `last_modified` is unix seconds.
/// A weak ETag in If-Range never matches; a date matches only if exactly equal.
///
/// ```text
/// If-Range = entity-tag / HTTP-date
/// ```
///
/// An entity-tag matches by the strong comparison (both strong, same opaque-tag). A
/// value that is neither a valid entity-tag nor a valid HTTP-date never matches, so
/// the full representation is served, which is always safe.
pub fn if_range_matches(if_range: &[u8], etag: &str, last_modified: Option<u64>) -> bool {
    let value = trim_ows(if_range);
    if value.first() == Some(&b'"') || value.starts_with(b"W/") {
        return match (parse_entity_tag(value), parse_entity_tag(etag.as_bytes())) {
            (Some(theirs), Some(ours)) => theirs.strong_eq(&ours),
            _ => false,
        };
    }
    match (parse_http_date(value), last_modified) {
        (Some(date), Some(modified)) => date == modified,
        _ => false,
    }
}

/// `Content-Range` of one satisfied range: `"bytes 0-99/1000"`.
///
/// ```text
/// Content-Range       = range-unit SP ( range-resp / unsatisfied-range )
/// range-resp          = incl-range "/" ( complete-length / "*" )
/// incl-range          = first-pos "-" last-pos
/// ```
pub fn content_range(r: ByteRange, len: u64) -> String {
    format!("bytes {}-{}/{}", r.start, r.last(), len)
}

/// `Content-Range` of a 416 response: `"bytes */1000"`.
///
/// ```text
/// unsatisfied-range   = "*/" complete-length
/// ```
pub fn unsatisfied_content_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// multipart/byteranges writer: yields the part heads so the daemon can send the file
/// bytes between them itself (no copying of the body through this type).
///
/// The body is, for ranges `r0 .. rn` (RFC 9110 §14.6, RFC 2046 §5.1.1):
///
/// ```text
/// --B CRLF Content-Type: T CRLF Content-Range: bytes r0 CRLF CRLF <bytes of r0>
/// CRLF --B CRLF Content-Type: T CRLF Content-Range: bytes r1 CRLF CRLF <bytes of r1>
/// ...
/// CRLF --B-- CRLF
/// ```
///
/// An empty `content_type` omits the part's `Content-Type` line.
#[derive(Debug, Clone)]
pub struct ByteRangesWriter {
    boundary: String,
    content_type: String,
    total_len: u64,
}

/// `"Content-Type: "`.
const CONTENT_TYPE_PREFIX: &[u8] = b"Content-Type: ";
/// `"Content-Range: bytes "`.
const CONTENT_RANGE_PREFIX: &[u8] = b"Content-Range: bytes ";

impl ByteRangesWriter {
    /// `boundary`: caller-chosen token (e.g. 20+ hex chars from a random source).
    /// `content_type`: the representation's media type, repeated in every part.
    /// `total_len`: the representation's complete length.
    pub fn new(boundary: &str, content_type: &str, total_len: u64) -> Self {
        debug_assert!(
            !boundary.is_empty() && boundary.len() <= 70 && boundary.bytes().all(is_tchar),
            "the byteranges boundary must be 1..=70 token characters"
        );
        debug_assert!(
            !content_type.bytes().any(|b| b == b'\r' || b == b'\n'),
            "a Content-Type must not contain CR or LF"
        );
        Self {
            boundary: boundary.to_owned(),
            content_type: content_type.to_owned(),
            total_len,
        }
    }

    /// The response Content-Type value: "multipart/byteranges; boundary=..."
    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// Bytes to send before range number `index` ("\r\n--B\r\nContent-Type: ...\r\nContent-Range: ...\r\n\r\n";
    /// the first part has no leading CRLF).
    pub fn part_head(&self, index: usize, r: ByteRange) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.part_head_len(index, r) as usize);
        if index > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(self.boundary.as_bytes());
        out.extend_from_slice(b"\r\n");
        if !self.content_type.is_empty() {
            out.extend_from_slice(CONTENT_TYPE_PREFIX);
            out.extend_from_slice(self.content_type.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(CONTENT_RANGE_PREFIX);
        out.extend_from_slice(format!("{}-{}/{}", r.start, r.last(), self.total_len).as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out
    }

    /// Bytes after the last part: "\r\n--B--\r\n".
    pub fn trailer(&self) -> Vec<u8> {
        format!("\r\n--{}--\r\n", self.boundary).into_bytes()
    }

    /// Exact total body length for Content-Length.
    ///
    /// Saturates at `u64::MAX` (only reachable with ranges of nearly 2^64 bytes, which
    /// no stored representation has; the sum must still not overflow).
    pub fn body_len(&self, ranges: &[ByteRange]) -> u64 {
        ranges
            .iter()
            .enumerate()
            .fold(self.trailer_len(), |acc, (i, &r)| {
                acc.saturating_add(self.part_head_len(i, r))
                    .saturating_add(r.len())
            })
    }

    /// `part_head(index, r).len()`, computed without allocating.
    fn part_head_len(&self, index: usize, r: ByteRange) -> u64 {
        let leading_crlf = if index > 0 { 2 } else { 0 };
        let delimiter_line = 2 + self.boundary.len() + 2;
        let content_type_line = if self.content_type.is_empty() {
            0
        } else {
            CONTENT_TYPE_PREFIX.len() + self.content_type.len() + 2
        };
        let content_range_line = CONTENT_RANGE_PREFIX.len()
            + decimal_len(r.start)
            + 1
            + decimal_len(r.last())
            + 1
            + decimal_len(self.total_len)
            + 4;
        (leading_crlf + delimiter_line + content_type_line + content_range_line) as u64
    }

    /// `trailer().len()`.
    fn trailer_len(&self) -> u64 {
        (2 + 2 + self.boundary.len() + 2 + 2) as u64
    }
}

/// Number of decimal digits of `n`.
fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// `OWS = *( SP / HTAB )`, removed from both ends.
pub(crate) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// `tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA`
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use RangeSpec::{From, FromTo, Suffix};

    fn limits() -> Limits {
        Limits::default()
    }

    /// `name: "header" => Ok([specs]) | Err(error)` — one test per parse case.
    macro_rules! parse_cases {
        ($($name:ident: $value:expr => $expected:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(parse_range($value, &limits()), $expected, "{:?}", $value);
            }
        )*};
    }

    const MALFORMED: fn(&'static str) -> RangeError = RangeError::Malformed;

    parse_cases! {
        parse_from_to: b"bytes=0-499" => Ok(vec![FromTo(0, 499)]);
        parse_from: b"bytes=9500-" => Ok(vec![From(9500)]);
        parse_suffix: b"bytes=-500" => Ok(vec![Suffix(500)]);
        parse_single_byte: b"bytes=0-0" => Ok(vec![FromTo(0, 0)]);
        parse_list: b"bytes=0-0,-1" => Ok(vec![FromTo(0, 0), Suffix(1)]);
        parse_list_ows: b"bytes=500-600 , 601-999,\t1000-" => Ok(vec![FromTo(500, 600), FromTo(601, 999), From(1000)]);
        parse_empty_elements: b"bytes=,0-1,, ,2-3," => Ok(vec![FromTo(0, 1), FromTo(2, 3)]);
        parse_unit_case_insensitive: b"Bytes=1-2" => Ok(vec![FromTo(1, 2)]);
        parse_unit_upper: b"BYTES=1-" => Ok(vec![From(1)]);
        parse_outer_ows: b"  bytes=1-2  " => Ok(vec![FromTo(1, 2)]);
        parse_space_after_eq: b"bytes= 1-2" => Ok(vec![FromTo(1, 2)]);
        parse_leading_zeros: b"bytes=007-0010" => Ok(vec![FromTo(7, 10)]);
        parse_suffix_zero: b"bytes=-0" => Ok(vec![Suffix(0)]);
        parse_overflow_last_saturates: b"bytes=0-99999999999999999999999" => Ok(vec![FromTo(0, u64::MAX)]);
        parse_overflow_first_saturates: b"bytes=99999999999999999999999-" => Ok(vec![From(u64::MAX)]);
        parse_overflow_suffix_saturates: b"bytes=-99999999999999999999999" => Ok(vec![Suffix(u64::MAX)]);
        parse_overflow_both_ordered: b"bytes=99999999999999999999998-99999999999999999999999" => Ok(vec![FromTo(u64::MAX, u64::MAX)]);
        parse_u64_max: b"bytes=18446744073709551615-18446744073709551615" => Ok(vec![FromTo(u64::MAX, u64::MAX)]);
        parse_sixteen_ranges: b"bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15" => Ok((0..16).map(|i| FromTo(i, i)).collect());

        parse_err_other_unit: b"items=0-5" => Err(RangeError::UnknownUnit);
        parse_err_no_eq: b"bytes" => Err(MALFORMED("no `=` after the range unit"));
        parse_err_empty: b"" => Err(MALFORMED("no `=` after the range unit"));
        parse_err_empty_unit: b"=0-5" => Err(MALFORMED("the range unit is not a token"));
        parse_err_space_before_eq: b"bytes =0-5" => Err(MALFORMED("the range unit is not a token"));
        parse_err_no_specs: b"bytes=" => Err(MALFORMED("no range-spec after `bytes=`"));
        parse_err_only_commas: b"bytes=, ,," => Err(MALFORMED("no range-spec after `bytes=`"));
        parse_err_no_dash: b"bytes=5" => Err(MALFORMED("a range-spec has no `-`"));
        parse_err_lone_dash: b"bytes=-" => Err(MALFORMED("a position is not a decimal number"));
        parse_err_negative: b"bytes=--5" => Err(MALFORMED("a position is not a decimal number"));
        parse_err_two_dashes: b"bytes=1-2-3" => Err(MALFORMED("a position is not a decimal number"));
        parse_err_inner_space: b"bytes=1 - 2" => Err(MALFORMED("a position is not a decimal number"));
        parse_err_hex: b"bytes=0x1-2" => Err(MALFORMED("a position is not a decimal number"));
        parse_err_plus: b"bytes=+1-2" => Err(MALFORMED("a position is not a decimal number"));
        parse_err_other_range: b"bytes=abc" => Err(MALFORMED("a range-spec has no `-`"));
        parse_err_one_bad_in_list: b"bytes=0-1,x-2" => Err(MALFORMED("a position is not a decimal number"));
        parse_err_semicolon_list: b"bytes=0-1;2-3" => Err(MALFORMED("a position is not a decimal number"));
        parse_err_last_before_first: b"bytes=5-4" => Err(RangeError::LastBeforeFirst);
        parse_err_last_before_first_saturated: b"bytes=99999999999999999999999-99999999999999999999998" => Err(RangeError::LastBeforeFirst);
        parse_err_too_many: b"bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15,16-16" => Err(RangeError::TooManyRanges { max: 16 });
    }

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    /// `name: ("header", len) => outcome` — one test per resolution case.
    macro_rules! resolve_cases {
        ($($name:ident: ($value:expr, $len:expr) => $expected:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(resolve_range($value, $len, &limits()), $expected, "{:?} len {}", $value, $len);
            }
        )*};
    }

    use RangeOutcome::{Ignore, Satisfiable, Unsatisfiable};

    resolve_cases! {
        resolve_first_500: (b"bytes=0-499", 10000) => Satisfiable(vec![r(0, 500)]);
        resolve_second_500: (b"bytes=500-999", 10000) => Satisfiable(vec![r(500, 1000)]);
        resolve_suffix_500: (b"bytes=-500", 10000) => Satisfiable(vec![r(9500, 10000)]);
        resolve_from_9500: (b"bytes=9500-", 10000) => Satisfiable(vec![r(9500, 10000)]);
        resolve_first_and_last: (b"bytes=0-0,-1", 10000) => Satisfiable(vec![r(0, 1), r(9999, 10000)]);
        resolve_clamp_last: (b"bytes=5-100", 10) => Satisfiable(vec![r(5, 10)]);
        resolve_clamp_saturated: (b"bytes=0-99999999999999999999999", 10) => Satisfiable(vec![r(0, 10)]);
        resolve_suffix_longer_than_len: (b"bytes=-100", 10) => Satisfiable(vec![r(0, 10)]);
        resolve_suffix_saturated: (b"bytes=-99999999999999999999999", 10) => Satisfiable(vec![r(0, 10)]);
        resolve_last_byte: (b"bytes=9-9", 10) => Satisfiable(vec![r(9, 10)]);
        resolve_sorted: (b"bytes=8-9,0-1", 10) => Satisfiable(vec![r(0, 2), r(8, 10)]);
        resolve_overlap_merged: (b"bytes=0-5,3-8", 10) => Satisfiable(vec![r(0, 9)]);
        resolve_adjacent_merged: (b"bytes=0-4,5-9", 10) => Satisfiable(vec![r(0, 10)]);
        resolve_contained_merged: (b"bytes=0-9,2-3", 10) => Satisfiable(vec![r(0, 10)]);
        resolve_gap_kept: (b"bytes=0-3,5-9", 10) => Satisfiable(vec![r(0, 4), r(5, 10)]);
        resolve_duplicate: (b"bytes=1-1,1-1", 10) => Satisfiable(vec![r(1, 2)]);
        resolve_suffix_and_from_merged: (b"bytes=-3,6-", 10) => Satisfiable(vec![r(6, 10)]);
        resolve_some_unsatisfiable: (b"bytes=20-30,0-0", 10) => Satisfiable(vec![r(0, 1)]);
        resolve_suffix_zero_with_other: (b"bytes=-0,2-3", 10) => Satisfiable(vec![r(2, 4)]);
        resolve_u64_len: (b"bytes=-1", u64::MAX) => Satisfiable(vec![r(u64::MAX - 1, u64::MAX)]);
        resolve_u64_len_from_to: (b"bytes=0-99999999999999999999999", u64::MAX) => Satisfiable(vec![r(0, u64::MAX)]);

        resolve_first_at_len: (b"bytes=10-", 10) => Unsatisfiable;
        resolve_first_past_len: (b"bytes=10-20", 10) => Unsatisfiable;
        resolve_saturated_first: (b"bytes=99999999999999999999999-", 10) => Unsatisfiable;
        resolve_suffix_zero: (b"bytes=-0", 10) => Unsatisfiable;
        resolve_all_unsatisfiable: (b"bytes=10-,11-12,-0", 10) => Unsatisfiable;
        resolve_len_zero_from: (b"bytes=0-", 0) => Unsatisfiable;
        resolve_len_zero_suffix: (b"bytes=-5", 0) => Unsatisfiable;
        resolve_len_zero_from_to: (b"bytes=0-0", 0) => Unsatisfiable;

        resolve_ignore_malformed: (b"bytes=a-b", 10) => Ignore;
        resolve_ignore_unit: (b"pages=1-2", 10) => Ignore;
        resolve_ignore_reversed: (b"bytes=5-1", 10) => Ignore;
        resolve_ignore_too_many: (b"bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,26-26,28-28,30-30,32-32", 100) => Ignore;
        resolve_ignore_too_many_even_if_overlapping: (b"bytes=0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-", 100) => Ignore;
    }

    #[test]
    fn resolve_specs_empty_is_ignore() {
        assert_eq!(resolve_specs(&[], 10), Ignore);
    }

    #[test]
    fn max_ranges_is_configurable() {
        let strict = Limits {
            max_ranges: 1,
            ..Limits::default()
        };
        assert_eq!(
            resolve_range(b"bytes=0-1", 10, &strict),
            Satisfiable(vec![r(0, 2)])
        );
        assert_eq!(resolve_range(b"bytes=0-1,3-4", 10, &strict), Ignore);
        let none = Limits {
            max_ranges: 0,
            ..Limits::default()
        };
        assert_eq!(resolve_range(b"bytes=0-1", 10, &none), Ignore);
    }

    /// `name: ("If-Range", etag, last_modified) => bool`.
    macro_rules! if_range_cases {
        ($($name:ident: ($value:expr, $etag:expr, $lm:expr) => $expected:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(if_range_matches($value, $etag, $lm), $expected, "{:?}", $value);
            }
        )*};
    }

    /// Sun, 06 Nov 1994 08:49:37 GMT
    const T: u64 = 784_111_777;

    if_range_cases! {
        if_range_same_etag: (b"\"abc\"", "\"abc\"", None) => true;
        if_range_ows: (b" \"abc\" ", "\"abc\"", None) => true;
        if_range_other_etag: (b"\"abd\"", "\"abc\"", None) => false;
        if_range_weak_never: (b"W/\"abc\"", "\"abc\"", None) => false;
        if_range_ours_weak_never: (b"\"abc\"", "W/\"abc\"", None) => false;
        if_range_list_is_not_allowed: (b"\"abc\", \"abc\"", "\"abc\"", None) => false;
        if_range_unterminated: (b"\"abc", "\"abc\"", None) => false;
        if_range_date_equal: (b"Sun, 06 Nov 1994 08:49:37 GMT", "\"x\"", Some(T)) => true;
        if_range_date_rfc850: (b"Sunday, 06-Nov-94 08:49:37 GMT", "\"x\"", Some(T)) => true;
        if_range_date_asctime: (b"Sun Nov  6 08:49:37 1994", "\"x\"", Some(T)) => true;
        if_range_date_later: (b"Sun, 06 Nov 1994 08:49:38 GMT", "\"x\"", Some(T)) => false;
        if_range_date_earlier: (b"Sun, 06 Nov 1994 08:49:36 GMT", "\"x\"", Some(T)) => false;
        if_range_date_unknown_last_modified: (b"Sun, 06 Nov 1994 08:49:37 GMT", "\"x\"", None) => false;
        if_range_garbage: (b"yesterday", "\"x\"", Some(T)) => false;
        if_range_empty: (b"", "\"x\"", Some(T)) => false;
    }

    #[test]
    fn content_range_values() {
        assert_eq!(content_range(r(0, 100), 1000), "bytes 0-99/1000");
        assert_eq!(content_range(r(999, 1000), 1000), "bytes 999-999/1000");
        assert_eq!(unsatisfied_content_range(1000), "bytes */1000");
        assert_eq!(unsatisfied_content_range(0), "bytes */0");
    }

    #[test]
    fn byte_range_accessors() {
        let x = r(10, 20);
        assert_eq!((x.len(), x.last(), x.is_empty()), (10, 19, false));
    }

    #[test]
    fn byteranges_writer_layout() {
        let w = ByteRangesWriter::new("THIS_STRING_SEPARATES", "application/pdf", 8000);
        assert_eq!(
            w.content_type(),
            "multipart/byteranges; boundary=THIS_STRING_SEPARATES"
        );
        assert_eq!(
            w.part_head(0, r(500, 1000)),
            b"--THIS_STRING_SEPARATES\r\nContent-Type: application/pdf\r\nContent-Range: bytes 500-999/8000\r\n\r\n"
        );
        assert_eq!(
            w.part_head(1, r(7000, 8000)),
            b"\r\n--THIS_STRING_SEPARATES\r\nContent-Type: application/pdf\r\nContent-Range: bytes 7000-7999/8000\r\n\r\n"
        );
        assert_eq!(w.trailer(), b"\r\n--THIS_STRING_SEPARATES--\r\n");
        let ranges = [r(500, 1000), r(7000, 8000)];
        let body: Vec<u8> = assemble(&w, &ranges, &[0x55; 8000]);
        assert_eq!(w.body_len(&ranges), body.len() as u64);
    }

    #[test]
    fn byteranges_writer_without_content_type() {
        let w = ByteRangesWriter::new("b", "", 10);
        assert_eq!(
            w.part_head(0, r(0, 1)),
            b"--b\r\nContent-Range: bytes 0-0/10\r\n\r\n"
        );
        assert_eq!(
            w.body_len(&[r(0, 1)]),
            assemble(&w, &[r(0, 1)], &[0; 10]).len() as u64
        );
        assert_eq!(w.body_len(&[]), w.trailer().len() as u64);
    }

    /// The full multipart/byteranges body, the way the daemon sends it.
    fn assemble(w: &ByteRangesWriter, ranges: &[ByteRange], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &range) in ranges.iter().enumerate() {
            out.extend_from_slice(&w.part_head(i, range));
            out.extend_from_slice(&data[range.start as usize..range.end as usize]);
        }
        out.extend_from_slice(&w.trailer());
        out
    }

    #[test]
    fn decimal_len_edges() {
        for n in [0, 1, 9, 10, 99, 100, u64::MAX / 10, u64::MAX - 1, u64::MAX] {
            assert_eq!(decimal_len(n), n.to_string().len(), "{n}");
        }
    }

    fn spec_strategy(len: u64) -> impl Strategy<Value = RangeSpec> {
        let pos = 0..len + 4;
        prop_oneof![
            (pos.clone(), pos.clone()).prop_map(|(a, b)| FromTo(a.min(b), a.max(b))),
            pos.clone().prop_map(From),
            pos.prop_map(Suffix),
        ]
    }

    fn render(specs: &[RangeSpec]) -> String {
        let parts: Vec<String> = specs
            .iter()
            .map(|s| match *s {
                FromTo(a, b) => format!("{a}-{b}"),
                From(a) => format!("{a}-"),
                Suffix(n) => format!("-{n}"),
            })
            .collect();
        format!("bytes={}", parts.join(" ,"))
    }

    proptest! {
        /// Resolved ranges stay inside the length, are non-empty, disjoint, sorted and
        /// non-adjacent, and cover exactly the union of the requested byte positions
        /// (checked against a brute-force bitmap).
        #[test]
        fn resolution_matches_brute_force(
            (len, specs) in (0u64..64).prop_flat_map(|len| (Just(len), proptest::collection::vec(spec_strategy(len), 1..=16)))
        ) {
            let header = render(&specs);
            prop_assert_eq!(parse_range(header.as_bytes(), &limits()), Ok(specs.clone()));
            let mut wanted = vec![false; len as usize];
            for spec in &specs {
                let (lo, hi) = match *spec {
                    FromTo(a, b) => (a, b.saturating_add(1)),
                    From(a) => (a, u64::MAX),
                    Suffix(n) => (len.saturating_sub(n), if n == 0 { 0 } else { u64::MAX }),
                };
                for (p, w) in wanted.iter_mut().enumerate() {
                    if (lo..hi).contains(&(p as u64)) {
                        *w = true;
                    }
                }
            }
            match resolve_range(header.as_bytes(), len, &limits()) {
                Ignore => prop_assert!(false, "a valid header was ignored"),
                Unsatisfiable => prop_assert!(wanted.iter().all(|w| !w)),
                Satisfiable(ranges) => {
                    prop_assert!(!ranges.is_empty() && ranges.len() <= specs.len());
                    let mut got = vec![false; len as usize];
                    for (i, x) in ranges.iter().enumerate() {
                        prop_assert!(x.start < x.end && x.end <= len);
                        if i > 0 {
                            prop_assert!(ranges[i - 1].end < x.start, "sorted, disjoint, non-adjacent");
                        }
                        for g in &mut got[x.start as usize..x.end as usize] {
                            *g = true;
                        }
                    }
                    prop_assert_eq!(got, wanted);
                }
            }
        }

        /// `body_len` is the exact length of the assembled body.
        #[test]
        fn byteranges_body_len_is_exact(
            bounds in proptest::collection::vec((0u64..100_000, 1u64..100_000), 0..8),
            total in 100_000u64..u64::MAX,
            ct in "[a-z/+.-]{0,40}",
        ) {
            let w = ByteRangesWriter::new("0123456789abcdef0123", &ct, total);
            let ranges: Vec<ByteRange> = bounds.iter().map(|&(s, l)| r(s, s + l)).collect();
            let heads: u64 = ranges.iter().enumerate().map(|(i, &x)| w.part_head(i, x).len() as u64 + x.len()).sum();
            prop_assert_eq!(w.body_len(&ranges), heads + w.trailer().len() as u64);
        }
    }
}
