//! `ingestbench`: RhinoBox ingestion through ringbox against a plain Python peer
//! (`bench/ingest_peer.py`), same machine, same run.
//!
//! Scenarios, each on a fresh ringbox (release build, `--workers 1`, pinned to CPU 0
//! like the peer; the client on CPU 1), for `--durability fsync` and `none`:
//!
//! - `json-sql`: `--batches` `POST /ingest/json` of `--batch-size` small documents
//!   (the orders-like documents of `bench_doc`), one connection, one after the other:
//!   decision, batch file, SQLite insert, log. Peer: `ingest_peer.py --mode sql`.
//! - `json-nosql`: the same documents with `"comment":"nosql"`, so they go to LMDB.
//!   Peer: `--mode nosql` (batch file, documents appended to a file, fdatasync, log).
//! - `files`: `--files` distinct files of `--file-size` bytes, one multipart
//!   `POST /ingest` each, one connection. Peer: `--mode files` (hash, temp file, fsync,
//!   rename, directory fsync, metadata line with fdatasync).
//! - `files-concurrent`: the same over `--connections` connections (group commit),
//!   against the same sequential peer figure.
//!
//! Every round runs ringbox then the peer for each scenario (A B A B); the figure is the
//! median of the per-round ratios ringbox/peer (above 1: ringbox is faster). Bounded:
//! each request has the harness's I/O timeout, each peer run a time limit, and servers
//! are killed when their scenario ends.
//!
//! ```text
//! cargo run --release -p ringbox-bench --bin ingestbench
//! cargo run --release -p ringbox-bench --bin ingestbench -- --quick
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ringbox_bench::load::http::Conn;
use ringbox_bench::load::proc::{pin_current_thread, pinned, run_with_timeout};
use ringbox_bench::load::report::{fmt_value, spread, write_results, Spread};
use ringbox_bench::load::scenarios::cpu_name;
use ringbox_bench::load::servers::{start_ringbox, Durability, Placement, Tools};
use ringbox_bench::load::setup::{self, utc_now, Machine, Paths};
use ringbox_bench::load::HarnessError;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(
    name = "ingestbench",
    about = "RhinoBox ingestion through ringbox against a plain Python peer"
)]
struct Args {
    /// `/ingest/json` calls per run.
    #[arg(long, default_value_t = 100)]
    batches: usize,
    /// Documents per call.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Files per run.
    #[arg(long, default_value_t = 2000)]
    files: usize,
    /// Bytes per file.
    #[arg(long, default_value_t = 4096)]
    file_size: usize,
    /// Connections of `files-concurrent`.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Rounds (A B A B).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Smoke test: 1 round, 20 batches, 300 files.
    #[arg(long)]
    quick: bool,
    /// The Python interpreter.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Use this ringbox binary instead of building one.
    #[arg(long)]
    ringbox_bin: Option<PathBuf>,
    /// Do not build ringbox (use target/release/ringbox).
    #[arg(long)]
    no_build: bool,
    /// Do not pin the servers to CPU 0 and the clients to CPU 1.
    #[arg(long)]
    no_pin: bool,
    /// Keep the run's work directory under bench/work.
    #[arg(long)]
    keep_work: bool,
    /// Workspace root (default: the parent of this crate).
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// Where to write `ingest-<timestamp>.json` and `ingest-latest.md`.
    #[arg(long)]
    results: Option<PathBuf>,
}

/// Removes the run's work dir at the end, also on error, unless asked to keep it.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingestbench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `bench_doc` of `daemon/src/core/ingest/tests.rs` (and `doc` of the peer).
fn doc(i: usize) -> Value {
    let status = ["new", "paid", "shipped"][i % 3];
    json!({
        "order_id": i,
        "customer_id": i % 97,
        "total": (i % 1000) as f64 * 1.25,
        "status": status,
        "note": format!("order {i}"),
    })
}

fn json_bodies(batches: usize, size: usize, nosql: bool) -> Vec<Vec<u8>> {
    (0..batches)
        .map(|b| {
            let docs: Vec<Value> = (b * size..(b + 1) * size).map(doc).collect();
            let mut body = json!({ "namespace": "bench", "documents": docs });
            if nosql {
                body["comment"] = json!("nosql");
            }
            serde_json::to_vec(&body).expect("serialise")
        })
        .collect()
}

const BOUNDARY: &str = "ingestbenchBoundary0123456789";

/// One multipart `/ingest` body per file, each with distinct random bytes.
fn file_bodies(n: usize, size: usize) -> Result<Vec<Vec<u8>>, HarnessError> {
    (0..n)
        .map(|i| {
            let mut data = vec![0u8; size];
            getrandom::fill(&mut data)
                .map_err(|e| HarnessError::msg(format!("random bytes: {e}")))?;
            let mut body = format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; \
                 filename=\"f{i}.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .into_bytes();
            body.extend_from_slice(&data);
            body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
            Ok(body)
        })
        .collect()
}

