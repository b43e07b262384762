//! Thumbnails as a service: which previews exist, where they are cached, who may see
//! them, and the process-wide engine that makes them without ever running a decoder on
//! an io_uring worker. The decoding itself is the `media` library's
//! ([`super::media::thumbnail`]); this module decides when, how many at once, and what
//! happens to the result.
//!
//! Contract:
//! - Sizes are a fixed set ([`SIZES`]: 128, 256, 512; default 256), the longest side of
//!   the result (never upscaled), EXIF orientation applied; formats PNG (default:
//!   lossless, and what photobackup's clients expect), JPEG and lossless WebP.
//! - Cache: one file per (content, size, format) at `<data>/thumbs/<sha256>-<size>.<ext>`,
//!   shared by every object with that content (uploaded or scanned). Written through a
//!   temp file under `<data>/tmp/` and a rename, so a reader never sees half a file; not
//!   fsynced, because a cache can be rebuilt: a file that a power loss left empty or
//!   short is recognised at the next read (format signature and trailer checked) and
//!   made again. The files of a content go when its blob file is collected (the
//!   writer's blob-removed hook).
//! - Engine ([`ThumbEngine`], one per process): decodes run on a pool of their own with
//!   `--thumbnail-concurrency` threads (default 2) at a lower CPU priority (nice
//!   `--thumbnail-nice`, default 10), so a burst of uploads cannot take every core from
//!   the workers. Interactive requests go before background work (thumbnails made
//!   eagerly after an upload, or for a scan); a request for a (content, size, format)
//!   whose decode is queued or running waits for that one (one decode, however many
//!   requests, across all workers). A request waits at most `--thumbnail-wait`
//!   (default 30 s; then 503 `busy`, the decode goes on and its result is cached);
//!   each decode has a deadline of `--thumbnail-timeout` (default 10 s) and the pixel,
//!   memory and input limits of [`DecodeLimits`].
//! - Refusals: types without a decoder (video, audio, PDF, HEIC/AVIF, TIFF, SVG) are a
//!   404 `no_thumbnail` at once, without a decode. An image the decoder refuses (a
//!   decompression bomb, a truncated or damaged file, too many pixels, too slow) is a
//!   404 `thumbnail_refused` whose message says why, the reason is recorded on the
//!   object (`media.error`), and the verdict is remembered per content for the life of
//!   the process, so it is not decoded again.
//! - Each worker keeps the bytes of recently served thumbnails in memory (16 MiB), so a
//!   hot thumbnail costs no file read; the validators are the SHA-256 of the
//!   thumbnail's bytes (strong `ETag`) and the cache file's mtime (`Last-Modified`).
//!
//! Not done: thumbnails of video frames, PDFs or HEIC (no decoder is built in);
//! removing the thumbnails of a scanned file that changed or vanished while a managed
//! blob or another scanned file still has that content (they are kept; shared content
//! keeps its previews); cleaning thumbnails left by a crash between a blob's unlink and
//! its hook (harmless: they are found again if the content comes back).

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use ringbox_protocol::conditional::format_http_date;
use sha2::{Digest, Sha256};

use super::access::Caller;
use super::blob_cache::{BlobCache, BlobLocation, OpenError};
use super::content::{self, Representation};
use super::error::{CoreError, CoreResult, ErrorKind};
use super::media::{self, DecodeLimits, ThumbError, ThumbFormat};
use super::pool::BlockingPool;
use super::Local;
use crate::metrics;
use crate::store::{Command, Kind, ObjectId, ObjectRecord, Source, State, Store};
use crate::util::hex;

/// The sizes served (longest side, pixels).
pub const SIZES: [u32; 3] = [128, 256, 512];
/// The size when none is asked for (and the one made eagerly after an upload).
pub const DEFAULT_SIZE: u32 = 256;
/// The format when none is asked for.
pub const DEFAULT_FORMAT: ThumbFormat = ThumbFormat::Png;
const FORMATS: [ThumbFormat; 3] = [ThumbFormat::Png, ThumbFormat::Jpeg, ThumbFormat::WebP];

/// Background jobs (eager thumbnails) beyond this many waiting are dropped: the
/// thumbnail is made when first asked for instead.
const MAX_BACKGROUND_QUEUE: usize = 4096;
/// Interactive requests beyond this many waiting get 503.
const MAX_INTERACTIVE_QUEUE: usize = 4096;
/// Contents remembered as refused or without a decoder (per process).
const MAX_REFUSED: usize = 65_536;
/// A cached thumbnail file larger than this is not one of ours (512 px PNG of noise is
/// about 1 MiB).
const MAX_THUMB_FILE: u64 = 8 << 20;
/// Bytes of thumbnails each worker keeps in memory.
const WORKER_CACHE_BYTES: usize = 16 << 20;
/// Entries each worker keeps.
const WORKER_CACHE_ENTRIES: usize = 4096;
/// `Cache-Control` of thumbnail responses. Private: thumbnails show private content,
/// and with `--anonymous read` or query-token APIs a request may carry no
/// `Authorization` header, which would let a shared cache store and replay it. Not
/// immutable: the URL of an object's thumbnail shows new content after a `PUT`, so a
/// day of freshness, then a revalidation that costs a 304.
pub const CACHE_CONTROL: &str = "private, max-age=86400";

