//! How RhinoBox's view of a file maps onto a ringbox object, both ways: stored paths,
//! categories, media types, the hash and path aliases, the `_rhinobox` metadata key,
//! the JSON record the seed shows, and the two audit views (`delete_log.ndjson`,
//! `rename_log.ndjson`).
//!
//! A RhinoBox file is an object in namespace [`NAMESPACE`] named by its original
//! (current) file name, with:
//!
//! - the alias `rhino:<sha256 hex>`: one object per content (RhinoBox's hash
//!   addressing; `?hash=` is a lookup of it);
//! - the alias `path:<stored path>`: the logical path ingestion answered
//!   (`media/images/vacation/photo_<uuid>.jpg`, `files/docs/report_<uuid>.pdf`), which
//!   `?path=` looks up. No file lives at that path: the bytes are the object's blob;
//! - metadata key [`SYSTEM_KEY`] = `{"kind","media_type","label","category",
//!   "stored_path"}`; the rest of the metadata is the user's (`comment`, the form's
//!   `metadata`, what `PATCH /files/{hash}/metadata` sets).
//!
//! Categories: a media file's label is the first non-empty of its hints (the
//! `category` field, the comment, the file's base name), sanitised like RhinoBox does
//! (lower case, runs of anything but `a-z0-9_-` become `-`), else its media type; its
//! category is `<media_type>/<label>` (`images/vacation`). A generic file's category is
//! `files/<namespace>` (`files/generic` without one). Every file has a category.

use serde_json::{json, Map, Value};

use crate::core::audit::{AuditRecord, View};
use crate::core::media::sniff;
use crate::store::ObjectRecord;
use crate::util::hex;
use crate::util::time::rfc3339_ms;

/// The namespace of every object stored through RhinoBox.
pub const NAMESPACE: &str = "rhinobox";
/// The alias scheme of the content hash.
pub const HASH_SCHEME: &str = "rhino";
/// The alias scheme of the stored path.
pub const PATH_SCHEME: &str = "path";
/// The metadata key holding RhinoBox's own fields.
pub const SYSTEM_KEY: &str = "_rhinobox";
/// Metadata keys the seed's record shows at the top level, which user metadata may not
/// use (RhinoBox calls them protected).
pub const PROTECTED: [&str; 8] = [
    "hash",
    "original_name",
    "stored_path",
    "mime_type",
    "size",
    "uploaded_at",
    "category",
    SYSTEM_KEY,
];
/// Longest sanitised label or file base in a stored path.
const MAX_SEGMENT: usize = 64;

pub fn hash_alias(hash_hex: &str) -> String {
    format!("{HASH_SCHEME}:{hash_hex}")
}

pub fn path_alias(path: &str) -> String {
    format!("{PATH_SCHEME}:{path}")
}

/// A SHA-256 in hex (either case) as lower-case hex; `None` unless 64 hex digits.
pub fn parse_hash(raw: &str) -> Option<String> {
    (raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| raw.to_ascii_lowercase())
}

/// A `?path=` that tries to leave the store: absolute (`/etc/passwd`, `\x`, `C:\x`) or
/// with a `..` segment (with `/` or `\` as separators).
pub fn has_traversal(path: &str) -> bool {
    path.starts_with(['/', '\\'])
        || path.as_bytes().get(1) == Some(&b':')
        || path.split(['/', '\\']).any(|seg| seg == "..")
}

/// The last component of a client's file name (browsers and curl send base names;
/// anything before a `/` or `\` is dropped).
pub fn base_name(filename: &str) -> &str {
    filename.rsplit(['/', '\\']).next().unwrap_or(filename)
}

/// RhinoBox's sanitiser: trimmed, lower case, runs of anything but `a-z0-9_-` become
/// one `-`, no leading or trailing `-`; cut to 64 bytes.
pub fn sanitize(input: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in input.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c);
        } else {
            dash = true;
        }
        if out.len() >= MAX_SEGMENT {
            break;
        }
    }
    out.trim_matches('-').to_string()
}

/// `(base, ext)` of a file name: `ext` is `.` plus up to 16 lower-case ASCII
/// alphanumerics, or empty.
pub fn split_ext(name: &str) -> (&str, String) {
    match name.rsplit_once('.') {
        Some((base, ext))
            if !base.is_empty()
                && !ext.is_empty()
                && ext.len() <= 16
                && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            (base, format!(".{}", ext.to_ascii_lowercase()))
        }
        _ => (name, String::new()),
    }
}

