//! Numbered pages of one user's objects of one namespace, newest first, with the
//! total: what APIs with `page=&per_page=` pagination (Media Vault) need.
//!
//! - The total is the owner's object count in the namespace, a counter the writer
//!   keeps in the transaction of every change (`owner_ns_counts`, schema version 5):
//!   one read, whatever the count. It counts objects that expired but were not swept
//!   yet (the sweeper removes them within its interval).
//! - A page walks the owner's creation-order index (`owner_time`) from the newest
//!   and skips `offset` objects of the namespace: O(offset + limit) records, never
//!   the whole collection for the first pages; a page at or past the total answers at
//!   once without walking.
//! - Search keeps the objects a predicate accepts and counts every match (the total
//!   of a search is a walk by nature); it looks at the newest [`MAX_SEARCH_SCAN`]
//!   objects of the owner at most, so a request's work stays bounded.
//! - Only the caller's own objects (admins too: these are "my items" listings), with
//!   expired ones left out and records passed through `shown_to`.

use super::access::Caller;
use super::error::{CoreError, CoreResult};
use super::expiry::is_expired;
use super::Local;
use crate::store::{ObjectId, ObjectRecord};
use crate::util::time::now_ms;

/// Most objects one search looks at.
pub const MAX_SEARCH_SCAN: usize = 100_000;
/// Records read per index page.
const CHUNK: usize = 256;

/// A numbered page and the total it belongs to.
#[derive(Clone, Debug, Default)]
pub struct OwnedPage {
    pub objects: Vec<ObjectRecord>,
    pub total: u64,
}

impl Local {
    fn owner_of_caller(caller: &Caller) -> CoreResult<&str> {
        caller
            .user()
            .ok_or_else(|| CoreError::unauthorized("listing your objects needs a sign-in"))
    }

    /// Walk `owner`'s live objects of `ns`, newest first, until `visit` says stop or
    /// `max` objects (of any namespace) were read.
    fn walk_owned(
        &self,
        owner: &str,
        ns: &str,
        max: usize,
        mut visit: impl FnMut(ObjectRecord) -> bool,
    ) -> CoreResult<()> {
        let now = now_ms();
        let mut after: Option<ObjectId> = None;
        let mut read = 0usize;
        loop {
            let page = self.store.list_owner_by_time(owner, true, after, CHUNK)?;
            for rec in page.objects {
                read += 1;
                if rec.namespace != ns || is_expired(&rec, now) {
                    continue;
                }
                if !visit(rec) {
                    return Ok(());
                }
            }
            match page.next {
                Some(n) if read < max => after = Some(n),
                _ => return Ok(()),
            }
        }
    }

    /// The caller's objects of `ns`, newest first: `limit` of them after skipping
    /// `offset`, and the total.
    pub fn owned_page(
        &self,
        caller: &Caller,
        ns: &str,
        offset: u64,
        limit: usize,
    ) -> CoreResult<OwnedPage> {
        let owner = Self::owner_of_caller(caller)?;
        let total = self.store.count_owner_namespace(owner, ns)?;
        let mut objects = Vec::new();
        if offset >= total || limit == 0 {
            return Ok(OwnedPage { objects, total });
        }
        let mut skipped = 0u64;
        self.walk_owned(owner, ns, usize::MAX, |rec| {
            if skipped < offset {
                skipped += 1;
                return true;
            }
            objects.push(self.shown_to(caller, rec));
            objects.len() < limit
        })?;
        Ok(OwnedPage { objects, total })
    }

    /// The caller's objects of `ns` that `keep` accepts, newest first: `limit` of them
    /// after skipping `offset`, and how many match in all.
    pub fn search_owned(
        &self,
        caller: &Caller,
        ns: &str,
        keep: &dyn Fn(&ObjectRecord) -> bool,
        offset: u64,
        limit: usize,
    ) -> CoreResult<OwnedPage> {
        let owner = Self::owner_of_caller(caller)?;
        let mut objects = Vec::new();
        let mut total = 0u64;
        self.walk_owned(owner, ns, MAX_SEARCH_SCAN, |rec| {
            if keep(&rec) {
                if total >= offset && objects.len() < limit {
                    objects.push(self.shown_to(caller, rec));
                }
                total += 1;
            }
            true
        })?;
        Ok(OwnedPage { objects, total })
    }
}
