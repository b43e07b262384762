//! The audit log: an append-only record of who changed what, for the whole daemon.
//!
//! Where: `<data>/audit/audit-YYYY-MM-DD.ndjson`, one file per UTC day (the day of the
//! record's `at`), one JSON object per line:
//!
//! ```json
//! {"at":"2026-11-23T14:05:00.123Z","actor":"anonymous","ip":"127.0.0.1",
//!  "action":"object.renamed","object_id":"0193…","name":"new.jpg","old_name":"old.jpg",
//!  "sha256":"ab12…","namespace":"rhinobox","details":{…}}
//! ```
//!
//! `old_name` and `details` are left out when empty; `ip`, `object_id`, `name`,
//! `sha256` and `namespace` are `null` when they do not apply. Actions are
//! `<thing>.<verb>`: `object.deleted`, `object.renamed`, `object.moved`,
//! `object.tagged`, `object.metadata` today; users and tokens will add theirs.
//!
//! **Views.** Some APIs promise logs of their own shape (RhinoBox's
//! `metadata/delete_log.ndjson` and `metadata/rename_log.ndjson`). Those are not a
//! second mechanism: a [`View`] is a file path plus a function from an [`AuditRecord`]
//! to that file's line (or to nothing, for records the view does not show). The views
//! are registered once, at [`Audit::start`] (the composition root passes those of the
//! enabled APIs); for every record the audit thread writes the daily line and each
//! view's line in the same step and syncs them together, so a view never holds a line
//! its daily file lacks (short of a crash between the two writes, which a durable reply
//! never hides: it comes after both). Because views see every record, a change made
//! through any API shows in them (a native `DELETE` of a RhinoBox file is in RhinoBox's
//! delete log); records therefore carry what views need in `details` (object records:
//! the object's `aliases`; deletes also its `mime_type`, `size` and `metadata`).
//!
//! **One thread.** Every file append and fsync happens on the `ringbox-audit` thread,
//! never on an io_uring worker. Callers send records through a channel:
//!
//! - [`Audit::record`] returns a future that resolves once the record is written and,
//!   with [`Durability::Fsync`], fdatasynced (with the directory fsynced when a file was
//!   created): an API that promises "logged before the 200" awaits it.
//! - [`Audit::record_nowait`] queues the record and returns at once; the line is written
//!   within moments and synced with the next durable record, or at most about a second
//!   later ([`LAZY_SYNC`]), or at shutdown.
//!
//! **Group commit.** The thread takes up to [`MAX_BATCH`] queued records at once, writes
//! each (one `write(2)` of the whole line per file, on a file opened `O_APPEND`, so
//! concurrent readers never see two lines interleaved), then syncs each touched file
//! once for the whole batch before answering: many deletes at once cost one fdatasync,
//! not one each.
//!
//! **Crashes.** A crash in the middle of a `write` can leave a torn last line; the first
//! time this process opens a log file it cuts such a tail off (everything up to the last
//! newline is kept). A record whose durable future resolved `Ok` is on disk.
//!
//! What it does not do: rotate by size, compress, or expire old days (they are plain
//! files an operator can archive); read the log back (it is for operators and tools).

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use futures_channel::oneshot;
use serde::Serialize;
use serde_json::Value;

use super::access::{Caller, ANONYMOUS_OWNER};
use super::error::CoreError;
use crate::store::blobs::fsync_dir;
use crate::store::{Durability, ObjectRecord};
use crate::util::hex;
use crate::util::time::{now_ms, rfc3339_ms};

/// The audit directory, relative to the data directory.
pub const AUDIT_DIR: &str = "audit";
/// Most records written (and synced) as one group.
pub const MAX_BATCH: usize = 1024;
/// How long lines of `record_nowait` may stay unsynced while nothing else arrives.
pub const LAZY_SYNC: Duration = Duration::from_secs(1);

/// Another file a record may appear in, in another shape (see the module docs).
#[derive(Clone, Copy)]
pub struct View {
    /// The file, relative to the data directory (`metadata/delete_log.ndjson`).
    pub path: &'static str,
    /// The view's line for a record, or `None` when the record is not in this view.
    pub line: fn(&AuditRecord) -> Option<Value>,
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View").field("path", &self.path).finish()
    }
}

