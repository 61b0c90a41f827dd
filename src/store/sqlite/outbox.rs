//! SQLite side of the forwarding outbox: the entry written inside the receive
//! transaction (the writer's savepoint for the event), and the worker's and operator's
//! verbs. Their writes run on the writer thread, between batches, like every write of
//! this process. One process owns the worker on SQLite; the lease columns still guard
//! against a second one, as on PostgreSQL.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{SqliteStore, all_rows, map_err};
use crate::model::clock::{now_text, text_after};
use crate::model::outbox::{
    AttemptOutcome, AttemptReport, ForwardBacklog, ForwardInfo, ForwardJob, HISTORY_KEPT,
    SourceChange, SourceForwarding,
};
use crate::model::{EventId, Source};
use crate::read::Timestamp;
use crate::store::rows;
use crate::store::{Outbox, StoreError};

mod sql {
    pub const INSERT_OUTBOX: &str = include_str!("../../../sql/sqlite/insert_outbox.sql");
    pub const ANY_DUE: &str = include_str!("../../../sql/sqlite/any_due_forward.sql");
    pub const CLAIM: &str = include_str!("../../../sql/sqlite/claim_forwards.sql");
    pub const JOB: &str = include_str!("../../../sql/sqlite/forward_job.sql");
    pub const DELIVERED: &str = include_str!("../../../sql/sqlite/forward_delivered.sql");
    pub const FAILED: &str = include_str!("../../../sql/sqlite/forward_failed.sql");
    pub const RELEASE: &str = include_str!("../../../sql/sqlite/release_forwards.sql");
    pub const REQUEUE_ONE: &str = include_str!("../../../sql/sqlite/requeue_forward.sql");
    pub const REQUEUE_MANY: &str = include_str!("../../../sql/sqlite/requeue_forwards.sql");
    pub const STATE: &str = include_str!("../../../sql/sqlite/forward_state.sql");
    pub const BACKLOG: &str = include_str!("../../../sql/sqlite/forward_backlog.sql");
    pub const INSERT_ATTEMPT: &str = include_str!("../../../sql/sqlite/insert_forward_attempt.sql");
    pub const TRIM_ATTEMPTS: &str = include_str!("../../../sql/sqlite/trim_forward_attempts.sql");
    pub const SOURCE_ATTEMPT: &str = include_str!("../../../sql/sqlite/forward_source_attempt.sql");
    pub const POSTPONE: &str = include_str!("../../../sql/sqlite/postpone_forward.sql");
    pub const SOURCES: &str = include_str!("../../../sql/sqlite/forwarding_sources.sql");
    pub const PAUSE: &str = include_str!("../../../sql/sqlite/pause_source.sql");
    pub const RESUME: &str = include_str!("../../../sql/sqlite/resume_source.sql");
    pub const REPLAY: &str = include_str!("../../../sql/sqlite/replay_forwards.sql");
}

/// The outbox entry of a just-inserted event, inside the caller's write transaction.
pub(super) fn insert_outbox(
    tx: &Connection,
    webhook_event_id: i64,
    source: &str,
    now: &str,
) -> Result<(), StoreError> {
    tx.prepare_cached(sql::INSERT_OUTBOX)
        .and_then(|mut stmt| stmt.execute(params![webhook_event_id, source, now]))
        .map(drop)
        .map_err(map_err)
}

