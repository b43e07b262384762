//! The service layer's guarantees seen from a client: a panicking handler costs one
//! 500 and leaves the worker serving; non-HTTP bytes are refused at once; bodies that
//! trickle are cut; one address cannot take every connection; listings stay small
//! whatever text they hold; public routes ignore credentials they do not need; path
//! parameters are percent-decoded strictly; a writer panic fails one batch; a lost
//! object heals when its bytes come back.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::checks::id_of;
use crate::common::raw::request;
use crate::common::util::metric_sum;
use crate::common::{Client, Daemon, RawConn};

#[test]
fn a_panicking_handler_leaves_the_worker_serving() {
    let mut d = Daemon::start_with_env(&["--workers", "1"], &[("RINGBOX_TEST_HOOKS", "1")]);
    d.allow_panics();
    let c = Client::new(&d);
    let obj = c.upload("k.txt", None, Some("text/plain"), b"kept");
    // An idle keep-alive connection on the same (only) worker.
    let mut idle = RawConn::connect(d.addr());
    idle.send(&request("GET", "/healthz", &[], b""));
    idle.read_response().expect(200);

    let auth = format!("Bearer {}", d.token());
    let mut victim = RawConn::connect(d.addr());
    victim.send(&request(
        "POST",
        "/v1/_debug/panic",
        &[("Authorization", &auth)],
        b"",
    ));
    let r = victim.read_response();
    let r = r.expect_error(500, "internal");
    assert!(
        r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "{}",
        r.describe()
    );
    victim.expect_closed(Duration::from_secs(5)).unwrap();

    // The idle connection and new ones are still served by the same worker.
    idle.send(&request(
        "GET",
        &format!("/v1/objects/{}/content", id_of(&obj)),
        &[("Authorization", &auth)],
        b"",
    ));
    let r = idle.read_response().expect(200);
    assert_eq!(r.body, b"kept");
    c.get("/healthz").expect(200);
    let m = c.metrics();
    assert_eq!(
        metric_sum(&m, "ringbox_panics_total", &[("where", "handler")]),
        1.0
    );
    d.assert_alive();
}

#[test]
fn non_http_bytes_are_refused_at_once() {
    let d = Daemon::start(&[]);
    // The first bytes of a TLS 1.2 ClientHello, then binary garbage.
    for first in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"\x00\x01\x02\x03",
    ] {
        let mut conn = RawConn::connect(d.addr());
        let started = Instant::now();
        conn.send(first);
        let r = conn.read_response();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "answered after {:?}",
            started.elapsed()
        );
        r.expect_error(400, "bad_request");
        conn.expect_closed(Duration::from_secs(3)).unwrap();
    }
    // A request that arrives slowly is still fine.
    let mut conn = RawConn::connect(d.addr());
    conn.send(b"GE");
    std::thread::sleep(Duration::from_millis(200));
    conn.send(b"T /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    conn.read_response().expect(200);
}

