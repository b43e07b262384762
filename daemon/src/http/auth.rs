//! Who is calling: each mount lists the [`AuthScheme`]s its API understands; the
//! first scheme that finds a credential in the request decides. A credential the
//! mount does not understand (a `Basic` header on a bearer-token API) is not a
//! credential for it: the request is anonymous, so it never turns a public route into
//! a 401.
//!
//! Then the route's coarse [`Access`] level: public routes ignore a bad credential
//! (an expired or revoked token is treated as none); other routes refuse it with 401
//! even in anonymous modes, so a typo is never silently downgraded to anonymous.
//! Whether a caller may touch a given object is the core's decision, not this one's.

use std::net::IpAddr;

use ringbox_protocol::head::RequestHead;

use crate::core::{Anonymous, Caller, Local};
use crate::http::errors::ApiError;
use crate::http::router::Access;
use crate::store::Role;

/// A way an API accepts credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: Bearer <API token>` (the scheme name is case-insensitive).
    Bearer,
    /// `?<name>=<API token>` in the query string (browser WebSockets, share links).
    #[allow(dead_code)] // taken by the event subscriptions' mount
    QueryToken(&'static str),
}

/// The credential found in a request.
enum Credential<'a> {
    Token(&'a [u8]),
    QueryToken(String),
}

fn find_credential<'a>(head: &'a RequestHead, schemes: &[AuthScheme]) -> Option<Credential<'a>> {
    for scheme in schemes {
        match scheme {
            AuthScheme::Bearer => {
                if let Some(value) = head.header("authorization") {
                    let value = value.trim_ascii();
                    if value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer ") {
                        let token = value[7..].trim_ascii();
                        if !token.is_empty() {
                            return Some(Credential::Token(token));
                        }
                    }
                }
            }
            AuthScheme::QueryToken(name) => {
                let q = crate::util::query::Query::parse(head.query()).ok()?;
                if let Some(t) = q.get(name).filter(|t| !t.is_empty()) {
                    return Some(Credential::QueryToken(t.to_string()));
                }
            }
        }
    }
    None
}

/// Establish the caller and apply the route's access level.
pub fn identify(
    svc: &Local,
    head: &RequestHead,
    schemes: &[AuthScheme],
    access: Access,
    ip: Option<IpAddr>,
) -> Result<Caller, ApiError> {
    let mut caller = Caller::anonymous(ip);
    let presented = find_credential(head, schemes);
    if let Some(cred) = &presented {
        let token = match cred {
            Credential::Token(t) => *t,
            Credential::QueryToken(t) => t.as_bytes(),
        };
        match svc.authenticate_token(token) {
            Ok(Some(p)) => caller.principal = Some(p),
            Ok(None) if access == Access::Public => {}
            Ok(None) => return Err(ApiError::unauthorized(
                "the token is not valid (unknown, expired or revoked); check it, or sign in again",
            )),
            Err(e) if access == Access::Public => {
                tracing::warn!(error = %e, "credential check failed on a public route");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let anonymous = svc.settings.policy.anonymous;
    let allowed = match (&caller.principal, access) {
        (_, Access::Public) => true,
        (Some(p), Access::Admin) => p.role == Role::Admin,
        (Some(_), _) => true,
        (None, Access::Read) => matches!(anonymous, Anonymous::Read | Anonymous::Write),
        (None, Access::Write) => anonymous == Anonymous::Write,
        (None, Access::User | Access::Admin) => false,
    };
    match (allowed, &caller.principal) {
        (true, _) => Ok(caller),
        (false, None) => Err(ApiError::unauthorized(
            "this route needs a token: send `Authorization: Bearer <token>` (the admin token is in <data>/admin.token)",
        )),
        (false, Some(_)) => Err(ApiError::new(
            403,
            "forbidden",
            "this account may not call this route",
        )),
    }
}
