//! `GET /healthz` (public, JSON) and `GET /metrics` (Prometheus text, counters that move).

use crate::common::checks::id_of;
use crate::common::raw::request;
use crate::common::util::{metric_sum, now_unix_ms, parse_rfc3339, poll, random_bytes, Sample};
use crate::common::{Client, Daemon, RawConn};
use std::time::Duration;

#[test]
fn healthz_shape() {
    let d = Daemon::start(&[]);
    let r = Client::anonymous(&d).get("/healthz").expect(200);
    let ct = r.must_header("content-type").to_ascii_lowercase();
    assert!(
        ct.starts_with("application/json"),
        "healthz content type {ct:?}"
    );
    let v = r.json();
    assert_eq!(v["status"], "ok", "{v}");
    let t = v["time"]
        .as_str()
        .unwrap_or_else(|| panic!("no time in {v}"));
    let p = parse_rfc3339(t).unwrap_or_else(|| panic!("time is not RFC 3339: {t:?}"));
    assert!(p.zulu, "time not in UTC (Z): {t:?}");
    let skew = (p.unix_ms - now_unix_ms()).abs();
    assert!(
        skew < 5 * 60 * 1000,
        "healthz time {t} is {skew} ms away from the test's clock"
    );
}

const REQUIRED: [&str; 6] = [
    "ringbox_requests_total",
    "ringbox_bytes_in_total",
    "ringbox_bytes_out_total",
    "ringbox_open_connections",
    "ringbox_uploads_total",
    "ringbox_downloads_total",
];

#[test]
fn metrics_format_and_required_series() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    c.get("/healthz").expect(200);
    let r = c.get("/metrics").expect(200);
    let ct = r
        .must_header("content-type")
        .to_ascii_lowercase()
        .replace(' ', "");
    assert!(
        ct.starts_with("text/plain") && ct.contains("version=0.0.4"),
        "metrics content type {ct:?}"
    );
    let samples = crate::common::util::parse_metrics(&r.text());
    for name in REQUIRED {
        assert!(
            samples.iter().any(|s| s.name == name),
            "metric {name} missing from:\n{}",
            r.text()
        );
    }
    for s in samples
        .iter()
        .filter(|s| s.name == "ringbox_requests_total")
    {
        assert!(
            s.label("route").is_some() && s.label("status").is_some(),
            "requests_total without labels: {s:?}"
        );
    }
}

fn delta(before: &[Sample], after: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    metric_sum(after, name, filter) - metric_sum(before, name, filter)
}

#[test]
fn metrics_counters_move() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    Client::anonymous(&d).get("/healthz").expect(200);
    let m0 = c.metrics();

    let data = random_bytes(11, 100 * 1024);
    let obj = c.upload("m.bin", None, Some("application/octet-stream"), &data);
    let r = c.content(&id_of(&obj)).expect(200);
    assert_eq!(r.body, data);
    c.get("/v1/definitely-not-a-route").expect(404);

    let m1 = c.metrics();
    let show = || {
        m1.iter()
            .filter(|s| s.name.starts_with("ringbox_"))
            .map(|s| format!("{} {:?} {}", s.name, s.labels, s.value))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let req = "ringbox_requests_total";
    assert!(
        delta(&m0, &m1, req, &[]) >= 3.0,
        "requests_total moved by less than 3:\n{}",
        show()
    );
    for status in ["201", "200", "404"] {
        assert!(
            delta(&m0, &m1, req, &[("status", status)]) >= 1.0,
            "requests_total{{status=\"{status}\"}} did not move:\n{}",
            show()
        );
    }
    let din = delta(&m0, &m1, "ringbox_bytes_in_total", &[]);
    assert!(
        din >= data.len() as f64,
        "bytes_in_total moved by {din}, uploaded {}:\n{}",
        data.len(),
        show()
    );
    let dout = delta(&m0, &m1, "ringbox_bytes_out_total", &[]);
    assert!(
        dout >= data.len() as f64,
        "bytes_out_total moved by {dout}, downloaded {}:\n{}",
        data.len(),
        show()
    );
    assert_eq!(
        delta(&m0, &m1, "ringbox_uploads_total", &[]),
        1.0,
        "one upload:\n{}",
        show()
    );
    assert_eq!(
        delta(&m0, &m1, "ringbox_downloads_total", &[]),
        1.0,
        "one download:\n{}",
        show()
    );
}

#[test]
fn metrics_open_connections_gauge() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let gauge = || metric_sum(&c.metrics(), "ringbox_open_connections", &[]);
    let base = gauge(); // counts the client's own keep-alive connection
    assert!(
        base >= 1.0,
        "open_connections is {base} while a scrape is in flight"
    );

    let mut conns: Vec<RawConn> = (0..3)
        .map(|_| {
            let mut rc = RawConn::connect(d.addr());
            rc.send(&request("GET", "/healthz", &[], b""));
            rc.read_response().expect(200);
            rc
        })
        .collect();
    let seen = poll(Duration::from_secs(5), || {
        let g = gauge();
        (g >= base + 3.0).then_some(g)
    });
    assert!(
        seen.is_some(),
        "open_connections did not reach {} with 3 idle keep-alive connections",
        base + 3.0
    );

    conns.clear();
    let back = poll(Duration::from_secs(5), || {
        let g = gauge();
        (g <= base).then_some(g)
    });
    assert!(
        back.is_some(),
        "open_connections did not fall back to {base} after closing; now {}",
        gauge()
    );
}
