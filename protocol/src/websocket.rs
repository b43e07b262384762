//! WebSocket (RFC 6455): the opening-handshake check and a sans-IO frame codec.
//!
//! # What this module does
//!
//! - [`check_handshake`] validates a client's opening handshake (RFC 6455 §4.2.1) from
//!   a parsed [`RequestHead`] and returns the `Sec-WebSocket-Accept` value
//!   ([`accept_key`]). The daemon then writes
//!   `HTTP/1.1 101 Switching Protocols`, `Upgrade: websocket`, `Connection: Upgrade`
//!   and `Sec-WebSocket-Accept: <value>` itself. On
//!   [`WebSocketError::UnsupportedVersion`] (status 426) the daemon MUST add
//!   `Sec-WebSocket-Version: 13` to its response (RFC 6455 §4.2.2 step 4): this module
//!   writes no responses.
//! - [`FrameDecoder`] is a push decoder for frames (§5.2). It **consumes and buffers**
//!   partial frames: every call either returns a complete [`Frame`] (and consumes only
//!   up to that frame's last byte, so the rest of `input` is the next frame), or
//!   consumes *all* of `input` and returns `None`. The caller never has to keep bytes
//!   around. The buffer is the frame's payload, so memory per connection is bounded by
//!   [`Limits::max_ws_frame_bytes`] (checked from the length field, before any payload
//!   byte is stored). The header is validated as soon as its bytes arrive: a frame
//!   with RSV bits, a reserved opcode, a wrong MASK bit or an oversized length fails
//!   before its payload is read.
//! - [`MessageAssembler`] turns frames into [`Message`]s (§5.4): it reassembles
//!   fragments, lets control frames through in the middle of a fragmented message,
//!   validates UTF-8 of text messages (incrementally, so invalid text fails on the
//!   fragment that carries it, not at the end of a long message) and of close reasons,
//!   checks close codes (§7.4), and bounds a message by
//!   [`Limits::max_ws_message_bytes`].
//! - [`encode_frame`], [`encode_header`] and [`encode_close`] write frames. A server
//!   passes `mask: None` (servers MUST NOT mask, §5.1); `Some(key)` exists to play the
//!   client in tests.
//!
//! Every frame-level error carries the close code to fail the connection with
//! ([`WebSocketError::close_code`]): 1002 protocol error, 1007 invalid payload data,
//! 1009 message too big. Errors are sticky: after one, the decoder and the assembler
//! return it again on every call.
//!
//! The fuzz property `props::websocket` (the `websocket` fuzz target, replayed by
//! `protocol/tests/corpus.rs`) checks that decoder and assembler give the same frames,
//! messages and errors however the stream is split, and that frames re-encode, masked
//! or not, to themselves.
//!
//! # What it deliberately does not do
//!
//! - **No extensions.** `permessage-deflate` (RFC 7692) and any other extension are not
//!   negotiated (`Sec-WebSocket-Extensions` is ignored), so RSV1-3 must be 0.
//! - **No subprotocol negotiation and no `Origin` check**: `Sec-WebSocket-Protocol` and
//!   `Origin` are policy, left to the daemon's route.
//! - **No close handshake or ping state machine**: answering a Close with a Close,
//!   answering Pings with Pongs, keep-alive pings and timeouts are the daemon's (time is
//!   an input; this crate reads no clock).
//! - **No `Host` check**: a missing `Host` in HTTP/1.1 is the head parser's business.
//! - **No WebSocket over HTTP/2** (RFC 8441) and no client-side handshake.
//! - **Minimal length encoding is not enforced on input** (§5.2 says senders MUST use
//!   it; accepting a longer encoding harms nobody). Our encoder always writes it.
//! - Close codes 1012-1014 (registered with IANA after RFC 6455) are treated as
//!   invalid like every other unassigned code in 1000-2999; valid received codes are
//!   exactly 1000-1003, 1007-1011 and 3000-4999.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::error::HttpError;
use crate::head::{Method, RequestHead, Version};
use crate::limits::Limits;

/// The GUID of RFC 6455 §1.3, appended to the client's key before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version we speak; sent back in `Sec-WebSocket-Version` with a 426.
pub const WEBSOCKET_VERSION: &str = "13";

/// RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Largest close reason that fits a control frame: 125 minus the 2-byte code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// Longest frame header: 2 fixed bytes + 8 bytes of 64-bit length + 4 bytes of mask.
const MAX_HEADER_LEN: usize = 14;

/// Capacity reserved up front for a frame's payload. A header may *claim* up to
/// `max_ws_frame_bytes`; reserving that before the bytes arrive would let a peer make
/// us allocate 16 MiB with 10 bytes. Beyond this the Vec grows as data actually comes.
const INITIAL_PAYLOAD_CAPACITY: u64 = 64 * 1024;

// ---------------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------------

/// RFC 6455 §1.3: "the server has to take the value (as present in the header field,
/// e.g., the base64-encoded \[RFC4648\] version minus any leading and trailing
/// whitespace) and concatenate this with the Globally Unique Identifier (GUID,
/// \[RFC4122\]) "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" in string form [...] A SHA-1
/// hash (160 bits) \[FIPS.180-3\], base64-encoded (see Section 4 of \[RFC4648\]), of this
/// concatenation is then returned in the server's handshake."
///
/// `sec_websocket_key` is the header value as received, already trimmed; it is not
/// validated here ([`check_handshake`] does that).
pub fn accept_key(sec_websocket_key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(sec_websocket_key);
    sha.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// RFC 6455 §4.2.1, Reading the Client's Opening Handshake:
///
/// ```text
/// 1.   An HTTP/1.1 or higher GET request [...]
/// 3.   An |Upgrade| header field containing the value "websocket",
///      treated as an ASCII case-insensitive value.
/// 4.   A |Connection| header field that includes the token "Upgrade",
///      treated as an ASCII case-insensitive value.
/// 5.   A |Sec-WebSocket-Key| header field with a base64-encoded (see
///      Section 4 of [RFC4648]) value that, when decoded, is 16 bytes in
///      length.
/// 6.   A |Sec-WebSocket-Version| header field, with a value of 13.
/// ```
///
/// §4.2.2: "If this version does not match a version understood by the server, the
/// server MUST abort the WebSocket handshake described in this section and instead
/// send an appropriate HTTP error code (such as 426 Upgrade Required) and a
/// |Sec-WebSocket-Version| header field indicating the version(s) the server is
/// capable of understanding."
///
/// Returns the `Sec-WebSocket-Accept` value. `Upgrade` and `Connection` are token lists
/// and may be split over several field lines (RFC 9110 §5.3); `Sec-WebSocket-Key` and
/// `Sec-WebSocket-Version` must appear exactly once (RFC 6455 §11.3.1, §11.3.5). A
/// missing or duplicated version, or any version but 13, is
/// [`WebSocketError::UnsupportedVersion`] (426): the daemon must then add
/// `Sec-WebSocket-Version: 13` to its response. Every other failure is a 400. Checks
/// run in the order above, so the first problem found is reported.
pub fn check_handshake(head: &RequestHead) -> Result<String, WebSocketError> {
    if head.method() != Method::Get {
        return Err(WebSocketError::MethodNotGet);
    }
    if head.version() != Version::Http11 {
        return Err(WebSocketError::NotHttp11);
    }
    let mut upgrade_websocket = false;
    let mut connection_upgrade = false;
    let mut version: Option<&[u8]> = None;
    let mut versions = 0usize;
    let mut key: Option<&[u8]> = None;
    let mut keys = 0usize;
    for (name, value) in head.headers() {
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade_websocket |= has_token(value, b"websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= has_token(value, b"upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            versions += 1;
            version = Some(trim_ows(value));
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            keys += 1;
            key = Some(trim_ows(value));
        }
    }
    if !upgrade_websocket {
        return Err(WebSocketError::MissingUpgrade);
    }
    if !connection_upgrade {
        return Err(WebSocketError::MissingConnectionUpgrade);
    }
    if versions != 1 || version != Some(WEBSOCKET_VERSION.as_bytes()) {
        return Err(WebSocketError::UnsupportedVersion);
    }
    let key = match key {
        Some(k) if keys == 1 => k,
        _ => return Err(WebSocketError::BadKey),
    };
    // 16 bytes encode to exactly 24 base64 characters; checking first keeps a huge
    // bogus value from being decoded at all.
    if key.len() != 24 || !matches!(BASE64.decode(key), Ok(raw) if raw.len() == 16) {
        return Err(WebSocketError::BadKey);
    }
    Ok(accept_key(key))
}

/// RFC 9110 §5.6.1: `#element => [ element ] *( OWS "," OWS [ element ] )`; tokens
/// compare case-insensitively here (RFC 6455 §4.2.1 items 3 and 4).
fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
}

