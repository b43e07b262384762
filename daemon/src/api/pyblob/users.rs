//! `GET /user/{user_id}[?function=change_token]`: a user and their usage,
//! `{"username","token","total_size","file_count","quota","available_space"}`.
//!
//! - `user_id` is the username (as pyBlobServer's clients send it) or the ringbox
//!   user id. Only the user themself or an admin may ask: another user is 403 (an
//!   admin asking for an unknown user gets 404).
//! - `total_size` and `file_count` are the user's usage as the quota counts it (every
//!   object of the user, whichever API stored it); `quota` is bytes or null;
//!   `available_space` is formatted as in `/upload`.
//! - `token`: only hashes of tokens are stored, so it is a masked prefix of the token
//!   the caller presented (`"AbCdEf***"`) when the caller is the user with an API
//!   token, else null.
//! - `function=change_token` issues a new API token of the user, answered in full in
//!   `token` (shown this once), and revokes the old one: the token presented when the
//!   user asks themself (on every worker at once: the core's revocation epoch); when an
//!   admin changes another user's token, every API token of that user (pyBlobServer
//!   users have one). A user signed in with a session (JWT) gets a new token and keeps
//!   the session. Any other `function` is 400.

use serde_json::json;

use super::{available_space, core_error};
use crate::core::identity::CredentialKind;
use crate::core::ErrorKind;
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;

/// Characters of the presented token shown in `token`.
const SHOWN_PREFIX: usize = 6;

/// `GET /user/{user_id}`
pub async fn get(ctx: Ctx<'_>) -> HandlerResult {
    let q = ctx.req.query()?;
    let change = match q.get("function") {
        None | Some("") => false,
        Some("change_token") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "function `{other}` is not known; use function=change_token"
            )))
        }
    };
    let caller = &ctx.req.caller;
    let usage = ctx
        .svc
        .usage(caller, ctx.req.param(0))
        .map_err(|e| match e.kind {
            ErrorKind::NotFound if !caller.is_admin() => ApiError::new(
                403,
                "forbidden",
                "Not authorized to view this user's information",
            ),
            _ => core_error(e),
        })?;
    let user = &usage.user;
    let own = caller.user() == Some(user.id.as_str());
    let with_api_token = own && matches!(ctx.req.credential, Some(CredentialKind::ApiToken(_)));
    let token = if change {
        let (_, issued) = ctx
            .svc
            .rotate_token(
                caller,
                &user.id,
                ctx.req.credential.as_ref(),
                "pyBlobServer change_token",
            )
            .await
            .map_err(core_error)?;
        Some(issued.secret)
    } else {
        presented_token(&ctx).filter(|_| with_api_token).map(|t| {
            let shown: String = t.chars().take(SHOWN_PREFIX).collect();
            format!("{shown}***")
        })
    };
    Ok(Response::json(
        200,
        &json!({
            "username": user.username,
            "token": token,
            "total_size": usage.bytes,
            "file_count": usage.objects,
            "quota": usage.quota,
            "available_space": available_space(usage.left()),
        }),
    ))
}

/// The bearer token of the request, as sent.
fn presented_token<'a>(ctx: &'a Ctx<'_>) -> Option<&'a str> {
    let v = ctx.req.header("authorization")?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
