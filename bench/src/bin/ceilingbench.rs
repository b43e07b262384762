//! `ceilingbench`: what each io_uring feature is worth on this kernel. The variants of
//! the io_uring ceiling server (`ceiling-uring`, one thread, body from memory) and the
//! monoio ceiling (`ceiling`) against nginx (`sendfile`, 1 worker), in the same run,
//! A B A B, pinned like the `load` harness (servers on CPU 0, wrk on CPU 1).
//!
//! ```text
//! cargo run --release -p ringbox-bench --bin ceilingbench
//! cargo run --release -p ringbox-bench --bin ceilingbench -- --duration 3 --rounds 3
//! cargo run --release -p ringbox-bench --bin ceilingbench -- --variants plain,all --scenarios get-4k
//! ```
//!
//! Every figure is a ratio per round: `variant_i / nginx_i`, and `variant_i / plain_i`
//! (the plain io_uring loop, every feature off), so a feature's worth is its variant's
//! ratio to `plain`. The monoio ceiling answers 4 KiB for every path, so it runs in the
//! 4 KiB scenarios only. Results: `bench/results/ceiling-latest.md` and
//! `ceiling-<timestamp>.json`. The servers, wrk and fixtures come from the `load`
//! harness's modules (see `bench/README.md`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ringbox_bench::load::http::Conn;
use ringbox_bench::load::proc::{pin_current_thread, raise_nofile, run_visible};
use ringbox_bench::load::report::{fmt_value, spread, write_results, Measurement, Round, Spread};
use ringbox_bench::load::servers::{
    prepare_fixtures, start_ceiling, start_ceiling_uring, start_nginx, Placement, Server, Tools,
};
use ringbox_bench::load::setup::{self, utc_now, Machine, Paths};
use ringbox_bench::load::wrk::{self, WrkRun};
use ringbox_bench::load::HarnessError;
use serde_json::json;

/// The variants: name, `ceiling-uring` flags, what it shows.
const VARIANTS: &[(&str, &[&str], &str)] = &[
    ("plain", &[], "every feature off: single accept, one recv per read into a per-connection buffer, send, batched enter"),
    ("nobatch", &["--no-batch"], "plain, but one io_uring_enter per completion"),
    ("defer", &["--defer-taskrun"], "plain + DEFER_TASKRUN + SINGLE_ISSUER"),
    ("mshot", &["--multishot-accept", "--multishot-recv"], "plain + multishot accept + multishot recv with a provided buffer ring"),
    ("fixed", &["--fixed-files"], "plain + accepted sockets as direct descriptors"),
    ("all", &["--all"], "multishot accept and recv, buffer ring, fixed files, DEFER_TASKRUN, batching"),
    ("all-zc", &["--all", "--send-zc-min", "65536"], "all + SEND_ZC for answers of 64 KiB and more"),
    ("all-sqpoll", &["--all", "--sqpoll", "100"], "all + SQPOLL (its thread on the server's CPU; DEFER_TASKRUN is refused with SQPOLL, COOP_TASKRUN instead)"),
];

/// The scenarios: name, title, file, connections (0: --connections, 1: --many-connections).
const SCENARIOS: &[(&str, &str, &str, usize)] = &[
    ("get-4k", "GET 4 KiB", "4k.bin", 0),
    ("get-4k-512", "GET 4 KiB", "4k.bin", 1),
    ("get-64k", "GET 64 KiB", "64k.bin", 0),
    ("get-1m", "GET 1 MiB", "1m.bin", 0),
];

