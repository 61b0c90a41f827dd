//! SQLite backend: an embedded file in WAL mode, `synchronous=FULL` unless the operator
//! opts out, pooled with r2d2.
//!
//! Writers are serialised inside the process by a gate held for the whole write
//! transaction. SQLite allows one writer at a time anyway; queueing on the gate (bounded
//! by the store timeout) instead of on SQLite's busy handler keeps concurrent clients
//! from ever seeing `SQLITE_BUSY`, and keeps throughput steady where the busy handler's
//! sleeps would not. Other processes on the same file still meet `busy_timeout`.
//!
//! A duplicate is decided by a read on any pooled connection. Its bookkeeping update is
//! committed with `synchronous=NORMAL`: the event it counts is already durable, so that
//! commit need not wait for an fsync (a crash may lose the count, never the event).

use std::path::Path;
use std::time::Duration;

use parking_lot::Mutex;
use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use rust_decimal::Decimal;

use super::{MigrationFile, Store, StoreError, StoreOptions, migration_files, now_text};
use crate::model::{
    Amount, EventId, NewEvent, Outcome, Receipt, Source, StoredConflict, StoredConversion,
    StoredEvent, Totals,
};
use crate::read::{
    ConversionFilter, ConversionItem, Cursor, EventFilter, EventItem, ExportFilter, ExportItem,
    Pruned, SourceStats, SummaryGroup, Timestamp,
};

#[path = "sqlite_admin.rs"]
mod admin;

const MIGRATIONS: [MigrationFile; 5] = migration_files!("sqlite");

mod sql {
    pub const FIND_EVENT: &str = include_str!("../../sql/sqlite/find_event.sql");
    pub const INSERT_CONVERSION: &str = include_str!("../../sql/sqlite/insert_conversion.sql");
    pub const INSERT_EVENT: &str = include_str!("../../sql/sqlite/insert_event.sql");
    pub const COUNT_DUPLICATE: &str = include_str!("../../sql/sqlite/count_duplicate.sql");
    pub const INSERT_CONFLICT: &str = include_str!("../../sql/sqlite/insert_conflict.sql");
    pub const COUNT_CONFLICT: &str = include_str!("../../sql/sqlite/count_conflict.sql");
    pub const GET_EVENT: &str = include_str!("../../sql/sqlite/get_event.sql");
    pub const GET_CONVERSION: &str = include_str!("../../sql/sqlite/get_conversion.sql");
    pub const LIST_CONFLICTS: &str = include_str!("../../sql/sqlite/list_conflicts.sql");
    pub const TOTALS: &str = include_str!("../../sql/sqlite/totals.sql");
    pub const PING: &str = include_str!("../../sql/sqlite/ping.sql");
}

type Conn = PooledConnection<SqliteConnectionManager>;

pub struct SqliteStore {
    pool: Pool<SqliteConnectionManager>,
    /// Held for the whole of every write transaction (see the module header).
    writer: Mutex<()>,
    timeout: Duration,
    /// The `synchronous` level every connection runs at outside duplicate bookkeeping.
    synchronous: &'static str,
}

/// An event already on record, as the duplicate check needs it.
struct Existing {
    id: i64,
    fingerprint: String,
    conversion_id: Option<i64>,
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
        )
    }

    /// A private in-memory database (`sqlite::memory:`), for tests. One connection, kept
    /// for the life of the store, because each connection would see its own database.
    pub fn open_memory(options: &StoreOptions) -> Result<SqliteStore, StoreError> {
        Self::build(SqliteConnectionManager::memory(), options, 1)
    }

    fn build(
        manager: SqliteConnectionManager,
        options: &StoreOptions,
        size: u32,
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
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", synchronous)?;
            c.pragma_update(None, "foreign_keys", "ON")?;
            Ok(())
        });
        let pool = Pool::builder()
            .max_size(size.max(1))
            .min_idle(Some(1))
            .connection_timeout(options.connect_timeout)
            // An in-memory database lives exactly as long as its connection.
            .idle_timeout(None)
            .max_lifetime(None)
            .build(manager)
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot open the SQLite database: {e}"))
            })?;
        Ok(SqliteStore {
            pool,
            writer: Mutex::new(()),
            timeout: options.statement_timeout,
            synchronous,
        })
    }

    fn conn(&self) -> Result<Conn, StoreError> {
        self.pool
            .get()
            .map_err(|e| StoreError::Timeout(format!("no SQLite connection: {e}")))
    }

    /// Runs `work` as the only writer of this process, or times out.
    fn write<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _gate = self
            .writer
            .try_lock_for(self.timeout)
            .ok_or_else(|| StoreError::Timeout("waited too long for the SQLite writer".into()))?;
        let mut conn = self.conn()?;
        work(&mut conn)
    }

    /// Counts a repeated delivery as one autocommit statement at `synchronous=NORMAL`
    /// (see the module header). Holds the writer gate only for that statement, which
    /// waits for no fsync.
    fn count_duplicate(&self, id: i64) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(map_err)?;
            let counted = conn
                .prepare_cached(sql::COUNT_DUPLICATE)
                .and_then(|mut stmt| stmt.execute(params![id, now_text()]));
            // Restore durability for whoever uses this connection next, even on failure.
            let restored = conn.pragma_update(None, "synchronous", self.synchronous);
            counted.map_err(map_err)?;
            restored.map_err(map_err)
        })
    }
}

