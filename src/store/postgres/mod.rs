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

mod admin;
mod errors;
mod flusher;
mod ops;
mod outbox;
mod process;
mod totals;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use postgres::types::Type;
use postgres::{Client, Config, NoTls, Row, Statement};
use r2d2::{ManageConnection, Pool, PooledConnection};

use self::errors::{connection_lost, detail, map_err, pg_text};
use super::{StoreError, StoreOptions};
// The driver's own text is terse ("db error"); the server's message is in the cause.
use crate::error::chain;
use crate::model::{EventId, Source};

mod sql {
    pub const PROCESS_FUNCTION: &str =
        include_str!("../../../sql/postgres/process_webhook_idempotently.sql");
    pub const PROCESS: &str = include_str!("../../../sql/postgres/process.sql");
    pub const COUNT_DELIVERIES: &str = include_str!("../../../sql/postgres/count_deliveries.sql");
    pub const GET_EVENT: &str = include_str!("../../../sql/postgres/get_event.sql");
    pub const LIST_CONFLICTS: &str = include_str!("../../../sql/postgres/list_conflicts.sql");
    pub const PING: &str = include_str!("../../../sql/postgres/ping.sql");
    pub const MIGRATION_LOCK: &str = include_str!("../../../sql/postgres/migration_lock.sql");
    pub const MIGRATION_UNLOCK: &str = include_str!("../../../sql/postgres/migration_unlock.sql");
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
            StoreError::Unavailable(format!("invalid PostgreSQL URL: {}", chain(&e)))
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
                flusher::Flusher::start(
                    pool.clone(),
                    options.connect_timeout,
                    options.totals_fold_every,
                )
                .map_err(|e| {
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
    fn flush_pending_counts(&self) -> Result<(), StoreError> {
        match &self.flusher {
            Some(flusher) => self.with_conn(|conn| flusher.flush_on(conn)),
            None => Ok(()),
        }
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
