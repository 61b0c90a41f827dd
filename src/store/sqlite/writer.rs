//! The one SQLite writer of this process: a dedicated thread that applies new events in
//! batches, one transaction and one fsync per batch (group commit).
//!
//! Why a thread and not a lock: SQLite admits one writer at a time, and each commit at
//! `synchronous=FULL` costs an fsync. Requests that queue on a mutex each pay their own
//! fsync and their own thread handoff; requests that queue on this thread's channel are
//! drained together, so 64 concurrent new events share one commit.
//!
//! Each event of a batch runs in its own `SAVEPOINT`: one that fails (a bad row, a full
//! disk on its page) is rolled back alone and answered with its error, and its batch-mates
//! still commit. Replies go out only after the `COMMIT` returned, so a 2xx still means
//! durable at the configured level. Before every commit the thread checks the
//! connection's `synchronous` level and puts it back if anything changed it: durability
//! never depends on some other code path having restored a pragma.
//!
//! The thread is supervised by itself: a panic inside one batch is caught, that batch's
//! callers get their 503 (their reply channels close), and the thread goes on with the
//! next batch. Without that, one panic would end the writer, every new event would get
//! a 503 for ever while duplicates kept their 202, and /readyz would not notice. A commit
//! that fails because the file cannot be written (read-only, full, I/O error) marks the
//! writer as failing, which /readyz reports (SPEC §7) until a write succeeds again.
//!
//! Duplicates never come here to wait. They are decided by a read on a reader connection,
//! and their bookkeeping (`delivery_count`, `last_seen_at`) is added to [`Counts`], which
//! this thread folds into its next transaction, or commits on its own within
//! [`FLUSH_DELAY`]. After a failed commit the counts go back and the thread tries again on
//! its own, backing off up to [`RETRY_MAX`](crate::store::counts::RETRY_MAX): a new count
//! would not wake it, since pending counts make it look like part of a batch. A crash
//! may lose those last counts, never an event.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::checkpoint::Checkpointer;
use super::totals::Delta;
use super::{map_err, sql};
use crate::model::{NewEvent, Outcome};
use crate::store::StoreError;
use crate::store::counts::{Counts, FLUSH_DELAY, next_retry};
use crate::store::thread::Background;

/// Most events in one transaction. Past a few dozen the fsync is already shared; the
/// bound keeps one batch's replies from waiting on a very long transaction.
const MAX_BATCH: usize = 256;

/// Queue length. A full queue means the disk cannot keep up: the request gets a 503
/// at once (the provider retries) instead of piling up memory.
const QUEUE: usize = 4096;

/// What a finished process job answers.
pub type Processed = Result<(Outcome, NewEvent), StoreError>;

/// Where a reply goes: an async request awaits a oneshot; a blocking caller (the CLI,
/// tests) waits on a std channel, which is safe on any thread.
pub enum ReplyTo<T> {
    Async(tokio::sync::oneshot::Sender<T>),
    Blocking(SyncSender<T>),
}

impl<T> ReplyTo<T> {
    fn send(self, value: T) {
        // A caller that gave up (its deadline passed) dropped its receiver; nothing to do.
        match self {
            ReplyTo::Async(tx) => drop(tx.send(value)),
            ReplyTo::Blocking(tx) => drop(tx.send(value)),
        }
    }
}

type Work = Box<dyn FnOnce(&mut Connection) + Send>;

// Most jobs are events: boxing them would add an allocation per event to save the few
// bytes of the rare control jobs.
#[allow(clippy::large_enum_variant)]
enum Job {
    Process {
        event: NewEvent,
        deadline: Instant,
        reply: ReplyTo<Processed>,
    },
    /// Anything that must run as this process's writer (migrations, maintenance).
    Run(Work),
    /// Commit pending duplicate counts now, then answer.
    Flush(ReplyTo<Result<(), StoreError>>),
    /// Duplicate counts are waiting.
    Wake,
}

/// The handle the store keeps. [`Writer::close`] (or dropping it) lets the thread drain
/// its queue, commit the counts still pending, and stop.
pub struct Writer {
    jobs: Option<SyncSender<Job>>,
    /// Events queued and not yet taken into a batch (for tests and metrics).
    queued: Arc<AtomicUsize>,
    counts: Arc<Counts>,
    /// Set while commits fail because the file cannot be written.
    failing: Arc<AtomicBool>,
    /// Set by [`Writer::close`]: the thread ends once its queue is empty. A flag and not
    /// a closed channel, because closing needs only `&self`: at shutdown a task the
    /// runtime abandoned may still hold the store, so no one owns the writer to drop it.
    closing: Arc<AtomicBool>,
    thread: Background,
}

