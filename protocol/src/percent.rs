//! Percent-decoding of URI components (RFC 3986 §2.1) and of
//! `application/x-www-form-urlencoded` query components.
//!
//! # Contract
//!
//! * [`decode_path_segment`] decodes one path segment (or any component in which `+`
//!   is an ordinary character): every `%` must start an escape of exactly two hex
//!   digits (either case), `+` stays `+`.
//! * [`decode_query_component`] decodes one name or value of a query string split at
//!   `&` and `=`: the same, and `+` means a space (the WHATWG URL standard's
//!   `application/x-www-form-urlencoded` parser, what HTML forms and `curl
//!   --data-urlencode` send). `%2B` is a literal `+`.
//! * The decoded bytes must be UTF-8: names here are text (object keys, query values).
//! * Without anything to decode (no `%`, and for a query component no `+`), the input
//!   is returned borrowed: no allocation on the common path.
//!
//! A malformed escape (`%`, `%4`, `%G0`, `%+1`) is an error, not passed through as the
//! WHATWG parser does: two components that differ on the wire must not decode to the
//! same name, and a lenient decoder makes `%zz` and `%25zz` collide.
//!
//! # Deliberately not done
//!
//! * No splitting: the caller splits the path at `/` and the query at `&` and `=`
//!   *before* decoding (so `%2F` and `%26` are data, not separators), and gets a `/`,
//!   a NUL (`%00`) or a control character back as data. Whether such a name is
//!   acceptable is the caller's policy.
//! * No normalisation: no dot-segment removal (RFC 3986 §5.2.4), no Unicode
//!   normalisation, no case folding.
//! * No encoder: responses build their URIs elsewhere.

use std::borrow::Cow;

use thiserror::Error;

use crate::error::HttpError;

/// Why a component could not be decoded. The request was well framed, so the
/// connection may stay open ([`HttpError::must_close`] is false).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum PercentError {
    /// A `%` at byte `at` of the component is not followed by two hex digits.
    #[error(
        "invalid percent-escape at byte {at} of a URI component; write a literal % as %25 \
         and other escapes as % and two hex digits"
    )]
    BadEscape {
        /// Byte offset of the `%` in the encoded component.
        at: usize,
    },
    /// The decoded bytes are not UTF-8.
    #[error("a percent-encoded URI component does not decode to UTF-8; encode text as UTF-8")]
    NotUtf8,
}

impl HttpError for PercentError {
    fn status(&self) -> u16 {
        400
    }

    fn code(&self) -> &'static str {
        match self {
            PercentError::BadEscape { .. } => "bad_percent_escape",
            PercentError::NotUtf8 => "percent_not_utf8",
        }
    }

    fn must_close(&self) -> bool {
        false
    }
}

/// Decode a path segment (RFC 3986 §2.1, §3.3):
///
/// ```text
/// segment        = *pchar
/// pchar          = unreserved / pct-encoded / sub-delims / ":" / "@"
/// pct-encoded    = "%" HEXDIG HEXDIG
/// ```
///
/// `+` is a sub-delim and stays `+`. Returns the input borrowed when it has no `%`.
///
/// ```
/// use ringbox_protocol::percent::decode_path_segment;
/// assert_eq!(decode_path_segment("caf%C3%A9+cr%c3%a8me").unwrap(), "café+crème");
/// assert!(decode_path_segment("100%").is_err());
/// ```
pub fn decode_path_segment(s: &str) -> Result<Cow<'_, str>, PercentError> {
    match memchr::memchr(b'%', s.as_bytes()) {
        None => Ok(Cow::Borrowed(s)),
        Some(first) => decode_from(s, first, false).map(Cow::Owned),
    }
}

/// Decode a query name or value as `application/x-www-form-urlencoded` does: like
/// [`decode_path_segment`], and `+` is a space. Returns the input borrowed when it has
/// neither `%` nor `+`.
///
/// ```
/// use ringbox_protocol::percent::decode_query_component;
/// assert_eq!(decode_query_component("a+b%2Bc").unwrap(), "a b+c");
/// assert!(decode_query_component("%+1").is_err());
/// ```
pub fn decode_query_component(s: &str) -> Result<Cow<'_, str>, PercentError> {
    match memchr::memchr2(b'%', b'+', s.as_bytes()) {
        None => Ok(Cow::Borrowed(s)),
        Some(first) => decode_from(s, first, true).map(Cow::Owned),
    }
}

/// Decode `s`, whose first `%` (or `+` when `plus_is_space`) is at `first`.
fn decode_from(s: &str, first: usize, plus_is_space: bool) -> Result<String, PercentError> {
    let bytes = s.as_bytes();
    // Decoding only shrinks: one allocation of the input's size at most.
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..first]);
    let mut i = first;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PercentError::BadEscape { at: i });
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| PercentError::NotUtf8)
}