/// Thumbnail settings (flags `--thumbnail-*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThumbSettings {
    /// Decodes at once (threads of the thumbnail pool).
    pub concurrency: usize,
    /// Deadline of one decode.
    pub timeout: Duration,
    /// How long a request waits for its thumbnail.
    pub wait: Duration,
    /// Largest width x height decoded (decompression bombs).
    pub max_pixels: u64,
    /// Largest decoded buffer per decode.
    pub max_memory: u64,
    /// Largest input file.
    pub max_input: u64,
    /// Nice value of the decoding threads (0 = same priority as the workers).
    pub nice: i32,
    /// Make the default thumbnail right after an image is stored.
    pub eager: bool,
}

impl Default for ThumbSettings {
    fn default() -> Self {
        ThumbSettings {
            concurrency: 2,
            timeout: Duration::from_secs(10),
            wait: Duration::from_secs(30),
            max_pixels: 100_000_000,
            max_memory: 256 << 20,
            max_input: 256 << 20,
            nice: 10,
            eager: true,
        }
    }
}

/// The `size` a client asked for (`None` = the default).
pub fn parse_size(raw: Option<&str>) -> CoreResult<u32> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(DEFAULT_SIZE),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| SIZES.contains(n))
            .ok_or_else(|| {
                CoreError::invalid_field("size", "size must be one of 128, 256 or 512 (pixels)")
            }),
    }
}

/// The `format` a client asked for (`None` = PNG).
pub fn parse_format(raw: Option<&str>) -> CoreResult<ThumbFormat> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(DEFAULT_FORMAT),
        Some(s) => match s.to_ascii_lowercase().as_str() {
            "png" => Ok(ThumbFormat::Png),
            "jpeg" | "jpg" => Ok(ThumbFormat::Jpeg),
            "webp" => Ok(ThumbFormat::WebP),
            _ => Err(CoreError::invalid_field(
                "format",
                "format must be png, jpeg or webp",
            )),
        },
    }
}

/// 404 for a type that has no thumbnail.
pub fn no_thumbnail(mime: &str) -> CoreError {
    CoreError::new(
        ErrorKind::NotFound,
        "no_thumbnail",
        format!(
            "there is no thumbnail for this type ({mime}); thumbnails are made of JPEG, PNG, \
             GIF, WebP and BMP images"
        ),
    )
}

/// 404 for an image the decoder refused.
pub fn refused(why: &str) -> CoreError {
    CoreError::new(
        ErrorKind::NotFound,
        "thumbnail_refused",
        format!("there is no thumbnail for this image: {why}"),
    )
}

fn changed() -> CoreError {
    CoreError::new(
        ErrorKind::NotFound,
        "changed",
        "the file changed since it was indexed; it is served again after the next scan",
    )
}

fn vanished() -> CoreError {
    CoreError::new(
        ErrorKind::NotFound,
        "not_found",
        "the file was removed from disk; it leaves the index at the next scan",
    )
}

/// The cache file name of a thumbnail.
pub fn file_name(sha: &[u8; 32], size: u32, format: ThumbFormat) -> String {
    format!("{}-{size}.{}", hex::encode(sha), format.extension())
}

/// Removes every cached thumbnail of a content (the writer calls this when the blob
/// file is collected). Missing files are fine.
pub fn remove_thumbnails(dir: &Path, sha: &[u8; 32]) {
    for size in SIZES {
        for format in FORMATS {
            let path = dir.join(file_name(sha, size, format));
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::debug!(path = %path.display(), "removed thumbnail"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove thumbnail")
                }
            }
        }
    }
}

/// Whether `data` is a whole file of `format`: its signature and its end (the PNG
/// `IEND` chunk, the JPEG end-of-image marker, the WebP RIFF length). Catches files a
/// power loss left empty or short, which the cache does not fsync.
pub fn is_complete(format: ThumbFormat, data: &[u8]) -> bool {
    match format {
        ThumbFormat::Png => {
            data.starts_with(b"\x89PNG\r\n\x1a\n")
                && data.ends_with(b"\0\0\0\0IEND\xae\x42\x60\x82")
        }
        ThumbFormat::Jpeg => data.starts_with(b"\xff\xd8\xff") && data.ends_with(b"\xff\xd9"),
        ThumbFormat::WebP => {
            data.len() >= 12
                && data.starts_with(b"RIFF")
                && &data[8..12] == b"WEBP"
                && u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize
                    == data.len() - 8
        }
    }
}

