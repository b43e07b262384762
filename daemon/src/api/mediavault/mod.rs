//! The Media Vault API (seed 001): JWT sign-in, the caller's profile, media upload,
//! listing, download, thumbnails and sharing, collections, search, webhooks and the
//! `/realtime` WebSocket, in the seed's JSON envelope. Two mounts: [`mount`] at
//! `/api/v1` (name `mediavault`) and [`realtime_mount`] at `/realtime` (name
//! `mediavault-realtime`).
//!
//! | route (under `/api/v1`) | handler |
//! | --- | --- |
//! | `POST /auth/login`, `/auth/refresh`, `/auth/logout` | [`auth`] |
//! | `GET\|PATCH /users/me` | [`users`] |
//! | `POST /media/upload`, `GET /media`, `GET\|PATCH\|DELETE /media/{id}` | [`media`] |
//! | `GET /media/{id}/download`, `GET /media/{id}/thumbnail`, `POST /media/{id}/share` | [`media`] |
//! | `POST\|GET /collections`, `GET\|DELETE /collections/{id}` | [`collections`] |
//! | `POST /collections/{id}/media`, `DELETE /collections/{id}/media/{media_id}` | [`collections`] |
//! | `GET /search?q=&type=&page=&per_page=` | [`search`] |
//! | `POST\|GET /webhooks`, `GET\|DELETE /webhooks/{id}` | [`webhooks`] |
//! | `GET /realtime` (WebSocket, its own mount) | [`realtime`] |
//!
//! Translation only: a media item is a core file object in the [`NAMESPACE`]
//! namespace owned by its uploader (its name is the uploaded file name; `title` and
//! `description` live in its metadata, `tags` are the object's tags). Users, sessions,
//! API tokens, quotas, de-duplication, type detection, thumbnails, ranges, collections,
//! share links, events and webhook delivery are the core's. Every id that names no item
//! of the caller (unknown, malformed, another user's, another namespace's) is 404
//! `not_found`; admins get no wider view here (these routes are "my media").
//!
//! Every answer is the seed's envelope: `{"success":true,"data":..,"meta":{"timestamp",
//! "version","request_id"}}` or `{"success":false,"error":{"code","message",
//! "details"?},"meta":{"timestamp","request_id"}}`, with `X-Request-Id` equal to
//! `meta.request_id` (byte answers and 204s carry the header only). Codes are the
//! seed's for its statuses (`validation_error` for every 400, `unauthorized`,
//! `forbidden`, `not_found`, `rate_limited`, `internal_error`); other statuses keep the
//! core's code (`payload_too_large`, `method_not_allowed`, ...).
//!
//! Rate limits (the core's limiter, this mount only): 60 requests per minute per IP
//! for anonymous callers, 1,000 per user for access tokens, 5,000 per API token
//! (`Tier::ANONYMOUS`, `AUTHENTICATED`, `API_KEY`); `--rate-limit mediavault=ANON,USER,TOKEN` changes them.

mod auth;
mod collections;
mod media;
mod realtime;
mod search;
mod users;
mod webhooks;

#[cfg(test)]
mod tests;

use ringbox_protocol::head::Method;
use serde_json::{json, Map, Value};

use crate::core::auth::ratelimit::Tier;
use crate::core::media::{media_kind, MediaKind};
use crate::core::stream::read_to_vec;
use crate::core::{CoreError, ErrorKind};
use crate::handler;
use crate::http::auth::AuthScheme;
use crate::http::errors::ApiError;
use crate::http::ratelimit::RateTiers;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::{Body, Response};
use crate::http::router::{Access, Mount, Route};
use crate::store::{ObjectId, ObjectRecord};
use crate::util::hex;
use crate::util::time::{now_ms, rfc3339_ms};

pub use webhooks::payload as webhook_payload;

/// The name of this API's webhook payload format.
pub fn webhooks_format_name() -> &'static str {
    webhooks::FORMAT
}

/// The namespace that holds Media Vault's media.
pub const NAMESPACE: &str = "mediavault";
/// `meta.version` of every success answer.
pub const VERSION: &str = "1.0.0";
/// Where the mount sits by default (the item URLs in answers assume it).
pub const PREFIX: &str = "/api/v1";
/// `per_page` when the client gives none, and the most it may ask for.
pub const DEFAULT_PER_PAGE: u64 = 20;
pub const MAX_PER_PAGE: u64 = 100;

