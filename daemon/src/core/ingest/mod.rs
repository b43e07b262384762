//! The JSON ingest engine behind RhinoBox's `/ingest/json` (and the `data` field of
//! `/ingest`): validate a batch of JSON documents, decide whether it is SQL or NoSQL
//! data, write the batch files RhinoBox writes, and store SQL-routed documents as rows
//! of a SQLite table per namespace that can be paged and queried read-only.
//!
//! Flow of [`Ingestor::ingest`]:
//!
//! 1. [`IngestRequest`] (`request.rs`): the body or form fields, validated; hostile
//!    JSON (deep nesting, huge numbers, duplicate keys, bad text) is a clean
//!    [`IngestError`].
//! 2. [`analyse`] and [`decide`] (`analysis.rs`, `decision.rs`): field and type
//!    stability, depth, arrays, `*_id` patterns, comment hints -> the seed's `decision`
//!    object (engine, reason, confidence, schema_sql, columns, summary, analysis, table).
//! 3. A namespace keeps the engine of its first batch: a later batch that alone would
//!    go the other way joins the existing dataset (the reason says so); a comment hint
//!    that asks for the other engine is refused ([`IngestError::Conflict`]).
//! 4. SQL: the table is created or widened (`ALTER TABLE ... ADD COLUMN`), the rows
//!    inserted and the catalogue updated in one SQLite transaction; the batch file and
//!    `schema.json` are written inside it, just before the commit (`datasets.rs`,
//!    `files.rs`). NoSQL: the batch file is written and the catalogue counts the
//!    documents, which are handed back in [`IngestOutcome::nosql_documents`] for the
//!    caller to store (LMDB).
//! 5. One line is appended to `json/ingest_log.ndjson`; if that fails the ingestion
//!    still stands (the data is committed) and a warning is logged, as RhinoBox does.
//!
//! What this module deliberately does not do: HTTP, async, LMDB. Every call blocks on
//! disk and SQLite, so an [`Ingestor`] lives on one dedicated thread (it is `Send`, not
//! `Sync`) and is driven through a channel; never call it on an io_uring worker.
//!
//! Throughput (`stress_ingest_throughput` against `bench/ingest_peer.py`, release build,
//! 100 batches of 1,000 five-field documents, 2-core VM under a load average of ~10,
//! medians of 3 alternated rounds): with fsync 23.7k documents/s against Python
//! `sqlite3`'s 20.5k (1.16x; both wait on about six fsyncs per batch), without fsync
//! 218k against 61k (3.75x).
//!
//! Known gaps: `schema.json` is written before the SQLite commit, so if that commit
//! fails (a full disk) it can describe columns the table does not have until the next
//! successful batch rewrites it. The NoSQL document count in the catalogue is taken
//! when the batch is accepted here, before the caller stores the documents.

pub mod analysis;
pub mod datasets;
pub mod decision;
pub mod error;
pub mod files;
pub mod limits;
pub mod query;
pub mod request;
pub mod schema;
pub mod service;

#[cfg(test)]
mod tests;

use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

// The engine's API, re-exported flat. The daemon is a binary crate, so a re-export no
// route uses yet would be an unused import: allowed here.
#[allow(unused_imports)]
pub use analysis::{analyse, BatchAnalysis, FieldSummary, JsonType, SchemaAnalysis, Summary};
#[allow(unused_imports)]
pub use datasets::{DatasetInfo, Datasets, SqlPlan, DATABASE_PATH};
#[allow(unused_imports)]
pub use decision::{comment_hint, decide, Decision, Engine, Hint};
#[allow(unused_imports)]
pub use error::IngestError;
#[allow(unused_imports)]
pub use files::{BatchFiles, LOG_PATH};
#[allow(unused_imports)]
pub use limits::Limits;
#[allow(unused_imports)]
pub use query::{QueryResult, SAFE_FUNCTIONS};
#[allow(unused_imports)]
pub use request::{IngestRequest, DEFAULT_NAMESPACE};
#[allow(unused_imports)]
pub use schema::{ColType, Column, ColumnDef};
#[allow(unused_imports)]
pub use service::{IngestService, RowsPage};

use crate::store::Durability;
use crate::util::time::{now_ms, rfc3339_ms};

/// The ingest engine: batch files under `<root>/json/` and the SQLite datasets.
#[derive(Debug)]
pub struct Ingestor {
    files: BatchFiles,
    datasets: Datasets,
    limits: Limits,
}

