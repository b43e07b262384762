//! Expiry through real sockets: ttl on upload (query, form field, JSON), invisible at
//! once (404 everywhere, gone from listings and collections) before the sweeper runs,
//! `PATCH` of `expires_at`, default ttls (global and per namespace), not-accessed expiry
//! (global, per namespace, downloads keep an object alive), and the sweeper deleting in
//! bounded batches with `object.deleted` events and the blobs collected. The large
//! runs (100,000 objects with write latencies measured, 1M objects) are `stress_*`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::checks::{assert_time_millis_z, id_of};
use crate::common::util::{metric_sum, now_unix_ms, poll, Multipart};
use crate::common::{Client, Daemon};

fn expires_at(v: &Value) -> i64 {
    assert_time_millis_z(
        v["expires_at"]
            .as_str()
            .unwrap_or_else(|| panic!("no expires_at in {v}")),
    )
}

fn listed(c: &Client, q: &str) -> Vec<String> {
    let v = c.get(&format!("/v1/objects?{q}")).expect_json(200);
    v["objects"].as_array().unwrap().iter().map(id_of).collect()
}

/// Polls until `GET /v1/objects/{id}` as admin is 404 and the object's `object.deleted`
/// event (from the sweeper) is in the log; returns the event.
fn wait_swept(admin: &Client, id: &str, timeout: Duration) -> Value {
    poll(timeout, || {
        let v = admin
            .get("/v1/events?types=object.deleted&limit=1000")
            .expect_json(200);
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["object"]["id"] == id)
            .cloned()
    })
    .unwrap_or_else(|| panic!("object {id} was never swept"))
}

#[test]
fn ttl_on_upload_makes_objects_invisible_at_once_then_swept() {
    let d = Daemon::start(&[]);
    let admin = Client::new(&d);
    let t0 = now_unix_ms();
    // Raw body with ?ttl=, JSON with "ttl", a form with a ttl field before the file.
    let raw = admin
        .post(
            "/v1/objects?name=raw.bin&namespace=tmp&ttl=2s",
            Some("application/octet-stream"),
            b"raw bytes",
        )
        .expect_json(201);
    let text = admin
        .post_json(
            "/v1/objects",
            &json!({"type": "text", "content": "bye", "namespace": "tmp", "ttl": "2s"}),
        )
        .expect_json(201);
    let form = Multipart::new()
        .field("namespace", "tmp")
        .field("ttl", "2s")
        .file("file", "form.bin", None, b"form bytes")
        .field("ttl", "1h")
        .file("file", "later.bin", None, b"lives an hour");
    let v = admin
        .post("/v1/objects", Some(&form.content_type()), &form.body())
        .expect_json(201);
    let (formed, hour) = (v["objects"][0].clone(), v["objects"][1].clone());
    let keep = admin.upload("keep.bin", Some("tmp"), None, b"no ttl");
    for o in [&raw, &text, &formed] {
        let at = expires_at(o);
        assert!((t0 + 1500..=now_unix_ms() + 2500).contains(&at), "{o}");
    }
    assert!(expires_at(&hour) > now_unix_ms() + 3_000_000);
    assert!(keep["expires_at"].is_null());
    let gone = [id_of(&raw), id_of(&text), id_of(&formed)];
    let c = admin
        .post_json("/v1/collections", &json!({"name": "c"}))
        .expect_json(201);
    let cid = id_of(&c);
    admin
        .post_json(
            &format!("/v1/collections/{cid}/objects"),
            &json!({"object_ids": [gone[0], id_of(&keep)]}),
        )
        .expect(200);
    // Invalid ttls are 400 before anything is stored.
    for bad in ["/v1/objects?name=x&ttl=soon", "/v1/objects?name=x&ttl=5y"] {
        admin.post(bad, None, b"x").expect_error(400, "invalid_ttl");
    }
    assert_eq!(listed(&admin, "namespace=tmp").len(), 5);

    // Past the expiry: invisible everywhere at once (the sweeper may not have run).
    let wait = gone
        .iter()
        .zip([&raw, &text, &formed])
        .map(|(_, o)| expires_at(o))
        .max()
        .unwrap()
        - now_unix_ms();
    std::thread::sleep(Duration::from_millis(wait.max(0) as u64 + 20));
    for id in &gone {
        admin
            .get(&format!("/v1/objects/{id}"))
            .expect_error(404, "not_found");
        admin.content(id).expect_error(404, "not_found");
        admin
            .patch_json(&format!("/v1/objects/{id}"), &json!({"name": "revive"}))
            .expect_error(404, "not_found");
        admin
            .post_json("/v1/shares", &json!({"object_id": id}))
            .expect_error(404, "not_found");
    }
    let left = listed(&admin, "namespace=tmp");
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&id_of(&keep)) && left.contains(&id_of(&hour)));
    let members = admin
        .get(&format!("/v1/collections/{cid}/objects"))
        .expect_json(200);
    assert_eq!(members["objects"].as_array().unwrap().len(), 1);

    // Then the sweeper deletes them: events by `system` with the reason, the blobs go.
    for id in &gone {
        let ev = wait_swept(&admin, id, Duration::from_secs(15));
        assert_eq!(ev["actor"], "system");
        assert_eq!(ev["changes"]["reason"], "expired");
    }
    let sha = raw["sha256"].as_str().unwrap();
    let blob = d.data_dir().join("blobs").join(&sha[..2]).join(sha);
    let freed = poll(Duration::from_secs(5), || (!blob.exists()).then_some(()));
    assert!(
        freed.is_some(),
        "the blob of an expired object is still there"
    );
    let c = admin
        .get(&format!("/v1/collections/{cid}"))
        .expect_json(200);
    assert_eq!(c["object_count"], 1);
    admin.object(&id_of(&keep));
}

