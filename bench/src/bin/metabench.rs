//! `metabench`: what ringbox's metadata path costs as the store grows.
//!
//! 1. Creation: `--create` JSON text objects through `POST /v1/objects` from
//!    `--connections` keep-alive connections, once with `--durability fsync` (group
//!    commit is what makes this fast) and once with `--durability none`.
//! 2. Listing: one store (durability none) grown step by step to each of `--counts`
//!    objects in namespace `x`; at each size, `--reps` sequential requests of
//!    `GET /v1/objects?namespace=x&limit=100` (the first page) and of the same with a
//!    `cursor` from the middle of the namespace. The target is that a page at 1M objects
//!    costs at most 1.5x a page at 1k.
//!
//! There is no way to fill a store without the API, so 1M objects take minutes: the
//! default counts are 1k and 100k; add 1M with `--counts 1000,100000,1000000`.
//!
//! ```text
//! cargo run --release -p ringbox-bench --bin metabench
//! cargo run --release -p ringbox-bench --bin metabench -- --counts 1000,100000,1000000
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::Parser;
use ringbox_bench::load::http::Conn;
use ringbox_bench::load::proc::pin_current_thread;
use ringbox_bench::load::report::{fmt_value, spread, write_results, Spread};
use ringbox_bench::load::scenarios::cpu_name;
use ringbox_bench::load::servers::{start_ringbox, Durability, Placement, Server, Tools};
use ringbox_bench::load::setup::{self, utc_now, Machine, Paths};
use ringbox_bench::load::HarnessError;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(
    name = "metabench",
    about = "ringbox object creation and listing cost as the store grows"
)]
struct Args {
    /// Store sizes at which listing is measured (ascending, comma-separated).
    #[arg(long, default_value = "1000,100000", value_delimiter = ',')]
    counts: Vec<u64>,

    /// Objects created in the creation benchmark (per durability).
    #[arg(long, default_value_t = 10_000)]
    create: u64,

    /// Keep-alive connections creating objects.
    #[arg(long, default_value_t = 32)]
    connections: usize,

    /// Sequential listing requests per measurement.
    #[arg(long, default_value_t = 200)]
    reps: usize,

    /// Smoke test: --create 1000, --counts 1000,10000, --reps 50.
    #[arg(long)]
    quick: bool,

    /// Use this ringbox binary instead of building one.
    #[arg(long)]
    ringbox_bin: Option<PathBuf>,

    /// Do not build ringbox (use target/release/ringbox).
    #[arg(long)]
    no_build: bool,

    /// Do not pin ringbox to CPU 0 and the clients to CPU 1.
    #[arg(long)]
    no_pin: bool,

    /// Keep the run's work directory under bench/work.
    #[arg(long)]
    keep_work: bool,

    /// Workspace root (default: the parent of this crate).
    #[arg(long)]
    workspace: Option<PathBuf>,

    /// Where to write `meta-<timestamp>.json` and `meta-latest.md` (default: bench/results).
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
            eprintln!("metabench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Result of creating objects.
#[derive(Debug, Clone, serde::Serialize)]
struct Creation {
    durability: &'static str,
    objects: u64,
    connections: usize,
    seconds: f64,
    per_second: f64,
    latency_ms: Option<Spread>,
    p99_ms: f64,
    failed: u64,
}

/// Listing figures at one store size.
#[derive(Debug, Clone, serde::Serialize)]
struct Listing {
    objects_in_store: u64,
    /// Creation of the objects added for this step (durability none).
    step_create_per_second: f64,
    first_page_ms: Option<Spread>,
    first_page_p99_ms: f64,
    middle_page_ms: Option<Spread>,
    middle_page_p99_ms: f64,
}

fn p99(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(((v.len().max(1) - 1) as f64 * 0.99) as usize)
        .copied()
        .unwrap_or(0.0)
}

/// Creates objects `from..to` (names `obj-<n>`) in namespace `x` from `connections`
/// threads; returns (seconds, per-request latencies in ms, failures).
fn create_objects(
    addr: SocketAddr,
    auth: &str,
    from: u64,
    to: u64,
    connections: usize,
) -> Result<(f64, Vec<f64>, u64), HarnessError> {
    let next = Arc::new(AtomicU64::new(from));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity((to - from) as usize)));
    let failures = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..connections {
        let (next, latencies, failures, first_error) = (
            Arc::clone(&next),
            Arc::clone(&latencies),
            Arc::clone(&failures),
            Arc::clone(&first_error),
        );
        let auth = auth.to_string();
        handles.push(std::thread::spawn(move || {
            let mut mine = Vec::new();
            let mut conn: Option<Conn> = None;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= to || failures.load(Ordering::Relaxed) > 100 {
                    break;
                }
                let body = json!({
                    "type": "text",
                    "content": format!("metabench object {n}: some text content of a typical note"),
                    "name": format!("obj-{n:09}"),
                    "namespace": "x",
                    "tags": ["metabench"],
                })
                .to_string();
                let c = match conn.as_mut() {
                    Some(c) if !c.closed => c,
                    _ => match Conn::connect(addr) {
                        Ok(c) => conn.insert(c),
                        Err(e) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(format!("connect: {e}"));
                            continue;
                        }
                    },
                };
                let t = Instant::now();
                let res = c.request(
                    "POST",
                    "/v1/objects",
                    &[
                        ("Authorization", auth.as_str()),
                        ("Content-Type", "application/json"),
                    ],
                    Some(body.as_bytes()),
                );
                match res {
                    Ok(r) if r.status == 201 => mine.push(t.elapsed().as_secs_f64() * 1000.0),
                    Ok(r) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(format!("status {}: {}", r.status, r.body_text()));
                    }
                    Err(e) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e.to_string());
                        conn = None;
                    }
                }
            }
            latencies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(mine);
        }));
    }
    for h in handles {
        let _ = h.join();
    }
    let secs = start.elapsed().as_secs_f64();
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        let first = first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        if failed > 100 {
            return Err(HarnessError::msg(format!(
                "creating objects failed more than 100 times; first: {first}"
            )));
        }
        eprintln!("metabench: {failed} creations failed; first: {first}");
    }
    let lat = std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner()));
    Ok((secs, lat, failed))
}

