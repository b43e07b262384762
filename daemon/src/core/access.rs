//! Who is calling, and what they may do to an object: decided here, once, for every
//! API. The HTTP layer only establishes the [`Caller`] (credentials checked by an
//! authenticator of the API's mount) and applies the route's coarse access level; the
//! object-level decision (ownership, role, anonymous mode) is made by the services in
//! this module's terms.
//!
//! Rules:
//! - An admin may read and change everything.
//! - A signed-in user may read and change their own objects (`owner` = their id), and
//!   in addition whatever anonymous callers may.
//! - `--anonymous read` lets anyone read every object; `write` lets anyone also create,
//!   change and delete every object (the seed APIs without auth work this way).
//! - Objects without an owner (written before owners existed) belong to the admin.
//! - A caller who may not read an object is told it does not exist (404), so existence
//!   is not leaked.

use std::net::IpAddr;

use crate::store::{ObjectRecord, Principal, Role};

/// What callers without credentials may do (`--anonymous`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Anonymous {
    /// Nothing but public routes.
    #[default]
    None,
    /// Read every object.
    Read,
    /// Read, create, change and delete every object.
    Write,
}

/// The owner recorded for objects created by callers without credentials.
pub const ANONYMOUS_OWNER: &str = "anonymous";

/// The caller of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// `None` for anonymous callers.
    pub principal: Option<Principal>,
    /// The client's address (rate limits, audit), when known.
    pub ip: Option<IpAddr>,
}

impl Caller {
    pub fn anonymous(ip: Option<IpAddr>) -> Caller {
        Caller {
            principal: None,
            ip,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.principal
            .as_ref()
            .is_some_and(|p| p.role == Role::Admin)
    }

    /// The user id of the caller, if signed in.
    pub fn user(&self) -> Option<&str> {
        self.principal.as_ref().map(|p| p.user.as_str())
    }

    /// The owner id a new object of this caller gets.
    pub fn owner_id(&self) -> String {
        self.user().unwrap_or(ANONYMOUS_OWNER).to_string()
    }

    /// Whether this caller owns `rec`. Objects without an owner belong to the admin.
    pub fn owns(&self, rec: &ObjectRecord) -> bool {
        match (&self.principal, rec.owner.as_deref()) {
            (Some(p), Some(owner)) => p.user == owner,
            (Some(p), None) => p.role == Role::Admin,
            (None, _) => false,
        }
    }
}

/// Object-level decisions for one anonymous mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Policy {
    pub anonymous: Anonymous,
}

impl Policy {
    /// May `caller` read (see, list, download) `rec`?
    pub fn may_read(&self, caller: &Caller, rec: &ObjectRecord) -> bool {
        caller.is_admin()
            || caller.owns(rec)
            || matches!(self.anonymous, Anonymous::Read | Anonymous::Write)
    }

    /// May `caller` change or delete `rec`?
    pub fn may_write(&self, caller: &Caller, rec: &ObjectRecord) -> bool {
        caller.is_admin() || caller.owns(rec) || self.anonymous == Anonymous::Write
    }

    /// May `caller` see where `rec` was taken (EXIF GPS)? Only its owner and admins:
    /// a location is more private than the picture (`--anonymous read` shares the
    /// pictures, not where they were taken).
    pub fn may_see_location(&self, caller: &Caller, rec: &ObjectRecord) -> bool {
        caller.is_admin() || caller.owns(rec)
    }

    /// May `caller` see every object (a listing needs no owner index)?
    pub fn sees_everything(&self, caller: &Caller) -> bool {
        caller.is_admin() || matches!(self.anonymous, Anonymous::Read | Anonymous::Write)
    }

    /// May `caller` create objects at all?
    pub fn may_create(&self, caller: &Caller) -> bool {
        caller.principal.is_some() || self.anonymous == Anonymous::Write
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(owner: Option<&str>) -> ObjectRecord {
        let mut r = crate::core::objects::blank_record(uuid::Uuid::now_v7(), 0);
        r.owner = owner.map(str::to_string);
        r
    }

    fn user(id: &str, role: Role) -> Caller {
        Caller {
            principal: Some(Principal {
                user: id.into(),
                role,
            }),
            ip: None,
        }
    }

    #[test]
    fn ownership_and_modes() {
        let none = Policy::default();
        let read = Policy {
            anonymous: Anonymous::Read,
        };
        let write = Policy {
            anonymous: Anonymous::Write,
        };
        let alice = user("alice", Role::User);
        let bob = user("bob", Role::User);
        let admin = user("root", Role::Admin);
        let anon = Caller::anonymous(None);
        let a = rec(Some("alice"));
        let legacy = rec(None);
        assert!(none.may_read(&alice, &a) && none.may_write(&alice, &a));
        assert!(!none.may_read(&bob, &a) && !none.may_write(&bob, &a));
        assert!(none.may_read(&admin, &a) && none.may_write(&admin, &a));
        assert!(!none.may_read(&anon, &a));
        assert!(read.may_read(&anon, &a) && !read.may_write(&anon, &a));
        assert!(read.may_read(&bob, &a) && !read.may_write(&bob, &a));
        assert!(write.may_write(&anon, &a) && write.may_write(&bob, &a));
        assert!(none.may_read(&admin, &legacy) && !none.may_read(&alice, &legacy));
        assert!(!none.may_create(&anon) && write.may_create(&anon) && none.may_create(&bob));
        assert!(read.may_see_location(&alice, &a) && read.may_see_location(&admin, &a));
        assert!(!read.may_see_location(&anon, &a) && !write.may_see_location(&bob, &a));
    }
}