/// The MIME type RhinoBox routes by: sniffed from the first bytes, else from the
/// extension, else the client's (when specific), else `application/octet-stream`.
pub fn detect_mime(claimed: Option<&str>, name: &str, head: &[u8]) -> String {
    sniff::detect(head, name, claimed).into_owned()
}

/// `image/*`, `video/*` and `audio/*` go to the media pipeline.
pub fn is_media(mime: &str) -> bool {
    let m = mime.to_ascii_lowercase();
    m.starts_with("image/") || m.starts_with("video/") || m.starts_with("audio/")
}

/// RhinoBox's media type directory for a MIME type (extension as fallback).
pub fn media_type(mime: &str, name: &str) -> &'static str {
    let m = mime.to_ascii_lowercase();
    if m.starts_with("image/") {
        "images"
    } else if m.starts_with("video/") {
        "videos"
    } else if m.starts_with("audio/") {
        "audio"
    } else if m.starts_with("text/") {
        "documents"
    } else {
        match split_ext(name).1.as_str() {
            ".jpg" | ".jpeg" | ".png" | ".gif" | ".bmp" | ".webp" => "images",
            ".mp4" | ".mov" | ".avi" | ".mkv" | ".webm" => "videos",
            ".mp3" | ".wav" | ".flac" | ".aac" => "audio",
            _ => "other",
        }
    }
}

/// Where a new file is filed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// `media` or `file`.
    pub kind: &'static str,
    /// `images`, `videos`, ... for media; `None` for generic files.
    pub media_type: Option<&'static str>,
    /// The label ingestion answers as `category` (`vacation`; `docs` for a file).
    pub label: String,
    /// The full category (`images/vacation`, `files/docs`).
    pub category: String,
    /// `media/images/vacation/photo_<uuid>.jpg`, `files/docs/report_<uuid>.pdf`.
    pub stored_path: String,
}

/// `<sanitised base>_<uuid><ext>`.
fn stored_file_name(name: &str) -> String {
    let (base, ext) = split_ext(name);
    let mut base = sanitize(base);
    if base.is_empty() {
        base = "file".into();
    }
    format!("{base}_{}{ext}", uuid::Uuid::now_v7())
}

/// A media file: the label is the first non-empty sanitised hint, else the sanitised
/// base name, else the media type.
pub fn media_placement(mime: &str, name: &str, hints: &[&str]) -> Placement {
    let media_type = media_type(mime, name);
    let base = split_ext(name).0;
    let label = hints
        .iter()
        .copied()
        .chain(std::iter::once(base))
        .map(sanitize)
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| media_type.to_string());
    Placement {
        kind: "media",
        media_type: Some(media_type),
        category: format!("{media_type}/{label}"),
        stored_path: format!("media/{media_type}/{label}/{}", stored_file_name(name)),
        label,
    }
}

/// A generic file, filed under its (sanitised) namespace, or `generic`.
pub fn file_placement(namespace: Option<&str>, name: &str) -> Placement {
    let label = namespace
        .map(sanitize)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "generic".into());
    Placement {
        kind: "file",
        media_type: None,
        category: format!("files/{label}"),
        stored_path: format!("files/{label}/{}", stored_file_name(name)),
        label,
    }
}

/// The `_rhinobox` metadata value of a placement.
pub fn system_meta(p: &Placement) -> Value {
    json!({
        "kind": p.kind,
        "media_type": p.media_type,
        "label": p.label,
        "category": p.category,
        "stored_path": p.stored_path,
    })
}

fn metadata_of(rec: &ObjectRecord) -> Map<String, Value> {
    match serde_json::from_str(&rec.metadata_json) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// The user's metadata: the object's, without [`SYSTEM_KEY`].
pub fn user_metadata(rec: &ObjectRecord) -> Map<String, Value> {
    let mut m = metadata_of(rec);
    m.remove(SYSTEM_KEY);
    m
}

/// A field of the `_rhinobox` metadata.
fn system_field(rec: &ObjectRecord, key: &str) -> Option<String> {
    metadata_of(rec)
        .get(SYSTEM_KEY)?
        .get(key)?
        .as_str()
        .map(str::to_string)
}

/// The stored path (from the `path:` alias).
pub fn stored_path(rec: &ObjectRecord) -> String {
    rec.aliases
        .iter()
        .find_map(|a| a.strip_prefix(PATH_SCHEME)?.strip_prefix(':'))
        .unwrap_or_default()
        .to_string()
}

/// The full category (never empty).
pub fn category(rec: &ObjectRecord) -> String {
    system_field(rec, "category")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "files/generic".into())
}

