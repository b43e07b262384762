//! Items: `POST /items`, `GET /items`, `GET /items/{item_id}`, `DELETE /items/{item_id}`.
//!
//! `POST /items` takes `{"type":"text"|"file","content":"..."}` (other keys are
//! ignored, as pydantic does) and answers 201 with the item. Malformed JSON is 400; a
//! body that is JSON but not an object, a `type` other than `text`/`file`, or a
//! `content` that is not a string is 422 (FastAPI's validation status); a missing or
//! empty `content` is 400 "Items must have content" (the seed's).
//!
//! `GET /items` answers every item the caller may see, oldest first. There is no
//! namespace index by time, so it reads the namespace through the core's listing
//! (names order, pages of 1,000, each page one short read transaction; only this
//! namespace's index range is visited, never the rest of the store) and sorts by id:
//! ids are UUIDv7, ordered by creation. Cost: O(n log n) for the n items listed, which
//! the answer (every item) costs anyway. At most [`MAX_ITEMS`] are answered (the
//! newest, still oldest first, with `X-Ringbox-Truncated: true`), so memory stays
//! bounded whatever the namespace holds; the native API pages through any number.

use std::future::poll_fn;
use std::task::Poll;

use serde_json::Value;

use super::{core_error, item_for_read, item_id, item_json, NAMESPACE};
use crate::core::objects::ListSpec;
use crate::core::stream::read_to_vec;
use crate::core::upload::NewObject;
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::store::ObjectRecord;

/// A `POST /items` body is read whole: bounded like the native API's JSON bodies.
const MAX_JSON_BODY: u64 = 1 << 20;
/// Most items one `GET /items` answers (the newest ones).
pub const MAX_ITEMS: usize = 100_000;
/// Objects per listing page (the core's largest).
const PAGE: usize = 1000;

/// `POST /items`
pub async fn create(ctx: Ctx<'_>) -> HandlerResult {
    let body = read_to_vec(ctx.body, MAX_JSON_BODY)
        .await
        .map_err(ApiError::from)?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON like {{\"type\": \"text\", \"content\": \"Hello world\"}}: {e}"
        ))
    })?;
    let Value::Object(fields) = v else {
        return Err(unprocessable(
            "the body must be a JSON object with \"type\" and \"content\"",
        ));
    };
    let kind = match fields.get("type").and_then(Value::as_str) {
        Some(k @ ("text" | "file")) => k,
        _ => return Err(unprocessable("Type must be 'text' or 'file'")),
    };
    let content = match fields.get("content") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()).filter(|s| !s.is_empty()),
        Some(_) => return Err(unprocessable("content must be a string")),
    };
    let content =
        content.ok_or_else(|| ApiError::new(400, "bad_request", "Items must have content"))?;
    let caller = &ctx.req.caller;
    let new = NewObject {
        namespace: NAMESPACE.into(),
        ..NewObject::default()
    };
    let rec = if kind == "text" {
        // No name: the core names a text item by its id.
        ctx.svc.create_text(caller, new, content).await
    } else {
        // The file name the client gave is the object's name (the core's naming rules
        // apply); its bytes come with PUT /file/{id}.
        let new = NewObject {
            name: content,
            ..new
        };
        ctx.svc.create_pending(caller, new).await
    }
    .map_err(core_error)?;
    Ok(Response::json(201, &item_json(&rec)))
}

fn unprocessable(message: &str) -> ApiError {
    ApiError::new(422, "unprocessable", message)
}

/// `GET /items`
pub async fn list(ctx: Ctx<'_>) -> HandlerResult {
    let mut spec = ListSpec {
        namespace: Some(NAMESPACE.into()),
        limit: PAGE,
        ..ListSpec::default()
    };
    let mut all: Vec<ObjectRecord> = Vec::new();
    let mut truncated = false;
    loop {
        let page = ctx
            .svc
            .list_objects(&ctx.req.caller, &spec)
            .map_err(core_error)?;
        all.extend(page.objects);
        if all.len() >= 2 * MAX_ITEMS {
            keep_newest(&mut all, MAX_ITEMS);
            truncated = true;
        }
        match page.next_cursor {
            Some(c) => spec.cursor = Some(c),
            None => break,
        }
        // Let the worker's other connections run between pages of a long listing.
        yield_now().await;
    }
    if all.len() > MAX_ITEMS {
        truncated = true;
    }
    keep_newest(&mut all, MAX_ITEMS);
    let items: Vec<Value> = all.iter().map(item_json).collect();
    let mut resp = Response::json(200, &items);
    if truncated {
        resp.header("X-Ringbox-Truncated", "true");
    }
    Ok(resp)
}

/// Sort by id (creation order) and keep the newest `max`.
pub(super) fn keep_newest(all: &mut Vec<ObjectRecord>, max: usize) {
    all.sort_unstable_by_key(|r| r.id);
    if all.len() > max {
        all.drain(..all.len() - max);
    }
}

/// Give the runtime a turn (monoio has no `yield_now`).
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// `GET /items/{item_id}`
pub async fn get(ctx: Ctx<'_>) -> HandlerResult {
    let id = item_id(&ctx)?;
    let rec = item_for_read(&ctx, id)?;
    Ok(Response::json(200, &item_json(&rec)))
}

/// `DELETE /items/{item_id}`: 204 (a file's blob goes when nothing else uses it).
pub async fn delete(ctx: Ctx<'_>) -> HandlerResult {
    let id = item_id(&ctx)?;
    item_for_read(&ctx, id)?;
    ctx.svc
        .delete_object(&ctx.req.caller, id)
        .await
        .map_err(core_error)?;
    Ok(Response::empty(204))
}
