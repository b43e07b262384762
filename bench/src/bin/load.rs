//! `load`: ringbox against nginx, static-web-server, rustypaste and the ceiling server,
//! in the same run, A B A B, with the ratios printed as a Markdown table and stored as
//! JSON under `bench/results/`.
//!
//! ```text
//! cargo run --release -p ringbox-bench --bin load -- --peers nginx,sws
//! cargo run --release -p ringbox-bench --bin load -- --quick
//! ```
//!
//! On a fresh machine it installs what it needs (wrk and nginx from Debian as root,
//! static-web-server and rustypaste with `cargo install` into `bench/work/tools`), builds
//! ringbox with `cargo build --release -p ringbox`, writes the fixture files, and then
//! measures. Everything it starts is pinned, bounded in time and killed at the end. See
//! `bench/README.md` for the scenarios and how the ratios are computed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ringbox_bench::load::proc::{pin_current_thread, raise_nofile};
use ringbox_bench::load::report::{write_results, RunReport};
use ringbox_bench::load::scenarios::{Runner, Settings, ALL};
use ringbox_bench::load::servers::{prepare_fixtures, Kind, Placement, Tools};
use ringbox_bench::load::setup::{self, utc_now, Machine, Paths};
use ringbox_bench::load::HarnessError;

#[derive(Parser, Debug)]
#[command(
    name = "load",
    about = "A/B load harness: ringbox against nginx, static-web-server, rustypaste"
)]
struct Args {
    /// Peers to compare with: any of nginx, sws, rustypaste, ceiling (comma-separated).
    /// Each scenario uses those of them that apply (sws: GET; rustypaste: uploads;
    /// ceiling: 4 KiB GET).
    #[arg(
        long,
        default_value = "nginx,sws,rustypaste,ceiling",
        value_delimiter = ','
    )]
    peers: Vec<String>,

    /// Scenarios to run (comma-separated), default all: get-4k, get-4k-thumbs,
    /// get-4k-events, get-4k-512, get-64k, get-1m, range-64k, head-4k, revalidate-304,
    /// api-4k-<api> and api-1m-<api> for every API (native-id, native-sha, native-jwt,
    /// native-limited, metaclip, rhinobox, photobackup, pyblob, mediavault),
    /// events-1000, upload-1m, upload-1m-fsync, upload-1g, idle-10k. Groups: `get` (the
    /// nine GET scenarios), `api` (every api-*), `api-4k`, `api-1m`, `events`
    /// (get-4k-events and events-1000), `upload` (the three uploads), `all`.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,

    /// Seconds of every load run (wrk -d).
    #[arg(long, default_value_t = 8)]
    duration: u64,

    /// Rounds per scenario (A B A B ...); at least 3 for figures worth quoting.
    #[arg(long, default_value_t = 3)]
    rounds: usize,

    /// Smoke test: 3-second runs, 2 rounds (explicit --duration/--rounds still win).
    #[arg(long)]
    quick: bool,

    /// wrk connections of the standard GET scenarios.
    #[arg(long, default_value_t = 64)]
    connections: usize,

    /// wrk connections of the many-connection 4 KiB scenario.
    #[arg(long, default_value_t = 512)]
    many_connections: usize,

    /// Connections of the upload scenarios.
    #[arg(long, default_value_t = 16)]
    upload_connections: usize,

    /// Idle keep-alive connections of the idle scenario.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,

    /// Size of the single large upload, in MiB.
    #[arg(long, default_value_t = 1024)]
    big_upload_mib: u64,

    /// Leave ringbox out (develop the harness while the daemon does not build).
    #[arg(long)]
    no_ringbox: bool,

    /// Use this ringbox binary instead of building one (e.g. to compare two builds).
    #[arg(long)]
    ringbox_bin: Option<PathBuf>,

    /// Do not build ringbox and the ceiling server (use what is in the target dir).
    #[arg(long)]
    no_build: bool,

    /// Do not install missing tools; fail with the command to run instead.
    #[arg(long)]
    no_install: bool,

    /// Keep the run's work directory (server logs, configs) under bench/work.
    #[arg(long)]
    keep_work: bool,

    /// Do not pin servers and clients to CPUs (not comparable with pinned results).
    #[arg(long)]
    no_pin: bool,

    /// Measure every GET scenario with the built-in epoll client instead of wrk (to
    /// cross-check wrk; HEAD always uses it).
    #[arg(long)]
    hammer: bool,

    /// Record ringbox with `perf record -g` during its first round of every GET and
    /// 1 MiB upload scenario; the profiles go to bench/work/perf/ (needs `perf`:
    /// apt-get install -y linux-perf). Do not quote figures from such a run.
    #[arg(long)]
    perf: bool,

    /// Workspace root (default: the parent of this crate).
    #[arg(long)]
    workspace: Option<PathBuf>,

    /// Where to write `<timestamp>.json` and `latest.md` (default: bench/results).
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
        if self.keep {
            eprintln!("load: kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn selected_scenarios(list: &[String]) -> Result<Vec<String>, HarnessError> {
    if list.is_empty() {
        return Ok(ALL.iter().map(|s| s.to_string()).collect());
    }
    let mut out: Vec<String> = Vec::new();
    for s in list {
        let names: Vec<&str> = match s.trim() {
            "get" => ALL
                .iter()
                .copied()
                .filter(|n| {
                    !["upload", "idle", "api-", "events-"]
                        .iter()
                        .any(|p| n.starts_with(p))
                })
                .collect(),
            group @ ("api" | "api-4k" | "api-1m") => ALL
                .iter()
                .copied()
                .filter(|n| n.starts_with(group) && n.starts_with("api-"))
                .collect(),
            "events" => vec!["get-4k-events", "events-1000"],
            "upload" => ALL
                .iter()
                .copied()
                .filter(|n| n.starts_with("upload"))
                .collect(),
            "all" => ALL.to_vec(),
            other if ALL.contains(&other) => vec![other],
            other => {
                return Err(HarnessError::msg(format!(
                    "unknown scenario {other:?}; known: {} (or get, api, api-4k, api-1m, events, upload, all)",
                    ALL.join(", ")
                )))
            }
        };
        for n in names {
            if !out.iter().any(|o| o == n) {
                out.push(n.to_string());
            }
        }
    }
    // Keep the canonical order.
    out.sort_by_key(|n| ALL.iter().position(|a| a == n));
    Ok(out)
}

fn run(args: Args) -> Result<(), HarnessError> {
    let (started_at, stamp) = utc_now();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let (duration, rounds) = if args.quick {
        let explicit =
            |flag: &str| std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
        (
            if explicit("--duration") {
                args.duration
            } else {
                3
            },
            if explicit("--rounds") { args.rounds } else { 2 },
        )
    } else {
        (args.duration, args.rounds)
    };
    if rounds == 0 || duration == 0 {
        return Err(HarnessError::msg(
            "--rounds and --duration must be at least 1",
        ));
    }
    let scenarios = selected_scenarios(&args.scenarios)?;
    let mut servers: Vec<Kind> = Vec::new();
    if !args.no_ringbox {
        servers.push(Kind::Ringbox);
    }
    for p in &args.peers {
        match Kind::parse(p) {
            Some(Kind::Ringbox) | None => {
                return Err(HarnessError::msg(format!(
                    "unknown peer {p:?}; known: nginx, sws, rustypaste, ceiling"
                )))
            }
            Some(k) if !servers.contains(&k) => servers.push(k),
            Some(_) => {}
        }
    }

    let paths = Paths::discover(args.workspace.clone())?;
    let install = !args.no_install;
    let needs = |k: Kind| servers.contains(&k);
    let mut tools = Tools {
        nginx: setup::ensure_apt_tools(needs(Kind::Nginx), install)?,
        ..Tools::default()
    };
    if needs(Kind::Sws) {
        tools.sws = Some(setup::ensure_cargo_tool(
            &paths,
            "static-web-server",
            "static-web-server",
            install,
        )?);
    }
    if needs(Kind::Rustypaste) {
        tools.rustypaste = Some(setup::ensure_cargo_tool(
            &paths,
            "rustypaste",
            "rustypaste",
            install,
        )?);
    }
    if !args.no_build {
        setup::build(
            &paths,
            needs(Kind::Ringbox) && args.ringbox_bin.is_none(),
            needs(Kind::Ceiling),
        )?;
    }
    if needs(Kind::Ringbox) {
        let bin = args.ringbox_bin.clone().unwrap_or_else(|| paths.ringbox());
        if !bin.is_file() {
            return Err(HarnessError::msg(format!(
                "{} is missing; build it or drop --no-build",
                bin.display()
            )));
        }
        tools.ringbox = Some(bin);
    }
    if needs(Kind::Ceiling) {
        let bin = paths.ceiling();
        if !bin.is_file() {
            return Err(HarnessError::msg(format!(
                "{} is missing; build it or drop --no-build",
                bin.display()
            )));
        }
        tools.ceiling = Some(bin);
    }

    // Read before pinning: the CPU count follows this process's affinity.
    let machine = Machine::describe(&paths);
    // Servers on CPU 0, wrk and our clients (this process's threads) on CPU 1.
    let nproc = machine.nproc;
    let (server_cpu, client_cpu) = if args.no_pin {
        (None, None)
    } else if nproc >= 2 {
        (Some(0), Some(1))
    } else {
        eprintln!("load: only one CPU: servers and clients share CPU 0; ratios are still paired, figures are low");
        (Some(0), Some(0))
    };
    if let Some(cpu) = client_cpu {
        pin_current_thread(cpu)?;
    }
    let want_fds = (args.idle as u64 + 2_000).max(65_536);
    let nofile = raise_nofile(want_fds);
    let mut idle = args.idle;
    let mut limit_note = None;
    if (nofile as usize) < idle + 1_000 {
        idle = (nofile as usize).saturating_sub(1_000);
        limit_note = Some(format!(
            "RLIMIT_NOFILE is {nofile}: the idle scenario holds {idle} connections instead of {}",
            args.idle
        ));
    }

    let run_dir = paths.work.join(format!("run-{stamp}"));
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| HarnessError::io(format!("create {}", run_dir.display()), e))?;
    let _work = WorkDir {
        path: run_dir.clone(),
        keep: args.keep_work,
    };
    eprintln!(
        "load: commit {}{}, {} CPUs, {}, kernel {}",
        machine.commit,
        if machine.dirty { " (modified)" } else { "" },
        machine.nproc,
        machine.cpu_model,
        machine.kernel
    );
    eprintln!("load: writing fixtures (4 KiB, 64 KiB, 1 MiB, 64 MiB of random bytes)");
    let fixtures = prepare_fixtures(&run_dir.join("files"))?;

    let settings = Settings {
        duration: Duration::from_secs(duration),
        rounds,
        connections: args.connections,
        many_connections: args.many_connections,
        upload_connections: args.upload_connections,
        upload_size: 1 << 20,
        big_upload: args.big_upload_mib << 20,
        idle,
        server_cpu,
        client_cpu,
        hammer_all: args.hammer,
        perf_dir: args.perf.then(|| paths.work.join("perf")),
    };
    let settings_json = serde_json::json!({
        "duration_s": duration,
        "rounds": rounds,
        "quick": args.quick,
        "connections": args.connections,
        "many_connections": args.many_connections,
        "upload_connections": args.upload_connections,
        "idle_connections": idle,
        "big_upload_mib": args.big_upload_mib,
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "servers": servers.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "scenarios": scenarios,
        "nofile": nofile,
        "client": if args.hammer { "ringbox-bench epoll client" } else { "wrk (HEAD: ringbox-bench epoll client)" },
    });
    let mut runner = Runner {
        settings,
        tools,
        place: Placement {
            cpu: server_cpu,
            run_dir: run_dir.clone(),
        },
        fixtures,
        servers,
        selected: scenarios,
        results: Vec::new(),
        problems: limit_note.into_iter().collect(),
    };
    runner.run_all();

    let report = RunReport {
        tool: format!("ringbox-bench load {}", env!("CARGO_PKG_VERSION")),
        command,
        started_at,
        finished_at: utc_now().0,
        machine,
        settings: settings_json,
        scenarios: runner.results,
        problems: runner.problems,
    };
    let md = report.markdown();
    let results_dir = args
        .results
        .unwrap_or_else(|| paths.workspace.join("bench").join("results"));
    write_results(
        &results_dir,
        &format!("{stamp}.json"),
        "latest.md",
        &report,
        &md,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(list: &[&str]) -> Vec<String> {
        selected_scenarios(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn groups_select_their_scenarios() {
        let get = sel(&["get"]);
        assert_eq!(get.len(), 9);
        assert!(get.contains(&"get-4k-events".to_string()));
        assert!(get.iter().all(|n| !n.starts_with("api-")));
        let api = sel(&["api"]);
        assert_eq!(api.len(), 20);
        assert!(sel(&["api-1m"]).iter().all(|n| n.starts_with("api-1m-")));
        assert_eq!(sel(&["events"]), ["get-4k-events", "events-1000"]);
        assert_eq!(sel(&["upload"]).len(), 3);
        assert_eq!(sel(&[]).len(), ALL.len());
        assert!(selected_scenarios(&["nope".to_string()]).is_err());
    }
}