/// Runs outbox bookkeeping (leases, attempt outcomes) at `synchronous=NORMAL`, then puts
/// the connection's level back. Under forwarding load these writes would otherwise cost
/// the writer one fsync each, between the webhook batches it exists to keep fast. What
/// a power loss can take from them is only ever a lease or an outcome, and then the
/// entry is sent again with the same `webhook-id`: at least once, never lost. (The entry
/// itself is written in the event's own transaction, at the configured level.)
fn at_normal_sync<T>(
    conn: &mut Connection,
    work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let level: i64 = conn
        .pragma_query_value(None, "synchronous", |row| row.get(0))
        .map_err(map_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(map_err)?;
    let result = work(conn);
    // Restored even when the work failed; the writer also checks before each batch.
    let restored = conn
        .pragma_update(None, "synchronous", level)
        .map_err(map_err);
    let value = result?;
    restored?;
    Ok(value)
}

impl Outbox for SqliteStore {
    fn claim_forwards_except(
        &self,
        owner: &str,
        lease: Duration,
        limit: usize,
        paced: &[String],
    ) -> Result<Vec<ForwardJob>, StoreError> {
        let paced = serde_json::to_string(paced)
            .map_err(|e| StoreError::Internal(format!("paced sources: {e}")))?;
        // The worker polls; a poll that finds nothing due must not queue for the writer
        // (and a write transaction) behind webhooks.
        let any_due: bool = self
            .conn()?
            .prepare_cached(sql::ANY_DUE)
            .and_then(|mut stmt| stmt.query_row(params![now_text(), paced], |row| row.get(0)))
            .map_err(map_err)?;
        if !any_due {
            return Ok(Vec::new());
        }
        let owner = owner.to_owned();
        self.with_writer(move |conn| {
            at_normal_sync(conn, |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(map_err)?;
                let ids: Vec<i64> = {
                    let mut stmt = tx.prepare_cached(sql::CLAIM).map_err(map_err)?;
                    let rows = stmt
                        .query_map(
                            params![owner, text_after(lease), now_text(), limit as i64, paced],
                            |row| row.get(0),
                        )
                        .map_err(map_err)?;
                    rows.collect::<Result<_, _>>().map_err(map_err)?
                };
                let mut jobs = Vec::with_capacity(ids.len());
                for id in ids {
                    let job = tx
                        .prepare_cached(sql::JOB)
                        .and_then(|mut stmt| {
                            stmt.query_row(params![id], |row| {
                                Ok(ForwardJob {
                                    webhook_event_id: row.get(0)?,
                                    source: row.get(1)?,
                                    event_id: row.get(2)?,
                                    event_type: row.get(3)?,
                                    payload: row.get(4)?,
                                    attempts: row.get(5)?,
                                })
                            })
                        })
                        .map_err(map_err)?;
                    jobs.push(job);
                }
                tx.commit().map_err(map_err)?;
                Ok(jobs)
            })
        })
    }

    fn record_forward(
        &self,
        id: i64,
        owner: &str,
        report: &AttemptReport,
    ) -> Result<Option<SourceChange>, StoreError> {
        let (owner, report) = (owner.to_owned(), report.clone());
        self.with_writer(move |conn| {
            at_normal_sync(conn, |conn| {
                let tx = conn.transaction().map_err(map_err)?;
                let now = now_text();
                let (updated, status, error) = match &report.outcome {
                    AttemptOutcome::Delivered { status } => (
                        tx.query_row(sql::DELIVERED, params![id, owner, status, now], |row| {
                            row.get::<_, String>(0)
                        }),
                        Some(*status),
                        None,
                    ),
                    AttemptOutcome::Failed {
                        status,
                        error,
                        retry_in,
                    } => {
                        let (state, next) = match retry_in {
                            Some(delay) => ("pending", text_after(*delay)),
                            None => ("failed", now.clone()),
                        };
                        (
                            tx.query_row(
                                sql::FAILED,
                                params![id, owner, state, next, status, error],
                                |row| row.get::<_, String>(0),
                            ),
                            *status,
                            Some(error.clone()),
                        )
                    }
                };
                let Some(source) = updated.optional().map_err(map_err)? else {
                    // The lease was lost: another worker owns this entry now.
                    return Ok(None);
                };
                tx.execute(
                    sql::INSERT_ATTEMPT,
                    params![
                        id,
                        report.at,
                        status,
                        report.duration_ms,
                        error,
                        report.response
                    ],
                )
                .map_err(map_err)?;
                tx.execute(sql::TRIM_ATTEMPTS, params![id, HISTORY_KEPT])
                    .map_err(map_err)?;
                let failed = error.is_some();
                let (failures, last_error, paused_at): (i64, Option<String>, Option<String>) = tx
                    .query_row(
                        sql::SOURCE_ATTEMPT,
                        params![source, failed, error, report.pause_after, now],
                        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                    )
                    .map_err(map_err)?;
                tx.commit().map_err(map_err)?;
                Ok(
                    (paused_at.as_deref() == Some(now.as_str())).then_some(SourceChange {
                        source,
                        consecutive_failures: failures,
                        last_error,
                    }),
                )
            })
        })
    }

    fn postpone_forward(&self, id: i64, owner: &str, delay: Duration) -> Result<(), StoreError> {
        let owner = owner.to_owned();
        self.with_writer(move |conn| {
            at_normal_sync(conn, |conn| {
                conn.execute(sql::POSTPONE, params![id, owner, text_after(delay)])
                    .map(drop)
                    .map_err(map_err)
            })
        })
    }

    fn forwarding_sources(&self) -> Result<Vec<SourceForwarding>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(sql::SOURCES).map_err(map_err)?;
        all_rows(&mut stmt, [], |row| rows::source_forwarding(row))
    }

    fn set_forwarding_paused(
        &self,
        source: &Source,
        paused: bool,
    ) -> Result<Option<SourceChange>, StoreError> {
        let source = source.as_str().to_owned();
        self.with_writer(move |conn| {
            if paused {
                conn.query_row(sql::PAUSE, params![source, now_text()], |row| {
                    Ok(SourceChange {
                        source: source.clone(),
                        consecutive_failures: row.get(0)?,
                        last_error: row.get(1)?,
                    })
                })
            } else {
                conn.query_row(sql::RESUME, params![source], |_| {
                    Ok(SourceChange {
                        source: source.clone(),
                        consecutive_failures: 0,
                        last_error: None,
                    })
                })
            }
            .optional()
            .map_err(map_err)
        })
    }

    fn replay_forwards(
        &self,
        source: &Source,
        since: &Timestamp,
        until: Option<&Timestamp>,
    ) -> Result<u64, StoreError> {
        let (source, since) = (source.as_str().to_owned(), since.as_str().to_owned());
        let until = until.map(|t| t.as_str().to_owned());
        self.with_writer(move |conn| {
            conn.execute(sql::REPLAY, params![source, since, until, now_text()])
                .map(|n| n as u64)
                .map_err(map_err)
        })
    }

    fn release_forwards(&self, owner: Option<&str>) -> Result<u64, StoreError> {
        let owner = owner.map(str::to_owned);
        self.with_writer(move |conn| {
            at_normal_sync(conn, |conn| {
                conn.execute(sql::RELEASE, params![owner])
                    .map(|n| n as u64)
                    .map_err(map_err)
            })
        })
    }

    fn requeue_forward(&self, source: &Source, id: &EventId) -> Result<Option<i64>, StoreError> {
        let (source, id) = (source.clone(), id.clone());
        self.with_writer(move |conn| {
            conn.query_row(
                sql::REQUEUE_ONE,
                params![source.as_str(), id.as_str(), now_text()],
                |row| row.get(0),
            )
            .optional()
            .map_err(map_err)
        })
    }

    fn requeue_forwards(
        &self,
        source: Option<&Source>,
        failed_only: bool,
    ) -> Result<u64, StoreError> {
        let source = source.cloned();
        self.with_writer(move |conn| {
            conn.execute(
                sql::REQUEUE_MANY,
                params![source.as_ref().map(Source::as_str), failed_only, now_text()],
            )
            .map(|n| n as u64)
            .map_err(map_err)
        })
    }

    fn forward_state(
        &self,
        source: &Source,
        id: &EventId,
    ) -> Result<Option<ForwardInfo>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(sql::STATE).map_err(map_err)?;
        let found = all_rows(&mut stmt, params![source.as_str(), id.as_str()], |row| {
            rows::forward_info(row, 0)
        })?;
        Ok(found.into_iter().flatten().next())
    }

    fn forward_backlog(&self) -> Result<ForwardBacklog, StoreError> {
        let conn = self.conn()?;
        conn.query_row(sql::BACKLOG, params![now_text()], |row| {
            Ok(ForwardBacklog {
                pending: row.get(0)?,
                failed: row.get(1)?,
                oldest_pending_secs: row.get(2)?,
                paused_sources: row.get(3)?,
            })
        })
        .map_err(map_err)
    }
}
