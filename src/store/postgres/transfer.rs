//! Bulk moves into and out of PostgreSQL ([`Transfer`]): an import batch is one statement
//! (one round trip, one commit) calling `process_webhook_idempotently` once per line; a
//! copy batch is one multi-row `INSERT … SELECT FROM unnest(…)` (one text array per
//! column), and only the rows it did not write are read back to compare.

use std::collections::{HashMap, HashSet};

use postgres::GenericClient;
use postgres::types::ToSql;
use rust_decimal::Decimal;

use super::errors::get;
use super::{PostgresStore, sql};
use crate::model::{History, NewConversion, NewEvent, Outcome, Receipt};
use crate::store::transfer::{Bound, CopyRow, Table, Written, row_key};
use crate::store::{StoreError, Transfer};

/// One array per parameter of the function, one element per line.
#[derive(Default)]
struct Columns<'a> {
    source: Vec<&'a str>,
    event_id: Vec<&'a str>,
    event_type: Vec<Option<&'a str>>,
    payload: Vec<&'a str>,
    fingerprint: Vec<&'a str>,
    order_id: Vec<Option<&'a str>>,
    commission: Vec<Option<Decimal>>,
    sale: Vec<Option<Decimal>>,
    currency: Vec<Option<&'a str>>,
    tracking_id: Vec<Option<&'a str>>,
    status: Vec<Option<&'a str>>,
    external_conversion_id: Vec<Option<&'a str>>,
    affiliate_id: Vec<Option<&'a str>>,
    affiliate_code: Vec<Option<&'a str>>,
    source_updated_at: Vec<Option<&'a str>>,
    first_seen_at: Vec<&'a str>,
    last_seen_at: Vec<&'a str>,
    delivery_count: Vec<i64>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, event: &'a NewEvent, history: &'a History) {
        let c = event.conversion.as_ref();
        let text = |f: fn(&NewConversion) -> &Option<String>| c.and_then(|c| f(c).as_deref());
        self.source.push(event.source.as_str());
        self.event_id.push(event.event_id.as_str());
        self.event_type.push(event.event_type.as_deref());
        self.payload.push(&event.payload);
        self.fingerprint.push(&event.fingerprint);
        self.order_id.push(text(|c| &c.order_id));
        self.commission
            .push(c.map(|c| c.commission_amount.decimal()));
        self.sale.push(c.map(|c| c.sale_amount.decimal()));
        self.currency.push(text(|c| &c.currency));
        self.tracking_id.push(text(|c| &c.tracking_id));
        self.status.push(text(|c| &c.status));
        self.external_conversion_id
            .push(text(|c| &c.external_conversion_id));
        self.affiliate_id.push(text(|c| &c.affiliate_id));
        self.affiliate_code.push(text(|c| &c.affiliate_code));
        self.source_updated_at.push(text(|c| &c.source_updated_at));
        self.first_seen_at.push(&history.first_seen_at);
        self.last_seen_at.push(&history.last_seen_at);
        self.delivery_count.push(history.delivery_count);
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 18] {
        [
            &self.source,
            &self.event_id,
            &self.event_type,
            &self.payload,
            &self.fingerprint,
            &self.order_id,
            &self.commission,
            &self.sale,
            &self.currency,
            &self.tracking_id,
            &self.status,
            &self.external_conversion_id,
            &self.affiliate_id,
            &self.affiliate_code,
            &self.source_updated_at,
            &self.first_seen_at,
            &self.last_seen_at,
            &self.delivery_count,
        ]
    }
}

impl Transfer for PostgresStore {
    /// One backend runs `process_webhook_idempotently` for a batch on one core; two
    /// connections use the second, and more would only queue on this machine's two. Never
    /// more lanes than connections: a lane waiting for another's connection would time out.
    fn import_lanes(&self) -> usize {
        self.pool
            .as_ref()
            .map_or(1, |pool| pool.max_size().clamp(1, 2) as usize)
    }

