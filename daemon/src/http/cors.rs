//! Cross-origin requests: an allow-list of origins (`--cors-origins`, default none).
//! A request whose `Origin` is on the list gets `Access-Control-Allow-Origin` (that
//! origin, with `Vary: Origin`) and the response headers a browser script may read;
//! a preflight (`OPTIONS` with `Access-Control-Request-Method`) for a known path is
//! answered 204 with the methods the route table allows there. Origins not on the list
//! get no CORS headers (the browser then blocks the response), and their preflights
//! a 403.

use ringbox_protocol::head::RequestHead;

use crate::http::response::Response;

/// Response headers scripts may read.
const EXPOSE: &str = "ETag, Last-Modified, Content-Range, Content-Disposition, Location, \
                      X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, X-Request-Id";
/// Request headers a preflight may ask for.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Range, If-Match, If-None-Match, \
                             If-Modified-Since, If-Unmodified-Since, If-Range, X-Request-Id";

/// The allowed origins (`*` allows any).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cors {
    pub origins: Vec<String>,
}

impl Cors {
    /// The request's `Origin` if it is allowed.
    pub fn allowed<'a>(&self, head: &'a RequestHead) -> Option<&'a str> {
        let origin = head.header_str("origin")?;
        self.origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
            .then_some(origin)
    }

    /// Whether the request is a CORS preflight.
    pub fn is_preflight(head: &RequestHead) -> bool {
        head.header("origin").is_some() && head.header("access-control-request-method").is_some()
    }

    /// Add the headers of an allowed cross-origin answer.
    pub fn decorate(resp: &mut Response, origin: &str) {
        resp.header("Access-Control-Allow-Origin", origin.to_string())
            .header("Vary", "Origin")
            .header("Access-Control-Expose-Headers", EXPOSE);
    }

    /// The 204 answer to an allowed preflight for a path that allows `methods`.
    pub fn preflight(origin: &str, methods: &str) -> Response {
        let mut r = Response::empty(204);
        r.header("Access-Control-Allow-Origin", origin.to_string())
            .header("Vary", "Origin")
            .header("Access-Control-Allow-Methods", methods.to_string())
            .header("Access-Control-Allow-Headers", ALLOW_HEADERS)
            .header("Access-Control-Max-Age", "600");
        r
    }
}
