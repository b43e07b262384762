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

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 percent-decoding: `%` must be followed by exactly two hex digits (so
/// `%+1`, `%1` and `%G0` are errors, not what `from_str_radix` would accept).
fn decode(s: &str, plus_is_space: bool) -> Option<std::borrow::Cow<'_, str>> {
    let b = s.as_bytes();
    if !b.contains(&b'%') && (!plus_is_space || !b.contains(&b'+')) {
        return Some(std::borrow::Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex_digit(*b.get(i + 1)?)?;
                let lo = hex_digit(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok().map(std::borrow::Cow::Owned)
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
