//! The pyBlobServer API (seed 003) through real sockets, with two users created by the
//! admin (`POST /v1/users`; their first token is their pyBlobServer token): every
//! route, `{"detail"}` errors with the seed's statuses, the core's limits seen through
//! it (a 2 MiB upload against `--max-file-size 1MiB` answered 413 while the client is
//! still sending; quota exhaustion and recovery), token change, `delete_all` scoping,
//! `/list` dispatch by the presence of `Authorization`, `output=file|html|json`,
//! ranges, public links and the 90-day (here: 1 s) not-accessed default.

use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::raw::request;
use crate::common::util::{parse_byteranges, poll, random_bytes, Multipart};
use crate::common::{Client, Daemon, RawConn, Resp};

/// A user created by the admin: (username, token).
fn add_user(d: &Daemon, name: &str) -> (String, String) {
    let v = Client::new(d)
        .post_json(
            "/v1/users",
            &json!({"username": name, "password": "a long password"}),
        )
        .expect_json(201);
    (name.to_string(), v["token"].as_str().unwrap().to_string())
}

fn bearer(d: &Daemon, token: &str) -> Client {
    Client::with_authorization(d, &format!("Bearer {token}"))
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

/// `POST /upload` with a part named `file`, as the seed's clients send it.
fn upload(c: &Client, filename: &str, content_type: Option<&str>, data: &[u8]) -> Resp {
    let form =
        Multipart::new()
            .field("comment", "ignored")
            .file("file", filename, content_type, data);
    c.post("/upload", Some(&form.content_type()), &form.body())
}

/// Uploads and returns the answer, asserting the seed's shape.
#[track_caller]
fn upload_ok(c: &Client, filename: &str, data: &[u8]) -> Value {
    let v = upload(c, filename, None, data).expect_json(200);
    let id = v["file_id"].as_str().unwrap();
    assert_eq!(id.len(), 8, "{v}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "{v}"
    );
    assert!(v["available_space"].is_string(), "{v}");
    assert_eq!(v.as_object().unwrap().len(), 4, "{v}");
    v
}

fn id(v: &Value) -> String {
    v["file_id"].as_str().unwrap().to_string()
}

fn list_ids(c: &Client) -> Vec<String> {
    c.get("/list")
        .expect_json(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_route_for_two_users() {
    let d = Daemon::start(&[]);
    let (_, a) = add_user(&d, "alice");
    let (_, b) = add_user(&d, "bobby");
    let (alice, bob, anon) = (bearer(&d, &a), bearer(&d, &b), Client::anonymous(&d));
    // Health needs no token; everything else does.
    assert_eq!(anon.get("/health").expect_json(200)["status"], "healthy");
    for (method, path) in [
        ("GET", "/user/alice"),
        ("POST", "/upload"),
        ("GET", "/s/AAAAAAAA"),
        ("DELETE", "/delete/AAAAAAAA"),
        ("DELETE", "/delete_all?confirm=yes"),
    ] {
        let r = anon.req(method, path).send_bytes(b"");
        detail(r, 401);
    }
    // Upload: the seed's answer, absolute links from the Host.
    let png = {
        let mut p =
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89"
                .to_vec();
        p.extend_from_slice(&random_bytes(1, 5000));
        p
    };
    let name = "<script>alert('x')</script> & co.png";
    let v = upload_ok(&alice, name, &png);
    let fid = id(&v);
    let base = format!("http://{}", d.addr());
    assert_eq!(v["file_url"], format!("{base}/s/{fid}"));
    assert_eq!(v["show_image"], format!("{base}/s/{fid}?output=html"));
    assert_eq!(v["available_space"], "unlimited");
    // output=file (default): the bytes, the stored type, the original name.
    let r = alice.get(&format!("/s/{fid}")).expect(200);
    assert_eq!(r.body, png);
    assert_eq!(r.header("content-type"), Some("image/png"));
    let cd = r.must_header("content-disposition");
    assert!(cd.starts_with("attachment"), "{cd}");
    assert!(r.header("etag").is_some() && r.header("last-modified").is_some());
    assert_eq!(
        alice.get(&format!("/s/{fid}?output=file")).expect(200).body,
        png
    );
    // output=json: the seed's fields; the two downloads above are counted.
    let j = alice.get(&format!("/s/{fid}?output=json")).expect_json(200);
    assert_eq!(j["file_id"], fid.as_str());
    assert_eq!(j["filename"], name);
    assert_eq!(j["size"], png.len());
    assert_eq!(j["content_type"], "image/png");
    assert!(j["upload_date"].is_string());
    assert!(j["last_downloaded"].is_string(), "{j}");
    assert_eq!(j["downloads"], 2, "{j}");
    assert_eq!(j.as_object().unwrap().len(), 7, "{j}");
    // output=html: the picture, every value escaped.
    let r = alice.get(&format!("/s/{fid}?output=html")).expect(200);
    assert!(r.must_header("content-type").starts_with("text/html"));
    let page = r.text();
    assert!(page.contains(&format!("<img src=\"/s/{fid}\"")), "{page}");
    assert!(!page.contains("<script>"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co.png"),
        "{page}"
    );
    // Any other output: 400; unknown ids of any shape: 404.
    detail(alice.get(&format!("/s/{fid}?output=xml")), 400);
    for bad in [
        "AAAAAAAA",
        "x",
        "a.b",
        "a%20b",
        "..%2Fx",
        "toolongtoolongtoolongtoolongtoolong1",
    ] {
        detail(alice.get(&format!("/s/{bad}")), 404);
    }
    // Another user's file does not exist for them.
    detail(bob.get(&format!("/s/{fid}")), 404);
    detail(bob.get(&format!("/s/{fid}?output=json")), 404);
    // The admin may read it.
    Client::new(&d).get(&format!("/s/{fid}")).expect(200);
    // A bad token is 401, not anonymous.
    detail(bearer(&d, "not-a-token").get(&format!("/s/{fid}")), 401);
    // The list: each user's own files, newest first.
    let second = id(&upload_ok(&alice, "two.txt", b"two"));
    let bobs = id(&upload_ok(&bob, "bob.txt", b"bob's"));
    assert_eq!(list_ids(&alice), vec![second.clone(), fid.clone()]);
    assert_eq!(list_ids(&bob), vec![bobs.clone()]);
    let listed = alice.get("/list").expect_json(200);
    assert_eq!(listed[1]["filename"], name);
    // Two downloads by Alice, one by the admin.
    assert_eq!(listed[1]["downloads"], 3);
    // The user: themself and the admin only.
    let u = alice.get("/user/alice").expect_json(200);
    assert_eq!(u["username"], "alice");
    assert_eq!(u["total_size"], png.len() + 3);
    assert_eq!(u["file_count"], 2);
    assert!(u["quota"].is_null());
    assert_eq!(u["available_space"], "unlimited");
    let masked = u["token"].as_str().unwrap();
    assert!(
        masked.ends_with("***") && a.starts_with(&masked[..6]),
        "{u}"
    );
    assert!(!masked.contains(&a), "the token itself is never shown");
    detail(bob.get("/user/alice"), 403);
    Client::new(&d).get("/user/alice").expect(200);
    // Delete: another user's file is 404; the owner's goes.
    detail(bob.delete(&format!("/delete/{fid}")), 404);
    assert_eq!(
        alice.delete(&format!("/delete/{fid}")).expect_json(200),
        json!({"message": "File deleted"})
    );
    detail(alice.delete(&format!("/delete/{fid}")), 404);
    detail(alice.get(&format!("/s/{fid}")), 404);
    assert_eq!(list_ids(&alice), vec![second]);
    // The native API sees the files as objects of the pyblob namespace.
    let objs = Client::new(&d)
        .get("/v1/objects?namespace=pyblob")
        .expect_json(200);
    assert_eq!(objs["objects"].as_array().unwrap().len(), 2, "{objs}");
}

#[test]
fn ranges_and_conditionals_on_s() {
    let d = Daemon::start(&[]);
    let (_, a) = add_user(&d, "alice");
    let alice = bearer(&d, &a);
    let data = random_bytes(7, 10_000);
    let fid = id(&upload_ok(&alice, "data.bin", &data));
    let path = format!("/s/{fid}");
    let r = alice
        .req("GET", &path)
        .header("Range", "bytes=100-199")
        .call()
        .expect(206);
    assert_eq!(r.body, &data[100..200]);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/10000"));
    let r = alice
        .req("GET", &path)
        .header("Range", "bytes=-10")
        .call()
        .expect(206);
    assert_eq!(r.body, &data[9990..]);
    let r = alice
        .req("GET", &path)
        .header("Range", "bytes=0-9,20-29")
        .call()
        .expect(206);
    let ct = r.must_header("content-type").to_string();
    assert!(ct.starts_with("multipart/byteranges"), "{ct}");
    let boundary = ct.split("boundary=").nth(1).unwrap().trim_matches('"');
    let parts = parse_byteranges(&r.body, boundary).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1].data, &data[20..30]);
    let r = alice
        .req("GET", &path)
        .header("Range", "bytes=20000-")
        .call();
    let r = r.expect(416);
    assert_eq!(r.header("content-range"), Some("bytes */10000"));
    let etag = alice.get(&path).expect(200).must_header("etag").to_string();
    alice
        .req("GET", &path)
        .header("If-None-Match", &etag)
        .call()
        .expect(304);
    // HEAD: headers only, not a download.
    let r = alice.head(&path).expect(200);
    assert_eq!(r.header("content-length"), Some("10000"));
    // Counted: the three 206s and the 200 (not the 416, 304 or HEAD).
    let j = alice.get(&format!("{path}?output=json")).expect_json(200);
    assert_eq!(j["downloads"], 4, "{j}");
}

#[test]
fn a_file_over_the_limit_is_413_while_the_client_still_sends() {
    let d = Daemon::start(&["--max-file-size", "1MiB"]);
    let (_, a) = add_user(&d, "alice");
    let data = vec![b'z'; 2 << 20];
    let form = Multipart::new().file("file", "big.bin", None, &data);
    let body = form.body();
    let mut conn = RawConn::connect(d.addr());
    conn.send(&request(
        "POST",
        "/upload",
        &[
            ("Authorization", &format!("Bearer {a}")),
            ("Content-Type", &form.content_type()),
            ("Content-Length", &body.len().to_string()),
        ],
        b"",
    ));
    // Send the first 1.5 MiB only, from another thread: the answer must come while the
    // body is still incomplete.
    let mut writer = conn.stream.try_clone().unwrap();
    let first = body[..3 << 19].to_vec();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&first);
    });
    let r = conn.read_response();
    let msg = detail(r, 413);
    assert!(msg.contains("1048576"), "{msg}");
    let _ = sender.join();
    // Nothing was stored, nothing left in tmp/.
    let alice = bearer(&d, &a);
    assert!(list_ids(&alice).is_empty());
    let left = poll(Duration::from_secs(5), || {
        let n = std::fs::read_dir(d.data_dir().join("tmp")).unwrap().count();
        (n == 0).then_some(())
    });
    assert!(left.is_some(), "a partial upload was left in tmp/");
    // A file under the limit is fine.
    upload_ok(&alice, "small.bin", &vec![1u8; 1000 << 10]);
}

