//! `GET /list`: the library as one JSON object keyed by SHA-256, each value
//! `{"filename", "last_modified", "file_path", "original_creation_date"}` (times as
//! float seconds), as the seed shows. What is in it, and the dates, are the core's
//! (`core::photos`). Keys are in the core's order (scanned roots by path, then
//! uploads by name). A library larger than the core's bound is cut there, with
//! `X-Ringbox-Truncated: true`.

use serde_json::{json, Map, Value};

use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::util::hex;

/// `GET /list`
pub async fn list(ctx: Ctx<'_>) -> HandlerResult {
    let library = ctx
        .svc
        .photo_library(&ctx.req.caller)
        .await
        .map_err(ApiError::from)?;
    let mut out = Map::with_capacity(library.entries.len());
    for e in library.entries {
        out.insert(
            hex::encode(&e.sha),
            json!({
                "filename": e.filename,
                "last_modified": e.last_modified,
                "file_path": e.file_path,
                "original_creation_date": e.original_creation_date,
            }),
        );
    }
    let mut resp = Response::json(200, &Value::Object(out));
    if library.truncated {
        resp.header("X-Ringbox-Truncated", "true");
    }
    Ok(resp)
}