/// Sends `bodies` to `target` from `connections` threads; returns the seconds taken.
fn post_all(
    addr: SocketAddr,
    auth: &str,
    target: &str,
    content_type: &str,
    bodies: Arc<Vec<Vec<u8>>>,
    connections: usize,
) -> Result<f64, HarnessError> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..connections.max(1) {
        let (next, bodies) = (Arc::clone(&next), Arc::clone(&bodies));
        let (auth, target, ct) = (
            auth.to_string(),
            target.to_string(),
            content_type.to_string(),
        );
        handles.push(std::thread::spawn(move || -> Result<(), String> {
            let mut conn = Conn::connect(addr).map_err(|e| e.to_string())?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(body) = bodies.get(i) else {
                    return Ok(());
                };
                let r = conn
                    .request(
                        "POST",
                        &target,
                        &[
                            ("Authorization", auth.as_str()),
                            ("Content-Type", ct.as_str()),
                        ],
                        Some(body),
                    )
                    .map_err(|e| e.to_string())?;
                if r.status != 200 {
                    return Err(format!(
                        "POST {target} answered {}: {}",
                        r.status,
                        r.body_text()
                    ));
                }
            }
        }));
    }
    let mut first_error = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert("a client thread panicked".into());
            }
        }
    }
    match first_error {
        Some(e) => Err(HarnessError::msg(e)),
        None => Ok(start.elapsed().as_secs_f64()),
    }
}

/// One run of the Python peer; its items per second.
fn run_peer(
    python: &str,
    script: &Path,
    cpu: Option<usize>,
    mode: &str,
    durability: Durability,
    args: &Args,
    root: &Path,
) -> Result<f64, HarnessError> {
    let mut cmd = pinned(cpu, Path::new(python));
    cmd.arg(script)
        .args([
            "--mode",
            mode,
            "--durability",
            durability.as_str(),
            "--json",
        ])
        .args(["--batches", &args.batches.to_string()])
        .args(["--batch-size", &args.batch_size.to_string()])
        .args(["--files", &args.files.to_string()])
        .args(["--file-size", &args.file_size.to_string()])
        .arg("--root")
        .arg(root);
    let out = run_with_timeout(cmd, Duration::from_secs(30 * 60))?;
    let line = out
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| {
            HarnessError::msg(format!(
                "the peer printed no result (mode {mode}): {} {}",
                out.stdout, out.stderr
            ))
        })?;
    let v: Value = serde_json::from_str(line)
        .map_err(|e| HarnessError::msg(format!("peer output {line:?}: {e}")))?;
    v["per_second"]
        .as_f64()
        .ok_or_else(|| HarnessError::msg(format!("peer output without per_second: {line}")))
}

/// The figures of one scenario at one durability.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Figures {
    scenario: &'static str,
    durability: &'static str,
    unit: &'static str,
    ringbox: Vec<f64>,
    peer: Vec<f64>,
    ratios: Vec<f64>,
}

