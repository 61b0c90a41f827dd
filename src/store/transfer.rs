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

/// The tables `copy` moves, in the order it moves them: a row only refers to rows of the
/// tables before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Conversions,
    Events,
    Conflicts,
    Outbox,
    Attempts,
    /// Each source's forwarding state (paused, failure streak): tiny, one row per source.
    Sources,
}

impl Table {
    pub const ALL: [Table; 6] = [
        Table::Conversions,
        Table::Events,
        Table::Conflicts,
        Table::Outbox,
        Table::Attempts,
        Table::Sources,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Conversions => "conversions",
            Table::Events => "webhook_events",
            Table::Conflicts => "webhook_conflicts",
            Table::Outbox => "forward_outbox",
            Table::Attempts => "forward_attempts",
            Table::Sources => "forward_sources",
        }
    }
}

/// One row as both backends can read and write it: every column as text (numbers as
/// their decimal text, timestamps as stored text), `None` for NULL, in the column order
/// of `sql/<backend>/copy_read_<table>.sql`. The first column is the row's integer key:
/// its id, or for `forward_sources`, which is keyed by source name, its place in byte
/// order of the names (the same on both backends), so one keyset loop moves every table.
pub type CopyRow = Vec<Option<String>>;

/// What a table held when the copy began: its row count and largest key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bound {
    pub rows: i64,
    pub max_key: i64,
}

/// What writing one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows that were not there and now are.
    pub inserted: u64,
    /// Rows already there with exactly the same content.
    pub present: u64,
    /// Keys of rows already there (or whose unique key is taken) with other content: left
    /// as they are.
    pub different: Vec<i64>,
}

/// The key of a copied row (its first column).
pub fn row_key(row: &CopyRow) -> Result<i64, StoreError> {
    row.first()
        .and_then(|key| key.as_deref())
        .and_then(|key| key.parse().ok())
        .ok_or_else(|| StoreError::Internal("a copied row has no integer key".into()))
}

/// Bulk writes and reads for the commands that move a store (SPEC §5.2).
pub trait Transfer: Store {
    /// Row count and largest key of every table in [`Table::ALL`] order, read in one
    /// snapshot, so rows within the bounds refer only to rows within them.
    fn copy_bounds(&self) -> Result<Vec<Bound>, StoreError>;

    /// Up to `limit` rows of `table` with `after < key <= upto`, in key order.
    fn read_rows(
        &self,
        table: Table,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> Result<Vec<CopyRow>, StoreError>;

    /// Writes rows read from another store in one transaction, keys kept. A row whose key
    /// (or one of its unique keys) is taken is left alone: counted as present when the
    /// row there is the same, else reported in `different`.
    ///
    /// The totals are not kept for these rows (on PostgreSQL the totals triggers skip
    /// them): the caller rebuilds them with `recompute_totals` once the rows are in.
    /// Calls from several threads may run at once (on PostgreSQL each on its own
    /// connection).
    fn write_rows(&self, table: Table, rows: Vec<CopyRow>) -> Result<Written, StoreError>;

    /// After the rows are in: moves the id sequences past every copied id.
    fn finish_copy(&self) -> Result<(), StoreError>;

    /// Records imported events in order, in one transaction, through the same idempotent
    /// step as a delivery, each keeping its `history`: the event's timestamps and
    /// `delivery_count`, and `created_at` = `first_seen_at` for a conversion it creates.
    /// An event already on record with the same fingerprint changes nothing (a
    /// `Duplicate`, not counted). A conflict is counted and kept as a delivery's would be.
    /// On an error nothing of the batch is recorded.
    fn import_batch(&self, batch: Vec<(NewEvent, History)>) -> Result<Vec<Outcome>, StoreError>;

    /// How many `import_batch` calls may usefully run at once (from as many threads), on
    /// lines that touch no common event or conversion.
    fn import_lanes(&self) -> usize {
        1
    }
}

/// Connections a command that moves data can use at once: `copy`'s reader and two
/// writers, `import`'s two lanes, and one for the store's own background work (folding
/// the totals). Every pooled connection is opened up front, so a larger configured pool
/// would only open connections nobody uses.
pub const TRANSFER_CONNECTIONS: u32 = 4;

/// Opens the backend the URL names, for a command that moves data, with at most
/// [`TRANSFER_CONNECTIONS`] connections. Does not migrate.
pub fn open_transfer(
    url: &DatabaseUrl,
    options: &StoreOptions,
) -> Result<Arc<dyn Transfer>, StoreError> {
    use crate::store::{PostgresStore, SqliteStore};
    let options = &StoreOptions {
        pool_size: options.pool_size.min(TRANSFER_CONNECTIONS),
        ..options.clone()
    };
    Ok(match url {
        DatabaseUrl::Sqlite(path) => Arc::new(SqliteStore::open(path, options)?),
        DatabaseUrl::SqliteMemory => Arc::new(SqliteStore::open_memory(options)?),
        DatabaseUrl::Postgres(url) => Arc::new(PostgresStore::open(url, options)?),
    })
}
