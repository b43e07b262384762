//! Tests of the engine as a whole: the decision case table (one test per case, each
//! with the reason it must route that way), ingestion into files and SQLite, schema
//! evolution and conflicts, and the fences around dataset queries.

use std::fs;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::*;

fn docs(v: Value) -> Vec<Map<String, Value>> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|d| d.as_object().expect("an object").clone())
        .collect()
}

fn decision_for(comment: &str, v: Value) -> Decision {
    let d = docs(v);
    let limits = Limits::default();
    decide("cases", comment, &analyse(&d, comment, &limits))
}

fn seed_orders() -> Value {
    json!([
        {"order_id": 1, "customer_id": 10, "total": 100.0},
        {"order_id": 2, "customer_id": 11, "total": 200.0}
    ])
}

fn seed_activity() -> Value {
    json!([{
        "user": {"id": "u1", "name": "Alice"},
        "events": [{"type": "click", "meta": {"device": "ios"}}]
    }])
}

/// One test per case: `name: engine, comment, documents, why;`.
macro_rules! routes {
    ($($name:ident: $engine:ident, $comment:expr, $docs:expr, $why:expr;)*) => {
        $(
            #[test]
            fn $name() {
                let d = decision_for($comment, $docs);
                assert_eq!(
                    d.engine,
                    Engine::$engine,
                    "{} -- but got {:?}: {}",
                    $why,
                    d.engine,
                    d.reason
                );
                assert!((0.0..=1.0).contains(&d.confidence), "confidence {}", d.confidence);
                assert!(d.reason.contains("(score "), "{}", d.reason);
                assert_eq!(d.schema_sql.is_empty(), d.engine == Engine::Nosql);
            }
        )*
    };
}

routes! {
    route_seed_orders: Sql, "", seed_orders(),
        "the seed's SQL example: flat, stable records with *_id foreign keys";
    route_seed_activity_with_hint: Nosql, "flexible schema nosql", seed_activity(),
        "the seed's NoSQL example: the comment asks for a flexible schema";
    route_seed_activity_without_hint: Nosql, "", seed_activity(),
        "depth 4 and an array of objects are document-shaped even without a hint";
    route_uniform_flat_records: Sql, "", json!([
            {"name": "Alice", "age": 25, "email": "alice@example.com"},
            {"name": "Bob", "age": 30, "email": "bob@example.com"},
            {"name": "Charlie", "age": 35, "email": "charlie@example.com"}
        ]),
        "every document has the same scalar fields with the same types: a table";
    route_flat_with_foreign_keys: Sql, "", json!([
            {"id": 1, "user_id": 10, "amount": 100},
            {"id": 2, "user_id": 11, "amount": 200}
        ]),
        "flat records that reference other records by *_id are relational";
    route_camel_case_foreign_keys: Sql, "", json!([
            {"orderId": 1, "customerId": 7, "total": 5.5},
            {"orderId": 2, "customerId": 8, "total": 6.5}
        ]),
        "camelCase *Id fields are foreign keys too";
    route_repeated_foreign_key_values: Sql, "", json!([
            {"order_id": 1, "customer_id": 10},
            {"order_id": 2, "customer_id": 10},
            {"order_id": 3, "customer_id": 11}
        ]),
        "two orders of one customer: a relationship, the strongest SQL signal";
    route_single_flat_document: Sql, "", json!([{"id": 1, "title": "Test", "status": "active"}]),
        "one flat document is a one-row table";
    route_single_deep_document: Nosql, "", json!([{"a": {"b": {"c": {"d": 1}}}}]),
        "one document nested four levels deep is a document";
    route_varying_fields: Nosql, "", json!([
            {"a": 1}, {"b": 2}, {"c": 3}, {"a": 1, "d": 4}
        ]),
        "documents that share almost no fields have no common table shape";
    route_two_documents_of_different_shape: Nosql, "", json!([
            {"name": "John", "age": 30},
            {"name": "Jane", "city": "NYC", "hobbies": ["reading"]}
        ]),
        "RhinoBox's flexible-schema case: two documents, two shapes, half the fields optional";
    route_mostly_stable_with_an_optional_field: Sql, "", json!([
            {"id": 1, "name": "a", "price": 1.5, "qty": 1, "sku": "x"},
            {"id": 2, "name": "b", "price": 2.5, "qty": 2, "sku": "y", "note": "gift"},
            {"id": 3, "name": "c", "price": 3.5, "qty": 3, "sku": "z"},
            {"id": 4, "name": "d", "price": 4.5, "qty": 4, "sku": "w", "note": "rush"}
        ]),
        "one optional field among stable ones is a nullable column, not a reason for NoSQL";
    route_deep_nesting_despite_foreign_keys: Nosql, "", json!([
            {"order_id": 1, "customer_id": 2, "shipping": {"address": {"geo": {"lat": 1.0}}}},
            {"order_id": 2, "customer_id": 3, "shipping": {"address": {"geo": {"lat": 2.0}}}}
        ]),
        "nesting deeper than 3 outweighs every SQL signal together";
    route_nested_object_two_levels: Sql, "", json!([
            {"id": 1, "name": "a", "address": {"city": "x", "zip": "1"}},
            {"id": 2, "name": "b", "address": {"city": "y", "zip": "2"}}
        ]),
        "a shallow sub-object in stable records becomes a JSON column";
    route_three_levels_in_stable_records: Sql, "", json!([
            {"id": 1, "a": {"b": {"c": 1}}},
            {"id": 2, "a": {"b": {"c": 2}}},
            {"id": 3, "a": {"b": {"c": 3}}}
        ]),
        "depth 3 alone only weighs a little; stable records still make a table";
    route_array_of_scalars: Sql, "", json!([
            {"id": 1, "name": "a", "tags": ["x", "y"]},
            {"id": 2, "name": "b", "tags": []}
        ]),
        "a list of tags is shallow and becomes a JSON column";
    route_arrays_of_objects: Nosql, "", json!([
            {"order_id": 1, "items": [{"sku": "a", "qty": 1}]},
            {"order_id": 2, "items": [{"sku": "b", "qty": 2}, {"sku": "c", "qty": 1}]}
        ]),
        "embedded one-to-many collections are the document model's case";
    route_mixed_types_per_field: Nosql, "", json!([
            {"id": 1, "v": 1}, {"id": 2, "v": "one"}, {"id": 3, "v": 2}
        ]),
        "a field that is a number here and a string there has no column type";
    route_integers_and_floats_share_a_column: Sql, "", json!([
            {"id": 1, "price": 10}, {"id": 2, "price": 10.5}
        ]),
        "integers and floats are both numbers: one REAL column";
    route_nulls_in_some_documents: Sql, "", json!([
            {"id": 1, "note": null}, {"id": 2, "note": "x"}
        ]),
        "null is absence, not a type conflict";
    route_hint_sql_overrides_varying_fields: Sql, "store as a relational table", json!([
            {"a": 1}, {"b": 2}, {"c": 3}
        ]),
        "`relational` forces SQL whatever the data says";
    route_hint_nosql_overrides_flat_records: Nosql, "unstructured logs", json!([
            {"id": 1, "msg": "a"}, {"id": 2, "msg": "b"}
        ]),
        "`unstructured` forces NoSQL whatever the data says";
    route_schemaless_hint: Nosql, "Schemaless events", json!([{"id": 1}]),
        "`schemaless` is a NoSQL hint too (case-insensitive)";
    route_nosql_word_is_not_an_sql_hint: Nosql, "NoSQL please", json!([
            {"id": 1, "msg": "a"}, {"id": 2, "msg": "b"}
        ]),
        "whole words: `nosql` must not also count as `sql` (which would cancel it)";
    route_contradictory_hints_are_ignored: Sql, "sql or nosql?", json!([
            {"id": 1, "msg": "a"}, {"id": 2, "msg": "b"}
        ]),
        "hints for both engines cancel out; the flat data decides";
    route_object_heavy_documents: Nosql, "", json!([
            {"profile": {"a": 1}, "settings": {"b": 2}},
            {"profile": {"a": 2}, "settings": {"b": 3}}
        ]),
        "documents made of sub-documents are documents";
    route_empty_documents: Nosql, "", json!([{}, {}]),
        "documents without fields have nothing to make columns of";
    route_sql_keywords_as_field_names: Sql, "", json!([
            {"select": 1, "from": "x", "order": 2.5},
            {"select": 2, "from": "y", "order": 3.5}
        ]),
        "keywords are just quoted column names";
    route_booleans: Sql, "", json!([{"id": 1, "active": true}, {"id": 2, "active": false}]),
        "booleans are a column type";
    route_numbers_beyond_i64: Sql, "", json!([{"n": 18_446_744_073_709_551_615_u64}, {"n": 1}]),
        "a u64 beyond i64 is still a number (a REAL column)";
}

