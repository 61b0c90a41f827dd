//! PostgreSQL side of the forwarding outbox. The entry itself is written by
//! `process_webhook_idempotently` (its `p_forward` parameter), in the receive
//! transaction. Claims use `FOR UPDATE SKIP LOCKED` plus a lease, so any number of
//! instances share one outbox and never send one entry at the same time.

use std::time::Duration;

use postgres::types::Type;

use super::PostgresStore;
use super::errors::get;
use crate::model::outbox::{
    AttemptOutcome, AttemptReport, ForwardBacklog, ForwardInfo, ForwardJob, HISTORY_KEPT,
    SourceChange, SourceForwarding,
};
use crate::model::{EventId, Source};
use crate::read::Timestamp;
use crate::store::rows::{self, Columns};
use crate::store::{Outbox, StoreError};

mod sql {
    pub const CLAIM: &str = include_str!("../../../sql/postgres/claim_forwards.sql");
    pub const RECORD: &str = include_str!("../../../sql/postgres/record_forward.sql");
    pub const POSTPONE: &str = include_str!("../../../sql/postgres/postpone_forward.sql");
    pub const SOURCES: &str = include_str!("../../../sql/postgres/forwarding_sources.sql");
    pub const PAUSE: &str = include_str!("../../../sql/postgres/pause_source.sql");
    pub const RESUME: &str = include_str!("../../../sql/postgres/resume_source.sql");
    pub const REPLAY: &str = include_str!("../../../sql/postgres/replay_forwards.sql");
    pub const RELEASE: &str = include_str!("../../../sql/postgres/release_forwards.sql");
    pub const REQUEUE_ONE: &str = include_str!("../../../sql/postgres/requeue_forward.sql");
    pub const REQUEUE_MANY: &str = include_str!("../../../sql/postgres/requeue_forwards.sql");
    pub const STATE: &str = include_str!("../../../sql/postgres/forward_state.sql");
    pub const BACKLOG: &str = include_str!("../../../sql/postgres/forward_backlog.sql");
}

impl Outbox for PostgresStore {
    fn claim_forwards_except(
        &self,
        owner: &str,
        lease: Duration,
        limit: usize,
        paced: &[String],
    ) -> Result<Vec<ForwardJob>, StoreError> {
        let paced = serde_json::to_string(paced)
            .map_err(|e| StoreError::Internal(format!("paced sources: {e}")))?;
        let limit = limit as i64;
        let lease = lease.as_secs_f64();
        let rows = self.with_conn(|conn| {
            conn.client.query_typed(
                sql::CLAIM,
                &[
                    (&owner, Type::TEXT),
                    (&limit, Type::INT8),
                    (&lease, Type::FLOAT8),
                    (&paced, Type::TEXT),
                ],
            )
        })?;
        rows.iter()
            .map(|row| {
                let attempts: i32 = get(row, 5)?;
                Ok(ForwardJob {
                    webhook_event_id: get(row, 0)?,
                    source: get(row, 1)?,
                    event_id: get(row, 2)?,
                    event_type: get(row, 3)?,
                    payload: get(row, 4)?,
                    attempts: attempts.max(0) as u32,
                })
            })
            .collect()
    }

    fn record_forward(
        &self,
        id: i64,
        owner: &str,
        report: &AttemptReport,
    ) -> Result<Option<SourceChange>, StoreError> {
        let (delivered, state, delay, status, error) = match &report.outcome {
            AttemptOutcome::Delivered { status } => {
                (true, "delivered", 0.0, Some(i32::from(*status)), None)
            }
            AttemptOutcome::Failed {
                status,
                error,
                retry_in,
            } => match retry_in {
                Some(delay) => (
                    false,
                    "pending",
                    delay.as_secs_f64(),
                    status.map(i32::from),
                    Some(error.as_str()),
                ),
                None => (
                    false,
                    "failed",
                    0.0,
                    status.map(i32::from),
                    Some(error.as_str()),
                ),
            },
        };
        let pause_after = i32::try_from(report.pause_after).unwrap_or(i32::MAX);
        let kept = HISTORY_KEPT as i32;
        let rows = self.with_conn(|conn| {
            conn.client.query_typed(
                sql::RECORD,
                &[
                    (&id, Type::INT8),
                    (&owner, Type::TEXT),
                    (&delivered, Type::BOOL),
                    (&state, Type::TEXT),
                    (&delay, Type::FLOAT8),
                    (&status, Type::INT4),
                    (&error, Type::TEXT),
                    (&report.at.as_str(), Type::TEXT),
                    (&report.duration_ms, Type::INT8),
                    (&report.response.as_deref(), Type::TEXT),
                    (&pause_after, Type::INT4),
                    (&kept, Type::INT4),
                ],
            )
        })?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let paused_now: Option<bool> = get(row, 3)?;
        if paused_now != Some(true) {
            return Ok(None);
        }
        Ok(Some(SourceChange {
            source: row.text(0)?,
            consecutive_failures: row.int(1)?,
            last_error: row.opt_text(2)?,
        }))
    }

