//! Users, API tokens and sign-in sessions, for every API.
//!
//! - Users: created by admins (`POST /v1/users`, `ringbox user add`) with a username
//!   (3-64 of letters, digits and `@ . _ + -`, unique case-insensitively), a password
//!   (8 characters to 1,024 bytes, hashed with Argon2id on the blocking pool) and a
//!   role; each new user gets a first API token. Admins see, change and delete users;
//!   anyone signed in sees and changes their own display name and password.
//! - API tokens: 256-bit random secrets, only their SHA-256 stored; listed without
//!   secrets; deleted by id.
//! - Sessions: `login` checks the password (unknown users cost the same time as wrong
//!   passwords) and issues an access token (a JWT with a unique `jti`, 1 h by default)
//!   and a refresh token (opaque, 30 days); `refresh` rotates both (the old pair stops
//!   working); `logout` revokes the access token and its refresh token at once.
//! - Every revocation (and role or password change, and user deletion) bumps the
//!   revocation epoch after its commit, so every worker refuses the old credential on
//!   its next request.
//! - Deleting a user revokes every credential at once and deletes the user's objects
//!   and collections in the background, in bounded batches (their blobs go when nothing
//!   else references them, their share links with what they shared). The built-in
//!   `admin` cannot be deleted.

use std::time::Duration;

use super::access::Caller;
use super::audit::AuditRecord;
use super::auth::credentials::{validate_password, validate_username};
use super::auth::jwt::{self, Claims};
use super::error::{CoreError, CoreResult, ErrorKind};
use super::identity::{invalid_credential, CredentialKind};
use super::Local;
use crate::store::{
    generate_token, new_token_id, Command, Reply, Role, SessionRecord, TokenRecord, UserChange,
    UserRecord, ADMIN_USER,
};
use crate::util::hex;
use crate::util::time::{now_ms, now_secs};

/// Most objects a background user deletion removes per writer command batch.
const DELETE_BATCH: usize = 100;

/// A new user, as an admin asks for it.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub role: Role,
    pub display_name: Option<String>,
    pub quota_bytes: Option<u64>,
}

/// What a user or an admin changes.
#[derive(Clone, Debug, Default)]
pub struct UserUpdate {
    pub role: Option<Role>,
    pub quota_bytes: Option<Option<u64>>,
    pub display_name: Option<Option<String>>,
    /// A new password (admins reset it; a user changing their own must give the old).
    pub password: Option<String>,
    pub old_password: Option<String>,
}

/// A freshly issued API token: the secret is shown once.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub record: TokenRecord,
    pub secret: String,
}

/// A session's tokens.
#[derive(Clone, Debug)]
pub struct SessionTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

fn credential_error(e: super::auth::credentials::CredentialError) -> CoreError {
    CoreError::invalid(e.to_string())
}

fn expect_user(reply: Reply) -> CoreResult<UserRecord> {
    match reply {
        Reply::User(u) => Ok(u),
        other => Err(CoreError::internal(format!(
            "unexpected writer reply {other:?}"
        ))),
    }
}

/// The 404 every lookup of a user the caller may not see answers.
fn no_user() -> CoreError {
    CoreError::not_found("the user")
}

impl Local {
    fn require_admin(&self, caller: &Caller) -> CoreResult<()> {
        if caller.is_admin() {
            Ok(())
        } else {
            Err(CoreError::forbidden("only an admin may do this"))
        }
    }

    /// Hash a password on the blocking pool.
    async fn hash_password(&self, password: String) -> CoreResult<String> {
        let hasher = self.accounts.hasher.clone();
        self.pool
            .run(move || {
                // Argon2 takes tens of milliseconds: never on an io_uring worker.
                debug_assert!(super::pool::BlockingPool::on_pool_thread());
                hasher.hash(&password)
            })
            .await?
            .map_err(|e| CoreError::invalid(e.to_string()))
    }

