//! Routing: APIs are [`Mount`]s (a route table, the authentication schemes the API
//! accepts, an error renderer) placed at a prefix, and the [`Router`] merges every
//! enabled mount into one segment trie built once at start.
//!
//! - Patterns are written like `/v1/objects/{id}/content`; `{name}` matches one
//!   non-empty segment, `{*name}` the non-empty rest of the path. Parameters are
//!   percent-decoded (strictly: `%` must be followed by two hex digits, the result must
//!   be UTF-8; otherwise 400), so `/image/..%2F..%2Fevil.png` gives the parameter
//!   `../../evil.png`, which the core's naming rules then judge.
//! - Literal segments win over parameters, parameters over tails (with backtracking,
//!   so `/a/{x}/b` still matches when a literal sibling dead-ends).
//! - Unknown path: 404. Known path, method not listed: 405 with an `Allow` derived from
//!   the table (`HEAD` wherever `GET` is). `HEAD` is served by the `GET` handler.
//! - Two mounts may claim the same path and method only with a declared [`Claim`] on
//!   each (the known case: `GET /list` with an `Authorization` header is
//!   pyBlobServer's, without one photobackup's); an undeclared overlap is refused at
//!   start with an error naming both routes.
//! - Each route has a metrics label `(api, pattern)` registered at build time.
//!
//! Matching walks the trie with borrowed segments; the only allocation is for a
//! parameter that needs percent-decoding.

use std::net::IpAddr;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;
use ringbox_protocol::head::{BodyFraming, Method, RequestHead};

use crate::core::stream::ByteStream;
use crate::core::Local;
use crate::http::auth::{self, AuthScheme};
use crate::http::cors::Cors;
use crate::http::errors::{render_native, ApiError, ErrorRenderer};
use crate::http::ratelimit::{self, RateTiers};
use crate::http::request::{Ctx, Handler, Params, Request};
use crate::http::response::Response;
use crate::metrics;

/// Who may call a route (the coarse gate; object-level rules are the core's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, always; a bad credential is ignored, not refused.
    Public,
    /// A valid credential, or anonymous when `--anonymous read|write`.
    Read,
    /// A valid credential, or anonymous when `--anonymous write`.
    Write,
    /// A valid credential; the handler (core) decides what it may do.
    User,
    /// Admins only.
    Admin,
}

/// A declared rule for a path two APIs share.
#[derive(Clone, Copy)]
pub struct Claim {
    pub rule: &'static str,
    pub test: fn(&RequestHead) -> bool,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.rule)
    }
}

/// The claim "the request carries an `Authorization` header".
#[allow(dead_code)] // GET /list: pyBlobServer's side
pub const WITH_AUTHORIZATION: Claim = Claim {
    rule: "with an Authorization header",
    test: |h| h.header("authorization").is_some(),
};
/// The claim "the request carries no `Authorization` header".
#[allow(dead_code)] // GET /list: photobackup's side
pub const WITHOUT_AUTHORIZATION: Claim = Claim {
    rule: "without an Authorization header",
    test: |h| h.header("authorization").is_none(),
};

/// One row of a route table.
#[derive(Clone, Copy)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: Handler,
    pub claim: Option<Claim>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}", self.method, self.path)
    }
}

impl Route {
    pub const fn new(
        method: Method,
        path: &'static str,
        access: Access,
        handler: Handler,
    ) -> Route {
        Route {
            method,
            path,
            access,
            handler,
            claim: None,
        }
    }

    /// The same route, taken only when `claim` holds.
    #[allow(dead_code)] // used by the APIs that share a path
    pub const fn when(mut self, claim: Claim) -> Route {
        self.claim = Some(claim);
        self
    }
}

/// An API: its routes, how it authenticates, how it renders errors, where it sits.
#[derive(Debug, Clone)]
pub struct Mount {
    pub api: &'static str,
    /// `""` for the root, else `/prefix` (no trailing slash).
    pub prefix: String,
    pub routes: Vec<Route>,
    pub auth: Vec<AuthScheme>,
    pub render: ErrorRenderer,
    /// The API's rate limits (unlimited by default).
    pub rate: RateTiers,
}

