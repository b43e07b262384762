//! Store tests against real temp directories: reads, the writer, listing, check and gc.
//! `commands.rs` covers names, aliases, metadata, generations and supervision;
//! `migration.rs` covers opening stores of older schemas; `expiry.rs` the time
//! indexes, the access flush and the sweep.

mod commands;
mod expiry;
mod migration;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::future::Future;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll, Wake};
use std::thread;
use std::time::{Duration, Instant};

use sha2::Digest as _;
use uuid::Uuid;

use super::blobs::Layout;
use super::*;
use crate::util::time::now_ms;

fn config(dir: &Path, durability: Durability) -> StoreConfig {
    let mut c = StoreConfig::new(dir.join("data"));
    c.durability = durability;
    c
}

fn open(dir: &Path) -> Store {
    Store::open(config(dir, Durability::None)).unwrap()
}

fn file_record(ns: &str, name: &str) -> ObjectRecord {
    let now = now_ms();
    ObjectRecord {
        id: Uuid::now_v7(),
        kind: Kind::File,
        name: name.into(),
        namespace: ns.into(),
        mime_type: "application/octet-stream".into(),
        size: 0,
        sha256: None,
        state: State::Pending,
        created_at_ms: now,
        updated_at_ms: now,
        tags: vec![],
        metadata_json: "{}".into(),
        content: None,
        owner: None,
        expires_at_ms: None,
        ..ObjectRecord::blank()
    }
}

fn sha(bytes: &[u8]) -> Sha256 {
    sha2::Sha256::digest(bytes).into()
}

fn new_blob(store: &Store, bytes: &[u8]) -> NewBlob {
    let tmp_path = store.tmp_path();
    fs::write(&tmp_path, bytes).unwrap();
    NewBlob {
        tmp_path,
        sha256: sha(bytes),
        size: bytes.len() as u64,
    }
}

fn object(reply: Result<Reply, StoreError>) -> ObjectRecord {
    match reply {
        Ok(Reply::Object(r)) => r,
        other => panic!("expected an object, got {other:?}"),
    }
}

fn create_file(store: &Store, ns: &str, name: &str, bytes: &[u8]) -> ObjectRecord {
    let blob = Some(new_blob(store, bytes));
    object(store.writer().submit_blocking(Command::Create {
        record: file_record(ns, name),
        blob,
        unique_name: false,
    }))
}

fn create_pending(store: &Store, ns: &str, name: &str) -> ObjectRecord {
    object(store.writer().submit_blocking(Command::Create {
        record: file_record(ns, name),
        blob: None,
        unique_name: false,
    }))
}

fn delete(store: &Store, id: ObjectId) {
    assert!(matches!(
        store.writer().submit_blocking(Command::Delete { id }),
        Ok(Reply::Deleted)
    ));
}

fn tmp_entries(store: &Store) -> usize {
    fs::read_dir(store.data_dir().join("tmp")).unwrap().count()
}

fn wait_for_gc_runs(store: &Store, runs: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.writer().stats().gc_runs < runs {
        assert!(Instant::now() < deadline, "gc did not finish");
        thread::sleep(Duration::from_millis(5));
    }
}

