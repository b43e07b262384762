//! Who is calling, and may they call this route. A request either carries
//! `Authorization: Bearer <token>` (checked against the store; a wrong token is 401
//! even in anonymous modes, so a typo is never silently downgraded) or is anonymous
//! and is let through only as far as `--anonymous` allows.

use ringbox_protocol::head::RequestHead;

use crate::config::Anonymous;
use crate::http::errors::ApiError;
use crate::http::router::Access;
use crate::store::{Principal, Role, Store};

/// Decide whether the request may call a route of `access`.
/// Returns the principal (None for anonymous callers).
pub fn authorize(
    head: &RequestHead,
    access: Access,
    anonymous: Anonymous,
    store: &Store,
) -> Result<Option<Principal>, ApiError> {
    let principal = match head.header("authorization") {
        Some(value) => Some(authenticate(value, store)?),
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

fn authenticate(value: &[u8], store: &Store) -> Result<Principal, ApiError> {
    let token = value
        .strip_prefix(b"Bearer ")
        .or_else(|| value.strip_prefix(b"bearer "))
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
    match store.authenticate(token)? {
        Some(p) => Ok(p),
        None => Err(ApiError::unauthorized(
            "the bearer token is not valid; check <data>/admin.token",
        )),
    }
}
