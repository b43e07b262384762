//! `GET /thumbnail/<sha256>`: the content's default thumbnail (256 px PNG, made by the
//! core's thumbnail engine, cached), `Content-Type: image/png`, with the thumbnail's
//! validators (conditionals and ranges work as for any content) and
//! `Cache-Control: private, max-age=86400`. 404 "Thumbnail not found." for an unknown
//! hash, a video or another type without a decoder, an image the decoder refused, a
//! scanned file gone from disk; 400 for a hash that is not 64 hex digits.

use super::{core_error, sha_param};
use crate::core::thumbs;
use crate::http::content::{conditions, respond, Disposition};
use crate::http::request::{Ctx, HandlerResult};

const NOT_FOUND: &str = "Thumbnail not found.";

/// `GET /thumbnail/<sha256>`
pub async fn get(ctx: Ctx<'_>) -> HandlerResult {
    let sha = sha_param(&ctx)?;
    let rep = ctx
        .svc
        .photo_thumbnail(&ctx.req.caller, &sha)
        .await
        .map_err(|e| core_error(e, NOT_FOUND))?;
    let served = ctx
        .svc
        .serve(&rep, &conditions(ctx.req.head))
        .await
        .map_err(|e| core_error(e, NOT_FOUND))?;
    let mut resp = respond(&rep, served, Disposition::None)?;
    resp.header("Cache-Control", thumbs::CACHE_CONTROL);
    Ok(resp)
}
