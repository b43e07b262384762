//! The response type shared by both clients, assertions on it, and `Client`: a real HTTP
//! client (ureq 2, plain HTTP, keep-alive pool) bound to one daemon and one credential.
//!
//! `Client` never turns a 4xx/5xx into an error: every status comes back as a `Resp`, so
//! tests assert on statuses themselves and a failing assertion prints the whole response.
//! Transport errors panic with the method and URL.

use super::daemon::Daemon;
use serde_json::Value;
use std::io::Read;
use std::time::Duration;

/// A fully read HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Every value of header `name`, in order.
    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// Header `name`, or a panic that shows the response.
    pub fn must_header(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("response has no {name} header:\n{}", self.describe()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body as JSON (panics with the response when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}):\n{}", self.describe()))
    }
    /// Status line, headers and the first 2 KiB of the body, for failure messages.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {} {}\n", self.version, self.status, self.reason);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\n"));
        }
        let shown = self.body.len().min(2048);
        s.push_str(&format!(
            "\n{}",
            String::from_utf8_lossy(&self.body[..shown])
        ));
        if self.body.len() > shown {
            s.push_str(&format!("... ({} bytes in all)", self.body.len()));
        }
        s
    }
    /// Asserts the status; returns self for chaining.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status,
            status,
            "unexpected status, expected {status}; response:\n{}",
            self.describe()
        );
        self
    }
    /// Asserts the status and parses the JSON body.
    #[track_caller]
    pub fn expect_json(self, status: u16) -> Value {
        self.expect(status).json()
    }
    /// Asserts a JSON error: status, `Content-Type: application/json` and
    /// `{"error":{"code":CODE,"message":<non-empty string>}}`.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Resp {
        self.expect_error_status(status);
        let v = self.json();
        assert_eq!(
            v["error"]["code"],
            code,
            "wrong error code, expected {code:?}; response:\n{}",
            self.describe()
        );
        self
    }
    /// Like `expect_error` without pinning the code (only that one is present).
    #[track_caller]
    pub fn expect_error_status(&self, status: u16) -> &Resp {
        assert_eq!(
            self.status,
            status,
            "unexpected status, expected {status}; response:\n{}",
            self.describe()
        );
        let ct = self.header("content-type").unwrap_or("");
        assert!(
            ct.to_ascii_lowercase().starts_with("application/json"),
            "error response is not application/json:\n{}",
            self.describe()
        );
        let v = self.json();
        assert!(
            v["error"]["code"].is_string(),
            "error.code missing:\n{}",
            self.describe()
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "error.message missing or empty:\n{}",
            self.describe()
        );
        self
    }
}

/// A keep-alive HTTP client for one daemon, with or without a bearer token.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
}

/// Per-request I/O timeout: generous, the 100 MiB upload in a debug build must fit.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(IO_TIMEOUT)
        .redirects(0)
        .build()
}

impl Client {
    /// A client that sends the daemon's admin token.
    pub fn new(d: &Daemon) -> Client {
        Client {
            agent: agent(),
            base: d.url(""),
            auth: Some(format!("Bearer {}", d.token())),
        }
    }
    /// A client without credentials.
    pub fn anonymous(d: &Daemon) -> Client {
        Client {
            agent: agent(),
            base: d.url(""),
            auth: None,
        }
    }
    /// A client with an arbitrary `Authorization` value.
    pub fn with_authorization(d: &Daemon, value: &str) -> Client {
        Client {
            agent: agent(),
            base: d.url(""),
            auth: Some(value.to_string()),
        }
    }

