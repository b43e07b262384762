//! Collections and share links through real sockets: two users' collections isolated
//! (404), idempotent adds, member order and pages, objects leaving their collections
//! when deleted; shares opened by a client with no token (ranges, conditionals, HEAD,
//! dispositions), a share that expires between two range requests, collection shares
//! as JSON and as an escaped HTML page, download limits (also under a burst of
//! concurrent clients), passwords, revocation, and the download counters on objects.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::checks::id_of;
use crate::common::util::{poll, random_bytes};
use crate::common::{Client, Daemon, Resp};

/// A user created by the admin: (id, a client with their API token).
pub fn add_user(d: &Daemon, name: &str) -> (String, Client) {
    let v = Client::new(d)
        .post_json(
            "/v1/users",
            &json!({"username": name, "password": "a long password"}),
        )
        .expect_json(201);
    let token = v["token"].as_str().unwrap().to_string();
    (
        v["id"].as_str().unwrap().to_string(),
        Client::with_authorization(d, &format!("Bearer {token}")),
    )
}

/// Upload `body` as `name`; returns the object id.
pub fn upload(c: &Client, name: &str, body: &[u8]) -> String {
    id_of(&c.upload(name, None, Some("application/octet-stream"), body))
}

/// `POST /v1/shares`; asserts 201 and returns the answer.
pub fn share(c: &Client, body: Value) -> Value {
    let v = c.post_json("/v1/shares", &body).expect_json(201);
    let token = v["token"].as_str().unwrap();
    assert_eq!(token.len(), 22, "{v}");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{v}"
    );
    v
}

fn path_of(share: &Value) -> String {
    format!("/share/{}", share["token"].as_str().unwrap())
}

/// The body of the 404 every token that does not open gets.
fn assert_no_share(r: Resp) -> Value {
    r.expect_error(404, "not_found").json()
}