#[derive(Parser, Debug)]
#[command(
    name = "ceilingbench",
    about = "io_uring ceiling variants against nginx and the monoio ceiling"
)]
struct Args {
    /// Variants of ceiling-uring (comma-separated): plain, nobatch, defer, mshot, fixed,
    /// all, all-zc, all-sqpoll.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "plain,nobatch,defer,mshot,fixed,all,all-zc,all-sqpoll"
    )]
    variants: Vec<String>,
    /// Scenarios (comma-separated): get-4k, get-4k-512, get-64k, get-1m.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "get-4k,get-4k-512,get-1m"
    )]
    scenarios: Vec<String>,
    /// Leave the monoio ceiling out.
    #[arg(long)]
    no_monoio: bool,
    /// Seconds of every wrk run (short: the machine is shared).
    #[arg(long, default_value_t = 4)]
    duration: u64,
    /// Rounds (A B A B).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// wrk connections of the standard scenarios.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// wrk connections of get-4k-512.
    #[arg(long, default_value_t = 512)]
    many_connections: usize,
    /// Do not build the ceiling servers (use what is in the target dir).
    #[arg(long)]
    no_build: bool,
    /// Do not install wrk and nginx; fail with the command instead.
    #[arg(long)]
    no_install: bool,
    /// Do not pin (not comparable with pinned runs).
    #[arg(long)]
    no_pin: bool,
    /// Keep the run's work directory.
    #[arg(long)]
    keep_work: bool,
    /// Workspace root (default: the parent of this crate).
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// Where results go (default: bench/results).
    #[arg(long)]
    results: Option<PathBuf>,
}

/// One scenario's rounds and ratios.
#[derive(Debug, serde::Serialize)]
struct ScenarioOut {
    name: String,
    title: String,
    command: String,
    rounds: Vec<Round>,
    /// Per server: its figures, `/ nginx` and `/ plain` per paired round.
    summary: Vec<Row>,
}

#[derive(Debug, serde::Serialize)]
struct Row {
    server: String,
    figure: Option<Spread>,
    vs_nginx: Option<Spread>,
    vs_plain: Option<Spread>,
}

#[derive(Debug, serde::Serialize)]
struct VariantOut {
    name: String,
    flags: String,
    what: String,
    features: String,
}

#[derive(Debug, serde::Serialize)]
struct Report {
    tool: String,
    command: String,
    started_at: String,
    finished_at: String,
    machine: Machine,
    settings: serde_json::Value,
    variants: Vec<VariantOut>,
    scenarios: Vec<ScenarioOut>,
    problems: Vec<String>,
}

fn ratios(rounds: &[Round], a: &str, b: &str) -> Option<Spread> {
    let get = |r: &Round, n: &str| {
        r.results
            .iter()
            .find(|(name, _)| name == n)
            .and_then(|(_, m)| m.value)
    };
    let v: Vec<f64> = rounds
        .iter()
        .filter_map(|r| match (get(r, a), get(r, b)) {
            (Some(x), Some(y)) if y > 0.0 => Some(x / y),
            _ => None,
        })
        .collect();
    spread(&v)
}

fn summarize(rounds: &[Round], servers: &[String]) -> Vec<Row> {
    servers
        .iter()
        .map(|s| {
            let vals: Vec<f64> = rounds
                .iter()
                .filter_map(|r| {
                    r.results
                        .iter()
                        .find(|(n, _)| n == s)
                        .and_then(|(_, m)| m.value)
                })
                .collect();
            Row {
                server: s.clone(),
                figure: spread(&vals),
                vs_nginx: (s != "nginx").then(|| ratios(rounds, s, "nginx")).flatten(),
                vs_plain: (s != "plain" && s != "nginx")
                    .then(|| ratios(rounds, s, "plain"))
                    .flatten(),
            }
        })
        .collect()
}

fn fmt_spread(s: &Option<Spread>) -> String {
    match s {
        Some(s) if s.n > 1 => format!(
            "{} ({}-{})",
            fmt_value(s.median),
            fmt_value(s.min),
            fmt_value(s.max)
        ),
        Some(s) => fmt_value(s.median),
        None => "-".into(),
    }
}

fn fmt_ratio(s: &Option<Spread>) -> String {
    match s {
        Some(s) if s.n > 1 => format!("**{:.2}×** ({:.2}-{:.2})", s.median, s.min, s.max),
        Some(s) => format!("**{:.2}×**", s.median),
        None => "-".into(),
    }
}

