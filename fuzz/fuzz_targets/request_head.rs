//! Fuzz `parse_request_head`: whole vs. incremental arrival agree, bounds hold
//! (see `ringbox_protocol::props::request_head`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringbox_protocol::props::request_head::request_head(data);
});
