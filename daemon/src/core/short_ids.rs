//! Short ids: random, unique, URL-safe names of objects that a dialect hands out as
//! file ids (pyBlobServer's 8-character `/s/{file_id}`), and reading an object through
//! one ("a link").
//!
//! - An id is `len` characters of `[A-Za-z0-9_-]` (6 random bits each: 8 characters
//!   are 48 bits, 2.8e14 ids), from the operating system's random source. It is
//!   stored as the alias `<scheme>:<id>` of the object, so the store's alias index
//!   keeps it unique and finds it with one lookup.
//! - Collisions: a drawn id is checked against the alias index before the create is
//!   submitted, and another is drawn while it is taken (up to [`MAX_TRIES`] times).
//!   The writer checks again inside its transaction, so two objects never share an
//!   id. An upload that loses that last race (two concurrent uploads drawing the same
//!   id within one commit: about n²/2^49 for n concurrent uploads with 8 characters)
//!   is refused with 409 `short_id_taken` instead of being retried, because its temp
//!   blob went with the refused command; the client uploads again.
//! - Lengths are bounded to [`MIN_LEN`]..=[`MAX_LEN`]: shorter ids are guessable (with
//!   links that need no token, a guess is a download), longer ones gain nothing.
//! - Links: the objects of an alias scheme listed in [`ShortLinks::public_schemes`]
//!   may be read by anyone who presents the id (pyBlobServer's
//!   `--pyblob-public-links`); for other schemes the core's read rule applies (owner,
//!   admin, anonymous mode). Expired objects are not found either way.

use std::rc::Rc;
use std::time::Duration;

use super::access::Caller;
use super::error::{CoreError, CoreResult, ErrorKind};
use super::expiry::is_expired;
use super::hot_cache::HotEntry;
use super::upload::{NewObject, TempBlob};
use super::Local;
use crate::store::ObjectRecord;
use crate::util::time::now_ms;

/// The characters of a short id (the URL-safe base64 alphabet: 6 bits each).
pub const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// The shortest id accepted as a setting (24 bits).
pub const MIN_LEN: usize = 4;
/// The longest id accepted as a setting, and the longest looked up.
pub const MAX_LEN: usize = 32;
/// pyBlobServer's `DEFAULT_SHORT_PATH_LENGTH`.
pub const DEFAULT_LEN: usize = 8;
/// pyBlobServer's "not downloaded for 90 days".
pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_secs(90 * 86_400);
/// Draws before giving up: with ids at least [`MIN_LEN`] long, 16 taken draws in a
/// row mean the id space is nearly full, not bad luck.
const MAX_TRIES: usize = 16;

/// Settings of short-id links.
#[derive(Clone, Debug)]
pub struct ShortLinks {
    /// Characters of a new id (`--pyblob-id-length`).
    pub id_len: usize,
    /// Alias schemes whose objects anyone holding the id may read
    /// (`--pyblob-public-links` adds pyBlobServer's).
    pub public_schemes: Vec<String>,
    /// How long without a download makes an object "expired" for a clean-up the owner
    /// asks for (`--pyblob-expire-after`; pyBlobServer's `delete_all?function=expired`).
    pub idle_after: Duration,
}

impl Default for ShortLinks {
    fn default() -> Self {
        ShortLinks {
            id_len: DEFAULT_LEN,
            public_schemes: Vec::new(),
            idle_after: DEFAULT_IDLE_AFTER,
        }
    }
}

/// A random id of `len` characters of [`ALPHABET`].
pub fn random_id(len: usize) -> CoreResult<String> {
    let mut raw = vec![0u8; len];
    getrandom::fill(&mut raw).map_err(|e| {
        CoreError::internal(format!(
            "cannot read random bytes from the operating system: {e}"
        ))
    })?;
    // 64 characters: the low 6 bits of each byte pick one without bias.
    Ok(raw
        .iter()
        .map(|b| ALPHABET[usize::from(b & 63)] as char)
        .collect())
}

/// Whether `s` could be a short id (1 to [`MAX_LEN`] characters of [`ALPHABET`]):
/// anything else names no object and needs no lookup.
pub fn is_short_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_LEN && s.bytes().all(|b| ALPHABET.contains(&b))
}

/// 409 for an upload that lost the race for its id.
fn id_taken() -> CoreError {
    CoreError::new(
        ErrorKind::Conflict,
        "short_id_taken",
        "another upload took the same file id at the same moment; upload again",
    )
}

impl Local {
    /// An id not yet held by an object under `scheme`, of the configured length.
    pub fn free_short_id(&self, scheme: &str) -> CoreResult<String> {
        let len = self.settings.short_links.id_len.clamp(MIN_LEN, MAX_LEN);
        for _ in 0..MAX_TRIES {
            let id = random_id(len)?;
            if self
                .store
                .get_by_alias(&format!("{scheme}:{id}"))?
                .is_none()
            {
                return Ok(id);
            }
        }
        Err(CoreError::new(
            ErrorKind::Busy,
            "short_ids_exhausted",
            format!(
                "no free file id of {len} characters was found in {MAX_TRIES} draws; raise the id length"
            ),
        ))
    }