/// One change, as the audit log records it.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The user id, or `anonymous`.
    pub actor: String,
    pub ip: Option<IpAddr>,
    /// `object.deleted`, `object.renamed`, ...
    pub action: String,
    pub object_id: Option<String>,
    pub name: Option<String>,
    pub old_name: Option<String>,
    /// Lower-case hex.
    pub sha256: Option<String>,
    pub namespace: Option<String>,
    /// Anything else the action wants kept (a JSON object by convention).
    pub details: Option<Value>,
}

/// The daily line; field order is the documented one.
#[derive(Serialize)]
struct Line<'a> {
    at: String,
    actor: &'a str,
    ip: Option<String>,
    action: &'a str,
    object_id: Option<&'a str>,
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    old_name: Option<&'a str>,
    sha256: Option<&'a str>,
    namespace: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Value>,
}

impl AuditRecord {
    /// A record of `action` by `caller`, now.
    pub fn new(action: impl Into<String>, caller: &Caller) -> AuditRecord {
        AuditRecord {
            at_ms: now_ms(),
            actor: caller.user().unwrap_or(ANONYMOUS_OWNER).to_string(),
            ip: caller.ip,
            action: action.into(),
            object_id: None,
            name: None,
            old_name: None,
            sha256: None,
            namespace: None,
            details: None,
        }
    }

    /// A record of `action` by `caller` about object `rec` (its id, name, hash and
    /// namespace as given, and its aliases in `details.aliases` when it has any).
    pub fn object(action: impl Into<String>, caller: &Caller, rec: &ObjectRecord) -> AuditRecord {
        AuditRecord {
            object_id: Some(rec.id.to_string()),
            name: Some(rec.name.clone()),
            sha256: rec.sha256.map(|s| hex::encode(&s)),
            namespace: Some(rec.namespace.clone()),
            details: (!rec.aliases.is_empty())
                .then(|| serde_json::json!({ "aliases": rec.aliases })),
            ..AuditRecord::new(action, caller)
        }
    }

    /// Sets `details[key]` (making `details` an object if it was not).
    pub fn set_detail(&mut self, key: &str, value: Value) {
        match &mut self.details {
            Some(Value::Object(m)) => {
                m.insert(key.to_string(), value);
            }
            other => {
                let mut m = serde_json::Map::new();
                m.insert(key.to_string(), value);
                *other = Some(Value::Object(m));
            }
        }
    }

    /// The object's alias with `scheme:` (from `details.aliases`), without the scheme.
    pub fn alias(&self, scheme: &str) -> Option<&str> {
        self.details
            .as_ref()?
            .get("aliases")?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .find_map(|a| a.strip_prefix(scheme)?.strip_prefix(':'))
    }

    /// `at` as written: RFC 3339 UTC with milliseconds.
    pub fn at(&self) -> String {
        rfc3339_ms(self.at_ms)
    }

    /// `YYYY-MM-DD` (UTC) of `at`: the daily file the record goes to.
    pub fn day(&self) -> String {
        self.at()[..10].to_string()
    }

    /// A field of `details`, if present.
    pub fn detail(&self, key: &str) -> Option<&Value> {
        self.details.as_ref()?.get(key)
    }

    /// The daily line, with its newline.
    pub fn daily_line(&self) -> Vec<u8> {
        let line = Line {
            at: self.at(),
            actor: &self.actor,
            ip: self.ip.map(|ip| ip.to_string()),
            action: &self.action,
            object_id: self.object_id.as_deref(),
            name: self.name.as_deref(),
            old_name: self.old_name.as_deref(),
            sha256: self.sha256.as_deref(),
            namespace: self.namespace.as_deref(),
            details: self.details.as_ref(),
        };
        // Serialising strings, options and a Value cannot fail.
        let mut out = serde_json::to_vec(&line).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// The daily file of `day` (`YYYY-MM-DD`), relative to the data directory.
pub fn daily_path(day: &str) -> String {
    format!("{AUDIT_DIR}/audit-{day}.ndjson")
}

/// Counters of the audit thread (for tests and `/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Records whose lines were written.
    pub written: u64,
    /// Records whose lines are known to be on disk (synced, or written with durability
    /// none).
    pub durable: u64,
    /// Sync rounds (one per group, however many files it touched).
    pub syncs: u64,
    /// Records that could not be written.
    pub failed: u64,
}

#[derive(Default)]
struct Stats {
    written: AtomicU64,
    durable: AtomicU64,
    syncs: AtomicU64,
    failed: AtomicU64,
}

type Reply = oneshot::Sender<Result<(), CoreError>>;

enum Msg {
    Record(Box<AuditRecord>, Option<Reply>),
    /// Answered once everything queued before it is written and synced.
    Flush(Reply),
    Shutdown,
}

/// The handle to the audit log: cheap to clone, `Send + Sync`. Dropping the last one
/// writes and syncs what is queued, then stops the thread.
#[derive(Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Sender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<Stats>,
    root: PathBuf,
}

