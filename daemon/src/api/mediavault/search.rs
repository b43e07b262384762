//! `GET /search?q=&type=&page=&per_page=`: the caller's media whose file name or
//! title contains `q` (case-insensitive), optionally of one `type`
//! (`image|video|audio|document|other`), newest first, in the paginated shape. The
//! walk is the core's (`Local::search_owned`, bounded); `q` is required.

use super::{core_error, invalid, media_json, media_type, page_params, paged, NAMESPACE};
use crate::http::request::{Ctx, HandlerResult};
use crate::store::ObjectRecord;
use crate::util::query::encode_component;

const TYPES: [&str; 5] = ["image", "video", "audio", "document", "other"];

/// Whether `rec` matches the lower-cased needle `q` by name or title.
pub(super) fn matches(rec: &ObjectRecord, q: &str) -> bool {
    if rec.name.to_lowercase().contains(q) {
        return true;
    }
    serde_json::from_str::<serde_json::Value>(&rec.metadata_json)
        .ok()
        .and_then(|m| {
            m.get("title")
                .and_then(|t| t.as_str())
                .map(str::to_lowercase)
        })
        .is_some_and(|t| t.contains(q))
}

/// `GET /search`
pub async fn search(ctx: Ctx<'_>) -> HandlerResult {
    let query = ctx.req.query()?;
    let (page, per_page) = page_params(&query)?;
    let q = query
        .get("q")
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .ok_or_else(|| invalid("q", "q (the text to look for) is required"))?
        .to_lowercase();
    if q.chars().count() > 256 {
        return Err(invalid("q", "q is at most 256 characters"));
    }
    let kind = match query.get("type").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) if TYPES.contains(&t) => Some(t.to_string()),
        Some(_) => {
            return Err(invalid(
                "type",
                "type is one of image, video, audio, document, other",
            ))
        }
    };
    let keep = |rec: &ObjectRecord| {
        kind.as_deref()
            .is_none_or(|k| media_type(&rec.mime_type) == k)
            && matches(rec, &q)
    };
    let offset = (page - 1).saturating_mul(per_page);
    let p = ctx
        .svc
        .search_owned(&ctx.req.caller, NAMESPACE, &keep, offset, per_page as usize)
        .map_err(core_error)?;
    let items = p.objects.iter().map(media_json).collect();
    let qs = encode_component(&q);
    let ks = kind.map(|k| format!("&type={k}")).unwrap_or_default();
    paged(items, p.total, page, per_page, |n| {
        format!("/search?q={qs}{ks}&page={n}&per_page={per_page}")
    })
}
