//! The receive step on PostgreSQL: one call of `process_webhook_idempotently` per
//! delivery, bounded by the request's deadline and cancelled on the server past it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use postgres::types::{ToSql, Type};
use rust_decimal::Decimal;

use super::errors::get;
use super::{PostgresStore, failover, sql};
use crate::model::clock::now_text;
use crate::model::{NewConversion, NewEvent, Outcome, Receipt};
use crate::store::{Pending, Receiving, StoreError};

/// The parameter types of `process.sql`, for the unnamed statement: given with the
/// Bind, so no Parse/Describe round trip comes first.
const PROCESS_TYPES: [Type; 16] = [
    Type::TEXT,    // source
    Type::TEXT,    // event id
    Type::TEXT,    // event type
    Type::TEXT,    // payload
    Type::TEXT,    // fingerprint
    Type::TEXT,    // order id
    Type::NUMERIC, // commission
    Type::NUMERIC, // sale amount
    Type::TEXT,    // currency
    Type::TEXT,    // tracking id
    Type::TEXT,    // status
    Type::TEXT,    // external conversion id
    Type::TEXT,    // affiliate id
    Type::TEXT,    // affiliate code
    Type::TEXT,    // source_updated_at, cast by the statement
    Type::BOOL,    // forward
];

/// The parameters of `sql/postgres/process.sql` for one event, in its order.
pub struct ProcessCall<'a> {
    event: &'a NewEvent,
    source: &'a str,
    event_id: &'a str,
    commission: Option<Decimal>,
    sale: Option<Decimal>,
    /// The conversion's text fields, in the statement's order: order id, currency,
    /// tracking id, status, external conversion id, affiliate id, affiliate code,
    /// source_updated_at.
    texts: [Option<&'a str>; 8],
}

