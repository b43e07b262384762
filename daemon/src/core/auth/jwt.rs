//! HS256 access tokens (RFC 7519 JWTs), the key that signs them, and opaque refresh
//! tokens.
//!
//! An access token is `base64url(header) . base64url(claims) . base64url(HMAC-SHA-256)`
//! (no padding), with the header `{"alg":"HS256","typ":"JWT"}` and the claims in
//! [`Claims`]. [`verify`] accepts exactly what [`sign`] produces and refuses, with a
//! typed [`JwtError`]:
//! - anything over [`MAX_TOKEN_LEN`] bytes, before decoding a byte of it;
//! - anything that is not three dot-separated parts of strict base64url (no padding,
//!   no stray bits, so each token has exactly one spelling);
//! - a header whose `alg` is not exactly `HS256` (so `none`, `HS512`, `RS256`, and the
//!   classic "public key as HMAC secret" confusion are all refused), whose `typ`, when
//!   present, is not `JWT`, or that has a `crit` list (no extension is understood);
//! - a signature that does not match, compared in constant time (`hmac`'s
//!   `verify_slice`, on `subtle`);
//! - claims that do not parse, whose `typ` is not `access`, or whose `exp` has passed:
//!   a token is valid while `now < exp`, with no leeway, since the same host issues
//!   and checks it (clock skew between issuer and verifier does not arise).
//!
//! The header is checked before the signature (cheap, and it gives a precise error for
//! `alg: none`); the claims are parsed only after the signature matched, so nothing an
//! attacker writes reaches the JSON parser beyond the small header.
//!
//! Refresh tokens are not JWTs: [`new_refresh_token`] makes 32 random bytes
//! (base64url, 43 characters) and their SHA-256, which the caller stores; a refresh
//! is a lookup by hash, and a logout deletes the record.
//!
//! The key: 32 random bytes in a file (base64url text, mode 0600) created once with
//! [`JwtKey::load_or_create`]. There is one key and no rotation: replacing the file
//! invalidates every access token at the next start. Access tokens carry no `kid`.
//!
//! What this module does not do: revoke access tokens (they live until `exp`; keep
//! it short, Media Vault says one hour), read the clock, or know about users.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{random_bytes, RandomError};

type HmacSha256 = Hmac<Sha256>;

/// Longest token [`verify`] looks at. Ours are about 250 bytes; 4 KiB leaves room for
/// long user ids while keeping the work per bogus token small and fixed.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Longest encoded header accepted: ours is 36 characters.
const MAX_HEADER_B64: usize = 256;
/// An HMAC-SHA-256 tag is 32 bytes: 43 base64url characters without padding.
const SIGNATURE_B64_LEN: usize = 43;
/// Access-token lifetime Media Vault documents ("JWT tokens expire after 1 hour").
#[allow(dead_code)] // part of the module's API; not every caller uses it yet
pub const DEFAULT_ACCESS_TTL_SECS: u64 = 3600;
/// The only `typ` claim an access token may carry.
pub const ACCESS_TYP: &str = "access";

/// `base64url({"alg":"HS256","typ":"JWT"})`: every token we sign starts with it.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    /// The user's role, as the caller names it (`admin`, `user`).
    pub role: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds: valid while `now < exp`.
    pub exp: u64,
    /// 128 random bits, base64url: unique per token even for two logins in one second,
    /// so a deny-list by `jti` is possible.
    pub jti: String,
    /// Always [`ACCESS_TYP`].
    pub typ: String,
}

impl Claims {
    /// Claims of a new access token for `sub` valid for `ttl_secs` from `now_secs`.
    pub fn access(
        sub: impl Into<String>,
        role: impl Into<String>,
        now_secs: u64,
        ttl_secs: u64,
    ) -> Result<Self, RandomError> {
        Ok(Self {
            sub: sub.into(),
            role: role.into(),
            iat: now_secs,
            exp: now_secs.saturating_add(ttl_secs),
            jti: URL_SAFE_NO_PAD.encode(random_bytes::<16>()?),
            typ: ACCESS_TYP.into(),
        })
    }
}

