//! `POST /v1/objects` in every form (raw body, chunked, multipart, JSON text and pending
//! files), `PUT /v1/objects/{id}/content`, MIME detection, `--max-body`, and
//! `Expect: 100-continue` (through curl and by hand).

use crate::common::checks::{assert_object_shape, id_of};
use crate::common::raw::{chunked, request};
use crate::common::util::{files_under, pct, random_bytes, sha256_hex, Multipart, SharedGenerator};
use crate::common::{Client, Daemon, RawConn};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn bearer(d: &Daemon) -> String {
    format!("Bearer {}", d.token())
}

/// Asserts a stored file object for `data` and that its content reads back.
#[track_caller]
fn assert_stored(c: &Client, v: &Value, data: &[u8]) {
    assert_object_shape(v);
    assert_eq!(v["kind"], "file", "{v}");
    assert_eq!(v["state"], "stored", "{v}");
    assert_eq!(v["size"], data.len() as u64, "{v}");
    assert_eq!(v["sha256"], sha256_hex(data), "{v}");
    let r = c.content(&id_of(v)).expect(200);
    assert!(
        r.body == data,
        "content differs: got {} bytes, expected {}",
        r.body.len(),
        data.len()
    );
}

#[test]
fn raw_upload_with_name_and_namespace() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let data = random_bytes(1, 4096);
    let v = c
        .post(
            "/v1/objects?name=report.pdf&namespace=docs.v1_x-Y",
            Some("application/pdf"),
            &data,
        )
        .expect_json(201);
    assert_stored(&c, &v, &data);
    assert_eq!(v["name"], "report.pdf", "{v}");
    assert_eq!(v["namespace"], "docs.v1_x-Y", "{v}");
    assert_eq!(v["mime_type"], "application/pdf", "{v}");
    assert_eq!(v["tags"], json!([]), "{v}");
    assert_eq!(v["metadata"], json!({}), "{v}");
    assert_eq!(
        v["created_at"], v["updated_at"],
        "fresh object: created_at == updated_at: {v}"
    );
    assert_eq!(
        c.object(&id_of(&v)),
        v,
        "GET /v1/objects/{{id}} differs from the upload answer"
    );
}

#[test]
fn raw_upload_default_namespace_and_tags_query() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let v = c
        .post(
            "/v1/objects?name=a.txt&tags=red%2Cgreen",
            Some("text/plain"),
            b"tagged",
        )
        .expect_json(201);
    assert_eq!(v["namespace"], "default", "{v}");
    assert_eq!(v["tags"], json!(["red", "green"]), "{v}");
}

#[test]
fn ids_are_unique_and_time_ordered() {
    let d = Daemon::start(&["--durability", "none"]);
    let c = Client::new(&d);
    let ids: Vec<String> = (0..20)
        .map(|i| id_of(&c.upload(&format!("f{i}"), None, None, b"x")))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "duplicate ids: {ids:?}");
    // UUIDv7: the first 48 bits are a millisecond timestamp, so sequential creates sort.
    assert_eq!(sorted, ids, "ids of sequential uploads are not ascending");
}

#[test]
fn zero_byte_upload() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let v = c.upload("empty.bin", None, Some("application/octet-stream"), b"");
    assert_stored(&c, &v, b"");
    let r = c.content(&id_of(&v)).expect(200);
    assert_eq!(r.header("content-length"), Some("0"), "{}", r.describe());
}

#[test]
fn one_byte_upload() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let v = c.upload("one.bin", None, Some("application/octet-stream"), b"\x00");
    assert_stored(&c, &v, b"\x00");
}

