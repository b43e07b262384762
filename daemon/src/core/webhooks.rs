//! Webhooks: a user's events (of the kinds a hook names) POSTed to a URL, signed, at
//! least once, from threads of their own (never an io_uring worker).
//!
//! - Owned by users: a hook sees only its owner's events (admins' hooks see all), by
//!   the same visibility rule as every other reader of the feed.
//! - Each POST has `Content-Type: application/json`, a `Content-Length` (never
//!   chunked), `X-Ringbox-Event` (the type), `X-Ringbox-Delivery` (unique per attempt)
//!   and `X-Ringbox-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the
//!   secret's UTF-8 bytes>`. A 2xx within [`TIMEOUT`] is success.
//! - At least once: each hook's cursor (the last event delivered) is in LMDB, advanced
//!   only after a success, so deliveries survive a restart (an event may be sent twice
//!   if the process dies between the 2xx and the cursor's commit).
//! - Failures retry with exponential backoff and jitter (1 s, 2 s, 4 s, ... at most
//!   5 min apart) for [`GIVE_UP`] (a setting), then the hook is marked failing and
//!   stops until re-enabled (`PATCH {"enabled": true}`). Events are delivered in
//!   order: a failing event blocks only its own hook.
//! - One thread per enabled hook, so a slow receiver never delays another hook. A
//!   dispatcher thread wakes the hook threads when events are committed (typical
//!   latency from commit to delivery: milliseconds).
//! - SSRF guard: the URL's host must resolve only to public addresses (not loopback,
//!   private, link-local, multicast, unspecified or documentation ranges), checked
//!   when the hook is made and again, pinned, at every delivery (no DNS rebinding),
//!   unless `--webhook-allow-private`. Only `http://` targets: this build has no TLS
//!   client (put a TLS-terminating proxy in front of an `https://` receiver).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use crossbeam_channel::{Receiver, Sender};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use super::access::Caller;
use super::error::{CoreError, CoreResult};
use super::events::{event_json, EventFilter};
use super::Core;
use crate::store::{
    Command, DeliveryRecord, EventRecord, ObjectId, Principal, Reply, WebhookChange,
    WebhookProgress, WebhookRecord,
};
use crate::util::hex;
use crate::util::time::now_ms;

/// A receiver must answer within this.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a hook keeps retrying one event before it is marked failing (default).
pub const GIVE_UP: Duration = Duration::from_secs(24 * 3600);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Most hooks per user.
const MAX_HOOKS_PER_USER: usize = 32;

/// How webhooks behave (settings).
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    pub allow_private: bool,
    pub give_up: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            allow_private: false,
            give_up: GIVE_UP,
        }
    }
}

/// Formats the body of a delivery for the API that made the hook.
pub type PayloadFormat = fn(&EventRecord) -> Option<(String, Value)>;

/// The native payload: the event itself.
fn native_payload(ev: &EventRecord) -> Option<(String, Value)> {
    Some((ev.kind.clone(), event_json(ev)))
}

/// The process-wide webhook machinery.
pub struct Webhooks {
    settings: WebhookSettings,
    /// Payload formats by name (`native`, and those the dialects register).
    formats: Mutex<HashMap<String, PayloadFormat>>,
    wake: Sender<()>,
    wake_rx: Mutex<Option<Receiver<()>>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    pub fn new(settings: WebhookSettings) -> Webhooks {
        let (wake, rx) = crossbeam_channel::bounded(1);
        let mut formats: HashMap<String, PayloadFormat> = HashMap::new();
        formats.insert("native".into(), native_payload);
        Webhooks {
            settings,
            formats: Mutex::new(formats),
            wake,
            wake_rx: Mutex::new(Some(rx)),
        }
    }

    /// Register the payload shape of an API's hooks.
    pub fn register_format(&self, name: &str, f: PayloadFormat) {
        self.formats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), f);
    }

    fn format(&self, name: &str) -> PayloadFormat {
        self.formats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied()
            .unwrap_or(native_payload)
    }

    /// New events were committed (called from the store's event sink; never blocks).
    pub fn notify(&self) {
        let _ = self.wake.try_send(());
    }
}

