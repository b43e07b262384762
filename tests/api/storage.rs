//! The store as seen from outside: de-duplication and reference counting of blob files,
//! persistence across restarts (graceful and `kill -9`), lost blobs (410), `tmp/`
//! cleanup, interrupted uploads, and the offline `ringbox check` / `ringbox gc`.

use crate::common::checks::id_of;
use crate::common::daemon::run_cli;
use crate::common::raw::request;
use crate::common::util::{files_under, poll, random_bytes, sha256_hex, Multipart};
use crate::common::{Client, Daemon, RawConn};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn blobs_dir(d: &Daemon) -> PathBuf {
    d.data_dir().join("blobs")
}

/// Files under `<data>/blobs/` whose name is `sha`.
fn blob_files_named(d: &Daemon, sha: &str) -> Vec<PathBuf> {
    files_under(&blobs_dir(d))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == sha))
        .collect()
}

/// The one blob file named `sha` (panics listing `blobs/` otherwise).
#[track_caller]
fn blob_file(d: &Daemon, sha: &str) -> PathBuf {
    let found = blob_files_named(d, sha);
    assert_eq!(
        found.len(),
        1,
        "expected one blob file named {sha}; blobs/ holds {:?}",
        files_under(&blobs_dir(d))
    );
    found.into_iter().next().unwrap()
}

#[test]
fn dedup_one_blob_file_until_last_reference_goes() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    assert!(
        files_under(&blobs_dir(&d)).is_empty(),
        "fresh store has blob files: {:?}",
        files_under(&blobs_dir(&d))
    );
    let data = random_bytes(21, 100 * 1024);
    let sha = sha256_hex(&data);
    let a = c.upload("a.bin", None, None, &data);
    let b = c.upload("b.bin", Some("elsewhere"), None, &data);
    let mp = Multipart::new().file("file", "c.bin", None, &data);
    let cc = c
        .post("/v1/objects", Some(&mp.content_type()), &mp.body())
        .expect_json(201)["objects"][0]
        .clone();
    for o in [&a, &b, &cc] {
        assert_eq!(o["sha256"], sha);
    }
    assert_eq!(
        files_under(&blobs_dir(&d)),
        vec![blob_file(&d, &sha)],
        "same bytes stored more than once"
    );
    assert_eq!(
        std::fs::metadata(blob_file(&d, &sha)).unwrap().len(),
        data.len() as u64
    );

    c.delete(&format!("/v1/objects/{}", id_of(&a))).expect(204);
    c.delete(&format!("/v1/objects/{}", id_of(&cc))).expect(204);
    assert_eq!(
        c.content(&id_of(&b)).expect(200).body,
        data,
        "the remaining object lost its bytes"
    );
    blob_file(&d, &sha);
    c.get(&format!("/v1/blobs/{sha}")).expect(200);

    c.delete(&format!("/v1/objects/{}", id_of(&b))).expect(204);
    let gone = poll(Duration::from_secs(2), || {
        blob_files_named(&d, &sha).is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "blob file still there 2 s after its last object was deleted"
    );
    c.get(&format!("/v1/blobs/{sha}"))
        .expect_error(404, "not_found");
}

#[test]
fn concurrent_identical_uploads_share_one_blob() {
    let d = Daemon::start(&[]);
    let data = random_bytes(31, 256 * 1024);
    let sha = sha256_hex(&data);
    let ids: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let c = Client::new(&d);
                let data = &data;
                s.spawn(move || id_of(&c.upload(&format!("same-{i}"), None, None, data)))
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("uploader panicked"))
            .collect()
    });
    let c = Client::new(&d);
    for id in &ids {
        assert_eq!(c.object(id)["sha256"], sha);
    }
    assert_eq!(
        files_under(&blobs_dir(&d)),
        vec![blob_file(&d, &sha)],
        "racing uploads of the same bytes"
    );
    assert!(
        files_under(&d.data_dir().join("tmp")).is_empty(),
        "{:?}",
        files_under(&d.data_dir().join("tmp"))
    );
    std::thread::scope(|s| {
        for id in &ids {
            let c = Client::new(&d);
            s.spawn(move || c.delete(&format!("/v1/objects/{id}")).expect(204));
        }
    });
    let gone = poll(Duration::from_secs(2), || {
        blob_files_named(&d, &sha).is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "blob file survived the deletion of all its objects"
    );
}

#[test]
fn replaced_content_releases_the_old_blob() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let old = random_bytes(22, 10_000);
    let new = random_bytes(23, 10_000);
    let v = c.upload("r.bin", None, None, &old);
    let id = id_of(&v);
    c.put(&format!("/v1/objects/{id}/content"), None, &new)
        .expect(200);
    blob_file(&d, &sha256_hex(&new));
    let gone = poll(Duration::from_secs(2), || {
        blob_files_named(&d, &sha256_hex(&old))
            .is_empty()
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "old blob still on disk after the only object using it got new content"
    );
    // A pending file given the same bytes as an existing object shares its blob.
    let p = id_of(
        &c.post_json("/v1/objects", &json!({"type": "file", "name": "p.bin"}))
            .expect_json(201),
    );
    c.put(&format!("/v1/objects/{p}/content"), None, &new)
        .expect(200);
    assert_eq!(blob_files_named(&d, &sha256_hex(&new)).len(), 1);
    assert_eq!(
        files_under(&blobs_dir(&d)).len(),
        1,
        "{:?}",
        files_under(&blobs_dir(&d))
    );
}

