//! Offline tools: `ringbox check` (verify, change nothing) and `ringbox gc`.
//!
//! `check` opens the LMDB environment read-only and never writes a file or a record (LMDB
//! still uses its `lock.mdb` reader table, which holds no data). It takes a shared lock
//! on the data directory, so it refuses to run beside a live daemon: changes in flight
//! would show up as false problems. It verifies, and reports each failure as one line
//! an operator can act on:
//!
//! * the schema version is one this build reads (a store of an older schema that was
//!   not migrated yet is checked as it is: every older record layout decodes);
//! * every object record decodes, sits under its own id, has its names index entry, and
//!   a stored or lost managed file has a `sha256`;
//! * every names index entry is well formed and points at an object with that namespace
//!   and name;
//! * every alias of an object has its `aliases` entry pointing at that object, and every
//!   `aliases` entry points at an object that lists it;
//! * every blob record's refcount equals the number of managed file records naming it,
//!   and every referenced hash has a blob record;
//! * every blob record's file exists with the recorded size and its content re-hashes to
//!   its name (every byte is read: this is slow on big stores, by design);
//! * every file under `blobs/` is a blob (64 lowercase hex digits, in its `ab`
//!   directory) with a blob record; orphans are what `gc` removes;
//! * the stored total of blob bytes matches the records.
//!
//! Objects indexed in place (`Source::External`) are not managed blobs: they need no
//! blob record and hold no reference. Their files are checked where they are: present,
//! with the size and mtime the scan recorded (and, with `--hash-scanned`, the recorded
//! SHA-256). A file that vanished or changed is listed in [`CheckReport::scanned`], not
//! as a problem: the next scan brings the index up to date, and until then it is served
//! as 404. A file whose bytes no longer match its hash although its size and mtime do
//! is a problem: it would be served under a wrong ETag, and no rescan notices it.
//!
//! Files left in `tmp/` are not problems (the next start removes them); they are
//! listed in [`CheckReport::tmp_leftovers`].
//!
//! `gc` opens the store like the daemon does (so it must not run beside one: the data
//! directory lock refuses it), runs one full GC pass on the writer thread and closes.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use heed::types::Bytes;
use heed::{Env, RoTxn, WithoutTls};

use super::blobs::{hash_file, parse_blob_file_name, Layout};
use super::keys::{name_key, parse_name_key};
use super::records::{decode_blob, decode_object, BlobRecord, ExternalFile, Kind, Source, State};
use super::writer::{Command, GcReport, Reply};
use super::{
    io_context, lock_data_dir, meta_u64, migrate, newer_schema, open_env, Db, Durability, ObjectId,
    OpenHooks, Sha256, Store, StoreConfig, StoreError, DEFAULT_MAP_SIZE, META_BLOB_BYTES,
};
use crate::util::hex::encode as hex;

/// The result of `check`. Empty `problems` = consistent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// The store's schema version (older than [`migrate::SCHEMA_VERSION`] until the
    /// next start migrates it).
    pub schema_version: u32,
    pub objects: u64,
    pub blobs: u64,
    pub problems: Vec<String>,
    /// Interrupted uploads still in `tmp/` (removed at the next start; not a problem).
    pub tmp_leftovers: Vec<PathBuf>,
    /// Blob files no record points at: what a crash between linking a blob and
    /// committing its record leaves. Reclaimable space (`gc` and every start remove
    /// them), not an inconsistency: no object refers to them.
    pub orphans: Vec<PathBuf>,
    /// Files indexed in place.
    pub scanned: ScannedReport,
}

/// What `check` found of the files indexed in place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScannedReport {
    /// Objects whose file was checked.
    pub files: u64,
    /// Objects whose file is gone (`"<id> <path>"`).
    pub missing: Vec<String>,
    /// Objects whose file has another size or mtime than indexed.
    pub changed: Vec<String>,
    /// Whether contents were hashed (`--hash-scanned`).
    pub hashed: bool,
}

impl CheckReport {
    // Store API the daemon does not call yet; allowed so the binary crate's dead-code
    // lint stays quiet until it does.
    #[allow(dead_code)]
    pub fn is_consistent(&self) -> bool {
        self.problems.is_empty()
    }
}

/// `ringbox check --data DIR`: verifies the store without modifying it.
#[allow(dead_code)] // the CLI calls `check_with`; tests call this
pub fn check(data_dir: &Path) -> Result<CheckReport, StoreError> {
    check_with(data_dir, false)
}

