//! Starting each server on loopback with the same bytes, and checking that it serves them.
//!
//! - ringbox: `ringbox serve --listen 127.0.0.1:0 --data <tmp> --workers 1`, the port read
//!   from its `ringbox listening addr=...` line, the token from `<data>/admin.token`, the
//!   fixture files uploaded through `POST /v1/objects?name=...` and served through
//!   `GET /v1/objects/<id>/content` with the bearer token (the full API path).
//! - nginx: its own prefix and config in a temp dir (1 worker, `sendfile`, `tcp_nopush`,
//!   `open_file_cache`, `keepalive_requests 1000000`, `access_log off`), the fixture
//!   directory as root, and WebDAV `PUT` on `/up/` for uploads.
//! - static-web-server: the fixture directory as root, one worker thread.
//! - rustypaste: a TOML config in a temp dir, no auth token, uploads by multipart `file`.
//! - ceiling: `bench/src/bin/ceiling.rs`, any path answers 4 KiB from memory.
//! - ceiling-uring: `bench/src/bin/ceiling_uring.rs` with a variant's flags, `/4k.bin`,
//!   `/64k.bin`, `/1m.bin` from memory (started by `ceilingbench` only).
//!
//! Each server runs pinned to the server CPU; its temp dir is removed when it stops.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::http::{Conn, UploadStyle};
use super::proc::{free_port, pinned, wait_connectable, Memory, ServerProcess};
use super::HarnessError;

/// How long a server may take to start accepting.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// `--max-connections` given to ringbox: above the 10,000 idle connections plus wrk's.
pub const RINGBOX_MAX_CONNECTIONS: u32 = 20_000;

/// One file every server serves: same name, same bytes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fixture {
    /// File name (`4k.bin`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// The fixture directory.
#[derive(Debug, Clone)]
pub struct Fixtures {
    /// Where the files are (the root of nginx and static-web-server).
    pub dir: PathBuf,
    /// The files.
    pub files: Vec<Fixture>,
}

/// The fixture sizes: 4 KiB, 64 KiB, 1 MiB, 64 MiB.
pub const FIXTURES: [(&str, u64); 4] = [
    ("4k.bin", 4 << 10),
    ("64k.bin", 64 << 10),
    ("1m.bin", 1 << 20),
    ("64m.bin", 64 << 20),
];

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Writes the fixture files of random bytes into `dir`.
pub fn prepare_fixtures(dir: &Path) -> Result<Fixtures, HarnessError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| HarnessError::io(format!("create {}", dir.display()), e))?;
    let mut files = Vec::new();
    for (name, size) in FIXTURES {
        let mut bytes = vec![0u8; size as usize];
        getrandom::fill(&mut bytes).map_err(|e| HarnessError::msg(format!("getrandom: {e}")))?;
        let path = dir.join(name);
        std::fs::write(&path, &bytes)
            .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))?;
        files.push(Fixture {
            name: name.to_string(),
            size,
            sha256: hex(&Sha256::digest(&bytes)),
        });
    }
    Ok(Fixtures {
        dir: dir.to_path_buf(),
        files,
    })
}

/// The kinds of server the harness runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// ringbox, the server under test.
    Ringbox,
    /// nginx from Debian.
    Nginx,
    /// static-web-server from crates.io.
    Sws,
    /// rustypaste from crates.io.
    Rustypaste,
    /// Our trivial monoio server answering from memory.
    Ceiling,
    /// Our io_uring ceiling server (one of its feature variants).
    CeilingUring,
}

impl Kind {
    /// The name used in flags and reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ringbox => "ringbox",
            Kind::Nginx => "nginx",
            Kind::Sws => "sws",
            Kind::Rustypaste => "rustypaste",
            Kind::Ceiling => "ceiling",
            Kind::CeilingUring => "ceiling-uring",
        }
    }

    /// Parses a `--peers` entry.
    pub fn parse(s: &str) -> Option<Kind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ringbox" => Some(Kind::Ringbox),
            "nginx" => Some(Kind::Nginx),
            "sws" | "static-web-server" => Some(Kind::Sws),
            "rustypaste" => Some(Kind::Rustypaste),
            "ceiling" => Some(Kind::Ceiling),
            _ => None,
        }
    }
}

