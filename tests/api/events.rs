//! The change feed: pages of events, WebSocket subscriptions (replay then live, in
//! order, no gaps or duplicates; slow clients cut off; 1001 at shutdown), webhooks
//! (signed, `Content-Length`, at least once across a receiver outage and a restart;
//! SSRF guard), and the sequence after kill -9.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use crate::common::checks::id_of;
use crate::common::{Client, Daemon};

fn add_user(d: &Daemon, name: &str) -> String {
    Client::new(d)
        .post_json(
            "/v1/users",
            &json!({"username": name, "password": "a password"}),
        )
        .expect_json(201)["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn bearer(d: &Daemon, token: &str) -> Client {
    Client::with_authorization(d, &format!("Bearer {token}"))
}

fn page(c: &Client, q: &str) -> Value {
    c.get(&format!("/v1/events{q}")).expect_json(200)
}

fn types(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// A WebSocket to `/v1/events?{query}` (the token in the query string, as browsers do).
fn subscribe(d: &Daemon, query: &str) -> WebSocket<TcpStream> {
    let url = format!("ws://{}/v1/events?{query}", d.addr());
    let req = url.into_client_request().unwrap();
    let stream = TcpStream::connect(d.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (ws, resp) = tungstenite::client::client(req, stream).unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

fn next_event(ws: &mut WebSocket<TcpStream>) -> Value {
    loop {
        match ws.read().unwrap() {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected message {other:?}"),
        }
    }
}

#[test]
fn pages_of_events_in_order_with_filters_and_visibility() {
    let d = Daemon::start(&[]);
    let admin = Client::new(&d);
    let alice = bearer(&d, &add_user(&d, "alice"));
    let bob = bearer(&d, &add_user(&d, "bob"));
    let obj = alice.upload("a.txt", Some("docs"), Some("text/plain"), b"one");
    let id = id_of(&obj);
    alice
        .patch_json(
            &format!("/v1/objects/{id}"),
            &json!({"name": "b.txt", "tags": ["x"]}),
        )
        .expect(200);
    alice
        .put(&format!("/v1/objects/{id}/content"), None, b"two")
        .expect(200);
    bob.upload("bob.txt", Some("other"), Some("text/plain"), b"bob");
    alice.delete(&format!("/v1/objects/{id}")).expect(204);

    // The admin sees everything, with gap-free sequence numbers from 1.
    let all = page(&admin, "?since=0");
    let seqs: Vec<u64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        types(&all),
        [
            "user.created",
            "user.created",
            "object.created",
            "object.updated",
            "object.content_set",
            "object.created",
            "object.deleted"
        ]
    );
    let updated = &all["events"][3];
    assert_eq!(updated["changes"]["name"], "b.txt");
    assert_eq!(updated["changes"]["old_name"], "a.txt");
    assert_eq!(updated["object"]["id"], id.as_str());
    assert!(updated["actor"].as_str().unwrap().len() > 10);
    // Alice sees her account and her object's events only; Bob his.
    assert_eq!(
        types(&page(&alice, "?since=0")),
        [
            "user.created",
            "object.created",
            "object.updated",
            "object.content_set",
            "object.deleted"
        ]
    );
    assert_eq!(
        types(&page(&bob, "?since=0")),
        ["user.created", "object.created"]
    );
    // Filters, paging, next_since.
    assert_eq!(types(&page(&admin, "?types=object.created")).len(), 2);
    assert_eq!(types(&page(&admin, "?types=user")).len(), 2);
    assert_eq!(types(&page(&admin, "?namespace=other")), ["object.created"]);
    let first = page(&admin, "?since=0&limit=2");
    assert_eq!(first["events"].as_array().unwrap().len(), 2);
    let next = first["next_since"].as_u64().unwrap();
    assert_eq!(
        page(&admin, &format!("?since={next}"))["events"][0]["seq"],
        next + 1
    );
    admin
        .get("/v1/events?since=abc")
        .expect_error(400, "bad_request");
}

#[test]
fn trimmed_events_answer_410_with_the_oldest_kept() {
    let d = Daemon::start(&["--events-max", "5"]);
    let c = Client::new(&d);
    for i in 0..12 {
        c.create_text(&format!("t{i}"), None, "x");
    }
    let r = c
        .get("/v1/events?since=0")
        .expect_error(410, "events_trimmed");
    assert!(r.text().contains("since="), "{}", r.describe());
    let kept = page(&c, "?since=7");
    assert_eq!(kept["events"].as_array().unwrap().len(), 5);
}

#[test]
fn subscribers_get_the_replay_then_live_events_without_gaps() {
    let d = Daemon::start(&["--workers", "2"]);
    let c = Client::new(&d);
    for i in 0..5 {
        c.create_text(&format!("before{i}"), Some("ws"), "x");
    }
    let token = d.token().to_string();
    let n_subs = 40;
    let n_live = 120;
    let mut subs: Vec<_> = (0..n_subs)
        .map(|_| subscribe(&d, &format!("since=0&types=object&token={token}")))
        .collect();
    let writer = {
        let addr = d.addr();
        let token = token.clone();
        std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new().build();
            for i in 0..n_live {
                agent
                    .post(&format!("http://{addr}/v1/objects"))
                    .set("Authorization", &format!("Bearer {token}"))
                    .set("Content-Type", "application/json")
                    .send_string(
                        &json!({"type":"text","content":"x","name":format!("live{i}")}).to_string(),
                    )
                    .unwrap();
            }
        })
    };
    for ws in subs.iter_mut() {
        let mut last = 0;
        let mut names = Vec::new();
        while names.len() < 5 + n_live {
            let ev = next_event(ws);
            let seq = ev["seq"].as_u64().unwrap();
            assert!(seq > last, "out of order: {seq} after {last}");
            last = seq;
            names.push(ev["object"]["name"].as_str().unwrap().to_string());
        }
        let mut want: Vec<String> = (0..5).map(|i| format!("before{i}")).collect();
        want.extend((0..n_live).map(|i| format!("live{i}")));
        assert_eq!(names, want);
    }
    writer.join().unwrap();
}

#[test]
fn a_subscriber_that_reconnects_with_since_misses_nothing() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let token = d.token().to_string();
    let mut ws = subscribe(&d, &format!("token={token}"));
    c.create_text("one", None, "x");
    let first = next_event(&mut ws);
    let since = first["seq"].as_u64().unwrap();
    drop(ws); // the client dies
    for i in 0..3 {
        c.create_text(&format!("while-away-{i}"), None, "x");
    }
    let mut ws = subscribe(&d, &format!("since={since}&token={token}"));
    c.create_text("after", None, "x");
    let names: Vec<String> = (0..4)
        .map(|_| {
            next_event(&mut ws)["object"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        ["while-away-0", "while-away-1", "while-away-2", "after"]
    );
    // A bearer header works too; a bad token is refused before the switch.
    let mut req = format!("ws://{}/v1/events", d.addr())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (_ws, resp) =
        tungstenite::client::client(req, TcpStream::connect(d.addr()).unwrap()).unwrap();
    assert_eq!(resp.status(), 101);
    let bad = format!("ws://{}/v1/events?token=nope", d.addr())
        .into_client_request()
        .unwrap();
    match tungstenite::client::client(bad, TcpStream::connect(d.addr()).unwrap()) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            assert_eq!(r.status(), 401)
        }
        other => panic!("expected 401, got {:?}", other.map(|(_, r)| r.status())),
    }
}

