//! Per-worker cache of blob contents and open blob files, so a hot blob costs no
//! `open` per request. Blobs are immutable and named by their hash, so a cached entry
//! can never be stale in content unless something outside ringbox touches the file.
//!
//! Every cached entry keeps its file open, and every use starts with an `fstat` of
//! that descriptor (answered from the in-memory inode, never from the disk): a file
//! that was deleted behind our back (no links left, or replaced by a rename) is
//! noticed on the very next request, and one whose size or mtime changed is dropped
//! and opened (and verified) again. This is what makes a vanished blob a 410 (managed
//! store) or a vanished scanned file a 404 at once, even when it was hot.
//!
//! Every managed blob is verified against its SHA-256 when a worker first opens it (up
//! to [`VERIFY_LIMIT`] bytes; blobs above [`SMALL_BLOB`] are read and hashed on the
//! blocking pool, so the worker keeps serving), and the (size, mtime) it was verified at is
//! remembered, so a re-open does not hash again. A corrupted blob is therefore never
//! served under its strong ETag; blobs larger than the limit get a size check at open
//! and rely on `ringbox check` for their content. External (scanned) files were hashed
//! by the scan; at open they must still have the size and mtime the scan recorded.
//!
//! - Blobs up to [`SMALL_BLOB`] bytes (16 KiB) are also kept whole in memory; responses
//!   send them with the head in one `writev`.
//! - Larger blobs are sent from the open descriptor with `sendfile`.
//! - When the writer has changed object data (its data generation moved), the
//!   worker's sweeper closes the entries whose file has no link left, so the space of
//!   deleted blobs is freed within about a second.
//!
//! Bounded by entry count and bytes; eviction is FIFO (cheap, and hot blobs come
//! straight back).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::pool::BlockingPool;
use crate::sys::{self, FileState};
use crate::util::hex;

/// Blobs up to this size are cached in memory and sent with the response head in one
/// write. Above it, `sendfile` from the page cache beats the copy: measured with the
/// load harness, a 64 KiB GET copied from memory ran at 0.58x nginx.
pub const SMALL_BLOB: u64 = 16 * 1024;
/// Memory budget for small blobs per worker.
const MAX_MEMORY: usize = 64 << 20;
/// Most entries (each holds a descriptor) per worker.
const MAX_ENTRIES: usize = 4096;
/// Blobs up to this size are hashed when a worker first opens them.
pub const VERIFY_LIMIT: u64 = 64 << 20;
/// Read size while verifying.
const VERIFY_CHUNK: usize = 1 << 20;

/// Where the bytes of a blob come from.
#[derive(Debug, Clone)]
pub enum BlobSource {
    /// Small hot blobs, cached whole in the worker's memory.
    Memory(Rc<[u8]>),
    /// Larger blobs: an open file descriptor from the worker's cache.
    File(Rc<monoio::fs::File>),
}

/// Where a blob's file is.
#[derive(Debug, Clone, Copy)]
pub enum BlobLocation<'a> {
    /// A managed blob at this path (named by its hash; verified by hashing).
    Managed(&'a Path),
    /// A scanned file, which must still have the size and mtime the scan recorded.
    External { path: &'a Path, mtime_ns: i64 },
}

impl BlobLocation<'_> {
    fn path(&self) -> &Path {
        match self {
            BlobLocation::Managed(p) | BlobLocation::External { path: p, .. } => p,
        }
    }
}

/// Why a blob could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The file is gone.
    Lost,
    /// A scanned file changed since the scan (size or mtime): its recorded hash no
    /// longer names its bytes.
    Changed,
    /// The file exists but its size or hash is not what the record says.
    Corrupt(String),
    Io(std::io::Error),
}

#[derive(Debug)]
struct Entry {
    source: BlobSource,
    /// The open file (for `fstat` before each use).
    file: Rc<monoio::fs::File>,
    /// What `fstat` said when it was opened.
    state: FileState,
}

/// The cache (one per worker, behind a `RefCell`; never borrowed across `.await`).
#[derive(Debug, Default)]
pub struct BlobCache {
    map: HashMap<[u8; 32], Entry>,
    order: VecDeque<[u8; 32]>,
    memory: usize,
    /// Managed blobs whose content was hashed, with the (size, mtime) seen then.
    verified: HashMap<[u8; 32], (u64, i64)>,
}

/// How a cached entry compares with its file now.
enum Check {
    Fresh(BlobSource),
    Gone,
    Stale,
}

impl BlobCache {
    fn check(&mut self, sha: &[u8; 32]) -> Option<Check> {
        let e = self.map.get(sha)?;
        Some(match sys::fstat(&*e.file) {
            Ok(st) if st.nlink == 0 => Check::Gone,
            Ok(st) if st.size == e.state.size && st.mtime_ns == e.state.mtime_ns => {
                Check::Fresh(e.source.clone())
            }
            _ => Check::Stale,
        })
    }

