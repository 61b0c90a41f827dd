//! PostgreSQL backend: the sync `postgres` client pooled with r2d2, for any number of
//! hooklatch instances sharing one database.
//!
//! One round trip per webhook: the whole receive step is the PL/pgSQL function
//! `process_webhook_idempotently` (sql/postgres/), and each pooled connection carries its
//! own prepared statement calling it ([`PgConn`]). A call is then a single
//! Bind/Execute/Sync write and one answer. The statement is prepared on the connection's
//! first `process()`, not at connect time, because a fresh database has no function
//! until `migrate()` ran.
//!
//! Checkout validation is off: r2d2's `test_on_check_out` would add a round trip to
//! every webhook. Instead, the first error that shows a connection is gone marks it
//! broken (r2d2 drops it on return) and starts a new connection *epoch*; connections
//! from an older epoch are checked once with a trivial query before their next use. So
//! after an outage one request per instance gets a 503, and service resumes without a
//! restart.
//!
//! The sync client runs a private tokio runtime and panics when it blocks on a runtime
//! thread, dropping included. Callers go through `run_blocking`; as a safety net every
//! driver call also steps off a runtime thread if it finds itself on one
//! ([`off_runtime`]), and `Drop` closes the pool on a plain thread.

mod flusher;

use std::error::Error as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{Client, Config, NoTls, Row, Statement};
use r2d2::{ManageConnection, Pool, PooledConnection};
use rust_decimal::Decimal;

use super::{
    BackupError, BackupReport, MigrationFile, Pending, Store, StoreError, StoreOptions,
    migration_files,
};
// The driver's own text is terse ("db error"); the server's message is in the cause.
use crate::error::chain as describe;
use crate::model::clock::now_text;
use crate::model::{
    Amount, EventId, NewConversion, NewEvent, Outcome, Receipt, Source, StoredConflict,
    StoredConversion, StoredEvent, Totals,
};
use crate::read::{
    ConversionFilter, ConversionItem, Cursor, EventFilter, EventItem, ExportFilter, ExportItem,
    Pruned, SourceStats, SummaryGroup, Timestamp,
};

mod admin;
mod forward;

const MIGRATIONS: [MigrationFile; 5] = migration_files!("postgres");

/// Key of the session advisory lock held while migrating ("hooklatc" in ASCII), so that
/// instances starting together migrate one after the other.
const MIGRATION_LOCK: i64 = 0x686f_6f6b_6c61_7463;

mod sql {
    pub const PROCESS_FUNCTION: &str =
        include_str!("../../sql/postgres/process_webhook_idempotently.sql");
    pub const PROCESS: &str = include_str!("../../sql/postgres/process.sql");
    pub const COUNT_DELIVERIES: &str = include_str!("../../sql/postgres/count_deliveries.sql");
    pub const GET_EVENT: &str = include_str!("../../sql/postgres/get_event.sql");
    pub const GET_CONVERSION: &str = include_str!("../../sql/postgres/get_conversion.sql");
    pub const LIST_CONFLICTS: &str = include_str!("../../sql/postgres/list_conflicts.sql");
    pub const TOTALS: &str = include_str!("../../sql/postgres/totals.sql");
    pub const PING: &str = include_str!("../../sql/postgres/ping.sql");
    pub const MIGRATION_LOCK: &str = include_str!("../../sql/postgres/migration_lock.sql");
    pub const MIGRATION_UNLOCK: &str = include_str!("../../sql/postgres/migration_unlock.sql");
}

/// A pooled connection and what it has prepared.
struct PgConn {
    client: Client,
    /// The call of `process_webhook_idempotently`, prepared on first use.
    process: Option<Statement>,
    /// The connection epoch this connection was last known good in.
    epoch: u64,
    /// Set when an error showed the connection is gone, so r2d2 discards it.
    broken: bool,
}

/// Opens [`PgConn`]s; r2d2 owns when.
struct Manager {
    config: Config,
    epoch: Arc<AtomicU64>,
}

impl ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        // Read before connecting: a connection opened while the epoch moves is checked once
        // more, never once less.
        let epoch = self.epoch.load(Ordering::Acquire);
        let client = self.config.connect(NoTls)?;
        Ok(PgConn {
            client,
            process: None,
            epoch,
            broken: false,
        })
    }

    /// Only used if `test_on_check_out` is turned back on (see the module header).
    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        conn.client.simple_query(sql::PING).map(|_| ())
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.broken || conn.client.is_closed()
    }
}

