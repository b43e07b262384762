//! `POST /upload`: a `multipart/form-data` body with a part named `file` (other parts
//! are skipped, as FastAPI's `UploadFile` parameter does). 200 with
//! `{"file_id","file_url","show_image","available_space"}`.
//!
//! The file part is streamed into the blob store by the common form reader, bounded
//! by the core's per-file limit and the caller's quota as it arrives: a file over
//! either is refused with 413 while the client is still sending (the connection then
//! closes, as the body was not read to its end). The object is named after the part's
//! `filename` (the core's naming rules apply: a name it refuses is a 400; no
//! filename names it by its id), and gets a fresh file id (`core::short_ids`).
//! `file_url` and `show_image` are absolute (`--public-url`, else the request's Host);
//! `available_space` is the quota left after this upload.

use super::{available_space, core_error, link_base, prefix_of, NAMESPACE, SCHEME};
use crate::core::upload::NewObject;
use crate::http::errors::ApiError;
use crate::http::form::{read_form, FormOptions};
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;

/// `POST /upload`
pub async fn create(ctx: Ctx<'_>) -> HandlerResult {
    let caller = ctx.req.caller.clone();
    let (media, content_type) = ctx.req.content_type();
    if media != "multipart/form-data" {
        return Err(no_file_part());
    }
    let content_type = content_type.to_string();
    let base = format!("{}{}", link_base(&ctx), prefix_of(&ctx, "/upload"));
    let opts = FormOptions {
        max_files: 1,
        file_fields: Some(&["file"]),
        ..FormOptions::default()
    };
    let mut form = read_form(ctx.svc, &caller, ctx.body, &content_type, opts).await?;
    if form.files.is_empty() {
        return Err(no_file_part());
    }
    let file = form.files.remove(0);
    let new = NewObject {
        namespace: NAMESPACE.into(),
        name: file.filename,
        ..NewObject::default()
    };
    let (_, id) = ctx
        .svc
        .create_file_with_short_id(
            &caller,
            new,
            file.blob,
            file.content_type.as_deref(),
            SCHEME,
        )
        .await
        .map_err(core_error)?;
    // The file is stored: a failure to read the usage must not turn that into an error.
    let space = match caller.user().map(|me| ctx.svc.usage(&caller, me)) {
        Some(Ok(u)) => available_space(u.left()),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "cannot read the uploader's usage after an upload");
            "unknown".to_string()
        }
        None => available_space(None),
    };
    Ok(Response::json(
        200,
        &serde_json::json!({
            "file_id": id,
            "file_url": format!("{base}/s/{id}"),
            "show_image": format!("{base}/s/{id}?output=html"),
            "available_space": space,
        }),
    ))
}

/// FastAPI's status for a missing required form field.
fn no_file_part() -> ApiError {
    ApiError::new(
        422,
        "unprocessable",
        "send the file as multipart/form-data with a part named `file` (e.g. curl -F file=@photo.jpg)",
    )
}
