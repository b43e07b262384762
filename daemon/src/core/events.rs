//! The change feed every API translates: the store's event log (a global, gap-free
//! sequence written in the transaction of each change), read in pages, and the live
//! stream of committed events fanned out to every worker.
//!
//! - Visibility is decided per event, the same for every API: an admin sees every
//!   event; a user sees the events of their own objects and of their own account;
//!   when the store is public (`--anonymous read|write`) object events are visible to
//!   everyone. Nobody sees another user's object events otherwise.
//! - Pages: [`Local::events_page`] answers the visible events after a sequence number,
//!   oldest first, with the number to continue from. A client whose position was
//!   trimmed away (retention) gets `Gone` with the oldest kept number, so it knows it
//!   missed events.
//! - Live: the writer hands each commit's events to the process-wide hub, which sends
//!   them to every worker; each worker delivers them to its own subscribers through
//!   bounded queues ([`super::broadcast`]). A subscriber that falls behind is cut off
//!   (it resumes from its last sequence number with a page read or a new
//!   subscription), so it never blocks the writer, the worker or the others.
//! - [`Local::events_stream`] combines both without gaps or duplicates: it subscribes
//!   first, replays the log after the client's position, then goes on with the live
//!   events, skipping those the replay already gave.

use std::sync::Arc;

use serde_json::{json, Value};

use super::access::Caller;
use super::broadcast::{Hub, LocalFanout, Recv, Subscription};
use super::error::{CoreError, CoreResult, ErrorKind};
use super::{Core, Local};
use crate::store::EventRecord;
use crate::util::{hex, time::rfc3339_ms};

/// The events of one commit, as the hub carries them.
pub type EventBatch = Arc<[EventRecord]>;
/// The process-wide hub of committed events.
pub type EventHub = Hub<EventBatch>;
/// One worker's subscribers.
pub type EventFanout = LocalFanout<EventBatch>;

/// Most events a page scans (visible or not) before answering with what it found.
const MAX_SCAN: usize = 10_000;
/// Commits a live subscriber may have queued before it is cut off.
pub const SUBSCRIBER_QUEUE: usize = 4096;

/// Which events a reader wants.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Event types (`object.created`) or families (`object.*`, `object`); empty = all.
    pub types: Vec<String>,
    /// Only objects of this namespace.
    pub namespace: Option<String>,
}

impl EventFilter {
    fn matches(&self, ev: &EventRecord) -> bool {
        let type_ok = self.types.is_empty()
            || self.types.iter().any(|t| {
                let family = t.trim_end_matches(".*").trim_end_matches('.');
                t == &ev.kind
                    || (ev.kind.starts_with(family)
                        && ev.kind.as_bytes().get(family.len()) == Some(&b'.'))
            });
        let ns_ok = self
            .namespace
            .as_deref()
            .is_none_or(|ns| ev.object.as_ref().is_some_and(|o| o.namespace == ns));
        type_ok && ns_ok
    }
}

/// How many recent events' texts a worker keeps for [`event_text`].
const RECENT_TEXTS: usize = 64;
/// The latest texts of [`event_text`], keyed by (seq, time).
type RecentTexts = std::collections::VecDeque<((u64, i64), std::rc::Rc<str>)>;

/// [`event_json`] as text, made once per worker however many of its subscribers
/// send the event: they receive the same events in the same order, so a short list
/// of the latest texts (keyed by the unique `seq`) serves them all, and a thousand
/// subscribers no longer cost a thousand serialisations of every event. (The key adds
/// the event's time to its `seq` so that two stores in one thread, as in tests, never
/// share a text.)
pub fn event_text(ev: &EventRecord) -> std::rc::Rc<str> {
    thread_local! {
        static RECENT: std::cell::RefCell<RecentTexts> =
            const { std::cell::RefCell::new(RecentTexts::new()) };
    }
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        let key = (ev.seq, ev.at_ms);
        if let Some((_, text)) = recent.iter().rev().find(|(k, _)| *k == key) {
            return text.clone();
        }
        let text: std::rc::Rc<str> = event_json(ev).to_string().into();
        if recent.len() == RECENT_TEXTS {
            recent.pop_front();
        }
        recent.push_back((key, text.clone()));
        text
    })
}

