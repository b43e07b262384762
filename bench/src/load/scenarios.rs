//! The scenarios, and how each is run A B A B.
//!
//! GET scenarios share one set of servers (started once, fixtures verified byte for
//! byte, one warm-up request per scenario). Upload, 1 GiB and idle-connection scenarios
//! start every server afresh for every round, so disk use stays bounded and memory
//! figures start from a clean process. In every round each server runs once, in the same
//! order, directly after the previous one: round *i* of ringbox and of a peer are
//! neighbours in time, which is what the paired ratios rely on.
//!
//! A GET scenario is a plan of labelled loads ([`Planned`]); the one labelled `ringbox`
//! is compared with every other. Usually each label is a server; the per-API scenarios
//! (`apis`) put two ringbox routes in one plan (the API's, and `native-by-id`).

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::hammer::{self, HammerRun};
use super::http::{count_open, open_idle, request_head, send_upload, upload_load, Conn};
use super::report::{note, Better, Measurement, Round, ScenarioResult};
use super::servers::{
    start_for_get, start_for_upload, Durability, Fixtures, Kind, Placement, Server, Tools,
};
use super::wrk::{self, WrkRun};
use super::{events, thumbs};
use super::{human_bytes, HarnessError};

const MIB: f64 = 1024.0 * 1024.0;

/// How hard and how long to measure.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Length of every load run (wrk `-d`, and the upload runs).
    pub duration: Duration,
    /// Rounds per scenario.
    pub rounds: usize,
    /// wrk connections for the standard GET scenarios.
    pub connections: usize,
    /// wrk connections for the many-connection GET scenario.
    pub many_connections: usize,
    /// Connections of the upload scenarios.
    pub upload_connections: usize,
    /// Size of each upload in the upload scenarios.
    pub upload_size: u64,
    /// Size of the single large upload.
    pub big_upload: u64,
    /// Idle keep-alive connections held open in the idle scenario.
    pub idle: usize,
    /// CPU of the servers.
    pub server_cpu: Option<usize>,
    /// CPU of wrk and of our load clients.
    pub client_cpu: Option<usize>,
    /// Use the built-in epoll client instead of wrk for every GET scenario (a cross-check
    /// of wrk; figures are not comparable with wrk's).
    pub hammer_all: bool,
    /// With `--perf`: where `perf record -g` of ringbox's first round of every GET
    /// scenario is written.
    pub perf_dir: Option<std::path::PathBuf>,
}

/// `perf record -g -p <pid>` running alongside one measurement.
#[derive(Debug)]
struct Profile {
    child: std::process::Child,
    path: std::path::PathBuf,
    deadline: Instant,
}

impl Profile {
    fn start(
        dir: &std::path::Path,
        scenario: &str,
        pid: u32,
        duration: Duration,
    ) -> Result<Self, HarnessError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| HarnessError::io(format!("create {}", dir.display()), e))?;
        let path = dir.join(format!("perf-{scenario}.data"));
        // Record a little less than the run so the profile holds load only.
        let secs = duration.as_secs_f64().max(2.0) - 1.0;
        let child = std::process::Command::new("perf")
            .args(["record", "-F", "999", "-g", "-p", &pid.to_string(), "-o"])
            .arg(&path)
            .args(["--", "sleep", &format!("{secs:.1}")])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| {
                HarnessError::msg(format!(
                    "cannot run perf ({e}); install it with apt-get install -y linux-perf"
                ))
            })?;
        Ok(Self {
            child,
            path,
            deadline: Instant::now() + duration + Duration::from_secs(30),
        })
    }

    fn finish(mut self) -> Result<std::path::PathBuf, HarnessError> {
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) if st.success() => return Ok(self.path),
                Ok(Some(st)) => return Err(HarnessError::msg(format!("perf record failed: {st}"))),
                Ok(None) if Instant::now() > self.deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(HarnessError::msg("perf record did not finish; killed"));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(HarnessError::io("wait for perf", e)),
            }
        }
    }
}

/// Extra header of a GET scenario.
#[derive(Debug, Clone, Copy)]
pub(super) enum Extra {
    None,
    /// A `Range` header value.
    Range(&'static str),
    /// `If-None-Match` with the server's ETag (from the warm-up request).
    Revalidate,
}

/// A wrk scenario.
#[derive(Debug, Clone)]
pub(super) struct GetSpec {
    pub(super) name: &'static str,
    pub(super) title: String,
    pub(super) description: String,
    pub(super) file: &'static str,
    pub(super) method: &'static str,
    pub(super) connections: usize,
    pub(super) extra: Extra,
    /// Whether the ceiling server takes part (it only knows a 4 KiB GET).
    pub(super) ceiling: bool,
    /// Status every response must have.
    pub(super) status: u16,
    /// What ringbox does meanwhile.
    pub(super) background: Background,
}

/// Work ringbox does while a GET scenario measures it (peers measure idle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// Nothing.
    None,
    /// Thumbnails of 12-MP JPEGs (`get-4k-thumbs`).
    Thumbnails,
    /// 1,000 WebSocket subscribers of `/v1/events` and a writer creating objects
    /// (`get-4k-events`).
    Events,
}

