//! Starting and stopping the real `ringbox` binary for a test.
//!
//! `Daemon::start(args)` runs `ringbox serve --listen 127.0.0.1:0 --data <tempdir> ARGS`
//! (plus `--io-driver $RINGBOX_TEST_IO_DRIVER` when that is set),
//! waits (at most 30 s) for the stderr line containing `ringbox listening` and takes the
//! bound address from its `addr=IP:PORT` field, then reads `<data>/admin.token`.
//! stdout and stderr are drained by two threads for the whole life of the process (so a
//! chatty daemon never blocks on a full pipe) into one log buffer; when a test panics
//! while a `Daemon` is alive, its `Drop` prints that log, so every failure shows what the
//! daemon said. `Drop` kills the process (SIGKILL by PID) and reaps it.
//!
//! Not done here: any HTTP (see `http.rs` and `raw.rs`).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The daemon binary cargo built for this test target.
pub const BIN: &str = env!("CARGO_BIN_EXE_ringbox");

/// How long a start may take before the test gives up (debug builds on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a SIGTERM'd daemon gets to exit before it is SIGKILLed (its default grace
/// period is 10 s; an idle daemon should exit at once).
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Everything the daemon wrote to stdout/stderr, shared with the drain threads.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<String>>);

impl Log {
    fn push(&self, line: &str) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.push_str(line);
        s.push('\n');
    }
    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A running `ringbox serve` with its own data directory.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    addr: SocketAddr,
    data: PathBuf,
    /// Owns the temporary data directory (removed on drop); `None` for `start_in`.
    _dir: Option<tempfile::TempDir>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    log: Log,
    token: String,
    starts: u32,
    /// When false (the default), a `panicked at` in the daemon's log fails the test.
    allow_panics: bool,
}

/// Removes ANSI escape sequences (in case the daemon colours its logs anyway).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            if it.peek() == Some(&'[') {
                it.next();
                for c in it.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Finds `addr=IP:PORT` (possibly quoted) in a log line.
fn parse_addr(line: &str) -> Option<SocketAddr> {
    let clean = strip_ansi(line);
    let i = clean.find("addr=")?;
    let rest = &clean[i + 5..];
    let token: String = rest
        .trim_start_matches('"')
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != ',' && *c != '}')
        .collect();
    token.parse().ok()
}

fn drain(
    stream: impl Read + Send + 'static,
    tag: &'static str,
    log: Log,
    ready: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']);
                    log.push(&format!("[{tag}] {line}"));
                    if let Some(tx) = &ready {
                        if strip_ansi(line).contains("ringbox listening") {
                            let _ = tx.send(line.to_string());
                        }
                    }
                }
            }
        }
    });
}

impl Daemon {
    /// Starts a daemon on a fresh temporary data directory with extra `args`.
    pub fn start(args: &[&str]) -> Daemon {
        Self::start_with_env(args, &[])
    }

    /// Like `start`, with extra environment variables (e.g. `RINGBOX_MAX_BODY`).
    pub fn start_with_env(args: &[&str], envs: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("ringbox-test-")
            .tempdir()
            .expect("create temp dir");
        let data = dir.path().to_path_buf();
        let mut d = Daemon::new(data, Some(dir), args, envs);
        d.spawn();
        d
    }

    /// Starts a daemon on an existing data directory (which the caller owns).
    pub fn start_in(data: &Path, args: &[&str]) -> Daemon {
        let mut d = Daemon::new(data.to_path_buf(), None, args, &[]);
        d.spawn();
        d
    }

