//! Users, sessions, API tokens, ownership, quotas, rate limits and CORS, through real
//! sockets: every route as anonymous, another user, the owner and an admin; credentials
//! refused on every worker the moment they are revoked; quotas that concurrent uploads
//! cannot overshoot; the CLI while the server runs and offline.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::checks::id_of;
use crate::common::daemon::run_cli;
use crate::common::raw::request;
use crate::common::{Client, Daemon, RawConn, Resp};

/// A user created by the admin: (id, api token).
fn add_user(d: &Daemon, name: &str, password: &str) -> (String, String) {
    let v = Client::new(d)
        .post_json(
            "/v1/users",
            &json!({"username": name, "password": password}),
        )
        .expect_json(201);
    assert_eq!(v["username"], name);
    assert_eq!(v["role"], "user");
    (
        v["id"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    )
}

fn bearer(d: &Daemon, token: &str) -> Client {
    Client::with_authorization(d, &format!("Bearer {token}"))
}

fn login(d: &Daemon, user: &str, password: &str) -> Value {
    Client::anonymous(d)
        .post_json(
            "/v1/auth/login",
            &json!({"username": user, "password": password}),
        )
        .expect_json(200)
}

#[test]
fn creating_users_and_their_rules() {
    let d = Daemon::start(&[]);
    let admin = Client::new(&d);
    let (id, token) = add_user(&d, "alice@example.com", "correct horse");
    // The token works at once, on every API route the user may call.
    let me = bearer(&d, &token).get("/v1/users/me").expect_json(200);
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["usage_bytes"], 0);
    assert_eq!(me["object_count"], 0);
    // Username and password rules: clear 400s; a taken name (any case) is 409.
    for (body, what) in [
        (
            json!({"username": "ab", "password": "12345678"}),
            "short name",
        ),
        (
            json!({"username": "a b c", "password": "12345678"}),
            "space",
        ),
        (
            json!({"username": "x".repeat(65), "password": "12345678"}),
            "long name",
        ),
        (
            json!({"username": "bob", "password": "1234567"}),
            "short password",
        ),
        (
            json!({"username": "bob", "password": "p".repeat(1025)}),
            "long password",
        ),
        (
            json!({"username": "bob", "password": "12345678", "role": "king"}),
            "role",
        ),
    ] {
        let r = admin.post_json("/v1/users", &body);
        assert_eq!(r.status, 400, "{what}: {}", r.describe());
    }
    admin
        .post_json(
            "/v1/users",
            &json!({"username": "ALICE@example.com", "password": "whatever1"}),
        )
        .expect_error(409, "conflict");
    // Only admins create and list users.
    bearer(&d, &token)
        .post_json(
            "/v1/users",
            &json!({"username": "eve", "password": "12345678"}),
        )
        .expect_error(403, "forbidden");
    bearer(&d, &token)
        .get("/v1/users")
        .expect_error(403, "forbidden");
    let list = admin.get("/v1/users?limit=1").expect_json(200);
    assert_eq!(list["users"].as_array().unwrap().len(), 1);
    let next = list["next_cursor"].as_str().unwrap();
    let list2 = admin
        .get(&format!("/v1/users?cursor={next}"))
        .expect_json(200);
    assert_eq!(list2["users"].as_array().unwrap().len(), 1);
    // A user sees only themself.
    let (bob, bob_token) = add_user(&d, "bob", "bobs password");
    bearer(&d, &token)
        .get(&format!("/v1/users/{bob}"))
        .expect_error(404, "not_found");
    bearer(&d, &bob_token)
        .get(&format!("/v1/users/{bob}"))
        .expect(200);
    // Admins change roles and quotas; users their display name and password.
    let v = admin
        .patch_json(&format!("/v1/users/{bob}"), &json!({"quota_bytes": 1000}))
        .expect_json(200);
    assert_eq!(v["quota_bytes"], 1000);
    bearer(&d, &bob_token)
        .patch_json("/v1/users/me", &json!({"quota_bytes": 99999}))
        .expect_error(403, "forbidden");
    let v = bearer(&d, &bob_token)
        .patch_json("/v1/users/me", &json!({"display_name": "Bob B."}))
        .expect_json(200);
    assert_eq!(v["display_name"], "Bob B.");
    bearer(&d, &bob_token)
        .patch_json("/v1/users/me", &json!({"password": "new password 1"}))
        .expect_error(400, "bad_request");
    bearer(&d, &bob_token)
        .patch_json(
            "/v1/users/me",
            &json!({"password": "new password 1", "old_password": "wrong one"}),
        )
        .expect_error(403, "forbidden");
    bearer(&d, &bob_token)
        .patch_json(
            "/v1/users/me",
            &json!({"password": "new password 1", "old_password": "bobs password"}),
        )
        .expect(200);
    login(&d, "bob", "new password 1");
}