#[test]
fn upload_100_mib_streams_with_bounded_server_memory() {
    const LEN: u64 = 100 << 20;
    const SLACK_KIB: u64 = 64 * 1024;
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    // Warm up: the first upload allocates the connection buffers, LMDB pages, etc.
    c.upload("warm.bin", None, None, &random_bytes(3, 256 * 1024));
    let base_hwm = d.proc_status_kib("VmHWM");

    let gen = SharedGenerator::new(7, LEN);
    let t0 = Instant::now();
    let v = c
        .req("POST", "/v1/objects?name=big.bin")
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", &LEN.to_string())
        .send_reader(gen.clone())
        .expect_json(201);
    let took = t0.elapsed();
    assert_eq!(gen.bytes_read(), LEN);
    let hwm = d.proc_status_kib("VmHWM");
    let rss = d.proc_status_kib("VmRSS");
    let anon = d.proc_status_kib("RssAnon");
    assert!(
        hwm < base_hwm + SLACK_KIB,
        "daemon peak RSS grew from {base_hwm} KiB to {hwm} KiB during a 100 MiB upload (VmRSS {rss} KiB, \
         RssAnon {anon} KiB): the body is not streamed"
    );
    assert_eq!(v["size"], LEN, "{v}");
    assert_eq!(v["sha256"], gen.sha256_hex(), "{v}");
    eprintln!("100 MiB upload took {took:?}; VmHWM {base_hwm} -> {hwm} KiB");

    // Read it back through the blob route and compare hashes.
    let r = c.content(&id_of(&v)).expect(200);
    assert_eq!(r.body.len() as u64, LEN);
    assert_eq!(
        sha256_hex(&r.body),
        gen.sha256_hex(),
        "downloaded bytes differ"
    );
}

#[test]
fn chunked_upload_raw_tcp_then_keep_alive() {
    let d = Daemon::start(&[]);
    let auth = bearer(&d);
    let mut conn = RawConn::connect(d.addr());
    let mut req = request(
        "POST",
        "/v1/objects?name=chunked.txt",
        &[
            ("Authorization", &auth),
            ("Content-Type", "text/plain"),
            ("Transfer-Encoding", "chunked"),
        ],
        b"",
    );
    // Upper-case hex size, a chunk extension, a one-byte chunk.
    req.extend_from_slice(b"5\r\nhello\r\n1;ext=\"v\"\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n");
    conn.send(&req);
    let v = conn.read_response().expect_json(201);
    let data = b"hello 0123456789";
    assert_stored(&Client::new(&d), &v, data);
    // The connection is still usable: the whole chunked body was consumed.
    conn.send(&request(
        "GET",
        &format!("/v1/objects/{}/content", id_of(&v)),
        &[("Authorization", &auth)],
        b"",
    ));
    let r = conn.read_response().expect(200);
    assert_eq!(r.body, data);
}

#[test]
fn chunked_upload_with_trailer_fields() {
    let d = Daemon::start(&[]);
    let mut req = request(
        "POST",
        "/v1/objects?name=trailer.bin",
        &[
            ("Authorization", &bearer(&d)),
            ("Transfer-Encoding", "chunked"),
        ],
        b"",
    );
    req.extend_from_slice(b"4\r\nabcd\r\n0\r\nX-Checksum: whatever\r\n\r\n");
    let mut conn = RawConn::connect(d.addr());
    conn.send(&req);
    let v = conn.read_response().expect_json(201);
    assert_eq!(v["sha256"], sha256_hex(b"abcd"), "{v}");
}

#[test]
fn chunked_upload_many_small_chunks() {
    let d = Daemon::start(&[]);
    let data = random_bytes(5, 300_000);
    let mut req = request(
        "POST",
        "/v1/objects?name=small-chunks.bin",
        &[
            ("Authorization", &bearer(&d)),
            ("Transfer-Encoding", "chunked"),
        ],
        b"",
    );
    req.extend_from_slice(&chunked(&data, 777));
    let mut conn = RawConn::connect(d.addr());
    conn.send(&req);
    let v = conn.read_response().expect_json(201);
    assert_stored(&Client::new(&d), &v, &data);
}

