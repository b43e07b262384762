//! Uploads: `POST /v1/objects` (multipart/form-data, JSON, or a raw body) and
//! `PUT /v1/objects/{id}/content`.
//!
//! Bodies are streamed: each piece is hashed and appended to a temp file under
//! `<data>/tmp/` with io_uring writes, so memory stays flat whatever the size. At the
//! end the temp file is fsynced (unless `--durability none`) and handed to the writer
//! thread, which links it into `blobs/` (or drops it when the blob already exists),
//! commits the record, and only then do we answer 2xx. Any failure removes the temp
//! file before answering.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;

use monoio::fs::File;
use ringbox_protocol::multipart::{boundary_from_content_type, MultipartEvent, MultipartParser};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::objects::{query, read_small_body, TagsField, MAX_JSON_BODY};
use super::{object_json, validate, Result};
use crate::api::Ctx;
use crate::http::errors::ApiError;
use crate::http::response::Response;
use crate::metrics;
use crate::server::conn::BODY_BUF;
use crate::server::sys;
use crate::store::{
    Command, Durability, Kind, NewBlob, ObjectId, ObjectRecord, Reply, State, Store, StoreError,
};
use crate::util::mime;
use crate::util::time::now_ms;

/// Temp-file writes are batched into buffers of this size.
const WRITE_BUF: usize = 256 * 1024;
/// Space kept free on the data volume for metadata commits: 1% of the volume,
/// at least 2 MiB and at most 256 MiB.
const MIN_RESERVE: u64 = 2 << 20;
const MAX_RESERVE: u64 = 256 << 20;
/// A non-file multipart field (namespace, tags, metadata, name) is read into memory.
const MAX_FIELD: usize = 64 * 1024;

/// A blob being written: temp file + running SHA-256 + size.
struct BlobWriter {
    file: File,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    buf: Vec<u8>,
    /// The first bytes, for MIME sniffing.
    head: Vec<u8>,
}

impl BlobWriter {
    async fn create(store: &Store) -> Result<BlobWriter> {
        let path = store.tmp_path();
        let file = File::create(&path).await.map_err(|e| {
            tracing::error!(path = %path.display(), error = %e, "cannot create a temp file");
            ApiError::from(e)
        })?;
        Ok(BlobWriter {
            file,
            path,
            hasher: Sha256::new(),
            size: 0,
            buf: Vec::with_capacity(WRITE_BUF),
            head: Vec::with_capacity(mime::SNIFF_LEN),
        })
    }

    async fn write(&mut self, mut data: &[u8]) -> Result<()> {
        if self.head.len() < mime::SNIFF_LEN {
            let n = (mime::SNIFF_LEN - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..n]);
        }
        self.hasher.update(data);
        while !data.is_empty() {
            let n = (WRITE_BUF - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == WRITE_BUF {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // Leave a reserve on the data volume: LMDB needs free pages to commit anything,
        // deletes included, so uploads must never take the last bytes (else a full disk
        // could not be emptied through the API).
        if let Ok((free, total)) = sys::fs_space(&self.file) {
            let reserve = (total / 100).clamp(MIN_RESERVE, MAX_RESERVE);
            if free < reserve + self.buf.len() as u64 {
                return Err(StoreError::Full.into());
            }
        }
        let buf = std::mem::take(&mut self.buf);
        let n = buf.len() as u64;
        let (res, mut buf) = self.file.write_all_at(buf, self.size).await;
        res?;
        self.size += n;
        buf.clear();
        self.buf = buf;
        Ok(())
    }

    /// Flush, fsync (with fsync durability) and close; the temp file is complete.
    async fn finish(mut self, durability: Durability) -> Result<NewBlob> {
        let flushed = self.flush().await;
        let synced = match (flushed, durability) {
            (Err(e), _) => Err(e),
            (Ok(()), Durability::Fsync) => self.file.sync_all().await.map_err(ApiError::from),
            (Ok(()), Durability::None) => Ok(()),
        };
        let path = self.path.clone();
        if let Err(e) = synced {
            self.abort().await;
            return Err(e);
        }
        let _ = self.file.close().await;
        Ok(NewBlob {
            tmp_path: path,
            sha256: self.hasher.finalize().into(),
            size: self.size,
        })
    }

    /// Close and delete the temp file.
    async fn abort(self) {
        let _ = self.file.close().await;
        remove_tmp(&self.path).await;
    }
}

async fn remove_tmp(path: &std::path::Path) {
    if let Err(e) = monoio::fs::remove_file(path).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a temp file");
        }
    }
}