#[test]
fn sessions_rotate_and_logout_revokes_on_every_worker() {
    let d = Daemon::start(&["--workers", "2"]);
    add_user(&d, "carol", "carol's password");
    let s = login(&d, "carol", "carol's password");
    assert_eq!(s["token_type"], "Bearer");
    assert_eq!(s["expires_in"], 3600);
    let access = s["access_token"].as_str().unwrap().to_string();
    let refresh = s["refresh_token"].as_str().unwrap().to_string();
    // Two logins in the same second get different tokens.
    let s2 = login(&d, "carol", "carol's password");
    assert_ne!(s2["access_token"], s["access_token"]);
    // The access token works; warm the caches of both workers with many connections.
    for _ in 0..8 {
        bearer(&d, &access).get("/v1/users/me").expect(200);
    }
    // Wrong password and unknown user: the same 401.
    let wrong = Client::anonymous(&d).post_json(
        "/v1/auth/login",
        &json!({"username": "carol", "password": "not it at all"}),
    );
    let unknown = Client::anonymous(&d).post_json(
        "/v1/auth/login",
        &json!({"username": "nobody-here", "password": "not it at all"}),
    );
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.json(), unknown.json());
    // Refresh rotates: the new pair works, the old refresh and access tokens do not.
    let r = Client::anonymous(&d)
        .post_json("/v1/auth/refresh", &json!({"refresh_token": refresh}))
        .expect_json(200);
    let access2 = r["access_token"].as_str().unwrap().to_string();
    for _ in 0..8 {
        bearer(&d, &access)
            .get("/v1/users/me")
            .expect_error(401, "unauthorized");
        bearer(&d, &access2).get("/v1/users/me").expect(200);
    }
    Client::anonymous(&d)
        .post_json("/v1/auth/refresh", &json!({"refresh_token": refresh}))
        .expect_error(401, "unauthorized");
    // Logout revokes the access token and its refresh token, on every worker at once.
    bearer(&d, &access2)
        .post("/v1/auth/logout", None, b"")
        .expect(204);
    for _ in 0..8 {
        bearer(&d, &access2)
            .get("/v1/users/me")
            .expect_error(401, "unauthorized");
    }
    Client::anonymous(&d)
        .post_json(
            "/v1/auth/refresh",
            &json!({"refresh_token": r["refresh_token"]}),
        )
        .expect_error(401, "unauthorized");
    // A JWT that was tampered with is refused; on a public route it is ignored.
    let mut forged = access.clone();
    forged.pop();
    forged.push(if access.ends_with('A') { 'B' } else { 'A' });
    bearer(&d, &forged)
        .get("/v1/users/me")
        .expect_error(401, "unauthorized");
    bearer(&d, &forged).get("/healthz").expect(200);
}

