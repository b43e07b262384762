//! Uploads: `POST /v1/objects` (multipart/form-data, JSON, or a raw body) and
//! `PUT /v1/objects/{id}/content`. Streaming, hashing, limits, de-duplication and the
//! commit are the core's; this module reads the request's shape.

use serde::Deserialize;
use serde_json::{json, Value};

use super::id_param;
use super::objects::MAX_JSON_BODY;
use super::render::object_json;
use crate::core::expiry::expires_at_from_ttl;
use crate::core::naming;
use crate::core::stream::read_to_vec;
use crate::core::upload::NewObject;
use crate::core::CoreError;
use crate::http::errors::ApiError;
use crate::http::form::{read_form, FormOptions};
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::util::query::Query;
use crate::util::time::now_ms;

/// Tags as a JSON list or a comma-separated string.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum TagsField {
    List(Vec<String>),
    Csv(String),
}

impl TagsField {
    /// The tags as a list (validated by the core).
    pub fn into_list(self) -> Vec<String> {
        match self {
            TagsField::List(l) => l,
            TagsField::Csv(s) => s
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }
}

fn created(rec: &crate::store::ObjectRecord) -> Response {
    let mut r = Response::json(201, &object_json(rec));
    r.header("Location", format!("/v1/objects/{}", rec.id));
    r
}

/// Namespace, tags and ttl from the query string, the defaults of every kind of
/// create.
fn base_from_query(q: &Query) -> Result<NewObject, CoreError> {
    Ok(NewObject {
        namespace: naming::namespace(q.get("namespace").unwrap_or(naming::DEFAULT_NAMESPACE))?,
        tags: q
            .get("tags")
            .map(naming::tags_csv)
            .transpose()?
            .unwrap_or_default(),
        expires_at_ms: q
            .get("ttl")
            .filter(|t| !t.is_empty())
            .map(|t| expires_at_from_ttl(t, now_ms()))
            .transpose()?,
        ..NewObject::default()
    })
}

/// `POST /v1/objects`
pub async fn create(ctx: Ctx<'_>) -> HandlerResult {
    let q = ctx.req.query()?;
    let (media, content_type) = ctx.req.content_type();
    let base = base_from_query(&q)?;
    if media == "multipart/form-data" {
        let content_type = content_type.to_string();
        return create_multipart(ctx, &content_type, base).await;
    }
    if media == "application/json" && q.get("name").is_none() {
        return create_json(ctx, base).await;
    }
    if ctx.req.head.framing() == ringbox_protocol::head::BodyFraming::None {
        return Err(ApiError::new(
            411,
            "length_required",
            "send the file as the body with Content-Length or chunked encoding",
        ));
    }
    // Validate everything before streaming, so a bad request costs no disk.
    let name = q.get("name").map(naming::name).transpose()?;
    let caller = &ctx.req.caller;
    ctx.svc
        .check_declared_size(caller, ctx.body.declared_length())?;
    let blob = ctx.svc.store_stream(caller, ctx.body).await?;
    let mut new = base;
    // A raw upload without ?name= is named by its id; the core names it after commit.
    new.name = name.unwrap_or_default();
    let content_type = ctx.req.header("content-type");
    let rec = ctx.svc.create_file(caller, new, blob, content_type).await?;
    Ok(created(&rec))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonCreate {
    #[serde(rename = "type")]
    kind: String,
    content: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    tags: Option<TagsField>,
    metadata: Option<Value>,
    /// A duration after which the object expires (`30s`, `10m`, `7d`).
    ttl: Option<String>,
}

async fn create_json(ctx: Ctx<'_>, mut base: NewObject) -> HandlerResult {
    let body = read_to_vec(ctx.body, MAX_JSON_BODY).await?;
    let j: JsonCreate = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON {{\"type\":\"text\",\"content\":\"...\"}} or {{\"type\":\"file\",\"name\":\"...\"}}: {e}"
        ))
    })?;
    if let Some(ns) = &j.namespace {
        base.namespace = naming::namespace(ns)?;
    }
    if let Some(t) = j.tags {
        base.tags = naming::tags(t.into_list())?;
    }
    if let Some(m) = j.metadata {
        base.metadata = naming::metadata(m)?;
    }
    if let Some(t) = &j.ttl {
        base.expires_at_ms = Some(expires_at_from_ttl(t, now_ms())?);
    }
    let name = j.name.as_deref().map(naming::name).transpose()?;
    let caller = &ctx.req.caller;
    let rec = match j.kind.as_str() {
        "text" => {
            let content = j
                .content
                .ok_or_else(|| ApiError::bad_request("a text object needs \"content\""))?;
            base.name = name.unwrap_or_else(|| "untitled.txt".into());
            ctx.svc.create_text(caller, base, content).await?
        }
        "file" => {
            if j.content.is_some() {
                return Err(ApiError::bad_request(
                    "a file object gets its bytes through PUT /v1/objects/{id}/content, not \"content\"",
                ));
            }
            base.name =
                name.ok_or_else(|| ApiError::bad_request("a pending file needs a \"name\""))?;
            ctx.svc.create_pending(caller, base).await?
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "\"type\" must be \"text\" or \"file\", not \"{other}\""
            )))
        }
    };
    Ok(created(&rec))
}

