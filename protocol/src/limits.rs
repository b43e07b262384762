//! Every bound the parsers enforce, in one place, with the attack each one stops.
//!
//! The daemon builds one `Limits` from its configuration at start and hands a
//! reference to every parser. Defaults are safe for a public server.

/// Bounds for all parsers in this crate. `Limits::default()` is the strict, safe set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum bytes of a request head (request line + headers + final CRLF).
    /// Stops memory exhaustion by endless headers; exceeding it is a 431.
    pub max_head_bytes: usize,
    /// Maximum number of header fields. httparse needs a caller-supplied array of
    /// this size; exceeding it is a 431.
    pub max_headers: usize,
    /// Maximum number of ranges honoured in one `Range` header (nginx `max_ranges`).
    /// Beyond it the header is ignored and the full body is served (200), which
    /// stops "thousands of tiny overlapping ranges" amplification.
    pub max_ranges: usize,
    /// Maximum bytes of chunk extensions per chunk line (they are skipped, but must
    /// be bounded: h11 notes an unbounded skip is O(attacker bytes) of CPU per chunk).
    pub max_chunk_ext_bytes: usize,
    /// Maximum bytes of the trailer section of a chunked body.
    pub max_trailer_bytes: usize,
    /// Maximum number of parts in one multipart/form-data body.
    pub max_multipart_parts: usize,
    /// Maximum bytes of one multipart part's header block.
    pub max_part_head_bytes: usize,
    /// Maximum payload of a single WebSocket frame.
    pub max_ws_frame_bytes: u64,
    /// Maximum size of a reassembled (fragmented) WebSocket message.
    pub max_ws_message_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // nginx's default large_client_header_buffers is 4 x 8k; 16 KiB total is
            // ample for browsers and bounds per-connection head memory.
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_ranges: 16,
            max_chunk_ext_bytes: 1024,
            max_trailer_bytes: 8 * 1024,
            max_multipart_parts: 1000,
            max_part_head_bytes: 8 * 1024,
            max_ws_frame_bytes: 16 * 1024 * 1024,
            max_ws_message_bytes: 16 * 1024 * 1024,
        }
    }
}
