//! Conditional requests (RFC 9110 §13): HTTP-dates, entity-tag lists, and the order in
//! which a server evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match`,
//! `If-Modified-Since` and `If-Range` together with `Range`.
//!
//! Contract:
//! - [`parse_http_date`] accepts the three HTTP-date formats of RFC 9110 §5.6.7
//!   (IMF-fixdate, RFC 850, asctime), case-sensitively as the grammar says, and returns
//!   unix seconds. Dates before 1970 are `None` (nothing here is older than the epoch).
//! - [`format_http_date`] writes IMF-fixdate with its own calendar arithmetic (no
//!   chrono, no clock): time is always an input.
//! - [`etag_list_matches`] implements the strong and weak comparison functions of
//!   RFC 9110 §8.8.3.2 over `"*"` or a comma-separated list. A malformed list matches
//!   nothing, whatever it contains.
//! - [`evaluate`] applies RFC 9110 §13.2.2 to one selected representation and tells the
//!   daemon which status to answer with.
//! - There is no `ConditionalError`: a value that does not parse is ignored (dates) or
//!   matches nothing (entity-tag lists), as RFC 9110 §13.1 prescribes, so nothing here
//!   can fail.
//!
//! Deliberately not done:
//! - Two-digit RFC 850 years: RFC 9110 §5.6.7 says to read a year more than 50 years in
//!   the future as the most recent past year with the same last two digits. Without a
//!   clock, `yy >= 70` is read as `19yy` and `yy < 70` as `20yy` (correct until 2040,
//!   and RFC 850 dates are obsolete anyway).
//! - The day name is checked to be a valid name, not that it agrees with the date
//!   (like most servers; the date fields carry the meaning).
//! - A leap second (`:60`) is accepted and read as `:59`, as POSIX time has none.
//! - [`evaluate`] assumes the target representation exists. For a missing target the
//!   daemon answers `If-Match` (any value) with 412 and ignores `If-None-Match: *`.
//! - RFC 9110 §13.2.1 "ignore preconditions when the response would not be 2xx/412"
//!   and the "state change already succeeded" exception of step 1 are the daemon's.

use crate::limits::Limits;
use crate::range::{if_range_matches, resolve_range, trim_ows, ByteRange, RangeOutcome};

/// Abbreviated day names, Monday first (`day-name`).
const DAY_NAMES: [&[u8; 3]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
/// Full day names, Monday first (`day-name-l`, RFC 850 dates).
const LONG_DAY_NAMES: [&[u8]; 7] = [
    b"Monday",
    b"Tuesday",
    b"Wednesday",
    b"Thursday",
    b"Friday",
    b"Saturday",
    b"Sunday",
];
/// Month names, January first (`month`).
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];
/// 9999-12-31T23:59:59Z: the last instant a 4-digit year can express. Later times are
/// formatted as this one.
const MAX_HTTP_DATE: u64 = 253_402_300_799;
/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
const UNIX_EPOCH_DAYS: i64 = 719_468;
/// Days in one 400-year Gregorian era.
const DAYS_PER_ERA: i64 = 146_097;

