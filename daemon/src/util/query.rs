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

/// Percent-decode (and `+` as space); None on a bad escape or invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(h).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
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
    }
}
