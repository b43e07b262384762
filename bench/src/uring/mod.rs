//! The io_uring ceiling server: the fastest HTTP/1.1 answer from memory this kernel
//! allows, with each modern io_uring feature switchable, so the load harness can say what
//! each one is worth next to nginx and the monoio ceiling (`src/bin/ceiling.rs`).
//!
//! Contract: [`start`] binds one `SO_REUSEPORT` listener per thread (one thread per core
//! by default, like ringbox's workers), builds one ring per thread with the features of
//! [`Config`], and returns a [`Handle`] once every thread is ready; [`Handle::features`]
//! says which features are on, and for each one that is off whether it was not asked for
//! or this kernel lacks it (a missing feature is reported, never fatal). Each thread
//! serves keep-alive HTTP/1.1 ([`http`]): `GET`/`HEAD` of `/4k.bin`, `/64k.bin`,
//! `/1m.bin` answered from memory in one send, 404 elsewhere, 405 for other methods,
//! 400 and close for what cannot be framed. Pipelined requests are answered in order.
//!
//! The features ([`Config`]): multishot accept; multishot receive into a provided buffer
//! ring ([`bufring`]); registered files (accepted sockets as direct descriptors, never in
//! the process's fd table); `IORING_SETUP_DEFER_TASKRUN` + `SINGLE_ISSUER` (falling back
//! to `COOP_TASKRUN` + `TASKRUN_FLAG` when refused, e.g. with SQPOLL); SQPOLL (its kernel
//! thread pinned to the thread's CPU when the thread has exactly one); `SEND_ZC` for
//! answers from a size up; batching (all ready completions handled, then one
//! `io_uring_enter` submits and waits) or one `io_uring_enter` per completion.
//!
//! Deliberately not done: timeouts (an idle client keeps its connection; a benchmark
//! server), TLS, files (bodies are in memory: this is the ceiling, not a file server),
//! the epoll fallback (without io_uring there is nothing to measure). Limits:
//! `max_conns` connections per thread (more are closed at accept); a connection whose
//! queued answers exceed [`MAX_QUEUED`] (a client pipelining without reading) is closed.

pub mod bufring;
pub mod http;
mod worker;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Queued answer bytes per connection beyond which it is closed.
pub const MAX_QUEUED: usize = 8 << 20;

/// What the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (port 0: any free port, the same for every thread).
    pub listen: SocketAddr,
    /// Server threads, each with its own ring and listener.
    pub threads: usize,
    /// Pin thread *i* to CPU *i* (modulo the CPUs this process may use).
    pub pin: bool,
    /// Submission queue entries per ring (completion queue: four times as many).
    pub entries: u32,
    /// Connections per thread.
    pub max_conns: u32,
    /// One multishot accept instead of re-arming a single accept.
    pub multishot_accept: bool,
    /// Multishot receive with a provided buffer ring instead of one receive per read
    /// into a per-connection buffer.
    pub multishot_recv: bool,
    /// Buffers in the provided buffer ring (a power of two).
    pub ring_buffers: u16,
    /// Size of each receive buffer (ring or per connection).
    pub buf_size: usize,
    /// Accepted sockets as direct descriptors (registered file table).
    pub fixed_files: bool,
    /// `DEFER_TASKRUN` + `SINGLE_ISSUER` (else `COOP_TASKRUN` when refused).
    pub defer_taskrun: bool,
    /// SQPOLL with this idle time in milliseconds.
    pub sqpoll_idle_ms: Option<u32>,
    /// `SEND_ZC` for answers of at least this many bytes.
    pub send_zc_min: Option<usize>,
    /// Handle every ready completion before entering the kernel again (else one
    /// `io_uring_enter` per completion that queued work).
    pub batch: bool,
}

impl Default for Config {
    /// Everything off: the plain io_uring loop, one thread per core.
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin: false,
            entries: 4096,
            max_conns: 16384,
            multishot_accept: false,
            multishot_recv: false,
            ring_buffers: 4096,
            buf_size: 4096,
            fixed_files: false,
            defer_taskrun: false,
            sqpoll_idle_ms: None,
            send_zc_min: None,
            batch: true,
        }
    }
}

impl Config {
    /// Every feature this module has, except SQPOLL (which takes a core) and SEND_ZC
    /// (which only pays for large bodies, if at all).
    pub fn all_features(mut self) -> Self {
        self.multishot_accept = true;
        self.multishot_recv = true;
        self.fixed_files = true;
        self.defer_taskrun = true;
        self.batch = true;
        self
    }
}

/// Whether one feature is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// In use (with a detail, e.g. which taskrun mode).
    On(String),
    /// Not asked for.
    Off,
    /// Asked for, but this kernel lacks it (the reason); the server runs without it.
    Unsupported(String),
}

/// The features of a running server, as thread 0 set them up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    /// `uname -r`.
    pub kernel: String,
    /// Feature name to state, in a fixed order.
    pub states: Vec<(&'static str, State)>,
}

