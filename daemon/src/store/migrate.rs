//! Schema migrations: what `Store::open` runs, before the writer thread starts, to bring
//! a data directory written by an older ringbox to this build's [`SCHEMA_VERSION`].
//!
//! The schema version (`schema_version` in the `meta` database, u32 big-endian) names
//! the set of databases and the record layouts a store may hold. [`STEPS`] lists one
//! step per version: the step `from = N` brings a store from N to N + 1. `open` runs the
//! steps from the store's version up, in order, and logs each.
//!
//! A step works in bounded batches (at most [`DEFAULT_BATCH`] records per write
//! transaction), so it never holds a huge transaction (LMDB keeps every dirty page of
//! one in memory) and a store of any size can be migrated. Each batch commits, in the
//! same transaction as its writes, a cursor (`migration.<N+1>.cursor` in `meta`: the
//! last key it handled); the last batch instead deletes the cursor and writes the new
//! schema version. So:
//!
//! * an interrupted migration (kill -9, power loss, ENOSPC) loses at most its current
//!   batch, which is rolled back whole; the next `open` resumes after the cursor;
//! * a store is always in a state this build opens: records not rewritten yet still
//!   decode, because `records` keeps a decoder for every older layout;
//! * a batch is idempotent (records already in the current layout are skipped), so
//!   resuming from any cursor, or from the start, gives the same result.
//!
//! A store whose schema version is newer than this build's is refused before anything
//! is written ("written by a newer ringbox"). Downgrades are not supported: an older
//! ringbox refuses a store once it holds records of a layout it does not know.
//!
//! Databases a step needs are created by `Dbs::create` at every open (LMDB creates a
//! named database in the transaction that first asks for it), not by the steps.

use std::ops::Bound;
use std::time::Instant;

use heed::{Env, RwTxn, WithoutTls};

use super::records::{self, OBJECT_VERSION};
use super::{Dbs, StoreError, META_SCHEMA_VERSION};

/// The schema version this build reads and writes.
///
/// * 1: objects, names, blobs, tokens, meta; one version byte (1) for every record.
/// * 2: per-record-type layout versions; object records of layout 2 (source, media,
///   download statistics, aliases); the `aliases` database.
/// * 3: users: `users`, `usernames`, `user_tokens`, `sessions`, `session_jtis`,
///   `revoked`, and the per-owner indexes `owner_names`, `owner_time`, `owner_blobs`;
///   token records of layout 2 (id, last use); every object has an owner.
/// * 4: collections and share links (`collections`, `collection_members`,
///   `object_collections`, `owner_collections`, `shares`, `share_tokens`,
///   `owner_shares`, `target_shares`) and the expiry time indexes (`expiry`,
///   `access_time`), filled for the objects that exist.
/// * 5: per-owner, per-namespace object counts (`owner_ns_counts`), filled from the
///   `owner_names` index.
pub const SCHEMA_VERSION: u32 = 5;

/// Records per write transaction of a migration step: big enough that the commits
/// (each an fsync) do not dominate, small enough to bound the transaction's memory
/// (a few MiB of dirty pages for typical records).
pub const DEFAULT_BATCH: usize = 1000;

/// How `run` proceeds; tests shorten it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// Records per write transaction.
    pub batch: usize,
    /// Test hook: stop (with an error, as a crash would) after this many batches.
    pub stop_after_batches: Option<usize>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            batch: DEFAULT_BATCH,
            stop_after_batches: None,
        }
    }
}

/// What one batch of a step did.
struct Progress {
    /// Records looked at (decoded or skipped).
    seen: usize,
    /// Records rewritten.
    rewritten: u64,
    /// Records left as they were because they do not decode (`check` reports them).
    undecodable: u64,
    /// The last key handled: where the next batch starts (exclusive).
    last_key: Option<Vec<u8>>,
}

/// One batch of a step: at most `limit` records after `after` (exclusive; `None` = from
/// the start), in the step's transaction.
type BatchFn =
    fn(&Dbs, &mut RwTxn, after: Option<&[u8]>, limit: usize) -> Result<Progress, StoreError>;