/// Form fields that describe the files after them.
fn check_field(name: &str, value: &str) -> Result<(), ApiError> {
    match name {
        "namespace" => naming::namespace(value.trim()).map(drop),
        "tags" => naming::tags_csv(value).map(drop),
        "metadata" => naming::metadata_text(value).map(drop),
        "name" => naming::name(value).map(drop),
        "ttl" => expires_at_from_ttl(value.trim(), 0).map(drop),
        _ => Ok(()),
    }
    .map_err(ApiError::from)
}

/// Multipart: fields apply to the files that follow them; a `name` field renames the
/// file when there is exactly one. A bad field or file name refuses the whole request
/// (nothing is stored). Then every file is committed on its own: the answer is 201
/// when all were stored, 207 with `objects` (stored) and `errors` (each with the
/// file's name and the error) when only some were (a quota reached, a full disk), and
/// the first error when none was.
async fn create_multipart(ctx: Ctx<'_>, content_type: &str, base: NewObject) -> HandlerResult {
    let caller = &ctx.req.caller;
    let opts = FormOptions {
        on_field: Some(&check_field),
        ..FormOptions::default()
    };
    let form = read_form(ctx.svc, caller, ctx.body, content_type, opts).await?;
    if form.files.is_empty() {
        return Err(ApiError::bad_request(
            "the form has no file part: send at least one part with a filename (e.g. curl -F file=@photo.jpg)",
        ));
    }
    let single = form.files.len() == 1;
    let name_field = form.field("name").map(str::to_string);
    // Build every object first, so a bad file name rejects the whole request before
    // anything is stored.
    let mut names = Vec::with_capacity(form.files.len());
    let mut batch = Vec::with_capacity(form.files.len());
    for f in form.files {
        let mut new = base.clone();
        for (k, v) in &form.fields[..f.fields_before] {
            match k.as_str() {
                "namespace" => new.namespace = naming::namespace(v.trim())?,
                "tags" => new.tags = naming::tags_csv(v)?,
                "metadata" => new.metadata = naming::metadata_text(v)?,
                "ttl" => new.expires_at_ms = Some(expires_at_from_ttl(v.trim(), now_ms())?),
                _ => {}
            }
        }
        new.name = match (&name_field, single) {
            (Some(n), true) => n.clone(),
            _ => naming::name(&f.filename)?,
        };
        names.push(new.name.clone());
        batch.push((new, f.blob, f.content_type));
    }
    let results = ctx.svc.create_files(caller, batch).await;
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    let mut first_err = None;
    for (name, res) in names.into_iter().zip(results) {
        match res {
            Ok(rec) => objects.push(object_json(&rec)),
            Err(e) => {
                let e = ApiError::from(e);
                errors.push(json!({
                    "name": name,
                    "error": { "code": e.code, "message": e.message },
                }));
                first_err.get_or_insert(e);
            }
        }
    }
    match (objects.is_empty(), first_err) {
        (_, None) => Ok(Response::json(201, &json!({ "objects": objects }))),
        (true, Some(e)) => Err(e),
        (false, Some(_)) => Ok(Response::json(
            207,
            &json!({ "objects": objects, "errors": errors }),
        )),
    }
}

/// `PUT /v1/objects/{id}/content`: raw body or the first file of a multipart form.
pub async fn put_content(ctx: Ctx<'_>) -> HandlerResult {
    let id = id_param(&ctx)?;
    let caller = &ctx.req.caller;
    // Refuse before reading anything if the object is not there or not the caller's.
    ctx.svc.object_for_write(caller, id)?;
    let (media, content_type) = ctx.req.content_type();
    let (blob, claim) = if media == "multipart/form-data" {
        let content_type = content_type.to_string();
        let opts = FormOptions {
            max_files: 1,
            ..FormOptions::default()
        };
        let mut form = read_form(ctx.svc, caller, ctx.body, &content_type, opts).await?;
        if form.files.is_empty() {
            return Err(ApiError::bad_request("the form has no file part"));
        }
        let f = form.files.remove(0);
        (f.blob, f.content_type)
    } else {
        if ctx.req.head.framing() == ringbox_protocol::head::BodyFraming::None {
            return Err(ApiError::new(
                411,
                "length_required",
                "send the content as the body",
            ));
        }
        ctx.svc
            .check_declared_size(caller, ctx.body.declared_length())?;
        let blob = ctx.svc.store_stream(caller, ctx.body).await?;
        (blob, ctx.req.header("content-type").map(str::to_string))
    };
    let rec = ctx
        .svc
        .set_content(caller, id, blob, claim.as_deref())
        .await?;
    Ok(Response::json(200, &object_json(&rec)))
}