/// The JSON of an event, the same in pages, streams and webhooks.
pub fn event_json(ev: &EventRecord) -> Value {
    let mut v = json!({
        "seq": ev.seq,
        "type": ev.kind,
        "at": rfc3339_ms(ev.at_ms),
        "actor": ev.actor,
    });
    if let Some(o) = &ev.object {
        v["object"] = json!({
            "id": o.id.to_string(),
            "namespace": o.namespace,
            "name": o.name,
            "size": o.size,
            "sha256": o.sha256.map(|s| hex::encode(&s)),
            "mime_type": o.mime_type,
        });
    }
    if let Some(s) = &ev.subject {
        v["subject"] = Value::String(s.clone());
    }
    if let Some(c) = ev
        .changes_json
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
    {
        v["changes"] = c;
    }
    v
}

/// One page of the log.
#[derive(Clone, Debug, Default)]
pub struct EventPage {
    pub events: Vec<EventRecord>,
    /// Pass back as `since` to continue.
    pub next_since: u64,
}

impl Core {
    /// May `caller` see `ev`?
    pub fn may_see_event(&self, caller: &Caller, ev: &EventRecord) -> bool {
        if caller.is_admin() {
            return true;
        }
        let owner = ev.owner.as_deref();
        let mine = caller.user().is_some_and(|u| Some(u) == owner);
        if ev.object.is_some() {
            mine || self.settings.policy.sees_everything(caller)
        } else {
            mine
        }
    }

    /// A page of the events after `since` that `caller` may see and `filter` keeps.
    /// `Gone` (with the oldest kept sequence number) when events after `since` were
    /// trimmed away.
    pub fn events_page(
        &self,
        caller: &Caller,
        since: u64,
        limit: usize,
        filter: &EventFilter,
    ) -> CoreResult<EventPage> {
        let limit = limit.clamp(1, 1000);
        let (oldest, last) = self.store.event_bounds()?;
        if since < last {
            if let Some(oldest) = oldest.filter(|&o| o > since + 1) {
                return Err(CoreError::new(
                    ErrorKind::Gone,
                    "events_trimmed",
                    format!(
                        "events after {since} were dropped by retention; the oldest kept is {oldest}: \
                         continue from since={}",
                        oldest - 1
                    ),
                ));
            }
        }
        let mut out = Vec::new();
        let mut at = since;
        let mut scanned = 0;
        while out.len() < limit && scanned < MAX_SCAN {
            let chunk = self.store.events_after(at, 500)?;
            if chunk.is_empty() {
                break;
            }
            for ev in chunk {
                scanned += 1;
                at = ev.seq;
                if self.may_see_event(caller, &ev) && filter.matches(&ev) {
                    out.push(ev);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
        }
        Ok(EventPage {
            events: out,
            next_since: at,
        })
    }
}

/// A live stream of events for one reader: replay, then live, without gaps or
/// duplicates (see the module docs).
#[derive(Debug)]
pub struct EventStream {
    core: Arc<Core>,
    caller: Caller,
    filter: EventFilter,
    sub: Subscription<EventBatch>,
    /// The last sequence number handed out.
    position: u64,
    /// Where the replay of the log has read up to (visible or not): live events up to
    /// here were (or will be) handed out by the replay.
    replayed: u64,
    /// Events read but not yet handed out.
    pending: std::collections::VecDeque<EventRecord>,
    replaying: bool,
}

/// What a stream yields.
#[derive(Debug)]
pub enum StreamItem {
    Event(Box<EventRecord>),
    /// The reader fell behind and was cut off; resume from `since`.
    Lagged {
        since: u64,
    },
    /// The server is shutting down the feed.
    Closed,
}

impl EventStream {
    /// The next event (cancel-safe: a dropped call loses nothing).
    pub async fn next(&mut self) -> CoreResult<StreamItem> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                self.position = ev.seq;
                return Ok(StreamItem::Event(Box::new(ev)));
            }
            if self.replaying {
                let page = self
                    .core
                    .events_page(&self.caller, self.replayed, 500, &self.filter)?;
                if page.next_since <= self.replayed {
                    // The log has nothing more: from here on, live events.
                    self.replaying = false;
                }
                self.replayed = self.replayed.max(page.next_since);
                self.pending.extend(page.events);
                continue;
            }
            match self.sub.recv().await {
                Recv::Message(batch) => {
                    for ev in batch.iter() {
                        if ev.seq <= self.replayed {
                            continue; // the replay gave it already
                        }
                        self.replayed = ev.seq;
                        if self.core.may_see_event(&self.caller, ev) && self.filter.matches(ev) {
                            self.pending.push_back(ev.clone());
                        }
                    }
                }
                Recv::Lagged => {
                    return Ok(StreamItem::Lagged {
                        since: self.position,
                    })
                }
                Recv::Closed => return Ok(StreamItem::Closed),
            }
        }
    }

    /// The last sequence number handed out.
    pub fn position(&self) -> u64 {
        self.position
    }
}