/// A new webhook, as its owner asks for it.
#[derive(Clone, Debug)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub secret: Option<String>,
    pub format: String,
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_unspecified()
                || a.is_documentation()
                || a.octets()[0] == 0
                || (a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64) // CGNAT 100.64/10
                || (a.octets()[0] == 169 && a.octets()[1] == 254))
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg0 = a.segments()[0];
            !(a.is_loopback()
                || a.is_multicast()
                || a.is_unspecified()
                || (seg0 & 0xfe00) == 0xfc00 // unique local
                || (seg0 & 0xffc0) == 0xfe80 // link local
                || seg0 == 0x2001 && a.segments()[1] == 0x0db8) // documentation
        }
    }
}

/// Check a target URL: `http://host[:port]/...`, resolving only to addresses we may
/// call. Returns the addresses to connect to.
fn check_target(url: &str, allow_private: bool) -> CoreResult<(String, Vec<SocketAddr>)> {
    let bad = |m: &str| CoreError::invalid_field("url", m.to_string());
    if url.len() > 2048 {
        return Err(bad("the url is longer than 2048 bytes"));
    }
    if url.starts_with("https://") {
        return Err(bad(
            "https:// targets are not supported by this build (no TLS client); use http:// or a TLS-terminating proxy",
        ));
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("the url must start with http://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("the url needs a host (and no user info)"));
    }
    let host_port = if authority.starts_with('[')
        || authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addrs: Vec<SocketAddr> = host_port
        .to_socket_addrs()
        .map_err(|e| bad(&format!("the url's host does not resolve: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(bad("the url's host does not resolve"));
    }
    if !allow_private {
        if let Some(a) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(bad(&format!(
                "the url resolves to {}, a loopback, private, link-local or multicast address; \
                 such targets are refused (see --webhook-allow-private)",
                a.ip()
            )));
        }
    }
    Ok((host_port, addrs))
}

fn new_secret() -> CoreResult<String> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| CoreError::internal(format!("no randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(&mac.finalize().into_bytes()))
}

fn expect_hook(r: Reply) -> CoreResult<WebhookRecord> {
    match r {
        Reply::Webhook(w) => Ok(w),
        other => Err(CoreError::internal(format!(
            "unexpected writer reply {other:?}"
        ))),
    }
}

impl Core {
    fn hook_for(&self, caller: &Caller, id: &str) -> CoreResult<WebhookRecord> {
        let id = uuid::Uuid::try_parse(id).map_err(|_| CoreError::not_found("the webhook"))?;
        match self.store.get_webhook(&id)? {
            Some(h) if caller.is_admin() || caller.user() == Some(h.owner.as_str()) => Ok(h),
            _ => Err(CoreError::not_found("the webhook")),
        }
    }

    fn check_events(events: &[String]) -> CoreResult<()> {
        if events.len() > 64
            || events.iter().any(|e| {
                e.is_empty()
                    || e.len() > 64
                    || !e
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._*".contains(&b))
            })
        {
            return Err(CoreError::invalid_field(
                "events",
                "events must be at most 64 event types like \"object.created\" or families like \"object.*\"",
            ));
        }
        Ok(())
    }

    /// A new webhook of the caller.
    pub async fn create_webhook(
        &self,
        caller: &Caller,
        new: NewWebhook,
    ) -> CoreResult<WebhookRecord> {
        let owner = caller
            .user()
            .ok_or_else(|| CoreError::unauthorized("webhooks belong to users: sign in"))?
            .to_string();
        Self::check_events(&new.events)?;
        let allow = self.webhooks.settings.allow_private;
        let url = new.url.clone();
        self.pool.run(move || check_target(&url, allow)).await??;
        let mine = self
            .store
            .webhooks()?
            .into_iter()
            .filter(|h| h.owner == owner)
            .count();
        if mine >= MAX_HOOKS_PER_USER {
            return Err(CoreError::conflict(format!(
                "at most {MAX_HOOKS_PER_USER} webhooks per user; delete one first"
            )));
        }
        let secret = match new.secret {
            Some(s) if !s.is_empty() && s.len() <= 256 => s,
            Some(_) => {
                return Err(CoreError::invalid_field(
                    "secret",
                    "a secret is 1-256 bytes",
                ))
            }
            None => new_secret()?,
        };
        let record = WebhookRecord {
            id: uuid::Uuid::now_v7(),
            owner: owner.clone(),
            url: new.url,
            events: new.events,
            secret,
            format: new.format,
            created_at_ms: now_ms(),
            enabled: true,
            failing: false,
            cursor: 0,
            failures: 0,
            failing_since_ms: None,
        };
        let r = self
            .store
            .writer()
            .submit_as(Command::CreateWebhook { record }, &owner)
            .await?;
        self.webhooks.notify();
        expect_hook(r)
    }

    /// The caller's webhooks (an admin's: everyone's).
    pub fn list_webhooks(
        &self,
        caller: &Caller,
        format: Option<&str>,
    ) -> CoreResult<Vec<WebhookRecord>> {
        Ok(self
            .store
            .webhooks()?
            .into_iter()
            .filter(|h| caller.is_admin() || caller.user() == Some(h.owner.as_str()))
            .filter(|h| format.is_none_or(|f| h.format == f))
            .collect())
    }

    pub fn get_webhook(&self, caller: &Caller, id: &str) -> CoreResult<WebhookRecord> {
        self.hook_for(caller, id)
    }

    pub async fn change_webhook(
        &self,
        caller: &Caller,
        id: &str,
        change: WebhookChange,
    ) -> CoreResult<WebhookRecord> {
        let hook = self.hook_for(caller, id)?;
        if let Some(events) = &change.events {
            Self::check_events(events)?;
        }
        if let Some(url) = change.url.clone() {
            let allow = self.webhooks.settings.allow_private;
            self.pool.run(move || check_target(&url, allow)).await??;
        }
        let r = self
            .store
            .writer()
            .submit_as(
                Command::ChangeWebhook {
                    id: hook.id,
                    change,
                },
                &caller.owner_id(),
            )
            .await?;
        self.webhooks.notify();
        expect_hook(r)
    }

    pub async fn delete_webhook(&self, caller: &Caller, id: &str) -> CoreResult<()> {
        let hook = self.hook_for(caller, id)?;
        self.store
            .writer()
            .submit_as(Command::DeleteWebhook { id: hook.id }, &caller.owner_id())
            .await?;
        Ok(())
    }

    pub fn webhook_deliveries(&self, caller: &Caller, id: &str) -> CoreResult<Vec<DeliveryRecord>> {
        let hook = self.hook_for(caller, id)?;
        Ok(self.store.deliveries(&hook.id, 100)?)
    }
}

/// Start the dispatcher thread (once, at start).
pub fn start(core: Arc<Core>) -> std::io::Result<()> {
    let rx = core
        .webhooks
        .wake_rx
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let Some(rx) = rx else {
        return Ok(());
    };
    std::thread::Builder::new()
        .name("ringbox-webhooks".into())
        .spawn(move || dispatcher(core, rx))?;
    Ok(())
}

/// Keeps one delivery thread per enabled hook and wakes them on new events.
fn dispatcher(core: Arc<Core>, rx: Receiver<()>) {
    let mut threads: HashMap<ObjectId, Sender<()>> = HashMap::new();
    loop {
        let hooks = match core.store.webhooks() {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the webhooks");
                Vec::new()
            }
        };
        let live: std::collections::HashSet<ObjectId> = hooks
            .iter()
            .filter(|h| h.enabled && !h.failing)
            .map(|h| h.id)
            .collect();
        // Forget hooks that are gone or whose thread ended (it gave up, or the hook was
        // disabled); a re-enabled hook gets a new thread.
        threads.retain(|id, tx| {
            live.contains(id)
                && !matches!(
                    tx.try_send(()),
                    Err(crossbeam_channel::TrySendError::Disconnected(_))
                )
        });
        for id in live {
            if threads.contains_key(&id) {
                continue;
            }
            let (tx, wake) = crossbeam_channel::bounded(1);
            let core = core.clone();
            let spawned = std::thread::Builder::new()
                .name("ringbox-webhook".into())
                .spawn(move || deliver_loop(core, id, wake));
            match spawned {
                Ok(_) => {
                    threads.insert(id, tx);
                }
                Err(e) => tracing::error!(error = %e, "cannot start a webhook thread"),
            }
        }
        for tx in threads.values() {
            let _ = tx.try_send(());
        }
        // Woken by new events, or every few seconds to pick up changed hooks.
        match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Backoff before attempt `failures + 1`: 2^failures seconds with jitter, capped.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1u64 << failures.min(9)).min(MAX_BACKOFF);
    let mut j = [0u8; 2];
    let _ = getrandom::fill(&mut j);
    let jitter = u64::from(u16::from_le_bytes(j)) % (base.as_millis() as u64 / 2 + 1);
    base + Duration::from_millis(jitter)
}

/// One hook's deliveries, in order, until the hook is gone, disabled or failing.
fn deliver_loop(core: Arc<Core>, id: ObjectId, wake: Receiver<()>) {
    let agent = |addrs: Vec<SocketAddr>, host: String| {
        ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(TIMEOUT)
            .redirects(0)
            .resolver(move |netloc: &str| -> std::io::Result<Vec<SocketAddr>> {
                // Pinned: connect to the addresses that were checked, nothing else.
                if netloc == host {
                    Ok(addrs.clone())
                } else {
                    Err(std::io::Error::other("unexpected host"))
                }
            })
            .build()
    };
    loop {
        let hook = match core.store.get_webhook(&id) {
            Ok(Some(h)) if h.enabled && !h.failing => h,
            _ => return,
        };
        let caller = Caller {
            principal: Some(Principal {
                user: hook.owner.clone(),
                role: match core.store.get_user(&hook.owner) {
                    Ok(Some(u)) => u.role,
                    _ => return, // the owner is gone: so is the hook's right to events
                },
            }),
            ip: None,
        };
        let filter = EventFilter {
            types: hook.events.clone(),
            namespace: None,
        };
        let page = match core.events_page(&caller, hook.cursor, 100, &filter) {
            Ok(p) => p,
            Err(e) if e.code == "events_trimmed" => {
                // Events were trimmed before delivery: skip to the oldest kept one.
                let (oldest, _) = core.store.event_bounds().unwrap_or((None, 0));
                let cursor = oldest.map_or(hook.cursor, |o| o - 1);
                tracing::warn!(hook = %id, cursor, "webhook missed trimmed events");
                progress(&core, &hook, cursor, 0, None, false, None);
                continue;
            }
            Err(e) => {
                tracing::error!(hook = %id, error = %e, "cannot read events for a webhook");
                let _ = wake.recv_timeout(Duration::from_secs(5));
                continue;
            }
        };
        if page.events.is_empty() {
            if page.next_since > hook.cursor {
                progress(&core, &hook, page.next_since, 0, None, false, None);
                continue;
            }
            let _ = wake.recv_timeout(Duration::from_secs(30));
            continue;
        }
        let format = core.webhooks.format(&hook.format);
        let mut cursor = hook.cursor;
        let mut failures = hook.failures;
        let mut since = hook.failing_since_ms;
        for ev in &page.events {
            let Some((kind, payload)) = format(ev) else {
                cursor = ev.seq;
                continue;
            };
            let body = payload.to_string();
            let delivery_id = uuid::Uuid::now_v7().to_string();
            let started = Instant::now();
            let result = check_target(&hook.url, core.webhooks.settings.allow_private).and_then(
                |(host, addrs)| {
                    agent(addrs, host)
                        .post(&hook.url)
                        .set("Content-Type", "application/json")
                        .set("X-Ringbox-Event", &kind)
                        .set("X-Ringbox-Delivery", &delivery_id)
                        .set(
                            "X-Ringbox-Signature",
                            &signature(&hook.secret, body.as_bytes()),
                        )
                        .send_string(&body)
                        .map_err(|e| match e {
                            ureq::Error::Status(code, _) => {
                                CoreError::invalid(format!("status {code}"))
                            }
                            e => CoreError::invalid(e.to_string()),
                        })
                },
            );
            let (status, error) = match &result {
                Ok(r) => (Some(r.status()), None),
                Err(e) => (
                    e.message
                        .strip_prefix("status ")
                        .and_then(|s| s.parse().ok()),
                    Some(e.message.clone()),
                ),
            };
            let delivery = DeliveryRecord {
                delivery_id,
                event_seq: ev.seq,
                event_type: kind,
                attempt: failures + 1,
                at_ms: now_ms(),
                status,
                error: error.clone(),
                duration_ms: started.elapsed().as_millis() as u64,
            };
            if error.is_none() {
                cursor = ev.seq;
                failures = 0;
                since = None;
                progress(&core, &hook, cursor, 0, None, false, Some(delivery));
                continue;
            }
            failures += 1;
            let first = *since.get_or_insert(now_ms());
            let give_up = now_ms() - first > core.webhooks.settings.give_up.as_millis() as i64;
            progress(
                &core,
                &hook,
                cursor,
                failures,
                since,
                give_up,
                Some(delivery),
            );
            if give_up {
                tracing::warn!(hook = %id, url = %hook.url, "webhook marked failing after retrying for too long");
                return;
            }
            // Wait, then retry this event (woken early only by a change of the hook).
            std::thread::sleep(backoff(failures - 1));
            break;
        }
        if cursor > hook.cursor && failures == 0 {
            // Skipped (unformatted) events at the end of the page.
            progress(&core, &hook, cursor, 0, None, false, None);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn progress(
    core: &Core,
    hook: &WebhookRecord,
    cursor: u64,
    failures: u32,
    failing_since_ms: Option<i64>,
    failing: bool,
    delivery: Option<DeliveryRecord>,
) {
    let r = core
        .store
        .writer()
        .submit_blocking(Command::WebhookProgress {
            id: hook.id,
            progress: WebhookProgress {
                cursor,
                failures,
                failing_since_ms,
                failing,
                delivery,
            },
        });
    if let Err(e) = r {
        tracing::warn!(hook = %hook.id, error = %e, "cannot record a webhook's progress");
    }
}

/// The JSON of a webhook (the secret only when `with_secret`).
pub fn webhook_json(h: &WebhookRecord, with_secret: bool) -> Value {
    let mut v = json!({
        "id": h.id.to_string(),
        "url": h.url,
        "events": h.events,
        "enabled": h.enabled,
        "failing": h.failing,
        "created_at": crate::util::time::rfc3339_ms(h.created_at_ms),
        "last_delivered_seq": h.cursor,
    });
    if with_secret {
        v["secret"] = Value::String(h.secret.clone());
    }
    v
}

/// The JSON of a delivery attempt.
pub fn delivery_json(d: &DeliveryRecord) -> Value {
    json!({
        "id": d.delivery_id,
        "event_seq": d.event_seq,
        "event": d.event_type,
        "attempt": d.attempt,
        "at": crate::util::time::rfc3339_ms(d.at_ms),
        "status": d.status,
        "error": d.error,
        "duration_ms": d.duration_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_signatures() {
        assert!(check_target("http://127.0.0.1:9/x", false).is_err());
        assert!(check_target("http://127.0.0.1:9/x", true).is_ok());
        assert!(check_target("http://10.1.2.3/x", false).is_err());
        assert!(check_target("http://[::1]:80/x", false).is_err());
        assert!(check_target("http://169.254.169.254/latest", false).is_err());
        assert!(check_target("https://example.com/", true).is_err());
        assert!(check_target("ftp://example.com/", true).is_err());
        assert!(check_target("http://user@127.0.0.1/", true).is_err());
        assert!(is_public("8.8.8.8".parse().unwrap()));
        assert!(!is_public("::ffff:127.0.0.1".parse().unwrap()));
        // RFC 4231 test case 2.
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(signature("Jefe", b"what do ya want for nothing?").ends_with("964ec3843"));
        assert!(backoff(0) >= Duration::from_secs(1) && backoff(20) <= MAX_BACKOFF * 2);
    }
}
