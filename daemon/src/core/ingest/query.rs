//! Read-only SQL over one dataset: `Datasets::query(name, sql, max_rows, deadline)`.
//!
//! A query is user SQL, so it runs behind five fences. Writes are stopped three times
//! over (fences 1, 3 and 4 each suffice); what may be *read* is decided by the
//! authorizer alone (fence 3), so its rules are tested case by case.
//!
//! 1. **A second connection opened read-only** (`SQLITE_OPEN_READ_ONLY`) with `PRAGMA
//!    query_only`, defensive mode, no triggers or views, and tight `sqlite3_limit`s:
//!    no attached databases, a bounded SQL length, expression depth, compound SELECT
//!    and string/blob length (so one `group_concat` or `printf` cannot fill memory).
//! 2. **One statement**: rusqlite refuses SQL with a second statement after the first
//!    (`SELECT 1; SELECT 2` fails whole, before anything runs; a second statement that
//!    writes is denied by fence 3 while rusqlite compiles it to check).
//! 3. **An authorizer** consulted while the statement is compiled. It allows
//!    `SQLITE_SELECT`, `SQLITE_RECURSIVE` (recursive CTEs; fence 5 bounds them),
//!    `SQLITE_READ` of the dataset's table in `main` (and of the pure table-valued
//!    functions `json_each` and `json_tree`), and `SQLITE_FUNCTION` for the functions
//!    in [`SAFE_FUNCTIONS`]. SQLite also reports a source no column is taken from
//!    (`count(*) FROM t`) as a read of column `""`, naming the database only when the
//!    query did; an unqualified name there could be a real table or a CTE, so only
//!    the dataset's table passes (`count(*)` over a CTE is refused: count a column).
//!    Everything else is denied: other tables (including `sqlite_master` /
//!    `sqlite_schema`, the `_datasets` catalogue, `dbstat` and the `pragma_*`
//!    table-valued functions), `PRAGMA`, `ATTACH`, transactions, every write and DDL,
//!    and functions such as `load_extension`, `randomblob`, `zeroblob`,
//!    `sqlite_version` or `fts3_tokenizer`. The refusal names what was denied.
//! 4. **`sqlite3_stmt_readonly`** must say the compiled statement writes nothing
//!    (catches `VACUUM`, which the authorizer is not asked about).
//! 5. **A deadline, a memory budget and a result limit**: every 250 VM steps a
//!    progress handler interrupts the statement once `deadline` has passed
//!    (`QueryTimeout`) or SQLite has allocated more than [`Limits::max_query_memory`]
//!    since the query started (`Limit`; SQLite's allocation counter is process-wide,
//!    which is exact enough on the one thread that owns both connections). At most
//!    `max_rows` rows (capped by [`Limits::max_query_rows`]) and about
//!    [`Limits::max_result_bytes`] are returned, with `truncated` set if there was more.
//!
//! Values come back untyped (SQLite's storage classes): integers and reals as numbers,
//! text as strings (a `JSON` column's text is not parsed here), blobs as base64, and
//! non-finite reals as `null`.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde::Serialize;
use serde_json::Value;

use super::datasets::{harden, plain_json, value_bytes, Datasets};
use super::decision::Engine;
use super::error::IngestError;

/// Functions a query may call: core scalar, aggregate, window, date/time, math and
/// JSON functions, which only compute on their arguments. Everything not listed is
/// denied, in particular `load_extension`, `randomblob`/`zeroblob` (memory),
/// `sqlite_*` (build details), `changes`/`last_insert_rowid`/`total_changes` and
/// `fts3_tokenizer`.
#[rustfmt::skip]
pub const SAFE_FUNCTIONS: &[&str] = &[
    // core scalar
    "abs", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex", "if", "ifnull",
    "iif", "instr", "length", "like", "lower", "ltrim", "max", "min", "nullif", "octet_length",
    "printf", "quote", "random", "replace", "round", "rtrim", "sign", "substr", "substring",
    "trim", "typeof", "unhex", "unicode", "unistr", "upper",
    // aggregate
    "avg", "count", "group_concat", "string_agg", "sum", "total", "median", "percentile",
    // window
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value",
    // date and time
    "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
    // math
    "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "ceiling", "cos",
    "cosh", "degrees", "exp", "floor", "ln", "log", "log10", "log2", "mod", "pi", "pow",
    "power", "radians", "sin", "sinh", "sqrt", "tan", "tanh", "trunc",
    // JSON (text forms; the operators `->` and `->>` are functions too)
    "json", "json_array", "json_array_length", "json_error_position", "json_extract",
    "json_group_array", "json_group_object", "json_insert", "json_object", "json_patch",
    "json_pretty", "json_quote", "json_remove", "json_replace", "json_set", "json_type",
    "json_valid", "->", "->>",
];

