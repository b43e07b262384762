//! SQLite datasets: SQL-routed documents as rows of one table per namespace, in one
//! database file `<root>/json/datasets.sqlite3`, plus a catalogue of every dataset.
//! (RhinoBox only writes files; this is ringbox's addition.)
//!
//! Contract:
//!
//! * **One thread.** [`Datasets`] owns its connections and is `Send` but not `Sync`:
//!   it lives on the thread that runs ingestions (never an io_uring worker, because
//!   every call blocks on disk). WAL mode lets the read-only query connection read a
//!   committed snapshot beside the write connection.
//! * **Durability**: `synchronous=FULL` with [`Durability::Fsync`] (a commit survives
//!   power loss once `insert_sql_batch` returns), `OFF` with [`Durability::None`].
//! * **One transaction per batch**: `CREATE TABLE` (or `ALTER TABLE ... ADD COLUMN` for
//!   fields the table lacks), every row through one prepared statement with typed
//!   binding, and the catalogue update commit together or not at all. The caller's
//!   file writes run inside the transaction, just before the commit, so a failed file
//!   write leaves no rows and a failed insert leaves no files.
//! * **Types** follow `schema.rs`. A value that does not fit its existing column is
//!   refused with the document index and field, except where the conversion is
//!   lossless: an integer into a `REAL` column (if within ±2^53), a float with no
//!   fractional part into an `INTEGER` column (if within i64), anything into a `JSON`
//!   column. A field missing from a document is NULL, which a `NOT NULL` column refuses
//!   with a clear error. A string or JSON text longer than `max_cell_bytes` is refused.
//! * **Catalogue** `_datasets` (name, namespace, engine, created_at, updated_at,
//!   row_count, batches, schema_json). NoSQL datasets are recorded too (their documents
//!   live elsewhere), so a namespace keeps one engine and two namespaces cannot share a
//!   table. Table names never start with `_` (see `schema.rs`), so the catalogue cannot
//!   collide with a dataset.
//! * **Reads**: [`Datasets::list_datasets`], [`Datasets::dataset`], [`Datasets::rows`]
//!   (pages in `_rowid` order; the cursor is the last `_rowid` returned). Read-only
//!   queries are in `query.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, ToSql};
use serde::Serialize;
use serde_json::{Map, Value};

use super::decision::Engine;
use super::error::IngestError;
use super::limits::Limits;
use super::request::type_name;
use super::schema::{
    check_column_names, check_table_name, column_defs, column_sql, create_table_sql, quote_ident,
    ColType, Column, ColumnDef, ROWID_COLUMN,
};
use crate::store::Durability;

/// The database file, relative to the root.
pub const DATABASE_PATH: &str = "json/datasets.sqlite3";
/// The catalogue table.
pub const CATALOGUE: &str = "_datasets";
/// `PRAGMA user_version` of the layout this build writes.
const LAYOUT_VERSION: i64 = 1;
/// How long a statement waits for a lock held by another process (e.g. an operator's
/// `sqlite3` shell) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const TWO_POW_53: u64 = 1 << 53;

/// One dataset, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetInfo {
    /// The table name (the sanitised namespace).
    pub name: String,
    pub namespace: String,
    pub engine: Engine,
    pub created_at: String,
    pub updated_at: String,
    /// Rows (SQL) or documents accepted (NoSQL).
    pub row_count: u64,
    pub batches: u64,
    /// SQL only: the columns in table order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnDef>,
    /// SQL only: the table's `CREATE TABLE`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub schema_sql: String,
    #[serde(skip)]
    pub(crate) cols: Vec<Column>,
}

/// What a SQL batch will do to its table; made by [`Datasets::plan_sql`].
#[derive(Debug, Clone)]
pub struct SqlPlan {
    pub table: String,
    pub namespace: String,
    /// The table exists already.
    pub existing: bool,
    /// Every column after this batch, in table order.
    pub columns: Vec<Column>,
    /// Columns this batch adds (all of them for a new table).
    pub added: Vec<Column>,
}

impl SqlPlan {
    /// The table's `CREATE TABLE` after this batch.
    pub fn schema_sql(&self) -> String {
        create_table_sql(&self.table, &self.columns)
    }

    /// The seed's `columns` map after this batch.
    pub fn column_defs(&self) -> BTreeMap<String, ColumnDef> {
        column_defs(&self.columns)
    }

    fn schema_json(&self) -> String {
        let defs: Vec<ColumnDef> = self.columns.iter().map(Column::def).collect();
        serde_json::json!({ "columns": defs }).to_string()
    }
}

/// A value bound to an INSERT parameter, borrowing strings from the document.
enum Cell<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Owned(String),
}

