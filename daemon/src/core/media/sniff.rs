//! MIME type of a piece of content from three witnesses: its leading bytes, its file
//! name, and what the client claimed.
//!
//! Precedence (see [`detect`]):
//!
//! 1. **Magic bytes** win whenever they identify a binary type (the `infer` crate's
//!    matchers plus our own ISO-BMFF brand table and EBML check). One exception keeps
//!    magic honest without discarding information: when the extension or the claim names
//!    a *more specific member of the same container family* (a `.docx` that magic sees as
//!    ZIP, an `.m4a` that magic sees as MP4, a `.dng` that magic sees as TIFF), that
//!    member is taken. A claim or extension from another family never overrides magic: an
//!    upload named `cat.png` whose bytes are a JPEG is `image/jpeg`.
//! 2. The **extension** of the file name (a fixed table).
//! 3. The client's **claim**, unless it is generic (`application/octet-stream`,
//!    `binary/octet-stream`, `application/x-www-form-urlencoded`, `multipart/*`,
//!    `*/*`, empty) or malformed; then it counts as no claim.
//! 4. Weak text signatures (`<!DOCTYPE html`, `<?xml`, `#!`): they are not magic,
//!    because an `.svg` begins with `<?xml` and a `.md` may begin with `<html>`.
//! 5. **Plain text**: the leading bytes are valid UTF-8 (a multi-byte sequence cut by the
//!    end of the window is allowed) with no NUL and not empty gives
//!    `text/plain; charset=utf-8`. Decision: this step only runs when nothing above
//!    matched, so it never overrides an extension or a claim; it exists so that
//!    text pasted without a name is served as text rather than as a download.
//! 6. `application/octet-stream`.
//!
//! Text types from the extension or a claim get `; charset=utf-8` only when the leading
//! bytes are valid UTF-8; otherwise the bare type is returned and the browser guesses.
//!
//! Weak binary signatures that plain text can start with by accident are checked
//! further than `infer` does: `BM` must be followed by a plausible BMP header, `ID3` by a
//! plausible version, `MZ` by a plausible DOS header.
//!
//! Not done: content inspection beyond [`SNIFF_LEN`] bytes (a ZIP's member list, an
//! OLE directory), charset detection other than UTF-8, SVG detection without the
//! extension or a claim.

use std::borrow::Cow;

/// Leading bytes [`detect`] looks at. 512 covers every signature we use: the longest
/// are the Matroska/WebM `DocType` search (`infer` looks in the first 256 bytes and wants
/// more than 256) and the ISO-BMFF `ftyp` box with its list of compatible brands.
pub const SNIFF_LEN: usize = 512;

/// The fallback type.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// What kind of media a type is, for display and for choosing a processing path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    /// PDF, office documents, e-books.
    Document,
    Text,
    Other,
}

impl MediaKind {
    /// Lower-case name for JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Document => "document",
            MediaKind::Text => "text",
            MediaKind::Other => "other",
        }
    }
}

/// Pick the MIME type of content whose first bytes are `head` (pass at least
/// [`SNIFF_LEN`] bytes when the content is that long), named `file_name` (may be empty)
/// and claimed by the client as `claimed`. See the module docs for the precedence.
///
/// The result is borrowed from our tables except when the client's claim is returned,
/// which is normalised (essence lower-cased, whitespace removed around `;` and `=`).
pub fn detect(head: &[u8], file_name: &str, claimed: Option<&str>) -> Cow<'static, str> {
    let ext = from_extension(file_name);
    let claim = claimed.and_then(normalize_claim);
    if let Some(magic) = magic(head) {
        // A more specific member of the same family (docx inside zip, m4a inside mp4).
        if let Some(fam) = family(magic) {
            if let Some(e) = ext.filter(|e| *e != magic && family(e) == Some(fam)) {
                return Cow::Borrowed(e);
            }
            if let Some(c) = claim.as_deref() {
                if let Some(known) = known_type(c) {
                    if known != magic && family(known) == Some(fam) {
                        return Cow::Borrowed(known);
                    }
                }
            }
        }
        return Cow::Borrowed(magic);
    }
    if let Some(e) = ext {
        return with_charset(e, head);
    }
    if let Some(c) = claim {
        return match known_type(&c) {
            Some(known) => with_charset(known, head),
            None => Cow::Owned(c),
        };
    }
    if let Some(weak) = weak_text(head) {
        return with_charset(weak, head);
    }
    if looks_like_utf8_text(head) {
        return Cow::Borrowed("text/plain; charset=utf-8");
    }
    Cow::Borrowed(OCTET_STREAM)
}