/// Stream the whole request body into a new temp blob.
async fn body_to_blob(ctx: &mut Ctx<'_>) -> Result<(NewBlob, Vec<u8>)> {
    let store = ctx.w.store();
    let mut bw = BlobWriter::create(store).await?;
    let streamed: Result<()> = async {
        while let Some(chunk) = ctx.io.next_body_chunk().await? {
            bw.write(chunk).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = streamed {
        bw.abort().await;
        return Err(e);
    }
    let head = bw.head.clone();
    Ok((bw.finish(store.durability()).await?, head))
}

/// Hand a finished blob + record to the writer; on failure remove the temp file.
async fn commit(store: &Store, cmd: Command, tmp: Option<PathBuf>) -> Result<ObjectRecord> {
    match store.writer().submit(cmd).await {
        Ok(Reply::Object(rec)) => Ok(rec),
        Ok(other) => Err(ApiError::internal(format!(
            "unexpected writer reply {other:?}"
        ))),
        Err(e) => {
            if let Some(p) = tmp {
                remove_tmp(&p).await;
            }
            Err(e.into())
        }
    }
}

/// Common fields of a new object.
struct NewObject {
    namespace: String,
    tags: Vec<String>,
    metadata: Map<String, Value>,
}

fn new_record(ctx: &Ctx<'_>, kind: Kind, name: String, o: &NewObject) -> ObjectRecord {
    let now = now_ms();
    ObjectRecord {
        id: uuid::Uuid::now_v7(),
        kind,
        name,
        namespace: o.namespace.clone(),
        mime_type: String::new(),
        size: 0,
        sha256: None,
        state: State::Pending,
        created_at_ms: now,
        updated_at_ms: now,
        tags: o.tags.clone(),
        metadata_json: serde_json::to_string(&o.metadata).unwrap_or_else(|_| "{}".into()),
        content: None,
        owner: ctx.principal.as_ref().map(|p| p.user.clone()),
        expires_at_ms: None,
        ..ObjectRecord::blank()
    }
}

fn stored(mut rec: ObjectRecord, blob: &NewBlob, mime: String) -> ObjectRecord {
    rec.size = blob.size;
    rec.sha256 = Some(blob.sha256);
    rec.mime_type = mime;
    rec.state = State::Stored;
    rec
}

fn created(rec: &ObjectRecord) -> Response {
    let mut r = Response::json(201, &object_json(rec));
    r.header("Location", format!("/v1/objects/{}", rec.id));
    r
}

fn count_upload(size: u64) {
    let m = metrics::get();
    m.uploads.fetch_add(1, Relaxed);
    m.upload_bytes.fetch_add(size, Relaxed);
}

/// The request's `Content-Type` and its media type (lower case, no parameters).
fn content_type(ctx: &Ctx<'_>) -> (String, String) {
    let ct = ctx
        .head
        .header_str("content-type")
        .unwrap_or("")
        .to_string();
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (ct, media)
}

/// `POST /v1/objects`
pub async fn create(mut ctx: Ctx<'_>) -> Result<Response> {
    let q = query(&ctx)?;
    let (content_type, media) = content_type(&ctx);
    let base = NewObject {
        namespace: validate::namespace(q.get("namespace").unwrap_or(validate::DEFAULT_NAMESPACE))?,
        tags: q
            .get("tags")
            .map(validate::tags_csv)
            .transpose()?
            .unwrap_or_default(),
        metadata: Map::new(),
    };
    if media == "multipart/form-data" {
        return create_multipart(&mut ctx, &content_type, base).await;
    }
    if media == "application/json" && q.get("name").is_none() {
        return create_json(&mut ctx, base).await;
    }
    if ctx.head.framing() == ringbox_protocol::head::BodyFraming::None {
        return Err(ApiError::new(
            411,
            "length_required",
            "send the file as the body with Content-Length or chunked encoding",
        ));
    }
    // Validate everything before streaming, so a bad request costs no disk.
    let name = q.get("name").map(validate::name).transpose()?;
    let (blob, head) = body_to_blob(&mut ctx).await?;
    let mut rec = new_record(&ctx, Kind::File, String::new(), &base);
    rec.name = name.unwrap_or_else(|| rec.id.to_string());
    let mime = mime::choose(Some(&content_type), &rec.name, &head);
    let rec = stored(rec, &blob, mime);
    let tmp = blob.tmp_path.clone();
    let size = blob.size;
    let rec = commit(
        ctx.w.store(),
        Command::Create {
            record: rec,
            blob: Some(blob),
            unique_name: false,
        },
        Some(tmp),
    )
    .await?;
    count_upload(size);
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
}

async fn create_json(ctx: &mut Ctx<'_>, mut base: NewObject) -> Result<Response> {
    let body = read_small_body(ctx.io, MAX_JSON_BODY).await?;
    let j: JsonCreate = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON {{\"type\":\"text\",\"content\":\"...\"}} or {{\"type\":\"file\",\"name\":\"...\"}}: {e}"
        ))
    })?;
    if let Some(ns) = &j.namespace {
        base.namespace = validate::namespace(ns)?;
    }
    if let Some(t) = j.tags {
        base.tags = t.validate()?;
    }
    if let Some(m) = j.metadata {
        base.metadata = validate::metadata(m)?;
    }
    let name = j.name.as_deref().map(validate::name).transpose()?;
    let rec = match j.kind.as_str() {
        "text" => {
            let content = j
                .content
                .ok_or_else(|| ApiError::bad_request("a text object needs \"content\""))?;
            let mut rec = new_record(
                ctx,
                Kind::Text,
                name.unwrap_or_else(|| "untitled.txt".into()),
                &base,
            );
            rec.size = content.len() as u64;
            rec.sha256 = Some(Sha256::digest(content.as_bytes()).into());
            rec.mime_type = "text/plain; charset=utf-8".into();
            rec.state = State::Stored;
            rec.content = Some(content);
            rec
        }
        "file" => {
            if j.content.is_some() {
                return Err(ApiError::bad_request(
                    "a file object gets its bytes through PUT /v1/objects/{id}/content, not \"content\"",
                ));
            }
            let name =
                name.ok_or_else(|| ApiError::bad_request("a pending file needs a \"name\""))?;
            let mut rec = new_record(ctx, Kind::File, name, &base);
            rec.mime_type = mime::from_name(&rec.name)
                .unwrap_or("application/octet-stream")
                .into();
            rec
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "\"type\" must be \"text\" or \"file\", not \"{other}\""
            )))
        }
    };
    let rec = commit(
        ctx.w.store(),
        Command::Create {
            record: rec,
            blob: None,
            unique_name: false,
        },
        None,
    )
    .await?;
    Ok(created(&rec))
}