/// Parse an HTTP-date: IMF-fixdate, RFC 850, asctime. Returns unix seconds.
///
/// ```text
/// HTTP-date    = IMF-fixdate / obs-date
/// IMF-fixdate  = day-name "," SP date1 SP time-of-day SP GMT
///              ; fixed length/zone/capitalization subset of RFC 5322
/// day-name     = %s"Mon" / %s"Tue" / %s"Wed" / %s"Thu" / %s"Fri" / %s"Sat" / %s"Sun"
/// date1        = day SP month SP year        ; e.g., 02 Jun 1982
/// day          = 2DIGIT
/// month        = %s"Jan" / %s"Feb" / %s"Mar" / %s"Apr" / %s"May" / %s"Jun"
///              / %s"Jul" / %s"Aug" / %s"Sep" / %s"Oct" / %s"Nov" / %s"Dec"
/// year         = 4DIGIT
/// GMT          = %s"GMT"
/// time-of-day  = hour ":" minute ":" second  ; 00:00:00 - 23:59:60 (leap second)
/// obs-date     = rfc850-date / asctime-date
/// rfc850-date  = day-name-l "," SP date2 SP time-of-day SP GMT
/// date2        = day "-" month "-" 2DIGIT    ; e.g., 02-Jun-82
/// day-name-l   = %s"Monday" / %s"Tuesday" / %s"Wednesday" / %s"Thursday"
///              / %s"Friday" / %s"Saturday" / %s"Sunday"
/// asctime-date = day-name SP date3 SP time-of-day SP year
/// date3        = month SP ( 2DIGIT / ( SP DIGIT ))   ; e.g., Jun  2
/// ```
///
/// Surrounding whitespace is ignored; anything else outside the grammar, an impossible
/// date (31 Feb) or a date before 1970 gives `None`.
pub fn parse_http_date(value: &[u8]) -> Option<u64> {
    let v = trim_ows(value);
    match v.get(3)? {
        b',' => parse_imf_fixdate(v),
        b' ' => parse_asctime(v),
        _ => parse_rfc850(v),
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn parse_imf_fixdate(v: &[u8]) -> Option<u64> {
    let v: &[u8; 29] = v.try_into().ok()?;
    day_name(&v[0..3])?;
    expect(&v[3..5], b", ")?;
    let day = two_digits(&v[5..7])?;
    expect(&v[7..8], b" ")?;
    let month = month(&v[8..11])?;
    expect(&v[11..12], b" ")?;
    let year = four_digits(&v[12..16])?;
    expect(&v[16..17], b" ")?;
    let (h, m, s) = time_of_day(&v[17..25])?;
    expect(&v[25..29], b" GMT")?;
    to_unix(year, month, day, h, m, s)
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`
fn parse_rfc850(v: &[u8]) -> Option<u64> {
    let comma = v.iter().position(|&b| b == b',')?;
    if !LONG_DAY_NAMES.contains(&&v[..comma]) {
        return None;
    }
    let v: &[u8; 24] = v[comma..].try_into().ok()?; // ", 06-Nov-94 08:49:37 GMT"
    expect(&v[0..2], b", ")?;
    let day = two_digits(&v[2..4])?;
    expect(&v[4..5], b"-")?;
    let month = month(&v[5..8])?;
    expect(&v[8..9], b"-")?;
    let yy = two_digits(&v[9..11])?;
    // No clock, so no "50 years in the future" test: 70..=99 -> 19yy, 00..=69 -> 20yy.
    let year = if yy >= 70 { 1900 + yy } else { 2000 + yy };
    expect(&v[11..12], b" ")?;
    let (h, m, s) = time_of_day(&v[12..20])?;
    expect(&v[20..24], b" GMT")?;
    to_unix(year, month, day, h, m, s)
}

/// `Sun Nov  6 08:49:37 1994`
fn parse_asctime(v: &[u8]) -> Option<u64> {
    let v: &[u8; 24] = v.try_into().ok()?;
    day_name(&v[0..3])?;
    expect(&v[3..4], b" ")?;
    let month = month(&v[4..7])?;
    expect(&v[7..8], b" ")?;
    let day = match v[8..10] {
        [b' ', d] if d.is_ascii_digit() => u32::from(d - b'0'),
        _ => two_digits(&v[8..10])?,
    };
    expect(&v[10..11], b" ")?;
    let (h, m, s) = time_of_day(&v[11..19])?;
    expect(&v[19..20], b" ")?;
    let year = four_digits(&v[20..24])?;
    to_unix(year, month, day, h, m, s)
}

fn expect(got: &[u8], want: &[u8]) -> Option<()> {
    (got == want).then_some(())
}

fn day_name(v: &[u8]) -> Option<()> {
    DAY_NAMES.iter().any(|d| d[..] == *v).then_some(())
}

/// Month number 1..=12.
fn month(v: &[u8]) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m[..] == *v)
        .map(|i| i as u32 + 1)
}

fn two_digits(v: &[u8]) -> Option<u32> {
    match *v {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            Some(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        }
        _ => None,
    }
}

fn four_digits(v: &[u8]) -> Option<u32> {
    Some(two_digits(&v[..2])? * 100 + two_digits(&v[2..])?)
}

/// `time-of-day = hour ":" minute ":" second`
fn time_of_day(v: &[u8]) -> Option<(u32, u32, u32)> {
    let h = two_digits(&v[0..2])?;
    expect(&v[2..3], b":")?;
    let m = two_digits(&v[3..5])?;
    expect(&v[5..6], b":")?;
    let s = two_digits(&v[6..8])?;
    Some((h, m, s))
}

fn is_leap_year(year: u32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Validates the fields and converts them to unix seconds; `None` before 1970.
fn to_unix(year: u32, month: u32, day: u32, h: u32, m: u32, s: u32) -> Option<u64> {
    if year < 1970 || day == 0 || day > days_in_month(year, month) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(h * 3600 + m * 60 + s.min(59));
    u64::try_from(secs).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`: shift the year to start in March so the leap day is last).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let mp = i64::from((month + 9) % 12); // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * DAYS_PER_ERA + doe - UNIX_EPOCH_DAYS
}

/// The inverse of [`days_from_civil`]: (year, month 1..=12, day 1..=31).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + UNIX_EPOCH_DAYS;
    let era = z.div_euclid(DAYS_PER_ERA);
    let doe = z.rem_euclid(DAYS_PER_ERA);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// IMF-fixdate, exactly 29 bytes: "Sun, 06 Nov 1994 08:49:37 GMT".
///
/// Times after 9999-12-31T23:59:59Z (the last 4-digit year) are written as that one.
pub fn format_http_date(unix_secs: u64) -> [u8; 29] {
    let secs = unix_secs.min(MAX_HTTP_DATE) as i64;
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 3 with Monday = 0).
    let weekday = (days + 3).rem_euclid(7) as usize;
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[0..3].copy_from_slice(DAY_NAMES[weekday]);
    put_digits(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[month as usize - 1]);
    put_digits(&mut out[12..16], year as u32);
    put_digits(&mut out[17..19], tod / 3600);
    put_digits(&mut out[20..22], tod / 60 % 60);
    put_digits(&mut out[23..25], tod % 60);
    out
}

