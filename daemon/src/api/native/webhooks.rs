//! Webhooks of the native API: `/v1/webhooks` (see `core::webhooks` for delivery,
//! signatures, retries and the SSRF guard).

use serde::Deserialize;
use serde_json::json;

use super::objects::MAX_JSON_BODY;
use crate::core::stream::read_to_vec;
use crate::core::webhooks::{delivery_json, webhook_json, NewWebhook};
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::store::WebhookChange;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    url: String,
    #[serde(default)]
    events: Vec<String>,
    secret: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    url: Option<String>,
    events: Option<Vec<String>>,
    enabled: Option<bool>,
}

async fn body<T: serde::de::DeserializeOwned>(
    ctx: &mut Ctx<'_>,
    shape: &str,
) -> Result<T, ApiError> {
    let b = read_to_vec(ctx.body, MAX_JSON_BODY).await?;
    serde_json::from_slice(&b)
        .map_err(|e| ApiError::bad_request(format!("the body must be JSON like {shape}: {e}")))
}

/// `POST /v1/webhooks` -> 201 with the secret (shown here only).
pub async fn create(mut ctx: Ctx<'_>) -> HandlerResult {
    let b: Create = body(
        &mut ctx,
        r#"{"url":"http://...","events":["object.created"],"secret":"..."}"#,
    )
    .await?;
    let hook = ctx
        .svc
        .create_webhook(
            &ctx.req.caller,
            NewWebhook {
                url: b.url,
                events: b.events,
                secret: b.secret,
                format: "native".into(),
            },
        )
        .await?;
    Ok(Response::json(201, &webhook_json(&hook, true)))
}

/// `GET /v1/webhooks`
pub async fn list(ctx: Ctx<'_>) -> HandlerResult {
    let hooks = ctx.svc.list_webhooks(&ctx.req.caller, None)?;
    let hooks: Vec<_> = hooks.iter().map(|h| webhook_json(h, false)).collect();
    Ok(Response::json(200, &json!({ "webhooks": hooks })))
}

/// `GET /v1/webhooks/{id}`
pub async fn get(ctx: Ctx<'_>) -> HandlerResult {
    let hook = ctx.svc.get_webhook(&ctx.req.caller, ctx.req.param(0))?;
    Ok(Response::json(200, &webhook_json(&hook, false)))
}

/// `PATCH /v1/webhooks/{id}`: `url`, `events`, `enabled` (`true` also re-enables a
/// failing hook).
pub async fn patch(mut ctx: Ctx<'_>) -> HandlerResult {
    let b: Patch = body(&mut ctx, r#"{"url":..,"events":[..],"enabled":true}"#).await?;
    let id = ctx.req.param(0).to_string();
    let hook = ctx
        .svc
        .change_webhook(
            &ctx.req.caller,
            &id,
            WebhookChange {
                url: b.url,
                events: b.events,
                enabled: b.enabled,
            },
        )
        .await?;
    Ok(Response::json(200, &webhook_json(&hook, false)))
}

/// `DELETE /v1/webhooks/{id}`
pub async fn delete(ctx: Ctx<'_>) -> HandlerResult {
    let id = ctx.req.param(0).to_string();
    ctx.svc.delete_webhook(&ctx.req.caller, &id).await?;
    Ok(Response::empty(204))
}

/// `GET /v1/webhooks/{id}/deliveries`: the latest attempts, newest first.
pub async fn deliveries(ctx: Ctx<'_>) -> HandlerResult {
    let d = ctx
        .svc
        .webhook_deliveries(&ctx.req.caller, ctx.req.param(0))?;
    let d: Vec<_> = d.iter().map(delivery_json).collect();
    Ok(Response::json(200, &json!({ "deliveries": d })))
}
