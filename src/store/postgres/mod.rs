//! PostgreSQL backend: the sync `postgres` client pooled with r2d2, for any number of
//! hooklatch instances sharing one database.
//!
//! One round trip per webhook: the whole receive step is the PL/pgSQL function
//! `process_webhook_idempotently` (sql/postgres/), and each pooled connection carries its
//! own prepared statement calling it ([`PgConn`]). A call is then a single
//! Bind/Execute/Sync write and one answer. With `pg_prepared_statements = false` (a
//! transaction pooler) it is sent unnamed instead, Parse/Bind/Execute/Sync in one write:
//! still one round trip, the server parsing it each time. The statement is prepared on the connection's
//! first `process()`, not at connect time, because a fresh database has no function
//! until `migrate()` ran.
//!
//! Checkout validation is off: r2d2's `test_on_check_out` would add a round trip to
//! every webhook. Instead, the first error that shows the server is lost or no longer
//! writable retires every connection to it and reconnects through the host list
//! ([`failover`]). So after an outage or a failover the requests in flight get a 503,
//! and service resumes without a restart.
//!
//! The sync client runs a private tokio runtime and panics when it blocks on a runtime
//! thread, dropping included. Callers go through `run_blocking`; as a safety net every
//! driver call also steps off a runtime thread if it finds itself on one
//! ([`off_runtime`]), and `Drop` closes the pool on a plain thread.

mod admin;
mod errors;
mod failover;
mod flusher;
mod ops;
mod outbox;
mod process;
pub use process::ProcessCall;
mod tls;
mod totals;
mod transfer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::types::Type;
use postgres::{Client, Config, Row, Statement};
use r2d2::{ManageConnection, Pool, PooledConnection};

use self::errors::{detail, map_err};
use self::failover::Failover;
use self::tls::Connector;
use super::url::PostgresTls;
use super::{StoreError, StoreOptions};
// The driver's own text is terse ("db error"); the server's message is in the cause.
use crate::error::chain;
use crate::model::{EventId, Source};

mod sql {
    pub const PROCESS_FUNCTION: &str =
        include_str!("../../../sql/postgres/process_webhook_idempotently.sql");
    pub const PROCESS: &str = include_str!("../../../sql/postgres/process.sql");
    pub const IMPORT_BATCH: &str = include_str!("../../../sql/postgres/import_batch.sql");
    pub const COUNT_DELIVERIES: &str = include_str!("../../../sql/postgres/count_deliveries.sql");
    pub const GET_EVENT: &str = include_str!("../../../sql/postgres/get_event.sql");
    pub const LIST_CONFLICTS: &str = include_str!("../../../sql/postgres/list_conflicts.sql");
    pub const PING: &str = include_str!("../../../sql/postgres/ping.sql");
    pub const MIGRATION_LOCK: &str = include_str!("../../../sql/postgres/migration_lock.sql");
}

/// A pooled connection and what it has prepared.
struct PgConn {
    client: Client,
    /// The call of `process_webhook_idempotently`, prepared on first use.
    process: Option<Statement>,
    /// The epoch this connection was opened in ([`failover`]).
    epoch: u64,
    /// Set when an error showed the connection is gone, so r2d2 discards it.
    broken: bool,
}

/// Opens [`PgConn`]s; r2d2 owns when.
struct Manager {
    config: Config,
    tls: Connector,
    failover: Arc<Failover>,
}

impl ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        // Read before connecting: a connection opened while the epoch moves is retired
        // too, never kept by mistake.
        let epoch = self.failover.epoch();
        let client = self.failover.connect(&self.config, &self.tls)?;
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

    /// A connection of a retired epoch is discarded even when it still answers: its
    /// server may be a demoted primary.
    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.broken || conn.client.is_closed() || conn.epoch != self.failover.epoch()
    }
}

/// Connection attempts are retried and explained by [`Failover::connect`]; r2d2's default
/// handler would log each failure again.
#[derive(Debug)]
struct Quiet;

impl r2d2::HandleError<postgres::Error> for Quiet {
    fn handle_error(&self, _error: postgres::Error) {}
}

