//! The writer's commands beyond plain CRUD: unique names, aliases, metadata changes,
//! expiry, external objects, the two generations, and supervision.

use serde_json::{json, Map, Value};

use super::*;

fn create(store: &Store, record: ObjectRecord, unique_name: bool) -> Result<Reply, StoreError> {
    store.writer().submit_blocking(Command::Create {
        record,
        blob: None,
        unique_name,
    })
}

fn patch(store: &Store, id: ObjectId, patch: ObjectPatch) -> Result<Reply, StoreError> {
    store.writer().submit_blocking(Command::Patch {
        id,
        patch,
        now_ms: 7,
    })
}

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn conflict(r: &Result<Reply, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(_)))
}

#[test]
fn unique_names_on_create_and_patch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = object(create(&store, file_record("ns", "a"), true));
    assert!(conflict(&create(&store, file_record("ns", "a"), true)));
    // Without the flag, names may repeat (the native API allows it).
    let a2 = object(create(&store, file_record("ns", "a"), false));
    // Same name elsewhere, or a longer name, is not a clash.
    object(create(&store, file_record("other", "a"), true));
    object(create(&store, file_record("ns", "ab"), true));
    // get_by_name: the first by id (ids are time-ordered).
    assert_eq!(
        store.get_by_name("ns", "a").unwrap().map(|r| r.id),
        Some(a.id)
    );
    assert_eq!(store.get_by_name("ns", "nothing").unwrap(), None);
    assert!(matches!(
        store.get_by_name("n\0s", "a"),
        Err(StoreError::Invalid(_))
    ));

    // Rename onto a taken name: refused with the flag, allowed without.
    let b = object(create(&store, file_record("ns", "b"), true));
    let onto_a = |unique_name| ObjectPatch {
        name: Some("a".into()),
        unique_name,
        ..ObjectPatch::default()
    };
    assert!(conflict(&patch(&store, b.id, onto_a(true))));
    assert_eq!(store.get_object(b.id).unwrap().unwrap().name, "b");
    // A move to a namespace where the name is taken is a clash too.
    let c = object(create(&store, file_record("elsewhere", "ab"), true));
    let mv = ObjectPatch {
        namespace: Some("ns".into()),
        unique_name: true,
        ..ObjectPatch::default()
    };
    assert!(conflict(&patch(&store, c.id, mv)));
    // Keeping one's own name (or patching something else) is not a clash with oneself,
    // even when duplicates exist from before.
    let same = ObjectPatch {
        name: Some("a".into()),
        tags: Some(vec!["x".into()]),
        unique_name: true,
        ..ObjectPatch::default()
    };
    object(patch(&store, a2.id, same));
    object(patch(&store, b.id, onto_a(false)));

    // Deleting frees the name.
    delete(&store, c.id);
    object(create(&store, file_record("elsewhere", "ab"), true));
}

#[test]
fn concurrent_unique_creates_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Queued back to back (usually one batch) and from many threads (many batches).
    let futures: Vec<_> = (0..20)
        .map(|_| {
            store.writer().submit(Command::Create {
                record: file_record("ns", "race"),
                blob: None,
                unique_name: true,
            })
        })
        .collect();
    let results: Vec<_> = futures.into_iter().map(block_on).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().filter(|r| r.is_err()).all(conflict));

    let threads: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            thread::spawn(move || {
                (0..10)
                    .filter(|_| create(&store, file_record("ns", "race2"), true).is_ok())
                    .count()
            })
        })
        .collect();
    let wins: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(wins, 1);
    assert_eq!(
        store
            .list_objects(&lq(Some("ns"), Some("race2"), None, 100))
            .unwrap()
            .objects
            .len(),
        1
    );
}

