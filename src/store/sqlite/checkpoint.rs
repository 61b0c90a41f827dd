//! WAL checkpoints off the writer's thread.
//!
//! Why: SQLite runs its automatic checkpoint inside the `COMMIT` that takes the WAL past
//! 1,000 pages, on the committing connection. Here that is the one writer thread every
//! new event waits for: the checkpoint copies the logged pages back into the database
//! file and fsyncs it while the batch's callers still wait for their replies and the next
//! batch cannot start. This thread runs the checkpoints instead, on the other core, soon
//! after the writer's commits. The pooled connections keep an automatic checkpoint only
//! as a backstop ([`BACKSTOP_PAGES`]), far above what this thread lets the WAL reach,
//! should it ever fall behind or stop.
//!
//! A checkpoint is `PASSIVE`: it copies what no reader still needs and never waits for a
//! lock, so it cannot stall the writer or a reader. Durability does not change: a commit
//! is durable once its WAL frames are synced, whoever checkpoints them later.

use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;

use crate::store::StoreError;
use crate::store::thread::Background;

/// The automatic checkpoint's threshold on every pooled connection: about 80 MB of WAL
/// at 4 KiB pages, reached only if this thread falls far behind.
pub const BACKSTOP_PAGES: u32 = 20_000;

/// Least time between two checkpoints: under load, a page the writer dirties again and
/// again (the newest leaf of a time index, a totals row) is copied once per gap, not once
/// per commit.
const GAP: Duration = Duration::from_millis(100);

/// How long a checkpoint waits for a pooled connection before leaving it to the next
/// commit's nudge.
const CONNECTION_WAIT: Duration = Duration::from_millis(500);

/// The handle the writer keeps; dropping it ends the thread after its current checkpoint.
pub struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    thread: Background,
}

impl Checkpointer {
    pub fn start(pool: Pool<SqliteConnectionManager>) -> Result<Checkpointer, StoreError> {
        // One slot: nudges that arrive while one is pending add nothing.
        let (nudge, nudges) = std::sync::mpsc::sync_channel(1);
        let thread = Background::spawn("hl-sqlite-ckpt", move || {
            run(&pool, &nudges);
        })
        .map_err(|e| StoreError::Internal(format!("cannot start the SQLite checkpointer: {e}")))?;
        Ok(Checkpointer {
            nudge: Some(nudge),
            thread,
        })
    }

    /// Called after each commit: a checkpoint follows within [`GAP`].
    pub fn nudge(&self) {
        // Full: a checkpoint is already due. Disconnected: the thread has ended, and the
        // backstop checkpoints instead.
        if let Some(nudge) = &self.nudge {
            let _ = nudge.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.nudge.take());
        self.thread.join();
    }
}

fn run(pool: &Pool<SqliteConnectionManager>, nudges: &Receiver<()>) {
    let mut last: Option<Instant> = None;
    // Logged once per streak of failures, not once per commit.
    let mut failing = false;
    while nudges.recv().is_ok() {
        if let Some(wait) = last.and_then(|at| GAP.checked_sub(at.elapsed())) {
            std::thread::sleep(wait);
        }
        // Whatever was committed while this thread slept is in this checkpoint too.
        while nudges.try_recv().is_ok() {}
        last = Some(Instant::now());
        match checkpoint(pool) {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "SQLite checkpoint failed; the next commit retries it");
            }
            Err(_) => {}
        }
    }
}

fn checkpoint(pool: &Pool<SqliteConnectionManager>) -> Result<(), String> {
    let conn = pool
        .get_timeout(CONNECTION_WAIT)
        .map_err(|e| e.to_string())?;
    conn.query_row(super::sql::CHECKPOINT, [], |_| Ok(()))
        .map_err(|e| e.to_string())
}
