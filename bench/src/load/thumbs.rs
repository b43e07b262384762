//! The thumbnail load of `get-4k-thumbs`: photo-like 12-MP JPEGs uploaded into the
//! ringbox of the GET scenarios, and two client connections that keep asking for
//! thumbnails of them (each a (photo, size, format) not asked for before, so each is a
//! decode) while wrk measures the 4 KiB GET.
//!
//! The client threads inherit the harness's CPU (the client CPU), like wrk. The
//! thumbnails made during a round are counted, so the report shows that ringbox was
//! really decoding, and how fast it still did under the serving load.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::http::Conn;
use super::photos::write_photos;
use super::servers::Server;
use super::HarnessError;

/// Photos uploaded (each has 8 thumbnails to make: 3 sizes x 3 formats, less the
/// 256 px PNG ringbox makes at upload).
pub const PHOTOS: usize = 48;
/// Client connections asking for thumbnails: ringbox's default concurrency.
const CONNECTIONS: usize = 2;
const COMBOS: [(u32, &str); 8] = [
    (128, "png"),
    (512, "jpeg"),
    (256, "webp"),
    (512, "png"),
    (128, "jpeg"),
    (256, "jpeg"),
    (512, "webp"),
    (128, "webp"),
];
/// Path keys of the photos' thumbnail targets in `Server::paths`.
const KEY: &str = "thumbnail-source-";

/// Writes (or reuses) the photos, uploads them, and waits until the thumbnails ringbox
/// makes at upload are done (so they do not load the scenarios before this one).
pub fn prepare(server: &mut Server, cache: &Path, n: usize) -> Result<(), HarnessError> {
    let photos = write_photos(cache, n, 4000, 3000)?;
    eprintln!("load: uploading {n} photos into ringbox for get-4k-thumbs");
    let auth = server.auth.clone().unwrap_or_default();
    let before = generated(server)?;
    let mut conn = Conn::connect(server.addr)?;
    for (i, p) in photos.iter().enumerate() {
        let bytes = std::fs::read(p).map_err(|e| HarnessError::io(p.display(), e))?;
        let resp = conn.request(
            "POST",
            &format!("/v1/objects?name=photo-{i}.jpg"),
            &[("Authorization", &auth)],
            Some(&bytes),
        )?;
        let v: serde_json::Value = serde_json::from_slice(&resp.body)
            .map_err(|e| HarnessError::msg(format!("upload answer ({e}): {}", resp.body_text())))?;
        let id = v["id"]
            .as_str()
            .ok_or_else(|| HarnessError::msg(format!("upload answer: {v}")))?;
        server
            .paths
            .insert(format!("{KEY}{i}"), format!("/v1/objects/{id}/thumbnail"));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while generated(server)? < before + n as u64 {
        if Instant::now() > deadline {
            return Err(HarnessError::msg(
                "the thumbnails made at upload did not finish within 300 s",
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// `ringbox_thumbnails_generated_total` from `/metrics`.
fn generated(server: &Server) -> Result<u64, HarnessError> {
    let auth = server.auth.clone().unwrap_or_default();
    let mut conn = Conn::connect(server.addr)?;
    let resp = conn.request("GET", "/metrics", &[("Authorization", &auth)], None)?;
    Ok(String::from_utf8_lossy(&resp.body)
        .lines()
        .find_map(|l| l.strip_prefix("ringbox_thumbnails_generated_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0))
}

/// What a background load did.
#[derive(Debug)]
pub struct Made {
    /// Thumbnails answered 200.
    pub made: u64,
    /// Why it stopped early or what went wrong, if anything.
    pub problem: Option<String>,
}

/// The running thumbnail load.
#[derive(Debug)]
pub struct Background {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<(u64, Option<String>)>>,
}

/// Where the next (photo, size, format) is taken: shared by every round, so each round
/// asks for thumbnails not made before.
static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Background {
    /// Starts the client connections against `server`'s uploaded photos.
    pub fn start(server: &Server) -> Background {
        let targets: Vec<String> = (0..)
            .map_while(|i| server.paths.get(&format!("{KEY}{i}")).cloned())
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let auth = server.auth.clone().unwrap_or_default();
        let addr = server.addr;
        let threads = (0..CONNECTIONS)
            .map(|_| {
                let stop = stop.clone();
                let targets = targets.clone();
                let auth = auth.clone();
                std::thread::spawn(move || {
                    let mut made = 0u64;
                    if targets.is_empty() {
                        return (0, Some("no photos were uploaded".to_string()));
                    }
                    let mut conn = match Conn::connect(addr) {
                        Ok(c) => c,
                        Err(e) => return (0, Some(e.to_string())),
                    };
                    while !stop.load(Ordering::Relaxed) {
                        let i = NEXT.fetch_add(1, Ordering::Relaxed);
                        if i >= targets.len() * COMBOS.len() {
                            return (
                                made,
                                Some("every thumbnail was made; the load ran out".into()),
                            );
                        }
                        let (size, format) = COMBOS[i / targets.len()];
                        let target =
                            format!("{}?size={size}&format={format}", targets[i % targets.len()]);
                        match conn.request("GET", &target, &[("Authorization", &auth)], None) {
                            Ok(r) if r.status == 200 => made += 1,
                            Ok(r) => return (made, Some(format!("GET {target}: {}", r.status))),
                            Err(e) => return (made, Some(e.to_string())),
                        }
                    }
                    (made, None)
                })
            })
            .collect();
        Background { stop, threads }
    }

    /// Stops the load (a request in flight completes first) and counts what it did.
    pub fn finish(self) -> Made {
        self.stop.store(true, Ordering::Relaxed);
        let mut out = Made {
            made: 0,
            problem: None,
        };
        for t in self.threads {
            match t.join() {
                Ok((n, p)) => {
                    out.made += n;
                    if out.problem.is_none() {
                        out.problem = p;
                    }
                }
                Err(_) => out.problem = Some("a load thread panicked".into()),
            }
        }
        out
    }
}