#[test]
fn chunked_upload_through_ureq_reader() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let gen = SharedGenerator::new(9, 3 << 20);
    // No Content-Length: ureq sends `Transfer-Encoding: chunked`.
    let v = c
        .req("POST", "/v1/objects?name=gen.bin")
        .send_reader(gen.clone())
        .expect_json(201);
    assert_eq!(v["size"], 3u64 << 20, "{v}");
    assert_eq!(v["sha256"], gen.sha256_hex(), "{v}");
}

#[test]
fn multipart_several_files_with_fields() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let a = b"plain text file\n".to_vec();
    // Bytes that look like boundaries but are not (no CRLF before, or a different tail).
    let b = b"--\r\n----ringboxTestBoundary7MA4YWxkTrZu0g\r\n--x\r\n".to_vec();
    let png = random_bytes(6, 200 * 1024);
    let mp = Multipart::new()
        .field("namespace", "photos")
        .field("tags", "a,b,c")
        .field("metadata", r#"{"camera":"x100","iso":200}"#)
        .file("file", "a.txt", Some("text/plain"), &a)
        .file("file", "b.bin", Some("application/octet-stream"), &b)
        .file("upload", "c.png", Some("image/png"), &png);
    let v = c
        .post("/v1/objects", Some(&mp.content_type()), &mp.body())
        .expect_json(201);
    let objs = v["objects"]
        .as_array()
        .unwrap_or_else(|| panic!("no objects array: {v}"));
    assert_eq!(objs.len(), 3, "{v}");
    for (o, (name, data)) in objs
        .iter()
        .zip([("a.txt", &a), ("b.bin", &b), ("c.png", &png)])
    {
        assert_stored(&c, o, data);
        assert_eq!(o["name"], name, "{o}");
        assert_eq!(o["namespace"], "photos", "{o}");
        assert_eq!(o["tags"], json!(["a", "b", "c"]), "{o}");
        assert_eq!(o["metadata"], json!({"camera": "x100", "iso": 200}), "{o}");
    }
    assert!(
        objs[0]["mime_type"]
            .as_str()
            .unwrap()
            .starts_with("text/plain"),
        "{}",
        objs[0]
    );
    assert_eq!(objs[2]["mime_type"], "image/png", "{}", objs[2]);
}

#[test]
fn multipart_name_field_overrides_filename_for_one_file() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let mp = Multipart::new().field("name", "renamed.txt").file(
        "file",
        "orig.txt",
        Some("text/plain"),
        b"x",
    );
    let v = c
        .post("/v1/objects", Some(&mp.content_type()), &mp.body())
        .expect_json(201);
    assert_eq!(v["objects"][0]["name"], "renamed.txt", "{v}");
    assert_eq!(v["objects"][0]["namespace"], "default", "{v}");
}

#[test]
fn multipart_fields_after_a_file_apply_to_following_files_only() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let mp = Multipart::new()
        .file("file", "first.txt", Some("text/plain"), b"1")
        .field("namespace", "late")
        .file("file", "second.txt", Some("text/plain"), b"2");
    let v = c
        .post("/v1/objects", Some(&mp.content_type()), &mp.body())
        .expect_json(201);
    assert_eq!(v["objects"][0]["namespace"], "default", "{v}");
    assert_eq!(v["objects"][1]["namespace"], "late", "{v}");
}

#[test]
fn multipart_broken_is_400_and_stores_nothing() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let mp = Multipart::new().file("file", "t.bin", None, &random_bytes(8, 10_000));
    let mut body = mp.body();
    body.truncate(body.len() - 60); // no closing delimiter
    c.post("/v1/objects", Some(&mp.content_type()), &body)
        .expect_error(400, "bad_multipart");
    // Without a boundary parameter.
    c.post("/v1/objects", Some("multipart/form-data"), &mp.body())
        .expect_error_status(400);
    let list = c.get("/v1/objects").expect_json(200);
    assert_eq!(
        list["objects"],
        json!([]),
        "a broken multipart upload left an object: {list}"
    );
    let clean = crate::common::util::poll(Duration::from_secs(2), || {
        files_under(&d.data_dir().join("tmp"))
            .is_empty()
            .then_some(())
    });
    assert!(
        clean.is_some(),
        "tmp/ still holds {:?}",
        files_under(&d.data_dir().join("tmp"))
    );
}

