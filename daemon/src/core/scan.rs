//! Indexing directories in place (`--scan-dir`): media files under each root become
//! objects whose bytes stay where they are (`Source::External`), so an existing photo
//! directory is browsable, thumbnailed and served without copying a byte.
//!
//! Contract:
//! - One thread of its own (`ringbox-scan`) walks the roots, hashes and probes the
//!   files, and commits through the writer; nothing of it runs on a worker. The first
//!   run starts at once in the background (`/healthz` does not wait) and its results
//!   appear progressively: commands are committed in batches of [`BATCH`]. With
//!   `--rescan-interval SECS` (0 = only at start) it runs again that long after the
//!   previous run ended.
//! - What is indexed: regular files whose extension (case-insensitive) is in
//!   `--scan-extensions`. Skipped: other files, names starting with `.` (and
//!   directories so named: `.thumbnails`, `.git`, trash folders), symlinks whose target
//!   leaves the root (and dangling ones), device files, FIFOs and sockets, paths that
//!   are not UTF-8 (a warning each: object names are UTF-8), names the naming rules
//!   refuse, and the data directory if it lies inside a root. Symlinks that stay inside
//!   the root are followed; a directory reached twice (a link loop) is walked once.
//! - Each file is an object in the root's namespace (`scan-<last path component>`,
//!   sanitised to the namespace alphabet; two roots with the same last component get
//!   a hash suffix), named by its path relative to the root, owned by `--scan-owner`
//!   (default: the admin). It carries two aliases: `ext:<sha256 of its absolute path>`
//!   (find the object of a path: [`path_alias`]) and `xsha:<content sha256>:<id>` (find
//!   the scanned objects of a content: [`content_alias_prefix`]). Images are probed
//!   (dimensions, EXIF) on this thread and the result committed with the record.
//! - Rescans: a new file (or one in a new directory) is added; a file whose size or
//!   mtime changed is hashed and probed again and its object gets the new content
//!   (`Command::SetExternal`: same id, new hash, so old thumbnails are simply not used);
//!   a file gone from disk (or no longer matching the extensions) leaves the index.
//!   Objects not indexed in place (uploads), even in the scan's namespace, are never
//!   touched. A file that changes while it is hashed is left for the next run.
//! - After indexing a root, the default thumbnail of each new or changed image is made
//!   in the background (at most `--thumbnail-concurrency` at once, behind interactive
//!   requests), so previews are ready soon after a scan.
//! - Progress: an info line per batch and per root, and `/metrics`
//!   (`ringbox_scan_runs_total`, `ringbox_scan_files_total`, `ringbox_scan_removed_total`,
//!   `ringbox_scan_errors_total`, `ringbox_scan_indexed_files`, `ringbox_scan_running`).
//!
//! Serving a scanned file (in `content.rs` and `blob_cache.rs`): it is opened at its
//! path and must have the size and mtime recorded here; a vanished file is 404 at once
//! and a changed one 404 `changed` until the next scan. Scanned files count toward the
//! owner's usage like uploads (give the scan owner no quota).
//!
//! Not done: inotify (the periodic rescan is the only way changes are seen); removing
//! the objects of a root that is no longer configured (they stay, and answer 404 once
//! their files are gone); lossless indexing of non-UTF-8 names.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io::Read as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::media::{self, sniff};
use super::media_jobs::{is_probed, media_info};
use super::objects::blank_record;
use super::thumbs::{self, Input, Priority, DEFAULT_FORMAT, DEFAULT_SIZE};
use super::{naming, Core};
use crate::metrics;
use crate::store::{
    Command, ExternalFile, Kind, ListQuery, ObjectRecord, Reply, Source, State, StoreError,
    ADMIN_USER, DEFAULT_MAX_SCAN,
};
use crate::util::hex;
use crate::util::time::now_ms;

/// Commands committed together (one group commit), and the progress log interval.
pub const BATCH: usize = 100;
/// The default `--scan-extensions`.
pub const DEFAULT_EXTENSIONS: &str =
    "png,jpg,jpeg,gif,webp,heic,heif,avif,mp4,mov,webm,mkv,m4v,avi";
/// Read size while hashing.
const HASH_CHUNK: usize = 1 << 20;

/// Scan settings (`--scan-dir`, `--rescan-interval`, `--scan-owner`,
/// `--scan-extensions`).
#[derive(Clone, Debug, Default)]
pub struct ScanSettings {
    pub roots: Vec<PathBuf>,
    /// Zero: only at start.
    pub interval: Duration,
    /// Username of the owner of scanned objects (`None` = the admin).
    pub owner: Option<String>,
    /// Lower-case extensions without the dot.
    pub extensions: Vec<String>,
}