impl ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Cell::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Cell::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Cell::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Cell::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Cell::Owned(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

/// The dataset store. See the module docs.
#[derive(Debug)]
pub struct Datasets {
    pub(super) conn: Connection,
    /// The read-only connection for `query()`, opened on first use.
    pub(super) ro: Option<Connection>,
    pub(super) path: PathBuf,
    pub(super) limits: Limits,
}

fn sql_err(context: &str) -> impl FnOnce(rusqlite::Error) -> IngestError + '_ {
    move |e| IngestError::sqlite(context, e)
}

impl Datasets {
    /// Opens (creating if needed) the database at `path` in WAL mode.
    pub fn open(path: &Path, durability: Durability, limits: Limits) -> Result<Self, IngestError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| IngestError::sqlite(format!("cannot open {}", path.display()), e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(sql_err("cannot switch to WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "SQLite refused WAL mode");
        }
        let sync = match durability {
            Durability::Fsync => "FULL",
            Durability::None => "OFF",
        };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(sql_err("cannot set synchronous"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql_err("cannot set the busy timeout"))?;
        harden(&conn)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql_err("cannot read user_version"))?;
        if version > LAYOUT_VERSION {
            return Err(IngestError::Internal(format!(
                "{} was written by a newer ringbox (layout {version}, this build knows {LAYOUT_VERSION})",
                path.display()
            )));
        }
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {CATALOGUE} (
                name TEXT PRIMARY KEY,
                namespace TEXT NOT NULL,
                engine TEXT NOT NULL CHECK (engine IN ('sql', 'nosql')),
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                row_count INTEGER NOT NULL DEFAULT 0,
                batches INTEGER NOT NULL DEFAULT 0,
                schema_json TEXT NOT NULL
            );
            PRAGMA user_version = {LAYOUT_VERSION};"
        ))
        .map_err(sql_err("cannot create the catalogue"))?;
        Ok(Datasets {
            conn,
            ro: None,
            path: path.to_path_buf(),
            limits,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every dataset, by name.
    pub fn list_datasets(&self) -> Result<Vec<DatasetInfo>, IngestError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{SELECT_INFO} ORDER BY name"))
            .map_err(sql_err("cannot list datasets"))?;
        let rows = stmt
            .query_map([], info_from_row)
            .map_err(sql_err("cannot list datasets"))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(finish_info(r.map_err(sql_err("cannot list datasets"))?)?);
        }
        Ok(out)
    }

    /// The dataset whose table name, or else namespace, is `name`.
    pub fn dataset(&self, name: &str) -> Result<DatasetInfo, IngestError> {
        self.find(name)?
            .ok_or_else(|| IngestError::NotFound(name.to_string()))
    }

