//! Property check for the multipart/form-data parser: any split of the input into
//! feeds gives the same events (with `Data` concatenated per part) as the whole input,
//! the feeding contract holds on every call, and parts respect the limits.
//!
//! Input layout: if the first line (up to `\n`) is a valid boundary, it is the boundary
//! and the rest is the body; otherwise the boundary is `AaB03x` and all of it is the
//! body. So seed files read like real requests.

use crate::limits::Limits;
use crate::multipart::{MultipartError, MultipartEvent, MultipartParser, PartHeaders};

/// Boundary used when the input does not start with one.
pub const DEFAULT_BOUNDARY: &[u8] = b"AaB03x";

/// An owned multipart event; consecutive `Data` are merged, since only their
/// concatenation is part of the contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedEvent {
    /// `PartStart`.
    Start(PartHeaders),
    /// All the `Data` of a part seen so far.
    Data(Vec<u8>),
    /// `PartEnd`.
    End,
    /// `Done`.
    Done,
}

/// The events of a whole run, and how it ended.
pub type Outcome = (Vec<OwnedEvent>, Result<(), MultipartError>);

/// Feeds `pieces` to a new parser (the last one with `eof`), keeping unconsumed bytes
/// the way a caller must, and asserts the feeding contract on every call: `Data` is a
/// non-empty slice at the front of the input, `NeedMore` never comes at eof and leaves
/// at most delimiter+1 bytes, `Done` consumes everything and repeats, errors are
/// sticky.
pub fn run_feeds(boundary: &[u8], pieces: &[&[u8]], limits: &Limits) -> Outcome {
    let mut parser = MultipartParser::new(boundary, limits).expect("a valid boundary");
    let delimiter_len = boundary.len() + 4;
    let mut events: Vec<OwnedEvent> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let eof = i + 1 == pieces.len();
        buf.extend_from_slice(piece);
        let mut off = 0;
        loop {
            let input = &buf[off..];
            let (n, event) = match parser.parse(input, eof) {
                Ok(step) => step,
                Err(e) => {
                    assert_eq!(parser.parse(b"more", eof), Err(e.clone()), "sticky error");
                    return (events, Err(e));
                }
            };
            assert!(n <= input.len(), "consumed more than the input");
            match event {
                MultipartEvent::NeedMore => {
                    assert!(!eof, "NeedMore at eof");
                    assert!(
                        input.len() - n <= delimiter_len + 1,
                        "too many bytes left unconsumed"
                    );
                    off += n;
                    break;
                }
                MultipartEvent::Done => {
                    assert_eq!(n, input.len(), "Done consumes the epilogue");
                    assert!(parser.is_done());
                    assert_eq!(
                        parser.parse(b"epilogue", eof),
                        Ok((8, MultipartEvent::Done))
                    );
                    events.push(OwnedEvent::Done);
                    return (events, Ok(()));
                }
                MultipartEvent::Data(d) => {
                    assert!(!d.is_empty(), "empty Data");
                    assert_eq!(d.as_ptr(), input.as_ptr(), "Data is the front of the input");
                    assert_eq!(d.len(), n, "Data consumes exactly itself");
                    assert!(
                        matches!(
                            events.last(),
                            Some(OwnedEvent::Start(_) | OwnedEvent::Data(_))
                        ),
                        "Data outside a part"
                    );
                    match events.last_mut() {
                        Some(OwnedEvent::Data(prev)) => prev.extend_from_slice(d),
                        _ => events.push(OwnedEvent::Data(d.to_vec())),
                    }
                }
                MultipartEvent::PartStart(h) => {
                    assert!(
                        matches!(events.last(), None | Some(OwnedEvent::End)),
                        "PartStart inside a part"
                    );
                    events.push(OwnedEvent::Start(h));
                }
                MultipartEvent::PartEnd => {
                    assert!(
                        matches!(
                            events.last(),
                            Some(OwnedEvent::Start(_) | OwnedEvent::Data(_))
                        ),
                        "PartEnd outside a part"
                    );
                    events.push(OwnedEvent::End);
                }
            }
            off += n;
        }
        buf.drain(..off);
    }
    unreachable!("the last piece is fed with eof, which ends in Done or an error")
}

/// Splits `body` at the given sorted positions (each `<= body.len()`).
pub fn split_at<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for &cut in cuts {
        pieces.push(&body[start..cut]);
        start = cut;
    }
    pieces.push(&body[start..]);
    pieces
}

/// The fuzz property: see the module docs.
pub fn multipart(data: &[u8]) {
    let (boundary, body) = match data.iter().position(|&b| b == b'\n') {
        Some(nl) if MultipartParser::new(&data[..nl], &Limits::default()).is_ok() => {
            (&data[..nl], &data[nl + 1..])
        }
        _ => (DEFAULT_BOUNDARY, data),
    };
    // Small limits, so that fuzzing reaches them.
    let limits = Limits {
        max_multipart_parts: 8,
        max_part_head_bytes: 256,
        ..Limits::default()
    };
    let whole = run_feeds(boundary, &[body], &limits);

    let bytes: Vec<usize> = (1..body.len()).collect();
    assert_eq!(
        run_feeds(boundary, &split_at(body, &bytes), &limits),
        whole,
        "byte by byte"
    );

    // Piece sizes derived from the data itself (1..=23 bytes), so the fuzzer explores
    // splits through the same bytes it mutates.
    let mut cuts = Vec::new();
    let mut pos = 0;
    while let Some(&b) = body.get(pos) {
        pos += 1 + (usize::from(b) * 7 + pos) % 23;
        if pos < body.len() {
            cuts.push(pos);
        }
    }
    assert_eq!(
        run_feeds(boundary, &split_at(body, &cuts), &limits),
        whole,
        "derived splits"
    );

    // Parts respect the limits.
    let (events, result) = &whole;
    let parts = events
        .iter()
        .filter(|e| matches!(e, OwnedEvent::Start(_)))
        .count();
    assert!(
        parts <= limits.max_multipart_parts,
        "too many parts accepted"
    );
    for event in events {
        if let OwnedEvent::Start(h) = event {
            for text in [&h.name, &h.filename, &h.content_type]
                .into_iter()
                .flatten()
            {
                assert!(
                    text.chars().count() <= limits.max_part_head_bytes,
                    "a header value longer than the head limit"
                );
            }
        }
    }
    // A completed body ends with Done, and only then.
    assert_eq!(result.is_ok(), events.last() == Some(&OwnedEvent::Done));
}

/// The same check under the name `protocol/tests/corpus.rs` replays it with.
pub fn check(data: &[u8]) {
    multipart(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_hold() {
        multipart(b"");
        multipart(b"AaB03x\n--AaB03x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--AaB03x--\r\n");
        multipart(b"--AaB03x\r\n\r\n\r\n--AaB03\r\n--AaB03x--");
        multipart(b"b\n--b\r\n\r\n1\r\n--b\r\n\r\n2\r\n--b\r\n\r\n3\r\n--b\r\n\r\n4\r\n--b\r\n\r\n5\r\n--b\r\n\r\n6\r\n--b\r\n\r\n7\r\n--b\r\n\r\n8\r\n--b\r\n\r\n9\r\n--b--");
        multipart(&[0xff; 300]);
    }

    #[test]
    fn split_at_covers_the_input() {
        assert_eq!(split_at(b"abc", &[]), vec![&b"abc"[..]]);
        assert_eq!(
            split_at(b"abc", &[0, 2, 3]),
            vec![&b""[..], b"ab", b"c", b""]
        );
    }
}
