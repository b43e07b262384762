//! Reads of webhooks and their delivery log (written by the writer,
//! `writer/webhooks.rs`).

use std::ops::Bound;

use super::records::{self, DeliveryRecord, WebhookRecord};
use super::{ObjectId, Store, StoreError};

impl Store {
    /// Every webhook (there are few: they are scanned whole).
    pub fn webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError> {
        let txn = self.inner.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.inner.dbs.webhooks.iter(&txn)? {
            let (_, v) = item?;
            out.push(records::decode_webhook(v)?);
        }
        Ok(out)
    }

    pub fn get_webhook(&self, id: &ObjectId) -> Result<Option<WebhookRecord>, StoreError> {
        let txn = self.inner.env.read_txn()?;
        match self.inner.dbs.webhooks.get(&txn, id.as_bytes())? {
            Some(v) => records::decode_webhook(v).map(Some),
            None => Ok(None),
        }
    }

    /// The latest delivery attempts of a webhook, newest first.
    pub fn deliveries(
        &self,
        id: &ObjectId,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let txn = self.inner.env.read_txn()?;
        let lower = id.as_bytes().to_vec();
        let mut upper = lower.clone();
        upper.extend_from_slice(&[0xff; 8]);
        let mut out = Vec::new();
        for item in self.inner.dbs.deliveries.rev_range(
            &txn,
            &(
                Bound::Included(lower.as_slice()),
                Bound::Included(upper.as_slice()),
            ),
        )? {
            if out.len() >= limit {
                break;
            }
            let (_, v) = item?;
            out.push(records::decode_delivery(v)?);
        }
        Ok(out)
    }
}