#[test]
fn collections_are_private_ordered_and_idempotent() {
    let d = Daemon::start(&[]);
    let (alice_id, alice) = add_user(&d, "alice");
    let (_, bob) = add_user(&d, "bob");
    let a1 = upload(&alice, "a1.bin", b"one");
    let a2 = upload(&alice, "a2.bin", b"two");
    let a3 = upload(&alice, "a3.bin", b"three");
    let b1 = upload(&bob, "b1.bin", b"bob's");

    // Create: 201 with the collection; name rules.
    let c = alice
        .post_json(
            "/v1/collections",
            &json!({"name": "Holidays", "description": "2026"}),
        )
        .expect_json(201);
    let cid = id_of(&c);
    assert_eq!(c["name"], "Holidays");
    assert_eq!(c["description"], "2026");
    assert_eq!(c["owner"], alice_id.as_str());
    assert_eq!(c["object_count"], 0);
    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(257)}),
        json!({}),
    ] {
        let r = alice.post_json("/v1/collections", &bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.describe());
    }
    alice
        .post_json("/v1/collections", &json!({"name": "é".repeat(256)}))
        .expect(201);

    // Bob sees nothing of it: 404 on every route, never 403.
    let base = format!("/v1/collections/{cid}");
    bob.get(&base).expect_error(404, "not_found");
    bob.patch_json(&base, &json!({"name": "mine"}))
        .expect_error(404, "not_found");
    bob.get(&format!("{base}/objects"))
        .expect_error(404, "not_found");
    bob.post_json(&format!("{base}/objects"), &json!({"object_id": b1}))
        .expect_error(404, "not_found");
    bob.delete(&format!("{base}/objects/{a1}"))
        .expect_error(404, "not_found");
    bob.delete(&base).expect_error(404, "not_found");
    let bobs = bob.get("/v1/collections").expect_json(200);
    assert_eq!(bobs["collections"].as_array().unwrap().len(), 0);
    Client::anonymous(&d)
        .get("/v1/collections")
        .expect_error(401, "unauthorized");

    // Only readable objects: Bob's object, a missing one, a malformed id are all 404,
    // and nothing of the request is added.
    for other in [b1.clone(), uuid_like(), "not-a-uuid".into()] {
        alice
            .post_json(
                &format!("{base}/objects"),
                &json!({"object_ids": [a1, other]}),
            )
            .expect_error(404, "not_found");
    }
    assert_eq!(alice.get(&base).expect_json(200)["object_count"], 0);

    // Adding twice keeps one membership; order is the order of addition.
    let v = alice
        .post_json(
            &format!("{base}/objects"),
            &json!({"object_ids": [a2, a1, a2]}),
        )
        .expect_json(200);
    assert_eq!(v["object_count"], 2);
    let v = alice
        .post_json(&format!("{base}/objects"), &json!({"object_id": a1}))
        .expect_json(200);
    assert_eq!(v["object_count"], 2);
    alice
        .post_json(&format!("{base}/objects"), &json!({"object_id": a3}))
        .expect(200);
    let ids =
        |v: &Value| -> Vec<String> { v["objects"].as_array().unwrap().iter().map(id_of).collect() };
    let all = alice.get(&format!("{base}/objects")).expect_json(200);
    assert_eq!(ids(&all), vec![a2.clone(), a1.clone(), a3.clone()]);
    assert!(all["next_cursor"].is_null());
    // Pages.
    let p1 = alice
        .get(&format!("{base}/objects?limit=2"))
        .expect_json(200);
    assert_eq!(ids(&p1), vec![a2.clone(), a1.clone()]);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let p2 = alice
        .get(&format!("{base}/objects?limit=2&cursor={cursor}"))
        .expect_json(200);
    assert_eq!(ids(&p2), vec![a3.clone()]);
    assert!(p2["next_cursor"].is_null());

    // Rename, clear the description.
    let v = alice
        .patch_json(&base, &json!({"name": "Summer", "description": null}))
        .expect_json(200);
    assert_eq!(
        (v["name"].as_str(), v["description"].is_null()),
        (Some("Summer"), true)
    );

    // Remove a member: 204, then 404 for a non-member.
    alice.delete(&format!("{base}/objects/{a1}")).expect(204);
    alice
        .delete(&format!("{base}/objects/{a1}"))
        .expect_error(404, "not_found");
    assert_eq!(alice.get(&base).expect_json(200)["object_count"], 2);

    // Listing: newest first, paged.
    let list = alice.get("/v1/collections?limit=1").expect_json(200);
    assert_eq!(list["collections"].as_array().unwrap().len(), 1);
    let next = list["next_cursor"].as_str().unwrap();
    let list2 = alice
        .get(&format!("/v1/collections?limit=1&cursor={next}"))
        .expect_json(200);
    assert_eq!(id_of(&list2["collections"][0]), cid);

    // Admins see it; deleting it never deletes its objects.
    Client::new(&d).get(&base).expect(200);
    alice.delete(&base).expect(204);
    alice.get(&base).expect_error(404, "not_found");
    alice.object(&a2);
    alice.object(&a3);

    // The changes were events of the owner's.
    let ev = alice.get("/v1/events?types=collection").expect_json(200);
    let kinds: Vec<&str> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for k in [
        "collection.created",
        "collection.objects_added",
        "collection.updated",
        "collection.objects_removed",
        "collection.deleted",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let bob_events = bob.get("/v1/events?types=collection").expect_json(200);
    assert_eq!(bob_events["events"].as_array().unwrap().len(), 0);
}

fn uuid_like() -> String {
    "01890000-0000-7000-8000-000000000000".into()
}

