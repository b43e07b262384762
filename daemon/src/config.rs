//! Configuration: command-line flags, `RINGBOX_*` environment variables and an
//! optional TOML file, merged in that precedence over built-in defaults and validated
//! once at start. The rest of the daemon only ever sees a finished [`Config`].
//!
//! Every limit is a setting with a safe default, written beside the attack it stops.
//!
//! RhinoBox's three environment variables are read too, as fallbacks below the
//! `RINGBOX_*` ones (so a RhinoBox deployment's environment works unchanged):
//! `RHINOBOX_ADDR` (`:8090` = all interfaces) for `--listen`, `RHINOBOX_DATA_DIR` for
//! `--data`, and `RHINOBOX_MAX_UPLOAD_MB` (mebibytes per request) for `--max-body`,
//! because RhinoBox applies it to a whole request, not to each file.

pub mod media;
pub mod pyblob;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;

/// Who may call the API without a bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Anonymous {
    /// Every route but `/healthz` needs a token.
    None,
    /// GET and HEAD are open; writes need a token.
    Read,
    /// Everything is open (local trials only).
    Write,
}

/// Whether an acknowledged upload must survive power loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityArg {
    /// fsync blob files, their directory and the LMDB commit before answering 2xx.
    Fsync,
    /// No fsync anywhere: survives a process crash, not a power loss.
    None,
}

/// Which I/O driver the workers run on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoDriver {
    /// io_uring where the kernel allows it, else epoll (with a warning).
    #[default]
    Auto,
    /// epoll even where io_uring works: for hosts whose seccomp profile or kernel
    /// misbehaves with io_uring, and to test the fallback.
    Epoll,
}

