//! The Metaclip API (seed 000, a FastAPI server): text and file items with UUIDs, their
//! bytes with ranges, and a WebSocket feed of created and deleted items. Mounted at `/`.
//!
//! | route | handler |
//! | --- | --- |
//! | `GET /` | `{"status":"healthy"}` (no token needed) |
//! | `POST /items`, `GET /items` | [`items::create`], [`items::list`] |
//! | `GET /items/{item_id}`, `DELETE /items/{item_id}` | [`items::get`], [`items::delete`] |
//! | `HEAD\|GET /file/{item_id}`, `PUT /file/{item_id}` | [`files::get`], [`files::put`] |
//! | `GET /ws` (WebSocket) | [`feed::ws`] |
//!
//! Translation only: an item is a core object in the [`NAMESPACE`] namespace. A text
//! item is a text object (`content` is its text; its name is its id); a file item is a
//! file object named after its `content` (the file name the client gave), pending until
//! `PUT /file/{id}` gives it bytes. Naming, ownership, access, quotas, de-duplication,
//! lost content and events are the core's, exactly as for the native API; objects of
//! other namespaces are not items (404 here).
//!
//! No authentication of its own: the mount takes bearer tokens, so the original's
//! open-to-all behaviour is `--anonymous write`; with `--anonymous read` reads work and
//! writes are 401; with `none` every route but `GET /` needs a token. Not rate-limited
//! by default. Errors are FastAPI's shape, `{"detail": "..."}`, with the seed's
//! messages where it names them.

mod feed;
mod files;
mod items;

#[cfg(test)]
mod tests;

use ringbox_protocol::head::Method;
use serde_json::{json, Value};

use crate::core::{CoreError, ErrorKind};
use crate::handler;
use crate::http::auth::AuthScheme;
use crate::http::errors::ApiError;
use crate::http::ratelimit::RateTiers;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::http::router::{Access, Mount, Route};
use crate::store::{Kind, ObjectId, ObjectRecord};

/// The namespace that holds Metaclip's items.
pub const NAMESPACE: &str = "metaclip";

/// The Metaclip mount (at `/`).
pub fn mount() -> Mount {
    use Access::*;
    use Method::*;
    Mount {
        api: "metaclip",
        prefix: String::new(),
        routes: vec![
            Route::new(Get, "/", Public, handler!(health)),
            Route::new(Post, "/items", Write, handler!(items::create)),
            Route::new(Get, "/items", Read, handler!(items::list)),
            Route::new(Get, "/items/{item_id}", Read, handler!(items::get)),
            Route::new(Delete, "/items/{item_id}", Write, handler!(items::delete)),
            Route::new(Get, "/file/{item_id}", Read, handler!(files::get)),
            Route::new(Put, "/file/{item_id}", Write, handler!(files::put)),
            Route::new(Get, "/ws", Read, handler!(feed::ws)),
        ],
        auth: vec![AuthScheme::Bearer],
        render: render_detail,
        rate: RateTiers::NONE,
    }
}

/// FastAPI's error shape: `{"detail": "<message>"}`, with the error's status and
/// headers (`WWW-Authenticate` on 401, `Allow` on 405, `Content-Range` on 416).
pub fn render_detail(e: ApiError) -> Response {
    let body = json!({ "detail": e.message });
    e.respond_with(&body)
}

/// `GET /`: the health check. Every client gets the JSON, whatever its `Accept`: the
/// original (FastAPI) ignores `Accept` too, so monitors that send
/// `Accept: text/html,*/*` keep parsing what they always got, and a browser shows
/// the JSON as text.
async fn health(_ctx: Ctx<'_>) -> HandlerResult {
    Ok(Response::json(200, &json!({ "status": "healthy" })))
}

/// An item as the seed shows it: `{"id","type","content"}`; a file item's `content` is
/// its file name.
fn item_json(rec: &ObjectRecord) -> Value {
    let (kind, content) = match rec.kind {
        Kind::Text => ("text", rec.content.as_deref().unwrap_or("")),
        Kind::File => ("file", rec.name.as_str()),
    };
    json!({ "id": rec.id.to_string(), "type": kind, "content": content })
}

/// 404 as the seed words it.
fn not_found() -> ApiError {
    ApiError::new(404, "not_found", "Item not found")
}

/// The `{item_id}` path parameter: anything but a UUID names no item (404, like an
/// unknown id, as FastAPI's `str` parameter would).
fn item_id(ctx: &Ctx<'_>) -> Result<ObjectId, ApiError> {
    crate::api::parse_uuid(ctx.req.param(0), not_found)
}

/// A core error in this API's terms: "does not exist" is the seed's 404 wording, lost
/// content its 410 "File lost"; the rest keeps the core's status and message.
fn core_error(e: CoreError) -> ApiError {
    match e.kind {
        ErrorKind::NotFound => not_found(),
        ErrorKind::Gone => ApiError::new(410, e.code, "File lost"),
        _ => ApiError::from(e),
    }
}

/// The record of item `id` as the caller may see it; objects outside [`NAMESPACE`]
/// are not items.
fn item_for_read(ctx: &Ctx<'_>, id: ObjectId) -> Result<ObjectRecord, ApiError> {
    let rec = ctx
        .svc
        .object_for_read(&ctx.req.caller, id)
        .map_err(core_error)?;
    if rec.namespace != NAMESPACE {
        return Err(not_found());
    }
    Ok(rec)
}
