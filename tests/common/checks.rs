//! Shape checks for the daemon's JSON documents (daemon-http.md, "Object JSON").

use super::util::{is_sha256_hex, parse_rfc3339};
use serde_json::Value;

/// Asserts `s` is a lower-case hyphenated UUID of version 7 (time-ordered ids).
#[track_caller]
pub fn assert_uuid_v7(s: &str) {
    let b = s.as_bytes();
    let ok = b.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b.iter()
            .enumerate()
            .all(|(i, c)| [8, 13, 18, 23].contains(&i) || c.is_ascii_hexdigit())
        && b[14] == b'7';
    assert!(ok, "not a UUIDv7: {s:?}");
}

/// Asserts an RFC 3339 UTC timestamp with exactly millisecond precision and a `Z`.
#[track_caller]
pub fn assert_time_millis_z(s: &str) -> i64 {
    let t = parse_rfc3339(s).unwrap_or_else(|| panic!("not RFC 3339: {s:?}"));
    assert!(
        t.zulu && s.ends_with('Z'),
        "timestamp not in UTC with Z: {s:?}"
    );
    assert_eq!(
        t.frac_digits, 3,
        "timestamp without millisecond precision: {s:?}"
    );
    t.unix_ms
}

/// Asserts the object document has every field of the contract with the right type,
/// and returns it for chaining.
#[track_caller]
pub fn assert_object_shape(v: &Value) -> &Value {
    let ctx = || serde_json::to_string_pretty(v).unwrap();
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("object is not a JSON object: {}", ctx()));
    for k in [
        "id",
        "kind",
        "name",
        "namespace",
        "mime_type",
        "size",
        "sha256",
        "state",
        "created_at",
        "updated_at",
        "tags",
        "metadata",
    ] {
        assert!(o.contains_key(k), "object lacks {k:?}: {}", ctx());
    }
    assert_uuid_v7(
        v["id"]
            .as_str()
            .unwrap_or_else(|| panic!("id not a string: {}", ctx())),
    );
    let kind = v["kind"].as_str().unwrap_or_default();
    assert!(kind == "file" || kind == "text", "bad kind: {}", ctx());
    assert!(
        v["name"].is_string() && v["namespace"].is_string() && v["mime_type"].is_string(),
        "{}",
        ctx()
    );
    assert!(
        v["size"].is_u64(),
        "size not an unsigned integer: {}",
        ctx()
    );
    match &v["sha256"] {
        Value::Null => {}
        Value::String(s) => assert!(is_sha256_hex(s), "sha256 not lower-case hex: {}", ctx()),
        _ => panic!("sha256 neither hex nor null: {}", ctx()),
    }
    let state = v["state"].as_str().unwrap_or_default();
    assert!(
        ["stored", "pending", "lost"].contains(&state),
        "bad state: {}",
        ctx()
    );
    let c = assert_time_millis_z(
        v["created_at"]
            .as_str()
            .unwrap_or_else(|| panic!("created_at: {}", ctx())),
    );
    let u = assert_time_millis_z(
        v["updated_at"]
            .as_str()
            .unwrap_or_else(|| panic!("updated_at: {}", ctx())),
    );
    assert!(u >= c, "updated_at before created_at: {}", ctx());
    let tags = v["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("tags not an array: {}", ctx()));
    assert!(
        tags.iter().all(Value::is_string),
        "tags not strings: {}",
        ctx()
    );
    assert!(
        v["metadata"].is_object(),
        "metadata not an object: {}",
        ctx()
    );
    if kind == "text" {
        assert!(
            v["content"].is_string(),
            "text object without content: {}",
            ctx()
        );
    }
    v
}

/// The `id` of an object document.
#[track_caller]
pub fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}