/// Table-valued functions a query may read from (they read nothing but their
/// arguments).
const SAFE_TABLE_FUNCTIONS: &[&str] = &["json_each", "json_tree"];

/// VM steps between two checks of the deadline and the memory budget. A check costs a
/// clock read and a read of SQLite's allocation counter (tens of nanoseconds), a step
/// a few nanoseconds to microseconds, so checks cost a few percent of a query, and a
/// query overruns its deadline by microseconds and its memory budget by what 250 steps
/// can allocate (each value is capped by `max_query_value_bytes`).
const PROGRESS_STEPS: i32 = 250;

/// Why the progress handler stopped a query.
const RUNNING: u8 = 0;
const OUT_OF_TIME: u8 = 1;
const OUT_OF_MEMORY: u8 = 2;

/// Bytes SQLite has allocated, process-wide (all connections).
fn sqlite_memory_used() -> i64 {
    // SAFETY: `sqlite3_memory_used` takes no arguments and touches no caller memory; it
    // reads SQLite's global allocation counter under SQLite's own mutex, and may be
    // called from any thread at any time (SQLite is built threadsafe).
    unsafe { rusqlite::ffi::sqlite3_memory_used() }
}

/// What one query may return and use.
struct Bounds {
    max_rows: usize,
    max_bytes: usize,
    deadline: Instant,
    timeout_ms: u64,
    /// `sqlite_memory_used()` when the query started, and what it may add.
    baseline: i64,
    budget: i64,
    memory_mib: usize,
}

/// The answer of [`Datasets::query`].
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// More rows were available than were returned.
    pub truncated: bool,
}

impl Datasets {
    /// Runs one read-only `SELECT` over SQL dataset `name`'s table. See the module docs
    /// for what is refused and how.
    pub fn query(
        &mut self,
        name: &str,
        sql: &str,
        max_rows: usize,
        deadline: Instant,
    ) -> Result<QueryResult, IngestError> {
        let info = self.dataset(name)?;
        if info.engine != Engine::Sql {
            return Err(IngestError::NotSql(info.name));
        }
        if sql.len() > self.limits.max_query_bytes {
            return Err(IngestError::Limit(format!(
                "the query is {} bytes; at most {} are allowed",
                sql.len(),
                self.limits.max_query_bytes
            )));
        }
        if sql.contains('\0') {
            return Err(IngestError::QueryRefused(
                "the query contains a NUL character".into(),
            ));
        }
        let max_rows = max_rows.min(self.limits.max_query_rows);
        let timeout_ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64;
        let limits = self.limits.clone();
        let ro = self.read_only()?;
        // The first denial: SQLite stops compiling at it, so it is the only one.
        let denied: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let table = info.name.clone();
        let record = Arc::clone(&denied);
        ro.authorizer(Some(move |ctx: AuthContext<'_>| {
            let verdict = authorize(&ctx, &table);
            if let Err(why) = verdict {
                if let Ok(mut slot) = record.lock() {
                    slot.get_or_insert(why);
                }
                return Authorization::Deny;
            }
            Authorization::Allow
        }))
        .map_err(|e| IngestError::sqlite("cannot install the query authorizer", e))?;
        let stop = Arc::new(AtomicU8::new(RUNNING));
        let why = Arc::clone(&stop);
        let baseline = sqlite_memory_used();
        let budget = i64::try_from(limits.max_query_memory).unwrap_or(i64::MAX);
        ro.progress_handler(
            PROGRESS_STEPS,
            Some(move || {
                let reason = if Instant::now() >= deadline {
                    OUT_OF_TIME
                } else if sqlite_memory_used().saturating_sub(baseline) > budget {
                    OUT_OF_MEMORY
                } else {
                    return false;
                };
                why.store(reason, Ordering::Relaxed);
                true
            }),
        )
        .map_err(|e| IngestError::sqlite("cannot install the query deadline", e))?;

        let bounds = Bounds {
            max_rows,
            max_bytes: limits.max_result_bytes,
            deadline,
            timeout_ms,
            baseline,
            budget,
            memory_mib: limits.max_query_memory >> 20,
        };
        let result = run(ro, sql, &bounds, &denied, &stop);

        // The hooks capture this query's table and deadline: remove them.
        let no_auth: Option<fn(AuthContext<'_>) -> Authorization> = None;
        let no_progress: Option<fn() -> bool> = None;
        let _ = ro.authorizer(no_auth);
        let _ = ro.progress_handler(0, no_progress);
        result
    }