/// Percent-encodes a query value (cursors are opaque).
fn encode(v: &str) -> String {
    let mut s = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn list(conn: &mut Conn, auth: &str, target: &str) -> Result<serde_json::Value, HarnessError> {
    let r = conn.request("GET", target, &[("Authorization", auth)], None)?;
    if r.status != 200 {
        return Err(HarnessError::msg(format!(
            "GET {target} answered {}: {}",
            r.status,
            r.body_text()
        )));
    }
    serde_json::from_slice(&r.body)
        .map_err(|e| HarnessError::msg(format!("GET {target}: not JSON ({e})")))
}

/// A cursor pointing about `skip` objects into namespace `x`, and how many objects lie
/// before it.
fn middle_cursor(
    conn: &mut Conn,
    auth: &str,
    skip: u64,
) -> Result<(Option<String>, u64), HarnessError> {
    let mut cursor: Option<String> = None;
    let mut seen = 0u64;
    // Pages of 100 land the cursor exactly in the middle of small stores; pages of 1000
    // keep the walk short in large ones.
    let page = if skip >= 10_000 { 1000 } else { 100 };
    while seen < skip {
        let mut target = format!("/v1/objects?namespace=x&limit={page}");
        if let Some(c) = &cursor {
            target.push_str(&format!("&cursor={}", encode(c)));
        }
        let v = list(conn, auth, &target)?;
        let n = v
            .get("objects")
            .and_then(|o| o.as_array())
            .map(|a| a.len())
            .unwrap_or(0);
        seen += n as u64;
        match v.get("next_cursor").and_then(|c| c.as_str()) {
            Some(c) if n > 0 => cursor = Some(c.to_string()),
            _ => return Ok((None, seen)),
        }
    }
    Ok((cursor, seen))
}

/// `reps` sequential listing requests; latencies in ms. Checks the page size.
fn time_listing(
    conn: &mut Conn,
    auth: &str,
    target: &str,
    reps: usize,
    expect: usize,
) -> Result<Vec<f64>, HarnessError> {
    // One untimed request warms caches and checks the answer.
    let v = list(conn, auth, target)?;
    let got = v
        .get("objects")
        .and_then(|o| o.as_array())
        .map(|a| a.len())
        .unwrap_or(0);
    if got != expect {
        return Err(HarnessError::msg(format!(
            "GET {target} returned {got} objects, expected {expect}"
        )));
    }
    let mut out = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        let r = conn.request("GET", target, &[("Authorization", auth)], None)?;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
        if r.status != 200 {
            return Err(HarnessError::msg(format!(
                "GET {target} answered {}",
                r.status
            )));
        }
    }
    Ok(out)
}

