//! The analysis of a batch: how stable its fields and their types are across documents,
//! how deep it nests, where its arrays and `*_id` fields are. Produces the seed's
//! `summary` and `analysis` objects (field names and shapes as RhinoBox serialises
//! them: `summary` keys in PascalCase, `analysis` keys in snake_case) plus the
//! per-field facts the decision engine and the SQL schema need.
//!
//! Definitions (they differ from RhinoBox where RhinoBox's were accidents):
//!
//! * **Depth**: a top-level scalar field is level 1; the members of an object or the
//!   elements of an array are one level below it. `{"user":{"id":1}}` is 2,
//!   `{"events":[{"meta":{"device":"ios"}}]}` is 4 (as in RhinoBox).
//! * **Paths**: `a`, `a.b` for an object member, `a[]` for array elements,
//!   `a[].b` for members of objects in an array. Every array element is looked at
//!   (RhinoBox looks at the first only). Paths deeper than [`Limits::analysis_depth`],
//!   and new paths beyond [`Limits::max_paths`], are not recorded one by one.
//! * **Presence** of a path: the share of documents in which it occurs at least once.
//!   **FieldStability** (= `schema_consistency`): the mean presence of the top-level
//!   fields.
//! * **Type share** of a path: the share of its non-null values that have its most
//!   common type, counting integers and floats as one type (a REAL column holds both).
//!   A path that only ever holds null has share 1. **TypeStability**: the mean share.
//!   `null_fraction` is the share of a path's values that are null.
//! * **Foreign-key pattern**: a field named `*_id` (any case) or `*Id` (camelCase), but
//!   not `id` itself. `has_relationships`: such a top-level field repeats a value
//!   across documents (two orders of one customer).
//! * `field_count` is the number of distinct top-level fields (the would-be columns);
//!   `TotalFields` the number of recorded paths.
//! * `expected_write_load` and `expected_read_pattern` are read from the comment as
//!   RhinoBox does, for the record only: they do not move the decision.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::limits::Limits;

/// JSON value types, as RhinoBox names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    Null,
    Boolean,
    Integer,
    Float,
    String,
    Array,
    Object,
}

impl JsonType {
    const ALL: [JsonType; 7] = [
        JsonType::Null,
        JsonType::Boolean,
        JsonType::Integer,
        JsonType::Float,
        JsonType::String,
        JsonType::Array,
        JsonType::Object,
    ];

    /// The type of a value. A number is `Integer` when it fits i64, else `Float` (an
    /// integer above i64::MAX cannot be an SQLite INTEGER).
    pub fn of(v: &Value) -> JsonType {
        match v {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Boolean,
            Value::Number(n) if n.is_i64() => JsonType::Integer,
            Value::Number(_) => JsonType::Float,
            Value::String(_) => JsonType::String,
            Value::Array(_) => JsonType::Array,
            Value::Object(_) => JsonType::Object,
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Boolean => "boolean",
            JsonType::Integer => "integer",
            JsonType::Float => "float",
            JsonType::String => "string",
            JsonType::Array => "array",
            JsonType::Object => "object",
        }
    }
}

/// The seed's `summary` object. Keys are PascalCase because RhinoBox serialises its Go
/// struct without tags.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Summary {
    pub documents_analyzed: usize,
    pub total_fields: usize,
    pub max_depth: usize,
    pub field_stability: f64,
    pub type_stability: f64,
    pub has_array_objects: bool,
    pub structure_hash: String,
    pub fields: BTreeMap<String, FieldSummary>,
}

/// One path of `summary.Fields`.
#[derive(Debug, Clone, Serialize)]
pub struct FieldSummary {
    pub dominant_type: JsonType,
    pub type_stability: f64,
    pub presence: f64,
    pub null_fraction: f64,
    pub max_length: usize,
    pub is_likely_fk: bool,
}