/// All scenario names, in run order, for `--scenarios`.
pub const ALL: &[&str] = &[
    "get-4k",
    "get-4k-thumbs",
    "get-4k-events",
    "get-4k-512",
    "get-64k",
    "get-1m",
    "range-64k",
    "head-4k",
    "revalidate-304",
    "api-4k-native-id",
    "api-4k-native-sha",
    "api-4k-native-jwt",
    "api-4k-native-limited",
    "api-4k-metaclip",
    "api-4k-rhinobox",
    "api-4k-photobackup",
    "api-4k-pyblob",
    "api-4k-mediavault",
    "api-4k-mediavault-limited",
    "api-1m-native-id",
    "api-1m-native-sha",
    "api-1m-native-jwt",
    "api-1m-native-limited",
    "api-1m-metaclip",
    "api-1m-rhinobox",
    "api-1m-photobackup",
    "api-1m-pyblob",
    "api-1m-mediavault",
    "api-1m-mediavault-limited",
    "events-1000",
    "upload-1m",
    "upload-1m-fsync",
    "upload-1g",
    "idle-10k",
];

fn get_specs(s: &Settings) -> Vec<GetSpec> {
    let c = s.connections;
    vec![
        GetSpec {
            name: "get-4k",
            title: format!("GET 4 KiB, {c} conns"),
            description: "GET of a 4 KiB blob by id through ringbox's full API path (bearer token, id lookup, \
                          conditional headers), against a 4 KiB static file on each peer and the ceiling server's \
                          4 KiB from memory.".into(),
            file: "4k.bin",
            method: "GET",
            connections: c,
            extra: Extra::None,
            ceiling: true,
            status: 200,
            background: Background::None,
        },
        GetSpec {
            name: "get-4k-thumbs",
            title: format!("GET 4 KiB, {c} conns, while ringbox makes thumbnails"),
            description: "The 4 KiB GET while two client connections keep ringbox making thumbnails of 12-MP \
                          JPEGs (uploaded before the GET scenarios; every request a thumbnail not made yet, so \
                          every one is a decode). ringbox runs with its defaults (2 decodes at once, decoding \
                          threads at nice 10), all on the server CPU. nginx serves as in get-4k: compare this \
                          ratio with get-4k's.".into(),
            file: "4k.bin",
            method: "GET",
            connections: c,
            extra: Extra::None,
            ceiling: false,
            status: 200,
            background: Background::Thumbnails,
        },
        GetSpec {
            name: "get-4k-events",
            title: format!(
                "GET 4 KiB, {c} conns, while {} WebSocket subscribers get events",
                super::events::SUBSCRIBERS
            ),
            description: "The 4 KiB GET while 1,000 WebSocket subscribers of /v1/events are connected and a \
                          writer creates about 100 small objects a second (four connections, `POST /v1/objects`), \
                          so ringbox fans out about 100,000 event frames a second meanwhile. The subscribers and \
                          the writer run on the client CPU (they take some of wrk's time there, one reader \
                          thread). Subscribers and writer are set up anew before every ringbox round and checked \
                          after it (every subscriber must have every event). nginx serves as in get-4k: compare \
                          this ratio with get-4k's.".into(),
            file: "4k.bin",
            method: "GET",
            connections: c,
            extra: Extra::None,
            ceiling: false,
            status: 200,
            background: Background::Events,
        },
        GetSpec {
            name: "get-4k-512",
            title: format!("GET 4 KiB, {} conns", s.many_connections),
            description: "The 4 KiB GET with many more connections than CPUs: accept and per-connection costs.".into(),
            file: "4k.bin",
            method: "GET",
            connections: s.many_connections,
            extra: Extra::None,
            ceiling: true,
            status: 200,
            background: Background::None,
        },
        GetSpec {
            name: "get-64k",
            title: format!("GET 64 KiB, {c} conns"),
            description: "GET of a 64 KiB blob: the middle ground between header cost and copy cost.".into(),
            file: "64k.bin",
            method: "GET",
            connections: c,
            extra: Extra::None,
            ceiling: false,
            status: 200,
            background: Background::None,
        },
        GetSpec {
            name: "get-1m",
            title: format!("GET 1 MiB, {c} conns"),
            description: "GET of a 1 MiB blob: the body path (sendfile for nginx, whatever ringbox does).".into(),
            file: "1m.bin",
            method: "GET",
            connections: c,
            extra: Extra::None,
            ceiling: false,
            status: 200,
            background: Background::None,
        },
        GetSpec {
            name: "range-64k",
            title: format!("64 KiB range of 64 MiB, {c} conns"),
            description: "GET with `Range: bytes=16777216-16842751` (64 KiB at 16 MiB) out of the 64 MiB blob; 206.".into(),
            file: "64m.bin",
            method: "GET",
            connections: c,
            extra: Extra::Range("bytes=16777216-16842751"),
            ceiling: false,
            status: 206,
            background: Background::None,
        },
        GetSpec {
            name: "head-4k",
            title: format!("HEAD 4 KiB, {c} conns"),
            description: "HEAD of the 4 KiB blob: everything but the body.".into(),
            file: "4k.bin",
            method: "HEAD",
            connections: c,
            extra: Extra::None,
            ceiling: false,
            status: 200,
            background: Background::None,
        },
        GetSpec {
            name: "revalidate-304",
            title: format!("304 revalidation, {c} conns"),
            description: "GET of the 4 KiB blob with `If-None-Match` set to the ETag the server gave in a first \
                          request; every answer is 304 Not Modified.".into(),
            file: "4k.bin",
            method: "GET",
            connections: c,
            extra: Extra::Revalidate,
            ceiling: false,
            status: 304,
            background: Background::None,
        },
    ]
}

