//! Everything a run needs before it measures: the workspace and target paths, the peers'
//! binaries (installed on first use), a release build of ringbox and the ceiling server,
//! and a description of the machine and commit for the report.
//!
//! Installs only from the package registries: wrk and nginx from Debian
//! (`apt-get update && apt-get install -y wrk nginx`, as root), static-web-server and
//! rustypaste from crates.io (`cargo install --locked --root bench/work/tools`). Nothing
//! is installed into the repository outside `bench/work`, which git ignores.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::proc::{run_visible, run_with_timeout};
use super::HarnessError;

/// Time limit of `apt-get update` + `install`.
const APT_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Time limit of one `cargo install` (static-web-server compiles ~300 crates on 2 cores).
const CARGO_INSTALL_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// Time limit of the release build of ringbox and the ceiling server.
const BUILD_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// Time limit of quick informational commands (`git`, `nginx -v`, `cargo metadata`).
const QUICK: Duration = Duration::from_secs(60);

/// Where things are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The workspace root (where `cargo build --release -p ringbox` runs).
    pub workspace: PathBuf,
    /// Cargo's target directory for the workspace (respects `CARGO_TARGET_DIR`).
    pub target_dir: PathBuf,
    /// `bench/work`: git-ignored scratch space for tools and runs.
    pub work: PathBuf,
    /// `bench/work/tools`: `cargo install --root` for the Rust peers.
    pub tools_root: PathBuf,
}

impl Paths {
    /// Finds the workspace (the parent of this crate unless overridden) and its target dir.
    pub fn discover(workspace: Option<PathBuf>) -> Result<Self, HarnessError> {
        let workspace = match workspace {
            Some(w) => w,
            None => Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map(Path::to_path_buf)
                .ok_or_else(|| {
                    HarnessError::msg("cannot find the workspace root; pass --workspace DIR")
                })?,
        };
        let workspace = workspace
            .canonicalize()
            .map_err(|e| HarnessError::io(format!("workspace {}", workspace.display()), e))?;
        let mut cmd = cargo();
        cmd.current_dir(&workspace)
            .args(["metadata", "--format-version", "1", "--no-deps"]);
        let out = run_with_timeout(cmd, QUICK)?;
        let target_dir = serde_json::from_str::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| {
                v.get("target_directory")
                    .and_then(|t| t.as_str())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| workspace.join("target"));
        let work = workspace.join("bench").join("work");
        let tools_root = work.join("tools");
        std::fs::create_dir_all(&tools_root)
            .map_err(|e| HarnessError::io(format!("create {}", tools_root.display()), e))?;
        Ok(Self {
            workspace,
            target_dir,
            work,
            tools_root,
        })
    }

    /// The ringbox binary of the release build.
    pub fn ringbox(&self) -> PathBuf {
        self.target_dir.join("release").join("ringbox")
    }

    /// The ceiling server binary of the release build.
    pub fn ceiling(&self) -> PathBuf {
        self.target_dir.join("release").join("ceiling")
    }

    /// A binary installed by `cargo install --root bench/work/tools`.
    pub fn tool(&self, bin: &str) -> PathBuf {
        self.tools_root.join("bin").join(bin)
    }
}