#[test]
fn api_tokens_are_listed_without_secrets_and_revoked_at_once() {
    let d = Daemon::start(&["--workers", "2"]);
    let (_, first) = add_user(&d, "dave", "dave's password");
    let dave = bearer(&d, &first);
    let t = dave
        .post_json("/v1/tokens", &json!({"label": "ci", "expires_in": "7d"}))
        .expect_json(201);
    let secret = t["token"].as_str().unwrap().to_string();
    assert_eq!(t["label"], "ci");
    assert!(t["expires_at"].is_string());
    for _ in 0..6 {
        bearer(&d, &secret).get("/v1/users/me").expect(200);
    }
    let list = dave.get("/v1/tokens").expect_json(200);
    let tokens = list["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(tokens.iter().all(|t| t.get("token").is_none()));
    assert!(!list.to_string().contains(&secret));
    // Used tokens show when (recorded in batches every few seconds).
    let id = t["id"].as_str().unwrap();
    // Another user cannot revoke it.
    let (_, eve) = add_user(&d, "eve", "eve's password");
    bearer(&d, &eve)
        .delete(&format!("/v1/tokens/{id}"))
        .expect_error(404, "not_found");
    dave.delete(&format!("/v1/tokens/{id}")).expect(204);
    // Both changes are in the audit log, by dave, naming the token but not its secret.
    let lines = wait_for_audit(&d, &["token.created", "token.revoked"]);
    for action in ["token.created", "token.revoked"] {
        let l = lines.iter().find(|l| l["action"] == action).unwrap();
        assert_eq!(l["name"], "dave", "{l}");
        assert_eq!(l["actor"], l["object_id"], "{l}");
        assert_eq!(l["details"]["token_id"], id, "{l}");
    }
    assert!(!lines.iter().any(|l| l.to_string().contains(&secret)));
    for _ in 0..6 {
        bearer(&d, &secret)
            .get("/v1/users/me")
            .expect_error(401, "unauthorized");
    }
    // An expired token does not work.
    let short = dave
        .post_json("/v1/tokens", &json!({"label": "short", "expires_in": 1}))
        .expect_json(201);
    std::thread::sleep(Duration::from_millis(1100));
    bearer(&d, short["token"].as_str().unwrap())
        .get("/v1/users/me")
        .expect_error(401, "unauthorized");
    // The last use is recorded (batched every 10 s).
    std::thread::sleep(Duration::from_secs(11));
    let list = dave.get("/v1/tokens").expect_json(200);
    assert!(
        list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["last_used_at"].is_string()),
        "{list}"
    );
}

