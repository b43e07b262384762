//! Opening stores of older schemas: the version-1 fixtures written by an older ringbox,
//! an interrupted migration, and a store of a newer schema.

use std::collections::BTreeMap;
use std::path::PathBuf;

use heed::types::Bytes;

use super::*;
use crate::store::records::{encode_object_v1, layout_version, ObjectRecordV1};

type Raw = BTreeMap<Vec<u8>, Vec<u8>>;

/// Unpacks `tests/fixtures/<name>` into `<dir>/data` (the layout `config` expects).
fn unpack(name: &str, dir: &Path) -> PathBuf {
    let data = dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let archive = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    let status = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&data)
        .status()
        .unwrap();
    assert!(status.success(), "cannot unpack {}", archive.display());
    data
}

/// Every key and value of one database, read with no store open.
fn raw_db(data: &Path, db: &str) -> Raw {
    let env = open_env(&data.join("meta"), 1 << 30, Durability::None, true).unwrap();
    let rtxn = env.read_txn().unwrap();
    let out = match env.open_database::<Bytes, Bytes>(&rtxn, Some(db)).unwrap() {
        None => Raw::new(),
        Some(d) => d
            .iter(&rtxn)
            .unwrap()
            .map(|item| {
                let (k, v) = item.unwrap();
                (k.to_vec(), v.to_vec())
            })
            .collect(),
    };
    drop(rtxn);
    drop(env);
    out
}

fn schema_version(data: &Path) -> u32 {
    let meta = raw_db(data, "meta");
    u32::from_be_bytes(meta[META_SCHEMA_VERSION].as_slice().try_into().unwrap())
}

/// Writes raw values into one database with no store open.
fn raw_put(data: &Path, db: &str, pairs: &[(Vec<u8>, Vec<u8>)]) {
    let env = open_env(&data.join("meta"), 1 << 30, Durability::None, false).unwrap();
    let mut wtxn = env.write_txn().unwrap();
    let d = env
        .create_database::<Bytes, Bytes>(&mut wtxn, Some(db))
        .unwrap();
    for (k, v) in pairs {
        d.put(&mut wtxn, k, v).unwrap();
    }
    wtxn.commit().unwrap();
    drop(env);
}

fn layouts(raw: &Raw) -> BTreeMap<u8, usize> {
    let mut out = BTreeMap::new();
    for v in raw.values() {
        *out.entry(layout_version(v).unwrap()).or_default() += 1;
    }
    out
}

fn hooks(batch: usize, stop_after_batches: Option<usize>) -> OpenHooks {
    OpenHooks {
        background_gc: false,
        migration: migrate::Options {
            batch,
            stop_after_batches,
        },
    }
}