/// What a thumbnail is made from.
#[derive(Clone, Debug)]
pub enum Input {
    /// A managed blob file.
    Managed(PathBuf),
    /// A file indexed in place, which must still have this size and mtime.
    External {
        path: PathBuf,
        size: u64,
        mtime_ns: i64,
    },
}

/// A thumbnail file's bytes and mtime.
#[derive(Debug)]
pub struct ThumbFile {
    pub data: Vec<u8>,
    pub mtime_ns: i64,
}

/// Why a job made no thumbnail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No decoder for this type (the MIME type magic bytes gave).
    Unsupported(String),
    /// The image was refused (the reason, for users).
    Refused(String),
    /// The input file is gone.
    Missing,
    /// A scanned file changed since it was indexed.
    Changed,
    /// The queue is full.
    Busy,
    /// A server-side failure (logged).
    Internal(String),
}

type Outcome = Result<Arc<ThumbFile>, Failure>;
type Key = ([u8; 32], u32, ThumbFormat);

/// Whether a job is for a waiting client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    Interactive,
    Background,
}

struct Pending {
    input: Input,
    waiters: Vec<oneshot::Sender<Outcome>>,
    started: bool,
    background: bool,
}

#[derive(Default)]
struct Queue {
    running: usize,
    interactive: VecDeque<Key>,
    background: VecDeque<Key>,
    jobs: HashMap<Key, Pending>,
    /// Contents refused or without a decoder, with the verdict.
    refused: HashMap<[u8; 32], Failure>,
}

struct Shared {
    dir: PathBuf,
    tmp_dir: PathBuf,
    settings: ThumbSettings,
    pool: BlockingPool,
    state: Mutex<Queue>,
}

/// The process-wide thumbnail engine (see the module docs).
#[derive(Clone)]
pub struct ThumbEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ThumbEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThumbEngine")
            .field("dir", &self.shared.dir)
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

