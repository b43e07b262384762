//! Child processes for the load harness: servers that are always killed, commands that
//! always end, CPU pinning, file-descriptor limits and memory readings from `/proc`.
//!
//! Every server the harness starts is held by a [`ServerProcess`] whose `Drop` sends
//! SIGTERM to the process and every descendant it had, waits a little, then SIGKILLs
//! what is left, so a failing scenario (an `?` or a panic) still stops its servers.
//! Servers are also started with `PR_SET_PDEATHSIG = SIGKILL`, so they die with the
//! harness even when the harness itself is killed and no destructor runs.
//!
//! The only `unsafe` of the crate is here: `pre_exec` to set that death signal.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Resource, Rlimit, Signal};

use super::HarnessError;

/// How long a server gets to exit after SIGTERM before it is SIGKILLed.
const TERM_GRACE: Duration = Duration::from_secs(3);

/// Adds `taskset -c CPU` in front of a command, so the child and everything it forks
/// (nginx's worker, the servers' threads) run on that CPU only.
pub fn pinned(cpu: Option<usize>, program: &Path) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Makes the child die with SIGKILL when the harness thread that spawned it exits.
///
/// Spawn servers from the main thread only: the signal fires when the *thread* that
/// forked the child ends.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec; it only performs one
    // prctl(2) system call, which is async-signal-safe, and touches no memory shared with
    // the parent (no allocation, no locks).
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
                .map_err(io::Error::from)
        });
    }
}

/// A running server: killed (with its descendants) when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    /// Short name for messages ("nginx", "ringbox").
    pub name: String,
    child: Child,
    /// Where its stdout and stderr go; read for the ready line and for error messages.
    pub log: PathBuf,
    stopped: bool,
}

impl ServerProcess {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self, HarnessError> {
        let out = File::create(log)
            .map_err(|e| HarnessError::io(format!("create {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| HarnessError::io("dup log file", e))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| {
            HarnessError::msg(format!(
                "cannot start {name} ({:?}): {e}",
                cmd.get_program()
            ))
        })?;
        Ok(Self {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            stopped: false,
        })
    }

    /// The process id (the server itself: `taskset` execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The last `max` bytes of the server's log, for error messages.
    pub fn log_tail(&self, max: usize) -> String {
        tail_of_file(&self.log, max)
    }

    /// Polls the log until a line contains `needle`; returns that line.
    pub fn wait_for_line(
        &mut self,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut text = String::new();
            if let Ok(mut f) = File::open(&self.log) {
                let _ = f.read_to_string(&mut text);
            }
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                return Ok(line.to_string());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(HarnessError::msg(format!(
                    "{} exited ({status}) before logging {needle:?}; log:\n{}",
                    self.name,
                    self.log_tail(3000)
                )));
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::msg(format!(
                    "{} did not log {needle:?} within {timeout:?}; log:\n{}",
                    self.name,
                    self.log_tail(3000)
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Memory of the server and all its descendants (nginx's worker), summed.
    pub fn memory(&self) -> Memory {
        tree_memory(self.pid())
    }

    /// SIGTERM to the process and its descendants, SIGKILL after a grace period.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pids = tree_pids(self.pid());
        for &pid in &pids {
            signal(pid, Signal::TERM);
        }
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_)))
                && pids.iter().all(|&p| !is_alive(p, self.pid()))
            {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        for &pid in &pids {
            if pid == self.pid() || is_alive(pid, self.pid()) {
                signal(pid, Signal::KILL);
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: u32, sig: Signal) {
    if let Some(p) = Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Whether `pid` still runs (and is not a zombie waiting for `parent`, our direct child).
fn is_alive(pid: u32, parent: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !(state == Some("Z") || (pid == parent && state == Some("X")))
        }
        Err(_) => false,
    }
}

/// `root` and all its descendants, found by scanning the parent ids in `/proc/*/stat`.
pub fn tree_pids(root: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                // Fields after the command name (which may hold spaces and parentheses).
                if let Some((_, rest)) = stat.rsplit_once(')') {
                    let mut f = rest.split_whitespace();
                    let _state = f.next();
                    if let Some(ppid) = f.next().and_then(|p| p.parse().ok()) {
                        parent_of.push((pid, ppid));
                    }
                }
            }
        }
    }
    let mut tree: BTreeSet<u32> = BTreeSet::from([root]);
    loop {
        let before = tree.len();
        for &(pid, ppid) in &parent_of {
            if tree.contains(&ppid) {
                tree.insert(pid);
            }
        }
        if tree.len() == before {
            break;
        }
    }
    let mut v: Vec<u32> = tree.into_iter().collect();
    // The root first, so it gets the signal first (nginx's master stops its worker).
    v.retain(|&p| p != root);
    v.insert(0, root);
    v
}

/// Resident memory in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss: u64,
    /// `VmHWM`: the peak resident set since the process started.
    pub hwm: u64,
}