impl fmt::Debug for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audit")
            .field("root", &self.inner.root)
            .field("queued", &self.inner.tx.len())
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        let handle = match self.thread.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() && h.join().is_err() {
                tracing::error!("the audit thread panicked");
            }
        }
    }
}

fn stopped() -> CoreError {
    CoreError::internal("the audit log has stopped (see the server log)")
}

impl Audit {
    /// Starts the audit thread over data directory `data_dir`, with the views every
    /// record is offered to. Directories are created as records need them, so a full
    /// disk at start does not stop the daemon (records fail until there is space).
    /// Fails only when the thread cannot be started.
    pub fn start(data_dir: &Path, durability: Durability, views: Vec<View>) -> io::Result<Audit> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let stats = Arc::new(Stats::default());
        let mut writer = Writer {
            root: data_dir.to_path_buf(),
            sync: durability == Durability::Fsync,
            files: HashMap::new(),
            day: String::new(),
            stats: stats.clone(),
            views,
        };
        let thread = std::thread::Builder::new()
            .name("ringbox-audit".into())
            .spawn(move || writer.run(&rx))?;
        Ok(Audit {
            inner: Arc::new(Inner {
                tx,
                thread: Mutex::new(Some(thread)),
                stats,
                root: data_dir.to_path_buf(),
            }),
        })
    }

    /// Queues `rec`; the future resolves once it is written and (with fsync durability)
    /// on disk, or with the error that stopped it. Dropping the future does not cancel
    /// the record.
    pub fn record(
        &self,
        rec: AuditRecord,
    ) -> impl Future<Output = Result<(), CoreError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self
            .inner
            .tx
            .send(Msg::Record(Box::new(rec), Some(tx)))
            .is_ok();
        async move {
            if !queued {
                return Err(stopped());
            }
            rx.await.unwrap_or_else(|_| Err(stopped()))
        }
    }

    /// Queues `rec` without waiting (see the module docs for when it reaches the disk).
    pub fn record_nowait(&self, rec: AuditRecord) {
        if self
            .inner
            .tx
            .send(Msg::Record(Box::new(rec), None))
            .is_err()
        {
            tracing::error!("the audit log has stopped; a record was lost");
        }
    }

    /// Resolves once everything queued before the call is written and synced.
    #[allow(dead_code)] // tests and shutdown paths
    pub fn flush(&self) -> impl Future<Output = Result<(), CoreError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let queued = self.inner.tx.send(Msg::Flush(tx)).is_ok();
        async move {
            if !queued {
                return Err(stopped());
            }
            rx.await.unwrap_or_else(|_| Err(stopped()))
        }
    }

    #[allow(dead_code)] // tests and metrics
    pub fn stats(&self) -> AuditStats {
        let s = &self.inner.stats;
        AuditStats {
            written: s.written.load(Ordering::Acquire),
            durable: s.durable.load(Ordering::Acquire),
            syncs: s.syncs.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
        }
    }
}

/// The thread's state: open files by relative path.
struct Writer {
    root: PathBuf,
    sync: bool,
    files: HashMap<String, LogFile>,
    /// The day of the daily file currently open.
    day: String,
    stats: Arc<Stats>,
    views: Vec<View>,
}

struct LogFile {
    file: File,
    /// Written to since the last sync.
    dirty: bool,
    /// Created by this process and its directory not yet synced.
    new_in: Option<PathBuf>,
}

/// One record of a group, with its outcome so far.
struct Pending {
    reply: Option<Reply>,
    result: Result<(), CoreError>,
}