/// Opens a version-1 fixture and checks that the migration keeps every object exactly
/// (as the version-1 decoder reads it), rewrites it in the current layout, passes
/// `check`, and that opening again changes nothing.
fn migrate_fixture(name: &str, files: usize, texts: usize) {
    let dir = tempfile::tempdir().unwrap();
    let data = unpack(name, dir.path());
    assert_eq!(schema_version(&data), 1);
    let before = raw_db(&data, "objects");
    assert_eq!(layouts(&before), BTreeMap::from([(1, before.len())]));
    let old: Vec<ObjectRecord> = before
        .values()
        .map(|v| records::decode_object(v).unwrap())
        .collect();
    let blobs_before = raw_db(&data, "blobs");
    let names_before = raw_db(&data, "names");
    // `check` reads a store that was not migrated yet (and has no aliases database).
    let report = check(&data).unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
    assert_eq!(report.schema_version, 1);
    assert_eq!(report.objects as usize, old.len());

    // What the fixture holds (see its README), read through the version-1 decoder.
    let in_ns = |ns: &str| old.iter().filter(|o| o.namespace == ns).collect::<Vec<_>>();
    let stored: Vec<_> = in_ns("files")
        .into_iter()
        .filter(|o| o.state == State::Stored)
        .collect();
    assert_eq!(stored.len(), files);
    let mut sizes: Vec<u64> = stored.iter().map(|o| o.size).collect();
    sizes.sort_unstable();
    assert_eq!(
        sizes,
        (1..=files as u64).map(|k| 10 * k).collect::<Vec<_>>()
    );
    for o in &stored {
        assert_eq!(o.kind, Kind::File);
        assert!(o.sha256.is_some());
        assert_eq!(o.owner.as_deref(), Some("admin"));
        assert_eq!(o.tags.len(), 2);
        assert_eq!(o.tags[0], "a");
        assert!(
            ["b0", "b1", "b2"].contains(&o.tags[1].as_str()),
            "{:?}",
            o.tags
        );
    }
    let renamed: Vec<_> = stored.iter().filter(|o| o.name == "renamed.bin").collect();
    assert_eq!(renamed.len(), 1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&renamed[0].metadata_json).unwrap(),
        serde_json::json!({"k": "v", "n": 1})
    );
    assert_eq!(stored.iter().filter(|o| o.metadata_json != "{}").count(), 1);
    let other = in_ns("other");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].name, "dup.bin");
    assert_eq!(
        other[0].sha256, renamed[0].sha256,
        "the duplicate shares a blob"
    );
    let pending: Vec<_> = old.iter().filter(|o| o.state == State::Pending).collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].namespace.as_str(), pending[0].name.as_str()),
        ("files", "pending.txt")
    );
    assert_eq!(
        (pending[0].kind, pending[0].sha256, pending[0].size),
        (Kind::File, None, 0)
    );
    let notes = in_ns("notes");
    assert_eq!(notes.len(), texts);
    for o in &notes {
        let i: u64 = o.name["note-".len()..o.name.len() - ".txt".len()]
            .parse()
            .unwrap();
        assert_eq!(o.kind, Kind::Text);
        assert_eq!(
            o.content.as_deref(),
            Some(format!("note number {i}").as_str())
        );
        assert_eq!(o.size, o.content.as_ref().unwrap().len() as u64);
        assert_eq!(o.tags, ["t"]);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&o.metadata_json).unwrap(),
            serde_json::json!({ "i": i })
        );
    }
    assert_eq!(old.len(), files + 1 + 1 + texts);
    let blob_total: u64 = (1..=files as u64).map(|k| 10 * k).sum();

    let store = Store::open_with(config(dir.path(), Durability::None), hooks(7, None)).unwrap();
    assert!(
        !store.admin_token_created(),
        "the fixture's admin token is kept"
    );
    let token = fs::read_to_string(store.admin_token_path()).unwrap();
    assert!(store
        .authenticate(token.trim_end().as_bytes())
        .unwrap()
        .is_some());
    for o in &old {
        let now = store.get_object(o.id).unwrap().unwrap();
        assert_eq!(&now, o);
        assert_eq!(now.source, Source::Managed);
        assert_eq!(
            (now.media.as_ref(), now.downloads, now.aliases.len()),
            (None, 0, 0)
        );
        assert_eq!(
            store
                .get_by_name(&o.namespace, &o.name)
                .unwrap()
                .map(|r| r.id),
            Some(o.id)
        );
        match (o.kind, o.sha256) {
            (Kind::File, Some(sha)) => assert!(store.blob_path(&sha).is_file()),
            // A text object's sha256 is its content's hash; no blob holds it.
            (Kind::Text, Some(sha)) => assert_eq!(store.get_blob(&sha).unwrap(), None),
            _ => {}
        }
    }
    // Blobs and refcounts: one per stored file, the duplicate's referenced twice.
    for o in &stored {
        let blob = store.get_blob(&o.sha256.unwrap()).unwrap().unwrap();
        assert_eq!(blob.size, o.size);
        assert_eq!(
            blob.refcount,
            if o.sha256 == other[0].sha256 { 2 } else { 1 }
        );
        let bytes = fs::read(store.blob_path(&o.sha256.unwrap())).unwrap();
        assert_eq!(sha(&bytes), o.sha256.unwrap());
    }
    let listed = list_all(&store, lq(None, None, None, 100), 10_000).0;
    assert_eq!(listed.len(), old.len());
    let stats = store.stats().unwrap();
    assert_eq!(
        stats,
        StoreStats {
            objects: old.len() as u64,
            blobs: files as u64,
            blob_bytes: blob_total
        }
    );
    drop(store);

    assert_eq!(schema_version(&data), migrate::SCHEMA_VERSION);
    let after = raw_db(&data, "objects");
    assert_eq!(
        layouts(&after),
        BTreeMap::from([(records::OBJECT_VERSION, old.len())])
    );
    assert_eq!(
        raw_db(&data, "blobs"),
        blobs_before,
        "blob records are unchanged"
    );
    assert_eq!(
        raw_db(&data, "names"),
        names_before,
        "the names index is unchanged"
    );
    assert!(raw_db(&data, "aliases").is_empty());
    // Schema 4: every object's last access indexed (its upload), no expiries.
    assert_eq!(raw_db(&data, "access_time").len(), old.len());
    assert_eq!(
        raw_db(&data, "expiry").len(),
        old.iter().filter(|o| o.expires_at_ms.is_some()).count()
    );
    assert!(raw_db(&data, "collections").is_empty());
    // Schema 5: every object counted once under its owner and namespace.
    let counts = raw_db(&data, "owner_ns_counts");
    let counted: u64 = counts
        .values()
        .map(|v| u64::from_be_bytes(v.as_slice().try_into().unwrap()))
        .sum();
    assert_eq!(counted, old.len() as u64);
    for (key, value) in &counts {
        let ns = &key[key.iter().position(|b| *b == 0).unwrap() + 1..];
        let n = old.iter().filter(|o| o.namespace.as_bytes() == ns).count() as u64;
        assert_eq!(u64::from_be_bytes(value.as_slice().try_into().unwrap()), n);
    }
    assert!(!raw_db(&data, "meta")
        .keys()
        .any(|k| k.starts_with(b"migration.")));
    let report = check(&data).unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
    assert_eq!(report.schema_version, migrate::SCHEMA_VERSION);

    // Opening again is a no-op.
    let store = Store::open_with(config(dir.path(), Durability::None), hooks(7, None)).unwrap();
    assert_eq!(store.stats().unwrap(), stats);
    drop(store);
    assert_eq!(raw_db(&data, "objects"), after);
}