impl Writer {
    pub fn start(
        pool: Pool<SqliteConnectionManager>,
        synchronous: &'static str,
        timeout: Duration,
        checkpointer: Option<Checkpointer>,
    ) -> Result<Writer, StoreError> {
        let (jobs, queue) = std::sync::mpsc::sync_channel(QUEUE);
        let counts = Arc::new(Counts::default());
        let queued = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let closing = Arc::new(AtomicBool::new(false));
        let thread = WriterState {
            pool,
            queue,
            queued: queued.clone(),
            counts: counts.clone(),
            failing: failing.clone(),
            closing: closing.clone(),
            synchronous,
            timeout,
            counts_due: None,
            counts_retry: None,
            checkpointer,
        };
        let thread = Background::spawn("hooklatch-sqlite-writer", move || thread.run())
            .map_err(|e| StoreError::Internal(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Writer {
            jobs: Some(jobs),
            queued,
            counts,
            failing,
            closing,
            thread,
        })
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => {
                StoreError::Timeout("the SQLite writer's queue is full".into())
            }
            TrySendError::Disconnected(_) => {
                StoreError::Unavailable("the SQLite writer has stopped".into())
            }
        })
    }

    /// Queues a new (or conflicting) event; the reply comes after its batch committed.
    pub fn process(
        &self,
        event: NewEvent,
        deadline: Instant,
        reply: ReplyTo<Processed>,
    ) -> Result<(), StoreError> {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.send(Job::Process {
            event,
            deadline,
            reply,
        })
        .inspect_err(|_| {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        })
    }

    /// Events on the queue, not yet in a batch.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Counts a duplicate delivery of event row `id`, committed with a later batch.
    pub fn count_duplicate(&self, id: i64, at: String) {
        if self.counts.add(id, at) {
            // A full queue means a batch is coming anyway, and it takes the counts along.
            let _ = self.send(Job::Wake);
        }
    }

    /// Commits pending duplicate counts, so a read after it sees every counted delivery.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.send(Job::Flush(ReplyTo::Blocking(tx)))?;
        rx.recv()
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }

    /// Whether this writer can write now (SPEC §7: a store that cannot write is not
    /// ready). Costs nothing while commits succeed; after one failed because the file
    /// could not be written, each call tries a real write (one page, one fsync) until one
    /// succeeds, so readiness comes back without waiting for traffic.
    pub fn can_write(&self) -> Result<(), StoreError> {
        if self.thread.is_finished() {
            return Err(StoreError::Unavailable(
                "the SQLite writer has stopped".into(),
            ));
        }
        if !self.failing.load(Ordering::Acquire) {
            return Ok(());
        }
        let failing = self.failing.clone();
        self.run(move |conn| {
            probe_write(conn)?;
            failing.store(false, Ordering::Release);
            Ok(())
        })
    }

    /// Runs `work` on the writer's connection, between batches, and waits for it.
    pub fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.send(Job::Run(Box::new(move |conn| {
            let _ = tx.send(work(conn));
        })))?;
        rx.recv()
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }

    /// Drains the queue, commits the counts still pending and stops the thread, waiting
    /// at most `within`; true when the thread has ended. Jobs sent meanwhile are drained
    /// too; after it, every job is refused as "stopped".
    pub fn close(&self, within: Duration) -> bool {
        self.closing.store(true, Ordering::Release);
        // Wakes a thread waiting for work; when the queue is full it is not waiting.
        if let Some(jobs) = &self.jobs {
            let _ = jobs.try_send(Job::Wake);
        }
        self.thread.wait(within)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop after the queued jobs.
        drop(self.jobs.take());
        self.thread.join();
    }
}

/// What the writer thread owns.
struct WriterState {
    pool: Pool<SqliteConnectionManager>,
    queue: Receiver<Job>,
    queued: Arc<AtomicUsize>,
    counts: Arc<Counts>,
    synchronous: &'static str,
    timeout: Duration,
    /// When pending duplicate counts must be committed, if any are waiting.
    counts_due: Option<Instant>,
    /// Set while the last commit of counts failed: the wait before the next try.
    counts_retry: Option<Duration>,
    failing: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
    /// Checkpoints the WAL after commits, on its own thread; ends with this one.
    checkpointer: Option<Checkpointer>,
}