#[test]
fn a_client_that_never_reads_is_cut_off_while_others_keep_up() {
    let d = Daemon::start(&[
        "--workers",
        "1",
        "--ws-max-queued",
        "16KiB",
        "--durability",
        "none",
    ]);
    let token = d.token().to_string();
    // The slow one: a tiny receive buffer and it never reads.
    let slow = {
        let stream = TcpStream::connect(d.addr()).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        let size: libc::c_int = 4096;
        // SAFETY: setsockopt on a socket we own, with a valid int.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &size as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let req = format!("ws://{}/v1/events?token={token}", d.addr())
            .into_client_request()
            .unwrap();
        tungstenite::client::client(req, stream).unwrap().0
    };
    let mut fast = subscribe(&d, &format!("token={token}"));
    let c = Client::new(&d);
    let long = "y".repeat(250);
    let started = Instant::now();
    let mut got = 0;
    // Each event is about 500 bytes: 2,000 of them overflow the slow client's socket
    // buffers (256 KiB + 4 KiB) and its 16 KiB queue.
    for i in 0..2000 {
        c.post_json(
            "/v1/objects",
            &json!({"type":"text","content":"x","name":format!("e{i}-{long}")}),
        )
        .expect(201);
        while got < i {
            next_event(&mut fast);
            got += 1;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(120));
    // The slow client was closed with 1008 and told where to resume.
    let mut slow = slow;
    slow.get_mut()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut closed = None;
    for _ in 0..100_000 {
        match slow.read() {
            Ok(Message::Close(f)) => {
                closed = f;
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let frame = closed.expect("the slow client was not sent a close frame");
    assert_eq!(u16::from(frame.code), 1008);
    assert!(frame.reason.contains("since="), "{}", frame.reason);
}

#[test]
fn shutdown_closes_subscriptions_with_1001() {
    let mut d = Daemon::start(&[]);
    let mut ws = subscribe(&d, &format!("token={}", d.token()));
    d.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => {
                assert_eq!(u16::from(f.code), 1001);
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("no close frame: {e}"),
        }
        assert!(Instant::now() < deadline);
    }
    assert!(d.wait_exit(Duration::from_secs(10)).is_some());
}

/// A received request: its headers (lower-cased names) and body.
type Received = (Vec<(String, String)>, Vec<u8>);

/// A minimal HTTP receiver: records each request's head and body; answers `status`.
struct Receiver {
    addr: std::net::SocketAddr,
    rx: mpsc::Receiver<Received>,
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
}

fn receiver(listener: TcpListener, status: u16) -> Receiver {
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(status));
    let st = status.clone();
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
            let code = st.load(std::sync::atomic::Ordering::SeqCst);
            let _ = write!(
                conn,
                "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if tx.send((headers, body)).is_err() {
                return;
            }
        }
    });
    Receiver { addr, rx, status }
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

