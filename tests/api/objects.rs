//! `GET|PATCH|DELETE /v1/objects/{id}`, id validation, 404/405 routing.

use crate::common::checks::{assert_object_shape, id_of};
use crate::common::util::sha256_hex;
use crate::common::{Client, Daemon, Resp};
use serde_json::json;

/// A well-formed UUIDv7 that no daemon created.
const UNKNOWN_ID: &str = "0190a5d1-ac96-774b-bcce-b302099a8057";

#[test]
fn get_object_matches_upload_answer() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let v = c.upload("a.txt", Some("ns1"), Some("text/plain"), b"abc");
    let got = c.object(&id_of(&v));
    assert_object_shape(&got);
    assert_eq!(got, v);
    let ct = c
        .get(&format!("/v1/objects/{}", id_of(&v)))
        .must_header("content-type")
        .to_ascii_lowercase();
    assert!(ct.starts_with("application/json"), "{ct}");
}

#[test]
fn patch_rename_and_move_namespace() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let v = c.upload(
        "old.txt",
        Some("from"),
        Some("text/plain"),
        b"content stays",
    );
    let id = id_of(&v);
    std::thread::sleep(std::time::Duration::from_millis(5)); // so updated_at can move
    let p = c
        .patch_json(&format!("/v1/objects/{id}"), &json!({"name": "new.txt"}))
        .expect_json(200);
    assert_object_shape(&p);
    assert_eq!(p["name"], "new.txt", "{p}");
    assert_eq!(p["namespace"], "from", "{p}");
    assert_eq!(p["created_at"], v["created_at"], "{p}");
    assert!(
        p["updated_at"].as_str() > v["updated_at"].as_str(),
        "updated_at did not move: {p}"
    );

    let p = c
        .patch_json(&format!("/v1/objects/{id}"), &json!({"namespace": "to"}))
        .expect_json(200);
    assert_eq!(p["namespace"], "to", "{p}");
    assert_eq!(p["name"], "new.txt", "{p}");
    assert_eq!(c.object(&id), p);

    let in_to = c.get("/v1/objects?namespace=to").expect_json(200);
    assert_eq!(in_to["objects"].as_array().unwrap().len(), 1, "{in_to}");
    let in_from = c.get("/v1/objects?namespace=from").expect_json(200);
    assert_eq!(
        in_from["objects"],
        json!([]),
        "moved object still listed in the old namespace: {in_from}"
    );
    let by_old_name = c.get("/v1/objects?prefix=old").expect_json(200);
    assert_eq!(
        by_old_name["objects"],
        json!([]),
        "renamed object still found by its old name: {by_old_name}"
    );

    // Content and hash unchanged.
    assert_eq!(c.content(&id).expect(200).body, b"content stays");
    assert_eq!(p["sha256"], sha256_hex(b"content stays"));
}

#[test]
fn patch_tags_replace() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let id = id_of(
        &c.post("/v1/objects?name=t&tags=a%2Cb", None, b"x")
            .expect_json(201),
    );
    let p = c
        .patch_json(
            &format!("/v1/objects/{id}"),
            &json!({"tags": ["c", "d", "e"]}),
        )
        .expect_json(200);
    assert_eq!(p["tags"], json!(["c", "d", "e"]), "{p}");
    let p = c
        .patch_json(&format!("/v1/objects/{id}"), &json!({"tags": []}))
        .expect_json(200);
    assert_eq!(p["tags"], json!([]), "{p}");
}

#[test]
fn patch_metadata_merges_and_null_removes() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let v = c
        .post_json(
            "/v1/objects",
            &json!({"type": "text", "content": "x", "name": "m", "metadata": {"a": 1, "b": "two", "c": true}}),
        )
        .expect_json(201);
    let id = id_of(&v);
    let p = c
        .patch_json(
            &format!("/v1/objects/{id}"),
            &json!({"metadata": {"b": null, "c": false, "d": [1, 2]}}),
        )
        .expect_json(200);
    assert_eq!(
        p["metadata"],
        json!({"a": 1, "c": false, "d": [1, 2]}),
        "{p}"
    );
    assert_eq!(c.object(&id)["metadata"], p["metadata"]);
    // Other fields untouched by a metadata-only patch.
    assert_eq!(p["name"], "m");
    assert_eq!(p["content"], "x");
    // Removing a key that does not exist is fine.
    let p = c
        .patch_json(
            &format!("/v1/objects/{id}"),
            &json!({"metadata": {"zzz": null}}),
        )
        .expect_json(200);
    assert_eq!(
        p["metadata"],
        json!({"a": 1, "c": false, "d": [1, 2]}),
        "{p}"
    );
}

