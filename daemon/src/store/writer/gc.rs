//! Garbage collection of blobs, on the writer thread.
//!
//! GC runs on the writer thread, one `blobs/ab` directory per step, interleaved with
//! batches so uploads wait at most one directory scan. A run deletes blob records with
//! refcount 0 (none exist unless a crash or a bug left them) and removes files under
//! `blobs/ab/` named like a blob that have no blob record. Files not named like a blob
//! are left alone (they are not ours; `check` reports them). Objects indexed in place
//! (`Source::External`) have no blob record and no file under `blobs/`: GC never sees
//! them, and never touches a file outside `blobs/`.
//!
//! Because nothing else changes `blobs/` or blob records while this thread runs, the
//! set of live records read at the start of a step is exact for that step. A step that
//! removed something moves `data_generation` (after its commit and unlinks), so cached
//! descriptors of removed files are dropped.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::mem;
use std::sync::atomic::Ordering;

use super::{Reply, ReplyTo, Writer};
use crate::store::blobs::{parse_blob_file_name, remove_file_quiet};
use crate::store::records;
use crate::store::{adjust_blob_bytes, io_context, Sha256, StoreError};
use crate::util::hex;

/// What a GC run removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: u64,
    pub bytes_freed: u64,
}

/// Pending GC work.
#[derive(Default)]
pub(super) struct GcState {
    pub(super) active: Option<GcRun>,
    /// Callers that asked while a run was active: they get the next full run.
    pub(super) waiting: Vec<ReplyTo>,
    pub(super) background_requested: bool,
}

pub(super) struct GcRun {
    next_dir: u16,
    report: GcReport,
    waiters: Vec<ReplyTo>,
}

impl GcState {
    pub(super) fn has_work(&self) -> bool {
        self.active.is_some() || !self.waiting.is_empty() || self.background_requested
    }

    /// At shutdown, a run nobody waits for is abandoned (the next open starts one).
    pub(super) fn drop_unwanted(&mut self) {
        self.background_requested = false;
        if self.waiting.is_empty() && self.active.as_ref().is_some_and(|r| r.waiters.is_empty()) {
            self.active = None;
        }
    }

    /// Drops all GC work (after a panic in a step) and hands back everyone waiting.
    pub(super) fn abandon(&mut self) -> Vec<ReplyTo> {
        self.background_requested = false;
        let mut waiters = mem::take(&mut self.waiting);
        if let Some(run) = self.active.take() {
            waiters.extend(run.waiters);
        }
        waiters
    }
}

impl Writer {
    /// One step of GC: directory `blobs/<next_dir>`. Starts a run when none is active.
    pub(super) fn gc_step(&self, gc: &mut GcState) {
        let run = gc.active.get_or_insert_with(|| {
            gc.background_requested = false;
            GcRun {
                next_dir: 0,
                report: GcReport::default(),
                waiters: mem::take(&mut gc.waiting),
            }
        });
        let dir = u8::try_from(run.next_dir).unwrap_or(u8::MAX);
        let removed_before = run.report.blobs_removed;
        let res = self.gc_dir(dir, &mut run.report);
        if run.report.blobs_removed != removed_before {
            // Release: see the module docs of the writer (generations).
            self.counters
                .data_generation
                .fetch_add(1, Ordering::Release);
        }
        if let Err(e) = res {
            tracing::error!(error = %e, dir = %self.layout.blob_dir(dir).display(), "gc failed");
            if let Some(run) = gc.active.take() {
                for w in run.waiters {
                    w.send(Err(e.replicate()));
                }
            }
            return;
        }
        run.next_dir += 1;
        if run.next_dir > u16::from(u8::MAX) {
            if let Some(run) = gc.active.take() {
                self.counters.gc_runs.fetch_add(1, Ordering::Relaxed);
                let r = run.report;
                if r.blobs_removed > 0 {
                    tracing::info!(
                        blobs_removed = r.blobs_removed,
                        bytes_freed = r.bytes_freed,
                        "gc removed unreferenced blobs"
                    );
                } else {
                    tracing::debug!("gc found nothing to remove");
                }
                for w in run.waiters {
                    w.send(Ok(Reply::Gc(r)));
                }
            }
        }
    }

    fn gc_dir(&self, dir: u8, report: &mut GcReport) -> Result<(), StoreError> {
        // 1. The blob records of this directory (their keys start with the byte `dir`).
        let mut live: HashSet<Sha256> = HashSet::new();
        let mut dead: Vec<(Sha256, u64)> = Vec::new();
        {
            let rtxn = self.env.read_txn()?;
            for item in self.dbs.blobs.prefix_iter(&rtxn, &[dir])? {
                let (key, value) = item?;
                let Ok(sha) = Sha256::try_from(key) else {
                    tracing::warn!(
                        ?key,
                        "blob record with a malformed key; run `ringbox check`"
                    );
                    continue;
                };
                match records::decode_blob(value) {
                    Ok(r) if r.refcount == 0 => dead.push((sha, r.size)),
                    Ok(_) => {
                        live.insert(sha);
                    }
                    Err(e) => {
                        tracing::warn!(blob = %hex::encode(&sha), error = %e, "undecodable blob record kept");
                        live.insert(sha);
                    }
                }
            }
        }
        // 2. Records with no reference left: delete, commit, then unlink.
        if !dead.is_empty() {
            let mut wtxn = self.env.write_txn()?;
            let mut bytes = 0i128;
            for (sha, size) in &dead {
                self.dbs.blobs.delete(&mut wtxn, sha)?;
                bytes += i128::from(*size);
            }
            adjust_blob_bytes(&self.dbs, &mut wtxn, -bytes)?;
            wtxn.commit()?;
            for (sha, size) in dead {
                let path = self.layout.blob_path(&sha);
                match remove_file_quiet(&path) {
                    Ok(()) => {
                        report.blobs_removed += 1;
                        report.bytes_freed += size;
                        self.blob_removed(&sha);
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot unlink blob")
                    }
                }
            }
        }
        // 3. Files without a record. Nothing else changes blobs/ or blob records while
        //    this thread runs, so `live` is exact.
        let dir_path = self.layout.blob_dir(dir);
        let entries = match fs::read_dir(&dir_path) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(dir = %dir_path.display(), "blob directory missing");
                return Ok(());
            }
            Err(e) => return Err(io_context(e, format!("cannot read {}", dir_path.display()))),
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(dir = %dir_path.display(), error = %e, "cannot read directory entry");
                    continue;
                }
            };
            let Some(sha) = parse_blob_file_name(&entry.file_name()) else {
                continue; // not a managed blob: not ours to remove
            };
            if sha[0] != dir || live.contains(&sha) {
                continue; // misplaced files are reported by `check`, not guessed at
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            match remove_file_quiet(&entry.path()) {
                Ok(()) => {
                    report.blobs_removed += 1;
                    report.bytes_freed += meta.len();
                    self.blob_removed(&sha);
                    tracing::debug!(blob = %hex::encode(&sha), "removed unreferenced blob file");
                }
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove unreferenced blob file")
                }
            }
        }
        Ok(())
    }
}
