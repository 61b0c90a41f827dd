//! SQLite side of the forwarding outbox: the entry written inside the receive
//! transaction (the writer's savepoint for the event), and the worker's and operator's
//! verbs. Their writes run on the writer thread, between batches, like every write of
//! this process. One process owns the worker on SQLite; the lease columns still guard
//! against a second one, as on PostgreSQL.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{SqliteStore, all_rows, map_err};
use crate::model::clock::{now_text, text_after};
use crate::model::outbox::{AttemptOutcome, ForwardBacklog, ForwardInfo, ForwardJob};
use crate::model::{EventId, Source};
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
    fn claim_forwards(
        &self,
        owner: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ForwardJob>, StoreError> {
        // The worker polls; a poll that finds nothing due must not queue for the writer
        // (and a write transaction) behind webhooks.
        let any_due: bool = self
            .conn()?
            .prepare_cached(sql::ANY_DUE)
            .and_then(|mut stmt| stmt.query_row(params![now_text()], |row| row.get(0)))
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
                            params![owner, text_after(lease), now_text(), limit as i64],
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
        outcome: &AttemptOutcome,
    ) -> Result<(), StoreError> {
        let (owner, outcome) = (owner.to_owned(), outcome.clone());
        self.with_writer(move |conn| {
            at_normal_sync(conn, |conn| {
                let done = match &outcome {
                    AttemptOutcome::Delivered { status } => {
                        conn.execute(sql::DELIVERED, params![id, owner, status, now_text()])
                    }
                    AttemptOutcome::Failed {
                        status,
                        error,
                        retry_in,
                    } => {
                        let (state, next) = match retry_in {
                            Some(delay) => ("pending", text_after(*delay)),
                            None => ("failed", now_text()),
                        };
                        conn.execute(sql::FAILED, params![id, owner, state, next, status, error])
                    }
                };
                done.map(drop).map_err(map_err)
            })
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
            })
        })
        .map_err(map_err)
    }
}