pub struct PostgresStore {
    /// `None` only while being dropped.
    pool: Option<Pool<Manager>>,
    /// Settings for the dedicated migration connection: no statement timeout, since a
    /// migration may legitimately take longer than a request.
    migration_config: Config,
    /// The TLS side of every connection: the pool's, the migrations', the cancels'.
    tls: Connector,
    failover: Arc<Failover>,
    /// `pg_prepared_statements`: keep the receive call prepared per connection.
    prepared_statements: bool,
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
        let (url, tls) = PostgresTls::split(url).map_err(|e| StoreError::Unavailable(e.0))?;
        let mut config: Config = url.parse().map_err(|e: postgres::Error| {
            StoreError::Unavailable(format!("invalid PostgreSQL URL: {}", chain(&e)))
        })?;
        let tls = Connector::new(&tls, &mut config)?;
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("hooklatch");
        }
        config.notice_callback(|notice| {
            failover::note(&notice);
            tracing::debug!(notice = %notice.message(), "PostgreSQL notice");
        });
        let migration_config = config.clone();

        // Server-side limits, so no lock wait or statement outlives the store timeout.
        // Not through a transaction pooler: PgBouncer refuses `options` as a startup
        // parameter unless told to ignore it, and would then drop the limits silently.
        // There the role carries them (`ALTER ROLE … SET`, see the README), and each
        // request is still bounded by its deadline and cancel.
        if options.pg_prepared_statements {
            let millis = options.statement_timeout.as_millis();
            let limits = format!("-c statement_timeout={millis} -c lock_timeout={millis}");
            let merged = match config.get_options() {
                Some(existing) if !existing.trim().is_empty() => format!("{existing} {limits}"),
                _ => limits,
            };
            config.options(&merged);
        }
        // A server that vanished without closing the socket (host down, network cut)
        // would otherwise leave a request waiting for TCP's own retries, for minutes.
        config.tcp_user_timeout(options.connect_timeout + options.statement_timeout);

        let failover = Arc::new(Failover::default());
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
            .error_handler(Box::new(Quiet))
            // Not `build()`: it waits until *every* connection is up. Startup only needs
            // one; the rest fill in behind.
            .build_unchecked(Manager {
                config,
                tls: tls.clone(),
                failover: failover.clone(),
            });
        let store = PostgresStore {
            pool: Some(pool.clone()),
            migration_config,
            tls,
            failover: failover.clone(),
            prepared_statements: options.pg_prepared_statements,
            connect_timeout: options.connect_timeout,
            permits: Arc::new(tokio::sync::Semaphore::new(size as usize)),
            flusher: Some(
                flusher::Flusher::start(
                    pool.clone(),
                    failover,
                    options.connect_timeout,
                    options.totals_fold_every,
                )
                .map_err(|e| {
                    StoreError::Internal(format!("cannot start the counts thread: {e}"))
                })?,
            ),
        };
        // Dropping the store on failure closes the pool.
        off_runtime(|| store.first_connection())?;
        Ok(store)
    }

    /// Waits for the first connection. A TLS check that failed will fail the same way
    /// on every try, so it ends the wait at once, named, instead of at the connect
    /// timeout.
    fn first_connection(&self) -> Result<(), StoreError> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the PostgreSQL pool is closed".into()))?;
        let deadline = Instant::now() + self.connect_timeout;
        loop {
            let slice = (Instant::now() + failover::RECONNECT_EVERY).min(deadline);
            if self.failover.checkout(pool, slice).is_ok() {
                return Ok(());
            }
            if let Some(why) = self.failover.tls_failure() {
                return Err(StoreError::Unavailable(why));
            }
            if Instant::now() >= deadline {
                let e = self.no_connection(pool);
                return Err(StoreError::Unavailable(format!(
                    "cannot connect to PostgreSQL: {}",
                    detail(&e)
                )));
            }
        }
    }

    /// A connection known good in the current epoch, waiting at most `wait` for the pool.
    fn conn_within(&self, wait: Duration) -> Result<PooledConnection<Manager>, StoreError> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the PostgreSQL pool is closed".into()))?;
        self.failover
            .checkout(pool, Instant::now() + wait)
            .map_err(|_| self.no_connection(pool))
    }

    /// Why `pool.get()` gave up: every connection busy, or none could be opened.
    fn no_connection(&self, pool: &Pool<Manager>) -> StoreError {
        let waited = self.connect_timeout.as_secs_f64();
        if let Some(cause) = self.failover.take_connect_error() {
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
                self.failover.after_error(&mut conn, &e);
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
        // Connection attempts still retrying give up, so the pool's threads end.
        self.failover.close();
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
