//! Small helpers with no I/O: time formatting, hex, MIME sniffing, query strings.
pub mod hex;
pub mod mime;
pub mod query;
pub mod time;