/// The label ingestion answered as `category`.
pub fn label(rec: &ObjectRecord) -> String {
    system_field(rec, "label")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "generic".into())
}

pub fn hash_hex(rec: &ObjectRecord) -> String {
    rec.sha256.map(|s| hex::encode(&s)).unwrap_or_default()
}

/// The seed's file record (`GET /files/metadata`), plus `object_id`, the object's id in
/// the native API.
pub fn file_json(rec: &ObjectRecord) -> Value {
    json!({
        "hash": hash_hex(rec),
        "original_name": rec.name,
        "stored_path": stored_path(rec),
        "category": category(rec),
        "mime_type": rec.mime_type,
        "size": rec.size,
        "uploaded_at": rfc3339_ms(rec.created_at_ms),
        "metadata": user_metadata(rec),
        "object_id": rec.id.to_string(),
    })
}

/// `metadata/delete_log.ndjson`: deletes of RhinoBox files (objects with a `rhino:`
/// alias), whichever API deleted them, in the seed's shape.
fn delete_line(r: &AuditRecord) -> Option<Value> {
    if r.action != "object.deleted" {
        return None;
    }
    let hash = r.alias(HASH_SCHEME)?;
    let category = r
        .detail("metadata")
        .and_then(|m| m.get(SYSTEM_KEY)?.get("category")?.as_str())
        .unwrap_or("files/generic");
    Some(json!({
        "hash": hash,
        "original_name": r.name,
        "stored_path": r.alias(PATH_SCHEME).unwrap_or_default(),
        "category": category,
        "mime_type": r.detail("mime_type"),
        "size": r.detail("size"),
        "deleted_at": r.at(),
    }))
}

/// `metadata/rename_log.ndjson`: renames of RhinoBox files, in RhinoBox's shape (the
/// stored path never changes: it is a logical name).
fn rename_line(r: &AuditRecord) -> Option<Value> {
    if r.action != "object.renamed" {
        return None;
    }
    let hash = r.alias(HASH_SCHEME)?;
    let path = r.alias(PATH_SCHEME).unwrap_or_default();
    Some(json!({
        "hash": hash,
        "old_original_name": r.old_name,
        "new_original_name": r.name,
        "old_stored_path": path,
        "new_stored_path": path,
        "updated_stored_file": false,
        "renamed_at": r.at(),
    }))
}