#[test]
fn the_engine_can_move_to_its_own_thread() {
    fn send<T: Send>() {}
    send::<Ingestor>();
    send::<Datasets>();
    send::<IngestError>();
}

#[test]
fn confidence_rises_with_foreign_keys_and_hints() {
    let orders = decision_for("", seed_orders());
    assert_eq!(orders.confidence, 1.0);
    assert!(
        orders
            .reason
            .starts_with("foreign keys/relationships present"),
        "{}",
        orders.reason
    );
    let plain = decision_for(
        "",
        json!([{"name": "a", "age": 1, "total": 1.0}, {"name": "b", "age": 2, "total": 2.0}]),
    );
    assert_eq!(plain.engine, Engine::Sql);
    assert!(
        plain.confidence < orders.confidence,
        "{} vs {}",
        plain.confidence,
        orders.confidence
    );
    let hinted = decision_for("relational", json!([{"a": 1}, {"b": 2}, {"c": 3}]));
    assert_eq!(hinted.confidence, 1.0);
    assert!(
        hinted.reason.contains("overrides the data"),
        "{}",
        hinted.reason
    );
    let contradicted = decision_for("sql or nosql", seed_orders());
    assert!(
        contradicted.reason.contains("contradict"),
        "{}",
        contradicted.reason
    );
    assert_eq!(contradicted.hint, None);
    let borderline = decision_for(
        "",
        json!([{"id": 1, "a": {"b": {"c": 1}}}, {"id": 2, "a": {"b": {"c": 2}}}]),
    );
    assert_eq!(borderline.engine, Engine::Sql);
    assert_eq!(borderline.confidence, 0.65, "{}", borderline.reason);
}