/// The seed's `analysis` object.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaAnalysis {
    pub has_foreign_keys: bool,
    pub has_relationships: bool,
    pub requires_joins: bool,
    pub has_constraints: bool,
    pub schema_consistency: f64,
    pub field_count: usize,
    pub max_nesting_depth: usize,
    pub array_fields: Vec<String>,
    pub record_count: usize,
    pub unique_field_sets: usize,
    pub expected_write_load: String,
    pub expected_read_pattern: String,
    pub comment: String,
}

/// What the analysis knows about one top-level field: the facts a SQL column needs.
#[derive(Debug, Clone, Default)]
pub struct TopField {
    /// Documents that have the field (null or not).
    pub present: usize,
    /// Documents where it is null.
    pub nulls: usize,
    /// Non-null values seen, by [`JsonType`] index.
    pub type_counts: [usize; 7],
    /// An integer with magnitude above 2^53 was seen (a REAL would round it).
    pub has_wide_integer: bool,
    /// Longest string, in bytes.
    pub max_len: usize,
    /// The field repeats a scalar value across documents.
    pub repeats_value: bool,
}

impl TopField {
    /// The distinct non-null types, integers and floats counted as one.
    pub fn non_null_kinds(&self) -> usize {
        let c = &self.type_counts;
        let number = c[JsonType::Integer.index()] + c[JsonType::Float.index()] > 0;
        [
            JsonType::Boolean,
            JsonType::String,
            JsonType::Array,
            JsonType::Object,
        ]
        .iter()
        .filter(|t| c[t.index()] > 0)
        .count()
            + usize::from(number)
    }

    pub fn count(&self, t: JsonType) -> usize {
        self.type_counts[t.index()]
    }
}

/// The full result of analysing a batch.
#[derive(Debug, Clone)]
pub struct BatchAnalysis {
    pub summary: Summary,
    pub analysis: SchemaAnalysis,
    /// Top-level fields in name order.
    pub top: BTreeMap<String, TopField>,
    /// Top-level fields that held an array whose elements include an object.
    pub array_object_fields: BTreeSet<String>,
    /// Top-level fields holding a JSON value with conflicting types across documents.
    pub mixed_type_fields: Vec<String>,
    /// Share of non-null top-level values that are objects or arrays.
    pub nested_value_share: f64,
}

#[derive(Debug, Default)]
struct PathStats {
    type_counts: [usize; 7],
    present: usize,
    last_doc: usize,
    max_len: usize,
}

impl PathStats {
    fn dominant(&self) -> (JsonType, f64) {
        let c = &self.type_counts;
        let non_null: usize = c.iter().sum::<usize>() - c[JsonType::Null.index()];
        if non_null == 0 {
            return (JsonType::Null, 1.0);
        }
        let mut best = JsonType::Null;
        for t in JsonType::ALL.iter().skip(1) {
            if c[t.index()] > c[best.index()] || best == JsonType::Null && c[t.index()] > 0 {
                best = *t;
            }
        }
        let number = c[JsonType::Integer.index()] + c[JsonType::Float.index()];
        let best_share = match best {
            JsonType::Integer | JsonType::Float => number,
            t => c[t.index()].max(number),
        };
        (best, best_share as f64 / non_null as f64)
    }
}

struct Walker<'l> {
    limits: &'l Limits,
    paths: HashMap<String, PathStats>,
    doc: usize,
    max_depth: usize,
    array_objects: BTreeSet<String>,
}

