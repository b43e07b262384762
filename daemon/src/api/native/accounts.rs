//! Users, sessions and API tokens of the native API: `/v1/users`, `/v1/auth/*`,
//! `/v1/tokens`. Every rule (who may see or change whom, password rules, rotation,
//! revocation) is the core's (`core::users`); this module reads the JSON bodies and
//! writes the JSON answers.

use serde::Deserialize;
use serde_json::{json, Value};

use super::objects::MAX_JSON_BODY;
use crate::core::stream::read_to_vec;
use crate::core::users::{token_id_string, IssuedToken, NewUser, SessionTokens, UserUpdate};
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::store::{Role, TokenRecord, UserRecord};
use crate::util::time::{parse_ttl, rfc3339_ms};

/// The JSON of a user.
pub fn user_json(u: &UserRecord, quota_default: Option<u64>) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "role": u.role.as_str(),
        "display_name": u.display_name,
        "created_at": rfc3339_ms(u.created_at_ms),
        "quota_bytes": u.quota_bytes.or(quota_default),
        "usage_bytes": u.usage_bytes,
        "object_count": u.object_count,
        "has_password": u.password_hash.is_some(),
    })
}

/// The JSON of a token, without its secret.
pub fn token_json(t: &TokenRecord) -> Value {
    json!({
        "id": token_id_string(&t.id),
        "label": t.label,
        "created_at": rfc3339_ms(t.created_at_ms),
        "last_used_at": t.last_used_ms.map(rfc3339_ms),
        "expires_at": t.expires_at_ms.map(rfc3339_ms),
    })
}

fn issued_json(t: &IssuedToken) -> Value {
    let mut v = token_json(&t.record);
    v["token"] = Value::String(t.secret.clone());
    v
}

fn session_json(s: &SessionTokens) -> Value {
    json!({
        "access_token": s.access_token,
        "refresh_token": s.refresh_token,
        "token_type": "Bearer",
        "expires_in": s.expires_in,
    })
}

pub(super) async fn json_body<T: serde::de::DeserializeOwned>(
    ctx: &mut Ctx<'_>,
    shape: &str,
) -> Result<T, ApiError> {
    let body = read_to_vec(ctx.body, MAX_JSON_BODY).await?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body must be JSON like {shape}: {e}")))
}

fn role_of(s: &str) -> Result<Role, ApiError> {
    match s {
        "admin" => Ok(Role::Admin),
        "user" => Ok(Role::User),
        other => Err(ApiError::bad_request(format!(
            "role must be \"admin\" or \"user\", not {other:?}"
        ))),
    }
}

/// `expires_in` as seconds (a number) or a duration string (`7d`).
pub(super) fn expires_in(v: &Option<Value>) -> Result<Option<std::time::Duration>, ApiError> {
    let bad =
        || ApiError::bad_request("expires_in must be seconds or a duration like 30m, 12h or 7d");
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|&n| n > 0)
            .map(|n| parse_ttl(&n.to_string()))
            .ok_or_else(bad)?
            .map(Some)
            .ok_or_else(bad),
        Some(Value::String(s)) => parse_ttl(s)
            .filter(|d| !d.is_zero())
            .map(Some)
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    username: String,
    password: String,
    role: Option<String>,
    display_name: Option<String>,
    quota_bytes: Option<u64>,
}

/// `POST /v1/users` (admin): 201 with the user and a first API token.
pub async fn create(mut ctx: Ctx<'_>) -> HandlerResult {
    let b: CreateUser = json_body(
        &mut ctx,
        r#"{"username":"...","password":"...","role":"user"}"#,
    )
    .await?;
    let role = b
        .role
        .as_deref()
        .map(role_of)
        .transpose()?
        .unwrap_or(Role::User);
    let (user, token) = ctx
        .svc
        .create_user(
            &ctx.req.caller,
            NewUser {
                username: b.username,
                password: b.password,
                role,
                display_name: b.display_name,
                quota_bytes: b.quota_bytes,
            },
        )
        .await?;
    let mut v = user_json(&user, ctx.svc.settings.default_quota);
    v["token"] = Value::String(token.secret);
    let mut r = Response::json(201, &v);
    r.header("Location", format!("/v1/users/{}", user.id));
    Ok(r)
}

/// `GET /v1/users?limit=&cursor=` (admin).
pub async fn list(ctx: Ctx<'_>) -> HandlerResult {
    let q = ctx.req.query()?;
    let limit = match q.get("limit") {
        None => 100,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be an integer from 1 to 1000"))?,
    };
    let (users, more) = ctx.svc.list_users(
        &ctx.req.caller,
        q.get("cursor").filter(|c| !c.is_empty()),
        limit,
    )?;
    let next = more.then(|| users.last().map(|u| u.id.clone())).flatten();
    let quota = ctx.svc.settings.default_quota;
    let users: Vec<Value> = users.iter().map(|u| user_json(u, quota)).collect();
    Ok(Response::json(
        200,
        &json!({ "users": users, "next_cursor": next }),
    ))
}