#[test]
fn decision_json_has_the_seed_shape() {
    let d = decision_for("", seed_orders());
    let v = serde_json::to_value(&d).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "analysis",
            "columns",
            "confidence",
            "engine",
            "reason",
            "schema_sql",
            "summary",
            "table"
        ]
    );
    assert_eq!(v["engine"], "sql");
    assert_eq!(v["table"], "cases");
    assert_eq!(
        v["columns"]["order_id"],
        json!({"name": "order_id", "type": "INTEGER", "required": true})
    );
    assert_eq!(v["columns"]["total"]["type"], "REAL");
    assert!(v["schema_sql"]
        .as_str()
        .unwrap()
        .starts_with("CREATE TABLE IF NOT EXISTS \"cases\" ("));
    for k in [
        "DocumentsAnalyzed",
        "TotalFields",
        "MaxDepth",
        "FieldStability",
        "TypeStability",
    ] {
        assert!(v["summary"].get(k).is_some(), "summary.{k}");
    }
    assert_eq!(v["summary"]["DocumentsAnalyzed"], 2);
    assert_eq!(v["analysis"]["has_foreign_keys"], true);
    assert_eq!(v["analysis"]["schema_consistency"], 1.0);
    assert_eq!(v["analysis"]["max_nesting_depth"], 1);
    let n = serde_json::to_value(decision_for("nosql", seed_activity())).unwrap();
    assert_eq!(n["engine"], "nosql");
    assert!(n.get("schema_sql").is_none() && n.get("columns").is_none());
}

// ---------------------------------------------------------------- ingestion

const NOW: i64 = 1_763_204_595_000; // 2025-11-15T11:03:15Z

fn ingestor(dir: &Path) -> Ingestor {
    Ingestor::open(dir, Durability::Fsync, Limits::default()).unwrap()
}

fn body(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

fn ingest(ing: &mut Ingestor, v: Value) -> Result<IngestOutcome, IngestError> {
    let req = IngestRequest::from_json_body(&body(v), ing.limits())?;
    ing.ingest_at(req, NOW)
}

#[test]
fn seed_sql_example_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut ing = ingestor(dir.path());
    let out = ingest(
        &mut ing,
        json!({"namespace": "orders", "documents": [
            {"order_id": 1, "customer_id": 10, "total": 100.0},
            {"order_id": 2, "customer_id": 11, "total": 200.0}
        ], "metadata": {"source": "test"}}),
    )
    .unwrap();
    let resp = serde_json::to_value(out.json_response()).unwrap();
    assert_eq!(resp["decision"]["engine"], "sql");
    assert_eq!(resp["decision"]["table"], "orders");
    assert_eq!(
        resp["batch_path"],
        "json/sql/orders/batch_20251115T110315Z_0001.ndjson"
    );
    assert_eq!(resp["schema_path"], "json/sql/orders/schema.json");
    assert_eq!(resp["documents"], 2);
    assert!(out.schema_created);
    assert_eq!(out.rows_inserted, 2);

    let batch = fs::read_to_string(dir.path().join(&out.batch_path)).unwrap();
    assert_eq!(batch.lines().count(), 2);
    let schema: Value =
        serde_json::from_slice(&fs::read(dir.path().join("json/sql/orders/schema.json")).unwrap())
            .unwrap();
    assert_eq!(schema["table"], "orders");
    assert!(schema["ddl"]
        .as_str()
        .unwrap()
        .contains("\"order_id\" INTEGER NOT NULL"));
    let log = fs::read_to_string(dir.path().join(LOG_PATH)).unwrap();
    let line: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(line["decision"], "sql");
    assert_eq!(line["metadata"]["source"], "test");
    assert_eq!(line["batch_path"], out.batch_path.as_str());

    let list = ing.datasets().list_datasets().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "orders");
    assert_eq!(list[0].row_count, 2);
    assert_eq!(list[0].engine, Engine::Sql);
    let (rows, next) = ing.datasets().rows("orders", 10, None).unwrap();
    assert_eq!(next, None);
    assert_eq!(
        rows[1],
        json!({"_rowid": 2, "order_id": 2, "customer_id": 11, "total": 200.0})
    );
    let unified = serde_json::to_value(out.unified_result()).unwrap();
    assert_eq!(unified["storage_type"], "sql");
    assert_eq!(unified["table_or_collection"], "orders");
    assert_eq!(unified["records_inserted"], 2);
    assert_eq!(unified["schema_created"], true);
    assert_eq!(
        unified["relationships_detected"],
        json!(["customer_id", "order_id"])
    );
}

#[test]
fn seed_nosql_example_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut ing = ingestor(dir.path());
    let out = ingest(
        &mut ing,
        json!({"namespace": "activity", "comment": "flexible schema nosql", "documents": seed_activity()}),
    )
    .unwrap();
    assert_eq!(out.decision.engine, Engine::Nosql);
    assert_eq!(out.decision.confidence, 1.0);
    assert_eq!(
        out.batch_path,
        "json/nosql/activity/batch_20251115T110315Z_0001.ndjson"
    );
    assert_eq!(out.schema_path, None);
    assert_eq!(
        out.nosql_documents,
        seed_activity().as_array().unwrap().clone()
    );
    let resp = serde_json::to_value(out.json_response()).unwrap();
    assert_eq!(resp["schema_path"], "");
    assert!(!dir.path().join("json/sql/activity").exists());
    let info = ing.datasets().dataset("activity").unwrap();
    assert_eq!(info.engine, Engine::Nosql);
    assert_eq!(info.row_count, 1);
    assert!(matches!(
        ing.datasets().rows("activity", 10, None),
        Err(IngestError::NotSql(_))
    ));
    assert!(matches!(
        ing.datasets_mut().query(
            "activity",
            "SELECT 1",
            10,
            Instant::now() + Duration::from_secs(1)
        ),
        Err(IngestError::NotSql(_))
    ));
}

