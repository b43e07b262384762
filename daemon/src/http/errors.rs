//! Errors on the wire: one neutral [`ApiError`] value (status, code, message, per-field
//! details, extra headers, whether the connection must close) that every source of
//! failure becomes (protocol errors, core errors, handler refusals), and the error
//! renderers that turn it into each API's body shape. The native shape is
//! `{"error":{"code":"...","message":"..."}}`; each dialect mount brings its own
//! renderer (Media Vault's envelope, pyBlobServer's `{"detail"}`, RhinoBox's
//! `{"error":"..."}`), and errors that come before routing (a malformed head, the 503
//! at the connection limit) use the native one.

use ringbox_protocol::HttpError;

use crate::core::{CoreError, ErrorKind};
use crate::http::response::{Body, Response};

/// An error answer, before rendering.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Per-field problems (`field`, `message`), for APIs that report them.
    pub details: Vec<(&'static str, String)>,
    /// The connection cannot be reused after this error (framing is lost).
    pub close: bool,
    /// Extra headers (e.g. `Allow` on 405, `WWW-Authenticate` on 401).
    pub headers: Vec<(&'static str, String)>,
}

/// Turns an [`ApiError`] into a response in one API's shape.
pub type ErrorRenderer = fn(ApiError) -> Response;

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            close: false,
            headers: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        let mut e = Self::new(401, "unauthorized", message);
        e.headers
            .push(("WWW-Authenticate", "Bearer realm=\"ringbox\"".into()));
        e
    }

    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            413,
            "payload_too_large",
            format!("the request body is larger than the limit of {limit} bytes (max_body); send less or raise the limit"),
        )
        .closing()
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }

    /// Mark the connection for closing after this answer.
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// From any protocol-crate error.
    pub fn from_protocol(e: &dyn HttpError) -> Self {
        let mut err = Self::new(e.status(), e.code(), e.to_string());
        err.close = e.must_close();
        err
    }

    /// The status an error kind maps to, for APIs that follow HTTP semantics.
    pub fn status_of(kind: ErrorKind) -> u16 {
        match kind {
            ErrorKind::Invalid => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Gone => 410,
            ErrorKind::TooLarge => 413,
            ErrorKind::Unsupported => 415,
            ErrorKind::Timeout => 408,
            ErrorKind::RateLimited => 429,
            ErrorKind::Busy => 503,
            ErrorKind::Full => 507,
            ErrorKind::Internal => 500,
        }
    }

    /// A response with `body` as JSON and this error's status and headers.
    pub fn respond_with(self, body: &serde_json::Value) -> Response {
        let mut resp = Response::new(
            self.status,
            Body::Bytes(serde_json::to_vec(body).unwrap_or_default()),
        );
        resp.content_type("application/json");
        for (name, value) in self.headers {
            resp.header(name, value);
        }
        resp.close = self.close;
        resp
    }
}

/// The native error shape: `{"error":{"code","message"}}` (plus `"details"` when there
/// are per-field problems).
pub fn render_native(e: ApiError) -> Response {
    let mut inner = serde_json::json!({ "code": e.code, "message": e.message });
    if !e.details.is_empty() {
        let details: serde_json::Map<String, serde_json::Value> = e
            .details
            .iter()
            .map(|(f, m)| (f.to_string(), serde_json::Value::String(m.clone())))
            .collect();
        inner["details"] = serde_json::Value::Object(details);
    }
    let body = serde_json::json!({ "error": inner });
    e.respond_with(&body)
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let mut err = ApiError::new(ApiError::status_of(e.kind), e.code, e.message);
        if let Some(f) = e.field {
            err.details.push((f, err.message.clone()));
        }
        match e.kind {
            ErrorKind::Unauthorized => err
                .headers
                .push(("WWW-Authenticate", "Bearer realm=\"ringbox\"".into())),
            ErrorKind::Busy => err.headers.push(("Retry-After", "1".into())),
            _ => {}
        }
        err
    }
}

/// A protocol error as a core error (for body streams handed to the core).
pub fn core_error_from_protocol(e: &dyn HttpError) -> CoreError {
    let kind = match e.status() {
        408 => ErrorKind::Timeout,
        413 => ErrorKind::TooLarge,
        _ => ErrorKind::Invalid,
    };
    CoreError::new(kind, e.code(), e.to_string())
}