/// The `/api/v1` mount.
pub fn mount() -> Mount {
    use Access::*;
    use Method::*;
    Mount {
        api: "mediavault",
        prefix: PREFIX.to_string(),
        routes: vec![
            Route::new(Post, "/auth/login", Public, handler!(auth::login)),
            Route::new(Post, "/auth/refresh", Public, handler!(auth::refresh)),
            Route::new(Post, "/auth/logout", User, handler!(auth::logout)),
            Route::new(Get, "/users/me", User, handler!(users::me)),
            Route::new(Patch, "/users/me", User, handler!(users::patch_me)),
            Route::new(Post, "/media/upload", User, handler!(media::upload)),
            Route::new(Get, "/media", User, handler!(media::list)),
            Route::new(Get, "/media/{id}", User, handler!(media::get)),
            Route::new(Patch, "/media/{id}", User, handler!(media::patch)),
            Route::new(Delete, "/media/{id}", User, handler!(media::delete)),
            Route::new(Get, "/media/{id}/download", User, handler!(media::download)),
            Route::new(
                Get,
                "/media/{id}/thumbnail",
                User,
                handler!(media::thumbnail),
            ),
            Route::new(Post, "/media/{id}/share", User, handler!(media::share)),
            Route::new(Post, "/collections", User, handler!(collections::create)),
            Route::new(Get, "/collections", User, handler!(collections::list)),
            Route::new(Get, "/collections/{id}", User, handler!(collections::get)),
            Route::new(
                Delete,
                "/collections/{id}",
                User,
                handler!(collections::delete),
            ),
            Route::new(
                Post,
                "/collections/{id}/media",
                User,
                handler!(collections::add),
            ),
            Route::new(
                Delete,
                "/collections/{id}/media/{media_id}",
                User,
                handler!(collections::remove),
            ),
            Route::new(Get, "/search", User, handler!(search::search)),
            Route::new(Post, "/webhooks", User, handler!(webhooks::create)),
            Route::new(Get, "/webhooks", User, handler!(webhooks::list)),
            Route::new(Get, "/webhooks/{id}", User, handler!(webhooks::get)),
            Route::new(Delete, "/webhooks/{id}", User, handler!(webhooks::delete)),
        ],
        auth: vec![AuthScheme::Bearer],
        render: render_envelope,
        rate: RateTiers {
            anonymous: Some(Tier::ANONYMOUS),
            user: Some(Tier::AUTHENTICATED),
            token: Some(Tier::API_KEY),
        },
    }
}

/// The `/realtime` mount: one public route (the socket authenticates by message).
pub fn realtime_mount() -> Mount {
    Mount {
        api: "mediavault-realtime",
        prefix: "/realtime".to_string(),
        routes: vec![Route::new(
            Method::Get,
            "/",
            Access::Public,
            handler!(realtime::ws),
        )],
        auth: Vec::new(),
        render: render_envelope,
        rate: RateTiers::NONE,
    }
}

/// A new request id: `req_` and 16 random hex digits.
pub fn request_id() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        b = now_ms().to_le_bytes();
    }
    format!("req_{}", hex::encode(&b))
}

