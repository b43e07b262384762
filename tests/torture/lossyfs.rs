//! `lossyfs`: a FUSE file system for power-loss tests. It behaves like a local disk
//! whose page cache is lost when the power goes: every write is kept in memory until
//! it is made durable, and a simulated power loss throws away everything that was not.
//!
//! # The model
//!
//! The file system has two states: the *volatile* one, which every process using the
//! mount sees (the page cache), and the *durable* one (the disk). Durable file contents
//! live in a backing directory (one file per inode, `<backing>/<ino>`); directory
//! tables, attributes and the volatile state live in memory.
//!
//! * **File data.** `write`, `truncate` (setattr size) and writes back from a shared
//!   writable mapping change only the volatile state: dirty 4 KiB pages over the durable
//!   content, plus a volatile size. `fsync` and `fdatasync` of a file (and a write
//!   through an `O_SYNC`/`O_DSYNC` descriptor, which the kernel turns into one) copy its
//!   dirty pages and size to the durable state. Nothing else does: no timer, no memory
//!   pressure, no `close`. A file that was never synced is durably empty.
//! * **Directory entries.** `create`, `mkdir`, `link`, `unlink`, `rmdir` and `rename`
//!   change only the volatile directory tables. `fsync` of a directory makes its whole
//!   current table durable (every create, unlink and rename into or out of it), as POSIX
//!   requires. Renames are atomic, as on every journaling file system: when a directory
//!   fsync makes an inode's new name durable, the name it was renamed from (in another
//!   directory) stops being durable too, and when it makes the removal of a name durable
//!   while the inode lives on under a new name elsewhere, that name becomes durable with
//!   it; so a power loss never leaves an inode under both names or under none. An entry
//!   made durable points at whatever the inode's durable state is: a file whose name was
//!   synced but not its data comes back empty (or with its older synced content).
//! * [`DirModel::FileFsyncPersistsNames`] adds what ext4, xfs and btrfs do on top of
//!   POSIX: `fsync` of a file also makes durable the names it currently has (and the
//!   names of any directory on the way that is itself not yet durably linked). The
//!   default, [`DirModel::Strict`], does not.
//! * **Metadata** other than size and names (mode, owner, times) is applied to both
//!   states at once: losing a `chmod` is not what these tests are about.
//! * **Reads** (`read`, and `mmap`, which the kernel serves through the same page cache:
//!   files are opened without `direct_io` and with `keep_cache`) see the volatile state.
//!   The kernel runs the mount write-through (no writeback cache), so every `write(2)`
//!   reaches this file system before it returns, and local `flock`/`fcntl` locks are
//!   handled by the kernel (no lock requests reach us).
//!
//! # A power loss
//!
//! [`LossyFs::cut`] (or [`LossyFs::arm_cut_after`], which cuts by itself right after
//! the n-th mutating request, for cut points that do not depend on timing) freezes the
//! disk: from that instant no request changes anything. Requests that arrive after it
//! are *held* (not answered), so the processes using the mount block exactly where a
//! machine losing power would stop. The test then sends SIGKILL to those processes and
//! calls [`LossyFs::release_held`]: the held requests fail with EIO, but no process
//! sees that, since every thread of a killed process dies on its way back to user space.
//! (Requests held longer than ten seconds are failed anyway, so a test that panicked
//! between the cut and the release cannot hang its daemon's `Drop`.)
//! [`LossyFs::reboot`] then unmounts, drops every inode not durably reachable from the
//! root, resets every file and directory to its durable state, and mounts again; the
//! new mount also has a fresh kernel page cache.
//!
//! # Limits, and why they do not matter here
//!
//! No symlinks, special files, extended attributes, `fallocate` or `RENAME_EXCHANGE`
//! (ENOSYS/EPERM/EINVAL): ringbox, LMDB and tar do not need them. Each request is
//! atomic with respect to a cut: an `fsync` in progress is either wholly durable or
//! not at all, and a synced page is all there while an unsynced one is all gone (a
//! real disk can also keep part of an interrupted fsync, or tear a sector; LMDB's meta
//! pages and ringbox's write-then-rename assume sector atomicity at most). No
//! permission checks (the tests run as root). One big lock serialises all requests:
//! this is a correctness tool, not a fast file system (a few thousand requests per
//! second are plenty for the tests).
//!
//! # What it needs
//!
//! `/dev/fuse` and the right to mount: root or `CAP_SYS_ADMIN` (fuser then calls
//! mount(2) itself), or else a setuid `fusermount3`/`fusermount`. No libfuse and no
//! headers: the `fuser` crate is built without default features. [`LossyFs::mount`]
//! returns the reason when mounting is refused, so callers can skip.
//!
//! Every mount is named `ringbox-lossyfs` (the source in `/proc/self/mountinfo`). Drop
//! unmounts (lazily and aborting the connection if something still holds it); a mount
//! left behind by a test process that was itself killed is dead (ENOTCONN) and is
//! detached by the next [`LossyFs::mount`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use fuser::{
    AccessFlags, BackgroundSession, BsdFileFlags, Config, Errno, FileAttr, FileHandle, FileType,
    Filesystem, FopenFlags, Generation, INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// Granularity of dirty data (what one unsynced write can lose at least).
const PAGE: u64 = 4096;
/// How long the kernel may cache entries and attributes. Only the kernel changes this
/// file system (everything goes through the mount), so its caches stay right; and every
/// power loss remounts, which drops them.
const TTL: Duration = Duration::from_secs(10);
const ROOT: u64 = 1;
/// A cut holds requests at most this long before failing them (see the module docs).
const HOLD_LIMIT: Duration = Duration::from_secs(10);
/// The mount's source name, by which stale mounts are recognised.
pub const FSNAME: &str = "ringbox-lossyfs";

/// When directory entries become durable (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirModel {
    /// POSIX: only `fsync` of the directory.
    Strict,
    /// Also `fsync` of a file, for the names it has (ext4, xfs, btrfs).
    FileFsyncPersistsNames,
}

