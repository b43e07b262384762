//! The Metaclip API (seed 000) through real sockets: the seed's own examples, its
//! statuses (400, 404, 410, 415, 416, 422), ranges, the anonymous modes, the core's
//! rules seen through it (ownership, quotas, de-duplication), the native view of its
//! items, and `/ws` with a real WebSocket client (created/deleted within a second,
//! `{"type":"ping"}` and WebSocket-level pings).

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use crate::common::util::{parse_byteranges, random_bytes, sha256_hex, Multipart};
use crate::common::{Client, Daemon, Resp};

/// A daemon that serves Metaclip clients as the original does (no tokens).
fn open_daemon() -> Daemon {
    Daemon::start(&["--anonymous", "write"])
}

/// Asserts a FastAPI-shaped error (`{"detail": "..."}` as JSON) and returns the detail.
#[track_caller]
fn detail(r: Resp, status: u16) -> String {
    let r = r.expect(status);
    assert!(
        r.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "{}",
        r.describe()
    );
    let v = r.json();
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{}", r.describe());
    v["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("no string detail: {}", r.describe()))
        .to_string()
}

#[track_caller]
fn create(c: &Client, kind: &str, content: &str) -> Value {
    let v = c
        .post_json("/items", &json!({"type": kind, "content": content}))
        .expect_json(201);
    assert_eq!(v["type"], kind);
    assert_eq!(v["content"], content);
    assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
    v
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// `PUT /file/{id}` with a multipart part named `file`, as the seed's clients send it.
#[track_caller]
fn put_file(c: &Client, id: &str, data: &[u8]) -> Resp {
    let form = Multipart::new().file("file", "document.pdf", Some("application/pdf"), data);
    c.put(
        &format!("/file/{id}"),
        Some(&form.content_type()),
        &form.body(),
    )
}

fn get_range(c: &Client, id: &str, range: &str) -> Resp {
    c.req("GET", &format!("/file/{id}"))
        .header("Range", range)
        .call()
}

#[test]
fn the_seed_examples_work_as_documented() {
    let d = open_daemon();
    let c = Client::anonymous(&d);

    // Health: the same JSON whatever the client accepts.
    for accept in [
        None,
        Some("application/json"),
        Some("*/*"),
        Some("text/html,*/*;q=0.8"),
    ] {
        let mut r = c.req("GET", "/");
        if let Some(a) = accept {
            r = r.header("Accept", a);
        }
        let r = r.call().expect(200);
        assert_eq!(r.json(), json!({"status": "healthy"}), "{accept:?}");
        assert!(r
            .must_header("content-type")
            .starts_with("application/json"));
    }

    // Create, list, get.
    let text = create(&c, "text", "Hello world");
    let file = create(&c, "file", "document.pdf");
    crate::common::checks::assert_uuid_v7(&id(&text));
    let all = c.get("/items").expect_json(200);
    assert_eq!(all, json!([text, file]));
    assert_eq!(
        c.get(&format!("/items/{}", id(&text))).expect_json(200),
        text
    );
    assert_eq!(
        c.get(&format!("/items/{}", id(&file))).expect_json(200),
        file
    );

    // Upload the file's bytes; HEAD gives its length; GET the bytes, whole and ranged.
    let data = random_bytes(13, 3000);
    let r = put_file(&c, &id(&file), &data).expect(201);
    assert!(r.body.is_empty(), "{}", r.describe());
    let h = c.head(&format!("/file/{}", id(&file))).expect(200);
    assert_eq!(h.must_header("content-length"), "3000");
    assert_eq!(h.must_header("content-type"), "application/octet-stream");
    let g = c.get(&format!("/file/{}", id(&file))).expect(200);
    assert_eq!(g.body, data);
    assert_eq!(g.must_header("content-type"), "application/octet-stream");
    let r = get_range(&c, &id(&file), "bytes=0-499").expect(206);
    assert_eq!(r.body, &data[..500]);
    assert_eq!(r.must_header("content-range"), "bytes 0-499/3000");
    assert_eq!(r.must_header("content-length"), "500");
    assert_eq!(r.must_header("content-type"), "application/octet-stream");

    // Delete: 204, then the item and its file are 404.
    c.delete(&format!("/items/{}", id(&file))).expect(204);
    assert_eq!(
        detail(c.get(&format!("/items/{}", id(&file))), 404),
        "Item not found"
    );
    detail(c.get(&format!("/file/{}", id(&file))), 404);
    c.head(&format!("/file/{}", id(&file))).expect(404);
    detail(c.delete(&format!("/items/{}", id(&file))), 404);
    assert_eq!(c.get("/items").expect_json(200), json!([text]));
}

#[test]
fn refusals_have_the_seed_statuses_and_shape() {
    let d = open_daemon();
    let c = Client::anonymous(&d);
    let post = |body: &[u8]| c.post("/items", Some("application/json"), body);
    assert_eq!(
        detail(post(br#"{"type":"text"}"#), 400),
        "Items must have content"
    );
    detail(post(br#"{"type":"file"}"#), 400);
    detail(post(br#"{"type":"text","content":""}"#), 400);
    assert_eq!(
        detail(post(br#"{"type":"image","content":"x"}"#), 422),
        "Type must be 'text' or 'file'"
    );
    detail(post(br#"{"content":"x"}"#), 422);
    detail(post(br#"{"type":"text","content":42}"#), 422);
    detail(post(b"[1,2]"), 422);
    detail(post(br#"{"type":"text","content":"#), 400);
    detail(post(b"not json"), 400);
    // Unknown keys are ignored (pydantic does the same).
    create(&c, "text", "x");
    c.post_json(
        "/items",
        &json!({"type":"text","content":"y","pinned":true}),
    )
    .expect(201);
    // A file name the core's naming rules refuse.
    detail(
        c.post_json("/items", &json!({"type":"file","content":"../etc/passwd"})),
        400,
    );
    // Malformed ids are unknown ids.
    for bad in [
        "nope",
        "123",
        "550e8400-e29b-41d4-a716-44665544000",
        "%E2%9C%93",
    ] {
        detail(c.get(&format!("/items/{bad}")), 404);
        detail(c.delete(&format!("/items/{bad}")), 404);
        detail(c.get(&format!("/file/{bad}")), 404);
        detail(put_file(&c, bad, b"x"), 404);
    }
    let unknown = "550e8400-e29b-41d4-a716-446655440000";
    detail(c.get(&format!("/items/{unknown}")), 404);
    detail(put_file(&c, unknown, b"x"), 404);
    // Text items have no file: 415 to read, 400 to write.
    let text = create(&c, "text", "Hello world");
    assert_eq!(
        detail(c.get(&format!("/file/{}", id(&text))), 415),
        "Not a file"
    );
    c.head(&format!("/file/{}", id(&text))).expect(415);
    assert_eq!(detail(put_file(&c, &id(&text), b"x"), 400), "Not a file");
    // A file item with no bytes yet: 404.
    let file = create(&c, "file", "later.bin");
    detail(c.get(&format!("/file/{}", id(&file))), 404);
    c.head(&format!("/file/{}", id(&file))).expect(404);
    // A form without a `file` part.
    let form = Multipart::new().file("upload", "a.bin", None, b"abc");
    detail(
        c.put(
            &format!("/file/{}", id(&file)),
            Some(&form.content_type()),
            &form.body(),
        ),
        422,
    );
    detail(c.get(&format!("/file/{}", id(&file))), 404);
    // Other methods: 405 with Allow, in this API's shape.
    let r = c.req("PATCH", "/items").call();
    assert!(r.must_header("allow").contains("POST"));
    detail(r, 405);
    // Not rate-limited: no rate headers.
    assert!(c.get("/items").header("x-ratelimit-limit").is_none());
}

#[test]
fn ranges_follow_rfc_9110_and_the_seed() {
    let d = open_daemon();
    let c = Client::anonymous(&d);
    let file = create(&c, "file", "video.mp4");
    let data = random_bytes(7, 10_000);
    // A raw (non-multipart) body is stored as sent.
    c.put(&format!("/file/{}", id(&file)), None, &data)
        .expect(201);
    let f = id(&file);
    let cases: [(&str, u64, u64); 5] = [
        ("bytes=0-0", 0, 0),
        ("bytes=9000-", 9000, 9999),
        ("bytes=-100", 9900, 9999),
        ("bytes=9990-20000", 9990, 9999),
        ("bytes=100-199", 100, 199),
    ];
    for (range, first, last) in cases {
        let r = get_range(&c, &f, range).expect(206);
        assert_eq!(
            r.must_header("content-range"),
            format!("bytes {first}-{last}/10000"),
            "{range}"
        );
        assert_eq!(r.body, &data[first as usize..=last as usize], "{range}");
    }
    // Several ranges: multipart/byteranges, each part with its Content-Range.
    let r = get_range(&c, &f, "bytes=0-9,100-109").expect(206);
    let ct = r.must_header("content-type").to_string();
    assert!(ct.starts_with("multipart/byteranges"), "{ct}");
    let boundary = crate::common::util::media_type_param(&ct, "boundary").unwrap();
    let parts = parse_byteranges(&r.body, &boundary).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(
        parts[1].header("content-range"),
        Some("bytes 100-109/10000")
    );
    assert_eq!(parts[1].data, &data[100..110]);
    // Unsatisfiable: start past the end, or last before first: 416 with */len.
    for range in ["bytes=10000-", "bytes=20000-30000", "bytes=500-100"] {
        let r = get_range(&c, &f, range);
        assert_eq!(r.header("content-range"), Some("bytes */10000"), "{range}");
        detail(r, 416);
    }
    // Syntactically invalid: 400 (this API alone; the native API ignores it).
    for range in ["bytes=abc", "bytes=", "0-10", "bytes=1-2-3", "items=0-5"] {
        assert_eq!(
            detail(get_range(&c, &f, range), 400),
            "Invalid range format",
            "{range}"
        );
    }
    c.req("GET", &format!("/v1/objects/{f}/content"))
        .header("Range", "bytes=abc")
        .call()
        .expect(200);
    // HEAD with a range answers like the GET, without the bytes.
    let r = c
        .req("HEAD", &format!("/file/{f}"))
        .header("Range", "bytes=0-99")
        .call()
        .expect(206);
    assert_eq!(r.must_header("content-length"), "100");
    assert!(r.body.is_empty());
    // Conditionals work: the ETag is the content's SHA-256.
    let full = c.get(&format!("/file/{f}")).expect(200);
    let etag = full.must_header("etag").to_string();
    assert_eq!(etag, format!("\"{}\"", sha256_hex(&data)));
    c.req("GET", &format!("/file/{f}"))
        .header("If-None-Match", &etag)
        .call()
        .expect(304);
}

#[test]
fn a_lost_blob_is_410_on_the_very_next_request() {
    let d = open_daemon();
    let c = Client::anonymous(&d);
    let file = create(&c, "file", "lost.bin");
    let data = random_bytes(21, 5000);
    put_file(&c, &id(&file), &data).expect(201);
    // Served (and so cached by the worker) before the file vanishes.
    for _ in 0..3 {
        assert_eq!(
            c.get(&format!("/file/{}", id(&file))).expect(200).body,
            data
        );
    }
    let sha = sha256_hex(&data);
    std::fs::remove_file(d.data_dir().join("blobs").join(&sha[..2]).join(&sha)).unwrap();
    assert_eq!(
        detail(c.get(&format!("/file/{}", id(&file))), 410),
        "File lost"
    );
    c.head(&format!("/file/{}", id(&file))).expect(410);
    detail(get_range(&c, &id(&file), "bytes=0-9"), 410);
    // The item itself is still there; uploading the bytes again heals it.
    c.get(&format!("/items/{}", id(&file))).expect(200);
    put_file(&c, &id(&file), &data).expect(201);
    assert_eq!(
        c.get(&format!("/file/{}", id(&file))).expect(200).body,
        data
    );
}

#[test]
fn anonymous_modes_none_read_and_write() {
    // none: a token is needed for everything but the health check.
    let d = Daemon::start(&[]);
    let anon = Client::anonymous(&d);
    anon.get("/").expect(200);
    for r in [
        anon.get("/items"),
        anon.post_json("/items", &json!({"type":"text","content":"x"})),
        anon.get("/file/550e8400-e29b-41d4-a716-446655440000"),
    ] {
        assert!(r.header("www-authenticate").is_some(), "{}", r.describe());
        detail(r, 401);
    }
    let admin = Client::new(&d);
    let item = create(&admin, "text", "secret");
    // A bad token is refused, not downgraded to anonymous.
    detail(
        Client::with_authorization(&d, "Bearer nope").get("/items"),
        401,
    );
    // A user sees only their own items; the admin sees all.
    let tok = admin
        .post_json(
            "/v1/users",
            &json!({"username":"alice","password":"a password"}),
        )
        .expect_json(201)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let alice = Client::with_authorization(&d, &format!("Bearer {tok}"));
    assert_eq!(alice.get("/items").expect_json(200), json!([]));
    detail(alice.get(&format!("/items/{}", id(&item))), 404);
    detail(alice.delete(&format!("/items/{}", id(&item))), 404);
    let mine = create(&alice, "file", "alice.txt");
    put_file(&alice, &id(&mine), b"alice's bytes").expect(201);
    assert_eq!(alice.get("/items").expect_json(200), json!([mine]));
    assert_eq!(admin.get("/items").expect_json(200), json!([item, mine]));
    drop(d);

    // read: reads work, writes are 401.
    let d = Daemon::start(&["--anonymous", "read"]);
    let admin = Client::new(&d);
    let anon = Client::anonymous(&d);
    let file = create(&admin, "file", "shared.bin");
    put_file(&admin, &id(&file), b"shared").expect(201);
    assert_eq!(anon.get("/items").expect_json(200), json!([file]));
    anon.get(&format!("/items/{}", id(&file))).expect(200);
    assert_eq!(
        anon.get(&format!("/file/{}", id(&file))).expect(200).body,
        b"shared"
    );
    detail(
        anon.post_json("/items", &json!({"type":"text","content":"x"})),
        401,
    );
    detail(put_file(&anon, &id(&file), b"mine now"), 401);
    detail(anon.delete(&format!("/items/{}", id(&file))), 401);
    let mut ws = connect(&d, None);
    admin.delete(&format!("/items/{}", id(&file))).expect(204);
    assert_eq!(next_message(&mut ws)["type"], "deleted");
    drop(d);

    // write: everything, and the items belong to `anonymous`.
    let d = open_daemon();
    let anon = Client::anonymous(&d);
    let item = create(&anon, "text", "x");
    let native = Client::new(&d).object(&id(&item));
    assert_eq!(native["namespace"], "metaclip");
    anon.delete(&format!("/items/{}", id(&item))).expect(204);
}

#[test]
fn items_are_core_objects_seen_through_the_native_api() {
    let d = open_daemon();
    let c = Client::anonymous(&d);
    let admin = Client::new(&d);
    let text = create(&c, "text", "Hello world");
    let file = create(&c, "file", "document.pdf");
    let data = b"%PDF-1.4 the same bytes twice".to_vec();
    put_file(&c, &id(&file), &data).expect(201);
    let listed = admin.get("/v1/objects?namespace=metaclip").expect_json(200);
    let objects = listed["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 2);
    let by_id = |want: &str| {
        objects
            .iter()
            .find(|o| o["id"] == want)
            .unwrap_or_else(|| panic!("{want} not listed: {listed}"))
            .clone()
    };
    let t = by_id(&id(&text));
    assert_eq!(t["kind"], "text");
    assert_eq!(t["content"], "Hello world");
    assert_eq!(t["name"], id(&text));
    let f = by_id(&id(&file));
    assert_eq!(f["kind"], "file");
    assert_eq!(f["name"], "document.pdf");
    assert_eq!(f["state"], "stored");
    assert_eq!(f["mime_type"], "application/pdf");
    assert_eq!(f["sha256"], sha256_hex(&data));
    // The same bytes in a second item: stored once.
    let copy = create(&c, "file", "copy.pdf");
    put_file(&c, &id(&copy), &data).expect(201);
    let blob = d
        .data_dir()
        .join("blobs")
        .join(&sha256_hex(&data)[..2])
        .join(sha256_hex(&data));
    assert!(blob.exists());
    let blobs = crate::common::util::files_under(&d.data_dir().join("blobs"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    // A native object of another namespace is no item; one put into `metaclip` is.
    let other = admin.upload("elsewhere.txt", Some("docs"), Some("text/plain"), b"x");
    detail(c.get(&format!("/items/{}", id(&other))), 404);
    detail(c.get(&format!("/file/{}", id(&other))), 404);
    detail(c.delete(&format!("/items/{}", id(&other))), 404);
    let native = admin.upload("native.bin", Some("metaclip"), None, b"native");
    assert_eq!(
        c.get(&format!("/items/{}", id(&native))).expect_json(200),
        json!({"id": id(&native), "type": "file", "content": "native.bin"})
    );
    // Creation order, not name order.
    let ids: Vec<String> = c
        .get("/items")
        .expect_json(200)
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(ids, [id(&text), id(&file), id(&copy), id(&native)]);
    // Deleting through Metaclip deletes the object.
    c.delete(&format!("/items/{}", id(&copy))).expect(204);
    admin
        .get(&format!("/v1/objects/{}", id(&copy)))
        .expect_error(404, "not_found");
}

#[test]
fn quotas_and_limits_are_the_cores() {
    let d = Daemon::start(&["--user-quota", "1KiB", "--max-file-size", "2KiB"]);
    let admin = Client::new(&d);
    let tok = admin
        .post_json(
            "/v1/users",
            &json!({"username":"bob","password":"a password"}),
        )
        .expect_json(201)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = Client::with_authorization(&d, &format!("Bearer {tok}"));
    let file = create(&bob, "file", "big.bin");
    let msg = detail(
        bob.put(&format!("/file/{}", id(&file)), None, &[1u8; 1500]),
        413,
    );
    assert!(msg.contains("quota"), "{msg}");
    detail(put_file(&bob, &id(&file), &[1u8; 1500]), 413);
    put_file(&bob, &id(&file), &[1u8; 500]).expect(201);
    let other = create(&admin, "file", "huge.bin");
    detail(
        admin.put(&format!("/file/{}", id(&other)), None, &[2u8; 3000]),
        413,
    );
}

/// A WebSocket to `/ws`, with an optional bearer token.
fn connect(d: &Daemon, token: Option<&str>) -> WebSocket<TcpStream> {
    let mut req = format!("ws://{}/ws", d.addr())
        .into_client_request()
        .unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("Authorization", format!("Bearer {t}").parse().unwrap());
    }
    let stream = TcpStream::connect(d.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let (ws, resp) = tungstenite::client::client(req, stream).unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

/// The next JSON text message, which must arrive within a second.
#[track_caller]
fn next_message(ws: &mut WebSocket<TcpStream>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).unwrap(),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => panic!("unexpected message {other:?}"),
            Err(e) => panic!("no message within a second: {e}"),
        }
        assert!(Instant::now() < deadline, "no message within a second");
    }
}

/// Nothing arrives for a moment.
fn quiet(ws: &mut WebSocket<TcpStream>, for_: Duration) {
    ws.get_mut().set_read_timeout(Some(for_)).unwrap();
    match ws.read() {
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("expected silence, got {other:?}"),
    }
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
}

#[test]
fn ws_notifies_every_client_of_created_and_deleted_items() {
    let d = Daemon::start(&["--anonymous", "write", "--workers", "2"]);
    let c = Client::anonymous(&d);
    // Items from before the connection are not replayed.
    create(&c, "text", "old");
    let mut clients: Vec<_> = (0..3).map(|_| connect(&d, None)).collect();
    let text = create(&c, "text", "Hello world");
    let file = create(&c, "file", "document.pdf");
    for ws in clients.iter_mut() {
        let m = next_message(ws);
        assert_eq!(m["type"], "created");
        assert_eq!(m["item_id"], id(&text));
        assert_eq!(m["item"], text);
        let m = next_message(ws);
        assert_eq!(
            m,
            json!({"type": "created", "item_id": id(&file), "item": file})
        );
    }
    // Uploading bytes and items of other namespaces are not Metaclip notifications.
    put_file(&c, &id(&file), b"bytes").expect(201);
    Client::new(&d).upload("n.txt", Some("docs"), None, b"x");
    c.delete(&format!("/items/{}", id(&text))).expect(204);
    for ws in clients.iter_mut() {
        assert_eq!(
            next_message(ws),
            json!({"type": "deleted", "item_id": id(&text)})
        );
    }
    // The heartbeat: a text ping gets a text pong, a WebSocket ping a pong frame.
    let ws = &mut clients[0];
    ws.send(Message::Text(r#"{"type":"ping"}"#.into())).unwrap();
    assert_eq!(next_message(ws), json!({"type": "pong"}));
    ws.send(Message::Ping(b"are you there".to_vec())).unwrap();
    let sent = Instant::now();
    match ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(p, b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    assert!(sent.elapsed() < Duration::from_secs(1));
    // Other messages are ignored; the session goes on.
    ws.send(Message::Text("hello".into())).unwrap();
    quiet(ws, Duration::from_millis(300));
    let again = create(&c, "text", "again");
    assert_eq!(next_message(ws)["item_id"], id(&again));
    ws.close(None).unwrap();
}

#[test]
fn ws_follows_the_cores_visibility_and_auth() {
    let d = Daemon::start(&[]);
    let admin = Client::new(&d);
    // Without a token: 401 before the switch.
    let req = format!("ws://{}/ws", d.addr())
        .into_client_request()
        .unwrap();
    match tungstenite::client::client(req, TcpStream::connect(d.addr()).unwrap()) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            assert_eq!(r.status(), 401)
        }
        other => panic!("expected 401, got {:?}", other.map(|(_, r)| r.status())),
    }
    let tok = admin
        .post_json(
            "/v1/users",
            &json!({"username":"carol","password":"a password"}),
        )
        .expect_json(201)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let carol = Client::with_authorization(&d, &format!("Bearer {tok}"));
    let mut carol_ws = connect(&d, Some(&tok));
    let mut admin_ws = connect(&d, Some(d.token()));
    let theirs = create(&admin, "text", "admin's");
    let mine = create(&carol, "text", "carol's");
    // The admin sees both; Carol only her own.
    assert_eq!(next_message(&mut admin_ws)["item_id"], id(&theirs));
    assert_eq!(next_message(&mut admin_ws)["item_id"], id(&mine));
    assert_eq!(next_message(&mut carol_ws)["item_id"], id(&mine));
    quiet(&mut carol_ws, Duration::from_millis(300));
    // A plain GET /ws (no upgrade) is a 400 in this API's shape.
    detail(admin.get("/ws"), 400);
}

#[test]
fn the_api_moves_under_a_prefix() {
    let d = Daemon::start(&["--anonymous", "write", "--mount", "metaclip=/metaclip"]);
    let c = Client::anonymous(&d);
    assert_eq!(
        c.get("/metaclip").expect_json(200),
        json!({"status": "healthy"})
    );
    c.get("/").expect(404);
    c.get("/items").expect(404);
    let req = format!("ws://{}/metaclip/ws", d.addr())
        .into_client_request()
        .unwrap();
    let stream = TcpStream::connect(d.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let (mut ws, _) = tungstenite::client::client(req, stream).unwrap();
    let item = c
        .post_json(
            "/metaclip/items",
            &json!({"type": "text", "content": "moved"}),
        )
        .expect_json(201);
    assert_eq!(
        c.get(&format!("/metaclip/items/{}", id(&item)))
            .expect_json(200),
        item
    );
    assert_eq!(next_message(&mut ws)["item_id"], id(&item));
    // Errors under the prefix keep this API's shape.
    detail(c.get("/metaclip/nothing-here"), 404);
}