#[test]
fn json_text_object() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let content = "Grüße, world ✓";
    let v = c
        .post_json(
            "/v1/objects",
            &json!({"type": "text", "content": content, "name": "note", "namespace": "notes",
                    "tags": ["t1"], "metadata": {"k": [1, 2]}}),
        )
        .expect_json(201);
    assert_object_shape(&v);
    assert_eq!(v["kind"], "text", "{v}");
    assert_eq!(v["content"], content, "{v}");
    assert_eq!(v["name"], "note", "{v}");
    assert_eq!(v["namespace"], "notes", "{v}");
    assert_eq!(v["tags"], json!(["t1"]), "{v}");
    assert_eq!(v["metadata"], json!({"k": [1, 2]}), "{v}");
    assert_eq!(
        v["size"],
        content.len() as u64,
        "size must be the UTF-8 byte length: {v}"
    );
    assert_eq!(v["sha256"], sha256_hex(content.as_bytes()), "{v}");
    assert_eq!(v["state"], "stored", "{v}");
    assert_eq!(c.object(&id_of(&v)), v);
    // A text object without a name is fine too.
    c.post_json("/v1/objects", &json!({"type": "text", "content": "x"}))
        .expect(201);
}

#[test]
fn json_pending_file_then_put_raw() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let v = c
        .post_json(
            "/v1/objects",
            &json!({"type": "file", "name": "later.bin", "namespace": "p"}),
        )
        .expect_json(201);
    assert_object_shape(&v);
    assert_eq!(v["state"], "pending", "{v}");
    assert_eq!(v["kind"], "file", "{v}");
    assert_eq!(v["sha256"], Value::Null, "{v}");
    let id = id_of(&v);
    c.content(&id).expect_error(409, "pending");

    let data = random_bytes(10, 50_000);
    let put = c
        .put(
            &format!("/v1/objects/{id}/content"),
            Some("application/octet-stream"),
            &data,
        )
        .expect_json(200);
    assert_eq!(put["id"], v["id"], "{put}");
    assert_eq!(put["name"], "later.bin", "{put}");
    assert_stored(&c, &put, &data);
    assert_eq!(c.object(&id)["state"], "stored");
}

#[test]
fn json_pending_file_then_put_multipart() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let id = id_of(
        &c.post_json("/v1/objects", &json!({"type": "file", "name": "mp.bin"}))
            .expect_json(201),
    );
    let data = random_bytes(12, 70_000);
    let mp = Multipart::new()
        .field("ignored", "v")
        .file("file", "whatever.bin", None, &data)
        .file("file", "second-ignored.bin", None, b"not me");
    let put = c
        .put(
            &format!("/v1/objects/{id}/content"),
            Some(&mp.content_type()),
            &mp.body(),
        )
        .expect_json(200);
    assert_stored(&c, &put, &data);
}

#[test]
fn put_replaces_content_and_text_objects_conflict() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let v = c.upload("r.bin", None, None, b"first version");
    let id = id_of(&v);
    let put = c
        .put(
            &format!("/v1/objects/{id}/content"),
            None,
            b"second version",
        )
        .expect_json(200);
    assert_stored(&c, &put, b"second version");
    assert!(
        put["updated_at"].as_str() >= v["updated_at"].as_str(),
        "updated_at went back: {put}"
    );

    let t = c.create_text("t", None, "text");
    c.put(
        &format!("/v1/objects/{}/content", id_of(&t)),
        None,
        b"bytes",
    )
    .expect_error(409, "conflict");
    c.put(
        "/v1/objects/0190a5d1-ac96-774b-bcce-b302099a8057/content",
        None,
        b"x",
    )
    .expect_error(404, "not_found");
}

