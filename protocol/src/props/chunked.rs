//! Property check for [`crate::chunked::ChunkedDecoder`], shared by the `chunked` fuzz
//! target and the corpus-replay test.
//!
//! Properties, under the default and under tight limits: decoding `data` whole, one
//! byte at a time, and in uneven pieces derived from the data gives identical body
//! bytes, identical trailers and an identical outcome (done after the same number of
//! bytes, the same error, or still needing more). On the way: `Data` is never empty,
//! nothing beyond the input is claimed, `NeedMore` consumes everything, `Done` and
//! errors are sticky, and the body is never longer than the input.

use crate::chunked::{ChunkedDecoder, ChunkedError, ChunkedEvent};
use crate::limits::Limits;

/// Panics if a property of the chunked decoder does not hold for `data`.
pub fn chunked(data: &[u8]) {
    let tight = Limits {
        max_chunk_ext_bytes: 4,
        max_trailer_bytes: 16,
        ..Limits::default()
    };
    // Pieces of 1..=31 bytes, taken from the data itself so the fuzzer steers them.
    let pieces: Vec<usize> = data
        .iter()
        .rev()
        .take(64)
        .map(|&b| usize::from(b % 31) + 1)
        .collect();
    for limits in [Limits::default(), tight] {
        let whole = run(data, &limits, &[]);
        assert!(whole.body.len() <= data.len());
        assert_eq!(run(data, &limits, &[1]), whole, "byte by byte");
        assert_eq!(run(data, &limits, &pieces), whole, "uneven pieces");
    }
}

/// The same check under the name `protocol/tests/corpus.rs` replays with.
pub fn check(data: &[u8]) {
    chunked(data);
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Done after this many bytes.
    Done(usize),
    NeedMore,
    Failed(ChunkedError),
}

#[derive(Debug, PartialEq, Eq)]
struct Run {
    body: Vec<u8>,
    trailers: Vec<(String, Vec<u8>)>,
    outcome: Outcome,
}

/// Feed `data` as a caller with a growing buffer would: `pieces` are the sizes of the
/// successive reads (cycled); empty means all at once.
fn run(data: &[u8], limits: &Limits, pieces: &[usize]) -> Run {
    let mut dec = ChunkedDecoder::new(limits);
    let mut body = Vec::new();
    let (mut consumed, mut fed, mut read) = (0usize, 0usize, 0usize);
    if pieces.is_empty() {
        fed = data.len();
    }
    let outcome = loop {
        let input = &data[consumed..fed];
        match dec.decode(input) {
            Ok((n, ChunkedEvent::Data(d))) => {
                assert!(!d.is_empty(), "empty Data");
                assert!(n <= input.len(), "consumed more than given");
                assert!(d.len() <= n, "Data longer than what was consumed");
                assert_eq!(&input[n - d.len()..n], d, "Data is not the consumed tail");
                body.extend_from_slice(d);
                consumed += n;
            }
            Ok((n, ChunkedEvent::Done)) => {
                assert!(n <= input.len(), "consumed more than given");
                consumed += n;
                assert!(dec.is_done());
                let again = dec.decode(&data[consumed..]);
                assert!(
                    matches!(again, Ok((0, ChunkedEvent::Done))),
                    "Done not sticky"
                );
                break Outcome::Done(consumed);
            }
            Ok((n, ChunkedEvent::NeedMore)) => {
                assert_eq!(n, input.len(), "NeedMore left bytes unconsumed");
                assert!(!dec.is_done());
                consumed += n;
                if fed == data.len() {
                    break Outcome::NeedMore;
                }
                let step = pieces[read % pieces.len()].max(1);
                read += 1;
                fed = (fed + step).min(data.len());
            }
            Err(e) => {
                assert_eq!(dec.decode(b"0\r\n\r\n"), Err(e.clone()), "error not sticky");
                break Outcome::Failed(e);
            }
        }
    };
    Run {
        body,
        trailers: dec.trailers().to_vec(),
        outcome,
    }
}