#[test]
fn quota_exhaustion_and_recovery_after_a_delete() {
    let d = Daemon::start(&["--user-quota", "100KiB"]);
    let (_, a) = add_user(&d, "alice");
    let (_, b) = add_user(&d, "bobby");
    let alice = bearer(&d, &a);
    let first = upload_ok(&alice, "a.bin", &vec![1u8; 60 << 10]);
    assert_eq!(first["available_space"], "40.0 KB");
    let msg = detail(upload(&alice, "b.bin", None, &vec![2u8; 50 << 10]), 413);
    assert!(msg.contains("quota"), "{msg}");
    let u = alice.get("/user/alice").expect_json(200);
    assert_eq!(u["quota"], 100 << 10);
    assert_eq!(u["total_size"], 60 << 10);
    // Bob's quota is his own.
    upload_ok(&bearer(&d, &b), "b.bin", &vec![2u8; 50 << 10]);
    // A delete frees the space.
    alice.delete(&format!("/delete/{}", id(&first))).expect(200);
    let v = upload_ok(&alice, "b.bin", &vec![2u8; 50 << 10]);
    assert_eq!(v["available_space"], "50.0 KB");
}

#[test]
fn token_change_revokes_the_old_token() {
    let d = Daemon::start(&["--workers", "2"]);
    let (_, a) = add_user(&d, "alice");
    let (_, b) = add_user(&d, "bobby");
    let old = bearer(&d, &a);
    let fid = id(&upload_ok(&old, "a.txt", b"mine"));
    // Warm both workers' credential caches with the old token.
    for _ in 0..8 {
        old.get("/list").expect(200);
    }
    let v = old
        .get("/user/alice?function=change_token")
        .expect_json(200);
    let new_token = v["token"].as_str().unwrap().to_string();
    assert_ne!(new_token, a);
    assert_eq!(v["username"], "alice");
    // The old token is refused on every worker (fresh connections spread over them).
    for _ in 0..8 {
        detail(bearer(&d, &a).get("/list"), 401);
        detail(bearer(&d, &a).get(&format!("/s/{fid}")), 401);
    }
    detail(upload(&bearer(&d, &a), "x.txt", None, b"x"), 401);
    // The new one works, on the same files; Bob is untouched.
    let new = bearer(&d, &new_token);
    assert_eq!(new.get(&format!("/s/{fid}")).expect(200).body, b"mine");
    assert_eq!(list_ids(&new), vec![fid]);
    bearer(&d, &b).get("/list").expect(200);
    // An admin changing Bob's token: every old token of Bob's goes.
    let v = Client::new(&d)
        .get("/user/bobby?function=change_token")
        .expect_json(200);
    detail(bearer(&d, &b).get("/list"), 401);
    bearer(&d, v["token"].as_str().unwrap())
        .get("/list")
        .expect(200);
}

