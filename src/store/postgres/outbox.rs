//! PostgreSQL side of the forwarding outbox. The entry itself is written by
//! `process_webhook_idempotently` (its `p_forward` parameter), in the receive
//! transaction. Claims use `FOR UPDATE SKIP LOCKED` plus a lease, so any number of
//! instances share one outbox and never send one entry at the same time.

use std::time::Duration;

use postgres::types::Type;

use super::PostgresStore;
use super::errors::get;
use crate::model::outbox::{AttemptOutcome, ForwardBacklog, ForwardInfo, ForwardJob};
use crate::model::{EventId, Source};
use crate::store::rows;
use crate::store::{Outbox, StoreError};

mod sql {
    pub const CLAIM: &str = include_str!("../../../sql/postgres/claim_forwards.sql");
    pub const DELIVERED: &str = include_str!("../../../sql/postgres/forward_delivered.sql");
    pub const FAILED: &str = include_str!("../../../sql/postgres/forward_failed.sql");
    pub const RELEASE: &str = include_str!("../../../sql/postgres/release_forwards.sql");
    pub const REQUEUE_ONE: &str = include_str!("../../../sql/postgres/requeue_forward.sql");
    pub const REQUEUE_MANY: &str = include_str!("../../../sql/postgres/requeue_forwards.sql");
    pub const STATE: &str = include_str!("../../../sql/postgres/forward_state.sql");
    pub const BACKLOG: &str = include_str!("../../../sql/postgres/forward_backlog.sql");
}

impl Outbox for PostgresStore {
    fn claim_forwards(
        &self,
        owner: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ForwardJob>, StoreError> {
        let limit = limit as i64;
        let lease = lease.as_secs_f64();
        let rows = self.with_conn(|conn| {
            conn.client.query_typed(
                sql::CLAIM,
                &[
                    (&owner, Type::TEXT),
                    (&limit, Type::INT8),
                    (&lease, Type::FLOAT8),
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
        outcome: &AttemptOutcome,
    ) -> Result<(), StoreError> {
        self.with_conn(|conn| match outcome {
            AttemptOutcome::Delivered { status } => {
                let status = i32::from(*status);
                conn.client.execute_typed(
                    sql::DELIVERED,
                    &[
                        (&id, Type::INT8),
                        (&owner, Type::TEXT),
                        (&status, Type::INT4),
                    ],
                )
            }
            AttemptOutcome::Failed {
                status,
                error,
                retry_in,
            } => {
                let status = status.map(i32::from);
                let (state, delay) = match retry_in {
                    Some(delay) => ("pending", delay.as_secs_f64()),
                    None => ("failed", 0.0),
                };
                conn.client.execute_typed(
                    sql::FAILED,
                    &[
                        (&id, Type::INT8),
                        (&owner, Type::TEXT),
                        (&state, Type::TEXT),
                        (&delay, Type::FLOAT8),
                        (&status, Type::INT4),
                        (&error.as_str(), Type::TEXT),
                    ],
                )
            }
        })
        .map(drop)
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
        })
    }
}