/// A minimal executor for `WriterHandle::submit` futures (woken from the writer thread).
fn block_on<F: Future>(f: F) -> F::Output {
    struct ThreadWaker(thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(ThreadWaker(thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

/// Creates many pending objects through `submit` so they group into few batches.
fn create_many(store: &Store, items: &[(String, String)]) -> Vec<ObjectRecord> {
    let futures: Vec<_> = items
        .iter()
        .map(|(ns, name)| {
            store.writer().submit(Command::Create {
                record: file_record(ns, name),
                blob: None,
                unique_name: false,
            })
        })
        .collect();
    futures.into_iter().map(|f| object(block_on(f))).collect()
}

fn lq(ns: Option<&str>, prefix: Option<&str>, q: Option<&str>, limit: usize) -> ListQuery {
    ListQuery {
        owner: None,
        namespace: ns.map(Into::into),
        prefix: prefix.map(Into::into),
        q: q.map(Into::into),
        limit,
        cursor: None,
    }
}

/// Follows cursors to the end; returns every object and the number of pages.
fn list_all(store: &Store, mut query: ListQuery, max_scan: usize) -> (Vec<ObjectRecord>, usize) {
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let page = store
            .list_objects_filtered(&query, max_scan, |_| true)
            .unwrap();
        pages += 1;
        assert!(page.objects.len() <= query.limit.max(1));
        out.extend(page.objects);
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return (out, pages),
        }
        assert!(pages < 1_000_000, "listing does not end");
    }
}

fn names(objs: &[ObjectRecord]) -> Vec<String> {
    objs.iter()
        .map(|o| format!("{}/{}", o.namespace, o.name))
        .collect()
}

#[test]
fn crud_with_fsync_durability() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), Durability::Fsync)).unwrap();
    assert_eq!(store.durability(), Durability::Fsync);
    let rec = create_file(&store, "docs", "a.txt", b"hello world");
    assert_eq!(rec.state, State::Stored);
    assert_eq!(rec.size, 11);
    assert_eq!(rec.sha256, Some(sha(b"hello world")));
    assert_eq!(tmp_entries(&store), 0, "the upload left tmp/");
    assert_eq!(
        fs::read(store.blob_path(&sha(b"hello world"))).unwrap(),
        b"hello world"
    );

    assert_eq!(store.get_object(rec.id).unwrap(), Some(rec.clone()));
    assert_eq!(store.get_object(Uuid::now_v7()).unwrap(), None);
    let blob = store.get_blob(&sha(b"hello world")).unwrap().unwrap();
    assert_eq!((blob.size, blob.refcount), (11, 1));

    let page = store
        .list_objects(&lq(Some("docs"), None, None, 10))
        .unwrap();
    assert_eq!(page.objects, vec![rec.clone()]);
    assert_eq!(page.next_cursor, None);

    // Patch: move + rename + tags + metadata merge.
    let mut meta = serde_json::Map::new();
    meta.insert("k".into(), serde_json::json!("v"));
    meta.insert("n".into(), serde_json::json!(1));
    let patched = object(store.writer().submit_blocking(Command::Patch {
        id: rec.id,
        patch: ObjectPatch {
            name: Some("b.txt".into()),
            namespace: Some("other".into()),
            tags: Some(vec!["t1".into()]),
            metadata: Some(MetadataChange::Merge(meta)),
            ..ObjectPatch::default()
        },
        now_ms: rec.updated_at_ms + 5,
    }));
    assert_eq!(
        (patched.namespace.as_str(), patched.name.as_str()),
        ("other", "b.txt")
    );
    assert_eq!(patched.tags, vec!["t1".to_string()]);
    assert_eq!(patched.updated_at_ms, rec.updated_at_ms + 5);
    let mut meta = serde_json::Map::new();
    meta.insert("k".into(), serde_json::Value::Null);
    let patched = object(store.writer().submit_blocking(Command::Patch {
        id: rec.id,
        patch: ObjectPatch {
            metadata: Some(MetadataChange::Merge(meta)),
            ..ObjectPatch::default()
        },
        now_ms: 1,
    }));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&patched.metadata_json).unwrap(),
        serde_json::json!({"n":1})
    );
    assert!(store
        .list_objects(&lq(Some("docs"), None, None, 10))
        .unwrap()
        .objects
        .is_empty());
    assert_eq!(
        store
            .list_objects(&lq(Some("other"), None, None, 10))
            .unwrap()
            .objects,
        vec![patched.clone()]
    );

    // Patch input errors.
    let bad = store.writer().submit_blocking(Command::Patch {
        id: rec.id,
        patch: ObjectPatch {
            name: Some("a\0b".into()),
            ..ObjectPatch::default()
        },
        now_ms: 1,
    });
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
    let missing = store.writer().submit_blocking(Command::Patch {
        id: Uuid::now_v7(),
        patch: ObjectPatch::default(),
        now_ms: 1,
    });
    assert!(matches!(missing, Err(StoreError::NotFound)));

    // Text objects.
    let mut text = file_record("notes", "n1");
    text.kind = Kind::Text;
    text.content = Some("some text".into());
    let text = object(store.writer().submit_blocking(Command::Create {
        record: text,
        blob: None,
        unique_name: false,
    }));
    assert_eq!(text.state, State::Stored);
    assert_eq!(
        store
            .get_object(text.id)
            .unwrap()
            .unwrap()
            .content
            .as_deref(),
        Some("some text")
    );

    // Create input errors.
    let dup = store.writer().submit_blocking(Command::Create {
        record: text.clone(),
        blob: None,
        unique_name: false,
    });
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let mut bad_meta = file_record("x", "y");
    bad_meta.metadata_json = "[1,2]".into();
    assert!(matches!(
        store.writer().submit_blocking(Command::Create {
            record: bad_meta,
            blob: None,
            unique_name: false,
        }),
        Err(StoreError::Invalid(_))
    ));
    let blob = Some(new_blob(&store, b"text with a blob"));
    let mut t = file_record("x", "y");
    t.kind = Kind::Text;
    assert!(matches!(
        store.writer().submit_blocking(Command::Create {
            record: t,
            blob,
            unique_name: false
        }),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        tmp_entries(&store),
        0,
        "a rejected upload left its temp file"
    );
    let blob = Some(new_blob(&store, b"nul"));
    assert!(matches!(
        store.writer().submit_blocking(Command::Create {
            record: file_record("a\0", "y"),
            blob,
            unique_name: false,
        }),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(tmp_entries(&store), 0);
    assert!(store.get_blob(&sha(b"nul")).unwrap().is_none());
    assert!(!store.blob_path(&sha(b"nul")).exists());

    // Delete.
    delete(&store, rec.id);
    assert_eq!(store.get_object(rec.id).unwrap(), None);
    assert!(matches!(
        store
            .writer()
            .submit_blocking(Command::Delete { id: rec.id }),
        Err(StoreError::NotFound)
    ));
    assert!(!store.blob_path(&sha(b"hello world")).exists());
    assert_eq!(
        store.stats().unwrap(),
        StoreStats {
            objects: 1,
            blobs: 0,
            blob_bytes: 0
        }
    );

    drop(store);
    let report = check(&dir.path().join("data")).unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
    assert_eq!((report.objects, report.blobs), (1, 0));
}

#[test]
fn dedup_refcounts_and_unlink_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = create_file(&store, "ns", "a", b"same bytes");
    let b = create_file(&store, "ns", "b", b"same bytes");
    let h = sha(b"same bytes");
    assert_eq!(a.sha256, Some(h));
    assert_eq!(store.get_blob(&h).unwrap().unwrap().refcount, 2);
    assert_eq!(
        tmp_entries(&store),
        0,
        "the duplicate upload was not dropped"
    );
    let dir_entries = fs::read_dir(store.blob_path(&h).parent().unwrap())
        .unwrap()
        .count();
    assert_eq!(dir_entries, 1);
    assert_eq!(
        store.stats().unwrap(),
        StoreStats {
            objects: 2,
            blobs: 1,
            blob_bytes: 10
        }
    );

    delete(&store, a.id);
    assert_eq!(store.get_blob(&h).unwrap().unwrap().refcount, 1);
    assert!(store.blob_path(&h).exists());
    delete(&store, b.id);
    assert_eq!(store.get_blob(&h).unwrap(), None);
    assert!(
        !store.blob_path(&h).exists(),
        "the last delete did not unlink the blob"
    );
    assert_eq!(
        store.stats().unwrap(),
        StoreStats {
            objects: 0,
            blobs: 0,
            blob_bytes: 0
        }
    );

    // Create from an existing blob by hash (no upload).
    let c = create_file(&store, "ns", "c", b"shared");
    let mut by_hash = file_record("ns", "d");
    by_hash.sha256 = c.sha256;
    let d = object(store.writer().submit_blocking(Command::Create {
        record: by_hash,
        blob: None,
        unique_name: false,
    }));
    assert_eq!((d.state, d.size), (State::Stored, 6));
    assert_eq!(
        store.get_blob(&sha(b"shared")).unwrap().unwrap().refcount,
        2
    );
    let mut unknown = file_record("ns", "e");
    unknown.sha256 = Some([9; 32]);
    assert!(matches!(
        store.writer().submit_blocking(Command::Create {
            record: unknown,
            blob: None,
            unique_name: false,
        }),
        Err(StoreError::Invalid(_))
    ));
    drop(store);
    let report = check(&dir.path().join("data")).unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
}

#[test]
fn delete_and_relink_in_one_batch_keeps_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for round in 0..20 {
        let rec = create_file(&store, "ns", &format!("r{round}"), b"phoenix");
        // Queued back to back: usually one batch drops the last reference and then links
        // the same content again. The file must survive the post-commit unlink.
        let del = store.writer().submit(Command::Delete { id: rec.id });
        let blob = Some(new_blob(&store, b"phoenix"));
        let again = store.writer().submit(Command::Create {
            record: file_record("ns", "again"),
            blob,
            unique_name: false,
        });
        assert!(matches!(block_on(del), Ok(Reply::Deleted)));
        let again = object(block_on(again));
        assert!(
            store.blob_path(&sha(b"phoenix")).exists(),
            "round {round}: blob lost"
        );
        assert_eq!(
            store.get_blob(&sha(b"phoenix")).unwrap().unwrap().refcount,
            1
        );
        delete(&store, again.id);
    }
    drop(store);
    assert!(check(&dir.path().join("data")).unwrap().is_consistent());
}

