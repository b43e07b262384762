//! The RhinoBox API (seed `004`), mounted at `/`: unified ingestion (`/ingest`,
//! `/ingest/media`, `/ingest/json`) and files addressed by content hash or stored path
//! (`/files/...`). Errors are `{"error":"..."}` with the seed's messages where it gives
//! them. Health is the native `GET /healthz` (`{"status":"ok","time":...}`, the seed's
//! two fields), served by the native mount at the same root.
//!
//! Thin, like every API: files are ordinary objects of the core (namespace `rhinobox`,
//! see `layout.rs` for the mapping), so de-duplication, ownership, naming rules, the
//! audit log and (later) change events are the core's; JSON ingestion is the core's
//! ingest engine (`core::ingest`), whose datasets the native API reads back.
//!
//! Authentication: none of its own (the seed has none). Routes are `Read` (GET) and
//! `Write` (the rest), so a RhinoBox client works against `--anonymous write`, and with
//! `--anonymous none` it needs `Authorization: Bearer <token>` like the native API.
//!
//! What differs from RhinoBox, and why (also in the README):
//!
//! - `hash` is always filled in ingestion answers, and `duplicates` is true when the
//!   content was already stored: one object per content, whose stored path all later
//!   uploads of the same bytes get back.
//! - Stored paths are logical: `/files/download?path=` resolves them (an alias), no
//!   file exists under `<data>/media/`. `update_stored_file` in a rename is ignored.
//! - Ranges: every RFC 9110 form (suffix `bytes=-N` too, several ranges as
//!   `multipart/byteranges`); an end past the end is clamped; unsatisfiable is 416
//!   `{"error":"invalid range"}`.
//! - `PATCH /files/rename` answers the updated record (the `/files/metadata` shape)
//!   with RhinoBox's `renamed`, `message`, `old_metadata` and `new_metadata` beside it.
//! - Metadata values may be any JSON (RhinoBox keeps strings only).
//! - The `data` field of `/ingest` is a form field, so at most 64 KiB; larger batches
//!   go to `/ingest/json` (up to `--max-json-body`). Uploaded `.json` files are stored
//!   as generic files, not ingested.

mod changes;
mod files;
mod ingest;
pub mod layout;

use ringbox_protocol::head::Method;
use serde_json::json;

use crate::core::audit::View;
use crate::handler;
use crate::http::auth::AuthScheme;
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::http::router::{Access, Mount, Route};

/// The RhinoBox API's mount (at `/`).
pub fn mount() -> Mount {
    use Access::*;
    use Method::*;
    Mount {
        api: "rhinobox",
        prefix: String::new(),
        routes: vec![
            Route::new(Post, "/ingest", Write, handler!(ingest::unified)),
            Route::new(Post, "/ingest/media", Write, handler!(ingest::media)),
            Route::new(Post, "/ingest/json", Write, handler!(ingest::json)),
            Route::new(Get, "/files/download", Read, handler!(files::download)),
            Route::new(Get, "/files/stream", Read, handler!(files::stream)),
            Route::new(Get, "/files/metadata", Read, handler!(files::metadata)),
            Route::new(Get, "/files/search", Read, handler!(files::search)),
            Route::new(Patch, "/files/rename", Write, handler!(changes::rename)),
            Route::new(
                Patch,
                "/files/{hash}/metadata",
                Write,
                handler!(changes::metadata),
            ),
            Route::new(
                Post,
                "/files/metadata/batch",
                Write,
                handler!(changes::metadata_batch),
            ),
            Route::new(Delete, "/files/{hash}", Write, handler!(changes::delete)),
            Route::new(Delete, "/files", Write, handler!(missing_file_id)),
        ],
        auth: vec![AuthScheme::Bearer],
        render,
        rate: crate::http::ratelimit::RateTiers::NONE,
    }
}

/// The audit views RhinoBox promises (`metadata/delete_log.ndjson`,
/// `metadata/rename_log.ndjson`).
pub fn audit_views() -> Vec<View> {
    layout::AUDIT_VIEWS.to_vec()
}

/// RhinoBox's error shape: `{"error":"message"}`.
pub fn render(e: ApiError) -> Response {
    let body = json!({ "error": e.message });
    e.respond_with(&body)
}

/// `DELETE /files` (no id).
async fn missing_file_id(_ctx: Ctx<'_>) -> HandlerResult {
    Err(ApiError::bad_request("file_id is required"))
}

/// 404 `file not found: hash <hash>`.
fn not_found_hash(hash: &str) -> ApiError {
    ApiError::new(404, "not_found", format!("file not found: hash {hash}"))
}

/// 404 `file not found: path <path>`.
fn not_found_path(path: &str) -> ApiError {
    ApiError::new(404, "not_found", format!("file not found: path {path}"))
}