#[test]
fn patch_sets_and_clears_expires_at() {
    let d = Daemon::start(&[]);
    let admin = Client::new(&d);
    let o = admin.upload("p.bin", None, None, b"patch me");
    let id = id_of(&o);
    let path = format!("/v1/objects/{id}");
    let later = "2099-01-02T03:04:05.678Z";
    let v = admin
        .patch_json(&path, &json!({"expires_at": later}))
        .expect_json(200);
    assert_eq!(v["expires_at"], later);
    let v = admin
        .patch_json(&path, &json!({"expires_at": "2099-01-02T04:04:05+01:00"}))
        .expect_json(200);
    assert_eq!(v["expires_at"], "2099-01-02T03:04:05.000Z");
    let v = admin
        .patch_json(&path, &json!({"expires_at": null}))
        .expect_json(200);
    assert!(v["expires_at"].is_null());
    let v = admin
        .patch_json(&path, &json!({"ttl": "1h"}))
        .expect_json(200);
    assert!(expires_at(&v) > now_unix_ms() + 3_500_000);
    for bad in [
        json!({"expires_at": "tomorrow"}),
        json!({"expires_at": 12}),
        json!({"expires_at": "2099-01-02T03:04:05Z", "ttl": "1h"}),
        json!({"ttl": "1y"}),
    ] {
        let r = admin.patch_json(&path, &bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.describe());
    }
    // A time in the past: gone at once, swept soon.
    admin
        .patch_json(&path, &json!({"expires_at": "2001-01-01T00:00:00Z"}))
        .expect(200);
    admin.get(&path).expect_error(404, "not_found");
    admin.content(&id).expect_error(404, "not_found");
    assert!(listed(&admin, "").is_empty());
    wait_swept(&admin, &id, Duration::from_secs(15));
}

#[test]
fn default_ttls_per_namespace_and_global() {
    let d = Daemon::start(&["--default-ttl", "1h", "--namespace-ttl", "scratch=2s"]);
    let admin = Client::new(&d);
    let now = now_unix_ms();
    let plain = admin.upload("a.bin", None, None, b"default namespace");
    let at = expires_at(&plain);
    assert!((now + 3_590_000..=now + 3_610_000).contains(&at), "{plain}");
    let scratch = admin.upload("b.bin", Some("scratch"), None, b"scratch");
    let at = expires_at(&scratch);
    assert!(at <= now_unix_ms() + 2_100, "{scratch}");
    // An explicit ttl wins over the default.
    let explicit = admin
        .post(
            "/v1/objects?name=c.bin&namespace=scratch&ttl=1h",
            None,
            b"explicit",
        )
        .expect_json(201);
    assert!(expires_at(&explicit) > now_unix_ms() + 3_000_000);
    let text = admin
        .post_json(
            "/v1/objects",
            &json!({"type": "text", "content": "t", "namespace": "scratch"}),
        )
        .expect_json(201);
    assert!(expires_at(&text) <= now_unix_ms() + 2_100);
    wait_swept(&admin, &id_of(&scratch), Duration::from_secs(15));
    wait_swept(&admin, &id_of(&text), Duration::from_secs(5));
    admin.object(&id_of(&plain));
    admin.object(&id_of(&explicit));
}