/// The type identified by magic bytes alone, if any (no extension, no claim, no text
/// guessing). This is what decoders trust: a file is only handed to the JPEG decoder if
/// this says `image/jpeg`.
pub fn magic(head: &[u8]) -> Option<&'static str> {
    if let Some(t) = isobmff(head) {
        return Some(t);
    }
    if let Some(t) = infer::get(head) {
        let mime = t.mime_type();
        return match mime {
            // Ours are stricter for these short signatures.
            "image/bmp" => is_bmp(head).then_some("image/bmp"),
            "audio/mpeg" if head.starts_with(b"ID3") => is_id3(head).then_some("audio/mpeg"),
            "application/vnd.microsoft.portable-executable" | "application/x-executable"
                if head.starts_with(b"MZ") =>
            {
                is_dos_exe(head).then_some(mime)
            }
            // Weak text signatures are step 4, not magic.
            "text/html" | "text/xml" | "text/x-shellscript" => None,
            other => Some(canonical(other)),
        };
    }
    // EBML shorter than infer's 257-byte minimum, or with a DocType it does not know.
    if head.starts_with(b"\x1a\x45\xdf\xa3") {
        return Some(
            if memchr::memmem::find(head, b"\x42\x82\x84webm").is_some() {
                "video/webm"
            } else {
                "video/x-matroska"
            },
        );
    }
    None
}

/// The kind of media a MIME type is (parameters are ignored).
pub fn media_kind(mime: &str) -> MediaKind {
    let essence = essence(mime);
    let (top, sub) = essence.split_once('/').unwrap_or((essence, ""));
    match top {
        "image" => MediaKind::Image,
        "video" => MediaKind::Video,
        "audio" => MediaKind::Audio,
        "text" => MediaKind::Text,
        "application" => match sub {
            "pdf" | "msword" | "rtf" | "epub+zip" | "x-mobipocket-ebook" | "postscript" => {
                MediaKind::Document
            }
            s if s.starts_with("vnd.openxmlformats-officedocument.")
                || s.starts_with("vnd.oasis.opendocument.")
                || s.starts_with("vnd.ms-excel")
                || s.starts_with("vnd.ms-powerpoint") =>
            {
                MediaKind::Document
            }
            "json" | "xml" | "javascript" | "toml" | "yaml" | "x-yaml" | "x-sh" | "sql" => {
                MediaKind::Text
            }
            _ => MediaKind::Other,
        },
        _ => MediaKind::Other,
    }
}

/// Whether [`super::thumbnail`] can decode this type: JPEG, PNG, GIF, WebP, BMP.
/// Not TIFF (its decoder is left out of the build: nothing needs TIFF thumbnails and it
/// is a large share of the compile time), HEIC/AVIF (no decoder compiled in), SVG
/// (would need a renderer and is a script host), camera raw, video or documents.
pub fn can_thumbnail(mime: &str) -> bool {
    matches!(
        essence(mime),
        "image/jpeg" | "image/png" | "image/gif" | "image/webp" | "image/bmp"
    )
}

/// `type/subtype` without parameters, trimmed.
fn essence(mime: &str) -> &str {
    mime.split(';').next().unwrap_or("").trim()
}

/// Map `infer`'s spellings to the ones browsers and IANA use.
fn canonical(mime: &'static str) -> &'static str {
    match mime {
        "audio/x-flac" => "audio/flac",
        "audio/x-wav" => "audio/wav",
        "audio/m4a" => "audio/mp4",
        "audio/opus" => "audio/ogg",
        "video/x-m4v" => "video/mp4",
        other => other,
    }
}

/// ISO base media files (MP4, MOV, HEIC, AVIF, M4A, 3GP, CR3) by their `ftyp` brands.
/// `infer` knows most of these but reports generic HEIF for HEIC and needs the whole
/// `ftyp` box; we decide from the major brand and whatever compatible brands are present.
fn isobmff(head: &[u8]) -> Option<&'static str> {
    if head.len() < 12 || &head[4..8] != b"ftyp" {
        return None;
    }
    let box_len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    // Compatible brands follow the minor version, up to the end of the box (or of what we
    // have of it).
    let end = box_len.clamp(16, head.len().max(16)).min(head.len());
    let compat: Vec<&[u8]> = head.get(16..end).unwrap_or(&[]).chunks_exact(4).collect();
    let has = |b: &[u8]| compat.contains(&b);
    let major = &head[8..12];
    Some(match major {
        b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" => "image/heic",
        b"avif" | b"avis" => "image/avif",
        b"mif1" | b"msf1" => {
            if has(b"avif") || has(b"avis") {
                "image/avif"
            } else if has(b"heic") || has(b"heix") || has(b"hevc") {
                "image/heic"
            } else {
                "image/heif"
            }
        }
        b"qt  " => "video/quicktime",
        b"M4A " | b"M4B " | b"M4P " => "audio/mp4",
        b"crx " => "image/x-canon-cr3",
        b"3gp4" | b"3gp5" | b"3gp6" | b"3gp7" | b"3ge6" | b"3ge7" | b"3gg6" => "video/3gpp",
        b"3g2a" | b"3g2b" | b"3g2c" => "video/3gpp2",
        _ => "video/mp4",
    })
}

