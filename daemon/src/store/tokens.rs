//! API tokens: generation, the admin token written at first open, and constant-time
//! comparison.
//!
//! A token is 32 random bytes from the OS (`getrandom`), shown to people as base64url
//! without padding (43 characters). Only SHA-256(token text) is stored, as the key of
//! the tokens database, so the metadata never holds a usable credential. A token has
//! 256 bits of entropy, so a plain (unsalted, fast) hash is enough: there is nothing to
//! brute-force.
//!
//! The admin token is created once, at the first open of a data directory, in this
//! order: write `<data>/tmp/admin.token.<uuid>` (O_EXCL, mode 0600), fsync it, rename it
//! to `<data>/admin.token`, fsync the data directory, and only then commit its hash
//! (and a "created" marker) to LMDB. A crash before the commit means the next open
//! creates a new token and replaces the file; a crash after it leaves a valid pair.
//! The other order could leave a hash in LMDB whose token no file holds.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use heed::{Env, WithoutTls};
use sha2::Digest as _;

use super::blobs::{fsync_dir, remove_file_quiet, Layout};
use super::records::{encode_token, Role, TokenRecord};
use super::{io_context, Dbs, Sha256, StoreError, META_ADMIN_TOKEN};
use crate::util::time::now_ms;

/// The user name of the built-in administrator.
pub const ADMIN_USER: &str = "admin";

/// SHA-256 of a token as presented by a client; the key of the tokens database.
pub fn token_sha256(token: &[u8]) -> Sha256 {
    sha2::Sha256::digest(token).into()
}

/// A new random token (base64url, no padding) and its SHA-256.
pub fn generate_token() -> Result<(String, Sha256), StoreError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| {
        StoreError::Io(std::io::Error::other(format!(
            "cannot read random bytes from the operating system: {e}"
        )))
    })?;
    let token = URL_SAFE_NO_PAD.encode(raw);
    let digest = token_sha256(token.as_bytes());
    Ok((token, digest))
}

/// Equality of two byte strings in time that depends only on their lengths (the
/// lengths are not secret: both are SHA-256 digests here).
#[allow(dead_code)] // part of the module's API; not every caller uses it yet
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimizer from turning the fold into an early-exit compare.
    std::hint::black_box(diff) == 0
}

/// Creates the admin token unless this data directory already has one. Returns `true`
/// when it created it.
pub(crate) fn ensure_admin_token(
    env: &Env<WithoutTls>,
    dbs: &Dbs,
    layout: &Layout,
) -> Result<bool, StoreError> {
    {
        let rtxn = env.read_txn()?;
        if dbs.meta.get(&rtxn, META_ADMIN_TOKEN)?.is_some() {
            return Ok(false);
        }
    }
    let (token, digest) = generate_token()?;
    write_token_file(layout, &token)?;
    let now = now_ms();
    let rec = TokenRecord {
        user: ADMIN_USER.into(),
        role: Role::Admin,
        label: "admin token created at first start".into(),
        created_at_ms: now,
        expires_at_ms: None,
        id: new_token_id()?,
        last_used_ms: None,
    };
    let mut wtxn = env.write_txn()?;
    dbs.tokens.put(&mut wtxn, &digest, &encode_token(&rec)?)?;
    dbs.user_tokens.put(
        &mut wtxn,
        &super::keys::user_token_key(ADMIN_USER, &rec.id)?,
        &digest,
    )?;
    dbs.meta.put(&mut wtxn, META_ADMIN_TOKEN, &digest)?;
    ensure_admin_user(dbs, &mut wtxn, now)?;
    wtxn.commit()?;
    tracing::info!(path = %layout.admin_token_path().display(), "created the admin token");
    Ok(true)
}

/// A random public id for a token.
pub fn new_token_id() -> Result<[u8; 16], StoreError> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| {
        StoreError::Io(std::io::Error::other(format!(
            "cannot read random bytes from the operating system: {e}"
        )))
    })?;
    Ok(id)
}

/// Creates the built-in administrator's user record (id and username `admin`, no
/// password: it signs in with the admin token until someone sets one) unless it exists.
pub(crate) fn ensure_admin_user(
    dbs: &Dbs,
    wtxn: &mut heed::RwTxn,
    now: i64,
) -> Result<(), StoreError> {
    if dbs.users.get(wtxn, ADMIN_USER.as_bytes())?.is_some() {
        return Ok(());
    }
    let user = super::records::UserRecord {
        id: ADMIN_USER.into(),
        username: ADMIN_USER.into(),
        password_hash: None,
        role: Role::Admin,
        created_at_ms: now,
        display_name: None,
        quota_bytes: None,
        usage_bytes: 0,
        object_count: 0,
    };
    dbs.users.put(
        wtxn,
        ADMIN_USER.as_bytes(),
        &super::records::encode_user(&user)?,
    )?;
    dbs.usernames.put(
        wtxn,
        &super::keys::username_key(ADMIN_USER),
        ADMIN_USER.as_bytes(),
    )?;
    Ok(())
}

fn write_token_file(layout: &Layout, token: &str) -> Result<(), StoreError> {
    let dest = layout.admin_token_path();
    let tmp = layout
        .tmp_dir()
        .join(format!("admin.token.{}", uuid::Uuid::now_v7().simple()));
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io_context(e, format!("cannot create {}", tmp.display())))?;
        f.write_all(token.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| io_context(e, format!("cannot write {}", tmp.display())))?;
        fs::rename(&tmp, &dest)
            .map_err(|e| io_context(e, format!("cannot create {}", dest.display())))?;
        fsync_dir(layout.root())
            .map_err(|e| io_context(e, format!("cannot fsync {}", layout.root().display())))
    })();
    if res.is_err() {
        let _ = remove_file_quiet(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_cases() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(&[0u8; 32], &[1u8; 32]));
    }

    #[test]
    fn generated_tokens_are_distinct_base64url() {
        let (a, ha) = generate_token().unwrap();
        let (b, _) = generate_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(ha, token_sha256(a.as_bytes()));
    }
}