/// The binaries available for this run.
#[derive(Debug, Clone, Default)]
pub struct Tools {
    /// `target/release/ringbox`.
    pub ringbox: Option<PathBuf>,
    /// `target/release/ceiling`.
    pub ceiling: Option<PathBuf>,
    /// nginx.
    pub nginx: Option<PathBuf>,
    /// static-web-server.
    pub sws: Option<PathBuf>,
    /// rustypaste.
    pub rustypaste: Option<PathBuf>,
}

/// ringbox's `--durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync before acknowledging (the default).
    Fsync,
    /// no fsync.
    None,
}

impl Durability {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Fsync => "fsync",
            Durability::None => "none",
        }
    }
}

/// A started server, ready to be measured. Dropping it stops the process and removes
/// its temp dir.
#[derive(Debug)]
pub struct Server {
    /// What it is.
    pub kind: Kind,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `Authorization` value when the server needs one (ringbox).
    pub auth: Option<String>,
    /// Request target per fixture name.
    pub paths: BTreeMap<String, String>,
    /// `ETag` per fixture name, from the warm-up request.
    pub etags: BTreeMap<String, String>,
    /// `Last-Modified` per fixture name, from the warm-up request.
    pub last_modified: BTreeMap<String, String>,
    /// How uploads are framed, when the server takes uploads.
    pub upload: Option<UploadStyle>,
    /// The server's temp dir.
    pub dir: PathBuf,
    process: ServerProcess,
}

impl Server {
    /// The server's name for reports.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// `http://addr` + target.
    pub fn url(&self, target: &str) -> String {
        format!("http://{}{}", self.addr, target)
    }

    /// The request target of a fixture.
    pub fn target(&self, fixture: &str) -> Result<&str, HarnessError> {
        self.paths
            .get(fixture)
            .map(String::as_str)
            .ok_or_else(|| HarnessError::msg(format!("{} does not serve {fixture}", self.name())))
    }

    /// The auth header, if any, as a list.
    pub fn auth_headers(&self) -> Vec<(String, String)> {
        self.auth
            .iter()
            .map(|a| ("Authorization".to_string(), a.clone()))
            .collect()
    }

    /// Memory of the server's process tree.
    pub fn memory(&self) -> Memory {
        self.process.memory()
    }

    /// Process id of the server.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Fails with the log tail when the server has died.
    pub fn check_alive(&mut self) -> Result<(), HarnessError> {
        if self.process.has_exited() {
            return Err(HarnessError::msg(format!(
                "{} has exited; log:\n{}",
                self.name(),
                self.process.log_tail(3000)
            )));
        }
        Ok(())
    }