fn run(args: Args) -> Result<(), HarnessError> {
    let (started_at, stamp) = utc_now();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let (create, mut counts, reps) = if args.quick {
        (1_000, vec![1_000, 10_000], 50)
    } else {
        (args.create, args.counts.clone(), args.reps)
    };
    counts.sort_unstable();
    counts.dedup();
    if counts.is_empty() || counts[0] == 0 {
        return Err(HarnessError::msg("--counts needs positive store sizes"));
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
    let machine = Machine::describe(&paths);
    let (server_cpu, client_cpu) = if args.no_pin || machine.nproc < 2 {
        (None, None)
    } else {
        (Some(0), Some(1))
    };
    if let Some(cpu) = client_cpu {
        pin_current_thread(cpu)?;
    }
    let run_dir = paths.work.join(format!("meta-{stamp}"));
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
        run_dir,
    };
    let auth_of = |s: &Server| s.auth.clone().unwrap_or_default();

    // 1. Creation, both durabilities, each on a fresh store.
    let mut creations = Vec::new();
    for durability in [Durability::Fsync, Durability::None] {
        eprintln!(
            "metabench: creating {create} text objects, {} connections, durability {}",
            args.connections,
            durability.as_str()
        );
        let server = start_ringbox(&tools, &place, durability, &[])?;
        let (secs, lat, failed) =
            create_objects(server.addr, &auth_of(&server), 0, create, args.connections)?;
        let c = Creation {
            durability: durability.as_str(),
            objects: create,
            connections: args.connections,
            seconds: secs,
            per_second: (create - failed) as f64 / secs,
            latency_ms: spread(&lat),
            p99_ms: p99(&lat),
            failed,
        };
        eprintln!(
            "metabench:   {:.0} objects/s ({:.2} s)",
            c.per_second, c.seconds
        );
        creations.push(c);
    }

    // 2. Listing as the store grows.
    let mut listings: Vec<Listing> = Vec::new();
    let server = start_ringbox(&tools, &place, Durability::None, &[])?;
    let auth = auth_of(&server);
    let mut have = 0u64;
    for &count in &counts {
        eprintln!("metabench: growing the store to {count} objects");
        let (secs, _, failed) = create_objects(server.addr, &auth, have, count, args.connections)?;
        let step_rate = (count - have - failed) as f64 / secs;
        have = count;
        let mut conn = Conn::connect(server.addr)?;
        let expect = count.min(100) as usize;
        let first = time_listing(
            &mut conn,
            &auth,
            "/v1/objects?namespace=x&limit=100",
            reps,
            expect,
        )?;
        let (middle, note) = match middle_cursor(&mut conn, &auth, count / 2)? {
            (Some(c), seen) if seen < count => {
                let target = format!("/v1/objects?namespace=x&limit=100&cursor={}", encode(&c));
                let left = (count - seen).min(100) as usize;
                (time_listing(&mut conn, &auth, &target, reps, left)?, None)
            }
            _ => (Vec::new(), Some("no cursor (store smaller than one page)")),
        };
        if let Some(n) = note {
            eprintln!("metabench:   {n}");
        }
        let l = Listing {
            objects_in_store: count,
            step_create_per_second: step_rate,
            first_page_ms: spread(&first),
            first_page_p99_ms: p99(&first),
            middle_page_ms: spread(&middle),
            middle_page_p99_ms: p99(&middle),
        };
        eprintln!(
            "metabench:   first page median {:.3} ms, middle page median {:.3} ms",
            l.first_page_ms.map(|s| s.median).unwrap_or(0.0),
            l.middle_page_ms.map(|s| s.median).unwrap_or(0.0)
        );
        listings.push(l);
    }
    drop(server);

    // Report.
    let mut md = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(md, "### Metadata run {started_at}\n");
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
        "- ringbox pinned to CPU {}, clients to CPU {}, --workers 1\n",
        cpu_name(server_cpu),
        cpu_name(client_cpu)
    );
    let _ = writeln!(md, "| create text objects | objects | connections | seconds | objects/s | latency median (min-max) ms | p99 ms |");
    let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- | --- |");
    for c in &creations {
        let _ = writeln!(
            md,
            "| durability {} | {} | {} | {:.2} | {} | {} | {:.2} |",
            c.durability,
            c.objects,
            c.connections,
            c.seconds,
            fmt_value(c.per_second),
            c.latency_ms
                .map(|s| format!("{:.2} ({:.2}-{:.2})", s.median, s.min, s.max))
                .unwrap_or_default(),
            c.p99_ms
        );
    }
    let base_first = listings
        .first()
        .and_then(|l| l.first_page_ms)
        .map(|s| s.median);
    let base_mid = listings
        .first()
        .and_then(|l| l.middle_page_ms)
        .map(|s| s.median);
    let _ = writeln!(md, "\n| objects in namespace | growth objects/s (none) | first page of 100: median ms (p99) | vs smallest | page from the middle: median ms (p99) | vs smallest |");
    let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- |");
    let ratio = |v: Option<Spread>, base: Option<f64>| match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("**{:.2}×**", v.median / b),
        _ => "-".into(),
    };
    for l in &listings {
        let _ = writeln!(
            md,
            "| {} | {} | {} ({:.3}) | {} | {} ({:.3}) | {} |",
            l.objects_in_store,
            fmt_value(l.step_create_per_second),
            l.first_page_ms
                .map(|s| format!("{:.3}", s.median))
                .unwrap_or("-".into()),
            l.first_page_p99_ms,
            ratio(l.first_page_ms, base_first),
            l.middle_page_ms
                .map(|s| format!("{:.3}", s.median))
                .unwrap_or("-".into()),
            l.middle_page_p99_ms,
            ratio(l.middle_page_ms, base_mid),
        );
    }
    let report = json!({
        "tool": format!("ringbox-bench metabench {}", env!("CARGO_PKG_VERSION")),
        "command": command,
        "started_at": started_at,
        "finished_at": utc_now().0,
        "machine": machine,
        "settings": {
            "create": create, "counts": counts, "reps": reps, "connections": args.connections,
            "server_cpu": server_cpu, "client_cpu": client_cpu,
        },
        "creation": creations,
        "listing": listings,
    });
    let results_dir = args
        .results
        .unwrap_or_else(|| paths.workspace.join("bench").join("results"));
    write_results(
        &results_dir,
        &format!("meta-{stamp}.json"),
        "meta-latest.md",
        &report,
        &md,
    )
}
