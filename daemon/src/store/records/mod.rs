//! The records kept in LMDB and their byte encoding.
//!
//! Every value is one version byte followed by the `postcard` encoding of the record
//! (compact, no field names, deterministic). The version byte is the layout version of
//! that record type alone: objects, blobs and tokens each have their own current version
//! ([`OBJECT_VERSION`], [`BLOB_VERSION`], [`TOKEN_VERSION`]), so changing one record's
//! shape never touches the others. This build writes only current versions and decodes
//! every older layout it has ever written: the old structs are kept, frozen, in
//! `v1.rs` (and later `v2.rs`, ...), and converted to the current struct on decode. That
//! is what lets a migration (see `migrate.rs`) rewrite records in small batches while
//! the ones not yet rewritten still read correctly.
//!
//! A value whose version byte is newer than this build knows is refused with an error
//! saying it was "written by a newer ringbox", never guessed at; a value with trailing
//! bytes after its record is corrupt, not silently truncated.
//!
//! Changing a record (the recipe): copy its current struct unchanged into `vN.rs` as
//! `XRecordVN`, bump its `X_VERSION`, change the struct, add the `N =>` arm to its
//! decoder with a `From<XRecordVN>`, and add a migration step that rewrites the records
//! (optional for correctness, since decoding converts; it keeps old layouts from piling
//! up). Enums are encoded by variant index: only append variants, never reorder.
//!
//! What this module deliberately does not do: validate records (the writer does that
//! before mutating) or know about keys (see `keys.rs`).

mod sharing;
mod v1;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ObjectId, Sha256, StoreError};

pub use sharing::{
    decode_collection, decode_share, encode_collection, encode_share, CollectionRecord,
    ShareRecord, ShareTarget,
};
#[cfg(test)]
pub use v1::encode_object_v1;
pub use v1::{ObjectRecordV1, TokenRecordV1};

/// The layout version of object records this build writes (2: `source`, `media`,
/// `last_access_ms`, `downloads`, `aliases` added).
pub const OBJECT_VERSION: u8 = 2;
/// The layout version of blob records this build writes.
pub const BLOB_VERSION: u8 = 1;
/// The layout version of token records this build writes (2: `id`, `last_used_ms`).
pub const TOKEN_VERSION: u8 = 2;
/// The layout version of user records this build writes.
pub const USER_VERSION: u8 = 1;
/// The layout version of session records this build writes.
pub const SESSION_VERSION: u8 = 1;
/// The layout version of event records this build writes.
pub const EVENT_VERSION: u8 = 1;
/// The layout version of webhook and delivery records this build writes.
pub const WEBHOOK_VERSION: u8 = 1;

/// What an object holds: bytes in a blob, or a short text kept inline in its record.
/// (Encoded by variant index in every object layout: append variants only.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    File,
    Text,
}

/// A file object's content state. Text objects are always `Stored`. (Encoded by variant
/// index in every object layout: append variants only.)
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
    /// Unix milliseconds after which the object expires (`None` = never).
    pub expires_at_ms: Option<i64>,
    /// Where the bytes live. Managed = content-addressed file under blobs/ (refcounted);
    /// External = a file indexed in place by a directory scan (never refcounted, never GC'd).
    pub source: Source,
    /// Image metadata, filled after upload.
    pub media: Option<MediaInfo>,
    /// Coarse last download time (Unix milliseconds).
    pub last_access_ms: Option<i64>,
    pub downloads: u64,
    /// Unique secondary names of this object, "scheme:value" (e.g. "s:Ab3x9_Zq" for a
    /// short id, "path:media/images/x.jpg"); each has an entry in the `aliases` database.
    pub aliases: Vec<String>,
}

impl ObjectRecord {
    /// A record with every field empty: nil id, a pending managed file, no name, `"{}"`
    /// metadata. For building records with struct update syntax
    /// (`ObjectRecord { kind, name, ..ObjectRecord::blank() }`).
    pub fn blank() -> ObjectRecord {
        ObjectRecord {
            id: ObjectId::nil(),
            kind: Kind::File,
            name: String::new(),
            namespace: String::new(),
            mime_type: String::new(),
            size: 0,
            sha256: None,
            state: State::Pending,
            created_at_ms: 0,
            updated_at_ms: 0,
            tags: Vec::new(),
            metadata_json: "{}".into(),
            content: None,
            owner: None,
            expires_at_ms: None,
            source: Source::Managed,
            media: None,
            last_access_ms: None,
            downloads: 0,
            aliases: Vec::new(),
        }
    }

