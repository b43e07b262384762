//! [`IngestError`]: every way an ingestion, a dataset read or a dataset query can fail,
//! typed by who is at fault. Client faults (bad JSON, a refused query, a type conflict
//! with an existing table) carry a message written for the caller and map to 400 (404
//! for an unknown dataset); storage faults map to 500, or 507 when the disk is full.

use std::io;

/// Why an ingestion or a dataset call failed. `Display` is the user message.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body (or the `data` form field) is not JSON, or not the expected shape.
    /// Nesting deeper than serde_json's recursion limit (128) lands here too.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// Neither `document` nor `documents` (or an empty `documents` list). The message is
    /// RhinoBox's own.
    #[error("no JSON documents provided")]
    NoDocuments,
    /// A request field breaks a rule (namespace, both `document` and `documents`, a
    /// document that is not an object, a column name with a NUL, ...).
    #[error("{0}")]
    BadRequest(String),
    /// A configured limit was exceeded (documents per call, depth, cell size, ...); the
    /// message names the limit.
    #[error("{0}")]
    Limit(String),
    /// The batch contradicts the dataset it goes into: a value whose type does not fit
    /// the existing column, a missing `NOT NULL` field, a hint asking for the other
    /// engine, or two namespaces that map to one table.
    #[error("{0}")]
    Conflict(String),
    /// No dataset of that name.
    #[error("dataset `{0}` does not exist")]
    NotFound(String),
    /// The dataset exists but is stored as NoSQL documents, which have no SQL table.
    #[error("dataset `{0}` is stored as nosql documents; it has no SQL table to read or query")]
    NotSql(String),
    /// A dataset query was refused before it ran: not a single read-only `SELECT`, or it
    /// touches something other than the dataset's table (the message says what).
    #[error("query refused: {0}")]
    QueryRefused(String),
    /// A dataset query ran past its deadline and was interrupted.
    #[error("query interrupted: it ran longer than {0} ms")]
    QueryTimeout(u64),
    /// The disk (or SQLite's file) is full.
    #[error("no space left for the dataset files: {0}")]
    Full(String),
    /// File I/O failed; the message names the path.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The dataset store is in a state this build cannot use (a damaged catalogue
    /// entry, a database written by a newer ringbox).
    #[error("dataset store: {0}")]
    Internal(String),
    /// SQLite failed for a reason that is not the caller's fault.
    #[error("dataset store: {context}: {source}")]
    Sqlite {
        context: String,
        #[source]
        source: rusqlite::Error,
    },
}

impl IngestError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            IngestError::NotFound(_) => 404,
            IngestError::Full(_) => 507,
            IngestError::Io { .. } | IngestError::Sqlite { .. } | IngestError::Internal(_) => 500,
            _ => 400,
        }
    }

    /// A stable machine-readable code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::InvalidJson(_) => "invalid_json",
            IngestError::NoDocuments => "no_documents",
            IngestError::BadRequest(_) => "bad_request",
            IngestError::Limit(_) => "limit_exceeded",
            IngestError::Conflict(_) => "schema_conflict",
            IngestError::NotFound(_) => "not_found",
            IngestError::NotSql(_) => "not_sql",
            IngestError::QueryRefused(_) => "query_refused",
            IngestError::QueryTimeout(_) => "query_timeout",
            IngestError::Full(_) => "insufficient_storage",
            IngestError::Io { .. } | IngestError::Sqlite { .. } | IngestError::Internal(_) => {
                "internal"
            }
        }
    }

    /// True for faults of the caller (4xx), false for faults of the server.
    pub fn is_client_error(&self) -> bool {
        self.status() < 500
    }

    /// An I/O error with the path or step it concerns; ENOSPC and EDQUOT become
    /// [`IngestError::Full`].
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        let context = context.into();
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => IngestError::Full(context),
            _ => IngestError::Io { context, source },
        }
    }

    /// A SQLite error with the step it happened in; `SQLITE_FULL` becomes
    /// [`IngestError::Full`].
    pub(crate) fn sqlite(context: impl Into<String>, source: rusqlite::Error) -> Self {
        let context = context.into();
        if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return IngestError::Full(context);
        }
        IngestError::Sqlite { context, source }
    }
}