#[test]
fn json_with_name_query_is_a_raw_file() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let body = br#"{"type":"text","content":"not a text object"}"#;
    let v = c
        .post("/v1/objects?name=doc.json", Some("application/json"), body)
        .expect_json(201);
    assert_eq!(v["kind"], "file", "{v}");
    assert_eq!(v["mime_type"], "application/json", "{v}");
    assert_stored(&c, &v, body);
}

#[test]
fn json_invalid_bodies_are_400() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    for body in [
        &b"{not json"[..],
        br#"{"type":"video","content":"x"}"#,
        br#"{"type":"text"}"#,
        br#"{"type":"text","content":"x","tags":[1]}"#,
        br#"{"type":"text","content":"x","metadata":[1]}"#,
        br#"{"type":"file"}"#,
        br#"[1,2]"#,
    ] {
        let r = c.post("/v1/objects", Some("application/json"), body);
        assert_eq!(
            r.status,
            400,
            "JSON body {:?} should be 400:\n{}",
            String::from_utf8_lossy(body),
            r.describe()
        );
        r.expect_error_status(400);
    }
    assert_eq!(c.get("/v1/objects").expect_json(200)["objects"], json!([]));
}

#[test]
fn invalid_names_and_namespaces_are_400() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let long_ns = "n".repeat(65);
    let long_name = "x".repeat(1025);
    let bad = [
        format!("/v1/objects?name=ok.txt&namespace={long_ns}"),
        "/v1/objects?name=ok.txt&namespace=bad%2Fns".into(),
        "/v1/objects?name=ok.txt&namespace=sp%20ace".into(),
        "/v1/objects?name=ok.txt&namespace=".into(),
        format!("/v1/objects?name={long_name}"),
        "/v1/objects?name=%2Fetc%2Fpasswd".into(),
        "/v1/objects?name=a%2F..%2Fb".into(),
        "/v1/objects?name=..".into(),
        "/v1/objects?name=bell%07.txt".into(),
        "/v1/objects?name=new%0Aline".into(),
        "/v1/objects?name=".into(),
    ];
    for path in &bad {
        let r = c.post(path, Some("text/plain"), b"x");
        assert_eq!(
            r.status,
            400,
            "POST {path} should be 400:\n{}",
            r.describe()
        );
        r.expect_error_status(400);
    }
    // The limits themselves are fine.
    c.post(
        &format!(
            "/v1/objects?name={}&namespace={}",
            "x".repeat(1024),
            "n".repeat(64)
        ),
        None,
        b"x",
    )
    .expect(201);
    c.post(
        &format!("/v1/objects?name={}", pct("dir/sub/file..name.txt")),
        None,
        b"x",
    )
    .expect(201);
    assert_eq!(
        c.get("/v1/objects").expect_json(200)["objects"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn mime_sniffed_from_magic_bytes_and_extension() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let auth = bearer(&d);
    let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
    png.extend_from_slice(&random_bytes(13, 100));

    // No Content-Type at all (raw TCP so no client adds one).
    let mut conn = RawConn::connect(d.addr());
    conn.send(&request(
        "POST",
        "/v1/objects?name=image-no-ext",
        &[("Authorization", &auth)],
        &png,
    ));
    let v = conn.read_response().expect_json(201);
    assert_eq!(
        v["mime_type"], "image/png",
        "PNG magic without Content-Type: {v}"
    );

    // application/octet-stream counts as absent.
    let v = c.upload("image2", None, Some("application/octet-stream"), &png);
    assert_eq!(
        v["mime_type"], "image/png",
        "PNG magic with octet-stream: {v}"
    );

    // Extension when the bytes say nothing.
    conn.send(&request(
        "POST",
        "/v1/objects?name=readme.txt",
        &[("Authorization", &auth)],
        b"just words\n",
    ));
    let v = conn.read_response().expect_json(201);
    assert!(
        v["mime_type"].as_str().unwrap().starts_with("text/plain"),
        ".txt name: {v}"
    );

    // An explicit type wins over both.
    let v = c.upload("x.txt", None, Some("application/x-custom"), &png);
    assert_eq!(
        v["mime_type"], "application/x-custom",
        "explicit Content-Type: {v}"
    );
}

#[test]
fn content_length_over_max_body_is_413_before_the_body() {
    let d = Daemon::start(&["--max-body", "1MiB"]);
    let mut conn = RawConn::connect(d.addr());
    conn.timeout = Duration::from_secs(5);
    conn.send(&request(
        "POST",
        "/v1/objects?name=big.bin",
        &[
            ("Authorization", &bearer(&d)),
            ("Content-Length", &(2u64 << 20).to_string()),
        ],
        b"",
    ));
    // Nothing of the body is sent: the answer must come anyway.
    let r = conn.try_read_response(false).unwrap_or_else(|e| {
        panic!("no answer to an oversized Content-Length before the body: {e}")
    });
    r.expect_error(413, "payload_too_large");
    conn.expect_closed(Duration::from_secs(3))
        .expect("connection closed after 413");
}

#[test]
fn body_of_exactly_max_body_is_accepted() {
    let d = Daemon::start(&["--max-body", "64KiB"]);
    let c = Client::new(&d);
    let data = random_bytes(14, 64 * 1024);
    assert_stored(&c, &c.upload("edge.bin", None, None, &data), &data);
    c.post(
        "/v1/objects?name=over.bin",
        None,
        &random_bytes(14, 64 * 1024 + 1),
    )
    .expect_error(413, "payload_too_large");
}

#[test]
fn chunked_body_over_max_body_is_413_and_leaves_nothing() {
    let d = Daemon::start(&["--max-body", "64KiB"]);
    let mut req = request(
        "POST",
        "/v1/objects?name=chunky.bin",
        &[
            ("Authorization", &bearer(&d)),
            ("Transfer-Encoding", "chunked"),
        ],
        b"",
    );
    req.extend_from_slice(&chunked(&random_bytes(15, 200 * 1024), 8192));
    let mut conn = RawConn::connect(d.addr());
    // The daemon may answer and close before it has read everything; ignore write errors.
    let _ = conn.try_send(&req);
    let r = conn
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("no answer to an oversized chunked body: {e}"));
    r.expect_error(413, "payload_too_large");
    let c = Client::new(&d);
    assert_eq!(c.get("/v1/objects").expect_json(200)["objects"], json!([]));
    let clean = crate::common::util::poll(Duration::from_secs(2), || {
        files_under(&d.data_dir().join("tmp"))
            .is_empty()
            .then_some(())
    });
    assert!(
        clean.is_some(),
        "tmp/ still holds {:?}",
        files_under(&d.data_dir().join("tmp"))
    );
}