/// One load of a GET scenario: which server, under which name, with which request.
#[derive(Debug)]
pub(super) struct Planned {
    /// The name in the report ("ringbox" is the one compared with the others).
    pub label: String,
    /// Index into the scenario's servers.
    pub server: usize,
    /// The load.
    pub run: WrkRun,
}

/// One run of the harness: settings, servers' binaries, fixtures, results so far.
#[derive(Debug)]
pub struct Runner {
    /// How to measure.
    pub settings: Settings,
    /// Binaries.
    pub tools: Tools,
    /// Where servers run.
    pub place: Placement,
    /// The shared files.
    pub fixtures: Fixtures,
    /// Which servers take part (ringbox included unless left out).
    pub servers: Vec<Kind>,
    /// Which scenarios to run.
    pub selected: Vec<String>,
    /// Results so far.
    pub results: Vec<ScenarioResult>,
    /// Failures that cost a scenario or a server.
    pub problems: Vec<String>,
}

fn wrk_measurement(r: &wrk::WrkResult) -> Measurement {
    let problem = r.problem();
    Measurement {
        value: if problem.is_some() {
            None
        } else {
            Some(r.rps())
        },
        detail: json!({
            "requests": r.requests,
            "req_per_s": r.rps(),
            "mib_per_s": r.bytes_per_s() / MIB,
            "p50_ms": r.p50_us / 1000.0,
            "p99_ms": r.p99_us / 1000.0,
            "max_ms": r.max_us / 1000.0,
            "wrk": r,
        }),
        error: problem,
    }
}

fn failed(e: impl std::fmt::Display) -> Measurement {
    Measurement {
        value: None,
        detail: serde_json::Value::Null,
        error: Some(e.to_string()),
    }
}

fn progress(
    scenario: &str,
    round: usize,
    rounds: usize,
    server: &str,
    m: &Measurement,
    unit: &str,
) {
    match (&m.value, &m.error) {
        (Some(v), _) => {
            let extra = match (m.detail.get("p99_ms"), m.detail.get("mib_per_s")) {
                (Some(p99), Some(mibs)) => format!(
                    " (p99 {:.2} ms, {:.0} MiB/s)",
                    p99.as_f64().unwrap_or(0.0),
                    mibs.as_f64().unwrap_or(0.0)
                ),
                _ => String::new(),
            };
            eprintln!(
                "  [{scenario}] round {round}/{rounds} {server:<10} {} {unit}{extra}",
                super::report::fmt_value(*v)
            );
        }
        (None, e) => eprintln!(
            "  [{scenario}] round {round}/{rounds} {server:<10} FAILED: {}",
            e.as_deref().unwrap_or("no figure")
        ),
    }
}

/// "1", or "none" when not pinned.
pub fn cpu_name(cpu: Option<usize>) -> String {
    cpu.map_or_else(|| "none".to_string(), |c| c.to_string())
}

/// Replaces the bearer token in a displayed command by `$TOKEN`.
fn redact(s: &str, auth: Option<&str>) -> String {
    match auth.and_then(|a| a.strip_prefix("Bearer ")) {
        Some(token) if !token.is_empty() => s.replace(token, "$TOKEN"),
        _ => s.to_string(),
    }
}

impl Runner {
    fn wants(&self, scenario: &str) -> bool {
        self.selected.iter().any(|s| s == scenario)
    }

    pub(super) fn has(&self, kind: Kind) -> bool {
        self.servers.contains(&kind)
    }

    pub(super) fn problem(&mut self, p: String) {
        eprintln!("load: problem: {}", p.lines().next().unwrap_or(""));
        self.problems.push(p);
    }

    /// Runs every selected scenario.
    pub fn run_all(&mut self) {
        let specs: Vec<GetSpec> = get_specs(&self.settings)
            .into_iter()
            .filter(|s| self.wants(s.name))
            .collect();
        if !specs.is_empty() {
            self.run_get_group(&specs);
        }
        let apis: Vec<_> = super::apis::scenarios()
            .into_iter()
            .filter(|(_, _, name)| self.wants(name))
            .collect();
        if !apis.is_empty() {
            self.run_api_group(&apis);
        }
        if self.wants("events-1000") {
            self.run_events_fanout();
        }
        if self.wants("upload-1m") {
            self.run_uploads("upload-1m", Durability::None);
        }
        if self.wants("upload-1m-fsync") {
            self.run_uploads("upload-1m-fsync", Durability::Fsync);
        }
        if self.wants("upload-1g") {
            self.run_big_upload();
        }
        if self.wants("idle-10k") {
            self.run_idle();
        }
    }