#[test]
fn set_content_pending_to_stored_and_replace() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let p = create_pending(&store, "ns", "later.bin");
    assert_eq!((p.state, p.sha256), (State::Pending, None));

    let blob = new_blob(&store, b"version one");
    let v1 = object(store.writer().submit_blocking(Command::SetContent {
        id: p.id,
        blob,
        mime_type: Some("text/plain".into()),
        now_ms: 77,
    }));
    assert_eq!(
        (v1.state, v1.size, v1.sha256),
        (State::Stored, 11, Some(sha(b"version one")))
    );
    assert_eq!(
        (v1.mime_type.as_str(), v1.updated_at_ms),
        ("text/plain", 77)
    );
    assert!(store.blob_path(&sha(b"version one")).exists());

    // Replace: the old blob loses its only reference and its file.
    let blob = new_blob(&store, b"version two!");
    let v2 = object(store.writer().submit_blocking(Command::SetContent {
        id: p.id,
        blob,
        mime_type: None,
        now_ms: 78,
    }));
    assert_eq!((v2.size, v2.mime_type.as_str()), (12, "text/plain"));
    assert!(!store.blob_path(&sha(b"version one")).exists());
    assert_eq!(store.get_blob(&sha(b"version one")).unwrap(), None);

    // Same content again: refcount unchanged, the upload is dropped.
    let blob = new_blob(&store, b"version two!");
    object(store.writer().submit_blocking(Command::SetContent {
        id: p.id,
        blob,
        mime_type: None,
        now_ms: 79,
    }));
    assert_eq!(
        store
            .get_blob(&sha(b"version two!"))
            .unwrap()
            .unwrap()
            .refcount,
        1
    );
    assert_eq!(tmp_entries(&store), 0);

    // Text object -> Conflict; unknown id -> NotFound; both remove the temp file.
    let mut t = file_record("ns", "t");
    t.kind = Kind::Text;
    let t = object(store.writer().submit_blocking(Command::Create {
        record: t,
        blob: None,
        unique_name: false,
    }));
    let blob = new_blob(&store, b"x");
    let r = store.writer().submit_blocking(Command::SetContent {
        id: t.id,
        blob,
        mime_type: None,
        now_ms: 1,
    });
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    let blob = new_blob(&store, b"y");
    let r = store.writer().submit_blocking(Command::SetContent {
        id: Uuid::now_v7(),
        blob,
        mime_type: None,
        now_ms: 1,
    });
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    assert_eq!(tmp_entries(&store), 0);
    assert!(!store.blob_path(&sha(b"x")).exists() && !store.blob_path(&sha(b"y")).exists());
    drop(store);
    assert!(check(&dir.path().join("data")).unwrap().is_consistent());
}

fn mark_lost(store: &Store, id: ObjectId, sha256: Sha256) -> ObjectRecord {
    object(
        store
            .writer()
            .submit_blocking(Command::MarkLost { id, sha256 }),
    )
}

fn heal(store: &Store, id: ObjectId, sha256: Sha256) -> Result<Reply, StoreError> {
    store.writer().submit_blocking(Command::Heal { id, sha256 })
}

#[test]
fn mark_lost_and_heal_by_reupload() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let h = sha(b"ephemeral");
    let rec = create_file(&store, "ns", "gone", b"ephemeral");
    fs::remove_file(store.blob_path(&h)).unwrap();
    // A stale observation (another hash) changes nothing.
    assert_eq!(mark_lost(&store, rec.id, [0; 32]).state, State::Stored);
    let lost = mark_lost(&store, rec.id, h);
    assert_eq!(lost.state, State::Lost);
    assert_eq!(
        store.get_object(rec.id).unwrap().unwrap().state,
        State::Lost
    );
    // Already lost: a no-op that answers the record.
    assert_eq!(mark_lost(&store, rec.id, h), lost);
    // Pending and text objects have no content to lose: no-op replies, not errors.
    let pending = create_pending(&store, "ns", "p");
    assert_eq!(mark_lost(&store, pending.id, h), pending);
    assert!(matches!(
        store.writer().submit_blocking(Command::MarkLost {
            id: Uuid::now_v7(),
            sha256: h
        }),
        Err(StoreError::NotFound)
    ));
    // Healing while the file is still missing is refused; the record stays lost.
    let r = heal(&store, rec.id, h);
    assert!(
        matches!(&r, Err(StoreError::Conflict(m)) if m.contains("still missing")),
        "{r:?}"
    );
    assert_eq!(
        store.get_object(rec.id).unwrap().unwrap().state,
        State::Lost
    );
    // The same bytes uploaded again restore the file (the record existed, the file not).
    create_file(&store, "ns", "again", b"ephemeral");
    assert_eq!(fs::read(store.blob_path(&h)).unwrap(), b"ephemeral");
    assert_eq!(store.get_blob(&h).unwrap().unwrap().refcount, 2);
    // Heal with another hash: no-op; with the right one: stored again.
    let same = object(heal(&store, rec.id, [1; 32]));
    assert_eq!(same.state, State::Lost);
    let healed = object(heal(&store, rec.id, h));
    assert_eq!(healed.state, State::Stored);
    assert_eq!(
        object(heal(&store, rec.id, h)),
        healed,
        "healing twice is a no-op"
    );
    drop(store);
    let report = check(&dir.path().join("data")).unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
}

