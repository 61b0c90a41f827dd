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

mod writer;

mod backup;

mod admin;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use self::writer::{ReplyTo, Writer};
use super::{
    AdminReads, BackupError, BackupReport, MigrationFile, Operations, Pending, Receiving,
    StoreError, StoreOptions, migration_files,
};
use crate::model::clock::now_text;
use crate::model::{
    EventId, NewConversion, NewEvent, Outcome, Receipt, Source, StoredConflict, StoredEvent,
};
use crate::read::{
    ConversionFilter, ConversionItem, Cursor, EventFilter, EventItem, ExportFilter, ExportItem,
    Pruned, SourceStats, SummaryGroup, Timestamp,
};

mod forward;

const MIGRATIONS: [MigrationFile; 5] = migration_files!("sqlite");

mod sql {
    pub const FIND_EVENT: &str = include_str!("../../sql/sqlite/find_event.sql");
    pub const INSERT_CONVERSION: &str = include_str!("../../sql/sqlite/insert_conversion.sql");
    pub const FIND_SALE_CONVERSION: &str =
        include_str!("../../sql/sqlite/find_sale_conversion.sql");
    pub const APPLY_CONVERSION: &str = include_str!("../../sql/sqlite/apply_conversion.sql");
    pub const FIND_CONVERSION: &str = include_str!("../../sql/sqlite/find_conversion.sql");
    pub const INSERT_EVENT: &str = include_str!("../../sql/sqlite/insert_event.sql");
    pub const COUNT_DUPLICATE: &str = include_str!("../../sql/sqlite/count_duplicate.sql");
    pub const COUNT_DUPLICATES: &str = include_str!("../../sql/sqlite/count_duplicates.sql");
    pub const INSERT_CONFLICT: &str = include_str!("../../sql/sqlite/insert_conflict.sql");
    pub const COUNT_CONFLICT: &str = include_str!("../../sql/sqlite/count_conflict.sql");
    pub const GET_EVENT: &str = include_str!("../../sql/sqlite/get_event.sql");
    pub const LIST_CONFLICTS: &str = include_str!("../../sql/sqlite/list_conflicts.sql");
    pub const PING: &str = include_str!("../../sql/sqlite/ping.sql");
}

type Conn = PooledConnection<SqliteConnectionManager>;

pub struct SqliteStore {
    /// Reader connections; the writer thread borrows one per batch as well.
    pool: Pool<SqliteConnectionManager>,
    /// `None` only while being dropped.
    writer: Option<Writer>,
    timeout: Duration,
}

/// An event already on record, as the duplicate check needs it.
struct Existing {
    id: i64,
    fingerprint: String,
    conversion_id: Option<i64>,
    conversion_status: Option<String>,
}

/// Where a delivery left its conversion.
struct ConversionState {
    id: i64,
    status: Option<String>,
    /// Created or moved by this delivery (false: stale, or a sale already on record).
    applied: bool,
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
        let writer = Writer::start(pool.clone(), synchronous, options.statement_timeout)?;
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
    pub(super) fn settle(&self) -> Result<(), StoreError> {
        self.writer()?.flush()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // The writer first: it commits what is queued while the pool is still open.
        drop(self.writer.take());
    }
}

/// Decides a delivery by a read, without the writer: `Some` for a duplicate (counted),
/// `None` when the writer must apply it (new, or a conflict to keep).
fn read_duplicate(
    conn: &Connection,
    writer: &Writer,
    event: &NewEvent,
) -> Result<Option<Outcome>, StoreError> {
    match find(conn, event)? {
        Some(existing) if existing.fingerprint == event.fingerprint => {
            writer.count_duplicate(existing.id, now_text());
            Ok(Some(Outcome::Duplicate(existing.receipt())))
        }
        _ => Ok(None),
    }
}

