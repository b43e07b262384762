//! The thread-per-core server: one monoio runtime per worker thread (io_uring, or the
//! legacy epoll driver with a warning where io_uring is refused), each accepting on its
//! own `SO_REUSEPORT` listener so accepts never contend. A connection lives on the
//! worker that accepted it for its whole life.
//!
//! Start-up binds every listener on the main thread first (so `--listen ...:0` picks
//! one free port and all workers share it), then logs `ringbox listening addr=...`.
//! Shutdown: SIGTERM/SIGINT stops the accept loops, closes idle connections, and waits
//! up to the grace period for requests in flight.
//!
//! Limits at accept: `--max-connections` in all (503 beyond) and
//! `--max-connections-per-ip` per client address (the connection is closed at once),
//! so one client cannot take every slot. A panic that escapes a connection's task
//! (handler panics are already answered 500 by the router) is caught, logged and
//! counted; the worker keeps serving its other connections.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::FutureExt;
use monoio::net::{TcpListener, TcpStream};
use ringbox_protocol::response::DateCache;
use ringbox_protocol::Limits;
use rustix::net::{sockopt, AddressFamily, SocketType};

use crate::config::{Config, IoDriver};
use crate::core::{Core, Local};
use crate::http::router::Router;
use crate::metrics;
use crate::server::conn;
use crate::server::shutdown::Shutdown;
use crate::sys as signals;
use crate::util::time::now_secs;

/// State shared by all workers (read-only after start).
#[derive(Debug)]
pub struct Shared {
    pub cfg: Config,
    pub limits: Limits,
    pub core: Arc<Core>,
    pub router: Arc<Router>,
    per_ip: PerIp,
}

/// Open connections per client address, across workers.
#[derive(Debug)]
struct PerIp {
    max: usize,
    shards: Vec<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    fn new(max: usize) -> PerIp {
        PerIp {
            max,
            shards: (0..16).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, ip: &IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        let h = match ip {
            IpAddr::V4(a) => a.octets()[3] as usize,
            IpAddr::V6(a) => a.octets()[15] as usize,
        };
        self.shards[h % self.shards.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Count a new connection from `ip`; false when it is over the limit.
    fn acquire(&self, ip: IpAddr) -> bool {
        if self.max == 0 {
            return true;
        }
        let mut s = self.shard(&ip);
        let n = s.entry(ip).or_insert(0);
        if *n >= self.max {
            return false;
        }
        *n += 1;
        true
    }

    fn release(&self, ip: IpAddr) {
        if self.max == 0 {
            return;
        }
        let mut s = self.shard(&ip);
        if let Some(n) = s.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                s.remove(&ip);
            }
        }
    }
}

/// One worker's thread-local state.
#[derive(Debug)]
pub struct Worker {
    pub shared: Arc<Shared>,
    /// The core services with this worker's caches.
    pub svc: Local,
    pub router: Arc<Router>,
    pub date: RefCell<DateCache>,
    pub shutdown: Shutdown,
    /// Connections this worker is serving (for the graceful drain).
    pub active: Cell<usize>,
    /// Response buffers lent to connections while they write, so idle connections
    /// hold none.
    buffers: RefCell<Vec<Vec<u8>>>,
}

impl Worker {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            svc: Local::new(shared.core.clone()),
            router: shared.router.clone(),
            shared,
            date: RefCell::new(DateCache::new(now_secs())),
            shutdown: Shutdown::default(),
            active: Cell::new(0),
            buffers: RefCell::new(Vec::new()),
        }
    }

    /// A cleared response buffer from the pool.
    pub fn take_buffer(&self) -> Vec<u8> {
        self.buffers
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(8192))
    }

    /// Give a response buffer back (dropped if the pool is full or it grew large).
    pub fn return_buffer(&self, mut buf: Vec<u8>) {
        const MAX_POOLED: usize = 256;
        let mut pool = self.buffers.borrow_mut();
        if pool.len() < MAX_POOLED && (1024..=256 * 1024).contains(&buf.capacity()) {
            buf.clear();
            pool.push(buf);
        }
    }

    /// The configuration.
    pub fn cfg(&self) -> &Config {
        &self.shared.cfg
    }
}

