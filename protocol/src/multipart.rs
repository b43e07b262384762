//! Streaming `multipart/form-data` (RFC 7578 on RFC 2046 §5.1): a push parser that
//! hands out part data as zero-copy slices of its input, as soon as they cannot be the
//! start of a delimiter.
//!
//! Contract:
//! - [`boundary_from_content_type`] takes the request's `Content-Type`, which must be
//!   `multipart/form-data` (case-insensitive), and returns its one `boundary` parameter
//!   (token or quoted-string), checked against RFC 2046: 1..=70 `bchars`, not ending in
//!   a space.
//! - [`MultipartParser::parse`] is fed the body bytes (already de-framed from
//!   Content-Length or chunked) and returns one event per call: `PartStart` with the
//!   parsed part headers, `Data` slices of the input, `PartEnd`, and `Done` after the
//!   close delimiter. The delimiter `CRLF "--" boundary` is found with a
//!   `memchr::memmem::Finder` built once per body, across any split of the input into
//!   feeds. Memory is O(delimiter + part head): data is never buffered, only a part's
//!   header block (bounded by [`Limits::max_part_head_bytes`]) is.
//! - The preamble (anything before the first delimiter) and the epilogue (anything
//!   after the close delimiter) are ignored. The first delimiter may start the body
//!   without the leading CRLF. Transport padding (spaces and tabs) between a boundary
//!   and its CRLF is accepted.
//! - Each part's headers are parsed: `Content-Disposition: form-data` with `name`,
//!   `filename` and `filename*` (RFC 8187/5987 `UTF-8''...` or `ISO-8859-1'...`;
//!   `filename*` wins over `filename`), and `Content-Type`. Other header fields are
//!   ignored. Quoted-strings have their backslash escapes removed; non-UTF-8 bytes in
//!   `name`/`filename` are replaced with U+FFFD.
//! - Errors are sticky, and none of them closes the connection: the body framing is
//!   intact, only its content is bad.
//!
//! Deliberately not done:
//! - No `Content-Transfer-Encoding` (deprecated by RFC 7578 §4.7), no nested
//!   `multipart/mixed`, no charset handling of `_charset_` fields: bytes are bytes.
//! - `filename` is not percent-decoded: browsers escape `"` as `%22` (WHATWG), but a
//!   literal `%22` in a real name cannot be told apart; the daemon sanitizes names.
//! - Folded (obs-fold) part header lines are refused, as in HTTP/1.1 heads.
//! - A `--boundary` inside part data followed by anything but CRLF, padding or `--`
//!   is an error rather than data: RFC 2046 forbids the boundary in the content, and a
//!   sender that does that has chosen a wrong boundary.
//! - A part without any header block *and* without its empty line (`--B CRLF CRLF --B`
//!   read as an empty part) is read as an empty header block followed by data; no
//!   client sends that.

use memchr::memmem::Finder;

use crate::error::HttpError;
use crate::limits::Limits;
use crate::range::{is_tchar, trim_ows};

/// RFC 2046 §5.1.1: a boundary has at most 70 characters.
const MAX_BOUNDARY_LEN: usize = 70;