    fn import_batch(&self, batch: Vec<(NewEvent, History)>) -> Result<Vec<Outcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut columns = Columns::default();
        for (event, history) in &batch {
            columns.push(event, history);
        }
        let rows =
            self.with_conn(|conn| conn.client.query(sql::IMPORT_BATCH, &columns.params()))?;
        rows.iter()
            .map(|row| {
                let receipt = Receipt {
                    webhook_event_id: get(row, 1)?,
                    conversion_id: get(row, 2)?,
                    conversion_status: get(row, 3)?,
                    applied: get::<Option<bool>>(row, 4)?.unwrap_or(false),
                };
                // A repeat of a known event is an imported line, not a delivery: nothing
                // is counted (the function wrote nothing for it).
                match get::<String>(row, 0)?.as_str() {
                    "processed" => Ok(Outcome::Processed(receipt)),
                    "duplicate" => Ok(Outcome::Duplicate(receipt)),
                    "conflict" => Ok(Outcome::Conflict(receipt)),
                    other => Err(StoreError::Internal(format!(
                        "process_webhook_idempotently returned the unknown outcome {other:?}"
                    ))),
                }
            })
            .collect()
    }

    fn copy_bounds(&self) -> Result<Vec<Bound>, StoreError> {
        let row = self.with_conn(|conn| conn.client.query_one(COPY_BOUNDS, &[]))?;
        (0..Table::ALL.len())
            .map(|i| {
                Ok(Bound {
                    rows: get(&row, 2 * i)?,
                    max_key: get(&row, 2 * i + 1)?,
                })
            })
            .collect()
    }

    fn read_rows(
        &self,
        table: Table,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> Result<Vec<CopyRow>, StoreError> {
        let rows = self.with_conn(|conn| read(&mut conn.client, table, after, upto, limit))?;
        rows_as_text(&rows)
    }

    fn write_rows(&self, table: Table, rows: Vec<CopyRow>) -> Result<Written, StoreError> {
        let width = rows.first().map_or(0, Vec::len);
        let columns: Vec<Vec<Option<&str>>> = (0..width)
            .map(|i| {
                rows.iter()
                    .map(|row| row.get(i).and_then(|v| v.as_deref()))
                    .collect()
            })
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            columns.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
        let keys = rows.iter().map(row_key).collect::<Result<Vec<_>, _>>()?;
        let (inserted, missing, present) = self.with_conn(|conn| {
            let mut tx = conn.client.transaction()?;
            // The copy rebuilds the totals once every row is in; this batch's rows skip
            // the per-row totals triggers (migration 011).
            tx.execute(COPY_BULK, &[])?;
            let inserted: HashSet<i64> = tx
                .query(statements(table).1, &params)?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?;
            // The rows not written are read back in one range read, not one round trip
            // each: a second copy finds every row present, and that pass is the
            // downtime of a move.
            let missing: Vec<i64> = keys
                .iter()
                .copied()
                .filter(|key| !inserted.contains(key))
                .collect();
            let present = match (missing.first(), missing.last()) {
                (Some(&first), Some(&last)) => read(&mut tx, table, first - 1, last, u32::MAX)?,
                _ => Vec::new(),
            };
            tx.commit()?;
            Ok((inserted, missing, present))
        })?;
        let mut written = Written {
            inserted: inserted.len() as u64,
            ..Written::default()
        };
        let there: HashMap<i64, CopyRow> = rows_as_text(&present)?
            .into_iter()
            .map(|row| Ok((row_key(&row)?, row)))
            .collect::<Result<_, StoreError>>()?;
        let ours: HashMap<i64, &CopyRow> = keys.iter().copied().zip(&rows).collect();
        for key in missing {
            if there
                .get(&key)
                .is_some_and(|row| Some(&row) == ours.get(&key))
            {
                written.present += 1;
            } else {
                written.different.push(key);
            }
        }
        Ok(written)
    }

    fn finish_copy(&self) -> Result<(), StoreError> {
        self.with_conn(|conn| conn.client.query_one(COPY_SEQUENCES, &[]).map(drop))
    }
}

const COPY_BOUNDS: &str = include_str!("../../../sql/postgres/copy_bounds.sql");
const COPY_BULK: &str = include_str!("../../../sql/postgres/copy_bulk.sql");
const COPY_SEQUENCES: &str = include_str!("../../../sql/postgres/copy_sequences.sql");

/// `(read, insert)` statements of a table.
fn statements(table: Table) -> (&'static str, &'static str) {
    macro_rules! pair {
        ($name:literal) => {
            (
                include_str!(concat!("../../../sql/postgres/copy_read_", $name, ".sql")),
                include_str!(concat!("../../../sql/postgres/copy_insert_", $name, ".sql")),
            )
        };
    }
    match table {
        Table::Conversions => pair!("conversions"),
        Table::Events => pair!("webhook_events"),
        Table::Conflicts => pair!("webhook_conflicts"),
        Table::Outbox => pair!("forward_outbox"),
        Table::Attempts => pair!("forward_attempts"),
        Table::Sources => pair!("forward_sources"),
    }
}

fn read(
    client: &mut impl GenericClient,
    table: Table,
    after: i64,
    upto: i64,
    limit: u32,
) -> Result<Vec<postgres::Row>, postgres::Error> {
    client.query(statements(table).0, &[&after, &i64::from(limit), &upto])
}

/// Every column of the read statements is text.
fn rows_as_text(rows: &[postgres::Row]) -> Result<Vec<CopyRow>, StoreError> {
    rows.iter()
        .map(|row| (0..row.len()).map(|i| get(row, i)).collect())
        .collect()
}
