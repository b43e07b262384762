//! What a user holds, for the dialects whose clients manage "my files" as a whole
//! (pyBlobServer's `/user`, `/list` and `/delete_all`): a user's usage against their
//! quota, the download statistics of an object as of now, and deleting a user's
//! objects of one namespace in bulk (all of them, or those idle since a time).
//!
//! - Usage is the user record's (`usage_bytes`, `object_count`: every object of the
//!   user, in every namespace, kept by the writer in the transaction of each change),
//!   so it is the figure the quota is enforced against. The quota is the user's own or
//!   `--user-quota`.
//! - Download statistics are batched (`core::stats`): the stored counts plus the
//!   downloads noted since the last flush, so a download shows at once. While a flush
//!   is in flight its downloads may be missing from the figure for that moment.
//! - Token rotation (pyBlobServer's `change_token`): a new API token is issued first,
//!   then the old ones are revoked (a failure leaves both working, never none): the
//!   token the caller presented when they rotate their own (a session's JWT is not
//!   an API token and stays), every other API token of the user when an admin rotates
//!   another user's. Revocations reach every worker at once (the revocation epoch).
//! - Bulk deletes walk the caller's own objects of the namespace through the
//!   per-owner index (never anyone else's, admins included), a page at a time; each
//!   page's deletes are queued together (one group commit), each with its
//!   `object.deleted` event and audit record. An object deleted meanwhile by someone
//!   else is skipped. Cost: O(the caller's objects in the namespace).

use serde_json::Value;

use super::access::Caller;
use super::audit::AuditRecord;
use super::error::{CoreError, CoreResult};
use super::identity::CredentialKind;
use super::objects::ListSpec;
use super::users::{token_id_string, IssuedToken};
use super::Local;
use crate::store::{last_access_of, Command, ObjectRecord, Reply, StoreError, UserRecord};

/// Objects per page of a bulk delete (one group commit each).
const DELETE_PAGE: usize = 100;

/// A user's usage.
#[derive(Clone, Debug)]
pub struct Usage {
    pub user: UserRecord,
    /// Bytes stored (every namespace).
    pub bytes: u64,
    /// Objects (every namespace).
    pub objects: u64,
    /// The user's quota (their own, else `--user-quota`); `None` = unlimited.
    pub quota: Option<u64>,
}

impl Usage {
    /// Bytes left under the quota (`None` = unlimited).
    pub fn left(&self) -> Option<u64> {
        self.quota.map(|q| q.saturating_sub(self.bytes))
    }
}

impl Local {
    /// The usage of a user `caller` may see (themself, or anyone for an admin; else
    /// `NotFound`), by id or username.
    pub fn usage(&self, caller: &Caller, id_or_name: &str) -> CoreResult<Usage> {
        let user = self.user_for(caller, id_or_name)?;
        Ok(Usage {
            bytes: user.usage_bytes,
            objects: user.object_count,
            quota: user.quota_bytes.or(self.settings.default_quota),
            user,
        })
    }