/// `HEXDIG = DIGIT / "A" / "B" / "C" / "D" / "E" / "F"`, case-insensitive (RFC 3986
/// §2.1: "The uppercase hexadecimal digits 'A' through 'F' are equivalent to the
/// lowercase digits 'a' through 'f', respectively.").
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a case expects: the decoded text, and whether it was borrowed.
    enum Expect {
        /// Decoded to this, without allocating.
        Borrowed(&'static str),
        /// Decoded to this, into a new string.
        Owned(&'static str),
        Err(PercentError),
    }

    fn check(got: Result<Cow<'_, str>, PercentError>, want: &Expect, input: &str) {
        match (got, want) {
            (Ok(Cow::Borrowed(g)), Expect::Borrowed(w)) => {
                assert_eq!(g, *w, "{input:?}");
                // Borrowed means: the input itself.
                assert_eq!(g.as_ptr(), input.as_ptr(), "{input:?}");
            }
            (Ok(Cow::Owned(g)), Expect::Owned(w)) => assert_eq!(g, *w, "{input:?}"),
            (Err(g), Expect::Err(w)) => assert_eq!(g, *w, "{input:?}"),
            (got, _) => panic!("{input:?}: unexpected {got:?}"),
        }
    }

    /// httparse-style table: `name: input => path expectation, query expectation;`.
    macro_rules! decode {
        ($($name:ident: $input:expr => $path:expr, $query:expr;)*) => {
            $(
                #[test]
                fn $name() {
                    let input: &str = $input;
                    check(decode_path_segment(input), &$path, input);
                    check(decode_query_component(input), &$query, input);
                    crate::props::percent::percent(input.as_bytes());
                }
            )*
        };
    }

    use Expect::{Borrowed, Owned};

    const fn bad(at: usize) -> Expect {
        Expect::Err(PercentError::BadEscape { at })
    }

    const NOT_UTF8: Expect = Expect::Err(PercentError::NotUtf8);

    decode! {
        empty: "" => Borrowed(""), Borrowed("");
        plain: "photos-2024_v1.jpg" => Borrowed("photos-2024_v1.jpg"), Borrowed("photos-2024_v1.jpg");
        sub_delims_stay: "a!$&'()*,;=:@~b" => Borrowed("a!$&'()*,;=:@~b"), Borrowed("a!$&'()*,;=:@~b");
        raw_utf8_passes: "café" => Borrowed("café"), Borrowed("café");
        space: "a%20b" => Owned("a b"), Owned("a b");
        plus: "a+b" => Borrowed("a+b"), Owned("a b");
        plus_only: "+" => Borrowed("+"), Owned(" ");
        escaped_plus: "a%2Bb" => Owned("a+b"), Owned("a+b");
        escaped_percent: "100%25" => Owned("100%"), Owned("100%");
        double_encoding_decoded_once: "%2541" => Owned("%41"), Owned("%41");
        lowercase_hex: "%c3%a9" => Owned("é"), Owned("é");
        uppercase_hex: "%C3%A9" => Owned("é"), Owned("é");
        mixed_case_hex: "%c3%A9" => Owned("é"), Owned("é");
        slash_is_data: "a%2Fb" => Owned("a/b"), Owned("a/b");
        nul_is_data: "a%00b" => Owned("a\0b"), Owned("a\0b");
        four_byte_utf8: "%F0%9F%8E%89" => Owned("🎉"), Owned("🎉");
        escape_at_start_and_end: "%41bc%44" => Owned("AbcD"), Owned("AbcD");
        all_escaped: "%61%62%63" => Owned("abc"), Owned("abc");
        // Malformed escapes: the offset is the `%`.
        lone_percent: "%" => bad(0), bad(0);
        percent_at_end: "abc%" => bad(3), bad(3);
        one_digit_at_end: "abc%4" => bad(3), bad(3);
        one_digit: "%4x" => bad(0), bad(0);
        non_hex: "%G0" => bad(0), bad(0);
        non_hex_second: "%0G" => bad(0), bad(0);
        plus_in_escape: "%+1" => bad(0), bad(0);
        minus_in_escape: "%-1" => bad(0), bad(0);
        space_in_escape: "% 1" => bad(0), bad(0);
        second_escape_bad: "%41%4" => bad(3), bad(3);
        percent_percent: "%%41" => bad(0), bad(0);
        plus_before_bad_escape: "a+%zz" => bad(2), bad(2);
        non_ascii_digit: "%٣0" => bad(0), bad(0);
        // Decoded bytes that are not UTF-8.
        lone_continuation: "%80" => NOT_UTF8, NOT_UTF8;
        latin1: "caf%E9" => NOT_UTF8, NOT_UTF8;
        truncated_sequence: "%C3" => NOT_UTF8, NOT_UTF8;
        overlong: "%C0%AF" => NOT_UTF8, NOT_UTF8;
        surrogate: "%ED%A0%80" => NOT_UTF8, NOT_UTF8;
        split_by_raw_byte: "%C3x%A9" => NOT_UTF8, NOT_UTF8;
    }

    #[test]
    fn error_statuses_and_codes() {
        for (e, code) in [
            (PercentError::BadEscape { at: 3 }, "bad_percent_escape"),
            (PercentError::NotUtf8, "percent_not_utf8"),
        ] {
            assert_eq!(e.status(), 400);
            assert_eq!(e.code(), code);
            assert!(!e.must_close());
            assert!(!e.to_string().is_empty());
        }
        assert!(PercentError::BadEscape { at: 3 }
            .to_string()
            .contains("byte 3"));
    }

    #[test]
    fn every_byte_round_trips_in_both_cases() {
        for b in 0u8..=255 {
            for escaped in [format!("%{b:02X}"), format!("%{b:02x}")] {
                let want = std::str::from_utf8(&[b]).map(str::to_owned);
                match want {
                    Ok(w) => {
                        assert_eq!(decode_path_segment(&escaped).unwrap(), w);
                        assert_eq!(decode_query_component(&escaped).unwrap(), w);
                    }
                    Err(_) => {
                        assert_eq!(decode_path_segment(&escaped), Err(PercentError::NotUtf8));
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// Any text, encoded by the reference encoders of `props::percent`, decodes
        /// back; and the property check holds for it.
        #[test]
        fn encode_then_decode(s in "\\PC{0,40}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            crate::props::percent::percent(s.as_bytes());
            crate::props::percent::percent(&bytes);
        }
    }
}