/// The part being read.
enum Part {
    None,
    Field {
        name: String,
        value: Vec<u8>,
    },
    File {
        filename: String,
        content_type: Option<String>,
        writer: BlobWriter,
    },
}

/// A file part streamed to a temp blob, not yet committed.
struct FilePart {
    filename: String,
    content_type: Option<String>,
    blob: NewBlob,
    head: Vec<u8>,
    base: (String, Vec<String>, Map<String, Value>),
}

/// Read a multipart body: fields are kept, files are streamed to temp blobs.
/// With `first_file_only`, parts after the first file are read and discarded.
async fn read_multipart(
    ctx: &mut Ctx<'_>,
    content_type: &str,
    base: &mut NewObject,
    name_field: &mut Option<String>,
    first_file_only: bool,
) -> Result<Vec<FilePart>> {
    let boundary = boundary_from_content_type(content_type.as_bytes())
        .map_err(|e| ApiError::from_protocol(&e))?;
    let mut parser = MultipartParser::new(&boundary, &ctx.w.shared.limits)
        .map_err(|e| ApiError::from_protocol(&e))?;
    let store = ctx.w.store();
    let mut files: Vec<FilePart> = Vec::new();
    let mut part = Part::None;
    let mut mbuf: Vec<u8> = Vec::with_capacity(BODY_BUF);
    let mut mpos = 0usize;
    let mut eof = false;
    let result: Result<()> = async {
        loop {
            let (consumed, ev) = parser
                .parse(&mbuf[mpos..], eof)
                .map_err(|e| ApiError::from_protocol(&e))?;
            let mut need_more = false;
            let mut done = false;
            match ev {
                MultipartEvent::PartStart(h) => {
                    let skip = first_file_only && !files.is_empty();
                    part = match (h.filename, h.name) {
                        (Some(filename), _) if !skip => Part::File {
                            filename,
                            content_type: h.content_type,
                            writer: BlobWriter::create(store).await?,
                        },
                        (None, Some(name)) => Part::Field {
                            name,
                            value: Vec::new(),
                        },
                        _ => Part::None,
                    };
                }
                MultipartEvent::Data(d) => match &mut part {
                    Part::File { writer, .. } => writer.write(d).await?,
                    Part::Field { value, .. } => {
                        if value.len() + d.len() > MAX_FIELD {
                            return Err(ApiError::bad_request(
                                "a form field is larger than 64 KiB",
                            ));
                        }
                        value.extend_from_slice(d);
                    }
                    Part::None => {}
                },
                MultipartEvent::PartEnd => match std::mem::replace(&mut part, Part::None) {
                    Part::File {
                        filename,
                        content_type,
                        writer,
                    } => {
                        let head = writer.head.clone();
                        let blob = writer.finish(store.durability()).await?;
                        files.push(FilePart {
                            filename,
                            content_type,
                            blob,
                            head,
                            base: (
                                base.namespace.clone(),
                                base.tags.clone(),
                                base.metadata.clone(),
                            ),
                        });
                    }
                    Part::Field { name, value } => {
                        let value = String::from_utf8(value).map_err(|_| {
                            ApiError::bad_request(format!("form field `{name}` is not UTF-8"))
                        })?;
                        match name.as_str() {
                            "namespace" => base.namespace = validate::namespace(value.trim())?,
                            "tags" => base.tags = validate::tags_csv(&value)?,
                            "metadata" => base.metadata = validate::metadata_text(&value)?,
                            "name" => *name_field = Some(validate::name(&value)?),
                            _ => {}
                        }
                    }
                    Part::None => {}
                },
                MultipartEvent::NeedMore => need_more = true,
                MultipartEvent::Done => done = true,
            }
            mpos += consumed;
            if done {
                return Ok(());
            }
            if need_more {
                if eof {
                    return Err(ApiError::new(
                        400,
                        "bad_multipart",
                        "the body ended before the closing --boundary--",
                    ));
                }
                mbuf.drain(..mpos);
                mpos = 0;
                match ctx.io.next_body_chunk().await? {
                    Some(chunk) => mbuf.extend_from_slice(chunk),
                    None => eof = true,
                }
            }
        }
    }
    .await;
    // Finish reading what is left (the epilogue) so the connection stays usable.
    let result = match result {
        Ok(()) => loop {
            match ctx.io.next_body_chunk().await {
                Ok(Some(_)) => {}
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        },
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        if let Part::File { writer, .. } = part {
            writer.abort().await;
        }
        for f in &files {
            remove_tmp(&f.blob.tmp_path).await;
        }
        return Err(e);
    }
    Ok(files)
}

async fn create_multipart(
    ctx: &mut Ctx<'_>,
    content_type: &str,
    mut base: NewObject,
) -> Result<Response> {
    let mut name_field = None;
    let files = read_multipart(ctx, content_type, &mut base, &mut name_field, false).await?;
    if files.is_empty() {
        return Err(ApiError::bad_request(
            "the form has no file part: send at least one part with a filename (e.g. curl -F file=@photo.jpg)",
        ));
    }
    let single = files.len() == 1;
    // Build every record first, so a bad file name rejects the whole request.
    let mut pending = Vec::with_capacity(files.len());
    let mut failure = None;
    for f in files {
        let name = match (&name_field, single) {
            (Some(n), true) => Ok(n.clone()),
            _ => validate::name(&f.filename),
        };
        match name {
            Ok(name) if failure.is_none() => {
                let (namespace, tags, metadata) = f.base.clone();
                let obj = NewObject {
                    namespace,
                    tags,
                    metadata,
                };
                let mime = mime::choose(f.content_type.as_deref(), &name, &f.head);
                let rec = stored(new_record(ctx, Kind::File, name, &obj), &f.blob, mime);
                pending.push((rec, f.blob));
            }
            Ok(_) => remove_tmp(&f.blob.tmp_path).await,
            Err(e) => {
                remove_tmp(&f.blob.tmp_path).await;
                failure = Some(e);
            }
        }
    }
    if let Some(e) = failure {
        for (_, b) in pending {
            remove_tmp(&b.tmp_path).await;
        }
        return Err(e);
    }
    // Queue every create before awaiting any, so they share one group commit.
    let store = ctx.w.store();
    let mut waits = Vec::with_capacity(pending.len());
    for (rec, blob) in pending {
        let tmp = blob.tmp_path.clone();
        let size = blob.size;
        waits.push((
            store.writer().submit(Command::Create {
                record: rec,
                blob: Some(blob),
                unique_name: false,
            }),
            tmp,
            size,
        ));
    }
    let mut objects = Vec::with_capacity(waits.len());
    let mut first_err = None;
    for (wait, tmp, size) in waits {
        match wait.await {
            Ok(Reply::Object(rec)) => {
                count_upload(size);
                objects.push(object_json(&rec));
            }
            Ok(other) => {
                first_err.get_or_insert(ApiError::internal(format!(
                    "unexpected writer reply {other:?}"
                )));
            }
            Err(e) => {
                remove_tmp(&tmp).await;
                first_err.get_or_insert(e.into());
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(Response::json(201, &json!({ "objects": objects })))
}

/// `PUT /v1/objects/{id}/content`: raw body or the first file of a multipart form.
pub async fn put_content(mut ctx: Ctx<'_>, id: ObjectId) -> Result<Response> {
    let existing = ctx
        .w
        .store()
        .get_object(id)?
        .ok_or_else(|| ApiError::not_found("the object"))?;
    if existing.kind == Kind::Text {
        return Err(ApiError::new(
            409,
            "conflict",
            "a text object has no file content; PATCH it instead",
        ));
    }
    let (content_type, media) = content_type(&ctx);
    let (blob, mime) = if media == "multipart/form-data" {
        let mut base = NewObject {
            namespace: existing.namespace.clone(),
            tags: vec![],
            metadata: Map::new(),
        };
        let mut name_field = None;
        let mut files =
            read_multipart(&mut ctx, &content_type, &mut base, &mut name_field, true).await?;
        if files.is_empty() {
            return Err(ApiError::bad_request("the form has no file part"));
        }
        let f = files.remove(0);
        let mime = mime::choose(f.content_type.as_deref(), &existing.name, &f.head);
        (f.blob, mime)
    } else {
        if ctx.head.framing() == ringbox_protocol::head::BodyFraming::None {
            return Err(ApiError::new(
                411,
                "length_required",
                "send the content as the body",
            ));
        }
        let (blob, head) = body_to_blob(&mut ctx).await?;
        let mime = mime::choose(Some(&content_type), &existing.name, &head);
        (blob, mime)
    };
    let tmp = blob.tmp_path.clone();
    let size = blob.size;
    let cmd = Command::SetContent {
        id,
        blob,
        mime_type: Some(mime),
        now_ms: now_ms(),
    };
    let rec = commit(ctx.w.store(), cmd, Some(tmp)).await?;
    count_upload(size);
    Ok(Response::json(200, &object_json(&rec)))
}
