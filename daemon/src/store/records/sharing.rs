//! Records of collections and share links (since schema version 4), encoded like every
//! other record: one layout version byte, then postcard (see the parent module).

use serde::{Deserialize, Serialize};

use super::{decode_layout, encode, no_decoder, split_version, uuid_serde};
use crate::store::{ObjectId, Sha256, StoreError};

/// The layout version of collection records this build writes.
pub const COLLECTION_VERSION: u8 = 1;
/// The layout version of share records this build writes.
pub const SHARE_VERSION: u8 = 1;

/// A named, ordered set of objects owned by one user. Its members are kept in the
/// `collection_members` index (not in the record), so a record stays small whatever
/// the collection holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionRecord {
    #[serde(with = "uuid_serde")]
    pub id: ObjectId,
    pub owner: String,
    /// 1-256 characters.
    pub name: String,
    pub description: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Members now (kept in the transaction of every membership change).
    pub member_count: u64,
    /// The position the next member gets (positions only grow, so order is the order
    /// of addition even after removals).
    pub next_position: u64,
}

/// What a share link opens. (Encoded by variant index: append variants only.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShareTarget {
    Object(#[serde(with = "uuid_serde")] ObjectId),
    Collection(#[serde(with = "uuid_serde")] ObjectId),
}

impl ShareTarget {
    /// The id of the object or collection.
    pub fn id(&self) -> ObjectId {
        match self {
            ShareTarget::Object(id) | ShareTarget::Collection(id) => *id,
        }
    }
}

/// A public link to an object or a collection: keyed by its id; the token itself is
/// never stored, only its SHA-256 (the `share_tokens` index maps it to the id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareRecord {
    #[serde(with = "uuid_serde")]
    pub id: ObjectId,
    pub owner: String,
    pub target: ShareTarget,
    pub token_sha256: Sha256,
    pub created_at_ms: i64,
    /// `None` = does not expire.
    pub expires_at_ms: Option<i64>,
    /// `None` = unlimited.
    pub max_downloads: Option<u64>,
    /// Downloads counted so far (written in batches by the access-statistics flush).
    pub downloads: u64,
    /// Argon2id PHC string of the share's password, when it has one.
    pub password_hash: Option<String>,
}

pub fn encode_collection(rec: &CollectionRecord) -> Result<Vec<u8>, StoreError> {
    encode("collection", COLLECTION_VERSION, rec)
}

pub fn decode_collection(bytes: &[u8]) -> Result<CollectionRecord, StoreError> {
    match split_version("collection", COLLECTION_VERSION, bytes)? {
        (COLLECTION_VERSION, rest) => decode_layout("collection", rest),
        (v, _) => Err(no_decoder("collection", v)),
    }
}

pub fn encode_share(rec: &ShareRecord) -> Result<Vec<u8>, StoreError> {
    encode("share", SHARE_VERSION, rec)
}

pub fn decode_share(bytes: &[u8]) -> Result<ShareRecord, StoreError> {
    match split_version("share", SHARE_VERSION, bytes)? {
        (SHARE_VERSION, rest) => decode_layout("share", rest),
        (v, _) => Err(no_decoder("share", v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrips() {
        let c = CollectionRecord {
            id: uuid::Uuid::now_v7(),
            owner: "u".into(),
            name: "Holidays".into(),
            description: Some("2026".into()),
            created_at_ms: 1,
            updated_at_ms: 2,
            member_count: 3,
            next_position: 7,
        };
        assert_eq!(
            decode_collection(&encode_collection(&c).unwrap()).unwrap(),
            c
        );
        let s = ShareRecord {
            id: uuid::Uuid::now_v7(),
            owner: "u".into(),
            target: ShareTarget::Collection(c.id),
            token_sha256: [9; 32],
            created_at_ms: 1,
            expires_at_ms: Some(10),
            max_downloads: Some(2),
            downloads: 1,
            password_hash: None,
        };
        assert_eq!(decode_share(&encode_share(&s).unwrap()).unwrap(), s);
        let mut bytes = encode_share(&s).unwrap();
        bytes[0] = SHARE_VERSION + 1;
        assert!(decode_share(&bytes).is_err());
    }
}
