//! The load harness behind `--bin load` and `--bin metabench`: ringbox measured against
//! nginx, static-web-server, rustypaste and a trivial in-memory server in the same run,
//! alternating A B A B, pinned to separate CPUs, with every figure reported as a ratio.
//!
//! Layout: [`setup`] finds or installs the tools and builds ringbox; [`servers`] starts
//! each server on loopback with the same files; [`wrk`] and [`http`] generate the load
//! ([`hammer`] where wrk cannot: HEAD); [`scenarios`] defines what is measured ([`apis`]:
//! one row per API download route; [`events`] and [`thumbs`]: background work during a
//! GET); [`report`] turns rounds into ratios, tables and the JSON result file; [`proc`]
//! keeps every child process bounded and killed.
//!
//! Not done here: remote targets (loopback only, by design), TLS, HTTP/2.

pub mod apis;
pub mod events;
pub mod hammer;
pub mod http;
pub mod photos;
pub mod proc;
pub mod report;
pub mod scenarios;
pub mod servers;
pub mod setup;
pub mod thumbs;
pub mod wrk;

use std::fmt;

/// A harness failure, with a message that says what to do about it.
#[derive(Debug)]
pub struct HarnessError {
    message: String,
}

impl HarnessError {
    /// An error with a message.
    pub fn msg(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// An I/O error while doing `what`.
    pub fn io(what: impl fmt::Display, e: std::io::Error) -> Self {
        Self {
            message: format!("{what}: {e}"),
        }
    }
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HarnessError {}

impl From<http::ClientError> for HarnessError {
    fn from(e: http::ClientError) -> Self {
        Self::msg(e.to_string())
    }
}

/// Formats a byte count as KiB/MiB/GiB for tables.
pub fn human_bytes(n: f64) -> String {
    const K: f64 = 1024.0;
    if n >= K * K * K {
        format!("{:.2} GiB", n / (K * K * K))
    } else if n >= K * K {
        format!("{:.1} MiB", n / (K * K))
    } else if n >= K {
        format!("{:.1} KiB", n / K)
    } else {
        format!("{n:.0} B")
    }
}
