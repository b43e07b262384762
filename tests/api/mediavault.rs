//! The Media Vault API (seed 001) through real sockets, with several users: the
//! envelope and `X-Request-Id`, login/refresh/logout with JWTs and API keys, the rate
//! tiers and their headers on every answer (401 and 429 included), `/users/me`, media
//! upload, listing with page/per_page, download with ranges, thumbnails, patch,
//! delete, 404 for unknown, malformed and foreign ids, collections, search, share
//! links that open without a token, webhooks in the seed's payload (a local
//! receiver), and `/realtime` with a real WebSocket client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use crate::common::util::Multipart;
use crate::common::{Client, Daemon, Resp};

const PW: &str = "correct horse battery";

fn media_file(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/media")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A user created by the admin (native API): (id, API key).
fn add_user(d: &Daemon, name: &str) -> (String, String) {
    let v = Client::new(d)
        .post_json("/v1/users", &json!({"username": name, "password": PW}))
        .expect_json(201);
    (
        v["id"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    )
}

fn bearer(d: &Daemon, token: &str) -> Client {
    Client::with_authorization(d, &format!("Bearer {token}"))
}

/// Signs in through Media Vault; returns the login answer's body.
fn login(d: &Daemon, name: &str) -> Value {
    ok(Client::anonymous(d).post_json(
        "/api/v1/auth/login",
        &json!({"username": name, "password": PW}),
    ))
}

/// A signed-in user: (id, JWT client).
fn signed_in(d: &Daemon, name: &str) -> (String, Client) {
    let (id, _) = add_user(d, name);
    let token = login(d, name)["data"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    (id, bearer(d, &token))
}

/// A success envelope (200): checks its shape and request id; returns the body.
#[track_caller]
fn ok(r: Resp) -> Value {
    envelope(r, 200)
}

#[track_caller]
fn envelope(r: Resp, status: u16) -> Value {
    let r = r.expect(status);
    let v = r.json();
    assert_eq!(v["success"], true, "{}", r.describe());
    assert_eq!(v["meta"]["version"], "1.0.0");
    assert!(v["meta"]["timestamp"].is_string());
    assert_eq!(
        r.header("x-request-id"),
        v["meta"]["request_id"].as_str(),
        "{}",
        r.describe()
    );
    v
}

/// An error envelope: status, seed code, request id; returns the response.
#[track_caller]
fn error(r: Resp, status: u16, code: &str) -> Resp {
    let r = r.expect(status);
    let v = r.json();
    assert_eq!(v["success"], false, "{}", r.describe());
    assert_eq!(v["error"]["code"], code, "{}", r.describe());
    assert!(v["error"]["message"].is_string());
    assert!(v["meta"]["timestamp"].is_string());
    assert_eq!(r.header("x-request-id"), v["meta"]["request_id"].as_str());
    r
}

fn rate_headers(r: &Resp) -> (u64, u64, u64) {
    let n = |h: &str| {
        r.header(h)
            .unwrap_or_else(|| panic!("no {h}: {}", r.describe()))
            .parse::<u64>()
            .unwrap()
    };
    (
        n("x-ratelimit-limit"),
        n("x-ratelimit-remaining"),
        n("x-ratelimit-reset"),
    )
}

/// `POST /media/upload` with a `file` part and fields; returns the response.
fn upload_raw(
    c: &Client,
    name: &str,
    ct: Option<&str>,
    data: &[u8],
    fields: &[(&str, &str)],
) -> Resp {
    let mut form = Multipart::new();
    for (k, v) in fields {
        form = form.field(k, v);
    }
    let form = form.file("file", name, ct, data);
    c.post(
        "/api/v1/media/upload",
        Some(&form.content_type()),
        &form.body(),
    )
}

#[track_caller]
fn upload(c: &Client, name: &str, data: &[u8]) -> Value {
    envelope(upload_raw(c, name, None, data, &[]), 201)["data"].clone()
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn login_refresh_logout_profile_and_api_keys() {
    let d = Daemon::start(&[]);
    let (alice_id, alice_key) = add_user(&d, "alice@example.com");
    let anon = Client::anonymous(&d);

    let v = login(&d, "alice@example.com");
    let data = &v["data"];
    assert_eq!(data["expires_in"], 3600);
    assert_eq!(data["token_type"], "Bearer");
    assert!(data["refresh_token"].is_string());
    let token = data["token"].as_str().unwrap().to_string();
    // The seed's bare login shape is there too.
    assert_eq!(v["token"], data["token"]);
    assert_eq!(v["expires_in"], 3600);

    for body in [
        json!({"username": "alice@example.com", "password": "wrong password"}),
        json!({"username": "nobody@example.com", "password": PW}),
    ] {
        let r = error(
            anon.post_json("/api/v1/auth/login", &body),
            401,
            "unauthorized",
        );
        assert_eq!(rate_headers(&r).0, 60);
    }
    // `email` is taken for `username`.
    ok(anon.post_json(
        "/api/v1/auth/login",
        &json!({"email": "alice@example.com", "password": PW}),
    ));
    error(
        anon.post_json("/api/v1/auth/login", &json!({"username": "x"})),
        400,
        "validation_error",
    );
    error(
        anon.post("/api/v1/auth/login", Some("application/json"), b"{nope"),
        400,
        "validation_error",
    );

    // /users/me with the JWT.
    let jwt = bearer(&d, &token);
    let r = jwt.get("/api/v1/users/me");
    assert_eq!(rate_headers(&r).0, 1000);
    let me = ok(r)["data"].clone();
    assert_eq!(me["id"], alice_id.as_str());
    assert_eq!(me["username"], "alice@example.com");
    assert_eq!(me["role"], "user");
    assert!(me["created_at"].is_string());
    assert_eq!(me["usage"]["bytes"], 0);
    let me =
        ok(jwt.patch_json("/api/v1/users/me", &json!({"display_name": "Alice"})))["data"].clone();
    assert_eq!(me["display_name"], "Alice");
    let r = error(
        jwt.patch_json(
            "/api/v1/users/me",
            &json!({"display_name": "A", "role": "admin"}),
        ),
        400,
        "validation_error",
    );
    assert_eq!(r.json()["error"]["details"][0]["field"], "role");
    assert_eq!(ok(jwt.get("/api/v1/users/me"))["data"]["role"], "user");

    // The API key is a bearer too, with its own tier.
    let key = bearer(&d, &alice_key);
    let r = key.get("/api/v1/users/me");
    assert_eq!(rate_headers(&r).0, 5000);
    assert_eq!(ok(r)["data"]["id"], alice_id.as_str());
    error(
        key.post("/api/v1/auth/logout", None, b""),
        400,
        "validation_error",
    );

    // Refresh with the JWT as bearer: a new token at once; the old one is 401.
    let v = ok(jwt.post("/api/v1/auth/refresh", None, b""));
    let token2 = v["data"]["token"].as_str().unwrap().to_string();
    assert_ne!(token2, token);
    error(jwt.get("/api/v1/users/me"), 401, "unauthorized");
    let jwt2 = bearer(&d, &token2);
    ok(jwt2.get("/api/v1/users/me"));
    // Refresh by body: {"token"} and {"refresh_token"}.
    let v = ok(anon.post_json("/api/v1/auth/refresh", &json!({"token": token2})));
    let token3 = v["data"]["token"].as_str().unwrap().to_string();
    error(jwt2.get("/api/v1/users/me"), 401, "unauthorized");
    let rt = v["data"]["refresh_token"].as_str().unwrap().to_string();
    let v = ok(anon.post_json("/api/v1/auth/refresh", &json!({"refresh_token": rt})));
    let rt = v["data"]["refresh_token"].as_str().unwrap().to_string();
    // The refresh token as the Bearer works too, once.
    let v = ok(bearer(&d, &rt).post("/api/v1/auth/refresh", None, b""));
    let token4 = v["data"]["token"].as_str().unwrap().to_string();
    error(
        bearer(&d, &rt).post("/api/v1/auth/refresh", None, b""),
        401,
        "unauthorized",
    );
    error(
        bearer(&d, &token3).get("/api/v1/users/me"),
        401,
        "unauthorized",
    );
    error(
        anon.post("/api/v1/auth/refresh", None, b""),
        401,
        "unauthorized",
    );

    // Logout: 204, then the token is 401.
    let jwt4 = bearer(&d, &token4);
    let r = jwt4.post("/api/v1/auth/logout", None, b"").expect(204);
    assert!(r.header("x-request-id").is_some());
    error(jwt4.get("/api/v1/users/me"), 401, "unauthorized");

    // Without a token: 401 with the anonymous tier's headers.
    let r = error(anon.get("/api/v1/users/me"), 401, "unauthorized");
    assert_eq!(rate_headers(&r).0, 60);
    // Unknown paths under the API are envelopes with the headers too.
    let r = error(anon.get("/api/v1/nothing/here"), 404, "not_found");
    rate_headers(&r);
    // The native API is not limited.
    assert!(anon
        .get("/v1/users/me")
        .header("x-ratelimit-limit")
        .is_none());
}

#[test]
fn rate_tiers_count_per_ip_user_and_key_and_answer_429() {
    let d = Daemon::start(&["--rate-limit", "mediavault=4,5,6"]);
    let (_, key) = add_user(&d, "bob@example.com");
    // The login is an anonymous request: it spends one of the IP's 4.
    let token = login(&d, "bob@example.com")["data"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let exhaust = |c: &Client, limit: u64, first_status: u16| {
        let mut last = u64::MAX;
        loop {
            let r = c.get("/api/v1/users/me");
            let (l, remaining, reset) = rate_headers(&r);
            assert_eq!(l, limit);
            assert!(reset >= now_secs(), "reset {reset} is a Unix time");
            if r.status == 429 {
                assert_eq!(remaining, 0);
                assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
                error(r, 429, "rate_limited");
                return;
            }
            assert_eq!(r.status, first_status, "{}", r.describe());
            assert!(remaining < last);
            last = remaining;
        }
    };
    exhaust(&Client::anonymous(&d), 4, 401);
    exhaust(&bearer(&d, &token), 5, 200);
    exhaust(&bearer(&d, &key), 6, 200);
    // The IP is spent: even a login is 429 now.
    error(
        Client::anonymous(&d).post_json(
            "/api/v1/auth/login",
            &json!({"username": "bob@example.com", "password": PW}),
        ),
        429,
        "rate_limited",
    );
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1
}

#[test]
fn media_upload_get_download_patch_delete_and_list_pages() {
    let d = Daemon::start(&[]);
    let (alice_id, alice) = signed_in(&d, "alice@example.com");
    let (_, bob) = signed_in(&d, "bob@example.com");
    let png = media_file("alpha.png");

    let r = upload_raw(
        &alice,
        "cat.png",
        Some("image/png"),
        &png,
        &[
            ("title", "My Cat"),
            ("description", "fluffy"),
            ("tags", "pets,cats"),
        ],
    );
    let location = r.header("location").map(str::to_string);
    let item = envelope(r, 201)["data"].clone();
    let mid = id(&item);
    assert_eq!(
        location.as_deref(),
        Some(format!("/api/v1/media/{mid}").as_str())
    );
    assert_eq!(item["filename"], "cat.png");
    assert_eq!(item["type"], "image");
    assert_eq!(item["mime_type"], "image/png");
    assert_eq!(item["size"], png.len());
    assert_eq!(item["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(item["user_id"], alice_id.as_str());
    assert_eq!(item["title"], "My Cat");
    assert_eq!(item["tags"], json!(["pets", "cats"]));
    assert_eq!(item["url"], format!("/api/v1/media/{mid}/download"));
    assert_eq!(
        item["thumbnail_url"],
        format!("/api/v1/media/{mid}/thumbnail")
    );
    assert!(item["created_at"].is_string());

    // No file part, or not a form: validation errors naming `file`.
    let form = Multipart::new().field("title", "x");
    let r = error(
        alice.post(
            "/api/v1/media/upload",
            Some(&form.content_type()),
            &form.body(),
        ),
        400,
        "validation_error",
    );
    assert_eq!(r.json()["error"]["details"][0]["field"], "file");
    error(
        alice.post("/api/v1/media/upload", Some("application/json"), b"{}"),
        400,
        "validation_error",
    );
    // Anonymous uploads are 401.
    error(
        upload_raw(&Client::anonymous(&d), "a.txt", None, b"x", &[]),
        401,
        "unauthorized",
    );

    // The same item (the image's size arrives when the core has probed it).
    let got = ok(alice.get(&format!("/api/v1/media/{mid}")))["data"].clone();
    for k in [
        "id",
        "filename",
        "title",
        "description",
        "tags",
        "type",
        "mime_type",
        "size",
        "sha256",
        "created_at",
        "url",
        "thumbnail_url",
        "user_id",
    ] {
        assert_eq!(got[k], item[k], "{k}");
    }
    assert!(got.get("width").is_some() && got.get("height").is_some());
    // Unknown, malformed and foreign ids are all 404.
    for path in [
        format!("/api/v1/media/{}", "0190b3c4-0000-7000-8000-000000000000"),
        "/api/v1/media/not-an-id".to_string(),
        "/api/v1/media/123".to_string(),
        format!("/api/v1/media/{mid}/download"),
        "/api/v1/media/not-an-id/download".to_string(),
    ] {
        let c = if path.contains(&mid) { &bob } else { &alice };
        error(c.get(&path), 404, "not_found");
    }
    error(bob.get(&format!("/api/v1/media/{mid}")), 404, "not_found");
    error(
        bob.delete(&format!("/api/v1/media/{mid}")),
        404,
        "not_found",
    );
    error(
        bob.patch_json(&format!("/api/v1/media/{mid}"), &json!({"title": "x"})),
        404,
        "not_found",
    );
    // A native object of the owner is not a media item.
    let native = alice.upload("n.txt", None, None, b"native");
    error(
        alice.get(&format!("/api/v1/media/{}", id(&native))),
        404,
        "not_found",
    );

    // Download: the bytes, ranges, an attachment.
    let r = alice
        .get(&format!("/api/v1/media/{mid}/download"))
        .expect(200);
    assert_eq!(r.body, png);
    assert!(r
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment"));
    assert!(r.header("x-request-id").is_some());
    let r = alice
        .req("GET", &format!("/api/v1/media/{mid}/download"))
        .header("Range", "bytes=1-4")
        .call()
        .expect(206);
    assert_eq!(r.body, png[1..5].to_vec());
    // Thumbnail (the core's).
    let r = alice
        .get(&format!("/api/v1/media/{mid}/thumbnail"))
        .expect(200);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert!(r.body.starts_with(b"\x89PNG"));

    // Patch: title, description, tags; other fields refused.
    let v = ok(alice.patch_json(
        &format!("/api/v1/media/{mid}"),
        &json!({"title": "Cat", "description": null, "tags": ["a"]}),
    ))["data"]
        .clone();
    assert_eq!(
        (v["title"].as_str(), v["tags"].clone()),
        (Some("Cat"), json!(["a"]))
    );
    assert!(v["description"].is_null());
    error(
        alice.patch_json(&format!("/api/v1/media/{mid}"), &json!({"size": 1})),
        400,
        "validation_error",
    );

    // Delete: 204, then 404.
    let r = alice.delete(&format!("/api/v1/media/{mid}")).expect(204);
    assert!(r.header("x-request-id").is_some());
    error(alice.get(&format!("/api/v1/media/{mid}")), 404, "not_found");

    // Pages: newest first, the seed's pagination block.
    let ids: Vec<String> = (0..5)
        .map(|i| {
            id(&upload(
                &alice,
                &format!("f{i}.txt"),
                format!("file {i}").as_bytes(),
            ))
        })
        .collect();
    upload(&bob, "bobs.txt", b"bob");
    let v = ok(alice.get("/api/v1/media?per_page=2"));
    let got: Vec<String> = v["data"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(got, vec![ids[4].clone(), ids[3].clone()]);
    let p = &v["meta"]["pagination"];
    assert_eq!(p["total"], 5);
    assert_eq!(p["count"], 2);
    assert_eq!(p["per_page"], 2);
    assert_eq!(p["current_page"], 1);
    assert_eq!(p["total_pages"], 3);
    assert_eq!(p["links"]["next"], "/media?page=2&per_page=2");
    assert!(p["links"]["prev"].is_null());
    let v = ok(alice.get("/api/v1/media?per_page=2&page=3"));
    assert_eq!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(id)
            .collect::<Vec<_>>(),
        vec![ids[0].clone()]
    );
    assert!(v["meta"]["pagination"]["links"]["next"].is_null());
    assert_eq!(
        v["meta"]["pagination"]["links"]["prev"],
        "/media?page=2&per_page=2"
    );
    let v = ok(alice.get("/api/v1/media?page=4&per_page=2"));
    assert_eq!(v["data"], json!([]));
    let v = ok(alice.get("/api/v1/media"));
    assert_eq!(v["meta"]["pagination"]["per_page"], 20);
    assert_eq!(v["data"].as_array().unwrap().len(), 5);
    assert_eq!(
        ok(alice.get("/api/v1/media?per_page=1000"))["meta"]["pagination"]["per_page"],
        100
    );
    error(alice.get("/api/v1/media?page=0"), 400, "validation_error");
    assert_eq!(
        ok(bob.get("/api/v1/media"))["meta"]["pagination"]["total"],
        1
    );
}

#[test]
fn collections_search_and_share_links() {
    let d = Daemon::start(&[]);
    let (_, alice) = signed_in(&d, "alice@example.com");
    let (_, bob) = signed_in(&d, "bob@example.com");
    let a1 = upload(&alice, "Holiday-Beach.JPG", b"not really a jpeg");
    let a2 = envelope(
        upload_raw(
            &alice,
            "notes.txt",
            None,
            b"some notes",
            &[("title", "Beach plans")],
        ),
        201,
    )["data"]
        .clone();
    let a3 = upload(&alice, "other.txt", b"other");
    let b1 = upload(&bob, "bob-beach.txt", b"bob");

    // Collections.
    let c = envelope(
        alice.post_json(
            "/api/v1/collections",
            &json!({"name": "Trips", "description": "2026"}),
        ),
        201,
    )["data"]
        .clone();
    let cid = id(&c);
    let r = error(
        alice.post_json("/api/v1/collections", &json!({"description": "x"})),
        400,
        "validation_error",
    );
    assert_eq!(r.json()["error"]["details"][0]["field"], "name");
    let v = ok(alice.post_json(
        &format!("/api/v1/collections/{cid}/media"),
        &json!({"media_id": id(&a1)}),
    ));
    assert_eq!(v["data"]["media_count"], 1);
    ok(alice.post_json(
        &format!("/api/v1/collections/{cid}/media"),
        &json!({"media_ids": [id(&a2), id(&a1)]}),
    ));
    for body in [
        json!({"media_id": id(&b1)}),
        json!({"media_id": "nope"}),
        json!({"media_ids": ["0190b3c4-0000-7000-8000-000000000000"]}),
    ] {
        error(
            alice.post_json(&format!("/api/v1/collections/{cid}/media"), &body),
            404,
            "not_found",
        );
    }
    for path in [
        "/api/v1/collections/0190b3c4-0000-7000-8000-000000000000/media".to_string(),
        "/api/v1/collections/bad-id/media".to_string(),
    ] {
        error(
            alice.post_json(&path, &json!({"media_id": id(&a1)})),
            404,
            "not_found",
        );
    }
    error(
        bob.post_json(
            &format!("/api/v1/collections/{cid}/media"),
            &json!({"media_id": id(&b1)}),
        ),
        404,
        "not_found",
    );
    error(
        bob.get(&format!("/api/v1/collections/{cid}")),
        404,
        "not_found",
    );
    let v = ok(alice.get(&format!("/api/v1/collections/{cid}")))["data"].clone();
    assert_eq!(v["name"], "Trips");
    let members: Vec<String> = v["media"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(members, vec![id(&a1), id(&a2)]);
    let v = ok(alice.get("/api/v1/collections"));
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["meta"]["pagination"]["total"], 1);
    assert_eq!(ok(bob.get("/api/v1/collections"))["data"], json!([]));
    error(
        bob.delete(&format!("/api/v1/collections/{cid}")),
        404,
        "not_found",
    );
    alice
        .delete(&format!("/api/v1/collections/{cid}"))
        .expect(204);
    error(
        alice.get(&format!("/api/v1/collections/{cid}")),
        404,
        "not_found",
    );
    ok(alice.get(&format!("/api/v1/media/{}", id(&a1))));

    // Search: file name or title, case-insensitively; the caller's own only.
    let v = ok(alice.get("/api/v1/search?q=BEACH"));
    let mut found: Vec<String> = v["data"].as_array().unwrap().iter().map(id).collect();
    found.sort();
    let mut want = vec![id(&a1), id(&a2)];
    want.sort();
    assert_eq!(found, want);
    assert_eq!(v["meta"]["pagination"]["total"], 2);
    let v = ok(alice.get("/api/v1/search?q=beach&per_page=1&page=2"));
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["meta"]["pagination"]["total_pages"], 2);
    assert!(v["meta"]["pagination"]["links"]["next"].is_null());
    let v = ok(alice.get("/api/v1/search?q=beach&type=document"));
    assert_eq!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(id)
            .collect::<Vec<_>>(),
        vec![id(&a2)]
    );
    assert_eq!(
        ok(alice.get("/api/v1/search?q=nothing-like-it"))["data"],
        json!([])
    );
    error(alice.get("/api/v1/search"), 400, "validation_error");
    error(
        alice.get("/api/v1/search?q=a&type=nope"),
        400,
        "validation_error",
    );
    let _ = a3;

    // Share: a URL that opens the file without any token.
    let s = envelope(
        alice.post(&format!("/api/v1/media/{}/share", id(&a2)), None, b""),
        201,
    )["data"]
        .clone();
    let url = s["url"].as_str().unwrap();
    assert!(url.starts_with("/share/"), "{s}");
    assert!(s["token"].is_string());
    assert!(s["expires_at"].is_null());
    let r = Client::anonymous(&d).get(url).expect(200);
    assert_eq!(r.body, b"some notes");
    let s = envelope(
        alice.post_json(
            &format!("/api/v1/media/{}/share", id(&a1)),
            &json!({"expires_in": 3600, "max_downloads": 1}),
        ),
        201,
    )["data"]
        .clone();
    assert!(s["expires_at"].is_string());
    let url = s["url"].as_str().unwrap();
    Client::anonymous(&d).get(url).expect(200);
    assert_ne!(Client::anonymous(&d).get(url).status, 200);
    error(
        bob.post(&format!("/api/v1/media/{}/share", id(&a1)), None, b""),
        404,
        "not_found",
    );
    error(
        alice.post("/api/v1/media/bad/share", None, b""),
        404,
        "not_found",
    );
}

/// A received request: lower-cased headers and body.
type Received = (Vec<(String, String)>, Vec<u8>);

/// A minimal HTTP receiver answering 200 to every request.
fn receiver() -> (std::net::SocketAddr, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            loop {
                line.clear();
                r.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if tx.send((headers, body)).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The next delivery, within a few seconds: (event, payload).
#[track_caller]
fn delivery(rx: &mpsc::Receiver<Received>, secret: &str) -> (String, Value) {
    let started = Instant::now();
    let (headers, body) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("no delivery");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let h = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(h("content-length").unwrap(), body.len().to_string());
    assert_eq!(
        h("x-ringbox-signature").unwrap(),
        format!("sha256={}", hmac_hex(secret, &body))
    );
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(h("x-ringbox-event").as_deref(), v["event"].as_str());
    assert!(v["timestamp"].is_string());
    (v["event"].as_str().unwrap().to_string(), v)
}

#[test]
fn webhooks_deliver_the_seeds_payload() {
    let d = Daemon::start(&["--webhook-allow-private"]);
    let (alice_id, alice) = signed_in(&d, "alice@example.com");
    let (_, bob) = signed_in(&d, "bob@example.com");
    let (addr, rx) = receiver();
    let url = format!("http://{addr}/hook");

    error(
        alice.post_json(
            "/api/v1/webhooks",
            &json!({"url": url, "events": ["media.exploded"]}),
        ),
        400,
        "validation_error",
    );
    error(
        alice.post_json("/api/v1/webhooks", &json!({"events": []})),
        400,
        "validation_error",
    );
    let hook = envelope(
        alice.post_json(
            "/api/v1/webhooks",
            &json!({"url": url, "events": ["media.uploaded", "media.deleted", "collection.created"]}),
        ),
        201,
    )["data"]
        .clone();
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert_eq!(hook["url"], url.as_str());
    assert_eq!(
        hook["events"],
        json!(["media.uploaded", "media.deleted", "collection.created"])
    );
    let hid = id(&hook);

    // Bob's activity never reaches Alice's hook.
    upload(&bob, "bob.txt", b"bob");
    let m = upload(&alice, "a.png", &media_file("alpha.png"));
    let (event, v) = delivery(&rx, &secret);
    assert_eq!(event, "media.uploaded");
    assert_eq!(v["data"]["id"], id(&m));
    assert_eq!(v["data"]["type"], "image");
    assert_eq!(v["data"]["user_id"], alice_id.as_str());
    // A patch is not one of the seed's events.
    ok(alice.patch_json(&format!("/api/v1/media/{}", id(&m)), &json!({"title": "t"})));
    let c = envelope(
        alice.post_json("/api/v1/collections", &json!({"name": "C"})),
        201,
    )["data"]
        .clone();
    let (event, v) = delivery(&rx, &secret);
    assert_eq!(event, "collection.created");
    assert_eq!(v["data"]["id"], id(&c));
    assert_eq!(v["data"]["user_id"], alice_id.as_str());
    alice
        .delete(&format!("/api/v1/media/{}", id(&m)))
        .expect(204);
    let (event, v) = delivery(&rx, &secret);
    assert_eq!(event, "media.deleted");
    assert_eq!(v["data"]["id"], id(&m));

    // Listing, reading and deleting hooks (the secret is shown once).
    let list = ok(alice.get("/api/v1/webhooks"))["data"].clone();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("secret").is_none());
    assert_eq!(
        ok(alice.get(&format!("/api/v1/webhooks/{hid}")))["data"]["id"],
        hid.as_str()
    );
    error(
        bob.get(&format!("/api/v1/webhooks/{hid}")),
        404,
        "not_found",
    );
    assert_eq!(ok(bob.get("/api/v1/webhooks"))["data"], json!([]));
    error(
        bob.delete(&format!("/api/v1/webhooks/{hid}")),
        404,
        "not_found",
    );
    alice.delete(&format!("/api/v1/webhooks/{hid}")).expect(204);
    error(
        alice.get(&format!("/api/v1/webhooks/{hid}")),
        404,
        "not_found",
    );

    // user.registered reaches an admin's hook.
    let admin_token = login_admin(&d);
    let admin = bearer(&d, &admin_token);
    let hook = envelope(
        admin.post_json(
            "/api/v1/webhooks",
            &json!({"url": url, "events": ["user.registered"]}),
        ),
        201,
    )["data"]
        .clone();
    let secret = hook["secret"].as_str().unwrap().to_string();
    let (carol_id, _) = add_user(&d, "carol@example.com");
    let (event, v) = delivery(&rx, &secret);
    assert_eq!(event, "user.registered");
    assert_eq!(v["data"]["id"], carol_id.as_str());
    assert_eq!(v["data"]["username"], "carol@example.com");
}

/// The admin's API key works on Media Vault routes too.
fn login_admin(d: &Daemon) -> String {
    d.token().to_string()
}

/// A WebSocket to `/realtime`.
fn connect(d: &Daemon) -> WebSocket<TcpStream> {
    let req = format!("ws://{}/realtime", d.addr())
        .into_client_request()
        .unwrap();
    let stream = TcpStream::connect(d.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let (ws, resp) = tungstenite::client::client(req, stream).unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

fn send(ws: &mut WebSocket<TcpStream>, v: Value) {
    ws.send(Message::text(v.to_string())).unwrap();
}

/// The next JSON text message, within two seconds.
#[track_caller]
fn next(ws: &mut WebSocket<TcpStream>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).unwrap(),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => panic!("unexpected message {other:?}"),
            Err(e) => panic!("no message in time: {e}"),
        }
        assert!(Instant::now() < deadline, "no message in time");
    }
}

/// The socket is closed by the server (a close frame, then the end).
#[track_caller]
fn closed(ws: &mut WebSocket<TcpStream>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => {}
            Ok(Message::Text(t)) => panic!("unexpected text after refusal: {t}"),
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return,
            Err(tungstenite::Error::Protocol(_)) => return,
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return
            }
            Err(e) => panic!("expected a close: {e}"),
        }
        assert!(Instant::now() < deadline, "not closed in time");
    }
}

/// Nothing arrives for a moment.
fn quiet(ws: &mut WebSocket<TcpStream>) {
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    match ws.read() {
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("expected silence, got {other:?}"),
    }
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
}

#[test]
fn realtime_authenticates_subscribes_and_sends_only_the_callers_media() {
    let d = Daemon::start(&[]);
    let (alice_id, alice) = signed_in(&d, "alice@example.com");
    let (_, bob) = signed_in(&d, "bob@example.com");
    let alice_token = login(&d, "alice@example.com")["data"]["token"]
        .as_str()
        .unwrap()
        .to_string();

    // Auth and subscribe back to back, as the seed's client does.
    let mut all = connect(&d);
    send(&mut all, json!({"type": "auth", "token": alice_token}));
    send(
        &mut all,
        json!({"type": "subscribe", "channel": "media_updates"}),
    );
    let a = next(&mut all);
    assert_eq!(
        (a["type"].as_str(), a["action"].as_str()),
        (Some("ack"), Some("auth"))
    );
    assert_eq!(a["user_id"], alice_id.as_str());
    let a = next(&mut all);
    assert_eq!(
        (a["type"].as_str(), a["action"].as_str()),
        (Some("ack"), Some("subscribe"))
    );

    let m1 = upload(&alice, "one.txt", b"one");
    let m2 = upload(&alice, "two.txt", b"two");
    let e = next(&mut all);
    assert_eq!(e["type"], "media.uploaded");
    assert_eq!(e["data"]["id"], id(&m1));
    assert_eq!(next(&mut all)["data"]["id"], id(&m2));
    // Bob's media are not Alice's news.
    upload(&bob, "bob.txt", b"bob");
    quiet(&mut all);

    // One item's subscription (by API key this time): its update and its deletion.
    let alice_key = alice
        .post_json("/v1/tokens", &json!({"label": "rt"}))
        .expect_json(201)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut one = connect(&d);
    send(&mut one, json!({"type": "auth", "token": alice_key}));
    send(
        &mut one,
        json!({"type": "subscribe", "channel": "media_updates", "resource_id": id(&m1)}),
    );
    assert_eq!(next(&mut one)["action"], "auth");
    let a = next(&mut one);
    assert_eq!(
        (a["action"].as_str(), a["resource_id"].as_str()),
        (Some("subscribe"), Some(id(&m1).as_str()))
    );
    ok(alice.patch_json(
        &format!("/api/v1/media/{}", id(&m2)),
        &json!({"title": "x"}),
    ));
    ok(alice.patch_json(
        &format!("/api/v1/media/{}", id(&m1)),
        &json!({"title": "y"}),
    ));
    let e = next(&mut one);
    assert_eq!(
        (e["type"].as_str(), e["data"]["id"].as_str()),
        (Some("media.updated"), Some(id(&m1).as_str()))
    );
    alice
        .delete(&format!("/api/v1/media/{}", id(&m1)))
        .expect(204);
    let e = next(&mut one);
    assert_eq!(
        (e["type"].as_str(), e["data"]["id"].as_str()),
        (Some("media.deleted"), Some(id(&m1).as_str()))
    );
    quiet(&mut one);
    // The all-media socket saw both updates and the deletion, in order.
    assert_eq!(next(&mut all)["data"]["id"], id(&m2));
    assert_eq!(next(&mut all)["data"]["id"], id(&m1));
    let e = next(&mut all);
    assert_eq!(e["type"], "media.deleted");
    // Pings are answered.
    send(&mut all, json!({"type": "ping"}));
    assert_eq!(next(&mut all)["type"], "pong");

    // Subscribing before auth, or a bad token: an error at once, then the close.
    let mut early = connect(&d);
    send(
        &mut early,
        json!({"type": "subscribe", "channel": "media_updates"}),
    );
    send(&mut early, json!({"type": "auth", "token": alice_token}));
    let e = next(&mut early);
    assert_eq!(
        (e["type"].as_str(), e["error"].as_str()),
        (Some("error"), Some("unauthorized"))
    );
    closed(&mut early);
    let mut bad = connect(&d);
    send(&mut bad, json!({"type": "auth", "token": "not-a-token"}));
    send(
        &mut bad,
        json!({"type": "subscribe", "channel": "media_updates"}),
    );
    let e = next(&mut bad);
    assert_eq!(
        (e["type"].as_str(), e["error"].as_str()),
        (Some("error"), Some("unauthorized"))
    );
    closed(&mut bad);
    upload(&alice, "after.txt", b"after");
    assert_eq!(next(&mut all)["type"], "media.uploaded");
}
