//! What every protocol error can tell its caller: the HTTP status the peer's fault
//! maps to, a stable machine-readable code, and whether the connection must close.
//!
//! Each module has its own `<Thing>Error` enum (typed by who is at fault, as rustls
//! does); all of them implement [`HttpError`] so the daemon renders any of them the
//! same way: `{"error":{"code":<code>,"message":<Display>}}` with `status()`.

/// Implemented by every error type in this crate.
pub trait HttpError: std::error::Error {
    /// The HTTP status this error answers with (400, 413, 416, 431, 505, ...).
    fn status(&self) -> u16;
    /// A short stable snake_case code for JSON error bodies, e.g. `"header_too_large"`.
    fn code(&self) -> &'static str;
    /// Whether the connection must be closed after answering (framing is lost).
    fn must_close(&self) -> bool {
        true
    }
}
