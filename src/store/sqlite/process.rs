//! The receive step on SQLite: a duplicate is answered by a read on a reader connection;
//! a new event (or a conflict to keep) goes to the writer thread, which applies it in
//! its next batch.

use std::sync::Arc;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};

use super::totals::{Counted, Delta};
use super::writer::{ReplyTo, Writer};
use super::{SqliteStore, map_err, sql};
use crate::model::clock::now_text;
use crate::model::{History, NewConversion, NewEvent, Outcome, Receipt};
use crate::store::{Pending, Receiving, StoreError};

/// An event already on record, as the duplicate check needs it.
struct Existing {
    id: i64,
    fingerprint: String,
    conversion_id: Option<i64>,
    conversion_status: Option<String>,
}

/// Where a delivery left its conversion.
struct ConversionState {
    id: i64,
    status: Option<String>,
    /// Created or moved by this delivery (false: stale, or a sale already on record).
    applied: bool,
    /// When applied: the conversion as it is now, for the totals.
    counted: Option<Counted>,
}

/// Decides a delivery by a read, without the writer: `Some` for a duplicate (counted),
/// `None` when the writer must apply it (new, or a conflict to keep).
fn read_duplicate(
    conn: &Connection,
    writer: &Writer,
    event: &NewEvent,
) -> Result<Option<Outcome>, StoreError> {
    match find(conn, event)? {
        Some(existing) if existing.fingerprint == event.fingerprint => {
            writer.count_duplicate(existing.id, now_text());
            Ok(Some(Outcome::Duplicate(existing.receipt())))
        }
        _ => Ok(None),
    }
}

/// One event inside the writer's transaction (in its own savepoint): a duplicate or
/// conflict if the id is on record by now, else the event and its conversion. An
/// imported event brings its `history`, which its rows keep instead of the time now.
/// What it changed in the totals goes into `delta`, which the caller keeps only if the
/// savepoint commits.
pub(super) fn apply(
    conn: &Connection,
    event: &NewEvent,
    history: Option<&History>,
    delta: &mut Delta,
) -> Result<Outcome, StoreError> {
    match find(conn, event)? {
        Some(existing) => answer_known(conn, existing, event, history, delta),
        None => insert_new(conn, event, history, delta),
    }
}

/// Answers a repeated delivery inside the caller's write transaction: counts a
/// duplicate, or counts a conflict and keeps it while fewer than `KEPT_CONFLICTS` are.
fn answer_known(
    conn: &Connection,
    existing: Existing,
    event: &NewEvent,
    history: Option<&History>,
    delta: &mut Delta,
) -> Result<Outcome, StoreError> {
    let now = now_text();
    let source = event.source.as_str();
    if existing.fingerprint == event.fingerprint {
        // An imported line of an event on record is not a delivery: importing a file
        // twice changes nothing.
        if history.is_some() {
            return Ok(Outcome::Duplicate(existing.receipt()));
        }
        conn.prepare_cached(sql::COUNT_DUPLICATE)
            .and_then(|mut stmt| stmt.execute(params![existing.id, now]))
            .map_err(map_err)?;
        delta.deliveries(source, false, 1, 0, &now);
        return Ok(Outcome::Duplicate(existing.receipt()));
    }
    // Cached like the new-event statements: a conflict storm runs these for every repeat.
    let conflicts: i64 = conn
        .prepare_cached(sql::COUNT_CONFLICT)
        .and_then(|mut stmt| stmt.query_row(params![existing.id, now], |row| row.get(0)))
        .map_err(map_err)?;
    conn.prepare_cached(sql::INSERT_CONFLICT)
        .and_then(|mut stmt| {
            stmt.execute(params![
                existing.id,
                event.fingerprint,
                event.payload,
                now,
                conflicts
            ])
        })
        .map_err(map_err)?;
    delta.deliveries(source, false, 1, 1, &now);
    Ok(Outcome::Conflict(existing.receipt()))
}

