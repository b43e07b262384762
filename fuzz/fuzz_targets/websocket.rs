//! Fuzz the WebSocket frame decoder and message assembler: any split of the stream
//! gives the same frames, messages and errors, bounds hold, and frames re-encode
//! (masked and not) to themselves (see `ringbox_protocol::props::websocket`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringbox_protocol::props::websocket::websocket(data);
});
