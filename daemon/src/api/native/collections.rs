//! Collections of the native API: `/v1/collections`, `/v1/collections/{id}`,
//! `/v1/collections/{id}/objects`. Every rule (ownership, which objects may be added,
//! idempotent adds, limits) is the core's (`core::collections`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::accounts::{double_option, json_body};
use super::render::list_json;
use crate::core::collections::{CollectionChange, NewCollection};
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::store::{CollectionRecord, ObjectId};
use crate::util::time::rfc3339_ms;

/// The JSON of a collection.
pub fn collection_json(c: &CollectionRecord) -> Value {
    json!({
        "id": c.id.to_string(),
        "name": c.name,
        "description": c.description,
        "owner": c.owner,
        "object_count": c.member_count,
        "created_at": rfc3339_ms(c.created_at_ms),
        "updated_at": rfc3339_ms(c.updated_at_ms),
    })
}

/// The `{id}` of a collection route (400 when it is not a UUID, like objects).
fn collection_id(ctx: &Ctx<'_>) -> Result<ObjectId, ApiError> {
    let raw = ctx.req.param(0);
    crate::api::parse_uuid(raw, || {
        ApiError::new(
            400,
            "invalid_id",
            format!("`{raw}` is not a collection id (a UUID)"),
        )
    })
}

/// `limit` (1-1000, default 100) and `cursor` of a page.
fn page_params(ctx: &Ctx<'_>) -> Result<(usize, Option<String>), ApiError> {
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
    Ok((
        limit,
        q.get("cursor")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    name: String,
    description: Option<String>,
}

/// `POST /v1/collections` -> 201 with the collection.
pub async fn create(mut ctx: Ctx<'_>) -> HandlerResult {
    let b: Create = json_body(&mut ctx, r#"{"name":"...","description":"..."}"#).await?;
    let c = ctx
        .svc
        .create_collection(
            &ctx.req.caller,
            NewCollection {
                name: b.name,
                description: b.description,
            },
        )
        .await?;
    let mut r = Response::json(201, &collection_json(&c));
    r.header("Location", format!("/v1/collections/{}", c.id));
    Ok(r)
}

/// `GET /v1/collections?limit=&cursor=` (newest first; admins may add `user=`).
pub async fn list(ctx: Ctx<'_>) -> HandlerResult {
    let (limit, cursor) = page_params(&ctx)?;
    let q = ctx.req.query()?;
    let page = ctx.svc.list_collections(
        &ctx.req.caller,
        q.get("user").filter(|u| !u.is_empty()),
        cursor.as_deref(),
        limit,
    )?;
    let items: Vec<Value> = page.collections.iter().map(collection_json).collect();
    Ok(Response::json(
        200,
        &json!({ "collections": items, "next_cursor": page.next_cursor }),
    ))
}

/// `GET /v1/collections/{id}`
pub async fn get(ctx: Ctx<'_>) -> HandlerResult {
    let id = collection_id(&ctx)?;
    let c = ctx.svc.collection_for(&ctx.req.caller, id)?;
    Ok(Response::json(200, &collection_json(&c)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    description: Option<Option<String>>,
}

/// `PATCH /v1/collections/{id}`: `name`, `description` (null clears it).
pub async fn patch(mut ctx: Ctx<'_>) -> HandlerResult {
    let id = collection_id(&ctx)?;
    let b: Patch = json_body(&mut ctx, r#"{"name":"...","description":"..."}"#).await?;
    let c = ctx
        .svc
        .change_collection(
            &ctx.req.caller,
            id,
            CollectionChange {
                name: b.name,
                description: b.description,
            },
        )
        .await?;
    Ok(Response::json(200, &collection_json(&c)))
}

/// `DELETE /v1/collections/{id}` (its objects stay).
pub async fn delete(ctx: Ctx<'_>) -> HandlerResult {
    let id = collection_id(&ctx)?;
    ctx.svc.delete_collection(&ctx.req.caller, id).await?;
    Ok(Response::empty(204))
}

/// `GET /v1/collections/{id}/objects?limit=&cursor=`: members in the order added.
pub async fn objects(ctx: Ctx<'_>) -> HandlerResult {
    let id = collection_id(&ctx)?;
    let (limit, cursor) = page_params(&ctx)?;
    let page = ctx
        .svc
        .collection_objects(&ctx.req.caller, id, cursor.as_deref(), limit)?;
    let preview = ctx.svc.settings.list_text_preview;
    let objects: Vec<Value> = page.objects.iter().map(|r| list_json(r, preview)).collect();
    Ok(Response::json(
        200,
        &json!({ "objects": objects, "next_cursor": page.next_cursor }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Add {
    object_id: Option<String>,
    object_ids: Option<Vec<String>>,
}

/// An object id named in a body: one that is not a UUID cannot exist, so it is the
/// same 404 as a missing object.
fn object_id(raw: &str) -> Result<ObjectId, ApiError> {
    uuid::Uuid::try_parse(raw).map_err(|_| {
        ApiError::new(
            404,
            "not_found",
            format!("the object {raw:?} does not exist"),
        )
    })
}

/// `POST /v1/collections/{id}/objects` `{"object_id"}` or `{"object_ids":[...]}` ->
/// 200 with the collection (adding a member twice keeps one membership).
pub async fn add(mut ctx: Ctx<'_>) -> HandlerResult {
    let id = collection_id(&ctx)?;
    let b: Add = json_body(&mut ctx, r#"{"object_id":"..."} or {"object_ids":["..."]}"#).await?;
    let raw: Vec<String> = b
        .object_id
        .into_iter()
        .chain(b.object_ids.unwrap_or_default())
        .collect();
    let ids = raw
        .iter()
        .map(|s| object_id(s))
        .collect::<Result<Vec<_>, _>>()?;
    let c = ctx.svc.add_to_collection(&ctx.req.caller, id, ids).await?;
    Ok(Response::json(200, &collection_json(&c)))
}

/// `DELETE /v1/collections/{id}/objects/{object_id}` -> 204.
pub async fn remove(ctx: Ctx<'_>) -> HandlerResult {
    let id = collection_id(&ctx)?;
    let obj = object_id(ctx.req.param(1))?;
    ctx.svc
        .remove_from_collection(&ctx.req.caller, id, obj)
        .await?;
    Ok(Response::empty(204))
}
