//! Small helpers with no I/O: time formatting, hex, query strings.
pub mod hex;
pub mod query;
pub mod time;