/// Failed connection attempts, which r2d2 retries until the connect timeout. Only the
/// latest is kept, to explain the failure of the request that gave up waiting; r2d2's
/// default handler would log every retry.
#[derive(Debug, Default)]
struct LastConnectError(Mutex<Option<String>>);

#[derive(Debug)]
struct RecordErrors(Arc<LastConnectError>);

impl r2d2::HandleError<postgres::Error> for RecordErrors {
    fn handle_error(&self, error: postgres::Error) {
        let text = pg_text(&error);
        tracing::debug!(error = %text, "PostgreSQL connection attempt failed");
        *self.0.0.lock() = Some(text);
    }
}

pub struct PostgresStore {
    /// `None` only while being dropped.
    pool: Option<Pool<Manager>>,
    /// Settings for the dedicated migration connection: no statement timeout, since a
    /// migration may legitimately take longer than a request.
    migration_config: Config,
    epoch: Arc<AtomicU64>,
    last_connect_error: Arc<LastConnectError>,
    connect_timeout: Duration,
    /// One permit per pooled connection: requests beyond that wait here (async, cheap)
    /// until their deadline instead of piling up on blocking threads.
    permits: Arc<tokio::sync::Semaphore>,
    /// Duplicate counts on their way to the database; `None` only while being dropped.
    flusher: Option<flusher::Flusher>,
}

impl PostgresStore {
    /// Connects to the server named by `url` (`postgres://…` or `postgresql://…`). Fails
    /// with a one-line `Unavailable` when no connection succeeds within the connect
    /// timeout.
    pub fn open(url: &str, options: &StoreOptions) -> Result<PostgresStore, StoreError> {
        let mut config: Config = url.parse().map_err(|e: postgres::Error| {
            StoreError::Unavailable(format!("invalid PostgreSQL URL: {}", describe(&e)))
        })?;
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("hooklatch");
        }
        config.notice_callback(|notice| {
            tracing::debug!(notice = %notice.message(), "PostgreSQL notice");
        });
        let migration_config = config.clone();

        // Server-side limits, so no lock wait or statement outlives the store timeout.
        let millis = options.statement_timeout.as_millis();
        let limits = format!("-c statement_timeout={millis} -c lock_timeout={millis}");
        let merged = match config.get_options() {
            Some(existing) if !existing.trim().is_empty() => format!("{existing} {limits}"),
            _ => limits,
        };
        config.options(&merged);
        // A server that vanished without closing the socket (host down, network cut)
        // would otherwise leave a request waiting for TCP's own retries, for minutes.
        config.tcp_user_timeout(options.connect_timeout + options.statement_timeout);

