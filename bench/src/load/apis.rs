//! The per-API GET scenarios (`api-4k-<api>`, `api-1m-<api>`): the 4 KiB and 1 MiB
//! fixtures fetched through each API's own download route, each against nginx serving
//! the same file and against ringbox's native route by id (`native-by-id`, the
//! `get-4k`/`get-1m` path) in the same rounds, A B A B.
//!
//! An API is one row of [`ROWS`]: which ringbox it needs ([`Daemon`]: its flags), how
//! the fixture gets in ([`Upload`]), the download route (a template with `{id}` and
//! `{sha}`) and the credential sent with every request ([`Auth`]). Adding an API is
//! adding a row (and its two names to `scenarios::ALL`).
//!
//! Rows marked `optional` are APIs being written on other branches (photobackup,
//! pyBlobServer, Media Vault): when their upload or login route answers 404 or 405 the
//! scenario is reported as "API not in this build" (no figure, no problem), so they
//! light up by themselves once the API is merged. Every other failure is a problem, as
//! in the other scenarios.
//!
//! Each row's download is checked once before measuring: 200 and the fixture's exact
//! bytes (SHA-256). Not done here: uploads through the APIs (the upload scenarios
//! measure the native route), HEAD and ranges per API.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::http::{Conn, Response};
use super::report::{note, Better, ScenarioResult};
use super::scenarios::{cpu_name, Background, Extra, GetSpec, Planned, Runner};
use super::servers::{hex, start_for_get, start_ringbox, Durability, Kind, Server};
use super::wrk::{self, WrkRun};
use super::HarnessError;

/// Which ringbox a row runs against (each distinct one is started once per group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Daemon {
    /// The defaults of `get-4k` (tokens needed).
    Default,
    /// `--anonymous write`: the open door of the seeds without auth (Metaclip,
    /// RhinoBox, photobackup).
    AnonymousWrite,
    /// The native API behind a rate limit no client reaches: the limiter's cost.
    RateLimited,
    /// Media Vault without its default rate limits (1,000 a minute per user would
    /// refuse nearly every request of a load run).
    MediaVaultOpen,
    /// Media Vault behind limits no client reaches: the limiter's cost on its route.
    MediaVaultLimited,
}

impl Daemon {
    /// Extra `ringbox serve` flags.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Daemon::Default => &[],
            Daemon::AnonymousWrite => &["--anonymous", "write"],
            Daemon::RateLimited => &["--rate-limit", "native=4000000000,4000000000,4000000000"],
            Daemon::MediaVaultOpen => &["--rate-limit", "mediavault=0,0,0"],
            Daemon::MediaVaultLimited => &[
                "--rate-limit",
                "mediavault=4000000000,4000000000,4000000000",
            ],
        }
    }
}

/// How a row puts a fixture into ringbox; the answer gives the `{id}` of the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// `POST /v1/objects?name=<file>`, raw body; `id` of the JSON answer.
    Native,
    /// `POST /items` `{"type":"file","content":"<file>"}` (`id`), then
    /// `PUT /file/{id}` with the raw bytes.
    Metaclip,
    /// `POST /ingest/media`, multipart `file`; `stored[0].hash`.
    RhinoBox,
    /// `PUT /image/<file>`, multipart `file`; `sha256`.
    Photobackup,
    /// `POST /upload`, multipart `file`; `file_id`.
    PyBlob,
    /// `POST /api/v1/media/upload`, multipart `file`; `data.id` (or `id`).
    MediaVault,
}

/// The credential of a row (sent with its upload and with every GET).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// None (the daemon must allow anonymous access).
    None,
    /// `Bearer <admin API token>`.
    AdminToken,
    /// `Bearer <API token>` of a user created with `POST /v1/users`.
    UserToken,
    /// `Bearer <JWT>` of that user, from a login at this route
    /// (`{"username","password"}` -> `access_token` or `token`, at the top or in `data`).
    Jwt(&'static str),
}

