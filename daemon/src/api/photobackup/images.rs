//! Images: `GET|HEAD /image/<sha256>` and `PUT /image/<filename>`.
//!
//! `GET` serves the bytes of the library's file with that content through the core's
//! content path, with the type detected when it was stored or scanned, strong `ETag`,
//! `Last-Modified`, ranges (`206`, `multipart/byteranges`, `416`) and conditionals
//! (`304`, `412`), no `Content-Disposition` (as Flask's `send_from_directory`). 400
//! "Invalid SHA256 format." for a hash that is not 64 hex digits; 404 "Image not
//! found." for an unknown content and for a scanned file deleted from disk (on the
//! very next request, before any rescan: the core checks the file on every use).
//!
//! `PUT` takes `multipart/form-data` with a file part named `file` (other parts are
//! skipped); the core stores it (see `core::photos`). 201 with the seed's body for new
//! content (`thumbnail_file` is `<sha256>.png` when the type has thumbnails, else
//! `null`), 200 with the existing file's `filename` and `file_path` for content the
//! library has. 400 with the seed's descriptions: "No file part in the request." (no
//! part named `file`, or a body that is not multipart), "No selected file." (an empty
//! part file name), "Invalid file type. Allowed types: png, jpg, jpeg, gif".

use serde_json::json;

use super::{core_error, sha_param};
use crate::core::photos::{PhotoFile, PhotoUpload, StoredPhoto};
use crate::http::content::{conditions, respond, Disposition};
use crate::http::errors::ApiError;
use crate::http::form::{read_form, FormOptions};
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::util::hex;

const NOT_FOUND: &str = "Image not found.";

/// `GET|HEAD /image/<sha256>`
pub async fn get(ctx: Ctx<'_>) -> HandlerResult {
    let sha = sha_param(&ctx)?;
    let entry = ctx
        .svc
        .photo_content(&ctx.req.caller, &sha)
        .await
        .map_err(|e| core_error(e, NOT_FOUND))?;
    let rep = entry.rep();
    let served = ctx
        .svc
        .serve(rep, &conditions(ctx.req.head))
        .await
        .map_err(|e| core_error(e, NOT_FOUND))?;
    respond(rep, served, Disposition::None)
}

fn no_file_part() -> ApiError {
    ApiError::new(400, "bad_request", "No file part in the request.")
}

/// `PUT /image/<filename>`
pub async fn put(ctx: Ctx<'_>) -> HandlerResult {
    let url_name = ctx.req.param(0).to_string();
    let caller = ctx.req.caller.clone();
    let (media, content_type) = ctx.req.content_type();
    if media != "multipart/form-data" {
        return Err(no_file_part());
    }
    let content_type = content_type.to_string();
    let opts = FormOptions {
        max_files: 1,
        file_fields: Some(&["file"]),
        ..FormOptions::default()
    };
    let mut form = read_form(ctx.svc, &caller, ctx.body, &content_type, opts).await?;
    if form.files.is_empty() {
        return Err(no_file_part());
    }
    let f = form.files.remove(0);
    let file = PhotoFile {
        filename: f.filename,
        blob: f.blob,
        content_type: f.content_type,
    };
    let uploaded = ctx
        .svc
        .upload_photo(&caller, &url_name, file)
        .await
        .map_err(ApiError::from)?;
    Ok(match uploaded {
        PhotoUpload::Created(p) => Response::json(201, &created(&p)),
        PhotoUpload::Existing(p) => Response::json(
            200,
            &json!({
                "message": "Image content already exists.",
                "sha256": hex::encode(&p.sha),
                "filename": p.filename,
                "file_path": p.file_path,
            }),
        ),
    })
}

fn created(p: &StoredPhoto) -> serde_json::Value {
    let sha = hex::encode(&p.sha);
    let thumbnail = p.thumbnail.then(|| format!("{sha}.png"));
    json!({
        "message": "Image uploaded successfully.",
        "sha256": sha,
        "filename": p.filename,
        "file_path": p.file_path,
        "thumbnail_file": thumbnail,
    })
}
