//! `thumbbench`: thumbnails per second of 12-megapixel JPEGs, ringbox against
//! `vipsthumbnail` (libvips) and ImageMagick's `convert -thumbnail`, on the same files
//! and the same CPUs, A B A B.
//!
//! ```text
//! cargo run --release -p ringbox-bench --bin thumbbench                 # all CPUs
//! cargo run --release -p ringbox-bench --bin thumbbench -- --cores 1    # CPU 0 only
//! ```
//!
//! What each side does with `--images N` photo-like 4000 x 3000 JPEGs (see
//! `src/load/photos.rs`), every round, timed from the first request or process to the
//! last answer or exit:
//! - **ringbox** (release build, fresh data directory each round, `--workers C
//!   --thumbnail-concurrency C --thumbnail-nice 0 --thumbnail-eager false`, files
//!   uploaded before the clock starts): C client threads ask for
//!   `GET /v1/objects/<id>/thumbnail?size=256&format=jpeg` of their share of the files;
//!   every answer is checked (200, a JPEG whose longest side is 256). This includes HTTP,
//!   writing each thumbnail to the cache and reading the source from the blob store.
//! - **vipsthumbnail** (Debian `libvips-tools`): C processes, each given its share of the
//!   files: `vipsthumbnail --size 256 -o <dir>/%s.jpg[Q=82,strip] <files>`.
//! - **imagemagick** (Debian `imagemagick`, `convert-im6.q16`): C workers, each running
//!   `convert <in> -thumbnail 256x256 -quality 82 <out>` per file of its share (the
//!   command users write), and **imagemagick-hint** the same with
//!   `-define jpeg:size=512x512` before the input (libjpeg's scaled decoding, what
//!   ImageMagick users add when they know it).
//!
//! Every process runs under `taskset -c <CPUs>` (C = the number of CPUs given), so all
//! sides get the same cores. Output: a Markdown table (thumbnails/s, ratio ringbox /
//! peer per round, median and min-max) printed and written to
//! `bench/results/thumbs-latest.md`, with `thumbs-<timestamp>.json`.
//!
//! The tools are installed with `apt-get install -y libvips-tools imagemagick` when
//! missing (as root; otherwise the command is printed).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use ringbox_bench::load::http::Conn;
use ringbox_bench::load::photos::write_photos;
use ringbox_bench::load::proc::{run_with_timeout, ServerProcess};
use ringbox_bench::load::report::write_results;
use ringbox_bench::load::report::{Better, Measurement, Round, RunReport, ScenarioResult};
use ringbox_bench::load::servers::parse_addr;
use ringbox_bench::load::setup::{self, utc_now, Machine, Paths};
use ringbox_bench::load::HarnessError;

#[derive(Parser, Debug)]
#[command(
    name = "thumbbench",
    about = "Thumbnails per second: ringbox against vipsthumbnail and ImageMagick"
)]
struct Args {
    /// Photos per round (12 MP JPEGs, generated once and reused).
    #[arg(long, default_value_t = 24)]
    images: usize,
    /// Rounds (A B A B).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// CPUs every side gets (taskset -c 0..CORES-1); default: all.
    #[arg(long)]
    cores: Option<usize>,
    /// Longest side of the thumbnails.
    #[arg(long, default_value_t = 256)]
    size: u32,
    /// Use this ringbox binary instead of building one.
    #[arg(long)]
    ringbox_bin: Option<PathBuf>,
    /// Do not build ringbox.
    #[arg(long)]
    no_build: bool,
    /// Do not install missing tools.
    #[arg(long)]
    no_install: bool,
    /// Workspace root (default: the parent of this crate).
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// Keep the run's work directory.
    #[arg(long)]
    keep_work: bool,
}