/// The `{id}` parameter, or the caller's own id for `me`.
fn user_id(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    match ctx.req.param(0) {
        "" | "me" => ctx
            .req
            .caller
            .user()
            .map(str::to_string)
            .ok_or_else(|| ApiError::unauthorized("sign in first")),
        id => Ok(id.to_string()),
    }
}

/// `GET /v1/users/{id}` (admin, or the user) and `GET /v1/users/me`.
pub async fn get(ctx: Ctx<'_>) -> HandlerResult {
    let id = user_id(&ctx)?;
    let user = ctx.svc.user_for(&ctx.req.caller, &id)?;
    Ok(Response::json(
        200,
        &user_json(&user, ctx.svc.settings.default_quota),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchUser {
    role: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    quota_bytes: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double_option")]
    display_name: Option<Option<String>>,
    password: Option<String>,
    old_password: Option<String>,
}

/// `null` is `Some(None)` (clear), absent is `None` (leave).
pub(super) fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /v1/users/{id}` and `PATCH /v1/users/me`.
pub async fn patch(mut ctx: Ctx<'_>) -> HandlerResult {
    let id = user_id(&ctx)?;
    let b: PatchUser = json_body(
        &mut ctx,
        r#"{"display_name":"...","password":"...","old_password":"..."} (admins: "role", "quota_bytes")"#,
    )
    .await?;
    let update = UserUpdate {
        role: b.role.as_deref().map(role_of).transpose()?,
        quota_bytes: b.quota_bytes,
        display_name: b.display_name,
        password: b.password,
        old_password: b.old_password,
    };
    let user = ctx.svc.update_user(&ctx.req.caller, &id, update).await?;
    Ok(Response::json(
        200,
        &user_json(&user, ctx.svc.settings.default_quota),
    ))
}

/// `DELETE /v1/users/{id}` (admin).
pub async fn delete(ctx: Ctx<'_>) -> HandlerResult {
    let id = user_id(&ctx)?;
    ctx.svc.delete_user(&ctx.req.caller, &id).await?;
    Ok(Response::empty(204))
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

/// `POST /v1/auth/login`.
pub async fn login(mut ctx: Ctx<'_>) -> HandlerResult {
    let b: Login = json_body(&mut ctx, r#"{"username":"...","password":"..."}"#).await?;
    let s = ctx.svc.login(&b.username, &b.password).await?;
    Ok(Response::json(200, &session_json(&s)))
}

#[derive(Deserialize)]
struct Refresh {
    refresh_token: String,
}

/// `POST /v1/auth/refresh` with `{"refresh_token"}`.
pub async fn refresh(mut ctx: Ctx<'_>) -> HandlerResult {
    let b: Refresh = json_body(&mut ctx, r#"{"refresh_token":"..."}"#).await?;
    let s = ctx.svc.refresh(&b.refresh_token).await?;
    Ok(Response::json(200, &session_json(&s)))
}

/// `POST /v1/auth/logout`: revokes the presented access token and its refresh token.
pub async fn logout(ctx: Ctx<'_>) -> HandlerResult {
    let kind = ctx
        .req
        .credential
        .as_ref()
        .ok_or_else(|| ApiError::unauthorized("sign in first"))?;
    ctx.svc.logout(kind).await?;
    Ok(Response::empty(204))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    label: Option<String>,
    expires_in: Option<Value>,
    /// Admins: make the token for this user (id or username).
    user: Option<String>,
}

/// `POST /v1/tokens`: 201 with the secret, shown this once.
pub async fn create_token(mut ctx: Ctx<'_>) -> HandlerResult {
    let b: CreateToken = json_body(&mut ctx, r#"{"label":"...","expires_in":"30d"}"#).await?;
    let ttl = expires_in(&b.expires_in)?;
    let t = ctx
        .svc
        .create_token(
            &ctx.req.caller,
            b.user.as_deref(),
            b.label.as_deref().unwrap_or(""),
            ttl,
        )
        .await?;
    Ok(Response::json(201, &issued_json(&t)))
}

/// `?user=` (admins: another user's tokens).
fn user_param(ctx: &Ctx<'_>) -> Result<Option<String>, ApiError> {
    Ok(ctx
        .req
        .query()?
        .get("user")
        .filter(|u| !u.is_empty())
        .map(str::to_string))
}

/// `GET /v1/tokens`: the caller's tokens, without secrets.
pub async fn list_tokens(ctx: Ctx<'_>) -> HandlerResult {
    let user = user_param(&ctx)?;
    let tokens = ctx.svc.list_tokens(&ctx.req.caller, user.as_deref())?;
    let tokens: Vec<Value> = tokens.iter().map(token_json).collect();
    Ok(Response::json(200, &json!({ "tokens": tokens })))
}

/// `DELETE /v1/tokens/{id}`.
pub async fn delete_token(ctx: Ctx<'_>) -> HandlerResult {
    let user = user_param(&ctx)?;
    ctx.svc
        .revoke_token(&ctx.req.caller, user.as_deref(), ctx.req.param(0))
        .await?;
    Ok(Response::empty(204))
}
