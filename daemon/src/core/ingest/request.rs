//! The request model of `/ingest/json` (and of the `data` field of `/ingest`): parsing
//! and validation into an [`IngestRequest`], whose documents are JSON objects that every
//! later stage may walk without further checks.
//!
//! Rules (each refusal is an [`IngestError`] with a message for the caller):
//!
//! * `document` (one object) or `documents` (an array of objects), not both; neither,
//!   or an empty array, is RhinoBox's `no JSON documents provided`. A JSON `null` counts
//!   as absent, as it does in RhinoBox.
//! * `namespace` is required for `/ingest/json` and is 1-64 characters from
//!   `A-Za-z0-9._-`, not `.` or `..`: it becomes a directory name and (sanitised) a
//!   table name. `/ingest` without one uses `default`.
//! * `comment` is a string (at most [`Limits::max_comment_bytes`]); `metadata` is an
//!   object (at most [`Limits::max_metadata_bytes`] as JSON text).
//! * Unknown top-level fields are ignored (RhinoBox does the same).
//!
//! Hostile JSON, and what happens to it:
//!
//! * **Nesting**: serde_json stops at 128 levels while parsing (its recursion limit),
//!   which becomes `invalid JSON: recursion limit exceeded at line 1 column 129`; no
//!   stack is at risk. A document that parses but nests deeper than
//!   [`Limits::max_depth`] is refused here, so later walks stay short.
//! * **Numbers**: serde_json is built without `arbitrary_precision`. An integer that
//!   fits i64 or u64 is kept exactly; a larger integer literal is parsed as the nearest
//!   f64 (its low digits are lost by the parser, in the batch file as well); a number
//!   beyond f64 (`1e400`) is refused by the parser (`number out of range`). How numbers
//!   map to SQL columns is in `schema.rs`.
//! * **Duplicate keys** inside a document: serde_json keeps the last value, silently.
//!   Duplicate top-level request fields (two `namespace` keys) are refused
//!   (`duplicate field`), because the request is parsed into a struct.
//! * **Big strings**: the HTTP layer caps the body; values that will become SQL cells
//!   are capped by [`Limits::max_cell_bytes`] when the batch goes to SQL.
//! * **Invalid text**: invalid UTF-8 and lone surrogate escapes (`"\ud800"`) are parser
//!   errors.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::IngestError;
use super::limits::Limits;

/// The namespace of an `/ingest` call that names none (the native API's default too).
pub const DEFAULT_NAMESPACE: &str = "default";
/// Longest namespace, in bytes.
pub const MAX_NAMESPACE_BYTES: usize = 64;

/// A validated ingestion request: every document is a JSON object no deeper than
/// [`Limits::max_depth`].
#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub namespace: String,
    /// Free text; hints for the decision engine. Empty when not given.
    pub comment: String,
    /// Caller context, logged with the ingestion. `None` when not given.
    pub metadata: Option<Map<String, Value>>,
    pub documents: Vec<Map<String, Value>>,
}

/// The `/ingest/json` body as it arrives. `Option<Value>` turns a JSON `null` into
/// `None`; serde's derive refuses a field given twice.
#[derive(Deserialize)]
struct RawBody {
    #[serde(default)]
    document: Option<Value>,
    #[serde(default)]
    documents: Option<Value>,
    #[serde(default)]
    namespace: Option<Value>,
    #[serde(default)]
    comment: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
}