    /// A new object with a fresh UUIDv7 id, created and updated at `now_ms`, otherwise
    /// [`ObjectRecord::blank`].
    #[allow(dead_code)] // Store API the daemon does not call yet
    pub fn new(kind: Kind, namespace: &str, name: &str, now_ms: i64) -> ObjectRecord {
        ObjectRecord {
            id: uuid::Uuid::now_v7(),
            kind,
            name: name.into(),
            namespace: namespace.into(),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            ..ObjectRecord::blank()
        }
    }

    /// Whether the bytes are a managed, refcounted blob under `blobs/` (as opposed to a
    /// file indexed in place).
    pub fn is_managed(&self) -> bool {
        self.source == Source::Managed
    }
}

impl Default for ObjectRecord {
    fn default() -> ObjectRecord {
        ObjectRecord::blank()
    }
}

/// Where an object's bytes live.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Source {
    /// A content-addressed file under `blobs/`, refcounted by its `BlobRecord`.
    #[default]
    Managed,
    /// A file indexed in place by a directory scan: never refcounted, never collected,
    /// never moved or removed by the store.
    External(ExternalFile),
}

/// A file indexed in place.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExternalFile {
    /// The scan root, as given by the operator.
    pub root: String,
    /// Absolute path, raw `OsStr` bytes (Linux paths need not be UTF-8).
    pub path: Vec<u8>,
    /// Size and modification time when indexed: a change means the file was edited.
    pub size: u64,
    pub mtime_ns: i64,
}

/// Image metadata extracted after upload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaInfo {
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// EXIF DateTimeOriginal as given (naive local time).
    pub taken_at: Option<String>,
    /// Unix milliseconds, when an offset is known.
    pub taken_at_ms: Option<i64>,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    pub orientation: Option<u16>,
    pub gps: Option<Gps>,
    /// Why extraction or thumbnailing refused this file.
    pub error: Option<String>,
}

/// A position from EXIF GPS tags.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gps {
    pub lat: f64,
    pub lon: f64,
    pub alt: Option<f64>,
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

/// A user's role. (Encoded by variant index: append variants only.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

/// A user. Keyed by `id` (the built-in administrator's id is `admin`; others are
/// UUIDv7 strings); `usernames` maps the lower-cased username to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    /// Argon2id PHC string; `None` = no password set (token-only, e.g. the admin
    /// before anyone set one).
    pub password_hash: Option<String>,
    pub role: Role,
    pub created_at_ms: i64,
    pub display_name: Option<String>,
    /// Overrides the global per-user quota.
    pub quota_bytes: Option<u64>,
    /// Logical bytes of the user's objects (a file stored twice counts twice).
    pub usage_bytes: u64,
    pub object_count: u64,
}

/// One change, in the order changes were committed: `seq` is global and gap-free
/// (assigned by the writer in the transaction of the change itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: u64,
    /// `object.created`, `object.content_set`, `object.updated`, `object.deleted`,
    /// `object.lost`, `user.created`, `user.deleted`, ...
    pub kind: String,
    pub at_ms: i64,
    /// Who made the change: a user id, `anonymous`, or `system`.
    pub actor: String,
    /// Whose thing changed (visibility: a user sees the events of their own things).
    pub owner: Option<String>,
    /// The object, for object events (as it was after the change, or before a delete).
    pub object: Option<EventObject>,
    /// The user (or collection, share) an event is about, for the other kinds.
    pub subject: Option<String>,
    /// What changed, for updates: a JSON object.
    pub changes_json: Option<String>,
}

