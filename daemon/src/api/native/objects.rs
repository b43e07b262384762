//! Object records: `GET /v1/objects` (list), `GET|PATCH|DELETE /v1/objects/{id}`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::render::{list_json, object_json};
use super::{id_param, upload::TagsField};
use crate::core::expiry::expires_at_from_ttl;
use crate::core::objects::{Change, ListSpec};
use crate::core::stream::read_to_vec;
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::util::time::{now_ms, parse_rfc3339};

/// JSON request bodies (PATCH, JSON create) are read whole, so they are bounded.
pub const MAX_JSON_BODY: u64 = 1 << 20;

/// `GET /v1/objects?namespace=&prefix=&q=&tag=&mime=&limit=&cursor=`
pub async fn list(ctx: Ctx<'_>) -> HandlerResult {
    let q = ctx.req.query()?;
    let limit = match q.get("limit") {
        None => 100,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "limit must be an integer from 1 to 1000",
                ))
            }
        },
    };
    let nonempty = |k: &str| q.get(k).filter(|v| !v.is_empty()).map(str::to_string);
    let spec = ListSpec {
        namespace: q.get("namespace").map(str::to_string),
        prefix: nonempty("prefix"),
        q: nonempty("q"),
        tag: nonempty("tag"),
        mime: nonempty("mime"),
        owner: None,
        limit,
        cursor: nonempty("cursor"),
    };
    let page = ctx.svc.list_objects(&ctx.req.caller, &spec)?;
    let preview = ctx.svc.settings.list_text_preview;
    let objects: Vec<Value> = page.objects.iter().map(|r| list_json(r, preview)).collect();
    Ok(Response::json(
        200,
        &json!({ "objects": objects, "next_cursor": page.next_cursor }),
    ))
}

/// `GET /v1/objects/{id}`
pub async fn get(ctx: Ctx<'_>) -> HandlerResult {
    let id = id_param(&ctx)?;
    let rec = ctx.svc.get_object(&ctx.req.caller, id)?;
    Ok(Response::json(200, &object_json(&rec)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    namespace: Option<String>,
    tags: Option<TagsField>,
    metadata: Option<Value>,
    /// RFC 3339, or null to clear the expiry.
    #[serde(default, deserialize_with = "super::accounts::double_option")]
    expires_at: Option<Option<String>>,
    /// A duration from now (`30s`, `10m`, `7d`).
    ttl: Option<String>,
}

/// `PATCH /v1/objects/{id}`: rename, move, replace tags, merge metadata, set or clear
/// the expiry (`expires_at` as RFC 3339 or null, or `ttl` from now).
pub async fn patch(ctx: Ctx<'_>) -> HandlerResult {
    let id = id_param(&ctx)?;
    let body = read_to_vec(ctx.body, MAX_JSON_BODY).await?;
    let p: PatchBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON like {{\"name\":..,\"namespace\":..,\"tags\":[..],\"metadata\":{{..}}}}: {e}"
        ))
    })?;
    let metadata = match p.metadata {
        None => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err(ApiError::bad_request("metadata must be a JSON object")),
    };
    let expires_at_ms = match (p.expires_at, p.ttl) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either \"expires_at\" or \"ttl\", not both",
            ))
        }
        (Some(None), None) => Some(None),
        (Some(Some(t)), None) => Some(Some(parse_rfc3339(&t).ok_or_else(|| {
            ApiError::new(
                400,
                "invalid_expires_at",
                format!(
                    "expires_at {t:?} is not an RFC 3339 time like 2026-12-31T23:59:59Z (or null)"
                ),
            )
        })?)),
        (None, Some(ttl)) => Some(Some(expires_at_from_ttl(&ttl, now_ms())?)),
        (None, None) => None,
    };
    let change = Change {
        name: p.name,
        namespace: p.namespace,
        tags: p.tags.map(TagsField::into_list),
        metadata,
        expires_at_ms,
    };
    let rec = ctx.svc.change_object(&ctx.req.caller, id, change).await?;
    Ok(Response::json(200, &object_json(&rec)))
}

/// `DELETE /v1/objects/{id}`
pub async fn delete(ctx: Ctx<'_>) -> HandlerResult {
    let id = id_param(&ctx)?;
    ctx.svc.delete_object(&ctx.req.caller, id).await?;
    Ok(Response::empty(204))
}