impl Report {
    fn markdown(&self) -> String {
        use std::fmt::Write as _;
        let m = &self.machine;
        let mut s = String::new();
        let _ = writeln!(s, "### Ceiling variants run {}\n", self.started_at);
        let _ = writeln!(s, "- command: `{}`", self.command);
        let _ = writeln!(
            s,
            "- commit: `{}`{}",
            m.commit,
            if m.dirty { " (work tree modified)" } else { "" }
        );
        let _ = writeln!(
            s,
            "- machine: {} CPUs, {}, kernel {}",
            m.nproc, m.cpu_model, m.kernel
        );
        let versions: Vec<String> = m.versions.iter().map(|(n, v)| format!("{n} {v}")).collect();
        let _ = writeln!(s, "- peers: {}", versions.join(", "));
        let _ = writeln!(s, "- settings: {}", self.settings);
        let _ = writeln!(
            s,
            "- ratios per round (A B A B), median (min-max): `/ nginx` = variant / nginx, \
             `/ plain` = variant / the plain io_uring loop\n"
        );
        let _ = writeln!(s, "| variant | ceiling-uring flags | features as run |");
        let _ = writeln!(s, "| --- | --- | --- |");
        for v in &self.variants {
            let _ = writeln!(s, "| {} | `{}` | {} |", v.name, v.flags, v.features);
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| scenario | server | req/s | / nginx | / plain | rounds |"
        );
        let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- |");
        for sc in &self.scenarios {
            for r in &sc.summary {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} |",
                    sc.title,
                    r.server,
                    fmt_spread(&r.figure),
                    fmt_ratio(&r.vs_nginx),
                    fmt_ratio(&r.vs_plain),
                    r.figure.map_or(0, |f| f.n)
                );
            }
        }
        let _ = writeln!(s);
        for sc in &self.scenarios {
            let _ = writeln!(s, "#### {}: {}\n", sc.name, sc.title);
            let _ = writeln!(s, "Load: `{}`\n", sc.command);
            let names: Vec<&str> = sc.summary.iter().map(|r| r.server.as_str()).collect();
            let _ = writeln!(s, "| round | {} |", names.join(" | "));
            let _ = writeln!(s, "| --- |{}", " --- |".repeat(names.len()));
            for r in &sc.rounds {
                let cells: Vec<String> = names
                    .iter()
                    .map(|n| match r.results.iter().find(|(x, _)| x == n) {
                        Some((_, m)) => match m.value {
                            Some(v) => fmt_value(v),
                            None => "failed".into(),
                        },
                        None => "-".into(),
                    })
                    .collect();
                let _ = writeln!(s, "| {} | {} |", r.round, cells.join(" | "));
            }
            let _ = writeln!(s);
        }
        if !self.problems.is_empty() {
            let _ = writeln!(s, "#### Problems\n");
            for p in &self.problems {
                let _ = writeln!(s, "- {}", p.replace('\n', "\n  "));
            }
        }
        s
    }
}

/// Removes the run's work dir at the end unless asked to keep it.
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
            eprintln!("ceilingbench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn warm_up(server: &Server, target: &str) -> Result<(), HarnessError> {
    let mut conn = Conn::connect(server.addr)?;
    let resp = conn.request("GET", target, &[], None)?;
    if resp.status != 200 {
        return Err(HarnessError::msg(format!(
            "GET {target} answered {}",
            resp.status
        )));
    }
    Ok(())
}

