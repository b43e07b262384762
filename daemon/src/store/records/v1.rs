//! Record layouts of version 1, frozen: what ringbox wrote before each record type had
//! its own version (every value then carried the version byte 1, and the store's schema
//! version was 1).
//!
//! Nothing here may change, not a field, not its type, not its order: postcard encodes
//! fields by position, so these structs are the only description of bytes already on
//! disk (`tests/fixtures/store-v1-*.tar.gz` hold such bytes). The enums they share with
//! the current layout (`Kind`, `State`) are encoded by variant index, which is why those
//! may only ever grow at the end.
//!
//! Blob records are still at version 1 ([`super::BLOB_VERSION`]): their current struct
//! is their version-1 layout, so it has no frozen copy here yet. Token records moved to
//! version 2 (an id and a last-use time); [`TokenRecordV1`] is their first layout.

use serde::{Deserialize, Serialize};

use super::{uuid_serde, Kind, ObjectRecord, Role, Source, State, TokenRecord};
use crate::store::{ObjectId, Sha256};

/// The object record of layout version 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectRecordV1 {
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

impl From<ObjectRecordV1> for ObjectRecord {
    /// Every version-1 object was a managed blob (or text, or pending) with no media
    /// information, no download statistics and no aliases.
    fn from(v: ObjectRecordV1) -> ObjectRecord {
        ObjectRecord {
            id: v.id,
            kind: v.kind,
            name: v.name,
            namespace: v.namespace,
            mime_type: v.mime_type,
            size: v.size,
            sha256: v.sha256,
            state: v.state,
            created_at_ms: v.created_at_ms,
            updated_at_ms: v.updated_at_ms,
            tags: v.tags,
            metadata_json: v.metadata_json,
            content: v.content,
            owner: v.owner,
            expires_at_ms: v.expires_at_ms,
            source: Source::Managed,
            media: None,
            last_access_ms: None,
            downloads: 0,
            aliases: Vec::new(),
        }
    }
}

/// The token record of layout version 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecordV1 {
    pub user: String,
    pub role: Role,
    pub label: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

impl From<TokenRecordV1> for TokenRecord {
    /// A version-1 token had no id (the migration to schema 3 gives each one) and no
    /// last-use time.
    fn from(v: TokenRecordV1) -> TokenRecord {
        TokenRecord {
            user: v.user,
            role: v.role,
            label: v.label,
            created_at_ms: v.created_at_ms,
            expires_at_ms: v.expires_at_ms,
            id: [0; 16],
            last_used_ms: None,
        }
    }
}

/// The version-1 encoder, kept for tests that build stores of the old layout (the
/// daemon itself never writes version 1 again).
#[cfg(test)]
pub fn encode_object_v1(rec: &ObjectRecordV1) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(&postcard::to_stdvec(rec).expect("a v1 record always encodes"));
    out
}