/// Why a token was refused. Every variant means 401 to the caller; the message is
/// for logs and for the client (it reveals nothing about the key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is {len} bytes long; tokens longer than {max} bytes are refused")]
    TooLong { len: usize, max: usize },
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the token's {0} is not valid unpadded base64url")]
    Base64(&'static str),
    #[error("the token's algorithm {0:?} is not accepted; only HS256 is")]
    UnsupportedAlgorithm(String),
    #[error("the token's signature does not match")]
    BadSignature,
    #[error("the token's claims are not valid: {0}")]
    Claims(String),
    #[error("the token is a {0:?} token, not an access token")]
    WrongType(String),
    #[error("the token expired at {exp} (Unix seconds); log in again or refresh it")]
    Expired { exp: u64 },
}

/// The HMAC key that signs access tokens. Its `Debug` does not show the key.
#[derive(Clone)]
pub struct JwtKey {
    /// The keyed HMAC state, cloned per token: the key schedule (two SHA-256 blocks)
    /// is done once, not per request.
    mac: HmacSha256,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKey(..)")
    }
}

/// The key file could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the key file {path} is corrupt ({reason}); restore it from a backup, or delete it to make a new key (every access token will stop working)")]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl JwtKey {
    /// Length of the key in bytes (the HMAC-SHA-256 output size, RFC 7518 §3.2).
    pub const LEN: usize = 32;
    /// Largest key file read (the key is 43 characters and maybe a newline).
    const MAX_FILE_LEN: u64 = 1024;

    /// A key from given bytes (tests, or a key the operator supplies).
    pub fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        // HMAC pads a key shorter than the hash's 64-byte block with zeros (RFC 2104
        // §2), so the padded block is the same key, and `KeyInit::new` on a full block
        // has no error case (unlike `new_from_slice`).
        let mut block = [0u8; 64];
        block[..Self::LEN].copy_from_slice(&bytes);
        Self {
            mac: <HmacSha256 as hmac::digest::KeyInit>::new(&block.into()),
        }
    }

    /// A new random key.
    #[allow(dead_code)] // part of the module's API; not every caller uses it yet
    pub fn generate() -> Result<Self, RandomError> {
        Ok(Self::from_bytes(random_bytes()?))
    }

    /// Reads the key from `path`, or creates it there if the file does not exist.
    ///
    /// Creation is atomic and durable: write `.<name>.tmp.<random>` beside it
    /// (`O_EXCL`, mode 0600), fsync it, rename it to `path` without replacing
    /// (`RENAME_NOREPLACE`, or a hard link where the filesystem lacks it), fsync the
    /// directory. If another process created the key first, its key is read and
    /// ours dropped, so two starts never end with two keys. A key file readable by
    /// group or others is used, with a warning. A file that is not a 32-byte key is
    /// an error, never silently replaced: that would log everyone out.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        match Self::load(path) {
            Err(KeyError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let key = random_bytes::<{ Self::LEN }>()?;
        if create_key_file(path, &URL_SAFE_NO_PAD.encode(key))? {
            tracing::info!(path = %path.display(), "created the access-token signing key");
            Ok(Self::from_bytes(key))
        } else {
            Self::load(path)
        }
    }

    fn load(path: &Path) -> Result<Self, KeyError> {
        let io_err = |what, source| KeyError::Io {
            what,
            path: path.to_owned(),
            source,
        };
        let corrupt = |reason: String| KeyError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let meta = fs::metadata(path).map_err(|e| io_err("cannot read", e))?;
        if !meta.is_file() {
            return Err(corrupt("not a regular file".into()));
        }
        if meta.len() > Self::MAX_FILE_LEN {
            return Err(corrupt(format!("{} bytes, a key file has 43", meta.len())));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the signing key file is readable by other users; chmod 600 it");
        }
        let text = fs::read(path).map_err(|e| io_err("cannot read", e))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_ascii())
            .map_err(|_| corrupt("not unpadded base64url text".into()))?;
        let key: [u8; Self::LEN] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| corrupt(format!("{} bytes, a key has {}", b.len(), Self::LEN)))?;
        Ok(Self::from_bytes(key))
    }

    fn mac_of(&self, signing_input: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(signing_input);
        mac
    }
}