/// Writes `n` as zero-padded decimal filling `out` exactly.
fn put_digits(out: &mut [u8], mut n: u32) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// A parsed entity-tag. `opaque` includes the double quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntityTag<'a> {
    pub(crate) weak: bool,
    pub(crate) opaque: &'a [u8],
}

impl EntityTag<'_> {
    /// Strong comparison (RFC 9110 §8.8.3.2): both strong and the same opaque-tag.
    pub(crate) fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: the same opaque-tag, either or both may be weak.
    pub(crate) fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// Parses exactly one entity-tag filling `v`.
///
/// ```text
/// entity-tag = [ weak ] opaque-tag
/// weak       = %s"W/"
/// opaque-tag = DQUOTE *etagc DQUOTE
/// etagc      = %x21 / %x23-7E / obs-text
/// ```
pub(crate) fn parse_entity_tag(v: &[u8]) -> Option<EntityTag<'_>> {
    match split_entity_tag(v)? {
        (tag, []) => Some(tag),
        _ => None,
    }
}

/// Parses one entity-tag at the start of `v`; returns it and the rest of `v`.
fn split_entity_tag(v: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    let (weak, tag) = match v.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    if tag.first() != Some(&b'"') {
        return None;
    }
    let close = 1 + tag[1..].iter().position(|&b| b == b'"')?;
    let opaque = &tag[..=close];
    if !opaque[1..close].iter().all(|&b| is_etagc(b)) {
        return None;
    }
    Some((EntityTag { weak, opaque }, &tag[close + 1..]))
}

/// `etagc = %x21 / %x23-7E / obs-text`
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7E).contains(&b) || b >= 0x80
}

/// Parses an `If-Match`/`If-None-Match` list of entity-tags; `None` if malformed.
///
/// ```text
/// If-Match      = "*" / #entity-tag
/// If-None-Match = "*" / #entity-tag
/// #element      = [ element ] *( OWS "," OWS [ element ] )
/// ```
///
/// Commas may occur inside an opaque-tag (`etagc` includes `,`), so the list is
/// scanned tag by tag rather than split on commas.
fn parse_etag_list(list: &[u8]) -> Option<Vec<EntityTag<'_>>> {
    let mut tags = Vec::new();
    let mut rest = list;
    loop {
        // Skip OWS and empty list elements.
        while let [b' ' | b'\t' | b',', tail @ ..] = rest {
            rest = tail;
        }
        if rest.is_empty() {
            return Some(tags);
        }
        let (tag, tail) = split_entity_tag(rest)?;
        tags.push(tag);
        rest = trim_ows_start(tail);
        match rest {
            [] => return Some(tags),
            [b',', ..] => {}
            _ => return None, // two tags not separated by a comma, or junk after a tag
        }
    }
}