impl ThumbEngine {
    /// The engine for `store`: creates `<data>/thumbs`, starts the decoding threads
    /// (falling back to `fallback`, the general pool, if threads cannot be had), and
    /// installs the writer's hook that removes a content's thumbnails with its blob.
    pub fn new(store: &Store, settings: ThumbSettings, fallback: &BlockingPool) -> ThumbEngine {
        let dir = store.data_dir().join("thumbs");
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::error!(dir = %dir.display(), error = %e, "cannot create the thumbnail directory; thumbnails will fail");
        }
        let threads = settings.concurrency.max(1);
        let pool = BlockingPool::new_named(
            threads,
            threads * 2,
            "ringbox-pool-thumb",
            (settings.nice > 0).then_some(settings.nice),
        )
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot start the thumbnail threads; using the blocking pool");
            fallback.clone()
        });
        let hook_dir = dir.clone();
        store
            .writer()
            .on_blob_removed(Box::new(move |sha| remove_thumbnails(&hook_dir, sha)));
        let tmp_dir = store
            .tmp_path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.clone());
        ThumbEngine {
            shared: Arc::new(Shared {
                dir,
                tmp_dir,
                settings,
                pool,
                state: Mutex::new(Queue::default()),
            }),
        }
    }

    pub fn settings(&self) -> &ThumbSettings {
        &self.shared.settings
    }

    /// `<data>/thumbs/<sha256>-<size>.<ext>`.
    pub fn path(&self, sha: &[u8; 32], size: u32, format: ThumbFormat) -> PathBuf {
        self.shared.dir.join(file_name(sha, size, format))
    }

    /// The remembered verdict for a content that has no thumbnail, if any.
    pub fn refusal(&self, sha: &[u8; 32]) -> Option<Failure> {
        self.shared.lock().refused.get(sha).cloned()
    }

    /// Queue a thumbnail of `input` (whose content is `sha`), or join the job already
    /// queued or running for it. `None` when a background job was dropped (queue
    /// full); `Err(Busy)` when an interactive one cannot be queued.
    pub fn submit(
        &self,
        sha: [u8; 32],
        size: u32,
        format: ThumbFormat,
        input: Input,
        priority: Priority,
    ) -> Result<Option<oneshot::Receiver<Outcome>>, Failure> {
        let key = (sha, size, format);
        let (tx, rx) = oneshot::channel();
        let mut st = self.shared.lock();
        if let Some(verdict) = st.refused.get(&sha) {
            // Known to have no thumbnail: answered without a job.
            let _ = tx.send(Err(verdict.clone()));
            return Ok(Some(rx));
        }
        if let Some(p) = st.jobs.get_mut(&key) {
            p.waiters.push(tx);
            if priority == Priority::Interactive && p.background {
                p.background = false;
                if !p.started {
                    // Promote it: a client waits now.
                    st.background.retain(|k| *k != key);
                    st.interactive.push_back(key);
                }
            }
            return Ok(Some(rx));
        }
        match priority {
            Priority::Background if st.background.len() >= MAX_BACKGROUND_QUEUE => return Ok(None),
            Priority::Interactive if st.interactive.len() >= MAX_INTERACTIVE_QUEUE => {
                return Err(Failure::Busy)
            }
            Priority::Background => st.background.push_back(key),
            Priority::Interactive => st.interactive.push_back(key),
        }
        st.jobs.insert(
            key,
            Pending {
                input,
                waiters: vec![tx],
                started: false,
                background: priority == Priority::Background,
            },
        );
        let failed = Shared::dispatch(&self.shared, &mut st);
        drop(st);
        Shared::fail_all(failed);
        Ok(Some(rx))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock cannot leave the maps half-changed in a way
        // that matters more than losing the engine: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start queued jobs while fewer than `concurrency` run. Returns the waiters of
    /// jobs that could not be started (to be failed outside the lock).
    fn dispatch(shared: &Arc<Shared>, st: &mut Queue) -> Vec<oneshot::Sender<Outcome>> {
        let mut failed = Vec::new();
        while st.running < shared.settings.concurrency.max(1) {
            let Some(key) = st
                .interactive
                .pop_front()
                .or_else(|| st.background.pop_front())
            else {
                break;
            };
            let Some(p) = st.jobs.get_mut(&key) else {
                continue;
            };
            p.started = true;
            let input = p.input.clone();
            let job_shared = shared.clone();
            let spawned = shared
                .pool
                .spawn(move || Shared::run(job_shared, key, input));
            match spawned {
                Ok(()) => st.running += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a thumbnail job");
                    if let Some(p) = st.jobs.remove(&key) {
                        failed.extend(p.waiters);
                    }
                }
            }
        }
        failed
    }

    fn fail_all(waiters: Vec<oneshot::Sender<Outcome>>) {
        for w in waiters {
            let _ = w.send(Err(Failure::Busy));
        }
    }

    /// The job, on a thumbnail thread: make the thumbnail, then hand the outcome to
    /// every waiter and start the next job. The work is guarded here (not only by the
    /// pool) so that a panic still completes the job's waiters.
    fn run(shared: Arc<Shared>, key: Key, input: Input) {
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| make(&shared, key, &input)))
                .unwrap_or_else(|_| {
                    metrics::get().panic("pool");
                    tracing::error!("a thumbnail job panicked");
                    Err(Failure::Internal("the thumbnail job failed".into()))
                });
        let (waiters, failed) = {
            let mut st = shared.lock();
            st.running = st.running.saturating_sub(1);
            if let Err(f @ (Failure::Unsupported(_) | Failure::Refused(_))) = &outcome {
                if st.refused.len() >= MAX_REFUSED {
                    st.refused.clear();
                }
                st.refused.insert(key.0, f.clone());
            }
            let waiters = st.jobs.remove(&key).map(|p| p.waiters).unwrap_or_default();
            let failed = Shared::dispatch(&shared, &mut st);
            (waiters, failed)
        };
        Shared::fail_all(failed);
        for w in waiters {
            let _ = w.send(outcome.clone());
        }
    }
}

/// Make (or find) one thumbnail file. Runs on a thumbnail thread: blocking I/O and
/// decoding are fine here.
fn make(shared: &Shared, key: Key, input: &Input) -> Outcome {
    let (sha, size, format) = key;
    let path = shared.dir.join(file_name(&sha, size, format));
    if let Some(found) = read_file_blocking(&path, format) {
        return Ok(Arc::new(found));
    }
    let src = match input {
        Input::Managed(p) => {
            if !p.exists() {
                return Err(Failure::Missing);
            }
            p
        }
        Input::External {
            path: p,
            size: want,
            mtime_ns,
        } => match std::fs::metadata(p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Failure::Missing),
            Err(e) => {
                return Err(Failure::Internal(format!(
                    "cannot stat {}: {e}",
                    p.display()
                )))
            }
            Ok(m) => {
                use std::os::unix::fs::MetadataExt as _;
                let mt = m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec();
                if m.len() != *want || mt != *mtime_ns {
                    return Err(Failure::Changed);
                }
                p
            }
        },
    };
    let s = &shared.settings;
    let limits = DecodeLimits {
        max_pixels: s.max_pixels,
        max_alloc_bytes: s.max_memory,
        max_input_bytes: s.max_input,
        deadline: Some(Instant::now() + s.timeout),
    };
    let counters = &metrics::get().media;
    let thumb = match media::thumbnail(media::Source::Path(src), size, format, &limits) {
        Ok(t) => {
            counters.thumbnail_decodes.fetch_add(1, Relaxed);
            t
        }
        Err(ThumbError::Unsupported { mime }) => return Err(Failure::Unsupported(mime)),
        Err(e) if e.is_refused() => {
            counters.thumbnail_decodes.fetch_add(1, Relaxed);
            counters.thumbnails_refused.fetch_add(1, Relaxed);
            tracing::info!(sha = %hex::encode(&sha), reason = %e, "image refused for a thumbnail");
            return Err(Failure::Refused(e.to_string()));
        }
        Err(ThumbError::Io(m)) if !src.exists() => {
            tracing::debug!(error = %m, "thumbnail input vanished");
            return Err(Failure::Missing);
        }
        Err(e) => {
            counters.thumbnail_decodes.fetch_add(1, Relaxed);
            tracing::warn!(sha = %hex::encode(&sha), error = %e, "thumbnail failed");
            return Err(Failure::Internal(e.to_string()));
        }
    };
    let mtime_ns = match write_file(&shared.tmp_dir, &path, &thumb.data) {
        Ok(m) => {
            counters.thumbnails_generated.fetch_add(1, Relaxed);
            m
        }
        Err(e) => {
            // Still served from memory; made again next time.
            tracing::warn!(path = %path.display(), error = %e, "cannot write a thumbnail to the cache");
            crate::util::time::now_ms().saturating_mul(1_000_000)
        }
    };
    Ok(Arc::new(ThumbFile {
        data: thumb.data,
        mtime_ns,
    }))
}

