//! Property check for `Range` handling: resolution stays in bounds and is sorted,
//! disjoint, coalesced and within `max_ranges`, it agrees with an independent
//! reference (a brute-force bitmap on small lengths), parsed specs round-trip through
//! their text, and the `multipart/byteranges` length is exact.
//!
//! Input layout: if the first line (up to `\n`) is a decimal number, it is the
//! representation length (saturating) and the rest is the `Range` value; otherwise the
//! first 8 bytes are the length (little endian) and the rest is the value. So seed
//! files read like `1000\nbytes=0-99`.

use crate::conditional::{evaluate, Conditions, Decision, Validators};
use crate::limits::Limits;
use crate::range::{
    content_range, if_range_matches, parse_range, resolve_range, resolve_specs, ByteRange,
    ByteRangesWriter, RangeOutcome, RangeSpec,
};

/// Lengths up to this are also checked byte by byte against a bitmap.
const BRUTE_FORCE_MAX_LEN: u64 = 4096;

/// Splits the input into (length, header value); see the module docs.
fn split_input(data: &[u8]) -> (u64, &[u8]) {
    if let Some(nl) = data.iter().position(|&b| b == b'\n') {
        let digits = &data[..nl];
        if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
            let len = digits.iter().fold(0u64, |acc, &d| {
                acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
            });
            return (len, &data[nl + 1..]);
        }
    }
    let n = data.len().min(8);
    let mut raw = [0u8; 8];
    raw[..n].copy_from_slice(&data[..n]);
    (u64::from_le_bytes(raw), &data[n..])
}

/// The half-open interval a spec asks for within `len`, computed independently of
/// `resolve_specs`; `None` if it selects nothing.
fn reference_interval(spec: RangeSpec, len: u64) -> Option<(u64, u64)> {
    let (start, end) = match spec {
        RangeSpec::FromTo(first, last) => (first, last.saturating_add(1).min(len)),
        RangeSpec::From(first) => (first, len),
        RangeSpec::Suffix(0) => return None,
        RangeSpec::Suffix(n) => (len.saturating_sub(n), len),
    };
    (start < end).then_some((start, end))
}

/// Merges intervals that overlap or touch, by repeated pairwise merging (quadratic and
/// order-independent: deliberately not the algorithm under test).
fn reference_union(mut intervals: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    let mut changed = true;
    while changed {
        changed = false;
        'outer: for i in 0..intervals.len() {
            for j in i + 1..intervals.len() {
                let (a, b) = (intervals[i], intervals[j]);
                if a.0 <= b.1 && b.0 <= a.1 {
                    intervals[i] = (a.0.min(b.0), a.1.max(b.1));
                    intervals.swap_remove(j);
                    changed = true;
                    break 'outer;
                }
            }
        }
    }
    intervals.sort_unstable();
    intervals
}

fn render(specs: &[RangeSpec]) -> String {
    let parts: Vec<String> = specs
        .iter()
        .map(|s| match *s {
            RangeSpec::FromTo(a, b) => format!("{a}-{b}"),
            RangeSpec::From(a) => format!("{a}-"),
            RangeSpec::Suffix(n) => format!("-{n}"),
        })
        .collect();
    format!("bytes={}", parts.join(","))
}

/// The fuzz property: see the module docs.
pub fn range(data: &[u8]) {
    let (len, value) = split_input(data);
    let limits = Limits::default();
    let parsed = parse_range(value, &limits);
    let outcome = resolve_range(value, len, &limits);

    let specs = match parsed {
        Err(_) => {
            assert_eq!(
                outcome,
                RangeOutcome::Ignore,
                "an invalid header must be ignored"
            );
            Vec::new()
        }
        Ok(specs) => {
            assert!(!specs.is_empty() && specs.len() <= limits.max_ranges);
            assert_eq!(outcome, resolve_specs(&specs, len));
            assert_ne!(outcome, RangeOutcome::Ignore, "a valid header was ignored");
            // Round trip through the canonical text.
            assert_eq!(
                parse_range(render(&specs).as_bytes(), &limits),
                Ok(specs.clone())
            );
            specs
        }
    };

    let reference = reference_union(
        specs
            .iter()
            .filter_map(|&s| reference_interval(s, len))
            .collect(),
    );
    match &outcome {
        RangeOutcome::Ignore => {}
        RangeOutcome::Unsatisfiable => assert!(reference.is_empty(), "satisfiable ranges lost"),
        RangeOutcome::Satisfiable(ranges) => {
            assert!(!ranges.is_empty() && ranges.len() <= limits.max_ranges);
            for (i, r) in ranges.iter().enumerate() {
                assert!(
                    r.start < r.end && r.end <= len,
                    "out of bounds: {r:?} len {len}"
                );
                if i > 0 {
                    assert!(
                        ranges[i - 1].end < r.start,
                        "not sorted, disjoint, coalesced"
                    );
                }
                let text = content_range(*r, len);
                assert_eq!(text, format!("bytes {}-{}/{}", r.start, r.end - 1, len));
            }
            let got: Vec<(u64, u64)> = ranges.iter().map(|r| (r.start, r.end)).collect();
            assert_eq!(got, reference, "differs from the reference union");
            if len <= BRUTE_FORCE_MAX_LEN {
                check_bitmap(&specs, ranges, len);
            }
            check_byteranges_len(ranges, len);
        }
    }

    // The same value as If-Range / conditional input must not panic, and a Range
    // decision agrees with the outcome.
    let _ = if_range_matches(value, "\"abc\"", Some(len));
    let conditions = Conditions {
        range: Some(value),
        if_none_match: Some(value),
        if_modified_since: Some(value),
        ..Conditions::default()
    };
    let validators = Validators {
        etag: "\"abc\"",
        last_modified: Some(len),
        len,
    };
    let _ = evaluate(true, &conditions, &validators, &limits);
    let range_only = Conditions {
        range: Some(value),
        ..Conditions::default()
    };
    let decision = evaluate(true, &range_only, &validators, &limits);
    let expected = match outcome {
        RangeOutcome::Ignore => Decision::Full,
        RangeOutcome::Satisfiable(r) => Decision::Partial(r),
        RangeOutcome::Unsatisfiable => Decision::RangeNotSatisfiable,
    };
    assert_eq!(decision, expected);
}

