//! Public share links: `GET|HEAD /share/{token}` and `GET|HEAD
//! /share/{token}/{object_id}`, with no credentials (a mount of its own, so `--apis`
//! can turn links off and `--rate-limit shares=...` can slow password guessing
//! without touching the native API). Created with `POST /v1/shares`; every rule is the
//! core's (`core::shares`). Errors are the native shape; unknown, revoked, expired and
//! exhausted tokens all get the same 404.
//!
//! - An object share serves the bytes exactly like `/v1/objects/{id}/content`: ranges,
//!   conditionals, `ETag`, `Last-Modified`, `Content-Disposition` (`inline`, or
//!   `attachment` with `?download=1`).
//! - A collection share answers its members as JSON (`{"collection","objects":[...,
//!   "url"],"next_cursor"}`, `?limit=&cursor=`), or as an HTML page when the client
//!   prefers `text/html` (browsers); each member is served at
//!   `/share/{token}/{object_id}`, only while it is a member.
//! - A password goes in `?password=` (links typed into a browser) or an
//!   `X-Share-Password` header (scripts; it stays out of logs and history).
//!
//! Responses carry `Referrer-Policy: no-referrer` (a page's links must not leak the
//! token to other sites) and `Cache-Control: private` (shared caches must not keep
//! what a revocation should stop).

use ringbox_protocol::head::Method;
use serde_json::{json, Value};

use crate::handler;
use crate::http::content::{conditions, respond, Disposition};
use crate::http::errors::{render_native, ApiError};
use crate::http::ratelimit::RateTiers;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::{Body, Response};
use crate::http::router::{Access, Mount, Route};
use crate::store::{ObjectId, ObjectRecord, ShareRecord, ShareTarget};
use crate::util::hex;
use crate::util::query::encode_component;
use crate::util::time::rfc3339_ms;

/// The shares mount (at `/`).
pub fn mount() -> Mount {
    Mount {
        api: "shares",
        prefix: String::new(),
        routes: vec![
            Route::new(
                Method::Get,
                "/share/{token}",
                Access::Public,
                handler!(open),
            ),
            Route::new(
                Method::Get,
                "/share/{token}/{object_id}",
                Access::Public,
                handler!(member),
            ),
        ],
        // Share links need no credential (and a stray one is ignored).
        auth: Vec::new(),
        render: render_native,
        rate: RateTiers::NONE,
    }
}

fn password<'a>(ctx: &'a Ctx<'_>, q: &'a crate::util::query::Query) -> Option<&'a str> {
    ctx.req
        .header("x-share-password")
        .or_else(|| q.get("password"))
}

fn private(mut r: Response) -> Response {
    r.header("Referrer-Policy", "no-referrer")
        .header("Cache-Control", "private");
    r
}

/// `GET|HEAD /share/{token}`
async fn open(ctx: Ctx<'_>) -> HandlerResult {
    let q = ctx.req.query()?;
    let share = ctx
        .svc
        .open_share(ctx.req.param(0), password(&ctx, &q))
        .await?;
    match share.target {
        ShareTarget::Object(_) => serve(&ctx, &share, None, &q).await,
        ShareTarget::Collection(_) => listing(&ctx, &share, &q),
    }
}

/// `GET|HEAD /share/{token}/{object_id}`: a member of a shared collection.
async fn member(ctx: Ctx<'_>) -> HandlerResult {
    let q = ctx.req.query()?;
    let share = ctx
        .svc
        .open_share(ctx.req.param(0), password(&ctx, &q))
        .await?;
    let id = uuid::Uuid::try_parse(ctx.req.param(1))
        .map_err(|_| ApiError::new(404, "not_found", "the object does not exist"))?;
    serve(&ctx, &share, Some(id), &q).await
}

