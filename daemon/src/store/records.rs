//! The records kept in LMDB and their byte encoding.
//!
//! Every value is one version byte followed by the `postcard` encoding of the record
//! (compact, no field names, deterministic). The version byte is what lets a later
//! ringbox change a record's shape: it keeps the old struct around to decode version 1
//! and writes version 2. A value whose version byte is unknown is refused with an error
//! that says the data was written by a newer ringbox, never guessed at.
//!
//! What this module deliberately does not do: validate records (the writer does that
//! before mutating) or know about keys (see `keys.rs`).

use serde::{Deserialize, Serialize};

use super::{ObjectId, Sha256, StoreError};

/// The version byte written in front of every record this build writes.
pub const RECORD_VERSION: u8 = 1;

/// What an object holds: bytes in a blob, or a short text kept inline in its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    File,
    Text,
}

/// A file object's content state. Text objects are always `Stored`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Content present (`sha256` is set and its blob is counted).
    Stored,
    /// Created without content yet (`sha256` is `None`).
    Pending,
    /// The blob file vanished; the record keeps its `sha256` (and its blob reference) so
    /// re-uploading the same bytes heals the file, and listings show "lost".
    Lost,
}

/// One object (the seeds call it item, file, media).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectRecord {
    #[serde(with = "uuid_serde")]
    pub id: ObjectId,
    pub kind: Kind,
    pub name: String,
    pub namespace: String,
    pub mime_type: String,
    pub size: u64,
    pub sha256: Option<Sha256>,
    pub state: State,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// Unix milliseconds.
    pub updated_at_ms: i64,
    pub tags: Vec<String>,
    /// A JSON object, stored as text (`"{}"` when empty).
    pub metadata_json: String,
    /// Text objects only.
    pub content: Option<String>,
    /// Seam for users (`None` for now = admin).
    pub owner: Option<String>,
    /// Seam for TTL.
    pub expires_at_ms: Option<i64>,
}

/// One managed blob: `blobs/ab/<sha256hex>`, shared by every file object with that hash.
/// `refcount` is the number of file records whose `sha256` names it (stored and lost
/// alike); the writer deletes the record and the file when it reaches zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub size: u64,
    pub refcount: u64,
    pub created_at_ms: i64,
}

/// A user's role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Admin,
    User,
}

/// Who a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub role: Role,
}

/// An API token, keyed in LMDB by the SHA-256 of the token text (the token itself is
/// never stored, so a copy of the metadata does not leak credentials).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub user: String,
    pub role: Role,
    /// Free text for operators ("admin token created at first start", "ci uploader").
    pub label: String,
    pub created_at_ms: i64,
    /// `None` = does not expire.
    pub expires_at_ms: Option<i64>,
}

impl TokenRecord {
    pub fn principal(&self) -> Principal {
        Principal {
            user: self.user.clone(),
            role: self.role.clone(),
        }
    }

    /// Whether the token is still valid at `now_ms`.
    pub fn is_valid_at(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_none_or(|t| now_ms < t)
    }
}

pub fn encode_object(rec: &ObjectRecord) -> Result<Vec<u8>, StoreError> {
    encode("object", rec)
}

pub fn decode_object(bytes: &[u8]) -> Result<ObjectRecord, StoreError> {
    decode("object", bytes)
}

pub fn encode_blob(rec: &BlobRecord) -> Result<Vec<u8>, StoreError> {
    encode("blob", rec)
}

pub fn decode_blob(bytes: &[u8]) -> Result<BlobRecord, StoreError> {
    decode("blob", bytes)
}

pub fn encode_token(rec: &TokenRecord) -> Result<Vec<u8>, StoreError> {
    encode("token", rec)
}

pub fn decode_token(bytes: &[u8]) -> Result<TokenRecord, StoreError> {
    decode("token", bytes)
}

fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(128);
    out.push(RECORD_VERSION);
    postcard::to_extend(value, out)
        .map_err(|e| StoreError::Lmdb(format!("cannot encode {what} record: {e}")))
}

fn decode<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, rest)) => postcard::from_bytes(rest)
            .map_err(|e| StoreError::Lmdb(format!("corrupt {what} record: {e}"))),
        Some((v, _)) => Err(StoreError::Lmdb(format!(
            "{what} record has format version {v}, this ringbox reads version \
             {RECORD_VERSION}; it was written by a newer ringbox"
        ))),
        None => Err(StoreError::Lmdb(format!(
            "corrupt {what} record: empty value"
        ))),
    }
}

/// `uuid` is built without its `serde` feature, so the id is (de)serialized here:
/// 16 raw bytes in binary formats (postcard), the hyphenated string in JSON.
mod uuid_serde {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use uuid::Uuid;

    pub fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(&id.hyphenated())
        } else {
            id.as_bytes().serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Uuid::parse_str(&s).map_err(D::Error::custom)
        } else {
            <[u8; 16]>::deserialize(d).map(Uuid::from_bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ObjectRecord {
        ObjectRecord {
            id: uuid::Uuid::now_v7(),
            kind: Kind::File,
            name: "photo.jpg".into(),
            namespace: "default".into(),
            mime_type: "image/jpeg".into(),
            size: 1234,
            sha256: Some([7; 32]),
            state: State::Stored,
            created_at_ms: 1_700_000_000_000,
            updated_at_ms: 1_700_000_000_001,
            tags: vec!["a".into(), "b".into()],
            metadata_json: r#"{"k":1}"#.into(),
            content: None,
            owner: None,
            expires_at_ms: Some(-5),
        }
    }

    #[test]
    fn object_roundtrip() {
        let rec = sample();
        let bytes = encode_object(&rec).unwrap();
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(decode_object(&bytes).unwrap(), rec);
    }

    #[test]
    fn object_json_uses_hyphenated_id() {
        let rec = sample();
        let json = serde_json::to_string(&rec).unwrap();
        assert!(json.contains(&rec.id.hyphenated().to_string()));
        let back: ObjectRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn blob_and_token_roundtrip() {
        let b = BlobRecord {
            size: 9,
            refcount: 3,
            created_at_ms: 42,
        };
        assert_eq!(decode_blob(&encode_blob(&b).unwrap()).unwrap(), b);
        let t = TokenRecord {
            user: "admin".into(),
            role: Role::Admin,
            label: "x".into(),
            created_at_ms: 1,
            expires_at_ms: Some(10),
        };
        assert_eq!(decode_token(&encode_token(&t).unwrap()).unwrap(), t);
        assert!(t.is_valid_at(9));
        assert!(!t.is_valid_at(10));
    }

    #[test]
    fn unknown_version_and_garbage_are_errors() {
        let mut bytes = encode_object(&sample()).unwrap();
        bytes[0] = 9;
        let err = decode_object(&bytes).unwrap_err().to_string();
        assert!(err.contains("newer ringbox"), "{err}");
        assert!(decode_object(&[]).is_err());
        assert!(decode_object(&[RECORD_VERSION, 0xff, 0xff]).is_err());
        assert!(decode_blob(&[RECORD_VERSION]).is_err());
    }
}
