//! The route table: every (path pattern, method) the native API answers, with the
//! access level each one requires. Matching is a walk over path segments against a
//! static table (no allocation); dispatch to handlers is a `match` on [`RouteId`] in
//! `api`, so adding a dialect later means adding rows here and arms there.
//!
//! Unknown path: 404. Known path, method not listed: 405 with `Allow`. `HEAD` is
//! accepted wherever `GET` is.

use ringbox_protocol::head::Method;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, always (health checks).
    Public,
    /// Reads: a valid token, or anonymous when `--anonymous read|write`.
    Read,
    /// Writes: a valid token, or anonymous when `--anonymous write`.
    Write,
    /// Admin tokens only.
    #[allow(dead_code)] // seam: admin-only routes arrive with users and tokens
    Admin,
}

/// The handlers of the native API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteId {
    Healthz,
    Metrics,
    Objects,
    Object,
    ObjectContent,
    Blob,
}

#[derive(Clone, Copy, Debug)]
enum Seg {
    Lit(&'static str),
    Param,
}

struct RouteSpec {
    id: RouteId,
    /// Metrics label.
    name: &'static str,
    pattern: &'static [Seg],
    methods: &'static [(Method, Access)],
    allow: &'static str,
}

use Seg::{Lit, Param};

const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        id: RouteId::Healthz,
        name: "/healthz",
        pattern: &[Lit("healthz")],
        methods: &[(Method::Get, Access::Public)],
        allow: "GET, HEAD",
    },
    RouteSpec {
        id: RouteId::Metrics,
        name: "/metrics",
        pattern: &[Lit("metrics")],
        methods: &[(Method::Get, Access::Read)],
        allow: "GET, HEAD",
    },
    RouteSpec {
        id: RouteId::Objects,
        name: "/v1/objects",
        pattern: &[Lit("v1"), Lit("objects")],
        methods: &[(Method::Get, Access::Read), (Method::Post, Access::Write)],
        allow: "GET, HEAD, POST",
    },
    RouteSpec {
        id: RouteId::Object,
        name: "/v1/objects/{id}",
        pattern: &[Lit("v1"), Lit("objects"), Param],
        methods: &[
            (Method::Get, Access::Read),
            (Method::Patch, Access::Write),
            (Method::Delete, Access::Write),
        ],
        allow: "GET, HEAD, PATCH, DELETE",
    },
    RouteSpec {
        id: RouteId::ObjectContent,
        name: "/v1/objects/{id}/content",
        pattern: &[Lit("v1"), Lit("objects"), Param, Lit("content")],
        methods: &[(Method::Get, Access::Read), (Method::Put, Access::Write)],
        allow: "GET, HEAD, PUT",
    },
    RouteSpec {
        id: RouteId::Blob,
        name: "/v1/blobs/{sha256}",
        pattern: &[Lit("v1"), Lit("blobs"), Param],
        methods: &[(Method::Get, Access::Read)],
        allow: "GET, HEAD",
    },
];

/// The most path parameters any route has.
const MAX_PARAMS: usize = 2;

/// A matched route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched<'a> {
    pub id: RouteId,
    pub name: &'static str,
    pub access: Access,
    params: [&'a str; MAX_PARAMS],
}

impl<'a> Matched<'a> {
    /// The `i`-th path parameter (raw, still percent-encoded).
    pub fn param(&self, i: usize) -> &'a str {
        self.params[i]
    }
}

/// Why no route answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed { allow: &'static str },
}

/// Metrics label for requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// All route names, for metrics.
pub fn route_names() -> impl Iterator<Item = &'static str> {
    ROUTES
        .iter()
        .map(|r| r.name)
        .chain(std::iter::once(UNMATCHED))
}

/// Find the route for `method` and `path` (the target before `?`).
pub fn route(method: Method, path: &str) -> Result<Matched<'_>, RouteError> {
    let rest = path.strip_prefix('/').ok_or(RouteError::NotFound)?;
    'routes: for spec in ROUTES {
        let mut params = [""; MAX_PARAMS];
        let mut n = 0;
        let mut segs = rest.split('/');
        for seg in spec.pattern {
            let Some(s) = segs.next() else {
                continue 'routes;
            };
            match seg {
                Lit(l) if *l == s => {}
                Lit(_) => continue 'routes,
                Param if s.is_empty() => continue 'routes,
                Param => {
                    params[n] = s;
                    n += 1;
                }
            }
        }
        if segs.next().is_some() {
            continue;
        }
        let want = if method == Method::Head {
            Method::Get
        } else {
            method
        };
        return match spec.methods.iter().find(|(m, _)| *m == want) {
            Some((_, access)) => Ok(Matched {
                id: spec.id,
                name: spec.name,
                access: *access,
                params,
            }),
            None => Err(RouteError::MethodNotAllowed { allow: spec.allow }),
        };
    }
    Err(RouteError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches() {
        let m = route(Method::Get, "/v1/objects/abc/content").unwrap();
        assert_eq!(m.id, RouteId::ObjectContent);
        assert_eq!(m.param(0), "abc");
        assert_eq!(
            route(Method::Head, "/healthz").unwrap().id,
            RouteId::Healthz
        );
        assert_eq!(
            route(Method::Get, "/v1/objects").unwrap().access,
            Access::Read
        );
        assert_eq!(
            route(Method::Post, "/v1/objects").unwrap().access,
            Access::Write
        );
        assert_eq!(
            route(Method::Get, "/v1/objects/"),
            Err(RouteError::NotFound)
        );
        assert_eq!(route(Method::Get, "/nope"), Err(RouteError::NotFound));
        assert_eq!(
            route(Method::Get, "/v1/objects/a/b"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            route(Method::Post, "/healthz"),
            Err(RouteError::MethodNotAllowed { allow: "GET, HEAD" })
        );
    }
}