/// Creates a mixed set of objects and returns (object JSON, expected content or None
/// for pending).
fn populate(c: &Client) -> Vec<(Value, Option<Vec<u8>>)> {
    let mut out = vec![];
    let data = random_bytes(24, 300 * 1024);
    out.push((
        c.upload("raw.bin", Some("keep"), Some("application/x-thing"), &data),
        Some(data),
    ));
    let mp = Multipart::new()
        .field("tags", "x,y")
        .field("metadata", r#"{"k":"v"}"#)
        .file("file", "m1.txt", Some("text/plain"), b"first")
        .file("file", "m2.txt", Some("text/plain"), b"second");
    let v = c
        .post("/v1/objects", Some(&mp.content_type()), &mp.body())
        .expect_json(201);
    out.push((v["objects"][0].clone(), Some(b"first".to_vec())));
    out.push((v["objects"][1].clone(), Some(b"second".to_vec())));
    let t = c.create_text("note", Some("keep"), "text survives ✓");
    out.push((t, Some("text survives ✓".as_bytes().to_vec())));
    let p = c
        .post_json(
            "/v1/objects",
            &json!({"type": "file", "name": "pending.bin"}),
        )
        .expect_json(201);
    out.push((p, None));
    let r = c.upload("to-rename", None, None, b"renamed");
    let r = c
        .patch_json(
            &format!("/v1/objects/{}", id_of(&r)),
            &json!({"name": "renamed", "metadata": {"m": 1}}),
        )
        .expect_json(200);
    out.push((r, Some(b"renamed".to_vec())));
    out
}

#[track_caller]
fn verify(c: &Client, objs: &[(Value, Option<Vec<u8>>)]) {
    for (v, data) in objs {
        let id = id_of(v);
        assert_eq!(&c.object(&id), v, "object changed across the restart");
        match data {
            Some(bytes) => assert_eq!(
                &c.content(&id).expect(200).body,
                bytes,
                "content of {id} changed"
            ),
            None => {
                c.content(&id).expect_error(409, "pending");
            }
        }
    }
    let list = c.get("/v1/objects").expect_json(200);
    assert_eq!(
        list["objects"].as_array().unwrap().len(),
        objs.len(),
        "{list}"
    );
}

#[test]
fn persistence_across_graceful_restart() {
    let mut d = Daemon::start(&[]);
    let objs = populate(&Client::new(&d));
    d.restart();
    verify(&Client::new(&d), &objs);
    assert!(files_under(&d.data_dir().join("tmp")).is_empty());
}

#[test]
fn persistence_across_kill_9() {
    // The promise: an upload answered 2xx survives kill -9 (default durability fsync).
    let mut d = Daemon::start(&[]);
    let objs = populate(&Client::new(&d));
    d.restart_after_kill();
    verify(&Client::new(&d), &objs);
}

#[test]
fn lost_blob_is_410() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let data = random_bytes(25, 4096);
    let v = c.upload("lost.bin", None, None, &data);
    // Not read before: no cached file handle can hide the loss.
    std::fs::remove_file(blob_file(&d, &sha256_hex(&data))).unwrap();
    c.content(&id_of(&v)).expect_error(410, "lost");
    c.head(&format!("/v1/objects/{}/content", id_of(&v)))
        .expect(410);
    // The record itself is still there.
    let o = c.object(&id_of(&v));
    assert!(o["state"] == "stored" || o["state"] == "lost", "{o}");
}

#[test]
fn tmp_is_empty_after_start() {
    let mut d = Daemon::start(&[]);
    let tmp = d.data_dir().join("tmp");
    assert!(tmp.is_dir(), "no tmp/ in the data dir");
    assert!(files_under(&tmp).is_empty());
    d.stop();
    std::fs::write(tmp.join("leftover-upload"), random_bytes(26, 1 << 20)).unwrap();
    std::fs::write(tmp.join("another"), b"x").unwrap();
    d.start_again();
    let clean = poll(Duration::from_secs(1), || {
        files_under(&tmp).is_empty().then_some(())
    });
    assert!(
        clean.is_some(),
        "tmp/ still holds {:?} after start",
        files_under(&tmp)
    );
    let list = Client::new(&d).get("/v1/objects").expect_json(200);
    assert_eq!(list["objects"], json!([]), "{list}");
}

