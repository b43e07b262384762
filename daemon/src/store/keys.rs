//! Key encodings chosen for ordered scans, and the opaque listing cursor.
//!
//! * objects: the id's 16 bytes (UUIDv7 is big-endian with the millisecond timestamp
//!   first, so byte order is creation order).
//! * names index: `namespace 0x00 name 0x00 id[16]`, value empty. LMDB compares keys as
//!   bytes, and 0x00 sorts below every other byte, so the index is ordered by namespace,
//!   then name, then id, exactly like comparing the three fields as a tuple: namespace
//!   "a" sorts before "ab", and all of "a"'s keys lie in `[b"a\0", b"a\x01")`. That is why
//!   namespaces and names must not contain NUL (checked here: `Invalid`).
//! * A listing of one namespace is the range `ns\0 ..`, of a name prefix `ns\0prefix ..`,
//!   each stopped at the first key that no longer starts with it. Both are O(log n) to
//!   start and O(page) to read, whatever the size of the store.
//!
//! Cursor = base64url (no padding) of the last index key a listing scanned. Resuming
//! starts strictly after it, so an object that exists for the whole listing is returned
//! exactly once even when others are inserted or deleted between pages. A cursor is
//! opaque to clients but not secret: forging one only moves the starting point, and a
//! cursor that is not a well-formed index key (or lies outside the listed range) is
//! refused with `Invalid`.
//!
//! * aliases: the alias itself, `scheme:value` (e.g. `s:Ab3x9_Zq`, `path:media/x.jpg`),
//!   as UTF-8 bytes; value the object's id[16]. One alias names at most one object.
//!
//! LMDB refuses keys longer than 511 bytes (the build default), so namespace and name
//! are bounded here ([`MAX_NAMESPACE_BYTES`] + [`MAX_NAME_BYTES`] + 18 <= 511), and so
//! are aliases ([`MAX_ALIAS_BYTES`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::{ObjectId, StoreError};

/// Longest namespace the index can hold, in UTF-8 bytes.
pub const MAX_NAMESPACE_BYTES: usize = 160;
/// Longest object name the index can hold, in UTF-8 bytes (a Linux file name is at most
/// 255 bytes; the rest is headroom for dialects that put a path in the name).
pub const MAX_NAME_BYTES: usize = 320;
/// Bytes an index key adds around namespace and name: two NULs and the 16-byte id.
const KEY_OVERHEAD: usize = 18;
/// LMDB's key size limit in this build (MDB_MAXKEYSIZE).
pub const LMDB_MAX_KEY_BYTES: usize = 511;
const _: () = assert!(MAX_NAMESPACE_BYTES + MAX_NAME_BYTES + KEY_OVERHEAD <= LMDB_MAX_KEY_BYTES);
/// A cursor longer than this cannot encode a valid key; refuse it before decoding.
const MAX_CURSOR_CHARS: usize = LMDB_MAX_KEY_BYTES.div_ceil(3) * 4;

/// Longest alias, in UTF-8 bytes: the whole alias is the key of the aliases database.
pub const MAX_ALIAS_BYTES: usize = LMDB_MAX_KEY_BYTES;

/// The objects database key of `id`.
pub fn object_key(id: &ObjectId) -> [u8; 16] {
    *id.as_bytes()
}

/// `Invalid` unless `ns` can be a namespace in the index.
pub fn validate_namespace(ns: &str) -> Result<(), StoreError> {
    if ns.as_bytes().contains(&0) {
        return Err(StoreError::Invalid("namespace must not contain NUL".into()));
    }
    if ns.len() > MAX_NAMESPACE_BYTES {
        return Err(StoreError::Invalid(format!(
            "namespace is {} bytes; at most {MAX_NAMESPACE_BYTES} are allowed",
            ns.len()
        )));
    }
    Ok(())
}

