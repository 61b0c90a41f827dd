//! Commits duplicate counts for the PostgreSQL backend: a thread per store that wakes
//! when the first count arrives, waits [`FLUSH_DELAY`] for more, and commits them all in
//! one call of `count_duplicate_deliveries` (see `crate::store::counts`). The same thread
//! folds the totals' delta rows every `StoreOptions::totals_fold_every` (see
//! `super::totals`). After a failed
//! commit it tries again on its own, backing off up to [`RETRY_MAX`]: no later count
//! would wake it, since counts already pending make a new one look like part of a batch.
//! After a failover the next try runs on a connection to whichever server now takes
//! writes ([`Failover`]).
//!
//! Lock order: a pooled connection first, then the `flushing` lock, for this thread and
//! for a reader's flush alike. A reader holds its connection when it flushes; were the
//! thread to take the lock first and then wait for a connection, a pool drained by such
//! readers would stall both until the pool timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use postgres::types::Type;
use r2d2::Pool;

use super::failover::Failover;
use super::{Manager, PgConn, sql};
use crate::store::counts::{Counts, FLUSH_DELAY, RETRY_MAX, next_retry};
use crate::store::thread::Background;

pub struct Flusher {
    wake: Option<SyncSender<()>>,
    counts: Arc<Counts>,
    /// Held for each flush, so a reader's flush waits for one already under way: counts
    /// taken by the thread but not yet committed would otherwise be invisible to it.
    flushing: Arc<Mutex<()>>,
    /// Set by [`Flusher::close`]: the thread commits what is pending and ends. A flag,
    /// because closing needs only `&self` (see `crate::store::thread`).
    closing: Arc<AtomicBool>,
    thread: Background,
}

