//! Rate limits per API: a mount may carry [`RateTiers`] (a limit for anonymous
//! clients per IP, for signed-in users per user, for API tokens per token). The
//! buckets are the core's shared limiter, so a client's requests count the same on
//! every worker. Every answer of a limited API carries `X-RateLimit-Limit`,
//! `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix seconds, when the bucket is
//! full again), including 401 and 429 answers; an empty bucket is 429 with
//! `Retry-After`. A tier of `None` is unlimited (no headers).

use crate::core::auth::ratelimit::{Decision, Key, Tier};
use crate::core::identity::CredentialKind;
use crate::core::Local;
use crate::http::auth::Identity;
use crate::http::errors::ApiError;
use crate::http::response::Response;
use crate::util::time::now_ms;

/// The limits of one API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateTiers {
    /// Per client IP, for requests without a valid credential.
    pub anonymous: Option<Tier>,
    /// Per user, for access tokens (sessions).
    pub user: Option<Tier>,
    /// Per API token.
    pub token: Option<Tier>,
}

impl RateTiers {
    /// No limit at all.
    pub const NONE: RateTiers = RateTiers {
        anonymous: None,
        user: None,
        token: None,
    };

    /// Whether any tier limits.
    pub fn is_limited(&self) -> bool {
        self.anonymous.is_some() || self.user.is_some() || self.token.is_some()
    }
}

/// Count one request of `id` against `tiers`; `None` when its tier is unlimited.
pub fn check(svc: &Local, id: &Identity, tiers: &RateTiers) -> Option<Decision> {
    let (key, tier) = match (&id.credential, id.caller.user()) {
        (Some(CredentialKind::ApiToken(sha)), _) => (Key::Token(*sha), tiers.token?),
        (Some(CredentialKind::Session { .. }), Some(user)) => (Key::User(user), tiers.user?),
        _ => {
            let ip = id.caller.ip?;
            (Key::ip(ip), tiers.anonymous?)
        }
    };
    Some(
        svc.accounts
            .limiter
            .check(key, tier, now_ms().max(0) as u64),
    )
}

/// The 429 for a refused request.
pub fn too_many(d: &Decision) -> ApiError {
    let retry = d.retry_after_secs.unwrap_or(1).max(1);
    ApiError::new(
        429,
        "rate_limited",
        format!("too many requests; retry in {retry} s"),
    )
    .with_header("Retry-After", retry.to_string())
}

/// Add the `X-RateLimit-*` headers.
pub fn add_headers(resp: &mut Response, d: &Decision) {
    resp.header("X-RateLimit-Limit", d.limit.to_string())
        .header("X-RateLimit-Remaining", d.remaining.to_string())
        .header("X-RateLimit-Reset", d.reset_unix_secs.to_string());
}