#[test]
fn users_never_see_each_others_objects() {
    let d = Daemon::start(&[]);
    let (_, a_tok) = add_user(&d, "anna", "anna's password");
    let (_, b_tok) = add_user(&d, "bert", "bert's password");
    let (anna, bert) = (bearer(&d, &a_tok), bearer(&d, &b_tok));
    let secret = b"anna's secret bytes";
    let obj = anna.upload("diary.txt", Some("private"), Some("text/plain"), secret);
    let id = id_of(&obj);
    let sha = obj["sha256"].as_str().unwrap();
    bert.upload("notes.txt", Some("private"), Some("text/plain"), b"bert's");
    // Listings: each sees their own only (and the admin everything).
    let names = |c: &Client, q: &str| -> Vec<String> {
        c.get(&format!("/v1/objects{q}")).expect_json(200)["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&anna, ""), ["diary.txt"]);
    assert_eq!(names(&bert, "?namespace=private"), ["notes.txt"]);
    assert_eq!(names(&bert, "?q=diary"), Vec::<String>::new());
    assert_eq!(names(&Client::new(&d), "?namespace=private").len(), 2);
    // Metadata, content, blobs, changes: 404 for the other user, never 403.
    bert.get(&format!("/v1/objects/{id}"))
        .expect_error(404, "not_found");
    bert.content(&id).expect_error(404, "not_found");
    bert.get(&format!("/v1/blobs/{sha}"))
        .expect_error(404, "not_found");
    bert.patch_json(&format!("/v1/objects/{id}"), &json!({"name": "x"}))
        .expect_error(404, "not_found");
    bert.delete(&format!("/v1/objects/{id}"))
        .expect_error(404, "not_found");
    bert.put(&format!("/v1/objects/{id}/content"), None, b"overwrite")
        .expect_error(404, "not_found");
    // The owner and the admin do.
    assert_eq!(anna.content(&id).expect(200).body, secret);
    anna.get(&format!("/v1/blobs/{sha}")).expect(200);
    Client::new(&d).get(&format!("/v1/blobs/{sha}")).expect(200);
    // Usage counts the user's logical bytes.
    let me = anna.get("/v1/users/me").expect_json(200);
    assert_eq!(me["usage_bytes"], secret.len());
    assert_eq!(me["object_count"], 1);
    anna.delete(&format!("/v1/objects/{id}")).expect(204);
    let me = anna.get("/v1/users/me").expect_json(200);
    assert_eq!(
        (me["usage_bytes"].as_u64(), me["object_count"].as_u64()),
        (Some(0), Some(0))
    );
}

/// Every native route as anonymous, another user, the owner and an admin.
#[test]
fn access_matrix_of_the_native_api() {
    let d = Daemon::start(&[]);
    let (owner_id, owner_tok) = add_user(&d, "owner", "owner's password");
    let (_, other_tok) = add_user(&d, "other", "other's password");
    let clients: [(&str, Client); 4] = [
        ("anonymous", Client::anonymous(&d)),
        ("other", bearer(&d, &other_tok)),
        ("owner", bearer(&d, &owner_tok)),
        ("admin", Client::new(&d)),
    ];
    let owner = &clients[2].1;
    let fresh = |owner: &Client| {
        let o = owner.upload("m.txt", Some("mx"), Some("text/plain"), b"matrix");
        (id_of(&o), o["sha256"].as_str().unwrap().to_string())
    };
    // (method, path with {id}/{sha}/{user}, body, expected status for [anonymous, other, owner, admin])
    type Case = (&'static str, &'static str, Option<Value>, [u16; 4]);
    let cases: Vec<Case> = vec![
        ("GET", "/healthz", None, [200, 200, 200, 200]),
        ("GET", "/metrics", None, [401, 200, 200, 200]),
        ("GET", "/v1/objects", None, [401, 200, 200, 200]),
        ("GET", "/v1/objects/{id}", None, [401, 404, 200, 200]),
        (
            "GET",
            "/v1/objects/{id}/content",
            None,
            [401, 404, 200, 200],
        ),
        (
            "HEAD",
            "/v1/objects/{id}/content",
            None,
            [401, 404, 200, 200],
        ),
        ("GET", "/v1/blobs/{sha}", None, [401, 404, 200, 200]),
        (
            "PATCH",
            "/v1/objects/{id}",
            Some(json!({"tags": ["t"]})),
            [401, 404, 200, 200],
        ),
        (
            "PUT",
            "/v1/objects/{id}/content",
            None,
            [401, 404, 200, 200],
        ),
        ("DELETE", "/v1/objects/{id}", None, [401, 404, 204, 204]),
        ("POST", "/v1/objects?name=n.txt", None, [401, 201, 201, 201]),
        ("GET", "/v1/users/me", None, [401, 200, 200, 200]),
        ("GET", "/v1/users/{user}", None, [401, 404, 200, 200]),
        ("GET", "/v1/users", None, [401, 403, 403, 200]),
        (
            "POST",
            "/v1/users",
            Some(json!({"username": "{fresh}", "password": "12345678"})),
            [401, 403, 403, 201],
        ),
        ("GET", "/v1/tokens", None, [401, 200, 200, 200]),
        (
            "POST",
            "/v1/tokens",
            Some(json!({"label": "x"})),
            [401, 201, 201, 201],
        ),
        ("POST", "/v1/auth/logout", None, [401, 400, 400, 400]),
    ];
    let mut n = 0;
    for (method, path, body, want) in cases {
        for (i, (who, c)) in clients.iter().enumerate() {
            n += 1;
            let (id, sha) = fresh(owner);
            let path = path
                .replace("{id}", &id)
                .replace("{sha}", &sha)
                .replace("{user}", &owner_id);
            let body = body.clone().map(|b| {
                serde_json::from_str::<Value>(&b.to_string().replace("{fresh}", &format!("u{n}")))
                    .unwrap()
            });
            let r: Resp = match (method, body) {
                ("GET", _) => c.get(&path),
                ("HEAD", _) => c.head(&path),
                ("DELETE", _) => c.delete(&path),
                ("PATCH", Some(b)) => c.patch_json(&path, &b),
                ("POST", Some(b)) => c.post_json(&path, &b),
                ("POST", None) => c.post(&path, Some("text/plain"), b"x"),
                ("PUT", _) => c.put(&path, Some("text/plain"), b"replaced"),
                _ => unreachable!(),
            };
            assert_eq!(
                r.status,
                want[i],
                "{method} {path} as {who}: {}",
                r.describe()
            );
        }
    }
}

#[test]
fn anonymous_modes_and_public_health() {
    for mode in ["none", "read", "write"] {
        let d = Daemon::start(&["--anonymous", mode]);
        Client::anonymous(&d).get("/healthz").expect(200);
    }
    // Under --anonymous read a user reads everyone's objects but changes only their own.
    let d = Daemon::start(&["--anonymous", "read"]);
    let (_, a) = add_user(&d, "reader1", "password one");
    let (_, b) = add_user(&d, "reader2", "password two");
    let obj = bearer(&d, &a).upload("pub.txt", None, Some("text/plain"), b"public");
    let id = id_of(&obj);
    assert_eq!(bearer(&d, &b).content(&id).expect(200).body, b"public");
    Client::anonymous(&d).content(&id).expect(200);
    bearer(&d, &b)
        .delete(&format!("/v1/objects/{id}"))
        .expect_error(403, "forbidden");
}

#[test]
fn a_file_over_the_limit_is_refused_and_the_client_hears_it() {
    let d = Daemon::start(&["--max-file-size", "1MiB"]);
    let auth = format!("Bearer {}", d.token());
    // Declared too large: refused before the body is read, while the client still
    // writes its 2 MiB; it then reads the 413.
    let body = vec![b'z'; 2 << 20];
    let mut conn = RawConn::connect(d.addr());
    conn.send(&request(
        "POST",
        "/v1/objects?name=big.bin",
        &[
            ("Authorization", &auth),
            ("Content-Length", &(2 << 20).to_string()),
        ],
        b"",
    ));
    let _ = conn.stream.write_all(&body);
    let r = conn.read_response();
    let r = r.expect_error(413, "file_too_large");
    assert!(r.text().contains("1048576"), "{}", r.describe());
    // Discovered while streaming (chunked): the same, and nothing stored.
    let r = Client::new(&d)
        .req("POST", "/v1/objects?name=big2.bin")
        .send_reader(std::io::Cursor::new(body.clone()));
    r.expect_error(413, "file_too_large");
    let list = Client::new(&d).get("/v1/objects").expect_json(200);
    assert_eq!(list["objects"].as_array().unwrap().len(), 0);
    let tmp = std::fs::read_dir(d.data_dir().join("tmp")).unwrap().count();
    assert_eq!(tmp, 0, "a partial upload was left in tmp/");
}

#[test]
fn quotas_are_never_overshot_and_deletes_free_space() {
    let d = Daemon::start(&["--user-quota", "100KiB"]);
    let (_, tok) = add_user(&d, "quota", "quota's password");
    let c = bearer(&d, &tok);
    c.upload("a.bin", None, None, &vec![1u8; 60 << 10]);
    let r = c.post("/v1/objects?name=b.bin", None, &vec![2u8; 50 << 10]);
    let r = r.expect_error(413, "quota_exceeded");
    assert!(
        r.text().contains("102400") && r.text().contains(&(40 << 10).to_string()),
        "{}",
        r.describe()
    );
    // After a delete the space is back.
    let list = c.get("/v1/objects").expect_json(200);
    let id = list["objects"][0]["id"].as_str().unwrap().to_string();
    c.delete(&format!("/v1/objects/{id}")).expect(204);
    c.upload("b.bin", None, None, &vec![2u8; 50 << 10]);
    // 20 concurrent uploads of 8 KiB against the 50 KiB left: never above quota + one
    // file (in fact never above quota: the writer checks each commit).
    let addr = d.addr();
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let tok = tok.clone();
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                let r = agent
                    .post(&format!("http://{addr}/v1/objects?name=c{i}.bin"))
                    .set("Authorization", &format!("Bearer {tok}"))
                    .send_bytes(&vec![i as u8; 8 << 10]);
                match r {
                    Ok(r) => r.status(),
                    Err(ureq::Error::Status(s, _)) => s,
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 413),
        "{statuses:?}"
    );
    let me = c.get("/v1/users/me").expect_json(200);
    let used = me["usage_bytes"].as_u64().unwrap();
    assert!(used <= 100 << 10, "usage {used} is above the quota");
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        6,
        "{statuses:?}"
    );
    // A per-user override wins over the global quota.
    let id = me["id"].as_str().unwrap();
    Client::new(&d)
        .patch_json(&format!("/v1/users/{id}"), &json!({"quota_bytes": 1 << 20}))
        .expect(200);
    c.upload("d.bin", None, None, &vec![3u8; 200 << 10]);
}