/// A webhook: events of its owner (of the kinds it names) are POSTed to `url`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    #[serde(with = "uuid_serde")]
    pub id: ObjectId,
    pub owner: String,
    pub url: String,
    /// Event types or families (`object.created`, `object.*`); empty = all.
    pub events: Vec<String>,
    /// The HMAC key (its UTF-8 bytes sign each body).
    pub secret: String,
    /// Which API made it: the payload shape (`native`, `mediavault`, ...).
    pub format: String,
    pub created_at_ms: i64,
    pub enabled: bool,
    /// Given up after failing for too long (re-enable with `enabled: true`).
    pub failing: bool,
    /// The last event sequence number delivered (or skipped as not wanted).
    pub cursor: u64,
    /// Consecutive failed attempts of the current event.
    pub failures: u32,
    /// When the current run of failures began (Unix ms).
    pub failing_since_ms: Option<i64>,
}

/// One delivery attempt of a webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Unique per attempt (`X-Ringbox-Delivery`).
    pub delivery_id: String,
    pub event_seq: u64,
    pub event_type: String,
    pub attempt: u32,
    pub at_ms: i64,
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// The object fields an event carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventObject {
    #[serde(with = "uuid_serde")]
    pub id: ObjectId,
    pub namespace: String,
    pub name: String,
    pub size: u64,
    pub sha256: Option<Sha256>,
    pub mime_type: String,
}

impl EventObject {
    pub fn of(rec: &ObjectRecord) -> EventObject {
        EventObject {
            id: rec.id,
            namespace: rec.namespace.clone(),
            name: rec.name.clone(),
            size: rec.size,
            sha256: rec.sha256,
            mime_type: rec.mime_type.clone(),
        }
    }
}

/// A sign-in session: keyed by the SHA-256 of its refresh token. `access_jti` is the
/// id of the access token issued with it (revoked when the session ends or rotates).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user: String,
    pub access_jti: String,
    /// When the access token expires (Unix ms): its revocation is kept until then.
    pub access_expires_at_ms: i64,
    pub created_at_ms: i64,
    /// When the refresh token expires (Unix ms).
    pub expires_at_ms: i64,
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
    /// The user's id.
    pub user: String,
    /// The role when the token was made (informative: the user record decides).
    pub role: Role,
    /// Free text for operators ("admin token created at first start", "ci uploader").
    pub label: String,
    pub created_at_ms: i64,
    /// `None` = does not expire.
    pub expires_at_ms: Option<i64>,
    /// The token's public id (what `DELETE /v1/tokens/{id}` names).
    pub id: [u8; 16],
    /// Coarse last use (Unix ms), updated in batches.
    pub last_used_ms: Option<i64>,
}

impl TokenRecord {
    #[allow(dead_code)] // part of the module's API; not every caller uses it yet
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
    encode("object", OBJECT_VERSION, rec)
}

/// Decodes an object record of any layout this build knows.
pub fn decode_object(bytes: &[u8]) -> Result<ObjectRecord, StoreError> {
    match split_version("object", OBJECT_VERSION, bytes)? {
        (1, rest) => decode_layout::<ObjectRecordV1>("object", rest).map(ObjectRecord::from),
        (OBJECT_VERSION, rest) => decode_layout("object", rest),
        (v, _) => Err(no_decoder("object", v)),
    }
}

pub fn encode_blob(rec: &BlobRecord) -> Result<Vec<u8>, StoreError> {
    encode("blob", BLOB_VERSION, rec)
}

pub fn decode_blob(bytes: &[u8]) -> Result<BlobRecord, StoreError> {
    match split_version("blob", BLOB_VERSION, bytes)? {
        (BLOB_VERSION, rest) => decode_layout("blob", rest),
        (v, _) => Err(no_decoder("blob", v)),
    }
}

pub fn encode_token(rec: &TokenRecord) -> Result<Vec<u8>, StoreError> {
    encode("token", TOKEN_VERSION, rec)
}

pub fn decode_token(bytes: &[u8]) -> Result<TokenRecord, StoreError> {
    match split_version("token", TOKEN_VERSION, bytes)? {
        (1, rest) => decode_layout::<TokenRecordV1>("token", rest).map(TokenRecord::from),
        (TOKEN_VERSION, rest) => decode_layout("token", rest),
        (v, _) => Err(no_decoder("token", v)),
    }
}

pub fn encode_user(rec: &UserRecord) -> Result<Vec<u8>, StoreError> {
    encode("user", USER_VERSION, rec)
}

