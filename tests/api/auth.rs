//! Access control: bearer token, the token file, `--anonymous read|write`, public
//! `/healthz`.

use crate::common::checks::id_of;
use crate::common::{Client, Daemon, Resp};
use std::os::unix::fs::PermissionsExt;

#[track_caller]
fn assert_unauthorized(r: Resp) {
    let r = r.expect_error(401, "unauthorized");
    let www = r
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("401 without WWW-Authenticate:\n{}", r.describe()));
    assert!(
        www.to_ascii_lowercase().starts_with("bearer"),
        "WWW-Authenticate is {www:?}, expected Bearer"
    );
}

#[test]
fn no_token_is_401_with_json_and_www_authenticate() {
    let d = Daemon::start(&[]);
    let anon = Client::anonymous(&d);
    assert_unauthorized(anon.get("/v1/objects"));
    assert_unauthorized(anon.post("/v1/objects?name=a.txt", Some("text/plain"), b"hello"));
    assert_unauthorized(anon.get("/metrics"));
    assert_unauthorized(anon.get("/v1/objects/0190a5d1-ac96-774b-bcce-b302099a8057"));
    // And nothing was stored by the refused upload.
    let list = Client::new(&d).get("/v1/objects").expect_json(200);
    assert_eq!(list["objects"].as_array().map(Vec::len), Some(0), "{list}");
}

#[test]
fn wrong_or_malformed_token_is_401() {
    let d = Daemon::start(&[]);
    for auth in [
        format!("Bearer {}x", d.token()),
        "Bearer ".to_string(),
        "Bearer not-the-token".to_string(),
        format!("Basic {}", d.token()),
        d.token().to_string(),
    ] {
        let c = Client::with_authorization(&d, &auth);
        assert_unauthorized(c.get("/v1/objects"));
    }
    // The right one works.
    Client::new(&d).get("/v1/objects").expect(200);
}

#[test]
fn token_file_mode_0600_and_stable_across_restart() {
    let mut d = Daemon::start(&[]);
    let path = d.data_dir().join("admin.token");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "admin.token mode {:o}",
        meta.permissions().mode()
    );
    let token = std::fs::read_to_string(&path).unwrap();
    assert!(!token.is_empty(), "empty token");
    assert!(
        !token.ends_with('\n') && !token.ends_with('\r'),
        "token file has a trailing newline: {token:?}"
    );
    assert!(
        token.bytes().all(|b| b.is_ascii_graphic()),
        "token has non-printable bytes: {token:?}"
    );
    Client::new(&d).get("/v1/objects").expect(200);

    d.restart();
    assert_eq!(d.token(), token.trim(), "token changed across a restart");
    Client::new(&d).get("/v1/objects").expect(200);
}

#[test]
fn healthz_is_public() {
    let d = Daemon::start(&[]);
    Client::anonymous(&d).get("/healthz").expect(200);
    Client::new(&d).get("/healthz").expect(200);
}

#[test]
fn anonymous_read_opens_get_and_head_only() {
    let d = Daemon::start(&["--anonymous", "read"]);
    let admin = Client::new(&d);
    let anon = Client::anonymous(&d);
    let obj = admin.upload("r.txt", None, Some("text/plain"), b"readable");
    let id = id_of(&obj);

    anon.get("/v1/objects").expect(200);
    anon.get(&format!("/v1/objects/{id}")).expect(200);
    let r = anon.get(&format!("/v1/objects/{id}/content")).expect(200);
    assert_eq!(r.body, b"readable");
    anon.head(&format!("/v1/objects/{id}/content")).expect(200);

    assert_unauthorized(anon.post("/v1/objects?name=b.txt", Some("text/plain"), b"nope"));
    assert_unauthorized(anon.patch_json(
        &format!("/v1/objects/{id}"),
        &serde_json::json!({"name": "x"}),
    ));
    assert_unauthorized(anon.delete(&format!("/v1/objects/{id}")));
    assert_unauthorized(anon.put(&format!("/v1/objects/{id}/content"), None, b"x"));

    // A wrong token is refused even where anonymous access is allowed.
    assert_unauthorized(Client::with_authorization(&d, "Bearer wrong").get("/v1/objects"));
    // The admin token still writes.
    admin.upload("c.txt", None, Some("text/plain"), b"ok");
}

#[test]
fn anonymous_write_opens_everything() {
    let d = Daemon::start(&["--anonymous", "write"]);
    let anon = Client::anonymous(&d);
    let obj = anon.upload(
        "w.txt",
        Some("anon"),
        Some("text/plain"),
        b"written anonymously",
    );
    let id = id_of(&obj);
    anon.get(&format!("/v1/objects/{id}")).expect(200);
    anon.patch_json(
        &format!("/v1/objects/{id}"),
        &serde_json::json!({"name": "w2.txt"}),
    )
    .expect(200);
    anon.delete(&format!("/v1/objects/{id}")).expect(204);
    assert_unauthorized(Client::with_authorization(&d, "Bearer wrong").get("/v1/objects"));
    assert_unauthorized(Client::with_authorization(&d, "Bearer wrong").post(
        "/v1/objects?name=x",
        None,
        b"x",
    ));
}