#[test]
fn deleting_an_object_removes_it_from_every_collection() {
    let d = Daemon::start(&[]);
    let admin = Client::new(&d);
    let o = upload(&admin, "shared.bin", b"in two collections");
    let keep = upload(&admin, "keep.bin", b"stays");
    let mut colls = Vec::new();
    for name in ["one", "two"] {
        let c = id_of(
            &admin
                .post_json("/v1/collections", &json!({"name": name}))
                .expect_json(201),
        );
        admin
            .post_json(
                &format!("/v1/collections/{c}/objects"),
                &json!({"object_ids": [o, keep]}),
            )
            .expect(200);
        colls.push(c);
    }
    let s = share(&admin, json!({"object_id": o}));
    admin.delete(&format!("/v1/objects/{o}")).expect(204);
    for c in &colls {
        let v = admin.get(&format!("/v1/collections/{c}")).expect_json(200);
        assert_eq!(v["object_count"], 1);
        let m = admin
            .get(&format!("/v1/collections/{c}/objects"))
            .expect_json(200);
        assert_eq!(m["objects"].as_array().unwrap().len(), 1);
        assert_eq!(id_of(&m["objects"][0]), keep);
    }
    // Its share went with it.
    assert_no_share(Client::anonymous(&d).get(&path_of(&s)));
    let ev = admin
        .get("/v1/events?types=collection.objects_removed,share.deleted")
        .expect_json(200);
    let evs = ev["events"].as_array().unwrap();
    assert_eq!(evs.len(), 3, "{ev}");
    assert!(evs.iter().all(|e| e["changes"]["reason"].is_string()));
}

#[test]
fn an_object_share_opens_without_credentials_like_the_content_route() {
    let d = Daemon::start(&["--public-url", "https://files.example.com/"]);
    let (_, alice) = add_user(&d, "alice");
    let data = random_bytes(7, 100_000);
    let id = upload(&alice, "report 2026.pdf", &data);
    let s = share(&alice, json!({"object_id": id}));
    let token = s["token"].as_str().unwrap();
    assert_eq!(
        s["url"],
        format!("https://files.example.com/share/{token}").as_str()
    );
    assert!(s["expires_at"].is_null());
    assert_eq!(s["object_id"], id.as_str());
    let path = path_of(&s);
    let anon = Client::anonymous(&d);

    let full = anon.get(&path).expect(200);
    assert_eq!(full.body, data);
    let etag = full.must_header("etag").to_string();
    assert_eq!(full.must_header("accept-ranges"), "bytes");
    assert!(full
        .must_header("content-disposition")
        .starts_with("inline"));
    assert!(full.must_header("last-modified").ends_with("GMT"));
    assert_eq!(full.must_header("referrer-policy"), "no-referrer");
    // The same validators as the content route.
    let native = alice.content(&id).expect(200);
    assert_eq!(native.must_header("etag"), etag);

    let part = anon
        .req("GET", &path)
        .header("Range", "bytes=1000-1999")
        .call()
        .expect(206);
    assert_eq!(part.body, &data[1000..2000]);
    assert_eq!(part.must_header("content-range"), "bytes 1000-1999/100000");
    anon.req("GET", &path)
        .header("If-None-Match", &etag)
        .call()
        .expect(304);
    anon.req("GET", &path)
        .header("Range", "bytes=200000-")
        .call()
        .expect(416);
    let head = anon.head(&path).expect(200);
    assert!(head.body.is_empty());
    assert_eq!(head.must_header("content-length"), "100000");
    let dl = anon.get(&format!("{path}?download=1")).expect(200);
    assert!(dl
        .must_header("content-disposition")
        .starts_with("attachment"));
    // A credential is not needed, and a bad one does not get in the way.
    Client::with_authorization(&d, "Bearer nonsense")
        .get(&path)
        .expect(200);

    // Unknown tokens of every shape: the same 404 as each other.
    let a = assert_no_share(anon.get("/share/AAAAAAAAAAAAAAAAAAAAAA"));
    let b = assert_no_share(anon.get("/share/short"));
    assert_eq!(a, b);
    // An object share has no members.
    anon.get(&format!("{path}/{id}"))
        .expect_error(404, "not_found");

    // Another user cannot share Alice's object.
    let (_, bob) = add_user(&d, "bob");
    bob.post_json("/v1/shares", &json!({"object_id": id}))
        .expect_error(404, "not_found");
    bob.post_json("/v1/shares", &json!({"object_id": "nope"}))
        .expect_error(404, "not_found");
    bob.post_json("/v1/shares", &json!({}))
        .expect_error(400, "bad_request");
    anon.post_json("/v1/shares", &json!({"object_id": id}))
        .expect_error(401, "unauthorized");
}