    /// The last bytes of its log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail(3000)
    }

    /// One GET of a fixture: checks status, length and (except for the ceiling) the
    /// SHA-256 of the body, and records the validators for the 304 scenario. This is also
    /// the warm-up request that brings the file into the page cache.
    pub fn verify(&mut self, fixture: &Fixture) -> Result<(), HarnessError> {
        let target = self.target(&fixture.name)?.to_string();
        let auth = self.auth.clone();
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let mut conn = Conn::connect(self.addr)?;
        let resp = conn.request("GET", &target, &headers, None)?;
        if resp.status != 200 {
            return Err(HarnessError::msg(format!(
                "{}: GET {target} answered {} (expected 200): {}",
                self.name(),
                resp.status,
                resp.body_text()
            )));
        }
        if resp.body.len() as u64 != fixture.size {
            return Err(HarnessError::msg(format!(
                "{}: GET {target} returned {} bytes, expected {}",
                self.name(),
                resp.body.len(),
                fixture.size
            )));
        }
        if !matches!(self.kind, Kind::Ceiling | Kind::CeilingUring) {
            let got = hex(&Sha256::digest(&resp.body));
            if got != fixture.sha256 {
                return Err(HarnessError::msg(format!(
                    "{}: GET {target} returned other bytes (sha256 {got}, expected {})",
                    self.name(),
                    fixture.sha256
                )));
            }
        }
        if let Some(etag) = resp.header("etag") {
            self.etags.insert(fixture.name.clone(), etag.to_string());
        }
        if let Some(lm) = resp.header("last-modified") {
            self.last_modified
                .insert(fixture.name.clone(), lm.to_string());
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.process.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where a server runs.
#[derive(Debug, Clone)]
pub struct Placement {
    /// CPU the server is pinned to (`None`: not pinned).
    pub cpu: Option<usize>,
    /// The run's work dir; each server gets a fresh sub-directory.
    pub run_dir: PathBuf,
}

impl Placement {
    fn fresh_dir(&self, name: &str) -> Result<PathBuf, HarnessError> {
        for i in 0.. {
            let dir = self.run_dir.join(format!("{name}-{i}"));
            if !dir.exists() {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| HarnessError::io(format!("create {}", dir.display()), e))?;
                return Ok(dir);
            }
        }
        unreachable!("an unbounded range ends only by returning")
    }
}

fn tool(path: &Option<PathBuf>, kind: Kind) -> Result<&Path, HarnessError> {
    path.as_deref()
        .ok_or_else(|| HarnessError::msg(format!("{} is not available in this run", kind.name())))
}

/// Starts ringbox with an empty data dir.
pub fn start_ringbox(
    tools: &Tools,
    place: &Placement,
    durability: Durability,
    extra_args: &[String],
) -> Result<Server, HarnessError> {
    let bin = tool(&tools.ringbox, Kind::Ringbox)?;
    let dir = place.fresh_dir("ringbox")?;
    let data = dir.join("data");
    let mut cmd = pinned(place.cpu, bin);
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data")
        .arg(&data)
        .arg("--workers")
        .arg("1")
        .arg("--durability")
        .arg(durability.as_str())
        .arg("--max-connections")
        .arg(RINGBOX_MAX_CONNECTIONS.to_string())
        // Every benchmark client is 127.0.0.1: no per-address limit.
        .arg("--max-connections-per-ip")
        .arg("0")
        .args(extra_args)
        .current_dir(&dir);
    // The user's RINGBOX_* settings must not change what is measured (logging aside).
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str() {
            if k.starts_with("RINGBOX_") && k != "RINGBOX_LOG" {
                cmd.env_remove(k);
            }
        }
    }
    let mut process = ServerProcess::spawn("ringbox", cmd, &dir.join("server.log"))?;
    let line = process.wait_for_line("ringbox listening", START_TIMEOUT)?;
    let addr = parse_addr(&line).ok_or_else(|| {
        HarnessError::msg(format!(
            "cannot find addr=IP:PORT in ringbox's ready line {line:?}"
        ))
    })?;
    let token_path = data.join("admin.token");
    let token = std::fs::read_to_string(&token_path).map_err(|e| {
        HarnessError::io(format!("read the admin token {}", token_path.display()), e)
    })?;
    let auth = format!("Bearer {}", token.trim());
    Ok(Server {
        kind: Kind::Ringbox,
        addr,
        auth: Some(auth.clone()),
        paths: BTreeMap::new(),
        etags: BTreeMap::new(),
        last_modified: BTreeMap::new(),
        upload: Some(UploadStyle::RingboxRaw { auth }),
        dir,
        process,
    })
}

/// Finds `addr=IP:PORT` in a log line (tracing prints fields as `addr=...`).
pub fn parse_addr(line: &str) -> Option<SocketAddr> {
    let start = line.find("addr=")? + "addr=".len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ',' || c == '}')
        .unwrap_or(rest.len());
    rest[..end].trim_matches('"').parse().ok()
}