impl Writer {
    fn run(&mut self, rx: &Receiver<Msg>) {
        tracing::debug!("audit thread started");
        let mut shutting_down = false;
        // Records written but not yet synced (record_nowait lines): sync them after
        // LAZY_SYNC of quiet.
        let mut unsynced = 0u64;
        while !shutting_down {
            let first = if unsynced > 0 {
                match rx.recv_timeout(LAZY_SYNC) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => {
                        let _ = self.sync_all();
                        self.stats.durable.fetch_add(unsynced, Ordering::Release);
                        unsynced = 0;
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => Msg::Shutdown,
                }
            } else {
                rx.recv().unwrap_or(Msg::Shutdown)
            };
            let mut group: Vec<Pending> = Vec::new();
            let mut flushes: Vec<Reply> = Vec::new();
            let mut next = Some(first);
            while let Some(msg) = next {
                match msg {
                    Msg::Record(rec, reply) => {
                        let result = self.write(&rec);
                        group.push(Pending { reply, result });
                    }
                    Msg::Flush(reply) => flushes.push(reply),
                    Msg::Shutdown => shutting_down = true,
                }
                if group.len() >= MAX_BATCH || shutting_down {
                    break;
                }
                next = match rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => {
                        shutting_down = true;
                        None
                    }
                };
            }
            let written = group.iter().filter(|p| p.result.is_ok()).count() as u64;
            let waiting = group.iter().any(|p| p.reply.is_some());
            if waiting || !flushes.is_empty() || shutting_down || !self.sync {
                let synced = self.sync_all();
                self.stats
                    .durable
                    .fetch_add(written + unsynced, Ordering::Release);
                unsynced = 0;
                for p in group {
                    if let Some(reply) = p.reply {
                        let _ = reply.send(p.result.and(synced.clone()));
                    }
                }
                for reply in flushes {
                    let _ = reply.send(synced.clone());
                }
            } else {
                unsynced += written;
            }
        }
        let _ = self.sync_all();
        tracing::debug!("audit thread stopped");
    }

    /// Writes a record's daily line and its view lines.
    fn write(&mut self, rec: &AuditRecord) -> Result<(), CoreError> {
        let res = (|| -> io::Result<()> {
            let day = rec.day();
            if day != self.day {
                // A new day: the previous daily file is done (synced before it closes).
                let old = daily_path(&self.day);
                if let Some(mut f) = self.files.remove(&old) {
                    self.sync_one(&mut f)?;
                }
                self.day = day.clone();
            }
            self.append(&daily_path(&day), &rec.daily_line())?;
            for i in 0..self.views.len() {
                let view = self.views[i];
                if let Some(v) = (view.line)(rec) {
                    let mut line = serde_json::to_vec(&v).unwrap_or_default();
                    line.push(b'\n');
                    self.append(view.path, &line)?;
                }
            }
            Ok(())
        })();
        match res {
            Ok(()) => {
                self.stats.written.fetch_add(1, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(action = %rec.action, error = %e, "cannot write an audit record");
                Err(io_error(e))
            }
        }
    }

    /// Appends `line` to `rel` with one `write(2)`.
    fn append(&mut self, rel: &str, line: &[u8]) -> io::Result<()> {
        if !self.files.contains_key(rel) {
            let f = self.open(rel)?;
            self.files.insert(rel.to_string(), f);
        }
        let Some(f) = self.files.get_mut(rel) else {
            return Err(io::Error::other("audit file vanished from the table"));
        };
        // A regular file takes the whole buffer in one write unless the disk is full
        // (then write_all reports the error).
        f.file.write_all(line)?;
        f.dirty = true;
        Ok(())
    }

    /// Opens (creating as needed) `rel` for appending; cuts a torn last line.
    fn open(&self, rel: &str) -> io::Result<LogFile> {
        if rel.split('/').any(|s| s == ".." || s.is_empty()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("audit path {rel:?} must be relative and plain"),
            ));
        }
        let path = self.root.join(rel);
        let mut new_in = None;
        if let Some(parent) = path.parent() {
            if !parent.is_dir() {
                fs::create_dir_all(parent)?;
                if self.sync {
                    if let Some(grand) = parent.parent() {
                        fsync_dir(grand)?;
                    }
                }
            }
            if !path.exists() {
                new_in = Some(parent.to_path_buf());
            }
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        if let Some(cut) = cut_torn_tail(&mut file)? {
            tracing::warn!(path = %path.display(), cut, "audit file ended in a torn line (a crash while appending); cut it off");
            if self.sync {
                file.sync_all()?;
            }
        }
        Ok(LogFile {
            file,
            dirty: false,
            new_in,
        })
    }

    fn sync_one(&self, f: &mut LogFile) -> io::Result<()> {
        if !self.sync {
            return Ok(());
        }
        if f.dirty {
            f.file.sync_data()?;
            f.dirty = false;
        }
        if let Some(dir) = f.new_in.take() {
            fsync_dir(&dir)?;
        }
        Ok(())
    }

    /// Syncs every file written since its last sync.
    fn sync_all(&mut self) -> Result<(), CoreError> {
        if !self.sync {
            return Ok(());
        }
        let mut first_err = None;
        let mut any = false;
        let names: Vec<String> = self.files.keys().cloned().collect();
        for name in names {
            let Some(mut f) = self.files.remove(&name) else {
                continue;
            };
            any |= f.dirty || f.new_in.is_some();
            if let Err(e) = self.sync_one(&mut f) {
                tracing::error!(file = name, error = %e, "cannot sync an audit file");
                first_err.get_or_insert(e);
            }
            self.files.insert(name, f);
        }
        if any {
            self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        }
        match first_err {
            None => Ok(()),
            Some(e) => Err(io_error(e)),
        }
    }
}