impl<'a> ProcessCall<'a> {
    pub fn new(event: &'a NewEvent) -> ProcessCall<'a> {
        let conversion = event.conversion.as_ref();
        let text =
            |f: fn(&NewConversion) -> &Option<String>| conversion.and_then(|c| f(c).as_deref());
        ProcessCall {
            event,
            source: event.source.as_str(),
            event_id: event.event_id.as_str(),
            commission: conversion.map(|c| c.commission_amount.decimal()),
            sale: conversion.map(|c| c.sale_amount.decimal()),
            texts: [
                text(|c| &c.order_id),
                text(|c| &c.currency),
                text(|c| &c.tracking_id),
                text(|c| &c.status),
                text(|c| &c.external_conversion_id),
                text(|c| &c.affiliate_id),
                text(|c| &c.affiliate_code),
                text(|c| &c.source_updated_at),
            ],
        }
    }

    pub fn params(&self) -> [&(dyn ToSql + Sync); 16] {
        let t = &self.texts;
        [
            &self.source,
            &self.event_id,
            &self.event.event_type,
            &self.event.payload,
            &self.event.fingerprint,
            &t[0],
            &self.commission,
            &self.sale,
            &t[1],
            &t[2],
            &t[3],
            &t[4],
            &t[5],
            &t[6],
            &t[7],
            &self.event.forward,
        ]
    }
}

/// Where the statement running for a request can be cancelled from, while it runs.
#[derive(Default)]
struct CancelSlot(Mutex<Cancel>);

#[derive(Default)]
enum Cancel {
    /// Not started: the statement may still start.
    #[default]
    Idle,
    Running(postgres::CancelToken),
    /// The deadline passed before the statement started: it must not start.
    Cancelled,
}

impl CancelSlot {
    /// Called at the deadline: stops the statement, or keeps it from starting.
    fn cancel(&self) -> Option<postgres::CancelToken> {
        match std::mem::replace(&mut *self.0.lock(), Cancel::Cancelled) {
            Cancel::Running(token) => Some(token),
            Cancel::Idle | Cancel::Cancelled => None,
        }
    }
}

impl PostgresStore {
    /// One call of `process_webhook_idempotently`, waiting at most `wait` for a
    /// connection, cancellable through `cancel` while it runs.
    fn call_process(
        &self,
        event: &NewEvent,
        wait: Duration,
        cancel: &CancelSlot,
    ) -> Result<Outcome, StoreError> {
        let call = ProcessCall::new(event);
        let params = call.params();
        let row = self
            .with_conn_within(wait, |conn| {
                let statement = match &conn.process {
                    _ if !self.prepared_statements => None,
                    Some(statement) => Some(statement.clone()),
                    None => {
                        let statement = conn.client.prepare(sql::PROCESS)?;
                        conn.process = Some(statement.clone());
                        Some(statement)
                    }
                };
                {
                    let mut slot = cancel.0.lock();
                    if matches!(*slot, Cancel::Cancelled) {
                        return Ok(Ok(None));
                    }
                    *slot = Cancel::Running(conn.client.cancel_token());
                }
                failover::take_unreplicated();
                let row = match &statement {
                    Some(statement) => conn.client.query_one(statement, &params),
                    None => {
                        let typed: Vec<(&(dyn ToSql + Sync), Type)> = params
                            .iter()
                            .zip(PROCESS_TYPES)
                            .map(|(value, ty)| (*value, ty))
                            .collect();
                        conn.client.query_typed_one(sql::PROCESS, &typed)
                    }
                }
                .map(Some);
                if matches!(
                    std::mem::replace(&mut *cancel.0.lock(), Cancel::Idle),
                    Cancel::Cancelled
                ) {
                    // The deadline sent a cancel for this statement. It may reach the
                    // server after the statement ended (statement_timeout fires at the
                    // same moment) and would then cancel whatever this connection runs
                    // next, another request's webhook: the connection is not reused.
                    conn.broken = true;
                }
                if row.is_ok() && failover::take_unreplicated() {
                    // Committed here, but maybe not on the standby a failover promotes:
                    // no 2xx for it. The provider's retry finds it, or not, on the
                    // primary that takes writes next.
                    conn.broken = true;
                    self.failover.retire_unreplicated(conn.epoch);
                    return Ok(Err(()));
                }
                if row.is_err() {
                    // Prepare again next time, in case the function was replaced with another
                    // shape underneath this statement; one extra round trip after a failure.
                    conn.process = None;
                }
                row.map(Ok)
            })?
            .map_err(|()| {
                StoreError::Unavailable(
                    "the commit was not confirmed by the synchronous standby".into(),
                )
            })?
            .ok_or_else(|| {
                StoreError::Timeout("the deadline passed before the statement started".into())
            })?;
        let outcome: String = get(&row, 0)?;
        let receipt = Receipt {
            webhook_event_id: get(&row, 1)?,
            conversion_id: get(&row, 2)?,
            conversion_status: get(&row, 3)?,
            applied: get::<Option<bool>>(&row, 4)?.unwrap_or(false),
        };
        match outcome.as_str() {
            "processed" => Ok(Outcome::Processed(receipt)),
            "duplicate" => {
                if let Some(flusher) = &self.flusher {
                    flusher.count(receipt.webhook_event_id, now_text());
                }
                Ok(Outcome::Duplicate(receipt))
            }
            "conflict" => Ok(Outcome::Conflict(receipt)),
            other => Err(StoreError::Internal(format!(
                "process_webhook_idempotently returned the unknown outcome {other:?}"
            ))),
        }
    }
}

/// The first wait before a cancel is sent again while its statement still runs; each
/// next wait is twice as long, so a store that hangs outright gets a few cancels, not a
/// stream of them.
const CANCEL_AGAIN: Duration = Duration::from_millis(50);

impl PostgresStore {
    /// Cancels the running statement on the server and waits for what it did. The cancel
    /// is sent again while it runs: a cancel that reaches the server before the statement
    /// does (the request was still in flight) is dropped there, and the statement would
    /// then wait out its own timeout while the backstop in the HTTP layer answered 503,
    /// and commit after that answer if the lock it waited on came free.
    async fn cancel_until_done<T>(
        &self,
        token: postgres::CancelToken,
        work: &mut tokio::task::JoinHandle<T>,
    ) -> Result<T, tokio::task::JoinError> {
        let mut again = CANCEL_AGAIN;
        loop {
            // Over its own connection, with the same TLS checks as the one it cancels;
            // its answer does not matter, the statement's own result does.
            let (token, tls) = (token.clone(), self.tls.for_cancel());
            tokio::task::spawn_blocking(move || drop(token.cancel_query(tls)));
            tokio::select! {
                result = &mut *work => return result,
                () = tokio::time::sleep(again) => again *= 2,
            }
        }
    }
}

impl Receiving for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn process(&self, event: &NewEvent) -> Result<Outcome, StoreError> {
        self.call_process(event, self.connect_timeout, &CancelSlot::default())
    }

    /// The request's one deadline bounds the wait for a permit and for a connection;
    /// past it, the running statement is cancelled on the server, so the answer is
    /// what the database did (a rollback gives a 503, a commit that won the race a 200),
    /// never a 503 for an event that is recorded after all.
    fn process_async(self: Arc<Self>, event: NewEvent, deadline: Instant) -> Pending {
        Box::pin(async move {
            let permit =
                tokio::time::timeout_at(deadline.into(), self.permits.clone().acquire_owned())
                    .await
                    .map_err(|_| StoreError::Timeout("all store connections busy".into()))?
                    .map_err(|_| StoreError::Unavailable("shutting down".into()))?;
            let slot = Arc::new(CancelSlot::default());
            let running = slot.clone();
            let store = self.clone();
            let mut work = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let wait = deadline.saturating_duration_since(Instant::now());
                let outcome = store.call_process(&event, wait, &running)?;
                Ok((outcome, event))
            });
            let finished = tokio::select! {
                result = &mut work => Some(result),
                () = tokio::time::sleep_until(deadline.into()) => None,
            };
            let result = match finished {
                Some(result) => result,
                None => match slot.cancel() {
                    Some(token) => self.cancel_until_done(token, &mut work).await,
                    None => work.await,
                },
            };
            result.map_err(|e| StoreError::Internal(format!("store task failed: {e}")))?
        })
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.with_conn(|conn| conn.client.simple_query(sql::PING).map(|_| ()))
    }
}