impl Features {
    /// One line: `name=on|off|unsupported(...)` for every feature.
    pub fn line(&self) -> String {
        let parts: Vec<String> = self
            .states
            .iter()
            .map(|(n, s)| match s {
                State::On(d) if d.is_empty() => format!("{n}=on"),
                State::On(d) => format!("{n}=on({d})"),
                State::Off => format!("{n}=off"),
                State::Unsupported(why) => format!("{n}=unsupported({why})"),
            })
            .collect();
        parts.join(" ")
    }

    /// The features asked for that this kernel lacks.
    pub fn lacking(&self) -> Vec<String> {
        self.states
            .iter()
            .filter_map(|(n, s)| match s {
                State::Unsupported(why) => Some(format!("{n}: {why}")),
                _ => None,
            })
            .collect()
    }

    /// The state of one feature.
    pub fn get(&self, name: &str) -> Option<&State> {
        self.states.iter().find(|(n, _)| *n == name).map(|(_, s)| s)
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A running server; dropping it stops every thread.
#[derive(Debug)]
pub struct Handle {
    addr: SocketAddr,
    features: Features,
    stops: Vec<OwnedFd>,
    threads: Vec<JoinHandle<Result<(), String>>>,
}

impl Handle {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What thread 0 runs with.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Blocks until every thread ends, which they do only on an error: what a server
    /// binary calls after printing its readiness line.
    pub fn wait(mut self) -> Result<(), String> {
        let mut first_err = Ok(());
        for t in self.threads.drain(..) {
            let r = t
                .join()
                .unwrap_or_else(|_| Err("a server thread panicked".into()));
            if first_err.is_ok() {
                first_err = r;
            }
        }
        first_err
    }

    /// Stops every thread and waits for them.
    pub fn stop(mut self) -> Result<(), String> {
        self.signal_stop();
        let threads = std::mem::take(&mut self.threads);
        let mut res = Ok(());
        for t in threads {
            let r = t
                .join()
                .unwrap_or_else(|_| Err("a server thread panicked".into()));
            if res.is_ok() {
                res = r;
            }
        }
        res
    }

    fn signal_stop(&self) {
        for fd in &self.stops {
            let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.signal_stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// `(major, minor)` of `uname -r`, and the whole release string.
pub fn kernel_version() -> ((u32, u32), String) {
    let uts = rustix::system::uname();
    let release = uts.release().to_string_lossy().into_owned();
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    let major = nums.next().unwrap_or(0);
    let minor = nums.next().unwrap_or(0);
    ((major, minor), release)
}

fn listener(addr: SocketAddr) -> Result<TcpListener, StartError> {
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    let err = |what: &str, e: rustix::io::Errno| StartError(format!("{what} {addr}: {e}"));
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)
        .map_err(|e| err("socket for", e))?;
    sockopt::set_socket_reuseaddr(&fd, true).map_err(|e| err("SO_REUSEADDR on", e))?;
    sockopt::set_socket_reuseport(&fd, true).map_err(|e| err("SO_REUSEPORT on", e))?;
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux; direct
    // descriptors could not take a setsockopt of their own anyway.
    sockopt::set_tcp_nodelay(&fd, true).map_err(|e| err("TCP_NODELAY on", e))?;
    rustix::net::bind(&fd, &addr).map_err(|e| err("bind", e))?;
    rustix::net::listen(&fd, 4096).map_err(|e| err("listen on", e))?;
    Ok(TcpListener::from(fd))
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| set.is_set(c))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Starts the server; returns when every thread has its ring and listener.
pub fn start(config: Config) -> Result<Handle, StartError> {
    if config.threads == 0 {
        return Err(StartError("threads must be at least 1".into()));
    }
    let first = listener(config.listen)?;
    let addr = first
        .local_addr()
        .map_err(|e| StartError(format!("local address: {e}")))?;
    let mut listeners = vec![first];
    for _ in 1..config.threads {
        listeners.push(listener(addr)?);
    }
    let cpus = allowed_cpus();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<Features, String>>();
    let mut stops = Vec::new();
    let mut threads = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let stop = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )
        .map_err(|e| StartError(format!("eventfd: {e}")))?;
        let stop_worker = stop
            .try_clone()
            .map_err(|e| StartError(format!("dup eventfd: {e}")))?;
        stops.push(stop);
        let cfg = config.clone();
        let cpu = (config.pin && !cpus.is_empty()).then(|| cpus[i % cpus.len()]);
        let tx = ready_tx.clone();
        let t = std::thread::Builder::new()
            .name(format!("ceiling-uring-{i}"))
            .spawn(move || worker::run(cfg, l, stop_worker, cpu, tx))
            .map_err(|e| StartError(format!("spawn a server thread: {e}")))?;
        threads.push(t);
    }
    drop(ready_tx);
    let mut handle = Handle {
        addr,
        features: Features {
            kernel: String::new(),
            states: Vec::new(),
        },
        stops,
        threads,
    };
    for i in 0..config.threads {
        match ready_rx.recv() {
            Ok(Ok(f)) => {
                if i == 0 {
                    handle.features = f;
                }
            }
            Ok(Err(e)) => return Err(StartError(e)),
            Err(_) => return Err(StartError("a server thread ended while starting".into())),
        }
    }
    Ok(handle)
}

#[cfg(test)]
mod tests;