/// `ringbox serve` flags. Every one also reads `RINGBOX_<NAME>` and the TOML key
/// `<name>` (underscores), in the precedence flag > env > TOML > default.
#[derive(Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is logged).
    #[arg(long, env = "RINGBOX_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory (blobs, metadata, admin token).
    #[arg(long, env = "RINGBOX_DATA")]
    pub data: Option<PathBuf>,
    /// Worker threads, one monoio runtime each (default: number of cores).
    #[arg(long, env = "RINGBOX_WORKERS")]
    pub workers: Option<usize>,
    /// Unauthenticated access: none, read (GET/HEAD) or write (everything).
    #[arg(long, env = "RINGBOX_ANONYMOUS", value_enum)]
    pub anonymous: Option<Anonymous>,
    /// fsync (default) or none.
    #[arg(long, env = "RINGBOX_DURABILITY", value_enum)]
    pub durability: Option<DurabilityArg>,
    /// Optional TOML configuration file.
    #[arg(long, env = "RINGBOX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Largest request body accepted (e.g. 16GiB); larger is refused with 413 before reading it.
    #[arg(long, env = "RINGBOX_MAX_BODY")]
    pub max_body: Option<String>,
    /// Largest request head (request line + headers), e.g. 16KiB; larger is 431.
    #[arg(long, env = "RINGBOX_MAX_HEAD")]
    pub max_head: Option<String>,
    /// Most header fields in one request; more is 431.
    #[arg(long, env = "RINGBOX_MAX_HEADERS")]
    pub max_headers: Option<usize>,
    /// Deadline for a whole request head once its first byte arrived (e.g. 10s).
    #[arg(long, env = "RINGBOX_HEADER_TIMEOUT")]
    pub header_timeout: Option<String>,
    /// Deadline for every single read of a request body (e.g. 30s).
    #[arg(long, env = "RINGBOX_BODY_TIMEOUT")]
    pub body_timeout: Option<String>,
    /// How long an idle keep-alive connection is kept open (e.g. 60s).
    #[arg(long, env = "RINGBOX_IDLE_TIMEOUT")]
    pub idle_timeout: Option<String>,
    /// Most simultaneously open connections; beyond it new ones get 503 and are closed.
    #[arg(long, env = "RINGBOX_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish (e.g. 10s).
    #[arg(long, env = "RINGBOX_GRACE_PERIOD")]
    pub grace_period: Option<String>,
    /// Pin worker i to CPU i (mod the number of CPUs).
    #[arg(long, env = "RINGBOX_PIN_CPUS")]
    pub pin_cpus: bool,
    /// io_uring submission queue entries per worker.
    #[arg(long, env = "RINGBOX_RING_ENTRIES")]
    pub ring_entries: Option<u32>,
    /// The workers' I/O driver: `auto` (io_uring, else epoll) or `epoll`.
    #[arg(long, env = "RINGBOX_IO_DRIVER", value_enum)]
    pub io_driver: Option<IoDriver>,
    /// Most open connections from one client address (0 = no per-address limit).
    #[arg(long, env = "RINGBOX_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Slowest acceptable upload, in bytes per second, once the first 10 s of a body
    /// have passed (e.g. 1KiB; 0 turns it off). Stops bodies that trickle.
    #[arg(long, env = "RINGBOX_MIN_BODY_RATE")]
    pub min_body_rate: Option<String>,
    /// Largest single file accepted by any API (e.g. 1GiB; default: unlimited).
    #[arg(long, env = "RINGBOX_MAX_FILE_SIZE")]
    pub max_file_size: Option<String>,
    /// Which APIs to serve: `all` (default) or a comma-separated list of names.
    #[arg(long, env = "RINGBOX_APIS")]
    pub apis: Option<String>,
    /// Move an API under a prefix: `NAME=/prefix` (repeatable).
    #[arg(long = "mount", env = "RINGBOX_MOUNT", value_delimiter = ',')]
    pub mounts: Vec<String>,
    /// Worker threads of the blocking pool (hashing, thumbnails, password hashing;
    /// default: number of cores, at least 2).
    #[arg(long, env = "RINGBOX_POOL_THREADS")]
    pub pool_threads: Option<usize>,
    /// Bytes each user may store (e.g. 10GiB; default: unlimited); a user's own quota
    /// (set by an admin) wins.
    #[arg(long, env = "RINGBOX_USER_QUOTA")]
    pub user_quota: Option<String>,
    /// Life of access tokens from sign-in (e.g. 1h).
    #[arg(long, env = "RINGBOX_ACCESS_TOKEN_TTL")]
    pub access_token_ttl: Option<String>,
    /// Origins allowed to call the APIs from browsers (comma-separated, `*` for any;
    /// default: none).
    #[arg(long, env = "RINGBOX_CORS_ORIGINS")]
    pub cors_origins: Option<String>,
    /// An API's rate limits per minute: `NAME=ANON,USER,TOKEN` (0 = unlimited; e.g.
    /// `native=60,1000,5000`; repeatable).
    #[arg(long = "rate-limit", env = "RINGBOX_RATE_LIMIT", value_delimiter = ';')]
    pub rate_limits: Vec<String>,
    /// Events kept in the change log (the oldest go first).
    #[arg(long, env = "RINGBOX_EVENTS_MAX")]
    pub events_max: Option<u64>,
    /// How long events are kept (e.g. 7d).
    #[arg(long, env = "RINGBOX_EVENTS_MAX_AGE")]
    pub events_max_age: Option<String>,
    /// Let webhooks call loopback, private and link-local addresses (tests, LANs).
    #[arg(long, env = "RINGBOX_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// How long a webhook retries one event before it is marked failing (e.g. 24h).
    #[arg(long, env = "RINGBOX_WEBHOOK_GIVE_UP")]
    pub webhook_give_up: Option<String>,
    /// Bytes queued for one WebSocket client before it is closed as too slow (1008).
    #[arg(long, env = "RINGBOX_WS_MAX_QUEUED")]
    pub ws_max_queued: Option<String>,
    /// Largest JSON body of a dataset ingestion (`/ingest/json`, `/v1/ingest`), e.g. 8MiB.
    #[arg(long, env = "RINGBOX_MAX_JSON_BODY")]
    pub max_json_body: Option<String>,
    /// Thumbnails and directory scans (`config/media.rs`).
    #[command(flatten)]
    pub media: media::MediaArgs,
    /// The public base URL (e.g. `https://files.example.com`): share links are made
    /// absolute with it.
    #[arg(long, env = "RINGBOX_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Objects created without a ttl expire this long after upload (e.g. 30d; default:
    /// never).
    #[arg(long, env = "RINGBOX_DEFAULT_TTL")]
    pub default_ttl: Option<String>,
    /// A namespace's default ttl: `NS=DUR` (repeatable; wins over --default-ttl).
    #[arg(
        long = "namespace-ttl",
        env = "RINGBOX_NAMESPACE_TTL",
        value_delimiter = ','
    )]
    pub namespace_ttls: Vec<String>,
    /// Delete objects not downloaded for this long, counting from the upload for those
    /// never downloaded (e.g. 90d; default: off).
    #[arg(long, env = "RINGBOX_EXPIRE_UNACCESSED")]
    pub expire_unaccessed: Option<String>,
    /// A namespace's not-accessed rule: `NS=DUR` or `NS=off` (repeatable; wins over
    /// --expire-unaccessed and over an API's default).
    #[arg(
        long = "namespace-expire-unaccessed",
        env = "RINGBOX_NAMESPACE_EXPIRE_UNACCESSED",
        value_delimiter = ','
    )]
    pub namespace_expire_unaccessed: Vec<String>,
    /// Most expired objects the sweeper deletes per writer transaction (default 100):
    /// bounds how long other clients' writes wait behind a sweep.
    #[arg(long, env = "RINGBOX_SWEEP_BATCH")]
    pub sweep_batch: Option<usize>,
    /// pyBlobServer's links, ids and expiry (`config/pyblob.rs`).
    #[command(flatten)]
    pub pyblob: pyblob::PyblobArgs,
}