#[test]
fn a_multipart_upload_that_reaches_the_quota_reports_each_file() {
    let d = Daemon::start(&["--user-quota", "10KiB"]);
    let (_, tok) = add_user(&d, "parts", "parts' password");
    let mut body = Vec::new();
    for (name, size) in [("one.bin", 4000), ("two.bin", 4000), ("three.bin", 4000)] {
        body.extend_from_slice(
            format!(
                "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend(std::iter::repeat_n(b'q', size));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--b--\r\n");
    let v = bearer(&d, &tok)
        .post(
            "/v1/objects",
            Some("multipart/form-data; boundary=b"),
            &body,
        )
        .expect_json(207);
    assert_eq!(v["objects"].as_array().unwrap().len(), 2, "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{v}");
    assert_eq!(errors[0]["error"]["code"], "quota_exceeded");
}

#[test]
fn deleting_a_user_revokes_everything_and_removes_their_objects() {
    let d = Daemon::start(&[]);
    let (id, tok) = add_user(&d, "leaver", "leaver's password");
    let s = login(&d, "leaver", "leaver's password");
    let c = bearer(&d, &tok);
    for i in 0..5 {
        c.upload(&format!("f{i}.bin"), None, None, &[i as u8; 100]);
    }
    Client::new(&d)
        .delete(&format!("/v1/users/{id}"))
        .expect(204);
    c.get("/v1/users/me").expect_error(401, "unauthorized");
    bearer(&d, s["access_token"].as_str().unwrap())
        .get("/v1/objects")
        .expect_error(401, "unauthorized");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = Client::new(&d).get("/v1/objects").expect_json(200)["objects"]
            .as_array()
            .unwrap()
            .len();
        if n == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{n} objects left");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The built-in admin cannot be deleted.
    Client::new(&d)
        .delete("/v1/users/admin")
        .expect_error(409, "conflict");
    // The audit log names every user and token change, by whom, without secrets.
    let lines = wait_for_audit(&d, &["user.created", "user.deleted"]);
    let created = lines
        .iter()
        .find(|l| l["action"] == "user.created")
        .unwrap();
    assert_eq!(created["object_id"], id.as_str());
    assert_eq!(created["name"], "leaver");
    assert_eq!(created["actor"], "admin");
    assert_eq!(created["details"]["role"], "user");
    let all = lines.iter().map(|l| l.to_string()).collect::<String>();
    assert!(!all.contains(&tok), "a token secret in the audit log");
    assert!(!all.contains("leaver's password"));
}

/// The daily audit lines once every action in `actions` is there (records are queued
/// and on disk within about a second).
fn wait_for_audit(d: &Daemon, actions: &[&str]) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut lines = Vec::new();
        if let Ok(rd) = std::fs::read_dir(d.data_dir().join("audit")) {
            for e in rd.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                lines.extend(
                    text.lines()
                        .filter_map(|l| serde_json::from_str::<Value>(l).ok()),
                );
            }
        }
        if actions
            .iter()
            .all(|a| lines.iter().any(|l| l["action"] == *a))
        {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "audit lines {actions:?} missing from {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rate_limits_count_every_answer() {
    let d = Daemon::start(&["--rate-limit", "native=5,0,0"]);
    let anon = Client::anonymous(&d);
    let mut last = None;
    for i in 0..5 {
        let r = anon.get("/v1/objects");
        assert_eq!(r.status, 401, "request {i}");
        assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some((4 - i).to_string().as_str())
        );
        assert!(r.header("x-ratelimit-reset").is_some());
        last = Some(r);
    }
    drop(last);
    let r = anon.get("/healthz");
    let r = r.expect_error(429, "rate_limited");
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert!(r.header("retry-after").is_some());
    // Signed-in users are unlimited here (0 = unlimited).
    for _ in 0..20 {
        let r = Client::new(&d).get("/v1/objects").expect(200);
        assert!(r.header("x-ratelimit-limit").is_none());
    }
}