impl WriterState {
    fn run(mut self) {
        loop {
            let first = if self.closing.load(Ordering::Acquire) {
                // Closing: what is queued is still applied, then the loop ends.
                match self.queue.try_recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            } else {
                match self.counts_due {
                    None => match self.queue.recv() {
                        Ok(job) => job,
                        Err(_) => break,
                    },
                    Some(due) => {
                        match self
                            .queue
                            .recv_timeout(due.saturating_duration_since(Instant::now()))
                        {
                            Ok(job) => job,
                            Err(RecvTimeoutError::Timeout) => {
                                self.commit_counts_alone();
                                continue;
                            }
                            Err(RecvTimeoutError::Disconnected) => break,
                        }
                    }
                }
            };
            // A panic ends this batch only: the jobs it held are dropped with it, and
            // each caller, its reply channel closed, answers 503.
            if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| self.batch(first))) {
                self.after_panic(panic.as_ref());
            }
        }
        // The store is closing: counts still pending are committed, not dropped, retried
        // for up to the store timeout should the store refuse them now.
        let give_up = Instant::now() + self.timeout;
        self.commit_counts_alone();
        while let Some(due) = self.counts_due {
            if due > give_up {
                tracing::error!("duplicate counts lost at shutdown: the store refused them");
                break;
            }
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            self.commit_counts_alone();
        }
    }

    fn after_panic(&mut self, panic: &(dyn std::any::Any + Send)) {
        let message = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic without a message");
        tracing::error!(
            panic = message,
            "SQLite writer: a batch panicked; its deliveries got 503, the writer goes on"
        );
        // Counts taken by that batch are lost with it; those added since still commit.
        if !self.counts.is_empty() {
            self.counts_due
                .get_or_insert_with(|| Instant::now() + FLUSH_DELAY);
        }
    }

    /// Drains what is queued behind `first` and applies it.
    fn batch(&mut self, first: Job) {
        let mut events = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next {
            match job {
                Job::Process {
                    event,
                    deadline,
                    reply,
                } => {
                    self.queued.fetch_sub(1, Ordering::Relaxed);
                    events.push((event, deadline, reply));
                }
                Job::Flush(reply) => flushes.push(reply),
                Job::Wake => {
                    self.counts_due
                        .get_or_insert_with(|| Instant::now() + FLUSH_DELAY);
                }
                // Run jobs take the connection for themselves: commit what came before.
                Job::Run(work) => {
                    self.commit(std::mem::take(&mut events), std::mem::take(&mut flushes));
                    match self.connection(self.timeout) {
                        Ok(mut conn) => work(&mut conn),
                        // Dropping `work` drops its reply sender: the caller sees the
                        // writer as unavailable.
                        Err(e) => tracing::warn!(error = %e, "SQLite writer has no connection"),
                    }
                }
            }
            next = if events.len() < MAX_BATCH {
                self.queue.try_recv().ok()
            } else {
                None
            };
        }
        if !events.is_empty() || !flushes.is_empty() {
            self.commit(events, flushes);
        }
    }

    fn connection(
        &self,
        wait: Duration,
    ) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, StoreError> {
        self.pool
            .get_timeout(wait)
            .map_err(|e| StoreError::Timeout(format!("no SQLite connection: {e}")))
    }

    fn commit_counts_alone(&mut self) {
        self.commit(Vec::new(), Vec::new());
    }

    /// One transaction: every event in its own savepoint, then the pending counts, then
    /// one COMMIT; replies after it.
    fn commit(
        &mut self,
        events: Vec<(NewEvent, Instant, ReplyTo<Processed>)>,
        flushes: Vec<ReplyTo<Result<(), StoreError>>>,
    ) {
        self.counts_due = None;
        let now = Instant::now();
        let (live, expired): (Vec<_>, Vec<_>) = events
            .into_iter()
            .partition(|(_, deadline, _)| *deadline > now);
        // Their callers have already answered 503; applying them now could only surprise.
        for (_, _, reply) in expired {
            reply.send(Err(StoreError::Timeout(
                "waited too long for the SQLite writer".into(),
            )));
        }
        let counts = self.counts.take();
        if live.is_empty() && counts.is_empty() {
            for reply in flushes {
                reply.send(Ok(()));
            }
            return;
        }
        // The batch waits (for a connection, for another process's write lock) no longer
        // than its most urgent member may: then every member gets its 503 in time, and
        // nothing is committed after its caller was told it was not.
        let wait = live
            .iter()
            .map(|(_, deadline, _)| deadline.saturating_duration_since(now))
            .min()
            .unwrap_or(self.timeout);
        let events: Vec<(NewEvent, ReplyTo<Processed>)> =
            live.into_iter().map(|(e, _, r)| (e, r)).collect();

        let result = self.connection(wait).and_then(|mut conn| {
            conn.busy_timeout(wait).map_err(map_err)?;
            let result = self.transaction(&mut conn, &events, &counts);
            // The connection goes back to the pool (readers, Run jobs) with the wait it
            // was opened with, not this batch's remainder.
            conn.busy_timeout(self.timeout).map_err(map_err)?;
            result
        });
        match result {
            Ok(outcomes) => {
                self.counts_retry = None;
                self.failing.store(false, Ordering::Release);
                if let Some(checkpointer) = &self.checkpointer {
                    checkpointer.nudge();
                }
                for ((event, reply), outcome) in events.into_iter().zip(outcomes) {
                    reply.send(outcome.map(|o| (o, event)));
                }
                for reply in flushes {
                    reply.send(Ok(()));
                }
            }
            Err(e) => {
                if matches!(e, StoreError::Unavailable(_)) {
                    self.failing.store(true, Ordering::Release);
                }
                self.counts.restore(counts);
                if !self.counts.is_empty() {
                    let delay = next_retry(self.counts_retry);
                    self.counts_retry = Some(delay);
                    self.counts_due = Some(Instant::now() + delay);
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "duplicate counts not committed yet");
                }
                for (_, reply) in events {
                    reply.send(Err(e.clone()));
                }
                for reply in flushes {
                    reply.send(Err(e.clone()));
                }
            }
        }
    }

    fn transaction(
        &self,
        conn: &mut Connection,
        events: &[(NewEvent, ReplyTo<Processed>)],
        counts: &HashMap<i64, (i64, String)>,
    ) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
        self.check_durability(conn)?;
        // IMMEDIATE takes the write lock now, waiting busy_timeout for another process.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        let mut outcomes = Vec::with_capacity(events.len());
        // What the batch changed in the totals, written once per source and group below.
        let mut totals = Delta::default();
        for (event, _) in events {
            // Cached statements, not rusqlite's `Savepoint`: that one formats its name and
            // parses `SAVEPOINT` and `RELEASE` afresh for every event, two prepares per
            // event on the writer thread that every new event waits on.
            run_cached(&tx, sql::SAVEPOINT_EVENT)?;
            let mut delta = Delta::default();
            let outcome = super::process::apply(&tx, event, None, &mut delta);
            if outcome.is_ok() {
                run_cached(&tx, sql::RELEASE_EVENT)?;
                totals.absorb(delta)?;
            } else {
                run_cached(&tx, sql::ROLLBACK_EVENT)?;
                run_cached(&tx, sql::RELEASE_EVENT)?;
            }
            outcomes.push(outcome);
        }
        if !counts.is_empty() {
            let mut stmt = tx.prepare_cached(sql::COUNT_DUPLICATES).map_err(map_err)?;
            for (id, (n, at)) in counts {
                let source: Option<String> = stmt
                    .query_row(params![id, n, at], |row| row.get(0))
                    .optional()
                    .map_err(map_err)?;
                if let Some(source) = source {
                    totals.deliveries(&source, false, *n, 0, at);
                }
            }
        }
        totals.write(&tx)?;
        tx.commit().map_err(map_err)?;
        Ok(outcomes)
    }

    /// The level every durable commit runs at, checked before each one: a connection left
    /// at another level by any code path is put back, never trusted.
    fn check_durability(&self, conn: &Connection) -> Result<(), StoreError> {
        let level: i64 = conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .map_err(map_err)?;
        if level != synchronous_code(self.synchronous) {
            tracing::warn!(
                level,
                expected = self.synchronous,
                "SQLite connection found at another synchronous level; restoring it"
            );
            conn.pragma_update(None, "synchronous", self.synchronous)
                .map_err(map_err)?;
        }
        Ok(())
    }
}

/// Runs a statement without parameters or rows, prepared once per connection.
fn run_cached(conn: &Connection, statement: &str) -> Result<(), StoreError> {
    conn.prepare_cached(statement)
        .and_then(|mut stmt| stmt.execute([]))
        .map(drop)
        .map_err(map_err)
}

/// The smallest real write: page 1 rewritten with the value it holds, committed.
fn probe_write(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_err)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(map_err)?;
    tx.pragma_update(None, "user_version", version)
        .map_err(map_err)?;
    tx.commit().map_err(map_err)
}

/// `PRAGMA synchronous` answers a number: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
pub fn synchronous_code(level: &str) -> i64 {
    match level {
        "OFF" => 0,
        "NORMAL" => 1,
        "EXTRA" => 3,
        _ => 2,
    }
}