#[test]
fn aliases_are_unique_indexed_and_removed_with_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut rec = file_record("ns", "photo.jpg");
    rec.aliases = vec![
        "s:Ab3x9_Zq".into(),
        "path:media/x.jpg".into(),
        "s:Ab3x9_Zq".into(),
    ];
    let a = object(create(&store, rec, false));
    assert_eq!(
        a.aliases,
        ["s:Ab3x9_Zq", "path:media/x.jpg"],
        "duplicates dropped"
    );
    assert_eq!(store.get_by_alias("s:Ab3x9_Zq").unwrap(), Some(a.clone()));
    assert_eq!(
        store.get_by_alias("path:media/x.jpg").unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.get_by_alias("s:nope").unwrap(), None);
    assert_eq!(store.get_by_alias("").unwrap(), None);
    assert_eq!(store.get_by_alias(&"x".repeat(1000)).unwrap(), None);

    // A taken alias refuses the whole create: no record, no other alias indexed.
    let mut clash = file_record("ns", "other");
    clash.aliases = vec!["s:fresh".into(), "s:Ab3x9_Zq".into()];
    let clash_id = clash.id;
    assert!(conflict(&create(&store, clash, false)));
    assert_eq!(store.get_object(clash_id).unwrap(), None);
    assert_eq!(store.get_by_alias("s:fresh").unwrap(), None);
    // Malformed aliases are Invalid.
    let mut bad = file_record("ns", "bad");
    bad.aliases = vec!["no-scheme".into()];
    assert!(matches!(
        create(&store, bad, false),
        Err(StoreError::Invalid(_))
    ));

    // Two creates with one alias in one batch: one wins.
    let futures: Vec<_> = (0..4)
        .map(|i| {
            let mut r = file_record("ns", &format!("b{i}"));
            r.aliases = vec!["s:batch".into()];
            store.writer().submit(Command::Create {
                record: r,
                blob: None,
                unique_name: false,
            })
        })
        .collect();
    let results: Vec<_> = futures.into_iter().map(block_on).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);

    // Patch adds aliases; one it already has is a no-op; one of another object clashes.
    let b = object(create(&store, file_record("ns", "b"), false));
    let add = |aliases: &[&str]| ObjectPatch {
        aliases_add: aliases.iter().map(|s| s.to_string()).collect(),
        ..ObjectPatch::default()
    };
    let b2 = object(patch(&store, b.id, add(&["s:b", "path:b"])));
    assert_eq!(b2.aliases, ["s:b", "path:b"]);
    let b3 = object(patch(&store, b.id, add(&["s:b", "s:b2"])));
    assert_eq!(b3.aliases, ["s:b", "path:b", "s:b2"]);
    assert!(conflict(&patch(
        &store,
        b.id,
        add(&["s:new", "s:Ab3x9_Zq"])
    )));
    assert_eq!(store.get_by_alias("s:new").unwrap(), None);
    assert_eq!(store.get_object(b.id).unwrap().unwrap().aliases, b3.aliases);
    assert!(matches!(
        patch(&store, b.id, add(&["bad"])),
        Err(StoreError::Invalid(_))
    ));

    // Delete removes the aliases in the same transaction; they can be taken again.
    delete(&store, a.id);
    assert_eq!(store.get_by_alias("s:Ab3x9_Zq").unwrap(), None);
    let c = object(patch(&store, b.id, add(&["s:Ab3x9_Zq"])));
    assert_eq!(store.get_by_alias("s:Ab3x9_Zq").unwrap(), Some(c));
    drop(store);
    let report = check(&dir.path().join("data")).unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
}

#[test]
fn check_reports_broken_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = open(dir.path());
    let mut rec = file_record("ns", "a");
    rec.aliases = vec!["s:one".into(), "s:two".into()];
    let a = object(create(&store, rec, false));
    {
        let inner = &store.inner;
        let mut w = inner.env.write_txn().unwrap();
        inner.dbs.aliases.delete(&mut w, b"s:one").unwrap();
        inner
            .dbs
            .aliases
            .put(&mut w, b"s:ghost", Uuid::now_v7().as_bytes())
            .unwrap();
        inner
            .dbs
            .aliases
            .put(&mut w, b"s:stale", a.id.as_bytes())
            .unwrap();
        w.commit().unwrap();
    }
    drop(store);
    let report = check(&data).unwrap();
    let p = report.problems.join("\n");
    assert!(
        p.contains("\"s:one\" is missing from the aliases index"),
        "{p}"
    );
    assert!(
        p.contains("\"s:ghost\"") && p.contains("no such object"),
        "{p}"
    );
    assert!(p.contains("\"s:stale\"") && p.contains("stale"), "{p}");
    assert_eq!(report.problems.len(), 3, "{p}");
}