/// A step from schema version `from` to `from + 1`.
struct Step {
    from: u32,
    what: &'static str,
    batch: BatchFn,
}

/// Every step, in order. A step is never removed (a store of any older version must
/// still be brought up) and never changed once released.
const STEPS: &[Step] = &[
    Step {
        from: 1,
        what: "rewrite every object record in layout 2 (source, media, downloads, aliases)",
        batch: objects_to_current_layout,
    },
    Step {
        from: 2,
        what: "users: the admin user, token ids, owners and per-owner indexes and usage",
        batch: index_owners,
    },
    Step {
        from: 3,
        what: "expiry: index every object's expiry and last access time",
        batch: index_object_times,
    },
    Step {
        from: 4,
        what: "count every owner's objects per namespace",
        batch: count_owner_namespaces,
    },
];

/// The schema version stored in `meta` (`None` for a new store).
pub(crate) fn stored_version(
    meta: &super::Db,
    txn: &heed::RoTxn<WithoutTls>,
) -> Result<Option<u32>, StoreError> {
    match meta.get(txn, META_SCHEMA_VERSION)? {
        None => Ok(None),
        Some(v) => <[u8; 4]>::try_from(v)
            .map(|b| Some(u32::from_be_bytes(b)))
            .map_err(|_| StoreError::Lmdb("corrupt schema version in the meta database".into())),
    }
}

fn cursor_key(to: u32) -> Vec<u8> {
    format!("migration.{to}.cursor").into_bytes()
}

/// Brings the store from schema version `from` to [`SCHEMA_VERSION`] (nothing when it
/// is there already).
pub(crate) fn run(
    env: &Env<WithoutTls>,
    dbs: &Dbs,
    from: u32,
    opts: Options,
) -> Result<(), StoreError> {
    let mut version = from;
    let mut batches = 0usize;
    while version < SCHEMA_VERSION {
        let step = STEPS.iter().find(|s| s.from == version).ok_or_else(|| {
            StoreError::Lmdb(format!(
                "no migration from schema version {version}; this ringbox cannot open it"
            ))
        })?;
        let to = version + 1;
        let key = cursor_key(to);
        let resumed = {
            let rtxn = env.read_txn()?;
            dbs.meta.get(&rtxn, &key)?.is_some()
        };
        tracing::info!(
            from = version,
            to,
            resumed,
            "schema migration: {}",
            step.what
        );
        let started = Instant::now();
        let (mut rewritten, mut undecodable) = (0u64, 0u64);
        loop {
            if opts.stop_after_batches.is_some_and(|n| batches >= n) {
                return Err(StoreError::Internal(format!(
                    "schema migration {version} -> {to} stopped after {batches} batches \
                     (test hook)"
                )));
            }
            let mut wtxn = env.write_txn()?;
            let cursor = dbs.meta.get(&wtxn, &key)?.map(<[u8]>::to_vec);
            let p = (step.batch)(dbs, &mut wtxn, cursor.as_deref(), opts.batch.max(1))?;
            rewritten += p.rewritten;
            undecodable += p.undecodable;
            batches += 1;
            let done = p.seen < opts.batch.max(1);
            match (&p.last_key, done) {
                (Some(last), false) => dbs.meta.put(&mut wtxn, &key, last)?,
                _ => {
                    dbs.meta.delete(&mut wtxn, &key)?;
                    dbs.meta
                        .put(&mut wtxn, META_SCHEMA_VERSION, &to.to_be_bytes())?;
                }
            }
            wtxn.commit()?;
            if done || p.last_key.is_none() {
                break;
            }
            if batches % 100 == 0 {
                tracing::info!(
                    from = version,
                    to,
                    rewritten,
                    "schema migration in progress"
                );
            }
        }
        if undecodable > 0 {
            tracing::error!(
                undecodable,
                "schema migration left records it cannot decode as they were; run `ringbox check`"
            );
        }
        tracing::info!(
            from = version,
            to,
            rewritten,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "schema migration done"
        );
        version = to;
    }
    Ok(())
}

