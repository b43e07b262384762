//! The ingest engine as a service: one dedicated thread owns the [`Ingestor`] (its
//! SQLite connections and batch files), and the core's services reach it through a
//! channel and get their answers through a oneshot, like the store's writer. Every
//! SQLite statement, batch-file write and fsync of the engine runs on that thread,
//! never on an io_uring worker; a worker awaiting an answer keeps serving.
//!
//! On top of it, the core services of datasets (methods on [`Local`]):
//!
//! - [`Local::ingest_json`] / [`Local::ingest_form`]: an `/ingest/json` body or the
//!   `data` field of `/ingest`, parsed and decided on the ingest thread. SQL-routed
//!   documents are rows in SQLite when the call returns; NoSQL-routed documents are
//!   then appended to the store's `documents` database (LMDB, through the writer
//!   thread) before the call returns.
//! - [`Local::list_datasets`], [`Local::dataset_rows`] (both engines: SQL rows from
//!   SQLite on the ingest thread, NoSQL documents from LMDB in a short read
//!   transaction on the worker), [`Local::query_dataset`] (read-only SQL, see
//!   `query.rs`, with a [`QUERY_TIMEOUT`] deadline).
//! - [`Local::dataset_file`]: a batch file or `schema.json` read (on the blocking
//!   pool) into a [`Representation`], so any API can serve it with ranges and
//!   conditionals.
//!
//! Access: datasets belong to the deployment, not to users. Reading them needs a
//! signed-in caller (or `--anonymous read|write`); ingesting needs one that may create
//! objects (a signed-in caller, or `--anonymous write`).
//!
//! Start-up: the engine is opened on the thread at start; when that fails (a full disk
//! cannot even open SQLite's WAL, a damaged database), the daemon still starts and
//! serves everything else, the failure is logged, and every dataset call tries to open
//! the engine again (answering the error while it cannot), so freeing space is enough.
//!
//! Limits: the queue holds at most [`QUEUE`] jobs (beyond: 503 `busy`), so a flood of
//! ingestions cannot queue bodies without bound. The thread runs one job at a time, so
//! a slow query (bounded by [`QUERY_TIMEOUT`]) delays ingestions behind it.
//!
//! Known gap: NoSQL documents are counted in the catalogue and written to their batch
//! file before they are appended to LMDB; if that append fails (a full disk), the
//! caller gets the error but the catalogue count and the batch file stay.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crossbeam_channel::{Sender, TrySendError};
use futures_channel::oneshot;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{
    DatasetInfo, Engine, IngestError, IngestOutcome, IngestRequest, Ingestor, Limits, QueryResult,
};
use crate::core::access::{Anonymous, Caller};
use crate::core::content::Representation;
use crate::core::error::{CoreError, CoreResult, ErrorKind};
use crate::core::Local;
use crate::store::{Command, Durability, Reply, State};
use crate::util::hex;

/// Most ingest jobs waiting for the thread.
pub const QUEUE: usize = 256;
/// How long a dataset query may run.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes of documents one NoSQL rows page carries (at least one document).
pub const MAX_NOSQL_PAGE_BYTES: usize = 4 << 20;
/// Largest batch or schema file served whole from memory.
pub const MAX_DATASET_FILE: u64 = 64 << 20;

type Job = Box<dyn FnOnce(Result<&mut Ingestor, IngestError>) + Send + 'static>;

/// The handle to the ingest thread: cheap to clone, `Send + Sync`. Dropping the last
/// handle lets the thread finish its queue and stop.
#[derive(Clone)]
pub struct IngestService {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Option<Sender<Job>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    limits: Limits,
    root: PathBuf,
}

impl std::fmt::Debug for IngestService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestService")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop once the queue is empty.
        self.tx.take();
        let handle = match self.thread.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() && h.join().is_err() {
                tracing::error!("the ingest thread panicked");
            }
        }
    }
}

fn stopped() -> IngestError {
    IngestError::Internal("the ingest engine has stopped (see the server log)".into())
}