#[test]
fn delete_all_is_confirmed_and_scoped() {
    // The sweeper leaves pyblob alone here (an operator rule), so only delete_all acts.
    let d = Daemon::start(&[
        "--pyblob-expire-after",
        "1s",
        "--namespace-expire-unaccessed",
        "pyblob=off",
    ]);
    let (_, a) = add_user(&d, "alice");
    let (_, b) = add_user(&d, "bobby");
    let (alice, bob) = (bearer(&d, &a), bearer(&d, &b));
    for i in 0..3 {
        upload_ok(&alice, &format!("a{i}.txt"), format!("a{i}").as_bytes());
    }
    let bobs = id(&upload_ok(&bob, "b.txt", b"bob"));
    // Without confirm=yes: 400, nothing deleted.
    detail(alice.delete("/delete_all"), 400);
    detail(alice.delete("/delete_all?confirm=no"), 400);
    detail(alice.delete("/delete_all?confirm=yes&function=some"), 400);
    assert_eq!(list_ids(&alice).len(), 3);
    // function=expired: the files not downloaded for 1 s (here: all but one).
    std::thread::sleep(Duration::from_millis(1200));
    let keep = list_ids(&alice)[0].clone();
    alice.get(&format!("/s/{keep}")).expect(200);
    let m = alice
        .delete("/delete_all?confirm=yes&function=expired")
        .expect_json(200);
    let msg = m["message"].as_str().unwrap();
    assert!(msg.starts_with("2 expired files deleted"), "{m}");
    assert_eq!(list_ids(&alice), vec![keep]);
    // function=all (the default): the rest of Alice's, none of Bob's.
    assert_eq!(
        alice.delete("/delete_all?confirm=yes").expect_json(200),
        json!({"message": "All files deleted"})
    );
    assert!(list_ids(&alice).is_empty());
    assert_eq!(list_ids(&bob), vec![bobs.clone()]);
    assert_eq!(bob.get(&format!("/s/{bobs}")).expect(200).body, b"bob");
    assert_eq!(alice.get("/user/alice").expect_json(200)["file_count"], 0);
}