impl Flusher {
    pub fn start(
        pool: Pool<Manager>,
        failover: Arc<Failover>,
        wait: Duration,
        fold_every: Duration,
    ) -> std::io::Result<Flusher> {
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        let counts = Arc::new(Counts::default());
        let flushing = Arc::new(Mutex::new(()));
        let closing = Arc::new(AtomicBool::new(false));
        let thread = {
            let woken = Woken {
                channel: woken,
                closing: closing.clone(),
            };
            let counts = counts.clone();
            let flushing = flushing.clone();
            Background::spawn("hooklatch-pg-counts", move || {
                run(
                    &(pool, failover),
                    &counts,
                    &flushing,
                    &woken,
                    wait,
                    fold_every,
                )
            })?
        };
        Ok(Flusher {
            wake: Some(wake),
            counts,
            flushing,
            closing,
            thread,
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

    /// Commits what is pending on `conn`, now. On failure the counts stay pending and
    /// the thread is told, so it retries them even if no other count ever arrives.
    pub fn flush_on(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        let result = {
            let _flushing = self.flushing.lock();
            flush(conn, &self.counts)
        };
        if result.is_err()
            && let Some(wake) = &self.wake
        {
            let _ = wake.try_send(());
        }
        result
    }
}

impl Flusher {
    /// Commits what is pending and stops the thread, waiting at most `within`; true when
    /// the thread has ended. A count added after it stays uncommitted.
    pub fn close(&self, within: Duration) -> bool {
        self.closing.store(true, Ordering::Release);
        if let Some(wake) = &self.wake {
            // Full: a wake-up is pending, and the thread sees the flag when it takes it.
            let _ = wake.try_send(());
        }
        self.thread.wait(within)
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        // The thread commits what is left, then ends.
        drop(self.wake.take());
        self.thread.join();
    }
}

/// The thread's side of the wake-ups: a wake-up while closing means "close".
struct Woken {
    channel: Receiver<()>,
    closing: Arc<AtomicBool>,
}

impl Woken {
    /// `Disconnected` also when the store is closing, so every wait ends the same way.
    fn recv_timeout(&self, wait: Duration) -> Result<(), RecvTimeoutError> {
        let woke = self.channel.recv_timeout(wait);
        if self.closing.load(Ordering::Acquire) {
            return Err(RecvTimeoutError::Disconnected);
        }
        woke
    }
}

/// Where connections come from: the pool, and which of its connections are current.
type Source = (Pool<Manager>, Arc<Failover>);

/// Why the thread woke up.
enum Woke {
    Count,
    Retry,
    Fold,
    Closing,
}

fn run(
    pool: &Source,
    counts: &Counts,
    flushing: &Mutex<()>,
    woken: &Woken,
    wait: Duration,
    fold_every: Duration,
) {
    // Set while the last commit failed and counts are still pending: the next try's wait.
    let mut retry: Option<Duration> = None;
    let mut next_fold = Instant::now() + fold_every;
    loop {
        let until_fold = next_fold.saturating_duration_since(Instant::now());
        let (delay, on_timeout) = match retry {
            Some(delay) if delay < until_fold => (delay, Woke::Retry),
            _ => (until_fold, Woke::Fold),
        };
        let woke = match woken.recv_timeout(delay) {
            Ok(()) => Woke::Count,
            Err(RecvTimeoutError::Timeout) => on_timeout,
            Err(RecvTimeoutError::Disconnected) => Woke::Closing,
        };
        if matches!(woke, Woke::Fold) || Instant::now() >= next_fold {
            // Also after a count: a steady stream of duplicates never lets the wait time out.
            fold_pooled(pool);
            next_fold = Instant::now() + fold_every;
        }
        let closing = match woke {
            Woke::Closing => true,
            Woke::Fold => {
                if retry.is_none() {
                    continue;
                }
                false
            }
            Woke::Retry => false,
            // Let more counts gather (a retry storm sends many at once); stop waiting
            // early only when the store is closing.
            Woke::Count => {
                let due = Instant::now() + FLUSH_DELAY;
                loop {
                    match woken.recv_timeout(due.saturating_duration_since(Instant::now())) {
                        Ok(()) => continue,
                        Err(RecvTimeoutError::Timeout) => break false,
                        Err(RecvTimeoutError::Disconnected) => break true,
                    }
                }
            }
        };
        if closing {
            flush_before_closing(pool, counts, flushing, wait);
            return;
        }
        let committed = flush_pooled(pool, counts, flushing, wait);
        retry = (!committed && !counts.is_empty()).then(|| next_retry(retry));
    }
}

/// Opportunistic: folds on an idle pooled connection, or not at all this time (the
/// deltas wait for the next fold, and reads add them meanwhile), so housekeeping never
/// waits for a connection a webhook could use.
fn fold_pooled((pool, failover): &Source) {
    let Some(mut conn) = pool.try_get() else {
        return;
    };
    if conn.epoch != failover.epoch() {
        // A connection to a server this store has left: discarded, no fold this time.
        conn.broken = true;
        return;
    }
    if let Err(e) = super::totals::fold(&mut conn) {
        failover.after_error(&mut conn, &e);
        tracing::debug!(error = %e, "totals not folded yet");
    }
}

/// The store is closing: what is pending is committed, retried while the store refuses
/// for up to `wait`, so a passing fault at shutdown does not lose the last counts.
fn flush_before_closing(pool: &Source, counts: &Counts, flushing: &Mutex<()>, wait: Duration) {
    // Nothing pending, no connection to wait for: a store that never connected (a
    // failed startup) closes at once instead of after the connect timeout.
    if counts.is_empty() {
        return;
    }
    let give_up = Instant::now() + wait;
    let mut retry = None;
    while !flush_pooled(pool, counts, flushing, wait) && !counts.is_empty() {
        let delay = next_retry(retry);
        if Instant::now() + delay > give_up {
            tracing::error!("duplicate counts lost at shutdown: the store refused them");
            return;
        }
        std::thread::sleep(delay);
        retry = Some(delay);
    }
}

/// One try; true when nothing is left pending from it.
fn flush_pooled(pool: &Source, counts: &Counts, flushing: &Mutex<()>, wait: Duration) -> bool {
    // The connection before the lock: see the module header.
    let (pool, failover) = pool;
    let result = failover
        .checkout(pool, Instant::now() + wait)
        .map_err(|e| e.to_string())
        .and_then(|mut conn| {
            let _flushing = flushing.lock();
            flush(&mut conn, counts).map_err(|e| {
                failover.after_error(&mut conn, &e);
                e.to_string()
            })
        });
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, retry_within_ms = RETRY_MAX.as_millis() as u64, "duplicate counts not committed yet");
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
