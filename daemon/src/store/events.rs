//! Reads of the event log (written by the writer, `writer/events.rs`).

use std::ops::Bound;

use super::records::{self, EventRecord};
use super::{meta_u64, Store, StoreError};

impl Store {
    /// Up to `limit` events with `seq > since`, oldest first.
    pub fn events_after(&self, since: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let txn = self.inner.env.read_txn()?;
        let from = since.saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        for item in self
            .inner
            .dbs
            .events
            .range(&txn, &(Bound::Included(&from[..]), Bound::Unbounded))?
        {
            if out.len() >= limit {
                break;
            }
            let (_, v) = item?;
            out.push(records::decode_event(v)?);
        }
        Ok(out)
    }

    /// `(oldest kept seq, last seq given)`: `oldest` is `None` when no event is kept
    /// (none yet, or all trimmed); `last` is 0 before the first event.
    pub fn event_bounds(&self) -> Result<(Option<u64>, u64), StoreError> {
        let txn = self.inner.env.read_txn()?;
        let dbs = &self.inner.dbs;
        let oldest = dbs
            .events
            .first(&txn)?
            .and_then(|(k, _)| <[u8; 8]>::try_from(k).ok())
            .map(u64::from_be_bytes);
        let last = meta_u64(&dbs.meta, &txn, crate::store::writer::META_LAST_SEQ)?;
        Ok((oldest, last))
    }
}
