//! Share links of the native API: `POST|GET /v1/shares`, `DELETE /v1/shares/{token or
//! id}`. The links themselves are opened through the public `shares` mount
//! (`api::shares`, `/share/{token}`). Every rule is the core's (`core::shares`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::accounts::{expires_in, json_body};
use crate::core::shares::{IssuedShare, NewShare};
use crate::core::Local;
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::store::{ShareRecord, ShareTarget};
use crate::util::time::rfc3339_ms;

/// The JSON of a share (no token: only its hash is stored).
pub fn share_json(svc: &Local, s: &ShareRecord) -> Value {
    let mut v = json!({
        "id": s.id.to_string(),
        "created_at": rfc3339_ms(s.created_at_ms),
        "expires_at": s.expires_at_ms.map(rfc3339_ms),
        "max_downloads": s.max_downloads,
        "downloads": svc.share_downloads(s),
        "has_password": s.password_hash.is_some(),
    });
    match s.target {
        ShareTarget::Object(id) => v["object_id"] = json!(id.to_string()),
        ShareTarget::Collection(id) => v["collection_id"] = json!(id.to_string()),
    }
    v
}

/// The JSON of a new share: its token and URL (shown here only).
pub fn issued_json(svc: &Local, s: &IssuedShare) -> Value {
    let mut v = share_json(svc, &s.record);
    v["token"] = json!(s.token);
    v["url"] = json!(s.url);
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    object_id: Option<String>,
    collection_id: Option<String>,
    expires_in: Option<Value>,
    max_downloads: Option<u64>,
    password: Option<String>,
}

/// `POST /v1/shares` -> 201 `{"token","url","expires_at",...}`.
pub async fn create(mut ctx: Ctx<'_>) -> HandlerResult {
    let b: Create = json_body(
        &mut ctx,
        r#"{"object_id":"..."} or {"collection_id":"...","expires_in":"7d","max_downloads":10,"password":"..."}"#,
    )
    .await?;
    // An id that is not a UUID cannot exist: the same 404 as a missing one.
    let parse = |raw: &str, what: &str| {
        uuid::Uuid::try_parse(raw).map_err(|_| {
            ApiError::new(
                404,
                "not_found",
                format!("the {what} {raw:?} does not exist"),
            )
        })
    };
    let target = match (&b.object_id, &b.collection_id) {
        (Some(o), None) => ShareTarget::Object(parse(o, "object")?),
        (None, Some(c)) => ShareTarget::Collection(parse(c, "collection")?),
        _ => {
            return Err(ApiError::bad_request(
                "name exactly one of \"object_id\" and \"collection_id\"",
            ))
        }
    };
    let issued = ctx
        .svc
        .create_share(
            &ctx.req.caller,
            NewShare {
                target,
                expires_in: expires_in(&b.expires_in)?,
                max_downloads: b.max_downloads,
                password: b.password,
            },
        )
        .await?;
    Ok(Response::json(201, &issued_json(ctx.svc, &issued)))
}

/// `GET /v1/shares?limit=&cursor=`: the caller's shares, newest first.
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
    let (shares, next) = ctx
        .svc
        .list_shares(&ctx.req.caller, q.get("cursor"), limit)?;
    let items: Vec<Value> = shares.iter().map(|s| share_json(ctx.svc, s)).collect();
    Ok(Response::json(
        200,
        &json!({ "shares": items, "next_cursor": next }),
    ))
}

/// `DELETE /v1/shares/{token or id}` -> 204; the link stops working at once.
pub async fn delete(ctx: Ctx<'_>) -> HandlerResult {
    let which = ctx.req.param(0).to_string();
    ctx.svc.revoke_share(&ctx.req.caller, &which).await?;
    Ok(Response::empty(204))
}
