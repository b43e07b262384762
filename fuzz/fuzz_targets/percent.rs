//! Fuzz the percent decoders: a naive reference, borrowing only without escapes, and
//! encode-then-decode round trips (see `ringbox_protocol::props::percent`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringbox_protocol::props::percent::percent(data);
});