#[test]
fn later_batches_add_columns_and_keep_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let mut ing = ingestor(dir.path());
    ingest(
        &mut ing,
        json!({"namespace": "people", "documents": [
            {"id": 1, "name": "a"}, {"id": 2, "name": "b"}
        ]}),
    )
    .unwrap();
    let out = ingest(
        &mut ing,
        json!({"namespace": "people", "documents": [
            {"id": 3, "name": "c", "email": "c@x", "tags": ["x"], "vip": true}
        ]}),
    )
    .unwrap();
    assert!(!out.schema_created);
    assert_eq!(out.columns_added, ["email", "tags", "vip"]);
    assert_eq!(
        out.batch_path,
        "json/sql/people/batch_20251115T110315Z_0002.ndjson"
    );
    assert!(
        out.decision.schema_sql.contains("\"email\" TEXT,"),
        "{}",
        out.decision.schema_sql
    );
    assert!(out.decision.schema_sql.contains("\"id\" INTEGER NOT NULL"));
    assert_eq!(out.decision.columns["vip"].ty, "BOOLEAN");
    assert!(!out.decision.columns["email"].required);
    let (rows, _) = ing.datasets().rows("people", 10, None).unwrap();
    assert_eq!(rows[0]["email"], Value::Null);
    assert_eq!(rows[2]["tags"], json!(["x"]));
    assert_eq!(rows[2]["vip"], true);

    // Alone, this batch would be NoSQL; the namespace stays SQL and says why.
    let out = ingest(
        &mut ing,
        json!({"namespace": "people", "documents": [
            {"id": 4, "name": "d"}, {"id": 5, "name": "e", "x": 1}, {"id": 6, "name": "f", "y": 2}
        ]}),
    )
    .unwrap();
    assert_eq!(out.decision.engine, Engine::Sql);
    assert!(
        out.decision.reason.contains("already holds sql data"),
        "{}",
        out.decision.reason
    );
    assert_eq!(ing.datasets().dataset("people").unwrap().row_count, 6);

    // A hint for the other engine is refused, and nothing is written.
    let before = fs::read_dir(dir.path().join("json/sql/people"))
        .unwrap()
        .count();
    let e = ingest(
        &mut ing,
        json!({"namespace": "people", "comment": "nosql", "documents": [{"id": 7}]}),
    )
    .unwrap_err();
    assert!(matches!(e, IngestError::Conflict(_)), "{e}");
    assert_eq!(
        fs::read_dir(dir.path().join("json/sql/people"))
            .unwrap()
            .count(),
        before
    );
    assert!(!dir.path().join("json/nosql/people").exists());
}

#[test]
fn type_conflicts_are_refused_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut ing = ingestor(dir.path());
    ingest(
        &mut ing,
        json!({"namespace": "m", "documents": [
            {"id": 1, "n": 5, "r": 1.5, "s": "x", "b": true, "j": {"k": 1}}
        ]}),
    )
    .unwrap();
    let files_before = fs::read_dir(dir.path().join("json/sql/m")).unwrap().count();
    let log_before = fs::read_to_string(dir.path().join(LOG_PATH)).unwrap();
    for (doc, needle) in [
        (
            json!({"id": 2, "n": "five", "r": 1.0, "s": "y", "b": false, "j": 1}),
            "documents[0].n is a string",
        ),
        (
            json!({"id": 2, "n": 2.5, "r": 1.0, "s": "y", "b": false, "j": 1}),
            "documents[0].n is a number",
        ),
        (
            json!({"id": 2, "n": 1, "r": 1.0, "s": 3, "b": false, "j": 1}),
            "documents[0].s is a number",
        ),
        (
            json!({"id": 2, "n": 1, "r": 1.0, "s": "y", "b": 1, "j": 1}),
            "documents[0].b is a number",
        ),
        (
            json!({"id": 2, "n": 1, "r": 9_007_199_254_740_993_i64, "s": "y", "b": true, "j": 1}),
            "documents[0].r",
        ),
        (
            json!({"id": 2, "r": 1.0, "s": "y", "b": true, "j": 1}),
            "NOT NULL",
        ),
        (
            json!({"id": 2, "n": null, "r": 1.0, "s": "y", "b": true, "j": 1}),
            "NOT NULL",
        ),
    ] {
        let e = ingest(&mut ing, json!({"namespace": "m", "documents": [doc]})).unwrap_err();
        assert!(matches!(e, IngestError::Conflict(_)), "{e}");
        assert!(e.to_string().contains(needle), "{e} lacks {needle}");
        assert_eq!(e.status(), 400);
    }
    assert_eq!(
        fs::read_dir(dir.path().join("json/sql/m")).unwrap().count(),
        files_before
    );
    assert_eq!(
        fs::read_to_string(dir.path().join(LOG_PATH)).unwrap(),
        log_before
    );
    assert_eq!(ing.datasets().dataset("m").unwrap().row_count, 1);
    assert_eq!(ing.datasets().rows("m", 10, None).unwrap().0.len(), 1);

    // Lossless conversions go through: 2.0 into INTEGER, 7 into REAL, anything into JSON.
    ingest(
        &mut ing,
        json!({"namespace": "m", "documents": [
            {"id": 2, "n": 2.0, "r": 7, "s": "y", "b": false, "j": [1, "two"]}
        ]}),
    )
    .unwrap();
    let (rows, _) = ing.datasets().rows("m", 10, None).unwrap();
    assert_eq!(
        rows[1],
        json!({"_rowid": 2, "id": 2, "n": 2, "r": 7.0, "s": "y", "b": false, "j": [1, "two"]})
    );
}