/// Why a multipart body (or its `Content-Type`) is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// The media type is not `multipart/form-data`.
    #[error("the body is not multipart/form-data; send `Content-Type: multipart/form-data; boundary=...`")]
    NotFormData,
    /// The `Content-Type` value does not follow the media-type grammar.
    #[error(
        "malformed Content-Type ({0}); send `Content-Type: multipart/form-data; boundary=...`"
    )]
    BadContentType(&'static str),
    /// No `boundary` parameter.
    #[error("the Content-Type has no boundary parameter; send `Content-Type: multipart/form-data; boundary=...`")]
    MissingBoundary,
    /// More than one `boundary` parameter.
    #[error("the Content-Type has more than one boundary parameter; send exactly one")]
    DuplicateBoundary,
    /// A boundary outside RFC 2046's grammar.
    #[error("invalid multipart boundary ({0}); use 1 to 70 characters (letters, digits, '()+_,-./:=? and space), not ending in a space")]
    InvalidBoundary(&'static str),
    /// `--boundary` followed by something other than `--`, padding and CRLF.
    #[error("malformed multipart delimiter line; end each `--boundary` line with CRLF (or `--` for the last), and choose a boundary that never occurs in the content")]
    BadDelimiter,
    /// A part's header block exceeds [`Limits::max_part_head_bytes`].
    #[error("a part's header block is larger than {limit} bytes; send shorter part headers")]
    PartHeadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// More parts than [`Limits::max_multipart_parts`].
    #[error("the body has more than {limit} parts; send at most {limit} parts per request")]
    TooManyParts {
        /// The configured limit.
        limit: usize,
    },
    /// A part header line that does not parse.
    #[error("bad part header ({0}); send `Content-Disposition: form-data; name=\"...\"` and optional `Content-Type` lines, each ending in CRLF, then an empty line")]
    BadPartHeader(&'static str),
    /// The body ended before `--boundary--`.
    #[error("the body ended before the closing --boundary--; send the whole body, ending with the close delimiter")]
    MissingClose,
}

impl HttpError for MultipartError {
    fn status(&self) -> u16 {
        match self {
            MultipartError::TooManyParts { .. } => 413,
            _ => 400,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            MultipartError::PartHeadTooLarge { .. } => "part_head_too_large",
            MultipartError::TooManyParts { .. } => "too_many_parts",
            _ => "bad_multipart",
        }
    }

    /// The body framing (Content-Length or chunked) is intact; only its content is bad.
    fn must_close(&self) -> bool {
        false
    }
}

/// Extract the boundary from a Content-Type value ("multipart/form-data; boundary=..."),
/// quoted or not. RFC 2046: 1..=70 chars from bchars, not ending in space.
///
/// ```text
/// Content-Type    = media-type                              ; RFC 9110 §8.3
/// media-type      = type "/" subtype parameters
/// type            = token                                   ; case-insensitive
/// subtype         = token                                   ; case-insensitive
/// parameters      = *( OWS ";" OWS [ parameter ] )
/// parameter       = parameter-name "=" parameter-value
/// parameter-name  = token                                   ; case-insensitive
/// parameter-value = ( token / quoted-string )
/// ```
pub fn boundary_from_content_type(value: &[u8]) -> Result<Vec<u8>, MultipartError> {
    let v = trim_ows(value);
    let (media_type, mut pos) = take_token(v, 0);
    if v.get(pos) != Some(&b'/') || media_type.is_empty() {
        return Err(MultipartError::BadContentType("expected type/subtype"));
    }
    let (subtype, end) = take_token(v, pos + 1);
    pos = end;
    if subtype.is_empty() {
        return Err(MultipartError::BadContentType("expected type/subtype"));
    }
    if !media_type.eq_ignore_ascii_case(b"multipart") || !subtype.eq_ignore_ascii_case(b"form-data")
    {
        return Err(MultipartError::NotFormData);
    }
    let mut boundary = None;
    loop {
        pos = skip_ows(v, pos);
        if pos == v.len() {
            break;
        }
        if v[pos] != b';' {
            return Err(MultipartError::BadContentType(
                "expected `;` before a parameter",
            ));
        }
        pos = skip_ows(v, pos + 1);
        if pos == v.len() || v[pos] == b';' {
            continue; // empty parameter
        }
        let (name, end) = take_token(v, pos);
        if name.is_empty() || v.get(end) != Some(&b'=') {
            return Err(MultipartError::BadContentType(
                "expected name=value parameters",
            ));
        }
        let (value, end) = if v.get(end + 1) == Some(&b'"') {
            parse_quoted_string(v, end + 1)
                .ok_or(MultipartError::BadContentType("unterminated quoted-string"))?
        } else {
            let (token, end) = take_token(v, end + 1);
            if token.is_empty() {
                return Err(MultipartError::BadContentType("a parameter has no value"));
            }
            (token.to_vec(), end)
        };
        pos = end;
        if name.eq_ignore_ascii_case(b"boundary") {
            if boundary.is_some() {
                return Err(MultipartError::DuplicateBoundary);
            }
            boundary = Some(value);
        }
    }
    let boundary = boundary.ok_or(MultipartError::MissingBoundary)?;
    check_boundary(&boundary)?;
    Ok(boundary)
}

/// ```text
/// boundary      := 0*69<bchars> bcharsnospace               ; RFC 2046 §5.1.1
/// bchars        := bcharsnospace / " "
/// bcharsnospace := DIGIT / ALPHA / "'" / "(" / ")" / "+" / "_" / "," / "-" / "." / "/" / ":" / "=" / "?"
/// ```
fn check_boundary(boundary: &[u8]) -> Result<(), MultipartError> {
    match boundary {
        [] => Err(MultipartError::InvalidBoundary("it is empty")),
        b if b.len() > MAX_BOUNDARY_LEN => Err(MultipartError::InvalidBoundary(
            "it is longer than 70 characters",
        )),
        [.., b' '] => Err(MultipartError::InvalidBoundary("it ends in a space")),
        b if !b.iter().all(|&c| c == b' ' || is_bcharnospace(c)) => Err(
            MultipartError::InvalidBoundary("it contains a character outside RFC 2046 bchars"),
        ),
        _ => Ok(()),
    }
}

fn is_bcharnospace(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"'()+_,-./:=?".contains(&c)
}

/// Longest run of tchars from `pos` (`pos <= v.len()`): (token, end).
fn take_token(v: &[u8], pos: usize) -> (&[u8], usize) {
    let len = v[pos..].iter().take_while(|&&b| is_tchar(b)).count();
    (&v[pos..pos + len], pos + len)
}

fn skip_ows(v: &[u8], mut pos: usize) -> usize {
    while matches!(v.get(pos), Some(b' ' | b'\t')) {
        pos += 1;
    }
    pos
}

/// A quoted-string starting at `v[pos] == '"'`: its unescaped content and the index
/// after the closing quote; `None` if unterminated or containing a control character.
///
/// ```text
/// quoted-string  = DQUOTE *( qdtext / quoted-pair ) DQUOTE
/// qdtext         = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
/// quoted-pair    = "\" ( HTAB / SP / VCHAR / obs-text )
/// ```
fn parse_quoted_string(v: &[u8], pos: usize) -> Option<(Vec<u8>, usize)> {
    debug_assert_eq!(v.get(pos), Some(&b'"'));
    let mut out = Vec::new();
    let mut i = pos + 1;
    while let Some(&b) = v.get(i) {
        match b {
            b'"' => return Some((out, i + 1)),
            b'\\' => {
                let &escaped = v.get(i + 1)?;
                if !is_qtext_or_pair(escaped) && escaped != b'"' && escaped != b'\\' {
                    return None;
                }
                out.push(escaped);
                i += 2;
            }
            b if is_qtext_or_pair(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    None
}

/// HTAB / SP / VCHAR / obs-text, except `"` and `\` (those need a quoted-pair).
fn is_qtext_or_pair(b: u8) -> bool {
    b == b'\t' || b == b' ' || ((0x21..=0x7E).contains(&b) && b != b'"' && b != b'\\') || b >= 0x80
}

/// A part's headers, as far as form-data needs them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartHeaders {
    /// Content-Disposition name
    pub name: Option<String>,
    /// filename* (RFC 5987, UTF-8) wins over filename
    pub filename: Option<String>,
    /// The part's `Content-Type`, trimmed, as sent.
    pub content_type: Option<String>,
}

/// One step of a multipart body.
#[derive(Debug, PartialEq, Eq)]
pub enum MultipartEvent<'a> {
    /// A part begins; its headers.
    PartStart(PartHeaders),
    /// Some of the current part's data, borrowed from the input.
    Data(&'a [u8]),
    /// The current part ended.
    PartEnd,
    /// More input is needed (everything usable was consumed).
    NeedMore,
    /// The close delimiter was seen; the rest (epilogue) is ignored.
    Done,
}

/// Where in the multipart grammar the parser is; each state is named after what it
/// expects next.
///
/// ```text
/// multipart-body := [preamble CRLF] dash-boundary transport-padding CRLF
///                   body-part *encapsulation close-delimiter transport-padding
///                   [CRLF epilogue]
/// dash-boundary  := "--" boundary
/// encapsulation  := delimiter transport-padding CRLF body-part
/// delimiter      := CRLF dash-boundary
/// close-delimiter := delimiter "--"
/// transport-padding := *LWSP-char
/// body-part      := MIME-part-headers [CRLF *OCTET]
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The very start: `dash-boundary` without CRLF, or else a preamble.
    FirstBoundary,
    /// Inside the preamble: searching for the first delimiter.
    Preamble,
    /// Just after a `dash-boundary`: `--`, padding or CRLF.
    AfterBoundary,
    /// Saw the first `-` of a close delimiter's `--`.
    CloseDash,
    /// Inside transport padding: more padding, or CR.
    Padding,
    /// Saw the CR ending a delimiter line: LF.
    DelimiterLf,
    /// Inside a part's header block: header lines up to an empty line.
    PartHead,
    /// Inside a part's data: searching for the next delimiter.
    PartData,
    /// After the close delimiter: everything is epilogue.
    Epilogue,
    /// An error happened; it repeats.
    Failed,
}

/// Streaming multipart/form-data parser. See the module docs.
#[derive(Debug)]
pub struct MultipartParser {
    /// Finds `CRLF "--" boundary`; built once.
    delimiter: Finder<'static>,
    state: State,
    /// The current part's header block, at most `max_part_head_bytes`.
    head: Vec<u8>,
    /// Parts started so far.
    parts: usize,
    max_parts: usize,
    max_part_head_bytes: usize,
    /// Sticky error.
    error: Option<MultipartError>,
}

impl MultipartParser {
    /// A parser for one body with this boundary (as returned by
    /// [`boundary_from_content_type`]; it is checked again here).
    pub fn new(boundary: &[u8], limits: &Limits) -> Result<Self, MultipartError> {
        check_boundary(boundary)?;
        let mut delimiter = Vec::with_capacity(4 + boundary.len());
        delimiter.extend_from_slice(b"\r\n--");
        delimiter.extend_from_slice(boundary);
        Ok(Self {
            delimiter: Finder::new(&delimiter).into_owned(),
            state: State::FirstBoundary,
            head: Vec::new(),
            parts: 0,
            max_parts: limits.max_multipart_parts,
            max_part_head_bytes: limits.max_part_head_bytes,
            error: None,
        })
    }

    /// Parse from the front of `input`; returns (consumed, event). Data borrows from
    /// `input` and is handed out as soon as it cannot be part of a delimiter: the parser
    /// may leave up to (delimiter length + 1) trailing bytes unconsumed and return NeedMore;
    /// the caller keeps unconsumed bytes and appends more. `eof = true` means no more
    /// bytes will ever come (a body that ends before the close delimiter is an error).
    /// After Done, the epilogue is consumed/ignored (returns Done again).
    ///
    /// In practice at most `delimiter length - 1` bytes stay unconsumed (a possible
    /// start of a delimiter). With `eof`, the parser never returns `NeedMore`: the rest
    /// of a part's data is handed out, then the missing close delimiter is an error.
    pub fn parse<'a>(
        &mut self,
        input: &'a [u8],
        eof: bool,
    ) -> Result<(usize, MultipartEvent<'a>), MultipartError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        let result = self.step(input, eof);
        if let Err(error) = &result {
            self.state = State::Failed;
            self.error = Some(error.clone());
        }
        result
    }

    /// Whether the close delimiter has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Epilogue
    }

    /// Runs the state machine until it has an event to return.
    fn step<'a>(
        &mut self,
        input: &'a [u8],
        eof: bool,
    ) -> Result<(usize, MultipartEvent<'a>), MultipartError> {
        let delimiter_len = self.delimiter.needle().len();
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                State::FirstBoundary => {
                    // The body may start with dash-boundary itself (no preamble, no CRLF).
                    let dash_boundary = &self.delimiter.needle()[2..];
                    let n = rest.len().min(dash_boundary.len());
                    if rest[..n] != dash_boundary[..n] {
                        self.state = State::Preamble;
                    } else if n < dash_boundary.len() {
                        return need_more(pos, eof);
                    } else {
                        pos += n;
                        self.state = State::AfterBoundary;
                    }
                }
                State::Preamble => match self.delimiter.find(rest) {
                    Some(i) => {
                        pos += i + delimiter_len;
                        self.state = State::AfterBoundary;
                    }
                    None => {
                        pos += rest.len() - self.partial_delimiter_len(rest);
                        return need_more(pos, eof);
                    }
                },
                State::AfterBoundary => match rest.first() {
                    None => return need_more(pos, eof),
                    Some(b'-') => {
                        pos += 1;
                        self.state = State::CloseDash;
                    }
                    Some(b' ' | b'\t') => {
                        pos += 1;
                        self.state = State::Padding;
                    }
                    Some(b'\r') => {
                        pos += 1;
                        self.state = State::DelimiterLf;
                    }
                    Some(_) => return Err(MultipartError::BadDelimiter),
                },
                State::CloseDash => match rest.first() {
                    None => return need_more(pos, eof),
                    Some(b'-') => {
                        self.state = State::Epilogue;
                        return Ok((input.len(), MultipartEvent::Done));
                    }
                    Some(_) => return Err(MultipartError::BadDelimiter),
                },
                State::Padding => {
                    // transport-padding := *LWSP-char; unbounded but O(1) memory.
                    let padding = rest
                        .iter()
                        .take_while(|&&b| b == b' ' || b == b'\t')
                        .count();
                    pos += padding;
                    match rest.get(padding) {
                        None => return need_more(pos, eof),
                        Some(b'\r') => {
                            pos += 1;
                            self.state = State::DelimiterLf;
                        }
                        Some(_) => return Err(MultipartError::BadDelimiter),
                    }
                }
                State::DelimiterLf => match rest.first() {
                    None => return need_more(pos, eof),
                    Some(b'\n') => {
                        pos += 1;
                        self.parts += 1;
                        if self.parts > self.max_parts {
                            return Err(MultipartError::TooManyParts {
                                limit: self.max_parts,
                            });
                        }
                        self.head.clear();
                        self.state = State::PartHead;
                    }
                    Some(_) => return Err(MultipartError::BadDelimiter),
                },
                State::PartHead => {
                    let old = self.head.len();
                    let take = rest.len().min(self.max_part_head_bytes - old);
                    self.head.extend_from_slice(&rest[..take]);
                    if let Some(end) = head_end(&self.head, old) {
                        pos += end - old;
                        self.head.truncate(end);
                        let headers = parse_part_head(&self.head)?;
                        self.state = State::PartData;
                        return Ok((pos, MultipartEvent::PartStart(headers)));
                    }
                    if self.head.len() >= self.max_part_head_bytes {
                        return Err(MultipartError::PartHeadTooLarge {
                            limit: self.max_part_head_bytes,
                        });
                    }
                    pos += take;
                    return need_more(pos, eof);
                }
                State::PartData => {
                    return match self.delimiter.find(rest) {
                        Some(0) => {
                            self.state = State::AfterBoundary;
                            Ok((pos + delimiter_len, MultipartEvent::PartEnd))
                        }
                        Some(i) => Ok((pos + i, MultipartEvent::Data(&rest[..i]))),
                        None => {
                            // Keep back only what could still become a delimiter; at
                            // eof nothing can, so the rest is data (then the missing
                            // close delimiter is reported on the next call).
                            let keep = if eof {
                                0
                            } else {
                                self.partial_delimiter_len(rest)
                            };
                            let data = &rest[..rest.len() - keep];
                            if data.is_empty() {
                                need_more(pos, eof)
                            } else {
                                Ok((pos + data.len(), MultipartEvent::Data(data)))
                            }
                        }
                    };
                }
                State::Epilogue => return Ok((input.len(), MultipartEvent::Done)),
                State::Failed => return Err(MultipartError::MissingClose), // unreachable: sticky error returned first
            }
        }
    }

    /// Length of the longest suffix of `tail` that is a proper prefix of the delimiter
    /// (bytes that might be the start of a delimiter completed by the next feed).
    fn partial_delimiter_len(&self, tail: &[u8]) -> usize {
        let needle = self.delimiter.needle();
        let window = tail.len().min(needle.len() - 1);
        let start = tail.len() - window;
        // A delimiter starts with CR, so only CR positions can begin a partial one;
        // the earliest that matches is the longest.
        memchr::memchr_iter(b'\r', &tail[start..])
            .map(|i| start + i)
            .find(|&i| needle.starts_with(&tail[i..]))
            .map_or(0, |i| tail.len() - i)
    }
}