#[test]
fn mark_lost_never_hits_new_content() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let rec = create_file(&store, "ns", "x", b"old content");
    let old = sha(b"old content");
    // A reader saw the old file missing; meanwhile the content was replaced. Queued in
    // this order, the MarkLost lands after the SetContent and must not touch it.
    let set = store.writer().submit(Command::SetContent {
        id: rec.id,
        blob: new_blob(&store, b"new content"),
        mime_type: None,
        now_ms: 5,
    });
    let mark = store.writer().submit(Command::MarkLost {
        id: rec.id,
        sha256: old,
    });
    object(block_on(set));
    let after = object(block_on(mark));
    assert_eq!(after.state, State::Stored);
    assert_eq!(after.sha256, Some(sha(b"new content")));
}

#[test]
fn pagination_is_complete_under_concurrent_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let namespaces = ["alpha", "b", "beta", "c", ""];
    let mut items = Vec::new();
    for i in 0..3000u32 {
        let ns = namespaces[(i % 5) as usize];
        // Scrambled names, with duplicates, so index order differs from insertion order.
        items.push((ns.to_string(), format!("file-{:04}", (i * 7919) % 1500)));
    }
    let stable = create_many(&store, &items);
    let volatile_items: Vec<_> = (0..400)
        .map(|i| (namespaces[i % 5].to_string(), format!("tmp-{i}")))
        .collect();
    let mut volatile: Vec<ObjectId> = create_many(&store, &volatile_items)
        .iter()
        .map(|o| o.id)
        .collect();
    let stable_ids: HashSet<ObjectId> = stable.iter().map(|o| o.id).collect();

    for ns_filter in [None, Some("beta"), Some("")] {
        let mut query = lq(ns_filter, None, None, 7);
        let mut seen: HashMap<ObjectId, usize> = HashMap::new();
        let mut keys_in_order = Vec::new();
        let mut pages = 0;
        let mut inserted = 0;
        loop {
            let page = store.list_objects(&query).unwrap();
            pages += 1;
            assert!(page.objects.len() <= 7);
            for o in &page.objects {
                *seen.entry(o.id).or_default() += 1;
                keys_in_order.push(keys::name_key(&o.namespace, &o.name, &o.id).unwrap());
                if let Some(ns) = ns_filter {
                    assert_eq!(o.namespace, ns);
                }
            }
            // Between pages: delete a volatile object, insert a new one somewhere.
            if let Some(id) = volatile.pop() {
                delete(&store, id);
            }
            let ns = namespaces[pages % 5];
            create_pending(
                &store,
                ns,
                &format!("file-{:04}-new{pages}", (pages * 31) % 1500),
            );
            inserted += 1;
            match page.next_cursor {
                Some(c) => query.cursor = Some(c),
                None => break,
            }
        }
        assert!(inserted > 10);
        let expected: HashSet<ObjectId> = stable
            .iter()
            .filter(|o| ns_filter.is_none_or(|ns| o.namespace == ns))
            .map(|o| o.id)
            .collect();
        for id in &expected {
            assert_eq!(
                seen.get(id),
                Some(&1),
                "stable object {id} seen {:?} times",
                seen.get(id)
            );
        }
        assert!(seen.values().all(|&n| n == 1), "an object appeared twice");
        let mut sorted = keys_in_order.clone();
        sorted.sort();
        assert_eq!(sorted, keys_in_order, "pages are not in index order");
        assert!(seen.keys().filter(|id| stable_ids.contains(id)).count() == expected.len());
    }
}

#[test]
fn prefix_q_and_skip_scan() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut items = Vec::new();
    for ns in ["a", "b", "c"] {
        for name in [
            "aaa",
            "rep1",
            "Report-2024.PDF",
            "rep2",
            "report-old.txt",
            "Été.txt",
            "zzz",
        ] {
            items.push((ns.to_string(), name.to_string()));
        }
    }
    items.push(("d".into(), "only-d".into()));
    create_many(&store, &items);

    let got = list_all(&store, lq(Some("b"), Some("rep"), None, 100), 10_000).0;
    assert_eq!(names(&got), ["b/rep1", "b/rep2", "b/report-old.txt"]);
    let got = list_all(&store, lq(Some("b"), None, Some("REPORT"), 100), 10_000).0;
    assert_eq!(names(&got), ["b/Report-2024.PDF", "b/report-old.txt"]);
    let got = list_all(&store, lq(Some("c"), None, Some("été"), 100), 10_000).0;
    assert_eq!(names(&got), ["c/Été.txt"]);
    let got = list_all(&store, lq(Some("c"), None, Some("ÉTÉ"), 100), 10_000).0;
    assert_eq!(names(&got), ["c/Été.txt"]);
    let got = list_all(&store, lq(Some("a"), Some("rep"), Some("2"), 100), 10_000).0;
    assert_eq!(names(&got), ["a/rep2"]);

    // No namespace + prefix: a skip scan across namespaces, also one object per page.
    for limit in [100, 1] {
        let (got, pages) = list_all(&store, lq(None, Some("rep"), None, limit), 10_000);
        assert_eq!(
            names(&got),
            [
                "a/rep1",
                "a/rep2",
                "a/report-old.txt",
                "b/rep1",
                "b/rep2",
                "b/report-old.txt",
                "c/rep1",
                "c/rep2",
                "c/report-old.txt"
            ]
        );
        if limit == 1 {
            assert!(pages >= 9);
        }
    }
    let got = list_all(&store, lq(None, Some("only"), None, 2), 10_000).0;
    assert_eq!(names(&got), ["d/only-d"]);
    let got = list_all(&store, lq(None, Some("nothing"), None, 2), 10_000).0;
    assert!(got.is_empty());
    // Everything, in namespace/name order.
    let (all, _) = list_all(&store, lq(None, None, None, 4), 10_000);
    assert_eq!(all.len(), items.len());
    let mut sorted = names(&all);
    sorted.sort();
    assert_eq!(names(&all), sorted);

    // The filter hook (tag=, mime=...).
    let page = store
        .list_objects_filtered(&lq(Some("a"), None, None, 100), 10_000, |o| {
            o.name.starts_with('z')
        })
        .unwrap();
    assert_eq!(names(&page.objects), ["a/zzz"]);
}