/// Write `data` to `path` through a temp file in `tmp_dir` and a rename; returns the
/// file's mtime. No fsync: see the module docs.
fn write_file(tmp_dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<i64> {
    let tmp = tmp_dir.join(format!("thumb-{}", uuid::Uuid::now_v7()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        let st = crate::sys::fstat(&f)?;
        std::fs::rename(&tmp, path)?;
        Ok(st.mtime_ns)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// A cached thumbnail file, if present and whole (a damaged one is removed).
fn read_file_blocking(path: &Path, format: ThumbFormat) -> Option<ThumbFile> {
    use std::io::Read as _;
    let mut f = std::fs::File::open(path).ok()?;
    let st = crate::sys::fstat(&f).ok()?;
    if st.size > MAX_THUMB_FILE {
        return None;
    }
    let mut data = Vec::with_capacity(st.size as usize);
    f.read_to_end(&mut data).ok()?;
    if !is_complete(format, &data) {
        tracing::warn!(path = %path.display(), "damaged thumbnail in the cache; making it again");
        let _ = std::fs::remove_file(path);
        return None;
    }
    Some(ThumbFile {
        data,
        mtime_ns: st.mtime_ns,
    })
}

/// The same on a worker, with io_uring reads.
async fn read_file(path: &Path, format: ThumbFormat) -> Option<ThumbFile> {
    let f = monoio::fs::File::open(path).await.ok()?;
    let st = crate::sys::fstat(&f).ok();
    let out = match st {
        Some(st) if st.size <= MAX_THUMB_FILE => {
            let buf = Vec::with_capacity(st.size as usize);
            let (res, buf) = f.read_exact_at(buf, 0).await;
            match res {
                Ok(()) if is_complete(format, &buf) => Some(ThumbFile {
                    data: buf,
                    mtime_ns: st.mtime_ns,
                }),
                _ => {
                    tracing::warn!(path = %path.display(), "damaged thumbnail in the cache; making it again");
                    let _ = monoio::fs::remove_file(path).await;
                    None
                }
            }
        }
        _ => None,
    };
    let _ = f.close().await;
    out
}

/// The representation of a thumbnail: served from memory, validated by the SHA-256 of
/// its bytes.
fn representation(
    file: &ThumbFile,
    sha: &[u8; 32],
    size: u32,
    format: ThumbFormat,
) -> Representation {
    let digest: [u8; 32] = Sha256::digest(&file.data).into();
    let secs = (file.mtime_ns / 1_000_000_000).max(0) as u64;
    let lm = format_http_date(secs);
    let name = file_name(sha, size, format);
    let inline = ringbox_protocol::response::content_disposition(
        ringbox_protocol::response::DispositionKind::Inline,
        &name,
    );
    Representation {
        sha: digest,
        size: file.data.len() as u64,
        mime: format.mime().into(),
        etag: format!("\"{}\"", hex::encode(&digest)).into(),
        last_modified_secs: secs,
        last_modified: std::str::from_utf8(&lm).unwrap_or_default().into(),
        filename: name.into(),
        inline_disposition: inline.into(),
        text: Some(Rc::from(file.data.as_slice())),
        object: None,
        state: State::Stored,
        external: None,
    }
}

/// Each worker's thumbnails in memory (FIFO, bounded by bytes and entries).
#[derive(Debug, Default)]
pub struct ThumbCache {
    map: HashMap<Key, Rc<Representation>>,
    order: VecDeque<Key>,
    bytes: usize,
}

impl ThumbCache {
    fn get(&self, key: &Key) -> Option<Rc<Representation>> {
        self.map.get(key).cloned()
    }

    fn insert(&mut self, key: Key, rep: Rc<Representation>) {
        let size = rep.size as usize;
        if size > WORKER_CACHE_BYTES / 4 {
            return;
        }
        while (self.bytes + size > WORKER_CACHE_BYTES || self.map.len() >= WORKER_CACHE_ENTRIES)
            && !self.order.is_empty()
        {
            if let Some(old) = self.order.pop_front() {
                if let Some(r) = self.map.remove(&old) {
                    self.bytes -= r.size as usize;
                }
            }
        }
        if let Some(r) = self.map.insert(key, rep) {
            self.bytes -= r.size as usize;
        } else {
            self.order.push_back(key);
        }
        self.bytes += size;
    }
}

/// The cache key of a file indexed in place in the worker's blob cache: the hash of
/// its path, so two scanned files with the same content (or a managed blob with it)
/// never share a descriptor, and a vanished file is noticed for its own object.
pub fn external_key(path: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"external\0");
    h.update(path);
    h.finalize().into()
}

fn os_path(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt as _;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

impl Local {
    /// The thumbnail of object `id` for `caller` (who must be able to read the
    /// object): longest side `size` (one of [`SIZES`]), in `format`. See the module
    /// docs for the errors.
    pub async fn object_thumbnail(
        &self,
        caller: &Caller,
        id: ObjectId,
        size: u32,
        format: ThumbFormat,
    ) -> CoreResult<Rc<Representation>> {
        let entry = self.object_content(caller, id)?;
        let rec = &entry.rec;
        if rec.kind == Kind::Text || !media::can_thumbnail(&rec.mime_type) {
            return Err(no_thumbnail(&rec.mime_type));
        }
        let rep = entry.rep();
        let input = match &rec.source {
            Source::Managed => Input::Managed(self.store.blob_path(&rep.sha)),
            Source::External(f) => {
                // The file must still be the one indexed (the same check as content).
                self.open_content(rep).await?;
                Input::External {
                    path: os_path(&f.path),
                    size: f.size,
                    mtime_ns: f.mtime_ns,
                }
            }
        };
        self.thumbnail_of(rep.sha, input, size, format, Some(rec))
            .await
    }

    /// The thumbnail of the content with hash `sha`, for APIs that name content by
    /// hash. Visible to whoever may read the blob by hash (admins, everyone when the
    /// store is public, users who own an object with that content), else 404; made
    /// from the managed blob, or from a scanned file with that content.
    pub async fn thumbnail_by_sha(
        &self,
        caller: &Caller,
        sha: [u8; 32],
        size: u32,
        format: ThumbFormat,
    ) -> CoreResult<Rc<Representation>> {
        if !self.may_see_blob(caller, &sha)? {
            return Err(CoreError::not_found("a content with this hash"));
        }
        if self.store.get_blob(&sha)?.is_some_and(|b| b.refcount > 0) {
            let input = Input::Managed(self.store.blob_path(&sha));
            return self.thumbnail_of(sha, input, size, format, None).await;
        }
        // Scanned files with this content: the first one still intact on disk.
        let mut gone = None;
        for id in self
            .store
            .ids_by_alias_prefix(&super::scan::content_alias_prefix(&sha), 16)?
        {
            let Some(rec) = self.store.get_object(id)? else {
                continue;
            };
            let Source::External(f) = &rec.source else {
                continue;
            };
            if rec.sha256 != Some(sha) || rec.state != State::Stored {
                continue;
            }
            if !media::can_thumbnail(&rec.mime_type) {
                return Err(no_thumbnail(&rec.mime_type));
            }
            let path = os_path(&f.path);
            let opened = BlobCache::open(
                &self.blobs,
                &self.pool,
                BlobLocation::External {
                    path: &path,
                    mtime_ns: f.mtime_ns,
                },
                &external_key(&f.path),
                f.size,
            )
            .await;
            match opened {
                Ok(_) => {
                    let input = Input::External {
                        path,
                        size: f.size,
                        mtime_ns: f.mtime_ns,
                    };
                    return self
                        .thumbnail_of(sha, input, size, format, Some(&rec))
                        .await;
                }
                Err(OpenError::Changed) => gone = Some(changed()),
                Err(OpenError::Lost) => gone = Some(vanished()),
                Err(OpenError::Io(e)) => return Err(e.into()),
                Err(OpenError::Corrupt(m)) => return Err(CoreError::internal(m)),
            }
        }
        Err(gone.unwrap_or_else(|| CoreError::not_found("a content with this hash")))
    }

    /// The thumbnail (size, format) of content `sha` made from `input`: from the
    /// worker's memory, the cache file, or the engine. `rec` is the object asked for,
    /// if any (a refusal is recorded on it).
    async fn thumbnail_of(
        &self,
        sha: [u8; 32],
        input: Input,
        size: u32,
        format: ThumbFormat,
        rec: Option<&ObjectRecord>,
    ) -> CoreResult<Rc<Representation>> {
        let key = (sha, size, format);
        if let Some(rep) = self.thumbs_mem.borrow().get(&key) {
            return Ok(rep);
        }
        if let Some(verdict) = self.thumbs.refusal(&sha) {
            return Err(self.failure(verdict, rec, &input));
        }
        let path = self.thumbs.path(&sha, size, format);
        let file = match read_file(&path, format).await {
            Some(f) => Arc::new(f),
            None => {
                let rx = match self.thumbs.submit(
                    sha,
                    size,
                    format,
                    input.clone(),
                    Priority::Interactive,
                ) {
                    Ok(Some(rx)) => rx,
                    Ok(None) | Err(_) => return Err(self.failure(Failure::Busy, rec, &input)),
                };
                metrics::get().media.thumbnail_waits.fetch_add(1, Relaxed);
                match monoio::time::timeout(self.thumbs.settings().wait, rx).await {
                    Ok(Ok(Ok(file))) => file,
                    Ok(Ok(Err(f))) => return Err(self.failure(f, rec, &input)),
                    Ok(Err(_)) => return Err(CoreError::internal("the thumbnail job was dropped")),
                    Err(_) => {
                        return Err(CoreError::new(
                            ErrorKind::Busy,
                            "busy",
                            "the thumbnail is still being made; retry in a moment",
                        ))
                    }
                }
            }
        };
        let rep = Rc::new(representation(&file, &sha, size, format));
        self.thumbs_mem.borrow_mut().insert(key, rep.clone());
        Ok(rep)
    }

    /// The error for a failure (recording a refusal on the object).
    fn failure(&self, f: Failure, rec: Option<&ObjectRecord>, input: &Input) -> CoreError {
        match f {
            Failure::Unsupported(mime) => no_thumbnail(&mime),
            Failure::Refused(why) => {
                if let Some(rec) = rec {
                    self.record_refusal(rec, &why);
                }
                refused(&why)
            }
            Failure::Missing => match input {
                Input::Managed(_) => content::lost(),
                Input::External { .. } => vanished(),
            },
            Failure::Changed => changed(),
            Failure::Busy => CoreError::new(
                ErrorKind::Busy,
                "busy",
                "too many thumbnails are being made; retry in a moment",
            ),
            Failure::Internal(m) => {
                CoreError::internal(format!("the thumbnail could not be made: {m}"))
            }
        }
    }

    /// Put `why` in the object's `media.error` (in the background; only if the object
    /// still has this content, and only once).
    pub(crate) fn record_refusal(&self, rec: &ObjectRecord, why: &str) {
        let Some(cmd) = refusal_command(rec, why) else {
            return;
        };
        let set = self.store.writer().submit(cmd);
        monoio::spawn(async move {
            if let Err(e) = set.await {
                tracing::warn!(error = %e, "cannot record a thumbnail refusal");
            }
        });
    }
}

/// The command that records a thumbnail refusal on `rec` (`None` when the record at
/// hand shows it recorded already, or the object has no content). The writer merges it
/// into whatever `media` the object has by then.
pub(crate) fn refusal_command(rec: &ObjectRecord, why: &str) -> Option<Command> {
    let sha = rec.sha256?;
    let error = format!("thumbnail: {why}");
    let known = rec
        .media
        .as_ref()
        .and_then(|m| m.error.as_deref())
        .is_some_and(|e| e.contains(&error));
    (!known).then_some(Command::AddMediaError {
        id: rec.id,
        sha256: sha,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_and_formats() {
        assert_eq!(parse_size(None).unwrap(), 256);
        assert_eq!(parse_size(Some("")).unwrap(), 256);
        assert_eq!(parse_size(Some("128")).unwrap(), 128);
        assert_eq!(parse_size(Some("512")).unwrap(), 512);
        for bad in ["0", "100", "1024", "x", "-1", "256px"] {
            assert_eq!(
                parse_size(Some(bad)).unwrap_err().kind,
                ErrorKind::Invalid,
                "{bad}"
            );
        }
        assert_eq!(parse_format(None).unwrap(), ThumbFormat::Png);
        assert_eq!(parse_format(Some("JPG")).unwrap(), ThumbFormat::Jpeg);
        assert_eq!(parse_format(Some("webp")).unwrap(), ThumbFormat::WebP);
        assert!(parse_format(Some("gif")).is_err());
    }

    #[test]
    fn completeness_checks() {
        let png = b"\x89PNG\r\n\x1a\nxxxx\0\0\0\0IEND\xae\x42\x60\x82";
        assert!(is_complete(ThumbFormat::Png, png));
        assert!(!is_complete(ThumbFormat::Png, &png[..png.len() - 1]));
        assert!(!is_complete(ThumbFormat::Png, b""));
        assert!(is_complete(
            ThumbFormat::Jpeg,
            b"\xff\xd8\xff\xe0..\xff\xd9"
        ));
        assert!(!is_complete(ThumbFormat::Jpeg, b"\xff\xd8\xff\xe0.."));
        let mut webp = b"RIFF\0\0\0\0WEBPVP8L".to_vec();
        let n = (webp.len() - 8) as u32;
        webp[4..8].copy_from_slice(&n.to_le_bytes());
        assert!(is_complete(ThumbFormat::WebP, &webp));
        webp.push(0);
        assert!(!is_complete(ThumbFormat::WebP, &webp));
        assert!(!is_complete(ThumbFormat::WebP, &[0u8; 4]));
    }

    fn media(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/media")
                .join(name),
        )
        .unwrap()
    }

    async fn upload(svc: &Local, name: &str, data: Vec<u8>) -> ObjectRecord {
        let caller = crate::core::test_support::admin();
        let mut body = crate::core::stream::MemoryStream::new(data, 4096);
        let blob = svc.store_stream(&caller, &mut body).await.unwrap();
        let new = crate::core::upload::NewObject {
            namespace: "default".into(),
            name: name.into(),
            ..Default::default()
        };
        svc.create_file(&caller, new, blob, None).await.unwrap()
    }

    #[test]
    fn object_thumbnails_are_made_once_and_cached() {
        crate::core::test_support::with_services(|svc| async move {
            let caller = crate::core::test_support::admin();
            let rec = upload(&svc, "photo.jpg", media("photo.jpg")).await;
            // Two requests at once for a size nobody made: one job, both answered.
            let (a, b) = futures_util::future::join(
                svc.object_thumbnail(&caller, rec.id, 128, ThumbFormat::WebP),
                svc.object_thumbnail(&caller, rec.id, 128, ThumbFormat::WebP),
            )
            .await;
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(a.etag, b.etag);
            assert_eq!(&*a.mime, "image/webp");
            let path = svc
                .thumbs
                .path(&rec.sha256.unwrap(), 128, ThumbFormat::WebP);
            let on_disk = std::fs::read(&path).unwrap();
            assert_eq!(a.text.as_deref(), Some(on_disk.as_slice()));
            // Served from the worker's memory afterwards, even with the file gone.
            std::fs::remove_file(&path).unwrap();
            let c = svc
                .object_thumbnail(&caller, rec.id, 128, ThumbFormat::WebP)
                .await
                .unwrap();
            assert!(Rc::ptr_eq(&a, &c) || Rc::ptr_eq(&b, &c));
        });
    }

    #[test]
    fn refusals_and_types_without_thumbnails() {
        crate::core::test_support::with_services(|svc| async move {
            let caller = crate::core::test_support::admin();
            let clip = upload(&svc, "clip.mp4", media("clip.mp4")).await;
            let e = svc
                .object_thumbnail(&caller, clip.id, 256, ThumbFormat::Png)
                .await
                .unwrap_err();
            assert_eq!((e.kind, e.code), (ErrorKind::NotFound, "no_thumbnail"));
            let bomb = upload(&svc, "b.png", media("bomb-100000x100000.png")).await;
            let e = svc
                .object_thumbnail(&caller, bomb.id, 256, ThumbFormat::Png)
                .await
                .unwrap_err();
            assert_eq!(e.code, "thumbnail_refused", "{e}");
            assert!(e.message.contains("100000 x 100000"), "{e}");
            // Remembered (no job), and recorded on the object.
            let e = svc
                .object_thumbnail(&caller, bomb.id, 512, ThumbFormat::Jpeg)
                .await
                .unwrap_err();
            assert_eq!(e.code, "thumbnail_refused");
            for _ in 0..100 {
                let rec = svc.store.get_object(bomb.id).unwrap().unwrap();
                if rec
                    .media
                    .and_then(|m| m.error)
                    .is_some_and(|e| e.starts_with("thumbnail:"))
                {
                    return;
                }
                monoio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("the refusal was not recorded");
        });
    }

    #[test]
    fn names_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let sha = [0xab; 32];
        let n = file_name(&sha, 256, ThumbFormat::Jpeg);
        assert_eq!(n, format!("{}-256.jpg", "ab".repeat(32)));
        for size in SIZES {
            std::fs::write(
                dir.path().join(file_name(&sha, size, ThumbFormat::Png)),
                b"x",
            )
            .unwrap();
        }
        let other = dir.path().join(file_name(&[1; 32], 256, ThumbFormat::Png));
        std::fs::write(&other, b"x").unwrap();
        remove_thumbnails(dir.path(), &sha);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(other.exists());
    }
}