#[test]
fn fixture_v1_small_migrates() {
    migrate_fixture("store-v1-small.tar.gz", 8, 5);
}

#[test]
fn fixture_v1_medium_migrates() {
    migrate_fixture("store-v1-medium.tar.gz", 40, 3000);
}

/// A version-1 store of `n` objects (text and pending files), written with the old
/// encoder, plus the records as the current layout reads them.
fn v1_store(dir: &Path, n: usize) -> Vec<ObjectRecord> {
    drop(open(dir));
    let data = dir.join("data");
    let mut objects = Vec::new();
    let mut names = Vec::new();
    let mut expected = Vec::new();
    for i in 0..n {
        let text = i % 3 == 0;
        let v1 = ObjectRecordV1 {
            id: Uuid::now_v7(),
            kind: if text { Kind::Text } else { Kind::File },
            name: format!("obj-{i:05}"),
            namespace: format!("ns{}", i % 4),
            mime_type: "text/plain".into(),
            size: if text { 6 } else { 0 },
            sha256: None,
            state: if text { State::Stored } else { State::Pending },
            created_at_ms: i as i64,
            updated_at_ms: i as i64 + 1,
            tags: vec![format!("t{}", i % 7)],
            metadata_json: format!("{{\"i\":{i}}}"),
            content: text.then(|| format!("text{i:02}")),
            owner: None,
            expires_at_ms: (i % 5 == 0).then_some(99),
        };
        objects.push((v1.id.as_bytes().to_vec(), encode_object_v1(&v1)));
        names.push((
            keys::name_key(&v1.namespace, &v1.name, &v1.id).unwrap(),
            Vec::new(),
        ));
        expected.push(ObjectRecord::from(v1));
    }
    raw_put(&data, "objects", &objects);
    raw_put(&data, "names", &names);
    raw_put(
        &data,
        "meta",
        &[(META_SCHEMA_VERSION.to_vec(), 1u32.to_be_bytes().to_vec())],
    );
    expected
}