    /// Check a password against a stored hash on the blocking pool; `None` as the hash
    /// (no such user, or no password set) costs the same time and answers false.
    async fn check_password(&self, hash: Option<String>, password: String) -> CoreResult<bool> {
        let hasher = self.accounts.hasher.clone();
        self.pool
            .run(move || {
                // Argon2 takes tens of milliseconds: never on an io_uring worker.
                debug_assert!(super::pool::BlockingPool::on_pool_thread());
                match hash {
                    Some(h) => hasher.verify(&h, &password).unwrap_or(false),
                    None => {
                        hasher.verify_dummy(&password);
                        false
                    }
                }
            })
            .await
    }

    /// A new API token record for `user` (not stored).
    fn new_token(
        &self,
        user: &UserRecord,
        label: &str,
        expires_in: Option<Duration>,
    ) -> CoreResult<(crate::store::Sha256, IssuedToken)> {
        let (secret, sha) = generate_token()?;
        let now = now_ms();
        let record = TokenRecord {
            user: user.id.clone(),
            role: user.role.clone(),
            label: label.to_string(),
            created_at_ms: now,
            expires_at_ms: expires_in.map(|d| now.saturating_add(d.as_millis() as i64)),
            id: new_token_id()?,
            last_used_ms: None,
        };
        Ok((sha, IssuedToken { record, secret }))
    }

    /// `POST /v1/users`: a new user and their first API token.
    pub async fn create_user(
        &self,
        caller: &Caller,
        new: NewUser,
    ) -> CoreResult<(UserRecord, IssuedToken)> {
        self.require_admin(caller)?;
        validate_username(&new.username).map_err(credential_error)?;
        validate_password(&new.password).map_err(credential_error)?;
        if let Some(d) = &new.display_name {
            check_display_name(d)?;
        }
        let hash = self.hash_password(new.password).await?;
        let user = UserRecord {
            id: uuid::Uuid::now_v7().to_string(),
            username: new.username,
            password_hash: Some(hash),
            role: new.role,
            created_at_ms: now_ms(),
            display_name: new.display_name,
            quota_bytes: new.quota_bytes,
            usage_bytes: 0,
            object_count: 0,
        };
        let (sha, token) = self.new_token(&user, "first token", None)?;
        let reply = self
            .store
            .writer()
            .submit_as(
                Command::CreateUser {
                    user,
                    token: Some((sha, token.record.clone())),
                },
                &caller.owner_id(),
            )
            .await?;
        let user = expect_user(reply)?;
        self.audit_user("user.created", caller, &user, |rec| {
            rec.set_detail("role", user.role.as_str().into());
        });
        Ok((user, token))
    }

    /// A user `caller` may see, by id or username: themself, or anyone for an admin
    /// (else 404).
    pub fn user_for(&self, caller: &Caller, id_or_name: &str) -> CoreResult<UserRecord> {
        let user = match self.store.get_user(id_or_name)? {
            Some(u) => Some(u),
            None => self.store.get_user_by_name(id_or_name)?,
        };
        match user {
            Some(u) if caller.is_admin() || caller.user() == Some(u.id.as_str()) => Ok(u),
            _ => Err(no_user()),
        }
    }

    /// A user by username, for the APIs that address users by name.
    #[allow(dead_code)] // part of the module's API; not every caller uses it yet
    pub fn user_by_name(&self, username: &str) -> CoreResult<Option<UserRecord>> {
        Ok(self.store.get_user_by_name(username)?)
    }

    /// The signed-in caller's own record.
    pub fn me(&self, caller: &Caller) -> CoreResult<UserRecord> {
        let id = caller
            .user()
            .ok_or_else(|| CoreError::unauthorized("sign in first"))?;
        self.store.get_user(id)?.ok_or_else(invalid_credential)
    }

    /// `GET /v1/users` (admin): a page of users in id order.
    pub fn list_users(
        &self,
        caller: &Caller,
        after: Option<&str>,
        limit: usize,
    ) -> CoreResult<(Vec<UserRecord>, bool)> {
        self.require_admin(caller)?;
        Ok(self.store.list_users(after, limit.clamp(1, 1000))?)
    }