/// Uploads the fixtures into ringbox (`POST /v1/objects?name=...`) and records their
/// content paths; checks the returned `sha256` against ours.
pub fn upload_fixtures(server: &mut Server, fixtures: &Fixtures) -> Result<(), HarnessError> {
    let auth = server.auth.clone().unwrap_or_default();
    let mut conn = Conn::connect(server.addr)?;
    for f in &fixtures.files {
        let bytes = std::fs::read(fixtures.dir.join(&f.name))
            .map_err(|e| HarnessError::io(format!("read fixture {}", f.name), e))?;
        if conn.closed {
            conn = Conn::connect(server.addr)?;
        }
        let target = format!("/v1/objects?name={}", f.name);
        let resp = conn.request(
            "POST",
            &target,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/octet-stream"),
            ],
            Some(&bytes),
        )?;
        if resp.status != 201 {
            return Err(HarnessError::msg(format!(
                "ringbox: POST {target} answered {} (expected 201): {}",
                resp.status,
                resp.body_text()
            )));
        }
        let json: serde_json::Value = serde_json::from_slice(&resp.body).map_err(|e| {
            HarnessError::msg(format!(
                "ringbox: POST {target}: the answer is not JSON ({e}): {}",
                resp.body_text()
            ))
        })?;
        let id = json.get("id").and_then(|v| v.as_str()).ok_or_else(|| {
            HarnessError::msg(format!(
                "ringbox: POST {target}: no \"id\" in {}",
                resp.body_text()
            ))
        })?;
        let sha = json.get("sha256").and_then(|v| v.as_str()).unwrap_or("");
        if sha != f.sha256 {
            return Err(HarnessError::msg(format!(
                "ringbox: POST {target}: sha256 {sha:?} but the file's is {}",
                f.sha256
            )));
        }
        server
            .paths
            .insert(f.name.clone(), format!("/v1/objects/{id}/content"));
    }
    Ok(())
}

/// Starts nginx with its own prefix and config, serving `root`.
pub fn start_nginx(tools: &Tools, place: &Placement, root: &Path) -> Result<Server, HarnessError> {
    let bin = tool(&tools.nginx, Kind::Nginx)?;
    let dir = place.fresh_dir("nginx")?;
    let port = free_port()?;
    let uploads = dir.join("uploads");
    std::fs::create_dir_all(uploads.join("up"))
        .map_err(|e| HarnessError::io("create nginx upload dir", e))?;
    std::fs::create_dir_all(dir.join("client_body_temp"))
        .map_err(|e| HarnessError::io("create nginx temp dir", e))?;
    let d = dir.display();
    // Workers of a root master run as `nobody` unless told otherwise; they must write
    // uploads into our temp dir.
    let user = if rustix::process::getuid().is_root() {
        "user root;\n"
    } else {
        ""
    };
    let conf = format!(
        "# generated by ringbox-bench load
{user}daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 30000;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    types {{ application/octet-stream bin; }}
    default_type application/octet-stream;
    client_body_temp_path {d}/client_body_temp;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
        location / {{
        }}
        location /up/ {{
            root {uploads};
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 0;
            client_body_temp_path {d}/client_body_temp;
        }}
    }}
}}
",
        root = root.display(),
        uploads = uploads.display(),
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| HarnessError::io("write nginx.conf", e))?;
    let mut cmd = pinned(place.cpu, bin);
    cmd.arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(dir.join("error.log"))
        .current_dir(&dir);
    let mut process = ServerProcess::spawn("nginx", cmd, &dir.join("server.log"))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    if let Err(e) = wait_connectable(&mut process, addr, START_TIMEOUT) {
        let errlog = super::proc::tail_of_file(&dir.join("error.log"), 2000);
        return Err(HarnessError::msg(format!(
            "{e}\nnginx error.log:\n{errlog}"
        )));
    }
    Ok(Server {
        kind: Kind::Nginx,
        addr,
        auth: None,
        paths: file_paths(root),
        etags: BTreeMap::new(),
        last_modified: BTreeMap::new(),
        upload: Some(UploadStyle::DavPut {
            prefix: "/up/".into(),
        }),
        dir,
        process,
    })
}

fn file_paths(root: &Path) -> BTreeMap<String, String> {
    FIXTURES
        .iter()
        .filter(|(name, _)| root.join(name).is_file())
        .map(|(name, _)| (name.to_string(), format!("/{name}")))
        .collect()
}

/// Starts static-web-server serving `root` with one worker thread.
pub fn start_sws(tools: &Tools, place: &Placement, root: &Path) -> Result<Server, HarnessError> {
    let bin = tool(&tools.sws, Kind::Sws)?;
    let dir = place.fresh_dir("sws")?;
    let port = free_port()?;
    let mut cmd = pinned(place.cpu, bin);
    cmd.arg("--host")
        .arg("127.0.0.1")
        .arg("--port")
        .arg(port.to_string())
        .arg("--root")
        .arg(root)
        .arg("--threads-multiplier")
        .arg("1")
        .arg("--log-level")
        .arg("error")
        .arg("--compression")
        .arg("false")
        .current_dir(&dir);
    // Its settings also come from SERVER_* variables; only the flags should count.
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str() {
            if k.starts_with("SERVER_") {
                cmd.env_remove(k);
            }
        }
    }
    let mut process = ServerProcess::spawn("sws", cmd, &dir.join("server.log"))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_connectable(&mut process, addr, START_TIMEOUT)?;
    Ok(Server {
        kind: Kind::Sws,
        addr,
        auth: None,
        paths: file_paths(root),
        etags: BTreeMap::new(),
        last_modified: BTreeMap::new(),
        upload: None,
        dir,
        process,
    })
}