/// Answers a repeated delivery inside the caller's write transaction: counts a
/// duplicate, or keeps and counts a conflict.
fn repeat(conn: &Connection, existing: Existing, event: &NewEvent) -> Result<Outcome, StoreError> {
    let receipt = existing.receipt();
    let now = now_text();
    if existing.fingerprint == event.fingerprint {
        conn.execute(sql::COUNT_DUPLICATE, params![existing.id, now])
            .map_err(map_err)?;
        return Ok(Outcome::Duplicate(receipt));
    }
    conn.execute(
        sql::INSERT_CONFLICT,
        params![existing.id, event.fingerprint, event.payload, now],
    )
    .map_err(map_err)?;
    conn.execute(sql::COUNT_CONFLICT, params![existing.id, now])
        .map_err(map_err)?;
    Ok(Outcome::Conflict(receipt))
}

impl Existing {
    fn receipt(&self) -> Receipt {
        Receipt {
            webhook_event_id: self.id,
            conversion_id: self.conversion_id,
        }
    }
}

fn find(conn: &Connection, event: &NewEvent) -> Result<Option<Existing>, StoreError> {
    conn.prepare_cached(sql::FIND_EVENT)
        .and_then(|mut stmt| {
            stmt.query_row(
                params![event.source.as_str(), event.event_id.as_str()],
                |row| {
                    Ok(Existing {
                        id: row.get(0)?,
                        fingerprint: row.get(1)?,
                        conversion_id: row.get(2)?,
                    })
                },
            )
            .optional()
        })
        .map_err(map_err)
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let migrations = super::refinery_migrations(&MIGRATIONS)?;
        self.write(|conn| {
            // Grouped: every pending migration and its history row in one transaction.
            // Ungrouped, refinery commits a migration and its history row separately, and
            // a crash between the two leaves a store that no start can migrate again.
            refinery::Runner::new(&migrations)
                .set_grouped(true)
                .run(conn)
                .map(|_| ())
                .map_err(|e| StoreError::Unavailable(format!("SQLite migration failed: {e}")))
        })
    }

    fn process(&self, event: &NewEvent) -> Result<Outcome, StoreError> {
        // Hot path of a retry storm: a plain read, no transaction, then a counter bump
        // that waits for no fsync. A conflict is rare and takes the durable path below.
        let known = find(&*self.conn()?, event)?;
        if let Some(existing) = known.filter(|e| e.fingerprint == event.fingerprint) {
            self.count_duplicate(existing.id)?;
            return Ok(Outcome::Duplicate(existing.receipt()));
        }
        self.write(|conn| {
            // IMMEDIATE takes the write lock now: a deferred transaction that reads and
            // then writes fails at once (busy_timeout ignored) if another writer committed
            // after its snapshot.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(map_err)?;
            if let Some(existing) = find(&tx, event)? {
                let outcome = repeat(&tx, existing, event)?;
                tx.commit().map_err(map_err)?;
                return Ok(outcome);
            }
            let now = now_text();
            let conversion_id = match &event.conversion {
                None => None,
                Some(c) => Some(
                    tx.prepare_cached(sql::INSERT_CONVERSION)
                        .and_then(|mut stmt| {
                            stmt.query_row(
                                params![
                                    event.source.as_str(),
                                    event.event_id.as_str(),
                                    c.order_id,
                                    c.commission_amount.to_string(),
                                    c.sale_amount.to_string(),
                                    c.currency,
                                    c.tracking_id,
                                    now,
                                ],
                                |row| row.get::<_, i64>(0),
                            )
                        })
                        .map_err(map_err)?,
                ),
            };
            let webhook_event_id = tx
                .prepare_cached(sql::INSERT_EVENT)
                .and_then(|mut stmt| {
                    stmt.query_row(
                        params![
                            event.source.as_str(),
                            event.event_id.as_str(),
                            event.event_type,
                            event.payload,
                            event.fingerprint,
                            conversion_id,
                            now,
                        ],
                        |row| row.get::<_, i64>(0),
                    )
                })
                .map_err(map_err)?;
            tx.commit().map_err(map_err)?;
            Ok(Outcome::Processed(Receipt {
                webhook_event_id,
                conversion_id,
            }))
        })
    }

    fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.query_row(sql::PING, [], |_| Ok(())).map_err(map_err)
    }

    fn event(&self, source: &Source, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        let conn = self.conn()?;
        conn.query_row(
            sql::GET_EVENT,
            params![source.as_str(), id.as_str()],
            |row| {
                Ok(StoredEvent {
                    id: row.get(0)?,
                    source: row.get(1)?,
                    external_event_id: row.get(2)?,
                    event_type: row.get(3)?,
                    payload: row.get(4)?,
                    fingerprint: row.get(5)?,
                    conversion_id: row.get(6)?,
                    delivery_count: row.get(7)?,
                    conflict_count: row.get(8)?,
                    first_seen_at: row.get(9)?,
                    last_seen_at: row.get(10)?,
                })
            },
        )
        .optional()
        .map_err(map_err)
    }

    fn conversion(
        &self,
        source: &Source,
        id: &EventId,
    ) -> Result<Option<StoredConversion>, StoreError> {
        let conn = self.conn()?;
        conn.query_row(
            sql::GET_CONVERSION,
            params![source.as_str(), id.as_str()],
            |row| {
                Ok(StoredConversion {
                    id: row.get(0)?,
                    source: row.get(1)?,
                    external_event_id: row.get(2)?,
                    order_id: row.get(3)?,
                    commission_amount: amount(row.get::<_, String>(4)?, 4)?,
                    sale_amount: amount(row.get::<_, String>(5)?, 5)?,
                    currency: row.get(6)?,
                    tracking_id: row.get(7)?,
                    created_at: row.get(8)?,
                })
            },
        )
        .optional()
        .map_err(map_err)
    }

    fn conflicts(&self, source: &Source, id: &EventId) -> Result<Vec<StoredConflict>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(sql::LIST_CONFLICTS).map_err(map_err)?;
        let rows = stmt
            .query_map(params![source.as_str(), id.as_str()], |row| {
                Ok(StoredConflict {
                    id: row.get(0)?,
                    webhook_event_id: row.get(1)?,
                    fingerprint: row.get(2)?,
                    payload: row.get(3)?,
                    received_at: row.get(4)?,
                })
            })
            .map_err(map_err)?;
        rows.collect::<Result<_, _>>().map_err(map_err)
    }

    fn totals(&self) -> Result<Totals, StoreError> {
        let conn = self.conn()?;
        conn.query_row(sql::TOTALS, [], |row| {
            Ok(Totals {
                events: row.get(0)?,
                conversions: row.get(1)?,
                conflicts: row.get(2)?,
            })
        })
        .map_err(map_err)
    }
    // --- admin verbs ---
    fn list_events(
        &self,
        filter: &EventFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<EventItem>, StoreError> {
        admin::list_events(self, filter, after, limit)
    }

    fn list_conversions(
        &self,
        filter: &ConversionFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<ConversionItem>, StoreError> {
        admin::list_conversions(self, filter, after, limit)
    }

    fn conversion_by_id(&self, id: i64) -> Result<Option<ConversionItem>, StoreError> {
        admin::conversion_by_id(self, id)
    }

    fn conversion_summary(&self) -> Result<Vec<SummaryGroup>, StoreError> {
        admin::conversion_summary(self)
    }

    fn source_stats(&self) -> Result<Vec<SourceStats>, StoreError> {
        admin::source_stats(self)
    }

    fn export_events(
        &self,
        filter: &ExportFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<ExportItem>, StoreError> {
        admin::export_events(self, filter, after, limit)
    }

    fn prune_payloads(&self, before: &Timestamp, dry_run: bool) -> Result<Pruned, StoreError> {
        admin::prune_payloads(self, before, dry_run)
    }
}

/// Amounts are stored as exact decimal text.
fn amount(text: String, column: usize) -> rusqlite::Result<Amount> {
    text.parse::<Decimal>()
        .map(Amount::from_decimal)
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                column,
                rusqlite::types::Type::Text,
                Box::new(e),
            )
        })
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
