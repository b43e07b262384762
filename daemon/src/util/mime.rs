//! MIME type of an upload: the client's `Content-Type` when it is specific, else
//! sniffed from magic bytes, else guessed from the file name's extension, else
//! `application/octet-stream`. Sniffing only looks at the first bytes of the body.

/// Bytes of the body start needed for sniffing.
pub const SNIFF_LEN: usize = 16;

/// Guess from magic bytes at the start of the content.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x1f\x8b", "application/gzip"),
        (b"OggS", "audio/ogg"),
        (b"ID3", "audio/mpeg"),
        (b"fLaC", "audio/flac"),
        (b"\x1aE\xdf\xa3", "video/webm"),
    ];
    for (magic, mime) in MAGIC {
        if head.starts_with(magic) {
            return Some(mime);
        }
    }
    if head.len() >= 12 && &head[0..4] == b"RIFF" {
        match &head[8..12] {
            b"WEBP" => return Some("image/webp"),
            b"WAVE" => return Some("audio/wav"),
            b"AVI " => return Some("video/x-msvideo"),
            _ => {}
        }
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return Some(match &head[8..12] {
            b"heic" | b"heix" | b"mif1" => "image/heic",
            b"qt  " => "video/quicktime",
            _ => "video/mp4",
        });
    }
    None
}

/// Guess from the extension of a file name.
pub fn from_name(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "txt" | "log" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "heic" => "image/heic",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        _ => return None,
    })
}

/// Pick the MIME type of an upload.
pub fn choose(content_type: Option<&str>, name: &str, head: &[u8]) -> String {
    if let Some(ct) = content_type.map(str::trim) {
        let generic = ct.is_empty()
            || ct.eq_ignore_ascii_case("application/octet-stream")
            || ct
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded");
        if !generic && ct.len() <= 255 && ct.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return ct.to_string();
        }
    }
    sniff(head)
        .or_else(|| from_name(name))
        .unwrap_or("application/octet-stream")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses() {
        assert_eq!(choose(None, "x", b"\x89PNG\r\n\x1a\nxxxx"), "image/png");
        assert_eq!(
            choose(Some("application/octet-stream"), "a.txt", b"hi"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(choose(Some("image/jpeg"), "a.txt", b"hi"), "image/jpeg");
        assert_eq!(choose(None, "noext", b"hi"), "application/octet-stream");
    }
}