    fn start_get_servers(&mut self, kinds: &[Kind]) -> Vec<Server> {
        let mut servers = Vec::new();
        for &kind in kinds {
            eprintln!("load: starting {} for the GET scenarios", kind.name());
            match start_for_get(kind, &self.tools, &self.place, &self.fixtures, None) {
                Ok(s) => servers.push(s),
                Err(e) => self.problem(format!(
                    "{} could not be started for the GET scenarios: {e}",
                    kind.name()
                )),
            }
        }
        servers
    }

    fn run_get_group(&mut self, specs: &[GetSpec]) {
        let kinds: Vec<Kind> = [Kind::Ringbox, Kind::Nginx, Kind::Sws, Kind::Ceiling]
            .into_iter()
            .filter(|k| self.has(*k))
            .filter(|k| *k != Kind::Ceiling || specs.iter().any(|s| s.ceiling))
            .collect();
        let mut servers = self.start_get_servers(&kinds);
        if specs.iter().any(|s| s.background == Background::Thumbnails) {
            if let Some(rb) = servers.iter_mut().find(|s| s.kind == Kind::Ringbox) {
                let cache = self
                    .place
                    .run_dir
                    .parent()
                    .unwrap_or(&self.place.run_dir)
                    .to_path_buf();
                if let Err(e) = thumbs::prepare(rb, &cache, thumbs::PHOTOS) {
                    self.problem(format!("[get-4k-thumbs] cannot prepare the photos: {e}"));
                }
            }
        }
        for spec in specs {
            let result = self.run_get(spec, &mut servers);
            self.results.push(result);
        }
    }

    fn get_run_for(
        &self,
        spec: &GetSpec,
        server: &Server,
        notes: &mut Vec<String>,
    ) -> Result<WrkRun, HarnessError> {
        let target = server.target(spec.file)?;
        let mut headers = server.auth_headers();
        match spec.extra {
            Extra::None => {}
            Extra::Range(r) => headers.push(("Range".into(), r.into())),
            Extra::Revalidate => {
                if let Some(etag) = server.etags.get(spec.file) {
                    headers.push(("If-None-Match".into(), etag.clone()));
                } else if let Some(lm) = server.last_modified.get(spec.file) {
                    note(
                        notes,
                        format!(
                            "{} sends no ETag; it was revalidated with If-Modified-Since instead",
                            server.name()
                        ),
                    );
                    headers.push(("If-Modified-Since".into(), lm.clone()));
                } else {
                    return Err(HarnessError::msg(format!(
                        "{} sent neither ETag nor Last-Modified for {}",
                        server.name(),
                        spec.file
                    )));
                }
            }
        }
        Ok(WrkRun {
            url: server.url(target),
            headers,
            method: spec.method.to_string(),
            connections: spec.connections,
            duration: self.settings.duration,
            timeout: Duration::from_secs(10),
        })
    }

    /// Runs a wrk-described load with our epoll client (for HEAD).
    fn hammer(run: &WrkRun, server: &Server) -> Result<wrk::WrkResult, HarnessError> {
        let target = run
            .url
            .trim_start_matches(&format!("http://{}", server.addr))
            .to_string();
        let headers: Vec<(&str, &str)> = run
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        hammer::run(&HammerRun {
            addr: server.addr,
            request: request_head(&run.method, &target, server.addr, &headers, None),
            head: run.method == "HEAD",
            connections: run.connections,
            duration: run.duration,
        })
    }

    /// One request like wrk's, checking the status: the scenario's warm-up.
    pub(super) fn warm_up(run: &WrkRun, server: &Server, expect: u16) -> Result<(), HarnessError> {
        let target = run
            .url
            .trim_start_matches(&format!("http://{}", server.addr))
            .to_string();
        let headers: Vec<(&str, &str)> = run
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut conn = Conn::connect(server.addr)?;
        let resp = conn.request(&run.method, &target, &headers, None)?;
        if resp.status != expect {
            return Err(HarnessError::msg(format!(
                "{}: {} {target} answered {} (expected {expect}): {}",
                server.name(),
                run.method,
                resp.status,
                resp.body_text()
            )));
        }
        Ok(())
    }