/// `BM`, then a file size, two reserved words, a pixel offset and a DIB header of a size
/// some version of BMP uses.
fn is_bmp(head: &[u8]) -> bool {
    if head.len() < 18 || !head.starts_with(b"BM") {
        return false;
    }
    let dib = u32::from_le_bytes([head[14], head[15], head[16], head[17]]);
    matches!(dib, 12 | 16 | 40 | 52 | 56 | 64 | 108 | 124)
}

/// `ID3`, a major version 2..=4, a revision below 0xFF, and syncsafe size bytes.
fn is_id3(head: &[u8]) -> bool {
    head.len() >= 10
        && (2..=4).contains(&head[3])
        && head[4] != 0xff
        && head[6..10].iter().all(|b| b & 0x80 == 0)
}

/// `MZ` with a header that is not printable text: the e_lfanew offset at 0x3c is where
/// a PE header would be. Plain text that starts with "MZ" fails this.
fn is_dos_exe(head: &[u8]) -> bool {
    head.len() >= 64 && head[2..64].iter().any(|&b| b == 0 || b >= 0x80)
}

/// Step 4: text formats recognisable at the start but never strong enough to beat a
/// name or a claim.
fn weak_text(head: &[u8]) -> Option<&'static str> {
    let t = trim_text_start(head);
    let starts = |p: &[u8]| t.len() >= p.len() && t[..p.len()].eq_ignore_ascii_case(p);
    if starts(b"<!doctype html") || starts(b"<html") {
        Some("text/html")
    } else if starts(b"<?xml") {
        if memchr::memmem::find(head, b"<svg").is_some() {
            Some("image/svg+xml")
        } else {
            Some("application/xml")
        }
    } else if starts(b"<svg") {
        Some("image/svg+xml")
    } else if starts(b"%!ps") {
        Some("application/postscript")
    } else if starts(b"{\\rtf") {
        Some("application/rtf")
    } else if starts(b"#!") {
        Some("text/x-shellscript")
    } else {
        None
    }
}