const TIMEOUT: Duration = Duration::from_secs(600);

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("thumbbench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The first of `names` on PATH (or /usr/bin).
fn find_tool(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn ensure_tools(install: bool) -> Result<(PathBuf, PathBuf), HarnessError> {
    // convert-im6.q16 first: `convert` may be a wrapper script on some machines.
    let find = || {
        (
            find_tool(&["vipsthumbnail"]),
            find_tool(&["convert-im6.q16", "convert"]),
        )
    };
    if let (Some(v), Some(c)) = find() {
        return Ok((v, c));
    }
    let cmd = "apt-get install -y libvips-tools imagemagick";
    if !install || !rustix::process::geteuid().is_root() {
        return Err(HarnessError::msg(format!(
            "vipsthumbnail or ImageMagick is missing; install them with `{cmd}`"
        )));
    }
    eprintln!("thumbbench: {cmd}");
    let mut c = Command::new("apt-get");
    c.args(["install", "-y", "libvips-tools", "imagemagick"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    run_with_timeout(c, TIMEOUT)?;
    match find() {
        (Some(v), Some(c)) => Ok((v, c)),
        _ => Err(HarnessError::msg(format!(
            "`{cmd}` did not provide the tools"
        ))),
    }
}

fn taskset(cpus: &str, program: &Path) -> Command {
    let mut c = Command::new("taskset");
    c.arg("-c").arg(cpus).arg(program);
    c
}

fn version(program: &Path, arg: &str) -> String {
    let mut c = Command::new(program);
    c.arg(arg);
    match run_with_timeout(c, Duration::from_secs(10)) {
        Ok(f) => format!("{}{}", f.stdout, f.stderr)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        Err(e) => format!("({e})"),
    }
}

/// Checks that `data` is a JPEG whose longest side is `size`.
fn check_jpeg(data: &[u8], size: u32, what: &str) -> Result<(), HarnessError> {
    let img = image::load_from_memory_with_format(data, image::ImageFormat::Jpeg)
        .map_err(|e| HarnessError::msg(format!("{what}: not a JPEG: {e}")))?;
    if img.width().max(img.height()) != size {
        return Err(HarnessError::msg(format!(
            "{what}: {}x{} is not {size} on its longest side",
            img.width(),
            img.height()
        )));
    }
    Ok(())
}

/// One ringbox round: start, upload, time the thumbnails, stop.
fn ringbox_round(
    bin: &Path,
    cpus: &str,
    cores: usize,
    dir: &Path,
    photos: &[PathBuf],
    size: u32,
) -> Result<f64, HarnessError> {
    let data = dir.join("data");
    let mut cmd = taskset(cpus, bin);
    cmd.arg("serve")
        .args(["--listen", "127.0.0.1:0", "--durability", "none"])
        .arg("--data")
        .arg(&data)
        .args(["--workers", &cores.to_string()])
        .args(["--thumbnail-concurrency", &cores.to_string()])
        .args(["--thumbnail-nice", "0", "--thumbnail-eager", "false"])
        .args(["--thumbnail-wait", "300s", "--max-connections-per-ip", "0"]);
    let mut process = ServerProcess::spawn("ringbox", cmd, &dir.join("server.log"))?;
    let line = process.wait_for_line("ringbox listening", Duration::from_secs(30))?;
    let addr =
        parse_addr(&line).ok_or_else(|| HarnessError::msg(format!("no addr in {line:?}")))?;
    let token = std::fs::read_to_string(data.join("admin.token"))
        .map_err(|e| HarnessError::io("read the admin token", e))?;
    let auth = format!("Bearer {}", token.trim());
    let mut ids = Vec::new();
    let mut conn = Conn::connect(addr)?;
    for p in photos {
        let bytes = std::fs::read(p).map_err(|e| HarnessError::io(p.display(), e))?;
        let resp = conn.request(
            "POST",
            "/v1/objects?name=photo.jpg",
            &[("Authorization", &auth)],
            Some(&bytes),
        )?;
        let v: serde_json::Value = serde_json::from_slice(&resp.body)
            .map_err(|e| HarnessError::msg(format!("upload answer: {e}: {}", resp.body_text())))?;
        ids.push(
            v["id"]
                .as_str()
                .ok_or_else(|| HarnessError::msg(format!("upload answer: {v}")))?
                .to_string(),
        );
    }
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| -> Result<(), HarnessError> {
        let handles: Vec<_> = (0..cores)
            .map(|_| {
                s.spawn(|| -> Result<(), HarnessError> {
                    let mut conn = Conn::connect(addr)?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(id) = ids.get(i) else { return Ok(()) };
                        let target = format!("/v1/objects/{id}/thumbnail?size={size}&format=jpeg");
                        let resp =
                            conn.request("GET", &target, &[("Authorization", &auth)], None)?;
                        if resp.status != 200 {
                            return Err(HarnessError::msg(format!(
                                "ringbox: GET {target}: {} {}",
                                resp.status,
                                resp.body_text()
                            )));
                        }
                        check_jpeg(&resp.body, size, "ringbox")?;
                    }
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| HarnessError::msg("a client thread panicked"))??;
        }
        Ok(())
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    process.stop();
    Ok(photos.len() as f64 / elapsed)
}

/// The files of worker `w` of `n`.
fn share(photos: &[PathBuf], w: usize, n: usize) -> Vec<PathBuf> {
    photos.iter().skip(w).step_by(n).cloned().collect()
}

/// One peer round: `cores` workers, each running `per_worker(files, out_dir)` commands
/// one after the other; returns thumbnails per second after checking the outputs.
fn peer_round(
    cores: usize,
    dir: &Path,
    photos: &[PathBuf],
    size: u32,
    name: &str,
    commands: impl Fn(&[PathBuf], &Path) -> Vec<Command> + Sync,
) -> Result<f64, HarnessError> {
    let out = dir.join(name);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(|e| HarnessError::io(out.display(), e))?;
    let started = Instant::now();
    std::thread::scope(|s| -> Result<(), HarnessError> {
        let handles: Vec<_> = (0..cores)
            .map(|w| {
                let files = share(photos, w, cores);
                let out = out.clone();
                let commands = &commands;
                s.spawn(move || -> Result<(), HarnessError> {
                    for mut cmd in commands(&files, &out) {
                        // A blocking wait (no polling): the peer is timed to its exit.
                        let res = cmd
                            .stdin(std::process::Stdio::null())
                            .output()
                            .map_err(|e| HarnessError::msg(format!("cannot run {cmd:?}: {e}")))?;
                        if !res.status.success() {
                            return Err(HarnessError::msg(format!(
                                "{cmd:?} failed ({}): {}",
                                res.status,
                                String::from_utf8_lossy(&res.stderr)
                            )));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| HarnessError::msg("a worker thread panicked"))??;
        }
        Ok(())
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut made = 0;
    for e in std::fs::read_dir(&out).map_err(|e| HarnessError::io(out.display(), e))? {
        let p = e.map_err(|e| HarnessError::io(out.display(), e))?.path();
        let data = std::fs::read(&p).map_err(|e| HarnessError::io(p.display(), e))?;
        check_jpeg(&data, size, name)?;
        made += 1;
    }
    if made != photos.len() {
        return Err(HarnessError::msg(format!(
            "{name} made {made} thumbnails of {}",
            photos.len()
        )));
    }
    Ok(photos.len() as f64 / elapsed)
}

fn run(args: Args) -> Result<(), HarnessError> {
    let (started_at, stamp) = utc_now();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let paths = Paths::discover(args.workspace.clone())?;
    let (vips, convert) = ensure_tools(!args.no_install)?;
    if !args.no_build && args.ringbox_bin.is_none() {
        setup::build(&paths, true, false)?;
    }
    let bin = args.ringbox_bin.clone().unwrap_or_else(|| paths.ringbox());
    let machine = Machine::describe(&paths);
    let cores = args
        .cores
        .unwrap_or(machine.nproc)
        .clamp(1, machine.nproc.max(1));
    let cpus = if cores == 1 {
        "0".to_string()
    } else {
        format!("0-{}", cores - 1)
    };
    let run_dir = paths.work.join(format!("thumbs-{stamp}"));
    std::fs::create_dir_all(&run_dir).map_err(|e| HarnessError::io(run_dir.display(), e))?;
    let photos = write_photos(&paths.work, args.images, 4000, 3000)?;
    let photo_bytes: u64 = photos
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let size = args.size;
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let mut r = Round {
            round,
            results: Vec::new(),
        };
        let mut record = |name: &str, res: Result<f64, HarnessError>| {
            let m = match res {
                Ok(v) => {
                    eprintln!(
                        "  [thumbnails] round {round}/{} {name:<17} {v:.1} thumbnails/s",
                        args.rounds
                    );
                    Measurement {
                        value: Some(v),
                        ..Measurement::default()
                    }
                }
                Err(e) => {
                    eprintln!(
                        "  [thumbnails] round {round}/{} {name:<17} FAILED: {e}",
                        args.rounds
                    );
                    Measurement {
                        value: None,
                        error: Some(e.to_string()),
                        ..Measurement::default()
                    }
                }
            };
            r.results.push((name.to_string(), m));
        };
        let rb_dir = run_dir.join(format!("ringbox-{round}"));
        std::fs::create_dir_all(&rb_dir).map_err(|e| HarnessError::io(rb_dir.display(), e))?;
        record(
            "ringbox",
            ringbox_round(&bin, &cpus, cores, &rb_dir, &photos, size),
        );
        let _ = std::fs::remove_dir_all(&rb_dir);
        record(
            "vipsthumbnail",
            peer_round(
                cores,
                &run_dir,
                &photos,
                size,
                "vipsthumbnail",
                |files, out| {
                    let mut c = taskset(&cpus, &vips);
                    c.args(["--size", &size.to_string(), "-o"])
                        .arg(format!("{}/%s.jpg[Q=82,strip]", out.display()))
                        .args(files);
                    vec![c]
                },
            ),
        );
        for (name, hint) in [("imagemagick", false), ("imagemagick-hint", true)] {
            record(
                name,
                peer_round(cores, &run_dir, &photos, size, name, |files, out| {
                    files
                        .iter()
                        .map(|f| {
                            let mut c = taskset(&cpus, &convert);
                            if hint {
                                c.args([
                                    "-define",
                                    &format!("jpeg:size={}x{}", size * 2, size * 2),
                                ]);
                            }
                            c.arg(f)
                                .args(["-thumbnail", &format!("{size}x{size}")])
                                .args(["-quality", "82", "-strip"])
                                .arg(out.join(f.file_name().unwrap_or_default()));
                            c
                        })
                        .collect()
                }),
            );
        }
        rounds.push(r);
    }
    let mut result = ScenarioResult {
        name: "thumbnails-12mp".into(),
        title: format!("{size} px JPEG thumbnails of 12 MP JPEGs, {cores} CPU(s)"),
        description: format!(
            "{} photo-like 4000x3000 JPEGs ({:.1} MiB in all) per round; every side on CPUs {cpus} \
             (taskset), {cores} at once. ringbox: GET /v1/objects/<id>/thumbnail?size={size}&format=jpeg \
             from {cores} client threads (fresh data directory, sources uploaded before the clock). \
             vipsthumbnail: {cores} processes. ImageMagick: {cores} workers running one convert per file; \
             -hint adds -define jpeg:size={}x{}.",
            photos.len(),
            photo_bytes as f64 / 1048576.0,
            size * 2,
            size * 2
        ),
        unit: "thumbnails/s".into(),
        better: Better::Higher,
        command: command.clone(),
        rounds,
        summary: Vec::new(),
        notes: vec![
            format!("vipsthumbnail: {}", version(&vips, "--version")),
            format!("ImageMagick: {}", version(&convert, "-version")),
        ],
    };
    result.summarize();
    let report = RunReport {
        tool: format!("ringbox-bench thumbbench {}", env!("CARGO_PKG_VERSION")),
        command,
        started_at,
        finished_at: utc_now().0,
        machine,
        settings: serde_json::json!({
            "images": photos.len(),
            "rounds": args.rounds,
            "cores": cores,
            "cpus": cpus,
            "size": size,
        }),
        scenarios: vec![result],
        problems: Vec::new(),
    };
    let md = report.markdown();
    if !args.keep_work {
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    write_results(
        &paths.workspace.join("bench").join("results"),
        &format!("thumbs-{stamp}.json"),
        "thumbs-latest.md",
        &report,
        &md,
    )
}