#[test]
fn max_scan_bounds_each_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut items: Vec<_> = (0..200)
        .map(|i| ("ns".to_string(), format!("hay-{i:03}")))
        .collect();
    items.push(("ns".into(), "hay-150-NEEDLE".into()));
    create_many(&store, &items);
    let query = lq(Some("ns"), None, Some("needle"), 10);
    let page = store.list_objects_filtered(&query, 10, |_| true).unwrap();
    assert!(page.objects.is_empty());
    assert!(
        page.next_cursor.is_some(),
        "a bounded scan must hand back a cursor"
    );
    let (got, pages) = list_all(&store, query, 10);
    assert_eq!(names(&got), ["ns/hay-150-NEEDLE"]);
    assert!((20..=22).contains(&pages), "{pages} pages");
    // The last page of an exact listing has no cursor.
    let page = store
        .list_objects(&lq(Some("ns"), None, None, 201))
        .unwrap();
    assert_eq!((page.objects.len(), page.next_cursor), (201, None));
    let page = store
        .list_objects(&lq(Some("ns"), None, None, 200))
        .unwrap();
    assert!(page.next_cursor.is_some());
}

#[test]
fn tampered_cursors_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let items: Vec<_> = (0..5).map(|i| ("a".to_string(), format!("n{i}"))).collect();
    create_many(&store, &items);
    let page = store.list_objects(&lq(Some("a"), None, None, 2)).unwrap();
    let cursor = page.next_cursor.unwrap();
    let with = |ns: Option<&str>, prefix: Option<&str>, c: &str| {
        let mut q = lq(ns, prefix, None, 2);
        q.cursor = Some(c.to_string());
        store.list_objects(&q)
    };
    assert!(with(Some("a"), None, &cursor).is_ok());
    assert!(with(None, None, &cursor).is_ok());
    let invalid = |r: Result<ListPage, StoreError>| matches!(r, Err(StoreError::Invalid(m)) if m.contains("cursor"));
    assert!(
        invalid(with(Some("b"), None, &cursor)),
        "cursor of another namespace"
    );
    assert!(
        invalid(with(Some("a"), Some("zz"), &cursor)),
        "cursor of another prefix"
    );
    assert!(invalid(with(Some("a"), None, "not a cursor!")));
    assert!(invalid(with(Some("a"), None, "")));
    let mut raw = keys::decode_cursor(&cursor).unwrap();
    raw.truncate(raw.len() - 1);
    assert!(
        invalid(with(None, None, &keys::encode_cursor(&raw))),
        "truncated key"
    );
    let mut raw = keys::decode_cursor(&cursor).unwrap();
    raw[0] = 0xff;
    assert!(
        invalid(with(None, None, &keys::encode_cursor(&raw))),
        "non-UTF-8 key"
    );
    assert!(matches!(
        store.list_objects(&lq(Some("a\0"), None, None, 2)),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn group_commit_from_eight_threads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), Durability::Fsync)).unwrap();
    let before = store.writer().stats();
    let started = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            thread::spawn(move || {
                for i in 0..200 {
                    let bytes = format!("thread {t} item {i}");
                    let blob = Some(new_blob(&store, bytes.as_bytes()));
                    let rec = file_record(&format!("t{t}"), &format!("i{i:03}"));
                    object(store.writer().submit_blocking(Command::Create {
                        record: rec,
                        blob,
                        unique_name: false,
                    }));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = started.elapsed();
    let stats = store.writer().stats();
    let batches = stats.batches - before.batches;
    assert_eq!(stats.commands - before.commands, 1600);
    assert_eq!(stats.failed_batches, 0);
    assert!(batches < 1600, "no grouping happened: {batches} batches");
    let _ = writeln!(
        std::io::stderr(),
        "group commit: 1600 creates in {batches} batches, {elapsed:?}"
    );
    assert_eq!(store.stats().unwrap().objects, 1600);
    let (all, _) = list_all(&store, lq(None, None, None, 500), 10_000);
    assert_eq!(all.len(), 1600);
    drop(store);
    assert!(check(&dir.path().join("data")).unwrap().is_consistent());
}

#[test]
fn async_submit_resolves_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    // With fsync a commit takes milliseconds, far longer than queueing 1000 commands,
    // so they must group (with Durability::None the writer could keep up one by one).
    let store = Store::open(config(dir.path(), Durability::Fsync)).unwrap();
    let before = store.writer().stats().batches;
    let items: Vec<_> = (0..1000)
        .map(|i| ("ns".to_string(), format!("{i}")))
        .collect();
    let created = create_many(&store, &items);
    assert_eq!(created.len(), 1000);
    let batches = store.writer().stats().batches - before;
    assert!(
        (4..100).contains(&batches),
        "{batches} batches (max_batch 256)"
    );
}

#[test]
fn check_detects_damage_and_gc_collects_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = open(dir.path());
    let truncated = create_file(&store, "ns", "truncated", b"0123456789abcdef");
    let corrupted = create_file(&store, "ns", "corrupted", b"the original bytes");
    let missing = create_file(&store, "ns", "missing", b"soon missing");
    let counted = create_file(&store, "ns", "counted", b"refcount victim");
    for r in [&truncated, &corrupted, &missing, &counted] {
        assert_eq!(r.state, State::Stored);
    }
    // Wrong refcount, written behind the writer's back.
    let h = sha(b"refcount victim");
    {
        let inner = &store.inner;
        let mut w = inner.env.write_txn().unwrap();
        let rec = BlobRecord {
            size: 15,
            refcount: 5,
            created_at_ms: 0,
        };
        inner
            .dbs
            .blobs
            .put(&mut w, &h, &records::encode_blob(&rec).unwrap())
            .unwrap();
        w.commit().unwrap();
    }
    let paths: Vec<_> = [
        b"0123456789abcdef".as_slice(),
        b"the original bytes",
        b"soon missing",
    ]
    .iter()
    .map(|b| store.blob_path(&sha(b)))
    .collect();
    drop(store);
    assert!(
        check(&data).unwrap().problems.len() == 1,
        "only the refcount is wrong so far"
    );

    fs::OpenOptions::new()
        .write(true)
        .open(&paths[0])
        .unwrap()
        .set_len(5)
        .unwrap();
    fs::write(&paths[1], b"THE ORIGINAL BYTES").unwrap();
    fs::remove_file(&paths[2]).unwrap();
    let orphan_sha = sha(b"nobody refers to me");
    let orphan = Layout::new(&data).blob_path(&orphan_sha);
    fs::write(&orphan, b"nobody refers to me").unwrap();
    fs::write(data.join("blobs/00/README"), b"not a blob").unwrap();
    fs::write(data.join("tmp/leftover"), b"partial upload").unwrap();

    let report = check(&data).unwrap();
    let p = report.problems.join("\n");
    assert_eq!(report.objects, 4);
    assert!(p.contains("has 5 bytes but the record says 16"), "{p}");
    assert!(p.contains("does not match its SHA-256"), "{p}");
    assert!(p.contains("is missing"), "{p}");
    assert!(
        p.contains("refcount is 5 but 1 objects reference it"),
        "{p}"
    );
    // An orphan is reclaimable space, listed apart, not an inconsistency.
    assert_eq!(report.orphans, vec![orphan.clone()]);
    assert!(!p.contains("orphan"), "{p}");
    assert!(p.contains("not named like a blob"), "{p}");
    assert_eq!(report.problems.len(), 5, "{p}");
    assert_eq!(report.tmp_leftovers, vec![data.join("tmp/leftover")]);
    // check changed nothing.
    assert!(orphan.exists() && data.join("tmp/leftover").exists());
    assert_eq!(fs::metadata(&paths[0]).unwrap().len(), 5);

    let report = gc(&data).unwrap();
    assert_eq!(
        report,
        GcReport {
            blobs_removed: 1,
            bytes_freed: 19
        }
    );
    assert!(!orphan.exists());
    assert!(
        data.join("blobs/00/README").exists(),
        "gc removed a file that is not a blob"
    );
    assert!(check(&data).unwrap().orphans.is_empty());
}

