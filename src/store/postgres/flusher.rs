//! Commits duplicate counts for the PostgreSQL backend: a thread per store that wakes
//! when the first count arrives, waits [`FLUSH_DELAY`] for more, and commits them all in
//! one call of `count_duplicate_deliveries` (see `crate::store::counts`). The same thread
//! folds the totals' delta rows every `StoreOptions::totals_fold_every` (1 s) (see `super::totals`).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use r2d2::Pool;

use super::{Manager, PgConn, connection_lost, sql};
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
        wait: Duration,
        fold_every: Duration,
    ) -> std::io::Result<Flusher> {
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        let counts = Arc::new(Counts::default());
        let flushing = Arc::new(Mutex::new(()));
        let thread = {
            let counts = counts.clone();
            let flushing = flushing.clone();
            std::thread::Builder::new()
                .name("hooklatch-pg-counts".into())
                .spawn(move || run(&pool, &counts, &flushing, &woken, wait, fold_every))?
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

fn run(
    pool: &Pool<Manager>,
    counts: &Counts,
    flushing: &Mutex<()>,
    woken: &Receiver<()>,
    wait: Duration,
    fold_every: Duration,
) {
    let mut next_fold = Instant::now() + fold_every;
    loop {
        match woken.recv_timeout(next_fold.saturating_duration_since(Instant::now())) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => {
                fold_pooled(pool);
                next_fold = Instant::now() + fold_every;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Let more counts gather (a retry storm sends many at once); stop waiting early
        // only when the store is closing.
        let due = Instant::now() + FLUSH_DELAY;
        let closing = loop {
            match woken.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(()) => continue,
                Err(RecvTimeoutError::Timeout) => break false,
                Err(RecvTimeoutError::Disconnected) => break true,
            }
        };
        flush_pooled(pool, counts, flushing, wait);
        if closing {
            return;
        }
        // A steady stream of duplicates never lets the wait above time out.
        if Instant::now() >= next_fold {
            fold_pooled(pool);
            next_fold = Instant::now() + fold_every;
        }
    }
    flush_pooled(pool, counts, flushing, wait);
}

/// Opportunistic: folds on an idle pooled connection, or not at all this time (the
/// deltas wait for the next fold, and reads add them meanwhile), so housekeeping never
/// waits for a connection a webhook could use.
fn fold_pooled(pool: &Pool<Manager>) {
    let Some(mut conn) = pool.try_get() else {
        return;
    };
    if let Err(e) = super::totals::fold(&mut conn) {
        if connection_lost(&e) {
            conn.broken = true;
        }
        tracing::debug!(error = %e, "totals not folded yet");
    }
}

fn flush_pooled(pool: &Pool<Manager>, counts: &Counts, flushing: &Mutex<()>, wait: Duration) {
    let _flushing = flushing.lock();
    let result = pool
        .get_timeout(wait)
        .map_err(|e| e.to_string())
        .and_then(|mut conn| {
            flush(&mut conn, counts).map_err(|e| {
                if connection_lost(&e) {
                    conn.broken = true;
                }
                e.to_string()
            })
        });
    if let Err(e) = result {
        // The counts went back into `counts`: the next duplicate wakes this thread again.
        tracing::warn!(error = %e, "duplicate counts not committed yet");
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
    match conn
        .client
        .execute(sql::COUNT_DELIVERIES, &[&ids, &ns, &seen])
    {
        Ok(_) => Ok(()),
        Err(e) => {
            counts.restore(pending);
            Err(e)
        }
    }
}