/// The TOML file: the same names as the flags, with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    workers: Option<usize>,
    anonymous: Option<Anonymous>,
    durability: Option<DurabilityArg>,
    max_body: Option<toml::Value>,
    max_head: Option<toml::Value>,
    max_headers: Option<usize>,
    header_timeout: Option<toml::Value>,
    body_timeout: Option<toml::Value>,
    idle_timeout: Option<toml::Value>,
    max_connections: Option<usize>,
    grace_period: Option<toml::Value>,
    pin_cpus: Option<bool>,
    ring_entries: Option<u32>,
    io_driver: Option<IoDriver>,
    max_connections_per_ip: Option<usize>,
    min_body_rate: Option<toml::Value>,
    max_file_size: Option<toml::Value>,
    apis: Option<String>,
    mounts: Option<Vec<String>>,
    pool_threads: Option<usize>,
    user_quota: Option<toml::Value>,
    access_token_ttl: Option<toml::Value>,
    cors_origins: Option<String>,
    rate_limits: Option<Vec<String>>,
    events_max: Option<u64>,
    events_max_age: Option<toml::Value>,
    webhook_allow_private: Option<bool>,
    webhook_give_up: Option<toml::Value>,
    ws_max_queued: Option<toml::Value>,
    max_json_body: Option<toml::Value>,
    // Media (`config/media.rs`).
    scan_dirs: Option<Vec<PathBuf>>,
    rescan_interval: Option<toml::Value>,
    scan_owner: Option<String>,
    scan_extensions: Option<String>,
    thumbnail_concurrency: Option<usize>,
    thumbnail_timeout: Option<toml::Value>,
    thumbnail_wait: Option<toml::Value>,
    thumbnail_max_pixels: Option<u64>,
    thumbnail_max_memory: Option<toml::Value>,
    thumbnail_max_input: Option<toml::Value>,
    thumbnail_nice: Option<i32>,
    thumbnail_eager: Option<bool>,
    public_url: Option<String>,
    default_ttl: Option<toml::Value>,
    namespace_ttls: Option<Vec<String>>,
    expire_unaccessed: Option<toml::Value>,
    namespace_expire_unaccessed: Option<Vec<String>>,
    sweep_batch: Option<usize>,
    // pyBlobServer (`config/pyblob.rs`).
    pyblob_public_links: Option<bool>,
    pyblob_id_length: Option<usize>,
    pyblob_expire_after: Option<toml::Value>,
}