/// `ext:<sha256 hex of the absolute path's bytes>`: the alias of the object of a
/// scanned path (aliases are at most 511 bytes; paths can be longer).
pub fn path_alias(path: &[u8]) -> String {
    format!("ext:{}", hex::encode(Sha256::digest(path).as_slice()))
}

/// `xsha:<content sha256 hex>:`: the prefix of the aliases of the scanned objects
/// with this content (see [`crate::store::Store::ids_by_alias_prefix`]).
pub fn content_alias_prefix(sha: &[u8; 32]) -> String {
    format!("xsha:{}:", hex::encode(sha))
}

fn content_alias(sha: &[u8; 32], id: &uuid::Uuid) -> String {
    format!("{}{}", content_alias_prefix(sha), id.simple())
}

/// Parse `--scan-extensions` (`png,.JPG, webp`).
pub fn parse_extensions(list: &str) -> Vec<String> {
    list.split(',')
        .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .collect()
}

/// One configured root.
#[derive(Debug, Clone)]
struct Root {
    /// Canonical path.
    path: PathBuf,
    /// The same as UTF-8 (what records keep as `ExternalFile::root`).
    text: String,
    namespace: String,
}

/// The running scanner; [`ScanHandle::stop`] ends it.
#[derive(Debug)]
pub struct ScanHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ScanHandle {
    /// Ask the scanner to stop and wait for it (it stops between files, within a
    /// chunk of hashing, and within 100 ms of a wait).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the scanner thread panicked");
            }
        }
    }
}

/// Validate the settings and start the scanner thread (`Ok(None)` without roots).
/// Refused: a root that is missing, not a directory, not UTF-8, listed twice (or
/// inside another root), or inside the data directory (GC removes unknown files under `blobs/`, and the
/// thumbnail cache would index itself); an unknown owner.
pub fn start(core: Arc<Core>, settings: ScanSettings) -> Result<Option<ScanHandle>, String> {
    if settings.roots.is_empty() {
        return Ok(None);
    }
    let data = std::fs::canonicalize(core.store.data_dir())
        .map_err(|e| format!("cannot resolve the data directory: {e}"))?;
    let mut roots: Vec<Root> = Vec::new();
    for given in &settings.roots {
        let path = std::fs::canonicalize(given)
            .map_err(|e| format!("scan directory {}: {e}", given.display()))?;
        if !path.is_dir() {
            return Err(format!(
                "scan directory {} is not a directory",
                given.display()
            ));
        }
        if path.starts_with(&data) {
            return Err(format!(
                "scan directory {} is inside the data directory {}; scan a directory outside it",
                given.display(),
                data.display()
            ));
        }
        let text = path
            .to_str()
            .ok_or_else(|| format!("scan directory {} is not a UTF-8 path", given.display()))?
            .to_string();
        if let Some(r) = roots
            .iter()
            .find(|r| r.path.starts_with(&path) || path.starts_with(&r.path))
        {
            return Err(format!(
                "scan directories {} and {} overlap (or are the same); give each tree once",
                r.text,
                given.display()
            ));
        }
        let namespace = namespace_for(&path, &roots);
        roots.push(Root {
            path,
            text,
            namespace,
        });
    }
    let owner = match settings.owner.as_deref() {
        None => ADMIN_USER.to_string(),
        Some(name) => match core.store.get_user_by_name(name) {
            Ok(Some(u)) => u.id,
            Ok(None) => return Err(format!("scan owner `{name}` is not a user")),
            Err(e) => return Err(format!("cannot look up the scan owner: {e}")),
        },
    };
    let exts: HashSet<String> = settings.extensions.iter().cloned().collect();
    // The dialects that list "the scanned directory" (photobackup) read them here.
    let _ = core
        .scan_namespaces
        .set(roots.iter().map(|r| r.namespace.clone()).collect());
    for r in &roots {
        tracing::info!(root = %r.text, namespace = %r.namespace, "indexing a directory in place");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let scanner = Scanner {
        core,
        roots,
        owner,
        exts,
        data,
        interval: settings.interval,
        stop: stop.clone(),
        indexed: HashMap::new(),
    };
    let thread = std::thread::Builder::new()
        .name("ringbox-scan".into())
        .spawn(move || scanner.run())
        .map_err(|e| format!("cannot start the scanner thread: {e}"))?;
    Ok(Some(ScanHandle {
        stop,
        thread: Some(thread),
    }))
}

/// `scan-<last component>` in the namespace alphabet; with a hash suffix when an
/// earlier root has it already.
fn namespace_for(path: &Path, earlier: &[Root]) -> String {
    let base: String = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let ns = format!("scan-{base}");
    if earlier.iter().any(|r| r.namespace == ns) {
        let h = hex::encode(Sha256::digest(path.as_os_str().as_bytes()).as_slice());
        format!("{ns}-{}", &h[..8])
    } else {
        ns
    }
}

/// A media file found on disk.
#[derive(Debug)]
struct Found {
    path: PathBuf,
    rel: String,
    size: u64,
    mtime_ns: i64,
}

fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec()
}

