//! Commits duplicate counts for the PostgreSQL backend: a thread per store that wakes
//! when the first count arrives, waits [`FLUSH_DELAY`] for more, and commits them all in
//! one call of `count_duplicate_deliveries` (see `crate::store::counts`). A flush that
//! fails (the server lost, a failover under way) is tried again every
//! [`RECONNECT_EVERY`] until it commits, on a connection to whichever server now takes
//! writes.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use postgres::types::Type;
use r2d2::Pool;

use super::failover::{Failover, RECONNECT_EVERY};
use super::{Manager, PgConn, sql};
use crate::store::counts::{Counts, FLUSH_DELAY};

pub struct Flusher {
    wake: Option<SyncSender<()>>,
    counts: Arc<Counts>,
    /// Held for each flush, so a reader's flush waits for one already under way: counts
    /// taken by the thread but not yet committed would otherwise be invisible to it.
    flushing: Arc<Mutex<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    pub fn start(
        pool: Pool<Manager>,
        failover: Arc<Failover>,
        wait: Duration,
    ) -> std::io::Result<Flusher> {
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        let counts = Arc::new(Counts::default());
        let flushing = Arc::new(Mutex::new(()));
        let thread = {
            let counts = counts.clone();
            let flushing = flushing.clone();
            std::thread::Builder::new()
                .name("hooklatch-pg-counts".into())
                .spawn(move || {
                    let flush = || flush_pooled(&pool, &failover, &counts, &flushing, wait);
                    run(flush, &woken);
                })?
        };
        Ok(Flusher {
            wake: Some(wake),
            counts,
            flushing,
            thread: Some(thread),
        })
    }

    /// Counts a duplicate delivery of event row `id`, committed within `FLUSH_DELAY`.
    pub fn count(&self, id: i64, at: String) {
        if self.counts.add(id, at)
            && let Some(wake) = &self.wake
        {
            // Full: a wake-up is already pending, and it will take this count along.
            let _ = wake.try_send(());
        }
    }

    /// Commits what is pending on `conn`, now.
    pub fn flush_on(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        let _flushing = self.flushing.lock();
        flush(conn, &self.counts)
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        // The thread commits what is left, then ends.
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(flush: impl Fn() -> bool, woken: &Receiver<()>) {
    let mut failed = false;
    loop {
        let closing = if failed {
            // Counts are waiting for the server to come back: try again soon, whether or
            // not another duplicate arrives.
            matches!(
                woken.recv_timeout(RECONNECT_EVERY),
                Err(RecvTimeoutError::Disconnected)
            )
        } else {
            if woken.recv().is_err() {
                break;
            }
            // Let more counts gather (a retry storm sends many at once); stop waiting
            // early only when the store is closing.
            let due = Instant::now() + FLUSH_DELAY;
            loop {
                match woken.recv_timeout(due.saturating_duration_since(Instant::now())) {
                    Ok(()) => continue,
                    Err(RecvTimeoutError::Timeout) => break false,
                    Err(RecvTimeoutError::Disconnected) => break true,
                }
            }
        };
        failed = !flush();
        if closing {
            return;
        }
    }
    flush();
}

/// True when every pending count is committed.
fn flush_pooled(
    pool: &Pool<Manager>,
    failover: &Failover,
    counts: &Counts,
    flushing: &Mutex<()>,
    wait: Duration,
) -> bool {
    let _flushing = flushing.lock();
    let result = failover
        .checkout(pool, Instant::now() + wait)
        .map_err(|e| e.to_string())
        .and_then(|mut conn| {
            flush(&mut conn, counts).map_err(|e| {
                failover.after_error(&mut conn, &e);
                e.to_string()
            })
        });
    match result {
        Ok(()) => true,
        Err(e) => {
            // The counts went back into `counts`, for the next try.
            tracing::warn!(error = %e, "duplicate counts not committed yet");
            false
        }
    }
}

/// One statement for every pending count; on failure they go back for the next try.
fn flush(conn: &mut PgConn, counts: &Counts) -> Result<(), postgres::Error> {
    let pending = counts.take();
    if pending.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(pending.len());
    let mut ns = Vec::with_capacity(pending.len());
    let mut seen = Vec::with_capacity(pending.len());
    for (id, (n, at)) in &pending {
        ids.push(*id);
        ns.push(*n);
        seen.push(at.as_str());
    }
    // Typed, so it goes out unnamed in one round trip (and through a transaction pooler).
    match conn.client.execute_typed(
        sql::COUNT_DELIVERIES,
        &[
            (&ids, Type::INT8_ARRAY),
            (&ns, Type::INT8_ARRAY),
            (&seen, Type::TEXT_ARRAY),
        ],
    ) {
        Ok(_) => Ok(()),
        Err(e) => {
            counts.restore(pending);
            Err(e)
        }
    }
}
