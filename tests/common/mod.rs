//! Harness shared by the integration suites (`tests/api`, and later suites): start the
//! real `ringbox` binary on port 0 with a temporary data directory ([`daemon`]), talk to
//! it with a real HTTP client ([`http`]) or raw TCP ([`raw`]), and small pure helpers
//! ([`util`]). A suite includes it with `#[path = "../common/mod.rs"] mod common;`.
//!
//! Not every suite uses every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod checks;
pub mod daemon;
pub mod http;
pub mod raw;
pub mod util;

pub use daemon::Daemon;
pub use http::{Client, Resp};
pub use raw::RawConn;
