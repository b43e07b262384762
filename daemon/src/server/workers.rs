//! The thread-per-core server: one monoio runtime per worker thread (io_uring, or the
//! legacy epoll driver with a warning where io_uring is refused), each accepting on its
//! own `SO_REUSEPORT` listener so accepts never contend. A connection lives on the
//! worker that accepted it for its whole life.
//!
//! Start-up binds every listener on the main thread first (so `--listen ...:0` picks
//! one free port and all workers share it), then logs `ringbox listening addr=...`.
//! Shutdown: SIGTERM/SIGINT stops the accept loops, closes idle connections, and waits
//! up to the grace period for requests in flight.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::oneshot;
use monoio::net::{TcpListener, TcpStream};
use ringbox_protocol::response::DateCache;
use ringbox_protocol::Limits;
use rustix::net::{sockopt, AddressFamily, SocketType};

use crate::config::Config;
use crate::http::auth::TokenCache;
use crate::metrics;
use crate::server::blob_cache::BlobCache;
use crate::server::conn;
use crate::server::hot_cache::HotCache;
use crate::server::shutdown::Shutdown;
use crate::server::sys as signals;
use crate::store::Store;
use crate::util::time::now_secs;

/// State shared by all workers (read-only after start).
#[derive(Debug)]
pub struct Shared {
    pub cfg: Config,
    pub limits: Limits,
    pub store: Store,
}

/// One worker's thread-local state.
#[derive(Debug)]
pub struct Worker {
    pub shared: Arc<Shared>,
    pub date: RefCell<DateCache>,
    pub blobs: RefCell<BlobCache>,
    pub shutdown: Shutdown,
    pub tokens: TokenCache,
    pub hot: RefCell<HotCache>,
    /// Connections this worker is serving (for the graceful drain).
    pub active: Cell<usize>,
    /// Response buffers lent to connections while they write, so idle connections
    /// hold none.
    buffers: RefCell<Vec<Vec<u8>>>,
}

impl Worker {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            date: RefCell::new(DateCache::new(now_secs())),
            blobs: RefCell::new(BlobCache::default()),
            shutdown: Shutdown::default(),
            tokens: TokenCache::default(),
            hot: RefCell::new(HotCache::default()),
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

    /// The store.
    pub fn store(&self) -> &Store {
        &self.shared.store
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
pub fn run(cfg: Config, store: Store) -> io::Result<()> {
    // Block termination signals before spawning, so workers inherit the mask and only
    // the main thread's sigwait sees them.
    signals::block_termination()?;
    let listeners = bind_listeners(cfg.listen, cfg.workers)?;
    let addr = listeners[0].local_addr()?;
    let shared = Arc::new(Shared {
        limits: cfg.protocol_limits(),
        cfg,
        store,
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
    tracing::info!(
        %addr,
        workers = shared.cfg.workers,
        data = %shared.store.data_dir().display(),
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
    let uring = monoio::utils::detect_uring();
    if !uring && index == 0 {
        tracing::warn!(
            "io_uring is not available (kernel too old, disabled by sysctl, or blocked by a seccomp profile); \
             falling back to the epoll driver, which is slower. See tuning.md"
        );
    }
    let rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .with_entries(shared.cfg.ring_entries)
        .enable_timer()
        .build();
    let mut rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(worker = index, error = %e, "cannot build the worker runtime (check `ulimit -l` for io_uring memory); exiting");
            std::process::exit(1);
        }
    };
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
    let m = metrics::get();
    loop {
        monoio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    m.connections_total.fetch_add(1, Relaxed);
                    let open = m.open_connections.fetch_add(1, Relaxed) + 1;
                    if open > max_conns {
                        m.open_connections.fetch_sub(1, Relaxed);
                        m.connections_refused.fetch_add(1, Relaxed);
                        monoio::spawn(refuse(stream));
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let w = worker.clone();
                    w.active.set(w.active.get() + 1);
                    monoio::spawn(async move {
                        conn::serve(&w, stream).await;
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
}

/// Once a second, if the writer committed anything since the last look, close the
/// worker's cached blob descriptors: a deleted blob's disk space is then freed within
/// about a second instead of when its entry is evicted.
async fn sweep_blob_files(worker: Rc<Worker>) {
    let mut seen = worker.store().writer().data_generation();
    while !worker.shutdown.is_fired() {
        monoio::time::sleep(Duration::from_secs(1)).await;
        let now = worker.store().writer().data_generation();
        if now != seen {
            seen = now;
            worker.blobs.borrow_mut().drop_files();
        }
    }
}

/// Answer a connection over the limit with 503 and close it.
async fn refuse(mut stream: TcpStream) {
    use monoio::io::AsyncWriteRentExt;
    let body = r#"{"error":{"code":"too_many_connections","message":"the server is at max_connections; retry later"}}"#;
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ =
        monoio::time::timeout(Duration::from_secs(2), stream.write_all(resp.into_bytes())).await;
}