/// Starts rustypaste with a config in a temp dir (one worker, no auth token).
pub fn start_rustypaste(tools: &Tools, place: &Placement) -> Result<Server, HarnessError> {
    let bin = tool(&tools.rustypaste, Kind::Rustypaste)?;
    let dir = place.fresh_dir("rustypaste")?;
    let port = free_port()?;
    let upload = dir.join("upload");
    let conf = format!(
        r#"# generated by ringbox-bench load
[config]
refresh_rate = "1h"

[server]
address = "127.0.0.1:{port}"
workers = 1
max_content_length = "4GB"
upload_path = "{upload}"
timeout = "120s"
expose_version = false
expose_list = false
handle_spaces = "replace"

[landing_page]
text = "ringbox-bench"
content_type = "text/plain; charset=utf-8"

[paste]
random_url = {{ type = "alphanumeric", length = 16 }}
default_extension = "txt"
mime_override = []
mime_blacklist = []
duplicate_files = true
delete_expired_files = {{ enabled = false, interval = "1h" }}
"#,
        upload = upload.display()
    );
    let conf_path = dir.join("config.toml");
    std::fs::write(&conf_path, conf)
        .map_err(|e| HarnessError::io("write rustypaste config.toml", e))?;
    let mut cmd = pinned(place.cpu, bin);
    cmd.env("CONFIG", &conf_path)
        .env("RUST_LOG", "warn")
        .current_dir(&dir);
    for var in [
        "AUTH_TOKEN",
        "AUTH_TOKENS_FILE",
        "DELETE_TOKEN",
        "DELETE_TOKENS_FILE",
    ] {
        cmd.env_remove(var);
    }
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str() {
            // The config crate reads SERVER__*, PASTE__* ... as overrides.
            if k.contains("__") {
                cmd.env_remove(k);
            }
        }
    }
    let mut process = ServerProcess::spawn("rustypaste", cmd, &dir.join("server.log"))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_connectable(&mut process, addr, START_TIMEOUT)?;
    Ok(Server {
        kind: Kind::Rustypaste,
        addr,
        auth: None,
        paths: BTreeMap::new(),
        etags: BTreeMap::new(),
        last_modified: BTreeMap::new(),
        upload: Some(UploadStyle::Multipart),
        dir,
        process,
    })
}

/// Starts the ceiling server.
pub fn start_ceiling(tools: &Tools, place: &Placement) -> Result<Server, HarnessError> {
    let bin = tool(&tools.ceiling, Kind::Ceiling)?;
    let dir = place.fresh_dir("ceiling")?;
    let mut cmd = pinned(place.cpu, bin);
    cmd.arg("--listen").arg("127.0.0.1:0").current_dir(&dir);
    let mut process = ServerProcess::spawn("ceiling", cmd, &dir.join("server.log"))?;
    let line = process.wait_for_line("ceiling listening", START_TIMEOUT)?;
    let addr = parse_addr(&line).ok_or_else(|| {
        HarnessError::msg(format!("cannot find addr= in the ceiling's line {line:?}"))
    })?;
    let paths = [("4k.bin".to_string(), "/4k.bin".to_string())]
        .into_iter()
        .collect();
    Ok(Server {
        kind: Kind::Ceiling,
        addr,
        auth: None,
        paths,
        etags: BTreeMap::new(),
        last_modified: BTreeMap::new(),
        upload: None,
        dir,
        process,
    })
}