/// [`check`], hashing the files indexed in place when `hash_scanned`.
pub fn check_with(data_dir: &Path, hash_scanned: bool) -> Result<CheckReport, StoreError> {
    let layout = Layout::new(data_dir);
    let meta_dir = layout.meta_dir();
    if !meta_dir.join("data.mdb").is_file() {
        return Err(StoreError::Io(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no ringbox store in {}: {} does not exist",
                data_dir.display(),
                meta_dir.join("data.mdb").display()
            ),
        )));
    }
    let _lock = lock_data_dir(data_dir, false, false)?;
    let env = open_env(&meta_dir, DEFAULT_MAP_SIZE, Durability::Fsync, true)?;
    let mut report = CheckReport::default();
    let mut problems = Vec::new();
    let mut expected_refs: HashMap<Sha256, u64> = HashMap::new();
    let mut blob_records: Vec<(Sha256, BlobRecord)> = Vec::new();
    let mut external: Vec<(ObjectId, ExternalFile, Option<Sha256>)> = Vec::new();
    let stored_total;
    {
        let rtxn = env.read_txn()?;
        let dbs = CheckDbs::open(&env, &rtxn)?;
        report.schema_version = migrate::stored_version(&dbs.meta, &rtxn)?.ok_or_else(|| {
            StoreError::Lmdb(format!(
                "{} has no schema version; is this a ringbox data directory?",
                meta_dir.display()
            ))
        })?;
        if report.schema_version > migrate::SCHEMA_VERSION {
            return Err(newer_schema(&meta_dir, report.schema_version));
        }
        for item in dbs.objects.iter(&rtxn)? {
            let (key, value) = item?;
            report.objects += 1;
            let rec = match decode_object(value) {
                Ok(r) => r,
                Err(e) => {
                    problems.push(format!("object under key {}: {e}", hex(key)));
                    continue;
                }
            };
            let id = rec.id;
            if key != id.as_bytes() {
                problems.push(format!("object {id}: stored under the key {}", hex(key)));
            }
            match name_key(&rec.namespace, &rec.name, &id) {
                Ok(k) => {
                    if dbs.names.get(&rtxn, &k)?.is_none() {
                        problems.push(format!(
                            "object {id}: {:?}/{:?} is missing from the names index",
                            rec.namespace, rec.name
                        ));
                    }
                }
                Err(e) => problems.push(format!("object {id}: {e}")),
            }
            check_aliases(&dbs, &rtxn, &id, &rec.aliases, &mut problems)?;
            // A file indexed in place (external) has no blob record and holds no
            // reference; its file is checked where it is, below.
            if let (Kind::File, Source::External(f)) = (rec.kind, &rec.source) {
                if rec.state == State::Stored && rec.sha256.is_none() {
                    problems.push(format!(
                        "object {id}: file indexed in place without a sha256"
                    ));
                }
                external.push((id, f.clone(), rec.sha256));
            }
            if rec.kind == Kind::File && rec.is_managed() {
                match (rec.state, rec.sha256) {
                    (State::Stored | State::Lost, None) => problems.push(format!(
                        "object {id}: {:?} file without a sha256",
                        rec.state
                    )),
                    (State::Pending, Some(_)) => {
                        problems.push(format!("object {id}: pending file with a sha256"))
                    }
                    _ => {}
                }
                if let Some(sha) = rec.sha256 {
                    *expected_refs.entry(sha).or_default() += 1;
                }
            }
        }
        for item in dbs.names.iter(&rtxn)? {
            let (key, _) = item?;
            let Some(nk) = parse_name_key(key) else {
                problems.push(format!("malformed names index key {}", hex(key)));
                continue;
            };
            let entry = format!(
                "names index entry {:?}/{:?} -> {}",
                nk.namespace, nk.name, nk.id
            );
            match dbs.objects.get(&rtxn, nk.id.as_bytes())? {
                None => problems.push(format!("{entry}: no such object")),
                Some(v) => {
                    if let Ok(rec) = decode_object(v) {
                        if rec.namespace != nk.namespace || rec.name != nk.name {
                            problems.push(format!(
                                "{entry}: stale (the object is {:?}/{:?})",
                                rec.namespace, rec.name
                            ));
                        }
                    }
                }
            }
        }
        if let Some(aliases) = &dbs.aliases {
            for item in aliases.iter(&rtxn)? {
                let (key, value) = item?;
                let alias = String::from_utf8_lossy(key);
                let Ok(id) = ObjectId::from_slice(value) else {
                    problems.push(format!("alias {alias:?}: malformed id {}", hex(value)));
                    continue;
                };
                match dbs.objects.get(&rtxn, id.as_bytes())? {
                    None => problems.push(format!("alias {alias:?} -> {id}: no such object")),
                    Some(v) => {
                        if let Ok(rec) = decode_object(v) {
                            if !rec.aliases.iter().any(|a| a.as_bytes() == key) {
                                problems.push(format!(
                                    "alias {alias:?} -> {id}: stale (the object does not list it)"
                                ));
                            }
                        }
                    }
                }
            }
        }
        for item in dbs.blobs.iter(&rtxn)? {
            let (key, value) = item?;
            let Ok(sha) = Sha256::try_from(key) else {
                problems.push(format!("blob record with a malformed key {}", hex(key)));
                continue;
            };
            match decode_blob(value) {
                Ok(r) => blob_records.push((sha, r)),
                Err(e) => problems.push(format!("blob {}: {e}", hex(&sha))),
            }
        }
        stored_total = meta_u64(&dbs.meta, &rtxn, META_BLOB_BYTES)?;
    }
    // The metadata is copied out; the long part (hashing every file) holds no txn.
    drop(env);
    report.blobs = blob_records.len() as u64;

    let mut total = 0u128;
    for (sha, rec) in &blob_records {
        let name = hex(sha);
        total += u128::from(rec.size);
        let refs = expected_refs.remove(sha).unwrap_or(0);
        if rec.refcount != refs {
            problems.push(format!(
                "blob {name}: refcount is {} but {refs} objects reference it",
                rec.refcount
            ));
        }
        let path = layout.blob_path(sha);
        match fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                problems.push(format!("blob {name}: file {} is missing", path.display()))
            }
            Err(e) => problems.push(format!("blob {name}: cannot stat {}: {e}", path.display())),
            Ok(m) if !m.is_file() => problems.push(format!(
                "blob {name}: {} is not a regular file",
                path.display()
            )),
            Ok(m) if m.len() != rec.size => problems.push(format!(
                "blob {name}: file {} has {} bytes but the record says {} (truncated or \
                 overwritten)",
                path.display(),
                m.len(),
                rec.size
            )),
            Ok(_) => match hash_file(&path) {
                Ok((h, _)) if h == *sha => {}
                Ok(_) => problems.push(format!(
                    "blob {name}: the content of {} does not match its SHA-256 (corrupted)",
                    path.display()
                )),
                Err(e) => {
                    problems.push(format!("blob {name}: cannot read {}: {e}", path.display()))
                }
            },
        }
    }
    let mut unrecorded: Vec<_> = expected_refs.into_iter().collect();
    unrecorded.sort_unstable();
    for (sha, n) in unrecorded {
        problems.push(format!(
            "blob {}: referenced by {n} objects but has no blob record",
            hex(&sha)
        ));
    }
    if total != u128::from(stored_total) {
        problems.push(format!(
            "the stored total of blob bytes is {stored_total} but the blob records add up to \
             {total}"
        ));
    }

    report.scanned = check_scanned(&external, hash_scanned, &mut problems);
    let recorded: HashSet<Sha256> = blob_records.iter().map(|(s, _)| *s).collect();
    report.orphans = check_blob_files(&layout, &recorded, &mut problems)?;
    report.tmp_leftovers = tmp_leftovers(&layout)?;
    report.problems = problems;
    Ok(report)
}