struct Scanner {
    core: Arc<Core>,
    roots: Vec<Root>,
    owner: String,
    exts: HashSet<String>,
    data: PathBuf,
    interval: Duration,
    stop: Arc<AtomicBool>,
    /// Files indexed per root after its last run (for the gauge).
    indexed: HashMap<String, i64>,
}

/// A new or changed image whose default thumbnail is made after the root is indexed.
struct Pending {
    rec: ObjectRecord,
    input: Input,
}

#[derive(Default)]
struct Tally {
    new: u64,
    changed: u64,
    removed: u64,
    unchanged: u64,
    errors: u64,
}

impl Scanner {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn run(mut self) {
        let counters = &metrics::get().media;
        loop {
            counters.scan_running.store(1, Relaxed);
            let roots = self.roots.clone();
            for root in &roots {
                if self.stopped() {
                    break;
                }
                let started = Instant::now();
                match self.scan_root(root) {
                    Ok(t) => tracing::info!(
                        root = %root.text,
                        new = t.new,
                        changed = t.changed,
                        removed = t.removed,
                        unchanged = t.unchanged,
                        skipped = t.errors,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "scan of a directory finished"
                    ),
                    Err(e) => {
                        tracing::error!(root = %root.text, error = %e, "scan of a directory failed")
                    }
                }
            }
            counters.scan_running.store(0, Relaxed);
            counters.scan_runs.fetch_add(1, Relaxed);
            if self.interval.is_zero() || self.stopped() {
                break;
            }
            let until = Instant::now() + self.interval;
            while Instant::now() < until {
                if self.stopped() {
                    return;
                }
                std::thread::sleep((until - Instant::now()).min(Duration::from_millis(100)));
            }
        }
    }

