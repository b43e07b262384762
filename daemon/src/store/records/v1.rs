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
//! Blob and token records are still at version 1 ([`super::BLOB_VERSION`],
//! [`super::TOKEN_VERSION`]): their current structs are their version-1 layout, so they
//! have no frozen copy here yet. The day one of them changes, its current struct is
//! copied here first, unchanged, as `BlobRecordV1` / `TokenRecordV1`.

use serde::{Deserialize, Serialize};

use super::{uuid_serde, Kind, ObjectRecord, Source, State};
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

/// The version-1 encoder, kept for tests that build stores of the old layout (the
/// daemon itself never writes version 1 again).
#[cfg(test)]
pub fn encode_object_v1(rec: &ObjectRecordV1) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(&postcard::to_stdvec(rec).expect("a v1 record always encodes"));
    out
}