/// RFC 9110 §5.6.3: `OWS = *( SP / HTAB )`.
fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &v[start..end]
}

// ---------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------

/// RFC 6455 §5.2:
///
/// ```text
/// Opcode:  4 bits
///    *  %x0 denotes a continuation frame
///    *  %x1 denotes a text frame
///    *  %x2 denotes a binary frame
///    *  %x3-7 are reserved for further non-control frames
///    *  %x8 denotes a connection close
///    *  %x9 denotes a ping
///    *  %xA denotes a pong
///    *  %xB-F are reserved for further control frames
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    /// The opcode for a 4-bit value, `None` for the reserved ones.
    pub fn from_u8(value: u8) -> Option<Opcode> {
        match value {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// §5.5: "Control frames are identified by opcodes where the most significant bit
    /// of the opcode is 1."
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// One decoded frame, payload already unmasked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: Opcode,
    pub payload: Vec<u8>,
}

/// Where the decoder is in the frame grammar: what it expects next.
#[derive(Debug)]
enum DecodeState {
    /// The 2..=14 header bytes; `have` of them are in `buf`.
    Header {
        buf: [u8; MAX_HEADER_LEN],
        have: usize,
    },
    /// `remaining` payload bytes; those received so far (unmasked) are in `payload`.
    Payload {
        fin: bool,
        opcode: Opcode,
        mask: Option<[u8; 4]>,
        remaining: u64,
        payload: Vec<u8>,
    },
}

impl DecodeState {
    fn header() -> Self {
        DecodeState::Header {
            buf: [0; MAX_HEADER_LEN],
            have: 0,
        }
    }
}

/// A parsed, validated frame header.
struct FrameHeader {
    fin: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    len: u64,
}

/// Push decoder for WebSocket frames (RFC 6455 §5.2). See the module docs for the
/// buffering contract.
#[derive(Debug)]
pub struct FrameDecoder {
    expect_masked: bool,
    max_frame: u64,
    state: DecodeState,
    error: Option<WebSocketError>,
}

impl FrameDecoder {
    /// `expect_masked = true` for a server decoding a client's frames (every frame
    /// must be masked), `false` for a client decoding a server's (none may be).
    pub fn new(limits: &Limits, expect_masked: bool) -> Self {
        FrameDecoder {
            expect_masked,
            max_frame: limits.max_ws_frame_bytes,
            state: DecodeState::header(),
            error: None,
        }
    }

    /// Decode from the front of `input`. Returns `(consumed, Some(frame))` when a frame
    /// is complete: `consumed` stops at its last byte and the rest of `input` belongs
    /// to the following frames (call again with `&input[consumed..]`). Returns
    /// `(input.len(), None)` when `input` ended inside a frame: those bytes are kept
    /// here, so call again with the next bytes only. Zero-length frames are returned as
    /// soon as their header is complete.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<Frame>), WebSocketError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let result = self.decode_inner(input);
        if let Err(e) = &result {
            self.error = Some(e.clone());
        }
        result
    }

    /// True between frames: no header or payload byte of a frame is buffered.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, DecodeState::Header { have: 0, .. })
    }

    fn decode_inner(&mut self, input: &[u8]) -> Result<(usize, Option<Frame>), WebSocketError> {
        let mut pos = 0;
        loop {
            match &mut self.state {
                DecodeState::Header { buf, have } => {
                    // The first two bytes say how long the header is.
                    if *have < 2 {
                        let take = (2 - *have).min(input.len() - pos);
                        buf[*have..*have + take].copy_from_slice(&input[pos..pos + take]);
                        *have += take;
                        pos += take;
                        if *have < 2 {
                            return Ok((pos, None));
                        }
                    }
                    let need = check_first_two(buf[0], buf[1], self.expect_masked)?;
                    if *have < need {
                        let take = (need - *have).min(input.len() - pos);
                        buf[*have..*have + take].copy_from_slice(&input[pos..pos + take]);
                        *have += take;
                        pos += take;
                        if *have < need {
                            return Ok((pos, None));
                        }
                    }
                    let h = parse_header(&buf[..need], self.max_frame)?;
                    if h.len == 0 {
                        self.state = DecodeState::header();
                        let frame = Frame {
                            fin: h.fin,
                            opcode: h.opcode,
                            payload: Vec::new(),
                        };
                        return Ok((pos, Some(frame)));
                    }
                    self.state = DecodeState::Payload {
                        fin: h.fin,
                        opcode: h.opcode,
                        mask: h.mask,
                        remaining: h.len,
                        // Lossless: min() with a small constant.
                        payload: Vec::with_capacity(h.len.min(INITIAL_PAYLOAD_CAPACITY) as usize),
                    };
                }
                DecodeState::Payload {
                    fin,
                    opcode,
                    mask,
                    remaining,
                    payload,
                } => {
                    let avail = input.len() - pos;
                    // Lossless: bounded by `avail`, a usize.
                    let take = (*remaining).min(avail as u64) as usize;
                    let start = payload.len();
                    payload.extend_from_slice(&input[pos..pos + take]);
                    if let Some(key) = mask {
                        apply_mask(&mut payload[start..], *key, start);
                    }
                    pos += take;
                    *remaining -= take as u64;
                    if *remaining > 0 {
                        return Ok((pos, None));
                    }
                    let frame = Frame {
                        fin: *fin,
                        opcode: *opcode,
                        payload: std::mem::take(payload),
                    };
                    self.state = DecodeState::header();
                    return Ok((pos, Some(frame)));
                }
            }
        }
    }
}

/// Validates the first two header bytes and returns the full header length.
///
/// RFC 6455 §5.2:
///
/// ```text
///  0                   1
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
/// +-+-+-+-+-------+-+-------------+-------------------------------+
/// |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
/// |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
/// |N|V|V|V|       |S|             |   (if payload len==126/127)   |
/// | |1|2|3|       |K|             |                               |
/// +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
/// ```
///
/// "RSV1, RSV2, RSV3: 1 bit each. MUST be 0 unless an extension is negotiated that
/// defines meanings for non-zero values. If a nonzero value is received and none of
/// the negotiated extensions defines the meaning of such a nonzero value, the receiving
/// endpoint MUST _Fail the WebSocket Connection_."
///
/// "If an unknown opcode is received, the receiving endpoint MUST _Fail the WebSocket
/// Connection_."
///
/// §5.5: "Control frames themselves MUST NOT be fragmented."
///
/// §5.1: "The server MUST close the connection upon receiving a frame that is not
/// masked. [...] A client MUST close a connection if it detects a masked frame."
fn check_first_two(b0: u8, b1: u8, expect_masked: bool) -> Result<usize, WebSocketError> {
    if b0 & 0x70 != 0 {
        return Err(WebSocketError::ReservedBits);
    }
    let opcode = Opcode::from_u8(b0 & 0x0F).ok_or(WebSocketError::ReservedOpcode(b0 & 0x0F))?;
    let fin = b0 & 0x80 != 0;
    if opcode.is_control() && !fin {
        return Err(WebSocketError::FragmentedControlFrame);
    }
    let masked = b1 & 0x80 != 0;
    if masked != expect_masked {
        return Err(if expect_masked {
            WebSocketError::UnmaskedFrame
        } else {
            WebSocketError::MaskedFrame
        });
    }
    let ext = match b1 & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    Ok(2 + ext + if masked { 4 } else { 0 })
}

/// Parses a complete header (already checked by [`check_first_two`]).
///
/// RFC 6455 §5.2: "Payload length: 7 bits, 7+16 bits, or 7+64 bits. The length of the
/// "Payload data", in bytes: if 0-125, that is the payload length. If 126, the
/// following 2 bytes interpreted as a 16-bit unsigned integer are the payload length.
/// If 127, the following 8 bytes interpreted as a 64-bit unsigned integer (the most
/// significant bit MUST be 0) are the payload length."
///
/// §5.5: "All control frames MUST have a payload length of 125 bytes or less".
///
/// §10.4: "Implementations that have implementation- and/or platform-specific
/// limitations regarding the frame size or total message size after reassembly from
/// multiple frames MUST protect themselves against exceeding those limits."
fn parse_header(h: &[u8], max_frame: u64) -> Result<FrameHeader, WebSocketError> {
    let fin = h[0] & 0x80 != 0;
    // Checked in check_first_two; a reserved value cannot get here.
    let opcode = Opcode::from_u8(h[0] & 0x0F).ok_or(WebSocketError::ReservedOpcode(h[0] & 0x0F))?;
    let (len, rest) = match h[1] & 0x7F {
        126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), &h[4..]),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[2..10]);
            (u64::from_be_bytes(b), &h[10..])
        }
        n => (u64::from(n), &h[2..]),
    };
    if len >> 63 != 0 {
        return Err(WebSocketError::LengthOverflow);
    }
    if opcode.is_control() && len > MAX_CONTROL_PAYLOAD as u64 {
        return Err(WebSocketError::ControlFrameTooLong(len));
    }
    if len > max_frame {
        return Err(WebSocketError::FrameTooBig {
            len,
            max: max_frame,
        });
    }
    let mask = if rest.len() == 4 {
        Some([rest[0], rest[1], rest[2], rest[3]])
    } else {
        None
    };
    Ok(FrameHeader {
        fin,
        opcode,
        mask,
        len,
    })
}

