//! Input rules for names, namespaces, tags and metadata, enforced here so that no API
//! can bypass them. Names are user data (any UTF-8) but never control characters, a
//! leading `/`, or a `..` segment, so a name can later become a path in a dialect
//! (RhinoBox's stored paths, photobackup's dated folders) without becoming a traversal.
//! Every message says what is allowed.

use serde_json::{Map, Value};

use super::error::{CoreError, CoreResult};

pub const DEFAULT_NAMESPACE: &str = "default";
/// LMDB keys are at most 511 bytes and the name index key holds namespace + name + id.
pub const MAX_NAME: usize = crate::store::MAX_NAME_BYTES;
/// Namespaces are identifiers: short, ASCII, usable as a directory or table name.
pub const MAX_NAMESPACE: usize = 64;
const MAX_TAGS: usize = 64;
const MAX_TAG: usize = 128;
/// Metadata is kept in the record; bound it so records stay small (the writer also
/// caps the merged result of a patch).
pub const MAX_METADATA: usize = 64 * 1024;

/// A namespace: 1-64 of `A-Za-z0-9._-`, not `.` or `..`.
pub fn namespace(ns: &str) -> CoreResult<String> {
    let ok = !ns.is_empty()
        && ns.len() <= MAX_NAMESPACE
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && ns != "."
        && ns != "..";
    if ok {
        Ok(ns.to_string())
    } else {
        Err(CoreError::invalid_field(
            "namespace",
            format!("namespace `{ns}` is invalid: use 1-{MAX_NAMESPACE} characters from A-Z a-z 0-9 . _ -"),
        ))
    }
}

/// An object name: non-empty UTF-8 up to [`MAX_NAME`] bytes, no control characters,
/// no leading `/`, no `..` segment (with `/` or `\` as separators).
pub fn name(name: &str) -> CoreResult<String> {
    let bad = |why: &str| {
        Err(CoreError::invalid_field(
            "name",
            format!("name is invalid: {why}"),
        ))
    };
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
pub fn tags_csv(csv: &str) -> CoreResult<Vec<String>> {
    tags(
        csv.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// Tags: at most 64, each 1-128 bytes without commas or control characters;
/// duplicates are dropped, order is kept.
pub fn tags(tags: Vec<String>) -> CoreResult<Vec<String>> {
    if tags.len() > MAX_TAGS {
        return Err(CoreError::invalid_field(
            "tags",
            format!("at most {MAX_TAGS} tags are allowed"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        let t = t.trim().to_string();
        if t.is_empty() || t.len() > MAX_TAG || t.contains(',') || t.chars().any(char::is_control) {
            return Err(CoreError::invalid_field(
                "tags",
                format!("tag `{t}` is invalid: 1-{MAX_TAG} bytes, no commas or control characters"),
            ));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// Metadata from a JSON text: must be an object of bounded size.
pub fn metadata_text(text: &str) -> CoreResult<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => metadata(v),
        Err(e) => Err(CoreError::invalid_field(
            "metadata",
            format!("metadata is not valid JSON: {e}"),
        )),
    }
}

/// Metadata: a JSON object of at most [`MAX_METADATA`] bytes.
pub fn metadata(v: Value) -> CoreResult<Map<String, Value>> {
    let Value::Object(m) = v else {
        return Err(CoreError::invalid_field(
            "metadata",
            "metadata must be a JSON object",
        ));
    };
    if serde_json::to_string(&m).map_or(0, |s| s.len()) > MAX_METADATA {
        return Err(CoreError::invalid_field(
            "metadata",
            "metadata is larger than 64 KiB",
        ));
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
        assert!(namespace(&"n".repeat(65)).is_err());
        assert!(name("report.pdf").is_ok());
        assert!(name("dir/ok.txt").is_ok());
        assert!(name("../etc/passwd").is_err());
        assert!(name("a/../b").is_err());
        assert!(name("a\\..\\b").is_err());
        assert!(name("/abs").is_err());
        assert!(name("bad\0").is_err());
        assert!(name("tab\there").is_err());
        assert!(name(&"x".repeat(MAX_NAME + 1)).is_err());
        assert_eq!(tags_csv(" a, b ,a,").unwrap(), vec!["a", "b"]);
        assert!(tags(vec!["x".repeat(129)]).is_err());
        assert!(metadata_text("[1]").is_err());
        assert!(metadata_text("{\"k\":1}").is_ok());
        let big = format!("{{\"k\":\"{}\"}}", "x".repeat(MAX_METADATA));
        assert!(metadata_text(&big).is_err());
    }

    #[test]
    fn errors_name_their_field() {
        assert_eq!(name("").unwrap_err().field, Some("name"));
        assert_eq!(namespace("").unwrap_err().field, Some("namespace"));
    }
}
