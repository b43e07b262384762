//! The native `/v1` API: objects (files and text items), their content with ranges
//! and conditionals, blobs by hash, collections, share links (created here, opened
//! through `api::shares`), datasets (`datasets.rs`), health and metrics. JSON shapes
//! are defined in `render`; every rule is the core's. Errors are
//! `{"error":{"code","message"}}`.
//!
//! `GET /healthz` answers `{"status":"ok","time":…}`, which is also RhinoBox's health
//! probe: the RhinoBox mount (at `/` too) has no route of its own for it.

pub mod accounts;
mod collections;
mod content;
mod datasets;
mod debug;
mod objects;
mod render;
mod shares;
mod upload;
mod webhooks;

#[cfg(test)]
mod tests;

use ringbox_protocol::head::Method;

use crate::handler;
use crate::http::auth::AuthScheme;
use crate::http::errors::{render_native, ApiError};
use crate::http::ratelimit::RateTiers;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::http::router::{Access, Mount, Route};
use crate::metrics as counters;
use crate::store::ObjectId;
use crate::util::time::{now_ms, rfc3339_ms};

/// The native API's mount (at `/`).
pub fn mount() -> Mount {
    use Access::*;
    use Method::*;
    let mut routes = vec![
        Route::new(Get, "/healthz", Public, handler!(healthz)),
        Route::new(Get, "/metrics", Read, handler!(metrics)),
        Route::new(Get, "/v1/objects", Read, handler!(objects::list)),
        Route::new(Post, "/v1/objects", Write, handler!(upload::create)),
        Route::new(Get, "/v1/objects/{id}", Read, handler!(objects::get)),
        Route::new(Patch, "/v1/objects/{id}", Write, handler!(objects::patch)),
        Route::new(Delete, "/v1/objects/{id}", Write, handler!(objects::delete)),
        Route::new(
            Get,
            "/v1/objects/{id}/content",
            Read,
            handler!(content::object),
        ),
        Route::new(
            Put,
            "/v1/objects/{id}/content",
            Write,
            handler!(upload::put_content),
        ),
        Route::new(
            Get,
            "/v1/objects/{id}/thumbnail",
            Read,
            handler!(content::object_thumbnail),
        ),
        Route::new(Get, "/v1/blobs/{sha256}", Read, handler!(content::blob)),
        Route::new(
            Get,
            "/v1/blobs/{sha256}/thumbnail",
            Read,
            handler!(content::blob_thumbnail),
        ),
        Route::new(Post, "/v1/users", Admin, handler!(accounts::create)),
        Route::new(Get, "/v1/users", Admin, handler!(accounts::list)),
        Route::new(Get, "/v1/users/me", User, handler!(accounts::get)),
        Route::new(Patch, "/v1/users/me", User, handler!(accounts::patch)),
        Route::new(Get, "/v1/users/{id}", User, handler!(accounts::get)),
        Route::new(Patch, "/v1/users/{id}", User, handler!(accounts::patch)),
        Route::new(Delete, "/v1/users/{id}", Admin, handler!(accounts::delete)),
        Route::new(Post, "/v1/auth/login", Public, handler!(accounts::login)),
        Route::new(
            Post,
            "/v1/auth/refresh",
            Public,
            handler!(accounts::refresh),
        ),
        Route::new(Post, "/v1/auth/logout", User, handler!(accounts::logout)),
        Route::new(Post, "/v1/tokens", User, handler!(accounts::create_token)),
        Route::new(Get, "/v1/tokens", User, handler!(accounts::list_tokens)),
        Route::new(
            Delete,
            "/v1/tokens/{id}",
            User,
            handler!(accounts::delete_token),
        ),
        Route::new(Post, "/v1/webhooks", User, handler!(webhooks::create)),
        Route::new(Get, "/v1/webhooks", User, handler!(webhooks::list)),
        Route::new(Get, "/v1/webhooks/{id}", User, handler!(webhooks::get)),
        Route::new(Patch, "/v1/webhooks/{id}", User, handler!(webhooks::patch)),
        Route::new(
            Delete,
            "/v1/webhooks/{id}",
            User,
            handler!(webhooks::delete),
        ),
        Route::new(
            Get,
            "/v1/webhooks/{id}/deliveries",
            User,
            handler!(webhooks::deliveries),
        ),
        Route::new(Get, "/v1/datasets", Read, handler!(datasets::list)),
        Route::new(
            Get,
            "/v1/datasets/{ns}/rows",
            Read,
            handler!(datasets::rows),
        ),
        Route::new(
            Post,
            "/v1/datasets/{ns}/query",
            Read,
            handler!(datasets::query),
        ),
        Route::new(Post, "/v1/ingest", Write, handler!(datasets::ingest)),
        Route::new(Post, "/v1/collections", User, handler!(collections::create)),
        Route::new(Get, "/v1/collections", User, handler!(collections::list)),
        Route::new(
            Get,
            "/v1/collections/{id}",
            User,
            handler!(collections::get),
        ),
        Route::new(
            Patch,
            "/v1/collections/{id}",
            User,
            handler!(collections::patch),
        ),
        Route::new(
            Delete,
            "/v1/collections/{id}",
            User,
            handler!(collections::delete),
        ),
        Route::new(
            Get,
            "/v1/collections/{id}/objects",
            User,
            handler!(collections::objects),
        ),
        Route::new(
            Post,
            "/v1/collections/{id}/objects",
            User,
            handler!(collections::add),
        ),
        Route::new(
            Delete,
            "/v1/collections/{id}/objects/{object_id}",
            User,
            handler!(collections::remove),
        ),
        Route::new(Post, "/v1/shares", User, handler!(shares::create)),
        Route::new(Get, "/v1/shares", User, handler!(shares::list)),
        Route::new(Delete, "/v1/shares/{token}", User, handler!(shares::delete)),
    ];
    routes.extend(debug::routes());
    Mount {
        api: "native",
        prefix: String::new(),
        routes,
        auth: vec![AuthScheme::Bearer],
        render: render_native,
        rate: RateTiers::NONE,
    }
}

/// `GET /healthz` (the native and the RhinoBox health probe)
async fn healthz(_ctx: Ctx<'_>) -> HandlerResult {
    Ok(Response::json(
        200,
        &serde_json::json!({ "status": "ok", "time": rfc3339_ms(now_ms()) }),
    ))
}

/// `GET /metrics`
async fn metrics(_ctx: Ctx<'_>) -> HandlerResult {
    let mut r = Response::new(
        200,
        crate::http::Body::Bytes(counters::get().render().into_bytes()),
    );
    r.content_type("text/plain; version=0.0.4; charset=utf-8");
    Ok(r)
}

/// The `{id}` path parameter.
fn id_param(ctx: &Ctx<'_>) -> Result<ObjectId, ApiError> {
    let raw = ctx.req.param(0);
    crate::api::parse_uuid(raw, || {
        ApiError::new(
            400,
            "invalid_id",
            format!("`{raw}` is not an object id (a UUID)"),
        )
    })
}
