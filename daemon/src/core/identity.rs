//! Credentials to principals, for every API: an API token (looked up by its SHA-256)
//! or an access token (a JWT signed with the data directory's key, not revoked), each
//! naming a user whose current record gives the role. A deleted user's credentials
//! stop working with the user.
//!
//! Verified credentials are cached per worker (`TokenCache`) for up to
//! [`CACHE_TTL`]; every revocation (logout, refresh rotation, token deletion, role or
//! password change, user deletion) bumps the process-wide revocation epoch after its
//! commit, which empties every worker's cache before its next lookup. So a revoked
//! credential is refused by the very next request on any worker, while the hot path of
//! a valid one costs a hash-map lookup. Failures are never cached (a flood of wrong
//! tokens costs a lookup each, not memory).
//!
//! Last use of API tokens is recorded coarsely: when a token is verified from the store
//! (at most once per cache lifetime per worker), its time is noted in memory, and the
//! notes are written in one batch every few seconds (`flush_token_uses`), without
//! moving the object caches' generation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::auth::credentials::PasswordHasher;
use super::auth::jwt::{self, JwtKey};
use super::auth::ratelimit::RateLimiter;
use super::auth::token_cache::{RevocationEpoch, TokenCache};
use super::error::{CoreError, CoreResult};
use super::{Core, Local};
use crate::store::{Command, Principal, Sha256};
use crate::util::time::{now_ms, now_secs};

/// How long a worker trusts a credential it has verified (revocations are seen at
/// once through the epoch; this bounds how stale an expiry or a role can get).
pub const CACHE_TTL: Duration = Duration::from_secs(30);

/// What kind of credential authenticated a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    /// An API token, by the SHA-256 of its secret.
    ApiToken(Sha256),
    /// An access token (JWT) of a session.
    Session { jti: String, expires_at_secs: u64 },
}

/// A verified credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    pub principal: Principal,
    pub kind: CredentialKind,
}

/// The process-wide state of accounts and credentials.
#[derive(Debug)]
pub struct Accounts {
    pub jwt_key: JwtKey,
    pub hasher: PasswordHasher,
    pub epoch: Arc<RevocationEpoch>,
    /// Life of access tokens.
    pub access_ttl: Duration,
    /// Life of refresh tokens.
    pub refresh_ttl: Duration,
    /// Shared by every worker (and every API that limits).
    pub limiter: RateLimiter,
    /// API tokens verified since the last flush, with when.
    token_uses: Mutex<HashMap<Sha256, i64>>,
}

impl Accounts {
    pub fn new(jwt_key: JwtKey, hasher: PasswordHasher, access_ttl: Duration) -> Accounts {
        Accounts {
            jwt_key,
            hasher,
            epoch: Arc::new(RevocationEpoch::new()),
            access_ttl,
            refresh_ttl: Duration::from_secs(30 * 86_400),
            limiter: RateLimiter::default(),
            token_uses: Mutex::new(HashMap::new()),
        }
    }

    fn note_use(&self, sha: Sha256) {
        let mut m = self.token_uses.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(sha, now_ms());
    }
}

/// A per-worker cache of verified credentials.
pub type CredentialCache = TokenCache<Vec<u8>, Authenticated>;

/// Whether a bearer value looks like a JWT (three base64url parts, JSON header).
pub fn looks_like_jwt(token: &[u8]) -> bool {
    token.starts_with(b"eyJ") && token.iter().filter(|&&b| b == b'.').count() == 2
}

impl Local {
    /// Who a bearer credential (an API token or an access token) belongs to; `None`
    /// when it is not valid (unknown, expired, revoked, or its user is gone).
    pub fn authenticate(&self, token: &[u8]) -> CoreResult<Option<Authenticated>> {
        let now = Instant::now();
        if let Some(a) = self.creds.get(token, now) {
            return Ok(Some(a));
        }
        let ticket = self.creds.ticket();
        let (found, valid_for) = if looks_like_jwt(token) {
            self.verify_access_token(token)?
        } else {
            self.verify_api_token(token)?
        };
        if let Some(a) = &found {
            self.creds
                .insert(ticket, token.to_vec(), a.clone(), now, valid_for);
        }
        Ok(found)
    }
}

impl Core {
    /// [`Local::authenticate`] without the worker's cache, for sessions that outlive a
    /// request and hold no `Local` (a WebSocket that authenticates by message).
    pub fn verify_bearer(&self, token: &[u8]) -> CoreResult<Option<Authenticated>> {
        Ok(if looks_like_jwt(token) {
            self.verify_access_token(token)?.0
        } else {
            self.verify_api_token(token)?.0
        })
    }

    fn verify_access_token(&self, token: &[u8]) -> CoreResult<(Option<Authenticated>, Duration)> {
        let Ok(text) = std::str::from_utf8(token) else {
            return Ok((None, Duration::ZERO));
        };
        let now = now_secs();
        let Ok(claims) = jwt::verify(&self.accounts.jwt_key, text, now) else {
            return Ok((None, Duration::ZERO));
        };
        if self.store.is_revoked(&claims.jti)? {
            return Ok((None, Duration::ZERO));
        }
        let Some(user) = self.store.get_user(&claims.sub)? else {
            return Ok((None, Duration::ZERO));
        };
        let valid_for = Duration::from_secs(claims.exp.saturating_sub(now));
        Ok((
            Some(Authenticated {
                principal: Principal {
                    user: user.id,
                    role: user.role,
                },
                kind: CredentialKind::Session {
                    jti: claims.jti,
                    expires_at_secs: claims.exp,
                },
            }),
            valid_for,
        ))
    }

    fn verify_api_token(&self, token: &[u8]) -> CoreResult<(Option<Authenticated>, Duration)> {
        let sha = crate::store::token_sha256(token);
        let Some(rec) = self.store.get_token(&sha)? else {
            return Ok((None, Duration::ZERO));
        };
        let now = now_ms();
        if !rec.is_valid_at(now) {
            return Ok((None, Duration::ZERO));
        }
        let Some(user) = self.store.get_user(&rec.user)? else {
            return Ok((None, Duration::ZERO));
        };
        self.accounts.note_use(sha);
        let valid_for = rec.expires_at_ms.map_or(Duration::MAX, |t| {
            Duration::from_millis(t.saturating_sub(now).max(0) as u64)
        });
        Ok((
            Some(Authenticated {
                principal: Principal {
                    user: user.id,
                    role: user.role,
                },
                kind: CredentialKind::ApiToken(sha),
            }),
            valid_for,
        ))
    }
}

impl Local {
    /// Every credential cached by any worker is checked again on its next use (call
    /// after committing a revocation, before answering).
    pub fn revoke_cached_credentials(&self) {
        self.accounts.epoch.bump();
    }

    /// Write the API tokens' last-use times noted since the last call, in one batch.
    pub async fn flush_token_uses(&self) {
        let uses: Vec<(Sha256, i64)> = {
            let mut m = self
                .accounts
                .token_uses
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            m.drain().collect()
        };
        if uses.is_empty() {
            return;
        }
        if let Err(e) = self
            .store
            .writer()
            .submit(Command::TouchTokens { uses })
            .await
        {
            tracing::warn!(error = %e, "cannot record the last use of API tokens");
        }
    }
}

/// A CoreError for a credential that must be refused.
pub fn invalid_credential() -> CoreError {
    CoreError::unauthorized(
        "the token is not valid (unknown, expired or revoked); sign in again or use another token",
    )
}