async fn serve(
    ctx: &Ctx<'_>,
    share: &ShareRecord,
    member: Option<ObjectId>,
    q: &crate::util::query::Query,
) -> HandlerResult {
    let entry = ctx.svc.share_content(share, member)?;
    let rep = entry.rep();
    let served = ctx
        .svc
        .serve_share(share, rep, &conditions(ctx.req.head))
        .await?;
    let disposition = if matches!(q.get("download"), Some("1" | "true")) {
        Disposition::Attachment
    } else {
        Disposition::Inline
    };
    Ok(private(respond(rep, served, disposition)?))
}

/// Whether the client prefers HTML (a browser) over JSON.
fn wants_html(ctx: &Ctx<'_>) -> bool {
    let accept = ctx.req.header("accept").unwrap_or("");
    let pos = |t: &str| accept.find(t);
    match (pos("text/html"), pos("application/json")) {
        (Some(h), Some(j)) => h < j,
        (Some(_), None) => true,
        _ => false,
    }
}

fn listing(ctx: &Ctx<'_>, share: &ShareRecord, q: &crate::util::query::Query) -> HandlerResult {
    let limit = match q.get("limit") {
        None => 1000,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be an integer from 1 to 1000"))?,
    };
    let (coll, page) = ctx.svc.share_members(share, q.get("cursor"), limit)?;
    let base = ctx.svc.share_url(ctx.req.param(0));
    let member_url = |o: &ObjectRecord| format!("{base}/{}", o.id);
    if wants_html(ctx) {
        // A browser cannot send a header: keep a password given in the query on the
        // links.
        let suffix = q
            .get("password")
            .map(|p| format!("?password={}", encode_component(p)))
            .unwrap_or_default();
        let mut html = String::with_capacity(1024 + 256 * page.objects.len());
        html.push_str("<!doctype html>\n<html><head><meta charset=\"utf-8\">");
        html.push_str("<meta name=\"referrer\" content=\"no-referrer\"><title>");
        html.push_str(&escape(&coll.name));
        html.push_str("</title></head>\n<body>\n<h1>");
        html.push_str(&escape(&coll.name));
        html.push_str("</h1>\n");
        if let Some(d) = &coll.description {
            html.push_str("<p>");
            html.push_str(&escape(d));
            html.push_str("</p>\n");
        }
        html.push_str("<ul>\n");
        for o in &page.objects {
            html.push_str(&format!(
                "<li><a href=\"{}{}\">{}</a> ({} bytes, {})</li>\n",
                escape(&member_url(o)),
                escape(&suffix),
                escape(&o.name),
                o.size,
                escape(&o.mime_type),
            ));
        }
        html.push_str("</ul>\n");
        if let Some(next) = &page.next_cursor {
            let sep = if suffix.is_empty() { '?' } else { '&' };
            html.push_str(&format!(
                "<p><a href=\"{}{}{sep}cursor={}\">more</a></p>\n",
                escape(&base),
                escape(&suffix),
                escape(&encode_component(next)),
            ));
        }
        html.push_str("</body></html>\n");
        let mut r = Response::new(200, Body::Bytes(html.into_bytes()));
        r.content_type("text/html; charset=utf-8");
        return Ok(private(r));
    }
    let objects: Vec<Value> = page
        .objects
        .iter()
        .map(|o| {
            json!({
                "id": o.id.to_string(),
                "name": o.name,
                "mime_type": o.mime_type,
                "size": o.size,
                "sha256": o.sha256.map(|s| hex::encode(&s)),
                "created_at": rfc3339_ms(o.created_at_ms),
                "url": member_url(o),
            })
        })
        .collect();
    Ok(private(Response::json(
        200,
        &json!({
            "collection": {
                "id": coll.id.to_string(),
                "name": coll.name,
                "description": coll.description,
                "object_count": coll.member_count,
            },
            "expires_at": share.expires_at_ms.map(rfc3339_ms),
            "objects": objects,
            "next_cursor": page.next_cursor,
        }),
    )))
}

/// HTML-escape text for element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            escape(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
    }
}