/// `Invalid` unless `name` can be an object name (or a name prefix) in the index.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    if name.as_bytes().contains(&0) {
        return Err(StoreError::Invalid("name must not contain NUL".into()));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(StoreError::Invalid(format!(
            "name is {} bytes; at most {MAX_NAME_BYTES} are allowed",
            name.len()
        )));
    }
    Ok(())
}

/// The names index key `ns\0name\0id`.
pub fn name_key(ns: &str, name: &str, id: &ObjectId) -> Result<Vec<u8>, StoreError> {
    validate_namespace(ns)?;
    validate_name(name)?;
    let mut k = Vec::with_capacity(ns.len() + name.len() + KEY_OVERHEAD);
    k.extend_from_slice(ns.as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    Ok(k)
}

/// The prefix `ns\0name\0` shared by every index key of objects named `name` in `ns`
/// (names contain no NUL, so no other name's keys start with it).
pub fn exact_name_prefix(ns: &str, name: &str) -> Result<Vec<u8>, StoreError> {
    let mut k = scan_prefix(ns, name)?;
    k.push(0);
    Ok(k)
}

/// `Invalid` unless `alias` is `scheme:value` with a scheme of ASCII lower-case letters,
/// digits, `-`, `_` or `.`, a non-empty value, no NUL or other control character, and
/// at most [`MAX_ALIAS_BYTES`] bytes in all.
pub fn validate_alias(alias: &str) -> Result<(), StoreError> {
    let bad = |why: &str| StoreError::Invalid(format!("alias {alias:?}: {why}"));
    if alias.len() > MAX_ALIAS_BYTES {
        return Err(StoreError::Invalid(format!(
            "an alias is {} bytes; at most {MAX_ALIAS_BYTES} are allowed",
            alias.len()
        )));
    }
    let Some((scheme, value)) = alias.split_once(':') else {
        return Err(bad("must be scheme:value"));
    };
    let scheme_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b);
    if scheme.is_empty() || !scheme.bytes().all(scheme_ok) {
        return Err(bad(
            "the scheme must be lower-case ASCII letters, digits, '-', '_' or '.'",
        ));
    }
    if value.is_empty() {
        return Err(bad("the value is empty"));
    }
    if alias.chars().any(char::is_control) {
        return Err(bad("must not contain control characters"));
    }
    Ok(())
}

/// The first key of a scan of namespace `ns` restricted to names starting with
/// `prefix` (empty = the whole namespace); every key of that range starts with it.
pub fn scan_prefix(ns: &str, prefix: &str) -> Result<Vec<u8>, StoreError> {
    validate_namespace(ns)?;
    validate_name(prefix)?;
    let mut k = Vec::with_capacity(ns.len() + 1 + prefix.len());
    k.extend_from_slice(ns.as_bytes());
    k.push(0);
    k.extend_from_slice(prefix.as_bytes());
    Ok(k)
}

/// The smallest possible key after every key of namespace `ns` (`ns\x01`).
pub fn namespace_end(ns: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(ns.len() + 1);
    k.extend_from_slice(ns.as_bytes());
    k.push(1);
    k
}

/// A decoded names index key, borrowing from the key bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameKey<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub id: ObjectId,
}

/// Splits an index key; `None` when it is not of the form `ns\0name\0id[16]` with UTF-8
/// namespace and name free of NUL.
pub fn parse_name_key(key: &[u8]) -> Option<NameKey<'_>> {
    let head_len = key.len().checked_sub(17)?;
    if key[head_len] != 0 {
        return None;
    }
    let id = ObjectId::from_slice(&key[head_len + 1..]).ok()?;
    let head = &key[..head_len];
    let sep = head.iter().position(|&b| b == 0)?;
    let (ns, name) = (&head[..sep], &head[sep + 1..]);
    if name.contains(&0) {
        return None;
    }
    Some(NameKey {
        namespace: std::str::from_utf8(ns).ok()?,
        name: std::str::from_utf8(name).ok()?,
        id,
    })
}