pub fn decode_user(bytes: &[u8]) -> Result<UserRecord, StoreError> {
    match split_version("user", USER_VERSION, bytes)? {
        (USER_VERSION, rest) => decode_layout("user", rest),
        (v, _) => Err(no_decoder("user", v)),
    }
}

pub fn encode_event(rec: &EventRecord) -> Result<Vec<u8>, StoreError> {
    encode("event", EVENT_VERSION, rec)
}

pub fn decode_event(bytes: &[u8]) -> Result<EventRecord, StoreError> {
    match split_version("event", EVENT_VERSION, bytes)? {
        (EVENT_VERSION, rest) => decode_layout("event", rest),
        (v, _) => Err(no_decoder("event", v)),
    }
}

pub fn encode_webhook(rec: &WebhookRecord) -> Result<Vec<u8>, StoreError> {
    encode("webhook", WEBHOOK_VERSION, rec)
}

pub fn decode_webhook(bytes: &[u8]) -> Result<WebhookRecord, StoreError> {
    match split_version("webhook", WEBHOOK_VERSION, bytes)? {
        (WEBHOOK_VERSION, rest) => decode_layout("webhook", rest),
        (v, _) => Err(no_decoder("webhook", v)),
    }
}

pub fn encode_delivery(rec: &DeliveryRecord) -> Result<Vec<u8>, StoreError> {
    encode("delivery", WEBHOOK_VERSION, rec)
}

pub fn decode_delivery(bytes: &[u8]) -> Result<DeliveryRecord, StoreError> {
    match split_version("delivery", WEBHOOK_VERSION, bytes)? {
        (WEBHOOK_VERSION, rest) => decode_layout("delivery", rest),
        (v, _) => Err(no_decoder("delivery", v)),
    }
}

pub fn encode_session(rec: &SessionRecord) -> Result<Vec<u8>, StoreError> {
    encode("session", SESSION_VERSION, rec)
}

pub fn decode_session(bytes: &[u8]) -> Result<SessionRecord, StoreError> {
    match split_version("session", SESSION_VERSION, bytes)? {
        (SESSION_VERSION, rest) => decode_layout("session", rest),
        (v, _) => Err(no_decoder("session", v)),
    }
}

/// The layout version byte of a stored value (`None` for an empty value).
pub fn layout_version(bytes: &[u8]) -> Option<u8> {
    bytes.first().copied()
}

fn encode<T: Serialize>(what: &str, version: u8, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(128);
    out.push(version);
    postcard::to_extend(value, out)
        .map_err(|e| StoreError::Lmdb(format!("cannot encode {what} record: {e}")))
}

/// The version byte and the rest; an error for an empty value, version 0 (never
/// written) or a version newer than `current`.
fn split_version<'a>(
    what: &str,
    current: u8,
    bytes: &'a [u8],
) -> Result<(u8, &'a [u8]), StoreError> {
    match bytes.split_first() {
        Some((&v, rest)) if (1..=current).contains(&v) => Ok((v, rest)),
        Some((&v, _)) if v > current => Err(StoreError::Lmdb(format!(
            "{what} record has layout version {v}, this ringbox reads versions up to \
             {current}; it was written by a newer ringbox"
        ))),
        Some((v, _)) => Err(StoreError::Lmdb(format!(
            "corrupt {what} record: layout version {v} was never written"
        ))),
        None => Err(StoreError::Lmdb(format!(
            "corrupt {what} record: empty value"
        ))),
    }
}

/// An older layout whose decoder was forgotten: a bug, caught by the fixture tests.
fn no_decoder(what: &str, v: u8) -> StoreError {
    StoreError::Lmdb(format!(
        "{what} record has layout version {v}, which this ringbox has no decoder for"
    ))
}