/// One API's download route.
#[derive(Debug)]
pub struct ApiRow {
    /// Short name (`metaclip`).
    pub api: &'static str,
    /// Scenario names for the 4 KiB and the 1 MiB fixture.
    pub names: [&'static str; 2],
    /// Which ringbox.
    pub daemon: Daemon,
    /// How the fixture gets in.
    pub upload: Upload,
    /// The download target: `{id}` is the upload's answer, `{sha}` the fixture's SHA-256.
    pub get: &'static str,
    /// The credential.
    pub auth: Auth,
    /// An API that may not be in this build (its absence is reported, not a failure).
    pub optional: bool,
}

/// The native route by id: the reference every row is also compared with.
pub const NATIVE_BY_ID: &str = "native-by-id";
/// The native route by id, as a template.
const NATIVE_GET: &str = "/v1/objects/{id}/content";
/// The user the token and JWT rows use.
const USER: &str = "bench@example.com";
const PASSWORD: &str = "bench password 1234";

/// Every API's download route.
pub const ROWS: &[ApiRow] = &[
    ApiRow {
        api: "native-id",
        names: ["api-4k-native-id", "api-1m-native-id"],
        daemon: Daemon::Default,
        upload: Upload::Native,
        get: NATIVE_GET,
        auth: Auth::AdminToken,
        optional: false,
    },
    ApiRow {
        api: "native-sha",
        names: ["api-4k-native-sha", "api-1m-native-sha"],
        daemon: Daemon::Default,
        upload: Upload::Native,
        get: "/v1/blobs/{sha}",
        auth: Auth::AdminToken,
        optional: false,
    },
    ApiRow {
        api: "native-jwt",
        names: ["api-4k-native-jwt", "api-1m-native-jwt"],
        daemon: Daemon::Default,
        upload: Upload::Native,
        get: NATIVE_GET,
        auth: Auth::Jwt("/v1/auth/login"),
        optional: false,
    },
    ApiRow {
        api: "native-limited",
        names: ["api-4k-native-limited", "api-1m-native-limited"],
        daemon: Daemon::RateLimited,
        upload: Upload::Native,
        get: NATIVE_GET,
        auth: Auth::AdminToken,
        optional: false,
    },
    ApiRow {
        api: "metaclip",
        names: ["api-4k-metaclip", "api-1m-metaclip"],
        daemon: Daemon::AnonymousWrite,
        upload: Upload::Metaclip,
        get: "/file/{id}",
        auth: Auth::None,
        optional: false,
    },
    ApiRow {
        api: "rhinobox",
        names: ["api-4k-rhinobox", "api-1m-rhinobox"],
        daemon: Daemon::AnonymousWrite,
        upload: Upload::RhinoBox,
        get: "/files/stream?hash={sha}",
        auth: Auth::None,
        optional: false,
    },
    ApiRow {
        api: "photobackup",
        names: ["api-4k-photobackup", "api-1m-photobackup"],
        daemon: Daemon::AnonymousWrite,
        upload: Upload::Photobackup,
        get: "/image/{sha}",
        auth: Auth::None,
        optional: true,
    },
    ApiRow {
        api: "pyblob",
        names: ["api-4k-pyblob", "api-1m-pyblob"],
        daemon: Daemon::Default,
        upload: Upload::PyBlob,
        get: "/s/{id}",
        auth: Auth::UserToken,
        optional: true,
    },
    ApiRow {
        api: "mediavault",
        names: ["api-4k-mediavault", "api-1m-mediavault"],
        daemon: Daemon::MediaVaultOpen,
        upload: Upload::MediaVault,
        get: "/api/v1/media/{id}/download",
        auth: Auth::Jwt("/api/v1/auth/login"),
        optional: true,
    },
    ApiRow {
        api: "mediavault-limited",
        names: ["api-4k-mediavault-limited", "api-1m-mediavault-limited"],
        daemon: Daemon::MediaVaultLimited,
        upload: Upload::MediaVault,
        get: "/api/v1/media/{id}/download",
        auth: Auth::Jwt("/api/v1/auth/login"),
        optional: true,
    },
];

/// The fixtures of the API scenarios, in the order of `names`.
pub const FILES: [&str; 2] = ["4k.bin", "1m.bin"];

/// Every (row, fixture, scenario name), 4 KiB rows first (the order of `ALL`).
pub fn scenarios() -> Vec<(&'static ApiRow, &'static str, &'static str)> {
    FILES
        .iter()
        .enumerate()
        .flat_map(|(i, file)| ROWS.iter().map(move |row| (row, *file, row.names[i])))
        .collect()
}

/// Why a row cannot be measured.
#[derive(Debug)]
enum Unavailable {
    /// The API is not in this build (an optional row's route answered 404/405).
    Absent(String),
    /// Anything else: a problem.
    Failed(String),
}

impl From<HarnessError> for Unavailable {
    fn from(e: HarnessError) -> Self {
        Unavailable::Failed(e.to_string())
    }
}

impl From<super::http::ClientError> for Unavailable {
    fn from(e: super::http::ClientError) -> Self {
        Unavailable::Failed(e.to_string())
    }
}

/// A row ready to measure: its server and, per fixture, the target.
#[derive(Debug)]
struct Ready {
    server: usize,
    headers: Vec<(String, String)>,
    targets: BTreeMap<&'static str, String>,
}

/// A started ringbox of the group and its user's credentials once made.
#[derive(Debug)]
struct Instance {
    daemon: Daemon,
    server: usize,
    /// (API token, login route -> JWT).
    user_token: Option<String>,
    jwts: BTreeMap<&'static str, String>,
}

/// `{"a":{"b":"x"}}` at `a.b`.
fn json_str(v: &serde_json::Value, path: &str) -> Option<String> {
    let mut cur = v;
    for part in path.split('.') {
        cur = match part.parse::<usize>() {
            Ok(i) => cur.get(i)?,
            Err(_) => cur.get(part)?,
        };
    }
    match cur {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first of `paths` present in the JSON body of `resp`.
fn answer_str(resp: &Response, paths: &[&str], what: &str) -> Result<String, Unavailable> {
    let v: serde_json::Value = serde_json::from_slice(&resp.body).map_err(|e| {
        Unavailable::Failed(format!(
            "{what}: the answer is not JSON ({e}): {}",
            resp.body_text()
        ))
    })?;
    paths.iter().find_map(|p| json_str(&v, p)).ok_or_else(|| {
        Unavailable::Failed(format!("{what}: none of {paths:?} in {}", resp.body_text()))
    })
}

/// A `multipart/form-data` body with one file part: (content type, body).
pub fn multipart(field: &str, filename: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    const BOUNDARY: &str = "ringboxbench5f1c0a9e7d";
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// Fails with `Absent` when an optional row's route is missing, else `Failed` unless
/// the status is one of `ok`.
fn expect(resp: &Response, ok: &[u16], optional: bool, what: &str) -> Result<(), Unavailable> {
    if ok.contains(&resp.status) {
        return Ok(());
    }
    let msg = format!("{what} answered {}: {}", resp.status, resp.body_text());
    if optional && matches!(resp.status, 404 | 405) {
        Err(Unavailable::Absent(msg))
    } else {
        Err(Unavailable::Failed(msg))
    }
}

/// Sends one request on a fresh connection.
fn call(
    server: &Server,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, Unavailable> {
    Ok(Conn::connect(server.addr)?.request(method, target, headers, body)?)
}

/// Puts `file` into ringbox the row's way; returns the `{id}` of its template.
fn upload(
    row: &ApiRow,
    server: &Server,
    auth: Option<&str>,
    file: &str,
    bytes: &[u8],
) -> Result<String, Unavailable> {
    let mut headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    let opt = row.optional;
    match row.upload {
        Upload::Native => {
            let target = format!("/v1/objects?name={file}");
            headers.push(("Content-Type", "application/octet-stream"));
            let r = call(server, "POST", &target, &headers, Some(bytes))?;
            expect(&r, &[201], opt, &format!("POST {target}"))?;
            answer_str(&r, &["id"], &format!("POST {target}"))
        }
        Upload::Metaclip => {
            let item = serde_json::json!({"type": "file", "content": file}).to_string();
            let mut h = headers.clone();
            h.push(("Content-Type", "application/json"));
            let r = call(server, "POST", "/items", &h, Some(item.as_bytes()))?;
            expect(&r, &[200, 201], opt, "POST /items")?;
            let id = answer_str(&r, &["id"], "POST /items")?;
            let target = format!("/file/{id}");
            headers.push(("Content-Type", "application/octet-stream"));
            let r = call(server, "PUT", &target, &headers, Some(bytes))?;
            expect(&r, &[200, 201], opt, &format!("PUT {target}"))?;
            Ok(id)
        }
        Upload::RhinoBox | Upload::Photobackup | Upload::PyBlob | Upload::MediaVault => {
            let upload_name = match row.upload {
                Upload::Photobackup => format!("{}.png", file.trim_end_matches(".bin")),
                _ => file.to_string(),
            };
            let (method, target, paths): (&str, String, &[&str]) = match row.upload {
                Upload::RhinoBox => ("POST", "/ingest/media".into(), &["stored.0.hash"]),
                // photobackup takes png, jpg, jpeg and gif names only.
                Upload::Photobackup => ("PUT", format!("/image/{upload_name}"), &["sha256"]),
                Upload::PyBlob => ("POST", "/upload".into(), &["file_id", "data.file_id"]),
                _ => (
                    "POST",
                    "/api/v1/media/upload".into(),
                    &["data.id", "id", "data.media.id"],
                ),
            };
            let (ct, body) = multipart("file", &upload_name, bytes);
            headers.push(("Content-Type", &ct));
            let r = call(server, method, &target, &headers, Some(&body))?;
            let what = format!("{method} {target}");
            expect(&r, &[200, 201], opt, &what)?;
            answer_str(&r, paths, &what)
        }
    }
}

/// GET of `target` must give the fixture's bytes.
fn check_download(
    server: &Server,
    target: &str,
    headers: &[(String, String)],
    sha256: &str,
) -> Result<(), Unavailable> {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let r = call(server, "GET", target, &h, None)?;
    if r.status != 200 {
        return Err(Unavailable::Failed(format!(
            "GET {target} answered {}: {}",
            r.status,
            r.body_text()
        )));
    }
    let got = hex(&Sha256::digest(&r.body));
    if got != sha256 {
        return Err(Unavailable::Failed(format!(
            "GET {target} returned other bytes ({} bytes, sha256 {got}, expected {sha256})",
            r.body.len()
        )));
    }
    Ok(())
}

impl Runner {
    /// The user's API token on `inst` (created once with `POST /v1/users`).
    fn user_token(
        inst: &mut Instance,
        server: &Server,
        optional: bool,
    ) -> Result<String, Unavailable> {
        if let Some(t) = &inst.user_token {
            return Ok(t.clone());
        }
        let admin = server.auth.clone().unwrap_or_default();
        let body = serde_json::json!({"username": USER, "password": PASSWORD}).to_string();
        let r = call(
            server,
            "POST",
            "/v1/users",
            &[
                ("Authorization", &admin),
                ("Content-Type", "application/json"),
            ],
            Some(body.as_bytes()),
        )?;
        expect(&r, &[201], optional, "POST /v1/users")?;
        let token = answer_str(&r, &["token"], "POST /v1/users")?;
        inst.user_token = Some(format!("Bearer {token}"));
        Ok(format!("Bearer {token}"))
    }

    /// The credential of `row` on `inst`, as an `Authorization` value.
    fn row_auth(
        inst: &mut Instance,
        server: &Server,
        row: &ApiRow,
    ) -> Result<Option<String>, Unavailable> {
        Ok(match row.auth {
            Auth::None => None,
            Auth::AdminToken => server.auth.clone(),
            Auth::UserToken => Some(Self::user_token(inst, server, row.optional)?),
            Auth::Jwt(route) => {
                if let Some(j) = inst.jwts.get(route) {
                    return Ok(Some(j.clone()));
                }
                Self::user_token(inst, server, row.optional)?;
                let body = serde_json::json!({"username": USER, "password": PASSWORD}).to_string();
                let r = call(
                    server,
                    "POST",
                    route,
                    &[("Content-Type", "application/json")],
                    Some(body.as_bytes()),
                )?;
                let what = format!("POST {route}");
                expect(&r, &[200, 201], row.optional, &what)?;
                let jwt = answer_str(
                    &r,
                    &["access_token", "token", "data.access_token", "data.token"],
                    &what,
                )?;
                let value = format!("Bearer {jwt}");
                inst.jwts.insert(route, value.clone());
                Some(value)
            }
        })
    }

    /// Uploads both fixtures the row's way and checks its downloads.
    fn prepare_row(
        &self,
        row: &ApiRow,
        inst: &mut Instance,
        servers: &[Server],
    ) -> Result<Ready, Unavailable> {
        let server = &servers[inst.server];
        let auth = Self::row_auth(inst, server, row)?;
        let headers: Vec<(String, String)> = auth
            .iter()
            .map(|a| ("Authorization".to_string(), a.clone()))
            .collect();
        let mut targets = BTreeMap::new();
        for file in FILES {
            let fixture = self
                .fixtures
                .files
                .iter()
                .find(|f| f.name == file)
                .ok_or_else(|| Unavailable::Failed(format!("no fixture {file}")))?;
            let bytes = std::fs::read(self.fixtures.dir.join(file))
                .map_err(|e| Unavailable::Failed(format!("read fixture {file}: {e}")))?;
            let id = upload(row, server, auth.as_deref(), file, &bytes)?;
            let target = row
                .get
                .replace("{id}", &id)
                .replace("{sha}", &fixture.sha256);
            check_download(server, &target, &headers, &fixture.sha256)?;
            targets.insert(file, target);
        }
        Ok(Ready {
            server: inst.server,
            headers,
            targets,
        })
    }

    /// Runs the selected per-API scenarios: starts nginx and every ringbox the rows
    /// need, prepares every row, then measures each (row, fixture) as a GET scenario
    /// with `ringbox` = the API's route, `native-by-id` and nginx in every round.
    pub(super) fn run_api_group(
        &mut self,
        selected: &[(&'static ApiRow, &'static str, &'static str)],
    ) {
        let mut servers: Vec<Server> = Vec::new();
        let nginx = if self.has(Kind::Nginx) {
            eprintln!("load: starting nginx for the API scenarios");
            match start_for_get(Kind::Nginx, &self.tools, &self.place, &self.fixtures, None) {
                Ok(s) => {
                    servers.push(s);
                    Some(servers.len() - 1)
                }
                Err(e) => {
                    self.problem(format!(
                        "nginx could not be started for the API scenarios: {e}"
                    ));
                    None
                }
            }
        } else {
            None
        };
        // The default daemon always runs: it serves the native-by-id reference.
        let mut daemons: Vec<Daemon> = vec![Daemon::Default];
        for (row, _, _) in selected {
            if !daemons.contains(&row.daemon) {
                daemons.push(row.daemon);
            }
        }
        let mut instances: Vec<Instance> = Vec::new();
        if self.has(Kind::Ringbox) {
            for d in daemons {
                eprintln!("load: starting ringbox {d:?} for the API scenarios");
                let args: Vec<String> = d.args().iter().map(|a| a.to_string()).collect();
                match start_ringbox(&self.tools, &self.place, Durability::Fsync, &args) {
                    Ok(s) => {
                        servers.push(s);
                        instances.push(Instance {
                            daemon: d,
                            server: servers.len() - 1,
                            user_token: None,
                            jwts: BTreeMap::new(),
                        });
                    }
                    Err(e) => self.problem(format!(
                        "ringbox {d:?} could not be started for the API scenarios: {e}"
                    )),
                }
            }
        }
        let native_row = &ROWS[0];
        let reference = match instances.iter_mut().find(|i| i.daemon == Daemon::Default) {
            Some(inst) => self.prepare_row(native_row, inst, &servers).ok(),
            None => None,
        };
        let mut ready: BTreeMap<&'static str, Result<Ready, Unavailable>> = BTreeMap::new();
        for (row, _, _) in selected {
            if ready.contains_key(row.api) {
                continue;
            }
            let prepared = match instances.iter_mut().find(|i| i.daemon == row.daemon) {
                Some(inst) => self.prepare_row(row, inst, &servers),
                None => Err(Unavailable::Failed("its ringbox is not running".into())),
            };
            if let Err(Unavailable::Failed(e)) = &prepared {
                self.problem(format!("[api {}] cannot be measured: {e}", row.api));
            }
            ready.insert(row.api, prepared);
        }
        for (row, file, name) in selected {
            let result = match &ready[row.api] {
                Ok(r) => self.run_api(row, file, name, r, reference.as_ref(), nginx, &mut servers),
                Err(Unavailable::Absent(why)) => {
                    eprintln!("load: scenario {name}: API not in this build ({why})");
                    empty_result(row, file, name, format!("API not in this build: {why}"))
                }
                Err(Unavailable::Failed(why)) => {
                    empty_result(row, file, name, format!("not measured: {why}"))
                }
            };
            self.results.push(result);
        }
    }

    /// One (row, fixture): warm-up, then the A B A B rounds.
    #[allow(clippy::too_many_arguments)]
    fn run_api(
        &mut self,
        row: &ApiRow,
        file: &'static str,
        name: &'static str,
        ready: &Ready,
        reference: Option<&Ready>,
        nginx: Option<usize>,
        servers: &mut [Server],
    ) -> ScenarioResult {
        let spec = api_spec(row, file, name, self.settings.connections);
        eprintln!("load: scenario {} ({})", spec.name, spec.title);
        let mut notes = Vec::new();
        let mut plan = Vec::new();
        let timeout = std::time::Duration::from_secs(10);
        let run = |server: &Server, target: &str, headers: &[(String, String)]| WrkRun {
            url: server.url(target),
            headers: headers.to_vec(),
            method: "GET".into(),
            connections: spec.connections,
            duration: self.settings.duration,
            timeout,
        };
        let mut entries: Vec<(String, usize, WrkRun)> = vec![(
            "ringbox".into(),
            ready.server,
            run(&servers[ready.server], &ready.targets[file], &ready.headers),
        )];
        if row.api != ROWS[0].api {
            match reference {
                Some(r) => entries.push((
                    NATIVE_BY_ID.into(),
                    r.server,
                    run(&servers[r.server], &r.targets[file], &r.headers),
                )),
                None => note(
                    &mut notes,
                    "the native route by id could not be set up: no native-by-id figure".into(),
                ),
            }
        }
        if let Some(n) = nginx {
            match servers[n].target(file) {
                Ok(t) => {
                    let t = t.to_string();
                    entries.push(("nginx".into(), n, run(&servers[n], &t, &[])));
                }
                Err(e) => note(&mut notes, format!("nginx left out: {e}")),
            }
        }
        let script = self.place.run_dir.join("wrk-get.lua");
        let command = redact_all(
            &wrk::quoted(&wrk::command_line(
                &entries[0].2,
                self.settings.client_cpu,
                &script,
            )),
            &ready.headers,
        );
        for (label, server, run) in entries {
            if let Err(e) = Self::warm_up(&run, &servers[server], 200) {
                self.problem(format!("[{name}] warm-up failed, {label} left out: {e}"));
                note(&mut notes, format!("{label} left out: warm-up failed: {e}"));
                continue;
            }
            plan.push(Planned { label, server, run });
        }
        note(
            &mut notes,
            format!(
                "ringbox = {} `{}` ({}); native-by-id = `GET {NATIVE_GET}` with the admin token on the \
                 default ringbox; wrk pinned to CPU {}",
                row.api,
                row.get,
                describe(row),
                cpu_name(self.settings.client_cpu)
            ),
        );
        self.measure_get(&spec, &plan, servers, notes, command)
    }
}

/// The GET spec of one (row, fixture).
fn api_spec(row: &ApiRow, file: &'static str, name: &'static str, connections: usize) -> GetSpec {
    let size = if file == "4k.bin" { "4 KiB" } else { "1 MiB" };
    GetSpec {
        name,
        title: format!("{} GET {size}, {connections} conns", row.api),
        description: format!(
            "GET of the {size} fixture through `{}` ({}), against the native route by id \
             (`native-by-id`, as get-4k/get-1m) and nginx serving the same file, in the same rounds.",
            row.get,
            describe(row)
        ),
        file,
        method: "GET",
        connections,
        extra: Extra::None,
        ceiling: false,
        status: 200,
        background: Background::None,
    }
}

/// How a row is set up, for descriptions.
fn describe(row: &ApiRow) -> String {
    let auth = match row.auth {
        Auth::None => "no credential".to_string(),
        Auth::AdminToken => "admin API token".to_string(),
        Auth::UserToken => "a user's API token".to_string(),
        Auth::Jwt(route) => format!("a user's JWT from POST {route}"),
    };
    let flags = row.daemon.args().join(" ");
    format!(
        "{auth}; uploaded with {:?}; ringbox {}",
        row.upload,
        if flags.is_empty() {
            "defaults".to_string()
        } else {
            flags
        }
    )
}

/// A scenario without figures, saying why.
fn empty_result(row: &ApiRow, file: &str, name: &str, why: String) -> ScenarioResult {
    let size = if file == "4k.bin" { "4 KiB" } else { "1 MiB" };
    ScenarioResult {
        name: name.into(),
        title: format!(
            "{} GET {size} ({})",
            row.api,
            why.split(':').next().unwrap_or("")
        ),
        description: format!("GET of the {size} fixture through `{}`.", row.get),
        unit: "req/s".into(),
        better: Better::Higher,
        command: String::new(),
        rounds: Vec::new(),
        summary: Vec::new(),
        notes: vec![why],
    }
}

/// Replaces every bearer credential in a displayed command by `$TOKEN`.
fn redact_all(s: &str, headers: &[(String, String)]) -> String {
    headers
        .iter()
        .filter_map(|(_, v)| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
        .fold(s.to_string(), |acc, t| acc.replace(t, "$TOKEN"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_a_known_scenario_once() {
        let all = super::super::scenarios::ALL;
        let mut seen = std::collections::BTreeSet::new();
        for (row, file, name) in scenarios() {
            assert!(all.contains(&name), "{name} is missing from ALL");
            assert!(seen.insert(name), "{name} twice");
            assert!(FILES.contains(&file));
            assert!(name.contains(row.api));
        }
        let api_names = all.iter().filter(|n| n.starts_with("api-")).count();
        assert_eq!(api_names, seen.len(), "ALL has api- names without a row");
        assert_eq!(ROWS[0].get, NATIVE_GET, "the first row is the reference");
    }

    #[test]
    fn answers_are_found_by_path() {
        let v = serde_json::json!({"data": {"id": 7, "token": "t"}, "stored": [{"hash": "h"}]});
        assert_eq!(json_str(&v, "data.id").as_deref(), Some("7"));
        assert_eq!(json_str(&v, "stored.0.hash").as_deref(), Some("h"));
        assert_eq!(json_str(&v, "data.missing"), None);
    }

    #[test]
    fn multipart_has_one_file_part() {
        let (ct, body) = multipart("file", "4k.bin", b"abc");
        let boundary = ct.split("boundary=").nth(1).unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"file\"; filename=\"4k.bin\""));
        assert!(text.ends_with(&format!("\r\nabc\r\n--{boundary}--\r\n")));
    }

    #[test]
    fn tokens_are_redacted() {
        let h = vec![("Authorization".to_string(), "Bearer s3cret".to_string())];
        assert_eq!(
            redact_all("wrk -H 'Authorization: Bearer s3cret'", &h),
            "wrk -H 'Authorization: Bearer $TOKEN'"
        );
    }
}