#[test]
fn patch_invalid_is_400_and_changes_nothing() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let v = c.upload("keep.txt", None, None, b"x");
    let id = id_of(&v);
    for body in [
        json!({"name": "/abs"}),
        json!({"name": "a/../b"}),
        json!({"name": ""}),
        json!({"namespace": "bad ns"}),
        json!({"metadata": [1]}),
        json!({"tags": [1, 2]}),
    ] {
        let r = c.patch_json(&format!("/v1/objects/{id}"), &body);
        assert_eq!(
            r.status,
            400,
            "PATCH {body} should be 400:\n{}",
            r.describe()
        );
        r.expect_error_status(400);
    }
    let r = c
        .req("PATCH", &format!("/v1/objects/{id}"))
        .header("Content-Type", "application/json")
        .send_bytes(b"{oops");
    r.expect_error_status(400);
    assert_eq!(c.object(&id), v, "a refused PATCH changed the object");
    c.patch_json(&format!("/v1/objects/{UNKNOWN_ID}"), &json!({"name": "x"}))
        .expect_error(404, "not_found");
}

#[test]
fn delete_then_404() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let id = id_of(&c.upload("gone.txt", None, None, b"bye"));
    let r = c.delete(&format!("/v1/objects/{id}")).expect(204);
    assert!(r.body.is_empty(), "204 with a body: {}", r.describe());
    c.get(&format!("/v1/objects/{id}"))
        .expect_error(404, "not_found");
    c.get(&format!("/v1/objects/{id}/content"))
        .expect_error(404, "not_found");
    c.delete(&format!("/v1/objects/{id}"))
        .expect_error(404, "not_found");
    assert_eq!(c.get("/v1/objects").expect_json(200)["objects"], json!([]));
}

#[test]
fn malformed_id_is_400_invalid_id() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    for id in [
        "not-a-uuid",
        "123",
        "0190a5d1ac96774bbcceb302099a8057x",
        "0190a5d1-ac96-774b-bcce-b302099a805g",
    ] {
        c.get(&format!("/v1/objects/{id}"))
            .expect_error(400, "invalid_id");
        c.get(&format!("/v1/objects/{id}/content"))
            .expect_error(400, "invalid_id");
        c.delete(&format!("/v1/objects/{id}"))
            .expect_error(400, "invalid_id");
    }
}

#[test]
fn unknown_id_is_404() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    c.get(&format!("/v1/objects/{UNKNOWN_ID}"))
        .expect_error(404, "not_found");
    c.get(&format!("/v1/objects/{UNKNOWN_ID}/content"))
        .expect_error(404, "not_found");
    c.head(&format!("/v1/objects/{UNKNOWN_ID}/content"))
        .expect(404);
    c.delete(&format!("/v1/objects/{UNKNOWN_ID}"))
        .expect_error(404, "not_found");
}

#[track_caller]
fn assert_405(r: Resp, must_allow: &[&str]) {
    let r = r.expect_error(405, "method_not_allowed");
    let allow = r
        .header("allow")
        .unwrap_or_else(|| panic!("405 without Allow:\n{}", r.describe()))
        .to_string();
    let methods: Vec<String> = allow
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .collect();
    for m in must_allow {
        assert!(methods.iter().any(|x| x == m), "Allow {allow:?} lacks {m}");
    }
}

#[test]
fn wrong_method_is_405_with_allow() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let v = c.upload("a.bin", None, None, b"abc");
    let id = id_of(&v);
    let sha = v["sha256"].as_str().unwrap().to_string();
    assert_405(
        c.put(&format!("/v1/objects/{id}"), None, b"x"),
        &["GET", "PATCH", "DELETE"],
    );
    assert_405(
        c.post(&format!("/v1/objects/{id}/content"), None, b"x"),
        &["GET", "HEAD", "PUT"],
    );
    assert_405(c.delete("/v1/objects"), &["GET", "POST"]);
    assert_405(c.delete(&format!("/v1/blobs/{sha}")), &["GET", "HEAD"]);
    assert_405(c.post("/healthz", None, b"x"), &["GET"]);
}

#[test]
fn unknown_path_is_404() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    for p in [
        "/v1/nope",
        "/nope",
        "/v1/objects/x/y/z",
        "/v2/objects",
        "/v1/objectsx",
    ] {
        c.get(p).expect_error(404, "not_found");
    }
}
