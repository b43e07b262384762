//! Fuzz `ChunkedDecoder`: any split of the input gives the same body, trailers and
//! outcome (see `ringbox_protocol::props::chunked`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringbox_protocol::props::chunked::chunked(data);
});
