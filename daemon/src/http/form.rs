//! `multipart/form-data` bodies for every API: text fields are kept in memory
//! (bounded), file parts are streamed straight into temp blobs of the core (hashed,
//! bounded by the per-file limit), so a form of any size costs flat memory.
//!
//! Fields keep their order relative to files ([`FormFile::fields_before`]), so an API
//! can apply "fields before a file describe that file" (the native API does). A
//! field validator runs as each field ends, so a bad field refuses the request before
//! the files after it are streamed. Temp blobs of a form that fails, or that is
//! dropped, are removed.

use ringbox_protocol::multipart::{boundary_from_content_type, MultipartEvent, MultipartParser};

use crate::core::stream::ByteStream;
use crate::core::upload::{BlobWriter, TempBlob};
use crate::core::{Caller, Local};
use crate::http::errors::ApiError;

/// A non-file field is read into memory up to this size.
pub const MAX_FIELD: usize = 64 * 1024;
/// Read size of the form parser's buffer.
const FORM_BUF: usize = 256 * 1024;

/// A file part, streamed to a temp blob.
#[derive(Debug)]
pub struct FormFile {
    /// The part's `name`.
    #[allow(dead_code)] // dialects that take several named file fields read it
    pub field: String,
    /// The part's `filename` (as sent; the API validates or sanitises it).
    pub filename: String,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
    pub blob: TempBlob,
    /// How many text fields came before this file.
    pub fields_before: usize,
}

/// A whole form.
#[derive(Debug, Default)]
pub struct Form {
    pub fields: Vec<(String, String)>,
    pub files: Vec<FormFile>,
}

impl Form {
    /// The first value of a text field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A check of one text field (name, value).
pub type FieldCheck = dyn Fn(&str, &str) -> Result<(), ApiError>;

/// What to keep of a form.
#[derive(Clone, Copy)]
pub struct FormOptions<'a> {
    /// Most files kept; parts beyond are read and discarded.
    pub max_files: usize,
    /// Only parts with these names are files (others with a filename are skipped);
    /// `None` = any part with a filename.
    pub file_fields: Option<&'a [&'a str]>,
    /// Called with each text field as it ends; an error refuses the form.
    pub on_field: Option<&'a FieldCheck>,
}

impl Default for FormOptions<'_> {
    fn default() -> Self {
        FormOptions {
            max_files: usize::MAX,
            file_fields: None,
            on_field: None,
        }
    }
}

enum Part {
    None,
    Field { name: String, value: Vec<u8> },
    File(Box<FilePart>),
}

struct FilePart {
    field: String,
    filename: String,
    content_type: Option<String>,
    writer: BlobWriter,
}

/// Read a whole `multipart/form-data` body (`content_type` is the request's header).
pub async fn read_form(
    svc: &Local,
    caller: &Caller,
    body: &mut dyn ByteStream,
    content_type: &str,
    opts: FormOptions<'_>,
) -> Result<Form, ApiError> {
    let boundary = boundary_from_content_type(content_type.as_bytes())
        .map_err(|e| ApiError::from_protocol(&e))?;
    let mut parser = MultipartParser::new(&boundary, &svc.settings.limits)
        .map_err(|e| ApiError::from_protocol(&e))?;
    let mut form = Form::default();
    let mut part = Part::None;
    let mut mbuf: Vec<u8> = Vec::with_capacity(FORM_BUF);
    let mut mpos = 0usize;
    let mut eof = false;
    let limit = svc.file_limit(caller);
    let result: Result<(), ApiError> = async {
        loop {
            let (consumed, ev) = parser
                .parse(&mbuf[mpos..], eof)
                .map_err(|e| ApiError::from_protocol(&e))?;
            let mut need_more = false;
            let mut done = false;
            match ev {
                MultipartEvent::PartStart(h) => {
                    let wanted = |name: &Option<String>| match (opts.file_fields, name) {
                        (None, _) => true,
                        (Some(list), Some(n)) => list.contains(&n.as_str()),
                        (Some(_), None) => false,
                    };
                    let room = form.files.len() < opts.max_files;
                    part = match (h.filename, h.name) {
                        (Some(filename), name) if room && wanted(&name) => {
                            Part::File(Box::new(FilePart {
                                field: name.unwrap_or_default(),
                                filename,
                                content_type: h.content_type,
                                writer: BlobWriter::create(svc, limit).await?,
                            }))
                        }
                        (None, Some(name)) => Part::Field {
                            name,
                            value: Vec::new(),
                        },
                        _ => Part::None,
                    };
                }
                MultipartEvent::Data(d) => match &mut part {
                    Part::File(f) => f
                        .writer
                        .write(d)
                        .await
                        .map_err(|e| svc.limit_exceeded(caller, e))?,
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
                    Part::File(f) => {
                        let FilePart {
                            field,
                            filename,
                            content_type,
                            writer,
                        } = *f;
                        let blob = writer.finish().await?;
                        form.files.push(FormFile {
                            field,
                            filename,
                            content_type,
                            blob,
                            fields_before: form.fields.len(),
                        });
                    }
                    Part::Field { name, value } => {
                        let value = String::from_utf8(value).map_err(|_| {
                            ApiError::bad_request(format!("form field `{name}` is not UTF-8"))
                        })?;
                        if let Some(check) = opts.on_field {
                            check(&name, &value)?;
                        }
                        form.fields.push((name, value));
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
                match body.next_chunk().await? {
                    Some(chunk) => mbuf.extend_from_slice(chunk),
                    None => eof = true,
                }
            }
        }
    }
    .await;
    // Read what is left (the epilogue) so the connection stays usable.
    let result = match result {
        Ok(()) => loop {
            match body.next_chunk().await {
                Ok(Some(_)) => {}
                Ok(None) => break Ok(()),
                Err(e) => break Err(ApiError::from(e)),
            }
        },
        Err(e) => Err(e),
    };
    if let Part::File(f) = part {
        f.writer.abort().await;
    }
    // On error, dropping `form` removes the temp blobs streamed so far.
    result.map(|()| form)
}
