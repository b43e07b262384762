//! Fuzz `parse_request_head` and `check_partial_head`: whole vs. incremental arrival
//! agree, bounds hold, and a prefix the check refuses is refused by the parser for
//! every extension (see `ringbox_protocol::props::request_head`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringbox_protocol::props::request_head::request_head(data);
});
