//! The APIs ringbox speaks, each a thin module: a route table, the translation of
//! requests and responses to and from the core's terms, and an error shape. Every rule
//! lives in the core, so every API enforces it the same way.
//!
//! | API | module | default mount |
//! | --- | --- | --- |
//! | native `/v1` | [`native`] | `/` |
//! | the change feed `/v1/events` | [`events`] | `/` |
//! | Metaclip (seed 000) | [`metaclip`] | `/` |
//! | photobackup (seed 002) | [`photobackup`] | `/` |
//! | pyBlobServer (seed 003) | [`pyblob`] | `/` |
//! | RhinoBox (seed 004) | [`rhinobox`] | `/` |
//! | Media Vault (seed 001) | [`mediavault`] | `/api/v1` and `/realtime` |
//! | public share links `/share/{token}` | [`shares`] | `/` |
//!
//! Adding an API: write a module with `pub fn mount() -> Mount` (its routes, auth
//! schemes and error renderer), list it in [`catalogue`], and document it in the README.

pub mod events;
pub mod mediavault;
pub mod metaclip;
pub mod native;
pub mod photobackup;
pub mod pyblob;
pub mod rhinobox;
pub mod shares;
#[cfg(test)]
pub(crate) mod test_support;

use crate::http::errors::ApiError;
use crate::http::router::Mount;
use crate::store::ObjectId;

/// Every API this build has, by name, with its default mount.
pub fn catalogue() -> Vec<Mount> {
    vec![
        native::mount(),
        events::mount(),
        shares::mount(),
        rhinobox::mount(),
        metaclip::mount(),
        mediavault::mount(),
        mediavault::realtime_mount(),
        photobackup::mount(),
        pyblob::mount(),
    ]
}

/// The audit views of the enabled APIs (`enabled` as for [`mounts`]): files an API
/// promises that are views of the audit records (RhinoBox's delete and rename logs).
pub fn audit_views(enabled: Option<&[String]>) -> Vec<crate::core::audit::View> {
    let on = |name: &str| enabled.is_none_or(|list| list.iter().any(|n| n == name));
    let mut views = Vec::new();
    if on("rhinobox") {
        views.extend(rhinobox::audit_views());
    }
    views
}

/// Register the webhook payload formats of the APIs (at start, before deliveries).
pub fn register_webhook_formats(hooks: &crate::core::webhooks::Webhooks) {
    hooks.register_format(
        mediavault::webhooks_format_name(),
        mediavault::webhook_payload,
    );
}

/// The names of the APIs this build has.
pub fn names() -> Vec<&'static str> {
    catalogue().iter().map(|m| m.api).collect()
}

/// The enabled mounts: `enabled` names the APIs to serve (`None` = all), `prefixes`
/// moves an API under a prefix, `rates` sets an API's limits per minute (anonymous,
/// user, token; 0 = unlimited).
pub fn mounts(
    enabled: Option<&[String]>,
    prefixes: &[(String, String)],
    rates: &[(String, [u32; 3])],
) -> Vec<Mount> {
    use crate::core::auth::ratelimit::Tier;
    let tier = |n: u32| (n > 0).then(|| Tier::per_minute(n));
    catalogue()
        .into_iter()
        .filter(|m| enabled.is_none_or(|list| list.iter().any(|n| n == m.api)))
        .map(|m| match prefixes.iter().find(|(api, _)| api == m.api) {
            Some((_, prefix)) => m.at(prefix),
            None => m,
        })
        .map(|mut m| {
            if let Some((_, [a, u, t])) = rates.iter().find(|(api, _)| api == m.api) {
                m.rate = crate::http::ratelimit::RateTiers {
                    anonymous: tier(*a),
                    user: tier(*u),
                    token: tier(*t),
                };
            }
            m
        })
        .collect()
}

/// A UUID path parameter; `invalid` is the error for anything else.
pub fn parse_uuid(raw: &str, invalid: impl FnOnce() -> ApiError) -> Result<ObjectId, ApiError> {
    uuid::Uuid::try_parse(raw).map_err(|_| invalid())
}