impl IngestRequest {
    /// Parses and validates an `/ingest/json` body.
    pub fn from_json_body(body: &[u8], limits: &Limits) -> Result<Self, IngestError> {
        // serde's derive would also accept a JSON array as the struct's fields in order.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(IngestError::InvalidJson(
                "the body must be a JSON object with namespace and document or documents".into(),
            ));
        }
        let raw: RawBody = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
        let namespace = match raw.namespace {
            None => {
                return Err(IngestError::BadRequest(
                    "namespace is required: name the table or collection the documents go to \
                     (1-64 characters from A-Z a-z 0-9 . _ -)"
                        .into(),
                ))
            }
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(IngestError::BadRequest(format!(
                    "namespace must be a string, not {}",
                    type_name(&other)
                )))
            }
        };
        let comment = match raw.comment {
            None => String::new(),
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(IngestError::BadRequest(format!(
                    "comment must be a string, not {}",
                    type_name(&other)
                )))
            }
        };
        let documents = match (raw.document, raw.documents) {
            (Some(_), Some(_)) => {
                return Err(IngestError::BadRequest(
                    "provide either document or documents, not both".into(),
                ))
            }
            (Some(doc), None) => vec![into_object(doc, "document")?],
            (None, Some(Value::Array(items))) => objects(items, "documents", limits)?,
            (None, Some(other)) => {
                return Err(IngestError::BadRequest(format!(
                    "documents must be an array of objects, not {}",
                    type_name(&other)
                )))
            }
            (None, None) => return Err(IngestError::NoDocuments),
        };
        Self::validated(namespace, comment, raw.metadata, documents, limits)
    }

    /// Builds a request from `/ingest` form fields: `data` is a JSON object or an array
    /// of objects, `metadata` a JSON object. A missing or empty namespace is
    /// [`DEFAULT_NAMESPACE`].
    pub fn from_form(
        data: &str,
        namespace: Option<&str>,
        comment: Option<&str>,
        metadata: Option<&str>,
        limits: &Limits,
    ) -> Result<Self, IngestError> {
        let value: Value = serde_json::from_str(data).map_err(|e| json_error(&e))?;
        let documents = match value {
            Value::Object(map) => vec![map],
            Value::Array(items) => objects(items, "data", limits)?,
            other => {
                return Err(IngestError::BadRequest(format!(
                    "data must be a JSON object or an array of objects, not {}",
                    type_name(&other)
                )))
            }
        };
        let metadata = match metadata.map(str::trim).filter(|m| !m.is_empty()) {
            None => None,
            Some(text) => Some(
                serde_json::from_str::<Value>(text)
                    .map_err(|e| IngestError::BadRequest(format!("metadata is not JSON: {e}")))?,
            ),
        };
        let namespace = match namespace.map(str::trim) {
            None | Some("") => DEFAULT_NAMESPACE.to_string(),
            Some(ns) => ns.to_string(),
        };
        Self::validated(
            namespace,
            comment.unwrap_or_default().to_string(),
            metadata,
            documents,
            limits,
        )
    }

    /// Builds a request from values already in memory (e.g. built by another API),
    /// with the same validation as a parsed body.
    pub fn new(
        namespace: &str,
        comment: &str,
        metadata: Option<Value>,
        documents: Vec<Value>,
        limits: &Limits,
    ) -> Result<Self, IngestError> {
        let documents = objects(documents, "documents", limits)?;
        Self::validated(
            namespace.to_string(),
            comment.to_string(),
            metadata,
            documents,
            limits,
        )
    }

    fn validated(
        namespace: String,
        comment: String,
        metadata: Option<Value>,
        documents: Vec<Map<String, Value>>,
        limits: &Limits,
    ) -> Result<Self, IngestError> {
        validate_namespace(&namespace)?;
        if comment.len() > limits.max_comment_bytes {
            return Err(IngestError::Limit(format!(
                "comment is {} bytes; at most {} are allowed",
                comment.len(),
                limits.max_comment_bytes
            )));
        }
        let metadata = match metadata {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => {
                // Serialising a Map cannot fail (its keys are strings).
                let size = serde_json::to_vec(&map).map_or(0, |v| v.len());
                if size > limits.max_metadata_bytes {
                    return Err(IngestError::Limit(format!(
                        "metadata is {size} bytes of JSON; at most {} are allowed",
                        limits.max_metadata_bytes
                    )));
                }
                Some(map)
            }
            Some(other) => {
                return Err(IngestError::BadRequest(format!(
                    "metadata must be a JSON object, not {}",
                    type_name(&other)
                )))
            }
        };
        if documents.is_empty() {
            return Err(IngestError::NoDocuments);
        }
        if documents.len() > limits.max_documents {
            return Err(IngestError::Limit(format!(
                "{} documents in one call; at most {} are allowed (split the batch)",
                documents.len(),
                limits.max_documents
            )));
        }
        for (i, doc) in documents.iter().enumerate() {
            let depth = object_depth(doc, 0, limits.max_depth);
            if depth > limits.max_depth {
                return Err(IngestError::Limit(format!(
                    "documents[{i}] nests deeper than {} levels",
                    limits.max_depth
                )));
            }
        }
        Ok(IngestRequest {
            namespace,
            comment,
            metadata,
            documents,
        })
    }
}