/// RFC 6455 §5.3: "Octet i of the transformed data ("transformed-octet-i") is the XOR
/// of octet i of the original data ("original-octet-i") with octet at index i modulo 4
/// of the masking key ("masking-key-octet-j"):
///
/// ```text
///   j                   = i MOD 4
///   transformed-octet-i = original-octet-i XOR masking-key-octet-j
/// ```
///
/// `offset` is the index in the payload of `data[0]`, so a payload can be (un)masked
/// in pieces as it arrives. Eight bytes at a time so the compiler can vectorise.
fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let mut k = key;
    k.rotate_left(offset % 4);
    let wide = [k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]];
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        for (b, m) in chunk.iter_mut().zip(wide.iter()) {
            *b ^= m;
        }
    }
    // The remainder starts at a multiple of 8, hence of 4: the rotation still holds.
    for (b, m) in chunks.into_remainder().iter_mut().zip(k.iter().cycle()) {
        *b ^= m;
    }
}

/// Appends a frame header for a payload of `payload_len` bytes: the minimal length
/// encoding (§5.2 "the minimal number of bytes MUST be used to encode the length"),
/// and the masking key if `mask` is given. Lets the daemon send a large payload from
/// its own buffer without copying it here. With a mask, the caller must mask the
/// payload itself; [`encode_frame`] does it for you.
pub fn encode_header(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: Opcode,
    payload_len: u64,
    mask: Option<[u8; 4]>,
) {
    debug_assert!(
        !opcode.is_control() || (fin && payload_len <= MAX_CONTROL_PAYLOAD as u64),
        "control frames must be final and carry at most 125 bytes (RFC 6455 §5.5)"
    );
    debug_assert!(
        payload_len >> 63 == 0,
        "payload length needs 63 bits at most"
    );
    out.push(if fin { 0x80 } else { 0 } | opcode.as_u8());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if payload_len <= MAX_CONTROL_PAYLOAD as u64 {
        // Lossless: <= 125.
        out.push(mask_bit | payload_len as u8);
    } else if let Ok(len16) = u16::try_from(payload_len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&len16.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&payload_len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// Appends a whole frame. Servers pass `mask: None` (§5.1: "A server MUST NOT mask any
/// frames that it sends to the client"); a client (tests) passes a key, which should
/// be random (§5.3). Control frames must be final and at most 125 bytes (checked by a
/// `debug_assert!`: that is a bug in the caller, not a peer's fault).
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    out.reserve(MAX_HEADER_LEN + payload.len());
    encode_header(out, fin, opcode, payload.len() as u64, mask);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// Appends a Close frame with `code` and `reason`.
///
/// §5.5.1: "If there is a body, the first two bytes of the body MUST be a 2-byte
/// unsigned integer (in network byte order) representing a status code with value
/// /code/ defined in Section 7.4. Following the 2-byte integer, the body MAY contain
/// UTF-8-encoded data with value /reason/".
///
/// A reason longer than [`MAX_CLOSE_REASON`] (123) bytes is cut at the last UTF-8
/// character boundary that fits, so the frame stays a legal control frame. `code` must
/// be one that may be sent ([`is_valid_close_code`]; `debug_assert!`ed). A Close frame
/// without a body is `encode_frame(out, true, Opcode::Close, &[], mask)`.
pub fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str, mask: Option<[u8; 4]>) {
    debug_assert!(
        is_valid_close_code(code),
        "close code {code} may not be sent"
    );
    let mut cut = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut body = [0u8; MAX_CONTROL_PAYLOAD];
    body[..2].copy_from_slice(&code.to_be_bytes());
    body[2..2 + cut].copy_from_slice(&reason.as_bytes()[..cut]);
    encode_frame(out, true, Opcode::Close, &body[..2 + cut], mask);
}

/// Close codes (§7.4.1) this module uses when it fails a connection.
pub mod close_code {
    /// 1000: normal closure.
    pub const NORMAL: u16 = 1000;
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: u16 = 1001;
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// 1007: data inconsistent with the message type (non-UTF-8 text).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// 1009: message too big to process.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// 1011: unexpected condition on the server.
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// May `code` appear in a Close frame? RFC 6455 §7.4.1 defines 1000-1003 and 1007-1011
/// for senders; "1004 Reserved"; 1005, 1006 and 1015 are "designated for use in
/// applications expecting a status code to indicate" a missing code, an abnormal close
/// and a TLS failure, and "MUST NOT be set as a status code in a Close control frame
/// by an endpoint". §7.4.2: "0-999: Status codes in the range 0-999 are not used";
/// 1000-2999 are reserved for this protocol and its extensions (unassigned ones are
/// invalid); "3000-3999" are for libraries and frameworks and "4000-4999" for private
/// use. Anything else is invalid.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

// ---------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------

/// A complete message, or a control frame, as the application sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// `None`: a Close frame without a body (the peer gave no code; reply 1000 or an
    /// empty Close). `Some((code, reason))`: a valid code and a UTF-8 reason.
    Close(Option<(u16, String)>),
}

/// Which data message a fragmented message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DataKind {
    Text,
    Binary,
}

/// Turns frames (from [`FrameDecoder`]) into [`Message`]s.
///
/// RFC 6455 §5.4: "A fragmented message consists of a single frame with the FIN bit
/// clear and an opcode other than 0, followed by zero or more frames with the FIN bit
/// clear and the opcode set to 0, and terminated by a single frame with the FIN bit set
/// and an opcode of 0." "Control frames (see Section 5.5) MAY be injected in the middle
/// of a fragmented message." "The fragments of one message MUST NOT be interleaved
/// between the fragments of another message unless an extension has been negotiated".
#[derive(Debug)]
pub struct MessageAssembler {
    max_message: u64,
    /// The kind of the fragmented message in progress, if any.
    open: Option<DataKind>,
    /// The fragments of the open message so far.
    buf: Vec<u8>,
    /// For an open text message: `buf[..utf8_checked]` is known valid UTF-8 and what
    /// follows is at most an incomplete trailing sequence (§5.6: "a particular text
    /// frame might include a partial UTF-8 sequence; however, the whole message MUST
    /// contain valid UTF-8").
    utf8_checked: usize,
    error: Option<WebSocketError>,
}

impl MessageAssembler {
    /// An assembler between messages, bounded by `limits.max_ws_message_bytes`.
    pub fn new(limits: &Limits) -> Self {
        MessageAssembler {
            max_message: limits.max_ws_message_bytes,
            open: None,
            buf: Vec::new(),
            utf8_checked: 0,
            error: None,
        }
    }

    /// True while a fragmented message has started and not yet finished.
    pub fn is_in_message(&self) -> bool {
        self.open.is_some()
    }

