//! Input rules for names, namespaces, tags and metadata, with messages that say what
//! is allowed. Names are user data (any UTF-8) but never control characters, a
//! leading `/`, or a `..` segment, so a name can later become a path in a dialect
//! without becoming a traversal.

use serde_json::{Map, Value};

use crate::http::errors::ApiError;

pub const DEFAULT_NAMESPACE: &str = "default";
/// LMDB keys are at most 511 bytes and the name index key holds namespace + name + id.
const MAX_NAME: usize = crate::store::MAX_NAME_BYTES;
const MAX_TAGS: usize = 64;
const MAX_TAG: usize = 128;
/// Metadata is kept in the record; bound it so records stay small.
pub const MAX_METADATA: usize = 64 * 1024;

pub fn namespace(ns: &str) -> Result<String, ApiError> {
    let ok = !ns.is_empty()
        && ns.len() <= 64
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && ns != "."
        && ns != "..";
    if ok {
        Ok(ns.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "namespace `{ns}` is invalid: use 1-64 characters from A-Z a-z 0-9 . _ -"
        )))
    }
}

pub fn name(name: &str) -> Result<String, ApiError> {
    let bad = |why: &str| Err(ApiError::bad_request(format!("name is invalid: {why}")));
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME {
        return bad(&format!("it is longer than {MAX_NAME} bytes"));
    }
    if name.chars().any(char::is_control) {
        return bad("it contains control characters");
    }
    if name.starts_with('/') {
        return bad("it starts with `/`");
    }
    if name.split(['/', '\\']).any(|seg| seg == "..") {
        return bad("it contains a `..` segment");
    }
    Ok(name.to_string())
}

/// Tags from a comma-separated string.
pub fn tags_csv(csv: &str) -> Result<Vec<String>, ApiError> {
    tags(
        csv.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

pub fn tags(tags: Vec<String>) -> Result<Vec<String>, ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_TAGS} tags are allowed"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        let t = t.trim().to_string();
        if t.is_empty() || t.len() > MAX_TAG || t.contains(',') || t.chars().any(char::is_control) {
            return Err(ApiError::bad_request(format!(
                "tag `{t}` is invalid: 1-{MAX_TAG} bytes, no commas or control characters"
            )));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// Metadata from a JSON text: must be an object of bounded size.
pub fn metadata_text(text: &str) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => metadata(v),
        Err(e) => Err(ApiError::bad_request(format!(
            "metadata is not valid JSON: {e}"
        ))),
    }
}

pub fn metadata(v: Value) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(m) = v else {
        return Err(ApiError::bad_request("metadata must be a JSON object"));
    };
    if serde_json::to_string(&m).map_or(0, |s| s.len()) > MAX_METADATA {
        return Err(ApiError::bad_request("metadata is larger than 64 KiB"));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(namespace("photos-2024").is_ok());
        assert!(namespace("a/b").is_err());
        assert!(namespace("..").is_err());
        assert!(name("report.pdf").is_ok());
        assert!(name("dir/ok.txt").is_ok());
        assert!(name("../etc/passwd").is_err());
        assert!(name("a/../b").is_err());
        assert!(name("/abs").is_err());
        assert!(name("bad\0").is_err());
        assert_eq!(tags_csv(" a, b ,a,").unwrap(), vec!["a", "b"]);
        assert!(metadata_text("[1]").is_err());
        assert!(metadata_text("{\"k\":1}").is_ok());
    }
}
