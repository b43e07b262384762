//! Token commands: store and revoke API tokens (keyed by the SHA-256 of the token text,
//! see `store::tokens`).
//!
//! Token writes never move `data_generation`: they change no object or blob, and
//! caches of those must survive them (see the writer's module docs on generations).

use heed::RwTxn;

use super::{fatal, rejected, Fail, Reply, Writer};
use crate::store::records::{self, TokenRecord};
use crate::store::{Sha256, StoreError};

impl Writer {
    pub(super) fn put_token(
        &self,
        txn: &mut RwTxn,
        token_sha256: Sha256,
        record: TokenRecord,
    ) -> Result<Reply, Fail> {
        let value = records::encode_token(&record).map_err(rejected)?;
        self.dbs
            .tokens
            .put(txn, &token_sha256, &value)
            .map_err(fatal)?;
        Ok(Reply::Done)
    }

    pub(super) fn delete_token(
        &self,
        txn: &mut RwTxn,
        token_sha256: Sha256,
    ) -> Result<Reply, Fail> {
        if self
            .dbs
            .tokens
            .get(txn, &token_sha256)
            .map_err(rejected)?
            .is_none()
        {
            return Err(Fail::Rejected(StoreError::NotFound));
        }
        self.dbs.tokens.delete(txn, &token_sha256).map_err(fatal)?;
        Ok(Reply::Deleted)
    }
}