/// The seed's code for an error: its own codes for the statuses it names.
fn seed_code(status: u16, code: &'static str) -> &'static str {
    match status {
        400 => "validation_error",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        429 => "rate_limited",
        500 => "internal_error",
        _ => code,
    }
}

/// The seed's error envelope, with `X-Request-Id`.
pub fn render_envelope(e: ApiError) -> Response {
    let id = request_id();
    let mut error = json!({ "code": seed_code(e.status, e.code), "message": e.message });
    if !e.details.is_empty() {
        error["details"] = Value::Array(
            e.details
                .iter()
                .map(|(f, m)| json!({ "field": f, "message": m }))
                .collect(),
        );
    }
    let body = json!({
        "success": false,
        "error": error,
        "meta": { "timestamp": rfc3339_ms(now_ms()), "request_id": id },
    });
    let mut r = e.respond_with(&body);
    r.header("X-Request-Id", id);
    r
}

/// A success envelope around `data` (`extra` keys merged into `meta`).
pub fn envelope(status: u16, data: Value, extra: Option<Map<String, Value>>) -> Response {
    let id = request_id();
    let mut meta =
        json!({ "timestamp": rfc3339_ms(now_ms()), "version": VERSION, "request_id": id });
    if let (Some(extra), Some(m)) = (extra, meta.as_object_mut()) {
        m.extend(extra);
    }
    let mut r = Response::json(
        status,
        &json!({ "success": true, "data": data, "meta": meta }),
    );
    r.header("X-Request-Id", id);
    r
}

/// `200` with `data`.
pub fn ok(data: Value) -> HandlerResult {
    Ok(envelope(200, data, None))
}

/// `201` with `data`.
pub fn created(data: Value) -> HandlerResult {
    Ok(envelope(201, data, None))
}

/// `204` (no body) with its request id.
pub fn no_content() -> HandlerResult {
    Ok(with_request_id(Response::new(204, Body::Empty)))
}

/// Any response (bytes, thumbnails) with a request id.
pub fn with_request_id(mut r: Response) -> Response {
    r.header("X-Request-Id", request_id());
    r
}

/// A 400 `validation_error` naming `field`.
pub fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    let mut e = ApiError::new(400, "validation_error", message.clone());
    e.details.push((field, message));
    e
}

/// A 404 `not_found` for `what`.
pub fn not_found(what: &str) -> ApiError {
    ApiError::new(404, "not_found", format!("{what} not found"))
}

/// A core error here: "does not exist" as the seed's 404, the rest as the core says.
pub fn core_error(e: CoreError) -> ApiError {
    match e.kind {
        ErrorKind::NotFound => ApiError::new(404, "not_found", e.message),
        _ => ApiError::from(e),
    }
}

/// The JSON body as an object (`{}` for an empty body when `empty_ok`); anything
/// else is a `validation_error`.
pub async fn json_object(
    ctx: &mut Ctx<'_>,
    empty_ok: bool,
) -> Result<Map<String, Value>, ApiError> {
    let body = read_to_vec(ctx.body, ctx.svc.settings.max_json_body).await?;
    if empty_ok && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(invalid("body", "the body must be a JSON object")),
        Err(e) => Err(invalid("body", format!("the body is not valid JSON: {e}"))),
    }
}

/// Refuse keys of `body` outside `allowed`, one detail per unknown field.
pub fn only_fields(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    let unknown: Vec<&String> = body
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let mut e = ApiError::new(
        400,
        "validation_error",
        format!(
            "unknown or read-only fields; allowed: {}",
            allowed.join(", ")
        ),
    );
    for k in unknown {
        e.details
            .push((static_field(k), format!("`{k}` cannot be set here")));
    }
    Err(e)
}

/// A client's field name as a detail's `field`: the names clients commonly send, else
/// `body` (details name fields with static strings; the message names the key).
fn static_field(k: &str) -> &'static str {
    const KNOWN: [&str; 16] = [
        "id",
        "username",
        "email",
        "password",
        "role",
        "quota_bytes",
        "created_at",
        "avatar",
        "name",
        "filename",
        "title",
        "description",
        "tags",
        "url",
        "events",
        "user_id",
    ];
    KNOWN.iter().find(|&&f| f == k).copied().unwrap_or("body")
}

/// An optional string field (`null` = absent).
pub fn opt_string(
    body: &Map<String, Value>,
    field: &'static str,
    max_chars: usize,
) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max_chars => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(invalid(
            field,
            format!("{field} is at most {max_chars} characters"),
        )),
        Some(_) => Err(invalid(field, format!("{field} must be a string"))),
    }
}

/// The seed's media type of a MIME type.
pub fn media_type(mime: &str) -> &'static str {
    match media_kind(mime) {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::Document | MediaKind::Text => "document",
        MediaKind::Other => "other",
    }
}

/// The metadata map of a record.
fn metadata(rec: &ObjectRecord) -> Map<String, Value> {
    serde_json::from_str(&rec.metadata_json).unwrap_or_default()
}

