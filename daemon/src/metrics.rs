//! Process-wide counters, exported at `/metrics` in the Prometheus text format.
//!
//! Counters are relaxed atomics in a fixed table indexed by (route, status), so the hot
//! path never locks or allocates; statuses outside the known set count as "other".
//! Routes are labelled by `api` and `route` (the pattern, with the mount's prefix); the
//! router registers them once at start ([`init`]), before any worker runs. Requests
//! that matched no route count under `api="",route="unmatched"`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

const STATUSES: &[u16] = &[
    100, 101, 200, 201, 204, 206, 207, 304, 400, 401, 403, 404, 405, 408, 409, 410, 411, 412, 413,
    415, 416, 422, 426, 429, 431, 500, 501, 503, 505, 507,
];

/// Where a caught panic happened.
const PANIC_SITES: &[&str] = &["handler", "connection", "pool", "writer", "ingest"];

/// All counters.
#[derive(Debug)]
pub struct Metrics {
    /// (api, route) labels; the last one is the "unmatched" slot.
    routes: Vec<(&'static str, String)>,
    /// routes.len() x (STATUSES.len() + 1 for "other").
    requests: Vec<AtomicU64>,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub open_connections: AtomicI64,
    pub connections_total: AtomicU64,
    pub connections_refused: AtomicU64,
    pub uploads: AtomicU64,
    pub upload_bytes: AtomicU64,
    pub downloads: AtomicU64,
    pub connections_refused_per_ip: AtomicU64,
    panics: Vec<AtomicU64>,
    /// Expiry sweep rounds (writer commands), objects and shares they deleted, and the
    /// largest round.
    pub expiry_rounds: AtomicU64,
    pub expired_objects: AtomicU64,
    pub expired_shares: AtomicU64,
    pub expiry_round_max: AtomicU64,
    /// Thumbnails, probes and directory scans.
    pub media: MediaCounters,
}

/// Counters of the media work (thumbnails, probes, directory scans).
#[derive(Debug, Default)]
pub struct MediaCounters {
    /// Images handed to a decoder for a thumbnail (a cached or refused one costs none).
    pub thumbnail_decodes: AtomicU64,
    /// Thumbnails written to the cache.
    pub thumbnails_generated: AtomicU64,
    /// Images refused (bomb, damaged, too large, too slow).
    pub thumbnails_refused: AtomicU64,
    /// Requests that waited for a decode (their own or one already running).
    pub thumbnail_waits: AtomicU64,
    /// Images probed for dimensions and EXIF.
    pub probes: AtomicU64,
    /// Completed runs of the directory scanner.
    pub scan_runs: AtomicU64,
    /// Scanned files indexed or indexed again (new or changed).
    pub scan_files: AtomicU64,
    /// Scanned files that left the index (gone from disk).
    pub scan_removed: AtomicU64,
    /// Files the scanner could not read or skipped with a warning.
    pub scan_errors: AtomicU64,
    /// Files currently indexed in place (after the last run of each root).
    pub scan_indexed: AtomicI64,
    /// 1 while a scan runs.
    pub scan_running: AtomicI64,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Register the route labels (once, at start). Later calls are ignored.
pub fn init(labels: Vec<(&'static str, String)>) {
    let _ = METRICS.set(Metrics::new(labels));
}

/// The process's metrics (with no route labels if [`init`] was never called).
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(|| Metrics::new(Vec::new()))
}

impl Metrics {
    fn new(mut routes: Vec<(&'static str, String)>) -> Metrics {
        routes.push(("", "unmatched".to_string()));
        let n = routes.len() * (STATUSES.len() + 1);
        Metrics {
            routes,
            requests: (0..n).map(|_| AtomicU64::new(0)).collect(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            open_connections: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            uploads: AtomicU64::new(0),
            upload_bytes: AtomicU64::new(0),
            downloads: AtomicU64::new(0),
            connections_refused_per_ip: AtomicU64::new(0),
            panics: PANIC_SITES.iter().map(|_| AtomicU64::new(0)).collect(),
            media: MediaCounters::default(),
            expiry_rounds: AtomicU64::new(0),
            expired_objects: AtomicU64::new(0),
            expired_shares: AtomicU64::new(0),
            expiry_round_max: AtomicU64::new(0),
        }
    }

    /// Count one expiry sweep round of `items` that deleted `objects` and `shares`.
    pub fn expiry_round(&self, items: u64, objects: u64, shares: u64) {
        self.expiry_rounds.fetch_add(1, Relaxed);
        self.expired_objects.fetch_add(objects, Relaxed);
        self.expired_shares.fetch_add(shares, Relaxed);
        self.expiry_round_max.fetch_max(items, Relaxed);
    }

    /// Count a caught panic at `site` (`handler`, `connection`, `pool`, `writer`).
    pub fn panic(&self, site: &str) {
        let i = PANIC_SITES.iter().position(|s| *s == site).unwrap_or(0);
        self.panics[i].fetch_add(1, Relaxed);
    }

    /// Count one answered request of route slot `route` (`None`: no route matched).
    pub fn request(&self, route: Option<usize>, status: u16) {
        let r = route
            .filter(|&r| r < self.routes.len() - 1)
            .unwrap_or(self.routes.len() - 1);
        let s = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len());
        self.requests[r * (STATUSES.len() + 1) + s].fetch_add(1, Relaxed);
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP ringbox_requests_total Requests answered, by route and status.\n");
        out.push_str("# TYPE ringbox_requests_total counter\n");
        for (ri, (api, route)) in self.routes.iter().enumerate() {
            for si in 0..=STATUSES.len() {
                let v = self.requests[ri * (STATUSES.len() + 1) + si].load(Relaxed);
                if v == 0 {
                    continue;
                }
                let status = STATUSES
                    .get(si)
                    .map_or("other".to_string(), |s| s.to_string());
                let _ = writeln!(
                    out,
                    "ringbox_requests_total{{api=\"{api}\",route=\"{route}\",status=\"{status}\"}} {v}"
                );
            }
        }
        out.push_str(
            "# HELP ringbox_panics_total Panics caught (the process kept serving), by where.\n",
        );
        out.push_str("# TYPE ringbox_panics_total counter\n");
        for (site, n) in PANIC_SITES.iter().zip(&self.panics) {
            let _ = writeln!(
                out,
                "ringbox_panics_total{{where=\"{site}\"}} {}",
                n.load(Relaxed)
            );
        }
        let mut counter = |name: &str, help: &str, kind: &str, v: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        counter(
            "ringbox_bytes_in_total",
            "Bytes read from clients.",
            "counter",
            self.bytes_in.load(Relaxed).to_string(),
        );
        counter(
            "ringbox_bytes_out_total",
            "Bytes written to clients.",
            "counter",
            self.bytes_out.load(Relaxed).to_string(),
        );
        counter(
            "ringbox_open_connections",
            "Connections open now.",
            "gauge",
            self.open_connections.load(Relaxed).to_string(),
        );
        counter(
            "ringbox_connections_total",
            "Connections accepted.",
            "counter",
            self.connections_total.load(Relaxed).to_string(),
        );
        counter(
            "ringbox_connections_refused_total",
            "Connections refused at max_connections.",
            "counter",
            self.connections_refused.load(Relaxed).to_string(),
        );
        counter(
            "ringbox_connections_refused_per_ip_total",
            "Connections refused at max_connections_per_ip.",
            "counter",
            self.connections_refused_per_ip.load(Relaxed).to_string(),
        );
        counter(
            "ringbox_uploads_total",
            "Uploads stored.",
            "counter",
            self.uploads.load(Relaxed).to_string(),
        );
        counter(
            "ringbox_upload_bytes_total",
            "Bytes of uploads stored.",
            "counter",
            self.upload_bytes.load(Relaxed).to_string(),
        );
        counter(
            "ringbox_downloads_total",
            "Content responses (200/206) sent.",
            "counter",
            self.downloads.load(Relaxed).to_string(),
        );
        let m = &self.media;
        for (name, help, kind, v) in [
            (
                "ringbox_thumbnail_decodes_total",
                "Images handed to a decoder for a thumbnail.",
                "counter",
                m.thumbnail_decodes.load(Relaxed) as i64,
            ),
            (
                "ringbox_thumbnails_generated_total",
                "Thumbnails written to the cache.",
                "counter",
                m.thumbnails_generated.load(Relaxed) as i64,
            ),
            (
                "ringbox_thumbnails_refused_total",
                "Images refused for a thumbnail (bomb, damaged, too large, too slow).",
                "counter",
                m.thumbnails_refused.load(Relaxed) as i64,
            ),
            (
                "ringbox_thumbnail_waits_total",
                "Thumbnail requests that waited for a decode.",
                "counter",
                m.thumbnail_waits.load(Relaxed) as i64,
            ),
            (
                "ringbox_media_probes_total",
                "Images probed for dimensions and EXIF.",
                "counter",
                m.probes.load(Relaxed) as i64,
            ),
            (
                "ringbox_scan_runs_total",
                "Completed runs of the directory scanner.",
                "counter",
                m.scan_runs.load(Relaxed) as i64,
            ),
            (
                "ringbox_scan_files_total",
                "Scanned files indexed (new or changed).",
                "counter",
                m.scan_files.load(Relaxed) as i64,
            ),
            (
                "ringbox_scan_removed_total",
                "Scanned files removed from the index (gone from disk).",
                "counter",
                m.scan_removed.load(Relaxed) as i64,
            ),
            (
                "ringbox_scan_errors_total",
                "Files the scanner skipped with a warning.",
                "counter",
                m.scan_errors.load(Relaxed) as i64,
            ),
            (
                "ringbox_scan_indexed_files",
                "Files indexed in place.",
                "gauge",
                m.scan_indexed.load(Relaxed),
            ),
            (
                "ringbox_scan_running",
                "1 while the directory scanner runs.",
                "gauge",
                m.scan_running.load(Relaxed),
            ),
        ] {
            counter(name, help, kind, v.to_string());
        }
        counter(
            "ringbox_expiry_rounds_total",
            "Expiry sweep rounds (one writer transaction each).",
            "counter",
            self.expiry_rounds.load(Relaxed).to_string(),
        );
        counter(
            "ringbox_expired_objects_total",
            "Objects deleted by the expiry sweeper.",
            "counter",
            self.expired_objects.load(Relaxed).to_string(),
        );
        counter(
            "ringbox_expired_shares_total",
            "Share links deleted by the expiry sweeper.",
            "counter",
            self.expired_shares.load(Relaxed).to_string(),
        );
        counter(
            "ringbox_expiry_round_max_items",
            "Most items one expiry sweep round handled.",
            "gauge",
            self.expiry_round_max.load(Relaxed).to_string(),
        );
        out
    }
}
