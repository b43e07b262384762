//! The photo library photobackup (seed 002) serves: the media files of the scanned
//! directories plus the images uploaded into the [`NAMESPACE`] namespace, each named by
//! its SHA-256. The photobackup API is a translation of these services.
//!
//! Contract:
//! - [`Local::photo_library`]: one entry per content the caller may read (the first
//!   scanned file in root and path order, else the upload), with `filename` (the last
//!   path component), `file_path` (absolute for scanned files, `uploads/YYYYMMDD/name`
//!   for uploads), `last_modified` (the file's mtime as the scan recorded it; the upload
//!   time for uploads) and `original_creation_date`: the EXIF `DateTimeOriginal`
//!   (with its offset when the file gives one, else read as the server's local time),
//!   else the scanned file's ctime (one `stat` per file, on the blocking pool: the scan
//!   does not record it), else the upload time. Scanned files in the listing are what
//!   the scan indexed (`--scan-extensions`); at most [`MAX_LISTED`] entries are
//!   answered (`truncated` says so), so memory stays bounded.
//! - [`Local::upload_photo`]: photobackup's `PUT /image/<filename>`. The part's file
//!   name must be non-empty and end in one of [`UPLOAD_TYPES`]; the stored name is the
//!   URL's name passed through [`secure_filename`] (else the part's, else
//!   `unnamed_image`), with a lower-case extension that must be one of those types too.
//!   A content the caller can already see in the library is not stored again: the
//!   existing file is answered. New content becomes a managed object named
//!   `uploads/YYYYMMDD/<name>` (the server's local date) in [`NAMESPACE`], `_1`, `_2`,
//!   ... inserted before the extension while the name is taken. Uploads never go into
//!   a scanned directory (they are in ringbox's store, so a rescan never touches them).
//! - [`Local::photo_content`], [`Local::photo_thumbnail`]: the bytes and the default
//!   thumbnail (256 px PNG) of a content of the library (`core::by_content`): a scanned
//!   file deleted from disk is `NotFound` on the next request.
//!
//! Not done: Unicode compatibility folding beyond Latin-1 in [`secure_filename`]
//! (werkzeug applies full NFKD; other non-ASCII letters are dropped here, as werkzeug
//! drops the ones NFKD cannot reduce to ASCII).

use std::collections::HashSet;
use std::future::poll_fn;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Mutex;
use std::task::Poll;

use super::access::Caller;
use super::content::Representation;
use super::error::{CoreError, CoreResult, ErrorKind};
use super::hot_cache::HotEntry;
use super::media::{self, ThumbFormat};
use super::objects::ListSpec;
use super::thumbs::DEFAULT_SIZE;
use super::upload::{KeyedFile, NewObject, TempBlob};
use super::Local;
use crate::store::{Kind, ObjectRecord, Source, State};
use crate::util::time::now_ms;

/// The namespace of photobackup's uploads.
pub const NAMESPACE: &str = "photobackup";
/// The image types an upload may have (photobackup's `ALLOWED_EXTENSIONS`).
pub const UPLOAD_TYPES: [&str; 4] = ["png", "jpg", "jpeg", "gif"];
/// Most entries one listing answers.
pub const MAX_LISTED: usize = 250_000;
/// Most `_N` suffixes tried for a free upload name.
const MAX_SUFFIX: u32 = 10_000;
/// Objects per listing page (the core's largest).
const PAGE: usize = 1000;

/// One file of the library.
#[derive(Debug, Clone, PartialEq)]
pub struct LibraryEntry {
    pub sha: [u8; 32],
    pub filename: String,
    pub file_path: String,
    /// Unix seconds.
    pub last_modified: f64,
    /// Unix seconds.
    pub original_creation_date: f64,
}

/// The library as the caller may see it.
#[derive(Debug, Default)]
pub struct Library {
    pub entries: Vec<LibraryEntry>,
    /// More entries exist than [`MAX_LISTED`].
    pub truncated: bool,
}