fn run(args: Args) -> Result<(), HarnessError> {
    let (started_at, stamp) = utc_now();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let args = if args.quick {
        Args {
            rounds: 1,
            batches: 20,
            files: 300,
            ..args
        }
    } else {
        args
    };
    if args.batches == 0 || args.batch_size == 0 || args.files == 0 || args.rounds == 0 {
        return Err(HarnessError::msg(
            "--batches, --batch-size, --files and --rounds must be positive",
        ));
    }
    let paths = Paths::discover(args.workspace.clone())?;
    if !args.no_build && args.ringbox_bin.is_none() {
        setup::build(&paths, true, false)?;
    }
    let bin = args.ringbox_bin.clone().unwrap_or_else(|| paths.ringbox());
    if !bin.is_file() {
        return Err(HarnessError::msg(format!(
            "{} is missing; build it (cargo build --release -p ringbox)",
            bin.display()
        )));
    }
    let script = paths.workspace.join("bench").join("ingest_peer.py");
    let machine = Machine::describe(&paths);
    let (server_cpu, client_cpu) = if args.no_pin || machine.nproc < 2 {
        (None, None)
    } else {
        (Some(0), Some(1))
    };
    if let Some(cpu) = client_cpu {
        pin_current_thread(cpu)?;
    }
    let run_dir = paths.work.join(format!("ingest-{stamp}"));
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| HarnessError::io(format!("create {}", run_dir.display()), e))?;
    let _work = WorkDir {
        path: run_dir.clone(),
        keep: args.keep_work,
    };
    let tools = Tools {
        ringbox: Some(bin),
        ..Tools::default()
    };
    let place = Placement {
        cpu: server_cpu,
        run_dir: run_dir.clone(),
    };
    let peer_root = run_dir.join("peer");
    std::fs::create_dir_all(&peer_root)
        .map_err(|e| HarnessError::io(format!("create {}", peer_root.display()), e))?;

    let sql = Arc::new(json_bodies(args.batches, args.batch_size, false));
    let nosql = Arc::new(json_bodies(args.batches, args.batch_size, true));
    let files = Arc::new(file_bodies(args.files, args.file_size)?);
    let docs = (args.batches * args.batch_size) as f64;
    let multipart = format!("multipart/form-data; boundary={BOUNDARY}");

    let mut all: Vec<Figures> = Vec::new();
    for durability in [Durability::Fsync, Durability::None] {
        let mut figs = [
            ("json-sql", "documents/s"),
            ("json-nosql", "documents/s"),
            ("files", "files/s"),
            ("files-concurrent", "files/s"),
        ]
        .map(|(scenario, unit)| Figures {
            scenario,
            durability: durability.as_str(),
            unit,
            ..Figures::default()
        });
        for _round in 0..args.rounds {
            for i in 0..figs.len() {
                let server = start_ringbox(&tools, &place, durability, &[])?;
                let auth = server.auth.clone().unwrap_or_default();
                let (bodies, target, ct, conns, items, mode) = match i {
                    0 => (&sql, "/ingest/json", "application/json", 1, docs, "sql"),
                    1 => (&nosql, "/ingest/json", "application/json", 1, docs, "nosql"),
                    2 => (
                        &files,
                        "/ingest",
                        multipart.as_str(),
                        1,
                        args.files as f64,
                        "files",
                    ),
                    _ => (
                        &files,
                        "/ingest",
                        multipart.as_str(),
                        args.connections,
                        args.files as f64,
                        "files",
                    ),
                };
                let secs = post_all(server.addr, &auth, target, ct, Arc::clone(bodies), conns)?;
                drop(server);
                let rate = items / secs;
                // files-concurrent compares with this round's sequential files peer.
                let peer = match figs[2].peer.last() {
                    Some(&p) if i == 3 => p,
                    _ => run_peer(
                        &args.python,
                        &script,
                        server_cpu,
                        mode,
                        durability,
                        &args,
                        &peer_root,
                    )?,
                };
                let fig = &mut figs[i];
                let ratio = rate / peer.max(f64::MIN_POSITIVE);
                eprintln!(
                    "ingestbench: {} durability {}: ringbox {} {}, peer {} ({ratio:.2}x)",
                    fig.scenario,
                    durability.as_str(),
                    fmt_value(rate),
                    fig.unit,
                    fmt_value(peer),
                );
                fig.ringbox.push(rate);
                fig.peer.push(peer);
                fig.ratios.push(ratio);
            }
        }
        all.extend(figs);
    }

    // Report.
    let mut md = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(md, "### Ingest run {started_at}\n");
    let _ = writeln!(md, "- command: `{command}`");
    let _ = writeln!(
        md,
        "- commit: `{}`{}",
        machine.commit,
        if machine.dirty {
            " (work tree modified)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "- machine: {} CPUs, {}, kernel {}",
        machine.nproc, machine.cpu_model, machine.kernel
    );
    let _ = writeln!(
        md,
        "- ringbox (--workers 1) and the peer pinned to CPU {}, clients to CPU {}; {} rounds; \
         {} batches of {} documents; {} files of {} bytes; files-concurrent: {} connections\n",
        cpu_name(server_cpu),
        cpu_name(client_cpu),
        args.rounds,
        args.batches,
        args.batch_size,
        args.files,
        args.file_size,
        args.connections
    );
    let _ = writeln!(
        md,
        "| scenario | durability | ringbox median (min-max) | python peer median (min-max) | ringbox / peer |"
    );
    let _ = writeln!(md, "| --- | --- | --- | --- | --- |");
    let cell = |s: Option<Spread>| {
        s.map(|s| {
            format!(
                "{} ({}-{})",
                fmt_value(s.median),
                fmt_value(s.min),
                fmt_value(s.max)
            )
        })
        .unwrap_or_else(|| "-".into())
    };
    for f in &all {
        let ratio = spread(&f.ratios)
            .map(|s| format!("**{:.2}×** ({:.2}-{:.2})", s.median, s.min, s.max))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            md,
            "| {} | {} | {} {} | {} | {} |",
            f.scenario,
            f.durability,
            cell(spread(&f.ringbox)),
            f.unit,
            cell(spread(&f.peer)),
            ratio
        );
    }
    let report = json!({
        "tool": format!("ringbox-bench ingestbench {}", env!("CARGO_PKG_VERSION")),
        "command": command,
        "started_at": started_at,
        "finished_at": utc_now().0,
        "machine": machine,
        "settings": {
            "batches": args.batches, "batch_size": args.batch_size, "files": args.files,
            "file_size": args.file_size, "connections": args.connections, "rounds": args.rounds,
            "server_cpu": server_cpu, "client_cpu": client_cpu,
        },
        "figures": all,
    });
    let results_dir = args
        .results
        .clone()
        .unwrap_or_else(|| paths.workspace.join("bench").join("results"));
    write_results(
        &results_dir,
        &format!("ingest-{stamp}.json"),
        "ingest-latest.md",
        &report,
        &md,
    )
}