    /// Feed one frame. Returns a message when one is complete (a final data frame, or
    /// any control frame, which passes straight through even mid-message), `None` when
    /// a non-final fragment was absorbed.
    pub fn handle_frame(&mut self, frame: Frame) -> Result<Option<Message>, WebSocketError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let result = self.handle_inner(frame);
        if let Err(e) = &result {
            self.error = Some(e.clone());
        }
        result
    }

    fn handle_inner(&mut self, frame: Frame) -> Result<Option<Message>, WebSocketError> {
        let Frame {
            fin,
            opcode,
            payload,
        } = frame;
        if opcode.is_control() {
            // Re-checked here because a Frame can be built by hand.
            if !fin {
                return Err(WebSocketError::FragmentedControlFrame);
            }
            if payload.len() > MAX_CONTROL_PAYLOAD {
                return Err(WebSocketError::ControlFrameTooLong(payload.len() as u64));
            }
        }
        match opcode {
            Opcode::Ping => Ok(Some(Message::Ping(payload))),
            Opcode::Pong => Ok(Some(Message::Pong(payload))),
            Opcode::Close => parse_close(&payload).map(|c| Some(Message::Close(c))),
            Opcode::Text | Opcode::Binary => {
                if self.open.is_some() {
                    return Err(WebSocketError::ExpectedContinuation);
                }
                self.check_size(0, payload.len())?;
                let kind = if opcode == Opcode::Text {
                    DataKind::Text
                } else {
                    DataKind::Binary
                };
                if fin {
                    // Unfragmented: no copy into `buf`.
                    return finish(kind, payload).map(Some);
                }
                self.open = Some(kind);
                self.buf = payload;
                self.utf8_checked = 0;
                self.check_partial_utf8()?;
                Ok(None)
            }
            Opcode::Continuation => {
                let Some(kind) = self.open else {
                    return Err(WebSocketError::UnexpectedContinuation);
                };
                self.check_size(self.buf.len(), payload.len())?;
                self.buf.extend_from_slice(&payload);
                self.check_partial_utf8()?;
                if !fin {
                    return Ok(None);
                }
                self.open = None;
                self.utf8_checked = 0;
                finish(kind, std::mem::take(&mut self.buf)).map(Some)
            }
        }
    }

    /// §10.4: protect against messages larger than we are willing to hold.
    fn check_size(&self, have: usize, more: usize) -> Result<(), WebSocketError> {
        let total = (have as u64).saturating_add(more as u64);
        if total > self.max_message {
            return Err(WebSocketError::MessageTooBig {
                max: self.max_message,
            });
        }
        Ok(())
    }

    /// Fail fast on invalid UTF-8 in an open text message; only the bytes not yet
    /// checked are looked at (at most 3 bytes are looked at twice), so this is O(n)
    /// over the whole message.
    fn check_partial_utf8(&mut self) -> Result<(), WebSocketError> {
        if self.open != Some(DataKind::Text) {
            return Ok(());
        }
        match std::str::from_utf8(&self.buf[self.utf8_checked..]) {
            Ok(_) => self.utf8_checked = self.buf.len(),
            // error_len() == None: the input ended inside a sequence that may still
            // complete with the next fragment.
            Err(e) if e.error_len().is_none() => self.utf8_checked += e.valid_up_to(),
            Err(_) => return Err(WebSocketError::InvalidUtf8),
        }
        Ok(())
    }
}

/// §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that the
/// byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the
/// WebSocket Connection_."
fn finish(kind: DataKind, payload: Vec<u8>) -> Result<Message, WebSocketError> {
    match kind {
        DataKind::Binary => Ok(Message::Binary(payload)),
        DataKind::Text => String::from_utf8(payload)
            .map(Message::Text)
            .map_err(|_| WebSocketError::InvalidUtf8),
    }
}

/// §5.5.1: "The Close frame MAY contain a body [...]. If there is a body, the first two
/// bytes of the body MUST be a 2-byte unsigned integer (in network byte order)
/// representing a status code [...]. Following the 2-byte integer, the body MAY contain
/// UTF-8-encoded data with value /reason/". So a 1-byte body is a protocol error, and
/// the code must be one that may be sent ([`is_valid_close_code`]).
fn parse_close(payload: &[u8]) -> Result<Option<(u16, String)>, WebSocketError> {
    match payload {
        [] => Ok(None),
        [_] => Err(WebSocketError::CloseTooShort),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_close_code(code) {
                return Err(WebSocketError::InvalidCloseCode(code));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| WebSocketError::InvalidCloseReason)?;
            Ok(Some((code, reason.to_owned())))
        }
    }
}

// ---------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------

/// Everything that can go wrong, by phase:
///
/// - **handshake** errors are answered with an HTTP response (`status()`: 400, or 426
///   for the version, with `Sec-WebSocket-Version: 13` added by the daemon). The
///   request itself was well framed, so `must_close()` is false; `close_code()` is
///   `None`.
/// - **frame** errors happen after the upgrade: the daemon fails the WebSocket
///   connection (§7.1.7) by sending a Close with `close_code()` (1002, 1007 or 1009)
///   and closing. `must_close()` is true; `status()` (400, or 413 for size) only
///   matters for logs and metrics since no HTTP response can be sent any more.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebSocketError {
    // --- handshake ---
    #[error("a WebSocket handshake must be a GET request; send GET with the Upgrade headers")]
    MethodNotGet,
    #[error("a WebSocket handshake needs HTTP/1.1; send the request as HTTP/1.1")]
    NotHttp11,
    #[error("the Upgrade header must include \"websocket\"; send Upgrade: websocket")]
    MissingUpgrade,
    #[error("the Connection header must include \"Upgrade\"; send Connection: Upgrade")]
    MissingConnectionUpgrade,
    #[error("only WebSocket version 13 is supported; send exactly one Sec-WebSocket-Version: 13")]
    UnsupportedVersion,
    #[error(
        "Sec-WebSocket-Key must be one header holding 16 random bytes in base64 (24 characters); send a fresh key"
    )]
    BadKey,

    // --- frames: 1002 protocol error ---
    #[error("RSV1-3 must be 0: no WebSocket extension is negotiated; send frames without extension bits")]
    ReservedBits,
    #[error(
        "opcode {0:#x} is reserved; use 0x0-0x2 for data frames and 0x8-0xA for control frames"
    )]
    ReservedOpcode(u8),
    #[error("control frames must not be fragmented; send Close, Ping and Pong with FIN set")]
    FragmentedControlFrame,
    #[error("a control frame carries at most 125 bytes, this one {0}; send a shorter payload")]
    ControlFrameTooLong(u64),
    #[error("the 64-bit payload length must have its most significant bit clear")]
    LengthOverflow,
    #[error("frames from a client must be masked; set the MASK bit and mask the payload")]
    UnmaskedFrame,
    #[error("frames from a server must not be masked")]
    MaskedFrame,
    #[error("continuation frame without a message in progress; start messages with a text or binary frame")]
    UnexpectedContinuation,
    #[error(
        "new text or binary frame while a fragmented message is open; finish it with continuation frames first"
    )]
    ExpectedContinuation,
    #[error("a Close body is empty or at least 2 bytes (a status code); this one is 1 byte")]
    CloseTooShort,
    #[error("close code {0} may not be sent; use 1000-1003, 1007-1011 or 3000-4999")]
    InvalidCloseCode(u16),

    // --- frames: 1007 invalid payload data ---
    #[error("a text message must be valid UTF-8; send UTF-8 text or use a binary message")]
    InvalidUtf8,
    #[error("a close reason must be valid UTF-8")]
    InvalidCloseReason,

    // --- frames: 1009 message too big ---
    #[error("frame payload of {len} bytes exceeds the limit of {max}; send smaller frames")]
    FrameTooBig { len: u64, max: u64 },
    #[error("message exceeds the limit of {max} bytes; send smaller messages")]
    MessageTooBig { max: u64 },
}

impl WebSocketError {
    /// True for errors of the opening handshake (answered with HTTP).
    pub fn is_handshake(&self) -> bool {
        matches!(
            self,
            WebSocketError::MethodNotGet
                | WebSocketError::NotHttp11
                | WebSocketError::MissingUpgrade
                | WebSocketError::MissingConnectionUpgrade
                | WebSocketError::UnsupportedVersion
                | WebSocketError::BadKey
        )
    }

    /// The close code (§7.4.1) to fail the connection with, for frame-level errors;
    /// `None` for handshake errors (there is no WebSocket connection yet).
    pub fn close_code(&self) -> Option<u16> {
        use WebSocketError::*;
        match self {
            MethodNotGet
            | NotHttp11
            | MissingUpgrade
            | MissingConnectionUpgrade
            | UnsupportedVersion
            | BadKey => None,
            ReservedBits
            | ReservedOpcode(_)
            | FragmentedControlFrame
            | ControlFrameTooLong(_)
            | LengthOverflow
            | UnmaskedFrame
            | MaskedFrame
            | UnexpectedContinuation
            | ExpectedContinuation
            | CloseTooShort
            | InvalidCloseCode(_) => Some(close_code::PROTOCOL_ERROR),
            InvalidUtf8 | InvalidCloseReason => Some(close_code::INVALID_PAYLOAD),
            FrameTooBig { .. } | MessageTooBig { .. } => Some(close_code::MESSAGE_TOO_BIG),
        }
    }
}

impl HttpError for WebSocketError {
    fn status(&self) -> u16 {
        match self {
            WebSocketError::UnsupportedVersion => 426,
            WebSocketError::FrameTooBig { .. } | WebSocketError::MessageTooBig { .. } => 413,
            _ => 400,
        }
    }