    fn run_get(&mut self, spec: &GetSpec, servers: &mut [Server]) -> ScenarioResult {
        eprintln!("load: scenario {} ({})", spec.name, spec.title);
        let mut notes = Vec::new();
        let mut plan: Vec<Planned> = Vec::new();
        let mut command = String::new();
        for (i, server) in servers.iter().enumerate() {
            if server.kind == Kind::Ceiling && !spec.ceiling {
                continue;
            }
            let run = match self.get_run_for(spec, server, &mut notes) {
                Ok(r) => r,
                Err(e) => {
                    note(&mut notes, format!("{} left out: {e}", server.name()));
                    continue;
                }
            };
            if let Err(e) = Self::warm_up(&run, server, spec.status) {
                self.problem(format!(
                    "[{}] warm-up failed, {} left out: {e}",
                    spec.name,
                    server.name()
                ));
                note(
                    &mut notes,
                    format!("{} left out: warm-up failed: {e}", server.name()),
                );
                continue;
            }
            if spec.method == "HEAD" || self.settings.hammer_all {
                command = format!(
                    "ringbox-bench epoll client (wrk 4.1 cannot read HEAD answers; --hammer), pinned to CPU {}: {} \
                     connections, {:?}, {} {}",
                    cpu_name(self.settings.client_cpu),
                    spec.connections,
                    self.settings.duration,
                    spec.method,
                    spec.file
                );
            } else if command.is_empty() || server.kind == Kind::Ringbox {
                let script = self
                    .place
                    .run_dir
                    .join(format!("wrk-{}.lua", spec.method.to_ascii_lowercase()));
                command = redact(
                    &wrk::quoted(&wrk::command_line(&run, self.settings.client_cpu, &script)),
                    server.auth.as_deref(),
                );
            }
            plan.push(Planned {
                label: server.name().to_string(),
                server: i,
                run,
            });
        }
        self.measure_get(spec, &plan, servers, notes, command)
    }

    /// The A B A B rounds of a planned GET scenario; `label == "ringbox"` is the one
    /// measured against the others (and the one given the spec's background work).
    pub(super) fn measure_get(
        &mut self,
        spec: &GetSpec,
        plan: &[Planned],
        servers: &mut [Server],
        mut notes: Vec<String>,
        command: String,
    ) -> ScenarioResult {
        let mut rounds = Vec::new();
        for round in 1..=self.settings.rounds {
            let mut r = Round {
                round,
                results: Vec::new(),
            };
            for Planned {
                label,
                server: i,
                run,
            } in plan
            {
                let server = &mut servers[*i];
                let measured = label == "ringbox";
                // With --perf, ringbox's first round is recorded while it runs.
                let profile = match &self.settings.perf_dir {
                    Some(dir) if round == 1 && measured => {
                        match Profile::start(dir, spec.name, server.pid(), self.settings.duration) {
                            Ok(p) => Some(p),
                            Err(e) => {
                                self.problem(format!("[{}] perf record: {e}", spec.name));
                                None
                            }
                        }
                    }
                    _ => None,
                };
                // get-4k-thumbs: ringbox makes thumbnails while it is measured.
                let background = (spec.background == Background::Thumbnails && measured)
                    .then(|| thumbs::Background::start(server));
                // get-4k-events: subscribers and a writer while it is measured.
                let events = match (spec.background == Background::Events && measured)
                    .then(|| events::GetBackground::start(server))
                {
                    Some(Err(e)) => {
                        self.problem(format!("[{}] round {round}: {e}", spec.name));
                        r.results.push((label.clone(), failed(e)));
                        continue;
                    }
                    Some(Ok(b)) => Some(b),
                    None => None,
                };
                let res = if run.method == "HEAD" || self.settings.hammer_all {
                    Self::hammer(run, server)
                } else {
                    wrk::run(run, self.settings.client_cpu, &self.place.run_dir)
                };
                let made = background.map(thumbs::Background::finish);
                let fanned = events.map(events::GetBackground::finish);
                if let Some(p) = profile {
                    match p.finish() {
                        Ok(path) => note(
                            &mut notes,
                            format!(
                                "perf profile of ringbox (round 1): `perf report -i {}`",
                                path.display()
                            ),
                        ),
                        Err(e) => self.problem(format!("[{}] perf record: {e}", spec.name)),
                    }
                }
                let mut m = match res {
                    Ok(res) => wrk_measurement(&res),
                    Err(e) => failed(e),
                };
                if let Some(made) = made {
                    let per_s = made.made as f64 / self.settings.duration.as_secs_f64();
                    if let serde_json::Value::Object(d) = &mut m.detail {
                        d.insert("thumbnails_made".into(), json!(made.made));
                        d.insert("thumbnails_per_s".into(), json!(per_s));
                    }
                    note(
                        &mut notes,
                        format!(
                            "round {round}: ringbox made {} thumbnails meanwhile ({per_s:.1}/s){}",
                            made.made,
                            made.problem.map(|p| format!("; {p}")).unwrap_or_default()
                        ),
                    );
                }
                if let Some(f) = fanned {
                    if let serde_json::Value::Object(d) = &mut m.detail {
                        d.insert("events".into(), json!(f));
                    }
                    note(&mut notes, format!("round {round}: {}", f.summary()));
                    if let Some(p) = f.problem() {
                        m.error = Some(p);
                        m.value = None;
                    }
                }
                let m = match server.check_alive() {
                    Ok(()) => m,
                    Err(e) => {
                        self.problems.push(format!("[{}] {e}", spec.name));
                        failed(e)
                    }
                };
                progress(spec.name, round, self.settings.rounds, label, &m, "req/s");
                r.results.push((label.clone(), m));
            }
            rounds.push(r);
        }
        let mut result = ScenarioResult {
            name: spec.name.into(),
            title: spec.title.clone(),
            description: spec.description.clone(),
            unit: "req/s".into(),
            better: Better::Higher,
            command,
            rounds,
            summary: Vec::new(),
            notes,
        };
        result.summarize();
        result
    }