/// `Ok` if `ns` is 1-64 characters from `A-Za-z0-9._-` and not `.` or `..`.
pub fn validate_namespace(ns: &str) -> Result<(), IngestError> {
    let ok = !ns.is_empty()
        && ns.len() <= MAX_NAMESPACE_BYTES
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && ns != "."
        && ns != "..";
    if ok {
        Ok(())
    } else {
        Err(IngestError::BadRequest(format!(
            "namespace `{}` is invalid: use 1-64 characters from A-Z a-z 0-9 . _ -",
            ns.escape_debug()
        )))
    }
}

/// How deep a value nests: a scalar at `level` is `level`; an object's or array's
/// members are one level further. Stops descending past `max` (the caller only needs
/// to know that the bound was crossed), so the walk is never deeper than `max + 1`.
pub(crate) fn value_depth(value: &Value, level: usize, max: usize) -> usize {
    if level > max {
        return level;
    }
    match value {
        Value::Object(map) => object_depth(map, level, max),
        Value::Array(items) => items
            .iter()
            .map(|v| value_depth(v, level + 1, max))
            .max()
            .unwrap_or(level),
        _ => level,
    }
}

/// The depth of an object whose own level is `level` (a document is level 0, so its
/// top-level scalar fields are level 1).
pub(crate) fn object_depth(map: &Map<String, Value>, level: usize, max: usize) -> usize {
    map.values()
        .map(|v| value_depth(v, level + 1, max))
        .max()
        .unwrap_or(level)
}

