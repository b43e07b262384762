//! `application/x-www-form-urlencoded` query strings: percent-decoding into owned
//! pairs. Invalid UTF-8 after decoding is an error, not a silent replacement.

/// Decoded `(name, value)` pairs in order.
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parse a raw query (the part after `?`). Returns the name of the offending
    /// parameter when a value is not valid percent-encoded UTF-8.
    pub fn parse(raw: Option<&str>) -> Result<Query, String> {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let k = percent_decode(k).ok_or_else(|| k.to_string())?;
            let v = percent_decode(v).ok_or_else(|| k.clone())?;
            pairs.push((k, v));
        }
        Ok(Query(pairs))
    }

    /// First value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Percent-encode a query component or path segment (everything but RFC 3986's
/// unreserved characters).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decode a query component (`+` is a space); None on a bad escape or
/// invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    decode(s, true).map(std::borrow::Cow::into_owned)
}

/// Percent-decode a path segment (`+` stays `+`); borrowed when there is nothing to
/// decode; None on a bad escape or invalid UTF-8.
pub fn decode_path(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    decode(s, false)
}

/// RFC 3986 percent-decoding, strict (`%` must be followed by exactly two hex digits,
/// the result must be UTF-8), by the protocol crate.
fn decode(s: &str, plus_is_space: bool) -> Option<std::borrow::Cow<'_, str>> {
    if plus_is_space {
        ringbox_protocol::percent::decode_query_component(s).ok()
    } else {
        ringbox_protocol::percent::decode_path_segment(s).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        let q = Query::parse(Some("name=a%20b+c&x=&ns=%C3%A9")).unwrap();
        assert_eq!(q.get("name"), Some("a b c"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.get("ns"), Some("é"));
        assert!(Query::parse(Some("a=%ff")).is_err());
        assert!(Query::parse(Some("a=%4")).is_err());
        assert!(Query::parse(Some("a=%+1")).is_err());
        assert!(Query::parse(Some("a=%-1")).is_err());
        assert_eq!(decode_path("a+b%2Fc").as_deref(), Some("a+b/c"));
        assert!(matches!(
            decode_path("plain"),
            Some(std::borrow::Cow::Borrowed(_))
        ));
        assert_eq!(decode_path("%+1"), None);
    }
}
