//! The native `/v1` API: objects (files and text items), their content with ranges
//! and conditionals, blobs by hash, health and metrics. JSON shapes are defined here
//! (`render`); input rules for names, namespaces and tags live in `validate`.

mod content;
mod objects;
mod render;
mod upload;
pub mod validate;

use ringbox_protocol::head::Method;

use crate::api::Ctx;
use crate::http::errors::ApiError;
use crate::http::response::Response;
use crate::metrics as counters;
use crate::store::ObjectId;
use crate::util::time::{now_ms, rfc3339_ms};

pub use render::object_json;

type Result<T> = std::result::Result<T, ApiError>;

/// `GET /healthz`
pub fn healthz() -> Result<Response> {
    Ok(Response::json(
        200,
        &serde_json::json!({ "status": "ok", "time": rfc3339_ms(now_ms()) }),
    ))
}

/// `GET /metrics`
pub fn metrics() -> Result<Response> {
    let mut r = Response::new(
        200,
        crate::http::Body::Bytes(counters::get().render().into_bytes()),
    );
    r.content_type("text/plain; version=0.0.4; charset=utf-8");
    Ok(r)
}

/// `/v1/objects`
pub async fn objects(ctx: Ctx<'_>) -> Result<Response> {
    match ctx.head.method() {
        Method::Post => upload::create(ctx).await,
        _ => objects::list(&ctx),
    }
}

/// `/v1/objects/{id}`
pub async fn object(ctx: Ctx<'_>) -> Result<Response> {
    let id = parse_id(ctx.route.param(0))?;
    match ctx.head.method() {
        Method::Patch => objects::patch(ctx, id).await,
        Method::Delete => objects::delete(&ctx, id).await,
        _ => objects::get(&ctx, id),
    }
}

/// `/v1/objects/{id}/content`
pub async fn object_content(ctx: Ctx<'_>) -> Result<Response> {
    let id = parse_id(ctx.route.param(0))?;
    match ctx.head.method() {
        Method::Put => upload::put_content(ctx, id).await,
        _ => content::object(&ctx, id).await,
    }
}

/// `/v1/blobs/{sha256}`
pub async fn blob(ctx: Ctx<'_>) -> Result<Response> {
    let raw = ctx.route.param(0);
    let sha = crate::util::hex::decode_sha256(raw).ok_or_else(|| {
        ApiError::new(
            400,
            "invalid_hash",
            "a blob is named by 64 hex digits of its SHA-256",
        )
    })?;
    content::blob(&ctx, sha).await
}

/// Parse a UUID path parameter.
fn parse_id(raw: &str) -> Result<ObjectId> {
    uuid::Uuid::try_parse(raw).map_err(|_| {
        ApiError::new(
            400,
            "invalid_id",
            format!("`{raw}` is not an object id (a UUID)"),
        )
    })
}