impl Walker<'_> {
    /// Records `v` at `path` (a buffer the caller restores), `level` deep, under the
    /// top-level field `top`.
    fn walk(&mut self, path: &mut String, top: &str, v: &Value, level: usize) {
        self.max_depth = self.max_depth.max(level);
        if level <= self.limits.analysis_depth {
            self.record(path, v);
        }
        if level >= self.limits.max_depth {
            return; // the request validation refused deeper documents already
        }
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let len = path.len();
                    path.push('.');
                    path.push_str(k);
                    self.walk(path, top, child, level + 1);
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                let len = path.len();
                path.push_str("[]");
                for item in items {
                    if item.is_object() && !self.array_objects.contains(top) {
                        self.array_objects.insert(top.to_string());
                    }
                    self.walk(path, top, item, level + 1);
                }
                path.truncate(len);
            }
            _ => {}
        }
    }

    fn record(&mut self, path: &str, v: &Value) {
        let doc = self.doc;
        if !self.paths.contains_key(path) {
            if self.paths.len() >= self.limits.max_paths {
                return;
            }
            self.paths.insert(path.to_string(), PathStats::default());
        }
        let Some(stats) = self.paths.get_mut(path) else {
            return;
        };
        stats.type_counts[JsonType::of(v).index()] += 1;
        if stats.present == 0 || stats.last_doc != doc {
            stats.present += 1;
            stats.last_doc = doc;
        }
        if let Value::String(s) = v {
            stats.max_len = stats.max_len.max(s.len());
        }
    }
}

/// `true` for `customer_id`, `CUSTOMER_ID`, `customerId`; not for `id`, `uuid`, `paid`.
pub fn looks_like_foreign_key(name: &str) -> bool {
    let last = name.rsplit(['.', ']']).next().unwrap_or(name);
    let lower = last.to_ascii_lowercase();
    if lower.len() > 3 && lower.ends_with("_id") {
        return true;
    }
    // camelCase: a lowercase letter or digit, then `Id` at the end
    let b = last.as_bytes();
    b.len() > 2
        && last.ends_with("Id")
        && (b[b.len() - 3].is_ascii_lowercase() || b[b.len() - 3].is_ascii_digit())
}

const TWO_POW_53: u64 = 1 << 53;