    /// A 1 MiB random block whose first 16 bytes each upload overwrites.
    fn upload_block(size: usize) -> Arc<Vec<u8>> {
        let mut block = vec![0u8; size];
        let _ = getrandom::fill(&mut block);
        Arc::new(block)
    }

    fn upload_kinds(&self) -> Vec<Kind> {
        [Kind::Ringbox, Kind::Nginx, Kind::Rustypaste]
            .into_iter()
            .filter(|k| self.has(*k))
            .collect()
    }

    fn run_uploads(&mut self, name: &str, durability: Durability) {
        let s = self.settings.clone();
        let title = format!(
            "upload {}, {} conns, ringbox durability {}",
            human_bytes(s.upload_size as f64),
            s.upload_connections,
            durability.as_str()
        );
        eprintln!("load: scenario {name} ({title})");
        let block = Self::upload_block(s.upload_size.min(1 << 20) as usize);
        let mut rounds = Vec::new();
        let mut notes = vec![format!(
            "nginx WebDAV PUT and rustypaste never fsync; ringbox runs with --durability {}. Every upload has \
             distinct bytes (no deduplication). Servers are restarted with empty storage every round.",
            durability.as_str()
        )];
        for round in 1..=s.rounds {
            let mut r = Round {
                round,
                results: Vec::new(),
            };
            for kind in self.upload_kinds() {
                let profile = (round == 1 && kind == Kind::Ringbox).then_some(name);
                let m = match self.one_upload_run(kind, durability, &block, profile) {
                    Ok(m) => m,
                    Err(e) => {
                        note(&mut notes, format!("{}: {e}", kind.name()));
                        failed(e)
                    }
                };
                progress(name, round, s.rounds, kind.name(), &m, "uploads/s");
                r.results.push((kind.name().to_string(), m));
            }
            rounds.push(r);
        }
        let mut result = ScenarioResult {
            name: name.into(),
            title,
            description: format!(
                "Uploads of {} from {} keep-alive connections for {:?} (our own client, pinned like wrk): ringbox \
                 raw `POST /v1/objects?name=...` (hashed while stored), nginx WebDAV `PUT /up/<name>`, rustypaste \
                 multipart `POST /` with one `file` part. Figure: successful uploads per second.",
                human_bytes(s.upload_size as f64),
                s.upload_connections,
                s.duration
            ),
            unit: "uploads/s".into(),
            better: Better::Higher,
            command: format!(
                "ringbox-bench upload client: {} connections x {:?}, {} bytes per upload",
                s.upload_connections, s.duration, s.upload_size
            ),
            rounds,
            summary: Vec::new(),
            notes,
        };
        result.summarize();
        self.results.push(result);
    }

    fn one_upload_run(
        &self,
        kind: Kind,
        durability: Durability,
        block: &Arc<Vec<u8>>,
        profile_as: Option<&str>,
    ) -> Result<Measurement, HarnessError> {
        let s = &self.settings;
        let mut server = start_for_upload(
            kind,
            &self.tools,
            &self.place,
            durability,
            &self.fixtures.dir,
        )?;
        let style = server
            .upload
            .clone()
            .ok_or_else(|| HarnessError::msg("no upload style"))?;
        // Warm-up: one upload, checked.
        let mut conn = Conn::connect(server.addr)?;
        let mut block_copy = block.as_ref().clone();
        let mut counter = 0;
        let resp = send_upload(
            &mut conn,
            &style,
            "warmup.bin",
            &mut block_copy,
            s.upload_size,
            1,
            &mut counter,
        )?;
        if !style.is_success(resp.status) {
            return Err(HarnessError::msg(format!(
                "warm-up upload answered {}: {}",
                resp.status,
                resp.body_text()
            )));
        }
        drop(conn);
        let profile = match (&s.perf_dir, profile_as) {
            (Some(dir), Some(name)) => Some(Profile::start(dir, name, server.pid(), s.duration)?),
            _ => None,
        };
        let out = upload_load(
            server.addr,
            &style,
            s.upload_connections,
            s.duration,
            s.upload_size,
            Arc::clone(block),
        );
        if let Some(p) = profile {
            let path = p.finish()?;
            eprintln!(
                "load: perf profile of ringbox: perf report -i {}",
                path.display()
            );
        }
        server.check_alive()?;
        let rate = out.completed as f64 / out.elapsed_s.max(1e-9);
        let error = if out.completed == 0 || out.failed * 100 > out.completed {
            Some(format!(
                "{} of {} uploads failed; first: {}",
                out.failed,
                out.failed + out.completed,
                out.first_error.clone().unwrap_or_default()
            ))
        } else {
            None
        };
        Ok(Measurement {
            value: if error.is_some() { None } else { Some(rate) },
            detail: json!({
                "uploads_per_s": rate,
                "mib_per_s": rate * s.upload_size as f64 / MIB,
                "outcome": out,
            }),
            error,
        })
    }