/// Files indexed in place: present, same size and mtime, and (optionally) same hash.
fn check_scanned(
    files: &[(ObjectId, ExternalFile, Option<Sha256>)],
    hash: bool,
    problems: &mut Vec<String>,
) -> ScannedReport {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::MetadataExt as _;
    let mut r = ScannedReport {
        hashed: hash,
        ..ScannedReport::default()
    };
    for (id, f, sha) in files {
        r.files += 1;
        let path = Path::new(std::ffi::OsStr::from_bytes(&f.path));
        let line = format!("{id} {}", path.display());
        match fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => r.missing.push(line),
            Err(e) => problems.push(format!("object {id}: cannot stat {}: {e}", path.display())),
            Ok(m) => {
                let mtime = m.mtime().saturating_mul(1_000_000_000) + m.mtime_nsec();
                if !m.is_file() || m.len() != f.size || mtime != f.mtime_ns {
                    r.changed.push(line);
                } else if let (true, Some(sha)) = (hash, sha) {
                    match hash_file(path) {
                        Ok((h, _)) if h == *sha => {}
                        Ok(_) => problems.push(format!(
                            "object {id}: the content of {} does not match its SHA-256 although                              its size and mtime do (modified in place with its mtime restored);                              touch the file so the next scan indexes it again",
                            path.display()
                        )),
                        Err(e) => problems.push(format!(
                            "object {id}: cannot read {}: {e}",
                            path.display()
                        )),
                    }
                }
            }
        }
    }
    r
}