/// Every byte position is selected by the output iff some spec selects it.
fn check_bitmap(specs: &[RangeSpec], ranges: &[ByteRange], len: u64) {
    let n = len as usize;
    let mut wanted = vec![false; n];
    for (p, w) in wanted.iter_mut().enumerate() {
        let p = p as u64;
        *w = specs.iter().any(|&s| match s {
            RangeSpec::FromTo(first, last) => first <= p && p <= last,
            RangeSpec::From(first) => first <= p,
            RangeSpec::Suffix(k) => k > 0 && len - p <= k,
        });
    }
    let mut got = vec![false; n];
    for r in ranges {
        for g in &mut got[r.start as usize..r.end as usize] {
            *g = true;
        }
    }
    assert_eq!(got, wanted, "bitmap differs");
}

/// `body_len` equals the length of the body as the daemon assembles it.
fn check_byteranges_len(ranges: &[ByteRange], len: u64) {
    let writer = ByteRangesWriter::new("3d6b6a416f9b5", "application/octet-stream", len);
    // u128: with a length near u64::MAX the true total does not fit in u64, and
    // body_len must then saturate rather than wrap.
    let mut assembled: u128 = 0;
    for (i, r) in ranges.iter().enumerate() {
        let head = writer.part_head(i, *r);
        assert_eq!(head.starts_with(b"\r\n--"), i > 0);
        assembled += head.len() as u128 + u128::from(r.len());
    }
    assembled += writer.trailer().len() as u128;
    let expected = u64::try_from(assembled).unwrap_or(u64::MAX);
    assert_eq!(writer.body_len(ranges), expected);
}

/// The same check under the name `protocol/tests/corpus.rs` replays it with.
pub fn check(data: &[u8]) {
    range(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_hold() {
        for seed in [
            &b"10000\nbytes=0-499"[..],
            b"10000\nbytes=-500",
            b"10000\nbytes=9500-",
            b"10000\nbytes=0-0,-1",
            b"10\nbytes=0-4,5-9,2-3",
            b"0\nbytes=0-",
            b"10\nbytes=-0",
            b"10\nitems=0-1",
            b"18446744073709551615\nbytes=0-99999999999999999999999",
            b"\xff\xff\xff\xff\xff\xff\xff\xffbytes=-1",
            b"",
            b"12",
        ] {
            range(seed);
        }
    }

    /// Regression: with a length of `u64::MAX`, the multipart/byteranges body is longer
    /// than `u64::MAX` and `ByteRangesWriter::body_len` overflowed (now it saturates).
    #[test]
    fn regression_byteranges_body_len_overflow() {
        range(include_bytes!(
            "../../tests/data/range/byteranges-body-len-overflow-u64-max-len"
        ));
    }

    #[test]
    fn split_input_forms() {
        assert_eq!(split_input(b"42\nbytes=1-2"), (42, &b"bytes=1-2"[..]));
        assert_eq!(
            split_input(b"99999999999999999999999\nx"),
            (u64::MAX, &b"x"[..])
        );
        assert_eq!(split_input(b"\x01\0\0\0\0\0\0\0bytes"), (1, &b"bytes"[..]));
        assert_eq!(split_input(b"\x02"), (2, &b""[..]));
    }

    #[test]
    fn reference_union_merges_touching() {
        assert_eq!(
            reference_union(vec![(5, 6), (0, 2), (2, 3)]),
            vec![(0, 3), (5, 6)]
        );
    }
}