/// Step 1 -> 2: every object record not in the current layout is decoded (any layout)
/// and written back in the current one.
fn objects_to_current_layout(
    dbs: &Dbs,
    wtxn: &mut RwTxn,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Progress, StoreError> {
    let mut todo: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut p = Progress {
        seen: 0,
        rewritten: 0,
        undecodable: 0,
        last_key: None,
    };
    {
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        for item in dbs.objects.range(wtxn, &(lower, Bound::Unbounded))? {
            let (key, value) = item?;
            p.seen += 1;
            p.last_key = Some(key.to_vec());
            if records::layout_version(value) != Some(OBJECT_VERSION) {
                match records::decode_object(value) {
                    Ok(rec) => todo.push((key.to_vec(), records::encode_object(&rec)?)),
                    Err(e) => {
                        // Left for `check` to report; the migration must not make a
                        // store with one bad record unopenable.
                        tracing::error!(key = ?key, error = %e, "cannot migrate an object record");
                        p.undecodable += 1;
                    }
                }
            }
            if p.seen >= limit {
                break;
            }
        }
    }
    for (key, value) in &todo {
        dbs.objects.put(wtxn, key, value)?;
    }
    p.rewritten = todo.len() as u64;
    Ok(p)
}

/// Step 2 -> 3. The first batch creates the admin user and gives every token an id
/// (and its `user_tokens` entry); every batch then files its objects under their owner
/// (`admin` for objects written before owners existed): the per-owner indexes and the
/// owners' usage counters. Counters are added in the same transaction as the batch's
/// cursor, so a resumed migration never counts an object twice.
fn index_owners(
    dbs: &Dbs,
    wtxn: &mut RwTxn,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Progress, StoreError> {
    use std::collections::HashMap;

    use super::keys;
    use super::tokens::{ensure_admin_user, new_token_id, ADMIN_USER};

    if after.is_none() {
        ensure_admin_user(dbs, wtxn, crate::util::time::now_ms())?;
        let mut tokens = Vec::new();
        for item in dbs.tokens.iter(wtxn)? {
            let (key, value) = item?;
            if let Ok(rec) = records::decode_token(value) {
                if rec.id == [0; 16] {
                    tokens.push((key.to_vec(), rec));
                }
            }
        }
        for (key, mut rec) in tokens {
            rec.id = new_token_id()?;
            dbs.tokens.put(wtxn, &key, &records::encode_token(&rec)?)?;
            if let Ok(ikey) = keys::user_token_key(&rec.user, &rec.id) {
                dbs.user_tokens.put(wtxn, &ikey, &key)?;
            }
        }
    }
    let mut p = Progress {
        seen: 0,
        rewritten: 0,
        undecodable: 0,
        last_key: None,
    };
    let mut batch: Vec<(Vec<u8>, super::ObjectRecord)> = Vec::new();
    {
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        for item in dbs.objects.range(wtxn, &(lower, Bound::Unbounded))? {
            let (key, value) = item?;
            p.seen += 1;
            p.last_key = Some(key.to_vec());
            match records::decode_object(value) {
                Ok(rec) => batch.push((key.to_vec(), rec)),
                Err(e) => {
                    tracing::error!(key = ?key, error = %e, "cannot migrate an object record");
                    p.undecodable += 1;
                }
            }
            if p.seen >= limit {
                break;
            }
        }
    }
    let mut usage: HashMap<String, (u64, u64)> = HashMap::new();
    for (key, mut rec) in batch {
        if rec.owner.is_none() {
            rec.owner = Some(ADMIN_USER.to_string());
            dbs.objects
                .put(wtxn, &key, &records::encode_object(&rec)?)?;
            p.rewritten += 1;
        }
        let owner = rec.owner.clone().unwrap_or_default();
        dbs.owner_names.put(
            wtxn,
            &keys::owner_name_key(&owner, &rec.namespace, &rec.name, &rec.id)?,
            &[],
        )?;
        dbs.owner_time
            .put(wtxn, &keys::owner_time_key(&owner, &rec.id)?, &[])?;
        if let (super::Kind::File, Some(sha)) = (rec.kind, rec.sha256) {
            let bkey = keys::owner_blob_key(&owner, &sha)?;
            let n = dbs
                .owner_blobs
                .get(wtxn, &bkey)?
                .and_then(|v| <[u8; 8]>::try_from(v).ok())
                .map_or(0, u64::from_be_bytes);
            dbs.owner_blobs.put(wtxn, &bkey, &(n + 1).to_be_bytes())?;
        }
        let u = usage.entry(owner).or_default();
        u.0 += rec.size;
        u.1 += 1;
    }
    for (owner, (bytes, count)) in usage {
        if let Some(v) = dbs.users.get(wtxn, owner.as_bytes())? {
            let mut user = records::decode_user(v)?;
            user.usage_bytes += bytes;
            user.object_count += count;
            dbs.users
                .put(wtxn, owner.as_bytes(), &records::encode_user(&user)?)?;
        }
    }
    Ok(p)
}

/// Step 3 -> 4: every object gets its `access_time` entry (and its `expiry` entry when
/// it has an expiry), so the sweeper finds them by range scans from then on. The
/// collection and share databases start empty (created at open). Idempotent: the
/// entries are derived from the record alone.
fn index_object_times(
    dbs: &Dbs,
    wtxn: &mut RwTxn,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Progress, StoreError> {
    use super::expiry::{access_key, expiry_key, KIND_OBJECT};

    let mut p = Progress {
        seen: 0,
        rewritten: 0,
        undecodable: 0,
        last_key: None,
    };
    let mut batch = Vec::new();
    {
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        for item in dbs.objects.range(wtxn, &(lower, Bound::Unbounded))? {
            let (key, value) = item?;
            p.seen += 1;
            p.last_key = Some(key.to_vec());
            match records::decode_object(value) {
                Ok(rec) => batch.push(rec),
                Err(e) => {
                    tracing::error!(key = ?key, error = %e, "cannot index an object record");
                    p.undecodable += 1;
                }
            }
            if p.seen >= limit {
                break;
            }
        }
    }
    for rec in batch {
        if let Some(at) = rec.expires_at_ms {
            dbs.expiry
                .expiry
                .put(wtxn, &expiry_key(at, KIND_OBJECT, &rec.id), &[])?;
        }
        if let Ok(k) = access_key(&rec) {
            dbs.expiry.access_time.put(wtxn, &k, &[])?;
        }
        p.rewritten += 1;
    }
    Ok(p)
}

/// Step 4 -> 5: every key of `owner_names` (`owner \0 ns \0 name \0 id`) adds one to
/// its `owner \0 ns` count. The first batch empties the counts, so a migration started
/// over from the beginning counts each object once; later batches add in the
/// transaction of their cursor, so a resumed one does too.
fn count_owner_namespaces(
    dbs: &Dbs,
    wtxn: &mut RwTxn,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Progress, StoreError> {
    use std::collections::HashMap;

    if after.is_none() {
        dbs.owner_ns_counts.clear(wtxn)?;
    }
    let mut p = Progress {
        seen: 0,
        rewritten: 0,
        undecodable: 0,
        last_key: None,
    };
    let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
    {
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        for item in dbs.owner_names.range(wtxn, &(lower, Bound::Unbounded))? {
            let (key, _) = item?;
            p.seen += 1;
            p.last_key = Some(key.to_vec());
            // `owner \0 ns \0 ...`: neither the owner nor the namespace holds a NUL.
            let mut zeros = key
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == 0)
                .map(|(i, _)| i);
            match (zeros.next(), zeros.next()) {
                (Some(_), Some(end)) => *counts.entry(key[..end].to_vec()).or_default() += 1,
                _ => p.undecodable += 1,
            }
            if p.seen >= limit {
                break;
            }
        }
    }
    for (key, n) in counts {
        let now = dbs
            .owner_ns_counts
            .get(wtxn, &key)?
            .and_then(|v| <[u8; 8]>::try_from(v).ok())
            .map_or(0, u64::from_be_bytes);
        dbs.owner_ns_counts
            .put(wtxn, &key, &(now + n).to_be_bytes())?;
        p.rewritten += 1;
    }
    Ok(p)
}