/// Starts the io_uring ceiling server with a variant's flags (one thread, pinned like
/// the other servers). Returns it with its `ceiling-uring features ...` line.
pub fn start_ceiling_uring(
    bin: &Path,
    place: &Placement,
    variant: &str,
    flags: &[&str],
) -> Result<(Server, String), HarnessError> {
    let dir = place.fresh_dir(variant)?;
    let mut cmd = pinned(place.cpu, bin);
    cmd.args(["--listen", "127.0.0.1:0", "--threads", "1"])
        .args(flags)
        .current_dir(&dir);
    let mut process = ServerProcess::spawn(variant, cmd, &dir.join("server.log"))?;
    let line = process.wait_for_line("ceiling-uring listening", START_TIMEOUT)?;
    let addr = parse_addr(&line).ok_or_else(|| {
        HarnessError::msg(format!("cannot find addr= in {variant}'s line {line:?}"))
    })?;
    let features = process
        .log_tail(8000)
        .lines()
        .filter(|l| l.starts_with("ceiling-uring features") || l.starts_with("ceiling-uring lacks"))
        .collect::<Vec<_>>()
        .join("; ");
    let paths = ["4k.bin", "64k.bin", "1m.bin"]
        .into_iter()
        .map(|n| (n.to_string(), format!("/{n}")))
        .collect();
    Ok((
        Server {
            kind: Kind::CeilingUring,
            addr,
            auth: None,
            paths,
            etags: BTreeMap::new(),
            last_modified: BTreeMap::new(),
            upload: None,
            dir,
            process,
        },
        features,
    ))
}

/// Starts a server of `kind` for the GET scenarios (ringbox gets the fixtures uploaded),
/// and checks every fixture with one GET, which also warms the page cache. `only` limits
/// both to one fixture.
pub fn start_for_get(
    kind: Kind,
    tools: &Tools,
    place: &Placement,
    fixtures: &Fixtures,
    only: Option<&str>,
) -> Result<Server, HarnessError> {
    let fixtures = &Fixtures {
        dir: fixtures.dir.clone(),
        files: fixtures
            .files
            .iter()
            .filter(|f| only.is_none_or(|o| o == f.name))
            .cloned()
            .collect(),
    };
    let mut s = match kind {
        Kind::Ringbox => {
            let mut s = start_ringbox(tools, place, Durability::Fsync, &[])?;
            upload_fixtures(&mut s, fixtures)?;
            s
        }
        Kind::Nginx => start_nginx(tools, place, &fixtures.dir)?,
        Kind::Sws => start_sws(tools, place, &fixtures.dir)?,
        Kind::Ceiling => start_ceiling(tools, place)?,
        Kind::Rustypaste => return Err(HarnessError::msg("rustypaste is an upload peer only")),
        Kind::CeilingUring => {
            return Err(HarnessError::msg(
                "ceiling-uring variants are started by ceilingbench (start_ceiling_uring)",
            ))
        }
    };
    for f in &fixtures.files {
        if s.paths.contains_key(&f.name) {
            s.verify(f)?;
        }
    }
    Ok(s)
}

/// Starts a server of `kind` for the upload scenarios.
pub fn start_for_upload(
    kind: Kind,
    tools: &Tools,
    place: &Placement,
    durability: Durability,
    fixtures_dir: &Path,
) -> Result<Server, HarnessError> {
    match kind {
        Kind::Ringbox => start_ringbox(tools, place, durability, &[]),
        Kind::Nginx => start_nginx(tools, place, fixtures_dir),
        Kind::Rustypaste => start_rustypaste(tools, place),
        other => Err(HarnessError::msg(format!(
            "{} takes no uploads",
            other.name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_is_found_in_ready_lines() {
        let line = "2026-11-23T14:52:33Z  INFO ringbox::server::workers: ringbox listening \
                    addr=127.0.0.1:37953 workers=1 data=/tmp/x";
        assert_eq!(parse_addr(line), Some("127.0.0.1:37953".parse().unwrap()));
        assert_eq!(
            parse_addr("ceiling listening addr=127.0.0.1:80"),
            Some("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            parse_addr("listening addr=\"127.0.0.1:81\""),
            Some("127.0.0.1:81".parse().unwrap())
        );
        assert_eq!(parse_addr("ringbox listening"), None);
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
    }

    #[test]
    fn peers_parse_by_name() {
        assert_eq!(Kind::parse("static-web-server"), Some(Kind::Sws));
        assert_eq!(Kind::parse(" NGINX "), Some(Kind::Nginx));
        assert_eq!(Kind::parse("apache"), None);
    }
}