/// The cargo that runs us (`$CARGO` under `cargo run`), else `cargo` from PATH.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Makes sure wrk (and nginx when `need_nginx`) are installed; installs them with apt as
/// root. Returns the nginx binary when needed.
pub fn ensure_apt_tools(
    need_nginx: bool,
    allow_install: bool,
) -> Result<Option<PathBuf>, HarnessError> {
    let missing_wrk = on_path("wrk").is_none();
    let missing_nginx = need_nginx && on_path("nginx").is_none();
    if missing_wrk || missing_nginx {
        let what = match (missing_wrk, missing_nginx) {
            (true, true) => "wrk and nginx are",
            (true, false) => "wrk is",
            _ => "nginx is",
        };
        if !allow_install {
            return Err(HarnessError::msg(format!(
                "{what} not installed and --no-install was given; run: apt-get update && apt-get install -y wrk nginx"
            )));
        }
        if !rustix::process::getuid().is_root() {
            return Err(HarnessError::msg(format!(
                "{what} not installed; run as root, or first: sudo apt-get update && sudo apt-get install -y wrk nginx"
            )));
        }
        eprintln!("bench: {what} missing; running apt-get update && apt-get install -y wrk nginx");
        let mut update = Command::new("apt-get");
        update
            .args(["update"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        run_visible(update, APT_TIMEOUT)?;
        let mut install = Command::new("apt-get");
        install
            .args(["install", "-y", "wrk", "nginx"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        run_visible(install, APT_TIMEOUT)?;
    }
    if on_path("wrk").is_none() {
        return Err(HarnessError::msg(
            "wrk is still not on PATH after apt-get install",
        ));
    }
    if need_nginx {
        return on_path("nginx")
            .map(Some)
            .ok_or_else(|| HarnessError::msg("nginx is still not found after apt-get install"));
    }
    Ok(None)
}

/// Makes sure `bin` from crate `krate` is installed under `bench/work/tools`.
pub fn ensure_cargo_tool(
    paths: &Paths,
    krate: &str,
    bin: &str,
    allow_install: bool,
) -> Result<PathBuf, HarnessError> {
    let path = paths.tool(bin);
    if path.is_file() {
        return Ok(path);
    }
    if !allow_install {
        return Err(HarnessError::msg(format!(
            "{} is missing and --no-install was given; run: cargo install --locked --root {} {krate}",
            path.display(),
            paths.tools_root.display()
        )));
    }
    eprintln!(
        "bench: installing {krate} (cargo install --locked --root {} {krate}); this compiles for a while",
        paths.tools_root.display()
    );
    let mut cmd = cargo();
    cmd.current_dir(&paths.work)
        .arg("install")
        .arg("--locked")
        .arg("--root")
        .arg(&paths.tools_root)
        .arg(krate);
    run_visible(cmd, CARGO_INSTALL_TIMEOUT)?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::msg(format!(
            "cargo install {krate} finished but {} is missing",
            path.display()
        )))
    }
}

/// `cargo build --release -p ringbox` and the ceiling server, from the workspace root.
pub fn build(paths: &Paths, ringbox: bool, ceiling: bool) -> Result<(), HarnessError> {
    if ringbox {
        eprintln!("bench: cargo build --release -p ringbox");
        let mut cmd = cargo();
        cmd.current_dir(&paths.workspace)
            .args(["build", "--release", "-p", "ringbox"]);
        run_visible(cmd, BUILD_TIMEOUT).map_err(|e| {
            HarnessError::msg(format!(
                "building ringbox failed (is the daemon compiling?): {e}"
            ))
        })?;
        if !paths.ringbox().is_file() {
            return Err(HarnessError::msg(format!(
                "the build did not produce {}",
                paths.ringbox().display()
            )));
        }
    }
    if ceiling {
        eprintln!("bench: cargo build --release -p ringbox-bench --bin ceiling");
        let mut cmd = cargo();
        cmd.current_dir(&paths.workspace).args([
            "build",
            "--release",
            "-p",
            "ringbox-bench",
            "--bin",
            "ceiling",
        ]);
        run_visible(cmd, BUILD_TIMEOUT)?;
    }
    Ok(())
}

/// The machine and the code measured, printed and stored with every result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    /// `git rev-parse HEAD`.
    pub commit: String,
    /// Whether the work tree had uncommitted changes (`git status --porcelain`).
    pub dirty: bool,
    /// `nproc`.
    pub nproc: usize,
    /// The first `model name` of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `uname -r`.
    pub kernel: String,
    /// Peer versions (`nginx -v`, `wrk -v`, `cargo install --list`).
    pub versions: Vec<(String, String)>,
}

fn quick_output(cmd: Command) -> String {
    match run_with_timeout(cmd, QUICK) {
        Ok(f) => format!("{}{}", f.stdout, f.stderr).trim().to_string(),
        Err(e) => format!("({e})"),
    }
}

impl Machine {
    /// Reads the machine description and peer versions.
    pub fn describe(paths: &Paths) -> Self {
        let mut git = Command::new("git");
        git.current_dir(&paths.workspace)
            .args(["rev-parse", "HEAD"]);
        let commit = quick_output(git);
        let mut status = Command::new("git");
        status.current_dir(&paths.workspace).args([
            "status",
            "--porcelain",
            "--untracked-files=no",
        ]);
        let dirty = !quick_output(status).is_empty();
        let nproc = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = quick_output({
            let mut c = Command::new("uname");
            c.arg("-r");
            c
        });
        let mut versions = Vec::new();
        if let Some(nginx) = on_path("nginx") {
            let mut c = Command::new(nginx);
            c.arg("-v");
            versions.push((
                "nginx".to_string(),
                quick_output(c).replace("nginx version: ", ""),
            ));
        }
        if on_path("wrk").is_some() {
            let mut c = Command::new("wrk");
            c.arg("-v");
            let v = quick_output(c);
            // "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer": keep the version.
            let first = v.lines().next().unwrap_or("");
            let version: Vec<&str> = first.split_whitespace().skip(1).take(2).collect();
            versions.push(("wrk".to_string(), version.join(" ")));
        }
        let mut list = cargo();
        list.args(["install", "--list", "--root"])
            .arg(&paths.tools_root);
        for line in quick_output(list).lines() {
            if let Some((name, ver)) = line.trim_end_matches(':').split_once(' ') {
                if !line.starts_with(' ') {
                    versions.push((name.to_string(), ver.to_string()));
                }
            }
        }
        Self {
            commit,
            dirty,
            nproc,
            cpu_model,
            kernel,
            versions,
        }
    }
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ` and as a file-name stamp
/// `YYYY-MM-DDTHH-MM-SSZ`.
pub fn utc_now() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc_strings(secs)
}

/// [`utc_now`] for a given Unix time.
pub fn utc_strings(secs: u64) -> (String, String) {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    (
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z"),
        format!("{y:04}-{mo:02}-{d:02}T{h:02}-{m:02}-{s:02}Z"),
    )
}

#[cfg(test)]
mod tests {
    use super::utc_strings;

    #[test]
    fn utc_strings_match_known_dates() {
        assert_eq!(utc_strings(0).0, "1970-01-01T00:00:00Z");
        // 2000-02-29 (a leap day in a century leap year) 12:34:56
        assert_eq!(utc_strings(951_827_696).0, "2000-02-29T12:34:56Z");
        assert_eq!(utc_strings(1_798_761_599).1, "2026-12-31T23-59-59Z");
    }
}
