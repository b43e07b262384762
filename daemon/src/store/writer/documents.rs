//! JSON documents of NoSQL datasets (what the ingest engine routes away from SQLite):
//! the `PutDocuments` command and the page read behind `GET /v1/datasets/{ns}/rows`.
//!
//! Layout: the `documents` database maps `namespace \0 seq[8 big-endian]` to the
//! document's JSON text, so a namespace's documents are one key range in insertion
//! order and a page is a range scan from a sequence number. The last sequence number
//! given in a namespace is kept in `meta` under `documents.seq.<namespace>` (big-endian
//! u64), so numbers are never reused; the first document of a namespace is 1.
//!
//! A command appends its documents in order inside the batch's transaction (so they
//! commit together with the other commands of the batch, or not at all). Documents are
//! stored as given: the caller validated them (the ingest engine parsed them, bounded
//! their depth and size). Document writes change no object or blob, so they leave
//! `data_generation` alone (see the writer's module docs).
//!
//! Deleting documents is not supported yet (no route asks for it).

use std::ops::Bound;

use heed::RwTxn;

use super::{fatal, rejected, Fail, Reply, Writer};
use crate::store::{keys, meta_u64, Store, StoreError};

/// Most documents one command may append (the ingest engine's own bound is lower).
pub const MAX_DOCUMENTS_PER_COMMAND: usize = 100_000;

/// The `meta` key of a namespace's last sequence number.
fn seq_key(ns: &str) -> Vec<u8> {
    let mut k = b"documents.seq.".to_vec();
    k.extend_from_slice(ns.as_bytes());
    k
}

/// `ns \0 seq`.
fn doc_key(ns: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(ns.len() + 9);
    k.extend_from_slice(ns.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn check_namespace(ns: &str) -> Result<(), StoreError> {
    if ns.is_empty() {
        return Err(StoreError::Invalid("a dataset namespace is empty".into()));
    }
    keys::validate_namespace(ns)
}

impl Writer {
    pub(super) fn put_documents(
        &self,
        txn: &mut RwTxn,
        ns: &str,
        documents: Vec<String>,
    ) -> Result<Reply, Fail> {
        check_namespace(ns).map_err(Fail::Rejected)?;
        if documents.len() > MAX_DOCUMENTS_PER_COMMAND {
            return Err(Fail::Rejected(StoreError::Invalid(format!(
                "{} documents in one write; at most {MAX_DOCUMENTS_PER_COMMAND}",
                documents.len()
            ))));
        }
        let sk = seq_key(ns);
        let last = meta_u64(&self.dbs.meta, txn, &sk).map_err(rejected)?;
        let first = last + 1;
        let count = documents.len() as u64;
        for (i, doc) in documents.iter().enumerate() {
            self.dbs
                .documents
                .put(txn, &doc_key(ns, first + i as u64), doc.as_bytes())
                .map_err(fatal)?;
        }
        if count > 0 {
            self.dbs
                .meta
                .put(txn, &sk, &(last + count).to_be_bytes())
                .map_err(fatal)?;
        }
        Ok(Reply::Documents { first, count })
    }
}

/// One page of a namespace's documents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocumentsPage {
    /// (sequence number, JSON text), in order.
    pub documents: Vec<(u64, String)>,
    /// The sequence number to pass as `after` for the next page, when more follow.
    pub next: Option<u64>,
}

impl Store {
    /// Documents of namespace `ns` with sequence numbers above `after` (0 = from the
    /// start): at most `limit` (at least 1) and, after the first, no more than about
    /// `max_bytes` of JSON text. One short read transaction.
    pub fn documents_page(
        &self,
        ns: &str,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<DocumentsPage, StoreError> {
        check_namespace(ns)?;
        let limit = limit.max(1);
        let mut prefix = ns.as_bytes().to_vec();
        prefix.push(0);
        let start = doc_key(ns, after);
        let txn = self.inner.env.read_txn()?;
        let iter = self
            .inner
            .dbs
            .documents
            .range(&txn, &(Bound::Excluded(start.as_slice()), Bound::Unbounded))?;
        let mut page = DocumentsPage::default();
        let mut bytes = 0usize;
        let mut last = after;
        for item in iter {
            let (key, value) = item?;
            let Some(seq) = key
                .strip_prefix(prefix.as_slice())
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map(u64::from_be_bytes)
            else {
                break; // past the namespace
            };
            if page.documents.len() >= limit || (!page.documents.is_empty() && bytes >= max_bytes) {
                page.next = Some(last);
                break;
            }
            let text = String::from_utf8(value.to_vec()).map_err(|_| {
                StoreError::Lmdb(format!(
                    "document {seq} of {ns:?} is not UTF-8; run `ringbox check`"
                ))
            })?;
            bytes += text.len();
            page.documents.push((seq, text));
            last = seq;
        }
        Ok(page)
    }

    /// The number of documents namespace `ns` ever received (its last sequence number).
    #[allow(dead_code)] // tests; the catalogue keeps the count callers see
    pub fn documents_count(&self, ns: &str) -> Result<u64, StoreError> {
        let txn = self.inner.env.read_txn()?;
        meta_u64(&self.inner.dbs.meta, &txn, &seq_key(ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Command, Durability, StoreConfig};

    fn put(store: &Store, ns: &str, docs: &[&str]) -> Reply {
        store
            .writer()
            .submit_blocking(Command::PutDocuments {
                namespace: ns.into(),
                documents: docs.iter().map(|d| d.to_string()).collect(),
            })
            .unwrap()
    }

    #[test]
    fn documents_append_in_order_and_page() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig {
            durability: Durability::None,
            ..StoreConfig::new(dir.path().join("data"))
        })
        .unwrap();
        assert_eq!(
            put(&store, "events", &["{\"a\":1}", "{\"a\":2}"]),
            Reply::Documents { first: 1, count: 2 }
        );
        // Another namespace, with a name that is a prefix of the first: its own range.
        assert_eq!(
            put(&store, "event", &["{\"b\":1}"]),
            Reply::Documents { first: 1, count: 1 }
        );
        assert_eq!(
            put(&store, "events", &["{\"a\":3}"]),
            Reply::Documents { first: 3, count: 1 }
        );
        let p = store.documents_page("events", 0, 2, 1 << 20).unwrap();
        assert_eq!(
            p.documents,
            vec![(1, "{\"a\":1}".to_string()), (2, "{\"a\":2}".to_string())]
        );
        assert_eq!(p.next, Some(2));
        let p = store.documents_page("events", 2, 2, 1 << 20).unwrap();
        assert_eq!(p.documents, vec![(3, "{\"a\":3}".to_string())]);
        assert_eq!(p.next, None);
        let p = store.documents_page("event", 0, 10, 1 << 20).unwrap();
        assert_eq!(p.documents.len(), 1);
        // The byte bound stops a page early, but never before its first document.
        let p = store.documents_page("events", 0, 10, 1).unwrap();
        assert_eq!(p.documents.len(), 1);
        assert_eq!(p.next, Some(1));
        assert!(store
            .documents_page("nothing", 0, 10, 100)
            .unwrap()
            .documents
            .is_empty());
        assert_eq!(store.documents_count("events").unwrap(), 3);
        // Bad namespaces are refused, and a refused command changes nothing.
        assert!(store
            .writer()
            .submit_blocking(Command::PutDocuments {
                namespace: "a\0b".into(),
                documents: vec!["{}".into()],
            })
            .is_err());
        assert!(store.documents_page("", 0, 1, 1).is_err());
        // Document writes leave the data generation alone.
        assert_eq!(store.writer().data_generation(), 0);
    }
}
