//! Webhook commands: create, change, delete, and the delivery thread's progress (its
//! cursor and failure state, and one record per attempt, the latest
//! [`KEEP_DELIVERIES`] kept per hook). None moves `data_generation`.

use std::ops::Bound;

use heed::RwTxn;

use super::{fatal, rejected, Fail, Reply, Writer};
use crate::store::records::{self, DeliveryRecord, WebhookRecord};
use crate::store::{ObjectId, StoreError};

/// Delivery attempts kept per webhook.
pub const KEEP_DELIVERIES: usize = 100;

/// What a PATCH of a webhook changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `Some(true)` also clears a `failing` state.
    pub enabled: Option<bool>,
}

/// The delivery thread's progress on one hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookProgress {
    pub cursor: u64,
    pub failures: u32,
    pub failing_since_ms: Option<i64>,
    pub failing: bool,
    pub delivery: Option<DeliveryRecord>,
}

impl Writer {
    fn load_webhook(&self, txn: &RwTxn, id: &ObjectId) -> Result<WebhookRecord, Fail> {
        match self
            .dbs
            .webhooks
            .get(txn, id.as_bytes())
            .map_err(rejected)?
        {
            Some(v) => records::decode_webhook(v).map_err(Fail::Rejected),
            None => Err(Fail::Rejected(StoreError::NotFound)),
        }
    }

    fn put_webhook(&self, txn: &mut RwTxn, rec: &WebhookRecord) -> Result<(), Fail> {
        let value = records::encode_webhook(rec).map_err(Fail::Rejected)?;
        self.dbs
            .webhooks
            .put(txn, rec.id.as_bytes(), &value)
            .map_err(fatal)
    }

    pub(super) fn create_webhook(
        &self,
        txn: &mut RwTxn,
        mut rec: WebhookRecord,
    ) -> Result<Reply, Fail> {
        // Only events after its creation are delivered.
        rec.cursor = self.next_seq.get().saturating_sub(1);
        self.put_webhook(txn, &rec)?;
        Ok(Reply::Webhook(rec))
    }

    pub(super) fn change_webhook(
        &self,
        txn: &mut RwTxn,
        id: ObjectId,
        change: WebhookChange,
    ) -> Result<Reply, Fail> {
        let mut rec = self.load_webhook(txn, &id)?;
        if let Some(url) = change.url {
            rec.url = url;
        }
        if let Some(events) = change.events {
            rec.events = events;
        }
        if let Some(enabled) = change.enabled {
            rec.enabled = enabled;
            if enabled {
                rec.failing = false;
                rec.failures = 0;
                rec.failing_since_ms = None;
            }
        }
        self.put_webhook(txn, &rec)?;
        Ok(Reply::Webhook(rec))
    }

    pub(super) fn delete_webhook(&self, txn: &mut RwTxn, id: ObjectId) -> Result<Reply, Fail> {
        let rec = self.load_webhook(txn, &id)?;
        self.dbs
            .webhooks
            .delete(txn, id.as_bytes())
            .map_err(fatal)?;
        let keys = self.delivery_keys(txn, &id)?;
        for k in keys {
            self.dbs.deliveries.delete(txn, &k).map_err(fatal)?;
        }
        Ok(Reply::Webhook(rec))
    }

    pub(super) fn webhook_progress(
        &self,
        txn: &mut RwTxn,
        id: ObjectId,
        p: WebhookProgress,
    ) -> Result<Reply, Fail> {
        let mut rec = self.load_webhook(txn, &id)?;
        rec.cursor = rec.cursor.max(p.cursor);
        rec.failures = p.failures;
        rec.failing_since_ms = p.failing_since_ms;
        if p.failing {
            rec.failing = true;
        }
        self.put_webhook(txn, &rec)?;
        if let Some(d) = p.delivery {
            let keys = self.delivery_keys(txn, &id)?;
            let next = keys
                .last()
                .and_then(|k| <[u8; 8]>::try_from(&k[16..]).ok())
                .map_or(0, |b| u64::from_be_bytes(b) + 1);
            let mut key = id.as_bytes().to_vec();
            key.extend_from_slice(&next.to_be_bytes());
            let value = records::encode_delivery(&d).map_err(Fail::Rejected)?;
            self.dbs.deliveries.put(txn, &key, &value).map_err(fatal)?;
            let excess = (keys.len() + 1).saturating_sub(KEEP_DELIVERIES);
            for k in keys.into_iter().take(excess) {
                self.dbs.deliveries.delete(txn, &k).map_err(fatal)?;
            }
        }
        Ok(Reply::Webhook(rec))
    }

    fn delivery_keys(&self, txn: &RwTxn, id: &ObjectId) -> Result<Vec<Vec<u8>>, Fail> {
        let lower = id.as_bytes().to_vec();
        let mut upper = lower.clone();
        upper.extend_from_slice(&[0xff; 8]);
        let mut out = Vec::new();
        for item in self
            .dbs
            .deliveries
            .range(
                txn,
                &(
                    Bound::Included(lower.as_slice()),
                    Bound::Included(upper.as_slice()),
                ),
            )
            .map_err(rejected)?
        {
            let (k, _) = item.map_err(rejected)?;
            out.push(k.to_vec());
        }
        Ok(out)
    }
}
