//! Push decoder for `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1).
//!
//! ```text
//! chunked-body   = *chunk
//!                  last-chunk
//!                  trailer-section
//!                  CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF
//!                  chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! chunk-data     = 1*OCTET ; a sequence of chunk-size octets
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name
//!                     [ BWS "=" BWS chunk-ext-val ] )
//! trailer-section = *( field-line CRLF )
//! ```
//!
//! # Contract
//!
//! [`ChunkedDecoder`] is a state machine with one state per position in that grammar
//! (as hyper's `ChunkedState`). [`ChunkedDecoder::decode`] takes whatever bytes have
//! arrived and returns how many it consumed plus one event. Chunk data is handed out as
//! a slice of the caller's buffer as soon as any of it is present: the decoder never
//! buffers or waits for a whole chunk, so memory stays O(1) whatever the chunk size.
//! Framing bytes are consumed one at a time and remembered in the state, so a split
//! anywhere (even inside `\r\n`) gives the same result. After [`ChunkedEvent::Done`]
//! nothing more is consumed: the bytes that follow belong to the next request.
//! The first error is sticky: every later call returns it again.
//!
//! # Deliberately not done
//!
//! * Chunk extensions are skipped, not parsed into names and values: no extension has
//!   a meaning for us. Their characters are checked only for CR/LF/control bytes, and
//!   their length is bounded by [`Limits::max_chunk_ext_bytes`] per chunk line (h11:
//!   skipping must stay O(bytes read) and bounded, or a peer burns our CPU for free).
//! * Whitespace after the chunk-size is accepted only in front of `;` (it is the BWS of
//!   `chunk-ext`); `5 \r\n` is refused, as are more than 16 hex digits (leading zeros
//!   included): disagreeing about sizes is how chunked smuggling works.
//! * Trailer fields are parsed and kept (bounded by [`Limits::max_trailer_bytes`]),
//!   but not merged into the head: RFC 9110 §6.5.1 forbids trusting framing or routing
//!   fields from trailers, and we have no use for the others yet.
//! * No total body size limit: that is the daemon's policy (it counts the Data bytes).

use thiserror::Error;

use crate::error::HttpError;
use crate::limits::Limits;

/// What [`ChunkedDecoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkedEvent<'a> {
    /// Body bytes, borrowed from the input (never empty).
    Data(&'a [u8]),
    /// All usable input was consumed; call again with more bytes.
    NeedMore,
    /// The last chunk and the trailer section were consumed; the body is complete.
    Done,
}

/// Why a chunked body was refused. Every variant closes the connection, since the
/// end of the body (and so the start of the next request) is unknown.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ChunkedError {
    /// The chunk-size line is not `1*HEXDIG [ chunk-ext ] CRLF`.
    #[error("invalid chunk-size line ({0}); send the chunk size in hex followed by CRLF")]
    BadChunkSize(&'static str),
    /// More than 16 hex digits: the size would not fit in 64 bits.
    #[error("chunk size longer than 16 hex digits; send chunks smaller than 2^64 bytes")]
    SizeOverflow,
    /// A chunk line's extensions exceeded `max_chunk_ext_bytes`.
    #[error("chunk extensions longer than {0} bytes; do not send chunk extensions")]
    ExtensionTooLong(usize),
    /// A chunk extension contains a control character.
    #[error("invalid chunk extension; do not send chunk extensions")]
    BadExtension,
    /// The chunk data was not followed by CRLF.
    #[error("chunk data not followed by CRLF; make each chunk-size match the data sent")]
    MissingCrlf,
    /// A line ended with a bare LF or had a bare CR.
    #[error("bare CR or LF in the chunked framing; end every line with CRLF")]
    BadLineEnding,
    /// The trailer section exceeded `max_trailer_bytes`.
    #[error("trailer section larger than {0} bytes; send fewer or smaller trailer fields")]
    TrailerTooLarge(usize),
    /// A trailer line is not `field-name ":" OWS field-value OWS`.
    #[error("invalid trailer field ({0}); send name: value lines ending in CRLF")]
    BadTrailer(&'static str),
}

impl HttpError for ChunkedError {
    fn status(&self) -> u16 {
        match self {
            ChunkedError::TrailerTooLarge(_) => 431,
            _ => 400,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ChunkedError::BadChunkSize(_)
            | ChunkedError::SizeOverflow
            | ChunkedError::MissingCrlf
            | ChunkedError::BadLineEnding => "bad_chunk",
            ChunkedError::ExtensionTooLong(_) => "chunk_extension_too_long",
            ChunkedError::BadExtension => "bad_chunk_extension",
            ChunkedError::TrailerTooLarge(_) => "trailer_too_large",
            ChunkedError::BadTrailer(_) => "bad_trailer",
        }
    }
}

/// Where in the grammar the decoder is: each state is named after what it expects next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The first HEXDIG of a chunk-size.
    SizeStart,
    /// More HEXDIG, or BWS / `;` / CR ending the size.
    Size,
    /// BWS after the size: more whitespace, then `;`.
    SizeBws,
    /// Inside chunk-ext: anything up to CR.
    Extension,
    /// LF ending the chunk-size line.
    SizeLf,
    /// `remaining` bytes of chunk-data.
    Data,
    /// CR after chunk-data.
    DataCr,
    /// LF after chunk-data.
    DataLf,
    /// The start of a trailer field line, or CR of the final empty line.
    TrailerStart,
    /// The rest of a trailer field line, up to CR.
    Trailer,
    /// LF ending a trailer field line.
    TrailerLf,
    /// LF of the final empty line.
    EndLf,
    /// The body is complete.
    Done,
}