/// `VmRSS` and `VmHWM` of one process, from `/proc/<pid>/status`.
pub fn process_memory(pid: u32) -> Memory {
    let mut m = Memory::default();
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        for line in status.lines() {
            let kib = |l: &str| -> u64 {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1024
            };
            if line.starts_with("VmRSS:") {
                m.rss = kib(line);
            } else if line.starts_with("VmHWM:") {
                m.hwm = kib(line);
            }
        }
    }
    m
}

/// The memory of a process tree, summed (each process's own peak: an upper bound of the
/// tree's peak).
pub fn tree_memory(root: u32) -> Memory {
    tree_pids(root)
        .into_iter()
        .map(process_memory)
        .fold(Memory::default(), |a, b| Memory {
            rss: a.rss + b.rss,
            hwm: a.hwm + b.hwm,
        })
}

/// The output of a command that ran to its end (or was killed at its time limit).
#[derive(Debug)]
pub struct Finished {
    /// Exit status; `None` when it was killed at the time limit.
    pub status: Option<ExitStatus>,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
}

/// Runs `cmd` with captured output, killing it (and its descendants) at `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<Finished, HarnessError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let desc = format!("{:?}", cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| HarnessError::msg(format!("cannot run {desc}: {e}")))?;
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                for pid in tree_pids(child.id()) {
                    signal(pid, Signal::KILL);
                }
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(HarnessError::io(format!("wait for {desc}"), e)),
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}

/// Runs `cmd` with inherited stdout/stderr (build and install steps the user should see),
/// killing it at `timeout`.
pub fn run_visible(mut cmd: Command, timeout: Duration) -> Result<(), HarnessError> {
    let desc = format!("{:?}", cmd);
    cmd.stdin(Stdio::null());
    die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| HarnessError::msg(format!("cannot run {desc}: {e}")))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(HarnessError::msg(format!("{desc} failed: {st}"))),
            Ok(None) if Instant::now() >= deadline => {
                for pid in tree_pids(child.id()) {
                    signal(pid, Signal::KILL);
                }
                let _ = child.wait();
                return Err(HarnessError::msg(format!(
                    "{desc} did not finish within {timeout:?}; killed"
                )));
            }
            Ok(None) => thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(HarnessError::io(format!("wait for {desc}"), e)),
        }
    }
}

/// Pins the calling process's current thread (and so every thread and child it creates
/// afterwards) to one CPU. Children started through [`pinned`] choose their own.
pub fn pin_current_thread(cpu: usize) -> Result<(), HarnessError> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)
        .map_err(|e| HarnessError::msg(format!("cannot pin the harness to CPU {cpu}: {e}")))
}

/// Raises `RLIMIT_NOFILE` to at least `want` (soft and, as root, hard), so the harness can
/// hold 10,000 idle connections and the servers it starts inherit a limit above that.
/// Returns the soft limit in force afterwards.
pub fn raise_nofile(want: u64) -> u64 {
    let cur = rustix::process::getrlimit(Resource::Nofile);
    let hard = cur.maximum.unwrap_or(u64::MAX);
    if hard < want {
        // Raising the hard limit needs CAP_SYS_RESOURCE; fall back to the hard limit.
        let _ = rustix::process::setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: Some(want),
            },
        );
    }
    let cur = rustix::process::getrlimit(Resource::Nofile);
    let hard = cur.maximum.unwrap_or(u64::MAX);
    let soft = want.min(hard);
    if cur.current.unwrap_or(u64::MAX) < soft {
        let _ = rustix::process::setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(soft),
                maximum: cur.maximum,
            },
        );
    }
    rustix::process::getrlimit(Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// The last `max` bytes of a file, lossily decoded.
pub fn tail_of_file(path: &Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// A free loopback port, found by binding port 0 and closing the socket again. Another
/// process could take it before the server binds it; the servers' start-up checks catch
/// that as a failure to start.
pub fn free_port() -> Result<u16, HarnessError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| HarnessError::io("bind 127.0.0.1:0", e))?;
    Ok(l.local_addr()
        .map_err(|e| HarnessError::io("local_addr", e))?
        .port())
}

/// Waits until a TCP connection to `addr` succeeds (the server accepts), or times out.
pub fn wait_connectable(
    server: &mut ServerProcess,
    addr: std::net::SocketAddr,
    timeout: Duration,
) -> Result<(), HarnessError> {
    let deadline = Instant::now() + timeout;
    loop {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        if server.has_exited() {
            return Err(HarnessError::msg(format!(
                "{} exited during start-up; log:\n{}",
                server.name,
                server.log_tail(3000)
            )));
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::msg(format!(
                "{} does not accept on {addr} after {timeout:?}; log:\n{}",
                server.name,
                server.log_tail(3000)
            )));
        }
        thread::sleep(Duration::from_millis(25));
    }
}
