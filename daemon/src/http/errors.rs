//! One error shape for the whole API: `{"error":{"code":"...","message":"..."}}` with
//! the status it belongs to. Protocol errors, store errors and handler refusals all
//! become an [`ApiError`]; the message always says what the client can do about it.

use ringbox_protocol::HttpError;

use crate::http::response::{Body, Response};
use crate::store::StoreError;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// The connection cannot be reused after this error (framing is lost).
    pub close: bool,
    /// Extra headers (e.g. `Allow` on 405, `WWW-Authenticate` on 401).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            close: false,
            headers: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(404, "not_found", format!("{what} does not exist"))
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

    /// The JSON response for this error.
    pub fn into_response(self) -> Response {
        let body = serde_json::to_vec(&serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        }))
        .unwrap_or_default();
        let mut resp = Response::new(self.status, Body::Bytes(body));
        resp.content_type("application/json");
        for (name, value) in self.headers {
            resp.header(name, value);
        }
        resp.close = self.close;
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("the object"),
            StoreError::Conflict(m) => ApiError::new(409, "conflict", m),
            StoreError::Invalid(m) => ApiError::bad_request(m),
            StoreError::Full => ApiError::new(
                507,
                "insufficient_storage",
                "the data volume is full; free space or delete objects, then retry",
            ),
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::internal(format!("storage error: {other}; see the server log"))
            }
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
            return StoreError::Full.into();
        }
        tracing::error!(error = %e, "i/o error");
        ApiError::internal(format!("i/o error: {e}; see the server log"))
    }
}
