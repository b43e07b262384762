//! Object records: list, get, patch, delete.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{object_json, validate, Result};
use crate::api::Ctx;
use crate::http::errors::ApiError;
use crate::http::response::Response;
use crate::server::conn::ConnIo;
use crate::store::{Command, ListQuery, MetadataChange, ObjectId, ObjectPatch, Reply};
use crate::util::query::Query;
use crate::util::time::now_ms;

/// JSON request bodies (PATCH, JSON create) are read whole, so they are bounded.
pub const MAX_JSON_BODY: u64 = 1 << 20;

/// Read a whole (small) request body.
pub async fn read_small_body(io: &mut ConnIo, limit: u64) -> Result<Vec<u8>> {
    if io.declared_length().is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = io.next_body_chunk().await? {
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(chunk);
    }
    Ok(body)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        413,
        "payload_too_large",
        format!("a JSON body may be at most {limit} bytes"),
    )
    .closing()
}

pub fn query(ctx: &Ctx<'_>) -> Result<Query> {
    Query::parse(ctx.head.query()).map_err(|p| {
        ApiError::bad_request(format!(
            "query parameter `{p}` is not valid percent-encoded UTF-8"
        ))
    })
}

/// `GET /v1/objects?namespace=&prefix=&q=&limit=&cursor=`
pub fn list(ctx: &Ctx<'_>) -> Result<Response> {
    let q = query(ctx)?;
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
    let namespace = q.get("namespace").map(validate::namespace).transpose()?;
    let page = ctx.w.store().list_objects(&ListQuery {
        namespace,
        prefix: q
            .get("prefix")
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        q: q.get("q").filter(|p| !p.is_empty()).map(str::to_string),
        limit,
        cursor: q
            .get("cursor")
            .filter(|p| !p.is_empty())
            .map(str::to_string),
    })?;
    let objects: Vec<Value> = page.objects.iter().map(object_json).collect();
    Ok(Response::json(
        200,
        &json!({ "objects": objects, "next_cursor": page.next_cursor }),
    ))
}

/// `GET /v1/objects/{id}`
pub fn get(ctx: &Ctx<'_>, id: ObjectId) -> Result<Response> {
    let rec = ctx
        .w
        .store()
        .get_object(id)?
        .ok_or_else(|| ApiError::not_found("the object"))?;
    Ok(Response::json(200, &object_json(&rec)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    namespace: Option<String>,
    tags: Option<TagsField>,
    metadata: Option<Value>,
}

/// Tags as a JSON list or a comma-separated string.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum TagsField {
    List(Vec<String>),
    Csv(String),
}

impl TagsField {
    pub fn validate(self) -> Result<Vec<String>> {
        match self {
            TagsField::List(l) => validate::tags(l),
            TagsField::Csv(s) => validate::tags_csv(&s),
        }
    }
}

/// `PATCH /v1/objects/{id}`: rename, move, replace tags, merge metadata.
pub async fn patch(ctx: Ctx<'_>, id: ObjectId) -> Result<Response> {
    let body = read_small_body(ctx.io, MAX_JSON_BODY).await?;
    let p: PatchBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON like {{\"name\":..,\"namespace\":..,\"tags\":[..],\"metadata\":{{..}}}}: {e}"
        ))
    })?;
    let patch = ObjectPatch {
        name: p.name.as_deref().map(validate::name).transpose()?,
        namespace: p
            .namespace
            .as_deref()
            .map(validate::namespace)
            .transpose()?,
        tags: p.tags.map(TagsField::validate).transpose()?,
        metadata: p
            .metadata
            .map(validate::metadata)
            .transpose()?
            .map(|m: Map<String, Value>| MetadataChange::Merge(m)),
        ..ObjectPatch::default()
    };
    match ctx
        .w
        .store()
        .writer()
        .submit(Command::Patch {
            id,
            patch,
            now_ms: now_ms(),
        })
        .await?
    {
        Reply::Object(rec) => Ok(Response::json(200, &object_json(&rec))),
        other => Err(ApiError::internal(format!(
            "unexpected writer reply {other:?}"
        ))),
    }
}

/// `DELETE /v1/objects/{id}`
pub async fn delete(ctx: &Ctx<'_>, id: ObjectId) -> Result<Response> {
    ctx.w
        .store()
        .writer()
        .submit(Command::Delete { id })
        .await?;
    Ok(Response::empty(204))
}