/// Analyses `docs` (at least one) with `comment` as the caller's hints.
pub fn analyse(docs: &[Map<String, Value>], comment: &str, limits: &Limits) -> BatchAnalysis {
    let n = docs.len();
    let mut walker = Walker {
        limits,
        paths: HashMap::new(),
        doc: 0,
        max_depth: 0,
        array_objects: BTreeSet::new(),
    };
    let mut top: BTreeMap<String, TopField> = BTreeMap::new();
    let mut field_sets: HashSet<u64> = HashSet::new();
    // Scalar values seen per foreign-key-looking field, to find repeats.
    let mut fk_values: HashMap<&str, HashSet<String>> = HashMap::new();
    let mut path = String::new();
    for (i, doc) in docs.iter().enumerate() {
        walker.doc = i;
        let mut set_hash = DefaultHasher::new();
        for (k, v) in doc {
            k.hash(&mut set_hash);
            let f = match top.get_mut(k.as_str()) {
                Some(f) => f,
                None => top.entry(k.clone()).or_default(),
            };
            f.present += 1;
            let t = JsonType::of(v);
            if t == JsonType::Null {
                f.nulls += 1;
            } else {
                f.type_counts[t.index()] += 1;
            }
            match v {
                Value::String(s) => f.max_len = f.max_len.max(s.len()),
                Value::Number(num) => {
                    if let Some(x) = num.as_i64() {
                        f.has_wide_integer |= x.unsigned_abs() > TWO_POW_53;
                    }
                }
                _ => {}
            }
            if looks_like_foreign_key(k)
                && !matches!(v, Value::Null | Value::Array(_) | Value::Object(_))
            {
                let seen = fk_values.entry(k.as_str()).or_default();
                if !seen.insert(v.to_string()) {
                    f.repeats_value = true;
                }
            }
            path.clear();
            path.push_str(k);
            walker.walk(&mut path, k, v, 1);
        }
        field_sets.insert(set_hash.finish());
    }

    let docs_f = n.max(1) as f64;
    let mut fields = BTreeMap::new();
    let mut type_share_sum = 0.0;
    for (p, s) in &walker.paths {
        let (dominant, share) = s.dominant();
        type_share_sum += share;
        let values: usize = s.type_counts.iter().sum();
        fields.insert(
            p.clone(),
            FieldSummary {
                dominant_type: dominant,
                type_stability: round4(share),
                presence: round4(s.present as f64 / docs_f),
                null_fraction: round4(
                    s.type_counts[JsonType::Null.index()] as f64 / values.max(1) as f64,
                ),
                max_length: s.max_len,
                is_likely_fk: looks_like_foreign_key(p),
            },
        );
    }
    let type_stability = if walker.paths.is_empty() {
        0.0
    } else {
        type_share_sum / walker.paths.len() as f64
    };
    let field_stability = if top.is_empty() {
        0.0
    } else {
        top.values().map(|f| f.present as f64 / docs_f).sum::<f64>() / top.len() as f64
    };

    let mut hasher = Sha256::new();
    for (p, f) in &fields {
        hasher.update(p.as_bytes());
        hasher.update(b"=");
        hasher.update(f.dominant_type.name().as_bytes());
        hasher.update(b";");
    }
    let structure_hash = crate::util::hex::encode(&hasher.finalize());

    let mut nested = 0usize;
    let mut non_null = 0usize;
    let mut mixed_type_fields = Vec::new();
    let mut array_fields = Vec::new();
    for (k, f) in &top {
        nested += f.count(JsonType::Array) + f.count(JsonType::Object);
        non_null += f.present - f.nulls;
        if f.non_null_kinds() > 1 {
            mixed_type_fields.push(k.clone());
        }
        if f.count(JsonType::Array) > 0 {
            array_fields.push(k.clone());
        }
    }
    let has_foreign_keys = top.keys().any(|k| looks_like_foreign_key(k));
    let has_relationships = top.values().any(|f| f.repeats_value);
    let lower = comment.to_lowercase();
    let mentions = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    let expected_write_load = if mentions(&["high write", "many writes", "bulk ingest"]) {
        "high"
    } else {
        "medium"
    };
    let expected_read_pattern = if mentions(&["read heavy", "analytical"]) {
        "analytical"
    } else if mentions(&["transactional", "oltp"]) {
        "transactional"
    } else {
        "mixed"
    };
    let has_constraints = top
        .values()
        .any(|f| f.present as f64 / docs_f >= 0.95 && f.nulls as f64 <= 0.05 * f.present as f64);

    let summary = Summary {
        documents_analyzed: n,
        total_fields: fields.len(),
        max_depth: walker.max_depth,
        field_stability: round4(field_stability),
        type_stability: round4(type_stability),
        has_array_objects: !walker.array_objects.is_empty(),
        structure_hash,
        fields,
    };
    let analysis = SchemaAnalysis {
        has_foreign_keys,
        has_relationships,
        requires_joins: has_relationships || mentions(&["join", "relationship"]),
        has_constraints,
        schema_consistency: round4(field_stability),
        field_count: top.len(),
        max_nesting_depth: walker.max_depth,
        array_fields,
        record_count: n,
        unique_field_sets: field_sets.len(),
        expected_write_load: expected_write_load.to_string(),
        expected_read_pattern: expected_read_pattern.to_string(),
        comment: comment.to_string(),
    };
    BatchAnalysis {
        summary,
        analysis,
        top,
        array_object_fields: walker.array_objects,
        mixed_type_fields,
        nested_value_share: if non_null == 0 {
            0.0
        } else {
            nested as f64 / non_null as f64
        },
    }
}