    /// The read-only connection, opened and fenced on first use.
    fn read_only(&mut self) -> Result<&mut Connection, IngestError> {
        if self.ro.is_none() {
            let conn = Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| IngestError::sqlite("cannot open the query connection", e))?;
            let ctx = |e| IngestError::sqlite("cannot fence the query connection", e);
            conn.pragma_update(None, "query_only", true).map_err(ctx)?;
            conn.busy_timeout(std::time::Duration::from_secs(1))
                .map_err(ctx)?;
            harden(&conn)?;
            // Stored cells must stay readable whatever the setting.
            let value_bytes = self
                .limits
                .max_query_value_bytes
                .max(self.limits.max_cell_bytes + 1024);
            let value_bytes = i32::try_from(value_bytes).unwrap_or(i32::MAX);
            let sql_bytes = i32::try_from(self.limits.max_query_bytes).unwrap_or(i32::MAX);
            for (limit, value) in [
                (Limit::SQLITE_LIMIT_ATTACHED, 0),
                (Limit::SQLITE_LIMIT_LENGTH, value_bytes),
                (Limit::SQLITE_LIMIT_SQL_LENGTH, sql_bytes),
                (Limit::SQLITE_LIMIT_EXPR_DEPTH, 100),
                (Limit::SQLITE_LIMIT_COMPOUND_SELECT, 50),
                (Limit::SQLITE_LIMIT_FUNCTION_ARG, 100),
                (Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000),
                (Limit::SQLITE_LIMIT_VARIABLE_NUMBER, 100),
                (Limit::SQLITE_LIMIT_WORKER_THREADS, 0),
            ] {
                conn.set_limit(limit, value).map_err(ctx)?;
            }
            self.ro = Some(conn);
        }
        match self.ro.as_mut() {
            Some(c) => Ok(c),
            None => Err(IngestError::Internal(
                "the query connection is not open".into(),
            )),
        }
    }
}

/// `Ok` if the authorizer may allow `ctx` for a query over `table`; else why not.
fn authorize(ctx: &AuthContext<'_>, table: &str) -> Result<(), String> {
    match ctx.action {
        AuthAction::Select | AuthAction::Recursive => Ok(()),
        AuthAction::Read {
            table_name,
            column_name,
        } => {
            if SAFE_TABLE_FUNCTIONS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(table_name))
            {
                return Ok(());
            }
            let ours = table_name.eq_ignore_ascii_case(table);
            if !column_name.is_empty() {
                // A column read always names the table's database.
                if ours && ctx.database_name == Some("main") {
                    return Ok(());
                }
            } else if ours && matches!(ctx.database_name, None | Some("main")) {
                // A source no column is taken from (`count(*)`): SQLite names the
                // database only if the query did, and cannot say whether an unqualified
                // name is a table or a CTE. Only the dataset's own table passes, so a
                // CTE of that shape is refused too (count one of its columns instead).
                return Ok(());
            } else if ctx.database_name.is_none() {
                return Err(format!(
                    "`{table_name}` is used without reading any of its columns; only the \
                     dataset's table `{table}` may be (for a CTE, count one of its columns, \
                     e.g. count(x) instead of count(*))"
                ));
            }
            Err(format!(
                "reading `{table_name}` is not allowed; a query over this dataset may read only table `{table}`"
            ))
        }
        AuthAction::Function { function_name } => {
            if SAFE_FUNCTIONS
                .iter()
                .any(|f| f.eq_ignore_ascii_case(function_name))
            {
                Ok(())
            } else {
                Err(format!("function `{function_name}` is not allowed"))
            }
        }
        AuthAction::Pragma { pragma_name, .. } => {
            Err(format!("PRAGMA {pragma_name} is not allowed"))
        }
        AuthAction::Attach { .. } => Err("ATTACH is not allowed".into()),
        AuthAction::Detach { .. } => Err("DETACH is not allowed".into()),
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => {
            Err("transactions are not allowed".into())
        }
        other => Err(format!(
            "only read-only SELECT statements are allowed (this one would {})",
            action_verb(&other)
        )),
    }
}