#[test]
fn namespaces_that_share_a_table_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut ing = ingestor(dir.path());
    ingest(
        &mut ing,
        json!({"namespace": "a.b", "documents": [{"x": 1}]}),
    )
    .unwrap();
    let e = ingest(
        &mut ing,
        json!({"namespace": "ab", "documents": [{"x": 1}]}),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("already belongs to namespace `a.b`"),
        "{e}"
    );
    let e = ingest(
        &mut ing,
        json!({"namespace": "AB", "comment": "nosql", "documents": [{"x": 1}]}),
    )
    .unwrap_err();
    assert!(matches!(e, IngestError::Conflict(_)), "{e}");
    assert_eq!(ing.datasets().dataset("a.b").unwrap().name, "ab");
    let e = ingest(
        &mut ing,
        json!({"namespace": "sqlite_master", "documents": [{"x": 1}]}),
    )
    .unwrap_err();
    assert!(e.to_string().contains("reserved by SQLite"), "{e}");
}

#[test]
fn hostile_column_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut ing = ingestor(dir.path());
    let evil = "x\"); DROP TABLE t; --";
    let mut doc = Map::new();
    doc.insert(evil.to_string(), json!(1));
    doc.insert("select".into(), json!("s"));
    doc.insert("rowid".into(), json!(5));
    doc.insert("oid".into(), json!(6));
    let out = ingest(
        &mut ing,
        json!({"namespace": "t", "documents": [doc.clone(), doc]}),
    )
    .unwrap();
    assert_eq!(out.rows_inserted, 2);
    let (rows, _) = ing.datasets().rows("t", 10, None).unwrap();
    assert_eq!(rows[0][evil], 1);
    assert_eq!(rows[0]["rowid"], 5);
    assert_eq!(rows[1]["_rowid"], 2);
    assert!(ing.datasets().dataset("t").is_ok());

    for (bad, needle) in [
        (json!({"a\u{0}b": 1}), "NUL"),
        (json!({"": 1}), "empty"),
        (json!({"_rowid": 1}), "row key"),
        (json!({"Name": 1, "name": 2}), "differ only in case"),
        (json!({"line\nbreak": 1}), "control"),
    ] {
        let e = ingest(&mut ing, json!({"namespace": "u", "documents": [bad]})).unwrap_err();
        assert!(e.to_string().contains(needle), "{e} lacks {needle}");
    }
    let long = "k".repeat(200);
    let e = ingest(
        &mut ing,
        json!({"namespace": "u", "documents": [{long: 1}]}),
    )
    .unwrap_err();
    assert!(e.to_string().contains("200 bytes"), "{e}");
    // The same names are fine in NoSQL documents.
    let out = ingest(
        &mut ing,
        json!({"namespace": "v", "comment": "nosql", "documents": [{"a\u{0}b": 1, "": 2}]}),
    )
    .unwrap();
    assert_eq!(out.decision.engine, Engine::Nosql);
    // A later batch that differs only in case from an existing column.
    let e = ingest(
        &mut ing,
        json!({"namespace": "t", "documents": [{"SELECT": "x"}]}),
    )
    .unwrap_err();
    assert!(e.to_string().contains("differs only in case"), "{e}");
}

#[test]
fn cell_size_cap() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_cell_bytes: 1000,
        ..Limits::default()
    };
    let mut ing = Ingestor::open(dir.path(), Durability::None, limits).unwrap();
    let big = "x".repeat(1001);
    let e = ingest(
        &mut ing,
        json!({"namespace": "c", "documents": [{"s": big}]}),
    )
    .unwrap_err();
    assert!(matches!(e, IngestError::Limit(_)), "{e}");
    assert!(e.to_string().contains("1001 bytes"), "{e}");
    let e = ingest(
        &mut ing,
        json!({"namespace": "c", "documents": [{"id": 1, "name": "a", "j": [big]}]}),
    )
    .unwrap_err();
    assert!(matches!(e, IngestError::Limit(_)), "{e}");
    // NoSQL documents are not cells.
    ingest(
        &mut ing,
        json!({"namespace": "d", "comment": "nosql", "documents": [{"s": "x".repeat(5000)}]}),
    )
    .unwrap();
}

#[test]
fn numbers_keep_their_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut ing = ingestor(dir.path());
    let body = br#"{"namespace":"n","documents":[
        {"i":9223372036854775807,"u":18446744073709551615,"f":1e308,"w":123456789012345678901234567890,"neg":-9223372036854775808},
        {"i":-1,"u":1,"f":-0.5,"w":1,"neg":0}]}"#;
    let req = IngestRequest::from_json_body(body, ing.limits()).unwrap();
    let out = ing.ingest_at(req, NOW).unwrap();
    assert_eq!(out.decision.columns["i"].ty, "INTEGER");
    assert_eq!(out.decision.columns["u"].ty, "REAL");
    assert_eq!(out.decision.columns["w"].ty, "REAL");
    let (rows, _) = ing.datasets().rows("n", 10, None).unwrap();
    assert_eq!(rows[0]["i"], i64::MAX);
    assert_eq!(rows[0]["neg"], i64::MIN);
    assert_eq!(rows[0]["f"], 1e308);
    assert_eq!(rows[0]["u"].as_f64(), Some(u64::MAX as f64));
    // the batch file keeps the u64 digits
    let text = fs::read_to_string(dir.path().join(&out.batch_path)).unwrap();
    assert!(text.contains("18446744073709551615"));
}

#[test]
fn rows_page_with_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let mut ing = Ingestor::open(dir.path(), Durability::None, Limits::default()).unwrap();
    let docs: Vec<Value> = (0..25).map(|i| json!({"i": i})).collect();
    ingest(&mut ing, json!({"namespace": "p", "documents": docs})).unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (rows, next) = ing.datasets().rows("p", 10, cursor).unwrap();
        seen.extend(rows.iter().map(|r| r["i"].as_i64().unwrap()));
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, (0..25).collect::<Vec<_>>());
    assert!(matches!(
        ing.datasets().rows("nope", 10, None),
        Err(IngestError::NotFound(_))
    ));
    assert_eq!(ing.datasets().rows("p", 0, None).unwrap().0.len(), 1);
}

