//! Datasets: JSON documents ingested through RhinoBox's `/ingest/json` (or
//! `POST /v1/ingest`), read back natively. SQL datasets are SQLite tables, NoSQL ones
//! are documents in LMDB; the engine, the queries' fences and the limits are the
//! core's (`core::ingest`).
//!
//! - `GET /v1/datasets` → `{"datasets":[{name, namespace, engine, row_count, batches,
//!   created_at, updated_at, columns?, schema_sql?}]}`
//! - `GET /v1/datasets/{ns}/rows?limit=&cursor=` → `{"dataset","engine","rows":[…],
//!   "next_cursor"}`: SQL rows are objects with `_rowid` and every column; NoSQL rows
//!   are `{"seq","document"}`.
//! - `POST /v1/datasets/{ns}/query` `{"sql":"SELECT …","max_rows"?}` →
//!   `{"dataset","columns","rows","truncated"}` (SQL datasets only; one read-only
//!   SELECT of that dataset's table).
//! - `POST /v1/ingest`: the `/ingest/json` body (`namespace`, `document` or
//!   `documents`, `comment`, `metadata`) → the `/ingest/json` answer (`decision`,
//!   `batch_path`, `schema_path`, `documents`).

use serde::Deserialize;
use serde_json::json;

use super::objects::MAX_JSON_BODY;
use crate::core::stream::read_to_vec;
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;

/// Rows returned by a query when the body does not say.
const DEFAULT_QUERY_ROWS: usize = 1000;

/// `GET /v1/datasets`
pub async fn list(ctx: Ctx<'_>) -> HandlerResult {
    let list = ctx.svc.list_datasets(&ctx.req.caller).await?;
    Ok(Response::json(200, &json!({ "datasets": list })))
}

/// `GET /v1/datasets/{ns}/rows?limit=&cursor=`
pub async fn rows(ctx: Ctx<'_>) -> HandlerResult {
    let q = ctx.req.query()?;
    let limit = match q.get("limit") {
        None => 100,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "limit must be an integer from 1 to 1000",
                ))
            }
        },
    };
    let cursor = q.get("cursor").filter(|c| !c.is_empty());
    let page = ctx
        .svc
        .dataset_rows(&ctx.req.caller, ctx.req.param(0), limit, cursor)
        .await?;
    Ok(Response::json(
        200,
        &json!({
            "dataset": page.dataset.name,
            "namespace": page.dataset.namespace,
            "engine": page.dataset.engine,
            "rows": page.rows,
            "next_cursor": page.next_cursor,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    sql: String,
    max_rows: Option<usize>,
}

/// `POST /v1/datasets/{ns}/query`
pub async fn query(ctx: Ctx<'_>) -> HandlerResult {
    let body = read_to_vec(ctx.body, MAX_JSON_BODY).await?;
    let q: QueryBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON like {{\"sql\":\"SELECT ... FROM <table>\",\"max_rows\":100}}: {e}"
        ))
    })?;
    let name = ctx.req.param(0);
    let result = ctx
        .svc
        .query_dataset(
            &ctx.req.caller,
            name,
            q.sql,
            q.max_rows.unwrap_or(DEFAULT_QUERY_ROWS),
        )
        .await?;
    Ok(Response::json(
        200,
        &json!({
            "dataset": name,
            "columns": result.columns,
            "rows": result.rows,
            "truncated": result.truncated,
        }),
    ))
}

/// `POST /v1/ingest`
pub async fn ingest(ctx: Ctx<'_>) -> HandlerResult {
    let body = read_to_vec(ctx.body, ctx.svc.settings.max_json_body).await?;
    let outcome = ctx.svc.ingest_json(&ctx.req.caller, body).await?;
    Ok(Response::json(200, &outcome.json_response()))
}