#[test]
fn interrupted_migration_resumes_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let expected = v1_store(dir.path(), 2500);
    assert_eq!(
        layouts(&raw_db(&data, "objects")),
        BTreeMap::from([(1, 2500)])
    );

    // "Killed" after the first batch: that batch is committed with its cursor, the
    // schema version is still 1, and the store is left as it is.
    let cfg = || config(dir.path(), Durability::None);
    let err = Store::open_with(cfg(), hooks(1000, Some(1))).unwrap_err();
    assert!(
        matches!(&err, StoreError::Internal(m) if m.contains("test hook")),
        "{err}"
    );
    assert_eq!(
        layouts(&raw_db(&data, "objects")),
        BTreeMap::from([(1, 1500), (2, 1000)])
    );
    assert_eq!(schema_version(&data), 1);
    assert!(raw_db(&data, "meta").contains_key(b"migration.2.cursor".as_slice()));
    // Half-migrated, the store is consistent: both layouts decode.
    let report = check(&data).unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
    assert_eq!(report.schema_version, 1);

    // Again: it resumes after the cursor (starting over would make no progress, since
    // the first 1000 records are already in the current layout).
    Store::open_with(cfg(), hooks(1000, Some(1))).unwrap_err();
    assert_eq!(
        layouts(&raw_db(&data, "objects")),
        BTreeMap::from([(1, 500), (2, 2000)])
    );

    // A normal open finishes the migration.
    let store = Store::open_with(cfg(), hooks(1000, None)).unwrap();
    for rec in &expected {
        // Schema 3 files objects without an owner under the admin.
        let mut want = rec.clone();
        want.owner.get_or_insert_with(|| "admin".into());
        assert_eq!(store.get_object(rec.id).unwrap(), Some(want));
    }
    let all = list_all(&store, lq(None, None, None, 1000), 10_000).0;
    assert_eq!(all.len(), expected.len());
    // Writes work on migrated records.
    let patched = object(store.writer().submit_blocking(Command::Patch {
        id: expected[1].id,
        patch: ObjectPatch {
            aliases_add: vec!["s:migrated".into()],
            ..ObjectPatch::default()
        },
        now_ms: 1,
    }));
    assert_eq!(store.get_by_alias("s:migrated").unwrap(), Some(patched));
    drop(store);
    assert_eq!(
        layouts(&raw_db(&data, "objects")),
        BTreeMap::from([(2, 2500)])
    );
    assert_eq!(schema_version(&data), migrate::SCHEMA_VERSION);
    assert!(!raw_db(&data, "meta")
        .keys()
        .any(|k| k.starts_with(b"migration.")));
    let report = check(&data).unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
}

#[test]
fn a_batch_boundary_at_the_last_record_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    v1_store(dir.path(), 20);
    // 20 records in batches of 10: the third batch finds nothing and sets the version.
    drop(Store::open_with(config(dir.path(), Durability::None), hooks(10, None)).unwrap());
    assert_eq!(
        layouts(&raw_db(&data, "objects")),
        BTreeMap::from([(2, 20)])
    );
    assert_eq!(schema_version(&data), migrate::SCHEMA_VERSION);
}

#[test]
fn a_newer_schema_is_refused_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(open(dir.path()));
    let newer = migrate::SCHEMA_VERSION + 1;
    raw_put(
        &data,
        "meta",
        &[(META_SCHEMA_VERSION.to_vec(), newer.to_be_bytes().to_vec())],
    );
    let bytes = fs::read(data.join("meta/data.mdb")).unwrap();
    let err = Store::open(config(dir.path(), Durability::None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("written by a newer ringbox"), "{err}");
    assert!(err.contains(&format!("schema version {newer}")), "{err}");
    assert_eq!(fs::read(data.join("meta/data.mdb")).unwrap(), bytes);
    let err = check(&data).unwrap_err().to_string();
    assert!(err.contains("written by a newer ringbox"), "{err}");
    // A record of a newer layout in a store this build opens is an error naming it.
    raw_put(
        &data,
        "meta",
        &[(
            META_SCHEMA_VERSION.to_vec(),
            migrate::SCHEMA_VERSION.to_be_bytes().to_vec(),
        )],
    );
    let id = Uuid::now_v7();
    raw_put(
        &data,
        "objects",
        &[(id.as_bytes().to_vec(), vec![records::OBJECT_VERSION + 1, 0])],
    );
    let store = open(dir.path());
    let err = store.get_object(id).unwrap_err().to_string();
    assert!(err.contains("written by a newer ringbox"), "{err}");
}
