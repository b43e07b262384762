//! Credentials to principals: API tokens are looked up by their SHA-256 in the store.
//! Valid tokens are remembered per worker for [`TOKEN_CACHE_TTL`], so the hot path
//! skips the hash and the LMDB lookup; a revoked token stops working within that time.
//! Unknown tokens are never cached (a flood of wrong tokens costs a lookup each, not
//! memory).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::error::CoreResult;
use super::Local;
use crate::store::Principal;

/// How long a worker trusts a token it has checked.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);
/// Most tokens remembered per worker (the cache is cleared when full).
const TOKEN_CACHE_MAX: usize = 1024;

/// Per-worker cache of recently validated tokens.
#[derive(Debug, Default)]
pub struct TokenCache(HashMap<Vec<u8>, (Principal, Instant)>);

impl Local {
    /// Who an API token belongs to; `None` when it is not a valid token.
    pub fn authenticate_token(&self, token: &[u8]) -> CoreResult<Option<Principal>> {
        if let Some((p, at)) = self.tokens.borrow().0.get(token) {
            if at.elapsed() < TOKEN_CACHE_TTL {
                return Ok(Some(p.clone()));
            }
        }
        match self.store.authenticate(token)? {
            Some(p) => {
                let mut c = self.tokens.borrow_mut();
                if c.0.len() >= TOKEN_CACHE_MAX {
                    c.0.clear();
                }
                c.0.insert(token.to_vec(), (p.clone(), Instant::now()));
                Ok(Some(p))
            }
            None => Ok(None),
        }
    }
}
