#![no_main]
//! `Range` parsing and resolution: bounds, order, coalescing, a brute-force reference
//! and the byteranges length (all checked in `ringbox_protocol::props::range`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringbox_protocol::props::range::range(data));
