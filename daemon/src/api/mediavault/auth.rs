//! `POST /auth/login`, `/auth/refresh`, `/auth/logout`: the core's JWT sessions.
//!
//! - Login takes `{"username","password"}` (`email` is taken for `username`) and answers 200 with `data` =
//!   `{"token","expires_in","token_type":"Bearer","refresh_token"}`. The same four
//!   keys are also at the top level of the answer, beside the envelope, so a client
//!   written for the seed's bare login example (`response.token`) works unchanged.
//!   Unknown users and wrong passwords are the same 401 `unauthorized`.
//! - Refresh takes the current access token as Bearer (or in a `{"token"}` body), or a
//!   refresh token (a `{"refresh_token"}` body, or as the Bearer), and answers like login with a new pair; the old access
//!   token (and refresh token) then get 401. Each access token has a unique `jti`, so
//!   a refresh within the same second still gives a different token.
//! - Logout ends the session of the access token presented: 204, then 401 for it. An
//!   API token is not a session: logging out with one is a `validation_error`.

use serde_json::{json, Value};

use super::{core_error, created_like_login, invalid, json_object, no_content, opt_string};
use crate::core::identity::{looks_like_jwt, CredentialKind};
use crate::core::users::SessionTokens;
use crate::core::Caller;
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};

/// The session as the seed shows a login answer.
pub(super) fn session_data(s: &SessionTokens) -> Value {
    json!({
        "token": s.access_token,
        "expires_in": s.expires_in,
        "token_type": "Bearer",
        "refresh_token": s.refresh_token,
    })
}

/// `POST /auth/login`
pub async fn login(mut ctx: Ctx<'_>) -> HandlerResult {
    let body = json_object(&mut ctx, false).await?;
    // `email` is accepted for clients that sign in with the address field.
    let username = match opt_string(&body, "username", 256)? {
        Some(u) => Some(u),
        None => opt_string(&body, "email", 256)?,
    }
    .filter(|s| !s.is_empty())
    .ok_or_else(|| invalid("username", "username is required"))?;
    let password = opt_string(&body, "password", 1024)?
        .ok_or_else(|| invalid("password", "password is required"))?;
    let s = ctx
        .svc
        .login(&username, &password)
        .await
        .map_err(core_error)?;
    created_like_login(200, &s)
}

/// `POST /auth/refresh`
pub async fn refresh(mut ctx: Ctx<'_>) -> HandlerResult {
    let body = json_object(&mut ctx, true).await?;
    if let Some(rt) = opt_string(&body, "refresh_token", 4096)? {
        let s = ctx.svc.refresh(&rt).await.map_err(core_error)?;
        return created_like_login(200, &s);
    }
    // A refresh token sent as the Bearer (some clients do): rotate it.
    if ctx.req.credential.is_none() {
        if let Some(rt) = bearer_value(&ctx).filter(|t| !looks_like_jwt(t.as_bytes())) {
            let s = ctx.svc.refresh(&rt).await.map_err(core_error)?;
            return created_like_login(200, &s);
        }
    }
    // The presented access token: the Bearer header, else a `{"token"}` body.
    let (kind, caller) = match (&ctx.req.credential, opt_string(&body, "token", 8192)?) {
        (Some(kind @ CredentialKind::Session { .. }), _) => (kind.clone(), ctx.req.caller.clone()),
        (_, Some(token)) => match ctx.svc.authenticate(token.as_bytes())? {
            Some(a) => (
                a.kind,
                Caller {
                    principal: Some(a.principal),
                    ip: ctx.req.caller.ip,
                },
            ),
            None => return Err(expired()),
        },
        (Some(_), None) => {
            return Err(invalid(
                "token",
                "an API key is not a session: refresh with the access token from /auth/login",
            ))
        }
        (None, None) => return Err(expired()),
    };
    let s = ctx
        .svc
        .refresh_by_access(&kind, &caller)
        .await
        .map_err(core_error)?;
    created_like_login(200, &s)
}

/// The raw `Authorization: Bearer` value, if any.
fn bearer_value(ctx: &Ctx<'_>) -> Option<String> {
    let v = ctx.req.header("authorization")?.trim();
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

fn expired() -> ApiError {
    ApiError::unauthorized(
        "send the current access token as `Authorization: Bearer <token>` (or a refresh_token); sign in again if it expired",
    )
}

/// `POST /auth/logout`
pub async fn logout(ctx: Ctx<'_>) -> HandlerResult {
    match &ctx.req.credential {
        Some(kind @ CredentialKind::Session { .. }) => {
            ctx.svc.logout(kind).await.map_err(core_error)?;
            no_content()
        }
        _ => Err(invalid(
            "token",
            "an API key is not a session; only access tokens from /auth/login sign out",
        )),
    }
}