#[test]
fn cors_allow_list_and_preflight() {
    let d = Daemon::start(&["--cors-origins", "https://app.example"]);
    let r = Client::new(&d)
        .req("GET", "/v1/objects")
        .header("Origin", "https://app.example")
        .call()
        .expect(200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let r = Client::new(&d)
        .req("GET", "/v1/objects")
        .header("Origin", "https://evil.example")
        .call()
        .expect(200);
    assert!(r.header("access-control-allow-origin").is_none());
    let r = Client::anonymous(&d)
        .req("OPTIONS", "/v1/objects/abc")
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "PATCH")
        .call()
        .expect(204);
    let methods = r.must_header("access-control-allow-methods").to_string();
    assert!(
        methods.contains("PATCH") && methods.contains("DELETE"),
        "{methods}"
    );
    Client::anonymous(&d)
        .req("OPTIONS", "/v1/objects")
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .call()
        .expect_error(403, "origin_not_allowed");
}

#[test]
fn cli_manages_users_and_tokens_with_and_without_a_server() {
    let mut d = Daemon::start(&[]);
    let data = d.data_dir().to_path_buf();
    let data_s = data.to_str().unwrap();
    let cli = |args: &[&str], stdin: Option<&str>| -> Value {
        let out = if let Some(input) = stdin {
            let mut child = std::process::Command::new(crate::common::daemon::BIN)
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            let mut s = String::new();
            child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
            assert!(child.wait().unwrap().success(), "{args:?}");
            s
        } else {
            let out = run_cli(args, Duration::from_secs(30));
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };
    // While the server runs.
    let u = cli(
        &["user", "add", "frank", "--data", data_s, "--password-stdin"],
        Some("frank's password\n"),
    );
    let token = u["token"].as_str().unwrap().to_string();
    bearer(&d, &token).get("/v1/users/me").expect(200);
    login(&d, "frank", "frank's password");
    let list = cli(&["user", "list", "--data", data_s], None);
    assert!(list.to_string().contains("frank"));
    let t = cli(
        &[
            "token", "create", "--user", "frank", "--label", "cli", "--data", data_s,
        ],
        None,
    );
    let secret = t["token"].as_str().unwrap().to_string();
    bearer(&d, &secret).get("/v1/users/me").expect(200);
    let tl = cli(
        &["token", "list", "--user", "frank", "--data", data_s],
        None,
    );
    assert_eq!(tl["tokens"].as_array().unwrap().len(), 2);
    cli(
        &[
            "token",
            "revoke",
            t["id"].as_str().unwrap(),
            "--user",
            "frank",
            "--data",
            data_s,
        ],
        None,
    );
    bearer(&d, &secret)
        .get("/v1/users/me")
        .expect_error(401, "unauthorized");
    cli(
        &[
            "user",
            "passwd",
            "frank",
            "--data",
            data_s,
            "--password-stdin",
        ],
        Some("a new password\n"),
    );
    login(&d, "frank", "a new password");
    // Offline.
    d.stop();
    let g = cli(
        &["user", "add", "grace", "--data", data_s, "--password-stdin"],
        Some("grace's password\n"),
    );
    cli(&["user", "delete", "frank", "--data", data_s], None);
    d.start_again();
    bearer(&d, g["token"].as_str().unwrap())
        .get("/v1/users/me")
        .expect(200);
    bearer(&d, &token)
        .get("/v1/users/me")
        .expect_error(401, "unauthorized");
}

#[test]
fn a_store_from_before_users_is_migrated_with_its_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/store-v1-small.tar.gz"
    );
    let ok = std::process::Command::new("tar")
        .args(["xzf", fixture, "-C"])
        .arg(&data)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let d = Daemon::start_in(&data, &[]);
    let c = Client::new(&d);
    let me = c.get("/v1/users/me").expect_json(200);
    assert_eq!(me["username"], "admin");
    assert_eq!(me["role"], "admin");
    // Every object of the old store is the admin's and counted.
    assert_eq!(me["object_count"], 15);
    let tokens = c.get("/v1/tokens").expect_json(200);
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 1);
}