fn io_error(e: io::Error) -> CoreError {
    if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) {
        return CoreError::full();
    }
    CoreError::internal(format!("cannot write the audit log: {e}"))
}

/// If `f` does not end with a newline, cuts it back to just after its last newline
/// (or to empty). Returns the number of bytes cut.
fn cut_torn_tail(f: &mut File) -> io::Result<Option<u64>> {
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(None);
    }
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        end = start;
    };
    f.set_len(keep)?;
    Ok(Some(len - keep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::{admin, block_on};
    use serde_json::json;

    fn read_lines(path: &Path) -> Vec<Value> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn deleted_view(rec: &AuditRecord) -> Option<Value> {
        (rec.action == "object.deleted").then(|| {
            json!({
                "hash": rec.sha256,
                "original_name": rec.name,
                "stored_path": rec.alias("path"),
                "deleted_at": rec.at(),
            })
        })
    }

    const DELETE_VIEW: View = View {
        path: "metadata/delete_log.ndjson",
        line: deleted_view,
    };

    fn sample(action: &str) -> AuditRecord {
        let mut rec = AuditRecord::new(action, &admin());
        rec.at_ms = 1_763_204_595_123; // 2025-11-15T11:03:15.123Z
        rec.ip = Some("127.0.0.1".parse().unwrap());
        rec.object_id = Some("0193a0b0-0000-7000-8000-000000000001".into());
        rec.name = Some("photo.jpg".into());
        rec.sha256 = Some("ab".repeat(32));
        rec.namespace = Some("rhinobox".into());
        rec
    }

    #[test]
    fn daily_line_format() {
        let mut rec = sample("object.renamed");
        rec.old_name = Some("old.jpg".into());
        let line = rec.daily_line();
        assert_eq!(line.last(), Some(&b'\n'));
        let text = std::str::from_utf8(&line).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "one line: {text}");
        // Field order as documented.
        let keys: Vec<&str> = [
            "\"at\"",
            "\"actor\"",
            "\"ip\"",
            "\"action\"",
            "\"object_id\"",
            "\"name\"",
            "\"old_name\"",
            "\"sha256\"",
            "\"namespace\"",
        ]
        .to_vec();
        let mut pos = 0;
        for k in keys {
            let i = text[pos..]
                .find(k)
                .unwrap_or_else(|| panic!("{k} in {text}"));
            pos += i;
        }
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["at"], "2025-11-15T11:03:15.123Z");
        assert_eq!(v["actor"], "admin");
        assert_eq!(v["ip"], "127.0.0.1");
        assert_eq!(v["action"], "object.renamed");
        assert_eq!(v["old_name"], "old.jpg");
        assert!(v.get("details").is_none(), "absent details are left out");
        // Without old_name and with nulls where nothing applies.
        let anon = AuditRecord::new("object.deleted", &Caller::anonymous(None));
        let v: Value = serde_json::from_slice(&anon.daily_line()).unwrap();
        assert_eq!(v["actor"], "anonymous");
        assert_eq!(v["ip"], Value::Null);
        assert_eq!(v["object_id"], Value::Null);
        assert!(v.get("old_name").is_none());
        assert_eq!(anon.day().len(), 10);
    }

    #[test]
    fn records_land_in_daily_files_and_views() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::start(dir.path(), Durability::Fsync, vec![DELETE_VIEW]).unwrap();
        block_on(async {
            let mut del = sample("object.deleted");
            del.details = Some(json!({"aliases": ["path:media/images/x/photo_1.jpg"]}));
            audit.record(del).await.unwrap();
            // A record the view does not show.
            audit.record(sample("object.renamed")).await.unwrap();
            // The next day goes to its own file.
            let mut next = sample("object.metadata");
            next.at_ms += 86_400_000;
            audit.record(next).await.unwrap();
        });
        let day1 = read_lines(&dir.path().join("audit/audit-2025-11-15.ndjson"));
        let day2 = read_lines(&dir.path().join("audit/audit-2025-11-16.ndjson"));
        assert_eq!(day1.len(), 2);
        assert_eq!(day1[0]["action"], "object.deleted");
        assert_eq!(
            day1[0]["details"]["aliases"][0],
            "media/images/x/photo_1.jpg".replace("media", "path:media")
        );
        assert_eq!(day1[1]["action"], "object.renamed");
        assert_eq!(day2.len(), 1);
        let view = read_lines(&dir.path().join("metadata/delete_log.ndjson"));
        assert_eq!(view.len(), 1, "{view:?}");
        assert_eq!(view[0]["hash"], "ab".repeat(32));
        assert_eq!(view[0]["original_name"], "photo.jpg");
        assert_eq!(view[0]["deleted_at"], day1[0]["at"], "the same record");
        assert_eq!(audit.stats().written, 3);
    }

    #[test]
    fn a_durable_reply_comes_after_the_sync_and_groups_share_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::start(dir.path(), Durability::Fsync, vec![DELETE_VIEW]).unwrap();
        let n = 200u64;
        block_on(async {
            let waits: Vec<_> = (0..n)
                .map(|i| {
                    let mut r = sample("object.deleted");
                    r.name = Some(format!("f{i}"));
                    audit.record(r)
                })
                .collect();
            for (i, w) in waits.into_iter().enumerate() {
                w.await.unwrap();
                // Every record answered so far is counted as durable: the reply came
                // after the sync that covered it.
                assert!(audit.stats().durable > i as u64);
            }
        });
        let s = audit.stats();
        assert_eq!(s.written, n);
        assert_eq!(s.durable, n);
        assert!(
            s.syncs < n,
            "queued records share syncs (group commit): {s:?}"
        );
        let lines = read_lines(&dir.path().join("audit/audit-2025-11-15.ndjson"));
        assert_eq!(lines.len(), n as usize);
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(l["name"], format!("f{i}"), "order is kept");
        }
    }

    #[test]
    fn nowait_records_are_written_and_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::start(dir.path(), Durability::Fsync, vec![DELETE_VIEW]).unwrap();
        for _ in 0..5 {
            audit.record_nowait(sample("object.tagged"));
        }
        block_on(audit.flush()).unwrap();
        assert_eq!(audit.stats().durable, 5);
        let lines = read_lines(&dir.path().join("audit/audit-2025-11-15.ndjson"));
        assert_eq!(lines.len(), 5);
        // Dropping the last handle writes what is queued and stops the thread.
        audit.record_nowait(sample("object.tagged"));
        drop(audit);
        let lines = read_lines(&dir.path().join("audit/audit-2025-11-15.ndjson"));
        assert_eq!(lines.len(), 6);
    }

    #[test]
    fn a_torn_tail_is_cut_at_first_open() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("audit")).unwrap();
        let path = dir.path().join("audit/audit-2025-11-15.ndjson");
        fs::write(&path, b"{\"kept\":1}\n{\"torn").unwrap();
        let audit = Audit::start(dir.path(), Durability::None, vec![DELETE_VIEW]).unwrap();
        block_on(audit.record(sample("object.deleted"))).unwrap();
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["kept"], 1);
        assert_eq!(lines[1]["action"], "object.deleted");
        // A file that is one torn line is emptied.
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("x"))
            .unwrap();
        f.write_all(b"no newline").unwrap();
        assert_eq!(cut_torn_tail(&mut f).unwrap(), Some(10));
        assert_eq!(f.metadata().unwrap().len(), 0);
    }

    #[test]
    fn view_paths_must_stay_inside() {
        fn any(_: &AuditRecord) -> Option<Value> {
            Some(json!({}))
        }
        let dir = tempfile::tempdir().unwrap();
        let escape = View {
            path: "../escape.ndjson",
            line: any,
        };
        let audit = Audit::start(dir.path(), Durability::None, vec![escape]).unwrap();
        assert!(block_on(audit.record(sample("object.deleted"))).is_err());
        assert!(!dir.path().parent().unwrap().join("escape.ndjson").exists());
        assert_eq!(audit.stats().failed, 1);
    }
}