impl Mount {
    /// The mount moved under `prefix` (`/` or empty keeps it at the root).
    pub fn at(mut self, prefix: &str) -> Mount {
        self.prefix = prefix.trim_end_matches('/').to_string();
        self
    }
}

#[derive(Debug, Clone)]
enum Seg {
    Lit(String),
    Param,
    Tail,
}

fn parse_pattern(pattern: &str) -> Result<Vec<Seg>, String> {
    let rest = pattern
        .strip_prefix('/')
        .ok_or_else(|| format!("route pattern `{pattern}` must start with `/`"))?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let mut out = Vec::with_capacity(parts.len());
    for (i, s) in parts.iter().enumerate() {
        out.push(if s.starts_with("{*") && s.ends_with('}') {
            if i + 1 != parts.len() {
                return Err(format!("`{pattern}`: a tail parameter must come last"));
            }
            Seg::Tail
        } else if s.starts_with('{') && s.ends_with('}') {
            Seg::Param
        } else if s.is_empty() {
            return Err(format!("`{pattern}` has an empty segment"));
        } else {
            Seg::Lit((*s).to_string())
        });
    }
    Ok(out)
}

/// A route as registered: where it came from and its metrics slot.
#[derive(Debug)]
struct Endpoint {
    mount: usize,
    route: Route,
    metric: usize,
}

#[derive(Debug, Default)]
struct Node {
    lits: Vec<(String, Node)>,
    param: Option<Box<Node>>,
    tail: Option<Vec<usize>>,
    here: Vec<usize>,
}

/// All mounts, merged.
#[derive(Debug)]
pub struct Router {
    mounts: Vec<Mount>,
    endpoints: Vec<Endpoint>,
    root: Node,
    max_body: u64,
    cors: Cors,
}

/// The outcome of a lookup.
enum Lookup<'r, 'p> {
    Found(&'r Endpoint, Params<'p>),
    NotFound,
    MethodNotAllowed(String, usize),
    BadParam,
}

impl Router {
    /// Merge `mounts`; `max_body` is the largest request body any route accepts;
    /// `cors` the origins allowed to call from browsers.
    pub fn build(mounts: Vec<Mount>, max_body: u64, cors: Cors) -> Result<Router, String> {
        let mut root = Node::default();
        let mut endpoints: Vec<Endpoint> = Vec::new();
        let mut labels = Vec::new();
        for (mi, m) in mounts.iter().enumerate() {
            for r in &m.routes {
                // A mount's `/` is its prefix itself (`/metaclip`, not `/metaclip/`).
                let full = match (m.prefix.as_str(), r.path) {
                    ("", path) => path.to_string(),
                    (prefix, "/") => prefix.to_string(),
                    (prefix, path) => format!("{prefix}{path}"),
                };
                let segs = parse_pattern(&full)?;
                let mut node = &mut root;
                let mut tail = false;
                for s in segs {
                    node = match s {
                        Seg::Lit(l) => {
                            let pos = match node.lits.iter().position(|(k, _)| *k == l) {
                                Some(p) => p,
                                None => {
                                    node.lits.push((l, Node::default()));
                                    node.lits.len() - 1
                                }
                            };
                            &mut node.lits[pos].1
                        }
                        Seg::Param => node.param.get_or_insert_with(Box::default),
                        Seg::Tail => {
                            tail = true;
                            node
                        }
                    };
                }
                let list = if tail {
                    node.tail.get_or_insert_with(Vec::new)
                } else {
                    &mut node.here
                };
                for &other in list.iter() {
                    let o: &Endpoint = &endpoints[other];
                    if o.route.method == r.method && (o.route.claim.is_none() || r.claim.is_none())
                    {
                        return Err(format!(
                            "{} {full} is claimed by both the {} and the {} API without a rule \
                             that decides; move one of them under a prefix or disable it",
                            method_name(r.method),
                            mounts[o.mount].api,
                            m.api
                        ));
                    }
                }
                list.push(endpoints.len());
                labels.push((m.api, full));
                endpoints.push(Endpoint {
                    mount: mi,
                    route: *r,
                    metric: labels.len() - 1,
                });
            }
        }
        metrics::init(labels);
        Ok(Router {
            mounts,
            endpoints,
            root,
            max_body,
            cors,
        })
    }

