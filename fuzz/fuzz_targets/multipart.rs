#![no_main]
//! multipart/form-data: any split of the input gives the same events as the whole
//! (checked in `ringbox_protocol::props::multipart`).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ringbox_protocol::props::multipart::multipart(data));