    /// Change a user: admins may change role, quota, display name and reset the
    /// password of anyone; users may change their own display name and password (with
    /// the old one).
    pub async fn update_user(
        &self,
        caller: &Caller,
        id: &str,
        update: UserUpdate,
    ) -> CoreResult<UserRecord> {
        let target = self.user_for(caller, id)?;
        let id = target.id.as_str();
        let admin = caller.is_admin();
        if !admin && (update.role.is_some() || update.quota_bytes.is_some()) {
            return Err(CoreError::forbidden(
                "only an admin may change a role or a quota",
            ));
        }
        if update.role == Some(Role::User) && target.id == ADMIN_USER {
            return Err(CoreError::conflict(
                "the built-in admin keeps the admin role",
            ));
        }
        if let Some(Some(d)) = &update.display_name {
            check_display_name(d)?;
        }
        let mut password_hash = None;
        if let Some(pw) = update.password {
            validate_password(&pw).map_err(credential_error)?;
            let own = caller.user() == Some(id);
            if own && target.password_hash.is_some() {
                let old = update.old_password.ok_or_else(|| {
                    CoreError::invalid_field(
                        "old_password",
                        "changing your password needs the current one in \"old_password\"",
                    )
                })?;
                if !self
                    .check_password(target.password_hash.clone(), old)
                    .await?
                {
                    return Err(CoreError::forbidden("the current password is wrong"));
                }
            } else if !admin {
                return Err(CoreError::forbidden("only an admin may reset a password"));
            }
            password_hash = Some(self.hash_password(pw).await?);
        }
        let revokes = update.role.is_some() || password_hash.is_some();
        // What the audit line names (never the values of secrets).
        let change_role = update.role.clone();
        let change_quota = update.quota_bytes.is_some();
        let change_display = update.display_name.is_some();
        let change_password = password_hash.is_some();
        let reply = self
            .store
            .writer()
            .submit(Command::UpdateUser {
                id: id.to_string(),
                change: UserChange {
                    role: update.role,
                    quota_bytes: update.quota_bytes,
                    password_hash,
                    display_name: update.display_name,
                },
            })
            .await?;
        if revokes {
            self.revoke_cached_credentials();
        }
        let user = expect_user(reply)?;
        self.audit_user("user.updated", caller, &user, |rec| {
            let mut changed = Vec::new();
            if let Some(role) = &change_role {
                changed.push("role");
                rec.set_detail("role", role.as_str().into());
            }
            if change_quota {
                changed.push("quota_bytes");
            }
            if change_display {
                changed.push("display_name");
            }
            if change_password {
                changed.push("password");
            }
            rec.set_detail("changed", changed.into());
        });
        Ok(user)
    }