    fn lookup<'r, 'p>(&'r self, head: &RequestHead, path: &'p str) -> Lookup<'r, 'p> {
        let Some(rest) = path.strip_prefix('/') else {
            return Lookup::NotFound;
        };
        let mut segs: [&str; 32] = [""; 32];
        let mut n = 0;
        if !rest.is_empty() {
            for s in rest.split('/') {
                if n == segs.len() {
                    return Lookup::NotFound;
                }
                segs[n] = s;
                n += 1;
            }
        }
        let mut params = Params::default();
        let mut found: Option<&'r [usize]> = None;
        let mut raw: Vec<(usize, usize)> = Vec::new();
        walk(&self.root, &segs[..n], rest, &mut raw, &mut found);
        let Some(list) = found else {
            return Lookup::NotFound;
        };
        for (start, end) in raw {
            let value = &rest[start..end];
            match crate::util::query::decode_path(value) {
                Some(v) => {
                    params.push(v);
                }
                None => return Lookup::BadParam,
            }
        }
        let want = if head.method() == Method::Head {
            Method::Get
        } else {
            head.method()
        };
        let mut method_seen = false;
        for &e in list {
            let ep = &self.endpoints[e];
            if ep.route.method == want {
                method_seen = true;
                if ep.route.claim.is_none_or(|c| (c.test)(head)) {
                    return Lookup::Found(ep, params);
                }
            }
        }
        if method_seen {
            return Lookup::NotFound;
        }
        let mut allow: Vec<&str> = Vec::new();
        for &e in list {
            let m = self.endpoints[e].route.method;
            if m == Method::Get && !allow.contains(&"HEAD") {
                allow.push("GET");
                allow.push("HEAD");
            } else if !allow.contains(&method_name(m)) {
                allow.push(method_name(m));
            }
        }
        Lookup::MethodNotAllowed(allow.join(", "), self.endpoints[list[0]].mount)
    }

    /// The mount whose (non-root) prefix the path is under, for rendering errors of
    /// paths that matched no route.
    fn mount_for_path(&self, path: &str) -> Option<&Mount> {
        self.mounts
            .iter()
            .filter(|m| {
                !m.prefix.is_empty()
                    && path.starts_with(&m.prefix)
                    && path[m.prefix.len()..].starts_with(['/', '?'])
                    || path == m.prefix && !m.prefix.is_empty()
            })
            .max_by_key(|m| m.prefix.len())
    }

    /// The answer to a request under `mount`'s prefix that matched none of its routes
    /// (404, 405, a bad path parameter), in the mount's shape. A rate-limited mount
    /// counts it like any other request and adds its `X-RateLimit-*` headers, so every
    /// answer of a limited API carries them.
    fn unrouted(
        &self,
        svc: &Local,
        head: &RequestHead,
        mount: Option<&Mount>,
        e: ApiError,
        peer: Option<IpAddr>,
    ) -> Response {
        let Some(mount) = mount else {
            return render_native(e);
        };
        if !mount.rate.is_limited() {
            return (mount.render)(e);
        }
        let identity = auth::identify(svc, head, &mount.auth, Access::Public, peer);
        let Some(d) = ratelimit::check(svc, &identity, &mount.rate) else {
            return (mount.render)(e);
        };
        let mut r = if d.allowed {
            (mount.render)(e)
        } else {
            (mount.render)(ratelimit::too_many(&d))
        };
        ratelimit::add_headers(&mut r, &d);
        r
    }

