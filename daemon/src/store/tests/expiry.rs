//! The expiry time indexes kept by the writer, the access-statistics flush (which must
//! not move `data_generation`), and the sweep's re-checks inside its transaction.

use super::*;
use crate::store::expiry::KIND_OBJECT;

fn with_expiry(ns: &str, name: &str, at: Option<i64>) -> ObjectRecord {
    ObjectRecord {
        expires_at_ms: at,
        ..file_record(ns, name)
    }
}

fn create(store: &Store, rec: ObjectRecord) -> ObjectRecord {
    object(store.writer().submit_blocking(Command::Create {
        record: rec,
        blob: None,
        unique_name: false,
    }))
}

fn sweep(store: &Store, items: Vec<SweepItem>, now_ms: i64) -> SweepReport {
    match store
        .writer()
        .submit_blocking(Command::Expiry(ExpiryCommand::Sweep { items, now_ms }))
        .unwrap()
    {
        Reply::Swept(r) => r,
        other => panic!("{other:?}"),
    }
}

fn items_due(store: &Store, now: i64) -> Vec<SweepItem> {
    store
        .due_expiries(now, 100)
        .unwrap()
        .into_iter()
        .map(|e| {
            assert_eq!(e.kind, KIND_OBJECT);
            SweepItem::Object {
                id: e.id,
                due: Due::Expired { at_ms: e.at_ms },
                namespace: String::new(),
            }
        })
        .collect()
}

#[test]
fn the_expiry_index_follows_creates_patches_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = create(&store, with_expiry("ns", "a", Some(1_000)));
    let b = create(&store, with_expiry("ns", "b", Some(2_000)));
    let c = create(&store, with_expiry("ns", "c", None));
    let due = |now| -> Vec<ObjectId> {
        store
            .due_expiries(now, 100)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(due(999), Vec::<ObjectId>::new());
    assert_eq!(due(1_500), vec![a.id]);
    assert_eq!(due(5_000), vec![a.id, b.id]);
    // Extending, clearing and setting move the entries.
    let patch = |id, at| {
        object(store.writer().submit_blocking(Command::Patch {
            id,
            patch: ObjectPatch {
                expires_at_ms: Some(at),
                ..ObjectPatch::default()
            },
            now_ms: now_ms(),
        }))
    };
    patch(a.id, Some(9_000));
    patch(b.id, None);
    patch(c.id, Some(500));
    assert_eq!(due(5_000), vec![c.id]);
    assert_eq!(due(10_000), vec![c.id, a.id]);
    delete(&store, a.id);
    assert_eq!(due(10_000), vec![c.id]);
    // The bounded read.
    assert_eq!(store.due_expiries(10_000, 0).unwrap().len(), 0);
}

#[test]
fn the_sweep_rechecks_inside_its_transaction_and_drops_stale_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let gone = create(&store, with_expiry("ns", "gone", Some(1_000)));
    let extended = create(&store, with_expiry("ns", "extended", Some(1_000)));
    let items = items_due(&store, 2_000);
    assert_eq!(items.len(), 2);
    // Extended after the sweeper read the index: it stays.
    object(store.writer().submit_blocking(Command::Patch {
        id: extended.id,
        patch: ObjectPatch {
            expires_at_ms: Some(Some(50_000)),
            ..ObjectPatch::default()
        },
        now_ms: now_ms(),
    }));
    let before = store.writer().data_generation();
    let report = sweep(&store, items.clone(), 2_000);
    assert_eq!((report.objects, report.stale), (1, 1), "{report:?}");
    assert!(store.writer().data_generation() > before);
    assert!(store.get_object(gone.id).unwrap().is_none());
    assert!(store.get_object(extended.id).unwrap().is_some());
    // The same items again: both entries are gone from the index (one object deleted,
    // one moved on): nothing is deleted.
    let again = sweep(&store, items, 2_000);
    assert_eq!((again.objects, again.stale), (0, 2), "{again:?}");
    assert_eq!(store.due_expiries(2_000, 10).unwrap(), vec![]);
    // Not yet due at the sweep's time: kept.
    let later = create(&store, with_expiry("ns", "later", Some(3_000)));
    let r = sweep(
        &store,
        vec![SweepItem::Object {
            id: later.id,
            due: Due::Expired { at_ms: 3_000 },
            namespace: String::new(),
        }],
        2_000,
    );
    assert_eq!((r.objects, r.kept), (0, 1));
}