#[test]
fn max_body_from_env_and_toml_with_flag_precedence() {
    // env
    let d = Daemon::start_with_env(&[], &[("RINGBOX_MAX_BODY", "1KiB")]);
    let c = Client::new(&d);
    c.post("/v1/objects?name=a", None, &[0; 2048])
        .expect_error(413, "payload_too_large");
    c.post("/v1/objects?name=a", None, &[0; 1024]).expect(201);
    drop(d);
    // TOML, and a flag beats it
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ringbox.toml");
    std::fs::write(&cfg, "max_body = \"1KiB\"\n").unwrap();
    let d = Daemon::start(&["--config", cfg.to_str().unwrap()]);
    Client::new(&d)
        .post("/v1/objects?name=a", None, &[0; 2048])
        .expect_error(413, "payload_too_large");
    drop(d);
    let d = Daemon::start_with_env(
        &["--config", cfg.to_str().unwrap(), "--max-body", "4KiB"],
        &[("RINGBOX_MAX_BODY", "2KiB")],
    );
    Client::new(&d)
        .post("/v1/objects?name=a", None, &[0; 3000])
        .expect(201);
}

fn curl_available() -> bool {
    std::process::Command::new("curl")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn expect_100_continue_with_curl() {
    if !curl_available() {
        eprintln!("SKIPPED expect_100_continue_with_curl: `curl` not found on PATH");
        return;
    }
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload.bin");
    let data = random_bytes(16, 300 * 1024);
    std::fs::write(&file, &data).unwrap();
    let t0 = Instant::now();
    let out = std::process::Command::new("curl")
        .args(["-sS", "-v", "--noproxy", "*", "--max-time", "30"])
        .args(["-H", &format!("Authorization: Bearer {}", d.token())])
        .args([
            "-H",
            "Expect: 100-continue",
            "-H",
            "Content-Type: application/octet-stream",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(d.url("/v1/objects?name=curl.bin"))
        .output()
        .unwrap();
    let took = t0.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    assert!(
        stderr.contains("HTTP/1.1 100 Continue"),
        "curl did not see `100 Continue` (it sends the body anyway after 1 s):\n{stderr}"
    );
    assert!(
        stderr.contains("HTTP/1.1 201"),
        "curl did not get 201:\n{stderr}\n{stdout}"
    );
    let v: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("curl output not JSON ({e}): {stdout}"));
    assert_eq!(v["sha256"], sha256_hex(&data), "{v}");
    assert_eq!(v["size"], data.len() as u64, "{v}");
    eprintln!("curl with Expect: 100-continue took {took:?}");
}

#[test]
fn expect_100_continue_raw_tcp() {
    let d = Daemon::start(&[]);
    let data = random_bytes(17, 100_000);
    let mut conn = RawConn::connect(d.addr());
    conn.timeout = Duration::from_secs(5);
    conn.send(&request(
        "POST",
        "/v1/objects?name=expect.bin",
        &[
            ("Authorization", &bearer(&d)),
            ("Expect", "100-continue"),
            ("Content-Length", &data.len().to_string()),
        ],
        b"",
    ));
    let interim = conn
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("no `100 Continue` before the body was sent: {e}"));
    assert_eq!(
        interim.status,
        100,
        "expected 100 Continue first:\n{}",
        interim.describe()
    );
    assert_eq!(interim.version, "HTTP/1.1");
    conn.send(&data);
    conn.timeout = Duration::from_secs(30);
    let v = conn.read_response().expect_json(201);
    assert_stored(&Client::new(&d), &v, &data);
}

#[test]
fn expect_100_continue_refused_without_token() {
    let d = Daemon::start(&[]);
    let mut conn = RawConn::connect(d.addr());
    conn.timeout = Duration::from_secs(5);
    conn.send(&request(
        "POST",
        "/v1/objects?name=expect.bin",
        &[("Expect", "100-continue"), ("Content-Length", "100000")],
        b"",
    ));
    let r = conn
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("no final answer to an unauthenticated Expect request: {e}"));
    assert_ne!(r.status, 100, "got 100 Continue without a token");
    r.expect_error(401, "unauthorized");
    conn.expect_closed(Duration::from_secs(3))
        .expect("connection closed after the refusal");
}

#[test]
fn expect_100_continue_refused_when_too_large() {
    let d = Daemon::start(&["--max-body", "1KiB"]);
    let mut conn = RawConn::connect(d.addr());
    conn.timeout = Duration::from_secs(5);
    conn.send(&request(
        "POST",
        "/v1/objects?name=expect.bin",
        &[
            ("Authorization", &bearer(&d)),
            ("Expect", "100-continue"),
            ("Content-Length", "5000"),
        ],
        b"",
    ));
    let r = conn
        .try_read_response(false)
        .unwrap_or_else(|e| panic!("no final answer: {e}"));
    assert_ne!(r.status, 100, "got 100 Continue for a body over --max-body");
    r.expect_error(413, "payload_too_large");
    conn.expect_closed(Duration::from_secs(3))
        .expect("connection closed after the refusal");
}
