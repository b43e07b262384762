//! Who is calling, and may they call this route. A request either carries
//! `Authorization: Bearer <token>` (checked against the store; a wrong token is 401
//! even in anonymous modes, so a typo is never silently downgraded) or is anonymous
//! and is let through only as far as `--anonymous` allows.
//!
//! Valid tokens are remembered per worker for [`TOKEN_CACHE_TTL`], so the hot path
//! skips the SHA-256 and the LMDB lookup; a revoked token stops working within that
//! time. Unknown tokens are never cached.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use ringbox_protocol::head::RequestHead;

use crate::config::Anonymous;
use crate::http::errors::ApiError;
use crate::http::router::Access;
use crate::store::{Principal, Role, Store};

/// How long a worker trusts a token it has checked.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);
/// Most tokens remembered per worker (the cache is cleared when full).
const TOKEN_CACHE_MAX: usize = 1024;

/// Per-worker cache of recently validated tokens.
#[derive(Debug, Default)]
pub struct TokenCache(RefCell<HashMap<Vec<u8>, (Principal, Instant)>>);

/// Decide whether the request may call a route of `access`.
/// Returns the principal (None for anonymous callers).
pub fn authorize(
    head: &RequestHead,
    access: Access,
    anonymous: Anonymous,
    store: &Store,
    cache: &TokenCache,
) -> Result<Option<Principal>, ApiError> {
    let principal = match head.header("authorization") {
        Some(value) => Some(authenticate(value, store, cache)?),
        None => None,
    };
    let allowed = match (&principal, access) {
        (_, Access::Public) => true,
        (Some(p), Access::Admin) => p.role == Role::Admin,
        (Some(_), _) => true,
        (None, Access::Read) => matches!(anonymous, Anonymous::Read | Anonymous::Write),
        (None, Access::Write) => anonymous == Anonymous::Write,
        (None, Access::Admin) => false,
    };
    match (allowed, &principal) {
        (true, _) => Ok(principal),
        (false, None) => Err(ApiError::unauthorized(
            "this route needs a token: send `Authorization: Bearer <token>` (the admin token is in <data>/admin.token)",
        )),
        (false, Some(_)) => Err(ApiError::new(403, "forbidden", "this token may not call this route")),
    }
}

fn authenticate(value: &[u8], store: &Store, cache: &TokenCache) -> Result<Principal, ApiError> {
    let token = value
        .strip_prefix(b"Bearer ")
        .or_else(|| value.strip_prefix(b"bearer "))
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
    if let Some((p, at)) = cache.0.borrow().get(token) {
        if at.elapsed() < TOKEN_CACHE_TTL {
            return Ok(p.clone());
        }
    }
    match store.authenticate(token)? {
        Some(p) => {
            let mut c = cache.0.borrow_mut();
            if c.len() >= TOKEN_CACHE_MAX {
                c.clear();
            }
            c.insert(token.to_vec(), (p.clone(), Instant::now()));
            Ok(p)
        }
        None => Err(ApiError::unauthorized(
            "the bearer token is not valid; check <data>/admin.token",
        )),
    }
}