fn run(args: Args) -> Result<(), HarnessError> {
    let (started_at, stamp) = utc_now();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    if args.rounds == 0 || args.duration == 0 {
        return Err(HarnessError::msg(
            "--rounds and --duration must be at least 1",
        ));
    }
    let mut variants = Vec::new();
    for v in &args.variants {
        match VARIANTS.iter().find(|(n, _, _)| n == &v.trim()) {
            Some(x) => variants.push(*x),
            None => {
                return Err(HarnessError::msg(format!(
                    "unknown variant {v:?}; known: {}",
                    VARIANTS.iter().map(|v| v.0).collect::<Vec<_>>().join(", ")
                )))
            }
        }
    }
    let mut scenarios = Vec::new();
    for s in &args.scenarios {
        match SCENARIOS.iter().find(|(n, ..)| n == &s.trim()) {
            Some(x) => scenarios.push(*x),
            None => return Err(HarnessError::msg(format!("unknown scenario {s:?}"))),
        }
    }
    let paths = Paths::discover(args.workspace.clone())?;
    let tools = Tools {
        nginx: setup::ensure_apt_tools(true, !args.no_install)?,
        ..Tools::default()
    };
    if !args.no_build {
        eprintln!("ceilingbench: cargo build --release -p ringbox-bench --bin ceiling --bin ceiling-uring");
        let mut cmd = setup::cargo();
        cmd.current_dir(&paths.workspace).args([
            "build",
            "--release",
            "-p",
            "ringbox-bench",
            "--bin",
            "ceiling",
            "--bin",
            "ceiling-uring",
        ]);
        run_visible(cmd, Duration::from_secs(40 * 60))?;
    }
    let uring_bin = paths.target_dir.join("release").join("ceiling-uring");
    let tools = Tools {
        ceiling: Some(paths.ceiling()),
        ..tools
    };
    for bin in [&uring_bin, &paths.ceiling()] {
        if !bin.is_file() {
            return Err(HarnessError::msg(format!(
                "{} is missing; build it or drop --no-build",
                bin.display()
            )));
        }
    }
    let machine = Machine::describe(&paths);
    let (server_cpu, client_cpu) = if args.no_pin {
        (None, None)
    } else if machine.nproc >= 2 {
        (Some(0), Some(1))
    } else {
        (Some(0), Some(0))
    };
    if let Some(cpu) = client_cpu {
        pin_current_thread(cpu)?;
    }
    let nofile = raise_nofile(65_536);
    let run_dir = paths.work.join(format!("ceiling-{stamp}"));
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| HarnessError::io(format!("create {}", run_dir.display()), e))?;
    let _work = WorkDir {
        path: run_dir.clone(),
        keep: args.keep_work,
    };
    eprintln!(
        "ceilingbench: commit {}{}, {} CPUs, {}, kernel {}",
        machine.commit,
        if machine.dirty { " (modified)" } else { "" },
        machine.nproc,
        machine.cpu_model,
        machine.kernel
    );
    let fixtures = prepare_fixtures(&run_dir.join("files"))?;
    let place = Placement {
        cpu: server_cpu,
        run_dir: run_dir.clone(),
    };

    // Start everything once; every server is checked with one GET of each file it serves.
    let mut problems = Vec::new();
    let mut servers: Vec<(String, Server)> = Vec::new();
    let mut variant_out = Vec::new();
    eprintln!("ceilingbench: starting nginx");
    servers.push(("nginx".into(), start_nginx(&tools, &place, &fixtures.dir)?));
    if !args.no_monoio {
        match start_ceiling(&tools, &place) {
            Ok(s) => servers.push(("monoio".into(), s)),
            Err(e) => problems.push(format!("the monoio ceiling could not start: {e}")),
        }
    }
    for (name, flags, what) in &variants {
        match start_ceiling_uring(&uring_bin, &place, name, flags) {
            Ok((s, features)) => {
                eprintln!("ceilingbench: {name}: {features}");
                variant_out.push(VariantOut {
                    name: name.to_string(),
                    flags: flags.join(" "),
                    what: what.to_string(),
                    features,
                });
                servers.push((name.to_string(), s));
            }
            Err(e) => problems.push(format!("variant {name} could not start: {e}")),
        }
    }
    for (name, s) in servers.iter_mut() {
        for f in &fixtures.files {
            if s.paths.contains_key(&f.name) {
                if let Err(e) = s.verify(f) {
                    problems.push(format!("{name}: {e}"));
                }
            }
        }
    }

    let mut outs = Vec::new();
    for (sname, title, file, which) in &scenarios {
        let conns = if *which == 0 {
            args.connections
        } else {
            args.many_connections
        };
        let title = format!("{title}, {conns} conns");
        eprintln!("ceilingbench: scenario {sname} ({title})");
        let mut command = String::new();
        let mut rounds = Vec::new();
        // The monoio ceiling serves its 4 KiB body for every path.
        let taking: Vec<usize> = (0..servers.len())
            .filter(|&i| servers[i].0 != "monoio" || *file == "4k.bin")
            .filter(|&i| servers[i].1.paths.contains_key(*file))
            .collect();
        for round in 1..=args.rounds {
            let mut r = Round {
                round,
                results: Vec::new(),
            };
            for &i in &taking {
                let (name, server) = &mut servers[i];
                let target = server.target(file)?.to_string();
                let run = WrkRun {
                    url: server.url(&target),
                    headers: Vec::new(),
                    method: "GET".into(),
                    connections: conns,
                    duration: Duration::from_secs(args.duration),
                    timeout: Duration::from_secs(10),
                };
                if command.is_empty() {
                    command = wrk::quoted(&wrk::command_line(
                        &run,
                        client_cpu,
                        &run_dir.join("wrk-get.lua"),
                    ));
                }
                let res =
                    warm_up(server, &target).and_then(|()| wrk::run(&run, client_cpu, &run_dir));
                let m = match res {
                    Ok(w) => {
                        let problem = w.problem();
                        Measurement {
                            value: problem.is_none().then(|| w.rps()),
                            detail: json!({
                                "req_per_s": w.rps(),
                                "mib_per_s": w.bytes_per_s() / (1024.0 * 1024.0),
                                "p99_ms": w.p99_us / 1000.0,
                                "wrk": w,
                            }),
                            error: problem,
                        }
                    }
                    Err(e) => Measurement {
                        value: None,
                        detail: serde_json::Value::Null,
                        error: Some(e.to_string()),
                    },
                };
                let m = match server.check_alive() {
                    Ok(()) => m,
                    Err(e) => Measurement {
                        value: None,
                        detail: m.detail,
                        error: Some(e.to_string()),
                    },
                };
                match (&m.value, &m.error) {
                    (Some(v), _) => eprintln!(
                        "  [{sname}] round {round}/{} {name:<11} {} req/s",
                        args.rounds,
                        fmt_value(*v)
                    ),
                    (None, e) => {
                        let e = e.clone().unwrap_or_default();
                        eprintln!(
                            "  [{sname}] round {round}/{} {name:<11} FAILED: {e}",
                            args.rounds
                        );
                        problems.push(format!("[{sname}] round {round} {name}: {e}"));
                    }
                }
                r.results.push((name.clone(), m));
            }
            rounds.push(r);
        }
        let names: Vec<String> = taking.iter().map(|&i| servers[i].0.clone()).collect();
        let summary = summarize(&rounds, &names);
        outs.push(ScenarioOut {
            name: sname.to_string(),
            title,
            command,
            rounds,
            summary,
        });
    }
    drop(servers);

    let report = Report {
        tool: format!("ringbox-bench ceilingbench {}", env!("CARGO_PKG_VERSION")),
        command,
        started_at,
        finished_at: utc_now().0,
        machine,
        settings: json!({
            "duration_s": args.duration,
            "rounds": args.rounds,
            "connections": args.connections,
            "many_connections": args.many_connections,
            "server_cpu": server_cpu,
            "client_cpu": client_cpu,
            "server_threads": 1,
            "nofile": nofile,
            "scenarios": scenarios.iter().map(|s| s.0).collect::<Vec<_>>(),
            "variants": variants.iter().map(|v| v.0).collect::<Vec<_>>(),
        }),
        variants: variant_out,
        scenarios: outs,
        problems,
    };
    let md = report.markdown();
    let dir = args
        .results
        .unwrap_or_else(|| paths.workspace.join("bench").join("results"));
    write_results(
        &dir,
        &format!("ceiling-{stamp}.json"),
        "ceiling-latest.md",
        &report,
        &md,
    )?;
    Ok(())
}