    /// Like [`Datasets::dataset`], `None` when there is none.
    pub fn find(&self, name: &str) -> Result<Option<DatasetInfo>, IngestError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "{SELECT_INFO} WHERE name = ?1 OR namespace = ?1 ORDER BY name = ?1 DESC LIMIT 1"
            ))
            .map_err(sql_err("cannot read the catalogue"))?;
        let row = stmt
            .query_row([name], info_from_row)
            .optional()
            .map_err(sql_err("cannot read the catalogue"))?;
        row.map(finish_info).transpose()
    }

    /// The catalogue entry of table `table` exactly.
    pub(super) fn by_table(&self, table: &str) -> Result<Option<DatasetInfo>, IngestError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{SELECT_INFO} WHERE name = ?1"))
            .map_err(sql_err("cannot read the catalogue"))?;
        let row = stmt
            .query_row([table], info_from_row)
            .optional()
            .map_err(sql_err("cannot read the catalogue"))?;
        row.map(finish_info).transpose()
    }

    /// Plans a SQL batch whose fields are `batch_columns` into `table`: checks names,
    /// merges with the existing columns, and lists the columns to add.
    pub fn plan_sql(
        &self,
        table: &str,
        namespace: &str,
        batch_columns: Vec<Column>,
    ) -> Result<SqlPlan, IngestError> {
        check_table_name(table)?;
        check_column_names(batch_columns.iter().map(|c| c.name.as_str()), &self.limits)?;
        let plan = match self.by_table(table)? {
            None => SqlPlan {
                table: table.to_string(),
                namespace: namespace.to_string(),
                existing: false,
                added: batch_columns.clone(),
                columns: batch_columns,
            },
            Some(info) => {
                if info.namespace != namespace {
                    return Err(name_clash(table, &info.namespace, namespace));
                }
                if info.engine != Engine::Sql {
                    return Err(IngestError::Conflict(format!(
                        "namespace `{namespace}` holds nosql documents; it cannot take SQL rows"
                    )));
                }
                let mut columns = info.cols;
                let mut added = Vec::new();
                for c in batch_columns {
                    match columns
                        .iter()
                        .find(|e| e.name.eq_ignore_ascii_case(&c.name))
                    {
                        Some(e) if e.name != c.name => {
                            return Err(IngestError::Conflict(format!(
                            "field `{}` differs only in case from column `{}` of table `{table}`; \
                                 SQL column names ignore case",
                            c.name.escape_debug(),
                            e.name.escape_debug()
                        )))
                        }
                        Some(_) => {}
                        None => added.push(Column {
                            required: false, // existing rows have no value for it
                            ..c
                        }),
                    }
                }
                columns.extend(added.iter().cloned());
                SqlPlan {
                    table: table.to_string(),
                    namespace: namespace.to_string(),
                    existing: true,
                    columns,
                    added,
                }
            }
        };
        if plan.columns.len() > self.limits.max_columns {
            return Err(IngestError::Limit(format!(
                "table `{table}` would have {} columns; at most {} are allowed",
                plan.columns.len(),
                self.limits.max_columns
            )));
        }
        Ok(plan)
    }

    /// Inserts `docs` as rows in one transaction, creating or widening the table as
    /// `plan` says and updating the catalogue. `before_commit` runs last inside the
    /// transaction (the caller writes its files there); if it fails, nothing is
    /// committed. Returns the number of rows inserted.
    pub fn insert_sql_batch(
        &mut self,
        plan: &SqlPlan,
        docs: &[Map<String, Value>],
        now: &str,
        before_commit: impl FnOnce() -> Result<(), IngestError>,
    ) -> Result<usize, IngestError> {
        let limits = self.limits.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(sql_err("cannot begin a transaction"))?;
        let table = quote_ident(&plan.table);
        if plan.existing {
            for c in &plan.added {
                tx.execute(
                    &format!("ALTER TABLE {table} ADD COLUMN {}", column_sql(c)),
                    [],
                )
                .map_err(sql_err("cannot add a column"))?;
            }
            tx.execute(
                &format!(
                    "UPDATE {CATALOGUE} SET updated_at = ?2, row_count = row_count + ?3, \
                     batches = batches + 1, schema_json = ?4 WHERE name = ?1"
                ),
                params![plan.table, now, docs.len() as i64, plan.schema_json()],
            )
            .map_err(sql_err("cannot update the catalogue"))?;
        } else {
            tx.execute(&plan.schema_sql(), [])
                .map_err(sql_err("cannot create the table"))?;
            tx.execute(
                &format!(
                    "INSERT INTO {CATALOGUE} (name, namespace, engine, created_at, updated_at, \
                     row_count, batches, schema_json) VALUES (?1, ?2, 'sql', ?3, ?3, ?4, 1, ?5)"
                ),
                params![
                    plan.table,
                    plan.namespace,
                    now,
                    docs.len() as i64,
                    plan.schema_json()
                ],
            )
            .map_err(sql_err("cannot update the catalogue"))?;
        }
        {
            let names: Vec<String> = plan.columns.iter().map(|c| quote_ident(&c.name)).collect();
            let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
            let sql = if names.is_empty() {
                format!("INSERT INTO {table} DEFAULT VALUES")
            } else {
                format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    names.join(", "),
                    marks.join(", ")
                )
            };
            let mut stmt = tx
                .prepare(&sql)
                .map_err(sql_err("cannot prepare the insert"))?;
            for (i, doc) in docs.iter().enumerate() {
                for (j, col) in plan.columns.iter().enumerate() {
                    let cell = to_cell(doc.get(&col.name), col, i, &plan.table, &limits)?;
                    stmt.raw_bind_parameter(j + 1, &cell)
                        .map_err(sql_err("cannot bind a value"))?;
                }
                stmt.raw_execute().map_err(sql_err("cannot insert a row"))?;
            }
        }
        before_commit()?;
        tx.commit().map_err(sql_err("cannot commit"))?;
        Ok(docs.len())
    }

    /// Records a NoSQL batch of `count` documents for `table` in the catalogue.
    pub fn record_nosql_batch(
        &mut self,
        table: &str,
        namespace: &str,
        count: usize,
        now: &str,
    ) -> Result<(), IngestError> {
        match self.by_table(table)? {
            Some(info) if info.namespace != namespace => {
                Err(name_clash(table, &info.namespace, namespace))
            }
            Some(info) if info.engine != Engine::Nosql => Err(IngestError::Conflict(format!(
                "namespace `{namespace}` holds SQL rows in table `{table}`; it cannot take nosql documents"
            ))),
            Some(_) => {
                self.conn
                    .execute(
                        &format!(
                            "UPDATE {CATALOGUE} SET updated_at = ?2, row_count = row_count + ?3, \
                             batches = batches + 1 WHERE name = ?1"
                        ),
                        params![table, now, count as i64],
                    )
                    .map_err(sql_err("cannot update the catalogue"))?;
                Ok(())
            }
            None => {
                self.conn
                    .execute(
                        &format!(
                            "INSERT INTO {CATALOGUE} (name, namespace, engine, created_at, \
                             updated_at, row_count, batches, schema_json) \
                             VALUES (?1, ?2, 'nosql', ?3, ?3, ?4, 1, '{{}}')"
                        ),
                        params![table, namespace, now, count as i64],
                    )
                    .map_err(sql_err("cannot update the catalogue"))?;
                Ok(())
            }
        }
    }

    /// A page of rows of SQL dataset `name` after `cursor` (a `_rowid`; `None` for the
    /// first page), at most `limit` (clamped to 1..=`max_page_rows`) and about
    /// `max_result_bytes` (at least one row). Each row is an
    /// object with `_rowid` and every column (NULL as `null`; `BOOLEAN` as true/false,
    /// `JSON` parsed back). The second value is the cursor of the next page, if any.
    pub fn rows(
        &self,
        name: &str,
        limit: usize,
        cursor: Option<i64>,
    ) -> Result<(Vec<Value>, Option<i64>), IngestError> {
        let info = self.dataset(name)?;
        if info.engine != Engine::Sql {
            return Err(IngestError::NotSql(info.name));
        }
        let limit = limit.clamp(1, self.limits.max_page_rows.max(1));
        let mut cols = vec![quote_ident(ROWID_COLUMN)];
        cols.extend(info.cols.iter().map(|c| quote_ident(&c.name)));
        let sql = format!(
            "SELECT {} FROM {} WHERE {} > ?1 ORDER BY {} LIMIT ?2",
            cols.join(", "),
            quote_ident(&info.name),
            quote_ident(ROWID_COLUMN),
            quote_ident(ROWID_COLUMN)
        );
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(sql_err("cannot read rows"))?;
        let mut rows = stmt
            .query(params![cursor.unwrap_or(i64::MIN), (limit + 1) as i64])
            .map_err(sql_err("cannot read rows"))?;
        let mut out = Vec::with_capacity(limit);
        let mut last = None;
        let mut more = false;
        let mut bytes = 0usize;
        while let Some(row) = rows.next().map_err(sql_err("cannot read rows"))? {
            if out.len() == limit || (!out.is_empty() && bytes >= self.limits.max_result_bytes) {
                more = true;
                break;
            }
            let rowid: i64 = row.get(0).map_err(sql_err("cannot read rows"))?;
            let mut obj = Map::new();
            obj.insert(ROWID_COLUMN.to_string(), Value::from(rowid));
            for (i, c) in info.cols.iter().enumerate() {
                let v = row.get_ref(i + 1).map_err(sql_err("cannot read rows"))?;
                bytes += value_bytes(v);
                obj.insert(c.name.clone(), typed_json(v, c.ty));
            }
            out.push(Value::Object(obj));
            last = Some(rowid);
        }
        Ok((out, if more { last } else { None }))
    }
}