/// Decodes one layout, refusing trailing bytes (a value of another layout is not
/// silently half-read).
fn decode_layout<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(StoreError::Lmdb(format!(
            "corrupt {what} record: {} bytes after its end",
            rest.len()
        ))),
        Err(e) => Err(StoreError::Lmdb(format!("corrupt {what} record: {e}"))),
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
            source: Source::External(ExternalFile {
                root: "/srv/photos".into(),
                path: b"/srv/photos/\xff.jpg".to_vec(),
                size: 1234,
                mtime_ns: -1,
            }),
            media: Some(MediaInfo {
                width: Some(4032),
                height: Some(3024),
                taken_at: Some("2024:05:01 10:00:00".into()),
                taken_at_ms: None,
                camera_make: Some("Make".into()),
                camera_model: None,
                orientation: Some(6),
                gps: Some(Gps {
                    lat: 48.5,
                    lon: -2.25,
                    alt: None,
                }),
                error: None,
            }),
            last_access_ms: Some(1_700_000_000_002),
            downloads: 3,
            aliases: vec!["s:Ab3x9_Zq".into(), "path:media/x.jpg".into()],
        }
    }

    fn sample_v1() -> ObjectRecordV1 {
        ObjectRecordV1 {
            id: uuid::Uuid::now_v7(),
            kind: Kind::Text,
            name: "note".into(),
            namespace: "notes".into(),
            mime_type: "text/plain".into(),
            size: 5,
            sha256: None,
            state: State::Stored,
            created_at_ms: 1,
            updated_at_ms: 2,
            tags: vec!["t".into()],
            metadata_json: r#"{"a":[1]}"#.into(),
            content: Some("hello".into()),
            owner: Some("bob".into()),
            expires_at_ms: None,
        }
    }

    #[test]
    fn object_roundtrip() {
        let rec = sample();
        let bytes = encode_object(&rec).unwrap();
        assert_eq!(bytes[0], OBJECT_VERSION);
        assert_eq!(layout_version(&bytes), Some(OBJECT_VERSION));
        assert_eq!(decode_object(&bytes).unwrap(), rec);
        let blank = ObjectRecord::new(Kind::File, "ns", "n", 5);
        assert_eq!(
            decode_object(&encode_object(&blank).unwrap()).unwrap(),
            blank
        );
    }

    #[test]
    fn v1_objects_decode_into_the_current_layout() {
        let old = sample_v1();
        let bytes = encode_object_v1(&old);
        assert_eq!(layout_version(&bytes), Some(1));
        let rec = decode_object(&bytes).unwrap();
        assert_eq!(rec.id, old.id);
        assert_eq!(rec.content.as_deref(), Some("hello"));
        assert_eq!(rec.owner.as_deref(), Some("bob"));
        assert_eq!(rec.metadata_json, old.metadata_json);
        assert_eq!(
            (&rec.source, &rec.media, rec.last_access_ms, rec.downloads),
            (&Source::Managed, &None, None, 0)
        );
        assert!(rec.aliases.is_empty());
        // Re-encoding writes the current layout, which decodes to the same record.
        let again = encode_object(&rec).unwrap();
        assert_eq!(again[0], OBJECT_VERSION);
        assert_eq!(decode_object(&again).unwrap(), rec);
        // A current record read as version 1 has bytes left over: refused, not guessed.
        let mut mislabeled = encode_object(&ObjectRecord::from(old)).unwrap();
        mislabeled[0] = 1;
        assert!(decode_object(&mislabeled).is_err());
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
            id: [7; 16],
            last_used_ms: None,
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
        assert!(err.contains("written by a newer ringbox"), "{err}");
        bytes[0] = 0;
        let err = decode_object(&bytes).unwrap_err().to_string();
        assert!(err.contains("never written"), "{err}");
        let mut blob = encode_blob(&BlobRecord {
            size: 1,
            refcount: 1,
            created_at_ms: 1,
        })
        .unwrap();
        blob[0] = BLOB_VERSION + 1;
        let err = decode_blob(&blob).unwrap_err().to_string();
        assert!(err.contains("written by a newer ringbox"), "{err}");
        assert!(decode_object(&[]).is_err());
        assert!(decode_object(&[OBJECT_VERSION, 0xff, 0xff]).is_err());
        assert!(decode_blob(&[BLOB_VERSION]).is_err());
        let mut trailing = encode_token(&TokenRecord {
            user: "u".into(),
            role: Role::User,
            label: String::new(),
            created_at_ms: 0,
            expires_at_ms: None,
            id: [7; 16],
            last_used_ms: None,
        })
        .unwrap();
        trailing.push(0);
        assert!(decode_token(&trailing)
            .unwrap_err()
            .to_string()
            .contains("after its end"));
    }
}