/// A file part of an upload.
#[derive(Debug)]
pub struct PhotoFile {
    /// The part's file name, as sent.
    pub filename: String,
    pub blob: TempBlob,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
}

/// Where a content of the library is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPhoto {
    pub sha: [u8; 32],
    pub filename: String,
    pub file_path: String,
    /// The content has a thumbnail decoder (images but HEIC/AVIF/TIFF/SVG).
    pub thumbnail: bool,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhotoUpload {
    /// New content, stored under this name.
    Created(StoredPhoto),
    /// The content was there already: this file has it.
    Existing(StoredPhoto),
}

/// werkzeug's `secure_filename`: an ASCII name without path separators, runs of
/// whitespace turned into `_`, only `A-Za-z0-9_.-` kept, leading and trailing `.` and
/// `_` removed (so no `..`, no hidden names, never a path). Empty when nothing is left.
pub fn secure_filename(name: &str) -> String {
    let mut ascii = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            // `os.sep` on Linux; a backslash is an ordinary (removed) character there.
            '/' => ascii.push(' '),
            c if c.is_ascii() => ascii.push(c),
            c => ascii.push_str(fold_latin1(c)),
        }
    }
    // Python's `str.split()` whitespace, in ASCII.
    let space = |c: char| c.is_ascii_whitespace() || matches!(c, '\x0b' | '\x1c'..='\x1f');
    let joined = ascii
        .split(space)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    let kept: String = joined
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .collect();
    kept.trim_matches(['.', '_']).to_string()
}

/// What NFKD followed by dropping non-ASCII leaves of a Latin-1 character.
fn fold_latin1(c: char) -> &'static str {
    match c {
        '\u{a0}' => " ",
        'ª' => "a",
        'º' => "o",
        '¹' => "1",
        '²' => "2",
        '³' => "3",
        'À'..='Å' => "A",
        'Ç' => "C",
        'È'..='Ë' => "E",
        'Ì'..='Ï' => "I",
        'Ñ' => "N",
        'Ò'..='Ö' => "O",
        'Ù'..='Ü' => "U",
        'Ý' => "Y",
        'à'..='å' => "a",
        'ç' => "c",
        'è'..='ë' => "e",
        'ì'..='ï' => "i",
        'ñ' => "n",
        'ò'..='ö' => "o",
        'ù'..='ü' => "u",
        'ý' | 'ÿ' => "y",
        _ => "",
    }
}

/// The lower-case extension of a file name (after the last `.` of its last
/// component, not counting leading dots: Python's `os.path.splitext`).
fn extension(name: &str) -> Option<String> {
    let base = name.rsplit('/').next().unwrap_or(name);
    let trimmed = base.trim_start_matches('.');
    let (_, ext) = trimmed.rsplit_once('.')?;
    Some(ext.to_ascii_lowercase())
}

fn invalid(message: impl Into<String>) -> CoreError {
    CoreError::new(ErrorKind::Invalid, "bad_request", message)
}

fn invalid_type() -> CoreError {
    invalid(format!(
        "Invalid file type. Allowed types: {}",
        UPLOAD_TYPES.join(", ")
    ))
}

/// The stored name's stem and extension (with its dot) for URL name `url_name` and the
/// part's file name `part_name` (see the module docs).
fn stored_name(url_name: &str, part_name: &str) -> CoreResult<(String, String)> {
    let mut name = secure_filename(url_name);
    if name.is_empty() {
        name = secure_filename(part_name);
    }
    let part_ext = extension(part_name).unwrap_or_default();
    if name.is_empty() {
        name = format!("unnamed_image.{part_ext}");
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_string(), ext.to_ascii_lowercase()),
        _ => (name.clone(), part_ext),
    };
    if !UPLOAD_TYPES.contains(&ext.as_str()) {
        return Err(invalid_type());
    }
    let stem = if stem.is_empty() {
        "image".into()
    } else {
        stem
    };
    Ok((stem, format!(".{ext}")))
}