/// NeedMore, or the missing close delimiter at eof.
fn need_more<'a>(
    consumed: usize,
    eof: bool,
) -> Result<(usize, MultipartEvent<'a>), MultipartError> {
    if eof {
        Err(MultipartError::MissingClose)
    } else {
        Ok((consumed, MultipartEvent::NeedMore))
    }
}

/// End (exclusive) of a header block in `head`: after the empty line. `old` bytes were
/// already searched, so only the new ones (and the 3 before them) are looked at.
///
/// ```text
/// MIME-part-headers := *( header-field CRLF ) CRLF   ; possibly no fields at all
/// ```
fn head_end(head: &[u8], old: usize) -> Option<usize> {
    if head.starts_with(b"\r\n") {
        return Some(2);
    }
    let from = old.saturating_sub(3);
    memchr::memmem::find(&head[from..], b"\r\n\r\n").map(|i| from + i + 4)
}

/// Parses a complete header block (ending in the empty line).
///
/// ```text
/// header-field   = field-name ":" OWS field-value OWS     ; RFC 9112 §5
/// field-name     = token
/// field-value    = *field-content                        ; VCHAR, obs-text, SP, HTAB
/// ```
fn parse_part_head(block: &[u8]) -> Result<PartHeaders, MultipartError> {
    let mut headers = PartHeaders::default();
    let mut seen_disposition = false;
    // Drop the final empty line; what is left is "field CRLF" repeated.
    let mut fields = &block[..block.len() - 2];
    while !fields.is_empty() {
        let eol = memchr::memmem::find(fields, b"\r\n").unwrap_or(fields.len());
        let line = &fields[..eol];
        fields = &fields[(eol + 2).min(fields.len())..];
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return Err(MultipartError::BadPartHeader(
                "folded header lines are not supported",
            ));
        }
        if line.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7F)) {
            return Err(MultipartError::BadPartHeader(
                "a control character (bare CR or LF?) in a header line",
            ));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(MultipartError::BadPartHeader("a header line has no `:`"))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(MultipartError::BadPartHeader(
                "a header name is not a token (whitespace before `:`?)",
            ));
        }
        let value = trim_ows(&line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-disposition") {
            if seen_disposition {
                return Err(MultipartError::BadPartHeader(
                    "more than one Content-Disposition",
                ));
            }
            seen_disposition = true;
            let (name, filename) = parse_disposition(value)?;
            headers.name = name;
            headers.filename = filename;
        } else if name.eq_ignore_ascii_case(b"content-type") {
            if headers.content_type.is_some() {
                return Err(MultipartError::BadPartHeader("more than one Content-Type"));
            }
            if !value.is_ascii() {
                return Err(MultipartError::BadPartHeader(
                    "a Content-Type must be ASCII",
                ));
            }
            headers.content_type = Some(String::from_utf8_lossy(value).into_owned());
        }
    }
    Ok(headers)
}