/// Writes `text` to a new file at `path` atomically. `Ok(false)` when `path` already
/// existed (someone else created it meanwhile; our temporary file is removed).
fn create_key_file(path: &Path, text: &str) -> Result<bool, KeyError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix: String = random_bytes::<8>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let tmp = dir.join(format!(".{name}.tmp.{suffix}"));
    let io_err = |what, p: &Path, source| KeyError::Io {
        what,
        path: p.to_owned(),
        source,
    };
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io_err("cannot create", &tmp, e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err("cannot write", &tmp, e))?;
        drop(f);
        let created = rename_noreplace(&tmp, path).map_err(|e| io_err("cannot create", path, e))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err("cannot fsync the directory of", path, e))?;
        Ok(created)
    })();
    // After a successful rename the temporary name is gone; otherwise (an error, or
    // another creator won) it is still ours to remove.
    if !matches!(res, Ok(true)) {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Renames `from` to `to` unless `to` exists. `Ok(false)` if it exists.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<bool> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => Ok(false),
        // Filesystems without RENAME_NOREPLACE: a hard link never replaces either.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => match fs::hard_link(from, to) {
            Ok(()) => {
                fs::remove_file(from)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        },
        Err(e) => Err(e.into()),
    }
}

/// Signs `claims` with `key`: `header.payload.signature`.
pub fn sign(key: &JwtKey, claims: &Claims) -> String {
    // Serializing a struct of strings and integers cannot fail; were it ever to, the
    // empty payload would make a token that `verify` refuses, never a valid one.
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let mut token = String::with_capacity(HEADER_B64.len() + payload.len() * 4 / 3 + 48);
    token.push_str(HEADER_B64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let tag = key.mac_of(token.as_bytes()).finalize().into_bytes();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut token);
    token
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// Checks `token` against `key` at `now_secs` (Unix seconds) and returns its claims.
pub fn verify(key: &JwtKey, token: &str, now_secs: u64) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLong {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed(
            "a token has three parts separated by dots",
        ));
    };
    if header_b64.is_empty() || payload_b64.is_empty() {
        return Err(JwtError::Malformed(
            "the header and the claims must not be empty",
        ));
    }
    if header_b64.len() > MAX_HEADER_B64 {
        return Err(JwtError::Malformed("the header is too long"));
    }
    // A header of HS256 tokens only: fast path for the one header we sign.
    if header_b64 != HEADER_B64 {
        check_header(header_b64)?;
    }
    if sig_b64.len() != SIGNATURE_B64_LEN {
        return Err(JwtError::Malformed(
            "the signature must be 43 base64url characters",
        ));
    }
    let mut sig = [0u8; 33];
    let n = URL_SAFE_NO_PAD
        .decode_slice(sig_b64, &mut sig)
        .map_err(|_| JwtError::Base64("signature"))?;
    let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    key.mac_of(signing_input)
        .verify_slice(&sig[..n])
        .map_err(|_| JwtError::BadSignature)?;

    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| JwtError::Base64("claims"))?;
    let claims: Claims =
        serde_json::from_slice(&payload).map_err(|e| JwtError::Claims(e.to_string()))?;
    if claims.typ != ACCESS_TYP {
        return Err(JwtError::WrongType(truncate(&claims.typ)));
    }
    if now_secs >= claims.exp {
        return Err(JwtError::Expired { exp: claims.exp });
    }
    Ok(claims)
}

fn check_header(header_b64: &str) -> Result<(), JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| JwtError::Base64("header"))?;
    let header: Header = serde_json::from_slice(&bytes)
        .map_err(|_| JwtError::Malformed("the header is not a JSON object with an `alg`"))?;
    if header.alg != "HS256" {
        return Err(JwtError::UnsupportedAlgorithm(truncate(&header.alg)));
    }
    if header
        .typ
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
    {
        return Err(JwtError::Malformed("the header's typ must be JWT"));
    }
    if header.crit.is_some() {
        return Err(JwtError::Malformed(
            "critical header extensions are not supported",
        ));
    }
    Ok(())
}

/// Attacker-supplied text in an error message is cut short.
fn truncate(s: &str) -> String {
    s.chars().take(32).collect()
}

/// A new refresh token: 32 random bytes as base64url (43 characters), and the SHA-256
/// of that text, which is what the caller stores (the token itself never is).
pub fn new_refresh_token() -> Result<(String, [u8; 32]), RandomError> {
    let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let digest = refresh_token_sha256(&token);
    Ok((token, digest))
}