    /// Replace the API token of user `id_or_name` (see the module docs); `presented`
    /// is the credential of the request. Returns the user and the new token.
    pub async fn rotate_token(
        &self,
        caller: &Caller,
        id_or_name: &str,
        presented: Option<&CredentialKind>,
        label: &str,
    ) -> CoreResult<(UserRecord, IssuedToken)> {
        let user = self.user_for(caller, id_or_name)?;
        let own = caller.user() == Some(user.id.as_str());
        let for_user = (!own).then_some(user.id.as_str());
        let issued = self.create_token(caller, for_user, label, None).await?;
        let old: Vec<[u8; 16]> = if own {
            match presented {
                Some(CredentialKind::ApiToken(sha)) => self
                    .store
                    .get_token(sha)?
                    .filter(|t| t.user == user.id)
                    .map(|t| vec![t.id])
                    .unwrap_or_default(),
                _ => Vec::new(),
            }
        } else {
            self.list_tokens(caller, for_user)?
                .into_iter()
                .map(|t| t.id)
                .filter(|id| *id != issued.record.id)
                .collect()
        };
        for id in old {
            match self
                .revoke_token(caller, for_user, &token_id_string(&id))
                .await
            {
                // Revoked meanwhile: gone all the same.
                Err(e) if e.kind == super::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        Ok((user, issued))
    }

    /// Downloads of `rec` and its last download (Unix ms), counting those not yet
    /// written to the store.
    pub fn downloads_of(&self, rec: &ObjectRecord) -> (u64, Option<i64>) {
        match self.access.pending_downloads(&rec.id) {
            Some((n, last)) => (
                rec.downloads.saturating_add(n),
                Some(rec.last_access_ms.map_or(last, |t| t.max(last))),
            ),
            None => (rec.downloads, rec.last_access_ms),
        }
    }

    /// Delete the caller's own objects of namespace `ns`: all of them, or with
    /// `idle_since_ms` only those not downloaded since then (counting from the upload
    /// for objects never downloaded). Returns how many were deleted.
    pub async fn delete_owned(
        &self,
        caller: &Caller,
        ns: &str,
        idle_since_ms: Option<i64>,
    ) -> CoreResult<u64> {
        let me = caller
            .user()
            .ok_or_else(|| CoreError::unauthorized("sign in first"))?
            .to_string();
        let mut spec = ListSpec {
            namespace: Some(ns.to_string()),
            owner: Some(me),
            limit: DELETE_PAGE,
            ..ListSpec::default()
        };
        let actor = caller.owner_id();
        let mut deleted = 0u64;
        loop {
            let page = self.list_objects(caller, &spec)?;
            let doomed: Vec<ObjectRecord> = page
                .objects
                .into_iter()
                .filter(|rec| caller.owns(rec))
                .filter(|rec| match idle_since_ms {
                    None => true,
                    Some(cutoff) => self.last_access(rec) <= cutoff,
                })
                .collect();
            let waits: Vec<_> = doomed
                .iter()
                .map(|rec| {
                    self.store
                        .writer()
                        .submit_as(Command::Delete { id: rec.id }, &actor)
                })
                .collect();
            for (rec, wait) in doomed.iter().zip(waits) {
                match wait.await {
                    Ok(Reply::Deleted) => {
                        deleted += 1;
                        let mut r = AuditRecord::object("object.deleted", caller, rec);
                        r.set_detail("mime_type", Value::String(rec.mime_type.clone()));
                        r.set_detail("size", Value::from(rec.size));
                        r.set_detail(
                            "reason",
                            Value::from(if idle_since_ms.is_some() {
                                "not_accessed"
                            } else {
                                "delete_all"
                            }),
                        );
                        self.audit.record_nowait(r);
                    }
                    Ok(other) => {
                        return Err(CoreError::internal(format!(
                            "unexpected writer reply {other:?}"
                        )))
                    }
                    // Deleted meanwhile (by its owner elsewhere, or the sweeper).
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            match page.next_cursor {
                Some(c) => spec.cursor = Some(c),
                None => break,
            }
        }
        Ok(deleted)
    }

    /// When `rec` was last downloaded (or uploaded), counting downloads not yet
    /// written to the store.
    fn last_access(&self, rec: &ObjectRecord) -> i64 {
        let stored = last_access_of(rec);
        self.access
            .pending_access(&rec.id)
            .map_or(stored, |t| t.max(stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stream::MemoryStream;
    use crate::core::test_support::{admin, with_services};
    use crate::core::upload::NewObject;
    use crate::core::users::NewUser;
    use crate::store::{Principal, Role};

    #[test]
    fn usage_and_scoped_bulk_deletes() {
        with_services(|svc| async move {
            let mut callers = Vec::new();
            for name in ["alice", "bobby"] {
                let (u, _) = svc
                    .create_user(
                        &admin(),
                        NewUser {
                            username: name.into(),
                            password: "a long password".into(),
                            role: Role::User,
                            display_name: None,
                            quota_bytes: Some(1000),
                        },
                    )
                    .await
                    .unwrap();
                callers.push(Caller {
                    principal: Some(Principal {
                        user: u.id,
                        role: Role::User,
                    }),
                    ip: None,
                });
            }
            let (alice, bob) = (&callers[0], &callers[1]);
            let mut ids = Vec::new();
            for (who, ns, n) in [
                (alice, "pyblob", 3),
                (alice, "default", 1),
                (bob, "pyblob", 2),
            ] {
                for i in 0..n {
                    let mut body = MemoryStream::new(vec![i as u8; 10], 4);
                    let blob = svc.store_stream(who, &mut body).await.unwrap();
                    let new = NewObject {
                        namespace: ns.into(),
                        name: format!("f{i}"),
                        ..NewObject::default()
                    };
                    ids.push(svc.create_file(who, new, blob, None).await.unwrap());
                }
            }
            let u = svc.usage(alice, "alice").unwrap();
            assert_eq!(
                (u.bytes, u.objects, u.quota, u.left()),
                (40, 4, Some(1000), Some(960))
            );
            assert_eq!(
                svc.usage(bob, "alice").unwrap_err().kind,
                crate::core::ErrorKind::NotFound
            );
            // Downloads not yet flushed count at once.
            svc.access.note_download(ids[0].id, 5);
            assert_eq!(svc.downloads_of(&ids[0]), (1, Some(5)));
            // Idle since before the uploads: nothing is idle.
            assert_eq!(svc.delete_owned(alice, "pyblob", Some(0)).await.unwrap(), 0);
            // Idle since now: all but the one just downloaded... which was noted at 5,
            // long ago, so all three.
            let now = crate::util::time::now_ms();
            assert_eq!(
                svc.delete_owned(alice, "pyblob", Some(now)).await.unwrap(),
                3
            );
            assert_eq!(svc.delete_owned(alice, "pyblob", None).await.unwrap(), 0);
            // Alice's other namespace and Bob's files are untouched.
            assert_eq!(svc.usage(alice, "alice").unwrap().objects, 1);
            assert_eq!(svc.usage(bob, "bobby").unwrap().objects, 2);
            assert_eq!(svc.delete_owned(bob, "pyblob", None).await.unwrap(), 2);
            assert_eq!(svc.usage(bob, "bobby").unwrap().bytes, 0);
        });
    }
}