impl IngestService {
    /// Starts the ingest thread, which opens the engine over data directory `root` (see
    /// [`Ingestor::open`]; a failure is logged and retried at each call). Fails only when
    /// the thread cannot be started.
    pub fn start(
        root: &Path,
        durability: Durability,
        limits: Limits,
    ) -> Result<IngestService, IngestError> {
        let open = {
            let (root, limits) = (root.to_path_buf(), limits.clone());
            move || {
                Ingestor::open(&root, durability, limits.clone()).inspect_err(|e| {
                    tracing::error!(
                        data = %root.display(),
                        "cannot open the datasets (JSON ingestion and dataset reads fail until \
                         this is fixed; everything else is served): {e}"
                    )
                })
            }
        };
        let (tx, rx) = crossbeam_channel::bounded::<Job>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("ringbox-ingest".into())
            .spawn(move || {
                tracing::debug!("ingest thread started");
                let mut engine = open().ok();
                while let Ok(job) = rx.recv() {
                    if engine.is_none() {
                        match open() {
                            Ok(ing) => engine = Some(ing),
                            Err(e) => {
                                job(Err(e));
                                continue;
                            }
                        }
                    }
                    let Some(ing) = engine.as_mut() else {
                        continue;
                    };
                    // A panic (a bug) fails this job only: its reply sender is dropped,
                    // so the caller gets an error, and an open SQLite transaction is
                    // rolled back as it is dropped.
                    if std::panic::catch_unwind(AssertUnwindSafe(|| job(Ok(ing)))).is_err() {
                        crate::metrics::get().panic("ingest");
                        tracing::error!("an ingest job panicked; it failed, the engine goes on");
                    }
                }
                tracing::debug!("ingest thread stopped");
            })
            .map_err(|e| IngestError::io("cannot start the ingest thread", e))?;
        Ok(IngestService {
            inner: Arc::new(Inner {
                tx: Some(tx),
                thread: Mutex::new(Some(thread)),
                limits,
                root: root.to_path_buf(),
            }),
        })
    }

    /// The engine's limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Runs `f` on the ingest thread; the future resolves with its result. A full
    /// queue is a `Busy` error at once.
    pub fn call<T, F>(&self, f: F) -> impl Future<Output = CoreResult<T>> + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut Ingestor) -> Result<T, IngestError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ing| {
            let _ = tx.send(ing.and_then(f));
        });
        let queued = match &self.inner.tx {
            None => Err(CoreError::from(stopped())),
            Some(q) => match q.try_send(job) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => Err(CoreError::new(
                    ErrorKind::Busy,
                    "busy",
                    "the ingest engine is busy with other batches; retry shortly",
                )),
                Err(TrySendError::Disconnected(_)) => Err(CoreError::from(stopped())),
            },
        };
        async move {
            queued?;
            match rx.await {
                Ok(r) => r.map_err(CoreError::from),
                Err(_) => Err(CoreError::internal(
                    "the ingest engine failed on this request (a bug: see the server log)",
                )),
            }
        }
    }
}

impl From<IngestError> for CoreError {
    fn from(e: IngestError) -> Self {
        let kind = match e.status() {
            404 => ErrorKind::NotFound,
            507 => ErrorKind::Full,
            s if s >= 500 => ErrorKind::Internal,
            _ => ErrorKind::Invalid,
        };
        if kind == ErrorKind::Internal {
            tracing::error!(error = %e, "ingest engine error");
        }
        CoreError::new(kind, e.code(), e.to_string())
    }
}

/// A page of a dataset's rows.
#[derive(Debug, Clone)]
pub struct RowsPage {
    pub dataset: DatasetInfo,
    /// SQL: objects with `_rowid` and every column. NoSQL: `{"seq","document"}`.
    pub rows: Vec<Value>,
    /// Pass back as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// An ingestion's outcome with its NoSQL documents serialised for the store.
struct Ingested {
    outcome: IngestOutcome,
    namespace: String,
    texts: Vec<String>,
}

fn ingest_now(ing: &mut Ingestor, req: IngestRequest) -> Result<Ingested, IngestError> {
    let namespace = req.namespace.clone();
    let mut outcome = ing.ingest(req)?;
    // Serialised here, off the workers: a batch can hold thousands of documents.
    let texts = std::mem::take(&mut outcome.nosql_documents)
        .iter()
        .map(Value::to_string)
        .collect();
    Ok(Ingested {
        outcome,
        namespace,
        texts,
    })
}

/// `json/<sql|nosql>/<seg>/batch_<...>.ndjson` or `json/sql/<seg>/schema.json`, with
/// plain segments: the only dataset files served.
pub fn is_dataset_file(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    let plain = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    match parts.as_slice() {
        ["json", engine @ ("sql" | "nosql"), ns, file] if plain(ns) && plain(file) => {
            (file.starts_with("batch_") && file.ends_with(".ndjson"))
                || (*engine == "sql" && *file == "schema.json")
        }
        _ => false,
    }
}

impl Local {
    fn may_read_datasets(&self, caller: &Caller) -> CoreResult<()> {
        let anon = self.settings.policy.anonymous;
        if caller.principal.is_some() || matches!(anon, Anonymous::Read | Anonymous::Write) {
            Ok(())
        } else {
            Err(CoreError::unauthorized(
                "reading datasets needs a token: send `Authorization: Bearer <token>`",
            ))
        }
    }