#[test]
fn webhooks_are_signed_and_delivered_at_least_once_across_outages() {
    let mut d = Daemon::start(&["--webhook-allow-private"]);
    let c = Client::new(&d);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let rec = receiver(listener, 200);
    let hook = c
        .post_json(
            "/v1/webhooks",
            &json!({"url": format!("http://{}/hook", rec.addr), "events": ["object.created"]}),
        )
        .expect_json(201);
    let secret = hook["secret"].as_str().unwrap().to_string();
    let id = hook["id"].as_str().unwrap().to_string();
    let started = Instant::now();
    let hooked = c.create_text("hooked", None, "x");
    let (headers, body) = rec.rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let h = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(h("x-ringbox-event").as_deref(), Some("object.created"));
    assert!(h("x-ringbox-delivery").is_some());
    assert!(h("content-length").is_some() && h("transfer-encoding").is_none());
    assert_eq!(h("content-type").as_deref(), Some("application/json"));
    assert_eq!(
        h("x-ringbox-signature").unwrap(),
        format!("sha256={}", hmac_hex(&secret, &body))
    );
    let ev: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(ev["object"]["name"], "hooked");
    // Other event types are not sent.
    c.patch_json(
        &format!("/v1/objects/{}", id_of(&hooked)),
        &json!({"tags": ["t"]}),
    )
    .expect(200);
    // The receiver fails for a while: retries, then everything arrives, in order,
    // also across a restart of ringbox in the middle.
    rec.status.store(503, std::sync::atomic::Ordering::SeqCst);
    c.create_text("during-outage-1", None, "x");
    let (_, b) = rec.rx.recv_timeout(Duration::from_secs(10)).unwrap(); // a failed attempt
    assert!(String::from_utf8_lossy(&b).contains("during-outage-1"));
    d.restart();
    let c = Client::new(&d);
    c.create_text("during-outage-2", None, "x");
    rec.status.store(200, std::sync::atomic::Ordering::SeqCst);
    let mut delivered = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while delivered.len() < 2 && Instant::now() < deadline {
        if let Ok((_, b)) = rec.rx.recv_timeout(Duration::from_secs(1)) {
            let v: Value = serde_json::from_slice(&b).unwrap();
            let name = v["object"]["name"].as_str().unwrap().to_string();
            if delivered.last() != Some(&name) {
                delivered.push(name);
            }
        }
    }
    assert_eq!(delivered, ["during-outage-1", "during-outage-2"]);
    let log = c
        .get(&format!("/v1/webhooks/{id}/deliveries"))
        .expect_json(200);
    let statuses: Vec<Value> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].clone())
        .collect();
    assert!(
        statuses.contains(&json!(503)) && statuses.contains(&json!(200)),
        "{log}"
    );
    // Another user cannot see or delete the hook.
    let other = bearer(&d, &add_user(&d, "other"));
    other
        .get(&format!("/v1/webhooks/{id}"))
        .expect_error(404, "not_found");
    assert_eq!(
        other.get("/v1/webhooks").expect_json(200)["webhooks"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    c.delete(&format!("/v1/webhooks/{id}")).expect(204);
}

#[test]
fn webhook_targets_are_checked() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    for url in [
        "http://127.0.0.1:9/x",
        "http://10.0.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "ftp://example.com/",
        "not a url",
    ] {
        c.post_json("/v1/webhooks", &json!({"url": url, "events": []}))
            .expect_error(400, "bad_request");
    }
}

