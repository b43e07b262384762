//! Webhooks: `POST|GET /webhooks`, `GET|DELETE /webhooks/{id}`, and the seed's
//! payload ([`payload`], registered with the core as the `mediavault` format).
//!
//! A hook names the seed's events; the core stores and filters the core's events
//! they translate to (the core's sender then signs, retries and guards against SSRF
//! exactly as for native hooks):
//!
//! | seed event | core event | `data.id` |
//! | --- | --- | --- |
//! | `media.uploaded` | `object.created` (namespace `mediavault`) | the media id |
//! | `media.deleted` | `object.deleted` (namespace `mediavault`) | the media id |
//! | `user.registered` | `user.created` | the user id |
//! | `collection.created` | `collection.created` | the collection id |
//!
//! The body is `{"event","data":{"id",...,"user_id"},"timestamp"}`; no `events` (or
//! an empty list) means all four. An unknown event name is a `validation_error`. Who
//! sees what is the core's rule: a user's hook gets that user's events (so
//! `user.registered` reaches admins' hooks).

use serde_json::{json, Value};

use super::{
    core_error, created, invalid, json_object, media_type, no_content, not_found, ok, only_fields,
    opt_string, NAMESPACE,
};
use crate::core::webhooks::NewWebhook;
use crate::http::request::{Ctx, HandlerResult};
use crate::store::{EventRecord, WebhookRecord};
use crate::util::hex;
use crate::util::time::rfc3339_ms;

/// The payload format's name.
pub const FORMAT: &str = "mediavault";

/// Seed event names and the core events they translate.
const EVENTS: [(&str, &str); 4] = [
    ("media.uploaded", "object.created"),
    ("media.deleted", "object.deleted"),
    ("user.registered", "user.created"),
    ("collection.created", "collection.created"),
];

fn to_core(seed: &str) -> Option<&'static str> {
    EVENTS.iter().find(|(s, _)| *s == seed).map(|(_, c)| *c)
}

fn to_seed(core: &str) -> Option<&'static str> {
    EVENTS.iter().find(|(_, c)| *c == core).map(|(s, _)| *s)
}

/// The body of a delivery of `ev` (`None`: not an event of this API).
pub fn payload(ev: &EventRecord) -> Option<(String, Value)> {
    let event = to_seed(&ev.kind)?;
    let data = match ev.kind.as_str() {
        "object.created" | "object.deleted" => {
            let o = ev.object.as_ref().filter(|o| o.namespace == NAMESPACE)?;
            json!({
                "id": o.id.to_string(),
                "type": media_type(&o.mime_type),
                "filename": o.name,
                "mime_type": o.mime_type,
                "size": o.size,
                "sha256": o.sha256.map(|s| hex::encode(&s)),
                "user_id": ev.owner,
            })
        }
        "user.created" => {
            let mut d = json!({ "id": ev.subject, "user_id": ev.subject });
            if let Some(u) = changes(ev).and_then(|c| c.get("username").cloned()) {
                d["username"] = u;
            }
            d
        }
        _ => {
            let mut d = json!({ "id": ev.subject, "user_id": ev.owner });
            if let Some(n) = changes(ev).and_then(|c| c.get("name").cloned()) {
                d["name"] = n;
            }
            d
        }
    };
    Some((
        event.to_string(),
        json!({ "event": event, "data": data, "timestamp": rfc3339_ms(ev.at_ms) }),
    ))
}

fn changes(ev: &EventRecord) -> Option<Value> {
    ev.changes_json
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
}

/// A hook as this API shows it (its events by their seed names).
fn hook_json(h: &WebhookRecord, with_secret: bool) -> Value {
    let events: Vec<&str> = h.events.iter().filter_map(|e| to_seed(e)).collect();
    let mut v = json!({
        "id": h.id.to_string(),
        "url": h.url,
        "events": events,
        "active": h.enabled && !h.failing,
        "created_at": rfc3339_ms(h.created_at_ms),
    });
    if with_secret {
        v["secret"] = Value::String(h.secret.clone());
    }
    v
}

/// `POST /webhooks` `{"url","events":[...],"secret"?}` -> 201 with the secret.
pub async fn create(mut ctx: Ctx<'_>) -> HandlerResult {
    let body = json_object(&mut ctx, false).await?;
    only_fields(&body, &["url", "events", "secret"])?;
    let url = opt_string(&body, "url", 2048)?
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid("url", "url is required"))?;
    let names: Vec<String> = match body.get("events") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("events", "events must be an array of event names"))?,
        Some(_) => return Err(invalid("events", "events must be an array of event names")),
    };
    let mut events: Vec<String> = Vec::new();
    for n in &names {
        let core = to_core(n).ok_or_else(|| {
            invalid(
                "events",
                format!(
                    "unknown event {n:?}; events are media.uploaded, media.deleted, user.registered, collection.created"
                ),
            )
        })?;
        if !events.iter().any(|e| e == core) {
            events.push(core.to_string());
        }
    }
    if events.is_empty() {
        events = EVENTS.iter().map(|(_, c)| c.to_string()).collect();
    }
    let hook = ctx
        .svc
        .create_webhook(
            &ctx.req.caller,
            NewWebhook {
                url,
                events,
                secret: opt_string(&body, "secret", 256)?,
                format: FORMAT.to_string(),
            },
        )
        .await
        .map_err(core_error)?;
    created(hook_json(&hook, true))
}

/// `GET /webhooks`: the caller's hooks of this API.
pub async fn list(ctx: Ctx<'_>) -> HandlerResult {
    let hooks = ctx
        .svc
        .list_webhooks(&ctx.req.caller, Some(FORMAT))
        .map_err(core_error)?;
    let mine = ctx.req.caller.user();
    ok(Value::Array(
        hooks
            .iter()
            .filter(|h| Some(h.owner.as_str()) == mine)
            .map(|h| hook_json(h, false))
            .collect(),
    ))
}

/// The caller's hook `{id}` of this API (404 for anything else).
fn hook(ctx: &Ctx<'_>) -> Result<WebhookRecord, crate::http::errors::ApiError> {
    let h = ctx
        .svc
        .get_webhook(&ctx.req.caller, ctx.req.param(0))
        .map_err(|_| not_found("webhook"))?;
    if h.format != FORMAT || ctx.req.caller.user() != Some(h.owner.as_str()) {
        return Err(not_found("webhook"));
    }
    Ok(h)
}

/// `GET /webhooks/{id}`
pub async fn get(ctx: Ctx<'_>) -> HandlerResult {
    ok(hook_json(&hook(&ctx)?, false))
}

/// `DELETE /webhooks/{id}`
pub async fn delete(ctx: Ctx<'_>) -> HandlerResult {
    let h = hook(&ctx)?;
    ctx.svc
        .delete_webhook(&ctx.req.caller, &h.id.to_string())
        .await
        .map_err(core_error)?;
    no_content()
}