        let epoch = Arc::new(AtomicU64::new(0));
        let last_connect_error = Arc::new(LastConnectError::default());
        let size = options.pool_size.max(1);
        let pool = Pool::builder()
            .max_size(size)
            // Every connection is opened up front and kept: no request pays for a
            // connection setup once the pool is warm.
            .min_idle(Some(size))
            // Kept for the life of the process, as the README promises: r2d2's default
            // reaping (10 min idle, 30 min lifetime) would close and reopen them, and
            // each reopened connection pays a connect and a prepare on its next webhook.
            .idle_timeout(None)
            .max_lifetime(None)
            .connection_timeout(options.connect_timeout)
            .test_on_check_out(false)
            .error_handler(Box::new(RecordErrors(last_connect_error.clone())))
            // Not `build()`: it waits until *every* connection is up. Startup only needs
            // one; the rest fill in behind.
            .build_unchecked(Manager {
                config,
                epoch: epoch.clone(),
            });
        let store = PostgresStore {
            pool: Some(pool.clone()),
            migration_config,
            epoch,
            last_connect_error,
            connect_timeout: options.connect_timeout,
            permits: Arc::new(tokio::sync::Semaphore::new(size as usize)),
            flusher: Some(
                flusher::Flusher::start(pool.clone(), options.connect_timeout).map_err(|e| {
                    StoreError::Internal(format!("cannot start the counts thread: {e}"))
                })?,
            ),
        };
        // Waits for the first connection; dropping the store on failure closes the pool.
        off_runtime(|| store.conn().map(drop)).map_err(|e| {
            StoreError::Unavailable(format!("cannot connect to PostgreSQL: {}", detail(&e)))
        })?;
        Ok(store)
    }

    /// A connection known good in the current epoch.
    fn conn(&self) -> Result<PooledConnection<Manager>, StoreError> {
        self.conn_within(self.connect_timeout)
    }

    /// The same, waiting at most `wait` for the pool.
    fn conn_within(&self, wait: Duration) -> Result<PooledConnection<Manager>, StoreError> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the PostgreSQL pool is closed".into()))?;
        // Each pass discards one dead connection, so the pool size bounds the passes.
        for _ in 0..=pool.max_size() {
            let mut conn = pool
                .get_timeout(wait)
                .map_err(|_| self.no_connection(pool))?;
            let epoch = self.epoch.load(Ordering::Acquire);
            if conn.epoch == epoch {
                return Ok(conn);
            }
            match conn.client.simple_query(sql::PING) {
                Ok(_) => {
                    conn.epoch = epoch;
                    return Ok(conn);
                }
                Err(_) => conn.broken = true,
            }
        }
        Err(StoreError::Unavailable(
            "every pooled PostgreSQL connection was lost".into(),
        ))
    }

    /// Why `pool.get()` gave up: every connection busy, or none could be opened.
    fn no_connection(&self, pool: &Pool<Manager>) -> StoreError {
        let waited = self.connect_timeout.as_secs_f64();
        if let Some(cause) = self.last_connect_error.0.lock().take() {
            return StoreError::Unavailable(format!("no connection within {waited}s: {cause}"));
        }
        let state = pool.state();
        if state.connections >= pool.max_size() && state.idle_connections == 0 {
            StoreError::Timeout(format!(
                "all {} connections stayed busy for {waited}s",
                state.connections
            ))
        } else {
            StoreError::Timeout(format!(
                "no connection within {waited}s: the server accepted but did not answer"
            ))
        }
    }

    /// Runs `work` on a good connection; an error that shows the connection is gone
    /// retires it and makes every older connection prove itself before its next use.
    fn with_conn<T: Send>(
        &self,
        work: impl FnOnce(&mut PgConn) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, StoreError> {
        self.with_conn_within(self.connect_timeout, work)
    }

    fn with_conn_within<T: Send>(
        &self,
        wait: Duration,
        work: impl FnOnce(&mut PgConn) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, StoreError> {
        // The connection is also returned (and maybe closed) inside, off the runtime.
        off_runtime(|| {
            let mut conn = self.conn_within(wait)?;
            work(&mut conn).map_err(|e| {
                if connection_lost(&e) || conn.client.is_closed() {
                    conn.broken = true;
                    self.epoch.fetch_add(1, Ordering::AcqRel);
                }
                map_err(&e)
            })
        })
    }

    /// Admin reads keyed by `(source, event id)`. Typed parameters let the unnamed
    /// statement go out with its Bind in one write, instead of a prepare round trip first.
    fn query_by_event(
        &self,
        sql: &str,
        source: &Source,
        id: &EventId,
    ) -> Result<Vec<Row>, StoreError> {
        self.with_conn(|conn| {
            conn.client.query_typed(
                sql,
                &[(&source.as_str(), Type::TEXT), (&id.as_str(), Type::TEXT)],
            )
        })
    }

    /// The body of [`Store::migrate`], on a thread where the client may block.
    fn migrate_now(&self) -> Result<(), StoreError> {
        let mut client = self.migration_config.connect(NoTls).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL to migrate: {}",
                describe(&e)
            ))
        })?;
        client
            .execute(sql::MIGRATION_LOCK, &[&MIGRATION_LOCK])
            .map_err(|e| map_err(&e))?;
        let migrated = Self::run_migrations(&mut client);
        let unlocked = client
            .execute(sql::MIGRATION_UNLOCK, &[&MIGRATION_LOCK])
            .map(|_| ())
            .map_err(|e| map_err(&e));
        migrated.and(unlocked)
    }

    fn run_migrations(client: &mut Client) -> Result<(), StoreError> {
        let migrations = super::refinery_migrations(&MIGRATIONS)?;
        // Grouped: every pending migration and its history row in one transaction.
        // Ungrouped, refinery commits a migration and its history row separately, and a
        // crash between the two leaves a store no start can migrate again.
        refinery::Runner::new(&migrations)
            .set_grouped(true)
            .run(client)
            .map_err(|e| {
                StoreError::Unavailable(format!("PostgreSQL migration failed: {}", describe(&e)))
            })?;
        client.batch_execute(sql::PROCESS_FUNCTION).map_err(|e| {
            let err = map_err(&e);
            StoreError::Internal(format!(
                "cannot install process_webhook_idempotently: {}",
                detail(&err)
            ))
        })
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Its last counts are committed while the pool is still open.
        drop(self.flusher.take());
        let Some(pool) = self.pool.take() else { return };
        // Closing a sync client blocks on its private runtime, which panics on a tokio
        // worker thread; a plain thread is always allowed to.
        match std::thread::Builder::new()
            .name("hooklatch-pg-close".into())
            .spawn(move || drop(pool))
        {
            Ok(handle) => {
                let _ = handle.join();
            }
            // Leaking the connections (the server closes them) beats a panic.
            Err(e) => tracing::warn!(error = %e, "cannot close the PostgreSQL pool"),
        }
    }
}

