//! Serving bytes: `GET|HEAD /v1/objects/{id}/content` and `GET|HEAD /v1/blobs/{sha}`.
//! `?download=1` asks for `Content-Disposition: attachment`.

use super::id_param;
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
    let raw = ctx.req.param(0);
    let sha = crate::util::hex::decode_sha256(raw).ok_or_else(|| {
        ApiError::new(
            400,
            "invalid_hash",
            "a blob is named by 64 hex digits of its SHA-256",
        )
    })?;
    let rep = ctx.svc.blob_content(&ctx.req.caller, sha)?;
    let served = ctx.svc.serve(&rep, &conditions(ctx.req.head)).await?;
    let disposition = if wants_download(&ctx) {
        Disposition::Attachment
    } else {
        Disposition::None
    };
    respond(&rep, served, disposition)
}
