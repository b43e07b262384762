//! [`Limits`]: every bound the ingest engine applies, with the attack or failure each
//! one stops. The HTTP layer bounds the request body (1 MiB for JSON by default); these
//! bound what a body of any allowed size can make the engine do.

/// Bounds on one ingestion and on dataset reads. `Default` is the safe setting.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Documents per call. Bounds the analysis work and the size of one SQLite
    /// transaction (which holds the write lock for its whole duration).
    pub max_documents: usize,
    /// Deepest nesting of a document (objects and arrays each count as a level; a
    /// top-level scalar field is level 1). serde_json already refuses more than 128
    /// levels while parsing; this smaller bound also covers values built in memory and
    /// keeps every recursive walk of a document short.
    pub max_depth: usize,
    /// Nesting levels whose paths the analysis records one by one (`a.b[].c`). Deeper
    /// values still count towards the measured depth, they just do not get their own
    /// entry in `summary.Fields`: a hostile document cannot inflate the summary.
    pub analysis_depth: usize,
    /// Distinct paths the analysis records in `summary.Fields`; more are counted in the
    /// depth and stability figures but not listed.
    pub max_paths: usize,
    /// Distinct top-level fields of a SQL batch, i.e. columns of its table. SQLite's
    /// hard limit is 2000 columns per table.
    pub max_columns: usize,
    /// Longest field name that may become a SQL column, in UTF-8 bytes.
    pub max_column_name_bytes: usize,
    /// Largest value stored in one SQL cell, in bytes: a string, or the JSON text of an
    /// array or object. A bigger value is refused (send it as a file instead), so one
    /// row never outgrows what a `rows()` page or a query result can carry.
    pub max_cell_bytes: usize,
    /// Longest `comment`, in bytes.
    pub max_comment_bytes: usize,
    /// Largest `metadata` object, as JSON text, in bytes.
    pub max_metadata_bytes: usize,
    /// Most rows one `rows()` page returns.
    pub max_page_rows: usize,
    /// Most rows one `query()` returns, whatever the caller asks for.
    pub max_query_rows: usize,
    /// Longest SQL text a `query()` accepts, in bytes.
    pub max_query_bytes: usize,
    /// Largest string or blob a query may build (SQLite's `SQLITE_LIMIT_LENGTH` on the
    /// query connection): stops one `group_concat`/`printf` from filling memory. Must
    /// exceed `max_cell_bytes`, or stored cells could not be read back.
    pub max_query_value_bytes: usize,
    /// Memory SQLite may allocate while one query runs (on top of what it held when
    /// the query started): a result row of many large computed values, a huge sort.
    /// Checked with the deadline, so it can be overshot by what 250 VM steps allocate
    /// (at most a few hundred MiB with the value limit above).
    pub max_query_memory: usize,
    /// Bytes of values one `rows()` page or `query()` result may carry; a page stops
    /// early (with a cursor), a query result is `truncated`. At least one row is
    /// returned by `rows()` whatever its size.
    pub max_result_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_documents: 10_000,
            max_depth: 64,
            analysis_depth: 8,
            max_paths: 10_000,
            max_columns: 1_000,
            max_column_name_bytes: 128,
            max_cell_bytes: 1 << 20,
            max_comment_bytes: 4 * 1024,
            max_metadata_bytes: 64 * 1024,
            max_page_rows: 1_000,
            max_query_rows: 10_000,
            max_query_bytes: 64 * 1024,
            max_query_value_bytes: 4 << 20,
            max_query_memory: 256 << 20,
            max_result_bytes: 32 << 20,
        }
    }
}