fn objects(
    items: Vec<Value>,
    field: &str,
    limits: &Limits,
) -> Result<Vec<Map<String, Value>>, IngestError> {
    if items.len() > limits.max_documents {
        return Err(IngestError::Limit(format!(
            "{} documents in one call; at most {} are allowed (split the batch)",
            items.len(),
            limits.max_documents
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| into_object(v, &format!("{field}[{i}]")))
        .collect()
}

fn into_object(value: Value, what: &str) -> Result<Map<String, Value>, IngestError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(IngestError::BadRequest(format!(
            "{what} must be a JSON object, not {}",
            type_name(&other)
        ))),
    }
}

fn json_error(e: &serde_json::Error) -> IngestError {
    IngestError::InvalidJson(e.to_string())
}

/// "a string", "an array", ... for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<IngestRequest, IngestError> {
        IngestRequest::from_json_body(body.as_bytes(), &Limits::default())
    }

    fn err(body: &str) -> String {
        parse(body).unwrap_err().to_string()
    }

    #[test]
    fn one_document_or_many() {
        let r = parse(r#"{"namespace":"a","document":{"x":1}}"#).unwrap();
        assert_eq!(r.documents.len(), 1);
        let r = parse(
            r#"{"namespace":"a","documents":[{"x":1},{"x":2}],"comment":"c","metadata":{"k":1}}"#,
        )
        .unwrap();
        assert_eq!(r.documents.len(), 2);
        assert_eq!(r.comment, "c");
        assert_eq!(r.metadata.unwrap()["k"], 1);
        // null counts as absent
        let r = parse(r#"{"namespace":"a","document":null,"documents":[{"x":1}]}"#).unwrap();
        assert_eq!(r.documents.len(), 1);
    }

    #[test]
    fn refusals_say_why() {
        assert!(err(r#"{"namespace":"a","document":{},"documents":[{}]}"#).contains("not both"));
        assert_eq!(err(r#"{"namespace":"a"}"#), "no JSON documents provided");
        assert_eq!(
            err(r#"{"namespace":"a","documents":[]}"#),
            "no JSON documents provided"
        );
        assert!(err(r#"{"documents":[{}]}"#).contains("namespace is required"));
        assert!(err(r#"{"namespace":"a/b","documents":[{}]}"#).contains("invalid"));
        assert!(err(r#"{"namespace":"..","documents":[{}]}"#).contains("invalid"));
        assert!(err(&format!(
            r#"{{"namespace":"{}","documents":[{{}}]}}"#,
            "n".repeat(65)
        ))
        .contains("invalid"));
        assert!(err(r#"{"namespace":7,"documents":[{}]}"#).contains("must be a string"));
        assert!(err(r#"{"namespace":"a","documents":[{},3]}"#)
            .contains("documents[1] must be a JSON object, not a number"));
        assert!(err(r#"{"namespace":"a","documents":{"x":1}}"#).contains("array of objects"));
        assert!(
            err(r#"{"namespace":"a","document":[1]}"#).contains("document must be a JSON object")
        );
        assert!(
            err(r#"{"namespace":"a","document":{},"metadata":[1]}"#).contains("metadata must be")
        );
        assert!(err(r#"{"namespace":"a","document":{},"comment":{}}"#).contains("comment must be"));
        assert!(err(r#"[1,2]"#).starts_with("invalid JSON: "));
        assert!(err(r#"{"namespace":"a","document":{"x":1}"#).starts_with("invalid JSON: "));
    }

    #[test]
    fn nesting_ten_thousand_deep_is_a_clean_error() {
        let deep = format!(
            r#"{{"namespace":"a","document":{{"x":{}1{}}}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let e = parse(&deep).unwrap_err();
        assert!(matches!(e, IngestError::InvalidJson(_)), "{e}");
        assert!(e.to_string().contains("recursion limit"), "{e}");
        let deep_objects = format!(
            r#"{{"namespace":"a","document":{}1{}}}"#,
            r#"{"a":"#.repeat(10_000),
            "}".repeat(10_000)
        );
        assert!(matches!(
            parse(&deep_objects),
            Err(IngestError::InvalidJson(_))
        ));
    }

    #[test]
    fn own_depth_limit_below_the_parser_limit() {
        let limits = Limits {
            max_depth: 5,
            ..Limits::default()
        };
        let ok = r#"{"namespace":"a","document":{"a":{"b":{"c":{"d":[1]}}}}}"#;
        assert!(IngestRequest::from_json_body(ok.as_bytes(), &limits).is_ok());
        let deep = r#"{"namespace":"a","document":{"a":{"b":{"c":{"d":[[1]]}}}}}"#;
        let e = IngestRequest::from_json_body(deep.as_bytes(), &limits).unwrap_err();
        assert!(e.to_string().contains("deeper than 5 levels"), "{e}");
        // values built in memory get the same check
        let mut v = Value::from(1);
        for _ in 0..200 {
            v = Value::Array(vec![v]);
        }
        let e = IngestRequest::new(
            "a",
            "",
            None,
            vec![serde_json::json!({ "x": v })],
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(e, IngestError::Limit(_)));
    }

    #[test]
    fn numbers_beyond_i64_and_f64() {
        // beyond i64 but within u64: kept exactly
        let r = parse(r#"{"namespace":"a","document":{"n":18446744073709551615}}"#).unwrap();
        assert_eq!(r.documents[0]["n"].as_u64(), Some(u64::MAX));
        // beyond u64: parsed as the nearest f64
        let r =
            parse(r#"{"namespace":"a","document":{"n":123456789012345678901234567890}}"#).unwrap();
        assert!(r.documents[0]["n"].is_f64());
        // beyond f64: a parse error
        let e = err(r#"{"namespace":"a","document":{"n":1e400}}"#);
        assert!(e.contains("number out of range"), "{e}");
    }

    #[test]
    fn duplicate_keys() {
        // inside a document the last one wins
        let r = parse(r#"{"namespace":"a","document":{"k":1,"k":2}}"#).unwrap();
        assert_eq!(r.documents[0]["k"], 2);
        // a request field given twice is refused
        let e = err(r#"{"namespace":"a","namespace":"b","document":{}}"#);
        assert!(e.contains("duplicate field"), "{e}");
    }

    #[test]
    fn bad_text() {
        let e = err(r#"{"namespace":"a","document":{"s":"\ud800"}}"#);
        assert!(e.starts_with("invalid JSON"), "{e}");
        let mut body = br#"{"namespace":"a","document":{"s":""#.to_vec();
        body.extend_from_slice(&[0xff, 0xfe]);
        body.extend_from_slice(br#""}}"#);
        assert!(matches!(
            IngestRequest::from_json_body(&body, &Limits::default()),
            Err(IngestError::InvalidJson(_))
        ));
    }

    #[test]
    fn limits() {
        let limits = Limits {
            max_documents: 2,
            max_comment_bytes: 3,
            max_metadata_bytes: 10,
            ..Limits::default()
        };
        let p = |b: &str| IngestRequest::from_json_body(b.as_bytes(), &limits);
        assert!(matches!(
            p(r#"{"namespace":"a","documents":[{},{},{}]}"#),
            Err(IngestError::Limit(_))
        ));
        assert!(matches!(
            p(r#"{"namespace":"a","document":{},"comment":"long"}"#),
            Err(IngestError::Limit(_))
        ));
        assert!(matches!(
            p(r#"{"namespace":"a","document":{},"metadata":{"k":"0123456789"}}"#),
            Err(IngestError::Limit(_))
        ));
    }

    #[test]
    fn form_data() {
        let l = Limits::default();
        let r = IngestRequest::from_form(
            r#"[{"id":1},{"id":2}]"#,
            None,
            Some("c"),
            Some(r#"{"k":1}"#),
            &l,
        )
        .unwrap();
        assert_eq!(r.namespace, DEFAULT_NAMESPACE);
        assert_eq!(r.documents.len(), 2);
        let r = IngestRequest::from_form(r#"{"id":1}"#, Some("users"), None, None, &l).unwrap();
        assert_eq!(r.namespace, "users");
        assert_eq!(r.documents.len(), 1);
        assert!(IngestRequest::from_form("3", None, None, None, &l).is_err());
        assert!(matches!(
            IngestRequest::from_form("[]", None, None, None, &l),
            Err(IngestError::NoDocuments)
        ));
        assert!(
            IngestRequest::from_form(r#"[{"a":1},"x"]"#, None, None, None, &l)
                .unwrap_err()
                .to_string()
                .contains("data[1]")
        );
        assert!(IngestRequest::from_form("{}", None, None, Some("nope"), &l).is_err());
        assert!(IngestRequest::from_form("{}", Some("a b"), None, None, &l).is_err());
    }

    #[test]
    fn depth_counts_levels() {
        let d = |s: &str| {
            let v: Map<String, Value> = serde_json::from_str(s).unwrap();
            object_depth(&v, 0, 100)
        };
        assert_eq!(d("{}"), 0);
        assert_eq!(d(r#"{"a":1}"#), 1);
        assert_eq!(d(r#"{"a":[]}"#), 1);
        assert_eq!(d(r#"{"a":[1]}"#), 2);
        assert_eq!(d(r#"{"a":{"b":1}}"#), 2);
        assert_eq!(d(r#"{"events":[{"meta":{"device":"ios"}}]}"#), 4);
    }
}