#[test]
fn reopening_keeps_datasets_and_batch_names_unique() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut ing = ingestor(dir.path());
        ingest(&mut ing, json!({"namespace": "r", "documents": [{"a": 1}]})).unwrap();
    }
    let mut ing = ingestor(dir.path());
    let out = ingest(
        &mut ing,
        json!({"namespace": "r", "documents": [{"a": 2, "b": "x"}]}),
    )
    .unwrap();
    assert_eq!(
        out.batch_path,
        "json/sql/r/batch_20251115T110315Z_0002.ndjson"
    );
    assert_eq!(out.columns_added, ["b"]);
    assert_eq!(ing.datasets().dataset("r").unwrap().row_count, 2);
    assert_eq!(ing.datasets().dataset("r").unwrap().batches, 2);
}

// ---------------------------------------------------------------- queries

fn query_fixture() -> (tempfile::TempDir, Ingestor) {
    let dir = tempfile::tempdir().unwrap();
    let mut ing = ingestor(dir.path());
    ingest(
        &mut ing,
        json!({"namespace": "orders", "documents": [
            {"order_id": 1, "customer_id": 10, "total": 100.0, "tags": ["a", "b"]},
            {"order_id": 2, "customer_id": 11, "total": 200.0, "tags": ["c"]}
        ]}),
    )
    .unwrap();
    ingest(
        &mut ing,
        json!({"namespace": "secrets", "documents": [{"k": "v"}]}),
    )
    .unwrap();
    (dir, ing)
}

fn q(ing: &mut Ingestor, sql: &str) -> Result<QueryResult, IngestError> {
    ing.datasets_mut()
        .query("orders", sql, 100, Instant::now() + Duration::from_secs(5))
}

fn refused(ing: &mut Ingestor, sql: &str, needle: &str) {
    match q(ing, sql) {
        Err(e @ IngestError::QueryRefused(_)) => {
            assert!(e.to_string().contains(needle), "{sql}: {e} lacks {needle}");
            assert_eq!(e.status(), 400);
        }
        other => panic!("{sql}: expected a refusal, got {other:?}"),
    }
}

#[test]
fn queries_read_their_table() {
    let (_dir, mut ing) = query_fixture();
    let r = q(
        &mut ing,
        "SELECT order_id, total FROM orders ORDER BY order_id",
    )
    .unwrap();
    assert_eq!(r.columns, ["order_id", "total"]);
    assert_eq!(
        r.rows,
        vec![vec![json!(1), json!(100.0)], vec![json!(2), json!(200.0)]]
    );
    assert!(!r.truncated);
    let r = q(
        &mut ing,
        "select count(*), sum(total), max(\"customer_id\") from ORDERS",
    )
    .unwrap();
    assert_eq!(r.rows[0], vec![json!(2), json!(300.0), json!(11)]);
    let r = q(
        &mut ing,
        "SELECT o.order_id, j.value FROM main.orders AS o, json_each(o.tags) AS j ORDER BY 1, 2",
    )
    .unwrap();
    assert_eq!(r.rows.len(), 3);
    let r = q(&mut ing, "SELECT tags ->> '$[0]', json_extract(tags, '$[0]'), upper('x'), date('2025-01-02') FROM orders LIMIT 1").unwrap();
    assert_eq!(
        r.rows[0],
        vec![json!("a"), json!("a"), json!("X"), json!("2025-01-02")]
    );
    let r = q(
        &mut ing,
        "WITH t AS (SELECT total FROM orders) SELECT avg(total) FROM t",
    )
    .unwrap();
    assert_eq!(r.rows[0][0], json!(150.0));
    let r = q(
        &mut ing,
        "SELECT row_number() OVER (ORDER BY total DESC) FROM orders",
    )
    .unwrap();
    assert_eq!(r.rows.len(), 2);
    let r = q(&mut ing, "SELECT x'00ff', 1e308 * 10").unwrap();
    assert_eq!(r.rows[0], vec![json!("AP8="), Value::Null]);
}

#[test]
fn queries_cannot_read_other_tables() {
    let (_dir, mut ing) = query_fixture();
    refused(
        &mut ing,
        "SELECT * FROM secrets",
        "reading `secrets` is not allowed",
    );
    refused(
        &mut ing,
        "SELECT * FROM orders WHERE order_id IN (SELECT 1 FROM secrets)",
        "`secrets`",
    );
    refused(&mut ing, "SELECT * FROM _datasets", "`_datasets`");
    refused(&mut ing, "SELECT sql FROM sqlite_master", "`sqlite_master`");
    refused(&mut ing, "SELECT sql FROM sqlite_schema", "`sqlite_");
    refused(&mut ing, "SELECT * FROM sqlite_temp_master", "not allowed");
    refused(
        &mut ing,
        "SELECT * FROM pragma_table_info('secrets')",
        "not allowed",
    );
    refused(&mut ing, "SELECT * FROM dbstat", "not allowed");
    // sources no column is read from are reported without a database name
    refused(
        &mut ing,
        "SELECT count(*) FROM secrets",
        "without reading any of its columns",
    );
    refused(
        &mut ing,
        "SELECT 1 FROM secrets",
        "without reading any of its columns",
    );
    refused(
        &mut ing,
        "SELECT count(*) FROM main.secrets",
        "`secrets` is not allowed",
    );
    refused(
        &mut ing,
        "SELECT count(*) FROM pragma_table_info('secrets')",
        "`pragma_table_info`",
    );
    refused(
        &mut ing,
        "SELECT 1 FROM secrets WHERE EXISTS (WITH secrets AS (SELECT 1) SELECT 1 FROM secrets)",
        "`secrets`",
    );
    refused(
        &mut ing,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 5) SELECT count(*) FROM c",
        "count one of its columns",
    );
    let r = q(
        &mut ing,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 5) SELECT count(x) FROM c",
    )
    .unwrap();
    assert_eq!(r.rows[0][0], 5);
    assert_eq!(
        q(&mut ing, "SELECT count(*) FROM main.orders")
            .unwrap()
            .rows[0][0],
        2
    );
    // the same queries are fine on the other dataset, which only sees itself
    let r = ing
        .datasets_mut()
        .query(
            "secrets",
            "SELECT k FROM secrets",
            10,
            Instant::now() + Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(r.rows, vec![vec![json!("v")]]);
}

