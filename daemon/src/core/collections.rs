//! Collections, for every API: named, ordered sets of objects owned by one user
//! (Media Vault's collections, albums).
//!
//! Rules:
//! - Only the owner (and admins) see or change a collection; anyone else is told it
//!   does not exist (404), never 403.
//! - A name is 1-256 characters without control characters; a description at most
//!   4,096 characters.
//! - Only objects the caller may read can be added; any other id is `not_found`, like a
//!   missing object, and nothing of the request is added. Adding a member twice keeps
//!   one membership. A collection holds at most `MAX_MEMBERS` (100,000) objects.
//! - Member pages list the members in the order they were added, skipping (but not
//!   removing) members that expired or that the caller may no longer read.
//! - Deleting an object removes it from every collection in the same transaction (the
//!   writer); deleting a collection never deletes its objects, but deletes its share
//!   links.
//!
//! Listings are range scans of per-owner and per-collection indexes, never scans of
//! all objects or all collections.

use super::access::Caller;
use super::error::{CoreError, CoreResult};
use super::expiry::is_expired;
use super::Local;
use crate::store::{
    CollectionCommand, CollectionRecord, Command, ObjectId, ObjectRecord, Reply, StoreError,
};
use crate::util::time::now_ms;

/// Longest collection name, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4096;
/// Most objects one add request may name.
pub const MAX_ADD: usize = 1000;

/// What a caller asks for when creating a collection.
#[derive(Clone, Debug, Default)]
pub struct NewCollection {
    pub name: String,
    pub description: Option<String>,
}

/// A change to a collection (`None` leaves a field alone; `Some(None)` clears the
/// description).
#[derive(Clone, Debug, Default)]
pub struct CollectionChange {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
}

/// A page of collections.
#[derive(Clone, Debug, Default)]
pub struct CollectionPage {
    pub collections: Vec<CollectionRecord>,
    /// Pass back as `cursor`.
    pub next_cursor: Option<String>,
}

/// A page of a collection's objects.
#[derive(Clone, Debug, Default)]
pub struct MembersPage {
    pub objects: Vec<ObjectRecord>,
    /// Pass back as `cursor`.
    pub next_cursor: Option<String>,
}

fn no_collection() -> CoreError {
    CoreError::not_found("the collection")
}

fn check_name(name: &str) -> CoreResult<String> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(CoreError::invalid_field(
            "name",
            format!(
                "a collection name is 1 to {MAX_NAME_CHARS} characters without control characters"
            ),
        ));
    }
    Ok(name.to_string())
}

fn check_description(d: &str) -> CoreResult<()> {
    if d.chars().count() > MAX_DESCRIPTION_CHARS
        || d.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(CoreError::invalid_field(
            "description",
            format!("a description is at most {MAX_DESCRIPTION_CHARS} characters without control characters (line breaks and tabs are fine)"),
        ));
    }
    Ok(())
}

/// A collection id from a cursor or path as given (`None` when malformed).
fn parse_cursor_id(c: &str) -> CoreResult<ObjectId> {
    uuid::Uuid::try_parse(c).map_err(|_| {
        CoreError::invalid_field(
            "cursor",
            "cursor is malformed; pass back the cursor of the previous page unchanged",
        )
    })
}

fn expect_collection(reply: Reply) -> CoreResult<CollectionRecord> {
    match reply {
        Reply::Collection(c) => Ok(c),
        other => Err(CoreError::internal(format!(
            "unexpected writer reply {other:?}"
        ))),
    }
}

/// A store error of a collection command: `NotFound` is the collection's (or, when
/// adding, an object's: the caller is told the same either way).
fn collection_error(e: StoreError, what: &str) -> CoreError {
    match e {
        StoreError::NotFound => CoreError::not_found(what),
        e => e.into(),
    }
}

