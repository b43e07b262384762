//! Lower-case hex: the one encoder of the daemon (blob file names, ETags, log fields,
//! multipart boundaries) and the parser of SHA-256 digests given as hex.
//!
//! Encoding is lower case only, because blob file names must be exactly one spelling
//! of a hash. Decoding accepts either case (clients send both); callers that need the
//! canonical spelling (blob file names) check for upper case themselves.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Encode bytes as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Decode exactly 64 hex digits (either case) into a SHA-256 digest; `None` for
/// anything else.
pub fn decode_sha256(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nib(b[2 * i])? << 4) | nib(b[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let d = [0xabu8; 32];
        assert_eq!(decode_sha256(&encode(&d)), Some(d));
        assert_eq!(decode_sha256("zz"), None);
        assert_eq!(decode_sha256(&"g".repeat(64)), None);
        let mut sha = [0u8; 32];
        for (i, b) in sha.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37);
        }
        let hex = encode(&sha);
        assert_eq!(hex.len(), 64);
        assert!(!hex.bytes().any(|c| c.is_ascii_uppercase()));
        assert_eq!(decode_sha256(&hex.to_uppercase()), Some(sha));
        assert_eq!(decode_sha256(&hex[1..]), None);
        assert_eq!(decode_sha256(&format!("{}g", &hex[1..])), None);
        assert_eq!(encode(&[0x0f]), "0f");
        assert_eq!(encode(&[]), "");
    }
}