    /// Answer one request: route, authenticate, apply the API's rate limit, check the
    /// body size, call the handler (a panic in it is caught and answered 500), and add
    /// the CORS headers an allowed origin gets. Returns the response and the route's
    /// metrics slot (`None` when no route matched).
    pub async fn dispatch(
        &self,
        svc: &Local,
        head: &RequestHead,
        body: &mut dyn ByteStream,
        peer: Option<IpAddr>,
    ) -> (Response, Option<usize>) {
        let (mut resp, metric) = self.route_and_call(svc, head, body, peer).await;
        if let Some(origin) = self.cors.allowed(head) {
            if resp.status != 204 || !Cors::is_preflight(head) {
                Cors::decorate(&mut resp, origin);
            }
        }
        (resp, metric)
    }

    async fn route_and_call(
        &self,
        svc: &Local,
        head: &RequestHead,
        body: &mut dyn ByteStream,
        peer: Option<IpAddr>,
    ) -> (Response, Option<usize>) {
        let path = head.path();
        let (ep, params) = match self.lookup(head, path) {
            Lookup::Found(ep, params) => (ep, params),
            Lookup::NotFound => {
                let e = ApiError::new(
                    404,
                    "not_found",
                    format!("no route for {path}; see the README for the API"),
                );
                return (
                    self.unrouted(svc, head, self.mount_for_path(path), e, peer),
                    None,
                );
            }
            Lookup::BadParam => {
                let e = ApiError::bad_request(format!(
                    "the path {path} has a segment that is not valid percent-encoded UTF-8"
                ));
                return (
                    self.unrouted(svc, head, self.mount_for_path(path), e, peer),
                    None,
                );
            }
            Lookup::MethodNotAllowed(allow, mount) if head.method() == Method::Options => {
                // CORS preflight, or a plain OPTIONS asking what the path allows.
                if Cors::is_preflight(head) {
                    return match self.cors.allowed(head) {
                        Some(origin) => (Cors::preflight(origin, &allow), None),
                        None => {
                            let e = ApiError::new(
                                403,
                                "origin_not_allowed",
                                "this origin may not call the API from a browser (see --cors-origins)",
                            );
                            ((self.mounts[mount].render)(e), None)
                        }
                    };
                }
                let mut r = Response::empty(204);
                r.header("Allow", format!("{allow}, OPTIONS"));
                return (r, None);
            }
            Lookup::MethodNotAllowed(allow, mount) => {
                let e = ApiError::new(
                    405,
                    "method_not_allowed",
                    format!(
                        "{} is not allowed here; allowed: {allow}",
                        head.method_str()
                    ),
                )
                .with_header("Allow", allow);
                return (
                    self.unrouted(svc, head, Some(&self.mounts[mount]), e, peer),
                    None,
                );
            }
        };
        let mount = &self.mounts[ep.mount];
        let metric = Some(ep.metric);
        let identity = auth::identify(svc, head, &mount.auth, ep.route.access, peer);
        // Counted before any refusal: an anonymous request answered 401 still spends
        // its IP's budget.
        let rate = if mount.rate.is_limited() {
            ratelimit::check(svc, &identity, &mount.rate)
        } else {
            None
        };
        let with_rate = |mut r: Response| {
            if let Some(d) = &rate {
                ratelimit::add_headers(&mut r, d);
            }
            r
        };
        if let Some(d) = rate.filter(|d| !d.allowed) {
            return (with_rate((mount.render)(ratelimit::too_many(&d))), metric);
        }
        if let Some(e) = identity.refused {
            return (with_rate((mount.render)(e)), metric);
        }
        // Refuse an oversized body before reading it (and before `100 Continue`).
        if let BodyFraming::ContentLength(n) = head.framing() {
            if n > self.max_body {
                return (
                    with_rate((mount.render)(ApiError::payload_too_large(self.max_body))),
                    metric,
                );
            }
        }
        let ctx = Ctx {
            svc,
            req: Request {
                head,
                params,
                caller: identity.caller,
                credential: identity.credential,
            },
            body,
        };
        let handler = ep.route.handler;
        // The core must know a HEAD sends no body (it is not a download).
        let call =
            crate::core::content::BodylessScope::new(head.method() == Method::Head, handler(ctx));
        // A panic in a handler must not take the worker (and every connection on it)
        // down: it is caught here, logged, counted, and answered 500; the connection
        // closes because the request body's state is unknown.
        let result = AssertUnwindSafe(call).catch_unwind().await;
        let resp = match result {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => (mount.render)(e),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(api = mount.api, route = ep.route.path, panic = %what, "a handler panicked; answered 500");
                metrics::get().panic("handler");
                (mount.render)(
                    ApiError::internal(
                        "the server hit a bug answering this request; it was logged",
                    )
                    .closing(),
                )
            }
        };
        (with_rate(resp), metric)
    }
}

