//! The files an ingestion leaves under `<root>/json/`, in RhinoBox's layout:
//!
//! * `json/<sql|nosql>/<namespace>/batch_<YYYYMMDDTHHMMSSZ>_<NNNN>.ndjson`: the batch's
//!   documents, one JSON object per line, as validated (RhinoBox's name is
//!   `batch_<timestamp>.ndjson`; two calls within one second would overwrite each other,
//!   so a sequence number follows the timestamp: `_0001`, `_0002`, ... restarting at 1
//!   each second. The name is taken with `link(2)`, which fails rather than replaces,
//!   so it stays unique across restarts too.)
//! * `json/sql/<table>/schema.json`: the table's current schema (SQL only), rewritten
//!   by every batch that goes into the table.
//! * `json/ingest_log.ndjson`: one line per ingestion.
//!
//! Crash safety: batch and schema files are written to `json/.tmp/`, fsynced, then
//! linked (batch) or renamed (schema) into place and their directory fsynced; a
//! directory created on the way is made durable by fsyncing its parent. A crash leaves
//! either no file or the whole file; leftovers in `json/.tmp/` are removed at open. The
//! log is append-only: a line is one `write` then `fdatasync`; a crash in the middle of
//! one can leave a torn last line, which [`BatchFiles::open`] cuts off. With
//! [`Durability::None`] no fsync happens (a crash of the process still loses nothing
//! written; a power loss may).
//!
//! Paths returned to callers are relative to `<root>` with `/` separators, as the seed
//! shows them (`json/sql/orders/batch_20251115T110315Z_0001.ndjson`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use super::decision::Engine;
use super::error::IngestError;
use crate::store::blobs::fsync_dir;
use crate::store::Durability;
use crate::util::time::rfc3339_ms;

/// The log of ingestions, relative to the root.
pub const LOG_PATH: &str = "json/ingest_log.ndjson";

/// Writes batch, schema and log files under one root.
#[derive(Debug)]
pub struct BatchFiles {
    root: PathBuf,
    durability: Durability,
    /// The timestamp of the last batch name and the sequence number used with it.
    last_stamp: String,
    seq: u32,
    tmp_counter: u64,
}

/// `20251115T110315Z` for a time in milliseconds since the epoch.
pub fn compact_utc(ms: i64) -> String {
    // rfc3339_ms gives `2025-11-15T11:03:15.123Z`; keep the digits up to the seconds.
    let full = rfc3339_ms(ms);
    let mut s = String::with_capacity(16);
    for (i, c) in full.char_indices() {
        if i >= 19 {
            break;
        }
        if c.is_ascii_digit() || c == 'T' {
            s.push(c);
        }
    }
    s.push('Z');
    s
}

impl BatchFiles {
    /// Prepares `<root>/json/`: creates it, empties `json/.tmp/`, and cuts a torn last
    /// line off the ingest log.
    pub fn open(root: &Path, durability: Durability) -> Result<Self, IngestError> {
        let files = BatchFiles {
            root: root.to_path_buf(),
            durability,
            last_stamp: String::new(),
            seq: 0,
            tmp_counter: 0,
        };
        files.make_dirs(&["json", ".tmp"])?;
        let tmp = root.join("json").join(".tmp");
        let entries = fs::read_dir(&tmp)
            .map_err(|e| IngestError::io(format!("cannot read {}", tmp.display()), e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove an ingest temp file");
            }
        }
        files.repair_log()?;
        Ok(files)
    }

