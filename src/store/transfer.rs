//! Moving data into a store in bulk: `hooklatch import` (exported lines, replayed through
//! the idempotent step in batches) and `hooklatch copy` (rows moved as they are, ids
//! kept). A role of its own because only these commands call it, and both want large
//! transactions where the hot path wants one event per commit.

use std::sync::Arc;

use crate::model::{History, NewEvent, Outcome};
use crate::store::{DatabaseUrl, Store, StoreError, StoreOptions};

/// Lines an import hands to the store at once: large enough that the commit is shared
/// by hundreds of events, small enough that a failing batch is quick to retry.
pub const IMPORT_BATCH: usize = 500;

/// Bulk writes and reads for the commands that move a store (SPEC §5.2).
pub trait Transfer: Store {
    /// Records imported events in order, in one transaction, through the same idempotent
    /// step as a delivery, each keeping its `history`: the event's timestamps and
    /// `delivery_count`, and `created_at` = `first_seen_at` for a conversion it creates.
    /// An event already on record with the same fingerprint changes nothing (a
    /// `Duplicate`, not counted). A conflict is counted and kept as a delivery's would be.
    /// On an error nothing of the batch is recorded.
    fn import_batch(&self, batch: Vec<(NewEvent, History)>) -> Result<Vec<Outcome>, StoreError>;
}

/// Opens the backend the URL names, for a command that moves data. Does not migrate.
pub fn open_transfer(
    url: &DatabaseUrl,
    options: &StoreOptions,
) -> Result<Arc<dyn Transfer>, StoreError> {
    use crate::store::{PostgresStore, SqliteStore};
    Ok(match url {
        DatabaseUrl::Sqlite(path) => Arc::new(SqliteStore::open(path, options)?),
        DatabaseUrl::SqliteMemory => Arc::new(SqliteStore::open_memory(options)?),
        DatabaseUrl::Postgres(url) => Arc::new(PostgresStore::open(url, options)?),
    })
}