/// `YYYYMMDD` of the server's local date at unix time `secs`.
fn local_day(secs: i64) -> String {
    let local = secs + crate::sys::local_utc_offset(secs).unwrap_or(0);
    let iso = crate::util::time::rfc3339_ms(local.saturating_mul(1000));
    iso.get(..10).unwrap_or("19700101").replace('-', "")
}

/// Naive local seconds (a wall-clock reading computed as if it were UTC) to unix
/// seconds, with the server's offset at that time.
fn from_local(naive: i64) -> i64 {
    let first = crate::sys::local_utc_offset(naive).unwrap_or(0);
    naive - crate::sys::local_utc_offset(naive - first).unwrap_or(first)
}

/// Names being committed by uploads of this process: two uploads of different content
/// with the same name on the same day must not both pick `name.jpg` (the writer
/// refuses the second, and its bytes would be lost).
static CLAIMED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// A claimed upload name, released on drop.
struct Claim(String);

impl Claim {
    fn take(name: &str) -> Option<Claim> {
        let mut g = CLAIMED.lock().unwrap_or_else(|p| p.into_inner());
        g.get_or_insert_with(HashSet::new)
            .insert(name.to_string())
            .then(|| Claim(name.to_string()))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut g = CLAIMED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = g.as_mut() {
            set.remove(&self.0);
        }
    }
}

/// The last component of a path.
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Where a library object is, in photobackup's terms.
fn stored_photo(rec: &ObjectRecord, sha: [u8; 32]) -> StoredPhoto {
    let file_path = match &rec.source {
        Source::External(f) => String::from_utf8_lossy(&f.path).into_owned(),
        Source::Managed => rec.name.clone(),
    };
    StoredPhoto {
        sha,
        filename: base_name(&file_path).to_string(),
        file_path,
        thumbnail: media::can_thumbnail(&rec.mime_type),
    }
}

/// A listing entry before its creation date is known (that may need a `stat`).
struct Draft {
    entry: LibraryEntry,
    /// EXIF `DateTimeOriginal` with a known offset (unix ms).
    taken_at_ms: Option<i64>,
    /// EXIF `DateTimeOriginal` as naive seconds.
    taken_naive: Option<i64>,
    /// The scanned file to take the ctime of.
    path: Option<PathBuf>,
}

fn draft(rec: &ObjectRecord, sha: [u8; 32]) -> Draft {
    let media = rec.media.as_ref();
    let taken_at_ms = media.and_then(|m| m.taken_at_ms);
    let taken_naive = media
        .and_then(|m| m.taken_at.as_deref())
        .and_then(media::probe::parse_exif_datetime);
    let (last_modified, path) = match &rec.source {
        Source::External(f) => {
            use std::os::unix::ffi::OsStrExt as _;
            (
                f.mtime_ns as f64 / 1e9,
                Some(PathBuf::from(std::ffi::OsStr::from_bytes(&f.path))),
            )
        }
        Source::Managed => (rec.created_at_ms as f64 / 1000.0, None),
    };
    let photo = stored_photo(rec, sha);
    Draft {
        entry: LibraryEntry {
            sha,
            filename: photo.filename,
            file_path: photo.file_path,
            last_modified,
            // The fallback when nothing better is found.
            original_creation_date: last_modified,
        },
        taken_at_ms,
        taken_naive,
        path,
    }
}