#[test]
fn gc_removes_zero_refcount_records_and_runs_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = open(dir.path());
    // Let the open's background pass finish before writing behind the writer's back.
    wait_for_gc_runs(&store, 1);
    let h = sha(b"zero");
    fs::write(store.blob_path(&h), b"zero").unwrap();
    {
        let inner = &store.inner;
        let mut w = inner.env.write_txn().unwrap();
        let rec = BlobRecord {
            size: 4,
            refcount: 0,
            created_at_ms: 0,
        };
        inner
            .dbs
            .blobs
            .put(&mut w, &h, &records::encode_blob(&rec).unwrap())
            .unwrap();
        adjust_blob_bytes(&inner.dbs, &mut w, 4).unwrap();
        w.commit().unwrap();
    }
    let r = store.writer().submit_blocking(Command::Gc).unwrap();
    assert_eq!(
        r,
        Reply::Gc(GcReport {
            blobs_removed: 1,
            bytes_freed: 4
        })
    );
    assert_eq!(store.get_blob(&h).unwrap(), None);
    assert_eq!(store.stats().unwrap().blob_bytes, 0);
    drop(store);

    // A blob linked by a process that died before its commit, and an interrupted upload.
    let orphan = Layout::new(&data).blob_path(&sha(b"crashed"));
    fs::write(&orphan, b"crashed").unwrap();
    fs::write(data.join("tmp/upload"), b"half").unwrap();
    let store = open(dir.path());
    assert_eq!(tmp_entries(&store), 0, "tmp/ not emptied at open");
    wait_for_gc_runs(&store, 1);
    assert!(!orphan.exists(), "background gc left the orphan");
}

#[test]
fn reopen_keeps_everything_and_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), Durability::Fsync)).unwrap();
    assert!(store.admin_token_created());
    let token_path = store.admin_token_path();
    let token = fs::read_to_string(&token_path).unwrap();
    let mode = fs::metadata(&token_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = token.trim_end().to_string();
    assert_eq!(token.len(), 43);
    let admin = Principal {
        user: "admin".into(),
        role: Role::Admin,
    };
    assert_eq!(
        store.authenticate(token.as_bytes()).unwrap(),
        Some(admin.clone())
    );
    assert_eq!(store.authenticate(b"wrong").unwrap(), None);
    assert_eq!(store.authenticate(b"").unwrap(), None);
    let mut flipped = token.clone().into_bytes();
    flipped[0] ^= 1;
    assert_eq!(store.authenticate(&flipped).unwrap(), None);

    // User tokens through the writer; expiry; revocation.
    let (user_token, digest) = generate_token().unwrap();
    let rec = TokenRecord {
        user: "bob".into(),
        role: Role::User,
        label: "t".into(),
        created_at_ms: 0,
        expires_at_ms: None,
        id: [7; 16],
        last_used_ms: None,
    };
    assert_eq!(
        store
            .writer()
            .submit_blocking(Command::PutToken {
                token_sha256: digest,
                record: rec.clone()
            })
            .unwrap(),
        Reply::Done
    );
    assert_eq!(
        store
            .authenticate(user_token.as_bytes())
            .unwrap()
            .unwrap()
            .user,
        "bob"
    );
    let (old_token, old_digest) = generate_token().unwrap();
    let expired = TokenRecord {
        expires_at_ms: Some(1),
        id: [7; 16],
        last_used_ms: None,
        ..rec
    };
    store
        .writer()
        .submit_blocking(Command::PutToken {
            token_sha256: old_digest,
            record: expired,
        })
        .unwrap();
    assert_eq!(store.authenticate(old_token.as_bytes()).unwrap(), None);

    let a = create_file(&store, "ns", "keep.bin", b"persistent");
    let p = create_pending(&store, "ns", "pending");
    let stats = store.stats().unwrap();
    drop(store);

    let store = Store::open(config(dir.path(), Durability::Fsync)).unwrap();
    assert!(!store.admin_token_created());
    assert_eq!(fs::read_to_string(&token_path).unwrap().trim_end(), token);
    assert_eq!(store.authenticate(token.as_bytes()).unwrap(), Some(admin));
    assert_eq!(
        store
            .authenticate(user_token.as_bytes())
            .unwrap()
            .unwrap()
            .role,
        Role::User
    );
    assert_eq!(store.get_object(a.id).unwrap(), Some(a.clone()));
    assert_eq!(store.get_object(p.id).unwrap(), Some(p));
    assert_eq!(store.stats().unwrap(), stats);
    assert_eq!(
        fs::read(store.blob_path(&sha(b"persistent"))).unwrap(),
        b"persistent"
    );
    assert_eq!(
        store
            .writer()
            .submit_blocking(Command::DeleteToken {
                token_sha256: digest
            })
            .unwrap(),
        Reply::Deleted
    );
    assert_eq!(store.authenticate(user_token.as_bytes()).unwrap(), None);
    assert!(matches!(
        store.writer().submit_blocking(Command::DeleteToken {
            token_sha256: digest
        }),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn durability_none_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.durability(), Durability::None);
    let a = create_file(&store, "ns", "x", b"fast");
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.get_object(a.id).unwrap(), Some(a));
}

