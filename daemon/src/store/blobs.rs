//! The on-disk layout of a data directory and the file operations on it.
//!
//! ```text
//! <data>/meta/                 LMDB environment
//! <data>/blobs/ab/<sha256hex>  managed blobs, immutable, named by content
//! <data>/tmp/                  uploads in flight, emptied at open
//! <data>/admin.token           mode 0600, created at first open
//! ```
//!
//! The 256 `blobs/ab` directories (ab = the first two hex digits of the hash) are created
//! and fsynced at first open, so linking a blob never has to create a directory and only
//! its one parent directory needs an fsync. One level of fan-out keeps each directory at
//! about 4k entries per million blobs, which ext4 and xfs handle without slowing down.
//!
//! A blob's file name is its lowercase hex SHA-256 (`crate::util::hex`); anything else
//! found under `blobs/` was not put there by ringbox: `gc` leaves it alone and `check`
//! reports it. Files indexed in place by a directory scan (`Source::External`) are
//! never under `blobs/` and never touched by this module.
//!
//! What this module does not do: decide when a blob is linked or unlinked. Only the
//! writer thread changes the blob namespace (see `writer/`), so that garbage
//! collection can never race an upload that links the same blob.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::{io_context, Durability, Sha256, StoreError};
use crate::util::hex;

/// The paths of one data directory.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn meta_dir(&self) -> PathBuf {
        self.root.join("meta")
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// `<data>/blobs/ab` for the hashes whose first byte is `first`.
    pub fn blob_dir(&self, first: u8) -> PathBuf {
        self.blobs_dir().join(hex::encode(&[first]))
    }

    /// `<data>/blobs/ab/<hex>`.
    pub fn blob_path(&self, sha: &Sha256) -> PathBuf {
        self.blob_dir(sha[0]).join(hex::encode(sha))
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh, unique path under `tmp/` (not created).
    pub fn tmp_path(&self) -> PathBuf {
        self.tmp_dir()
            .join(uuid::Uuid::now_v7().simple().to_string())
    }

    pub fn admin_token_path(&self) -> PathBuf {
        self.root.join("admin.token")
    }
}

/// The hash a file under `blobs/` is named after: exactly 64 lowercase hex digits, or
/// `None` (then the file is not a managed blob).
pub fn parse_blob_file_name(name: &std::ffi::OsStr) -> Option<Sha256> {
    let s = name.to_str()?;
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode_sha256(s)
}

/// Creates the directory tree (data dir, `meta/`, `blobs/00..ff`, `tmp/`), fsyncing the
/// parent of every directory it creates (unless `Durability::None`), so the tree itself
/// survives a power loss before the first upload does.
pub fn create_layout(layout: &Layout, durability: Durability) -> Result<(), StoreError> {
    let root = layout.root();
    if !root.is_dir() {
        fs::create_dir_all(root).map_err(|e| {
            io_context(
                e,
                format!("cannot create data directory {}", root.display()),
            )
        })?;
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir_if(durability, parent)?;
        }
    }
    let mut root_changed = false;
    for dir in [layout.meta_dir(), layout.blobs_dir(), layout.tmp_dir()] {
        root_changed |= create_dir(&dir)?;
    }
    let mut blobs_changed = false;
    for b in 0..=255u8 {
        blobs_changed |= create_dir(&layout.blob_dir(b))?;
    }
    if blobs_changed {
        sync_dir_if(durability, &layout.blobs_dir())?;
    }
    if root_changed {
        sync_dir_if(durability, root)?;
    }
    Ok(())
}

/// Creates `dir` unless it is already a directory; `true` when it was created.
fn create_dir(dir: &Path) -> Result<bool, StoreError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(io_context(e, format!("cannot create {}", dir.display()))),
    }
}

fn sync_dir_if(durability: Durability, dir: &Path) -> Result<(), StoreError> {
    if durability == Durability::Fsync {
        fsync_dir(dir).map_err(|e| io_context(e, format!("cannot fsync {}", dir.display())))?;
    }
    Ok(())
}

/// fsync a directory, making the creation, rename or removal of its entries durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Removes everything under `tmp/`: uploads that were in flight when the previous
/// process stopped. Nothing refers to them (a record is only committed after its blob
/// was renamed out of `tmp/`), so this cannot lose an acknowledged upload. Returns how
/// many entries were removed.
pub fn empty_tmp(layout: &Layout) -> Result<usize, StoreError> {
    let dir = layout.tmp_dir();
    let entries =
        fs::read_dir(&dir).map_err(|e| io_context(e, format!("cannot read {}", dir.display())))?;
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| io_context(e, format!("cannot read {}", dir.display())))?;
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let res = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match res {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_context(e, format!("cannot remove {}", path.display()))),
        }
    }
    if removed > 0 {
        tracing::info!(removed, dir = %dir.display(), "removed interrupted uploads from tmp/");
    }
    Ok(removed)
}

/// Removes a file, treating "already gone" as success.
pub fn remove_file_quiet(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// SHA-256 and length of a file's content, read in 1 MiB chunks.
pub fn hash_file(path: &Path) -> io::Result<(Sha256, u64)> {
    let mut f = fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher.finalize().into(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_file_names() {
        let mut sha = [0u8; 32];
        for (i, b) in sha.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37);
        }
        let name = hex::encode(&sha);
        assert_eq!(parse_blob_file_name(name.as_ref()), Some(sha));
        assert_eq!(parse_blob_file_name(name.to_uppercase().as_ref()), None);
        assert_eq!(parse_blob_file_name(name[1..].as_ref()), None);
    }

    #[test]
    fn layout_paths() {
        let l = Layout::new("/d");
        let mut sha = [0u8; 32];
        sha[0] = 0xab;
        let p = l.blob_path(&sha);
        assert!(p.starts_with("/d/blobs/ab"));
        assert_eq!(p.file_name().unwrap().len(), 64);
        assert!(l.tmp_path().starts_with("/d/tmp"));
        assert_ne!(l.tmp_path(), l.tmp_path());
    }

    #[test]
    fn create_layout_and_empty_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(dir.path().join("data"));
        create_layout(&l, Durability::Fsync).unwrap();
        create_layout(&l, Durability::Fsync).unwrap();
        assert!(l.blob_dir(0).is_dir() && l.blob_dir(255).is_dir());
        fs::write(l.tmp_dir().join("a"), b"x").unwrap();
        fs::create_dir(l.tmp_dir().join("d")).unwrap();
        fs::write(l.tmp_dir().join("d/b"), b"x").unwrap();
        assert_eq!(empty_tmp(&l).unwrap(), 2);
        assert_eq!(fs::read_dir(l.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn hash_file_matches() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"hello").unwrap();
        let (sha, len) = hash_file(&p).unwrap();
        assert_eq!(len, 5);
        assert_eq!(sha, <[u8; 32]>::from(sha2::Sha256::digest(b"hello")));
    }
}