/// Bind `n` listeners on `addr` with `SO_REUSEPORT`; the first one picks the port when
/// `addr` has port 0 and the others bind to that same port.
fn bind_listeners(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let mut out = Vec::with_capacity(n);
    let mut addr = addr;
    for _ in 0..n {
        let family = if addr.is_ipv4() {
            AddressFamily::INET
        } else {
            AddressFamily::INET6
        };
        let fd: OwnedFd = rustix::net::socket_with(
            family,
            SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )?;
        sockopt::set_socket_reuseaddr(&fd, true)?;
        sockopt::set_socket_reuseport(&fd, true)?;
        rustix::net::bind(&fd, &addr).map_err(|e| {
            io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("cannot listen on {addr}: {e}; choose another --listen address"),
            )
        })?;
        // A deep backlog: bursts of new connections wait in the kernel, not refused.
        rustix::net::listen(&fd, 4096)?;
        let l = std::net::TcpListener::from(fd);
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

/// Run the server until SIGTERM/SIGINT. Returns after every worker has drained.
pub fn run(cfg: Config, core: Arc<Core>, router: Router) -> io::Result<()> {
    // Termination signals are blocked by the caller before any thread started (see
    // `main::serve`); blocking again is harmless and keeps this function safe to call
    // on its own.
    signals::block_termination()?;
    let listeners = bind_listeners(cfg.listen, cfg.workers)?;
    let addr = listeners[0].local_addr()?;
    let shared = Arc::new(Shared {
        limits: cfg.protocol_limits(),
        per_ip: PerIp::new(cfg.max_connections_per_ip),
        cfg,
        core,
        router: Arc::new(router),
    });

    let mut stops = Vec::new();
    let mut threads = Vec::new();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (i, listener) in listeners.into_iter().enumerate() {
        let (tx, rx) = oneshot::channel::<()>();
        stops.push(tx);
        let shared = shared.clone();
        let pin = shared.cfg.pin_cpus.then_some(i % cpus);
        let t = std::thread::Builder::new()
            .name(format!("ringbox-worker-{i}"))
            .spawn(move || worker_main(i, shared, listener, rx, pin))?;
        threads.push(t);
    }
    // Where the server listens, for `ringbox user|token` on this data directory.
    let addr_file = shared.core.store.data_dir().join("server.addr");
    if let Err(e) = std::fs::write(&addr_file, addr.to_string()) {
        tracing::warn!(path = %addr_file.display(), error = %e, "cannot write the server address");
    }
    tracing::info!(
        %addr,
        workers = shared.cfg.workers,
        data = %shared.core.store.data_dir().display(),
        "ringbox listening"
    );

    let sig = signals::wait_for_termination()?;
    tracing::info!(signal = sig, grace = ?shared.cfg.grace_period, "shutting down: no new connections, draining");
    for tx in stops {
        let _ = tx.send(());
    }
    for t in threads {
        if t.join().is_err() {
            tracing::error!("a worker thread panicked during shutdown");
        }
    }
    let _ = std::fs::remove_file(&addr_file);
    tracing::info!("all workers stopped");
    Ok(())
}

fn worker_main(
    index: usize,
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    stop: oneshot::Receiver<()>,
    pin: Option<usize>,
) {
    if let Some(cpu) = pin {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
            tracing::warn!(worker = index, cpu, error = %e, "cannot pin worker to its CPU");
        }
    }
    let epoll = shared.cfg.io_driver == IoDriver::Epoll;
    let uring = !epoll && monoio::utils::detect_uring();
    if !uring && !epoll && index == 0 {
        tracing::warn!(
            "io_uring is not available (kernel too old, disabled by sysctl, or blocked by a seccomp profile); \
             falling back to the epoll driver, which is slower. See tuning.md"
        );
    }
    let rt = if epoll {
        // The same runtime type as the io_uring one, on its epoll side.
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(Into::into)
    } else {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .with_entries(shared.cfg.ring_entries)
            .enable_timer()
            .build()
    };
    let mut rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(worker = index, error = %e, "cannot build the worker runtime (check `ulimit -l` for io_uring memory); exiting");
            std::process::exit(1);
        }
    };
    // The epoll driver calls accept(2) when the listener is readable, so the listener
    // must be non-blocking or one accept would stop the whole worker. io_uring's accept
    // needs the opposite: on a non-blocking listener it completes with EAGAIN instead
    // of waiting for a connection.
    if let Err(e) = listener.set_nonblocking(!uring) {
        tracing::error!(worker = index, error = %e, "cannot set the listener's blocking mode; exiting");
        std::process::exit(1);
    }
    rt.block_on(accept_loop(index, shared, listener, stop));
}

