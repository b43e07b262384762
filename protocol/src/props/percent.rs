//! Property check for [`crate::percent`], shared by the `percent` fuzz target and the
//! corpus-replay test.
//!
//! The input is read as text (invalid UTF-8 replaced by U+FFFD). Properties:
//! * both decoders agree with a naive reference decoder (written independently
//!   below: byte by byte, hex digits checked one at a time), errors included;
//! * the result is borrowed exactly when there is nothing to decode (no `%`, and for
//!   a query component no `+`), and is never longer than the input;
//! * a query component decodes as the path segment with every `+` written `%20`;
//! * round trips: the input, encoded by three simple encoders (pchar-preserving for
//!   paths, form-style with `+` for spaces, and every byte escaped in lower case),
//!   decodes back to itself; so does every successful decoding.

use std::borrow::Cow;

use crate::percent::{decode_path_segment, decode_query_component, PercentError};

/// Panics if a property of the percent decoders does not hold for `data`.
pub fn percent(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_decoders(&text);
    round_trips(&text);
    if let Ok(decoded) = decode_path_segment(&text) {
        round_trips(&decoded);
    }
    if let Ok(decoded) = decode_query_component(&text) {
        round_trips(&decoded);
    }
}

/// The same check under the name `protocol/tests/corpus.rs` replays with.
pub fn check(data: &[u8]) {
    percent(data);
}

fn check_decoders(s: &str) {
    let path = decode_path_segment(s);
    let query = decode_query_component(s);
    assert_eq!(owned(&path), reference(s, false), "path segment {s:?}");
    assert_eq!(owned(&query), reference(s, true), "query component {s:?}");

    assert_eq!(
        matches!(path, Ok(Cow::Borrowed(_))),
        !s.contains('%'),
        "path borrowed iff no %: {s:?}"
    );
    assert_eq!(
        matches!(query, Ok(Cow::Borrowed(_))),
        !s.contains(['%', '+']),
        "query borrowed iff no % or +: {s:?}"
    );
    for d in [&path, &query].into_iter().flatten() {
        assert!(d.len() <= s.len(), "decoding grew {s:?}");
    }

    let escaped_plus = s.replace('+', "%20");
    let plus_as_escape = decode_path_segment(&escaped_plus);
    assert_eq!(
        query.as_ref().ok().map(|d| d.as_ref()),
        plus_as_escape.as_ref().ok().map(|d| d.as_ref()),
        "query vs path with + as %20: {s:?}"
    );
    assert_eq!(query.is_err(), plus_as_escape.is_err(), "{s:?}");
}

fn owned(r: &Result<Cow<'_, str>, PercentError>) -> Result<String, PercentError> {
    r.as_ref().map(|c| c.to_string()).map_err(|e| *e)
}

/// Naive reference: what RFC 3986 §2.1 and the form encoding say, written without
/// looking at the decoder.
fn reference(s: &str, plus_is_space: bool) -> Result<String, PercentError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .ok_or(PercentError::BadEscape { at: i })?;
            // `u8::from_str_radix` alone would take "+1": each digit is checked first.
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(PercentError::BadEscape { at: i });
            }
            let hex = std::str::from_utf8(hex).map_err(|_| PercentError::BadEscape { at: i })?;
            let v = u8::from_str_radix(hex, 16).map_err(|_| PercentError::BadEscape { at: i })?;
            out.push(v);
            i += 3;
        } else if b[i] == b'+' && plus_is_space {
            out.push(b' ');
            i += 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PercentError::NotUtf8)
}

/// RFC 3986 §3.3 `pchar` minus `pct-encoded`: what a path segment may carry as is.
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

fn escape(out: &mut String, b: u8, lower: bool) {
    let digits: &[u8; 16] = if lower {
        b"0123456789abcdef"
    } else {
        b"0123456789ABCDEF"
    };
    out.push('%');
    out.push(char::from(digits[usize::from(b >> 4)]));
    out.push(char::from(digits[usize::from(b & 0xF)]));
}

/// Encodes a path segment: pchars as they are (`+` included), the rest escaped.
fn encode_path(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        if is_pchar(b) {
            out.push(char::from(b));
        } else {
            escape(&mut out, b, false);
        }
    }
    out
}

/// Encodes a form value: unreserved as is, space as `+`, the rest (`+` too) escaped.
fn encode_query(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        match b {
            b' ' => out.push('+'),
            _ if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => out.push(char::from(b)),
            _ => escape(&mut out, b, false),
        }
    }
    out
}

/// Escapes every byte, in lower-case hex.
fn encode_all_lower(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        escape(&mut out, b, true);
    }
    out
}

fn round_trips(s: &str) {
    let path = encode_path(s);
    assert_eq!(
        decode_path_segment(&path).as_deref(),
        Ok(s),
        "path {path:?}"
    );
    let query = encode_query(s);
    assert_eq!(
        decode_query_component(&query).as_deref(),
        Ok(s),
        "query {query:?}"
    );
    let all = encode_all_lower(s);
    assert_eq!(
        decode_path_segment(&all).as_deref(),
        Ok(s),
        "escaped {all:?}"
    );
    assert_eq!(
        decode_query_component(&all).as_deref(),
        Ok(s),
        "escaped {all:?}"
    );
}
