//! Integration suite: starts the real daemon and drives it over sockets.
//!
//! Every test starts its own `ringbox serve --listen 127.0.0.1:0 --data <tempdir>` (see
//! `tests/common/daemon.rs`), talks to it over loopback with ureq or raw TCP, and checks
//! the behaviour promised in `spec/daemon-http.md`. Tests are independent and bounded in
//! time (every wait is a poll with a deadline); a failing test prints the daemon's log.
//!
//! Run: `cargo test -p ringbox --test api` (builds the binary first).
//! Known gaps: no TLS, no signals other than TERM/KILL, no disk-full cases; the stress
//! variants (`#[ignore] fn stress_*`) are for a separate CI step.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod content;
mod events;
mod expiry;
mod hardening;
mod health;
mod lifecycle;
mod listing;
mod media;
mod mediavault;
mod metaclip;
mod objects;
mod photobackup;
mod pyblob;
mod rhinobox;
mod robustness;
mod sharing;
mod storage;
mod uploads;
mod users;