#[test]
fn dropping_the_store_closes_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let writer = store.writer().clone();
    let tmp = store.tmp_path();
    drop(store);
    fs::write(&tmp, b"late").unwrap();
    let blob = NewBlob {
        tmp_path: tmp.clone(),
        sha256: sha(b"late"),
        size: 4,
    };
    let r = writer.submit_blocking(Command::Create {
        record: file_record("a", "b"),
        blob: Some(blob),
        unique_name: false,
    });
    assert!(matches!(r, Err(StoreError::Closed)), "{r:?}");
    assert!(!tmp.exists(), "a refused upload kept its temp file");
    assert!(matches!(
        block_on(writer.submit(Command::Gc)),
        Err(StoreError::Closed)
    ));
    // The environment and the lock were released: the store opens again.
    drop(open(dir.path()));
}

#[test]
fn one_store_per_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let err = Store::open(config(dir.path(), Durability::None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("in use"), "{err}");
    let err = gc(&dir.path().join("data")).unwrap_err().to_string();
    assert!(err.contains("in use"), "{err}");
    let err = check(&dir.path().join("data")).unwrap_err().to_string();
    assert!(err.contains("in use"), "{err}");
    drop(store);
}

#[test]
fn open_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, b"").unwrap();
    let err = Store::open(StoreConfig::new(file.join("data"))).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Io(_)));
    assert!(
        msg.contains("cannot create data directory") && msg.contains("a-file"),
        "{msg}"
    );
    let err = check(&dir.path().join("nothing-here"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no ringbox store"), "{err}");
    let perm = io_context(
        std::io::Error::from_raw_os_error(libc::EACCES),
        "cannot create /x/data/meta",
    )
    .to_string();
    assert!(perm.starts_with("cannot create /x/data/meta: Permission denied (os error 13); check that the data directory is writable"), "{perm}");
    assert!(matches!(
        io_context(std::io::Error::from_raw_os_error(libc::ENOSPC), "x"),
        StoreError::Full
    ));
}

#[test]
fn map_full_is_full_and_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), Durability::None);
    cfg.map_size = 1 << 20;
    let store = Store::open(cfg).unwrap();
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(3000));
    let mut full = None;
    for i in 0..1000 {
        let mut rec = file_record("ns", &format!("o{i}"));
        rec.metadata_json = big.clone();
        match store.writer().submit_blocking(Command::Create {
            record: rec,
            blob: None,
            unique_name: false,
        }) {
            Ok(_) => {}
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    assert!(matches!(full, Some(StoreError::Full)), "{full:?}");
    // An upload into a full store fails as Full and leaves neither a blob nor a temp file.
    let mut rec = file_record("ns", "with-blob");
    rec.metadata_json = big.clone();
    let blob = Some(new_blob(&store, b"never stored"));
    let r = store.writer().submit_blocking(Command::Create {
        record: rec,
        blob,
        unique_name: false,
    });
    assert!(matches!(r, Err(StoreError::Full)), "{r:?}");
    assert!(!store.blob_path(&sha(b"never stored")).exists());
    assert_eq!(tmp_entries(&store), 0);
    assert!(store.writer().stats().failed_batches >= 2);
    // Reads still work, and the store is consistent.
    assert!(store.stats().unwrap().objects > 0);
    drop(store);
    let report = check(&dir.path().join("data")).unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
}

/// Inserts records straight into LMDB (no writer), for the listing benchmark.
fn raw_insert(store: &Store, recs: &[ObjectRecord]) {
    let inner = &store.inner;
    let mut w = inner.env.write_txn().unwrap();
    for r in recs {
        inner
            .dbs
            .objects
            .put(
                &mut w,
                &keys::object_key(&r.id),
                &records::encode_object(r).unwrap(),
            )
            .unwrap();
        inner
            .dbs
            .names
            .put(
                &mut w,
                &keys::name_key(&r.namespace, &r.name, &r.id).unwrap(),
                &[],
            )
            .unwrap();
    }
    w.commit().unwrap();
}

fn fill(store: &Store, n: u64) {
    let mut batch = Vec::with_capacity(50_000);
    for i in 0..n {
        // A multiplicative hash scrambles the names so inserts land all over the index.
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        let ns = format!("ns{}", i % 10);
        let mut rec = file_record(&ns, &format!("file-{h:07}-{i}.jpg"));
        rec.state = State::Pending;
        batch.push(rec);
        if batch.len() == 50_000 {
            raw_insert(store, &batch);
            batch.clear();
        }
    }
    raw_insert(store, &batch);
}

fn time_pages(store: &Store, query: &ListQuery, rounds: u32) -> Duration {
    let started = Instant::now();
    for _ in 0..rounds {
        let page = store.list_objects(query).unwrap();
        assert!(!page.objects.is_empty());
    }
    started.elapsed() / rounds
}

/// `cargo test -p ringbox --release stress_list_page -- --ignored --nocapture`
#[test]
#[ignore]
fn stress_list_page() {
    let mut report = Vec::new();
    for n in [1_000u64, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let started = Instant::now();
        fill(&store, n);
        let fill_time = started.elapsed();
        // A cursor from the middle of ns5.
        let mut mid = lq(Some("ns5"), None, None, 100);
        let first = store.list_objects(&mid).unwrap();
        mid.cursor = first.next_cursor;
        let queries = [
            ("all namespaces, first page", lq(None, None, None, 100)),
            ("one namespace, second page", mid),
            (
                "one namespace + prefix",
                lq(Some("ns3"), Some("file-00"), None, 100),
            ),
            (
                "all namespaces + prefix (skip scan)",
                lq(None, Some("file-00"), None, 100),
            ),
            (
                "one namespace + q (filter)",
                lq(Some("ns7"), None, Some("7.JPG"), 100),
            ),
        ];
        for (what, q) in &queries {
            let per_page = time_pages(&store, q, 200);
            report.push(format!(
                "{n:>9} objects | {what:<36} | {per_page:?} per page of 100"
            ));
        }
        report.push(format!("{n:>9} objects | fill took {fill_time:?}"));
    }
    let _ = writeln!(std::io::stderr(), "{}", report.join("\n"));
}

#[test]
fn listing_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for q in [
        lq(None, None, None, 10),
        lq(Some("x"), Some("y"), Some("z"), 0),
    ] {
        assert_eq!(store.list_objects(&q).unwrap(), ListPage::default());
    }
}