impl Local {
    /// The collection `id` if `caller` owns it (or is an admin); else `not_found`.
    pub fn collection_for(&self, caller: &Caller, id: ObjectId) -> CoreResult<CollectionRecord> {
        let rec = self.store.get_collection(&id)?.ok_or_else(no_collection)?;
        if caller.is_admin() || caller.user() == Some(rec.owner.as_str()) {
            Ok(rec)
        } else {
            Err(no_collection())
        }
    }

    /// `POST /v1/collections`: a new collection of the caller.
    pub async fn create_collection(
        &self,
        caller: &Caller,
        new: NewCollection,
    ) -> CoreResult<CollectionRecord> {
        let owner = caller
            .user()
            .ok_or_else(|| CoreError::unauthorized("collections belong to users: sign in first"))?;
        let name = check_name(&new.name)?;
        if let Some(d) = &new.description {
            check_description(d)?;
        }
        let now = now_ms();
        let record = CollectionRecord {
            id: uuid::Uuid::now_v7(),
            owner: owner.to_string(),
            name,
            description: new.description,
            created_at_ms: now,
            updated_at_ms: now,
            member_count: 0,
            next_position: 0,
        };
        let reply = self
            .store
            .writer()
            .submit_as(
                Command::Collection(CollectionCommand::Create { record }),
                owner,
            )
            .await?;
        expect_collection(reply)
    }