#[test]
fn a_trickling_body_is_cut_off() {
    let d = Daemon::start(&["--min-body-rate", "1KiB", "--body-timeout", "30s"]);
    let auth = format!("Bearer {}", d.token());
    let mut conn = RawConn::connect(d.addr());
    conn.send(
        format!(
            "POST /v1/objects?name=slow.bin HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 100000\r\n\r\n"
        )
        .as_bytes(),
    );
    // One byte every half second: far below 1 KiB/s. The daemon must end it soon after
    // the 10 s grace, long before the 30 s body timeout.
    let started = Instant::now();
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(25) {
        if conn.stream.write_all(b"x").is_err() {
            cut = true;
            break;
        }
        conn.stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut b = [0u8; 1];
        match std::io::Read::read(&mut conn.stream, &mut b) {
            Ok(_) => {
                cut = true;
                break;
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    assert!(cut, "the trickle was not cut within {elapsed:?}");
    assert!(
        elapsed >= Duration::from_secs(9) && elapsed < Duration::from_secs(20),
        "cut after {elapsed:?}; expected shortly after the 10 s grace"
    );
    // Nothing was stored.
    let list = Client::new(&d).get("/v1/objects").expect_json(200);
    assert_eq!(list["objects"].as_array().unwrap().len(), 0, "{list}");
}

#[test]
fn one_address_cannot_take_every_connection() {
    let d = Daemon::start(&["--max-connections-per-ip", "3"]);
    let mut held: Vec<RawConn> = (0..3)
        .map(|_| {
            let mut c = RawConn::connect(d.addr());
            c.send(&request("GET", "/healthz", &[], b""));
            c.read_response().expect(200);
            c
        })
        .collect();
    let mut extra = RawConn::connect(d.addr());
    let _ = extra.try_send(&request("GET", "/healthz", &[], b""));
    extra.expect_closed(Duration::from_secs(5)).unwrap();
    // Freeing a slot lets the next one in.
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = RawConn::connect(d.addr());
        if again
            .try_send(&request("GET", "/healthz", &[], b""))
            .is_ok()
        {
            if let Ok(r) = again.try_read_response(false) {
                r.expect(200);
                break;
            }
        }
        assert!(Instant::now() < deadline, "no slot came free");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Free the slots (the daemon releases them as it sees the closes), then look.
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let m = Client::new(&d).metrics();
    assert!(metric_sum(&m, "ringbox_connections_refused_per_ip_total", &[]) >= 1.0);
}

#[test]
fn listings_cut_long_text_but_objects_keep_it() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let long = "é".repeat(5000);
    let obj = c.create_text("long.txt", Some("notes"), &long);
    c.create_text("short.txt", Some("notes"), "brief");
    let list = c.get("/v1/objects?namespace=notes").expect_json(200);
    let objs = list["objects"].as_array().unwrap();
    let listed = objs.iter().find(|o| o["name"] == "long.txt").unwrap();
    let preview = listed["content"].as_str().unwrap();
    assert!(
        preview.len() <= 256 && long.starts_with(preview),
        "{preview:?}"
    );
    assert_eq!(listed["content_truncated"], true);
    let short = objs.iter().find(|o| o["name"] == "short.txt").unwrap();
    assert_eq!(short["content"], "brief");
    assert!(short.get("content_truncated").is_none());
    assert_eq!(c.object(&id_of(&obj))["content"], long.as_str());
}

#[test]
fn public_routes_ignore_credentials_they_do_not_need() {
    let d = Daemon::start(&[]);
    for auth in [
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-token",
        "Digest x",
        "eyJhbGciOi.x.y",
    ] {
        Client::with_authorization(&d, auth)
            .get("/healthz")
            .expect(200);
    }
    // With --anonymous read, a Basic header (not ours) is simply anonymous.
    let d = Daemon::start(&["--anonymous", "read"]);
    Client::with_authorization(&d, "Basic dXNlcjpwYXNz")
        .get("/v1/objects")
        .expect(200);
}

#[test]
fn path_parameters_are_decoded_strictly() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let obj = c.upload("p.txt", None, Some("text/plain"), b"x");
    let id = id_of(&obj);
    // An encoded id is the same id.
    let enc: String = id.replace('-', "%2D");
    c.get(&format!("/v1/objects/{enc}")).expect(200);
    c.get("/v1/objects/%ZZ").expect_error(400, "bad_request");
    c.get("/v1/objects/%+1").expect_error(400, "bad_request");
    c.get("/v1/objects/%C3%28").expect_error(400, "bad_request");
    let m = c.metrics();
    assert!(
        m.iter().any(|s| s.name == "ringbox_requests_total"
            && s.label("api") == Some("native")
            && s.label("route") == Some("/v1/objects/{id}")),
        "no (api, route) labels"
    );
}

#[test]
fn a_writer_panic_fails_one_batch_and_the_writer_goes_on() {
    let mut d = Daemon::start_with_env(&[], &[("RINGBOX_TEST_HOOKS", "1")]);
    d.allow_panics();
    let c = Client::new(&d);
    let before = c.upload("before.txt", None, Some("text/plain"), b"before");
    let r = c.post("/v1/_debug/writer-panic", None, b"");
    r.expect_error_status(500);
    // Later writes and reads work, earlier data is intact.
    let after = c.upload("after.txt", None, Some("text/plain"), b"after");
    assert_eq!(c.content(&id_of(&after)).expect(200).body, b"after");
    assert_eq!(c.content(&id_of(&before)).expect(200).body, b"before");
    let m = c.metrics();
    assert_eq!(
        metric_sum(&m, "ringbox_panics_total", &[("where", "writer")]),
        1.0
    );
    d.assert_alive();
}

#[test]
fn a_lost_object_heals_when_its_bytes_come_back() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let data = b"bytes that will vanish and come back".to_vec();
    let obj = c.upload("heal.bin", None, Some("application/octet-stream"), &data);
    let id = id_of(&obj);
    c.content(&id).expect(200);
    let sha = obj["sha256"].as_str().unwrap();
    std::fs::remove_file(d.data_dir().join("blobs").join(&sha[..2]).join(sha)).unwrap();
    // Noticed on the very next request, although the blob was cached.
    c.content(&id).expect_error(410, "lost");
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.object(&id)["state"] != "lost" {
        assert!(Instant::now() < deadline, "never marked lost");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The same bytes uploaded again (as another object) bring the file back.
    c.upload("again.bin", None, Some("application/octet-stream"), &data);
    assert_eq!(c.content(&id).expect(200).body, data);
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.object(&id)["state"] != "stored" {
        assert!(Instant::now() < deadline, "never healed");
        std::thread::sleep(Duration::from_millis(20));
    }
}