fn trim_text_start(mut b: &[u8]) -> &[u8] {
    if let Some(rest) = b.strip_prefix(b"\xef\xbb\xbf") {
        b = rest;
    }
    let n = b
        .iter()
        .take_while(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c'))
        .count();
    &b[n..]
}

/// Valid UTF-8 with no NUL, allowing a multi-byte sequence cut off by the end of the
/// sniffing window.
fn looks_like_utf8_text(head: &[u8]) -> bool {
    if head.is_empty() || head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        // `error_len() == None` means "incomplete sequence at the end": fine if it is
        // the last 3 bytes at most.
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

/// Add `; charset=utf-8` to a bare `text/*` type when the head is UTF-8 text (or empty).
fn with_charset(mime: &'static str, head: &[u8]) -> Cow<'static, str> {
    if !mime.starts_with("text/") || mime.contains(';') {
        return Cow::Borrowed(mime);
    }
    if head.is_empty() || looks_like_utf8_text(head) {
        Cow::Owned(format!("{mime}; charset=utf-8"))
    } else {
        Cow::Borrowed(mime)
    }
}

/// Container families whose members magic cannot tell apart within [`SNIFF_LEN`].
fn family(mime: &str) -> Option<&'static str> {
    Some(match essence(mime) {
        "application/zip"
        | "application/epub+zip"
        | "application/java-archive"
        | "application/vnd.android.package-archive"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation"
        | "application/vnd.oasis.opendocument.text"
        | "application/vnd.oasis.opendocument.spreadsheet"
        | "application/vnd.oasis.opendocument.presentation" => "zip",
        "application/x-ole-storage"
        | "application/msword"
        | "application/vnd.ms-excel"
        | "application/vnd.ms-powerpoint"
        | "application/vnd.ms-outlook" => "ole",
        "video/mp4" | "audio/mp4" | "video/quicktime" | "video/3gpp" | "video/3gpp2" => "isobmff",
        "video/webm" | "audio/webm" | "video/x-matroska" | "audio/x-matroska" => "ebml",
        "audio/ogg" | "video/ogg" | "application/ogg" => "ogg",
        "image/tiff"
        | "image/x-adobe-dng"
        | "image/x-nikon-nef"
        | "image/x-sony-arw"
        | "image/x-panasonic-rw2"
        | "image/x-olympus-orf"
        | "image/x-pentax-pef" => "tiff",
        _ => return None,
    })
}

/// Extension table. Text types carry no charset here; [`with_charset`] adds it.
pub fn from_extension(file_name: &str) -> Option<&'static str> {
    // Only the last path component counts ("a.d/readme" has no extension).
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let (stem, ext) = base.rsplit_once('.')?;
    if stem.is_empty() || ext.is_empty() || ext.len() > 8 {
        // ".bashrc" is a name, not an extension.
        return None;
    }
    let ext = ext.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" | "jpe" | "jfif" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" | "heif" => "image/heic",
        "avif" => "image/avif",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "svg" => "image/svg+xml",
        "ico" => "image/vnd.microsoft.icon",
        "dng" => "image/x-adobe-dng",
        "nef" => "image/x-nikon-nef",
        "arw" => "image/x-sony-arw",
        "cr2" => "image/x-canon-cr2",
        "cr3" => "image/x-canon-cr3",
        "rw2" => "image/x-panasonic-rw2",
        "orf" => "image/x-olympus-orf",
        "pef" => "image/x-pentax-pef",
        "mp4" | "m4v" => "video/mp4",
        "mov" | "qt" => "video/quicktime",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "avi" => "video/x-msvideo",
        "3gp" => "video/3gpp",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "mka" => "audio/x-matroska",
        "pdf" => "application/pdf",
        "doc" => "application/msword",
        "xls" => "application/vnd.ms-excel",
        "ppt" => "application/vnd.ms-powerpoint",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "odt" => "application/vnd.oasis.opendocument.text",
        "ods" => "application/vnd.oasis.opendocument.spreadsheet",
        "odp" => "application/vnd.oasis.opendocument.presentation",
        "epub" => "application/epub+zip",
        "jar" => "application/java-archive",
        "apk" => "application/vnd.android.package-archive",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "7z" => "application/x-7z-compressed",
        "txt" | "text" | "log" => "text/plain",
        "md" | "markdown" => "text/markdown",
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "vtt" => "text/vtt",
        "srt" => "application/x-subrip",
        "json" => "application/json",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/yaml",
        "toml" => "application/toml",
        _ => return None,
    })
}

/// Our canonical spelling of a claimed type, if we know it (so that a claim of
/// `audio/x-wav` comes back as `audio/wav`, and family checks work on claims).
fn known_type(claim: &str) -> Option<&'static str> {
    let e = essence(claim);
    Some(match e {
        "image/jpg" | "image/pjpeg" | "image/jpeg" => "image/jpeg",
        "image/png" => "image/png",
        "image/gif" => "image/gif",
        "image/webp" => "image/webp",
        "image/heic" | "image/heif" => "image/heic",
        "image/avif" => "image/avif",
        "image/bmp" | "image/x-ms-bmp" => "image/bmp",
        "image/tiff" => "image/tiff",
        "image/svg+xml" => "image/svg+xml",
        "image/x-adobe-dng" => "image/x-adobe-dng",
        "video/mp4" => "video/mp4",
        "video/quicktime" => "video/quicktime",
        "video/webm" => "video/webm",
        "video/x-matroska" => "video/x-matroska",
        "audio/mpeg" | "audio/mp3" => "audio/mpeg",
        "audio/mp4" | "audio/x-m4a" | "audio/m4a" => "audio/mp4",
        "audio/ogg" => "audio/ogg",
        "audio/webm" => "audio/webm",
        "audio/flac" | "audio/x-flac" => "audio/flac",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "audio/wav",
        "application/pdf" => "application/pdf",
        "application/zip" => "application/zip",
        "application/epub+zip" => "application/epub+zip",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        }
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => {
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        }
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
            "application/vnd.openxmlformats-officedocument.presentationml.presentation"
        }
        "application/json" => "application/json",
        "text/plain" if !claim.contains(';') => "text/plain",
        _ => return None,
    })
}