/// The SHA-256 of a refresh token as presented by a client: the key to look it up by.
/// A plain hash suffices: the token has 256 bits of entropy, nothing to brute-force.
pub fn refresh_token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn key() -> JwtKey {
        JwtKey::from_bytes([7; 32])
    }

    fn claims() -> Claims {
        Claims::access("0190-user", "user", NOW, DEFAULT_ACCESS_TTL_SECS).unwrap()
    }

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    /// A token with the given header and payload JSON, signed with `key`.
    fn forge(key: &JwtKey, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header), b64(payload));
        let tag = key.mac_of(input.as_bytes()).finalize().into_bytes();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    #[test]
    fn roundtrip() {
        let c = claims();
        let t = sign(&key(), &c);
        assert!(t.starts_with(HEADER_B64));
        assert_eq!(t.split('.').count(), 3);
        assert!(!t.contains('='));
        assert_eq!(verify(&key(), &t, NOW).unwrap(), c);
        assert_eq!(verify(&key(), &t, NOW + 3599).unwrap(), c);
        assert_eq!(c.exp, NOW + 3600);
        assert_eq!(c.typ, "access");
        // The header decodes to what RFC 7519 §3.1 shows.
        let h = URL_SAFE_NO_PAD.decode(HEADER_B64).unwrap();
        assert_eq!(h, br#"{"alg":"HS256","typ":"JWT"}"#);
    }

    #[test]
    fn known_answer() {
        // RFC 7515 §A.1's HS256 example key and input, verified against our HMAC.
        let jwk_k = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
        let k = URL_SAFE_NO_PAD.decode(jwk_k).unwrap();
        let mut mac = <HmacSha256 as hmac::digest::KeyInit>::new_from_slice(&k).unwrap();
        mac.update(b"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ");
        assert_eq!(
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
    }

    #[test]
    fn jti_is_unique_within_a_second() {
        let a = claims();
        let b = claims();
        assert_ne!(a.jti, b.jti);
        assert_eq!(a.jti.len(), 22); // 16 bytes
        assert_ne!(sign(&key(), &a), sign(&key(), &b));
    }

    #[test]
    fn expiry_has_no_leeway() {
        let t = sign(&key(), &claims());
        assert!(verify(&key(), &t, NOW + 3599).is_ok());
        assert_eq!(
            verify(&key(), &t, NOW + 3600),
            Err(JwtError::Expired { exp: NOW + 3600 })
        );
        assert!(matches!(
            verify(&key(), &t, u64::MAX),
            Err(JwtError::Expired { .. })
        ));
    }

    #[test]
    fn tampering_is_refused() {
        let k = key();
        let good = sign(&k, &claims());
        let (head, rest) = good.split_once('.').unwrap();
        let (payload, sig) = rest.split_once('.').unwrap();
        let admin_payload = b64(&serde_json::to_string(&super::Claims {
            role: "admin".into(),
            ..claims()
        })
        .unwrap());
        let claims_json = serde_json::to_string(&claims()).unwrap();
        let mut flipped_sig = sig.to_string().into_bytes();
        flipped_sig[0] = if flipped_sig[0] == b'A' { b'B' } else { b'A' };
        let flipped_sig = String::from_utf8(flipped_sig).unwrap();
        let other_key = JwtKey::from_bytes([8; 32]);

        use JwtError::*;
        let cases: Vec<(&str, String, ErrorCheck)> = vec![
            (
                "changed payload",
                format!("{head}.{admin_payload}.{sig}"),
                |e| *e == BadSignature,
            ),
            (
                "changed signature",
                format!("{head}.{payload}.{flipped_sig}"),
                |e| *e == BadSignature,
            ),
            ("wrong key", sign(&other_key, &claims()), |e| {
                *e == BadSignature
            }),
            (
                "alg none, no signature",
                format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"JWT"}"#)),
                |e| *e == UnsupportedAlgorithm("none".into()),
            ),
            (
                "alg none, with our signature",
                format!("{}.{payload}.{sig}", b64(r#"{"alg":"none"}"#)),
                |e| *e == UnsupportedAlgorithm("none".into()),
            ),
            (
                "alg None",
                forge(&k, r#"{"alg":"None"}"#, &claims_json),
                |e| matches!(e, UnsupportedAlgorithm(_)),
            ),
            (
                "alg hs256 lower case",
                forge(&k, r#"{"alg":"hs256"}"#, &claims_json),
                |e| matches!(e, UnsupportedAlgorithm(_)),
            ),
            (
                "alg HS512",
                forge(&k, r#"{"alg":"HS512"}"#, &claims_json),
                |e| matches!(e, UnsupportedAlgorithm(_)),
            ),
            (
                "alg RS256",
                forge(&k, r#"{"alg":"RS256"}"#, &claims_json),
                |e| matches!(e, UnsupportedAlgorithm(_)),
            ),
            ("no alg", forge(&k, r#"{"typ":"JWT"}"#, &claims_json), |e| {
                matches!(e, Malformed(_))
            }),
            (
                "alg not a string",
                forge(&k, r#"{"alg":1}"#, &claims_json),
                |e| matches!(e, Malformed(_)),
            ),
            ("header not JSON", forge(&k, "HS256", &claims_json), |e| {
                matches!(e, Malformed(_))
            }),
            (
                "typ other than JWT",
                forge(&k, r#"{"alg":"HS256","typ":"at+jwt"}"#, &claims_json),
                |e| matches!(e, Malformed(_)),
            ),
            (
                "crit",
                forge(&k, r#"{"alg":"HS256","crit":["exp"]}"#, &claims_json),
                |e| matches!(e, Malformed(_)),
            ),
            (
                "refresh typ",
                forge(
                    &k,
                    r#"{"alg":"HS256"}"#,
                    &claims_json.replace(r#""typ":"access""#, r#""typ":"refresh""#),
                ),
                |e| *e == WrongType("refresh".into()),
            ),
            (
                "claims not JSON",
                forge(&k, r#"{"alg":"HS256"}"#, "{"),
                |e| matches!(e, Claims(_)),
            ),
            (
                "missing exp",
                forge(
                    &k,
                    r#"{"alg":"HS256"}"#,
                    r#"{"sub":"u","role":"user","iat":1,"jti":"x","typ":"access"}"#,
                ),
                |e| matches!(e, Claims(_)),
            ),
            (
                "negative exp",
                forge(
                    &k,
                    r#"{"alg":"HS256"}"#,
                    r#"{"sub":"u","role":"user","iat":1,"exp":-1,"jti":"x","typ":"access"}"#,
                ),
                |e| matches!(e, Claims(_)),
            ),
            (
                "duplicate exp",
                forge(
                    &k,
                    r#"{"alg":"HS256"}"#,
                    &claims_json.replacen('{', r#"{"exp":99999999999,"#, 1),
                ),
                |e| matches!(e, Claims(_)),
            ),
            (
                "truncated signature",
                good[..good.len() - 1].to_string(),
                |e| matches!(e, Malformed(_)),
            ),
            ("truncated to two parts", format!("{head}.{payload}"), |e| {
                matches!(e, Malformed(_))
            }),
            ("one part", head.to_string(), |e| matches!(e, Malformed(_))),
            ("four parts", format!("{good}.x"), |e| {
                matches!(e, Malformed(_))
            }),
            ("empty", String::new(), |e| matches!(e, Malformed(_))),
            ("empty payload", format!("{head}..{sig}"), |e| {
                matches!(e, Malformed(_))
            }),
            ("empty header", format!(".{payload}.{sig}"), |e| {
                matches!(e, Malformed(_))
            }),
            ("padded signature", format!("{good}="), |e| {
                matches!(e, Malformed(_))
            }),
            (
                "bad base64 in signature",
                format!("{head}.{payload}.{}", "*".repeat(43)),
                |e| *e == Base64("signature"),
            ),
            (
                "non-canonical signature (stray bits)",
                format!("{head}.{payload}.{}{}", &sig[..42], stray(&sig[42..])),
                |e| *e == Base64("signature"),
            ),
            (
                "bad base64 in header",
                format!("e$J.{payload}.{sig}"),
                |e| *e == Base64("header"),
            ),
            (
                "standard base64 alphabet",
                format!("{head}.{payload}+.{sig}"),
                |e| {
                    // The signature covers the changed payload text, so it fails first.
                    *e == BadSignature
                },
            ),
            (
                "bad base64 in a signed payload",
                forge_raw(&k, head, "e30+"),
                |e| *e == Base64("claims"),
            ),
            (
                "oversized",
                format!("{head}.{}.{sig}", "A".repeat(MAX_TOKEN_LEN)),
                |e| matches!(e, TooLong { .. }),
            ),
            (
                "huge header",
                format!("{}.{payload}.{sig}", "A".repeat(MAX_HEADER_B64 + 1)),
                |e| matches!(e, Malformed(_)),
            ),
        ];
        for (what, token, ok) in cases {
            let err = verify(&k, &token, NOW).expect_err(what);
            assert!(ok(&err), "{what}: {err:?}");
            // Every refusal has a message a client can read.
            assert!(!err.to_string().is_empty());
        }
    }

    /// Whether a refusal is the expected one.
    type ErrorCheck = fn(&JwtError) -> bool;

    /// The last base64 character of a 32-byte value carries 2 stray bits; set one.
    fn stray(last: &str) -> String {
        const ALPHA: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let i = ALPHA.find(last).unwrap();
        ALPHA[(i ^ 1)..=(i ^ 1)].to_string()
    }

    /// A token whose payload part is the raw text `payload_b64`, correctly signed.
    fn forge_raw(key: &JwtKey, head: &str, payload_b64: &str) -> String {
        let input = format!("{head}.{payload_b64}");
        let tag = key.mac_of(input.as_bytes()).finalize().into_bytes();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    #[test]
    fn other_well_formed_headers_are_accepted() {
        let k = key();
        let c = claims();
        let json = serde_json::to_string(&c).unwrap();
        for h in [
            r#"{"alg":"HS256"}"#,
            r#"{"typ":"jwt","alg":"HS256"}"#,
            r#"{"alg":"HS256","kid":"x"}"#,
        ] {
            assert_eq!(verify(&k, &forge(&k, h, &json), NOW).unwrap(), c, "{h}");
        }
        // The zero-padded key block is the same HMAC key as the 32 bytes themselves.
        let mut mac = <HmacSha256 as hmac::Mac>::new_from_slice(&[7u8; 32]).unwrap();
        let t = sign(&k, &c);
        let (input, sig) = t.rsplit_once('.').unwrap();
        mac.update(input.as_bytes());
        assert_eq!(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()), sig);
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt.key");
        let a = JwtKey::load_or_create(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 43);
        // The same key comes back: a token signed with the first verifies with the second.
        let b = JwtKey::load_or_create(&path).unwrap();
        let t = sign(&a, &claims());
        assert!(verify(&b, &t, NOW).is_ok());
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("jwt.key")]);
    }

    #[test]
    fn concurrent_creators_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt.key");
        let keys: Vec<JwtKey> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| JwtKey::load_or_create(&path).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let t = sign(&keys[0], &claims());
        for k in &keys {
            assert!(verify(k, &t, NOW).is_ok());
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_key_files_are_errors_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cases: &[&[u8]] = &[b"", b"short", b"!!!!", &[b'A'; 2000], b"AAAA\n"];
        for (i, content) in cases.iter().enumerate() {
            let path = dir.path().join(format!("k{i}"));
            fs::write(&path, content).unwrap();
            let err = JwtKey::load_or_create(&path).unwrap_err();
            assert!(
                matches!(err, KeyError::Corrupt { .. }),
                "{content:?}: {err}"
            );
            assert_eq!(&fs::read(&path).unwrap(), content);
        }
        // A directory in the key's place.
        let err = JwtKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::Corrupt { .. }), "{err}");
        // A missing parent directory is an I/O error.
        let err = JwtKey::load_or_create(&dir.path().join("nope/jwt.key")).unwrap_err();
        assert!(matches!(err, KeyError::Io { .. }), "{err}");
    }

    #[test]
    fn key_file_written_by_hand_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt.key");
        fs::write(
            &path,
            format!("  {}\n\n", URL_SAFE_NO_PAD.encode([7u8; 32])),
        )
        .unwrap();
        let k = JwtKey::load_or_create(&path).unwrap();
        let t = sign(&key(), &claims());
        assert!(verify(&k, &t, NOW).is_ok());
        assert_eq!(format!("{k:?}"), "JwtKey(..)");
    }

    #[test]
    fn refresh_tokens() {
        let (a, ha) = new_refresh_token().unwrap();
        let (b, hb) = new_refresh_token().unwrap();
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(ha, refresh_token_sha256(&a));
        // A refresh token is not an access token.
        assert!(verify(&key(), &a, NOW).is_err());
    }
}