#[test]
fn list_is_this_apis_only_with_an_authorization_header() {
    let d = Daemon::start(&[]);
    let (_, a) = add_user(&d, "alice");
    let fid = id(&upload_ok(&bearer(&d, &a), "a.txt", b"a"));
    assert_eq!(list_ids(&bearer(&d, &a)), vec![fid]);
    // Invalid credentials: 401 {"detail"}, not another API's list.
    detail(bearer(&d, "wrong").get("/list"), 401);
    detail(
        Client::with_authorization(&d, "Basic YTpi").get("/list"),
        401,
    );
    // Without the header the route is not this API's (photobackup's, when served):
    // whatever answers, it is not pyBlobServer's list.
    let r = Client::anonymous(&d).get("/list");
    assert_ne!(r.status, 200, "{}", r.describe());
    assert_ne!(r.status, 401, "{}", r.describe());
}

#[test]
fn public_links_serve_anyone_with_the_id() {
    let d = Daemon::start(&["--pyblob-public-links"]);
    let (_, a) = add_user(&d, "alice");
    let alice = bearer(&d, &a);
    let fid = id(&upload_ok(&alice, "pub.txt", b"public bytes"));
    let anon = Client::anonymous(&d);
    assert_eq!(
        anon.get(&format!("/s/{fid}")).expect(200).body,
        b"public bytes"
    );
    let j = anon.get(&format!("/s/{fid}?output=json")).expect_json(200);
    assert_eq!(j["filename"], "pub.txt");
    // Another user too; a bad token is still 401; unknown ids 404.
    let (_, b) = add_user(&d, "bobby");
    bearer(&d, &b).get(&format!("/s/{fid}")).expect(200);
    detail(bearer(&d, "wrong").get(&format!("/s/{fid}")), 401);
    detail(anon.get("/s/AAAAAAAA"), 404);
    // Everything else still needs a token.
    detail(anon.delete(&format!("/delete/{fid}")), 401);
    detail(anon.req("GET", "/user/alice").call(), 401);
}

#[test]
fn the_not_accessed_default_applies_unless_the_operator_set_a_rule() {
    // pyBlobServer's default (here 1 s instead of 90 days) expires an idle file.
    let d = Daemon::start(&["--pyblob-expire-after", "1s"]);
    let (_, a) = add_user(&d, "alice");
    let alice = bearer(&d, &a);
    let fid = id(&upload_ok(&alice, "idle.txt", b"idle"));
    let gone = poll(Duration::from_secs(15), || {
        (alice.get(&format!("/s/{fid}?output=json")).status == 404).then_some(())
    });
    assert!(gone.is_some(), "the idle file was not expired");
    assert!(list_ids(&alice).is_empty());
    // An operator's rule wins: with --expire-unaccessed 1h the file stays.
    let d = Daemon::start(&["--pyblob-expire-after", "1s", "--expire-unaccessed", "1h"]);
    let (_, a) = add_user(&d, "alice");
    let alice = bearer(&d, &a);
    let fid = id(&upload_ok(&alice, "kept.txt", b"kept"));
    std::thread::sleep(Duration::from_secs(3));
    alice.get(&format!("/s/{fid}?output=json")).expect(200);
}
