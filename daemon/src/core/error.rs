//! The one error type of the core services: what went wrong, in terms every API can
//! translate (each API renders it in its own shape and, where its seed says so, with
//! its own status). A [`CoreError`] never carries HTTP types; its [`ErrorKind`] says
//! who is at fault and what class of answer fits, its `code` is a stable machine
//! name (`not_found`, `invalid_name`, `quota_exceeded`, ...) and its message tells the
//! user what to do.

use std::fmt;

use crate::store::StoreError;

/// The class of a failure; each API maps it to a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or breaks a rule (400).
    Invalid,
    /// No (valid) credential where one is needed (401).
    Unauthorized,
    /// The caller is known but may not do this (403).
    Forbidden,
    /// No such thing, or the caller may not know it exists (404).
    NotFound,
    /// The request contradicts the current state (409).
    Conflict,
    /// The thing existed but its bytes are gone (410).
    Gone,
    /// A size limit or quota (413).
    TooLarge,
    /// The operation does not apply to this type of thing (415).
    #[allow(dead_code)] // for the dialects whose seeds answer 415
    Unsupported,
    /// The client was too slow (408).
    Timeout,
    /// A rate limit (429).
    #[allow(dead_code)] // for the rate limiter
    RateLimited,
    /// The server is saturated for this kind of work; retry (503).
    Busy,
    /// The data volume or the metadata map is full (507).
    Full,
    /// A bug or an I/O failure on our side (500).
    Internal,
}

/// A failure of a core service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreError {
    pub kind: ErrorKind,
    /// Stable machine name of the error.
    pub code: &'static str,
    /// What happened and what the user can do about it.
    pub message: String,
    /// The input field at fault, when there is one (for per-field error details).
    pub field: Option<&'static str>,
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CoreError {}

impl CoreError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        CoreError {
            kind,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// 400 `bad_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, "bad_request", message)
    }

    /// An invalid input field.
    pub fn invalid_field(field: &'static str, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::Invalid, "bad_request", message);
        e.field = Some(field);
        e
    }

    /// `what` ("the object", "a blob with this hash") does not exist for this caller.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            "not_found",
            format!("{what} does not exist"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, "conflict", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, "forbidden", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, "internal", message)
    }

    pub fn full() -> Self {
        Self::new(
            ErrorKind::Full,
            "insufficient_storage",
            "the data volume is full; free space or delete objects, then retry",
        )
    }

    /// A size limit: `what` is the limit's name as the operator knows it.
    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::TooLarge, code, message)
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => CoreError::not_found("the object"),
            StoreError::Conflict(m) => CoreError::conflict(m),
            StoreError::Invalid(m) => CoreError::invalid(m),
            StoreError::Full => CoreError::full(),
            StoreError::QuotaExceeded {
                limit,
                used,
                wanted,
            } => quota_exceeded(limit, used, wanted),
            other => {
                tracing::error!(error = %other, "store error");
                CoreError::internal(format!("storage error: {other}; see the server log"))
            }
        }
    }
}

impl From<std::io::Error> for CoreError {
    fn from(e: std::io::Error) -> Self {
        if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) {
            return CoreError::full();
        }
        tracing::error!(error = %e, "i/o error");
        CoreError::internal(format!("i/o error: {e}; see the server log"))
    }
}

/// Result of a core service.
pub type CoreResult<T> = Result<T, CoreError>;

/// 413 for a user's quota: says the limit and the space left.
pub fn quota_exceeded(limit: u64, used: u64, wanted: u64) -> CoreError {
    CoreError::too_large(
        "quota_exceeded",
        format!(
            "this needs {wanted} bytes but only {} of your quota of {limit} bytes are left; \
             delete something first",
            limit.saturating_sub(used)
        ),
    )
}
