//! SQLite backend: an embedded file in WAL mode, `synchronous=FULL` unless the operator
//! opts out, pooled with r2d2.
//!
//! Writes go through one writer thread per process ([`writer`]), which applies queued
//! events in batches: one transaction, one fsync, every event in its own savepoint
//! (group commit). Queueing on that thread's channel instead of on SQLite's busy handler
//! keeps concurrent clients from ever seeing `SQLITE_BUSY`. Other processes on the same
//! file (the command line while a server runs) still meet `busy_timeout`.
//!
//! A duplicate is decided by a read on a reader connection and never waits for the
//! writer: its count is handed to the writer, which commits it with its next batch. No
//! connection ever changes its `synchronous` level for that, and the writer checks the
//! level before every commit.
//!
//! What decides "exactly once" is still the unique index: the writer looks the id up
//! again inside its transaction before inserting, and the insert would fail on the
//! index if anything else had claimed the id.

mod admin;
mod backup;
mod checkpoint;
mod ops;
mod outbox;
mod process;
mod totals;
mod transfer;
mod writer;

use std::path::Path;
use std::time::Duration;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode};

use self::writer::Writer;
use super::rows::Columns;
use super::{StoreError, StoreOptions};

mod sql {
    pub const FIND_EVENT: &str = include_str!("../../../sql/sqlite/find_event.sql");
    pub const INSERT_CONVERSION: &str = include_str!("../../../sql/sqlite/insert_conversion.sql");
    pub const FIND_SALE_CONVERSION: &str =
        include_str!("../../../sql/sqlite/find_sale_conversion.sql");
    pub const APPLY_CONVERSION: &str = include_str!("../../../sql/sqlite/apply_conversion.sql");
    pub const FIND_CONVERSION: &str = include_str!("../../../sql/sqlite/find_conversion.sql");
    pub const CONVERSION_BEFORE: &str = include_str!("../../../sql/sqlite/conversion_before.sql");
    pub const INSERT_EVENT: &str = include_str!("../../../sql/sqlite/insert_event.sql");
    pub const COUNT_DUPLICATE: &str = include_str!("../../../sql/sqlite/count_duplicate.sql");
    pub const COUNT_DUPLICATES: &str = include_str!("../../../sql/sqlite/count_duplicates.sql");
    pub const INSERT_CONFLICT: &str = include_str!("../../../sql/sqlite/insert_conflict.sql");
    pub const COUNT_CONFLICT: &str = include_str!("../../../sql/sqlite/count_conflict.sql");
    pub const GET_EVENT: &str = include_str!("../../../sql/sqlite/get_event.sql");
    pub const LIST_CONFLICTS: &str = include_str!("../../../sql/sqlite/list_conflicts.sql");
    pub const PING: &str = include_str!("../../../sql/sqlite/ping.sql");
    pub const CHECKPOINT: &str = include_str!("../../../sql/sqlite/checkpoint.sql");
    pub const SAVEPOINT_EVENT: &str = include_str!("../../../sql/sqlite/savepoint_event.sql");
    pub const RELEASE_EVENT: &str = include_str!("../../../sql/sqlite/release_event.sql");
    pub const ROLLBACK_EVENT: &str = include_str!("../../../sql/sqlite/rollback_event.sql");
}

type Conn = PooledConnection<SqliteConnectionManager>;

/// Prepared statements kept per connection (see `open`).
const STATEMENT_CACHE: usize = 64;

pub struct SqliteStore {
    /// Reader connections; the writer thread borrows one per batch as well.
    pool: Pool<SqliteConnectionManager>,
    /// `None` only while being dropped.
    writer: Option<Writer>,
    timeout: Duration,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<SqliteStore, StoreError> {
        if path.is_dir() {
            return Err(StoreError::Unavailable(format!(
                "{} is a directory, not a database file",
                path.display()
            )));
        }
        Self::build(
            SqliteConnectionManager::file(path),
            options,
            options.pool_size,
            true,
        )
    }

    /// A private in-memory database (`sqlite::memory:`), for tests. One connection, kept
    /// for the life of the store, because each connection would see its own database.
    pub fn open_memory(options: &StoreOptions) -> Result<SqliteStore, StoreError> {
        Self::build(SqliteConnectionManager::memory(), options, 1, false)
    }