    /// One run over one root.
    fn scan_root(&mut self, root: &Root) -> Result<Tally, StoreError> {
        let counters = &metrics::get().media;
        let mut tally = Tally::default();
        let mut index = self.index_of(root)?;
        let found = self.walk(root, &mut tally);
        let mut batch: Vec<Command> = Vec::new();
        let mut pending_thumbs: Vec<Pending> = Vec::new();
        let mut old_contents: Vec<[u8; 32]> = Vec::new();
        for f in found {
            if self.stopped() {
                return Ok(tally);
            }
            let key = f.path.as_os_str().as_bytes().to_vec();
            let cmd = match index.remove(&key) {
                Some(rec) if same_file(&rec, &f) => {
                    tally.unchanged += 1;
                    continue;
                }
                Some(rec) => match self.describe(&f) {
                    Some(d) => {
                        tally.changed += 1;
                        if let Some(old) = rec.sha256.filter(|o| *o != d.sha) {
                            old_contents.push(old);
                        }
                        Command::SetExternal {
                            id: rec.id,
                            file: ExternalFile {
                                root: root.text.clone(),
                                path: key.clone(),
                                size: f.size,
                                mtime_ns: f.mtime_ns,
                            },
                            sha256: d.sha,
                            mime_type: d.mime,
                            media: d.media,
                            aliases: vec![path_alias(&key), content_alias(&d.sha, &rec.id)],
                            now_ms: now_ms(),
                        }
                    }
                    None => {
                        tally.errors += 1;
                        continue;
                    }
                },
                None => match self.describe(&f) {
                    Some(d) => {
                        tally.new += 1;
                        let mut rec = blank_record(uuid::Uuid::now_v7(), now_ms());
                        rec.kind = Kind::File;
                        rec.name = f.rel.clone();
                        rec.namespace = root.namespace.clone();
                        rec.mime_type = d.mime;
                        rec.size = f.size;
                        rec.sha256 = Some(d.sha);
                        rec.state = State::Stored;
                        rec.owner = Some(self.owner.clone());
                        rec.source = Source::External(ExternalFile {
                            root: root.text.clone(),
                            path: key.clone(),
                            size: f.size,
                            mtime_ns: f.mtime_ns,
                        });
                        rec.media = d.media;
                        rec.aliases = vec![path_alias(&key), content_alias(&d.sha, &rec.id)];
                        Command::Create {
                            record: rec,
                            blob: None,
                            unique_name: false,
                        }
                    }
                    None => {
                        tally.errors += 1;
                        continue;
                    }
                },
            };
            batch.push(cmd);
            if batch.len() >= BATCH {
                self.commit(&mut batch, &mut pending_thumbs, &mut tally)?;
                tracing::info!(
                    root = %root.text,
                    new = tally.new,
                    changed = tally.changed,
                    unchanged = tally.unchanged,
                    "scan progress"
                );
            }
        }
        // What is left in the index is gone from disk.
        for (_, rec) in index {
            tally.removed += 1;
            if let Some(sha) = rec.sha256 {
                old_contents.push(sha);
            }
            batch.push(Command::Delete { id: rec.id });
            if batch.len() >= BATCH {
                self.commit(&mut batch, &mut pending_thumbs, &mut tally)?;
            }
        }
        self.commit(&mut batch, &mut pending_thumbs, &mut tally)?;
        counters.scan_removed.fetch_add(tally.removed, Relaxed);
        counters.scan_errors.fetch_add(tally.errors, Relaxed);
        let total = (tally.new + tally.changed + tally.unchanged) as i64;
        self.indexed.insert(root.text.clone(), total);
        counters
            .scan_indexed
            .store(self.indexed.values().sum(), Relaxed);
        self.forget_thumbnails(old_contents);
        self.make_thumbnails(pending_thumbs);
        Ok(tally)
    }