#[test]
fn metadata_changes_are_capped_and_expiry_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut rec = file_record("ns", "m");
    rec.metadata_json = json!({"a": 1, "b": 2}).to_string();
    let rec = object(create(&store, rec, false));
    let meta_of = |r: &ObjectRecord| serde_json::from_str::<Value>(&r.metadata_json).unwrap();
    let change = |c: MetadataChange| ObjectPatch {
        metadata: Some(c),
        ..ObjectPatch::default()
    };
    let r = object(patch(
        &store,
        rec.id,
        change(MetadataChange::Replace(map(json!({"z": true})))),
    ));
    assert_eq!(meta_of(&r), json!({"z": true}));
    let r = object(patch(
        &store,
        rec.id,
        change(MetadataChange::Merge(map(json!({"y": [1], "z": null})))),
    ));
    assert_eq!(meta_of(&r), json!({"y": [1]}));
    let r = object(patch(
        &store,
        rec.id,
        change(MetadataChange::Remove(vec!["y".into(), "q".into()])),
    ));
    assert_eq!(meta_of(&r), json!({}));

    // The cap is on the result: two patches of 40 KiB each, the second refused.
    let forty = "x".repeat(40 * 1024);
    object(patch(
        &store,
        rec.id,
        change(MetadataChange::Merge(map(json!({"p1": forty})))),
    ));
    let r = patch(
        &store,
        rec.id,
        change(MetadataChange::Merge(map(json!({"p2": forty})))),
    );
    assert!(
        matches!(&r, Err(StoreError::Invalid(m)) if m.contains("65536")),
        "{r:?}"
    );
    let now = store.get_object(rec.id).unwrap().unwrap();
    assert!(
        meta_of(&now).get("p2").is_none(),
        "a refused patch changed nothing"
    );
    let mut big = file_record("ns", "big");
    big.metadata_json = json!({ "p": "x".repeat(MAX_METADATA_BYTES) }).to_string();
    assert!(matches!(
        create(&store, big, false),
        Err(StoreError::Invalid(_))
    ));

    // Expiry: set, then clear; `None` leaves it.
    let exp = |e: Option<Option<i64>>| ObjectPatch {
        expires_at_ms: e,
        ..ObjectPatch::default()
    };
    assert_eq!(
        object(patch(&store, rec.id, exp(Some(Some(123))))).expires_at_ms,
        Some(123)
    );
    assert_eq!(
        object(patch(&store, rec.id, exp(None))).expires_at_ms,
        Some(123)
    );
    assert_eq!(
        object(patch(&store, rec.id, exp(Some(None)))).expires_at_ms,
        None
    );
}

#[test]
fn external_objects_hold_no_blob_reference() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let content = b"a photo indexed in place";
    let mut rec = file_record("scan", "x.jpg");
    rec.source = Source::External(ExternalFile {
        root: "/srv/photos".into(),
        path: b"/srv/photos/x.jpg".to_vec(),
        size: content.len() as u64,
        mtime_ns: 1,
    });
    rec.state = State::Stored;
    rec.size = content.len() as u64;
    rec.sha256 = Some(sha(content));
    rec.media = Some(MediaInfo {
        width: Some(10),
        ..MediaInfo::default()
    });
    rec.aliases = vec!["path:x.jpg".into()];
    let ext = object(create(&store, rec.clone(), true));
    assert_eq!(ext, rec);
    assert_eq!(store.get_blob(&sha(content)).unwrap(), None);
    // Not uploadable, not a blob owner; an upload of the same bytes is a separate blob.
    let r = store.writer().submit_blocking(Command::SetContent {
        id: ext.id,
        blob: new_blob(&store, content),
        mime_type: None,
        now_ms: 1,
    });
    assert!(conflict(&r), "{r:?}");
    assert_eq!(tmp_entries(&store), 0);
    let managed = create_file(&store, "ns", "copy", content);
    assert_eq!(store.get_blob(&sha(content)).unwrap().unwrap().refcount, 1);
    let mut with_blob = rec.clone();
    with_blob.id = Uuid::now_v7();
    with_blob.aliases.clear();
    let r = store.writer().submit_blocking(Command::Create {
        record: with_blob,
        blob: Some(new_blob(&store, b"upload")),
        unique_name: false,
    });
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    // GC leaves it alone; lost and healed without blob checks.
    assert!(matches!(
        store.writer().submit_blocking(Command::Gc),
        Ok(Reply::Gc(_))
    ));
    assert_eq!(mark_lost(&store, ext.id, sha(content)).state, State::Lost);
    assert_eq!(
        object(heal(&store, ext.id, sha(content))).state,
        State::Stored
    );
    drop(store);
    let report = check(&dir.path().join("data")).unwrap();
    assert!(report.is_consistent(), "{:?}", report.problems);
    // Deleting it touches no blob.
    let store = open(dir.path());
    delete(&store, ext.id);
    assert_eq!(store.get_blob(&sha(content)).unwrap().unwrap().refcount, 1);
    assert!(store.blob_path(&sha(content)).is_file());
    delete(&store, managed.id);
    drop(store);
    assert!(check(&dir.path().join("data")).unwrap().is_consistent());
}