/// A claim we are willing to return: `type/subtype[; params]` in printable ASCII of at
/// most 255 bytes, not generic. The essence is lower-cased; parameters are kept as given
/// (with spaces around `;` trimmed).
fn normalize_claim(claim: &str) -> Option<String> {
    let claim = claim.trim();
    if claim.is_empty() || claim.len() > 255 || !claim.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    let mut parts = claim.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let (top, sub) = essence.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    if !token(top) || !token(sub) {
        return None;
    }
    let generic = matches!(
        essence.as_str(),
        "application/octet-stream"
            | "binary/octet-stream"
            | "application/x-www-form-urlencoded"
            | "application/unknown"
            | "application/binary"
    ) || top == "multipart";
    if generic {
        return None;
    }
    let mut out = essence;
    for p in parts {
        let p = p.trim();
        if !p.is_empty() {
            out.push_str("; ");
            out.push_str(p);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few real-looking heads.
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00";
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01";
    const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00";
    const WEBP: &[u8] = b"RIFF\x24\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00";
    const BMP: &[u8] =
        b"BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00\x01\x00";
    const TIFF: &[u8] = b"II*\x00\x08\x00\x00\x00\x0e\x00\x00\x01\x03\x00";
    const HEIC: &[u8] = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic";
    const HEIF_MIF1: &[u8] = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic";
    const AVIF: &[u8] = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf";
    const MP4: &[u8] = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41";
    const MOV: &[u8] = b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ";
    const M4A: &[u8] = b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00M4A mp42isom";
    const WEBM: &[u8] = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm";
    const MKV: &[u8] = b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska";
    const AVI: &[u8] = b"RIFF\x00\x10\x00\x00AVI LIST";
    const WAV: &[u8] = b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00";
    const MP3_ID3: &[u8] = b"ID3\x04\x00\x00\x00\x00\x00\x23TSSE";
    const MP3_SYNC: &[u8] = b"\xff\xfb\x90\x64\x00\x00\x00\x00";
    const OGG: &[u8] = b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00";
    const FLAC: &[u8] = b"fLaC\x00\x00\x00\x22";
    const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";
    const ZIP: &[u8] = b"PK\x03\x04\x14\x00\x00\x00\x08\x00";

    #[test]
    fn table() {
        #[rustfmt::skip]
        let cases: &[(&[u8], &str, Option<&str>, &str)] = &[
            // magic alone
            (JPEG, "", None, "image/jpeg"),
            (PNG, "", None, "image/png"),
            (GIF, "", None, "image/gif"),
            (WEBP, "", None, "image/webp"),
            (BMP, "", None, "image/bmp"),
            (TIFF, "", None, "image/tiff"),
            (HEIC, "", None, "image/heic"),
            (HEIF_MIF1, "", None, "image/heic"),
            (AVIF, "", None, "image/avif"),
            (MP4, "", None, "video/mp4"),
            (MOV, "", None, "video/quicktime"),
            (M4A, "", None, "audio/mp4"),
            (WEBM, "", None, "video/webm"),
            (MKV, "", None, "video/x-matroska"),
            (AVI, "", None, "video/x-msvideo"),
            (WAV, "", None, "audio/wav"),
            (MP3_ID3, "", None, "audio/mpeg"),
            (MP3_SYNC, "", None, "audio/mpeg"),
            (OGG, "", None, "audio/ogg"),
            (FLAC, "", None, "audio/flac"),
            (PDF, "", None, "application/pdf"),
            // magic beats a conflicting extension and a conflicting claim
            (JPEG, "cat.png", Some("image/png"), "image/jpeg"),
            (PNG, "notes.txt", Some("text/plain"), "image/png"),
            (PDF, "x.jpg", None, "application/pdf"),
            (MP4, "clip.webm", Some("video/webm"), "video/mp4"),
            // a more specific member of the magic's family is taken
            (ZIP, "report.docx", None,
             "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            (ZIP, "archive", None, "application/zip"),
            (MP4, "song.m4a", None, "audio/mp4"),
            (MP4, "", Some("audio/x-m4a"), "audio/mp4"),
            (TIFF, "IMG_1.DNG", None, "image/x-adobe-dng"),
            (WEBM, "a.mka", None, "audio/x-matroska"),
            // extension beats the claim when magic says nothing
            (b"hello", "a.md", Some("application/json"), "text/markdown; charset=utf-8"),
            (b"<?xml version=\"1.0\"?><svg>", "logo.svg", None, "image/svg+xml"),
            (b"<!DOCTYPE html><p>", "page.md", None, "text/markdown; charset=utf-8"),
            (b"{}", "data.json", Some("text/plain"), "application/json"),
            (b"\xff\xfe\x00h", "old.txt", None, "text/plain"),
            // the claim when there is no magic and no known extension
            (b"{\"a\":1}", "blob", Some("application/json"), "application/json"),
            (b"a,b\n", "", Some("Text/CSV ; charset=latin1"), "text/csv; charset=latin1"),
            (b"...", "", Some("audio/x-wav"), "audio/wav"),
            // generic and malformed claims count as no claim
            (b"\x00\x01\x02", "", Some("application/octet-stream"), OCTET_STREAM),
            (b"plain words", "", Some("application/octet-stream"), "text/plain; charset=utf-8"),
            (b"\x00\x01", "", Some("nonsense"), OCTET_STREAM),
            (b"\x00\x01", "", Some("multipart/form-data; boundary=x"), OCTET_STREAM),
            // weak text signatures only without name and claim
            (b"<!doctype html><html>", "", None, "text/html; charset=utf-8"),
            (b"  <?xml version='1.0'?><svg xmlns=''>", "", None, "image/svg+xml"),
            (b"#!/bin/sh\necho", "", None, "text/x-shellscript; charset=utf-8"),
            // plain text sniffing
            ("gr\u{fc}\u{df}e".as_bytes(), "", None, "text/plain; charset=utf-8"),
            (&"\u{20ac}".as_bytes()[..2], "", None, "text/plain; charset=utf-8"),
            (b"a\x00b", "", None, OCTET_STREAM),
            (b"", "", None, OCTET_STREAM),
            (b"", "empty.txt", None, "text/plain; charset=utf-8"),
            // text that begins like a weak binary signature stays text
            (b"BMW motorcycles are fast.", "", None, "text/plain; charset=utf-8"),
            (b"ID3 tags explained here", "", None, "text/plain; charset=utf-8"),
            (b"MZ is a postal code prefix and this line is long enough to cover the header", "",
             None, "text/plain; charset=utf-8"),
            // names without an extension
            (b"\x00", ".bashrc", None, OCTET_STREAM),
            (b"\x00", "dir.d/README", None, OCTET_STREAM),
            (b"\x00", "PHOTO.JPG", None, "image/jpeg"),
        ];
        for (i, (head, name, claim, want)) in cases.iter().enumerate() {
            let got = detect(head, name, *claim);
            assert_eq!(got, *want, "case {i}: name={name:?} claim={claim:?}");
        }
    }

    #[test]
    fn kinds_and_thumbnailability() {
        assert_eq!(media_kind("image/jpeg"), MediaKind::Image);
        assert_eq!(media_kind("video/mp4"), MediaKind::Video);
        assert_eq!(media_kind("audio/ogg"), MediaKind::Audio);
        assert_eq!(media_kind("application/pdf"), MediaKind::Document);
        assert_eq!(
            media_kind("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            MediaKind::Document
        );
        assert_eq!(media_kind("text/plain; charset=utf-8"), MediaKind::Text);
        assert_eq!(media_kind("application/json"), MediaKind::Text);
        assert_eq!(media_kind("application/zip"), MediaKind::Other);
        assert_eq!(media_kind("garbage"), MediaKind::Other);
        for t in [
            "image/jpeg",
            "image/png",
            "image/gif",
            "image/webp",
            "image/bmp",
        ] {
            assert!(can_thumbnail(t), "{t}");
        }
        for t in [
            "image/tiff",
            "image/heic",
            "image/avif",
            "image/svg+xml",
            "video/mp4",
            "audio/mpeg",
            "application/pdf",
            "image/x-adobe-dng",
        ] {
            assert!(!can_thumbnail(t), "{t}");
        }
    }

    #[test]
    fn never_panics_on_short_or_odd_heads() {
        for len in 0..40 {
            for fill in [0u8, 0xff, b'f', 0x1a] {
                let mut h = vec![fill; len];
                if len >= 8 {
                    h[4..8].copy_from_slice(b"ftyp");
                }
                let _ = detect(&h, "x", None);
                let _ = magic(&h);
            }
        }
    }
}