impl PostgresStore {
    /// Commits this instance's pending duplicate counts, so what is read next includes
    /// them (other instances' counts arrive within their own flush delay).
    fn settle(&self) -> Result<(), StoreError> {
        match &self.flusher {
            Some(flusher) => self.with_conn(|conn| flusher.flush_on(conn)),
            None => Ok(()),
        }
    }
}

/// Where the statement running for a request can be cancelled from, while it runs.
#[derive(Default)]
struct CancelSlot(Mutex<Cancel>);

#[derive(Default)]
enum Cancel {
    /// Not started: the statement may still start.
    #[default]
    Idle,
    Running(postgres::CancelToken),
    /// The deadline passed before the statement started: it must not start.
    Cancelled,
}

impl CancelSlot {
    /// Called at the deadline: stops the statement, or keeps it from starting.
    fn cancel(&self) -> Option<postgres::CancelToken> {
        match std::mem::replace(&mut *self.0.lock(), Cancel::Cancelled) {
            Cancel::Running(token) => Some(token),
            Cancel::Idle | Cancel::Cancelled => None,
        }
    }
}

impl PostgresStore {
    /// One call of `process_webhook_idempotently`, waiting at most `wait` for a
    /// connection, cancellable through `cancel` while it runs.
    fn call_process(
        &self,
        event: &NewEvent,
        wait: Duration,
        cancel: &CancelSlot,
    ) -> Result<Outcome, StoreError> {
        let conversion = event.conversion.as_ref();
        let text =
            |f: fn(&NewConversion) -> &Option<String>| conversion.and_then(|c| f(c).as_deref());
        let commission: Option<Decimal> = conversion.map(|c| c.commission_amount.decimal());
        let sale: Option<Decimal> = conversion.map(|c| c.sale_amount.decimal());
        let (order_id, currency, tracking_id) = (
            text(|c| &c.order_id),
            text(|c| &c.currency),
            text(|c| &c.tracking_id),
        );
        let (status, external_conversion_id) =
            (text(|c| &c.status), text(|c| &c.external_conversion_id));
        let (affiliate_id, affiliate_code, source_updated_at) = (
            text(|c| &c.affiliate_id),
            text(|c| &c.affiliate_code),
            text(|c| &c.source_updated_at),
        );
        let params: [&(dyn ToSql + Sync); 16] = [
            &event.source.as_str(),
            &event.event_id.as_str(),
            &event.event_type,
            &event.payload,
            &event.fingerprint,
            &order_id,
            &commission,
            &sale,
            &currency,
            &tracking_id,
            &status,
            &external_conversion_id,
            &affiliate_id,
            &affiliate_code,
            &source_updated_at,
            &event.forward,
        ];
        let row = self
            .with_conn_within(wait, |conn| {
                let statement = match &conn.process {
                    Some(statement) => statement.clone(),
                    None => {
                        let statement = conn.client.prepare(sql::PROCESS)?;
                        conn.process = Some(statement.clone());
                        statement
                    }
                };
                {
                    let mut slot = cancel.0.lock();
                    if matches!(*slot, Cancel::Cancelled) {
                        return Ok(None);
                    }
                    *slot = Cancel::Running(conn.client.cancel_token());
                }
                let row = conn.client.query_one(&statement, &params).map(Some);
                *cancel.0.lock() = Cancel::Idle;
                if row.is_err() {
                    // Prepare again next time, in case the function was replaced with another
                    // shape underneath this statement; one extra round trip after a failure.
                    conn.process = None;
                }
                row
            })?
            .ok_or_else(|| {
                StoreError::Timeout("the deadline passed before the statement started".into())
            })?;
        let outcome: String = get(&row, 0)?;
        let receipt = Receipt {
            webhook_event_id: get(&row, 1)?,
            conversion_id: get(&row, 2)?,
            conversion_status: get(&row, 3)?,
            applied: get::<Option<bool>>(&row, 4)?.unwrap_or(false),
        };
        match outcome.as_str() {
            "processed" => Ok(Outcome::Processed(receipt)),
            "duplicate" => {
                if let Some(flusher) = &self.flusher {
                    flusher.count(receipt.webhook_event_id, now_text());
                }
                Ok(Outcome::Duplicate(receipt))
            }
            "conflict" => Ok(Outcome::Conflict(receipt)),
            other => Err(StoreError::Internal(format!(
                "process_webhook_idempotently returned the unknown outcome {other:?}"
            ))),
        }
    }
}

impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    /// Runs on a dedicated connection holding a session advisory lock, so instances
    /// starting together migrate one at a time; the server releases the lock with the
    /// connection should this process die mid-way. Then (re)installs the function.
    fn migrate(&self) -> Result<(), StoreError> {
        off_runtime(|| self.migrate_now())
    }

    fn process(&self, event: &NewEvent) -> Result<Outcome, StoreError> {
        self.call_process(event, self.connect_timeout, &CancelSlot::default())
    }

    /// The request's one deadline bounds the wait for a permit and for a connection;
    /// past it, the running statement is cancelled on the server, so the answer is
    /// what the database did (a rollback gives a 503, a commit that won the race a 200),
    /// never a 503 for an event that is recorded after all.
    fn process_async(self: Arc<Self>, event: NewEvent, deadline: Instant) -> Pending {
        Box::pin(async move {
            let permit =
                tokio::time::timeout_at(deadline.into(), self.permits.clone().acquire_owned())
                    .await
                    .map_err(|_| StoreError::Timeout("all store connections busy".into()))?
                    .map_err(|_| StoreError::Unavailable("shutting down".into()))?;
            let slot = Arc::new(CancelSlot::default());
            let running = slot.clone();
            let store = self.clone();
            let mut work = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let wait = deadline.saturating_duration_since(Instant::now());
                let outcome = store.call_process(&event, wait, &running)?;
                Ok((outcome, event))
            });
            let finished = tokio::select! {
                result = &mut work => Some(result),
                () = tokio::time::sleep_until(deadline.into()) => None,
            };
            let result = match finished {
                Some(result) => result,
                None => {
                    if let Some(token) = slot.cancel() {
                        // Over its own connection; its answer does not matter, the
                        // statement's own result below does.
                        tokio::task::spawn_blocking(move || drop(token.cancel_query(NoTls)));
                    }
                    work.await
                }
            };
            result.map_err(|e| StoreError::Internal(format!("store task failed: {e}")))?
        })
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.with_conn(|conn| conn.client.simple_query(sql::PING).map(|_| ()))
    }

    fn event(&self, source: &Source, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.settle()?;
        let Some(row) = self
            .query_by_event(sql::GET_EVENT, source, id)?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        Ok(Some(StoredEvent {
            id: get(&row, 0)?,
            source: get(&row, 1)?,
            external_event_id: get(&row, 2)?,
            event_type: get(&row, 3)?,
            payload: get(&row, 4)?,
            fingerprint: get(&row, 5)?,
            conversion_id: get(&row, 6)?,
            delivery_count: get(&row, 7)?,
            conflict_count: get(&row, 8)?,
            first_seen_at: get(&row, 9)?,
            last_seen_at: get(&row, 10)?,
        }))
    }

    fn conversion(
        &self,
        source: &Source,
        id: &EventId,
    ) -> Result<Option<StoredConversion>, StoreError> {
        let Some(row) = self
            .query_by_event(sql::GET_CONVERSION, source, id)?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        Ok(Some(StoredConversion {
            id: get(&row, 0)?,
            source: get(&row, 1)?,
            external_event_id: get(&row, 2)?,
            external_conversion_id: get(&row, 3)?,
            order_id: get(&row, 4)?,
            commission_amount: Amount::from_decimal(get(&row, 5)?),
            sale_amount: Amount::from_decimal(get(&row, 6)?),
            currency: get(&row, 7)?,
            tracking_id: get(&row, 8)?,
            status: get(&row, 9)?,
            affiliate_id: get(&row, 10)?,
            affiliate_code: get(&row, 11)?,
            source_updated_at: get(&row, 12)?,
            created_at: get(&row, 13)?,
            updated_at: get(&row, 14)?,
        }))
    }

    fn conflicts(&self, source: &Source, id: &EventId) -> Result<Vec<StoredConflict>, StoreError> {
        self.query_by_event(sql::LIST_CONFLICTS, source, id)?
            .iter()
            .map(|row| {
                Ok(StoredConflict {
                    id: get(row, 0)?,
                    webhook_event_id: get(row, 1)?,
                    fingerprint: get(row, 2)?,
                    payload: get(row, 3)?,
                    received_at: get(row, 4)?,
                })
            })
            .collect()
    }

    fn totals(&self) -> Result<Totals, StoreError> {
        let row = self.with_conn(|conn| conn.client.query_typed(sql::TOTALS, &[]))?;
        let row = row
            .first()
            .ok_or_else(|| StoreError::Internal("totals returned no row".into()))?;
        Ok(Totals {
            events: get(row, 0)?,
            conversions: get(row, 1)?,
            conflicts: get(row, 2)?,
        })
    }

    // --- ops verbs ---

    /// A PostgreSQL database is not one file hooklatch could copy consistently; its own
    /// tools do it (and point-in-time recovery, which no copy by hooklatch could offer).
    fn backup_to(&self, _path: &Path) -> Result<BackupReport, BackupError> {
        Err(BackupError::Unsupported(
            "backup copies SQLite databases only; back up PostgreSQL with pg_dump, e.g. pg_dump --format=custom --file=hooklatch.dump \"$DATABASE_URL\"",
        ))
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

/// Runs driver work where the sync client may block. Callers are meant to be on a plain
/// or blocking-pool thread already (`run_blocking`), where this costs a thread-local
/// lookup; on a runtime thread the client would panic, so the work steps off it instead
/// (a tokio worker hands its queue to another thread; a current-thread runtime, as in
/// `#[tokio::test]`, gets a scoped thread).
fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
        Err(_) => work(),
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        Ok(_) => std::thread::scope(|scope| match scope.spawn(work).join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
    }
}