    /// The objects indexed under `root` now, by absolute path.
    fn index_of(&self, root: &Root) -> Result<HashMap<Vec<u8>, ObjectRecord>, StoreError> {
        let mut out = HashMap::new();
        let mut cursor = None;
        loop {
            let q = ListQuery {
                namespace: Some(root.namespace.clone()),
                limit: 1000,
                cursor,
                ..ListQuery::default()
            };
            let page = self.core.store.list_objects_filtered(
                &q,
                DEFAULT_MAX_SCAN,
                |r| matches!(&r.source, Source::External(f) if f.root == root.text),
            )?;
            for rec in page.objects {
                if let Source::External(f) = &rec.source {
                    out.insert(f.path.clone(), rec);
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(out)
    }

    /// Every media file under `root` (see the module docs for what is skipped).
    fn walk(&self, root: &Root, tally: &mut Tally) -> Vec<Found> {
        let mut out = Vec::new();
        let mut seen_dirs: HashSet<(u64, u64)> = HashSet::new();
        if let Ok(m) = std::fs::metadata(&root.path) {
            seen_dirs.insert((m.dev(), m.ino()));
        }
        let mut stack = vec![root.path.clone()];
        while let Some(dir) = stack.pop() {
            if self.stopped() {
                break;
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot read a directory; skipped");
                    tally.errors += 1;
                    continue;
                }
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let path = dir.join(&name);
                let Some(name) = name.to_str() else {
                    tracing::warn!(path = %path.display(), "path is not UTF-8; skipped (object names are UTF-8)");
                    tally.errors += 1;
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                let Ok(ft) = entry.file_type() else { continue };
                let meta = if ft.is_symlink() {
                    match std::fs::canonicalize(&path) {
                        Ok(target) if target.starts_with(&root.path) => {
                            match std::fs::metadata(&path) {
                                Ok(m) => m,
                                Err(_) => continue,
                            }
                        }
                        Ok(target) => {
                            tracing::debug!(path = %path.display(), target = %target.display(), "symlink leaves the scanned directory; skipped");
                            continue;
                        }
                        Err(_) => continue, // dangling
                    }
                } else if ft.is_dir() || ft.is_file() {
                    match entry.metadata() {
                        Ok(m) => m,
                        Err(_) => continue,
                    }
                } else {
                    tracing::debug!(path = %path.display(), "not a regular file; skipped");
                    continue;
                };
                if meta.is_dir() {
                    if path.starts_with(&self.data) || !seen_dirs.insert((meta.dev(), meta.ino())) {
                        continue;
                    }
                    stack.push(path);
                } else if meta.is_file() {
                    let ext = Path::new(name)
                        .extension()
                        .and_then(|e| e.to_str())
                        .map(str::to_ascii_lowercase);
                    if !ext.is_some_and(|e| self.exts.contains(&e)) {
                        continue;
                    }
                    let rel = match path.strip_prefix(&root.path).ok().and_then(Path::to_str) {
                        Some(r) => r.to_string(),
                        None => continue,
                    };
                    if let Err(e) = naming::name(&rel) {
                        tracing::warn!(path = %path.display(), error = %e, "file name cannot be an object name; skipped");
                        tally.errors += 1;
                        continue;
                    }
                    out.push(Found {
                        path,
                        rel,
                        size: meta.len(),
                        mtime_ns: mtime_ns(&meta),
                    });
                }
            }
        }
        // Name order: progress follows the tree, and runs are reproducible.
        out.sort_by(|a, b| a.rel.cmp(&b.rel));
        out
    }

    /// Hash, type and probe a file. `None` (with a warning) when it cannot be read or
    /// changed while it was read.
    fn describe(&self, f: &Found) -> Option<Described> {
        let res = (|| -> std::io::Result<Option<Described>> {
            let mut file = std::fs::File::open(&f.path)?;
            let before = file.metadata()?;
            if before.len() != f.size || mtime_ns(&before) != f.mtime_ns {
                return Ok(None);
            }
            let mut hasher = Sha256::new();
            let mut head = Vec::with_capacity(sniff::SNIFF_LEN);
            let mut buf = vec![0u8; HASH_CHUNK];
            let mut total = 0u64;
            loop {
                if self.stopped() {
                    return Ok(None);
                }
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                if head.len() < sniff::SNIFF_LEN {
                    let k = (sniff::SNIFF_LEN - head.len()).min(n);
                    head.extend_from_slice(&buf[..k]);
                }
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            let after = file.metadata()?;
            if total != f.size || after.len() != f.size || mtime_ns(&after) != f.mtime_ns {
                return Ok(None);
            }
            let mime = sniff::detect(&head, &f.rel, None).into_owned();
            let media = is_probed(&mime).then(|| {
                metrics::get().media.probes.fetch_add(1, Relaxed);
                media_info(&media::probe_path(&f.path))
            });
            Ok(Some(Described {
                sha: hasher.finalize().into(),
                mime,
                media,
            }))
        })();
        match res {
            Ok(Some(d)) => Some(d),
            Ok(None) => {
                tracing::debug!(path = %f.path.display(), "file changed while it was read; left for the next scan");
                None
            }
            Err(e) => {
                tracing::warn!(path = %f.path.display(), error = %e, "cannot read a file; skipped");
                None
            }
        }
    }

    /// Commit `batch` (one group commit) and note the images to thumbnail.
    fn commit(
        &self,
        batch: &mut Vec<Command>,
        pending: &mut Vec<Pending>,
        tally: &mut Tally,
    ) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let counters = &metrics::get().media;
        let waits: Vec<_> = batch
            .drain(..)
            .map(|cmd| self.core.store.writer().submit(cmd))
            .collect();
        for wait in waits {
            match block_on(wait, &self.stop) {
                None => return Ok(()), // stopping; the writer still commits the batch
                Some(Ok(Reply::Object(rec))) => {
                    counters.scan_files.fetch_add(1, Relaxed);
                    let eager = self.core.thumbs.settings().eager;
                    if let (true, Source::External(f), Some(_)) = (
                        eager && media::can_thumbnail(&rec.mime_type),
                        &rec.source,
                        rec.sha256,
                    ) {
                        let input = Input::External {
                            path: PathBuf::from(std::ffi::OsStr::from_bytes(&f.path)),
                            size: f.size,
                            mtime_ns: f.mtime_ns,
                        };
                        pending.push(Pending { rec, input });
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(StoreError::Full)) => return Err(StoreError::Full),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "a scanned file could not be indexed");
                    tally.errors += 1;
                }
            }
        }
        Ok(())
    }

    /// Thumbnails of contents that no object of this scan holds any more and no managed
    /// blob has: removed (a content shared with an upload keeps its previews).
    fn forget_thumbnails(&self, shas: Vec<[u8; 32]>) {
        let dir = self.core.store.data_dir().join("thumbs");
        for sha in shas {
            let managed = self.core.store.get_blob(&sha).ok().flatten().is_some();
            let scanned = self
                .core
                .store
                .ids_by_alias_prefix(&content_alias_prefix(&sha), 1)
                .map(|ids| !ids.is_empty())
                .unwrap_or(true);
            if !managed && !scanned {
                thumbs::remove_thumbnails(&dir, &sha);
            }
        }
    }

    /// The default thumbnail of each new or changed image, at most
    /// `--thumbnail-concurrency` at once (background priority).
    fn make_thumbnails(&self, pending: Vec<Pending>) {
        let engine = &self.core.thumbs;
        let window = engine.settings().concurrency.max(1);
        let mut waiting: VecDeque<(ObjectRecord, _)> = VecDeque::new();
        for p in pending {
            if self.stopped() {
                return;
            }
            let Some(sha) = p.rec.sha256 else { continue };
            if engine.path(&sha, DEFAULT_SIZE, DEFAULT_FORMAT).exists() {
                continue;
            }
            match engine.submit(
                sha,
                DEFAULT_SIZE,
                DEFAULT_FORMAT,
                p.input,
                Priority::Background,
            ) {
                Ok(Some(rx)) => waiting.push_back((p.rec, rx)),
                Ok(None) | Err(_) => continue,
            }
            while waiting.len() >= window {
                let Some((rec, rx)) = waiting.pop_front() else {
                    break;
                };
                self.after_thumbnail(&rec, block_on(rx, &self.stop));
            }
        }
        while let Some((rec, rx)) = waiting.pop_front() {
            self.after_thumbnail(&rec, block_on(rx, &self.stop));
        }
    }

    fn after_thumbnail<T>(
        &self,
        rec: &ObjectRecord,
        outcome: Option<Result<Result<T, thumbs::Failure>, futures_channel::oneshot::Canceled>>,
    ) {
        if let Some(Ok(Err(thumbs::Failure::Refused(why)))) = outcome {
            if let Some(cmd) = thumbs::refusal_command(rec, &why) {
                let _ = block_on(self.core.store.writer().submit(cmd), &self.stop);
            }
        }
    }
}

/// What hashing and probing a file found.
struct Described {
    sha: [u8; 32],
    mime: String,
    media: Option<crate::store::MediaInfo>,
}

/// Whether a record still describes the file found (same size and mtime).
fn same_file(rec: &ObjectRecord, f: &Found) -> bool {
    matches!(&rec.source, Source::External(e) if e.size == f.size && e.mtime_ns == f.mtime_ns)
        && rec.state == State::Stored
}

/// Drive a future (a writer reply, a thumbnail outcome: both complete from another
/// thread) to completion on this thread; `None` when `stop` was set meanwhile.
fn block_on<F: Future>(f: F, stop: &AtomicBool) -> Option<F::Output> {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Some(v);
        }
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_names() {
        let a = path_alias(b"/srv/photos/a.jpg");
        assert!(a.starts_with("ext:") && a.len() == 68, "{a}");
        assert!(crate::store::keys::validate_alias(&a).is_ok());
        let id = uuid::Uuid::now_v7();
        let c = content_alias(&[0xab; 32], &id);
        assert!(c.starts_with(&content_alias_prefix(&[0xab; 32])));
        assert!(crate::store::keys::validate_alias(&c).is_ok());
        assert_eq!(
            parse_extensions(" PNG,.jpg,,webp "),
            vec!["png", "jpg", "webp"]
        );
        let first = namespace_for(Path::new("/srv/My Photos"), &[]);
        assert_eq!(first, "scan-My_Photos");
        assert!(naming::namespace(&first).is_ok());
        let earlier = [Root {
            path: "/a/My Photos".into(),
            text: "/a/My Photos".into(),
            namespace: first.clone(),
        }];
        let second = namespace_for(Path::new("/b/My Photos"), &earlier);
        assert!(second.starts_with("scan-My_Photos-") && second.len() == first.len() + 9);
        assert!(naming::namespace(&second).is_ok());
    }

    #[test]
    fn block_on_completes_and_stops() {
        let stop = AtomicBool::new(false);
        let (tx, rx) = futures_channel::oneshot::channel::<u32>();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let _ = tx.send(5);
        });
        assert_eq!(block_on(rx, &stop), Some(Ok(5)));
        stop.store(true, Ordering::Relaxed);
        let (_tx, rx) = futures_channel::oneshot::channel::<u32>();
        assert_eq!(block_on(rx, &stop), None);
    }
}