const CRASH_CHILD_DIR: &str = "RINGBOX_STORE_CRASH_CHILD_DIR";

/// The workload `kill9_at_any_point_leaves_a_consistent_store` kills: four threads
/// uploading (with duplicates), replacing and deleting, logging each acknowledged
/// create ("C id") after its reply and each delete ("D id") before it is submitted.
#[test]
#[ignore = "runs only as the child process of kill9_at_any_point_leaves_a_consistent_store"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let mut cfg = StoreConfig::new(dir.join("data"));
    cfg.durability = Durability::Fsync;
    let store = Store::open(cfg).unwrap();
    let log = Arc::new(std::sync::Mutex::new(
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("acked.log"))
            .unwrap(),
    ));
    let stop = Instant::now() + Duration::from_secs(30);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (store, log) = (store.clone(), log.clone());
            thread::spawn(move || {
                let seed = now_ms() as u64;
                let mut live = Vec::new();
                let mut i = 0u64;
                while Instant::now() < stop {
                    i += 1;
                    // One upload in three repeats a small pool of contents (dedup).
                    let content = if i % 3 == 0 {
                        format!("shared {}", i % 5)
                    } else {
                        format!("t{t} seed {seed} item {i}")
                    };
                    let rec =
                        create_file(&store, "crash", &format!("t{t}-{i}"), content.as_bytes());
                    writeln!(log.lock().unwrap(), "C {}", rec.id).unwrap();
                    live.push(rec.id);
                    if i % 4 == 0 {
                        let id = live.remove(0);
                        writeln!(log.lock().unwrap(), "D {id}").unwrap();
                        delete(&store, id);
                    }
                    if i % 5 == 0 {
                        if let Some(&id) = live.last() {
                            let blob = new_blob(&store, format!("replaced {i} {seed}").as_bytes());
                            let cmd = Command::SetContent {
                                id,
                                blob,
                                mime_type: None,
                                now_ms: 1,
                            };
                            object(store.writer().submit_blocking(cmd));
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn kill9_at_any_point_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..6u64 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "store::tests::crash_child",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD_DIR, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let jitter = u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        ) % 250;
        thread::sleep(Duration::from_millis(150 + round * 40 + jitter));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let log = fs::read_to_string(dir.path().join("acked.log")).unwrap_or_default();
    let mut acked = HashSet::new();
    for line in log.lines() {
        match line.split_once(' ') {
            Some(("C", id)) => {
                acked.insert(id.parse::<Uuid>().unwrap());
            }
            Some(("D", id)) => {
                acked.remove(&id.parse::<Uuid>().unwrap());
            }
            _ => {} // a line torn by the kill
        }
    }
    assert!(
        acked.len() > 10,
        "the child made too little progress: {}",
        acked.len()
    );
    let _ = writeln!(
        std::io::stderr(),
        "kill -9 test: {} acknowledged objects to verify",
        acked.len()
    );

    let store = Store::open(config(dir.path(), Durability::Fsync)).unwrap();
    wait_for_gc_runs(&store, 1);
    for id in &acked {
        let rec = store
            .get_object(*id)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged object {id} lost"));
        assert_eq!(rec.state, State::Stored);
        assert!(store.blob_path(&rec.sha256.unwrap()).is_file());
    }
    drop(store);
    let report = check(&dir.path().join("data")).unwrap();
    assert!(report.is_consistent(), "{:#?}", report.problems);
    assert!(report.tmp_leftovers.is_empty());
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Store>();
    send_sync::<WriterHandle>();
    send_sync::<StoreError>();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let fut = store.writer().submit(Command::Gc);
    send(&fut);
    assert!(matches!(block_on(fut), Ok(Reply::Gc(_))));
}

#[test]
fn a_missing_metadata_file_beside_blobs_is_refused_not_wiped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rec = {
        let store = open(dir.path());
        create_file(&store, "default", "keep.bin", b"precious bytes")
    };
    let blob = data
        .join("blobs")
        .join(&crate::util::hex::encode(&rec.sha256.unwrap())[..2]);
    assert_eq!(std::fs::read_dir(&blob).unwrap().count(), 1);
    // The metadata file vanishes (a half-restored backup, a lost directory entry).
    std::fs::remove_file(data.join("meta").join("data.mdb")).unwrap();
    let err = Store::open(config(dir.path(), Durability::None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("refusing to start"), "{err}");
    // The blob is still there, and nothing was created.
    assert_eq!(std::fs::read_dir(&blob).unwrap().count(), 1);
    assert!(!data.join("meta").join("data.mdb").exists());
}