/// The validated configuration the server runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub workers: usize,
    pub anonymous: Anonymous,
    pub durability: DurabilityArg,
    /// Stops disk-filling and endless uploads: larger bodies are refused up front.
    pub max_body: u64,
    /// Stops header floods from growing per-connection memory.
    pub max_head: usize,
    pub max_headers: usize,
    /// Stops slowloris: the whole head must arrive within this time.
    pub header_timeout: Duration,
    /// Stops slow-body attacks: every body read must make progress within this time.
    pub body_timeout: Duration,
    /// Bounds how long idle keep-alive connections hold a descriptor.
    pub idle_timeout: Duration,
    /// Bounds descriptors and memory under connection floods.
    pub max_connections: usize,
    pub grace_period: Duration,
    pub pin_cpus: bool,
    pub ring_entries: u32,
    pub io_driver: IoDriver,
    /// Stops one client from taking every connection slot (0 = no limit).
    pub max_connections_per_ip: usize,
    /// Stops bodies that trickle: after a 10 s grace, a body must average this many
    /// bytes per second (0 = off).
    pub min_body_rate: u64,
    /// Largest single file (`None` = unlimited).
    pub max_file_size: Option<u64>,
    /// APIs to serve (`None` = all).
    pub apis: Option<Vec<String>>,
    /// (api, prefix) placements.
    pub mounts: Vec<(String, String)>,
    pub pool_threads: usize,
    /// Bounds what one user can store (`None` = unlimited).
    pub user_quota: Option<u64>,
    pub access_token_ttl: Duration,
    /// Browser origins allowed to call (empty = none).
    pub cors_origins: Vec<String>,
    /// (api, [anonymous, user, token] per minute; 0 = unlimited) overrides.
    pub rate_limits: Vec<(String, [u32; 3])>,
    /// Bounds the event log by count.
    pub events_max: u64,
    /// Bounds the event log by age.
    pub events_max_age: Duration,
    /// Stops SSRF through webhooks unless set.
    pub webhook_allow_private: bool,
    pub webhook_give_up: Duration,
    /// Bounds the memory one slow WebSocket client holds.
    pub ws_max_queued: u64,
    /// Bounds the memory one ingestion body takes (it is parsed whole).
    pub max_json_body: u64,
    /// Directories indexed in place.
    pub scan: crate::core::scan::ScanSettings,
    /// Thumbnail concurrency, limits and timeouts.
    pub thumbnails: crate::core::thumbs::ThumbSettings,
    /// Base of absolute links (no trailing slash).
    pub public_url: Option<String>,
    pub default_ttl: Option<Duration>,
    /// (namespace, ttl).
    pub namespace_ttls: Vec<(String, Duration)>,
    pub expire_unaccessed: Option<Duration>,
    /// (namespace, rule; `None` = off).
    pub namespace_expire_unaccessed: Vec<(String, Option<Duration>)>,
    /// Bounds each sweep transaction (and so other writers' wait behind it).
    pub sweep_batch: usize,
    /// pyBlobServer's file ids, links and expiry.
    pub pyblob: crate::core::short_ids::ShortLinks,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            data: PathBuf::from("data"),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            anonymous: Anonymous::None,
            durability: DurabilityArg::Fsync,
            max_body: 16 << 30,
            max_head: 16 << 10,
            max_headers: 100,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            grace_period: Duration::from_secs(10),
            pin_cpus: false,
            ring_entries: 1024,
            io_driver: IoDriver::Auto,
            max_connections_per_ip: 4096,
            min_body_rate: 1024,
            max_file_size: None,
            apis: None,
            mounts: Vec::new(),
            pool_threads: std::thread::available_parallelism().map_or(2, |n| n.get().max(2)),
            user_quota: None,
            access_token_ttl: Duration::from_secs(3600),
            cors_origins: Vec::new(),
            rate_limits: Vec::new(),
            events_max: 1_000_000,
            events_max_age: Duration::from_secs(7 * 86_400),
            webhook_allow_private: false,
            webhook_give_up: Duration::from_secs(24 * 3600),
            ws_max_queued: 1 << 20,
            max_json_body: crate::core::DEFAULT_MAX_JSON_BODY,
            scan: crate::core::scan::ScanSettings::default(),
            thumbnails: crate::core::thumbs::ThumbSettings::default(),
            public_url: None,
            default_ttl: None,
            namespace_ttls: Vec::new(),
            expire_unaccessed: None,
            namespace_expire_unaccessed: Vec::new(),
            sweep_batch: crate::core::expiry::DEFAULT_SWEEP_BATCH,
            pyblob: crate::core::short_ids::ShortLinks::default(),
        }
    }
}

/// RhinoBox's environment variables (see the module docs), as read at start.
#[derive(Debug, Default, Clone)]
pub struct RhinoboxEnv {
    /// `RHINOBOX_ADDR`, e.g. `:8090` or `127.0.0.1:8090`.
    pub addr: Option<String>,
    /// `RHINOBOX_DATA_DIR`.
    pub data_dir: Option<String>,
    /// `RHINOBOX_MAX_UPLOAD_MB`.
    pub max_upload_mb: Option<String>,
}

impl RhinoboxEnv {
    pub fn from_env() -> RhinoboxEnv {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        RhinoboxEnv {
            addr: var("RHINOBOX_ADDR"),
            data_dir: var("RHINOBOX_DATA_DIR"),
            max_upload_mb: var("RHINOBOX_MAX_UPLOAD_MB"),
        }
    }

    fn listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(raw) = self.addr.as_deref().map(str::trim) else {
            return Ok(None);
        };
        let bad = || {
            ConfigError(format!(
                "RHINOBOX_ADDR `{raw}` is not an address; use :PORT, IP:PORT or localhost:PORT"
            ))
        };
        // Go's `:8090` listens on every interface.
        let addr = if let Some(port) = raw.strip_prefix(':') {
            format!("0.0.0.0:{port}")
        } else if let Some(port) = raw.strip_prefix("localhost:") {
            format!("127.0.0.1:{port}")
        } else {
            raw.to_string()
        };
        addr.parse().map(Some).map_err(|_| bad())
    }

    fn max_body(&self) -> Result<Option<u64>, ConfigError> {
        let Some(raw) = self.max_upload_mb.as_deref().map(str::trim) else {
            return Ok(None);
        };
        raw.parse::<u64>()
            .ok()
            .filter(|&mb| mb > 0)
            .and_then(|mb| mb.checked_mul(1 << 20))
            .map(Some)
            .ok_or_else(|| {
                ConfigError(format!(
                    "RHINOBOX_MAX_UPLOAD_MB `{raw}` must be a positive whole number of megabytes"
                ))
            })
    }
}