    fn run_big_upload(&mut self) {
        let s = self.settings.clone();
        let size = human_bytes(s.big_upload as f64);
        eprintln!("load: scenario upload-1g (one {size} upload, peak RSS)");
        let block = Self::upload_block(1 << 20);
        let mut mem_rounds = Vec::new();
        let mut rate_rounds = Vec::new();
        let mut notes = vec![
            "RSS growth = VmHWM after the upload - VmRSS before it (summed over the server's processes: nginx \
             master + worker). ringbox runs with its default --durability fsync."
                .to_string(),
        ];
        for round in 1..=s.rounds {
            let mut mem = Round {
                round,
                results: Vec::new(),
            };
            let mut rate = Round {
                round,
                results: Vec::new(),
            };
            for kind in self.upload_kinds() {
                let (m, r) = match self.one_big_upload(kind, &block) {
                    Ok(x) => x,
                    Err(e) => {
                        note(&mut notes, format!("{}: {e}", kind.name()));
                        (failed(&e), failed(&e))
                    }
                };
                progress(
                    "upload-1g",
                    round,
                    s.rounds,
                    kind.name(),
                    &m,
                    "MiB RSS growth",
                );
                mem.results.push((kind.name().to_string(), m));
                rate.results.push((kind.name().to_string(), r));
            }
            mem_rounds.push(mem);
            rate_rounds.push(rate);
        }
        let command = format!(
            "ringbox-bench upload client: 1 connection, one {} body",
            s.big_upload
        );
        let mut mem = ScenarioResult {
            name: "upload-1g".into(),
            title: format!("upload {size}: server RSS growth"),
            description: format!(
                "One {size} upload on one connection (ringbox raw POST, nginx WebDAV PUT, rustypaste multipart); \
                 the server's peak resident memory minus its resident memory before the upload."
            ),
            unit: "MiB".into(),
            better: Better::Lower,
            command: command.clone(),
            rounds: mem_rounds,
            summary: Vec::new(),
            notes: notes.clone(),
        };
        mem.summarize();
        let mut rate = ScenarioResult {
            name: "upload-1g-rate".into(),
            title: format!("upload {size}: throughput"),
            description: format!(
                "The same {size} upload: bytes per second from first byte sent to the answer."
            ),
            unit: "MiB/s".into(),
            better: Better::Higher,
            command,
            rounds: rate_rounds,
            summary: Vec::new(),
            notes,
        };
        rate.summarize();
        self.results.push(mem);
        self.results.push(rate);
    }