    fn may_ingest(&self, caller: &Caller) -> CoreResult<()> {
        if self.settings.policy.may_create(caller) {
            Ok(())
        } else {
            Err(CoreError::unauthorized(
                "ingesting needs a token: send `Authorization: Bearer <token>`",
            ))
        }
    }

    /// Ingests an `/ingest/json` body.
    pub async fn ingest_json(&self, caller: &Caller, body: Vec<u8>) -> CoreResult<IngestOutcome> {
        self.may_ingest(caller)?;
        let done = self
            .ingest
            .call(move |ing| {
                let req = IngestRequest::from_json_body(&body, ing.limits())?;
                ingest_now(ing, req)
            })
            .await?;
        self.store_documents(done).await
    }

    /// Ingests the `data` field of an `/ingest` form (with its `namespace`, `comment`
    /// and `metadata` fields).
    pub async fn ingest_form(
        &self,
        caller: &Caller,
        data: String,
        namespace: Option<String>,
        comment: Option<String>,
        metadata: Option<String>,
    ) -> CoreResult<IngestOutcome> {
        self.may_ingest(caller)?;
        let done = self
            .ingest
            .call(move |ing| {
                let req = IngestRequest::from_form(
                    &data,
                    namespace.as_deref(),
                    comment.as_deref(),
                    metadata.as_deref(),
                    ing.limits(),
                )?;
                ingest_now(ing, req)
            })
            .await?;
        self.store_documents(done).await
    }

    /// Appends the NoSQL documents of an ingestion to LMDB.
    async fn store_documents(&self, done: Ingested) -> CoreResult<IngestOutcome> {
        let Ingested {
            outcome,
            namespace,
            texts,
        } = done;
        if outcome.decision.engine == Engine::Nosql && !texts.is_empty() {
            match self
                .store
                .writer()
                .submit(Command::PutDocuments {
                    namespace,
                    documents: texts,
                })
                .await?
            {
                Reply::Documents { .. } => {}
                other => {
                    return Err(CoreError::internal(format!(
                        "unexpected writer reply {other:?}"
                    )))
                }
            }
        }
        Ok(outcome)
    }

    /// Every dataset.
    pub async fn list_datasets(&self, caller: &Caller) -> CoreResult<Vec<DatasetInfo>> {
        self.may_read_datasets(caller)?;
        self.ingest.call(|ing| ing.datasets().list_datasets()).await
    }