fn trim_ows_start(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    v
}

/// Does an If-Match / If-None-Match list ("*" or comma-separated entity-tags, W/ allowed)
/// match `etag` (ours, strong, with quotes)? `weak` selects weak comparison (If-None-Match).
///
/// `"*"` matches (the representation exists). A malformed list, an empty list, or an
/// `etag` that is not a valid entity-tag match nothing.
pub fn etag_list_matches(list: &[u8], etag: &str, weak: bool) -> bool {
    let list = trim_ows(list);
    if list == b"*" {
        return true;
    }
    let Some(ours) = parse_entity_tag(etag.as_bytes()) else {
        return false;
    };
    match parse_etag_list(list) {
        Some(tags) => tags.iter().any(|t| {
            if weak {
                t.weak_eq(&ours)
            } else {
                t.strong_eq(&ours)
            }
        }),
        None => false,
    }
}

/// The request's conditional headers (raw values, None when absent).
#[derive(Clone, Copy, Debug, Default)]
pub struct Conditions<'a> {
    /// `If-Match`.
    pub if_match: Option<&'a [u8]>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a [u8]>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a [u8]>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'a [u8]>,
    /// `If-Range`.
    pub if_range: Option<&'a [u8]>,
    /// `Range`.
    pub range: Option<&'a [u8]>,
}

/// The selected representation's validators.
#[derive(Clone, Copy, Debug)]
pub struct Validators<'a> {
    /// Our strong ETag, with quotes: `"\"abc\""`.
    pub etag: &'a str,
    /// `Last-Modified` in unix seconds, if known.
    pub last_modified: Option<u64>,
    /// The representation's length in bytes.
    pub len: u64,
}

/// What the daemon answers after evaluating the conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// 200: the whole representation.
    Full,
    /// 206: these ranges (sorted, coalesced, non-empty; one range -> single part).
    Partial(Vec<ByteRange>),
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
    /// 416 Range Not Satisfiable, with `Content-Range: bytes */len`.
    RangeNotSatisfiable,
}

