//! The event log: every change gets an event, with a global gap-free sequence number,
//! written in the **same transaction** as the change (so an event exists if and only
//! if its change committed), and handed to the event sink after the commit.
//!
//! Sequence numbers: `events.last_seq` in `meta` is the last number given (kept even
//! when every event was trimmed, so numbers never repeat). The writer holds the next
//! number in memory; a batch that fails gives its numbers back (its transaction, with
//! its events and the new `last_seq`, is aborted), so committed events stay gap-free.
//!
//! Retention: after the events of a batch, the oldest events beyond `max` in count or
//! `max_age` in age are deleted, at most [`TRIM_PER_BATCH`] per batch, so trimming a
//! long backlog never makes one batch (and the writes waiting on it) slow.
//!
//! Events do not move `data_generation` (they change no object), so appending them
//! keeps the workers' read caches warm.

use std::sync::Arc;

use heed::RwTxn;

use super::{fatal, Batch, Fail, Writer};
use crate::store::records::{self, EventObject, EventRecord, ObjectRecord};
use crate::store::EventSink;

/// Most events deleted by retention per batch.
const TRIM_PER_BATCH: usize = 2_000;
/// The `meta` key of the last sequence number given.
pub(crate) const META_LAST_SEQ: &[u8] = b"events.last_seq";

/// Retention and delivery of events.
#[derive(Clone, Debug)]
pub struct EventSettings {
    pub max: u64,
    pub max_age_ms: i64,
    pub sink: Option<EventSink>,
}

impl Writer {
    /// Queue an object event of the command being applied.
    pub(super) fn emit_object(
        &self,
        b: &mut Batch,
        kind: &str,
        rec: &ObjectRecord,
        changes: Option<serde_json::Value>,
    ) {
        self.emit(
            b,
            kind,
            Some(super::owner_of(rec).to_string()),
            Some(EventObject::of(rec)),
            None,
            changes,
        );
    }

    /// Queue an event of the command being applied.
    pub(super) fn emit(
        &self,
        b: &mut Batch,
        kind: &str,
        owner: Option<String>,
        object: Option<EventObject>,
        subject: Option<String>,
        changes: Option<serde_json::Value>,
    ) {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        b.events.push(EventRecord {
            seq,
            kind: kind.to_string(),
            at_ms: b.now_ms,
            actor: b.actor.clone(),
            owner,
            object,
            subject,
            changes_json: changes.map(|c| c.to_string()),
        });
    }

    /// Write the batch's events, the last sequence number, and trim (before commit).
    pub(super) fn write_events(&self, txn: &mut RwTxn, b: &Batch) -> Result<(), Fail> {
        if b.events.is_empty() {
            return Ok(());
        }
        for ev in &b.events {
            let value = records::encode_event(ev).map_err(Fail::Rejected)?;
            self.dbs
                .events
                .put(txn, &ev.seq.to_be_bytes(), &value)
                .map_err(fatal)?;
        }
        let last = b.events.last().map_or(0, |e| e.seq);
        self.dbs
            .meta
            .put(txn, META_LAST_SEQ, &last.to_be_bytes())
            .map_err(fatal)?;
        self.trim_events(txn, b.now_ms, last)
    }

    fn trim_events(&self, txn: &mut RwTxn, now_ms: i64, last: u64) -> Result<(), Fail> {
        let min_seq = last.saturating_sub(self.events.max - 1);
        let min_at = now_ms.saturating_sub(self.events.max_age_ms);
        let mut dead = Vec::new();
        for item in self.dbs.events.iter(txn).map_err(fatal)? {
            let (key, value) = item.map_err(fatal)?;
            let seq = <[u8; 8]>::try_from(key).map_or(0, u64::from_be_bytes);
            let old =
                seq < min_seq || records::decode_event(value).map_or(true, |e| e.at_ms < min_at);
            if !old || dead.len() >= TRIM_PER_BATCH {
                break;
            }
            dead.push(key.to_vec());
        }
        for key in dead {
            self.dbs.events.delete(txn, &key).map_err(fatal)?;
        }
        Ok(())
    }

    /// After the commit: hand the batch's events to the sink.
    pub(super) fn publish_events(&self, b: &mut Batch) {
        if b.events.is_empty() {
            return;
        }
        if let Some(sink) = &self.events.sink {
            let events: Arc<[EventRecord]> = std::mem::take(&mut b.events).into();
            (sink.0)(events);
        }
    }
}
