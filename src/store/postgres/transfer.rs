//! Bulk moves into PostgreSQL ([`Transfer`]): an import batch is one statement (one round
//! trip, one commit) calling `process_webhook_idempotently` once per line.

use postgres::types::ToSql;
use rust_decimal::Decimal;

use super::errors::get;
use super::{PostgresStore, sql};
use crate::model::{History, NewConversion, NewEvent, Outcome, Receipt};
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
}