/// Records a new event and creates or moves its conversion, inside the writer's
/// transaction (one writer per process serialises every delivery of one conversion).
fn insert_new(
    conn: &Connection,
    event: &NewEvent,
    history: Option<&History>,
    delta: &mut Delta,
) -> Result<Outcome, StoreError> {
    let now = now_text();
    let (first_seen_at, last_seen_at, delivery_count) = match history {
        Some(h) => (
            h.first_seen_at.as_str(),
            h.last_seen_at.as_str(),
            h.delivery_count,
        ),
        None => (now.as_str(), now.as_str(), 1),
    };
    // A conversion is created (or moved) when its event was first seen.
    let mut conversion = match &event.conversion {
        None => None,
        Some(c) if c.external_conversion_id.is_some() => {
            Some(apply_conversion(conn, event, c, first_seen_at, delta)?)
        }
        Some(c) => Some(create_sale_conversion(conn, event, c, first_seen_at)?),
    };
    if let Some(counted) = conversion.as_mut().and_then(|c| c.counted.take()) {
        delta.conversion(counted, 1)?;
    }
    delta.deliveries(event.source.as_str(), true, delivery_count, 0, last_seen_at);
    let conversion_id = conversion.as_ref().map(|c| c.id);
    let webhook_event_id = conn
        .prepare_cached(sql::INSERT_EVENT)
        .and_then(|mut stmt| {
            stmt.query_row(
                params![
                    event.source.as_str(),
                    event.event_id.as_str(),
                    event.event_type,
                    event.payload,
                    event.fingerprint,
                    conversion_id,
                    first_seen_at,
                    last_seen_at,
                    delivery_count,
                ],
                |row| row.get::<_, i64>(0),
            )
        })
        .map_err(map_err)?;
    if event.forward {
        super::outbox::insert_outbox(conn, webhook_event_id, event.source.as_str(), &now)?;
    }
    Ok(Outcome::Processed(Receipt {
        webhook_event_id,
        conversion_id,
        applied: conversion.as_ref().is_some_and(|c| c.applied),
        conversion_status: conversion.and_then(|c| c.status),
    }))
}

/// A seed-style sale: one conversion per sale event. A conversions row already keyed by
/// this event id (only manual surgery leaves one without its event) is adopted as this
/// event's conversion rather than failing the delivery for ever.
fn create_sale_conversion(
    conn: &Connection,
    event: &NewEvent,
    c: &NewConversion,
    now: &str,
) -> Result<ConversionState, StoreError> {
    write_or_read(
        conn,
        (
            sql::INSERT_CONVERSION,
            params![
                event.source.as_str(),
                event.event_id.as_str(),
                c.order_id,
                c.commission_amount.to_string(),
                c.sale_amount.to_string(),
                c.currency,
                c.tracking_id,
                c.status,
                now,
            ],
        ),
        (
            sql::FIND_SALE_CONVERSION,
            params![event.source.as_str(), event.event_id.as_str()],
        ),
    )
}

/// A conversion delivery: creates the conversion keyed by `(source,
/// external_conversion_id)`, or moves it unless the delivery is stale. The staleness rule
/// lives in the statement's `WHERE`, evaluated against the row as it is now. A move takes
/// the conversion out of the group it was in (`delta`); the caller adds it to its new one.
fn apply_conversion(
    conn: &Connection,
    event: &NewEvent,
    c: &NewConversion,
    now: &str,
    delta: &mut Delta,
) -> Result<ConversionState, StoreError> {
    let before = conn
        .prepare_cached(sql::CONVERSION_BEFORE)
        .and_then(|mut stmt| {
            stmt.query_row(
                params![event.source.as_str(), c.external_conversion_id],
                counted(0),
            )
            .optional()
        })
        .map_err(map_err)?;
    let state = write_or_read(
        conn,
        (
            sql::APPLY_CONVERSION,
            params![
                event.source.as_str(),
                event.event_id.as_str(),
                c.external_conversion_id,
                c.order_id,
                c.commission_amount.to_string(),
                c.sale_amount.to_string(),
                c.currency,
                c.status,
                c.affiliate_id,
                c.affiliate_code,
                c.source_updated_at,
                now,
            ],
        ),
        // Stale: the conversion exists and stays as it is.
        (
            sql::FIND_CONVERSION,
            params![event.source.as_str(), c.external_conversion_id],
        ),
    )?;
    if let (true, Some(before)) = (state.applied, before) {
        delta.conversion(before, -1)?;
    }
    Ok(state)
}