/// Depth-first match of `segs` (slices of `rest`) against the trie. On success,
/// `found` is the endpoint list and `raw` the byte ranges of the parameters in `rest`.
fn walk<'r>(
    node: &'r Node,
    segs: &[&str],
    rest: &str,
    raw: &mut Vec<(usize, usize)>,
    found: &mut Option<&'r [usize]>,
) -> bool {
    let Some((first, more)) = segs.split_first() else {
        if !node.here.is_empty() {
            *found = Some(&node.here);
            return true;
        }
        return false;
    };
    if let Some((_, child)) = node.lits.iter().find(|(k, _)| k == first) {
        if walk(child, more, rest, raw, found) {
            return true;
        }
    }
    if let Some(child) = &node.param {
        if !first.is_empty() {
            raw.push(offset_of(rest, first));
            if walk(child, more, rest, raw, found) {
                return true;
            }
            raw.pop();
        }
    }
    if let Some(list) = &node.tail {
        let (start, _) = offset_of(rest, first);
        if start < rest.len() && !list.is_empty() {
            raw.push((start, rest.len()));
            *found = Some(list);
            return true;
        }
    }
    false
}

/// The method's token.
fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
        Method::Other => "OTHER",
    }
}

/// The byte range of `part` (a slice of `whole`) within `whole`.
fn offset_of(whole: &str, part: &str) -> (usize, usize) {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    (start, start + part.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::HandlerFuture;
    use ringbox_protocol::head::{parse_request_head, Status};
    use ringbox_protocol::Limits;

    fn nop<'a>(_ctx: Ctx<'a>) -> HandlerFuture<'a> {
        Box::pin(async { Ok(Response::empty(204)) })
    }

    fn head(req: &str) -> RequestHead {
        let mut h = RequestHead::new();
        let s = parse_request_head(req.as_bytes(), &Limits::default(), &mut h).unwrap();
        assert!(matches!(s, Status::Complete(_)));
        h
    }

    fn mount(api: &'static str, routes: Vec<Route>) -> Mount {
        Mount {
            api,
            prefix: String::new(),
            routes,
            auth: vec![],
            render: render_native,
            rate: RateTiers::NONE,
        }
    }

    fn get(r: &Router, method: &str, path: &str) -> Result<(String, Vec<String>), String> {
        let h = head(&format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        match r.lookup(&h, h.path()) {
            Lookup::Found(ep, p) => Ok((
                format!("{} {}", r.mounts[ep.mount].api, ep.route.path),
                (0..p.len()).map(|i| p.get(i).to_string()).collect(),
            )),
            Lookup::NotFound => Err("404".into()),
            Lookup::BadParam => Err("400".into()),
            Lookup::MethodNotAllowed(a, _) => Err(format!("405 {a}")),
        }
    }

    #[test]
    fn matching_params_tails_and_405() {
        let r = Router::build(
            vec![
                mount(
                    "a",
                    vec![
                        Route::new(Method::Get, "/v1/objects", Access::Read, nop),
                        Route::new(Method::Post, "/v1/objects", Access::Write, nop),
                        Route::new(Method::Get, "/v1/objects/{id}", Access::Read, nop),
                        Route::new(Method::Get, "/v1/objects/{id}/content", Access::Read, nop),
                        Route::new(Method::Get, "/v1/objects/search", Access::Read, nop),
                        Route::new(Method::Get, "/files/{*path}", Access::Read, nop),
                        Route::new(Method::Get, "/", Access::Public, nop),
                    ],
                ),
                mount(
                    "b",
                    vec![Route::new(Method::Put, "/image/{name}", Access::Write, nop)],
                )
                .at("/pb"),
            ],
            1 << 20,
            Cors::default(),
        )
        .unwrap();
        assert_eq!(get(&r, "GET", "/v1/objects").unwrap().0, "a /v1/objects");
        assert_eq!(get(&r, "HEAD", "/v1/objects/x").unwrap().1, vec!["x"]);
        assert_eq!(
            get(&r, "GET", "/v1/objects/search").unwrap().0,
            "a /v1/objects/search"
        );
        assert_eq!(
            get(&r, "GET", "/v1/objects/search/content").unwrap().1,
            vec!["search"]
        );
        assert_eq!(get(&r, "GET", "/v1/objects/a%20b").unwrap().1, vec!["a b"]);
        assert_eq!(
            get(&r, "GET", "/files/a/b%2Fc/d").unwrap().1,
            vec!["a/b/c/d"]
        );
        assert_eq!(get(&r, "GET", "/").unwrap().0, "a /");
        assert_eq!(
            get(&r, "PUT", "/pb/image/..%2F..%2Fevil.png").unwrap().1,
            vec!["../../evil.png"]
        );
        assert_eq!(get(&r, "GET", "/v1/objects/"), Err("404".into()));
        assert_eq!(get(&r, "GET", "/v1/objects/a/b"), Err("404".into()));
        assert_eq!(get(&r, "GET", "/files"), Err("404".into()));
        assert_eq!(get(&r, "GET", "/image/x"), Err("404".into()));
        assert_eq!(get(&r, "GET", "/v1/objects/%ff"), Err("400".into()));
        assert_eq!(get(&r, "GET", "/v1/objects/%+1"), Err("400".into()));
        assert_eq!(
            get(&r, "DELETE", "/v1/objects"),
            Err("405 GET, HEAD, POST".into())
        );
    }

    #[test]
    fn shared_paths_need_a_declared_rule() {
        let clash = Router::build(
            vec![
                mount(
                    "x",
                    vec![Route::new(Method::Get, "/list", Access::Read, nop)],
                ),
                mount(
                    "y",
                    vec![Route::new(Method::Get, "/list", Access::Read, nop)],
                ),
            ],
            1,
            Cors::default(),
        );
        assert!(clash.unwrap_err().contains("claimed by both"));
        let r = Router::build(
            vec![
                mount(
                    "pyblob",
                    vec![Route::new(Method::Get, "/list", Access::Read, nop)
                        .when(WITH_AUTHORIZATION)],
                ),
                mount(
                    "photobackup",
                    vec![Route::new(Method::Get, "/list", Access::Read, nop)
                        .when(WITHOUT_AUTHORIZATION)],
                ),
            ],
            1,
            Cors::default(),
        )
        .unwrap();
        let with = head("GET /list HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n");
        let without = head("GET /list HTTP/1.1\r\nHost: x\r\n\r\n");
        let api = |h: &RequestHead| match r.lookup(h, h.path()) {
            Lookup::Found(ep, _) => r.mounts[ep.mount].api,
            _ => "none",
        };
        assert_eq!(api(&with), "pyblob");
        assert_eq!(api(&without), "photobackup");
    }

    #[test]
    fn a_mounts_root_route_is_its_prefix() {
        let r = Router::build(
            vec![mount(
                "m",
                vec![
                    Route::new(Method::Get, "/", Access::Public, nop),
                    Route::new(Method::Get, "/items", Access::Read, nop),
                ],
            )
            .at("/m")],
            1,
            Cors::default(),
        )
        .unwrap();
        assert_eq!(get(&r, "GET", "/m").unwrap().0, "m /");
        assert_eq!(get(&r, "GET", "/m/items").unwrap().0, "m /items");
        assert_eq!(get(&r, "GET", "/"), Err("404".into()));
    }
}
