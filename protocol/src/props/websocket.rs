//! Property check for [`crate::websocket`]'s [`FrameDecoder`] and
//! [`MessageAssembler`], shared by the `websocket` fuzz target and the corpus-replay
//! test.
//!
//! Input: the first byte's lowest bit says which side decodes (1: a server decoding a
//! client's frames, which must be masked; 0: a client decoding a server's, which must
//! not be); the rest is the byte stream on the wire. Properties, under the default
//! limits and under tight ones (64-byte frames, 100-byte messages):
//!
//! * **Split invariance:** decoding the stream whole, one byte at a time, and in
//!   uneven reads whose sizes come from the data gives the same sequence of events:
//!   each frame with the stream offset where it ends, each message (or assembler
//!   error) it produces, and the same final state (decoder error, idle between
//!   frames, or inside a frame).
//! * **Feeding contract** on every call: a frame consumes at most the input, "no
//!   frame" consumes all of it, and an error is repeated by every later call (of the
//!   decoder and of the assembler).
//! * **Bounds:** frame payloads respect `max_ws_frame_bytes`, control frames are
//!   final and at most 125 bytes, messages respect `max_ws_message_bytes`, close
//!   codes are valid, and no frame ends beyond the input.
//! * **Encoding round trips:** every decoded frame, re-encoded masked (with a key
//!   from the data) and unmasked, decodes to itself; the masked payload is the
//!   unmasked one XOR the key repeated; and re-encoding a stream of minimal-length
//!   unmasked frames gives back exactly its bytes.

use crate::limits::Limits;
use crate::websocket::{
    encode_frame, is_valid_close_code, Frame, FrameDecoder, Message, MessageAssembler,
    WebSocketError, MAX_CONTROL_PAYLOAD,
};

/// Panics if a property of the WebSocket decoder or assembler does not hold.
pub fn websocket(data: &[u8]) {
    let Some((&mode, wire)) = data.split_first() else {
        return;
    };
    let masked = mode & 1 == 1;
    let tight = Limits {
        max_ws_frame_bytes: 64,
        max_ws_message_bytes: 100,
        ..Limits::default()
    };
    // Reads of 1..=31 bytes, taken from the data so the fuzzer steers them.
    let pieces: Vec<usize> = wire
        .iter()
        .rev()
        .take(64)
        .map(|&b| usize::from(b % 31) + 1)
        .collect();
    let key = match wire {
        [a, b, c, d, ..] => [*a, *b, *c, *d],
        _ => [0x37, 0xfa, 0x21, 0x3d],
    };
    for limits in [Limits::default(), tight] {
        let whole = run(wire, &limits, masked, &[]);
        assert_eq!(run(wire, &limits, masked, &[1]), whole, "byte by byte");
        assert_eq!(run(wire, &limits, masked, &pieces), whole, "uneven reads");
        check_bounds(&whole, &limits, wire.len());
        check_encoding(&whole, &limits, masked, key, wire);
    }
}

/// The same check under the name `protocol/tests/corpus.rs` replays with.
pub fn check(data: &[u8]) {
    websocket(data);
}

#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// A frame, and the stream offset just after its last byte.
    Frame(Frame, usize),
    Message(Message),
    /// The assembler refused the frame before; it repeats this from now on.
    AssemblerError(WebSocketError),
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The decoder failed (and repeats it).
    Failed(WebSocketError),
    /// All input decoded into whole frames.
    Idle,
    /// The input ended inside a frame.
    InFrame,
}

#[derive(Debug, PartialEq, Eq)]
struct Run {
    events: Vec<Event>,
    end: End,
}

/// Feed `wire` in reads of `pieces` bytes (cycled; empty: all at once), frames into
/// one assembler.
fn run(wire: &[u8], limits: &Limits, masked: bool, pieces: &[usize]) -> Run {
    let mut dec = FrameDecoder::new(limits, masked);
    let mut asm = MessageAssembler::new(limits);
    let mut asm_failed: Option<WebSocketError> = None;
    let mut events = Vec::new();
    let mut offset = 0;
    let mut sizes = pieces.iter().cycle();
    while offset < wire.len() {
        let size = sizes.next().copied().unwrap_or(wire.len());
        let mut read = &wire[offset..wire.len().min(offset + size)];
        while !read.is_empty() {
            let (n, frame) = match dec.decode(read) {
                Ok(r) => r,
                Err(e) => {
                    assert_eq!(dec.decode(b"\x81\x80abcd").err(), Some(e.clone()), "sticky");
                    assert_eq!(dec.decode(b"").err(), Some(e.clone()), "sticky");
                    return Run {
                        events,
                        end: End::Failed(e),
                    };
                }
            };
            assert!(n <= read.len(), "consumed {n} of {}", read.len());
            offset += n;
            read = &read[n..];
            let Some(frame) = frame else {
                assert!(read.is_empty(), "no frame, yet input left over");
                break;
            };
            events.push(Event::Frame(frame.clone(), offset));
            match &asm_failed {
                Some(e) => {
                    assert_eq!(asm.handle_frame(frame).as_ref().err(), Some(e), "sticky");
                }
                None => match asm.handle_frame(frame) {
                    Ok(Some(m)) => events.push(Event::Message(m)),
                    Ok(None) => assert!(asm.is_in_message()),
                    Err(e) => {
                        events.push(Event::AssemblerError(e.clone()));
                        asm_failed = Some(e);
                    }
                },
            }
        }
    }
    let end = if dec.is_idle() {
        End::Idle
    } else {
        End::InFrame
    };
    // An empty read changes nothing.
    assert_eq!(dec.decode(b"").ok(), Some((0, None)));
    Run { events, end }
}