fn action_verb(a: &AuthAction<'_>) -> String {
    let schema = |t: &str| {
        [
            "sqlite_master",
            "sqlite_schema",
            "sqlite_temp_master",
            "sqlite_temp_schema",
        ]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(t))
    };
    match a {
        AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Delete { table_name }
            if schema(table_name) =>
        {
            // DDL: SQLite asks about the write to the schema table first.
            "change the database schema".to_string()
        }
        AuthAction::Insert { table_name } => format!("insert into `{table_name}`"),
        AuthAction::Update { table_name, .. } => format!("update `{table_name}`"),
        AuthAction::Delete { table_name } => format!("delete from `{table_name}`"),
        AuthAction::DropTable { table_name } | AuthAction::DropTempTable { table_name } => {
            format!("drop table `{table_name}`")
        }
        AuthAction::CreateTable { table_name } | AuthAction::CreateTempTable { table_name } => {
            format!("create table `{table_name}`")
        }
        AuthAction::AlterTable { table_name, .. } => format!("alter table `{table_name}`"),
        other => format!("{other:?}"),
    }
}

/// Compiles and runs the statement with the hooks installed.
fn run(
    ro: &Connection,
    sql: &str,
    bounds: &Bounds,
    denied: &Mutex<Option<String>>,
    stop: &AtomicU8,
) -> Result<QueryResult, IngestError> {
    let refusal = |e: rusqlite::Error| -> IngestError {
        let why = denied.lock().ok().and_then(|mut d| d.take());
        match (stop.load(Ordering::Relaxed), e.sqlite_error_code()) {
            (OUT_OF_MEMORY, Some(ErrorCode::OperationInterrupted)) => IngestError::Limit(format!(
                "the query needed more than {} MiB of memory",
                bounds.memory_mib
            )),
            _ => classify(e, why, bounds.timeout_ms),
        }
    };
    let mut stmt = ro.prepare(sql).map_err(refusal)?;
    if !stmt.readonly() {
        return Err(IngestError::QueryRefused(
            "only read-only SELECT statements are allowed".into(),
        ));
    }
    let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let width = columns.len();
    let mut rows = stmt.query([]).map_err(refusal)?;
    let mut out = Vec::new();
    let mut truncated = false;
    let mut bytes = 0usize;
    'rows: while let Some(row) = rows.next().map_err(refusal)? {
        if out.len() == bounds.max_rows {
            truncated = true;
            break;
        }
        if Instant::now() >= bounds.deadline {
            return Err(IngestError::QueryTimeout(bounds.timeout_ms));
        }
        // A row of a few large values can be computed between two progress checks.
        if sqlite_memory_used().saturating_sub(bounds.baseline) > bounds.budget {
            return Err(IngestError::Limit(format!(
                "the query needed more than {} MiB of memory",
                bounds.memory_mib
            )));
        }
        let mut r = Vec::with_capacity(width);
        for i in 0..width {
            let v = row.get_ref(i).map_err(refusal)?;
            bytes += value_bytes(v);
            if bytes > bounds.max_bytes {
                truncated = true;
                break 'rows;
            }
            r.push(plain_json(v));
        }
        out.push(r);
    }
    Ok(QueryResult {
        columns,
        rows: out,
        truncated,
    })
}

/// Sorts a SQLite error of a user query into the caller's fault or ours.
fn classify(e: rusqlite::Error, denied: Option<String>, timeout_ms: u64) -> IngestError {
    // A denial by the authorizer surfaces as SQLITE_AUTH or, for functions, as a plain
    // SQLITE_ERROR; either way the recorded reason is the better message.
    if let Some(why) = denied {
        return IngestError::QueryRefused(why);
    }
    match &e {
        rusqlite::Error::MultipleStatement => IngestError::QueryRefused(
            "send exactly one statement (there is more SQL after the first one)".into(),
        ),
        rusqlite::Error::Empty => IngestError::QueryRefused("the query is empty".into()),
        rusqlite::Error::SqliteFailure(f, msg) => {
            let msg = msg.clone().unwrap_or_else(|| f.to_string());
            match f.code {
                ErrorCode::OperationInterrupted => IngestError::QueryTimeout(timeout_ms),
                ErrorCode::AuthorizationForStatementDenied => IngestError::QueryRefused(msg),
                ErrorCode::TooBig => IngestError::Limit(format!(
                    "the query built a value larger than the allowed size: {msg}"
                )),
                ErrorCode::ReadOnly => {
                    IngestError::QueryRefused("only read-only SELECT statements are allowed".into())
                }
                ErrorCode::Unknown
                | ErrorCode::ConstraintViolation
                | ErrorCode::TypeMismatch
                | ErrorCode::ParameterOutOfRange => IngestError::QueryRefused(msg),
                _ => IngestError::sqlite("the query failed", e),
            }
        }
        _ => IngestError::QueryRefused(e.to_string()),
    }
}
