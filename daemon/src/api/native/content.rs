//! Serving bytes: `GET|HEAD /v1/objects/{id}/content` and `GET|HEAD /v1/blobs/{sha}`
//! (`?download=1` asks for `Content-Disposition: attachment`), and thumbnails:
//! `GET|HEAD /v1/objects/{id}/thumbnail` and `GET|HEAD /v1/blobs/{sha}/thumbnail`
//! with `?size=128|256|512` (default 256) and `?format=png|jpeg|webp` (default png),
//! served like content (strong ETag, ranges, conditionals) with
//! `Cache-Control: private, max-age=86400`.

use super::id_param;
use crate::core::content::Representation;
use crate::core::thumbs;
use crate::http::content::{conditions, respond, Disposition};
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};

fn wants_download(ctx: &Ctx<'_>) -> bool {
    ctx.req.head.query().is_some_and(|q| q.contains("download"))
        && ctx
            .req
            .query()
            .ok()
            .and_then(|q| q.get("download").map(|v| v == "1" || v == "true"))
            .unwrap_or(false)
}

/// `GET|HEAD /v1/objects/{id}/content`
pub async fn object(ctx: Ctx<'_>) -> HandlerResult {
    let id = id_param(&ctx)?;
    let entry = ctx.svc.object_content(&ctx.req.caller, id)?;
    let rep = entry.rep();
    let served = ctx.svc.serve(rep, &conditions(ctx.req.head)).await?;
    let disposition = if wants_download(&ctx) {
        Disposition::Attachment
    } else {
        Disposition::Inline
    };
    respond(rep, served, disposition)
}

/// `GET|HEAD /v1/blobs/{sha256}`
pub async fn blob(ctx: Ctx<'_>) -> HandlerResult {
    let sha = sha_param(&ctx)?;
    let rep = ctx.svc.blob_content(&ctx.req.caller, sha)?;
    let served = ctx.svc.serve(&rep, &conditions(ctx.req.head)).await?;
    let disposition = if wants_download(&ctx) {
        Disposition::Attachment
    } else {
        Disposition::None
    };
    respond(&rep, served, disposition)
}

fn sha_param(ctx: &Ctx<'_>) -> Result<[u8; 32], ApiError> {
    crate::util::hex::decode_sha256(ctx.req.param(0)).ok_or_else(|| {
        ApiError::new(
            400,
            "invalid_hash",
            "a blob is named by 64 hex digits of its SHA-256",
        )
    })
}

/// `?size=&format=` of a thumbnail request.
fn thumbnail_params(ctx: &Ctx<'_>) -> Result<(u32, crate::core::media::ThumbFormat), ApiError> {
    let q = ctx.req.query()?;
    Ok((
        thumbs::parse_size(q.get("size"))?,
        thumbs::parse_format(q.get("format"))?,
    ))
}

/// A thumbnail representation as a response (no `Content-Disposition`).
async fn thumbnail_response(ctx: &Ctx<'_>, rep: &Representation) -> HandlerResult {
    let served = ctx.svc.serve(rep, &conditions(ctx.req.head)).await?;
    let mut resp = respond(rep, served, Disposition::None)?;
    resp.header("Cache-Control", thumbs::CACHE_CONTROL);
    Ok(resp)
}

/// `GET|HEAD /v1/objects/{id}/thumbnail?size=&format=`
pub async fn object_thumbnail(ctx: Ctx<'_>) -> HandlerResult {
    let id = id_param(&ctx)?;
    let (size, format) = thumbnail_params(&ctx)?;
    let rep = ctx
        .svc
        .object_thumbnail(&ctx.req.caller, id, size, format)
        .await?;
    thumbnail_response(&ctx, &rep).await
}

/// `GET|HEAD /v1/blobs/{sha256}/thumbnail?size=&format=`
pub async fn blob_thumbnail(ctx: Ctx<'_>) -> HandlerResult {
    let sha = sha_param(&ctx)?;
    let (size, format) = thumbnail_params(&ctx)?;
    let rep = ctx
        .svc
        .thumbnail_by_sha(&ctx.req.caller, sha, size, format)
        .await?;
    thumbnail_response(&ctx, &rep).await
}