#[test]
fn objects_not_downloaded_expire_and_downloads_keep_them() {
    let d = Daemon::start(&[
        "--expire-unaccessed",
        "4s",
        "--namespace-expire-unaccessed",
        "keep=off",
        "--namespace-expire-unaccessed",
        "fast=2s",
    ]);
    let admin = Client::new(&d);
    let idle = id_of(&admin.upload("idle.bin", None, None, b"nobody reads me"));
    let busy = id_of(&admin.upload("busy.bin", None, None, b"read every second"));
    let kept = id_of(&admin.upload("kept.bin", Some("keep"), None, b"exempt"));
    let fast = id_of(&admin.upload("fast.bin", Some("fast"), None, b"2s rule"));
    let started = Instant::now();
    // `fast` goes first (2 s), `idle` after 4 s; `busy` is downloaded every 500 ms.
    let mut fast_gone = None;
    let mut idle_gone = None;
    while started.elapsed() < Duration::from_secs(12) && idle_gone.is_none() {
        admin.content(&busy).expect(200);
        if fast_gone.is_none() && admin.get(&format!("/v1/objects/{fast}")).status == 404 {
            fast_gone = Some(started.elapsed());
        }
        if admin.get(&format!("/v1/objects/{idle}")).status == 404 {
            idle_gone = Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let fast_gone = fast_gone.expect("the 2s namespace rule never applied");
    let idle_gone = idle_gone.expect("the idle object was never removed");
    assert!(fast_gone >= Duration::from_millis(1500), "{fast_gone:?}");
    assert!(idle_gone >= Duration::from_millis(3500), "{idle_gone:?}");
    let ev = wait_swept(&admin, &idle, Duration::from_secs(2));
    assert_eq!(ev["changes"]["reason"], "not_accessed");
    assert_eq!(ev["actor"], "system");
    admin.object(&busy);
    admin.object(&kept);
    assert!(admin.object(&busy)["downloads"].as_u64().unwrap() >= 1);
}

/// Upload `n` small objects with `ttl` in forms of up to 1,000 parts each (one group
/// commit per form), each with its own content; returns how long it took.
pub fn upload_many(c: &Client, n: usize, ttl: &str, ns: &str) -> Duration {
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let k = (n - done).min(998); // 1,000 parts per request, two are fields
        let mut form = Multipart::new().field("namespace", ns).field("ttl", ttl);
        for i in 0..k {
            // Each its own bytes (and blob), as real uploads.
            let body = format!("tiny {ns} {}", done + i);
            form = form.file("file", &format!("f{}.bin", done + i), None, body.as_bytes());
        }
        let v = c
            .post("/v1/objects", Some(&form.content_type()), &form.body())
            .expect_json(201);
        assert_eq!(v["objects"].as_array().unwrap().len(), k);
        done += k;
    }
    started.elapsed()
}

fn metric(c: &Client, name: &str) -> f64 {
    metric_sum(&c.metrics(), name, &[])
}

/// Sweeps `n` objects and checks it happened in rounds of at most `batch`.
fn sweep_in_bounded_batches(n: usize, batch: usize, timeout: Duration) {
    let batch_arg = batch.to_string();
    let d = Daemon::start(&["--durability", "none", "--sweep-batch", &batch_arg]);
    let admin = Client::new(&d);
    let took = upload_many(&admin, n, "1s", "bulk");
    eprintln!("uploaded {n} objects in {took:?}");
    let done = poll(timeout, || {
        (metric(&admin, "ringbox_expired_objects_total") >= n as f64).then_some(())
    });
    assert!(
        done.is_some(),
        "only {} of {n} swept",
        metric(&admin, "ringbox_expired_objects_total")
    );
    let rounds = metric(&admin, "ringbox_expiry_rounds_total");
    let biggest = metric(&admin, "ringbox_expiry_round_max_items");
    eprintln!("swept {n} objects in {rounds} rounds, the largest {biggest} items");
    assert!(biggest <= batch as f64, "a round handled {biggest} items");
    assert!(
        rounds >= (n / batch) as f64,
        "{rounds} rounds for {n} objects"
    );
    assert!(listed(&admin, "namespace=bulk&limit=10").is_empty());
    assert_eq!(
        Client::new(&d).get("/v1/users/me").expect_json(200)["object_count"],
        0
    );
}

#[test]
fn the_sweeper_deletes_in_bounded_batches() {
    sweep_in_bounded_batches(10_000, 250, Duration::from_secs(120));
}

#[test]
#[ignore]
fn stress_sweep_of_a_million_objects_in_bounded_batches() {
    sweep_in_bounded_batches(1_000_000, 100, Duration::from_secs(3600));
}

/// Small uploads of 4 clients until `stop` is set: their latencies, sorted.
fn writers(d: &Daemon, stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<Vec<Duration>>> {
    (0..4)
        .map(|t| {
            let c = Client::new(d);
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    c.post(
                        &format!("/v1/objects?name=w{t}-{i}.bin&namespace=writers"),
                        None,
                        format!("a small upload {t} {i}").as_bytes(),
                    )
                    .expect(201);
                    lat.push(t0.elapsed());
                    i += 1;
                }
                lat
            })
        })
        .collect()
}

