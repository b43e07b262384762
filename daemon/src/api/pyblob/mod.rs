//! The pyBlobServer API (seed 003, a FastAPI server): per-user bearer tokens, uploads
//! with short file ids, `/s/{file_id}` as bytes, HTML or JSON, the caller's list,
//! deletes one by one or in bulk. Mounted at `/`.
//!
//! | route | handler |
//! | --- | --- |
//! | `GET /health` | `{"status":"healthy"}` (no token needed) |
//! | `GET /user/{user_id}` (`?function=change_token`) | [`users::get`] |
//! | `POST /upload` | [`upload::create`] |
//! | `GET /s/{file_id}` (`?output=file\|html\|json`) | [`files::show`] |
//! | `GET /list` **with** an `Authorization` header | [`files::list`] |
//! | `DELETE /delete/{file_id}` | [`files::delete`] |
//! | `DELETE /delete_all` (`?confirm=yes&function=all\|expired`) | [`files::delete_all`] |
//!
//! Translation only: a pyBlobServer user is a ringbox user, their token one of the
//! user's API tokens (the mount's bearer scheme); a file is a core object of the
//! [`NAMESPACE`] namespace owned by its uploader, named after the uploaded file, with
//! its file id as the alias `pb:<id>` (`core::short_ids`: length
//! `--pyblob-id-length`, unique, retried on collision). Quotas (`--user-quota`), the
//! per-file limit (`--max-file-size`), ownership, naming, download statistics and the
//! not-accessed expiry are the core's.
//!
//! Authentication: every route but `/health` needs `Authorization: Bearer <token>`;
//! missing, unknown or revoked is 401, whatever `--anonymous` says (pyBlobServer has no
//! anonymous access). `/s/{file_id}` follows `--pyblob-public-links`: off (default) it
//! needs the owner's or an admin's token, on it serves anyone with the id; a bad
//! token is 401 either way (never silently anonymous). `GET /list` is this API's only
//! when the request carries an `Authorization` header (photobackup's `/list` has
//! none). Not rate-limited by default (`--rate-limit pyblob=0,0,N` limits tokens).
//!
//! Errors are FastAPI's shape, `{"detail": "..."}`, with the seed's statuses (400,
//! 401, 403, 404, 413, 429, 500).

mod files;
mod upload;
mod users;

#[cfg(test)]
mod tests;

use ringbox_protocol::head::Method;
use serde_json::{json, Value};

use crate::core::{CoreError, ErrorKind, Local};
use crate::handler;
use crate::http::auth::AuthScheme;
use crate::http::errors::ApiError;
use crate::http::ratelimit::RateTiers;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::http::router::{Access, Mount, Route, WITH_AUTHORIZATION};
use crate::store::ObjectRecord;
use crate::util::time::rfc3339_ms;

/// The namespace that holds pyBlobServer's files.
pub const NAMESPACE: &str = "pyblob";
/// The alias scheme of file ids (`pb:<file_id>`).
pub const SCHEME: &str = "pb";

/// The pyBlobServer mount (at `/`).
pub fn mount() -> Mount {
    use Access::*;
    use Method::*;
    Mount {
        api: "pyblob",
        prefix: String::new(),
        routes: vec![
            Route::new(Get, "/health", Public, handler!(health)),
            Route::new(Get, "/user/{user_id}", User, handler!(users::get)),
            Route::new(Post, "/upload", User, handler!(upload::create)),
            // Public at the router: the handler applies `--pyblob-public-links`.
            Route::new(Get, "/s/{file_id}", Public, handler!(files::show)),
            Route::new(Get, "/list", User, handler!(files::list)).when(WITH_AUTHORIZATION),
            Route::new(Delete, "/delete/{file_id}", User, handler!(files::delete)),
            Route::new(Delete, "/delete_all", User, handler!(files::delete_all)),
        ],
        auth: vec![AuthScheme::Bearer],
        render: render_detail,
        rate: RateTiers::NONE,
    }
}

/// FastAPI's error shape: `{"detail": "<message>"}`, with the error's status and
/// headers (`WWW-Authenticate` on 401, `Allow` on 405, `Content-Range` on 416).
///
/// A 413 closes the connection: it usually comes while the client is still sending
/// (the limit was found in the stream), and the client must get it now, not after
/// the server has read and discarded the rest of the body.
pub fn render_detail(mut e: ApiError) -> Response {
    if e.status == 413 {
        e.close = true;
    }
    let body = json!({ "detail": e.message });
    e.respond_with(&body)
}

/// `GET /health`: no token needed.
async fn health(_ctx: Ctx<'_>) -> HandlerResult {
    Ok(Response::json(200, &json!({ "status": "healthy" })))
}

/// 404 for any file id the caller cannot see.
fn not_found() -> ApiError {
    ApiError::new(404, "not_found", "File not found")
}

/// A core error in this API's terms: "does not exist" is the seed's 404 wording; the
/// rest keeps the core's status and message.
fn core_error(e: CoreError) -> ApiError {
    match e.kind {
        ErrorKind::NotFound => not_found(),
        _ => ApiError::from(e),
    }
}

/// The file id of a record (its `pb:` alias).
fn file_id_of(rec: &ObjectRecord) -> &str {
    rec.aliases
        .iter()
        .find_map(|a| a.strip_prefix("pb:"))
        .unwrap_or("")
}

/// A file in the seed's `output=json` shape. `downloads` and `last_downloaded`
/// include the downloads not yet written to the store.
fn file_json(svc: &Local, rec: &ObjectRecord) -> Value {
    let (downloads, last) = svc.downloads_of(rec);
    json!({
        "file_id": file_id_of(rec),
        "filename": rec.name,
        "size": rec.size,
        "content_type": rec.mime_type,
        "upload_date": rfc3339_ms(rec.created_at_ms),
        "last_downloaded": last.map(rfc3339_ms),
        "downloads": downloads,
    })
}

/// Bytes left as pyBlobServer shows them: `"%.1f MB"` with MB = 2^20 bytes, `"KB"`
/// (2^10) below one MB, `"unlimited"` without a quota.
pub fn available_space(left: Option<u64>) -> String {
    match left {
        None => "unlimited".into(),
        Some(n) if n >= 1 << 20 => format!("{:.1} MB", n as f64 / f64::from(1u32 << 20)),
        Some(n) => format!("{:.1} KB", n as f64 / 1024.0),
    }
}

/// The mount's prefix as this request shows it: the path without `route_suffix`
/// (`""` at the root), so links stay right when the API is moved under a prefix.
fn prefix_of<'a>(ctx: &'a Ctx<'_>, route_suffix: &str) -> &'a str {
    ctx.req.head.path().strip_suffix(route_suffix).unwrap_or("")
}

/// The absolute base of links: `--public-url`, else `http://<Host>`; without a
/// usable Host (HTTP/1.0, or one with characters a host cannot have) links are
/// relative.
fn link_base(ctx: &Ctx<'_>) -> String {
    if let Some(url) = &ctx.svc.settings.public_url {
        return url.clone();
    }
    match ctx.req.header("host") {
        Some(h)
            if !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b)) =>
        {
            format!("http://{h}")
        }
        _ => String::new(),
    }
}
