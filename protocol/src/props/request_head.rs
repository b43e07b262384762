//! Property check for [`crate::head::parse_request_head`], shared by the
//! `request_head` fuzz target and the corpus-replay test.
//!
//! Properties, each under the default and under tight limits:
//! * `Complete(n)` has `0 < n <= len`, `n <= max_head_bytes` and at most `max_headers`
//!   fields; `Partial` only while `len < max_head_bytes`;
//! * arrival in growing prefixes (one reused `RequestHead`, as a connection would)
//!   gives `Partial` until the first definite answer, and that answer equals the one
//!   for the whole buffer, down to every accessor of the parsed head;
//! * the head alone (`data[..n]`) parses to the same head (no look-ahead past it);
//! * every header name and value, the method and the target occur in the input, and
//!   `header(name)` returns the first field with that name;
//! * [`check_partial_head`] on growing prefixes: once it refuses a prefix, the parser
//!   refuses that prefix and the whole input (an extension of it) with the same
//!   error, so the refusal is final; a head the parser accepts is never refused on
//!   any prefix; and [`RequestLineCheck`] resumed over the growing buffer answers
//!   exactly as the stateless check.

use memchr::memmem;

use crate::head::{
    check_partial_head, parse_request_head, BodyFraming, HeadError, Method, RequestHead,
    RequestLineCheck, Status, Version,
};
use crate::limits::Limits;

/// Panics if a property of the request head parser does not hold for `data`.
pub fn request_head(data: &[u8]) {
    let tight = Limits {
        max_head_bytes: 256,
        max_headers: 4,
        ..Limits::default()
    };
    for limits in [Limits::default(), tight] {
        check_with(data, &limits);
    }
}

/// The same check under the name `protocol/tests/corpus.rs` replays with.
pub fn check(data: &[u8]) {
    request_head(data);
}

/// Everything observable about a parsed head, for comparisons.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    method: Method,
    method_str: String,
    target: String,
    path: String,
    query: Option<String>,
    version: Version,
    headers: Vec<(String, Vec<u8>)>,
    framing: BodyFraming,
    keep_alive: bool,
    expects_continue: bool,
    upgrade: Option<Vec<u8>>,
}

fn snapshot(h: &RequestHead) -> Snapshot {
    Snapshot {
        method: h.method(),
        method_str: h.method_str().to_string(),
        target: h.target().to_string(),
        path: h.path().to_string(),
        query: h.query().map(str::to_string),
        version: h.version(),
        headers: h
            .headers()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect(),
        framing: h.framing(),
        keep_alive: h.keep_alive(),
        expects_continue: h.expects_continue(),
        upgrade: h.upgrade().map(<[u8]>::to_vec),
    }
}

type Outcome = (Result<Status<usize>, HeadError>, Option<Snapshot>);

fn parse(data: &[u8], limits: &Limits, head: &mut RequestHead) -> Outcome {
    let r = parse_request_head(data, limits, head);
    let snap = matches!(r, Ok(Status::Complete(_))).then(|| snapshot(head));
    (r, snap)
}

fn check_with(data: &[u8], limits: &Limits) {
    let mut head = RequestHead::new();
    let full = parse(data, limits, &mut head);
    match full.0 {
        Ok(Status::Complete(n)) => {
            assert!(
                n > 0 && n <= data.len(),
                "Complete({n}) of {} bytes",
                data.len()
            );
            assert!(
                n <= limits.max_head_bytes,
                "head of {n} bytes over the limit"
            );
            check_lookups(&head, &data[..n]);
            // The head alone gives the same answer: nothing after it was looked at.
            let alone = parse(&data[..n], limits, &mut RequestHead::new());
            assert_eq!(alone, full, "head alone");
        }
        Ok(Status::Partial) => {
            assert!(data.len() < limits.max_head_bytes, "Partial at the limit");
        }
        Err(_) => {}
    }

    // Incremental arrival with one reused head.
    let mut reused = RequestHead::new();
    let mut answered = false;
    for k in prefix_lengths(data) {
        let r = parse(&data[..k], limits, &mut reused);
        if r.0 != Ok(Status::Partial) {
            assert_eq!(r, full, "first answer at a prefix of {k} bytes");
            answered = true;
            break;
        }
    }
    if !answered {
        assert_eq!(full.0, Ok(Status::Partial), "every prefix was Partial");
    }

    check_partial(data, limits, &full);
}

/// `check_partial_head` over growing prefixes, against the parser's answer `full`
/// for the whole input.
fn check_partial(data: &[u8], limits: &Limits, full: &Outcome) {
    let mut resumed = RequestLineCheck::new();
    let mut refused: Option<HeadError> = None;
    for k in prefix_lengths(data) {
        let prefix = &data[..k];
        let stateless = check_partial_head(prefix, limits);
        assert_eq!(
            resumed.check(prefix, limits),
            stateless,
            "resumed at {k} bytes"
        );
        match (stateless, refused) {
            (Err(e), None) => {
                // The first refusal: final for this prefix and every extension.
                assert_eq!(
                    full.0,
                    Err(e),
                    "check refused {k} bytes, the parser not the whole"
                );
                let mut head = RequestHead::new();
                assert_eq!(
                    parse_request_head(prefix, limits, &mut head),
                    Err(e),
                    "at {k}"
                );
                refused = Some(e);
            }
            (Err(e), Some(first)) => assert_eq!(e, first, "refusal changed at {k} bytes"),
            (Ok(()), Some(first)) => panic!("refused with {first:?}, then accepted {k} bytes"),
            (Ok(()), None) => {}
        }
    }
    if let Ok(Status::Complete(_)) = full.0 {
        assert_eq!(refused, None, "a valid head was refused on a prefix");
    }
}

/// Growing prefix lengths ending with `data.len()`: all of them for short inputs,
/// else steps of 1..=32 bytes derived from the data (arrival in uneven reads).
fn prefix_lengths(data: &[u8]) -> Vec<usize> {
    if data.len() <= 64 {
        return (0..=data.len()).collect();
    }
    let mut out = Vec::new();
    let mut k = 0;
    while k < data.len() {
        out.push(k);
        k += 1 + usize::from(data[k] % 32);
    }
    out.push(data.len());
    out
}

fn check_lookups(head: &RequestHead, input: &[u8]) {
    let occurs = |needle: &[u8]| needle.is_empty() || memmem::find(input, needle).is_some();
    assert!(!head.method_str().is_empty() && occurs(head.method_str().as_bytes()));
    assert!(!head.target().is_empty() && occurs(head.target().as_bytes()));
    assert!(head.target().starts_with('/') || head.target() == "*");
    assert_eq!(
        head.query().is_some(),
        head.target().contains('?'),
        "query iff '?'"
    );
    let fields: Vec<(&str, &[u8])> = head.headers().collect();
    for &(name, value) in &fields {
        assert!(!name.is_empty() && occurs(name.as_bytes()), "name {name:?}");
        assert!(occurs(value), "value of {name:?}");
        assert_eq!(value.trim_ascii(), value, "value of {name:?} is trimmed");
        let first = fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, v)| v);
        assert_eq!(head.header(name), first, "header({name:?})");
        assert_eq!(head.header(&name.to_ascii_uppercase()), first);
    }
    if let Some(u) = head.upgrade() {
        assert!(occurs(u));
    }
}