/// A configuration problem, reported before anything starts.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Merge flags/env (already merged by clap) over RhinoBox's variables over the TOML
    /// file over defaults.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        Config::load_with(args, &RhinoboxEnv::from_env())
    }

    /// [`Config::load`] with RhinoBox's variables given.
    pub fn load_with(args: &ServeArgs, rhino: &RhinoboxEnv) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!("cannot read config file {}: {e}", path.display()))
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| {
                    ConfigError(format!("config file {} is invalid: {e}", path.display()))
                })?
            }
            None => FileConfig::default(),
        };
        let d = Config::default();
        let size = |flag: &Option<String>, file: &Option<toml::Value>, name: &str, def: u64| {
            pick_value(flag, file, name)?.map_or(Ok(def), |s| {
                parse_size(&s).map_err(|e| ConfigError(format!("{name}: {e}")))
            })
        };
        let dur = |flag: &Option<String>, file: &Option<toml::Value>, name: &str, def: Duration| {
            pick_value(flag, file, name)?.map_or(Ok(def), |s| {
                parse_duration(&s).map_err(|e| ConfigError(format!("{name}: {e}")))
            })
        };
        let rhino_data = rhino.data_dir.as_ref().map(PathBuf::from);
        let scan = media::scan_settings(&args.media, &file)?;
        let thumbnails = media::thumb_settings(&args.media, &file)?;
        let pyblob = pyblob::settings(&args.pyblob, &file)?;
        let public_url = parse_public_url(args.public_url.clone().or(file.public_url))?;
        let ttl = |flag: &Option<String>, file: &Option<toml::Value>, name: &str| {
            pick_value(flag, file, name)?
                .map(|s| parse_expiry(&s, name))
                .transpose()
        };
        let default_ttl = ttl(&args.default_ttl, &file.default_ttl, "default_ttl")?;
        let expire_unaccessed = ttl(
            &args.expire_unaccessed,
            &file.expire_unaccessed,
            "expire_unaccessed",
        )?;
        let pick_list = |flag: &Vec<String>, file: Option<Vec<String>>| {
            if flag.is_empty() {
                file.unwrap_or_default()
            } else {
                flag.clone()
            }
        };
        let namespace_ttls: Vec<(String, Duration)> = parse_namespace_rules(
            pick_list(&args.namespace_ttls, file.namespace_ttls),
            "namespace_ttl",
            false,
        )?
        .into_iter()
        .filter_map(|(ns, d)| d.map(|d| (ns, d)))
        .collect();
        let namespace_expire_unaccessed = parse_namespace_rules(
            pick_list(
                &args.namespace_expire_unaccessed,
                file.namespace_expire_unaccessed,
            ),
            "namespace_expire_unaccessed",
            true,
        )?;
        let cfg = Config {
            listen: args
                .listen
                .or(rhino.listen()?)
                .or(file.listen)
                .unwrap_or(d.listen),
            data: args
                .data
                .clone()
                .or(rhino_data)
                .or(file.data)
                .unwrap_or(d.data),
            workers: args.workers.or(file.workers).unwrap_or(d.workers),
            anonymous: args.anonymous.or(file.anonymous).unwrap_or(d.anonymous),
            durability: args.durability.or(file.durability).unwrap_or(d.durability),
            max_body: match (&args.max_body, rhino.max_body()?) {
                (None, Some(rhino_max)) => rhino_max,
                _ => size(&args.max_body, &file.max_body, "max_body", d.max_body)?,
            },
            max_head: size(
                &args.max_head,
                &file.max_head,
                "max_head",
                d.max_head as u64,
            )? as usize,
            max_headers: args
                .max_headers
                .or(file.max_headers)
                .unwrap_or(d.max_headers),
            header_timeout: dur(
                &args.header_timeout,
                &file.header_timeout,
                "header_timeout",
                d.header_timeout,
            )?,
            body_timeout: dur(
                &args.body_timeout,
                &file.body_timeout,
                "body_timeout",
                d.body_timeout,
            )?,
            idle_timeout: dur(
                &args.idle_timeout,
                &file.idle_timeout,
                "idle_timeout",
                d.idle_timeout,
            )?,
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(d.max_connections),
            grace_period: dur(
                &args.grace_period,
                &file.grace_period,
                "grace_period",
                d.grace_period,
            )?,
            pin_cpus: args.pin_cpus || file.pin_cpus.unwrap_or(false),
            ring_entries: args
                .ring_entries
                .or(file.ring_entries)
                .unwrap_or(d.ring_entries),
            io_driver: args.io_driver.or(file.io_driver).unwrap_or(d.io_driver),
            max_connections_per_ip: args
                .max_connections_per_ip
                .or(file.max_connections_per_ip)
                .unwrap_or(d.max_connections_per_ip),
            min_body_rate: size(
                &args.min_body_rate,
                &file.min_body_rate,
                "min_body_rate",
                d.min_body_rate,
            )?,
            max_file_size: match pick_value(
                &args.max_file_size,
                &file.max_file_size,
                "max_file_size",
            )? {
                None => None,
                Some(s) => {
                    Some(parse_size(&s).map_err(|e| ConfigError(format!("max_file_size: {e}")))?)
                }
            },
            apis: parse_apis(args.apis.clone().or(file.apis))?,
            mounts: parse_mounts(if args.mounts.is_empty() {
                file.mounts.unwrap_or_default()
            } else {
                args.mounts.clone()
            })?,
            pool_threads: args
                .pool_threads
                .or(file.pool_threads)
                .unwrap_or(d.pool_threads),
            user_quota: match pick_value(&args.user_quota, &file.user_quota, "user_quota")? {
                None => None,
                Some(s) => {
                    Some(parse_size(&s).map_err(|e| ConfigError(format!("user_quota: {e}")))?)
                }
            },
            access_token_ttl: dur(
                &args.access_token_ttl,
                &file.access_token_ttl,
                "access_token_ttl",
                d.access_token_ttl,
            )?,
            cors_origins: args
                .cors_origins
                .clone()
                .or(file.cors_origins)
                .map(|s| {
                    s.split(',')
                        .map(|o| o.trim().to_string())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            rate_limits: parse_rate_limits(if args.rate_limits.is_empty() {
                file.rate_limits.unwrap_or_default()
            } else {
                args.rate_limits.clone()
            })?,
            events_max: args.events_max.or(file.events_max).unwrap_or(d.events_max),
            events_max_age: match pick_value(
                &args.events_max_age,
                &file.events_max_age,
                "events_max_age",
            )? {
                None => d.events_max_age,
                Some(s) => crate::util::time::parse_ttl(&s).ok_or_else(|| {
                    ConfigError("events_max_age: use a duration like 7d, 12h or seconds".into())
                })?,
            },
            webhook_allow_private: args.webhook_allow_private
                || file.webhook_allow_private.unwrap_or(false),
            ws_max_queued: size(
                &args.ws_max_queued,
                &file.ws_max_queued,
                "ws_max_queued",
                d.ws_max_queued,
            )?,
            webhook_give_up: match pick_value(
                &args.webhook_give_up,
                &file.webhook_give_up,
                "webhook_give_up",
            )? {
                None => d.webhook_give_up,
                Some(s) => crate::util::time::parse_ttl(&s).ok_or_else(|| {
                    ConfigError("webhook_give_up: use a duration like 24h, 30m or seconds".into())
                })?,
            },
            max_json_body: size(
                &args.max_json_body,
                &file.max_json_body,
                "max_json_body",
                d.max_json_body,
            )?,
            scan,
            thumbnails,
            public_url,
            default_ttl,
            namespace_ttls,
            expire_unaccessed,
            namespace_expire_unaccessed,
            sweep_batch: args
                .sweep_batch
                .or(file.sweep_batch)
                .unwrap_or(d.sweep_batch),
            pyblob,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError(m.to_string()));
        if self.workers == 0 || self.workers > 1024 {
            return bad("workers must be between 1 and 1024");
        }
        if self.max_head < 1024 || self.max_head > 1 << 20 {
            return bad("max_head must be between 1KiB and 1MiB");
        }
        if self.max_headers == 0 || self.max_headers > 1000 {
            return bad("max_headers must be between 1 and 1000");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        for (name, d) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError(format!("{name} must be greater than zero")));
            }
        }
        if !(2..=32768).contains(&self.ring_entries) || !self.ring_entries.is_power_of_two() {
            return bad("ring_entries must be a power of two between 2 and 32768");
        }
        if self.pool_threads == 0 || self.pool_threads > 256 {
            return bad("pool_threads must be between 1 and 256");
        }
        if self.events_max == 0 {
            return bad("events_max must be at least 1");
        }
        if self.sweep_batch == 0 || self.sweep_batch > 10_000 {
            return bad("sweep_batch must be between 1 and 10000");
        }
        if self.access_token_ttl < Duration::from_secs(60) {
            return bad("access_token_ttl must be at least 1m");
        }
        if self.max_json_body < 1024 || self.max_json_body > 1 << 30 {
            return bad("max_json_body must be between 1KiB and 1GiB");
        }
        let known = crate::api::names();
        for name in self
            .apis
            .iter()
            .flatten()
            .chain(self.mounts.iter().map(|(n, _)| n))
            .chain(self.rate_limits.iter().map(|(n, _)| n))
        {
            if !known.contains(&name.as_str()) {
                return Err(ConfigError(format!(
                    "unknown API `{name}`; the APIs are: {}",
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The protocol crate's limits derived from this configuration.
    pub fn protocol_limits(&self) -> ringbox_protocol::Limits {
        ringbox_protocol::Limits {
            max_head_bytes: self.max_head,
            max_headers: self.max_headers,
            ..ringbox_protocol::Limits::default()
        }
    }
}

/// `--public-url`: an `http://` or `https://` URL, kept without its trailing slash.
fn parse_public_url(v: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(url) = v.map(|u| u.trim().to_string()).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r)
            if !r.is_empty()
                && !r.starts_with('/')
                && !r.contains(['?', '#', ' '])
                && !r.chars().any(char::is_control) =>
        {
            Ok(Some(url.trim_end_matches('/').to_string()))
        }
        _ => Err(ConfigError(format!(
            "public_url `{url}` must be an http:// or https:// URL like https://files.example.com"
        ))),
    }
}

/// An expiry duration (`30s`, `10m`, `12h`, `90d`, or seconds; more than zero).
fn parse_expiry(s: &str, name: &str) -> Result<Duration, ConfigError> {
    crate::util::time::parse_ttl(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            ConfigError(format!(
                "{name}: `{s}` is not a duration; use e.g. 30s, 10m, 12h or 90d"
            ))
        })
}

/// `NS=DUR` entries (and `NS=off` where `allow_off`).
fn parse_namespace_rules(
    v: Vec<String>,
    name: &str,
    allow_off: bool,
) -> Result<Vec<(String, Option<Duration>)>, ConfigError> {
    v.into_iter()
        .map(|entry| {
            let (ns, dur) = entry.split_once('=').ok_or_else(|| {
                ConfigError(format!(
                    "{name} `{entry}` must look like NAMESPACE=DURATION"
                ))
            })?;
            let ns = ns.trim();
            crate::core::naming::namespace(ns)
                .map_err(|e| ConfigError(format!("{name} `{entry}`: {}", e.message)))?;
            let dur = dur.trim();
            if allow_off && dur.eq_ignore_ascii_case("off") {
                return Ok((ns.to_string(), None));
            }
            Ok((ns.to_string(), Some(parse_expiry(dur, name)?)))
        })
        .collect()
}

/// `all` or a comma-separated list of API names.
fn parse_apis(v: Option<String>) -> Result<Option<Vec<String>>, ConfigError> {
    match v.as_deref().map(str::trim) {
        None | Some("all") => Ok(None),
        Some(list) => Ok(Some(
            list.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        )),
    }
}

/// `NAME=ANON,USER,TOKEN` entries (requests per minute; 0 = unlimited).
fn parse_rate_limits(v: Vec<String>) -> Result<Vec<(String, [u32; 3])>, ConfigError> {
    v.into_iter()
        .map(|m| {
            let bad = || {
                ConfigError(format!(
                    "rate limit `{m}` must look like NAME=ANON,USER,TOKEN (requests per minute, 0 = unlimited)"
                ))
            };
            let (name, rest) = m.split_once('=').ok_or_else(bad)?;
            let n: Vec<u32> = rest
                .split(',')
                .map(|x| x.trim().parse::<u32>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad())?;
            let tiers: [u32; 3] = n.try_into().map_err(|_| bad())?;
            Ok((name.trim().to_string(), tiers))
        })
        .collect()
}

/// `NAME=/prefix` entries.
fn parse_mounts(v: Vec<String>) -> Result<Vec<(String, String)>, ConfigError> {
    v.into_iter()
        .map(|m| {
            let (name, prefix) = m
                .split_once('=')
                .ok_or_else(|| ConfigError(format!("mount `{m}` must look like NAME=/prefix")))?;
            let prefix = prefix.trim();
            let ok = prefix.starts_with('/')
                && !prefix.contains("//")
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'));
            if !ok {
                return Err(ConfigError(format!(
                    "mount `{m}`: the prefix must start with `/` and use A-Z a-z 0-9 / - _ ."
                )));
            }
            Ok((name.trim().to_string(), prefix.to_string()))
        })
        .collect()
}

/// Flag/env value wins over the TOML value; TOML values may be strings or integers.
fn pick_value(
    flag: &Option<String>,
    file: &Option<toml::Value>,
    name: &str,
) -> Result<Option<String>, ConfigError> {
    if let Some(s) = flag {
        return Ok(Some(s.clone()));
    }
    match file {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(toml::Value::Integer(i)) => Ok(Some(i.to_string())),
        Some(toml::Value::Float(f)) => Ok(Some(f.to_string())),
        Some(_) => Err(ConfigError(format!("{name} must be a string or a number"))),
    }
}

/// Parse `123`, `64KiB`, `16MiB`, `16GiB`, `1GB`, `10k` (case-insensitive units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size; use e.g. 1048576, 64KiB, 16MiB or 16GiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit `{other}`; use B, KiB, MiB, GiB or TiB"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// Parse `10s`, `500ms`, `2m`, `1h`, or a plain number of seconds (may be fractional).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; use e.g. 10s, 500ms or 2m"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}`; use ms, s, m or h"
            ))
        }
    };
    if !secs.is_finite() || !(0.0..=86_400.0 * 365.0).contains(&secs) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123").unwrap(), 123);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("16gib").unwrap(), 16 << 30);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert!(parse_size("x").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn toml_file_and_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringbox.toml");
        std::fs::write(
            &path,
            "max_body = \"1MiB\"\nworkers = 3\nidle_timeout = 5\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            workers: Some(2),
            ..ServeArgs::default()
        };
        let cfg = Config::load(&args).unwrap();
        assert_eq!(cfg.max_body, 1 << 20);
        assert_eq!(cfg.workers, 2, "the flag wins over the file");
        assert_eq!(cfg.idle_timeout, Duration::from_secs(5));
    }

    #[test]
    fn rhinobox_variables_are_fallbacks() {
        let rhino = RhinoboxEnv {
            addr: Some(":8091".into()),
            data_dir: Some("/var/rhinobox/data".into()),
            max_upload_mb: Some("1024".into()),
        };
        let cfg = Config::load_with(&ServeArgs::default(), &rhino).unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:8091".parse().unwrap());
        assert_eq!(cfg.data, PathBuf::from("/var/rhinobox/data"));
        assert_eq!(cfg.max_body, 1024 << 20);
        // RINGBOX_* values (flags, and env through clap) win.
        let args = ServeArgs {
            listen: Some("127.0.0.1:9000".parse().unwrap()),
            data: Some("d".into()),
            max_body: Some("1MiB".into()),
            ..ServeArgs::default()
        };
        let cfg = Config::load_with(&args, &rhino).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(cfg.data, PathBuf::from("d"));
        assert_eq!(cfg.max_body, 1 << 20);
        let local = RhinoboxEnv {
            addr: Some("localhost:8092".into()),
            ..RhinoboxEnv::default()
        };
        let cfg = Config::load_with(&ServeArgs::default(), &local).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:8092".parse().unwrap());
        for (addr, mb) in [
            (Some("nowhere"), None),
            (None, Some("-3")),
            (None, Some("0")),
        ] {
            let bad = RhinoboxEnv {
                addr: addr.map(Into::into),
                max_upload_mb: mb.map(Into::into),
                ..RhinoboxEnv::default()
            };
            let e = Config::load_with(&ServeArgs::default(), &bad).unwrap_err();
            assert!(e.to_string().contains("RHINOBOX_"), "{e}");
        }
    }

    #[test]
    fn io_driver_defaults_to_auto() {
        assert_eq!(
            Config::load(&ServeArgs::default()).unwrap().io_driver,
            IoDriver::Auto
        );
        let args = ServeArgs {
            io_driver: Some(IoDriver::Epoll),
            ..ServeArgs::default()
        };
        assert_eq!(Config::load(&args).unwrap().io_driver, IoDriver::Epoll);
    }

    #[test]
    fn expiry_settings() {
        let args = ServeArgs {
            public_url: Some("https://files.example.com/".into()),
            default_ttl: Some("7d".into()),
            namespace_ttls: vec!["tmp=10m".into(), "cache=1h".into()],
            expire_unaccessed: Some("90d".into()),
            namespace_expire_unaccessed: vec!["keep=off".into(), "scratch=2s".into()],
            ..ServeArgs::default()
        };
        let cfg = Config::load(&args).unwrap();
        assert_eq!(cfg.public_url.as_deref(), Some("https://files.example.com"));
        assert_eq!(cfg.default_ttl, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(
            cfg.namespace_ttls,
            vec![
                ("tmp".to_string(), Duration::from_secs(600)),
                ("cache".to_string(), Duration::from_secs(3600))
            ]
        );
        assert_eq!(
            cfg.namespace_expire_unaccessed,
            vec![
                ("keep".to_string(), None),
                ("scratch".to_string(), Some(Duration::from_secs(2)))
            ]
        );
        for bad in [
            ServeArgs {
                public_url: Some("ftp://x".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                default_ttl: Some("0s".into()),
                ..ServeArgs::default()
            },
            ServeArgs {
                namespace_ttls: vec!["tmp".into()],
                ..ServeArgs::default()
            },
            ServeArgs {
                namespace_ttls: vec!["tmp=off".into()],
                ..ServeArgs::default()
            },
            ServeArgs {
                namespace_expire_unaccessed: vec!["bad ns=1d".into()],
                ..ServeArgs::default()
            },
        ] {
            assert!(Config::load(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_toml_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringbox.toml");
        std::fs::write(&path, "max_bodyy = 1\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        assert!(Config::load(&args).is_err());
    }
}