#[test]
fn after_kill_9_the_event_sequence_matches_the_committed_changes() {
    let mut d = Daemon::start(&[]);
    let addr = d.addr();
    let token = d.token().to_string();
    let (tx, rx) = mpsc::channel();
    let writer = std::thread::spawn(move || {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(5))
            .build();
        for i in 0.. {
            let r = agent
                .post(&format!("http://{addr}/v1/objects?name=k{i}.bin"))
                .set("Authorization", &format!("Bearer {token}"))
                .send_bytes(format!("payload {i}").as_bytes());
            match r {
                Ok(resp) if resp.status() == 201 => {
                    let v: Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
                    if tx.send(v["id"].as_str().unwrap().to_string()).is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    });
    std::thread::sleep(Duration::from_millis(800));
    d.kill();
    writer.join().unwrap();
    let acked: Vec<String> = rx.try_iter().collect();
    assert!(!acked.is_empty());
    d.restart_after_kill();
    let c = Client::new(&d);
    let mut events = Vec::new();
    let mut since = 0;
    loop {
        let p = page(&c, &format!("?since={since}&limit=1000"));
        let evs = p["events"].as_array().unwrap().clone();
        if evs.is_empty() {
            break;
        }
        since = p["next_since"].as_u64().unwrap();
        events.extend(evs);
    }
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gap in the sequence"
    );
    let created: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "object.created")
        .map(|e| e["object"]["id"].as_str().unwrap().to_string())
        .collect();
    // Every acknowledged upload has its event; every event's object exists.
    for id in &acked {
        assert!(created.contains(id), "no event for acknowledged {id}");
    }
    for id in &created {
        c.get(&format!("/v1/objects/{id}")).expect(200);
    }
}

/// The full size: 1,000 subscribers each receive every one of 10,000 events in
/// order. Long: `cargo test -p ringbox --test api stress_ -- --ignored`.
#[test]
#[ignore = "long: run in the stress step"]
fn stress_thousand_subscribers_get_every_event_in_order() {
    let d = Daemon::start(&["--durability", "none", "--max-connections-per-ip", "0"]);
    let token = d.token().to_string();
    let n_subs = 1000;
    let n_events = 10_000u64;
    let readers: Vec<_> = (0..n_subs)
        .map(|_| {
            let mut ws = subscribe(&d, &format!("types=object.created&token={token}"));
            std::thread::spawn(move || {
                let mut last = 0;
                for _ in 0..n_events {
                    let ev = next_event(&mut ws);
                    let seq = ev["seq"].as_u64().unwrap();
                    assert!(seq > last, "out of order");
                    last = seq;
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let addr = d.addr();
            let token = token.clone();
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                for i in 0..n_events / 4 {
                    agent
                        .post(&format!("http://{addr}/v1/objects"))
                        .set("Authorization", &format!("Bearer {token}"))
                        .set("Content-Type", "application/json")
                        .send_string(
                            &json!({"type":"text","content":"x","name":format!("s{w}-{i}")})
                                .to_string(),
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    for r in readers {
        r.join().unwrap();
    }
}