/// A media item as the seed's clients read it.
pub fn media_json(rec: &ObjectRecord) -> Value {
    let meta = metadata(rec);
    let id = rec.id.to_string();
    json!({
        "id": id,
        "filename": rec.name,
        "title": meta.get("title").cloned().unwrap_or(Value::Null),
        "description": meta.get("description").cloned().unwrap_or(Value::Null),
        "tags": rec.tags,
        "type": media_type(&rec.mime_type),
        "mime_type": rec.mime_type,
        "size": rec.size,
        "sha256": rec.sha256.map(|s| hex::encode(&s)),
        "created_at": rfc3339_ms(rec.created_at_ms),
        "updated_at": rfc3339_ms(rec.updated_at_ms),
        "url": format!("{PREFIX}/media/{id}/download"),
        "thumbnail_url": crate::core::media::can_thumbnail(&rec.mime_type)
            .then(|| format!("{PREFIX}/media/{id}/thumbnail")),
        "user_id": rec.owner,
        "downloads": rec.downloads,
        // `null` until the core has probed the image (moments after the upload).
        "width": rec.media.as_ref().map(|m| m.width),
        "height": rec.media.as_ref().map(|m| m.height),
    })
}

/// A media id from a path or body: anything but a UUID names no item (404).
pub fn media_id(raw: &str) -> Result<ObjectId, ApiError> {
    uuid::Uuid::try_parse(raw).map_err(|_| not_found("media"))
}

/// The caller's media item `id`: 404 unless it exists, is in [`NAMESPACE`] and is
/// the caller's own.
pub fn media_for(ctx: &Ctx<'_>, id: ObjectId) -> Result<ObjectRecord, ApiError> {
    let rec = ctx
        .svc
        .object_for_read(&ctx.req.caller, id)
        .map_err(|e| match e.kind {
            ErrorKind::NotFound | ErrorKind::Forbidden => not_found("media"),
            _ => core_error(e),
        })?;
    if !is_callers_media(ctx, &rec) {
        return Err(not_found("media"));
    }
    Ok(ctx.svc.shown_to(&ctx.req.caller, rec))
}

/// Whether `rec` is a media item of the caller's own (the rule of [`media_for`]).
pub fn is_callers_media(ctx: &Ctx<'_>, rec: &ObjectRecord) -> bool {
    let mine = ctx.req.caller.user().is_some() && rec.owner.as_deref() == ctx.req.caller.user();
    rec.namespace == NAMESPACE && mine
}

/// `page` and `per_page` of a list request (`page` from 1; `per_page` 1-100, larger
/// asks get 100).
pub fn page_params(q: &crate::util::query::Query) -> Result<(u64, u64), ApiError> {
    let num = |field: &'static str, default: u64| match q.get(field).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| invalid(field, format!("{field} must be a whole number from 1"))),
    };
    let page = num("page", 1)?;
    let per_page = num("per_page", DEFAULT_PER_PAGE)?.min(MAX_PER_PAGE);
    Ok((page, per_page))
}

/// A page in the seed's shape: `data` = the items, `meta.pagination` = `total`,
/// `count`, `per_page`, `current_page`, `total_pages` and `links` (`next`/`prev` as
/// paths relative to the API base, `null` past the ends). `link` makes the path of a
/// page number.
pub fn paged(
    items: Vec<Value>,
    total: u64,
    page: u64,
    per_page: u64,
    link: impl Fn(u64) -> String,
) -> HandlerResult {
    let total_pages = total.div_ceil(per_page);
    let next = (page < total_pages).then(|| link(page + 1));
    let prev = (page > 1).then(|| link((page - 1).min(total_pages.max(1))));
    let mut extra = Map::new();
    extra.insert(
        "pagination".into(),
        json!({
            "total": total,
            "count": items.len(),
            "per_page": per_page,
            "current_page": page,
            "total_pages": total_pages,
            "links": { "next": next, "prev": prev },
        }),
    );
    Ok(envelope(200, Value::Array(items), Some(extra)))
}

/// A session answer: the envelope with `data` = the session, and the same keys at the
/// top level for clients of the seed's bare login example.
fn created_like_login(status: u16, s: &crate::core::users::SessionTokens) -> HandlerResult {
    let data = auth::session_data(s);
    let id = request_id();
    let mut body = json!({
        "success": true,
        "data": data,
        "meta": { "timestamp": rfc3339_ms(now_ms()), "version": VERSION, "request_id": id },
    });
    if let (Some(top), Some(d)) = (body.as_object_mut(), data.as_object()) {
        for (k, v) in d {
            top.insert(k.clone(), v.clone());
        }
    }
    let mut r = Response::json(status, &body);
    r.header("X-Request-Id", id);
    Ok(r)
}