#[test]
fn interrupted_upload_leaves_nothing() {
    let mut d = Daemon::start(&[]);
    let mut conn = RawConn::connect(d.addr());
    conn.send(&request(
        "POST",
        "/v1/objects?name=cut.bin",
        &[
            ("Authorization", &format!("Bearer {}", d.token())),
            ("Content-Length", "1048576"),
        ],
        b"",
    ));
    conn.send(&random_bytes(27, 300 * 1024));
    drop(conn);
    let c = Client::new(&d);
    let cleaned = poll(Duration::from_secs(3), || {
        files_under(&d.data_dir().join("tmp"))
            .is_empty()
            .then_some(())
    });
    if cleaned.is_none() {
        eprintln!(
            "note: tmp/ not cleaned 3 s after an aborted upload (it must be after a restart)"
        );
    }
    assert_eq!(c.get("/v1/objects").expect_json(200)["objects"], json!([]));
    d.restart();
    assert!(
        files_under(&d.data_dir().join("tmp")).is_empty(),
        "tmp/ leaks after restart"
    );
    assert!(
        files_under(&blobs_dir(&d)).is_empty(),
        "blob from an aborted upload: {:?}",
        files_under(&blobs_dir(&d))
    );
    assert_eq!(
        Client::new(&d).get("/v1/objects").expect_json(200)["objects"],
        json!([])
    );
}

#[test]
fn kill_9_during_upload_leaves_nothing_after_restart() {
    let mut d = Daemon::start(&[]);
    let mut conn = RawConn::connect(d.addr());
    conn.send(&request(
        "POST",
        "/v1/objects?name=cut.bin",
        &[
            ("Authorization", &format!("Bearer {}", d.token())),
            ("Content-Length", "1048576"),
        ],
        b"",
    ));
    conn.send(&random_bytes(28, 500 * 1024));
    // Give the daemon a moment to write some of it to tmp/.
    poll(Duration::from_secs(2), || {
        (!files_under(&d.data_dir().join("tmp")).is_empty()).then_some(())
    });
    d.restart_after_kill();
    drop(conn);
    assert!(
        files_under(&d.data_dir().join("tmp")).is_empty(),
        "tmp/ not emptied at start"
    );
    assert!(
        files_under(&blobs_dir(&d)).is_empty(),
        "{:?}",
        files_under(&blobs_dir(&d))
    );
    assert_eq!(
        Client::new(&d).get("/v1/objects").expect_json(200)["objects"],
        json!([])
    );
}

fn run_check(data: &Path) -> (bool, String) {
    let out = run_cli(
        &["check", "--data", data.to_str().unwrap()],
        Duration::from_secs(60),
    );
    let text = format!(
        "exit {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn check_passes_when_consistent_and_fails_on_corruption() {
    let mut d = Daemon::start(&[]);
    let c = Client::new(&d);
    populate(&c);
    let data = random_bytes(29, 64 * 1024);
    let v = c.upload("victim.bin", None, None, &data);
    let del = c.upload("deleted.bin", None, None, b"deleted soon");
    c.delete(&format!("/v1/objects/{}", id_of(&del)))
        .expect(204);
    let st = d.stop();
    assert!(st.success(), "daemon exited with {st} on SIGTERM");
    let data_dir = d.data_dir().to_path_buf();

    let (ok, out) = run_check(&data_dir);
    assert!(ok, "`ringbox check` failed on a consistent store:\n{out}");

    // Flip one byte in the middle of a blob, keeping its size.
    let path = blob_file(&d, v["sha256"].as_str().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (ok, out) = run_check(&data_dir);
    assert!(!ok, "`ringbox check` passed with a corrupted blob:\n{out}");
    eprintln!("check on a corrupted store said:\n{out}");

    // Missing blob: also a problem.
    std::fs::remove_file(&path).unwrap();
    let (ok, out) = run_check(&data_dir);
    assert!(!ok, "`ringbox check` passed with a missing blob:\n{out}");
}

#[test]
fn gc_removes_orphan_blob_files() {
    let mut d = Daemon::start(&[]);
    let c = Client::new(&d);
    let keep = random_bytes(30, 1000);
    let v = c.upload("keep.bin", None, None, &keep);
    d.stop();
    // Place an orphan where the daemon would have put it (same directory scheme).
    let sha = v["sha256"].as_str().unwrap();
    let existing = blob_file(&d, sha);
    let orphan = b"orphan bytes nobody references";
    let osha = sha256_hex(orphan);
    let rel = existing.strip_prefix(blobs_dir(&d)).unwrap();
    let comps: Vec<_> = rel.components().collect();
    let mut opath = blobs_dir(&d);
    for (i, _) in comps.iter().enumerate().take(comps.len() - 1) {
        opath.push(&osha[2 * i..2 * i + 2]);
    }
    opath.push(&osha);
    std::fs::create_dir_all(opath.parent().unwrap()).unwrap();
    std::fs::write(&opath, orphan).unwrap();

    let out = run_cli(
        &["gc", "--data", d.data_dir().to_str().unwrap()],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "`ringbox gc` failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("`ringbox gc` did not print a JSON report ({e}): {stdout}"));
    assert!(report.is_object(), "{report}");
    assert!(
        !opath.exists(),
        "orphan blob {} survived gc (report {report})",
        opath.display()
    );
    assert!(existing.exists(), "gc removed a referenced blob");
    let (ok, out) = run_check(d.data_dir());
    assert!(ok, "check after gc:\n{out}");
    d.start_again();
    assert_eq!(Client::new(&d).content(&id_of(&v)).expect(200).body, keep);
}