async fn accept_loop(
    index: usize,
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    mut stop: oneshot::Receiver<()>,
) {
    let grace = shared.cfg.grace_period;
    let max_conns = shared.cfg.max_connections as i64;
    let worker = Rc::new(Worker::new(shared));
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(worker = index, error = %e, "cannot register the listener; exiting");
            std::process::exit(1);
        }
    };
    monoio::spawn(sweep_blob_files(worker.clone()));
    monoio::spawn(worker.svc.event_feed());
    if index == 0 {
        monoio::spawn(housekeeping(worker.clone()));
        monoio::spawn(lifecycle(worker.clone()));
    }
    let m = metrics::get();
    loop {
        monoio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    m.connections_total.fetch_add(1, Relaxed);
                    let open = m.open_connections.fetch_add(1, Relaxed) + 1;
                    if open > max_conns {
                        m.open_connections.fetch_sub(1, Relaxed);
                        m.connections_refused.fetch_add(1, Relaxed);
                        monoio::spawn(refuse(stream));
                        continue;
                    }
                    let ip = peer.ip();
                    if !worker.shared.per_ip.acquire(ip) {
                        m.open_connections.fetch_sub(1, Relaxed);
                        m.connections_refused_per_ip.fetch_add(1, Relaxed);
                        // Closed at once: this client holds enough connections.
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let w = worker.clone();
                    w.active.set(w.active.get() + 1);
                    monoio::spawn(async move {
                        let served = AssertUnwindSafe(conn::serve(&w, stream, Some(ip)))
                            .catch_unwind()
                            .await;
                        if served.is_err() {
                            tracing::error!(%ip, "a connection task panicked; the connection was dropped");
                            metrics::get().panic("connection");
                        }
                        w.shared.per_ip.release(ip);
                        w.active.set(w.active.get() - 1);
                        metrics::get().open_connections.fetch_sub(1, Relaxed);
                    });
                }
                Err(e) => {
                    // EMFILE/ENFILE: out of descriptors. Back off briefly instead of
                    // spinning; connections wait in the backlog meanwhile.
                    tracing::warn!(worker = index, error = %e, "accept failed");
                    monoio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = &mut stop => break,
        }
    }
    drop(listener);
    worker.shutdown.fire();
    let deadline = std::time::Instant::now() + grace;
    while worker.active.get() > 0 && std::time::Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
    if worker.active.get() > 0 {
        tracing::warn!(
            worker = index,
            open = worker.active.get(),
            "grace period over; closing remaining connections"
        );
    }
    if index == 0 {
        // The downloads of the last interval survive a graceful stop.
        worker.svc.flush_access().await;
    }
}

/// Once a second, if the writer changed object data since the last look, close the
/// worker's cached descriptors of deleted blobs: their disk space is then freed within
/// about a second instead of when their entry is evicted.
async fn sweep_blob_files(worker: Rc<Worker>) {
    let mut seen = worker.svc.data_generation();
    while !worker.shutdown.is_fired() {
        monoio::time::sleep(Duration::from_secs(1)).await;
        let now = worker.svc.data_generation();
        if now != seen {
            seen = now;
            worker.svc.sweep_deleted_blobs();
        }
    }
}

/// Process-wide chores, on worker 0 every few seconds: record the API tokens' last
/// use in one batch, and forget idle rate-limit buckets. Nothing here blocks: the
/// writes go to the writer thread.
async fn housekeeping(worker: Rc<Worker>) {
    while !worker.shutdown.is_fired() {
        monoio::select! {
            _ = monoio::time::sleep(Duration::from_secs(10)) => {}
            _ = worker.shutdown.wait() => {}
        }
        worker.svc.flush_token_uses().await;
        let now = crate::util::time::now_ms().max(0) as u64;
        worker.svc.accounts.limiter.sweep(now);
    }
}

/// Worker 0, once a second: write the download statistics (every few seconds) and
/// sweep expired objects and share links in bounded batches (`core::expiry`). The
/// writes go to the writer thread; nothing here blocks.
async fn lifecycle(worker: Rc<Worker>) {
    let mut last_flush = std::time::Instant::now();
    let mut more = false;
    while !worker.shutdown.is_fired() {
        if !more {
            monoio::select! {
                _ = monoio::time::sleep(Duration::from_secs(1)) => {}
                _ = worker.shutdown.wait() => break,
            }
        }
        more = worker.svc.lifecycle_tick(&mut last_flush).await;
    }
}

/// Answer a connection over the limit with 503 (in the default error shape) and
/// close it.
async fn refuse(mut stream: TcpStream) {
    use monoio::io::AsyncWriteRentExt;
    let err = crate::http::errors::ApiError::new(
        503,
        "too_many_connections",
        "the server is at max_connections; retry later",
    );
    let body = crate::http::errors::render_native(err).body;
    let body = match body {
        crate::http::Body::Bytes(b) => String::from_utf8(b).unwrap_or_default(),
        _ => String::new(),
    };
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ =
        monoio::time::timeout(Duration::from_secs(2), stream.write_all(resp.into_bytes())).await;
}