/// RFC 9110 §13.2.2 order for GET/HEAD: If-Match -> If-Unmodified-Since (only when no
/// If-Match) -> If-None-Match (304 for GET/HEAD) -> If-Modified-Since (only when no
/// If-None-Match) -> Range with If-Range. `is_get_or_head` false => a failed
/// If-None-Match gives 412 and Range is not considered.
///
/// ```text
/// 1. If-Match present: false -> 412.
/// 2. If-Match absent, If-Unmodified-Since present: false -> 412.
/// 3. If-None-Match present: false -> 304 for GET/HEAD, else 412.
/// 4. If-None-Match absent, If-Modified-Since present, GET/HEAD: false -> 304.
/// 5. GET, Range present, If-Range absent or true: the Range decides (206/416/200).
/// 6. Otherwise 200.
/// ```
///
/// An unparseable date, or a date condition on a representation without a
/// `Last-Modified`, is ignored (RFC 9110 §13.1.3, §13.1.4). `If-Range` without `Range` is
/// ignored. Range handling is applied to HEAD too, so a HEAD answers with the same
/// status and fields as the GET it stands for.
pub fn evaluate(
    is_get_or_head: bool,
    c: &Conditions<'_>,
    v: &Validators<'_>,
    limits: &Limits,
) -> Decision {
    // Step 1 and 2.
    if let Some(if_match) = c.if_match {
        if !etag_list_matches(if_match, v.etag, false) {
            return Decision::PreconditionFailed;
        }
    } else if let (Some(since), Some(modified)) = (
        c.if_unmodified_since.and_then(parse_http_date),
        v.last_modified,
    ) {
        if modified > since {
            return Decision::PreconditionFailed;
        }
    }
    // Step 3 and 4.
    if let Some(if_none_match) = c.if_none_match {
        if etag_list_matches(if_none_match, v.etag, true) {
            return if is_get_or_head {
                Decision::NotModified
            } else {
                Decision::PreconditionFailed
            };
        }
    } else if is_get_or_head {
        if let (Some(since), Some(modified)) = (
            c.if_modified_since.and_then(parse_http_date),
            v.last_modified,
        ) {
            if modified <= since {
                return Decision::NotModified;
            }
        }
    }
    // Step 5.
    if let (true, Some(range)) = (is_get_or_head, c.range) {
        let honoured = c
            .if_range
            .is_none_or(|if_range| if_range_matches(if_range, v.etag, v.last_modified));
        if honoured {
            return match resolve_range(range, v.len, limits) {
                RangeOutcome::Ignore => Decision::Full,
                RangeOutcome::Satisfiable(ranges) => Decision::Partial(ranges),
                RangeOutcome::Unsatisfiable => Decision::RangeNotSatisfiable,
            };
        }
    }
    Decision::Full
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Sun, 06 Nov 1994 08:49:37 GMT
    const T: u64 = 784_111_777;

    /// `name: "date" => Option<u64>` — one test per date case.
    macro_rules! date_cases {
        ($($name:ident: $value:expr => $expected:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(parse_http_date($value), $expected, "{:?}", String::from_utf8_lossy($value));
            }
        )*};
    }

    date_cases! {
        date_imf_fixdate: b"Sun, 06 Nov 1994 08:49:37 GMT" => Some(T);
        date_rfc850: b"Sunday, 06-Nov-94 08:49:37 GMT" => Some(T);
        date_asctime: b"Sun Nov  6 08:49:37 1994" => Some(T);
        date_asctime_two_digit_day: b"Sun Nov 06 08:49:37 1994" => Some(T);
        date_ows_trimmed: b" Sun, 06 Nov 1994 08:49:37 GMT\t" => Some(T);
        date_epoch: b"Thu, 01 Jan 1970 00:00:00 GMT" => Some(0);
        date_leap_day: b"Thu, 29 Feb 2024 12:00:00 GMT" => Some(1_709_208_000);
        date_y2k_leap_day: b"Tue, 29 Feb 2000 00:00:00 GMT" => Some(951_782_400);
        date_max: b"Fri, 31 Dec 9999 23:59:59 GMT" => Some(MAX_HTTP_DATE);
        date_leap_second_clamped: b"Sat, 31 Dec 2016 23:59:60 GMT" => Some(1_483_228_799);
        date_weekday_not_checked: b"Mon, 06 Nov 1994 08:49:37 GMT" => Some(T);
        date_rfc850_year_69_is_2069: b"Monday, 01-Jan-69 00:00:00 GMT" => Some(3_124_224_000);
        date_rfc850_year_70_is_1970: b"Thursday, 01-Jan-70 00:00:00 GMT" => Some(0);
        date_rfc850_year_00_is_2000: b"Saturday, 01-Jan-00 00:00:00 GMT" => Some(946_684_800);

        date_err_empty: b"" => None;
        date_err_garbage: b"yesterday" => None;
        date_err_lowercase_gmt: b"Sun, 06 Nov 1994 08:49:37 gmt" => None;
        date_err_lowercase_month: b"Sun, 06 nov 1994 08:49:37 GMT" => None;
        date_err_lowercase_day: b"sun, 06 Nov 1994 08:49:37 GMT" => None;
        date_err_other_zone: b"Sun, 06 Nov 1994 08:49:37 UTC" => None;
        date_err_offset: b"Sun, 06 Nov 1994 08:49:37 +0000" => None;
        date_err_one_digit_day: b"Sun, 6 Nov 1994 08:49:37 GMT" => None;
        date_err_two_digit_year: b"Sun, 06 Nov 94 08:49:37 GMT" => None;
        date_err_before_epoch: b"Wed, 31 Dec 1969 23:59:59 GMT" => None;
        date_err_feb_30: b"Fri, 30 Feb 2024 00:00:00 GMT" => None;
        date_err_feb_29_non_leap: b"Wed, 29 Feb 2023 00:00:00 GMT" => None;
        date_err_feb_29_1900_rule: b"Thu, 29 Feb 2100 00:00:00 GMT" => None;
        date_err_day_zero: b"Sun, 00 Nov 1994 08:49:37 GMT" => None;
        date_err_day_32: b"Sun, 32 Oct 1994 08:49:37 GMT" => None;
        date_err_april_31: b"Sun, 31 Apr 1994 08:49:37 GMT" => None;
        date_err_hour_24: b"Sun, 06 Nov 1994 24:00:00 GMT" => None;
        date_err_minute_60: b"Sun, 06 Nov 1994 08:60:00 GMT" => None;
        date_err_second_61: b"Sun, 06 Nov 1994 08:49:61 GMT" => None;
        date_err_bad_separator: b"Sun, 06 Nov 1994 08.49.37 GMT" => None;
        date_err_trailing: b"Sun, 06 Nov 1994 08:49:37 GMTx" => None;
        date_err_double_space: b"Sun,  06 Nov 1994 08:49:37 GMT" => None;
        date_err_rfc850_short_day: b"Sun, 06-Nov-94 08:49:37 GMT" => None;
        date_err_rfc850_bad_long_day: b"Sonday, 06-Nov-94 08:49:37 GMT" => None;
        date_err_rfc850_four_digit_year: b"Sunday, 06-Nov-1994 08:49:37 GMT" => None;
        date_err_asctime_single_space: b"Sun Nov 6 08:49:37 1994" => None;
        date_err_asctime_bad_day: b"Sun Nov  x 08:49:37 1994" => None;
        date_err_asctime_gmt: b"Sun Nov  6 08:49:37 1994 GMT" => None;
        date_err_non_ascii: "Sun, 06 Nov 1994 08:49:37 GMT\u{e9}".as_bytes() => None;
        date_err_signs: b"Sun, +6 Nov 1994 08:49:37 GMT" => None;
    }

    #[test]
    fn format_known_dates() {
        assert_eq!(&format_http_date(T), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&format_http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            &format_http_date(951_782_400),
            b"Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            &format_http_date(1_709_208_000),
            b"Thu, 29 Feb 2024 12:00:00 GMT"
        );
        assert_eq!(
            &format_http_date(MAX_HTTP_DATE),
            b"Fri, 31 Dec 9999 23:59:59 GMT"
        );
        assert_eq!(
            &format_http_date(u64::MAX),
            b"Fri, 31 Dec 9999 23:59:59 GMT"
        );
    }

    #[test]
    fn calendar_round_trips_every_day_of_a_century() {
        for days in -1_000..40_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    /// `name: (list, etag, weak) => bool` — one test per entity-tag list case.
    macro_rules! etag_cases {
        ($($name:ident: ($list:expr, $etag:expr, $weak:expr) => $expected:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(etag_list_matches($list, $etag, $weak), $expected, "{:?}", String::from_utf8_lossy($list));
            }
        )*};
    }

    etag_cases! {
        etag_star: (b"*", "\"a\"", false) => true;
        etag_star_weak: (b" * ", "\"a\"", true) => true;
        etag_single_strong: (b"\"a\"", "\"a\"", false) => true;
        etag_single_other: (b"\"b\"", "\"a\"", false) => false;
        etag_weak_in_strong_cmp: (b"W/\"a\"", "\"a\"", false) => false;
        etag_weak_in_weak_cmp: (b"W/\"a\"", "\"a\"", true) => true;
        etag_strong_in_weak_cmp: (b"\"a\"", "\"a\"", true) => true;
        etag_ours_weak_strong_cmp: (b"\"a\"", "W/\"a\"", false) => false;
        etag_ours_weak_weak_cmp: (b"\"a\"", "W/\"a\"", true) => true;
        etag_list_second: (b"\"x\", \"a\"", "\"a\"", false) => true;
        etag_list_ows: (b"\t\"x\" ,\"y\",  W/\"a\" ", "\"a\"", true) => true;
        etag_list_empty_elements: (b",, \"a\" ,,", "\"a\"", false) => true;
        etag_comma_inside: (b"\"a,b\"", "\"a,b\"", false) => true;
        etag_comma_inside_no_false_split: (b"\"x,\"a\"\"", "\"a\"", false) => false;
        etag_empty_opaque: (b"\"\"", "\"\"", false) => true;
        etag_case_sensitive: (b"\"A\"", "\"a\"", false) => false;
        etag_obs_text: ("\"\u{e9}\"".as_bytes(), "\"\u{e9}\"", false) => true;
        etag_lowercase_w_is_malformed: (b"w/\"a\"", "\"a\"", true) => false;
        etag_unquoted_is_malformed: (b"a", "a", false) => false;
        etag_malformed_poisons_list: (b"\"a\", b", "\"a\"", false) => false;
        etag_missing_comma: (b"\"a\" \"b\"", "\"a\"", false) => false;
        etag_unterminated: (b"\"a", "\"a\"", false) => false;
        etag_space_inside: (b"\"a b\"", "\"a b\"", false) => false;
        etag_star_in_list: (b"*, \"a\"", "\"a\"", false) => false;
        etag_empty_list: (b"", "\"a\"", false) => false;
        etag_only_commas: (b" , ,", "\"a\"", false) => false;
        etag_ours_invalid: (b"\"a\"", "a", false) => false;
    }

    fn v(etag: &str, last_modified: Option<u64>, len: u64) -> Validators<'_> {
        Validators {
            etag,
            last_modified,
            len,
        }
    }

    const IMS_T: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";
    const IMS_BEFORE: &[u8] = b"Sun, 06 Nov 1994 08:49:36 GMT";

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    /// `name: (is_get_or_head, Conditions { .. }) => Decision` against the
    /// representation `"a"`, last modified at `T`, 100 bytes long.
    macro_rules! evaluate_cases {
        ($($name:ident: ($get:expr, { $($field:ident: $value:expr),* }) => $expected:expr;)*) => {$(
            #[test]
            fn $name() {
                let c = Conditions { $($field: Some($value),)* ..Conditions::default() };
                assert_eq!(evaluate($get, &c, &v("\"a\"", Some(T), 100), &Limits::default()), $expected);
            }
        )*};
    }

    use Decision::{Full, NotModified, Partial, PreconditionFailed, RangeNotSatisfiable};

    evaluate_cases! {
        eval_no_conditions: (true, {}) => Full;
        eval_if_match_ok: (true, { if_match: b"\"a\"" }) => Full;
        eval_if_match_star: (false, { if_match: b"*" }) => Full;
        eval_if_match_fail: (true, { if_match: b"\"b\"" }) => PreconditionFailed;
        eval_if_match_weak_fails: (false, { if_match: b"W/\"a\"" }) => PreconditionFailed;
        eval_if_match_malformed_fails: (false, { if_match: b"a" }) => PreconditionFailed;
        eval_ius_ok_equal: (false, { if_unmodified_since: IMS_T }) => Full;
        eval_ius_fail: (false, { if_unmodified_since: IMS_BEFORE }) => PreconditionFailed;
        eval_ius_ignored_with_if_match: (false, { if_match: b"\"a\"", if_unmodified_since: IMS_BEFORE }) => Full;
        eval_ius_unparseable_ignored: (false, { if_unmodified_since: b"not a date" }) => Full;
        eval_inm_match_get: (true, { if_none_match: b"\"a\"" }) => NotModified;
        eval_inm_weak_match_get: (true, { if_none_match: b"W/\"a\"" }) => NotModified;
        eval_inm_star_get: (true, { if_none_match: b"*" }) => NotModified;
        eval_inm_match_put: (false, { if_none_match: b"\"a\"" }) => PreconditionFailed;
        eval_inm_star_put: (false, { if_none_match: b"*" }) => PreconditionFailed;
        eval_inm_no_match: (true, { if_none_match: b"\"b\"" }) => Full;
        eval_inm_after_if_match_failure: (true, { if_match: b"\"b\"", if_none_match: b"\"a\"" }) => PreconditionFailed;
        eval_ims_not_modified: (true, { if_modified_since: IMS_T }) => NotModified;
        eval_ims_modified: (true, { if_modified_since: IMS_BEFORE }) => Full;
        eval_ims_ignored_for_put: (false, { if_modified_since: IMS_T }) => Full;
        eval_ims_ignored_with_inm: (true, { if_none_match: b"\"b\"", if_modified_since: IMS_T }) => Full;
        eval_ims_unparseable_ignored: (true, { if_modified_since: b"06/11/1994" }) => Full;
        eval_ims_rfc850: (true, { if_modified_since: b"Sunday, 06-Nov-94 08:49:37 GMT" }) => NotModified;
        eval_range: (true, { range: b"bytes=0-9" }) => Partial(vec![r(0, 10)]);
        eval_range_multi: (true, { range: b"bytes=0-9,20-29" }) => Partial(vec![r(0, 10), r(20, 30)]);
        eval_range_unsatisfiable: (true, { range: b"bytes=100-" }) => RangeNotSatisfiable;
        eval_range_invalid_ignored: (true, { range: b"bytes=x" }) => Full;
        eval_range_not_for_put: (false, { range: b"bytes=0-9" }) => Full;
        eval_if_range_etag_ok: (true, { range: b"bytes=0-9", if_range: b"\"a\"" }) => Partial(vec![r(0, 10)]);
        eval_if_range_etag_changed: (true, { range: b"bytes=0-9", if_range: b"\"b\"" }) => Full;
        eval_if_range_weak: (true, { range: b"bytes=0-9", if_range: b"W/\"a\"" }) => Full;
        eval_if_range_date_ok: (true, { range: b"bytes=0-9", if_range: IMS_T }) => Partial(vec![r(0, 10)]);
        eval_if_range_date_other: (true, { range: b"bytes=0-9", if_range: IMS_BEFORE }) => Full;
        eval_if_range_unsatisfiable_not_honoured: (true, { range: b"bytes=100-", if_range: b"\"b\"" }) => Full;
        eval_if_range_without_range: (true, { if_range: b"\"b\"" }) => Full;
        eval_304_before_range: (true, { if_none_match: b"\"a\"", range: b"bytes=0-9" }) => NotModified;
        eval_if_match_then_range: (true, { if_match: b"\"a\"", range: b"bytes=-10" }) => Partial(vec![r(90, 100)]);
    }

    #[test]
    fn eval_dates_ignored_without_last_modified() {
        let c = Conditions {
            if_unmodified_since: Some(IMS_BEFORE),
            ..Conditions::default()
        };
        assert_eq!(
            evaluate(false, &c, &v("\"a\"", None, 1), &Limits::default()),
            Full
        );
        let c = Conditions {
            if_modified_since: Some(IMS_T),
            ..Conditions::default()
        };
        assert_eq!(
            evaluate(true, &c, &v("\"a\"", None, 1), &Limits::default()),
            Full
        );
        let c = Conditions {
            range: Some(b"bytes=0-0"),
            if_range: Some(IMS_T),
            ..Conditions::default()
        };
        assert_eq!(
            evaluate(true, &c, &v("\"a\"", None, 1), &Limits::default()),
            Full
        );
    }

    #[test]
    fn eval_empty_representation_range() {
        let c = Conditions {
            range: Some(b"bytes=0-"),
            ..Conditions::default()
        };
        let d = evaluate(true, &c, &v("\"a\"", Some(T), 0), &Limits::default());
        assert_eq!(d, RangeNotSatisfiable);
    }

    proptest! {
        /// format -> parse is the identity on every representable second, and the
        /// formatted text is also accepted in the two obsolete formats.
        #[test]
        fn http_date_round_trip(secs in 0u64..=MAX_HTTP_DATE) {
            let text = format_http_date(secs);
            prop_assert_eq!(parse_http_date(&text), Some(secs));
            let s = std::str::from_utf8(&text).unwrap();
            // "Sun, 06 Nov 1994 08:49:37 GMT" -> "Sun Nov  6 08:49:37 1994"
            let day: u32 = s[5..7].parse().unwrap();
            let asctime = format!("{} {} {:>2} {} {}", &s[0..3], &s[8..11], day, &s[17..25], &s[12..16]);
            prop_assert_eq!(parse_http_date(asctime.as_bytes()), Some(secs));
            let year: u32 = s[12..16].parse().unwrap();
            if (1970..2070).contains(&year) {
                let long = LONG_DAY_NAMES[DAY_NAMES.iter().position(|d| d[..] == text[0..3]).unwrap()];
                let rfc850 = format!("{}, {}-{}-{} {} GMT", std::str::from_utf8(long).unwrap(), &s[5..7], &s[8..11], &s[14..16], &s[17..25]);
                prop_assert_eq!(parse_http_date(rfc850.as_bytes()), Some(secs));
            }
        }

        /// The weekday written is the real one (checked against a day count mod 7).
        #[test]
        fn http_date_weekday(days in 0u64..2_932_896) {
            let text = format_http_date(days * 86_400);
            prop_assert_eq!(&text[0..3], &DAY_NAMES[((days + 3) % 7) as usize][..]);
        }

        /// parse never panics and anything it accepts formats back to a valid date.
        #[test]
        fn http_date_parse_arbitrary(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Some(secs) = parse_http_date(&bytes) {
                prop_assert_eq!(parse_http_date(&format_http_date(secs)), Some(secs));
            }
        }
    }
}