/// The creation dates of `drafts` (blocking: `stat` and the C library's time zone).
fn settle(drafts: Vec<Draft>) -> Vec<LibraryEntry> {
    use std::os::unix::fs::MetadataExt as _;
    drafts
        .into_iter()
        .map(|d| {
            let mut e = d.entry;
            if let Some(ms) = d.taken_at_ms {
                e.original_creation_date = ms as f64 / 1000.0;
            } else if let Some(naive) = d.taken_naive {
                e.original_creation_date = from_local(naive) as f64;
            } else if let Some(path) = d.path {
                if let Ok(m) = std::fs::metadata(&path) {
                    e.original_creation_date = m.ctime() as f64 + m.ctime_nsec() as f64 / 1e9;
                }
            }
            e
        })
        .collect()
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

impl Local {
    /// Every object of `namespace` the caller may see that is a stored file (pages of
    /// [`PAGE`], the worker's other connections served between them), passed to `each`
    /// until it returns false.
    async fn each_file(
        &self,
        caller: &Caller,
        namespace: &str,
        mut each: impl FnMut(ObjectRecord) -> bool,
    ) -> CoreResult<()> {
        let mut spec = ListSpec {
            namespace: Some(namespace.to_string()),
            limit: PAGE,
            ..ListSpec::default()
        };
        loop {
            let page = self.list_objects(caller, &spec)?;
            for rec in page.objects {
                if rec.kind == Kind::File && rec.state == State::Stored && !each(rec) {
                    return Ok(());
                }
            }
            match page.next_cursor {
                Some(c) => spec.cursor = Some(c),
                None => return Ok(()),
            }
            yield_now().await;
        }
    }

    /// photobackup's `/list` (see the module docs).
    pub async fn photo_library(&self, caller: &Caller) -> CoreResult<Library> {
        let mut seen: HashSet<[u8; 32]> = HashSet::new();
        let mut drafts: Vec<Draft> = Vec::new();
        let mut truncated = false;
        let scanned = self.scan_namespaces.get().cloned().unwrap_or_default();
        let sources = scanned
            .iter()
            .map(|ns| (ns.as_str(), true))
            .chain(std::iter::once((NAMESPACE, false)));
        for (ns, external) in sources {
            if truncated {
                break;
            }
            self.each_file(caller, ns, |rec| {
                let Some(sha) = rec.sha256 else { return true };
                if matches!(rec.source, Source::External(_)) != external || !seen.insert(sha) {
                    return true;
                }
                if drafts.len() >= MAX_LISTED {
                    truncated = true;
                    return false;
                }
                drafts.push(draft(&rec, sha));
                true
            })
            .await?;
        }
        let entries = self.pool.run(move || settle(drafts)).await?;
        Ok(Library { entries, truncated })
    }

    /// The content of `sha` in the library (see `core::by_content`).
    pub async fn photo_content(&self, caller: &Caller, sha: &[u8; 32]) -> CoreResult<Rc<HotEntry>> {
        self.content_by_sha(caller, sha, NAMESPACE).await
    }

    /// The default thumbnail (256 px PNG) of content `sha` of the library. `NotFound`
    /// for an unknown content, a video or another type without a decoder, and an image
    /// the decoder refused.
    pub async fn photo_thumbnail(
        &self,
        caller: &Caller,
        sha: &[u8; 32],
    ) -> CoreResult<Rc<Representation>> {
        let entry = self.photo_content(caller, sha).await?;
        self.object_thumbnail(caller, entry.rec.id, DEFAULT_SIZE, ThumbFormat::Png)
            .await
    }

    /// The file of the library that has content `sha`, if the caller may see one.
    fn photo_by_content(&self, caller: &Caller, sha: &[u8; 32]) -> CoreResult<Option<StoredPhoto>> {
        Ok(self
            .objects_by_content(caller, sha, NAMESPACE)?
            .first()
            .map(|e| stored_photo(&e.rec, *sha)))
    }

    /// photobackup's `PUT /image/<filename>` (see the module docs). `Invalid` for a
    /// missing part file name or a type other than [`UPLOAD_TYPES`].
    pub async fn upload_photo(
        &self,
        caller: &Caller,
        url_name: &str,
        file: PhotoFile,
    ) -> CoreResult<PhotoUpload> {
        if file.filename.is_empty() {
            return Err(invalid("No selected file."));
        }
        if !extension(&file.filename).is_some_and(|e| UPLOAD_TYPES.contains(&e.as_str())) {
            return Err(invalid_type());
        }
        let (stem, ext) = stored_name(url_name, &file.filename)?;
        let sha = file.blob.sha256;
        if let Some(existing) = self.photo_by_content(caller, &sha)? {
            return Ok(PhotoUpload::Existing(existing));
        }
        let dir = format!("uploads/{}", local_day(now_ms().div_euclid(1000)));
        let mut claim = None;
        for n in 0..=MAX_SUFFIX {
            let name = if n == 0 {
                format!("{dir}/{stem}{ext}")
            } else {
                format!("{dir}/{stem}_{n}{ext}")
            };
            if self.store.get_by_name(NAMESPACE, &name)?.is_none() {
                if let Some(c) = Claim::take(&name) {
                    claim = Some(c);
                    break;
                }
            }
        }
        let Some(claim) = claim else {
            return Err(CoreError::conflict(format!(
                "{dir}/{stem}{ext} and its first {MAX_SUFFIX} numbered variants are taken"
            )));
        };
        let keyed = KeyedFile {
            new: NewObject {
                namespace: NAMESPACE.into(),
                name: claim.0.clone(),
                unique_name: true,
                ..NewObject::default()
            },
            key: super::by_content::upload_key(NAMESPACE, &sha, &caller.owner_id()),
            blob: file.blob,
            claimed_type: file.content_type,
            aliases: Vec::new(),
        };
        let out = self
            .create_files_keyed(caller, vec![keyed])
            .await
            .pop()
            .unwrap_or_else(|| Err(CoreError::internal("no result")))?;
        drop(claim);
        let photo = stored_photo(&out.record, sha);
        if out.existed {
            // The same content was committed meanwhile by a concurrent upload.
            return Ok(PhotoUpload::Existing(photo));
        }
        // Probed (EXIF) and thumbnailed in the background, after the answer.
        self.after_content_commit(&out.record);
        Ok(PhotoUpload::Created(photo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_filename_like_werkzeug() {
        for (given, want) in [
            ("My cool movie.mov", "My_cool_movie.mov"),
            ("../../../etc/passwd", "etc_passwd"),
            ("../../evil.png", "evil.png"),
            (
                "i contain cool \u{fc}ml\u{e4}uts.txt",
                "i_contain_cool_umlauts.txt",
            ),
            (".hidden.jpg", "hidden.jpg"),
            ("__init__.py", "init__.py"),
            ("a\\b.png", "ab.png"),
            ("caf\u{e9}.jpg", "cafe.jpg"),
            ("\u{65e5}\u{672c}.png", "png"),
            ("..", ""),
            ("", ""),
            ("a\tb\x0bc.gif", "a_b_c.gif"),
            ("x\0y.png", "xy.png"),
        ] {
            assert_eq!(secure_filename(given), want, "{given:?}");
        }
    }

    #[test]
    fn stored_names() {
        let ok = |u: &str, p: &str| stored_name(u, p).unwrap();
        assert_eq!(ok("image.jpg", "x.png"), ("image".into(), ".jpg".into()));
        assert_eq!(ok("IMG.JPG", "x.png"), ("IMG".into(), ".jpg".into()));
        assert_eq!(ok("photo", "x.png"), ("photo".into(), ".png".into()));
        assert_eq!(ok("", "holiday.GIF"), ("holiday".into(), ".gif".into()));
        // werkzeug keeps "png" of "日.png", then takes the part's extension.
        assert_eq!(ok("../..", "\u{65e5}.png"), ("png".into(), ".png".into()));
        assert_eq!(
            ok("../../evil.png", "a.png"),
            ("evil".into(), ".png".into())
        );
        assert_eq!(
            stored_name("evil.txt", "a.png").unwrap_err().kind,
            ErrorKind::Invalid
        );
        assert_eq!(extension("a.tar.JPEG").as_deref(), Some("jpeg"));
        assert_eq!(extension(".png"), None);
        assert_eq!(extension("noext"), None);
    }

    #[test]
    fn local_days_and_times() {
        // Whatever the zone, a day has 8 digits and local -> unix -> local round-trips.
        let day = local_day(1_700_000_000);
        assert_eq!(day.len(), 8);
        assert!(day.bytes().all(|b| b.is_ascii_digit()));
        let off = crate::sys::local_utc_offset(1_700_000_000).unwrap();
        assert_eq!(from_local(1_700_000_000 + off), 1_700_000_000);
    }
}