/// Reads a conversion's group and amounts: status, currency, sale, commission from
/// column `first` on.
fn counted(first: usize) -> impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<Counted> {
    move |row| {
        Ok(Counted {
            status: row.get(first)?,
            currency: row.get(first + 1)?,
            sale_amount: row.get(first + 2)?,
            commission_amount: row.get(first + 3)?,
        })
    }
}

/// Runs a write that returns `(id, status, currency, sale, commission)` of the row it
/// created or moved; when it wrote nothing, reads `(id, status)` of the row it left alone.
fn write_or_read<W: rusqlite::Params, R: rusqlite::Params>(
    conn: &Connection,
    (write, write_params): (&str, W),
    (read, read_params): (&str, R),
) -> Result<ConversionState, StoreError> {
    let row = |applied| {
        move |row: &rusqlite::Row<'_>| {
            Ok(ConversionState {
                id: row.get(0)?,
                status: row.get(1)?,
                applied,
                counted: if applied {
                    Some(counted(1)(row)?)
                } else {
                    None
                },
            })
        }
    };
    let written = conn
        .prepare_cached(write)
        .and_then(|mut stmt| stmt.query_row(write_params, row(true)).optional())
        .map_err(map_err)?;
    match written {
        Some(state) => Ok(state),
        None => conn
            .prepare_cached(read)
            .and_then(|mut stmt| stmt.query_row(read_params, row(false)))
            .map_err(map_err),
    }
}

impl Existing {
    fn receipt(self) -> Receipt {
        Receipt {
            webhook_event_id: self.id,
            conversion_id: self.conversion_id,
            conversion_status: self.conversion_status,
            applied: false,
        }
    }
}

fn find(conn: &Connection, event: &NewEvent) -> Result<Option<Existing>, StoreError> {
    conn.prepare_cached(sql::FIND_EVENT)
        .and_then(|mut stmt| {
            stmt.query_row(
                params![event.source.as_str(), event.event_id.as_str()],
                |row| {
                    Ok(Existing {
                        id: row.get(0)?,
                        fingerprint: row.get(1)?,
                        conversion_id: row.get(2)?,
                        conversion_status: row.get(3)?,
                    })
                },
            )
            .optional()
        })
        .map_err(map_err)
}

impl Receiving for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn process(&self, event: &NewEvent) -> Result<Outcome, StoreError> {
        let writer = self.writer()?;
        if let Some(outcome) = read_duplicate(&*self.conn()?, writer, event)? {
            return Ok(outcome);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        writer.process(
            event.clone(),
            Instant::now() + self.timeout,
            ReplyTo::Blocking(tx),
        )?;
        rx.recv()
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
            .map(|(outcome, _)| outcome)
    }

    /// No blocking-pool hop on the hot paths: the duplicate read runs right here when a
    /// reader connection is idle (a point lookup on the unique index, shorter than a
    /// thread handoff), and a new event goes straight onto the writer's queue.
    fn process_async(self: Arc<Self>, event: NewEvent, deadline: Instant) -> Pending {
        Box::pin(async move {
            let (duplicate, event) = match self.pool.try_get() {
                Some(conn) => (read_duplicate(&conn, self.writer()?, &event)?, event),
                None => {
                    let store = self.clone();
                    crate::store::run_blocking(move || {
                        let duplicate = read_duplicate(&*store.conn()?, store.writer()?, &event)?;
                        Ok((duplicate, event))
                    })
                    .await?
                }
            };
            match duplicate {
                Some(outcome) => Ok((outcome, event)),
                None => self.queue(event, deadline).await,
            }
        })
    }

    /// A reader answers, and the writer can write (SPEC §7).
    fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.query_row(sql::PING, [], |_| Ok(())).map_err(map_err)?;
        drop(conn);
        self.writer()?.can_write()
    }
}

impl SqliteStore {
    /// Hands a new (or conflicting) event to the writer and waits for its batch.
    async fn queue(
        &self,
        event: NewEvent,
        deadline: Instant,
    ) -> Result<(Outcome, NewEvent), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer()?
            .process(event, deadline, ReplyTo::Async(tx))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }
}