/// Four decimals: enough for a ratio, and no `0.30000000000000004` in the JSON.
pub(crate) fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn docs(v: Value) -> Vec<Map<String, Value>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_object().unwrap().clone())
            .collect()
    }

    #[test]
    fn foreign_key_names() {
        for yes in [
            "customer_id",
            "CUSTOMER_ID",
            "customerId",
            "order2Id",
            "a.user_id",
        ] {
            assert!(looks_like_foreign_key(yes), "{yes}");
        }
        for no in ["id", "_id", "ID", "uuid", "paid", "Id", "width", "video"] {
            assert!(!looks_like_foreign_key(no), "{no}");
        }
    }

    #[test]
    fn seed_orders_figures() {
        let d = docs(json!([
            {"order_id": 1, "customer_id": 10, "total": 100.0},
            {"order_id": 2, "customer_id": 11, "total": 200.0}
        ]));
        let a = analyse(&d, "", &Limits::default());
        assert_eq!(a.summary.documents_analyzed, 2);
        assert_eq!(a.summary.max_depth, 1);
        assert_eq!(a.summary.field_stability, 1.0);
        assert_eq!(a.summary.type_stability, 1.0);
        assert!(a.analysis.has_foreign_keys);
        assert!(!a.analysis.has_relationships);
        assert_eq!(a.analysis.field_count, 3);
        assert_eq!(a.analysis.unique_field_sets, 1);
        assert_eq!(a.summary.fields["total"].dominant_type, JsonType::Float);
        assert!(a.summary.fields["customer_id"].is_likely_fk);
        let s = serde_json::to_value(&a.summary).unwrap();
        for k in [
            "DocumentsAnalyzed",
            "TotalFields",
            "MaxDepth",
            "FieldStability",
            "TypeStability",
        ] {
            assert!(s.get(k).is_some(), "{k}");
        }
    }

    #[test]
    fn paths_presence_and_types() {
        let d = docs(json!([
            {"a": 1, "tags": ["x", "y"], "items": [{"sku": "s", "qty": 1}, {"sku": "t"}]},
            {"a": "one", "b": null},
            {"a": 2.5, "b": 3}
        ]));
        let a = analyse(&d, "", &Limits::default());
        let f = &a.summary.fields;
        assert_eq!(f["a"].presence, 1.0);
        // integer + float count as one type; the string is the odd one out
        assert!((f["a"].type_stability - 0.6667).abs() < 1e-9);
        assert_eq!(f["items[].sku"].presence, round4(1.0 / 3.0));
        assert!(f.contains_key("items[].qty"));
        assert_eq!(f["tags[]"].dominant_type, JsonType::String);
        assert_eq!(f["b"].null_fraction, 0.5);
        assert_eq!(a.summary.max_depth, 3);
        assert!(a.summary.has_array_objects);
        assert_eq!(a.array_object_fields.iter().collect::<Vec<_>>(), ["items"]);
        assert_eq!(a.analysis.array_fields, ["items", "tags"]);
        assert_eq!(a.mixed_type_fields, ["a"]);
        // {a, b} twice (a null is still a field), {a, items, tags} once
        assert_eq!(a.analysis.unique_field_sets, 2);
    }

    #[test]
    fn relationships_are_repeated_foreign_keys() {
        let d = docs(json!([
            {"order_id": 1, "customer_id": 10},
            {"order_id": 2, "customer_id": 10}
        ]));
        let a = analyse(&d, "", &Limits::default());
        assert!(a.analysis.has_relationships);
        assert!(a.analysis.requires_joins);
        assert!(a.top["customer_id"].repeats_value);
    }

    #[test]
    fn bounded_paths() {
        let limits = Limits {
            max_paths: 3,
            analysis_depth: 2,
            ..Limits::default()
        };
        let d = docs(json!([{"a": 1, "b": 2, "c": 3, "d": 4, "e": {"f": {"g": {"h": 1}}}}]));
        let a = analyse(&d, "", &limits);
        assert_eq!(a.summary.total_fields, 3);
        assert_eq!(a.summary.max_depth, 4);
        assert_eq!(a.analysis.field_count, 5);
    }

    #[test]
    fn wide_integers_are_noticed() {
        let d = docs(json!([{"n": 9_007_199_254_740_993_i64}, {"n": 1.5}]));
        let a = analyse(&d, "", &Limits::default());
        assert!(a.top["n"].has_wide_integer);
    }
}
