//! Authentication building blocks: the rules and primitives behind users, sessions,
//! API tokens and rate limits, with no HTTP and no storage.
//!
//! - [`credentials`]: username and password rules; Argon2id hashing and verification
//!   (PHC strings), and a dummy verification that costs the same, so "unknown user"
//!   and "wrong password" cannot be told apart by timing.
//! - [`jwt`]: HS256 access tokens written by hand over HMAC-SHA-256 (strict header,
//!   constant-time signature check, bounded sizes), the signing key and its key file,
//!   and opaque refresh tokens.
//! - [`ratelimit`]: token buckets (GCRA form) per IP, user or API token, shared by
//!   every worker thread, with bounded memory.
//! - [`token_cache`]: a per-worker cache of verified credentials that sees a
//!   revocation made on any other thread on its next lookup.
//!
//! What this module deliberately does not do: read or write LMDB, parse requests,
//! render responses, or run a thread pool. Argon2 functions are plain synchronous
//! functions that take tens of milliseconds: the caller runs them on the blocking
//! pool, never on an io_uring worker. Time is always an argument (`now`): nothing
//! here reads a clock, so every rule is testable without sleeping.

pub mod credentials;
pub mod jwt;
pub mod ratelimit;
pub mod token_cache;

/// The operating system could not give us random bytes. Practically never happens
/// on Linux (getrandom(2) blocks only until the pool is seeded at boot), but when it
/// does no credential may be issued, so it is an error rather than a panic.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read random bytes from the operating system: {0}")]
pub struct RandomError(String);

/// `N` bytes from the OS random source.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| RandomError(e.to_string()))?;
    Ok(b)
}

/// CPU time of the calling thread. The timing tests measure with it rather than with
/// the wall clock: on a machine shared with other builds, wall time also counts the
/// time other processes held the CPU.
#[cfg(test)]
fn thread_cpu_time() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}
