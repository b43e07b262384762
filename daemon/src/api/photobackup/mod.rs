//! The photobackup API (seed 002, a Flask media server): the library of the scanned
//! directories and the uploaded images, each named by its SHA-256. Mounted at `/`.
//!
//! | route | handler |
//! | --- | --- |
//! | `GET /list` (only without an `Authorization` header) | [`library::list`] |
//! | `GET /thumbnail/<sha256>` | [`thumbnails::get`] |
//! | `PUT /image/<filename>` | [`images::put`] |
//! | `GET\|HEAD /image/<sha256>` | [`images::get`] |
//!
//! Translation only: the library, the upload rules (file types, `secure_filename`,
//! dated names with `_N` suffixes, de-duplication by content) and the choice of the
//! file that answers for a hash are the core's (`core::photos`, `core::by_content`).
//! `ringbox serve --scan-dir DIR --rescan-interval SECS` is photobackup's
//! `--storage_dir DIR --rescan_interval SECS`; uploads go into ringbox's managed store
//! (namespace `photobackup`), never into the scanned directory.
//!
//! `/list` is a path pyBlobServer serves too: a request with an `Authorization` header
//! is not photobackup's (the router's declared rule). No authentication of its own:
//! the mount takes bearer tokens, so the original's open-to-all behaviour is
//! `--anonymous write`; with `--anonymous read` reads work and `PUT` is 401; with
//! `none` every route needs a token, so `/list` (taken only without one) is 401. Not
//! rate-limited by default.
//!
//! Errors: the original answers werkzeug's `abort(status, description=...)`, an HTML
//! page showing the status, its name and the description. ringbox sends the same
//! three as JSON, the form Flask's documentation gives for API errors:
//! `{"code": 400, "name": "Bad Request", "description": "Invalid SHA256 format."}`,
//! with the seed's descriptions where it has them.

mod images;
mod library;
mod thumbnails;

#[cfg(test)]
mod tests;

use ringbox_protocol::head::Method;
use serde_json::json;

use crate::core::{CoreError, ErrorKind};
use crate::handler;
use crate::http::auth::AuthScheme;
use crate::http::errors::ApiError;
use crate::http::ratelimit::RateTiers;
use crate::http::request::Ctx;
use crate::http::response::Response;
use crate::http::router::{Access, Mount, Route, WITHOUT_AUTHORIZATION};

/// The photobackup mount (at `/`).
pub fn mount() -> Mount {
    use Access::*;
    use Method::*;
    Mount {
        api: "photobackup",
        prefix: String::new(),
        routes: vec![
            Route::new(Get, "/list", Read, handler!(library::list)).when(WITHOUT_AUTHORIZATION),
            Route::new(Get, "/thumbnail/{sha256}", Read, handler!(thumbnails::get)),
            Route::new(Get, "/image/{sha256}", Read, handler!(images::get)),
            Route::new(Put, "/image/{filename}", Write, handler!(images::put)),
            // Flask's `<path:filename>`: a name with a literal `/` is taken too (and
            // sanitised like any other).
            Route::new(Put, "/image/{*filename}", Write, handler!(images::put)),
        ],
        auth: vec![AuthScheme::Bearer],
        render,
        rate: RateTiers::NONE,
    }
}

/// werkzeug's HTTP exception as JSON: `{"code", "name", "description"}`, with the
/// error's status and headers.
pub fn render(e: ApiError) -> Response {
    let body = json!({
        "code": e.status,
        "name": ringbox_protocol::response::reason_phrase(e.status),
        "description": e.message,
    });
    e.respond_with(&body)
}

/// 400 for a `<sha256_hex>` that is not 64 hex digits (the seed's wording).
fn invalid_sha() -> ApiError {
    ApiError::new(400, "invalid_hash", "Invalid SHA256 format.")
}

/// The `<sha256_hex>` path parameter.
fn sha_param(ctx: &Ctx<'_>) -> Result<[u8; 32], ApiError> {
    crate::util::hex::decode_sha256(ctx.req.param(0)).ok_or_else(invalid_sha)
}

/// A core error in this API's terms: anything not found (unknown hash, a file gone
/// from disk, bytes gone from the store) is the seed's 404 with `not_found`; the rest
/// keeps the core's status and message.
fn core_error(e: CoreError, not_found: &'static str) -> ApiError {
    match e.kind {
        ErrorKind::NotFound | ErrorKind::Gone => ApiError::new(404, "not_found", not_found),
        _ => ApiError::from(e),
    }
}