/// One event inside the writer's transaction (in its own savepoint): a duplicate or
/// conflict if the id is on record by now, else the event and its conversion.
fn apply(conn: &Connection, event: &NewEvent) -> Result<Outcome, StoreError> {
    match find(conn, event)? {
        Some(existing) => repeat(conn, existing, event),
        None => insert_new(conn, event),
    }
}

/// Answers a repeated delivery inside the caller's write transaction: counts a
/// duplicate, or counts a conflict and keeps it while fewer than `KEPT_CONFLICTS` are.
fn repeat(conn: &Connection, existing: Existing, event: &NewEvent) -> Result<Outcome, StoreError> {
    let now = now_text();
    if existing.fingerprint == event.fingerprint {
        conn.execute(sql::COUNT_DUPLICATE, params![existing.id, now])
            .map_err(map_err)?;
        return Ok(Outcome::Duplicate(existing.receipt()));
    }
    let conflicts: i64 = conn
        .query_row(sql::COUNT_CONFLICT, params![existing.id, now], |row| {
            row.get(0)
        })
        .map_err(map_err)?;
    conn.execute(
        sql::INSERT_CONFLICT,
        params![
            existing.id,
            event.fingerprint,
            event.payload,
            now,
            conflicts
        ],
    )
    .map_err(map_err)?;
    Ok(Outcome::Conflict(existing.receipt()))
}

/// Records a new event and creates or moves its conversion, inside the writer's
/// transaction (one writer per process serialises every delivery of one conversion).
fn insert_new(conn: &Connection, event: &NewEvent) -> Result<Outcome, StoreError> {
    let now = now_text();
    let conversion = match &event.conversion {
        None => None,
        Some(c) if c.external_conversion_id.is_some() => {
            Some(apply_conversion(conn, event, c, &now)?)
        }
        Some(c) => Some(create_sale_conversion(conn, event, c, &now)?),
    };
    let conversion_id = conversion.as_ref().map(|c| c.id);
    let webhook_event_id = conn
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
    if event.forward {
        forward::insert_outbox(conn, webhook_event_id, event.source.as_str(), &now)?;
    }
    Ok(Outcome::Processed(Receipt {
        webhook_event_id,
        conversion_id,
        applied: conversion.as_ref().is_some_and(|c| c.applied),
        conversion_status: conversion.and_then(|c| c.status),
    }))
}

/// A seed-style sale: one conversion per sale event. A conversions row already keyed by
/// this event id (only manual surgery leaves one without its event) is adopted as this
/// event's conversion rather than failing the delivery for ever.
fn create_sale_conversion(
    conn: &Connection,
    event: &NewEvent,
    c: &NewConversion,
    now: &str,
) -> Result<ConversionState, StoreError> {
    write_or_read(
        conn,
        (
            sql::INSERT_CONVERSION,
            params![
                event.source.as_str(),
                event.event_id.as_str(),
                c.order_id,
                c.commission_amount.to_string(),
                c.sale_amount.to_string(),
                c.currency,
                c.tracking_id,
                c.status,
                now,
            ],
        ),
        (
            sql::FIND_SALE_CONVERSION,
            params![event.source.as_str(), event.event_id.as_str()],
        ),
    )
}

/// A conversion delivery: creates the conversion keyed by `(source,
/// external_conversion_id)`, or moves it unless the delivery is stale. The staleness rule
/// lives in the statement's `WHERE`, evaluated against the row as it is now.
fn apply_conversion(
    conn: &Connection,
    event: &NewEvent,
    c: &NewConversion,
    now: &str,
) -> Result<ConversionState, StoreError> {
    write_or_read(
        conn,
        (
            sql::APPLY_CONVERSION,
            params![
                event.source.as_str(),
                event.event_id.as_str(),
                c.external_conversion_id,
                c.order_id,
                c.commission_amount.to_string(),
                c.sale_amount.to_string(),
                c.currency,
                c.status,
                c.affiliate_id,
                c.affiliate_code,
                c.source_updated_at,
                now,
            ],
        ),
        // Stale: the conversion exists and stays as it is.
        (
            sql::FIND_CONVERSION,
            params![event.source.as_str(), c.external_conversion_id],
        ),
    )
}