    /// Close the entries whose file was deleted (no link left), so their disk space is
    /// freed; the others stay cached.
    pub fn drop_deleted(&mut self) {
        let gone: Vec<[u8; 32]> = self
            .map
            .iter()
            .filter(|(_, e)| sys::fstat(&*e.file).map_or(true, |st| st.nlink == 0))
            .map(|(k, _)| *k)
            .collect();
        for k in &gone {
            self.remove(k);
        }
        if !gone.is_empty() {
            self.order.retain(|k| self.map.contains_key(k));
        }
    }

    fn remove(&mut self, sha: &[u8; 32]) {
        if let Some(e) = self.map.remove(sha) {
            if let BlobSource::Memory(m) = e.source {
                self.memory -= m.len();
            }
        }
    }

    fn insert(&mut self, sha: [u8; 32], entry: Entry) {
        let size = match &entry.source {
            BlobSource::Memory(m) => m.len(),
            BlobSource::File(_) => 0,
        };
        while (self.map.len() >= MAX_ENTRIES || self.memory + size > MAX_MEMORY)
            && !self.order.is_empty()
        {
            if let Some(old) = self.order.pop_front() {
                self.remove(&old);
            }
        }
        self.remove(&sha);
        if self.map.insert(sha, entry).is_none() {
            self.order.push_back(sha);
        }
        self.memory += size;
    }

    /// Get a readable source for blob `sha` whose record says `size` bytes.
    pub async fn open(
        cache: &std::cell::RefCell<BlobCache>,
        pool: &BlockingPool,
        location: BlobLocation<'_>,
        sha: &[u8; 32],
        size: u64,
    ) -> Result<BlobSource, OpenError> {
        let check = cache.borrow_mut().check(sha);
        match check {
            Some(Check::Fresh(source)) => return Ok(source),
            Some(Check::Gone) => {
                cache.borrow_mut().remove(sha);
                // A managed blob may have been restored at its path (the same bytes
                // uploaded again): look before calling it lost.
            }
            Some(Check::Stale) => cache.borrow_mut().remove(sha),
            None => {}
        }
        let path = location.path();
        let file = match monoio::fs::File::open(path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(OpenError::Lost),
            Err(e) => return Err(OpenError::Io(e)),
        };
        let state = sys::fstat(&file).map_err(OpenError::Io)?;
        let name = hex::encode(sha);
        if let BlobLocation::External { mtime_ns, .. } = location {
            if state.size != size || state.mtime_ns != mtime_ns {
                let _ = file.close().await;
                return Err(OpenError::Changed);
            }
        } else if state.size != size {
            let _ = file.close().await;
            return Err(OpenError::Corrupt(format!(
                "blob {name} has {} bytes on disk, the record says {size}",
                state.size
            )));
        }
        let managed = matches!(location, BlobLocation::Managed(_));
        let file = Rc::new(file);
        let source = if size <= SMALL_BLOB {
            let buf = Vec::with_capacity(size as usize);
            let (res, buf) = file.read_exact_at(buf, 0).await;
            res.map_err(OpenError::Io)?;
            if managed && Sha256::digest(&buf).as_slice() != sha {
                return Err(OpenError::Corrupt(format!(
                    "blob {name} does not match its SHA-256"
                )));
            }
            BlobSource::Memory(Rc::from(buf.into_boxed_slice()))
        } else {
            let known = cache.borrow().verified.get(sha).copied();
            if managed && size <= VERIFY_LIMIT && known != Some((size, state.mtime_ns)) {
                verify(pool, path, size, sha, &name).await?;
                let mut c = cache.borrow_mut();
                if c.verified.len() >= MAX_ENTRIES {
                    c.verified.clear();
                }
                c.verified.insert(*sha, (size, state.mtime_ns));
            }
            BlobSource::File(file.clone())
        };
        cache.borrow_mut().insert(
            *sha,
            Entry {
                source: source.clone(),
                file,
                state,
            },
        );
        Ok(source)
    }
}

/// Hash a blob file on the blocking pool and compare with its name (reading and
/// hashing up to 64 MiB would hold a worker for tens of milliseconds).
async fn verify(
    pool: &BlockingPool,
    path: &Path,
    size: u64,
    sha: &[u8; 32],
    name: &str,
) -> Result<(), OpenError> {
    let path = path.to_path_buf();
    let hashed = pool
        .run(move || -> std::io::Result<Option<[u8; 32]>> {
            use std::io::Read;
            let mut f = std::fs::File::open(&path)?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; VERIFY_CHUNK];
            let mut total = 0u64;
            while total < size {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    return Ok(None);
                }
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            Ok(Some(hasher.finalize().into()))
        })
        .await
        .map_err(|e| OpenError::Io(std::io::Error::other(e.message)))?
        .map_err(OpenError::Io)?;
    match hashed {
        None => Err(OpenError::Corrupt(format!(
            "blob {name} is shorter than its record"
        ))),
        Some(h) if &h != sha => Err(OpenError::Corrupt(format!(
            "blob {name} does not match its SHA-256"
        ))),
        Some(_) => Ok(()),
    }
}