/// What one ingestion did.
#[derive(Debug, Clone)]
pub struct IngestOutcome {
    pub decision: Decision,
    /// The batch file, relative to the root.
    pub batch_path: String,
    /// `schema.json`, relative to the root (SQL only).
    pub schema_path: Option<String>,
    /// Documents in the batch.
    pub documents: usize,
    /// Rows inserted into SQLite (0 for NoSQL).
    pub rows_inserted: usize,
    /// This batch created the table.
    pub schema_created: bool,
    /// Columns this batch added to an existing table.
    pub columns_added: Vec<String>,
    /// NoSQL only: the validated documents, for the caller to store.
    pub nosql_documents: Vec<Value>,
}

/// The `/ingest/json` answer, as the seed shows it. `schema_path` is `""` for NoSQL, as
/// RhinoBox sends it.
#[derive(Debug, Serialize)]
pub struct JsonIngestResponse<'a> {
    pub decision: &'a Decision,
    pub batch_path: &'a str,
    pub schema_path: &'a str,
    pub documents: usize,
}

/// One entry of `results.json` in the `/ingest` answer, as the seed shows it.
#[derive(Debug, Serialize)]
pub struct UnifiedJsonResult<'a> {
    pub storage_type: Engine,
    /// `sqlite` or `lmdb`: where the documents live (RhinoBox leaves it empty).
    pub database: &'static str,
    pub table_or_collection: &'a str,
    pub records_inserted: usize,
    pub schema_created: bool,
    /// Top-level fields that look like foreign keys.
    pub relationships_detected: Vec<&'a str>,
    pub decision: &'a Decision,
    pub batch_path: &'a str,
}

impl IngestOutcome {
    /// The `/ingest/json` response body.
    pub fn json_response(&self) -> JsonIngestResponse<'_> {
        JsonIngestResponse {
            decision: &self.decision,
            batch_path: &self.batch_path,
            schema_path: self.schema_path.as_deref().unwrap_or(""),
            documents: self.documents,
        }
    }

    /// The `/ingest` `results.json[]` entry.
    pub fn unified_result(&self) -> UnifiedJsonResult<'_> {
        UnifiedJsonResult {
            storage_type: self.decision.engine,
            database: match self.decision.engine {
                Engine::Sql => "sqlite",
                Engine::Nosql => "lmdb",
            },
            table_or_collection: &self.decision.table,
            records_inserted: self.documents,
            schema_created: self.schema_created,
            relationships_detected: self
                .decision
                .summary
                .fields
                .iter()
                .filter(|(path, f)| f.is_likely_fk && !path.contains(['.', '[']))
                .map(|(path, _)| path.as_str())
                .collect(),
            decision: &self.decision,
            batch_path: &self.batch_path,
        }
    }
}

/// One line of `json/ingest_log.ndjson` (RhinoBox's fields plus `table`).
#[derive(Serialize)]
struct LogRecord<'a> {
    namespace: &'a str,
    comment: &'a str,
    metadata: Option<&'a Map<String, Value>>,
    decision: Engine,
    confidence: f64,
    documents: usize,
    table: &'a str,
    batch_path: &'a str,
    schema_path: &'a str,
    ingested_at: String,
}