/// Runs a write that returns `(id, status)` of the row it created or moved; when it wrote
/// nothing, reads `(id, status)` of the row it left alone.
fn write_or_read<W: rusqlite::Params, R: rusqlite::Params>(
    conn: &Connection,
    (write, write_params): (&str, W),
    (read, read_params): (&str, R),
) -> Result<ConversionState, StoreError> {
    let row = |applied| {
        move |row: &rusqlite::Row<'_>| {
            Ok(ConversionState {
                id: row.get(0)?,
                status: row.get(1)?,
                applied,
            })
        }
    };
    let written = conn
        .prepare_cached(write)
        .and_then(|mut stmt| stmt.query_row(write_params, row(true)).optional())
        .map_err(map_err)?;
    match written {
        Some(state) => Ok(state),
        None => conn
            .prepare_cached(read)
            .and_then(|mut stmt| stmt.query_row(read_params, row(false)))
            .map_err(map_err),
    }
}

impl Existing {
    fn receipt(self) -> Receipt {
        Receipt {
            webhook_event_id: self.id,
            conversion_id: self.conversion_id,
            conversion_status: self.conversion_status,
            applied: false,
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
                        conversion_status: row.get(3)?,
                    })
                },
            )
            .optional()
        })
        .map_err(map_err)
}

impl Operations for SqliteStore {
    fn migrate(&self) -> Result<(), StoreError> {
        let migrations = super::refinery_migrations(&MIGRATIONS)?;
        // On the writer, so no batch runs against a half-migrated schema.
        self.with_writer(move |conn| {
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

    fn backup_to(&self, path: &Path) -> Result<BackupReport, BackupError> {
        // A pooled connection reads like any request would; the server's writers go on.
        backup::copy(&*self.conn()?, path, self.timeout)
    }

    fn prune_payloads(&self, before: &Timestamp, dry_run: bool) -> Result<Pruned, StoreError> {
        admin::prune_payloads(self, before, dry_run)
    }
}

impl Receiving for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn process(&self, event: &NewEvent) -> Result<Outcome, StoreError> {
        let writer = self.writer()?;
        if let Some(outcome) = read_duplicate(&*self.conn()?, writer, event)? {
            return Ok(outcome);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        writer.process(
            event.clone(),
            Instant::now() + self.timeout,
            ReplyTo::Blocking(tx),
        )?;
        rx.recv()
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
            .map(|(outcome, _)| outcome)
    }

    /// No blocking-pool hop on the hot paths: the duplicate read runs right here when a
    /// reader connection is idle (a point lookup on the unique index, shorter than a
    /// thread handoff), and a new event goes straight onto the writer's queue.
    fn process_async(self: Arc<Self>, event: NewEvent, deadline: Instant) -> Pending {
        Box::pin(async move {
            let (duplicate, event) = match self.pool.try_get() {
                Some(conn) => (read_duplicate(&conn, self.writer()?, &event)?, event),
                None => {
                    let store = self.clone();
                    super::run_blocking(move || {
                        let duplicate = read_duplicate(&*store.conn()?, store.writer()?, &event)?;
                        Ok((duplicate, event))
                    })
                    .await?
                }
            };
            match duplicate {
                Some(outcome) => Ok((outcome, event)),
                None => self.queue(event, deadline).await,
            }
        })
    }

    fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.query_row(sql::PING, [], |_| Ok(())).map_err(map_err)
    }
}

impl AdminReads for SqliteStore {
    fn event(&self, source: &Source, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.settle()?;
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
}

impl SqliteStore {
    /// Hands a new (or conflicting) event to the writer and waits for its batch.
    async fn queue(
        &self,
        event: NewEvent,
        deadline: Instant,
    ) -> Result<(Outcome, NewEvent), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer()?
            .process(event, deadline, ReplyTo::Async(tx))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
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
