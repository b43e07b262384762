//! `ceiling-uring`: the io_uring ceiling server (`ringbox_bench::uring`), every modern
//! io_uring feature switchable by flag, to measure what each is worth against nginx and
//! the monoio ceiling (`ceiling`). `ceilingbench` runs its variants; see `bench/README.md`.
//!
//! ```text
//! ceiling-uring [--listen 127.0.0.1:0] [--threads N] [--pin]
//!               [--multishot-accept] [--multishot-recv] [--fixed-files] [--defer-taskrun]
//!               [--sqpoll IDLE_MS] [--send-zc-min BYTES] [--no-batch] [--all]
//! ```
//!
//! Paths: `/4k.bin`, `/64k.bin`, `/1m.bin` (GET/HEAD, from memory), 404 elsewhere. On
//! stderr, before it serves: `ceiling-uring features kernel=... name=on|off|unsupported(..)`,
//! `ceiling-uring lacks ...` when the kernel refused something asked for, and last the
//! readiness line `ceiling-uring listening addr=IP:PORT` (the shape the harness waits for).
//! A feature the kernel lacks is reported and left off; the server still starts.

use std::net::SocketAddr;

use clap::Parser;
use ringbox_bench::uring::{start, Config};

#[derive(Parser, Debug)]
#[command(
    name = "ceiling-uring",
    about = "io_uring ceiling server, features by flag"
)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Server threads, one ring and one SO_REUSEPORT listener each (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Pin thread i to CPU i.
    #[arg(long)]
    pin: bool,
    /// Multishot accept.
    #[arg(long)]
    multishot_accept: bool,
    /// Multishot receive with a provided buffer ring.
    #[arg(long)]
    multishot_recv: bool,
    /// Accepted sockets as direct descriptors (registered file table).
    #[arg(long)]
    fixed_files: bool,
    /// IORING_SETUP_DEFER_TASKRUN + SINGLE_ISSUER (COOP_TASKRUN when refused).
    #[arg(long)]
    defer_taskrun: bool,
    /// SQPOLL with this idle time in ms (its thread is pinned to the server's CPU when
    /// the server may run on exactly one).
    #[arg(long, value_name = "IDLE_MS")]
    sqpoll: Option<u32>,
    /// SEND_ZC for answers of at least this many bytes.
    #[arg(long, value_name = "BYTES")]
    send_zc_min: Option<usize>,
    /// One io_uring_enter per completion instead of one per batch of completions.
    #[arg(long)]
    no_batch: bool,
    /// Multishot accept and receive, fixed files, DEFER_TASKRUN, batching.
    #[arg(long)]
    all: bool,
    /// Submission queue entries per ring.
    #[arg(long, default_value_t = 4096)]
    entries: u32,
    /// Connections per thread.
    #[arg(long, default_value_t = 16384)]
    max_conns: u32,
    /// Buffers in the provided buffer ring (power of two).
    #[arg(long, default_value_t = 4096)]
    ring_buffers: u16,
    /// Receive buffer size.
    #[arg(long, default_value_t = 4096)]
    buf_size: usize,
}

/// stderr only: the feature and readiness lines the harness reads, and errors. The tool
/// has no logging framework on purpose: it is a baseline.
fn say(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

fn main() -> Result<(), String> {
    let a = Args::parse();
    let mut config = Config {
        listen: a.listen,
        pin: a.pin,
        entries: a.entries,
        max_conns: a.max_conns,
        multishot_accept: a.multishot_accept,
        multishot_recv: a.multishot_recv,
        ring_buffers: a.ring_buffers,
        buf_size: a.buf_size,
        fixed_files: a.fixed_files,
        defer_taskrun: a.defer_taskrun,
        sqpoll_idle_ms: a.sqpoll,
        send_zc_min: a.send_zc_min,
        batch: !a.no_batch,
        ..Config::default()
    };
    if let Some(t) = a.threads {
        config.threads = t;
    }
    if a.all {
        config = config.all_features();
    }
    let handle = start(config).map_err(|e| e.to_string())?;
    let f = handle.features();
    say(format_args!(
        "ceiling-uring features kernel={} {}",
        f.kernel,
        f.line()
    ));
    let lacking = f.lacking();
    if !lacking.is_empty() {
        say(format_args!("ceiling-uring lacks {}", lacking.join("; ")));
    }
    say(format_args!(
        "ceiling-uring listening addr={}",
        handle.addr()
    ));
    handle.wait()
}