fn check_blob_files(
    layout: &Layout,
    recorded: &HashSet<Sha256>,
    problems: &mut Vec<String>,
) -> Result<Vec<PathBuf>, StoreError> {
    let mut orphans = Vec::new();
    let blobs_dir = layout.blobs_dir();
    let top = fs::read_dir(&blobs_dir)
        .map_err(|e| io_context(e, format!("cannot read {}", blobs_dir.display())))?;
    let dirs: HashSet<PathBuf> = (0..=255u8).map(|d| layout.blob_dir(d)).collect();
    for entry in top {
        let entry =
            entry.map_err(|e| io_context(e, format!("cannot read {}", blobs_dir.display())))?;
        if !dirs.contains(&entry.path()) {
            problems.push(format!(
                "unexpected entry {} (not a blob directory)",
                entry.path().display()
            ));
        }
    }
    for d in 0..=255u8 {
        let dir = layout.blob_dir(d);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!("cannot read blob directory {}: {e}", dir.display()));
                continue;
            }
        };
        for entry in entries {
            let entry =
                entry.map_err(|e| io_context(e, format!("cannot read {}", dir.display())))?;
            let path = entry.path();
            match parse_blob_file_name(&entry.file_name()) {
                None => problems.push(format!(
                    "unexpected file {} (not named like a blob)",
                    path.display()
                )),
                Some(sha) if sha[0] != d => problems.push(format!(
                    "blob file {} is in the wrong directory",
                    path.display()
                )),
                Some(sha) if !recorded.contains(&sha) => orphans.push(path),
                Some(_) => {}
            }
        }
    }
    Ok(orphans)
}

fn tmp_leftovers(layout: &Layout) -> Result<Vec<PathBuf>, StoreError> {
    let dir = layout.tmp_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_context(e, format!("cannot read {}", dir.display()))),
    };
    let mut out = Vec::new();
    for entry in entries {
        out.push(
            entry
                .map_err(|e| io_context(e, format!("cannot read {}", dir.display())))?
                .path(),
        );
    }
    out.sort();
    Ok(out)
}

/// The databases `check` reads. Those a store of an older schema may lack are optional:
/// a read-only environment cannot create them, and their absence is not a problem
/// before the migration that adds them.
struct CheckDbs {
    objects: Db,
    names: Db,
    blobs: Db,
    meta: Db,
    /// Since schema version 2.
    aliases: Option<Db>,
}

impl CheckDbs {
    fn open(env: &Env<WithoutTls>, rtxn: &RoTxn<WithoutTls>) -> Result<CheckDbs, StoreError> {
        let open = |name: &str| env.open_database::<Bytes, Bytes>(rtxn, Some(name));
        let required = |name: &str| {
            open(name)?.ok_or_else(|| {
                StoreError::Lmdb(format!(
                    "{} has no '{name}' database; is this a ringbox data directory?",
                    env.path().display()
                ))
            })
        };
        Ok(CheckDbs {
            objects: required("objects")?,
            names: required("names")?,
            blobs: required("blobs")?,
            meta: required("meta")?,
            aliases: open("aliases")?,
        })
    }
}

/// Every alias of object `id` must be indexed and point back at it.
fn check_aliases(
    dbs: &CheckDbs,
    rtxn: &RoTxn<WithoutTls>,
    id: &ObjectId,
    aliases: &[String],
    problems: &mut Vec<String>,
) -> Result<(), StoreError> {
    for alias in aliases {
        let indexed = match &dbs.aliases {
            Some(db) if !alias.is_empty() && alias.len() <= super::keys::MAX_ALIAS_BYTES => {
                db.get(rtxn, alias.as_bytes())?
            }
            _ => None,
        };
        match indexed {
            Some(v) if v == id.as_bytes() => {}
            Some(v) => problems.push(format!(
                "object {id}: its alias {alias:?} names another object ({})",
                ObjectId::from_slice(v).map_or_else(|_| hex(v), |o| o.to_string())
            )),
            None => problems.push(format!(
                "object {id}: its alias {alias:?} is missing from the aliases index"
            )),
        }
    }
    Ok(())
}

/// `ringbox gc --data DIR`: opens the store, runs one full GC pass, closes it.
pub fn gc(data_dir: &Path) -> Result<GcReport, StoreError> {
    let hooks = OpenHooks {
        background_gc: false,
        ..OpenHooks::default()
    };
    let store = Store::open_with(StoreConfig::new(data_dir), hooks)?;
    match store.writer().submit_blocking(Command::Gc)? {
        Reply::Gc(report) => Ok(report),
        other => Err(StoreError::Lmdb(format!(
            "gc got an unexpected reply: {other:?}"
        ))),
    }
}