#[test]
fn a_share_that_expires_between_two_range_requests_is_gone() {
    let d = Daemon::start(&[]);
    let admin = Client::new(&d);
    let data = random_bytes(9, 10_000);
    let id = upload(&admin, "movie.bin", &data);
    let s = share(&admin, json!({"object_id": id, "expires_in": 2}));
    let expires = crate::common::checks::assert_time_millis_z(s["expires_at"].as_str().unwrap());
    let path = path_of(&s);
    let anon = Client::anonymous(&d);
    let first = anon
        .req("GET", &path)
        .header("Range", "bytes=0-4999")
        .call()
        .expect(206);
    assert_eq!(first.body, &data[..5000]);
    // Wait past the expiry, then ask for the rest, as a player would.
    let wait = expires - crate::common::util::now_unix_ms() + 50;
    std::thread::sleep(Duration::from_millis(wait.max(0) as u64));
    let unknown = assert_no_share(anon.get("/share/AAAAAAAAAAAAAAAAAAAAAA"));
    let second = assert_no_share(anon.req("GET", &path).header("Range", "bytes=5000-").call());
    assert_eq!(second, unknown);
    // The sweeper removes it from the owner's list.
    let gone = poll(Duration::from_secs(10), || {
        let v = admin.get("/v1/shares").expect_json(200);
        v["shares"].as_array().unwrap().is_empty().then_some(())
    });
    assert!(gone.is_some(), "expired share still listed");
}