    fn postpone_forward(&self, id: i64, owner: &str, delay: Duration) -> Result<(), StoreError> {
        let delay = delay.as_secs_f64();
        self.with_conn(|conn| {
            conn.client.execute_typed(
                sql::POSTPONE,
                &[
                    (&id, Type::INT8),
                    (&owner, Type::TEXT),
                    (&delay, Type::FLOAT8),
                ],
            )
        })
        .map(drop)
    }

    fn forwarding_sources(&self) -> Result<Vec<SourceForwarding>, StoreError> {
        self.with_conn(|conn| conn.client.query_typed(sql::SOURCES, &[]))?
            .iter()
            .map(rows::source_forwarding)
            .collect()
    }

    fn set_forwarding_paused(
        &self,
        source: &Source,
        paused: bool,
    ) -> Result<Option<SourceChange>, StoreError> {
        let name = source.as_str();
        let statement = if paused { sql::PAUSE } else { sql::RESUME };
        let rows =
            self.with_conn(|conn| conn.client.query_typed(statement, &[(&name, Type::TEXT)]))?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(if paused {
            SourceChange {
                source: name.to_owned(),
                consecutive_failures: row.int(0)?,
                last_error: row.opt_text(1)?,
            }
        } else {
            SourceChange {
                source: name.to_owned(),
                consecutive_failures: 0,
                last_error: None,
            }
        }))
    }

    fn replay_forwards(
        &self,
        source: &Source,
        since: &Timestamp,
        until: Option<&Timestamp>,
    ) -> Result<u64, StoreError> {
        let (name, since) = (source.as_str(), since.as_str());
        let until = until.map(Timestamp::as_str);
        self.with_conn(|conn| {
            conn.client.execute_typed(
                sql::REPLAY,
                &[
                    (&name, Type::TEXT),
                    (&since, Type::TEXT),
                    (&until, Type::TEXT),
                ],
            )
        })
    }

    fn release_forwards(&self, owner: Option<&str>) -> Result<u64, StoreError> {
        self.with_conn(|conn| {
            conn.client
                .execute_typed(sql::RELEASE, &[(&owner, Type::TEXT)])
        })
    }

    fn requeue_forward(&self, source: &Source, id: &EventId) -> Result<Option<i64>, StoreError> {
        let rows = self.query_by_event(sql::REQUEUE_ONE, source, id)?;
        rows.first().map(|row| get(row, 0)).transpose()
    }

    fn requeue_forwards(
        &self,
        source: Option<&Source>,
        failed_only: bool,
    ) -> Result<u64, StoreError> {
        let source = source.map(Source::as_str);
        self.with_conn(|conn| {
            conn.client.execute_typed(
                sql::REQUEUE_MANY,
                &[(&source, Type::TEXT), (&failed_only, Type::BOOL)],
            )
        })
    }

    fn forward_state(
        &self,
        source: &Source,
        id: &EventId,
    ) -> Result<Option<ForwardInfo>, StoreError> {
        match self.query_by_event(sql::STATE, source, id)?.first() {
            Some(row) => rows::forward_info(row, 0),
            None => Ok(None),
        }
    }

    fn forward_backlog(&self) -> Result<ForwardBacklog, StoreError> {
        let rows = self.with_conn(|conn| conn.client.query_typed(sql::BACKLOG, &[]))?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Internal("forward backlog returned no row".into()))?;
        Ok(ForwardBacklog {
            pending: get(row, 0)?,
            failed: get(row, 1)?,
            oldest_pending_secs: get(row, 2)?,
            paused_sources: get(row, 3)?,
        })
    }
}
