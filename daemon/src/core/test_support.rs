//! Helpers for the core's unit tests: a store in a temp directory and a worker's
//! services on a monoio runtime of the test thread.

use std::future::Future;
use std::sync::Arc;

use super::access::Caller;
use super::pool::BlockingPool;
use super::{Core, Local, Settings};
use crate::store::{Durability, Principal, Role, Store, StoreConfig};

/// The built-in admin as a caller.
pub fn admin() -> Caller {
    Caller {
        principal: Some(Principal {
            user: "admin".into(),
            role: Role::Admin,
        }),
        ip: None,
    }
}

/// A user caller.
#[allow(dead_code)]
pub fn user(id: &str) -> Caller {
    Caller {
        principal: Some(Principal {
            user: id.into(),
            role: Role::User,
        }),
        ip: None,
    }
}

/// Accounts with a random key and cheap password hashing (tests hash many passwords).
pub fn test_accounts() -> super::identity::Accounts {
    use super::auth::credentials::{HashParams, PasswordHasher};
    let hasher = PasswordHasher::new(HashParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    })
    .unwrap();
    super::identity::Accounts::new(
        super::auth::jwt::JwtKey::generate().unwrap(),
        hasher,
        std::time::Duration::from_secs(3600),
    )
}

/// Run a future to completion on a fresh monoio runtime (with timers).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    rt.block_on(f)
}

/// Run `f` with fresh services (temp store, durability off) on a monoio runtime.
pub fn with_services<F, Fut>(f: F)
where
    F: FnOnce(Local) -> Fut,
    Fut: Future<Output = ()>,
{
    with_settings(Settings::default(), f)
}

/// [`with_services`] with chosen settings.
pub fn with_settings<F, Fut>(settings: Settings, f: F)
where
    F: FnOnce(Local) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig {
        durability: Durability::None,
        ..StoreConfig::new(dir.path().join("data"))
    })
    .unwrap();
    let pool = BlockingPool::new(2, 64).unwrap();
    let core = Arc::new(Core::new(store, settings, pool, test_accounts()));
    block_on(f(Local::new(core)));
}