#[test]
fn data_generation_moves_only_for_object_and_blob_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    wait_for_gc_runs(&store, 1);
    let w = store.writer();
    let (gen, commits) = (w.data_generation(), w.commits());

    // Tokens: a commit, no data change.
    let (_, digest) = generate_token().unwrap();
    let token = TokenRecord {
        user: "bob".into(),
        role: Role::User,
        label: "t".into(),
        created_at_ms: 0,
        expires_at_ms: None,
        id: [7; 16],
        last_used_ms: None,
    };
    w.submit_blocking(Command::PutToken {
        token_sha256: digest,
        record: token,
    })
    .unwrap();
    w.submit_blocking(Command::DeleteToken {
        token_sha256: digest,
    })
    .unwrap();
    assert_eq!(w.commits(), commits + 2);
    assert_eq!(w.data_generation(), gen);

    // A rejected command changes nothing either.
    assert!(w
        .submit_blocking(Command::Delete { id: Uuid::now_v7() })
        .is_err());
    assert_eq!(w.data_generation(), gen);

    let a = create_file(&store, "ns", "a", b"bytes");
    let g1 = w.data_generation();
    assert!(g1 > gen);
    // A no-op MarkLost (another hash) is not a data change; a real one is.
    mark_lost(&store, a.id, [0; 32]);
    assert_eq!(w.data_generation(), g1);
    object(patch(&store, a.id, ObjectPatch::default()));
    let g2 = w.data_generation();
    assert!(g2 > g1);
    delete(&store, a.id);
    let g3 = w.data_generation();
    assert!(g3 > g2);

    // GC moves it only when it removed something.
    assert_eq!(
        w.submit_blocking(Command::Gc).unwrap(),
        Reply::Gc(GcReport::default())
    );
    assert_eq!(w.data_generation(), g3);
    fs::write(store.blob_path(&sha(b"orphan")), b"orphan").unwrap();
    let r = w.submit_blocking(Command::Gc).unwrap();
    assert!(
        matches!(
            r,
            Reply::Gc(GcReport {
                blobs_removed: 1,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(w.data_generation() > g3);
}

#[test]
fn a_panic_in_the_writer_fails_its_batch_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let before = store.writer().panics();
    let failed_before = store.writer().stats().failed_batches;
    let r = store.writer().submit_blocking(Command::DebugPanic);
    assert!(
        matches!(&r, Err(StoreError::Internal(m)) if m.contains("internal error")),
        "{r:?}"
    );
    assert!(store.writer().panics() > before);
    assert!(store.writer().stats().failed_batches > failed_before);
    // The thread is alive and the store intact.
    let rec = create_file(&store, "ns", "after", b"after the panic");
    assert_eq!(store.get_object(rec.id).unwrap(), Some(rec));
    drop(store);
    assert!(check(&dir.path().join("data")).unwrap().is_consistent());
}

#[test]
fn set_media_only_for_the_current_content_and_keeps_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let rec = create_file(&store, "ns", "p.jpg", b"first bytes");
    let set = |sha256: Sha256, media: MediaInfo| {
        object(store.writer().submit_blocking(Command::SetMedia {
            id: rec.id,
            sha256,
            media,
        }))
    };
    let g = store.writer().data_generation();
    let probed = MediaInfo {
        width: Some(4),
        height: Some(3),
        ..MediaInfo::default()
    };
    let after = set(sha(b"first bytes"), probed.clone());
    assert_eq!(after.media.as_ref(), Some(&probed));
    // Derived data: the content's time stays.
    assert_eq!(after.updated_at_ms, rec.updated_at_ms);
    assert!(store.writer().data_generation() > g);
    // Stale (another content): nothing changes, nothing moves.
    let g = store.writer().data_generation();
    let stale = set(sha(b"other"), MediaInfo::default());
    assert_eq!(stale.media.as_ref(), Some(&probed));
    assert_eq!(store.writer().data_generation(), g);
    // A refusal recorded first survives a probe without an error, and one recorded
    // after a probe keeps what the probe found.
    let add = |sha256: Sha256, error: &str| {
        object(store.writer().submit_blocking(Command::AddMediaError {
            id: rec.id,
            sha256,
            error: error.into(),
        }))
    };
    let refused = MediaInfo {
        error: Some("thumbnail: image file is truncated".into()),
        ..probed.clone()
    };
    assert_eq!(
        add(sha(b"first bytes"), "thumbnail: image file is truncated").media,
        Some(refused.clone())
    );
    let again = set(sha(b"first bytes"), probed.clone());
    assert_eq!(again.media.as_ref(), Some(&refused));
    // Once only; another reason is appended; a stale one is ignored.
    assert_eq!(
        add(sha(b"first bytes"), "thumbnail: image file is truncated").media,
        Some(refused.clone())
    );
    let two = add(sha(b"first bytes"), "EXIF: broken");
    assert_eq!(
        two.media.unwrap().error.as_deref(),
        Some("thumbnail: image file is truncated; EXIF: broken")
    );
    assert!(add(sha(b"other"), "x")
        .media
        .unwrap()
        .error
        .unwrap()
        .ends_with("broken"));
    set(sha(b"first bytes"), refused.clone());
    // New content drops what was probed from the old one.
    let replaced = object(store.writer().submit_blocking(Command::SetContent {
        id: rec.id,
        blob: new_blob(&store, b"second bytes"),
        mime_type: None,
        now_ms: 9,
    }));
    assert_eq!(replaced.media, None);
    // Not for text objects.
    let mut text = file_record("ns", "t");
    text.kind = Kind::Text;
    text.content = Some("hi".into());
    let text = object(create(&store, text, false));
    let r = object(store.writer().submit_blocking(Command::SetMedia {
        id: text.id,
        sha256: [0; 32],
        media: probed,
    }));
    assert_eq!(r.media, None);
}

#[test]
fn set_external_replaces_content_and_aliases_of_scanned_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut rec = file_record("scan", "a.jpg");
    let file = |size: u64, mtime_ns: i64| ExternalFile {
        root: "/srv".into(),
        path: b"/srv/a.jpg".to_vec(),
        size,
        mtime_ns,
    };
    rec.source = Source::External(file(3, 1));
    rec.state = State::Stored;
    rec.size = 3;
    rec.sha256 = Some(sha(b"old"));
    rec.aliases = vec!["ext:a".into(), "xsha:old:1".into()];
    let rec = object(create(&store, rec, false));
    let r = object(store.writer().submit_blocking(Command::SetExternal {
        id: rec.id,
        file: file(5, 2),
        sha256: sha(b"newer"),
        mime_type: "image/png".into(),
        media: None,
        aliases: vec!["ext:a".into(), "xsha:new:1".into()],
        now_ms: 42,
    }));
    assert_eq!(
        (r.size, r.sha256, r.updated_at_ms),
        (5, Some(sha(b"newer")), 42)
    );
    assert_eq!(r.mime_type, "image/png");
    assert_eq!(r.source, Source::External(file(5, 2)));
    assert_eq!(store.get_by_alias("xsha:old:1").unwrap(), None);
    assert_eq!(
        store.get_by_alias("xsha:new:1").unwrap().map(|o| o.id),
        Some(rec.id)
    );
    assert_eq!(
        store.ids_by_alias_prefix("xsha:new:", 10).unwrap(),
        vec![rec.id]
    );
    assert_eq!(
        store.get_by_alias("ext:a").unwrap().map(|o| o.id),
        Some(rec.id)
    );
    // Managed objects are not files indexed in place.
    let managed = create_file(&store, "ns", "m", b"bytes");
    let r = store.writer().submit_blocking(Command::SetExternal {
        id: managed.id,
        file: file(1, 1),
        sha256: sha(b"x"),
        mime_type: "image/png".into(),
        media: None,
        aliases: vec![],
        now_ms: 1,
    });
    assert!(conflict(&r), "{r:?}");
    drop(store);
    assert!(check(&dir.path().join("data")).unwrap().is_consistent());
}

#[test]
fn the_blob_removed_hook_sees_unlinks_and_gc() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    assert!(store
        .writer()
        .on_blob_removed(Box::new(move |sha| s2.lock().unwrap().push(*sha))));
    assert!(!store.writer().on_blob_removed(Box::new(|_| {})));
    let a = create_file(&store, "ns", "a", b"content a");
    delete(&store, a.id);
    assert_eq!(*seen.lock().unwrap(), vec![sha(b"content a")]);
    // An orphan file collected by GC.
    let orphan = sha(b"orphan");
    std::fs::write(store.blob_path(&orphan), b"orphan").unwrap();
    assert!(matches!(
        store.writer().submit_blocking(Command::Gc),
        Ok(Reply::Gc(_))
    ));
    assert!(seen.lock().unwrap().contains(&orphan));
}