    fn one_big_upload(
        &self,
        kind: Kind,
        block: &Arc<Vec<u8>>,
    ) -> Result<(Measurement, Measurement), HarnessError> {
        let s = &self.settings;
        let mut server = start_for_upload(
            kind,
            &self.tools,
            &self.place,
            Durability::Fsync,
            &self.fixtures.dir,
        )?;
        let style = server
            .upload
            .clone()
            .ok_or_else(|| HarnessError::msg("no upload style"))?;
        let mut block = block.as_ref().clone();
        let mut counter = 0;
        let mut conn = Conn::connect(server.addr)?;
        let warm = send_upload(
            &mut conn,
            &style,
            "warmup.bin",
            &mut block,
            1 << 20,
            7,
            &mut counter,
        )?;
        if !style.is_success(warm.status) {
            return Err(HarnessError::msg(format!(
                "warm-up upload answered {}: {}",
                warm.status,
                warm.body_text()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
        let before = server.memory();
        let start = Instant::now();
        let resp = send_upload(
            &mut conn,
            &style,
            "big.bin",
            &mut block,
            s.big_upload,
            8,
            &mut counter,
        )?;
        let secs = start.elapsed().as_secs_f64();
        let after = server.memory();
        server.check_alive()?;
        if !style.is_success(resp.status) {
            return Err(HarnessError::msg(format!(
                "the {} upload answered {}: {}",
                s.big_upload,
                resp.status,
                resp.body_text()
            )));
        }
        let growth = after.hwm.saturating_sub(before.rss) as f64 / MIB;
        let detail = json!({
            "rss_before_mib": before.rss as f64 / MIB,
            "hwm_after_mib": after.hwm as f64 / MIB,
            "rss_after_mib": after.rss as f64 / MIB,
            "growth_mib": growth,
            "seconds": secs,
            "mib_per_s": s.big_upload as f64 / MIB / secs,
            "status": resp.status,
        });
        Ok((
            Measurement {
                value: Some(growth),
                detail: detail.clone(),
                error: None,
            },
            Measurement {
                value: Some(s.big_upload as f64 / MIB / secs),
                detail,
                error: None,
            },
        ))
    }

    fn run_idle(&mut self) {
        let s = self.settings.clone();
        let n = s.idle;
        eprintln!("load: scenario idle-10k ({n} idle keep-alive connections)");
        let kinds: Vec<Kind> = [Kind::Ringbox, Kind::Nginx, Kind::Sws]
            .into_iter()
            .filter(|k| self.has(*k))
            .collect();
        let mut notes = vec![format!(
            "Each idle connection sent one GET of the 4 KiB file and read the answer, then stayed open; ringbox \
             runs with --max-connections {}. RSS is summed over the server's processes.",
            super::servers::RINGBOX_MAX_CONNECTIONS
        )];
        let mut mem_rounds = Vec::new();
        let mut rps_rounds = Vec::new();
        let mut command = String::new();
        for round in 1..=s.rounds {
            let mut mem = Round {
                round,
                results: Vec::new(),
            };
            let mut rps = Round {
                round,
                results: Vec::new(),
            };
            for &kind in &kinds {
                let (m, r) = match self.one_idle(kind, &mut command) {
                    Ok(x) => x,
                    Err(e) => {
                        note(&mut notes, format!("{}: {e}", kind.name()));
                        (failed(&e), failed(&e))
                    }
                };
                progress("idle-10k", round, s.rounds, kind.name(), &m, "MiB RSS");
                progress("idle-10k", round, s.rounds, kind.name(), &r, "req/s");
                mem.results.push((kind.name().to_string(), m));
                rps.results.push((kind.name().to_string(), r));
            }
            mem_rounds.push(mem);
            rps_rounds.push(rps);
        }
        let mut mem = ScenarioResult {
            name: "idle-10k-rss".into(),
            title: format!("{n} idle conns: server RSS"),
            description: format!(
                "Resident memory of the server while {n} idle keep-alive connections are open (measured before \
                 the wrk run)."
            ),
            unit: "MiB".into(),
            better: Better::Lower,
            command: format!("ringbox-bench: {n} connections, one GET each, then idle"),
            rounds: mem_rounds,
            summary: Vec::new(),
            notes: notes.clone(),
        };
        mem.summarize();
        let mut rps = ScenarioResult {
            name: "idle-10k-get-4k".into(),
            title: format!("GET 4 KiB, {} conns, with {n} idle", s.connections),
            description: format!(
                "The 4 KiB GET scenario while {n} idle connections stay open: is the server still serving, and \
                 how fast. The idle connections are counted again afterwards."
            ),
            unit: "req/s".into(),
            better: Better::Higher,
            command,
            rounds: rps_rounds,
            summary: Vec::new(),
            notes,
        };
        rps.summarize();
        self.results.push(mem);
        self.results.push(rps);
    }

    fn one_idle(
        &self,
        kind: Kind,
        command: &mut String,
    ) -> Result<(Measurement, Measurement), HarnessError> {
        let s = &self.settings;
        let mut server = start_for_get(
            kind,
            &self.tools,
            &self.place,
            &self.fixtures,
            Some("4k.bin"),
        )?;
        let target = server.target("4k.bin")?.to_string();
        let auth = server.auth.clone();
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let request = request_head("GET", &target, server.addr, &headers, None);
        std::thread::sleep(Duration::from_millis(200));
        let before = server.memory();
        let t = Instant::now();
        let conns: Vec<TcpStream> = open_idle(server.addr, s.idle, &request, false)?;
        let open_secs = t.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_millis(500));
        let with_idle = server.memory();
        let run = WrkRun {
            url: server.url(&target),
            headers: server.auth_headers(),
            method: "GET".into(),
            connections: s.connections,
            duration: s.duration,
            timeout: Duration::from_secs(10),
        };
        if command.is_empty() || kind == Kind::Ringbox {
            let script = self.place.run_dir.join("wrk-get.lua");
            *command = redact(
                &wrk::quoted(&wrk::command_line(&run, s.client_cpu, &script)),
                auth.as_deref(),
            );
        }
        let wrk_result = wrk::run(&run, s.client_cpu, &self.place.run_dir);
        let still_open = count_open(&conns);
        let after = server.memory();
        drop(conns);
        server.check_alive()?;
        let detail = json!({
            "idle_connections": s.idle,
            "open_seconds": open_secs,
            "rss_before_mib": before.rss as f64 / MIB,
            "rss_with_idle_mib": with_idle.rss as f64 / MIB,
            "rss_after_wrk_mib": after.rss as f64 / MIB,
            "hwm_mib": after.hwm as f64 / MIB,
            "idle_still_open_after_wrk": still_open,
        });
        let mut mem = Measurement {
            value: Some(with_idle.rss as f64 / MIB),
            detail: detail.clone(),
            error: None,
        };
        if still_open < s.idle {
            mem.error = Some(format!(
                "only {still_open} of {} idle connections were still open after wrk",
                s.idle
            ));
        }
        let mut rps = match wrk_result {
            Ok(r) => wrk_measurement(&r),
            Err(e) => failed(e),
        };
        if let serde_json::Value::Object(map) = &mut rps.detail {
            map.insert("idle".into(), detail);
        }
        Ok((mem, rps))
    }
}