/// `Content-Disposition` of a form-data part: (name, filename).
///
/// ```text
/// content-disposition = disposition-type *( OWS ";" OWS disposition-parm )  ; RFC 6266
/// disposition-type    = "form-data" / token                 ; RFC 7578 §4.2
/// disposition-parm    = filename-parm / disp-ext-parm
/// filename-parm       = "filename" "=" value
///                     / "filename*" "=" ext-value
/// disp-ext-parm       = token "=" value / ext-token "=" ext-value
/// value               = token / quoted-string
/// ```
///
/// Whitespace around `=` is tolerated (RFC 6266 uses implied LWS). A parameter given
/// twice is an error (RFC 6266 §4.1); unknown parameters are ignored. An unquoted value
/// may contain obs-text (raw UTF-8), which some clients send.
fn parse_disposition(v: &[u8]) -> Result<(Option<String>, Option<String>), MultipartError> {
    let (kind, mut pos) = take_token(v, 0);
    if kind.is_empty() {
        return Err(MultipartError::BadPartHeader(
            "Content-Disposition has no disposition type",
        ));
    }
    let (mut name, mut filename, mut filename_ext) = (None, None, None);
    loop {
        pos = skip_ows(v, pos);
        if pos == v.len() {
            break;
        }
        if v[pos] != b';' {
            return Err(MultipartError::BadPartHeader(
                "expected `;` between Content-Disposition parameters",
            ));
        }
        pos = skip_ows(v, pos + 1);
        if pos == v.len() || v[pos] == b';' {
            continue;
        }
        let (param, end) = take_token(v, pos);
        pos = skip_ows(v, end);
        if param.is_empty() || v.get(pos) != Some(&b'=') {
            return Err(MultipartError::BadPartHeader(
                "expected name=value Content-Disposition parameters",
            ));
        }
        pos = skip_ows(v, pos + 1);
        let value = if v.get(pos) == Some(&b'"') {
            let (value, end) = parse_quoted_string(v, pos).ok_or(MultipartError::BadPartHeader(
                "unterminated or invalid quoted-string",
            ))?;
            pos = end;
            value
        } else {
            let len = v[pos..]
                .iter()
                .take_while(|&&b| is_tchar(b) || b >= 0x80)
                .count();
            if len == 0 {
                return Err(MultipartError::BadPartHeader(
                    "a Content-Disposition parameter has no value",
                ));
            }
            pos += len;
            v[pos - len..pos].to_vec()
        };
        let slot = if param.eq_ignore_ascii_case(b"name") {
            &mut name
        } else if param.eq_ignore_ascii_case(b"filename") {
            &mut filename
        } else if param.eq_ignore_ascii_case(b"filename*") {
            &mut filename_ext
        } else {
            continue;
        };
        if slot.is_some() {
            return Err(MultipartError::BadPartHeader(
                "a Content-Disposition parameter is given twice",
            ));
        }
        *slot = Some(value);
    }
    let text = |bytes: Vec<u8>| {
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    };
    let decoded_ext = match filename_ext {
        Some(ext) => decode_ext_value(&ext)?,
        None => None,
    };
    Ok((name.map(text), decoded_ext.or(filename.map(text))))
}

