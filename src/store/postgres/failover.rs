//! Surviving the loss or demotion of the primary (SPEC §10).
//!
//! Every pooled connection belongs to a connection *epoch*. The first error showing that
//! the server behind a connection can no longer take this instance's writes (the
//! connection is gone, SQLSTATE 25006 read-only, 57P01/57P02/57P03 shutting down) ends
//! that epoch, which retires every connection opened in it: r2d2 discards each one as it
//! is returned or checked out (`has_broken`), not only the one that failed. A demoted
//! server still answers a ping, so its connections must not be kept because they look
//! alive.
//!
//! New connections go through the URL's host list with `target_session_attrs` as libpq
//! reads it (the driver skips a host whose `SHOW transaction_read_only` is `on`), trying
//! again every [`RECONNECT_EVERY`] until one accepts writes. Meanwhile requests that
//! find no connection within their deadline get a 503 with `Retry-After`.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use postgres::error::SqlState;
use postgres::{Client, Config};
use r2d2::{Pool, PooledConnection};

use super::errors::{connection_lost, pg_text};
use super::tls::Connector;
use super::{Manager, PgConn};

/// Pause between two rounds through the host list while no server accepts writes. r2d2's
/// own back-off doubles up to half the connect timeout, so it is never reached: a round
/// only fails after this loop gives up, which it does only when the store closes.
pub(super) const RECONNECT_EVERY: Duration = Duration::from_millis(250);

thread_local! {
    /// Set by the notice callback, which runs on the thread that waits for the answer.
    static UNREPLICATED: Cell<bool> = const { Cell::new(false) };
}

/// Called with every notice. A commit whose wait for the synchronous standby was
/// cancelled (our deadline's cancel, or the server shutting down) is reported as a
/// success with only this WARNING to tell: committed on this server, perhaps not on the
/// standby that is about to be promoted.
pub(super) fn note(notice: &postgres::error::DbError) {
    if notice
        .message()
        .contains("wait for synchronous replication")
    {
        UNREPLICATED.set(true);
    }
}

/// Whether the last statement on this thread was such a commit; clears it.
pub(super) fn take_unreplicated() -> bool {
    UNREPLICATED.replace(false)
}

/// What the connections of one store share about the server they talk to.
#[derive(Debug, Default)]
pub(super) struct Failover {
    epoch: AtomicU64,
    /// Set when the store closes, so connection attempts stop.
    closing: AtomicBool,
    /// The latest failed connection attempt, to explain a request's 503.
    last_connect_error: Mutex<Option<String>>,
    /// The TLS check the latest attempt failed, if that is how it failed.
    tls_failure: Mutex<Option<String>>,
}

impl Failover {
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Retires every connection opened in epoch `seen`. A late error on a connection of
    /// an older epoch does nothing, so it never retires connections to the new primary.
    pub(super) fn retire(&self, seen: u64, why: &postgres::Error) {
        if self
            .epoch
            .compare_exchange(seen, seen + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::warn!(
                error = %pg_text(why),
                "PostgreSQL server lost or no longer writable: dropping every pooled connection to it and reconnecting"
            );
        }
    }

    /// Retires epoch `seen` because a commit on it was not confirmed by the standby.
    pub(super) fn retire_unreplicated(&self, seen: u64) {
        if self
            .epoch
            .compare_exchange(seen, seen + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::warn!(
                "a commit was not confirmed by the synchronous standby: dropping every pooled connection to this server and reconnecting"
            );
        }
    }

    pub(super) fn close(&self) {
        self.closing.store(true, Ordering::Release);
    }

    pub(super) fn take_connect_error(&self) -> Option<String> {
        self.last_connect_error.lock().take()
    }

    pub(super) fn tls_failure(&self) -> Option<String> {
        self.tls_failure.lock().clone()
    }

    /// Connects to the first host that accepts writes, trying every [`RECONNECT_EVERY`]
    /// until one does or the store closes. A failed TLS check is retried too: while
    /// serving, a certificate may be fixed on the server without a restart here.
    pub(super) fn connect(
        &self,
        config: &Config,
        tls: &Connector,
    ) -> Result<Client, postgres::Error> {
        loop {
            match tls.connect(config) {
                Ok(client) => {
                    *self.last_connect_error.lock() = None;
                    *self.tls_failure.lock() = None;
                    return Ok(client);
                }
                Err((e, tls_failure)) => {
                    let text = tls_failure.clone().unwrap_or_else(|| pg_text(&e));
                    tracing::debug!(error = %text, "PostgreSQL connection attempt failed");
                    *self.last_connect_error.lock() = Some(text);
                    *self.tls_failure.lock() = tls_failure;
                    if self.closing.load(Ordering::Acquire) {
                        return Err(e);
                    }
                    std::thread::sleep(RECONNECT_EVERY);
                }
            }
        }
    }

    /// A pooled connection of the current epoch, waiting until `deadline`; older ones met
    /// on the way are discarded.
    pub(super) fn checkout(
        &self,
        pool: &Pool<Manager>,
        deadline: Instant,
    ) -> Result<PooledConnection<Manager>, r2d2::Error> {
        loop {
            let mut conn = pool.get_timeout(deadline.saturating_duration_since(Instant::now()))?;
            if conn.epoch == self.epoch() {
                return Ok(conn);
            }
            // Returned now, and r2d2 opens a replacement behind it.
            conn.broken = true;
        }
    }

    /// Called with every driver error on `conn`: marks it, and retires its epoch when the
    /// error shows its server is lost for writing.
    pub(super) fn after_error(&self, conn: &mut PgConn, err: &postgres::Error) {
        if server_lost(err) || conn.client.is_closed() {
            conn.broken = true;
            self.retire(conn.epoch, err);
        }
    }
}

/// True when the server behind the connection cannot take this instance's writes any
/// more: the connection is gone, the server is shutting down, or it turned read-only.
pub(super) fn server_lost(err: &postgres::Error) -> bool {
    connection_lost(err) || err.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_error_from_an_older_epoch_retires_nothing() {
        let failover = Failover::default();
        let Err(err) = postgres::Config::new()
            .host("127.0.0.1")
            .port(1)
            .connect(postgres::NoTls)
        else {
            panic!("nothing listens on port 1");
        };
        failover.retire(0, &err);
        assert_eq!(failover.epoch(), 1);
        failover.retire(0, &err);
        assert_eq!(failover.epoch(), 1, "epoch 0 was already retired");
        failover.retire(1, &err);
        assert_eq!(failover.epoch(), 2);
    }
}