    fn new(
        data: PathBuf,
        dir: Option<tempfile::TempDir>,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Daemon {
        Daemon {
            child: None,
            addr: "0.0.0.0:0".parse().unwrap(),
            data,
            _dir: dir,
            args: args.iter().map(|s| s.to_string()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log: Log::default(),
            token: String::new(),
            starts: 0,
            allow_panics: false,
        }
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "daemon already running");
        self.starts += 1;
        self.log
            .push(&format!("===== start #{} of {} =====", self.starts, BIN));
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(&self.data)
            .args(&self.args);
        // CI runs the suite a second time on the epoll driver.
        if let Ok(driver) = std::env::var("RINGBOX_TEST_IO_DRIVER") {
            cmd.arg("--io-driver").arg(driver);
        }
        // The daemon reads RINGBOX_* (and RhinoBox's RHINOBOX_*) variables; keep the
        // developer's environment out.
        for (k, _) in std::env::vars_os() {
            let k_str = k.to_string_lossy();
            if k_str.starts_with("RINGBOX_") || k_str.starts_with("RHINOBOX_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env(
            "RUST_LOG",
            std::env::var("RINGBOX_TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
        cmd.env("NO_COLOR", "1");
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {BIN}: {e}"));
        let (tx, rx) = mpsc::channel();
        drain(
            child.stderr.take().unwrap(),
            "stderr",
            self.log.clone(),
            Some(tx.clone()),
        );
        drain(
            child.stdout.take().unwrap(),
            "stdout",
            self.log.clone(),
            Some(tx),
        );
        let pid = child.id();
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        let line = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => break line,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Both pipes closed: the process is gone (or closed them); the
                    // try_wait below notices the exit.
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                std::thread::sleep(Duration::from_millis(100)); // let the drain threads finish
                self.child = None;
                panic!(
                    "ringbox (pid {pid}) exited with {status} before it was ready; args {:?}\n--- daemon output ---\n{}",
                    self.args,
                    self.log.text()
                );
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "ringbox (pid {pid}) did not log `ringbox listening` within {START_TIMEOUT:?}; args {:?}\n--- daemon output ---\n{}",
                    self.args,
                    self.log.text()
                );
            }
        };
        self.addr = parse_addr(&line).unwrap_or_else(|| {
            self.kill();
            panic!(
                "no `addr=IP:PORT` in the ready line {line:?}\n--- daemon output ---\n{}",
                self.log.text()
            )
        });
        assert_ne!(
            self.addr.port(),
            0,
            "daemon reported port 0 instead of the bound port: {line:?}"
        );

        // The token file is written before the listener opens; allow a moment anyway.
        // Surrounding whitespace is trimmed here so one formatting slip does not fail
        // every test; `auth::token_file_*` checks the file byte for byte.
        let token_path = self.data.join("admin.token");
        let token = super::util::poll(Duration::from_secs(3), || {
            std::fs::read_to_string(&token_path).ok()
        });
        self.token = token
            .unwrap_or_else(|| {
                panic!(
                    "no readable {} after start\n--- daemon output ---\n{}",
                    token_path.display(),
                    self.log.text()
                )
            })
            .trim()
            .to_string();
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    pub fn data_dir(&self) -> &Path {
        &self.data
    }
    /// The admin token from `<data>/admin.token` (whitespace trimmed).
    pub fn token(&self) -> &str {
        &self.token
    }
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon not running").id()
    }
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().map(|s| s.is_none()).unwrap_or(false),
            None => false,
        }
    }
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Panics (with the log) when the process has exited.
    pub fn assert_alive(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                panic!(
                    "ringbox exited unexpectedly with {st}\n--- daemon output ---\n{}",
                    self.log.text()
                );
            }
        } else {
            panic!("ringbox is not running");
        }
    }

    /// SIGKILL and reap (no chance to clean up: the crash case).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.log.push("===== killed (SIGKILL) =====");
        }
    }

    /// Lets this test pass even if the daemon logs a panic (by default `Drop` fails the
    /// test: bad input must never panic the daemon, even where it recovers).
    pub fn allow_panics(&mut self) {
        self.allow_panics = true;
    }

    /// Sends `sig` (e.g. `libc::SIGTERM`) to the daemon without waiting.
    pub fn signal(&mut self, sig: libc::c_int) {
        let c = self.child.as_mut().expect("daemon not running");
        // SAFETY: kill(2) on the PID of our own child, which has not been reaped yet
        // (we hold its `Child` and have not waited on it), so the PID cannot be reused.
        let rc = unsafe { libc::kill(c.id() as libc::pid_t, sig) };
        assert_eq!(
            rc,
            0,
            "kill({sig}) failed: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Waits up to `timeout` for the process to exit; `None` while it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.child.as_mut()?;
            if let Some(st) = c.try_wait().expect("try_wait") {
                self.child = None;
                self.log.push(&format!("===== exited: {st} ====="));
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then wait for a clean exit (SIGKILL and panic after 15 s). Returns the
    /// exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        match self.wait_exit(STOP_TIMEOUT) {
            Some(st) => st,
            None => {
                self.kill();
                panic!(
                    "ringbox did not exit within {STOP_TIMEOUT:?} of SIGTERM\n--- daemon output ---\n{}",
                    self.log.text()
                );
            }
        }
    }

    /// Graceful stop (SIGTERM), then start again on the same data dir with the same
    /// arguments. The port changes.
    pub fn restart(&mut self) {
        let st = self.stop();
        assert!(
            st.success(),
            "ringbox exited with {st} after SIGTERM\n--- daemon output ---\n{}",
            self.log.text()
        );
        self.spawn();
    }

    /// SIGKILL, then start again on the same data dir.
    pub fn restart_after_kill(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts the daemon again after `stop()`/`kill()`.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// Fields of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`, `RssAnon`, ...).
    pub fn proc_status_kib(&self, field: &str) -> u64 {
        proc_status_kib(self.pid(), field)
    }
}

/// Samples a process's memory every 5 ms on a thread and keeps the peaks, to catch a
/// short-lived buffer the current values would miss (`VmHWM` already covers peak RSS
/// but counts the file pages an mmap-based sender touches; `RssAnon` does not).
#[derive(Debug)]
pub struct MemSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<(u64, u64)>>,
}

