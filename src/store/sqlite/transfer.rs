//! Bulk moves into SQLite ([`Transfer`]): each batch is one job on the writer thread,
//! one `IMMEDIATE` transaction and one fsync for the whole batch, serialised with the
//! deliveries a running server writes.

use rusqlite::TransactionBehavior;

use super::totals::Delta;
use super::{SqliteStore, map_err};
use crate::model::{History, NewEvent, Outcome};
use crate::store::{StoreError, Transfer};

impl Transfer for SqliteStore {
    fn import_batch(&self, batch: Vec<(NewEvent, History)>) -> Result<Vec<Outcome>, StoreError> {
        self.with_writer(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(map_err)?;
            // The whole batch commits or none of it, so one delta for the batch.
            let mut delta = Delta::default();
            let outcomes = batch
                .iter()
                .map(|(event, history)| {
                    super::process::apply(&tx, event, Some(history), &mut delta)
                })
                .collect::<Result<Vec<_>, _>>()?;
            delta.write(&tx)?;
            tx.commit().map_err(map_err)?;
            Ok(outcomes)
        })
    }
}