/// Decodes an RFC 8187 (formerly RFC 5987) `ext-value`. `Ok(None)` for a charset other
/// than UTF-8 and ISO-8859-1 (the parameter is then ignored, as RFC 8187 §3.2.1 allows).
///
/// ```text
/// ext-value     = charset  "'" [ language ] "'" value-chars
/// charset       = "UTF-8" / "ISO-8859-1" / mime-charset     ; case-insensitive
/// value-chars   = *( pct-encoded / attr-char )
/// pct-encoded   = "%" HEXDIG HEXDIG
/// attr-char     = ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "."
///               / "^" / "_" / "`" / "|" / "~"
/// ```
fn decode_ext_value(v: &[u8]) -> Result<Option<String>, MultipartError> {
    const BAD: MultipartError =
        MultipartError::BadPartHeader("filename* is not charset'language'percent-encoded-value");
    let mut fields = v.splitn(3, |&b| b == b'\'');
    let (Some(charset), Some(_language), Some(chars)) =
        (fields.next(), fields.next(), fields.next())
    else {
        return Err(BAD);
    };
    let mut bytes = Vec::with_capacity(chars.len());
    let mut i = 0;
    while let Some(&b) = chars.get(i) {
        if b == b'%' {
            let hex = chars.get(i + 1..i + 3).ok_or(BAD)?;
            let hi = hex_value(hex[0]).ok_or(BAD)?;
            let lo = hex_value(hex[1]).ok_or(BAD)?;
            bytes.push(hi << 4 | lo);
            i += 3;
        } else if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            bytes.push(b);
            i += 1;
        } else {
            return Err(BAD);
        }
    }
    if charset.eq_ignore_ascii_case(b"UTF-8") {
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| MultipartError::BadPartHeader("filename* is not valid UTF-8"))
    } else if charset.eq_ignore_ascii_case(b"ISO-8859-1") {
        Ok(Some(bytes.iter().map(|&b| char::from(b)).collect()))
    } else if !charset.is_empty() && charset.iter().all(|&b| is_tchar(b)) {
        Ok(None)
    } else {
        Err(BAD)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::props::multipart::{run_feeds as run_pieces, split_at, Outcome, OwnedEvent as Ev};

    /// Runs `body` whole, one byte at a time, and in pieces of 2, 3, 5 and 7 bytes;
    /// all must give the same outcome, which is returned.
    fn run_all_ways(boundary: &[u8], body: &[u8], limits: &Limits) -> Outcome {
        let whole = run_pieces(boundary, &[body], limits);
        for step in [1, 2, 3, 5, 7] {
            let cuts: Vec<usize> = (1..body.len()).filter(|c| c % step == 0).collect();
            let split = run_pieces(boundary, &split_at(body, &cuts), limits);
            assert_eq!(
                split, whole,
                "pieces of {step} bytes differ from the whole body"
            );
        }
        // And with an empty feed in front and between every byte.
        let mut pieces: Vec<&[u8]> = vec![b""];
        for i in 0..body.len() {
            pieces.push(&body[i..i + 1]);
            pieces.push(b"");
        }
        assert_eq!(
            run_pieces(boundary, &pieces, limits),
            whole,
            "with empty feeds"
        );
        whole
    }

    fn part(name: &str) -> Ev {
        Ev::Start(PartHeaders {
            name: Some(name.into()),
            ..PartHeaders::default()
        })
    }

    fn file(name: &str, filename: &str, content_type: Option<&str>) -> Ev {
        Ev::Start(PartHeaders {
            name: Some(name.into()),
            filename: Some(filename.into()),
            content_type: content_type.map(Into::into),
        })
    }

    fn data(d: &[u8]) -> Ev {
        Ev::Data(d.to_vec())
    }

    /// `name: (body) => (events, result)` with boundary `AaB03x` and default limits;
    /// each case runs whole, byte by byte and in several splits.
    macro_rules! body_cases {
        ($($name:ident: $body:expr => ($events:expr, $result:expr);)*) => {$(
            #[test]
            fn $name() {
                let got = run_all_ways(b"AaB03x", $body, &Limits::default());
                let want: Outcome = ($events, $result);
                assert_eq!(got, want);
            }
        )*};
    }

    const CD: &str = "Content-Disposition: form-data";

    body_cases! {
        body_rfc7578_example: concat!(
            "--AaB03x\r\n",
            "Content-Disposition: form-data; name=\"submit-name\"\r\n\r\n",
            "Larry\r\n",
            "--AaB03x\r\n",
            "Content-Disposition: form-data; name=\"files\"; filename=\"file1.txt\"\r\n",
            "Content-Type: text/plain\r\n\r\n",
            "... contents of file1.txt ...\r\n",
            "--AaB03x--\r\n").as_bytes()
            => (vec![part("submit-name"), data(b"Larry"), Ev::End,
                     file("files", "file1.txt", Some("text/plain")), data(b"... contents of file1.txt ..."), Ev::End,
                     Ev::Done], Ok(()));
        body_no_parts: b"--AaB03x--" => (vec![Ev::Done], Ok(()));
        body_no_parts_with_preamble: b"junk\r\n--AaB03x--\r\n" => (vec![Ev::Done], Ok(()));
        body_empty_data: b"--AaB03x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\r\n--AaB03x--" => (vec![part("a"), Ev::End, Ev::Done], Ok(()));
        body_no_headers: b"--AaB03x\r\n\r\nxyz\r\n--AaB03x--" => (vec![Ev::Start(PartHeaders::default()), data(b"xyz"), Ev::End, Ev::Done], Ok(()));
        body_preamble: b"This is the preamble.\r\n--AaB03x\r\n\r\nx\r\n--AaB03x--" => (vec![Ev::Start(PartHeaders::default()), data(b"x"), Ev::End, Ev::Done], Ok(()));
        body_preamble_mentions_boundary: b"--AaB03 --AaB03x-- AaB03x\r\n--AaB03\r\n--AaB03x\r\n\r\nx\r\n--AaB03x--" => (vec![Ev::Start(PartHeaders::default()), data(b"x"), Ev::End, Ev::Done], Ok(()));
        body_preamble_is_only_crlf: b"\r\n--AaB03x\r\n\r\nx\r\n--AaB03x--" => (vec![Ev::Start(PartHeaders::default()), data(b"x"), Ev::End, Ev::Done], Ok(()));
        body_epilogue_ignored: b"--AaB03x\r\n\r\nx\r\n--AaB03x--\r\nepilogue --AaB03x\r\n garbage" => (vec![Ev::Start(PartHeaders::default()), data(b"x"), Ev::End, Ev::Done], Ok(()));
        body_transport_padding: b"--AaB03x \t \r\n\r\nx\r\n--AaB03x\t\r\n\r\ny\r\n--AaB03x--  \r\n" => (vec![
            Ev::Start(PartHeaders::default()), data(b"x"), Ev::End,
            Ev::Start(PartHeaders::default()), data(b"y"), Ev::End, Ev::Done], Ok(()));
        body_data_with_crlf_and_dashes: b"--AaB03x\r\n\r\n\r\n--\r\n--A\r\n--AaB03\r\r\n-\n\r\n--AaB03x--" => (vec![
            Ev::Start(PartHeaders::default()), data(b"\r\n--\r\n--A\r\n--AaB03\r\r\n-\n"), Ev::End, Ev::Done], Ok(()));
        body_data_ends_with_cr: b"--AaB03x\r\n\r\nab\r\r\n--AaB03x--" => (vec![Ev::Start(PartHeaders::default()), data(b"ab\r"), Ev::End, Ev::Done], Ok(()));
        body_data_starts_with_dash_boundary: b"--AaB03x\r\n\r\n--AaB03x\r\n--AaB03x--" => (vec![Ev::Start(PartHeaders::default()), data(b"--AaB03x"), Ev::End, Ev::Done], Ok(()));
        body_data_binary: b"--AaB03x\r\n\r\n\x00\xff\r\x0a\x0d--\r\n--AaB03x--" => (vec![Ev::Start(PartHeaders::default()), data(b"\x00\xff\r\n\r--"), Ev::End, Ev::Done], Ok(()));
        body_filename_star_wins: concat!("--AaB03x\r\n", "Content-Disposition: form-data; name=f; filename=\"fallback.txt\"; filename*=UTF-8''%E2%82%AC%20rates.txt\r\n\r\n", "x\r\n--AaB03x--").as_bytes()
            => (vec![file("f", "\u{20ac} rates.txt", None), data(b"x"), Ev::End, Ev::Done], Ok(()));

        body_err_empty: b"" => (vec![], Err(MultipartError::MissingClose));
        body_err_only_preamble: b"no delimiter here" => (vec![], Err(MultipartError::MissingClose));
        body_err_partial_first_boundary: b"--AaB0" => (vec![], Err(MultipartError::MissingClose));
        body_err_no_close: b"--AaB03x\r\n\r\nabc" => (vec![Ev::Start(PartHeaders::default()), data(b"abc")], Err(MultipartError::MissingClose));
        body_err_no_close_after_delimiter: b"--AaB03x\r\n\r\nabc\r\n--AaB03x" => (vec![Ev::Start(PartHeaders::default()), data(b"abc"), Ev::End], Err(MultipartError::MissingClose));
        body_err_partial_delimiter_at_eof_is_data: b"--AaB03x\r\n\r\nabc\r\n--AaB0" => (vec![Ev::Start(PartHeaders::default()), data(b"abc\r\n--AaB0")], Err(MultipartError::MissingClose));
        body_err_half_close: b"--AaB03x\r\n\r\nabc\r\n--AaB03x-" => (vec![Ev::Start(PartHeaders::default()), data(b"abc"), Ev::End], Err(MultipartError::MissingClose));
        body_err_head_unterminated: b"--AaB03x\r\nContent-Type: text/plain\r\n" => (vec![], Err(MultipartError::MissingClose));
        body_err_boundary_lf_only: b"--AaB03x\n\r\nx\r\n--AaB03x--" => (vec![], Err(MultipartError::BadDelimiter));
        body_err_boundary_cr_only: b"--AaB03x\rx\r\n--AaB03x--" => (vec![], Err(MultipartError::BadDelimiter));
        body_err_longer_boundary_first: b"--AaB03xyz\r\n\r\nx\r\n--AaB03x--" => (vec![], Err(MultipartError::BadDelimiter));
        body_err_boundary_in_data: b"--AaB03x\r\n\r\nx\r\n--AaB03xyz\r\n--AaB03x--" => (vec![Ev::Start(PartHeaders::default()), data(b"x"), Ev::End], Err(MultipartError::BadDelimiter));
        body_err_single_dash_close: b"--AaB03x\r\n\r\nx\r\n--AaB03x-x" => (vec![Ev::Start(PartHeaders::default()), data(b"x"), Ev::End], Err(MultipartError::BadDelimiter));
        body_err_padding_junk: b"--AaB03x  x\r\n" => (vec![], Err(MultipartError::BadDelimiter));
        body_err_bad_header: b"--AaB03x\r\nno colon\r\n\r\nx\r\n--AaB03x--" => (vec![], Err(MultipartError::BadPartHeader("a header line has no `:`")));
    }

    #[test]
    fn default_limits_values_used_in_messages() {
        let e = MultipartError::MissingClose;
        assert!(e
            .to_string()
            .starts_with("the body ended before the closing --boundary--"));
        assert_eq!(
            (e.status(), e.code(), e.must_close()),
            (400, "bad_multipart", false)
        );
        let e = MultipartError::TooManyParts { limit: 3 };
        assert_eq!(
            (e.status(), e.code(), e.must_close()),
            (413, "too_many_parts", false)
        );
        let e = MultipartError::PartHeadTooLarge { limit: 3 };
        assert_eq!((e.status(), e.code()), (400, "part_head_too_large"));
    }

    #[test]
    fn too_many_parts() {
        let limits = Limits {
            max_multipart_parts: 2,
            ..Limits::default()
        };
        let two = b"--B\r\n\r\n1\r\n--B\r\n\r\n2\r\n--B--";
        let (events, result) = run_all_ways(b"B", two, &limits);
        assert_eq!((events.len(), result), (7, Ok(())));
        let three = b"--B\r\n\r\n1\r\n--B\r\n\r\n2\r\n--B\r\n\r\n3\r\n--B--";
        let (events, result) = run_all_ways(b"B", three, &limits);
        assert_eq!(events.len(), 6);
        assert_eq!(result, Err(MultipartError::TooManyParts { limit: 2 }));
    }

    #[test]
    fn part_head_limit() {
        let head = format!("{CD}; name=\"abcdefgh\"\r\n\r\n"); // 43 bytes
        let body = format!("--B\r\n{head}x\r\n--B--");
        let fits = Limits {
            max_part_head_bytes: head.len(),
            ..Limits::default()
        };
        assert_eq!(
            run_all_ways(b"B", body.as_bytes(), &fits),
            (
                vec![part("abcdefgh"), data(b"x"), Ev::End, Ev::Done],
                Ok(())
            )
        );
        let too_small = Limits {
            max_part_head_bytes: head.len() - 1,
            ..Limits::default()
        };
        assert_eq!(
            run_all_ways(b"B", body.as_bytes(), &too_small),
            (
                vec![],
                Err(MultipartError::PartHeadTooLarge {
                    limit: head.len() - 1
                })
            )
        );
        let zero = Limits {
            max_part_head_bytes: 0,
            ..Limits::default()
        };
        assert_eq!(
            run_all_ways(b"B", b"--B\r\n\r\nx\r\n--B--", &zero).1,
            Err(MultipartError::PartHeadTooLarge { limit: 0 })
        );
    }

    /// Bytes returned unconsumed with NeedMore are exactly the possible delimiter start,
    /// and parsing resumes correctly once the caller appends more.
    #[test]
    fn unconsumed_bytes_are_the_partial_delimiter() {
        let mut p = MultipartParser::new(b"Boundary", &Limits::default()).unwrap();
        let first = b"--Boundary\r\n\r\nhello\r\n--Bo";
        assert_eq!(
            p.parse(first, false),
            Ok((14, MultipartEvent::PartStart(PartHeaders::default())))
        );
        assert_eq!(
            p.parse(&first[14..], false),
            Ok((5, MultipartEvent::Data(b"hello")))
        );
        assert_eq!(
            p.parse(&first[19..], false),
            Ok((0, MultipartEvent::NeedMore))
        );
        // The caller keeps "\r\n--Bo" and appends; a false alarm becomes data.
        assert_eq!(
            p.parse(b"\r\n--Bo!", false),
            Ok((7, MultipartEvent::Data(b"\r\n--Bo!")))
        );
        assert_eq!(p.parse(b"\r", false), Ok((0, MultipartEvent::NeedMore)));
        assert_eq!(
            p.parse(b"\r\r", false),
            Ok((1, MultipartEvent::Data(b"\r")))
        );
        assert_eq!(
            p.parse(b"\r\n--Boundary--", false),
            Ok((12, MultipartEvent::PartEnd))
        );
        assert_eq!(p.parse(b"--\r\n", false), Ok((4, MultipartEvent::Done)));
        assert!(p.is_done());
        assert_eq!(p.parse(b"", true), Ok((0, MultipartEvent::Done)));
    }

    /// In the preamble and in the first boundary, unconsumed bytes are kept the same way.
    #[test]
    fn unconsumed_bytes_in_preamble_and_first_boundary() {
        let mut p = MultipartParser::new(b"Boundary", &Limits::default()).unwrap();
        assert_eq!(p.parse(b"--Bou", false), Ok((0, MultipartEvent::NeedMore)));
        let mut p = MultipartParser::new(b"Boundary", &Limits::default()).unwrap();
        assert_eq!(
            p.parse(b"preamble\r\n--Bou", false),
            Ok((8, MultipartEvent::NeedMore))
        );
        assert_eq!(
            p.parse(b"\r\n--Boundary\r", false),
            Ok((13, MultipartEvent::NeedMore))
        );
        assert_eq!(
            p.parse(b"\n\r\n", false),
            Ok((3, MultipartEvent::PartStart(PartHeaders::default())))
        );
    }

    #[test]
    fn new_checks_the_boundary() {
        let limits = Limits::default();
        assert!(MultipartParser::new(b"", &limits).is_err());
        assert!(MultipartParser::new(b"a\r\nb", &limits).is_err());
        assert!(MultipartParser::new(&[b'x'; 71], &limits).is_err());
        assert!(MultipartParser::new(&[b'x'; 70], &limits).is_ok());
    }

    /// A large stream is never buffered: the parser's state stays small while the
    /// data flows through it in 64 KiB feeds, and only a possible delimiter start (a
    /// trailing CR here) is kept back by the caller.
    #[test]
    fn large_body_is_streamed() {
        let limits = Limits::default();
        let mut p = MultipartParser::new(b"xyz", &limits).unwrap();
        assert!(matches!(
            p.parse(b"--xyz\r\n\r\n", false),
            Ok((9, MultipartEvent::PartStart(_)))
        ));
        let chunk = vec![b'\r'; 64 * 1024];
        let mut buf: Vec<u8> = Vec::new();
        let mut total = 0;
        for _ in 0..64 {
            buf.extend_from_slice(&chunk);
            let mut off = 0;
            loop {
                match p.parse(&buf[off..], false).unwrap() {
                    (n, MultipartEvent::Data(d)) => {
                        total += d.len();
                        off += n;
                    }
                    (n, MultipartEvent::NeedMore) => {
                        off += n;
                        assert_eq!(buf.len() - off, 1, "one CR kept");
                        break;
                    }
                    other => panic!("{other:?}"),
                }
            }
            buf.drain(..off);
            assert!(p.head.capacity() <= limits.max_part_head_bytes);
        }
        assert_eq!(total, 64 * 64 * 1024 - 1);
        buf.extend_from_slice(b"\r\n--xyz--");
        assert_eq!(buf, b"\r\r\n--xyz--");
        assert_eq!(p.parse(&buf, true), Ok((1, MultipartEvent::Data(b"\r"))));
        assert_eq!(p.parse(&buf[1..], true), Ok((7, MultipartEvent::PartEnd)));
        assert_eq!(p.parse(&buf[8..], true), Ok((2, MultipartEvent::Done)));
    }

    /// `name: "Content-Type" => Ok(boundary) | Err(error)`.
    macro_rules! boundary_cases {
        ($($name:ident: $value:expr => $expected:expr;)*) => {$(
            #[test]
            fn $name() {
                let expected: Result<&[u8], MultipartError> = $expected;
                assert_eq!(boundary_from_content_type($value), expected.map(<[u8]>::to_vec), "{:?}", String::from_utf8_lossy($value));
            }
        )*};
    }

    use MultipartError::{BadContentType, InvalidBoundary};

    boundary_cases! {
        boundary_token: b"multipart/form-data; boundary=AaB03x" => Ok(b"AaB03x");
        boundary_quoted: b"multipart/form-data; boundary=\"AaB03x\"" => Ok(b"AaB03x");
        boundary_quoted_specials: b"multipart/form-data; boundary=\"gc0p4Jq0M2Yt08j34c0p:=?,/()+_.' x\"" => Ok(b"gc0p4Jq0M2Yt08j34c0p:=?,/()+_.' x");
        boundary_quoted_escape: b"multipart/form-data; boundary=\"a\\b\"" => Ok(b"ab");
        boundary_browser: b"multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW" => Ok(b"----WebKitFormBoundary7MA4YWxkTrZu0gW");
        boundary_case_insensitive: b"Multipart/Form-Data; BOUNDARY=x" => Ok(b"x");
        boundary_other_params: b"multipart/form-data; charset=utf-8; boundary=x; foo=\"b;ar\"" => Ok(b"x");
        boundary_ows: b"  multipart/form-data ;\tboundary=x ; " => Ok(b"x");
        boundary_empty_params: b"multipart/form-data;; boundary=x;" => Ok(b"x");
        boundary_max_len: b"multipart/form-data; boundary=0123456789012345678901234567890123456789012345678901234567890123456789" => Ok(b"0123456789012345678901234567890123456789012345678901234567890123456789");
        boundary_one_char: b"multipart/form-data; boundary=-" => Ok(b"-");

        boundary_err_not_multipart: b"application/x-www-form-urlencoded" => Err(MultipartError::NotFormData);
        boundary_err_mixed: b"multipart/mixed; boundary=x" => Err(MultipartError::NotFormData);
        boundary_err_no_subtype: b"multipart; boundary=x" => Err(BadContentType("expected type/subtype"));
        boundary_err_empty_subtype: b"multipart/; boundary=x" => Err(BadContentType("expected type/subtype"));
        boundary_err_empty: b"" => Err(BadContentType("expected type/subtype"));
        boundary_err_missing: b"multipart/form-data" => Err(MultipartError::MissingBoundary);
        boundary_err_missing_with_params: b"multipart/form-data; charset=utf-8" => Err(MultipartError::MissingBoundary);
        boundary_err_duplicate: b"multipart/form-data; boundary=x; boundary=y" => Err(MultipartError::DuplicateBoundary);
        boundary_err_empty_value: b"multipart/form-data; boundary=" => Err(BadContentType("a parameter has no value"));
        boundary_err_empty_quoted: b"multipart/form-data; boundary=\"\"" => Err(InvalidBoundary("it is empty"));
        boundary_err_too_long: b"multipart/form-data; boundary=01234567890123456789012345678901234567890123456789012345678901234567890" => Err(InvalidBoundary("it is longer than 70 characters"));
        boundary_err_trailing_space: b"multipart/form-data; boundary=\"ab \"" => Err(InvalidBoundary("it ends in a space"));
        boundary_err_bad_char_token: b"multipart/form-data; boundary=a*b" => Err(InvalidBoundary("it contains a character outside RFC 2046 bchars"));
        boundary_err_bad_char_quoted: b"multipart/form-data; boundary=\"a@b\"" => Err(InvalidBoundary("it contains a character outside RFC 2046 bchars"));
        boundary_err_unquoted_special: b"multipart/form-data; boundary=a:b" => Err(BadContentType("expected `;` before a parameter"));
        boundary_err_unterminated: b"multipart/form-data; boundary=\"abc" => Err(BadContentType("unterminated quoted-string"));
        boundary_err_space_around_eq: b"multipart/form-data; boundary = x" => Err(BadContentType("expected name=value parameters"));
        boundary_err_no_semicolon: b"multipart/form-data boundary=x" => Err(BadContentType("expected `;` before a parameter"));
        boundary_err_control_in_quotes: b"multipart/form-data; boundary=\"a\x01b\"" => Err(BadContentType("unterminated quoted-string"));
    }

    /// `name: "header block" => Ok(PartHeaders) | Err(reason)`.
    macro_rules! head_cases {
        ($($name:ident: $block:expr => $expected:expr;)*) => {$(
            #[test]
            fn $name() {
                let expected: Result<PartHeaders, &'static str> = $expected;
                assert_eq!(parse_part_head($block), expected.map_err(MultipartError::BadPartHeader), "{:?}", String::from_utf8_lossy($block));
            }
        )*};
    }

    fn h(name: Option<&str>, filename: Option<&str>, content_type: Option<&str>) -> PartHeaders {
        PartHeaders {
            name: name.map(Into::into),
            filename: filename.map(Into::into),
            content_type: content_type.map(Into::into),
        }
    }

    head_cases! {
        head_empty: b"\r\n" => Ok(h(None, None, None));
        head_name: b"Content-Disposition: form-data; name=\"field1\"\r\n\r\n" => Ok(h(Some("field1"), None, None));
        head_name_token: b"Content-Disposition: form-data; name=field1\r\n\r\n" => Ok(h(Some("field1"), None, None));
        head_case_insensitive: b"content-disposition: FORM-DATA; NAME=\"a\"; FileName=\"b\"\r\nCONTENT-TYPE: image/png\r\n\r\n" => Ok(h(Some("a"), Some("b"), Some("image/png")));
        head_filename: b"Content-Disposition: form-data; name=\"f\"; filename=\"a b.txt\"\r\n\r\n" => Ok(h(Some("f"), Some("a b.txt"), None));
        head_filename_empty: b"Content-Disposition: form-data; name=\"f\"; filename=\"\"\r\n\r\n" => Ok(h(Some("f"), Some(""), None));
        head_quoted_escapes: b"Content-Disposition: form-data; name=\"a\\\"b\\\\c\"\r\n\r\n" => Ok(h(Some("a\"b\\c"), None, None));
        head_quoted_semicolon: b"Content-Disposition: form-data; name=\"a;b=c\"\r\n\r\n" => Ok(h(Some("a;b=c"), None, None));
        head_raw_utf8_filename: "Content-Disposition: form-data; name=\"f\"; filename=\"na\u{ef}ve \u{1f600}.txt\"\r\n\r\n".as_bytes() => Ok(h(Some("f"), Some("na\u{ef}ve \u{1f600}.txt"), None));
        head_latin1_filename_lossy: b"Content-Disposition: form-data; name=\"f\"; filename=\"caf\xe9\"\r\n\r\n" => Ok(h(Some("f"), Some("caf\u{fffd}"), None));
        head_unquoted_utf8: "Content-Disposition: form-data; name=f\u{e9}\r\n\r\n".as_bytes() => Ok(h(Some("f\u{e9}"), None, None));
        head_filename_star: b"Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''%c2%a3%20and%20%E2%82%AC%20rates\r\n\r\n" => Ok(h(Some("f"), Some("\u{a3} and \u{20ac} rates"), None));
        head_filename_star_first: b"Content-Disposition: form-data; filename*=utf-8'en'x.txt; filename=\"y.txt\"; name=f\r\n\r\n" => Ok(h(Some("f"), Some("x.txt"), None));
        head_filename_star_latin1: b"Content-Disposition: form-data; name=f; filename*=iso-8859-1''caf%E9\r\n\r\n" => Ok(h(Some("f"), Some("caf\u{e9}"), None));
        head_filename_star_other_charset_ignored: b"Content-Disposition: form-data; name=f; filename=\"x\"; filename*=Shift_JIS''%82%A0\r\n\r\n" => Ok(h(Some("f"), Some("x"), None));
        head_filename_star_quoted_tolerated: b"Content-Disposition: form-data; name=f; filename*=\"UTF-8''a%20b\"\r\n\r\n" => Ok(h(Some("f"), Some("a b"), None));
        head_ows_everywhere: b"Content-Disposition:form-data ;name = \"a\" ;\tfilename= b.txt ;\r\nContent-Type:   text/plain; charset=utf-8  \r\n\r\n" => Ok(h(Some("a"), Some("b.txt"), Some("text/plain; charset=utf-8")));
        head_unknown_params_and_fields: b"Content-Disposition: form-data; name=a; size=12; creation-date=\"x\"\r\nContent-Transfer-Encoding: binary\r\nX-Other: 1\r\n\r\n" => Ok(h(Some("a"), None, None));
        head_other_disposition_type: b"Content-Disposition: attachment; filename=\"a\"\r\n\r\n" => Ok(h(None, Some("a"), None));
        head_empty_value_other_field: b"X-Empty:\r\n\r\n" => Ok(h(None, None, None));

        head_err_no_colon: b"Content-Disposition form-data\r\n\r\n" => Err("a header line has no `:`");
        head_err_space_before_colon: b"Content-Disposition : form-data\r\n\r\n" => Err("a header name is not a token (whitespace before `:`?)");
        head_err_empty_name: b": x\r\n\r\n" => Err("a header name is not a token (whitespace before `:`?)");
        head_err_folded: b"Content-Disposition: form-data;\r\n name=a\r\n\r\n" => Err("folded header lines are not supported");
        head_err_bare_lf: b"Content-Type: a\nX: b\r\n\r\n" => Err("a control character (bare CR or LF?) in a header line");
        head_err_bare_cr: b"Content-Type: a\rb\r\n\r\n" => Err("a control character (bare CR or LF?) in a header line");
        head_err_nul: b"Content-Type: a\0b\r\n\r\n" => Err("a control character (bare CR or LF?) in a header line");
        head_err_two_dispositions: b"Content-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b\r\n\r\n" => Err("more than one Content-Disposition");
        head_err_two_content_types: b"Content-Type: a/b\r\nContent-Type: c/d\r\n\r\n" => Err("more than one Content-Type");
        head_err_non_ascii_content_type: "Content-Type: t\u{e9}xt/plain\r\n\r\n".as_bytes() => Err("a Content-Type must be ASCII");
        head_err_no_type: b"Content-Disposition: ; name=a\r\n\r\n" => Err("Content-Disposition has no disposition type");
        head_err_missing_semicolon: b"Content-Disposition: form-data name=a\r\n\r\n" => Err("expected `;` between Content-Disposition parameters");
        head_err_param_without_value: b"Content-Disposition: form-data; name\r\n\r\n" => Err("expected name=value Content-Disposition parameters");
        head_err_param_empty_value: b"Content-Disposition: form-data; name=\r\n\r\n" => Err("a Content-Disposition parameter has no value");
        head_err_unterminated_quote: b"Content-Disposition: form-data; name=\"a\r\n\r\n" => Err("unterminated or invalid quoted-string");
        head_err_junk_after_quote: b"Content-Disposition: form-data; name=\"a\"b\r\n\r\n" => Err("expected `;` between Content-Disposition parameters");
        head_err_duplicate_name: b"Content-Disposition: form-data; name=a; NAME=b\r\n\r\n" => Err("a Content-Disposition parameter is given twice");
        head_err_duplicate_filename_star: b"Content-Disposition: form-data; filename*=UTF-8''a; filename*=UTF-8''b\r\n\r\n" => Err("a Content-Disposition parameter is given twice");
        head_err_ext_no_quotes: b"Content-Disposition: form-data; filename*=UTF-8%20a\r\n\r\n" => Err("filename* is not charset'language'percent-encoded-value");
        head_err_ext_bad_pct: b"Content-Disposition: form-data; filename*=UTF-8''a%2\r\n\r\n" => Err("filename* is not charset'language'percent-encoded-value");
        head_err_ext_bad_hex: b"Content-Disposition: form-data; filename*=UTF-8''a%zz\r\n\r\n" => Err("filename* is not charset'language'percent-encoded-value");
        head_err_ext_raw_char: b"Content-Disposition: form-data; filename*=UTF-8''a'b\r\n\r\n" => Err("filename* is not charset'language'percent-encoded-value");
        head_err_ext_empty_charset: b"Content-Disposition: form-data; filename*=''ab\r\n\r\n" => Err("filename* is not charset'language'percent-encoded-value");
        head_err_ext_bad_utf8: b"Content-Disposition: form-data; filename*=UTF-8''%FF\r\n\r\n" => Err("filename* is not valid UTF-8");
    }

    /// Percent-encodes everything but attr-char (RFC 8187).
    fn pct_encode(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    /// A quoted-string with `"` and `\` escaped.
    fn quote(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }

    #[derive(Clone, Debug)]
    struct TestPart {
        name: String,
        filename: Option<String>,
        content_type: Option<String>,
        data: Vec<u8>,
        lowercase: bool,
    }

    /// Bytes that make delimiter recognition hard: CR, LF, '-', the boundary's own
    /// characters, and anything.
    fn tricky_data(boundary: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
        let pieces = prop_oneof![
            3 => any::<u8>().prop_map(|b| vec![b]),
            2 => Just(b"\r".to_vec()),
            2 => Just(b"\n".to_vec()),
            2 => Just(b"--".to_vec()),
            1 => Just(b"\r\n".to_vec()),
            // A proper prefix of the delimiter, with or without its CRLF.
            2 => (0..boundary.len()).prop_map({
                let b = boundary.clone();
                move |k| [b"\r\n--".as_slice(), &b[..k]].concat()
            }),
            1 => (0..boundary.len()).prop_map({
                let b = boundary.clone();
                move |k| [b"--".as_slice(), &b[..k]].concat()
            }),
        ];
        proptest::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
    }

    fn test_part(boundary: Vec<u8>) -> impl Strategy<Value = TestPart> {
        (
            "[ -~\u{e9}\u{4e2d}]{0,12}",
            proptest::option::of("[ -~\u{e9}\u{4e2d}\u{1f600}]{0,12}"),
            proptest::option::of("[a-z]{1,8}/[a-z0-9.+-]{1,12}"),
            tricky_data(boundary),
            any::<bool>(),
        )
            .prop_map(|(name, filename, content_type, data, lowercase)| TestPart {
                name,
                filename,
                content_type,
                data,
                lowercase,
            })
    }

    fn render_part(p: &TestPart) -> Vec<u8> {
        let mut head = format!(
            "{}: form-data; name={}",
            if p.lowercase {
                "content-disposition"
            } else {
                "Content-Disposition"
            },
            quote(&p.name)
        );
        if let Some(f) = &p.filename {
            if f.is_ascii() {
                head += &format!("; filename={}", quote(f));
            } else {
                // An ASCII fallback, then filename* which must win.
                let fallback: String = f
                    .chars()
                    .map(|c| if c.is_ascii() { c } else { '_' })
                    .collect();
                head += &format!(
                    "; filename={}; filename*=UTF-8''{}",
                    quote(&fallback),
                    pct_encode(f)
                );
            }
        }
        head += "\r\n";
        if let Some(ct) = &p.content_type {
            head += &format!("Content-Type: {ct}\r\n");
        }
        head += "\r\n";
        [head.as_bytes(), &p.data].concat()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        memchr::memmem::find(haystack, needle).is_some()
    }

    fn body_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, Vec<TestPart>)> {
        "[0-9A-Za-z'()+_,./:=?-]{0,20}[0-9A-Za-z'()+_,./:=?-]"
            .prop_flat_map(|boundary: String| {
                let b = boundary.into_bytes();
                (
                    Just(b.clone()),
                    tricky_data(b.clone()),
                    proptest::collection::vec(test_part(b.clone()), 0..5),
                    "[ \t]{0,3}",
                    tricky_data(b),
                )
            })
            .prop_map(|(boundary, preamble, parts, padding, epilogue)| {
                let delimiter = [b"\r\n--".as_slice(), &boundary].concat();
                let dash_boundary = &delimiter[2..];
                let mut body = Vec::new();
                // A preamble must not start with or contain a delimiter.
                if !preamble.is_empty()
                    && !preamble.starts_with(dash_boundary)
                    && !contains(&preamble, &delimiter)
                {
                    body.extend_from_slice(&preamble);
                    body.extend_from_slice(b"\r\n");
                }
                // Part data must not contain the delimiter (a sender picks its boundary so).
                let parts: Vec<TestPart> = parts
                    .into_iter()
                    .filter(|p| !contains(&p.data, &delimiter))
                    .collect();
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        body.extend_from_slice(b"\r\n");
                    }
                    body.extend_from_slice(dash_boundary);
                    body.extend_from_slice(padding.as_bytes());
                    body.extend_from_slice(b"\r\n");
                    body.extend_from_slice(&render_part(p));
                }
                if !parts.is_empty() {
                    body.extend_from_slice(b"\r\n");
                }
                body.extend_from_slice(dash_boundary);
                body.extend_from_slice(b"--");
                body.extend_from_slice(padding.as_bytes());
                body.extend_from_slice(b"\r\n");
                body.extend_from_slice(&epilogue);
                (boundary, body, parts)
            })
    }

    fn expected_events(parts: &[TestPart]) -> Vec<Ev> {
        let mut events = Vec::new();
        for p in parts {
            events.push(Ev::Start(PartHeaders {
                name: Some(p.name.clone()),
                filename: p.filename.clone(),
                content_type: p.content_type.clone(),
            }));
            if !p.data.is_empty() {
                events.push(Ev::Data(p.data.clone()));
            }
            events.push(Ev::End);
        }
        events.push(Ev::Done);
        events
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// A body built from random parts parses back to the same parts for any split
        /// of the input into feeds.
        #[test]
        fn random_parts_round_trip_for_any_split(
            (boundary, body, parts) in body_strategy(),
            cut_seeds in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
        ) {
            let mut cuts: Vec<usize> = cut_seeds.iter().map(|i| i.index(body.len() + 1)).collect();
            cuts.sort_unstable();
            let limits = Limits::default();
            let want = (expected_events(&parts), Ok(()));
            prop_assert_eq!(&run_pieces(&boundary, &split_at(&body, &cuts), &limits), &want);
            prop_assert_eq!(&run_pieces(&boundary, &[&body], &limits), &want);
        }

        /// Byte-at-a-time feeding gives the same parts too.
        #[test]
        fn random_parts_round_trip_byte_by_byte((boundary, body, parts) in body_strategy()) {
            let cuts: Vec<usize> = (1..body.len()).collect();
            let got = run_pieces(&boundary, &split_at(&body, &cuts), &Limits::default());
            prop_assert_eq!(got, (expected_events(&parts), Ok(())));
        }

        /// Arbitrary bytes: no panic, and every split agrees with the whole.
        #[test]
        fn arbitrary_bytes_split_invariant(
            body in proptest::collection::vec(prop_oneof![any::<u8>(), Just(b'\r'), Just(b'\n'), Just(b'-'), Just(b'B')], 0..200),
            cut_seeds in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
        ) {
            let mut cuts: Vec<usize> = cut_seeds.iter().map(|i| i.index(body.len() + 1)).collect();
            cuts.sort_unstable();
            let limits = Limits { max_multipart_parts: 4, max_part_head_bytes: 64, ..Limits::default() };
            let whole = run_pieces(b"B", &[&body], &limits);
            prop_assert_eq!(run_pieces(b"B", &split_at(&body, &cuts), &limits), whole);
        }
    }
}