fn report(label: &str, threads: Vec<std::thread::JoinHandle<Vec<Duration>>>, took: Duration) {
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    let p = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    eprintln!(
        "{label}: {} uploads in {took:.1?} ({:.0}/s), p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        all.len(),
        all.len() as f64 / took.as_secs_f64(),
        p(0.5),
        p(0.99),
        all[all.len() - 1]
    );
}

/// The latency of other clients' small uploads (4 clients, default fsync durability)
/// while 100,000 expired objects (each with its own blob) are swept, against the same
/// uploads with nothing to sweep. Prints the figures quoted in `tuning.md`. The bulk is
/// uploaded by a first daemon without fsync (to save time), then the measuring daemon
/// runs on the same data with the default durability.
#[test]
#[ignore]
fn stress_write_latency_during_a_sweep_of_100k() {
    let n: usize = std::env::var("RINGBOX_SWEEP_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let ttl_secs: u64 = std::env::var("RINGBOX_SWEEP_TTL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(180);
    let dir = tempfile::tempdir().unwrap();
    let mut bulk = Daemon::start_in(dir.path(), &["--durability", "none"]);
    let took = upload_many(&Client::new(&bulk), n, &format!("{ttl_secs}s"), "bulk");
    let expiry = Instant::now() + Duration::from_secs(ttl_secs) - took;
    eprintln!("uploaded {n} objects with a {ttl_secs}s ttl in {took:.1?}");
    bulk.stop();
    // RINGBOX_SWEEP_BATCH compares round sizes (default: the daemon's).
    let batch = std::env::var("RINGBOX_SWEEP_BATCH").ok();
    let mut args = vec![];
    if let Some(b) = &batch {
        args.extend(["--sweep-batch", b.as_str()]);
    }
    eprintln!("sweep batch: {}", batch.as_deref().unwrap_or("default"));
    let d = Daemon::start_in(dir.path(), &args);
    let admin = Client::new(&d);
    // Baseline: until 5 s before the objects expire (at most 20 s).
    let stop = Arc::new(AtomicBool::new(false));
    let base = Instant::now();
    let threads = writers(&d, &stop);
    let until = (expiry - Duration::from_secs(5)).min(base + Duration::from_secs(20));
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
    stop.store(true, Ordering::Relaxed);
    report("baseline (nothing to sweep)", threads, base.elapsed());
    assert_eq!(
        metric(&admin, "ringbox_expired_objects_total"),
        0.0,
        "the sweep started during the baseline: raise RINGBOX_SWEEP_TTL"
    );
    let started = poll(Duration::from_secs(ttl_secs + 60), || {
        (metric(&admin, "ringbox_expired_objects_total") > 0.0).then_some(())
    });
    assert!(started.is_some(), "the sweep never started");
    // During the sweep: from its first round to its last.
    let stop = Arc::new(AtomicBool::new(false));
    let sweep = Instant::now();
    let threads = writers(&d, &stop);
    let done = poll(Duration::from_secs(3600), || {
        (metric(&admin, "ringbox_expired_objects_total") >= n as f64).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let swept_in = sweep.elapsed();
    report("during the sweep", threads, swept_in);
    assert!(done.is_some(), "the sweep did not finish");
    eprintln!(
        "swept {n} objects in {swept_in:.1?} ({} rounds, the largest {} items)",
        metric(&admin, "ringbox_expiry_rounds_total"),
        metric(&admin, "ringbox_expiry_round_max_items")
    );
}