    fn code(&self) -> &'static str {
        use WebSocketError::*;
        match self {
            MethodNotGet => "websocket_not_get",
            NotHttp11 => "websocket_not_http11",
            MissingUpgrade => "websocket_missing_upgrade",
            MissingConnectionUpgrade => "websocket_missing_connection_upgrade",
            UnsupportedVersion => "websocket_version",
            BadKey => "websocket_bad_key",
            _ => match self.close_code() {
                Some(close_code::INVALID_PAYLOAD) => "websocket_invalid_payload",
                Some(close_code::MESSAGE_TOO_BIG) => "websocket_too_big",
                _ => "websocket_protocol_error",
            },
        }
    }

    fn must_close(&self) -> bool {
        !self.is_handshake()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::{parse_request_head, Status};
    use proptest::prelude::*;

    // ----- helpers --------------------------------------------------------------

    fn head(raw: &str) -> RequestHead {
        let mut h = RequestHead::new();
        match parse_request_head(raw.as_bytes(), &Limits::default(), &mut h) {
            Ok(Status::Complete(n)) => assert_eq!(n, raw.len()),
            Ok(Status::Partial) => panic!("test head is incomplete"),
            Err(e) => panic!("test head does not parse: {e}"),
        }
        h
    }

    /// A handshake with `extra` header lines (each ending in CRLF) after Host.
    fn handshake(request_line: &str, extra: &str) -> RequestHead {
        head(&format!(
            "{request_line}\r\nHost: example.com\r\n{extra}\r\n"
        ))
    }

    const GOOD: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
                        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                        Sec-WebSocket-Version: 13\r\n";

    /// A raw frame header with a chosen (possibly non-minimal) length encoding:
    /// `ext` is 0 (7-bit), 2 (16-bit) or 8 (64-bit).
    fn raw_frame(b0: u8, len: u64, ext: usize, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let m = if mask.is_some() { 0x80 } else { 0 };
        let mut v = vec![b0];
        match ext {
            0 => v.push(m | len as u8),
            2 => {
                v.push(m | 126);
                v.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                v.push(m | 127);
                v.extend_from_slice(&len.to_be_bytes());
            }
        }
        if let Some(k) = mask {
            v.extend_from_slice(&k);
            let start = v.len();
            v.extend_from_slice(payload);
            apply_mask(&mut v[start..], k, 0);
        } else {
            v.extend_from_slice(payload);
        }
        v
    }

    /// Feeds `bytes` in pieces of `step` bytes (the last may be shorter) and collects
    /// every frame. Checks the consumption contract on the way.
    fn decode_in_steps(
        limits: &Limits,
        masked: bool,
        bytes: &[u8],
        step: usize,
    ) -> Result<Vec<Frame>, WebSocketError> {
        let mut dec = FrameDecoder::new(limits, masked);
        let mut frames = Vec::new();
        for piece in bytes.chunks(step.max(1)) {
            let mut rest = piece;
            loop {
                let (n, frame) = dec.decode(rest)?;
                assert!(n <= rest.len());
                rest = &rest[n..];
                match frame {
                    Some(f) => frames.push(f),
                    None => {
                        assert!(rest.is_empty(), "None must mean all input was consumed");
                        break;
                    }
                }
                if rest.is_empty() {
                    break;
                }
            }
        }
        Ok(frames)
    }

    fn frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Frame {
        Frame {
            fin,
            opcode,
            payload: payload.to_vec(),
        }
    }

    /// The three ways of style.md §8: whole, one byte at a time, and with trailing
    /// bytes that must stay unconsumed.
    fn check_frames(masked: bool, bytes: &[u8], expected: &[Frame]) {
        let limits = Limits::default();
        assert_eq!(
            decode_in_steps(&limits, masked, bytes, bytes.len()).unwrap(),
            expected,
            "whole"
        );
        assert_eq!(
            decode_in_steps(&limits, masked, bytes, 1).unwrap(),
            expected,
            "byte at a time"
        );
        assert_eq!(
            decode_in_steps(&limits, masked, bytes, 7).unwrap(),
            expected,
            "7-byte pieces"
        );
        // Trailing bytes after the last frame are not consumed.
        let mut dec = FrameDecoder::new(&limits, masked);
        let mut input = bytes.to_vec();
        input.extend_from_slice(b"\xff\xfftrailing");
        let mut pos = 0;
        for want in expected {
            let (n, got) = dec.decode(&input[pos..]).unwrap();
            assert_eq!(got.as_ref(), Some(want));
            pos += n;
        }
        assert_eq!(pos, bytes.len(), "trailing bytes must stay unconsumed");
        assert!(dec.is_idle());
    }

    fn check_frame_error(limits: &Limits, masked: bool, bytes: &[u8], want: WebSocketError) {
        for step in [bytes.len(), 1] {
            let got = decode_in_steps(limits, masked, bytes, step).unwrap_err();
            assert_eq!(got, want, "step {step}");
        }
    }

    // ----- handshake --------------------------------------------------------------

    #[test]
    fn rfc6455_section_1_3_sample_key() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn handshake_accepts_rfc_example() {
        let h = handshake("GET /chat HTTP/1.1", GOOD);
        assert_eq!(check_handshake(&h).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn handshake_tokens_are_case_insensitive_lists() {
        let h = handshake(
            "GET /chat HTTP/1.1",
            "Upgrade: foo/2, WebSocket\r\nConnection: keep-alive, UPGRADE\r\n\
             sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version:13\r\n",
        );
        assert_eq!(check_handshake(&h).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn handshake_connection_over_two_field_lines() {
        let h = handshake(
            "GET / HTTP/1.1",
            "Connection: keep-alive\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        );
        assert!(check_handshake(&h).is_ok());
    }

    macro_rules! handshake_err {
        ($($name:ident: $line:expr, $extra:expr => $err:expr, $status:expr;)*) => {$(
            #[test]
            fn $name() {
                let h = handshake($line, &$extra);
                let e = check_handshake(&h).unwrap_err();
                assert_eq!(e, $err);
                assert_eq!(e.status(), $status);
                assert!(!e.must_close());
                assert_eq!(e.close_code(), None);
                assert!(e.is_handshake());
            }
        )*};
    }

    const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    const UPG: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
    const V13: &str = "Sec-WebSocket-Version: 13\r\n";

    handshake_err! {
        handshake_rejects_post: "POST /chat HTTP/1.1", GOOD => WebSocketError::MethodNotGet, 400;
        handshake_rejects_head: "HEAD /chat HTTP/1.1", GOOD => WebSocketError::MethodNotGet, 400;
        handshake_rejects_http10: "GET /chat HTTP/1.0", GOOD => WebSocketError::NotHttp11, 400;
        handshake_rejects_missing_upgrade: "GET / HTTP/1.1",
            format!("Connection: Upgrade\r\n{KEY}{V13}") => WebSocketError::MissingUpgrade, 400;
        handshake_rejects_other_upgrade: "GET / HTTP/1.1",
            format!("Upgrade: h2c\r\nConnection: Upgrade\r\n{KEY}{V13}") => WebSocketError::MissingUpgrade, 400;
        handshake_rejects_upgrade_substring: "GET / HTTP/1.1",
            format!("Upgrade: websockets\r\nConnection: Upgrade\r\n{KEY}{V13}") => WebSocketError::MissingUpgrade, 400;
        handshake_rejects_missing_connection: "GET / HTTP/1.1",
            format!("Upgrade: websocket\r\n{KEY}{V13}") => WebSocketError::MissingConnectionUpgrade, 400;
        handshake_rejects_connection_without_upgrade: "GET / HTTP/1.1",
            format!("Upgrade: websocket\r\nConnection: keep-alive\r\n{KEY}{V13}") => WebSocketError::MissingConnectionUpgrade, 400;
        handshake_rejects_version_8: "GET / HTTP/1.1",
            format!("{UPG}{KEY}Sec-WebSocket-Version: 8\r\n") => WebSocketError::UnsupportedVersion, 426;
        handshake_rejects_missing_version: "GET / HTTP/1.1",
            format!("{UPG}{KEY}") => WebSocketError::UnsupportedVersion, 426;
        handshake_rejects_version_list: "GET / HTTP/1.1",
            format!("{UPG}{KEY}Sec-WebSocket-Version: 13, 8\r\n") => WebSocketError::UnsupportedVersion, 426;
        handshake_rejects_duplicate_version: "GET / HTTP/1.1",
            format!("{UPG}{KEY}{V13}{V13}") => WebSocketError::UnsupportedVersion, 426;
        handshake_rejects_missing_key: "GET / HTTP/1.1",
            format!("{UPG}{V13}") => WebSocketError::BadKey, 400;
        handshake_rejects_duplicate_key: "GET / HTTP/1.1",
            format!("{UPG}{V13}{KEY}{KEY}") => WebSocketError::BadKey, 400;
        handshake_rejects_key_not_base64: "GET / HTTP/1.1",
            format!("{UPG}{V13}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!!\r\n") => WebSocketError::BadKey, 400;
        handshake_rejects_key_of_15_bytes: "GET / HTTP/1.1",
            format!("{UPG}{V13}Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n") => WebSocketError::BadKey, 400;
        handshake_rejects_key_of_17_bytes: "GET / HTTP/1.1",
            format!("{UPG}{V13}Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n") => WebSocketError::BadKey, 400;
        handshake_rejects_key_without_padding: "GET / HTTP/1.1",
            format!("{UPG}{V13}Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA\r\n") => WebSocketError::BadKey, 400;
        handshake_rejects_empty_key: "GET / HTTP/1.1",
            format!("{UPG}{V13}Sec-WebSocket-Key:\r\n") => WebSocketError::BadKey, 400;
    }

    #[test]
    fn version_error_tells_the_client_to_send_13() {
        let e = WebSocketError::UnsupportedVersion;
        assert!(e.to_string().contains("Sec-WebSocket-Version: 13"));
        assert_eq!(e.code(), "websocket_version");
    }

    // ----- frame decoding: RFC 6455 §5.7 examples and other valid input ------------

    const HELLO_MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    macro_rules! frames_ok {
        ($($name:ident: masked = $m:expr, $bytes:expr => $frames:expr;)*) => {$(
            #[test]
            fn $name() {
                let bytes: Vec<u8> = $bytes;
                let frames: Vec<Frame> = $frames;
                check_frames($m, &bytes, &frames);
            }
        )*};
    }

    frames_ok! {
        rfc_5_7_single_frame_unmasked_text: masked = false,
            vec![0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
            => vec![frame(true, Opcode::Text, b"Hello")];
        rfc_5_7_single_frame_masked_text: masked = true,
            vec![0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
            => vec![frame(true, Opcode::Text, b"Hello")];
        rfc_5_7_fragmented_unmasked_text: masked = false,
            vec![0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]
            => vec![frame(false, Opcode::Text, b"Hel"), frame(true, Opcode::Continuation, b"lo")];
        rfc_5_7_unmasked_ping: masked = false,
            vec![0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
            => vec![frame(true, Opcode::Ping, b"Hello")];
        rfc_5_7_masked_pong: masked = true,
            vec![0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
            => vec![frame(true, Opcode::Pong, b"Hello")];
        rfc_5_7_256_bytes_binary: masked = false,
            [&[0x82u8, 0x7E, 0x01, 0x00][..], &[0xAB; 256]].concat()
            => vec![frame(true, Opcode::Binary, &[0xAB; 256])];
        rfc_5_7_64k_binary: masked = false,
            [&[0x82u8, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0][..], &vec![0x5A; 65536]].concat()
            => vec![frame(true, Opcode::Binary, &vec![0x5A; 65536])];
        empty_text_frame: masked = true,
            vec![0x81, 0x80, 1, 2, 3, 4]
            => vec![frame(true, Opcode::Text, b"")];
        empty_close_then_text: masked = false,
            vec![0x88, 0x00, 0x81, 0x01, b'x']
            => vec![frame(true, Opcode::Close, b""), frame(true, Opcode::Text, b"x")];
        non_minimal_16_bit_length_accepted: masked = true,
            raw_frame(0x82, 5, 2, Some(HELLO_MASK), b"abcde")
            => vec![frame(true, Opcode::Binary, b"abcde")];
        non_minimal_64_bit_length_accepted: masked = false,
            raw_frame(0x82, 3, 8, None, b"abc")
            => vec![frame(true, Opcode::Binary, b"abc")];
        non_minimal_length_on_control_frame_accepted: masked = false,
            raw_frame(0x89, 2, 2, None, b"hi")
            => vec![frame(true, Opcode::Ping, b"hi")];
        control_frame_of_125_bytes: masked = true,
            raw_frame(0x8A, 125, 0, Some(HELLO_MASK), &[7; 125])
            => vec![frame(true, Opcode::Pong, &[7; 125])];
        mask_phase_survives_odd_splits: masked = true,
            raw_frame(0x82, 37, 0, Some([0xde, 0xad, 0xbe, 0xef]), &(0..37).collect::<Vec<u8>>())
            => vec![frame(true, Opcode::Binary, &(0..37).collect::<Vec<u8>>())];
    }

    #[test]
    fn partial_frames_are_consumed_and_buffered() {
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mut dec = FrameDecoder::new(&Limits::default(), true);
        assert_eq!(dec.decode(&[]).unwrap(), (0, None));
        assert_eq!(dec.decode(&bytes[..4]).unwrap(), (4, None));
        assert!(!dec.is_idle());
        assert_eq!(dec.decode(&bytes[4..8]).unwrap(), (4, None));
        let (n, f) = dec.decode(&bytes[8..]).unwrap();
        assert_eq!((n, f), (3, Some(frame(true, Opcode::Text, b"Hello"))));
        assert!(dec.is_idle());
    }

    #[test]
    fn frame_at_exactly_the_limit_is_accepted() {
        let limits = Limits {
            max_ws_frame_bytes: 10,
            ..Limits::default()
        };
        let bytes = raw_frame(0x82, 10, 0, None, &[1; 10]);
        let frames = decode_in_steps(&limits, false, &bytes, 1).unwrap();
        assert_eq!(frames, vec![frame(true, Opcode::Binary, &[1; 10])]);
    }

    // ----- frame decoding: errors --------------------------------------------------

    macro_rules! frames_err {
        ($($name:ident: masked = $m:expr, $bytes:expr => $err:expr;)*) => {$(
            #[test]
            fn $name() {
                let bytes: Vec<u8> = $bytes;
                let want: WebSocketError = $err;
                check_frame_error(&Limits::default(), $m, &bytes, want.clone());
                assert_eq!(want.close_code(), Some(close_code::PROTOCOL_ERROR));
                assert!(want.must_close());
            }
        )*};
    }

    frames_err! {
        rsv1_rejected: masked = false, vec![0xC1, 0x00] => WebSocketError::ReservedBits;
        rsv2_rejected: masked = false, vec![0xA1, 0x00] => WebSocketError::ReservedBits;
        rsv3_rejected: masked = false, vec![0x91, 0x00] => WebSocketError::ReservedBits;
        opcode_3_rejected: masked = false, vec![0x83, 0x00] => WebSocketError::ReservedOpcode(3);
        opcode_7_rejected: masked = false, vec![0x87, 0x00] => WebSocketError::ReservedOpcode(7);
        opcode_b_rejected: masked = false, vec![0x8B, 0x00] => WebSocketError::ReservedOpcode(0xB);
        opcode_f_rejected: masked = false, vec![0x8F, 0x00] => WebSocketError::ReservedOpcode(0xF);
        fragmented_ping_rejected: masked = false, vec![0x09, 0x00] => WebSocketError::FragmentedControlFrame;
        fragmented_close_rejected: masked = false, vec![0x08, 0x00] => WebSocketError::FragmentedControlFrame;
        control_of_126_bytes_rejected: masked = false,
            raw_frame(0x89, 126, 2, None, &[0; 126]) => WebSocketError::ControlFrameTooLong(126);
        control_with_huge_length_rejected_before_payload: masked = false,
            raw_frame(0x88, 1 << 40, 8, None, b"") => WebSocketError::ControlFrameTooLong(1 << 40);
        length_msb_set_rejected: masked = false,
            raw_frame(0x82, 1 << 63, 8, None, b"") => WebSocketError::LengthOverflow;
        unmasked_client_frame_rejected: masked = true,
            vec![0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f] => WebSocketError::UnmaskedFrame;
        masked_server_frame_rejected: masked = false,
            vec![0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58] => WebSocketError::MaskedFrame;
    }

    #[test]
    fn frame_over_the_limit_fails_before_its_payload() {
        let limits = Limits {
            max_ws_frame_bytes: 10,
            ..Limits::default()
        };
        // Only the header is sent: the error must not wait for the payload.
        let header = raw_frame(0x82, 11, 0, None, b"");
        let want = WebSocketError::FrameTooBig { len: 11, max: 10 };
        check_frame_error(&limits, false, &header, want.clone());
        assert_eq!(want.close_code(), Some(close_code::MESSAGE_TOO_BIG));
        assert_eq!(want.status(), 413);
        assert_eq!(want.code(), "websocket_too_big");
        let header = raw_frame(0x82, u64::MAX >> 1, 8, None, b"");
        let got = decode_in_steps(&Limits::default(), false, &header, 1).unwrap_err();
        assert!(matches!(got, WebSocketError::FrameTooBig { .. }));
    }

    #[test]
    fn header_errors_need_only_the_first_two_bytes() {
        let mut dec = FrameDecoder::new(&Limits::default(), true);
        assert_eq!(dec.decode(&[0x81]).unwrap(), (1, None));
        assert_eq!(
            dec.decode(&[0x05]).unwrap_err(),
            WebSocketError::UnmaskedFrame
        );
    }

    #[test]
    fn decoder_errors_are_sticky() {
        let mut dec = FrameDecoder::new(&Limits::default(), false);
        assert_eq!(
            dec.decode(&[0xC1, 0x00]).unwrap_err(),
            WebSocketError::ReservedBits
        );
        // A perfectly good frame afterwards still gets the first error.
        assert_eq!(
            dec.decode(&[0x81, 0x00]).unwrap_err(),
            WebSocketError::ReservedBits
        );
    }

    // ----- message assembly ---------------------------------------------------------

    fn assemble(frames: Vec<Frame>) -> Result<Vec<Message>, WebSocketError> {
        assemble_with(&Limits::default(), frames)
    }

    fn assemble_with(limits: &Limits, frames: Vec<Frame>) -> Result<Vec<Message>, WebSocketError> {
        let mut asm = MessageAssembler::new(limits);
        let mut out = Vec::new();
        for f in frames {
            if let Some(m) = asm.handle_frame(f)? {
                out.push(m);
            }
        }
        assert!(!asm.is_in_message(), "test sequences end between messages");
        Ok(out)
    }

    fn close_frame(code: u16, reason: &[u8]) -> Frame {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason);
        frame(true, Opcode::Close, &p)
    }

    #[test]
    fn single_frame_messages() {
        let got = assemble(vec![
            frame(true, Opcode::Text, "héllo".as_bytes()),
            frame(true, Opcode::Binary, &[0xff, 0xfe]),
            frame(true, Opcode::Text, b""),
        ])
        .unwrap();
        assert_eq!(
            got,
            vec![
                Message::Text("héllo".into()),
                Message::Binary(vec![0xff, 0xfe]),
                Message::Text(String::new())
            ]
        );
    }

    #[test]
    fn rfc_5_7_fragmented_text_reassembles() {
        let bytes = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
        let frames = decode_in_steps(&Limits::default(), false, &bytes, 1).unwrap();
        assert_eq!(
            assemble(frames).unwrap(),
            vec![Message::Text("Hello".into())]
        );
    }

    #[test]
    fn control_frames_interleave_with_fragments() {
        let mut asm = MessageAssembler::new(&Limits::default());
        assert_eq!(
            asm.handle_frame(frame(false, Opcode::Binary, b"ab"))
                .unwrap(),
            None
        );
        assert!(asm.is_in_message());
        assert_eq!(
            asm.handle_frame(frame(true, Opcode::Ping, b"p")).unwrap(),
            Some(Message::Ping(b"p".to_vec()))
        );
        assert_eq!(
            asm.handle_frame(frame(false, Opcode::Continuation, b"cd"))
                .unwrap(),
            None
        );
        assert_eq!(
            asm.handle_frame(frame(true, Opcode::Pong, b"")).unwrap(),
            Some(Message::Pong(Vec::new()))
        );
        assert_eq!(
            asm.handle_frame(close_frame(1001, b"bye")).unwrap(),
            Some(Message::Close(Some((1001, "bye".into()))))
        );
        assert_eq!(
            asm.handle_frame(frame(true, Opcode::Continuation, b"e"))
                .unwrap(),
            Some(Message::Binary(b"abcde".to_vec()))
        );
        assert!(!asm.is_in_message());
        // And a new message may start after it.
        assert_eq!(
            asm.handle_frame(frame(true, Opcode::Text, b"next"))
                .unwrap(),
            Some(Message::Text("next".into()))
        );
    }

    #[test]
    fn empty_fragments_are_fine() {
        let got = assemble(vec![
            frame(false, Opcode::Text, b""),
            frame(false, Opcode::Continuation, b""),
            frame(true, Opcode::Continuation, b""),
        ])
        .unwrap();
        assert_eq!(got, vec![Message::Text(String::new())]);
    }

    #[test]
    fn continuation_without_start_is_a_protocol_error() {
        let e = assemble(vec![frame(true, Opcode::Continuation, b"x")]).unwrap_err();
        assert_eq!(e, WebSocketError::UnexpectedContinuation);
        assert_eq!(e.close_code(), Some(1002));
        // Also after a message has completed.
        let e = assemble(vec![
            frame(true, Opcode::Text, b"done"),
            frame(false, Opcode::Continuation, b"x"),
        ])
        .unwrap_err();
        assert_eq!(e, WebSocketError::UnexpectedContinuation);
    }

    #[test]
    fn new_data_frame_while_fragmented_is_a_protocol_error() {
        for (op, fin) in [(Opcode::Text, true), (Opcode::Binary, false)] {
            let e =
                assemble(vec![frame(false, Opcode::Text, b"a"), frame(fin, op, b"b")]).unwrap_err();
            assert_eq!(e, WebSocketError::ExpectedContinuation);
            assert_eq!(e.close_code(), Some(1002));
        }
    }

    #[test]
    fn hand_built_bad_control_frames_are_rejected() {
        let e = assemble(vec![frame(false, Opcode::Ping, b"")]).unwrap_err();
        assert_eq!(e, WebSocketError::FragmentedControlFrame);
        let e = assemble(vec![frame(true, Opcode::Pong, &[0; 126])]).unwrap_err();
        assert_eq!(e, WebSocketError::ControlFrameTooLong(126));
    }

    #[test]
    fn invalid_utf8_single_frame_is_1007() {
        let e = assemble(vec![frame(true, Opcode::Text, b"ok \xff")]).unwrap_err();
        assert_eq!(e, WebSocketError::InvalidUtf8);
        assert_eq!(e.close_code(), Some(1007));
        assert_eq!(e.code(), "websocket_invalid_payload");
        // Binary messages are not checked.
        assert!(assemble(vec![frame(true, Opcode::Binary, b"ok \xff")]).is_ok());
    }

    #[test]
    fn utf8_sequence_split_across_fragments_is_fine() {
        let s = "κόσμε€𝄞".as_bytes();
        for cut1 in 0..s.len() {
            for cut2 in cut1..s.len() {
                let got = assemble(vec![
                    frame(false, Opcode::Text, &s[..cut1]),
                    frame(false, Opcode::Continuation, &s[cut1..cut2]),
                    frame(true, Opcode::Continuation, &s[cut2..]),
                ])
                .unwrap();
                assert_eq!(got, vec![Message::Text("κόσμε€𝄞".into())]);
            }
        }
    }

    #[test]
    fn invalid_utf8_fails_on_the_fragment_that_carries_it() {
        let mut asm = MessageAssembler::new(&Limits::default());
        assert_eq!(
            asm.handle_frame(frame(false, Opcode::Text, b"fine"))
                .unwrap(),
            None
        );
        // 0xC0 0x80 is an overlong encoding: invalid no matter what follows.
        let e = asm
            .handle_frame(frame(false, Opcode::Continuation, b"\xc0\x80"))
            .unwrap_err();
        assert_eq!(e, WebSocketError::InvalidUtf8);
        // Sticky.
        let e = asm
            .handle_frame(frame(true, Opcode::Text, b"x"))
            .unwrap_err();
        assert_eq!(e, WebSocketError::InvalidUtf8);
        // Invalid already in the first fragment.
        let mut asm = MessageAssembler::new(&Limits::default());
        let e = asm
            .handle_frame(frame(false, Opcode::Text, b"\xed\xa0\x80"))
            .unwrap_err();
        assert_eq!(e, WebSocketError::InvalidUtf8);
    }

    #[test]
    fn incomplete_utf8_at_end_of_message_is_1007() {
        let e = assemble(vec![
            frame(false, Opcode::Text, b"a"),
            frame(true, Opcode::Continuation, b"\xe2\x82"),
        ])
        .unwrap_err();
        assert_eq!(e, WebSocketError::InvalidUtf8);
    }

    #[test]
    fn message_size_limit() {
        let limits = Limits {
            max_ws_message_bytes: 5,
            ..Limits::default()
        };
        // Exactly at the limit, with a ping in the middle that does not count.
        let ok = assemble_with(
            &limits,
            vec![
                frame(false, Opcode::Binary, b"abc"),
                frame(true, Opcode::Ping, b"0123456789"),
                frame(true, Opcode::Continuation, b"de"),
            ],
        )
        .unwrap();
        assert_eq!(ok[1], Message::Binary(b"abcde".to_vec()));
        let e = assemble_with(
            &limits,
            vec![
                frame(false, Opcode::Text, b"abc"),
                frame(true, Opcode::Continuation, b"def"),
            ],
        )
        .unwrap_err();
        assert_eq!(e, WebSocketError::MessageTooBig { max: 5 });
        assert_eq!(e.close_code(), Some(1009));
        let e = assemble_with(&limits, vec![frame(true, Opcode::Binary, b"abcdef")]).unwrap_err();
        assert_eq!(e, WebSocketError::MessageTooBig { max: 5 });
    }

    // ----- close frames ---------------------------------------------------------------

    #[test]
    fn close_without_body() {
        assert_eq!(
            assemble(vec![frame(true, Opcode::Close, b"")]).unwrap(),
            vec![Message::Close(None)]
        );
    }

    #[test]
    fn close_with_one_byte_body_is_a_protocol_error() {
        let e = assemble(vec![frame(true, Opcode::Close, b"\x03")]).unwrap_err();
        assert_eq!(e, WebSocketError::CloseTooShort);
        assert_eq!(e.close_code(), Some(1002));
    }

    #[test]
    fn valid_close_codes() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(is_valid_close_code(code), "{code}");
            let got = assemble(vec![close_frame(code, b"")]).unwrap();
            assert_eq!(got, vec![Message::Close(Some((code, String::new())))]);
        }
    }

    #[test]
    fn invalid_close_codes() {
        for code in [
            0, 1, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000,
            65535,
        ] {
            assert!(!is_valid_close_code(code), "{code}");
            let e = assemble(vec![close_frame(code, b"")]).unwrap_err();
            assert_eq!(e, WebSocketError::InvalidCloseCode(code));
            assert_eq!(e.close_code(), Some(1002));
        }
    }

    #[test]
    fn close_reason_must_be_utf8() {
        let got = assemble(vec![close_frame(1000, "tschüß".as_bytes())]).unwrap();
        assert_eq!(got, vec![Message::Close(Some((1000, "tschüß".into())))]);
        let e = assemble(vec![close_frame(1000, b"\xce\xba\xe1\xbd")]).unwrap_err();
        assert_eq!(e, WebSocketError::InvalidCloseReason);
        assert_eq!(e.close_code(), Some(1007));
    }

    // ----- encoding -------------------------------------------------------------------

    #[test]
    fn encode_matches_rfc_5_7() {
        let mut out = Vec::new();
        encode_frame(&mut out, true, Opcode::Text, b"Hello", None);
        assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        out.clear();
        encode_frame(&mut out, true, Opcode::Text, b"Hello", Some(HELLO_MASK));
        assert_eq!(
            out,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        out.clear();
        encode_frame(&mut out, false, Opcode::Text, b"Hel", None);
        encode_frame(&mut out, true, Opcode::Continuation, b"lo", None);
        assert_eq!(out, [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
        out.clear();
        encode_frame(&mut out, true, Opcode::Pong, b"Hello", Some(HELLO_MASK));
        assert_eq!(
            out,
            [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        out.clear();
        encode_frame(&mut out, true, Opcode::Binary, &[0; 256], None);
        assert_eq!(out[..4], [0x82, 0x7E, 0x01, 0x00]);
        assert_eq!(out.len(), 4 + 256);
        out.clear();
        encode_frame(&mut out, true, Opcode::Binary, &vec![0; 65536], None);
        assert_eq!(out[..10], [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(out.len(), 10 + 65536);
    }

    #[test]
    fn encode_uses_minimal_length_encoding() {
        for (len, header) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut out = Vec::new();
            encode_header(&mut out, true, Opcode::Binary, len, None);
            assert_eq!(out.len(), header, "len {len}");
            let mut out = Vec::new();
            encode_header(&mut out, true, Opcode::Binary, len, Some([1, 2, 3, 4]));
            assert_eq!(out.len(), header + 4, "masked len {len}");
        }
    }

    #[test]
    fn encode_close_layout_and_truncation() {
        let mut out = Vec::new();
        encode_close(&mut out, 1000, "bye", None);
        assert_eq!(out, [0x88, 0x05, 0x03, 0xE8, b'b', b'y', b'e']);
        // A 200-byte reason of 2-byte characters is cut to 122 bytes (61 'é'), the
        // last boundary within 123.
        let long = "é".repeat(100);
        let mut out = Vec::new();
        encode_close(&mut out, 4000, &long, None);
        assert_eq!(out[1] as usize, 2 + 122);
        let frames = decode_in_steps(&Limits::default(), false, &out, out.len()).unwrap();
        let got = assemble(frames).unwrap();
        assert_eq!(got, vec![Message::Close(Some((4000, "é".repeat(61))))]);
        // ASCII is cut at exactly 123.
        let mut out = Vec::new();
        encode_close(&mut out, 1001, &"x".repeat(500), Some(HELLO_MASK));
        let frames = decode_in_steps(&Limits::default(), true, &out, 1).unwrap();
        assert_eq!(frames[0].payload.len(), MAX_CONTROL_PAYLOAD);
    }

    #[test]
    fn opcode_wire_values_round_trip() {
        for v in 0u8..16 {
            match Opcode::from_u8(v) {
                Some(op) => {
                    assert_eq!(op.as_u8(), v);
                    assert_eq!(op.is_control(), v >= 8);
                }
                None => assert!(matches!(v, 3..=7 | 0xB..=0xF)),
            }
        }
    }

    // ----- properties -----------------------------------------------------------------

    fn arb_frame() -> impl Strategy<Value = Frame> {
        let data = (
            any::<bool>(),
            prop_oneof![
                Just(Opcode::Continuation),
                Just(Opcode::Text),
                Just(Opcode::Binary)
            ],
            prop_oneof![
                8 => proptest::collection::vec(any::<u8>(), 0..300),
                1 => proptest::collection::vec(any::<u8>(), 65530..65600),
            ],
        );
        let control = (
            prop_oneof![Just(Opcode::Close), Just(Opcode::Ping), Just(Opcode::Pong)],
            proptest::collection::vec(any::<u8>(), 0..=MAX_CONTROL_PAYLOAD),
        );
        prop_oneof![
            3 => data.prop_map(|(fin, opcode, payload)| Frame { fin, opcode, payload }),
            1 => control.prop_map(|(opcode, payload)| Frame { fin: true, opcode, payload }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// encode -> decode gives back the same frames, however the bytes are split.
        #[test]
        fn encode_decode_round_trips_for_any_split(
            frames in proptest::collection::vec(arb_frame(), 1..4),
            masked in any::<bool>(),
            key in any::<[u8; 4]>(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut wire = Vec::new();
            for f in &frames {
                encode_frame(&mut wire, f.fin, f.opcode, &f.payload, masked.then_some(key));
            }
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.push(0);
            points.push(wire.len());
            points.sort_unstable();
            let mut dec = FrameDecoder::new(&Limits::default(), masked);
            let mut got = Vec::new();
            for w in points.windows(2) {
                let mut rest = &wire[w[0]..w[1]];
                loop {
                    let (n, f) = dec.decode(rest).unwrap();
                    rest = &rest[n..];
                    match f {
                        Some(f) => got.push(f),
                        None => { prop_assert!(rest.is_empty()); break; }
                    }
                    if rest.is_empty() { break; }
                }
            }
            prop_assert_eq!(got, frames);
            prop_assert!(dec.is_idle());
            // The fuzz property holds for every generated stream too.
            let mut input = vec![u8::from(masked)];
            input.extend_from_slice(&wire);
            crate::props::websocket::websocket(&input);
        }

        /// Any text, cut into fragments at any byte (also inside a UTF-8 sequence), with
        /// pings between them, reassembles to the same text.
        #[test]
        fn fragmented_text_reassembles(
            text in ".{0,60}",
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let bytes = text.as_bytes();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            points.insert(0, 0);
            points.push(bytes.len());
            let mut asm = MessageAssembler::new(&Limits::default());
            let n = points.len() - 1;
            let mut got = None;
            for (i, w) in points.windows(2).enumerate() {
                let opcode = if i == 0 { Opcode::Text } else { Opcode::Continuation };
                let msg = asm.handle_frame(frame(i + 1 == n, opcode, &bytes[w[0]..w[1]])).unwrap();
                if i + 1 < n {
                    prop_assert_eq!(msg, None);
                    let ping = asm.handle_frame(frame(true, Opcode::Ping, b"p")).unwrap();
                    prop_assert_eq!(ping, Some(Message::Ping(b"p".to_vec())));
                } else {
                    got = msg;
                }
            }
            prop_assert_eq!(got, Some(Message::Text(text)));
        }

        /// Masking in pieces at any offset equals masking in one go.
        #[test]
        fn mask_in_pieces_equals_mask_whole(
            data in proptest::collection::vec(any::<u8>(), 0..100),
            key in any::<[u8; 4]>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut naive = data.clone();
            for (i, b) in naive.iter_mut().enumerate() {
                *b ^= key[i % 4];
            }
            let mut pieces = data.clone();
            let c = cut.index(data.len() + 1);
            let (a, b) = pieces.split_at_mut(c);
            apply_mask(a, key, 0);
            apply_mask(b, key, c);
            prop_assert_eq!(pieces, naive);
        }
    }
}