#[test]
fn the_access_flush_keeps_caches_warm_and_moves_the_access_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut rec = with_expiry("photos", "p", None);
    rec.created_at_ms = 1_000;
    let rec = create(&store, rec);
    let other = create(&store, with_expiry("other", "o", None));
    let cutoff = |ns: &str| (ns == "photos").then_some(5_000);
    let idle = store.idle_objects(&cutoff, 10).unwrap();
    assert_eq!(idle.len(), 1);
    assert_eq!(
        (idle[0].id, idle[0].at_ms, idle[0].namespace.as_str()),
        (rec.id, 1_000, "photos")
    );
    let generation = store.writer().data_generation();
    let commits = store.writer().commits();
    let reply = store
        .writer()
        .submit_blocking(Command::Expiry(ExpiryCommand::RecordAccess {
            objects: vec![
                ObjectAccess {
                    id: rec.id,
                    downloads: 3,
                    last_ms: 9_000,
                },
                ObjectAccess {
                    id: Uuid::now_v7(), // deleted meanwhile: skipped
                    downloads: 1,
                    last_ms: 9_000,
                },
            ],
            shares: vec![(Uuid::now_v7(), 4)],
        }))
        .unwrap();
    assert_eq!(reply, Reply::Done);
    assert_eq!(
        store.writer().data_generation(),
        generation,
        "the access flush must not empty the read caches"
    );
    assert!(store.writer().commits() > commits);
    let now = store.get_object(rec.id).unwrap().unwrap();
    assert_eq!((now.downloads, now.last_access_ms), (3, Some(9_000)));
    // No longer idle by the 5,000 cutoff; idle again by a later one.
    assert!(store.idle_objects(&cutoff, 10).unwrap().is_empty());
    let later = |ns: &str| (ns == "photos").then_some(9_000);
    assert_eq!(store.idle_objects(&later, 10).unwrap()[0].id, rec.id);
    // A stale idle item (the object was downloaded since): not deleted.
    let r = sweep(
        &store,
        vec![SweepItem::Object {
            id: rec.id,
            due: Due::Idle {
                cutoff_ms: 5_000,
                at_ms: 1_000,
            },
            namespace: "photos".into(),
        }],
        10_000,
    );
    assert_eq!((r.objects, r.stale), (0, 1), "{r:?}");
    assert!(store.get_object(rec.id).unwrap().is_some());
    // Every namespace's rule: both found, in their namespace's order.
    let all = |_: &str| Some(i64::MAX);
    let ids: HashSet<ObjectId> = store
        .idle_objects(&all, 10)
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, HashSet::from([rec.id, other.id]));
    // A due idle item is deleted.
    let r = sweep(
        &store,
        vec![SweepItem::Object {
            id: rec.id,
            due: Due::Idle {
                cutoff_ms: 9_000,
                at_ms: 9_000,
            },
            namespace: "photos".into(),
        }],
        10_000,
    );
    assert_eq!(r.objects, 1);
    assert!(store.idle_objects(&all, 10).unwrap().len() == 1);
}

/// How long one sweep round of 500 takes on the writer (release: `cargo test
/// --release -p ringbox --bin ringbox stress_sweep_round -- --ignored --nocapture`).
#[test]
#[ignore]
fn stress_sweep_round_timing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path(), Durability::Fsync)).unwrap();
    let n: usize = std::env::var("RINGBOX_SWEEP_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let per_round: usize = std::env::var("RINGBOX_SWEEP_ROUND")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let mut waits = Vec::new();
    for i in 0..n {
        let bytes = format!("blob {i}");
        let mut rec = with_expiry("bulk", &format!("f{i}"), Some(1_000));
        rec.owner = Some("admin".into());
        let blob = new_blob(&store, bytes.as_bytes());
        waits.push(store.writer().submit(Command::Create {
            record: rec,
            blob: Some(blob),
            unique_name: false,
        }));
    }
    for w in waits {
        block_on(w).unwrap();
    }
    eprintln!("created {n}");
    let mut total = Duration::ZERO;
    let mut rounds = 0;
    loop {
        let items = store.due_expiries(2_000, per_round).unwrap();
        if items.is_empty() {
            break;
        }
        let items: Vec<SweepItem> = items
            .into_iter()
            .map(|e| SweepItem::Object {
                id: e.id,
                due: Due::Expired { at_ms: e.at_ms },
                namespace: String::new(),
            })
            .collect();
        let t0 = Instant::now();
        let r = sweep(&store, items, 2_000);
        let took = t0.elapsed();
        total += took;
        rounds += 1;
        if rounds % 20 == 1 {
            eprintln!("round {rounds}: {} deleted in {took:?}", r.objects);
        }
    }
    eprintln!("{n} objects in {rounds} rounds, {total:?}");
}