/// Switches off SQLite features a dataset database never needs and that widen what a
/// query can do: double-quoted string literals (a misspelt `"column"` would silently be
/// a string), triggers and views, and trust in functions named by the schema.
pub(super) fn harden(conn: &Connection) -> Result<(), IngestError> {
    use rusqlite::config::DbConfig;
    for (cfg, on) in [
        (DbConfig::SQLITE_DBCONFIG_DQS_DML, false),
        (DbConfig::SQLITE_DBCONFIG_DQS_DDL, false),
        (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
        (DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false),
        (DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false),
        (DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW, false),
    ] {
        conn.set_db_config(cfg, on)
            .map_err(sql_err("cannot configure SQLite"))?;
    }
    Ok(())
}

fn name_clash(table: &str, existing: &str, namespace: &str) -> IngestError {
    IngestError::Conflict(format!(
        "namespace `{namespace}` maps to table `{table}`, which already belongs to namespace \
         `{existing}`; use a namespace that differs in more than case or punctuation"
    ))
}

const SELECT_INFO: &str = "SELECT name, namespace, engine, created_at, updated_at, row_count, \
                           batches, schema_json FROM _datasets";

type RawInfo = (String, String, String, String, String, i64, i64, String);

fn info_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawInfo> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn finish_info(raw: RawInfo) -> Result<DatasetInfo, IngestError> {
    let (name, namespace, engine, created_at, updated_at, row_count, batches, schema) = raw;
    let corrupt =
        |what: &str| IngestError::Internal(format!("catalogue entry `{name}` is damaged ({what})"));
    let engine = Engine::parse(&engine).ok_or_else(|| corrupt("engine"))?;
    let mut cols = Vec::new();
    if engine == Engine::Sql {
        #[derive(serde::Deserialize)]
        struct Stored {
            columns: Vec<ColumnDef>,
        }
        let stored: Stored = serde_json::from_str(&schema).map_err(|_| corrupt("schema_json"))?;
        for d in stored.columns {
            let ty = ColType::parse(&d.ty).ok_or_else(|| corrupt("column type"))?;
            cols.push(Column {
                name: d.name,
                ty,
                required: d.required,
            });
        }
    }
    let schema_sql = if engine == Engine::Sql {
        create_table_sql(&name, &cols)
    } else {
        String::new()
    };
    Ok(DatasetInfo {
        columns: cols.iter().map(Column::def).collect(),
        schema_sql,
        cols,
        name,
        namespace,
        engine,
        created_at,
        updated_at,
        row_count: row_count.max(0) as u64,
        batches: batches.max(0) as u64,
    })
}

/// Converts one document value for `col`; the error names the document and field.
fn to_cell<'a>(
    v: Option<&'a Value>,
    col: &Column,
    doc: usize,
    table: &str,
    limits: &Limits,
) -> Result<Cell<'a>, IngestError> {
    let field = || format!("documents[{doc}].{}", col.name.escape_debug());
    let misfit = |v: &Value| {
        IngestError::Conflict(format!(
            "{} is {}, which does not fit column `{}` ({}) of table `{table}`",
            field(),
            type_name(v),
            col.name.escape_debug(),
            col.ty.sql()
        ))
    };
    let too_big = |n: usize| {
        IngestError::Limit(format!(
            "{} is {n} bytes; a SQL cell holds at most {} (send large values as files, or \
             ingest them into a nosql namespace)",
            field(),
            limits.max_cell_bytes
        ))
    };
    let v = match v {
        None | Some(Value::Null) if col.required => {
            return Err(IngestError::Conflict(format!(
                "{} is missing or null, but column `{}` of table `{table}` is NOT NULL",
                field(),
                col.name.escape_debug()
            )))
        }
        None | Some(Value::Null) => return Ok(Cell::Null),
        Some(v) => v,
    };
    Ok(match (col.ty, v) {
        (ColType::Json, v) => {
            let text = serde_json::to_string(v).map_err(|_| misfit(v))?;
            if text.len() > limits.max_cell_bytes {
                return Err(too_big(text.len()));
            }
            Cell::Owned(text)
        }
        (ColType::Integer, Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Cell::Int(i)
            } else {
                // A float with no fractional part within i64 is the same number.
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() == 0.0
                    && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f)
                {
                    Cell::Int(f as i64)
                } else {
                    return Err(misfit(v));
                }
            }
        }
        (ColType::Real, Value::Number(n)) => match n.as_i64() {
            // Beyond 2^53 a double rounds the integer: not lossless.
            Some(i) if i.unsigned_abs() > TWO_POW_53 => return Err(misfit(v)),
            Some(i) => Cell::Real(i as f64),
            None => Cell::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        (ColType::Boolean, Value::Bool(b)) => Cell::Int(i64::from(*b)),
        (ColType::Text, Value::String(s)) => {
            if s.len() > limits.max_cell_bytes {
                return Err(too_big(s.len()));
            }
            Cell::Text(s)
        }
        _ => return Err(misfit(v)),
    })
}

/// A stored value back as JSON, by its column's type.
fn typed_json(v: ValueRef<'_>, ty: ColType) -> Value {
    match (ty, v) {
        (_, ValueRef::Null) => Value::Null,
        (ColType::Boolean, ValueRef::Integer(i)) => Value::Bool(i != 0),
        (ColType::Json, ValueRef::Text(t)) => serde_json::from_slice(t)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(t).into())),
        (_, v) => plain_json(v),
    }
}

/// Roughly what a value costs in a result: its bytes, plus a little for the slot.
pub(super) fn value_bytes(v: ValueRef<'_>) -> usize {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => b.len() + 8,
        _ => 8,
    }
}

/// A stored value as JSON without a column type (query results): text stays text,
/// a blob becomes base64, a non-finite float becomes null.
pub(super) fn plain_json(v: ValueRef<'_>) -> Value {
    use base64::Engine as _;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
    }
}