    /// A file object from a finished temp blob (as [`Local::create_file`]) that also
    /// gets a fresh short id under `scheme`; returns the record and the id.
    pub async fn create_file_with_short_id(
        &self,
        caller: &Caller,
        mut new: NewObject,
        blob: TempBlob,
        claimed_type: Option<&str>,
        scheme: &str,
    ) -> CoreResult<(ObjectRecord, String)> {
        let id = self.free_short_id(scheme)?;
        new.aliases.push(format!("{scheme}:{id}"));
        // No unique name is asked for, so a conflict can only be the id.
        let unique_name = new.unique_name;
        let rec = self
            .create_file(caller, new, blob, claimed_type)
            .await
            .map_err(|e| match e.kind {
                ErrorKind::Conflict if !unique_name => id_taken(),
                _ => e,
            })?;
        Ok((rec, id))
    }

    /// Whether the objects of alias `scheme` are public links.
    pub fn is_public_scheme(&self, scheme: &str) -> bool {
        self.settings
            .short_links
            .public_schemes
            .iter()
            .any(|s| s == scheme)
    }

    /// The record of the object with short id `id` under `scheme`, as a link reader
    /// may see it: anyone for a public scheme, else as `caller` may read it.
    /// `NotFound` for an id of any other shape, an unknown or expired one.
    pub fn object_by_link(
        &self,
        caller: &Caller,
        scheme: &str,
        id: &str,
    ) -> CoreResult<ObjectRecord> {
        if !is_short_id(id) {
            return Err(CoreError::not_found("the file"));
        }
        let alias = format!("{scheme}:{id}");
        if !self.is_public_scheme(scheme) {
            return self.object_by_alias(caller, &alias);
        }
        match self.store.get_by_alias(&alias)? {
            Some(rec) if !is_expired(&rec, now_ms()) => Ok(self.shown_to(caller, rec)),
            _ => Err(CoreError::not_found("the file")),
        }
    }

    /// The content of the object with short id `id` under `scheme`, under the rules
    /// of [`Local::object_by_link`] (through the worker's hot cache).
    pub fn content_by_link(
        &self,
        caller: &Caller,
        scheme: &str,
        id: &str,
    ) -> CoreResult<Rc<HotEntry>> {
        if !is_short_id(id) {
            return Err(CoreError::not_found("the file"));
        }
        // Both lookups come from the worker's hot cache: a hot link costs no LMDB read.
        let target = self
            .alias_target(&format!("{scheme}:{id}"))?
            .ok_or_else(|| CoreError::not_found("the file"))?;
        if !self.is_public_scheme(scheme) {
            return self.object_content(caller, target);
        }
        let entry = self.content_entry(target)?;
        if is_expired(&entry.rec, now_ms()) {
            return Err(CoreError::not_found("the file"));
        }
        match &entry.rep {
            None => Err(super::content::pending()),
            Some(_) => Ok(entry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stream::MemoryStream;
    use crate::core::test_support::{user, with_settings};
    use crate::core::Settings;

    #[test]
    fn ids_have_the_alphabet_and_length() {
        for len in [MIN_LEN, DEFAULT_LEN, MAX_LEN] {
            let id = random_id(len).unwrap();
            assert_eq!(id.len(), len);
            assert!(is_short_id(&id), "{id}");
        }
        assert!(!is_short_id(""));
        assert!(!is_short_id("abc/def"));
        assert!(!is_short_id("abc.def"));
        assert!(!is_short_id(&"a".repeat(MAX_LEN + 1)));
    }

    #[test]
    fn links_are_private_unless_their_scheme_is_public() {
        for public in [false, true] {
            let settings = Settings {
                short_links: ShortLinks {
                    public_schemes: if public { vec!["pb".into()] } else { vec![] },
                    ..ShortLinks::default()
                },
                ..Settings::default()
            };
            with_settings(settings, move |svc| async move {
                let alice = user("alice");
                let mut body = MemoryStream::new(b"hello".to_vec(), 2);
                let blob = svc.store_stream(&alice, &mut body).await.unwrap();
                let new = NewObject {
                    namespace: "pyblob".into(),
                    name: "a.txt".into(),
                    ..NewObject::default()
                };
                let (rec, id) = svc
                    .create_file_with_short_id(&alice, new, blob, None, "pb")
                    .await
                    .unwrap();
                assert_eq!(id.len(), DEFAULT_LEN);
                assert_eq!(rec.aliases, vec![format!("pb:{id}")]);
                assert_eq!(svc.object_by_link(&alice, "pb", &id).unwrap().id, rec.id);
                let anon = Caller::anonymous(None);
                assert_eq!(svc.object_by_link(&anon, "pb", &id).is_ok(), public);
                assert_eq!(svc.content_by_link(&anon, "pb", &id).is_ok(), public);
                assert_eq!(svc.content_by_link(&user("bob"), "pb", &id).is_ok(), public);
                assert!(svc.content_by_link(&alice, "pb", &id).is_ok());
                let e = svc.object_by_link(&alice, "pb", "../etc").unwrap_err();
                assert_eq!(e.kind, ErrorKind::NotFound);
                let e = svc.content_by_link(&alice, "pb", "AAAAAAAA").unwrap_err();
                assert_eq!(e.kind, ErrorKind::NotFound);
            });
        }
    }
}