#[test]
fn queries_cannot_write_attach_pragma_or_load() {
    let (dir, mut ing) = query_fixture();
    let outside = dir.path().join("other.db");
    for (sql, needle) in [
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("SELECT 1; DROP TABLE orders", "read-only SELECT"),
        (
            "SELECT * FROM orders; DELETE FROM orders",
            "delete from `orders`",
        ),
        ("; DROP TABLE orders", "change the database schema"),
        ("DROP TABLE orders", "change the database schema"),
        ("DELETE FROM orders", "delete from `orders`"),
        ("UPDATE orders SET total = 0", "update `orders`"),
        (
            "INSERT INTO orders (order_id, customer_id, total, tags) VALUES (3, 1, 1.0, '[]')",
            "insert into `orders`",
        ),
        ("CREATE TABLE x (a)", "read-only SELECT"),
        ("CREATE TEMP TABLE x (a)", "read-only SELECT"),
        ("ALTER TABLE orders ADD COLUMN z", "read-only SELECT"),
        ("CREATE VIEW v AS SELECT * FROM secrets", "read-only SELECT"),
        (
            "CREATE TRIGGER tr AFTER INSERT ON orders BEGIN SELECT 1; END",
            "read-only SELECT",
        ),
        ("PRAGMA table_info(orders)", "PRAGMA table_info"),
        ("PRAGMA journal_mode = DELETE", "PRAGMA journal_mode"),
        ("BEGIN", "transactions"),
        ("VACUUM", "read-only"),
        (
            "SELECT load_extension('/tmp/evil.so')",
            "function `load_extension`",
        ),
        ("SELECT randomblob(1000000000)", "function `randomblob`"),
        ("SELECT zeroblob(1000000000)", "function `zeroblob`"),
        ("SELECT sqlite_version()", "function `sqlite_version`"),
        (
            "SELECT fts3_tokenizer('simple')",
            "function `fts3_tokenizer`",
        ),
        ("", "empty"),
        ("   -- just a comment", "empty"),
        ("SELEC 1", "syntax error"),
    ] {
        refused(&mut ing, sql, needle);
    }
    refused(
        &mut ing,
        &format!("ATTACH DATABASE '{}' AS o", outside.display()),
        "ATTACH is not allowed",
    );
    assert!(!outside.exists(), "ATTACH must not create a file");
    let e = q(&mut ing, "SELECT 'a\0b'").unwrap_err();
    assert!(e.to_string().contains("NUL"), "{e}");
    // nothing changed
    assert_eq!(ing.datasets().rows("orders", 10, None).unwrap().0.len(), 2);
    assert_eq!(ing.datasets().list_datasets().unwrap().len(), 2);
    let r = q(&mut ing, "SELECT count(*) FROM orders").unwrap();
    assert_eq!(r.rows[0][0], 2);
}