    pub fn req(&self, method: &str, path: &str) -> Req {
        let url = format!("{}{}", self.base, path);
        let mut r = self.agent.request(method, &url);
        if let Some(a) = &self.auth {
            r = r.set("Authorization", a);
        }
        Req {
            r,
            desc: format!("{method} {url}"),
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.req("GET", path).call()
    }
    pub fn head(&self, path: &str) -> Resp {
        self.req("HEAD", path).call()
    }
    pub fn delete(&self, path: &str) -> Resp {
        self.req("DELETE", path).call()
    }
    pub fn post(&self, path: &str, content_type: Option<&str>, body: &[u8]) -> Resp {
        let mut r = self.req("POST", path);
        if let Some(ct) = content_type {
            r = r.header("Content-Type", ct);
        }
        r.send_bytes(body)
    }
    pub fn put(&self, path: &str, content_type: Option<&str>, body: &[u8]) -> Resp {
        let mut r = self.req("PUT", path);
        if let Some(ct) = content_type {
            r = r.header("Content-Type", ct);
        }
        r.send_bytes(body)
    }
    pub fn post_json(&self, path: &str, v: &Value) -> Resp {
        self.req("POST", path).send_json(v)
    }
    pub fn patch_json(&self, path: &str, v: &Value) -> Resp {
        self.req("PATCH", path).send_json(v)
    }

    /// Raw upload `POST /v1/objects?name=..&namespace=..`; asserts 201 and returns the object.
    #[track_caller]
    pub fn upload(
        &self,
        name: &str,
        namespace: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Value {
        let mut q = format!("/v1/objects?name={}", super::util::pct(name));
        if let Some(ns) = namespace {
            q.push_str(&format!("&namespace={}", super::util::pct(ns)));
        }
        self.post(&q, content_type, body).expect_json(201)
    }
    /// `POST /v1/objects` with a JSON text object; asserts 201 and returns the object.
    #[track_caller]
    pub fn create_text(&self, name: &str, namespace: Option<&str>, content: &str) -> Value {
        let mut v = serde_json::json!({"type": "text", "content": content, "name": name});
        if let Some(ns) = namespace {
            v["namespace"] = ns.into();
        }
        self.post_json("/v1/objects", &v).expect_json(201)
    }
    /// `GET /v1/objects/{id}`; asserts 200.
    #[track_caller]
    pub fn object(&self, id: &str) -> Value {
        self.get(&format!("/v1/objects/{id}")).expect_json(200)
    }
    /// `GET /v1/objects/{id}/content`.
    pub fn content(&self, id: &str) -> Resp {
        self.get(&format!("/v1/objects/{id}/content"))
    }
    /// `GET /metrics` parsed; asserts 200.
    #[track_caller]
    pub fn metrics(&self) -> Vec<super::util::Sample> {
        let r = self.get("/metrics").expect(200);
        super::util::parse_metrics(&r.text())
    }
}

/// One request being built.
#[derive(Debug)]
pub struct Req {
    r: ureq::Request,
    desc: String,
}

impl Req {
    pub fn header(mut self, k: &str, v: &str) -> Req {
        self.r = self.r.set(k, v);
        self
    }
    pub fn call(self) -> Resp {
        let desc = self.desc;
        finish(&desc, self.r.call())
    }
    /// Sends `body` with a Content-Length (also `Content-Length: 0` for an empty body,
    /// which ureq would otherwise leave out).
    pub fn send_bytes(mut self, body: &[u8]) -> Resp {
        if body.is_empty() && self.r.header("content-length").is_none() {
            self.r = self.r.set("Content-Length", "0");
        }
        let desc = self.desc;
        finish(&desc, self.r.send_bytes(body))
    }
    pub fn send_json(self, v: &Value) -> Resp {
        let body = serde_json::to_vec(v).unwrap();
        self.header("Content-Type", "application/json")
            .send_bytes(&body)
    }
    /// Sends `reader` as the body: chunked, unless a Content-Length header was set.
    pub fn send_reader(self, reader: impl Read) -> Resp {
        let desc = self.desc;
        finish(&desc, self.r.send(reader))
    }
    /// Like `call` but returns transport errors instead of panicking.
    pub fn try_call(self) -> Result<Resp, String> {
        match self.r.call() {
            Ok(r) | Err(ureq::Error::Status(_, r)) => Ok(read_all(&self.desc, r)),
            Err(e) => Err(format!("{}: {e}", self.desc)),
        }
    }
}

fn read_all(desc: &str, r: ureq::Response) -> Resp {
    let version = r.http_version().to_string();
    let status = r.status();
    let reason = r.status_text().to_string();
    let mut names = r.headers_names();
    names.dedup();
    let mut seen = std::collections::HashSet::new();
    let mut headers = vec![];
    for n in names {
        if seen.insert(n.to_ascii_lowercase()) {
            for v in r.all(&n) {
                headers.push((n.clone(), v.to_string()));
            }
        }
    }
    let mut body = vec![];
    r.into_reader()
        .read_to_end(&mut body)
        .unwrap_or_else(|e| panic!("{desc}: reading the response body: {e}"));
    Resp {
        version,
        status,
        reason,
        headers,
        body,
    }
}

fn finish(desc: &str, r: Result<ureq::Response, ureq::Error>) -> Resp {
    match r {
        Ok(r) | Err(ureq::Error::Status(_, r)) => read_all(desc, r),
        Err(e) => panic!("{desc}: transport error: {e}"),
    }
}