/// Chunked body decoder: feed bytes with [`ChunkedDecoder::decode`].
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// The chunk-size being read.
    size: u64,
    /// Hex digits read for `size`.
    digits: u8,
    /// Bytes of chunk-data still to come.
    remaining: u64,
    /// Bytes of BWS and chunk-ext on the current size line.
    ext_len: usize,
    max_ext: usize,
    /// Bytes of the trailer section so far (field lines with their CRLF).
    trailer_len: usize,
    max_trailer: usize,
    /// The trailer line being read (bounded by `max_trailer`).
    line: Vec<u8>,
    trailers: Vec<(String, Vec<u8>)>,
    error: Option<ChunkedError>,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new(limits: &Limits) -> Self {
        ChunkedDecoder {
            state: State::SizeStart,
            size: 0,
            digits: 0,
            remaining: 0,
            ext_len: 0,
            max_ext: limits.max_chunk_ext_bytes,
            trailer_len: 0,
            max_trailer: limits.max_trailer_bytes,
            line: Vec::new(),
            trailers: Vec::new(),
            error: None,
        }
    }

    /// Decode from the front of `input`. Returns (bytes consumed, event).
    /// Data(slice) borrows from `input` and is handed out as soon as any chunk bytes
    /// are present (never waits for the whole chunk). NeedMore: everything in
    /// `input` that could be used was consumed; call again with more bytes.
    /// Done: the last-chunk and trailer section have been consumed; bytes after
    /// that are NOT consumed (they are the next pipelined request).
    pub fn decode<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, ChunkedEvent<'a>), ChunkedError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let mut pos = 0;
        loop {
            match self.state {
                State::Done => return Ok((pos, ChunkedEvent::Done)),
                State::Data => {
                    let available = &input[pos..];
                    if available.is_empty() {
                        return Ok((pos, ChunkedEvent::NeedMore));
                    }
                    // Clamp in u64 first: `remaining` may exceed usize on 32-bit.
                    let n = self.remaining.min(available.len() as u64) as usize;
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok((pos + n, ChunkedEvent::Data(&available[..n])));
                }
                _ => {}
            }
            let Some(&b) = input.get(pos) else {
                return Ok((pos, ChunkedEvent::NeedMore));
            };
            if let Err(e) = self.step(b) {
                self.error = Some(e.clone());
                return Err(e);
            }
            pos += 1;
        }
    }

    /// Whether the whole body (including trailers) has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The trailer fields received after the last chunk, in order (names as sent,
    /// values trimmed). Complete only once [`ChunkedDecoder::is_done`].
    pub fn trailers(&self) -> &[(String, Vec<u8>)] {
        &self.trailers
    }

    /// Consume one framing byte (any state but `Data` and `Done`).
    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        match self.state {
            State::SizeStart => match hex_value(b) {
                Some(v) => self.push_digit(v)?,
                None if b == b'\n' => return Err(ChunkedError::BadLineEnding),
                None => return Err(ChunkedError::BadChunkSize("it must start with a hex digit")),
            },
            State::Size => match b {
                b'\r' => self.state = State::SizeLf,
                b';' => self.enter_extension(State::Extension)?,
                b' ' | b'\t' => self.enter_extension(State::SizeBws)?,
                b'\n' => return Err(ChunkedError::BadLineEnding),
                _ => match hex_value(b) {
                    Some(v) => self.push_digit(v)?,
                    None => {
                        return Err(ChunkedError::BadChunkSize("non-hex character in the size"))
                    }
                },
            },
            // chunk-ext = *( BWS ";" ...: whitespace may only lead to a ';'.
            State::SizeBws => match b {
                b';' => self.enter_extension(State::Extension)?,
                b' ' | b'\t' => self.enter_extension(State::SizeBws)?,
                _ => {
                    return Err(ChunkedError::BadChunkSize(
                        "whitespace after the size must be followed by ';'",
                    ))
                }
            },
            State::Extension => match b {
                b'\r' => self.state = State::SizeLf,
                b'\n' => return Err(ChunkedError::BadLineEnding),
                // Tokens, quoted-strings, BWS and obs-text are all >= SP or HTAB.
                b'\t' | b' '..=0x7e | 0x80..=0xff => self.enter_extension(State::Extension)?,
                _ => return Err(ChunkedError::BadExtension),
            },
            State::SizeLf => {
                if b != b'\n' {
                    return Err(ChunkedError::BadLineEnding);
                }
                self.remaining = self.size;
                self.size = 0;
                self.digits = 0;
                self.ext_len = 0;
                // last-chunk = 1*("0") ...
                self.state = if self.remaining == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                };
            }
            State::DataCr => match b {
                b'\r' => self.state = State::DataLf,
                _ => return Err(ChunkedError::MissingCrlf),
            },
            State::DataLf => match b {
                b'\n' => self.state = State::SizeStart,
                _ => return Err(ChunkedError::MissingCrlf),
            },
            State::TrailerStart => match b {
                b'\r' => self.state = State::EndLf,
                b'\n' => return Err(ChunkedError::BadLineEnding),
                // RFC 9112 §5.2: obs-fold must be rejected outside message/http.
                b' ' | b'\t' => {
                    return Err(ChunkedError::BadTrailer(
                        "a line starts with whitespace (obs-fold)",
                    ))
                }
                _ => {
                    self.line.clear();
                    self.push_trailer_byte(b)?;
                    self.state = State::Trailer;
                }
            },
            State::Trailer => match b {
                b'\r' => {
                    self.count_trailer_byte()?;
                    self.state = State::TrailerLf;
                }
                b'\n' => return Err(ChunkedError::BadLineEnding),
                _ => self.push_trailer_byte(b)?,
            },
            State::TrailerLf => {
                if b != b'\n' {
                    return Err(ChunkedError::BadLineEnding);
                }
                self.count_trailer_byte()?;
                let field = parse_trailer_line(&self.line)?;
                self.trailers.push(field);
                self.state = State::TrailerStart;
            }
            State::EndLf => {
                if b != b'\n' {
                    return Err(ChunkedError::BadLineEnding);
                }
                self.line = Vec::new();
                self.state = State::Done;
            }
            // `decode` never steps in these states.
            State::Data | State::Done => {}
        }
        Ok(())
    }

    fn push_digit(&mut self, v: u8) -> Result<(), ChunkedError> {
        // 16 hex digits are exactly 64 bits, so the shift below cannot overflow.
        if self.digits == 16 {
            return Err(ChunkedError::SizeOverflow);
        }
        self.digits += 1;
        self.size = (self.size << 4) | u64::from(v);
        self.state = State::Size;
        Ok(())
    }

    fn enter_extension(&mut self, state: State) -> Result<(), ChunkedError> {
        self.ext_len += 1;
        if self.ext_len > self.max_ext {
            return Err(ChunkedError::ExtensionTooLong(self.max_ext));
        }
        self.state = state;
        Ok(())
    }

    fn count_trailer_byte(&mut self) -> Result<(), ChunkedError> {
        self.trailer_len += 1;
        if self.trailer_len > self.max_trailer {
            return Err(ChunkedError::TrailerTooLarge(self.max_trailer));
        }
        Ok(())
    }

    fn push_trailer_byte(&mut self, b: u8) -> Result<(), ChunkedError> {
        self.count_trailer_byte()?;
        self.line.push(b);
        Ok(())
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// ```text
/// field-line   = field-name ":" OWS field-value OWS      ; RFC 9112 §5
/// field-name   = token
/// field-value  = *field-content
/// field-vchar  = VCHAR / obs-text
/// ```
/// `line` is the line without its CRLF (and never contains CR or LF).
fn parse_trailer_line(line: &[u8]) -> Result<(String, Vec<u8>), ChunkedError> {
    let Some(colon) = memchr::memchr(b':', line) else {
        return Err(ChunkedError::BadTrailer("no colon"));
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(ChunkedError::BadTrailer("the name is not a token"));
    }
    let value = value.trim_ascii();
    if !value
        .iter()
        .all(|&b| b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80)
    {
        return Err(ChunkedError::BadTrailer("control character in the value"));
    }
    // A token is ASCII, so this never fails.
    let name = String::from_utf8(name.to_vec())
        .map_err(|_| ChunkedError::BadTrailer("the name is not a token"))?;
    Ok((name, value.to_vec()))
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        /// Done after consuming this many bytes in total.
        Done(usize),
        NeedMore,
        Err(ChunkedError),
    }

    /// Feed `input` in pieces of the given sizes (cycled), as a caller with a growing
    /// buffer would; returns the body bytes and the outcome.
    fn run(input: &[u8], limits: &Limits, pieces: &[usize]) -> (Vec<u8>, Outcome, ChunkedDecoder) {
        let mut dec = ChunkedDecoder::new(limits);
        let mut body = Vec::new();
        let mut consumed = 0;
        let mut fed = 0;
        let mut piece = 0;
        loop {
            match dec.decode(&input[consumed..fed]) {
                Ok((n, ChunkedEvent::Data(d))) => {
                    assert!(!d.is_empty());
                    assert!(n <= fed - consumed);
                    body.extend_from_slice(d);
                    consumed += n;
                }
                Ok((n, ChunkedEvent::Done)) => {
                    consumed += n;
                    assert!(dec.is_done());
                    // Done is sticky and consumes nothing more.
                    assert!(matches!(
                        dec.decode(&input[consumed..]),
                        Ok((0, ChunkedEvent::Done))
                    ));
                    return (body, Outcome::Done(consumed), dec);
                }
                Ok((n, ChunkedEvent::NeedMore)) => {
                    assert_eq!(n, fed - consumed, "NeedMore must consume everything");
                    consumed += n;
                    if fed == input.len() {
                        return (body, Outcome::NeedMore, dec);
                    }
                    let step = pieces
                        .get(piece % pieces.len().max(1))
                        .copied()
                        .unwrap_or(usize::MAX);
                    piece += 1;
                    fed = fed.saturating_add(step.max(1)).min(input.len());
                }
                Err(e) => {
                    // Errors are sticky.
                    assert_eq!(dec.decode(b"0\r\n\r\n"), Err(e.clone()));
                    return (body, Outcome::Err(e), dec);
                }
            }
        }
    }

    /// h11's `tr()`: whole, byte by byte, and with trailing bytes left unconsumed.
    fn check(input: &[u8], limits: &Limits, body: &[u8], outcome: Outcome) {
        // The fuzz property holds for every table case too.
        crate::props::chunked::chunked(input);
        let (b, o, whole) = run(input, limits, &[usize::MAX]);
        assert_eq!((b.as_slice(), &o), (body, &outcome), "whole input");
        let (b, o, dec) = run(input, limits, &[1]);
        assert_eq!((b.as_slice(), &o), (body, &outcome), "byte by byte");
        assert_eq!(dec.trailers(), whole.trailers());
        let mut longer = input.to_vec();
        longer.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        for pieces in [&[usize::MAX][..], &[1], &[3, 7]] {
            let (b, o, _) = run(&longer, limits, pieces);
            match &outcome {
                // The next request stays unconsumed.
                Outcome::Done(_) | Outcome::Err(_) => {
                    assert_eq!((b.as_slice(), &o), (body, &outcome), "with trailing bytes");
                }
                // More bytes continue an unfinished body: what was decoded stays.
                Outcome::NeedMore => assert!(b.starts_with(body), "with trailing bytes"),
            }
        }
    }

    macro_rules! chunked {
        ($($name:ident: $input:expr => ($body:expr, $outcome:expr);)*) => {
            $(
                #[test]
                fn $name() {
                    check($input, &Limits::default(), $body, $outcome);
                }
            )*
        };
    }

    fn done(input: &[u8]) -> Outcome {
        Outcome::Done(input.len())
    }

    fn err(e: ChunkedError) -> Outcome {
        Outcome::Err(e)
    }

    const HELLO: &[u8] = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    const EXT: &[u8] = b"5;name=value;x=\"q;uo\\\"ted\"\r\nhello\r\n0;last\r\n\r\n";
    const BWS_EXT: &[u8] = b"5 \t; a = b\r\nhello\r\n0\r\n\r\n";
    const UPPER: &[u8] = b"A\r\n0123456789\r\n0\r\n\r\n";
    const ZEROS: &[u8] = b"000\r\n\r\n";
    const MAX_DIGITS: &[u8] = b"0000000000000003\r\nabc\r\n0\r\n\r\n";
    const TRAILERS: &[u8] = b"3\r\nabc\r\n0\r\nX-Sum: 123 \r\nX-Empty:\r\n\r\n";
    const BINARY: &[u8] = b"4\r\n\r\n\0\n\r\n0\r\n\r\n";

    chunked! {
        two_chunks: HELLO => (b"hello world", done(HELLO));
        extensions_skipped: EXT => (b"hello", done(EXT));
        bws_before_extension: BWS_EXT => (b"hello", done(BWS_EXT));
        uppercase_hex: UPPER => (b"0123456789", done(UPPER));
        last_chunk_many_zeros: ZEROS => (b"", done(ZEROS));
        sixteen_digits: MAX_DIGITS => (b"abc", done(MAX_DIGITS));
        trailers_parsed: TRAILERS => (b"abc", done(TRAILERS));
        binary_data_with_crlf_inside: BINARY => (b"\r\n\0\n", done(BINARY));

        need_more_in_size: b"5" => (b"", Outcome::NeedMore);
        need_more_in_data: b"5\r\nhel" => (b"hel", Outcome::NeedMore);
        need_more_before_final_crlf: b"0\r\n" => (b"", Outcome::NeedMore);
        need_more_in_trailer: b"0\r\nX-A: 1" => (b"", Outcome::NeedMore);
        empty: b"" => (b"", Outcome::NeedMore);

        no_size: b"\r\nhello\r\n0\r\n\r\n" => (b"", err(ChunkedError::BadChunkSize("it must start with a hex digit")));
        non_hex: b"5g\r\nhello\r\n0\r\n\r\n" => (b"", err(ChunkedError::BadChunkSize("non-hex character in the size")));
        sign: b"+5\r\nhello\r\n0\r\n\r\n" => (b"", err(ChunkedError::BadChunkSize("it must start with a hex digit")));
        hex_prefix: b"0x5\r\nhello\r\n0\r\n\r\n" => (b"", err(ChunkedError::BadChunkSize("non-hex character in the size")));
        space_without_extension: b"5 \r\nhello\r\n0\r\n\r\n" => (b"", err(ChunkedError::BadChunkSize("whitespace after the size must be followed by ';'")));
        leading_space: b" 5\r\nhello\r\n0\r\n\r\n" => (b"", err(ChunkedError::BadChunkSize("it must start with a hex digit")));
        seventeen_digits: b"00000000000000005\r\nhello\r\n0\r\n\r\n" => (b"", err(ChunkedError::SizeOverflow));
        overflow: b"10000000000000000\r\n" => (b"", err(ChunkedError::SizeOverflow));
        max_u64_size: b"ffffffffffffffff\r\nabc" => (b"abc", Outcome::NeedMore);
        bare_lf_size: b"5\nhello\r\n0\r\n\r\n" => (b"", err(ChunkedError::BadLineEnding));
        bare_cr_size: b"5\rhello\r\n0\r\n\r\n" => (b"", err(ChunkedError::BadLineEnding));
        bare_lf_extension: b"5;a\nhello\r\n0\r\n\r\n" => (b"", err(ChunkedError::BadLineEnding));
        bare_lf_empty_line: b"\n" => (b"", err(ChunkedError::BadLineEnding));
        nul_in_extension: b"5;a\0\r\nhello\r\n0\r\n\r\n" => (b"", err(ChunkedError::BadExtension));
        data_too_long: b"5\r\nhello!\r\n0\r\n\r\n" => (b"hello", err(ChunkedError::MissingCrlf));
        data_lf_only: b"5\r\nhello\n0\r\n\r\n" => (b"hello", err(ChunkedError::MissingCrlf));
        data_cr_only: b"5\r\nhello\r0\r\n\r\n" => (b"hello", err(ChunkedError::MissingCrlf));
        bare_lf_final: b"0\r\n\n" => (b"", err(ChunkedError::BadLineEnding));
        bare_cr_final: b"0\r\n\rX" => (b"", err(ChunkedError::BadLineEnding));
        bare_lf_trailer: b"0\r\nX: 1\n\r\n" => (b"", err(ChunkedError::BadLineEnding));
        bare_cr_trailer: b"0\r\nX: 1\rY\r\n\r\n" => (b"", err(ChunkedError::BadLineEnding));
        trailer_no_colon: b"0\r\nX-Sum\r\n\r\n" => (b"", err(ChunkedError::BadTrailer("no colon")));
        trailer_space_before_colon: b"0\r\nX-Sum : 1\r\n\r\n" => (b"", err(ChunkedError::BadTrailer("the name is not a token")));
        trailer_obs_fold: b"0\r\nX-Sum: 1\r\n 2\r\n\r\n" => (b"", err(ChunkedError::BadTrailer("a line starts with whitespace (obs-fold)")));
        trailer_control: b"0\r\nX-Sum: 1\x012\r\n\r\n" => (b"", err(ChunkedError::BadTrailer("control character in the value")));
        smuggled_request_in_trailer: b"0\r\n\r\nPOST /admin HTTP/1.1\r\n" => (b"", Outcome::Done(5));
    }

    #[test]
    fn trailer_values() {
        let (_, o, dec) = run(TRAILERS, &Limits::default(), &[usize::MAX]);
        assert_eq!(o, Outcome::Done(TRAILERS.len()));
        assert_eq!(
            dec.trailers(),
            &[
                ("X-Sum".to_string(), b"123".to_vec()),
                ("X-Empty".to_string(), Vec::new())
            ]
        );
    }

    #[test]
    fn extension_limit() {
        let limits = Limits {
            max_chunk_ext_bytes: 8,
            ..Limits::default()
        };
        // ";a=12345" is exactly 8 bytes: allowed. The limit is per line.
        let ok = b"1;a=12345\r\nx\r\n0;b=12345\r\n\r\n";
        check(ok, &limits, b"x", Outcome::Done(ok.len()));
        let long = b"1;a=123456\r\nx\r\n0\r\n\r\n";
        check(
            long,
            &limits,
            b"",
            Outcome::Err(ChunkedError::ExtensionTooLong(8)),
        );
        // Endless BWS counts too.
        let ws = b"1         ;\r\nx\r\n0\r\n\r\n";
        check(
            ws,
            &limits,
            b"",
            Outcome::Err(ChunkedError::ExtensionTooLong(8)),
        );
    }

    #[test]
    fn trailer_limit() {
        let limits = Limits {
            max_trailer_bytes: 10,
            ..Limits::default()
        };
        // "X-A: 1234\r\n" is 11 bytes: one too many; "X-A: 123\r\n" fits.
        let ok = b"0\r\nX-A: 123\r\n\r\n";
        check(ok, &limits, b"", Outcome::Done(ok.len()));
        let over = b"0\r\nX-A: 1234\r\n\r\n";
        check(
            over,
            &limits,
            b"",
            Outcome::Err(ChunkedError::TrailerTooLarge(10)),
        );
        // An endless trailer line without CRLF is stopped too.
        let endless = [&b"0\r\nX: "[..], &[b'a'; 100]].concat();
        check(
            &endless,
            &limits,
            b"",
            Outcome::Err(ChunkedError::TrailerTooLarge(10)),
        );
        assert_eq!(ChunkedError::TrailerTooLarge(10).status(), 431);
        // A zero limit still allows the empty trailer section.
        let zero = Limits {
            max_trailer_bytes: 0,
            ..Limits::default()
        };
        check(b"0\r\n\r\n", &zero, b"", Outcome::Done(5));
    }

    #[test]
    fn data_is_handed_out_before_the_chunk_is_complete() {
        let mut dec = ChunkedDecoder::new(&Limits::default());
        assert_eq!(
            dec.decode(b"10\r\nab").unwrap(),
            (6, ChunkedEvent::Data(b"ab"))
        );
        assert_eq!(dec.decode(b"c").unwrap(), (1, ChunkedEvent::Data(b"c")));
        assert_eq!(dec.decode(b"").unwrap(), (0, ChunkedEvent::NeedMore));
        // Data stops at the chunk boundary even when more input is present.
        let mut dec = ChunkedDecoder::new(&Limits::default());
        assert_eq!(
            dec.decode(b"2\r\nabcd").unwrap(),
            (5, ChunkedEvent::Data(b"ab"))
        );
        assert!(!dec.is_done());
    }

    #[test]
    fn error_codes() {
        let all = [
            ChunkedError::BadChunkSize("x"),
            ChunkedError::SizeOverflow,
            ChunkedError::ExtensionTooLong(1),
            ChunkedError::BadExtension,
            ChunkedError::MissingCrlf,
            ChunkedError::BadLineEnding,
            ChunkedError::TrailerTooLarge(1),
            ChunkedError::BadTrailer("x"),
        ];
        for e in all {
            assert!(e.must_close());
            assert!(matches!(e.status(), 400 | 431));
            assert!(!e.code().is_empty());
            assert!(!e.to_string().is_empty());
        }
    }

    /// Chunk-encode `data` with the given chunk sizes and extensions, and a trailer.
    fn encode(data: &[u8], sizes: &[usize], exts: &[String], trailer: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = data;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].clamp(1, rest.len());
            let ext = &exts[i % exts.len()];
            // Alternate the case of hex digits and pad some sizes with zeros.
            let size = match i % 3 {
                0 => format!("{n:x}"),
                1 => format!("{n:X}"),
                _ => format!("{n:08x}"),
            };
            out.extend_from_slice(size.as_bytes());
            out.extend_from_slice(ext.as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
            i += 1;
        }
        out.extend_from_slice(b"0\r\n");
        if trailer {
            out.extend_from_slice(b"X-Checksum: abc\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    proptest! {
        #[test]
        fn round_trip(
            data in proptest::collection::vec(any::<u8>(), 0..2048),
            sizes in proptest::collection::vec(1usize..300, 1..8),
            exts in proptest::collection::vec("(;[a-z]{1,5}(=[a-z0-9]{0,5})?){0,3}", 1..4),
            splits in proptest::collection::vec(1usize..64, 1..16),
            trailer in any::<bool>(),
        ) {
            let encoded = encode(&data, &sizes, &exts, trailer);
            let mut with_next = encoded.clone();
            with_next.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            let (body, outcome, dec) = run(&with_next, &Limits::default(), &splits);
            prop_assert_eq!(body, data);
            prop_assert_eq!(outcome, Outcome::Done(encoded.len()));
            prop_assert_eq!(dec.trailers().len(), usize::from(trailer));
            crate::props::chunked::chunked(&with_next);
        }
    }
}
