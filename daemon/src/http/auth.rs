//! Who is calling: each mount lists the [`AuthScheme`]s its API understands; the
//! first scheme that finds a credential in the request decides. A credential the
//! mount does not understand (a `Basic` header on a bearer-token API) is not a
//! credential for it: the request is anonymous, so it never turns a public route into
//! a 401. A bearer credential is an API token or an access token (JWT); the core
//! verifies both (`core::identity`).
//!
//! Then the route's coarse [`Access`] level: public routes ignore a bad credential
//! (an expired or revoked token is treated as none); other routes refuse it with 401
//! even in anonymous modes, so a typo is never silently downgraded to anonymous.
//! Whether a caller may touch a given object is the core's decision, not this one's.
//!
//! Identification never fails outright: it returns the caller it could establish and,
//! separately, the refusal (if any), so the rate limiter can count a refused request
//! against its client (an anonymous request counts against its IP even when it is
//! answered 401).

use std::net::IpAddr;

use ringbox_protocol::head::RequestHead;

use crate::core::identity::CredentialKind;
use crate::core::{Anonymous, Caller, Local};
use crate::http::errors::ApiError;
use crate::http::router::Access;
use crate::store::Role;

/// A way an API accepts credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: Bearer <API token or access token>` (the scheme name is
    /// case-insensitive).
    Bearer,
    /// `?<name>=<token>` in the query string (browser WebSockets, share links).
    #[allow(dead_code)] // taken by the event subscriptions' mount
    QueryToken(&'static str),
}

/// The outcome of identifying a request.
#[derive(Debug)]
pub struct Identity {
    pub caller: Caller,
    /// What authenticated the caller, when something did.
    pub credential: Option<CredentialKind>,
    /// Set when the request must be refused (401/403) before its handler runs.
    pub refused: Option<ApiError>,
}

fn find_credential(head: &RequestHead, schemes: &[AuthScheme]) -> Option<Vec<u8>> {
    for scheme in schemes {
        match scheme {
            AuthScheme::Bearer => {
                if let Some(value) = head.header("authorization") {
                    let value = value.trim_ascii();
                    if value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer ") {
                        let token = value[7..].trim_ascii();
                        if !token.is_empty() {
                            return Some(token.to_vec());
                        }
                    }
                }
            }
            AuthScheme::QueryToken(name) => {
                let q = crate::util::query::Query::parse(head.query()).ok()?;
                if let Some(t) = q.get(name).filter(|t| !t.is_empty()) {
                    return Some(t.as_bytes().to_vec());
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
) -> Identity {
    let mut id = Identity {
        caller: Caller::anonymous(ip),
        credential: None,
        refused: None,
    };
    if let Some(token) = find_credential(head, schemes) {
        match svc.authenticate(&token) {
            Ok(Some(a)) => {
                id.caller.principal = Some(a.principal);
                id.credential = Some(a.kind);
            }
            Ok(None) if access == Access::Public => {}
            Ok(None) => {
                id.refused = Some(ApiError::unauthorized(
                    "the token is not valid (unknown, expired or revoked); check it, or sign in again",
                ));
                return id;
            }
            Err(e) if access == Access::Public => {
                tracing::warn!(error = %e, "credential check failed on a public route");
            }
            Err(e) => {
                id.refused = Some(e.into());
                return id;
            }
        }
    }
    let anonymous = svc.settings.policy.anonymous;
    let allowed = match (&id.caller.principal, access) {
        (_, Access::Public) => true,
        (Some(p), Access::Admin) => p.role == Role::Admin,
        (Some(_), _) => true,
        (None, Access::Read) => matches!(anonymous, Anonymous::Read | Anonymous::Write),
        (None, Access::Write) => anonymous == Anonymous::Write,
        (None, Access::User | Access::Admin) => false,
    };
    if !allowed {
        id.refused = Some(match &id.caller.principal {
            None => ApiError::unauthorized(
                "this route needs a token: send `Authorization: Bearer <token>` (the admin token is in <data>/admin.token)",
            ),
            Some(_) => ApiError::new(403, "forbidden", "this account may not call this route"),
        });
    }
    id
}