/// The opaque cursor for resuming after index key `key`.
pub fn encode_cursor(key: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// The index key a cursor names; `Invalid("cursor ...")` for anything that is not a
/// cursor this store could have produced.
pub fn decode_cursor(cursor: &str) -> Result<Vec<u8>, StoreError> {
    let bad = || {
        StoreError::Invalid(
            "cursor is malformed; pass back the cursor of the previous page unchanged".into(),
        )
    };
    if cursor.len() > MAX_CURSOR_CHARS {
        return Err(bad());
    }
    let key = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    if key.len() > LMDB_MAX_KEY_BYTES || parse_name_key(&key).is_none() {
        return Err(bad());
    }
    Ok(key)
}

/// `owner \0 ns \0 name \0 id`: the names index of one owner (a user's listing is a
/// range scan of its own objects, never a scan of everyone's).
pub fn owner_name_key(
    owner: &str,
    ns: &str,
    name: &str,
    id: &ObjectId,
) -> Result<Vec<u8>, StoreError> {
    validate_owner(owner)?;
    let mut k = owner_prefix(owner);
    k.extend_from_slice(&name_key(ns, name, id)?);
    Ok(k)
}

/// `owner \0`: the start of every key of one owner in the per-owner indexes.
pub fn owner_prefix(owner: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(owner.len() + 1);
    k.extend_from_slice(owner.as_bytes());
    k.push(0);
    k
}

/// `owner \0 ns`: the key of the owner's object count in namespace `ns`
/// (`owner_ns_counts`, since schema version 5).
pub fn owner_ns_key(owner: &str, ns: &str) -> Result<Vec<u8>, StoreError> {
    validate_owner(owner)?;
    let mut k = owner_prefix(owner);
    k.extend_from_slice(ns.as_bytes());
    Ok(k)
}

/// `owner \0 id[16]`: the owner's objects in creation order (UUIDv7 ids are
/// time-ordered), for newest-first listings and counts.
pub fn owner_time_key(owner: &str, id: &ObjectId) -> Result<Vec<u8>, StoreError> {
    validate_owner(owner)?;
    let mut k = owner_prefix(owner);
    k.extend_from_slice(id.as_bytes());
    Ok(k)
}

/// `owner \0 sha256[32]`: how many of the owner's objects have this content (so
/// `/v1/blobs/{sha}` answers only to someone who owns such an object).
pub fn owner_blob_key(owner: &str, sha: &[u8; 32]) -> Result<Vec<u8>, StoreError> {
    validate_owner(owner)?;
    let mut k = owner_prefix(owner);
    k.extend_from_slice(sha);
    Ok(k)
}

/// `user \0 token_id[16]`: a user's API tokens.
pub fn user_token_key(user: &str, token_id: &[u8; 16]) -> Result<Vec<u8>, StoreError> {
    validate_owner(user)?;
    let mut k = owner_prefix(user);
    k.extend_from_slice(token_id);
    Ok(k)
}

/// Owner and user ids are short identifiers without NUL.
pub fn validate_owner(owner: &str) -> Result<(), StoreError> {
    if owner.is_empty() || owner.len() > 128 || owner.as_bytes().contains(&0) {
        return Err(StoreError::Invalid(format!(
            "owner id `{owner}` is invalid (1-128 bytes, no NUL)"
        )));
    }
    Ok(())
}

/// The key of a username in the `usernames` database: case-folded, so `Alice` and
/// `alice` are the same account name.
pub fn username_key(username: &str) -> Vec<u8> {
    username.to_lowercase().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn name_key_roundtrip() {
        let id = Uuid::now_v7();
        let k = name_key("photos", "été.jpg", &id).unwrap();
        let p = parse_name_key(&k).unwrap();
        assert_eq!(
            p,
            NameKey {
                namespace: "photos",
                name: "été.jpg",
                id
            }
        );
        let empty = name_key("", "", &id).unwrap();
        assert_eq!(parse_name_key(&empty).unwrap().name, "");
    }

    #[test]
    fn order_is_namespace_then_name_then_id() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let mut keys = [
            name_key("ab", "a", &a).unwrap(),
            name_key("a", "zz", &a).unwrap(),
            name_key("a", "z", &b).unwrap(),
            name_key("a", "z", &a).unwrap(),
            name_key("a", "", &b).unwrap(),
        ];
        keys.sort();
        let parsed: Vec<_> = keys
            .iter()
            .map(|k| {
                let p = parse_name_key(k).unwrap();
                (p.namespace.to_owned(), p.name.to_owned(), p.id)
            })
            .collect();
        let mut expected = parsed.clone();
        expected.sort();
        assert_eq!(parsed, expected);
        assert!(namespace_end("a") > name_key("a", "\u{10ffff}", &Uuid::max()).unwrap());
        assert!(namespace_end("a") < name_key("a\u{1}", "", &Uuid::nil()).unwrap());
        assert!(namespace_end("a") < name_key("ab", "", &Uuid::nil()).unwrap());
    }

    #[test]
    fn nul_and_length_are_invalid() {
        let id = Uuid::nil();
        assert!(matches!(
            name_key("a\0b", "x", &id),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            name_key("a", "x\0", &id),
            Err(StoreError::Invalid(_))
        ));
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        assert!(matches!(
            name_key("a", &long, &id),
            Err(StoreError::Invalid(_))
        ));
        let longest = name_key(
            &"n".repeat(MAX_NAMESPACE_BYTES),
            &"x".repeat(MAX_NAME_BYTES),
            &id,
        )
        .unwrap();
        assert!(longest.len() <= LMDB_MAX_KEY_BYTES);
    }

    #[test]
    fn parse_rejects_malformed() {
        assert!(parse_name_key(b"").is_none());
        assert!(parse_name_key(&[0u8; 17]).is_none());
        let mut k = name_key("a", "b", &Uuid::nil()).unwrap();
        assert!(parse_name_key(&k).is_some());
        k[1] = b'x'; // no separator between namespace and name any more
        assert!(parse_name_key(&k).is_none());
        let mut k = name_key("a", "b", &Uuid::nil()).unwrap();
        k.insert(3, 0); // a NUL inside the name
        assert!(parse_name_key(&k).is_none());
        let mut k = name_key("a", "b", &Uuid::nil()).unwrap();
        k[0] = 0xff; // not UTF-8
        assert!(parse_name_key(&k).is_none());
    }

    #[test]
    fn aliases_and_exact_names() {
        for ok in [
            "s:Ab3x9_Zq",
            "path:media/images/x.jpg",
            "a-b.c_1:x:y",
            "s:été",
        ] {
            assert!(validate_alias(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "noscheme", ":v", "s:", "S:x", "s x:v", "s:a\0b", "s:a\nb",
        ] {
            assert!(
                matches!(validate_alias(bad), Err(StoreError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert!(validate_alias(&format!("s:{}", "x".repeat(MAX_ALIAS_BYTES))).is_err());
        assert!(validate_alias(&format!("s:{}", "x".repeat(MAX_ALIAS_BYTES - 2))).is_ok());
        let id = Uuid::now_v7();
        let p = exact_name_prefix("ns", "a").unwrap();
        assert!(name_key("ns", "a", &id).unwrap().starts_with(&p));
        assert!(!name_key("ns", "ab", &id).unwrap().starts_with(&p));
    }

    #[test]
    fn cursor_roundtrip_and_tamper() {
        let k = name_key("ns", "name", &Uuid::now_v7()).unwrap();
        let c = encode_cursor(&k);
        assert!(c
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(decode_cursor(&c).unwrap(), k);
        for bad in ["", "!!!", "AAAA", &c[..c.len() - 2], &"A".repeat(2000)] {
            assert!(
                matches!(decode_cursor(bad), Err(StoreError::Invalid(m)) if m.contains("cursor")),
                "{bad}"
            );
        }
    }
}