#[test]
fn queries_stop_at_the_deadline_and_the_row_limit() {
    let (_dir, mut ing) = query_fixture();
    let t0 = Instant::now();
    let e = ing
        .datasets_mut()
        .query(
            "orders",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c",
            10,
            Instant::now() + Duration::from_millis(200),
        )
        .unwrap_err();
    assert!(matches!(e, IngestError::QueryTimeout(_)), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // the connection is usable afterwards
    assert_eq!(
        q(&mut ing, "SELECT count(*) FROM orders").unwrap().rows[0][0],
        2
    );

    let r = ing
        .datasets_mut()
        .query(
            "orders",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
            10,
            Instant::now() + Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(r.rows.len(), 10);
    assert!(r.truncated);
    let e = q(&mut ing, "SELECT printf('%.*c', 100000000, 'x')").unwrap_err();
    assert!(matches!(e, IngestError::Limit(_)), "{e}");
    let e = ing
        .datasets_mut()
        .query(
            "nope",
            "SELECT 1",
            1,
            Instant::now() + Duration::from_secs(1),
        )
        .unwrap_err();
    assert_eq!(e.status(), 404);
}

// ---------------------------------------------------------------- throughput

/// The document the throughput comparison uses; `bench/ingest_peer.py` builds the same.
fn bench_doc(i: u64) -> Value {
    let status = ["new", "paid", "shipped"][(i % 3) as usize];
    json!({
        "order_id": i,
        "customer_id": i % 97,
        "total": (i % 1000) as f64 * 1.25,
        "status": status,
        "note": format!("order {i}"),
    })
}

/// Ingests batches of 1,000 small documents into SQLite through the whole engine (parse,
/// analyse, decide, batch file, insert, log) and prints documents per second, once
/// with fsync and once without. Compare with `python3 bench/ingest_peer.py`. Run:
/// `cargo test --release -p ringbox stress_ingest_throughput -- --ignored --nocapture`
/// (`RINGBOX_INGEST_BATCHES` sets the number of batches, default 100).
#[test]
#[ignore]
fn stress_ingest_throughput() {
    let batches: u64 = std::env::var("RINGBOX_INGEST_BATCHES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let per_batch = 1_000u64;
    let bodies: Vec<Vec<u8>> = (0..batches)
        .map(|b| {
            let docs: Vec<Value> = (b * per_batch..(b + 1) * per_batch)
                .map(bench_doc)
                .collect();
            body(json!({"namespace": "bench", "documents": docs}))
        })
        .collect();
    for (label, durability) in [("fsync", Durability::Fsync), ("none", Durability::None)] {
        let dir = tempfile::tempdir().unwrap();
        let mut ing = Ingestor::open(dir.path(), durability, Limits::default()).unwrap();
        let t0 = Instant::now();
        for b in &bodies {
            let out = ing.ingest_json_body(b).unwrap();
            assert_eq!(out.rows_inserted, per_batch as usize);
        }
        let secs = t0.elapsed().as_secs_f64();
        let total = batches * per_batch;
        eprintln!(
            "ringbox ingest durability={label}: {total} documents in {batches} batches of {per_batch}: \
             {secs:.3} s, {:.0} documents/s",
            total as f64 / secs
        );
        assert_eq!(ing.datasets().dataset("bench").unwrap().row_count, total);
    }
}

#[test]
fn failed_file_writes_roll_the_rows_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut ing = ingestor(dir.path());
    // json/sql/blocked is a file, so the batch directory cannot be made
    fs::create_dir_all(dir.path().join("json/sql")).unwrap();
    fs::write(dir.path().join("json/sql/blocked"), b"").unwrap();
    let e = ingest(
        &mut ing,
        json!({"namespace": "blocked", "documents": [{"a": 1}]}),
    )
    .unwrap_err();
    assert_eq!(e.status(), 500, "{e}");
    assert!(ing.datasets().find("blocked").unwrap().is_none());
    // schema.json is a directory, so it cannot be replaced: the batch file goes too
    ingest(&mut ing, json!({"namespace": "s", "documents": [{"a": 1}]})).unwrap();
    fs::remove_file(dir.path().join("json/sql/s/schema.json")).unwrap();
    fs::create_dir(dir.path().join("json/sql/s/schema.json")).unwrap();
    fs::write(dir.path().join("json/sql/s/schema.json/x"), b"").unwrap();
    let e = ingest(
        &mut ing,
        json!({"namespace": "s", "documents": [{"a": 2, "b": 3}]}),
    )
    .unwrap_err();
    assert_eq!(e.status(), 500, "{e}");
    let info = ing.datasets().dataset("s").unwrap();
    assert_eq!(info.row_count, 1);
    assert_eq!(info.columns.len(), 1, "the added column was rolled back");
    let batches = fs::read_dir(dir.path().join("json/sql/s"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("batch_")
        })
        .count();
    assert_eq!(batches, 1);
    assert_eq!(
        fs::read_to_string(dir.path().join(LOG_PATH))
            .unwrap()
            .lines()
            .count(),
        1
    );
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(ingestor(dir.path()));
    let conn = rusqlite::Connection::open(dir.path().join(DATABASE_PATH)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let e = Ingestor::open(dir.path(), Durability::None, Limits::default()).unwrap_err();
    assert!(matches!(e, IngestError::Internal(_)), "{e}");
    assert!(e.to_string().contains("newer ringbox"), "{e}");
}

#[test]
fn queries_stay_within_memory_and_result_budgets() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_query_memory: 32 << 20,
        max_result_bytes: 10_000,
        max_page_rows: 1000,
        ..Limits::default()
    };
    let mut ing = Ingestor::open(dir.path(), Durability::None, limits).unwrap();
    let docs: Vec<Value> = (0..100)
        .map(|i| json!({"i": i, "s": "x".repeat(500)}))
        .collect();
    ingest(&mut ing, json!({"namespace": "big", "documents": docs})).unwrap();
    let deadline = || Instant::now() + Duration::from_secs(10);
    // twenty 4 MiB values in one row: more than the 32 MiB budget
    let wide: Vec<String> = (0..20)
        .map(|i| format!("printf('%.*c', 4000000, 'x') AS c{i}"))
        .collect();
    let sql = format!("SELECT {} FROM big", wide.join(", "));
    let e = ing
        .datasets_mut()
        .query("big", &sql, 10, deadline())
        .unwrap_err();
    assert!(matches!(e, IngestError::Limit(_)), "{e}");
    assert!(e.to_string().contains("MiB of memory"), "{e}");
    // one value beyond the length limit
    let e = ing
        .datasets_mut()
        .query("big", "SELECT printf('%.*c', 5000000, 'x')", 1, deadline())
        .unwrap_err();
    assert!(matches!(e, IngestError::Limit(_)), "{e}");
    // results stop at about 10 kB
    let r = ing
        .datasets_mut()
        .query("big", "SELECT s FROM big", 1000, deadline())
        .unwrap();
    assert!(r.truncated);
    assert!(r.rows.len() < 25, "{}", r.rows.len());
    let (page, next) = ing.datasets().rows("big", 1000, None).unwrap();
    assert!(page.len() < 25 && next.is_some(), "{}", page.len());
    // and the connection still works
    let r = ing
        .datasets_mut()
        .query("big", "SELECT count(i) FROM big", 1, deadline())
        .unwrap();
    assert_eq!(r.rows[0][0], 100);
}