    /// `DELETE /v1/users/{id}` (admin): every credential of the user stops working at
    /// once; their objects are deleted in the background.
    pub async fn delete_user(&self, caller: &Caller, id: &str) -> CoreResult<UserRecord> {
        self.require_admin(caller)?;
        let target = self.user_for(caller, id)?;
        let id = target.id.as_str();
        if id == ADMIN_USER {
            return Err(CoreError::conflict("the built-in admin cannot be deleted"));
        }
        let reply = self
            .store
            .writer()
            .submit_as(
                Command::DeleteUser { id: id.to_string() },
                &caller.owner_id(),
            )
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound => no_user(),
                e => e.into(),
            })?;
        self.revoke_cached_credentials();
        let user = expect_user(reply)?;
        self.audit_user("user.deleted", caller, &user, |_| {});
        let store = self.store.clone();
        let owner = user.id.clone();
        monoio::spawn(async move { delete_objects_of(store, owner).await });
        // Their collections (and with them their share links) go too.
        let store = self.store.clone();
        let owner = user.id.clone();
        monoio::spawn(super::collections::delete_collections_of(store, owner));
        Ok(user)
    }

    /// The user a token operation is for: the caller, or (admins only) another user.
    fn token_owner(&self, caller: &Caller, for_user: Option<&str>) -> CoreResult<UserRecord> {
        match for_user {
            None => self.me(caller),
            Some(u) => {
                self.require_admin(caller)?;
                self.user_for(caller, u)
            }
        }
    }

    /// `POST /v1/tokens`: a new API token of the caller (or, for an admin, of
    /// `for_user`).
    pub async fn create_token(
        &self,
        caller: &Caller,
        for_user: Option<&str>,
        label: &str,
        expires_in: Option<Duration>,
    ) -> CoreResult<IssuedToken> {
        if label.chars().count() > 128 || label.chars().any(char::is_control) {
            return Err(CoreError::invalid_field(
                "label",
                "a label is at most 128 characters without control characters",
            ));
        }
        let user = self.token_owner(caller, for_user)?;
        let (sha, token) = self.new_token(&user, label, expires_in)?;
        self.store
            .writer()
            .submit(Command::PutToken {
                token_sha256: sha,
                record: token.record.clone(),
            })
            .await?;
        self.audit_user("token.created", caller, &user, |rec| {
            rec.set_detail("token_id", token_id_string(&token.record.id).into());
            rec.set_detail("label", label.into());
        });
        Ok(token)
    }

    /// `GET /v1/tokens`: the caller's tokens (or an admin's view of `for_user`'s), no
    /// secrets.
    pub fn list_tokens(
        &self,
        caller: &Caller,
        for_user: Option<&str>,
    ) -> CoreResult<Vec<TokenRecord>> {
        let user = self.token_owner(caller, for_user)?;
        Ok(self.store.tokens_of(&user.id)?)
    }

    /// `DELETE /v1/tokens/{id}`: revoke one of the caller's tokens (404 for others'),
    /// or, for an admin, of `for_user`.
    pub async fn revoke_token(
        &self,
        caller: &Caller,
        for_user: Option<&str>,
        token_id: &str,
    ) -> CoreResult<()> {
        let user = self.token_owner(caller, for_user)?;
        let id = parse_token_id(token_id).ok_or_else(|| CoreError::not_found("the token"))?;
        self.store
            .writer()
            .submit(Command::RevokeToken {
                user: user.id.clone(),
                token_id: id,
            })
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound => CoreError::not_found("the token"),
                e => e.into(),
            })?;
        self.revoke_cached_credentials();
        self.audit_user("token.revoked", caller, &user, |rec| {
            rec.set_detail("token_id", token_id_string(&id).into());
        });
        Ok(())
    }

    /// Queue an audit line for a change to `user` (its id and username; `details` as
    /// `fill` sets them). Secrets never go in.
    fn audit_user(
        &self,
        action: &str,
        caller: &Caller,
        user: &UserRecord,
        fill: impl FnOnce(&mut AuditRecord),
    ) {
        let mut rec = AuditRecord::new(action, caller);
        rec.object_id = Some(user.id.clone());
        rec.name = Some(user.username.clone());
        fill(&mut rec);
        self.audit.record_nowait(rec);
    }

    /// Issue a session for `user`.
    async fn open_session(
        &self,
        user: &UserRecord,
        rotate: Option<crate::store::Sha256>,
    ) -> CoreResult<SessionTokens> {
        let now = now_secs();
        let ttl = self.accounts.access_ttl.as_secs().max(1);
        let claims = Claims::access(&user.id, user.role.as_str(), now, ttl)
            .map_err(|e| CoreError::internal(e.to_string()))?;
        let access = jwt::sign(&self.accounts.jwt_key, &claims);
        let (refresh, refresh_sha) =
            jwt::new_refresh_token().map_err(|e| CoreError::internal(e.to_string()))?;
        let now_ms = now_ms();
        let record = SessionRecord {
            user: user.id.clone(),
            access_jti: claims.jti.clone(),
            access_expires_at_ms: (claims.exp as i64).saturating_mul(1000),
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(self.accounts.refresh_ttl.as_millis() as i64),
        };
        let cmd = match rotate {
            None => Command::CreateSession {
                refresh_sha256: refresh_sha,
                record,
                now_ms,
            },
            Some(old) => Command::RotateSession {
                old_refresh_sha256: old,
                new_refresh_sha256: refresh_sha,
                record,
                now_ms,
            },
        };
        self.store.writer().submit(cmd).await.map_err(|e| match e {
            crate::store::StoreError::NotFound => CoreError::unauthorized(
                "the refresh token is not valid (unknown, already used or expired); sign in again",
            ),
            e => e.into(),
        })?;
        if rotate.is_some() {
            self.revoke_cached_credentials();
        }
        Ok(SessionTokens {
            access_token: access,
            refresh_token: refresh,
            expires_in: ttl,
        })
    }

    /// `POST /v1/auth/login`. Unknown user and wrong password get the same answer in
    /// the same time.
    pub async fn login(&self, username: &str, password: &str) -> CoreResult<SessionTokens> {
        let user = if username.len() <= 256 {
            self.store.get_user_by_name(username)?
        } else {
            None
        };
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let ok = self.check_password(hash, password.to_string()).await?;
        match (ok, user) {
            (true, Some(user)) => self.open_session(&user, None).await,
            _ => Err(CoreError::new(
                ErrorKind::Unauthorized,
                "unauthorized",
                "wrong username or password",
            )),
        }
    }

    /// `POST /v1/auth/refresh`: rotate a session (the old refresh and access tokens
    /// stop working).
    pub async fn refresh(&self, refresh_token: &str) -> CoreResult<SessionTokens> {
        let sha = jwt::refresh_token_sha256(refresh_token);
        let invalid = || {
            CoreError::unauthorized(
                "the refresh token is not valid (unknown, already used or expired); sign in again",
            )
        };
        let session = self.store.get_session(&sha)?.ok_or_else(invalid)?;
        if session.expires_at_ms <= now_ms() {
            return Err(invalid());
        }
        let user = self.store.get_user(&session.user)?.ok_or_else(invalid)?;
        self.open_session(&user, Some(sha)).await
    }

    /// The session of the access token the caller presented, for a refresh by access
    /// token (Media Vault refreshes with the current JWT).
    pub async fn refresh_by_access(
        &self,
        kind: &CredentialKind,
        caller: &Caller,
    ) -> CoreResult<SessionTokens> {
        let CredentialKind::Session {
            jti,
            expires_at_secs,
        } = kind
        else {
            return Err(CoreError::invalid(
                "refreshing needs a session's access token or refresh token",
            ));
        };
        let user = self.me(caller)?;
        // End the old session, then open a new one.
        self.store
            .writer()
            .submit(Command::EndSession {
                jti: jti.clone(),
                expires_at_ms: (*expires_at_secs as i64).saturating_mul(1000),
                now_ms: now_ms(),
            })
            .await?;
        self.revoke_cached_credentials();
        self.open_session(&user, None).await
    }

    /// `POST /v1/auth/logout`: the presented access token and its refresh token stop
    /// working on every worker at once.
    pub async fn logout(&self, kind: &CredentialKind) -> CoreResult<()> {
        let CredentialKind::Session {
            jti,
            expires_at_secs,
        } = kind
        else {
            return Err(CoreError::invalid(
                "logout ends a session (sign in with a password); API tokens are revoked with DELETE /v1/tokens/{id}",
            ));
        };
        self.store
            .writer()
            .submit(Command::EndSession {
                jti: jti.clone(),
                expires_at_ms: (*expires_at_secs as i64).saturating_mul(1000),
                now_ms: now_ms(),
            })
            .await?;
        self.revoke_cached_credentials();
        Ok(())
    }
}