impl Local {
    /// Start delivering the hub's events to this worker's subscribers (the worker
    /// spawns the returned future once).
    pub fn event_feed(&self) -> impl std::future::Future<Output = ()> + 'static {
        let feed = self.core.events.register();
        let fanout = self.fanout.clone();
        async move { fanout.run(feed).await }
    }

    /// A stream of the events after `since` that `caller` may see.
    pub fn events_stream(
        &self,
        caller: Caller,
        since: u64,
        filter: EventFilter,
    ) -> CoreResult<EventStream> {
        // Subscribe before the replay reads the log, so nothing committed in between is
        // missed (what both give is skipped by sequence number).
        let sub = self.fanout.subscribe(SUBSCRIBER_QUEUE);
        // Refuse a trimmed position at once.
        self.core
            .events_page(&caller, since, 1, &EventFilter::default())?;
        Ok(EventStream {
            core: self.core.clone(),
            caller,
            filter,
            sub,
            position: since,
            replayed: since,
            pending: std::collections::VecDeque::new(),
            replaying: true,
        })
    }
}

impl Local {
    /// [`Local::events_stream`] from the current end of the log: only events committed
    /// from now on (for clients that expect news, not history). Events committed
    /// between reading the end and subscribing come from the log's replay, so none is
    /// missed.
    pub fn events_stream_from_now(
        &self,
        caller: Caller,
        filter: EventFilter,
    ) -> CoreResult<EventStream> {
        let (_, last) = self.store.event_bounds()?;
        self.events_stream(caller, last, filter)
    }
}

impl EventStream {
    /// The object `id` as this stream's reader may see it now: `None` when it is gone
    /// or not theirs to read (for APIs whose notifications carry the object).
    pub fn object(
        &self,
        id: crate::store::ObjectId,
    ) -> CoreResult<Option<crate::store::ObjectRecord>> {
        Ok(self
            .core
            .store
            .get_object(id)?
            .filter(|rec| self.core.settings.policy.may_read(&self.caller, rec)))
    }
}

impl EventStream {
    /// Make the holder of bearer `token` (an API token or an access token) this
    /// stream's reader, for sessions that authenticate by message after the stream was
    /// opened (Media Vault's `/realtime`). Events read before are dropped: they were
    /// read with the previous reader's visibility. `None` (and no change) when the
    /// token is not valid.
    pub fn authenticate(&mut self, token: &[u8]) -> CoreResult<Option<Caller>> {
        let Some(a) = self.core.verify_bearer(token)? else {
            return Ok(None);
        };
        self.caller = Caller {
            principal: Some(a.principal),
            ip: self.caller.ip,
        };
        self.pending.clear();
        Ok(Some(self.caller.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, kind: &str) -> EventRecord {
        EventRecord {
            seq,
            kind: kind.into(),
            at_ms: 1_700_000_000_000,
            actor: "anonymous".into(),
            owner: None,
            object: None,
            subject: Some("u1".into()),
            changes_json: None,
        }
    }

    #[test]
    fn an_events_text_is_made_once_per_worker() {
        let a = event(7, "user.created");
        let first = event_text(&a);
        assert_eq!(&*first, event_json(&a).to_string());
        // Another subscriber sending the same event gets the same text.
        assert!(std::rc::Rc::ptr_eq(&first, &event_text(&a)));
        // Another event (or the same seq at another time: another store) is its own.
        let b = event(8, "user.deleted");
        assert_eq!(&*event_text(&b), event_json(&b).to_string());
        let mut other = event(7, "user.deleted");
        other.at_ms += 1;
        assert_eq!(&*event_text(&other), event_json(&other).to_string());
        // The list is bounded: old texts are made again, equal to the first.
        for seq in 100..100 + RECENT_TEXTS as u64 {
            event_text(&event(seq, "user.created"));
        }
        let again = event_text(&a);
        assert!(!std::rc::Rc::ptr_eq(&first, &again));
        assert_eq!(first, again);
    }
}
