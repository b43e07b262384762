//! Collections: `POST|GET /collections`, `GET|DELETE /collections/{id}`,
//! `POST /collections/{id}/media`, `DELETE /collections/{id}/media/{media_id}`: the
//! core's collections of the caller (ownership, idempotent adds, limits).
//!
//! - Create takes `{"name","description"?}`; no name is a `validation_error`.
//! - The list is `page`/`per_page` like media (newest first).
//! - `GET /collections/{id}` has the collection's media (`data.media`, in the order
//!   added; the first [`MAX_MEMBERS_SHOWN`]).
//! - Adding takes `{"media_id"}` or `{"media_ids":[...]}`: every id must be one of
//!   the caller's media, else 404 (an unknown, malformed or foreign id alike); 200
//!   with the collection.
//! - Any collection id that is not one of the caller's collections is 404.

use serde_json::{json, Value};

use super::{
    core_error, created, invalid, json_object, media_for, media_id, media_json, no_content,
    not_found, ok, only_fields, opt_string, page_params, paged, NAMESPACE,
};
use crate::core::collections::NewCollection;
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};
use crate::store::{CollectionRecord, ObjectId};
use crate::util::time::rfc3339_ms;

/// Most members `GET /collections/{id}` lists.
pub const MAX_MEMBERS_SHOWN: usize = 1000;
/// Most collections the list pages through (the core's own per-user bound is lower).
const MAX_LISTED: usize = 10_000;

/// A collection as the seed's clients read it.
pub(super) fn collection_json(c: &CollectionRecord) -> Value {
    json!({
        "id": c.id.to_string(),
        "name": c.name,
        "description": c.description,
        "media_count": c.member_count,
        "user_id": c.owner,
        "created_at": rfc3339_ms(c.created_at_ms),
        "updated_at": rfc3339_ms(c.updated_at_ms),
    })
}

/// The `{id}` collection of the caller (404 for anything else).
fn collection(ctx: &Ctx<'_>) -> Result<CollectionRecord, ApiError> {
    let id = uuid::Uuid::try_parse(ctx.req.param(0)).map_err(|_| not_found("collection"))?;
    ctx.svc
        .collection_for(&ctx.req.caller, id)
        .map_err(|_| not_found("collection"))
        .and_then(|c| {
            // Admins see every collection in the core; here only their own.
            if ctx.req.caller.user() == Some(c.owner.as_str()) {
                Ok(c)
            } else {
                Err(not_found("collection"))
            }
        })
}

/// `POST /collections`
pub async fn create(mut ctx: Ctx<'_>) -> HandlerResult {
    let body = json_object(&mut ctx, false).await?;
    only_fields(&body, &["name", "description"])?;
    let name = opt_string(&body, "name", 256)?
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| invalid("name", "name is required"))?;
    let description = opt_string(&body, "description", 4096)?;
    let c = ctx
        .svc
        .create_collection(&ctx.req.caller, NewCollection { name, description })
        .await
        .map_err(core_error)?;
    created(collection_json(&c))
}

/// `GET /collections?page=&per_page=`
pub async fn list(ctx: Ctx<'_>) -> HandlerResult {
    let q = ctx.req.query()?;
    let (page, per_page) = page_params(&q)?;
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = ctx
            .svc
            .list_collections(&ctx.req.caller, None, cursor.as_deref(), 1000)
            .map_err(core_error)?;
        all.extend(p.collections);
        match p.next_cursor {
            Some(c) if all.len() < MAX_LISTED => cursor = Some(c),
            _ => break,
        }
    }
    let total = all.len() as u64;
    let start = ((page - 1).saturating_mul(per_page)).min(total) as usize;
    let items: Vec<Value> = all
        .iter()
        .skip(start)
        .take(per_page as usize)
        .map(collection_json)
        .collect();
    paged(items, total, page, per_page, |n| {
        format!("/collections?page={n}&per_page={per_page}")
    })
}

/// `GET /collections/{id}` (with its media)
pub async fn get(ctx: Ctx<'_>) -> HandlerResult {
    let c = collection(&ctx)?;
    let mut media = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = ctx
            .svc
            .collection_objects(&ctx.req.caller, c.id, cursor.as_deref(), 500)
            .map_err(core_error)?;
        media.extend(
            p.objects
                .into_iter()
                .filter(|r| r.namespace == NAMESPACE)
                .map(|r| media_json(&ctx.svc.shown_to(&ctx.req.caller, r))),
        );
        match p.next_cursor {
            Some(next) if media.len() < MAX_MEMBERS_SHOWN => cursor = Some(next),
            _ => break,
        }
    }
    media.truncate(MAX_MEMBERS_SHOWN);
    let mut v = collection_json(&c);
    v["media"] = Value::Array(media);
    ok(v)
}

/// `DELETE /collections/{id}` (its media stay)
pub async fn delete(ctx: Ctx<'_>) -> HandlerResult {
    let c = collection(&ctx)?;
    ctx.svc
        .delete_collection(&ctx.req.caller, c.id)
        .await
        .map_err(core_error)?;
    no_content()
}

/// `POST /collections/{id}/media` `{"media_id"}` or `{"media_ids":[...]}`
pub async fn add(mut ctx: Ctx<'_>) -> HandlerResult {
    let c = collection(&ctx)?;
    let body = json_object(&mut ctx, false).await?;
    only_fields(&body, &["media_id", "media_ids"])?;
    let mut raw: Vec<String> = Vec::new();
    match body.get("media_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => raw.push(s.clone()),
        Some(_) => return Err(invalid("media_id", "media_id must be a string")),
    }
    match body.get("media_ids") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for v in a {
                raw.push(
                    v.as_str()
                        .ok_or_else(|| invalid("media_ids", "media_ids must be strings"))?
                        .to_string(),
                );
            }
        }
        Some(_) => return Err(invalid("media_ids", "media_ids must be an array of ids")),
    }
    if raw.is_empty() {
        return Err(invalid(
            "media_id",
            "name the media: {\"media_id\": ...} or {\"media_ids\": [...]}",
        ));
    }
    let mut ids: Vec<ObjectId> = Vec::with_capacity(raw.len());
    for r in &raw {
        let id = media_id(r)?;
        media_for(&ctx, id)?;
        ids.push(id);
    }
    let c = ctx
        .svc
        .add_to_collection(&ctx.req.caller, c.id, ids)
        .await
        .map_err(core_error)?;
    ok(collection_json(&c))
}

/// `DELETE /collections/{id}/media/{media_id}` -> 204
pub async fn remove(ctx: Ctx<'_>) -> HandlerResult {
    let c = collection(&ctx)?;
    let id = media_id(ctx.req.param(1))?;
    ctx.svc
        .remove_from_collection(&ctx.req.caller, c.id, id)
        .await
        .map_err(core_error)?;
    no_content()
}