#[test]
fn a_collection_share_lists_members_as_json_and_escaped_html() {
    let d = Daemon::start(&[]);
    let (_, alice) = add_user(&d, "alice");
    let evil = "<script>alert('x')</script>.txt";
    let o1 = id_of(&alice.upload(evil, None, Some("text/plain"), b"first"));
    let o2 = upload(&alice, "b&b.bin", b"second");
    let outside = upload(&alice, "outside.bin", b"not a member");
    let c = id_of(
        &alice
            .post_json(
                "/v1/collections",
                &json!({"name": "<b>Trip</b>", "description": "\"quoted\" & more"}),
            )
            .expect_json(201),
    );
    alice
        .post_json(
            &format!("/v1/collections/{c}/objects"),
            &json!({"object_ids": [o1, o2]}),
        )
        .expect(200);
    let s = share(&alice, json!({"collection_id": c}));
    assert_eq!(s["collection_id"], c.as_str());
    let path = path_of(&s);
    let anon = Client::anonymous(&d);

    let v = anon.get(&path).expect_json(200);
    assert_eq!(v["collection"]["name"], "<b>Trip</b>");
    assert_eq!(v["collection"]["object_count"], 2);
    let objects = v["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["name"], evil);
    let url0 = objects[0]["url"].as_str().unwrap();
    assert_eq!(url0, format!("{path}/{o1}"));
    assert_eq!(anon.get(url0).expect(200).body, b"first");
    let part = anon
        .req("GET", &format!("{path}/{o2}"))
        .header("Range", "bytes=1-2")
        .call()
        .expect(206);
    assert_eq!(part.body, b"ec");
    // Only members: another object of the owner is 404 through this share.
    anon.get(&format!("{path}/{outside}"))
        .expect_error(404, "not_found");
    anon.get(&format!("{path}/junk"))
        .expect_error(404, "not_found");

    // A browser gets HTML, with every name escaped.
    let page = anon
        .req("GET", &path)
        .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .call()
        .expect(200);
    assert!(page.must_header("content-type").starts_with("text/html"));
    let html = page.text();
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<b>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;.txt"));
    assert!(html.contains("&lt;b&gt;Trip&lt;/b&gt;"));
    assert!(html.contains("&quot;quoted&quot; &amp; more"));
    assert!(html.contains("b&amp;b.bin"));
    assert!(html.contains(&format!("href=\"{path}/{o1}\"")));

    // Removing a member takes it out of the share at once; deleting the collection
    // ends the share.
    alice
        .delete(&format!("/v1/collections/{c}/objects/{o1}"))
        .expect(204);
    anon.get(&format!("{path}/{o1}"))
        .expect_error(404, "not_found");
    assert_eq!(
        anon.get(&path).expect_json(200)["objects"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    alice.delete(&format!("/v1/collections/{c}")).expect(204);
    assert_no_share(anon.get(&path));
}

#[test]
fn max_downloads_are_exact_even_under_a_burst() {
    let d = Daemon::start(&["--workers", "2"]);
    let admin = Client::new(&d);
    let id = upload(&admin, "limited.bin", b"0123456789");
    let s = share(&admin, json!({"object_id": id, "max_downloads": 2}));
    assert_eq!(s["max_downloads"], 2);
    let path = path_of(&s);
    let anon = Client::anonymous(&d);
    // HEAD, 304 and 416 are not downloads.
    let etag = anon.head(&path).expect(200).must_header("etag").to_string();
    anon.req("GET", &path)
        .header("If-None-Match", &etag)
        .call()
        .expect(304);
    anon.req("GET", &path)
        .header("Range", "bytes=50-")
        .call()
        .expect(416);
    anon.get(&path).expect(200);
    anon.req("GET", &path)
        .header("Range", "bytes=0-0")
        .call()
        .expect(206);
    // Exhausted: the same 404 as an unknown token, for HEAD too.
    assert_no_share(anon.get(&path));
    assert_eq!(anon.head(&path).status, 404);

    // 40 clients at once against a limit of 5: exactly 5 get the bytes.
    let s = share(&admin, json!({"object_id": id, "max_downloads": 5}));
    let path = path_of(&s);
    let threads: Vec<_> = (0..40)
        .map(|_| {
            let c = Client::anonymous(&d);
            let p = path.clone();
            std::thread::spawn(move || c.get(&p).status)
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 404).count(),
        35,
        "{statuses:?}"
    );
    // The count reaches the share's record (and its list) within a few seconds.
    let counted = poll(Duration::from_secs(10), || {
        let v = admin.get("/v1/shares").expect_json(200);
        v["shares"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == s["id"])
            .filter(|x| x["downloads"] == 5)
            .map(|_| ())
    });
    assert!(counted.is_some());
}

#[test]
fn password_protected_shares() {
    let d = Daemon::start(&[]);
    let admin = Client::new(&d);
    let data = random_bytes(3, 4096);
    let id = upload(&admin, "secret.bin", &data);
    admin
        .post_json("/v1/shares", &json!({"object_id": id, "password": "short"}))
        .expect_error(400, "bad_request");
    let s = share(
        &admin,
        json!({"object_id": id, "password": "correct horse", "expires_in": "7d"}),
    );
    assert_eq!(s["has_password"], true);
    let path = path_of(&s);
    let anon = Client::anonymous(&d);
    anon.get(&path).expect_error(403, "password_required");
    anon.get(&format!("{path}?password=wrong+one"))
        .expect_error(403, "wrong_password");
    anon.req("GET", &path)
        .header("X-Share-Password", "wrong one")
        .call()
        .expect_error(403, "wrong_password");
    let ok = anon
        .get(&format!("{path}?password=correct%20horse"))
        .expect(200);
    assert_eq!(ok.body, data);
    for _ in 0..3 {
        let part = anon
            .req("GET", &path)
            .header("X-Share-Password", "correct horse")
            .header("Range", "bytes=10-19")
            .call()
            .expect(206);
        assert_eq!(part.body, &data[10..20]);
    }
}

#[test]
fn revoked_shares_stop_at_once_and_are_listed_until_then() {
    let d = Daemon::start(&["--workers", "2"]);
    let (_, alice) = add_user(&d, "alice");
    let (_, bob) = add_user(&d, "bob");
    let id = upload(&alice, "x.bin", b"xyz");
    let s1 = share(&alice, json!({"object_id": id, "max_downloads": 10}));
    let s2 = share(&alice, json!({"object_id": id}));
    let anon = Client::anonymous(&d);
    for _ in 0..4 {
        anon.get(&path_of(&s1)).expect(200);
    }
    let list = alice.get("/v1/shares").expect_json(200);
    let shares = list["shares"].as_array().unwrap();
    assert_eq!(shares.len(), 2);
    assert_eq!(id_of(&shares[0]), id_of(&s2), "newest first");
    assert!(shares.iter().all(|x| x.get("token").is_none()));
    assert_eq!(shares[1]["downloads"], 4);
    assert_eq!(shares[1]["max_downloads"], 10);
    assert_eq!(bob.get("/v1/shares").expect_json(200)["shares"], json!([]));
    // Bob cannot revoke them, by token or id.
    bob.delete(&format!("/v1/shares/{}", s1["token"].as_str().unwrap()))
        .expect_error(404, "not_found");
    bob.delete(&format!("/v1/shares/{}", id_of(&s1)))
        .expect_error(404, "not_found");
    // By token, then by id: the next request on any worker is 404.
    alice
        .delete(&format!("/v1/shares/{}", s1["token"].as_str().unwrap()))
        .expect(204);
    alice
        .delete(&format!("/v1/shares/{}", id_of(&s2)))
        .expect(204);
    for _ in 0..4 {
        assert_no_share(anon.get(&path_of(&s1)));
        assert_no_share(anon.get(&path_of(&s2)));
    }
    alice
        .delete(&format!("/v1/shares/{}", id_of(&s2)))
        .expect_error(404, "not_found");
    assert_eq!(
        alice.get("/v1/shares").expect_json(200)["shares"],
        json!([])
    );
}

#[test]
fn download_counters_are_visible_on_the_object() {
    let d = Daemon::start(&["--workers", "2"]);
    let admin = Client::new(&d);
    let id = upload(&admin, "counted.bin", b"count me");
    let before = admin.object(&id);
    assert_eq!(before["downloads"], 0);
    assert!(before["last_accessed_at"].is_null());
    assert!(before["expires_at"].is_null());
    let s = share(&admin, json!({"object_id": id}));
    // 3 downloads by the content route (one of them a range), 1 by the share; HEAD
    // and 304 do not count.
    admin.content(&id).expect(200);
    admin.content(&id).expect(200);
    let etag = admin
        .req("GET", &format!("/v1/objects/{id}/content"))
        .header("Range", "bytes=0-1")
        .call()
        .expect(206)
        .must_header("etag")
        .to_string();
    admin
        .req("GET", &format!("/v1/objects/{id}/content"))
        .header("If-None-Match", &etag)
        .call()
        .expect(304);
    admin.head(&format!("/v1/objects/{id}/content")).expect(200);
    Client::anonymous(&d).get(&path_of(&s)).expect(200);
    let after = poll(Duration::from_secs(10), || {
        let v = admin.object(&id);
        (v["downloads"] == 4).then_some(v)
    })
    .unwrap_or_else(|| panic!("downloads never reached 4: {}", admin.object(&id)));
    let last =
        crate::common::checks::assert_time_millis_z(after["last_accessed_at"].as_str().unwrap());
    assert!(last >= crate::common::util::now_unix_ms() - 60_000);
    // Counting did not disturb the content caches: the object serves the same.
    assert_eq!(admin.content(&id).expect(200).body, b"count me");
    let five = poll(Duration::from_secs(10), || {
        (admin.object(&id)["downloads"] == 5).then_some(())
    });
    assert!(five.is_some());
}