/// RhinoBox's audit views, registered with the audit log when the API is enabled.
pub const AUDIT_VIEWS: [View; 2] = [
    View {
        path: "metadata/delete_log.ndjson",
        line: delete_line,
    },
    View {
        path: "metadata/rename_log.ndjson",
        line: rename_line,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_traversal() {
        let h = "AB".repeat(32);
        assert_eq!(parse_hash(&h), Some("ab".repeat(32)));
        assert_eq!(parse_hash("abc123"), None);
        assert_eq!(parse_hash(&"g".repeat(64)), None);
        for bad in [
            "../etc/passwd",
            "media/../../x",
            "/etc/passwd",
            "\\windows",
            "a\\..\\b",
            "C:\\x",
            "..",
        ] {
            assert!(has_traversal(bad), "{bad}");
        }
        for ok in [
            "media/images/x/a_1.jpg",
            "files/a..b/c",
            "json/sql/o/batch_1.ndjson",
        ] {
            assert!(!has_traversal(ok), "{ok}");
        }
    }

    #[test]
    fn names_and_sanitising() {
        assert_eq!(sanitize("  Family Photos! 2024 "), "family-photos-2024");
        assert_eq!(sanitize("---"), "");
        assert_eq!(sanitize("Été"), "t");
        assert_eq!(sanitize(&"x".repeat(200)).len(), 64);
        assert_eq!(base_name("C:\\docs\\a.pdf"), "a.pdf");
        assert_eq!(base_name("dir/b.jpg"), "b.jpg");
        assert_eq!(split_ext("Photo.JPG"), ("Photo", ".jpg".into()));
        assert_eq!(split_ext("noext"), ("noext", String::new()));
        assert_eq!(split_ext(".hidden"), (".hidden", String::new()));
        assert_eq!(split_ext("a.tar.gz"), ("a.tar", ".gz".into()));
        assert_eq!(split_ext("a.b c"), ("a.b c", String::new()));
    }

    #[test]
    fn routing_and_placement() {
        let png = b"\x89PNG\r\n\x1a\n0000";
        assert_eq!(detect_mime(Some("text/plain"), "x.bin", png), "image/png");
        assert_eq!(detect_mime(None, "a.mp4", b"????"), "video/mp4");
        assert_eq!(
            detect_mime(Some("application/x-thing"), "a", b"??"),
            "application/x-thing"
        );
        assert_eq!(detect_mime(None, "a", b"??"), "text/plain; charset=utf-8");
        assert_eq!(
            detect_mime(None, "a", b"\x00\x9f"),
            "application/octet-stream"
        );
        assert!(is_media("image/png") && is_media("AUDIO/mpeg") && !is_media("application/pdf"));
        assert_eq!(media_type("text/plain", "a.txt"), "documents");
        assert_eq!(media_type("application/octet-stream", "a.mkv"), "videos");

        let p = media_placement("image/jpeg", "photo.jpg", &["", "Summer Trip"]);
        assert_eq!(p.label, "summer-trip");
        assert_eq!(p.category, "images/summer-trip");
        assert!(p.stored_path.starts_with("media/images/summer-trip/photo_"));
        assert!(p.stored_path.ends_with(".jpg"));
        let p = media_placement("video/mp4", "Clip One.MP4", &[]);
        assert_eq!(p.label, "clip-one");
        let p = media_placement("audio/mpeg", "???.mp3", &[]);
        assert_eq!(p.label, "audio");
        assert!(p.stored_path.starts_with("media/audio/audio/file_"));
        let p = file_placement(Some("Docs"), "report.pdf");
        assert_eq!(p.category, "files/docs");
        assert!(p.stored_path.starts_with("files/docs/report_"));
        assert_eq!(file_placement(None, "x").category, "files/generic");
        // Two placements of one name never collide.
        assert_ne!(
            file_placement(None, "a.txt").stored_path,
            file_placement(None, "a.txt").stored_path
        );
    }

    #[test]
    fn records_and_views() {
        let p = media_placement("image/png", "cat.png", &["wildlife"]);
        let mut rec = ObjectRecord::new(crate::store::Kind::File, NAMESPACE, "cat.png", 0);
        rec.sha256 = Some([0xab; 32]);
        rec.size = 3;
        rec.mime_type = "image/png".into();
        rec.aliases = vec![hash_alias(&"ab".repeat(32)), path_alias(&p.stored_path)];
        rec.metadata_json = json!({ "comment": "demo", SYSTEM_KEY: system_meta(&p) }).to_string();
        let v = file_json(&rec);
        assert_eq!(v["hash"], "ab".repeat(32));
        assert_eq!(v["stored_path"], p.stored_path);
        assert_eq!(v["category"], "images/wildlife");
        assert_eq!(v["metadata"], json!({ "comment": "demo" }));
        assert_eq!(label(&rec), "wildlife");

        let caller = crate::core::test_support::admin();
        let mut del = AuditRecord::object("object.deleted", &caller, &rec);
        del.set_detail("mime_type", json!("image/png"));
        del.set_detail("size", json!(3));
        del.set_detail(
            "metadata",
            serde_json::from_str(&rec.metadata_json).unwrap(),
        );
        let line = delete_line(&del).unwrap();
        assert_eq!(line["hash"], "ab".repeat(32));
        assert_eq!(line["stored_path"], p.stored_path);
        assert_eq!(line["category"], "images/wildlife");
        assert_eq!(line["size"], 3);
        assert!(rename_line(&del).is_none());
        let mut ren = AuditRecord::object("object.renamed", &caller, &rec);
        ren.old_name = Some("old.png".into());
        let line = rename_line(&ren).unwrap();
        assert_eq!(line["old_original_name"], "old.png");
        assert_eq!(line["new_original_name"], "cat.png");
        assert!(delete_line(&ren).is_none());
        // Objects that are not RhinoBox files are in neither view.
        rec.aliases.clear();
        let other = AuditRecord::object("object.deleted", &caller, &rec);
        assert!(delete_line(&other).is_none());
    }
}