fn check_display_name(d: &str) -> CoreResult<()> {
    if d.chars().count() > 128 || d.chars().any(char::is_control) {
        return Err(CoreError::invalid_field(
            "display_name",
            "a display name is at most 128 characters without control characters",
        ));
    }
    Ok(())
}

/// A token id as shown to users (32 hex digits).
pub fn token_id_string(id: &[u8; 16]) -> String {
    hex::encode(id)
}

fn parse_token_id(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    s.bytes().all(|b| b.is_ascii_hexdigit()).then_some(out)
}

/// Delete every object of `owner`, a batch at a time (each batch one writer round).
async fn delete_objects_of(store: crate::store::Store, owner: String) {
    let mut deleted = 0u64;
    loop {
        let page = match store.list_owner_by_time(&owner, false, None, DELETE_BATCH) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(%owner, error = %e, "cannot list a deleted user's objects");
                return;
            }
        };
        if page.objects.is_empty() {
            break;
        }
        let waits: Vec<_> = page
            .objects
            .iter()
            .map(|o| store.writer().submit(Command::Delete { id: o.id }))
            .collect();
        for w in waits {
            match w.await {
                Ok(_) => deleted += 1,
                Err(crate::store::StoreError::NotFound) => {}
                Err(e) => {
                    tracing::error!(%owner, error = %e, "cannot delete a deleted user's object");
                    return;
                }
            }
        }
    }
    tracing::info!(%owner, deleted, "deleted the objects of a deleted user");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::test_support::{admin, with_services};

    fn caller_of(u: &UserRecord) -> Caller {
        Caller {
            principal: Some(crate::store::Principal {
                user: u.id.clone(),
                role: u.role.clone(),
            }),
            ip: None,
        }
    }

    #[test]
    fn users_tokens_and_sessions() {
        with_services(|svc| async move {
            let (alice, token) = svc
                .create_user(
                    &admin(),
                    NewUser {
                        username: "alice@example.com".into(),
                        password: "correct horse".into(),
                        role: Role::User,
                        display_name: None,
                        quota_bytes: None,
                    },
                )
                .await
                .unwrap();
            // The first token works.
            let a = svc.authenticate(token.secret.as_bytes()).unwrap().unwrap();
            assert_eq!(a.principal.user, alice.id);
            // Usernames are unique, case-insensitively.
            let dup = svc
                .create_user(
                    &admin(),
                    NewUser {
                        username: "ALICE@example.com".into(),
                        password: "another one".into(),
                        role: Role::User,
                        display_name: None,
                        quota_bytes: None,
                    },
                )
                .await
                .unwrap_err();
            assert_eq!(dup.kind, ErrorKind::Conflict);
            // Only admins create users.
            let e = svc
                .create_user(
                    &caller_of(&alice),
                    NewUser {
                        username: "mallory".into(),
                        password: "12345678".into(),
                        role: Role::Admin,
                        display_name: None,
                        quota_bytes: None,
                    },
                )
                .await
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Forbidden);
            // Sessions: login, refresh rotates, logout revokes.
            assert!(svc
                .login("alice@example.com", "wrong password")
                .await
                .is_err());
            assert!(svc.login("nobody", "wrong password").await.is_err());
            let s1 = svc
                .login("Alice@Example.com", "correct horse")
                .await
                .unwrap();
            let a1 = svc
                .authenticate(s1.access_token.as_bytes())
                .unwrap()
                .unwrap();
            let s2 = svc.refresh(&s1.refresh_token).await.unwrap();
            assert_ne!(s1.access_token, s2.access_token);
            assert!(svc
                .authenticate(s1.access_token.as_bytes())
                .unwrap()
                .is_none());
            assert!(svc.refresh(&s1.refresh_token).await.is_err());
            let a2 = svc
                .authenticate(s2.access_token.as_bytes())
                .unwrap()
                .unwrap();
            svc.logout(&a2.kind).await.unwrap();
            assert!(svc
                .authenticate(s2.access_token.as_bytes())
                .unwrap()
                .is_none());
            assert!(svc.refresh(&s2.refresh_token).await.is_err());
            let _ = a1;
            // API tokens: create, list, revoke.
            let t = svc
                .create_token(&caller_of(&alice), None, "ci", None)
                .await
                .unwrap();
            assert_eq!(svc.list_tokens(&caller_of(&alice), None).unwrap().len(), 2);
            assert!(svc.authenticate(t.secret.as_bytes()).unwrap().is_some());
            svc.revoke_token(&caller_of(&alice), None, &token_id_string(&t.record.id))
                .await
                .unwrap();
            assert!(svc.authenticate(t.secret.as_bytes()).unwrap().is_none());
            // Deleting the user ends every credential.
            svc.delete_user(&admin(), &alice.id).await.unwrap();
            assert!(svc.authenticate(token.secret.as_bytes()).unwrap().is_none());
        });
    }
}