/// What the last power loss threw away.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loss {
    /// Bytes of dirty pages dropped.
    pub dirty_bytes: u64,
    /// Files whose content (pages or size) went back to an older state.
    pub files_reverted: u64,
    /// Directory entries whose creation, removal or change was undone.
    pub entries_reverted: u64,
    /// Inodes that no durable entry reached, deleted.
    pub inodes_dropped: u64,
    /// Requests that arrived after the cut (failed with EIO to killed processes).
    pub held_requests: u64,
}

/// Counters since the file system was created (they survive reboots).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests that changed the volatile state (writes, creates, renames, syncs...).
    pub mutations: u64,
    pub file_syncs: u64,
    pub dir_syncs: u64,
    pub power_losses: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Power {
    On,
    /// Since this instant nothing changes; requests are held.
    Cut(Instant),
    /// After a cut, once the users were killed: every request fails at once.
    Dead,
}

#[derive(Debug)]
struct Meta {
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
}

impl Meta {
    fn new(perm: u16, uid: u32, gid: u32) -> Meta {
        let now = SystemTime::now();
        Meta {
            perm,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }
}

#[derive(Debug, Default)]
struct FileData {
    /// Volatile size.
    size: u64,
    /// Bytes of the durable content still visible under the dirty pages (a truncate
    /// below the durable size hides the rest until the next sync or power loss).
    base_len: u64,
    /// Size of the durable content (= length of the backing file, when it exists).
    durable_len: u64,
    /// Page index -> PAGE bytes (bytes past `size` are zero).
    dirty: BTreeMap<u64, Box<[u8]>>,
    /// The open backing file, if any.
    backing: Option<File>,
}

#[derive(Debug, Default)]
struct DirData {
    entries: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
    /// Volatile parent (for `..`).
    parent: u64,
}

#[derive(Debug)]
enum Kind {
    File(FileData),
    Dir(DirData),
}

#[derive(Debug)]
struct Node {
    meta: Meta,
    kind: Kind,
    /// (parent, name) of every volatile entry naming this inode.
    links: BTreeSet<(u64, OsString)>,
    /// (parent, name) of every durable entry naming this inode.
    durable_links: BTreeSet<(u64, OsString)>,
    /// Open handles (including those kept by memory mappings).
    open: u32,
}

type Held = Box<dyn FnOnce() + Send>;

struct Model {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    next_fh: u64,
    /// Directory handle -> snapshot of its entries taken at opendir/rewind.
    dir_handles: HashMap<u64, Vec<(u64, FileType, OsString)>>,
    backing: PathBuf,
    dir_model: DirModel,
    power: Power,
    held: Vec<Held>,
    /// Cut right after this many mutations (absolute count).
    cut_at: Option<u64>,
    counters: Counters,
    /// Fault injection: directory fsyncs succeed but persist nothing.
    dir_fsync_is_noop: bool,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("nodes", &self.nodes.len())
            .field("power", &self.power)
            .field("held", &self.held.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

type Res<T> = Result<T, Errno>;

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

impl Model {
    fn new(backing: PathBuf, dir_model: DirModel) -> Model {
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let root = Node {
            meta: Meta::new(0o755, uid, gid),
            kind: Kind::Dir(DirData {
                parent: ROOT,
                ..DirData::default()
            }),
            links: BTreeSet::new(),
            durable_links: BTreeSet::new(),
            open: 0,
        };
        Model {
            nodes: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
            next_fh: 1,
            dir_handles: HashMap::new(),
            backing,
            dir_model,
            power: Power::On,
            held: Vec::new(),
            cut_at: None,
            counters: Counters::default(),
            dir_fsync_is_noop: false,
        }
    }

    /// Counts a mutation that was applied, and cuts the power if armed for it.
    fn mutated(&mut self) {
        self.counters.mutations += 1;
        if self.cut_at.is_some_and(|n| self.counters.mutations >= n) && self.power == Power::On {
            self.cut_at = None;
            self.power = Power::Cut(Instant::now());
        }
    }

    fn node(&self, ino: u64) -> Res<&Node> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Res<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn dir(&self, ino: u64) -> Res<&DirData> {
        match &self.node(ino)?.kind {
            Kind::Dir(d) => Ok(d),
            Kind::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Res<&mut DirData> {
        match &mut self.node_mut(ino)?.kind {
            Kind::Dir(d) => Ok(d),
            Kind::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn attr(&self, ino: u64) -> Res<FileAttr> {
        let n = self.node(ino)?;
        let (kind, size, nlink) = match &n.kind {
            Kind::File(f) => (FileType::RegularFile, f.size, n.links.len() as u32),
            Kind::Dir(_) => (FileType::Directory, 4096, 2),
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: n.meta.atime,
            mtime: n.meta.mtime,
            ctime: n.meta.ctime,
            crtime: n.meta.ctime,
            kind,
            perm: n.meta.perm,
            nlink,
            uid: n.meta.uid,
            gid: n.meta.gid,
            rdev: 0,
            blksize: PAGE as u32,
            flags: 0,
        })
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> Res<u64> {
        self.dir(parent)?
            .entries
            .get(name)
            .copied()
            .ok_or(Errno::ENOENT)
    }

    fn touch_dir(&mut self, dir: u64) {
        if let Some(n) = self.nodes.get_mut(&dir) {
            let now = SystemTime::now();
            n.meta.mtime = now;
            n.meta.ctime = now;
        }
    }

    fn new_node(&mut self, parent: u64, name: &OsStr, kind: Kind, meta: Meta) -> Res<u64> {
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let node = Node {
            meta,
            kind,
            links: BTreeSet::from([(parent, name.to_os_string())]),
            durable_links: BTreeSet::new(),
            open: 0,
        };
        self.nodes.insert(ino, node);
        self.dir_mut(parent)?
            .entries
            .insert(name.to_os_string(), ino);
        self.touch_dir(parent);
        Ok(ino)
    }

    /// Removes the volatile entry `parent/name` (the caller checked what it names).
    fn unlink_entry(&mut self, parent: u64, name: &OsStr) -> Res<u64> {
        let ino = self
            .dir_mut(parent)?
            .entries
            .remove(name)
            .ok_or(Errno::ENOENT)?;
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.links.remove(&(parent, name.to_os_string()));
        }
        self.touch_dir(parent);
        self.maybe_free(ino);
        Ok(ino)
    }

    /// Frees the dirty pages of a file nothing can reach any more (no name, no handle),
    /// and its backing file when no durable entry names it either.
    fn maybe_free(&mut self, ino: u64) {
        let backing = self.backing.join(ino.to_string());
        let Some(n) = self.nodes.get_mut(&ino) else {
            return;
        };
        if !n.links.is_empty() || n.open > 0 {
            return;
        }
        if let Kind::File(f) = &mut n.kind {
            f.dirty.clear();
            f.backing = None;
            if n.durable_links.is_empty() {
                let _ = std::fs::remove_file(backing);
                f.durable_len = 0;
                f.base_len = 0;
            }
        }
    }

    fn backing_file(&mut self, ino: u64) -> Res<&mut File> {
        let path = self.backing.join(ino.to_string());
        let Kind::File(f) = &mut self.node_mut(ino)?.kind else {
            return Err(Errno::EISDIR);
        };
        if f.backing.is_none() {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| io_errno(&e))?;
            f.backing = Some(file);
        }
        Ok(f.backing.as_mut().expect("just opened"))
    }

    /// The bytes of page `p` as the volatile state has them (dirty or durable base).
    fn load_page(&mut self, ino: u64, p: u64) -> Res<Box<[u8]>> {
        let (base_len, dirty) = match &self.node(ino)?.kind {
            Kind::File(f) => (f.base_len, f.dirty.get(&p).cloned()),
            Kind::Dir(_) => return Err(Errno::EISDIR),
        };
        if let Some(page) = dirty {
            return Ok(page);
        }
        let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
        let start = p * PAGE;
        if start < base_len {
            let n = (base_len - start).min(PAGE) as usize;
            read_exact_at(self.backing_file(ino)?, &mut page[..n], start)?;
        }
        Ok(page)
    }

    fn read(&mut self, ino: u64, offset: u64, len: u32) -> Res<Vec<u8>> {
        let size = match &self.node(ino)?.kind {
            Kind::File(f) => f.size,
            Kind::Dir(_) => return Err(Errno::EISDIR),
        };
        let end = size.min(offset.saturating_add(u64::from(len)));
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = vec![0u8; (end - offset) as usize];
        let mut pos = offset;
        while pos < end {
            let p = pos / PAGE;
            let in_page = (pos % PAGE) as usize;
            let n = ((PAGE - pos % PAGE).min(end - pos)) as usize;
            let at = (pos - offset) as usize;
            let (dirty, base_len) = match &self.node(ino)?.kind {
                Kind::File(f) => (
                    f.dirty.get(&p).map(|d| d[in_page..in_page + n].to_vec()),
                    f.base_len,
                ),
                Kind::Dir(_) => return Err(Errno::EISDIR),
            };
            match dirty {
                Some(bytes) => out[at..at + n].copy_from_slice(&bytes),
                None if pos < base_len => {
                    let m = ((base_len - pos) as usize).min(n);
                    read_exact_at(self.backing_file(ino)?, &mut out[at..at + m], pos)?;
                }
                None => {}
            }
            pos += n as u64;
        }
        Ok(out)
    }

    fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Res<()> {
        let mut pos = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let p = pos / PAGE;
            let in_page = (pos % PAGE) as usize;
            let n = (PAGE as usize - in_page).min(rest.len());
            let mut page = self.load_page(ino, p)?;
            page[in_page..in_page + n].copy_from_slice(&rest[..n]);
            let Kind::File(f) = &mut self.node_mut(ino)?.kind else {
                return Err(Errno::EISDIR);
            };
            f.dirty.insert(p, page);
            pos += n as u64;
            rest = &rest[n..];
        }
        let n = self.node_mut(ino)?;
        if let Kind::File(f) = &mut n.kind {
            f.size = f.size.max(offset + data.len() as u64);
        }
        let now = SystemTime::now();
        n.meta.mtime = now;
        n.meta.ctime = now;
        Ok(())
    }

    fn truncate(&mut self, ino: u64, size: u64) -> Res<()> {
        let Kind::File(f) = &mut self.node_mut(ino)?.kind else {
            return Err(Errno::EISDIR);
        };
        if size < f.size {
            let keep = size.div_ceil(PAGE);
            f.dirty.retain(|&p, _| p < keep);
            if size % PAGE != 0 {
                if let Some(page) = f.dirty.get_mut(&(size / PAGE)) {
                    page[(size % PAGE) as usize..].fill(0);
                }
            }
            f.base_len = f.base_len.min(size);
        }
        f.size = size;
        Ok(())
    }

    /// fsync/fdatasync of a file: its dirty pages and size become durable.
    fn sync_file(&mut self, ino: u64) -> Res<()> {
        let (dirty, size, base_len) = match &mut self.node_mut(ino)?.kind {
            Kind::File(f) => (std::mem::take(&mut f.dirty), f.size, f.base_len),
            Kind::Dir(_) => return Ok(()),
        };
        let file = self.backing_file(ino)?;
        // Bytes hidden by a truncate must read as zeros once the file grows again.
        let res = file
            .set_len(base_len)
            .and_then(|()| file.set_len(size))
            .and_then(|()| {
                for (p, page) in &dirty {
                    let start = p * PAGE;
                    if start < size {
                        let n = (size - start).min(PAGE) as usize;
                        file.write_all_at(&page[..n], start)?;
                    }
                }
                Ok(())
            });
        if let Err(e) = res {
            // The backing directory failed (full disk?): keep the data dirty.
            if let Kind::File(f) = &mut self.node_mut(ino)?.kind {
                f.dirty = dirty;
            }
            return Err(io_errno(&e));
        }
        if let Kind::File(f) = &mut self.node_mut(ino)?.kind {
            f.base_len = size;
            f.durable_len = size;
        }
        self.counters.file_syncs += 1;
        if self.dir_model == DirModel::FileFsyncPersistsNames {
            self.persist_names(ino, 0);
        }
        Ok(())
    }

    /// Makes the current names of `ino` durable (and drops its durable names that are
    /// gone), then does the same for any parent directory that is not durably linked
    /// yet: what ext4, xfs and btrfs do on fsync of a new or renamed file.
    fn persist_names(&mut self, ino: u64, depth: u32) {
        if depth > 64 || ino == ROOT {
            return;
        }
        let Some(n) = self.nodes.get(&ino) else {
            return;
        };
        let stale: Vec<(u64, OsString)> = n.durable_links.difference(&n.links).cloned().collect();
        let fresh: Vec<(u64, OsString)> = n.links.difference(&n.durable_links).cloned().collect();
        for (parent, name) in stale {
            self.set_durable_entry(parent, &name, None);
        }
        for (parent, name) in &fresh {
            self.set_durable_entry(*parent, name, Some(ino));
        }
        let parents: BTreeSet<u64> = self.nodes[&ino].links.iter().map(|(p, _)| *p).collect();
        for p in parents {
            if p != ROOT
                && self
                    .nodes
                    .get(&p)
                    .is_some_and(|n| n.durable_links.is_empty())
            {
                self.persist_names(p, depth + 1);
            }
        }
    }

    /// Sets (or removes) the durable entry `parent/name`, keeping `durable_links` right.
    fn set_durable_entry(&mut self, parent: u64, name: &OsStr, ino: Option<u64>) {
        let Ok(d) = self.dir_mut(parent) else {
            return;
        };
        let old = match ino {
            Some(i) => d.durable.insert(name.to_os_string(), i),
            None => d.durable.remove(name),
        };
        if let Some(o) = old {
            if let Some(n) = self.nodes.get_mut(&o) {
                n.durable_links.remove(&(parent, name.to_os_string()));
            }
        }
        if let Some(i) = ino {
            if let Some(n) = self.nodes.get_mut(&i) {
                n.durable_links.insert((parent, name.to_os_string()));
            }
        }
    }

    /// fsync of a directory: its current table becomes durable, with the other side of
    /// every rename into or out of it (renames are atomic).
    fn sync_dir(&mut self, dir: u64) -> Res<()> {
        self.counters.dir_syncs += 1;
        if self.dir_fsync_is_noop {
            return Ok(());
        }
        let (old, new) = {
            let d = self.dir(dir)?;
            (d.durable.clone(), d.entries.clone())
        };
        let mut added = vec![];
        let mut removed = vec![];
        for (name, &ino) in &old {
            if new.get(name) != Some(&ino) {
                self.set_durable_entry(dir, name, None);
                removed.push(ino);
            }
        }
        for (name, &ino) in &new {
            if old.get(name) != Some(&ino) {
                self.set_durable_entry(dir, name, Some(ino));
                added.push(ino);
            }
        }
        // An inode that got here by rename: its old name elsewhere goes with it.
        for ino in added {
            let stale: Vec<(u64, OsString)> = match self.nodes.get(&ino) {
                Some(n) => n.durable_links.difference(&n.links).cloned().collect(),
                None => vec![],
            };
            for (parent, name) in stale {
                if parent != dir {
                    self.set_durable_entry(parent, &name, None);
                }
            }
        }
        // An inode that left by rename: its new name elsewhere becomes durable with the
        // removal, unless it still has a durable name (then it was a plain unlink of a
        // second link, or the rename is already durable).
        for ino in removed {
            let fresh: Vec<(u64, OsString)> = match self.nodes.get(&ino) {
                Some(n) if n.durable_links.is_empty() => {
                    n.links.difference(&n.durable_links).cloned().collect()
                }
                _ => vec![],
            };
            for (parent, name) in fresh {
                if parent != dir {
                    self.set_durable_entry(parent, &name, Some(ino));
                }
            }
        }
        Ok(())
    }

    /// `sync(2)` of everything: all data and all directory tables become durable.
    fn sync_all(&mut self) -> Res<()> {
        let inos: Vec<u64> = self.nodes.keys().copied().collect();
        for &ino in &inos {
            let dirty = match &self.nodes[&ino].kind {
                Kind::File(f) => {
                    !f.dirty.is_empty() || f.size != f.durable_len || f.base_len != f.size
                }
                Kind::Dir(_) => false,
            };
            if dirty {
                self.sync_file(ino)?;
            }
        }
        for n in self.nodes.values_mut() {
            n.durable_links = n.links.clone();
            if let Kind::Dir(d) = &mut n.kind {
                d.durable = d.entries.clone();
            }
        }
        Ok(())
    }

    /// The power comes back: everything goes back to its durable state.
    fn reset(&mut self) -> Loss {
        let mut loss = Loss::default();
        // Whatever is not reachable through durable entries is gone.
        let mut reachable: HashMap<u64, u64> = HashMap::from([(ROOT, ROOT)]);
        let mut queue = vec![ROOT];
        while let Some(d) = queue.pop() {
            if let Some(Node {
                kind: Kind::Dir(dir),
                ..
            }) = self.nodes.get(&d)
            {
                for &child in dir.durable.values() {
                    if reachable.insert(child, d).is_none() {
                        queue.push(child);
                    }
                }
            }
        }
        let gone: Vec<u64> = self
            .nodes
            .keys()
            .filter(|i| !reachable.contains_key(i))
            .copied()
            .collect();
        for ino in gone {
            let node = self.nodes.remove(&ino).expect("listed");
            if let Kind::File(f) = node.kind {
                loss.dirty_bytes += f.dirty.len() as u64 * PAGE;
            }
            let _ = std::fs::remove_file(self.backing.join(ino.to_string()));
            loss.inodes_dropped += 1;
        }
        let live: BTreeSet<u64> = self.nodes.keys().copied().collect();
        for (&ino, n) in self.nodes.iter_mut() {
            n.open = 0;
            match &mut n.kind {
                Kind::File(f) => {
                    if !f.dirty.is_empty() || f.size != f.durable_len || f.base_len != f.durable_len
                    {
                        loss.files_reverted += 1;
                    }
                    loss.dirty_bytes += f.dirty.len() as u64 * PAGE;
                    f.dirty.clear();
                    f.size = f.durable_len;
                    f.base_len = f.durable_len;
                    f.backing = None;
                }
                Kind::Dir(d) => {
                    d.durable.retain(|_, c| live.contains(c));
                    let diff = d
                        .entries
                        .iter()
                        .filter(|(k, v)| d.durable.get(*k) != Some(v))
                        .count()
                        + d.durable
                            .keys()
                            .filter(|k| !d.entries.contains_key(*k))
                            .count();
                    loss.entries_reverted += diff as u64;
                    d.entries = d.durable.clone();
                    d.parent = reachable.get(&ino).copied().unwrap_or(ROOT);
                }
            }
        }
        // Rebuild both link sets from the durable tables.
        let mut links: HashMap<u64, BTreeSet<(u64, OsString)>> = HashMap::new();
        for (&ino, n) in &self.nodes {
            if let Kind::Dir(d) = &n.kind {
                for (name, &child) in &d.durable {
                    links.entry(child).or_default().insert((ino, name.clone()));
                }
            }
        }
        for (ino, n) in self.nodes.iter_mut() {
            let l = links.remove(ino).unwrap_or_default();
            n.durable_links = l.clone();
            n.links = l;
        }
        self.dir_handles.clear();
        loss.held_requests = self.held.len() as u64;
        for h in self.held.drain(..) {
            h();
        }
        self.power = Power::On;
        self.cut_at = None;
        self.counters.power_losses += 1;
        loss
    }
}

fn read_exact_at(f: &File, buf: &mut [u8], offset: u64) -> Res<()> {
    // A backing file shorter than the durable size (cannot happen unless someone
    // touched the backing directory) reads as zeros rather than failing the request.
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(io_errno(&e)),
        }
    }
    buf[done..].fill(0);
    Ok(())
}

// ---------------------------------------------------------------------------------
// The FUSE side
// ---------------------------------------------------------------------------------

#[derive(Debug)]
struct Fuse {
    model: Arc<Mutex<Model>>,
}

fn lock(model: &Mutex<Model>) -> MutexGuard<'_, Model> {
    model.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the model's lock for a request, or holds/fails the request when the power is
/// cut (see the module docs) and returns from the handler.
macro_rules! gate {
    ($self:ident, $reply:ident) => {{
        let mut m = lock(&$self.model);
        match m.power {
            Power::On => m,
            Power::Cut(_) => {
                m.held.push(Box::new(move || $reply.error(Errno::EIO)));
                return;
            }
            Power::Dead => {
                drop(m);
                $reply.error(Errno::EIO);
                return;
            }
        }
    }};
}

fn now_or(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl Filesystem for Fuse {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let m = gate!(self, reply);
        match m.lookup(parent.0, name).and_then(|i| m.attr(i)) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let m = gate!(self, reply);
        match m.attr(ino.0) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut m = gate!(self, reply);
        let ino = ino.0;
        let res = (|| {
            if let Some(size) = size {
                m.truncate(ino, size)?;
                m.mutated();
            }
            let n = m.node_mut(ino)?;
            if let Some(mode) = mode {
                n.meta.perm = (mode & 0o7777) as u16;
            }
            if let Some(uid) = uid {
                n.meta.uid = uid;
            }
            if let Some(gid) = gid {
                n.meta.gid = gid;
            }
            if let Some(t) = atime {
                n.meta.atime = now_or(t);
            }
            if let Some(t) = mtime {
                n.meta.mtime = now_or(t);
            } else if size.is_some() {
                n.meta.mtime = SystemTime::now();
            }
            n.meta.ctime = SystemTime::now();
            m.attr(ino)
        })();
        match res {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut m = gate!(self, reply);
        let meta = Meta::new((mode & !umask & 0o7777) as u16, req.uid(), req.gid());
        let kind = Kind::Dir(DirData {
            parent: parent.0,
            ..DirData::default()
        });
        match m.new_node(parent.0, name, kind, meta).and_then(|i| {
            m.mutated();
            m.attr(i)
        }) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut m = gate!(self, reply);
        let res = m.lookup(parent.0, name).and_then(|ino| {
            if matches!(m.node(ino)?.kind, Kind::Dir(_)) {
                return Err(Errno::EISDIR);
            }
            m.unlink_entry(parent.0, name)?;
            m.mutated();
            Ok(())
        });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut m = gate!(self, reply);
        let res = m.lookup(parent.0, name).and_then(|ino| {
            if !m.dir(ino)?.entries.is_empty() {
                return Err(Errno::ENOTEMPTY);
            }
            m.unlink_entry(parent.0, name)?;
            m.mutated();
            Ok(())
        });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut m = gate!(self, reply);
        let (p, np) = (parent.0, newparent.0);
        let res = (|| {
            if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                return Err(Errno::EINVAL);
            }
            if newname.len() > 255 {
                return Err(Errno::ENAMETOOLONG);
            }
            let src = m.lookup(p, name)?;
            let src_is_dir = matches!(m.node(src)?.kind, Kind::Dir(_));
            match m.lookup(np, newname) {
                Ok(dst) if dst == src => return Ok(()),
                Ok(dst) => {
                    if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                        return Err(Errno::EEXIST);
                    }
                    match (&m.node(dst)?.kind, src_is_dir) {
                        (Kind::Dir(d), true) if !d.entries.is_empty() => {
                            return Err(Errno::ENOTEMPTY)
                        }
                        (Kind::Dir(_), false) => return Err(Errno::EISDIR),
                        (Kind::File(_), true) => return Err(Errno::ENOTDIR),
                        _ => {}
                    }
                    m.unlink_entry(np, newname)?;
                }
                Err(e) if e == Errno::ENOENT => {}
                Err(e) => return Err(e),
            }
            m.dir_mut(p)?.entries.remove(name);
            m.dir_mut(np)?.entries.insert(newname.to_os_string(), src);
            let n = m.node_mut(src)?;
            n.links.remove(&(p, name.to_os_string()));
            n.links.insert((np, newname.to_os_string()));
            n.meta.ctime = SystemTime::now();
            if let Kind::Dir(d) = &mut n.kind {
                d.parent = np;
            }
            m.touch_dir(p);
            m.touch_dir(np);
            m.mutated();
            Ok(())
        })();
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let mut m = gate!(self, reply);
        let res = (|| {
            if matches!(m.node(ino.0)?.kind, Kind::Dir(_)) {
                return Err(Errno::EPERM);
            }
            if m.dir(newparent.0)?.entries.contains_key(newname) {
                return Err(Errno::EEXIST);
            }
            m.dir_mut(newparent.0)?
                .entries
                .insert(newname.to_os_string(), ino.0);
            m.node_mut(ino.0)?
                .links
                .insert((newparent.0, newname.to_os_string()));
            m.touch_dir(newparent.0);
            m.mutated();
            m.attr(ino.0)
        })();
        match res {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut m = gate!(self, reply);
        match m.node_mut(ino.0) {
            Ok(n) => {
                n.open += 1;
                reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
            }
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut m = gate!(self, reply);
        let meta = Meta::new((mode & !umask & 0o7777) as u16, req.uid(), req.gid());
        let res = m
            .new_node(parent.0, name, Kind::File(FileData::default()), meta)
            .and_then(|ino| {
                m.node_mut(ino)?.open += 1;
                m.mutated();
                m.attr(ino)
            });
        match res {
            Ok(a) => reply.created(
                &TTL,
                &a,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut m = gate!(self, reply);
        match m.read(ino.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut m = gate!(self, reply);
        match m.write(ino.0, offset, data) {
            Ok(()) => {
                m.mutated();
                reply.written(data.len() as u32);
            }
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let _m = gate!(self, reply);
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut m = gate!(self, reply);
        if let Ok(n) = m.node_mut(ino.0) {
            n.open = n.open.saturating_sub(1);
        }
        m.maybe_free(ino.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut m = gate!(self, reply);
        match m.sync_file(ino.0) {
            Ok(()) => {
                m.mutated();
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut m = gate!(self, reply);
        match snapshot(&m, ino.0) {
            Ok(list) => {
                let fh = m.next_fh;
                m.next_fh += 1;
                m.dir_handles.insert(fh, list);
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut m = gate!(self, reply);
        if offset == 0 {
            // rewinddir: see the directory as it is now.
            match snapshot(&m, ino.0) {
                Ok(list) => {
                    m.dir_handles.insert(fh.0, list);
                }
                Err(e) => return reply.error(e),
            }
        }
        let Some(list) = m.dir_handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        for (i, (child, kind, name)) in list.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*child), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let mut m = gate!(self, reply);
        m.dir_handles.remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut m = gate!(self, reply);
        match m.sync_dir(ino.0) {
            Ok(()) => {
                m.mutated();
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let m = gate!(self, reply);
        // The backing directory's free space, so ringbox's reserve check sees a disk.
        match rustix::fs::statvfs(&m.backing) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                255,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(Errno::from_i32(e.raw_os_error())),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        let m = gate!(self, reply);
        match m.node(ino.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

/// `.`, `..` and the volatile entries of a directory, in name order.
fn snapshot(m: &Model, ino: u64) -> Res<Vec<(u64, FileType, OsString)>> {
    let d = m.dir(ino)?;
    let mut out = vec![
        (ino, FileType::Directory, OsString::from(".")),
        (d.parent, FileType::Directory, OsString::from("..")),
    ];
    for (name, &child) in &d.entries {
        let kind = match m.nodes.get(&child).map(|n| &n.kind) {
            Some(Kind::Dir(_)) => FileType::Directory,
            _ => FileType::RegularFile,
        };
        out.push((child, kind, name.clone()));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// The handle a test holds
// ---------------------------------------------------------------------------------

/// A mounted lossy file system (see the module docs). Declare it before any `Daemon`
/// that uses it, so the daemon is dropped (killed) first and the unmount finds the
/// mount free.
#[derive(Debug)]
pub struct LossyFs {
    model: Arc<Mutex<Model>>,
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
    watchdog_stop: Arc<AtomicBool>,
    watchdog: Option<JoinHandle<()>>,
    // Declared last: removed after the unmount.
    _mount_dir: tempfile::TempDir,
    _backing_dir: tempfile::TempDir,
}

impl LossyFs {
    /// Mounts an empty lossy file system on a fresh temporary directory. Err says why
    /// not (no `/dev/fuse`, mounting refused): callers print it and skip.
    pub fn mount(dir_model: DirModel) -> Result<LossyFs, String> {
        if !Path::new("/dev/fuse").exists() {
            return Err("/dev/fuse does not exist (no FUSE in this kernel or container)".into());
        }
        detach_stale_mounts();
        let mount_dir = tempfile::Builder::new()
            .prefix("ringbox-lossyfs-mnt-")
            .tempdir()
            .map_err(|e| format!("cannot create a mount point: {e}"))?;
        let backing_dir = tempfile::Builder::new()
            .prefix("ringbox-lossyfs-disk-")
            .tempdir()
            .map_err(|e| format!("cannot create the backing directory: {e}"))?;
        let model = Arc::new(Mutex::new(Model::new(
            backing_dir.path().to_path_buf(),
            dir_model,
        )));
        let mountpoint = mount_dir.path().to_path_buf();
        let session = start_session(&model, &mountpoint)?;
        let watchdog_stop = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let (model, stop) = (model.clone(), watchdog_stop.clone());
            std::thread::Builder::new()
                .name("lossyfs-watchdog".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(100));
                        let mut m = lock(&model);
                        if let Power::Cut(since) = m.power {
                            if since.elapsed() > HOLD_LIMIT {
                                release(&mut m);
                            }
                        }
                    }
                })
                .map_err(|e| format!("cannot start the watchdog thread: {e}"))?
        };
        Ok(LossyFs {
            model,
            session: Some(session),
            mountpoint,
            watchdog_stop,
            watchdog: Some(watchdog),
            _mount_dir: mount_dir,
            _backing_dir: backing_dir,
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Makes everything durable, like `sync(2)` plus an fsync of every directory: the
    /// state of a machine that was shut down cleanly.
    pub fn sync_all(&self) {
        lock(&self.model)
            .sync_all()
            .unwrap_or_else(|e| panic!("lossyfs: syncing everything failed: {e:?}"));
    }

    /// Fault injection, for the harness's own tests: while `on`, `fsync` of a directory
    /// succeeds but makes nothing durable (a file system or program that skips it).
    pub fn set_dir_fsync_is_noop(&self, on: bool) {
        lock(&self.model).dir_fsync_is_noop = on;
    }

    pub fn counters(&self) -> Counters {
        lock(&self.model).counters
    }

    /// Cuts the power right after `more` further mutating requests (0: now).
    pub fn arm_cut_after(&self, more: u64) {
        let mut m = lock(&self.model);
        if more == 0 {
            if m.power == Power::On {
                m.power = Power::Cut(Instant::now());
            }
        } else {
            m.cut_at = Some(m.counters.mutations + more);
        }
    }

    /// Cuts the power now: no request changes anything from here on, and requests are
    /// held until [`LossyFs::release_held`].
    pub fn cut(&self) {
        self.arm_cut_after(0);
    }

    /// Whether the power is off (cut, by [`LossyFs::cut`] or an armed count).
    pub fn is_cut(&self) -> bool {
        lock(&self.model).power != Power::On
    }

    /// After a cut, once every process using the mount was sent SIGKILL: fails the
    /// held requests (and all later ones) with EIO so the killed processes can exit.
    /// Returns how many were held. Cuts first if the power was still on.
    pub fn release_held(&self) -> usize {
        release(&mut lock(&self.model))
    }

    /// Unmounts, throws away everything not durable, and mounts the durable state
    /// again. Every process that used the mount must be gone (killed and reaped).
    /// Panics when the unmount or the mount fails.
    pub fn reboot(&mut self) -> Loss {
        let held_before = self.release_held();
        self.unmount().unwrap_or_else(|e| {
            panic!("lossyfs: cannot unmount {}: {e}", self.mountpoint.display())
        });
        let mut loss = lock(&self.model).reset();
        loss.held_requests += held_before as u64;
        let session = start_session(&self.model, &self.mountpoint)
            .unwrap_or_else(|e| panic!("lossyfs: cannot mount again: {e}"));
        self.session = Some(session);
        loss
    }

    fn unmount(&mut self) -> Result<(), String> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        // umount(2) fails with EBUSY while anything has a file open on the mount.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = std::process::Command::new("umount")
                .arg(&self.mountpoint)
                .output();
            match out {
                Ok(o) if o.status.success() => break,
                Ok(o) if Instant::now() < deadline => {
                    let _ = o;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(o) => {
                    let msg = String::from_utf8_lossy(&o.stderr).trim().to_string();
                    let users = mount_users(&self.mountpoint);
                    detach(&self.mountpoint);
                    drop(session);
                    return Err(format!(
                        "{msg}; still in use by {users:?}; detached lazily instead"
                    ));
                }
                Err(e) => {
                    detach(&self.mountpoint);
                    drop(session);
                    return Err(format!("cannot run umount(8): {e}"));
                }
            }
        }
        session
            .join()
            .map_err(|e| format!("the FUSE session ended with {e}"))
    }
}

impl Drop for LossyFs {
    fn drop(&mut self) {
        self.watchdog_stop.store(true, Ordering::Relaxed);
        // Killed processes must be able to exit before anything can be unmounted.
        self.release_held();
        if let Err(e) = self.unmount() {
            eprintln!("lossyfs: {e}");
        }
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
    }
}

/// Mounts a lossy file system, or prints why not and returns `None` (the caller's test
/// then passes without running), unless `RINGBOX_TORTURE_REQUIRE_FUSE=1` (set by
/// `.ci/run`) makes that a failure.
pub fn mount_or_skip(test: &str, model: DirModel) -> Option<LossyFs> {
    match LossyFs::mount(model) {
        Ok(fs) => Some(fs),
        Err(e) => {
            let required = std::env::var("RINGBOX_TORTURE_REQUIRE_FUSE").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{test}: cannot mount the lossy FUSE file system ({e}), and \
                 RINGBOX_TORTURE_REQUIRE_FUSE=1 requires it"
            );
            eprintln!("{test}: SKIPPED: cannot mount the lossy FUSE file system: {e}");
            None
        }
    }
}

fn release(m: &mut Model) -> usize {
    m.power = Power::Dead;
    m.cut_at = None;
    let held: Vec<Held> = m.held.drain(..).collect();
    let n = held.len();
    for h in held {
        h();
    }
    n
}

fn start_session(
    model: &Arc<Mutex<Model>>,
    mountpoint: &Path,
) -> Result<BackgroundSession, String> {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(FSNAME.into()),
        MountOption::Subtype(FSNAME.into()),
        MountOption::RW,
        MountOption::NoAtime,
    ];
    // Two threads, so a slow backing write never stalls every reader (the model's
    // lock still serialises the requests themselves).
    config.n_threads = Some(2);
    let fs = Fuse {
        model: model.clone(),
    };
    fuser::Session::new(fs, mountpoint, &config)
        .and_then(|s| s.spawn())
        .map_err(|e| format!("mounting FUSE on {} failed: {e}", mountpoint.display()))
}

/// Lazy unmount (MNT_DETACH), then abort the FUSE connection so nothing waits on it.
fn detach(mountpoint: &Path) {
    let dev = std::fs::metadata(mountpoint).map(|m| m.dev()).ok();
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(mountpoint)
        .status();
    if let Some(dev) = dev {
        let abort = format!("/sys/fs/fuse/connections/{}/abort", rustix::fs::minor(dev));
        let _ = std::fs::write(abort, "1");
    }
}

/// PIDs with a file, cwd or mapping under `mountpoint` (for the error message).
fn mount_users(mountpoint: &Path) -> Vec<u32> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let fds = std::fs::read_dir(e.path().join("fd"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|f| std::fs::read_link(f.path()).ok())
                    .any(|l| l.starts_with(mountpoint))
            })
            .unwrap_or(false);
        let maps = std::fs::read_to_string(e.path().join("maps"))
            .map(|s| s.contains(&*mountpoint.to_string_lossy()))
            .unwrap_or(false);
        if fds || maps {
            out.push(pid);
        }
    }
    out
}

/// Detaches lossyfs mounts whose server is gone (ENOTCONN): what a test process that
/// was itself killed leaves behind. Live mounts of other test processes are left alone.
fn detach_stale_mounts() {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let source = right.split(' ').nth(1).unwrap_or("");
        if source != FSNAME {
            continue;
        }
        let Some(mp) = left.split(' ').nth(4) else {
            continue;
        };
        let mp = PathBuf::from(unescape_mountinfo(mp));
        if let Err(e) = std::fs::metadata(&mp) {
            if e.raw_os_error() == Some(libc::ENOTCONN) {
                eprintln!("lossyfs: detaching a stale mount at {}", mp.display());
                detach(&mp);
                let _ = std::fs::remove_dir(&mp);
            }
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------
// The model, checked through a real mount
// ---------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use std::fs::{self, File, OpenOptions};
    use std::io::Write;

    use super::{mount_or_skip, DirModel};

    fn fsync_dir(p: &std::path::Path) {
        File::open(p).unwrap().sync_all().unwrap();
    }

    fn write_file(p: &std::path::Path, data: &[u8], sync: bool) {
        let mut f = File::create(p).unwrap();
        f.write_all(data).unwrap();
        if sync {
            f.sync_all().unwrap();
        }
    }

    /// Each rule of the module docs, through the kernel: file data, names, renames,
    /// truncation, mmap reads of unsynced data, and what a reboot keeps.
    #[test]
    fn lossyfs_keeps_exactly_what_was_synced() {
        let _serial = crate::support::serial();
        let Some(mut fs) = mount_or_skip("lossyfs_keeps_exactly_what_was_synced", DirModel::Strict)
        else {
            return;
        };
        let root = fs.path().to_path_buf();
        fs::create_dir(root.join("d")).unwrap();
        fs::create_dir(root.join("u")).unwrap();
        // Name and data synced: kept.
        write_file(&root.join("kept"), b"hello", true);
        // Name synced, data not: comes back empty.
        write_file(&root.join("empty"), b"lost bytes", false);
        fsync_dir(&root);
        // Never synced: gone. File synced, name not: gone (strict POSIX). `u` itself
        // is durable, but never synced after these were created in it.
        write_file(&root.join("u/unsynced"), b"x", false);
        write_file(&root.join("u/data-only"), b"x", true);
        // Data written after the directory sync but not synced: lost.
        write_file(&root.join("late"), b"", false);
        fsync_dir(&root);
        {
            let mut f = OpenOptions::new()
                .write(true)
                .open(root.join("late"))
                .unwrap();
            f.write_all(b"late bytes").unwrap();
        }
        let loss = fs.reboot();
        assert_eq!(loss.inodes_dropped, 2, "{loss:?}");
        assert_eq!(loss.entries_reverted, 2, "{loss:?}");
        let names = |dir: &std::path::Path| {
            let mut v: Vec<String> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&root), ["d", "empty", "kept", "late", "u"]);
        assert!(names(&root.join("u")).is_empty());
        assert_eq!(fs::read(root.join("kept")).unwrap(), b"hello");
        assert_eq!(fs::read(root.join("empty")).unwrap(), b"");
        assert_eq!(fs::read(root.join("late")).unwrap(), b"");

        // Overwrite without sync: reads and mmap see the new bytes; a reboot undoes it.
        {
            let mut f = OpenOptions::new()
                .write(true)
                .open(root.join("kept"))
                .unwrap();
            f.write_all(b"HELLO, world").unwrap();
        }
        assert_eq!(fs::read(root.join("kept")).unwrap(), b"HELLO, world");
        {
            let f = File::open(root.join("kept")).unwrap();
            // SAFETY: nothing else writes the file while the map is alive (this test
            // owns the mount).
            let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
            assert_eq!(&map[..], b"HELLO, world");
        }
        // Truncate and grow without sync: the hidden tail reads as zeros.
        let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8 + 1).collect();
        write_file(&root.join("big"), &big, true);
        fsync_dir(&root);
        {
            let f = OpenOptions::new()
                .write(true)
                .open(root.join("big"))
                .unwrap();
            f.set_len(100).unwrap();
            f.set_len(20_000).unwrap();
        }
        let now = fs::read(root.join("big")).unwrap();
        assert_eq!(&now[..100], &big[..100]);
        assert!(now[100..].iter().all(|&b| b == 0));
        // A write through an O_DSYNC descriptor is synced by the kernel (LMDB writes
        // its meta pages that way).
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DSYNC)
                .open(root.join("empty"))
                .unwrap();
            f.write_all(b"dsync bytes").unwrap();
        }
        // An unlink without a directory sync comes back.
        fs::remove_file(root.join("empty")).unwrap();
        // A rename made durable by the destination's sync leaves the source too.
        fs::rename(root.join("late"), root.join("d/moved")).unwrap();
        fsync_dir(&root.join("d"));
        fs.reboot();
        assert_eq!(fs::read(root.join("kept")).unwrap(), b"hello");
        assert_eq!(fs::read(root.join("big")).unwrap(), big);
        assert_eq!(fs::read(root.join("empty")).unwrap(), b"dsync bytes");
        assert!(root.join("d/moved").exists());
        assert!(!root.join("late").exists(), "a rename left both names");

        // A rename made durable by the source's sync brings the new name along.
        fs::rename(root.join("d/moved"), root.join("moved-back")).unwrap();
        fsync_dir(&root.join("d"));
        fs.reboot();
        assert!(root.join("moved-back").exists(), "a rename left no name");
        assert!(!root.join("d/moved").exists());
    }

    /// The file-fsync-persists-names model, and a cut: requests after it are held, and
    /// fail once released; nothing written after the cut survives.
    #[test]
    fn lossyfs_cut_holds_requests_and_file_fsync_model() {
        let _serial = crate::support::serial();
        let Some(mut fs) = mount_or_skip(
            "lossyfs_cut_holds_requests_and_file_fsync_model",
            DirModel::FileFsyncPersistsNames,
        ) else {
            return;
        };
        let root = fs.path().to_path_buf();
        fs::create_dir(root.join("sub")).unwrap();
        write_file(&root.join("sub/f"), b"synced", true);
        fs.reboot();
        assert_eq!(fs::read(root.join("sub/f")).unwrap(), b"synced");

        let mut f = OpenOptions::new()
            .write(true)
            .open(root.join("sub/f"))
            .unwrap();
        fs.cut();
        let t = std::thread::spawn(move || {
            let r = f.write_all(b"after the cut").and_then(|()| f.sync_all());
            r.is_err()
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!t.is_finished(), "a write after the cut was not held");
        assert!(fs.release_held() >= 1);
        assert!(t.join().unwrap(), "a held write did not fail");
        fs.reboot();
        assert_eq!(fs::read(root.join("sub/f")).unwrap(), b"synced");
    }
}