/// A column, or `Internal` if the schema is not what this binary expects.
fn get<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|e| StoreError::Internal(format!("column {index}: {e}")))
}

/// True when the error means the connection itself is gone: the socket closed or broke,
/// or the server ended the session (shutdown, `pg_terminate_backend`).
fn connection_lost(err: &postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    match err.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                ]
                .contains(code)
        }
        None => io_cause(err),
    }
}

fn io_cause(err: &postgres::Error) -> bool {
    let mut cause = err.source();
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Waits the server gave up on are timeouts (the provider retries); a lost or refusing
/// server is unavailable; anything else is unexpected.
fn map_err(err: &postgres::Error) -> StoreError {
    let text = pg_text(err);
    let Some(code) = err.code() else {
        return if err.is_closed() || io_cause(err) {
            StoreError::Unavailable(text)
        } else {
            StoreError::Internal(text)
        };
    };
    let class = &code.code()[..2];
    if [
        SqlState::QUERY_CANCELED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
    ]
    .contains(code)
    {
        StoreError::Timeout(text)
    } else if connection_lost(err)
        // insufficient resources (too many connections, disk full), authentication,
        // unknown database, read-only standby: the server refuses the work.
        || class == "53"
        || class == "28"
        || *code == SqlState::INVALID_CATALOG_NAME
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
    {
        StoreError::Unavailable(text)
    } else {
        StoreError::Internal(text)
    }
}

/// The message inside a store error, without the variant's prefix.
fn detail(err: &StoreError) -> String {
    match err {
        StoreError::Unavailable(m) | StoreError::Timeout(m) | StoreError::Internal(m) => m.clone(),
    }
}

/// A driver error on one line; a server error as the server worded it, with its SQLSTATE.
fn pg_text(err: &postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => one_line(&format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        )),
        None => describe(err),
    }
}

/// Server messages may carry DETAIL/HINT lines; errors must stay on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