    fn build(
        manager: SqliteConnectionManager,
        options: &StoreOptions,
        size: u32,
        file: bool,
    ) -> Result<SqliteStore, StoreError> {
        let synchronous = if options.sqlite_full_sync {
            "FULL"
        } else {
            "NORMAL"
        };
        let busy = options.statement_timeout;
        // Per connection, because r2d2 opens connections lazily on several threads.
        // busy_timeout first, so switching to WAL waits for another process instead of
        // failing.
        let manager = manager.with_init(move |c| {
            c.busy_timeout(busy)?;
            // A file this process may not write opens read-only without an error, and
            // such a connection would refuse every write for as long as the pool keeps
            // it, even after the file is writable again. Refused here, it is retried
            // later instead: writes get 503 during the fault and resume after it.
            if c.is_readonly(rusqlite::MAIN_DB)? {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
                    Some("the database file is not writable".into()),
                ));
            }
            // The pragma answers the mode now in force: a file that cannot switch (a
            // filesystem without shared memory, a read-only WAL) answers something else,
            // and then every promise about concurrent readers would be false.
            let mode: String =
                c.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
            if file && !mode.eq_ignore_ascii_case("wal") {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!("journal_mode=WAL did not take effect (got {mode})")),
                ));
            }
            c.pragma_update(None, "synchronous", synchronous)?;
            if file {
                // Checkpoints are the checkpointer thread's (see `checkpoint`); this is
                // only its backstop.
                c.pragma_update(None, "wal_autocheckpoint", checkpoint::BACKSTOP_PAGES)?;
            }
            c.pragma_update(None, "foreign_keys", "ON")?;
            // The receive path, the totals, the forwarder and the console's reads share
            // these connections and use some 40 cached statements between them; rusqlite
            // keeps 16, and an evicted statement is parsed again on its next use.
            c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            Ok(())
        });
        let pool = Pool::builder()
            .max_size(size.max(1))
            .min_idle(Some(1))
            // A connection to a local file cannot go stale, and the check (an empty
            // statement through SQLite's parser) would be paid on every duplicate's read.
            .test_on_check_out(false)
            .connection_timeout(options.connect_timeout)
            // An in-memory database lives exactly as long as its connection.
            .idle_timeout(None)
            .max_lifetime(None)
            .build(manager)
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot open the SQLite database: {e}"))
            })?;
        // An in-memory database has no WAL to checkpoint.
        let checkpointer = if file {
            Some(checkpoint::Checkpointer::start(pool.clone())?)
        } else {
            None
        };
        let writer = Writer::start(
            pool.clone(),
            synchronous,
            options.statement_timeout,
            checkpointer,
        )?;
        Ok(SqliteStore {
            pool,
            writer: Some(writer),
            timeout: options.statement_timeout,
        })
    }

    fn conn(&self) -> Result<Conn, StoreError> {
        self.pool
            .get()
            .map_err(|e| StoreError::Timeout(format!("no SQLite connection: {e}")))
    }

    fn writer(&self) -> Result<&Writer, StoreError> {
        self.writer
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the SQLite store is closed".into()))
    }

    /// Runs `work` on the writer's connection between two batches: for maintenance and
    /// for tests that need to see or disturb what the writer sees.
    pub fn with_writer<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer()?.run(work)
    }

    /// New events waiting on the writer's queue, not yet in a batch.
    pub fn queued_writes(&self) -> usize {
        self.writer.as_ref().map_or(0, Writer::queued)
    }

    /// Commits pending duplicate counts, so what is read next includes them.
    pub(super) fn flush_pending_counts(&self) -> Result<(), StoreError> {
        self.writer()?.flush()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // The writer first: it commits what is queued while the pool is still open.
        drop(self.writer.take());
    }
}

/// Lock waits past `busy_timeout` are timeouts; an unwritable or full disk means the store
/// is unavailable; anything else is unexpected.
fn map_err(err: rusqlite::Error) -> StoreError {
    match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Timeout(err.to_string())
        }
        Some(
            ErrorCode::ReadOnly
            | ErrorCode::CannotOpen
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::PermissionDenied
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::NotADatabase,
        ) => StoreError::Unavailable(err.to_string()),
        _ => StoreError::Internal(err.to_string()),
    }
}

impl Columns for rusqlite::Row<'_> {
    fn opt_int(&self, index: usize) -> Result<Option<i64>, StoreError> {
        self.get(index).map_err(map_err)
    }

    fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        self.get(index).map_err(map_err)
    }
}

/// Every row of `statement`, each read by a shared mapper (`store::rows`).
fn all_rows<T>(
    statement: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    map: impl Fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut rows = statement.query(params).map_err(map_err)?;
    let mut all = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        all.push(map(row)?);
    }
    Ok(all)
}