impl Ingestor {
    /// Opens the engine over data directory `root`: `<root>/json/` and
    /// `<root>/json/datasets.sqlite3` are created if missing.
    pub fn open(root: &Path, durability: Durability, limits: Limits) -> Result<Self, IngestError> {
        let files = BatchFiles::open(root, durability)?;
        let datasets = Datasets::open(&root.join(DATABASE_PATH), durability, limits.clone())?;
        Ok(Ingestor {
            files,
            datasets,
            limits,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The datasets, for `list_datasets`, `dataset` and `rows`.
    pub fn datasets(&self) -> &Datasets {
        &self.datasets
    }

    /// The datasets, for `query` (which installs hooks on its connection).
    pub fn datasets_mut(&mut self) -> &mut Datasets {
        &mut self.datasets
    }

    /// Parses an `/ingest/json` body and ingests it.
    pub fn ingest_json_body(&mut self, body: &[u8]) -> Result<IngestOutcome, IngestError> {
        let req = IngestRequest::from_json_body(body, &self.limits)?;
        self.ingest(req)
    }

    /// Ingests a validated request now.
    pub fn ingest(&mut self, req: IngestRequest) -> Result<IngestOutcome, IngestError> {
        self.ingest_at(req, now_ms())
    }

    /// Ingests a validated request at time `now_ms` (milliseconds since the epoch; the
    /// batch file name and the catalogue times come from it).
    pub fn ingest_at(
        &mut self,
        req: IngestRequest,
        now_ms: i64,
    ) -> Result<IngestOutcome, IngestError> {
        let n = req.documents.len();
        let batch = analyse(&req.documents, &req.comment, &self.limits);
        let mut decision = decide(&req.namespace, &req.comment, &batch);
        let table = decision.table.clone();

        if let Some(info) = self.datasets.by_table(&table)? {
            if info.namespace != req.namespace {
                return Err(IngestError::Conflict(format!(
                    "namespace `{}` maps to table `{table}`, which already belongs to namespace \
                     `{}`; use a namespace that differs in more than case or punctuation",
                    req.namespace, info.namespace
                )));
            }
            match decision.hint {
                Some(h) if h != info.engine => {
                    return Err(IngestError::Conflict(format!(
                        "the comment asks for {}, but namespace `{}` already holds {} data; \
                         use another namespace for {} documents",
                        h.as_str(),
                        req.namespace,
                        info.engine.as_str(),
                        h.as_str()
                    )))
                }
                _ if info.engine != decision.engine => {
                    decision.reason = format!(
                        "namespace `{}` already holds {} data, so this batch joins it (the batch \
                         alone points to {}: {})",
                        req.namespace,
                        info.engine.as_str(),
                        decision.engine.as_str(),
                        decision.reason
                    );
                    decision.engine = info.engine;
                    decision.confidence = 1.0;
                }
                _ => {}
            }
        }

        let now = rfc3339_ms(now_ms);
        let mut outcome = match decision.engine {
            Engine::Sql => {
                let plan = self.datasets.plan_sql(
                    &table,
                    &req.namespace,
                    schema::columns_for_batch(&batch.top, n),
                )?;
                decision.schema_sql = plan.schema_sql();
                decision.columns = plan.column_defs();
                let schema_payload = serde_json::json!({
                    "table": table,
                    "ddl": decision.schema_sql,
                    "columns": decision.columns,
                    "summary": decision.summary,
                    "analysis": decision.analysis,
                });
                let files = &mut self.files;
                let mut batch_path = None;
                let mut schema_path = None;
                let res = self
                    .datasets
                    .insert_sql_batch(&plan, &req.documents, &now, || {
                        batch_path = Some(files.write_batch(
                            Engine::Sql,
                            &req.namespace,
                            &req.documents,
                            now_ms,
                        )?);
                        schema_path = Some(files.write_schema(&table, &schema_payload)?);
                        Ok(())
                    });
                let rows = match res {
                    Ok(rows) => rows,
                    Err(e) => {
                        if let Some(p) = &batch_path {
                            self.files.remove(p);
                        }
                        return Err(e);
                    }
                };
                IngestOutcome {
                    batch_path: batch_path.unwrap_or_default(),
                    schema_path,
                    documents: n,
                    rows_inserted: rows,
                    schema_created: !plan.existing,
                    columns_added: if plan.existing {
                        plan.added.iter().map(|c| c.name.clone()).collect()
                    } else {
                        Vec::new()
                    },
                    nosql_documents: Vec::new(),
                    decision,
                }
            }
            Engine::Nosql => {
                decision.schema_sql.clear();
                decision.columns.clear();
                let batch_path = self.files.write_batch(
                    Engine::Nosql,
                    &req.namespace,
                    &req.documents,
                    now_ms,
                )?;
                if let Err(e) = self
                    .datasets
                    .record_nosql_batch(&table, &req.namespace, n, &now)
                {
                    self.files.remove(&batch_path);
                    return Err(e);
                }
                IngestOutcome {
                    batch_path,
                    schema_path: None,
                    documents: n,
                    rows_inserted: 0,
                    schema_created: false,
                    columns_added: Vec::new(),
                    nosql_documents: Vec::new(),
                    decision,
                }
            }
        };

        let record = LogRecord {
            namespace: &req.namespace,
            comment: &req.comment,
            metadata: req.metadata.as_ref(),
            decision: outcome.decision.engine,
            confidence: outcome.decision.confidence,
            documents: n,
            table: &table,
            batch_path: &outcome.batch_path,
            schema_path: outcome.schema_path.as_deref().unwrap_or(""),
            ingested_at: now,
        };
        if let Err(e) = self.files.append_log(&record) {
            tracing::warn!(error = %e, "cannot append to the ingest log; the batch is stored");
        }
        if outcome.decision.engine == Engine::Nosql {
            outcome.nosql_documents = req.documents.into_iter().map(Value::Object).collect();
        }
        Ok(outcome)
    }
}