    /// The root directory the relative paths start from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn sync(&self) -> bool {
        self.durability == Durability::Fsync
    }

    /// Creates `<root>/<parts...>` one component at a time; each directory created is
    /// made durable by fsyncing its parent.
    fn make_dirs(&self, parts: &[&str]) -> Result<PathBuf, IngestError> {
        let mut dir = self.root.clone();
        for part in parts {
            let parent = dir.clone();
            dir.push(part);
            match fs::create_dir(&dir) {
                Ok(()) => {
                    if self.sync() {
                        fsync_dir(&parent).map_err(|e| {
                            IngestError::io(format!("cannot fsync {}", parent.display()), e)
                        })?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => {
                    return Err(IngestError::io(
                        format!("cannot create {}", dir.display()),
                        e,
                    ))
                }
            }
        }
        Ok(dir)
    }

    /// Writes `bytes` to a new temp file in `json/.tmp/`, fsynced.
    fn write_temp(&mut self, bytes: &[u8]) -> Result<PathBuf, IngestError> {
        self.tmp_counter += 1;
        let path = self.root.join("json").join(".tmp").join(format!(
            "{}-{}.tmp",
            std::process::id(),
            self.tmp_counter
        ));
        let res = (|| {
            let mut f = File::create(&path)?;
            f.write_all(bytes)?;
            if self.sync() {
                f.sync_data()?;
            }
            Ok(())
        })();
        res.map_err(|e| {
            let _ = fs::remove_file(&path);
            IngestError::io(format!("cannot write {}", path.display()), e)
        })?;
        Ok(path)
    }

    /// Writes the documents as NDJSON to a new batch file; returns its relative path.
    pub fn write_batch(
        &mut self,
        engine: Engine,
        namespace: &str,
        docs: &[Map<String, Value>],
        now_ms: i64,
    ) -> Result<String, IngestError> {
        let mut buf = Vec::with_capacity(docs.len() * 64);
        for d in docs {
            // Serialising a Map of Values cannot fail.
            serde_json::to_writer(&mut buf, d)
                .map_err(|e| IngestError::BadRequest(e.to_string()))?;
            buf.push(b'\n');
        }
        let dir = self.make_dirs(&["json", engine.as_str(), namespace])?;
        let tmp = self.write_temp(&buf)?;
        let stamp = compact_utc(now_ms);
        if stamp != self.last_stamp {
            self.last_stamp = stamp.clone();
            self.seq = 0;
        }
        let mut attempts = 0;
        let name = loop {
            self.seq += 1;
            let name = format!("batch_{stamp}_{:04}.ndjson", self.seq);
            match fs::hard_link(&tmp, dir.join(&name)) {
                Ok(()) => break name,
                // Taken (a batch of an earlier process in this same second): next number.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100_000 => {
                    attempts += 1;
                }
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(IngestError::io(
                        format!("cannot create a batch file in {}", dir.display()),
                        e,
                    ));
                }
            }
        };
        let _ = fs::remove_file(&tmp);
        if self.sync() {
            fsync_dir(&dir)
                .map_err(|e| IngestError::io(format!("cannot fsync {}", dir.display()), e))?;
        }
        Ok(format!("json/{}/{namespace}/{name}", engine.as_str()))
    }

    /// Replaces `json/sql/<table>/schema.json`; returns its relative path.
    pub fn write_schema(
        &mut self,
        table: &str,
        payload: &impl Serialize,
    ) -> Result<String, IngestError> {
        let mut bytes = serde_json::to_vec_pretty(payload)
            .map_err(|e| IngestError::BadRequest(e.to_string()))?;
        bytes.push(b'\n');
        let dir = self.make_dirs(&["json", "sql", table])?;
        let tmp = self.write_temp(&bytes)?;
        let dest = dir.join("schema.json");
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_file(&tmp);
            return Err(IngestError::io(
                format!("cannot write {}", dest.display()),
                e,
            ));
        }
        if self.sync() {
            fsync_dir(&dir)
                .map_err(|e| IngestError::io(format!("cannot fsync {}", dir.display()), e))?;
        }
        Ok(format!("json/sql/{table}/schema.json"))
    }

    /// Appends one line to the ingest log.
    pub fn append_log(&self, record: &impl Serialize) -> Result<(), IngestError> {
        let mut line =
            serde_json::to_vec(record).map_err(|e| IngestError::BadRequest(e.to_string()))?;
        line.push(b'\n');
        let path = self.root.join(LOG_PATH);
        let existed = path.exists();
        let res = (|| {
            let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
            f.write_all(&line)?;
            if self.sync() {
                f.sync_data()?;
                if !existed {
                    fsync_dir(&self.root.join("json"))?;
                }
            }
            Ok(())
        })();
        res.map_err(|e| IngestError::io(format!("cannot append to {}", path.display()), e))
    }

    /// Removes a file this writer created (best effort: used to undo a batch file whose
    /// transaction failed).
    pub fn remove(&self, rel: &str) {
        let path = self.root.join(rel);
        if let Err(e) = fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a batch file");
        }
    }

    /// Cuts a torn last line (no final newline) off the log.
    fn repair_log(&self) -> Result<(), IngestError> {
        let path = self.root.join(LOG_PATH);
        let ctx = |e| IngestError::io(format!("cannot repair {}", path.display()), e);
        let mut f = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ctx(e)),
        };
        let len = f.metadata().map_err(ctx)?.len();
        let mut end = len;
        let mut buf = vec![0u8; 64 * 1024];
        // Walk back from the end to the last newline.
        let keep = loop {
            if end == 0 {
                break 0;
            }
            let start = end.saturating_sub(buf.len() as u64);
            let chunk = &mut buf[..(end - start) as usize];
            f.seek(SeekFrom::Start(start)).map_err(ctx)?;
            f.read_exact(chunk).map_err(ctx)?;
            if end == len && chunk.last() == Some(&b'\n') {
                return Ok(()); // intact
            }
            if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
                break start + i as u64 + 1;
            }
            end = start;
        };
        tracing::warn!(
            path = %path.display(),
            cut = len - keep,
            "ingest log ended in a torn line (a crash while appending); cutting it off"
        );
        f.set_len(keep).map_err(ctx)?;
        if self.sync() {
            f.sync_all().map_err(ctx)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn docs() -> Vec<Map<String, Value>> {
        vec![
            json!({"a": 1}).as_object().unwrap().clone(),
            json!({"a": 2, "b": "x"}).as_object().unwrap().clone(),
        ]
    }

    #[test]
    fn compact_stamp() {
        assert_eq!(compact_utc(1_763_204_595_123), "20251115T110315Z");
        assert_eq!(compact_utc(0), "19700101T000000Z");
    }

    #[test]
    fn batch_names_are_unique_within_a_second_and_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_763_204_595_000;
        let mut f = BatchFiles::open(dir.path(), Durability::Fsync).unwrap();
        let a = f.write_batch(Engine::Sql, "orders", &docs(), now).unwrap();
        let b = f
            .write_batch(Engine::Sql, "orders", &docs(), now + 10)
            .unwrap();
        assert_eq!(a, "json/sql/orders/batch_20251115T110315Z_0001.ndjson");
        assert_eq!(b, "json/sql/orders/batch_20251115T110315Z_0002.ndjson");
        let c = f
            .write_batch(Engine::Nosql, "orders", &docs(), now + 1000)
            .unwrap();
        assert_eq!(c, "json/nosql/orders/batch_20251115T110316Z_0001.ndjson");
        // a new process in the same second does not overwrite
        let mut g = BatchFiles::open(dir.path(), Durability::None).unwrap();
        let d = g.write_batch(Engine::Sql, "orders", &docs(), now).unwrap();
        assert_eq!(d, "json/sql/orders/batch_20251115T110315Z_0003.ndjson");
        let text = fs::read_to_string(dir.path().join(&a)).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"a\":2,\"b\":\"x\"}\n");
        // nothing left in the temp directory
        assert_eq!(
            fs::read_dir(dir.path().join("json/.tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn schema_is_replaced_and_log_appended() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = BatchFiles::open(dir.path(), Durability::Fsync).unwrap();
        assert_eq!(
            f.write_schema("orders", &json!({"v": 1})).unwrap(),
            "json/sql/orders/schema.json"
        );
        f.write_schema("orders", &json!({"v": 2})).unwrap();
        let v: Value = serde_json::from_slice(
            &fs::read(dir.path().join("json/sql/orders/schema.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(v["v"], 2);
        f.append_log(&json!({"n": 1})).unwrap();
        f.append_log(&json!({"n": 2})).unwrap();
        let log = fs::read_to_string(dir.path().join(LOG_PATH)).unwrap();
        assert_eq!(log, "{\"n\":1}\n{\"n\":2}\n");
    }

    #[test]
    fn torn_log_line_and_temp_leftovers_are_cleaned_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let f = BatchFiles::open(dir.path(), Durability::None).unwrap();
            f.append_log(&json!({"n": 1})).unwrap();
        }
        let log = dir.path().join(LOG_PATH);
        let mut raw = OpenOptions::new().append(true).open(&log).unwrap();
        raw.write_all(b"{\"n\":2,\"tor").unwrap();
        fs::write(dir.path().join("json/.tmp/99-1.tmp"), b"partial").unwrap();
        BatchFiles::open(dir.path(), Durability::None).unwrap();
        assert_eq!(fs::read_to_string(&log).unwrap(), "{\"n\":1}\n");
        assert_eq!(
            fs::read_dir(dir.path().join("json/.tmp")).unwrap().count(),
            0
        );
        // a log that is one torn line is emptied; an intact one is left alone
        fs::write(&log, b"{\"torn").unwrap();
        BatchFiles::open(dir.path(), Durability::None).unwrap();
        assert_eq!(fs::read(&log).unwrap(), b"");
        fs::write(&log, b"{}\n").unwrap();
        BatchFiles::open(dir.path(), Durability::None).unwrap();
        assert_eq!(fs::read(&log).unwrap(), b"{}\n");
    }
}