fn check_bounds(run: &Run, limits: &Limits, len: usize) {
    let mut last = 0;
    for event in &run.events {
        match event {
            Event::Frame(f, end) => {
                assert!(*end > last && *end <= len, "frame ends at {end}");
                last = *end;
                assert!(f.payload.len() as u64 <= limits.max_ws_frame_bytes);
                if f.opcode.is_control() {
                    assert!(f.fin && f.payload.len() <= MAX_CONTROL_PAYLOAD);
                }
            }
            Event::Message(Message::Text(t)) => {
                assert!(t.len() as u64 <= limits.max_ws_message_bytes);
            }
            Event::Message(Message::Binary(b)) => {
                assert!(b.len() as u64 <= limits.max_ws_message_bytes);
            }
            Event::Message(Message::Close(Some((code, reason)))) => {
                assert!(is_valid_close_code(*code), "close code {code}");
                assert!(reason.len() <= MAX_CONTROL_PAYLOAD - 2);
            }
            Event::Message(_) | Event::AssemblerError(_) => {}
        }
    }
    if run.end == End::Idle {
        assert_eq!(last, len, "idle, yet bytes after the last frame");
    }
}

fn check_encoding(run: &Run, limits: &Limits, masked: bool, key: [u8; 4], wire: &[u8]) {
    let frames: Vec<&Frame> = run
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Frame(f, _) => Some(f),
            _ => None,
        })
        .collect();
    let mut canonical = Vec::new();
    for f in &frames {
        let mut plain = Vec::new();
        encode_frame(&mut plain, f.fin, f.opcode, &f.payload, None);
        let mut hidden = Vec::new();
        encode_frame(&mut hidden, f.fin, f.opcode, &f.payload, Some(key));
        // Same header but for the mask bit and the key; payload XOR key.
        let head = plain.len() - f.payload.len();
        assert_eq!(hidden.len(), plain.len() + 4);
        assert_eq!(hidden[0], plain[0]);
        assert_eq!(hidden[1], plain[1] | 0x80);
        assert_eq!(hidden[2..head], plain[2..head]);
        assert_eq!(hidden[head..head + 4], key);
        let unmasked: Vec<u8> = hidden[head + 4..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(unmasked, f.payload, "masking");
        for (bytes, as_masked) in [(&plain, false), (&hidden, true)] {
            let mut dec = FrameDecoder::new(limits, as_masked);
            let got = dec.decode(bytes);
            assert_eq!(got, Ok((bytes.len(), Some((*f).clone()))), "re-encoded");
        }
        canonical.extend_from_slice(if masked { &hidden } else { &plain });
    }
    // A client's frames (unmasked) in minimal length encoding come back byte for byte.
    if !masked {
        let decoded = frames_end(run);
        if canonical.len() == decoded && uses_minimal_lengths(&wire[..decoded]) {
            assert_eq!(canonical, wire[..decoded], "re-encoding");
        }
    }
}

/// Offset just after the last decoded frame.
fn frames_end(run: &Run) -> usize {
    run.events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Frame(_, end) => Some(*end),
            _ => None,
        })
        .unwrap_or(0)
}

/// Whether every frame header in `wire` (unmasked, whole frames) encodes its length
/// in the fewest bytes, as our encoder does.
fn uses_minimal_lengths(wire: &[u8]) -> bool {
    let mut rest = wire;
    while let [_, b1, tail @ ..] = rest {
        let (len, after) = match b1 & 0x7F {
            126 => match tail {
                [a, b, after @ ..] => (u64::from(u16::from_be_bytes([*a, *b])), after),
                _ => return false,
            },
            127 => match tail.split_first_chunk::<8>() {
                Some((n, after)) => (u64::from_be_bytes(*n), after),
                None => return false,
            },
            n => (u64::from(n), tail),
        };
        let minimal = match b1 & 0x7F {
            126 => len > 125,
            127 => len > 0xFFFF,
            _ => true,
        };
        if !minimal {
            return false;
        }
        let Ok(len) = usize::try_from(len) else {
            return false;
        };
        let Some(next) = after.get(len..) else {
            return false;
        };
        rest = next;
    }
    rest.is_empty()
}