    /// A page of dataset `name`'s rows after `cursor` (from a previous page).
    pub async fn dataset_rows(
        &self,
        caller: &Caller,
        name: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> CoreResult<RowsPage> {
        self.may_read_datasets(caller)?;
        let bad_cursor = || {
            CoreError::invalid_field(
                "cursor",
                "cursor must be the next_cursor of a previous page",
            )
        };
        let owned = name.to_string();
        let dataset = self
            .ingest
            .call(move |ing| ing.datasets().dataset(&owned))
            .await?;
        let limits = self.ingest.limits();
        let limit = limit.clamp(1, limits.max_page_rows.max(1));
        match dataset.engine {
            Engine::Sql => {
                let after = cursor
                    .map(|c| c.parse::<i64>().map_err(|_| bad_cursor()))
                    .transpose()?;
                let table = dataset.name.clone();
                let (rows, next) = self
                    .ingest
                    .call(move |ing| ing.datasets().rows(&table, limit, after))
                    .await?;
                Ok(RowsPage {
                    dataset,
                    rows,
                    next_cursor: next.map(|n| n.to_string()),
                })
            }
            Engine::Nosql => {
                let after = cursor
                    .map(|c| c.parse::<u64>().map_err(|_| bad_cursor()))
                    .transpose()?
                    .unwrap_or(0);
                // Read and parsed on the worker: a page stays small (LMDB reads are
                // short; parsing a few MiB of JSON is about a millisecond per MiB).
                let page = self.store.documents_page(
                    &dataset.namespace,
                    after,
                    limit,
                    limits.max_result_bytes.min(MAX_NOSQL_PAGE_BYTES),
                )?;
                let rows = page
                    .documents
                    .into_iter()
                    .map(|(seq, text)| {
                        let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        json!({ "seq": seq, "document": doc })
                    })
                    .collect();
                Ok(RowsPage {
                    dataset,
                    rows,
                    next_cursor: page.next.map(|n| n.to_string()),
                })
            }
        }
    }

    /// Runs one read-only `SELECT` over SQL dataset `name` (see `query.rs`).
    pub async fn query_dataset(
        &self,
        caller: &Caller,
        name: &str,
        sql: String,
        max_rows: usize,
    ) -> CoreResult<QueryResult> {
        self.may_read_datasets(caller)?;
        let name = name.to_string();
        self.ingest
            .call(move |ing| {
                let deadline = Instant::now() + QUERY_TIMEOUT;
                ing.datasets_mut().query(&name, &sql, max_rows, deadline)
            })
            .await
    }

    /// A batch file or `schema.json` (`rel` as ingestion answered it), read into memory
    /// on the blocking pool. `NotFound` for anything else.
    pub async fn dataset_file(&self, caller: &Caller, rel: &str) -> CoreResult<Representation> {
        self.may_read_datasets(caller)?;
        let not_found = || CoreError::not_found(&format!("dataset file {rel}"));
        if !is_dataset_file(rel) {
            return Err(not_found());
        }
        let path = self.store.data_dir().join(rel);
        let read = self
            .pool
            .run(move || -> std::io::Result<Option<(Vec<u8>, u64)>> {
                let meta = match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.is_file() => m,
                    Ok(_) => return Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                if meta.len() > MAX_DATASET_FILE {
                    return Err(std::io::Error::other("dataset file too large to serve"));
                }
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                Ok(Some((std::fs::read(&path)?, mtime)))
            })
            .await?;
        let (bytes, mtime) = read?.ok_or_else(not_found)?;
        let sha: [u8; 32] = Sha256::digest(&bytes).into();
        let filename = rel.rsplit('/').next().unwrap_or(rel);
        let lm = ringbox_protocol::conditional::format_http_date(mtime);
        let mime = if filename.ends_with(".ndjson") {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        Ok(Representation {
            sha,
            size: bytes.len() as u64,
            mime: mime.into(),
            etag: format!("\"{}\"", hex::encode(&sha)).into(),
            last_modified_secs: mtime,
            last_modified: std::str::from_utf8(&lm).unwrap_or_default().into(),
            filename: filename.into(),
            inline_disposition: ringbox_protocol::response::content_disposition(
                ringbox_protocol::response::DispositionKind::Inline,
                filename,
            )
            .into(),
            text: Some(Rc::from(bytes.into_boxed_slice())),
            object: None,
            state: State::Stored,
            external: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::{admin, with_services};

    #[test]
    fn an_engine_that_cannot_open_fails_its_calls_not_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, b"x").unwrap();
        let svc = IngestService::start(&not_a_dir, Durability::None, Limits::default()).unwrap();
        let r = crate::core::test_support::block_on(svc.call(|ing| ing.datasets().list_datasets()));
        assert_eq!(r.unwrap_err().kind, ErrorKind::Internal);
        // Once the directory is usable, the next call opens the engine.
        std::fs::remove_file(&not_a_dir).unwrap();
        std::fs::create_dir(&not_a_dir).unwrap();
        let r = crate::core::test_support::block_on(svc.call(|ing| ing.datasets().list_datasets()));
        assert!(r.unwrap().is_empty());
    }

    #[test]
    fn dataset_file_names() {
        for ok in [
            "json/sql/orders/batch_20251115T110315Z_0001.ndjson",
            "json/nosql/activity/batch_x.ndjson",
            "json/sql/orders/schema.json",
        ] {
            assert!(is_dataset_file(ok), "{ok}");
        }
        for bad in [
            "json/nosql/a/schema.json",
            "json/sql/../x/batch_1.ndjson",
            "json/sql/orders/../../../etc/passwd",
            "json/ingest_log.ndjson",
            "json/sql/orders/batch_1.ndjson/x",
            "json/sql//batch_1.ndjson",
            "json/.tmp/a/batch_1.ndjson",
            "/json/sql/o/batch_1.ndjson",
            "json/sql/o/other.ndjson",
        ] {
            assert!(!is_dataset_file(bad), "{bad}");
        }
    }

    #[test]
    fn both_engines_read_back_through_the_core() {
        with_services(|svc| async move {
            let caller = admin();
            let sql = br#"{"namespace":"orders","documents":[
                {"order_id":1,"customer_id":10,"total":100.0},
                {"order_id":2,"customer_id":11,"total":200.0}]}"#;
            let out = svc.ingest_json(&caller, sql.to_vec()).await.unwrap();
            assert_eq!(out.decision.engine, Engine::Sql);
            let nosql = br#"{"namespace":"activity","comment":"flexible schema nosql",
                "documents":[{"user":{"id":"u1"}},{"user":{"id":"u2"},"x":[1]},{"y":2}]}"#;
            let out = svc.ingest_json(&caller, nosql.to_vec()).await.unwrap();
            assert_eq!(out.decision.engine, Engine::Nosql);

            let list = svc.list_datasets(&caller).await.unwrap();
            assert_eq!(list.len(), 2);
            let page = svc.dataset_rows(&caller, "orders", 1, None).await.unwrap();
            assert_eq!(page.rows.len(), 1);
            assert_eq!(page.rows[0]["order_id"], 1);
            let next = page.next_cursor.unwrap();
            let page = svc
                .dataset_rows(&caller, "orders", 10, Some(&next))
                .await
                .unwrap();
            assert_eq!(page.rows[0]["order_id"], 2);
            assert!(page.next_cursor.is_none());

            let page = svc
                .dataset_rows(&caller, "activity", 2, None)
                .await
                .unwrap();
            assert_eq!(page.rows.len(), 2);
            assert_eq!(page.rows[0]["seq"], 1);
            assert_eq!(page.rows[0]["document"]["user"]["id"], "u1");
            let page = svc
                .dataset_rows(&caller, "activity", 2, page.next_cursor.as_deref())
                .await
                .unwrap();
            assert_eq!(page.rows.len(), 1);
            assert_eq!(page.rows[0]["document"]["y"], 2);
            assert!(svc
                .dataset_rows(&caller, "activity", 2, Some("x"))
                .await
                .is_err());

            let q = svc
                .query_dataset(
                    &caller,
                    "orders",
                    "SELECT sum(total) FROM orders".into(),
                    10,
                )
                .await
                .unwrap();
            assert_eq!(q.rows[0][0], 300.0);
            let e = svc
                .query_dataset(&caller, "orders", "DELETE FROM orders".into(), 10)
                .await
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Invalid);
            let e = svc
                .query_dataset(&caller, "activity", "SELECT 1".into(), 10)
                .await
                .unwrap_err();
            assert_eq!(e.code, "not_sql");
            let e = svc
                .dataset_rows(&caller, "nope", 1, None)
                .await
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::NotFound);

            // The batch file serves back.
            let rep = svc.dataset_file(&caller, &out.batch_path).await.unwrap();
            assert_eq!(rep.size, rep.text.as_ref().unwrap().len() as u64);
            assert!(svc
                .dataset_file(&caller, "json/sql/orders/batch_none.ndjson")
                .await
                .is_err());
            // Anonymous callers need --anonymous.
            let anon = Caller::anonymous(None);
            assert_eq!(
                svc.list_datasets(&anon).await.unwrap_err().kind,
                ErrorKind::Unauthorized
            );
            assert_eq!(
                svc.ingest_json(&anon, sql.to_vec()).await.unwrap_err().kind,
                ErrorKind::Unauthorized
            );
        });
    }
}