impl MemSampler {
    pub fn start(pid: u32) -> MemSampler {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut anon, mut rss) = (0, 0);
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                    break;
                };
                for line in text.lines() {
                    let kib = || {
                        line.split_whitespace()
                            .nth(1)
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(0)
                    };
                    if line.starts_with("RssAnon:") {
                        anon = anon.max(kib());
                    } else if line.starts_with("VmRSS:") {
                        rss = rss.max(kib());
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (anon, rss)
        });
        MemSampler {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops sampling; returns the peaks (RssAnon KiB, VmRSS KiB).
    pub fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

/// One `kB` field of `/proc/<pid>/status`.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let s =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            return rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .expect("kB value");
        }
    }
    panic!("no {field} in /proc/{pid}/status");
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- ringbox output (data dir {}, addr {}) ---\n{}--- end of ringbox output ---",
                self.data.display(),
                self.addr,
                self.log.text()
            );
        }
        self.kill();
        if let Some(dir) = self._dir.take() {
            remove_in_background(dir);
        }
        // Bad input must never panic the daemon, even where it recovers (a worker
        // restarted, a connection dropped): fail the test that caused it.
        let log = self.log.text();
        if !self.allow_panics && !std::thread::panicking() && log.contains("panicked at") {
            panic!("ringbox panicked during this test\n--- daemon output ---\n{log}");
        }
    }
}

/// Deletes a data directory without making the test wait: removing the 256 blob
/// fan-out directories costs 0.2-0.8 s on a busy disk, per test. A detached `rm -rf`
/// outlives the test process if need be; without `rm`, the `TempDir` drop does it.
/// `RINGBOX_TEST_KEEP=1` keeps the directories for inspection.
fn remove_in_background(dir: tempfile::TempDir) {
    if std::env::var_os("RINGBOX_TEST_KEEP").is_some() {
        eprintln!("keeping {}", dir.keep().display());
        return;
    }
    let spawned = Command::new("rm")
        .arg("-rf")
        .arg("--")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if spawned.is_ok() {
        let _ = dir.keep(); // rm owns the deletion now
    }
}

/// Runs `ringbox ARGS` (a one-shot subcommand such as `check`) with a time limit and
/// returns its output.
pub fn run_cli(args: &[&str], timeout: Duration) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars_os() {
        let k_str = k.to_string_lossy();
        if k_str.starts_with("RINGBOX_") || k_str.starts_with("RHINOBOX_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("NO_COLOR", "1");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {BIN}: {e}"));
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`ringbox {}` did not finish within {timeout:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

#[test]
fn parse_ready_line() {
    let l = "2025-01-01T00:00:00.000000Z  INFO ringbox::server: ringbox listening addr=127.0.0.1:40123 workers=2";
    assert_eq!(parse_addr(l), Some("127.0.0.1:40123".parse().unwrap()));
    let l = "\u{1b}[2m2025\u{1b}[0m INFO ringbox listening \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:9";
    assert_eq!(parse_addr(l), Some("127.0.0.1:9".parse().unwrap()));
    assert_eq!(
        parse_addr(r#"{"msg":"ringbox listening","addr":"x"} addr="127.0.0.1:5""#),
        Some("127.0.0.1:5".parse().unwrap())
    );
}