    /// `GET /v1/collections`: the caller's collections, newest first (admins may ask
    /// for another user's with `owner`).
    pub fn list_collections(
        &self,
        caller: &Caller,
        owner: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> CoreResult<CollectionPage> {
        let me = caller
            .user()
            .ok_or_else(|| CoreError::unauthorized("collections belong to users: sign in first"))?;
        let owner = match owner {
            Some(o) if o != me && !caller.is_admin() => return Ok(CollectionPage::default()),
            Some(o) => o,
            None => me,
        };
        let after = cursor.map(parse_cursor_id).transpose()?;
        let page = self
            .store
            .owner_collections(owner, true, after, limit.clamp(1, 1000))?;
        Ok(CollectionPage {
            collections: page.items,
            next_cursor: page.next.map(|id| id.to_string()),
        })
    }

    /// `PATCH /v1/collections/{id}`.
    pub async fn change_collection(
        &self,
        caller: &Caller,
        id: ObjectId,
        change: CollectionChange,
    ) -> CoreResult<CollectionRecord> {
        self.collection_for(caller, id)?;
        let name = change.name.as_deref().map(check_name).transpose()?;
        if let Some(Some(d)) = &change.description {
            check_description(d)?;
        }
        let reply = self
            .store
            .writer()
            .submit_as(
                Command::Collection(CollectionCommand::Change {
                    id,
                    name,
                    description: change.description,
                    now_ms: now_ms(),
                }),
                &caller.owner_id(),
            )
            .await
            .map_err(|e| collection_error(e, "the collection"))?;
        expect_collection(reply)
    }

    /// `DELETE /v1/collections/{id}`: the collection and its share links go; its
    /// objects stay.
    pub async fn delete_collection(&self, caller: &Caller, id: ObjectId) -> CoreResult<()> {
        self.collection_for(caller, id)?;
        self.store
            .writer()
            .submit_as(
                Command::Collection(CollectionCommand::Delete { id }),
                &caller.owner_id(),
            )
            .await
            .map_err(|e| collection_error(e, "the collection"))?;
        Ok(())
    }

    /// `POST /v1/collections/{id}/objects`: add objects the caller may read (others,
    /// and expired ones, are `not_found`; nothing is added then).
    pub async fn add_to_collection(
        &self,
        caller: &Caller,
        id: ObjectId,
        objects: Vec<ObjectId>,
    ) -> CoreResult<CollectionRecord> {
        let coll = self.collection_for(caller, id)?;
        if objects.is_empty() {
            return Err(CoreError::invalid_field(
                "object_ids",
                "name at least one object: {\"object_id\": ...} or {\"object_ids\": [...]}",
            ));
        }
        if objects.len() > MAX_ADD {
            return Err(CoreError::invalid_field(
                "object_ids",
                format!("at most {MAX_ADD} objects per request"),
            ));
        }
        for obj in &objects {
            // The same 404 as for a missing object, whatever the reason.
            self.object_for_read(caller, *obj)
                .map_err(|_| CoreError::not_found(&format!("the object {obj}")))?;
        }
        let reply = self
            .store
            .writer()
            .submit_as(
                Command::Collection(CollectionCommand::AddMembers {
                    id: coll.id,
                    objects,
                    now_ms: now_ms(),
                }),
                &caller.owner_id(),
            )
            .await
            .map_err(|e| collection_error(e, "the collection or one of the objects"))?;
        expect_collection(reply)
    }

    /// `DELETE /v1/collections/{id}/objects/{object_id}`: `not_found` if it is not a
    /// member.
    pub async fn remove_from_collection(
        &self,
        caller: &Caller,
        id: ObjectId,
        object: ObjectId,
    ) -> CoreResult<CollectionRecord> {
        self.collection_for(caller, id)?;
        let reply = self
            .store
            .writer()
            .submit_as(
                Command::Collection(CollectionCommand::RemoveMember {
                    id,
                    object,
                    now_ms: now_ms(),
                }),
                &caller.owner_id(),
            )
            .await
            .map_err(|e| collection_error(e, "the object in this collection"))?;
        expect_collection(reply)
    }

    /// `GET /v1/collections/{id}/objects`: a page of members in order.
    pub fn collection_objects(
        &self,
        caller: &Caller,
        id: ObjectId,
        cursor: Option<&str>,
        limit: usize,
    ) -> CoreResult<MembersPage> {
        let coll = self.collection_for(caller, id)?;
        let policy = self.settings.policy;
        self.member_page(&coll, cursor, limit, |rec| policy.may_read(caller, rec))
    }

    /// A page of `coll`'s members that `keep` accepts (expired ones are skipped).
    pub(crate) fn member_page(
        &self,
        coll: &CollectionRecord,
        cursor: Option<&str>,
        limit: usize,
        keep: impl Fn(&ObjectRecord) -> bool,
    ) -> CoreResult<MembersPage> {
        let after = match cursor {
            None | Some("") => None,
            Some(c) => Some(c.parse::<u64>().map_err(|_| {
                CoreError::invalid_field(
                    "cursor",
                    "cursor is malformed; pass back the cursor of the previous page unchanged",
                )
            })?),
        };
        let page = self
            .store
            .collection_members(&coll.id, after, limit.clamp(1, 1000))?;
        let now = now_ms();
        Ok(MembersPage {
            objects: page
                .members
                .into_iter()
                .map(|(_, rec)| rec)
                .filter(|rec| !is_expired(rec, now) && keep(rec))
                .collect(),
            next_cursor: page.next.map(|p| p.to_string()),
        })
    }
}

/// Delete every collection of `owner` (a deleted user), a page at a time; their share
/// links go with them, their objects are the user deletion's.
pub(crate) async fn delete_collections_of(store: crate::store::Store, owner: String) {
    loop {
        let page = match store.owner_collections(&owner, false, None, 100) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(%owner, error = %e, "cannot list a deleted user's collections");
                return;
            }
        };
        if page.items.is_empty() {
            return;
        }
        for c in page.items {
            match store
                .writer()
                .submit(Command::Collection(CollectionCommand::Delete { id: c.id }))
                .await
            {
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => {
                    tracing::error!(%owner, error = %e, "cannot delete a deleted user's collection");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::{admin, user, with_services};
    use crate::core::upload::NewObject;

    #[test]
    fn names_are_checked() {
        assert!(check_name("").is_err());
        assert!(check_name("   ").is_err());
        assert!(check_name(&"x".repeat(257)).is_err());
        assert_eq!(check_name(" Holidays ").unwrap(), "Holidays");
        assert!(check_name(&"é".repeat(256)).is_ok());
        assert!(check_name("a\u{7}b").is_err());
        assert!(check_description("line\nbreak").is_ok());
        assert!(check_description("bell\u{7}").is_err());
    }

    #[test]
    fn membership_rules() {
        with_services(|svc| async move {
            let alice = user("alice");
            let bob = user("bob");
            let new = |name: &str| NewObject {
                namespace: "default".into(),
                name: name.into(),
                ..NewObject::default()
            };
            let a1 = svc
                .create_text(&alice, new("a1"), "one".into())
                .await
                .unwrap();
            let a2 = svc
                .create_text(&alice, new("a2"), "two".into())
                .await
                .unwrap();
            let b1 = svc
                .create_text(&bob, new("b1"), "bob".into())
                .await
                .unwrap();
            let c = svc
                .create_collection(
                    &alice,
                    NewCollection {
                        name: "Holidays".into(),
                        description: None,
                    },
                )
                .await
                .unwrap();
            // Bob neither sees nor changes it.
            assert_eq!(
                svc.collection_for(&bob, c.id).unwrap_err().kind,
                crate::core::ErrorKind::NotFound
            );
            assert!(svc
                .add_to_collection(&bob, c.id, vec![b1.id])
                .await
                .is_err());
            // Alice cannot add Bob's object (404), and then nothing is added.
            let e = svc
                .add_to_collection(&alice, c.id, vec![a1.id, b1.id])
                .await
                .unwrap_err();
            assert_eq!(e.kind, crate::core::ErrorKind::NotFound);
            assert_eq!(svc.collection_for(&alice, c.id).unwrap().member_count, 0);
            // Twice the same: one membership.
            let c2 = svc
                .add_to_collection(&alice, c.id, vec![a2.id, a1.id, a2.id])
                .await
                .unwrap();
            assert_eq!(c2.member_count, 2);
            let c3 = svc
                .add_to_collection(&alice, c.id, vec![a1.id])
                .await
                .unwrap();
            assert_eq!(c3.member_count, 2);
            let page = svc.collection_objects(&alice, c.id, None, 10).unwrap();
            let ids: Vec<_> = page.objects.iter().map(|o| o.id).collect();
            assert_eq!(ids, vec![a2.id, a1.id], "in the order added");
            // Paging.
            let p1 = svc.collection_objects(&alice, c.id, None, 1).unwrap();
            assert_eq!(p1.objects.len(), 1);
            let p2 = svc
                .collection_objects(&alice, c.id, p1.next_cursor.as_deref(), 1)
                .unwrap();
            assert_eq!(p2.objects[0].id, a1.id);
            assert!(p2.next_cursor.is_none());
            // Deleting an object removes it from the collection.
            svc.delete_object(&alice, a2.id).await.unwrap();
            let c4 = svc.collection_for(&alice, c.id).unwrap();
            assert_eq!(c4.member_count, 1);
            assert!(!svc.store.collection_has(&c.id, &a2.id).unwrap());
            // Removing a non-member is 404; removing a member works.
            assert!(svc
                .remove_from_collection(&alice, c.id, b1.id)
                .await
                .is_err());
            let c5 = svc
                .remove_from_collection(&alice, c.id, a1.id)
                .await
                .unwrap();
            assert_eq!(c5.member_count, 0);
            // Admins see it; deleting it leaves the objects.
            svc.add_to_collection(&admin(), c.id, vec![b1.id])
                .await
                .unwrap();
            svc.delete_collection(&alice, c.id).await.unwrap();
            assert!(svc.store.get_collection(&c.id).unwrap().is_none());
            assert!(svc.store.get_object(b1.id).unwrap().is_some());
            assert!(!svc.store.collection_has(&c.id, &b1.id).unwrap());
            let list = svc.list_collections(&alice, None, None, 10).unwrap();
            assert!(list.collections.is_empty());
        });
    }
}
